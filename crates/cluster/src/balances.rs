//! Account balances shared between nodes: the balance lives in Redis
//! (`smsroute:{account:ID}:balance`, micro-units), and each node holds an allowance of it,
//! reserved in advance and topped up or given back by a thread of its own, so charging a
//! message stays a local compare-and-swap. The balance is never overspent: a node spends only
//! what it reserved. What a node holds when it dies is lost to the account.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;

use crate::LeaseError;
use crate::link::{Commands, Link, RedisTarget};
use crate::worker::Worker;

/// The reservation script (`balance.lua`).
const BALANCE: &str = include_str!("balance.lua");
/// Longest a connect or a round trip may take.
const TIMEOUT: Duration = Duration::from_millis(500);
/// How often a node looks at its allowances.
const PERIOD: Duration = Duration::from_millis(100);
/// The smallest allowance a node keeps of an account with spending (micro-units).
const MIN_ALLOWANCE: u64 = 10_000;
/// Allowance as periods of the last period's spending: about a second.
const AHEAD: u64 = 10;

/// A node's account balances, as the balance leaser reads and moves them (`smsroute serve`
/// gives its router's).
pub trait LocalBalances: Send + Sync + 'static {
    /// What the node holds of `account`.
    fn held(&self, account: &str) -> u64;
    /// Adds to what the node holds.
    fn credit(&self, account: &str, micros: u64);
    /// Takes up to `micros` out of what the node holds: how much was taken.
    fn debit_up_to(&self, account: &str, micros: u64) -> u64;
}

/// What the balance leaser has done (for metrics and tests).
#[derive(Debug, Default)]
pub struct BalanceStats {
    /// Micro-units reserved from the shared balances.
    pub reserved: AtomicU64,
    /// Micro-units given back.
    pub returned: AtomicU64,
    /// Failed exchanges with Redis.
    pub failures: AtomicU64,
}

/// A node's share of its accounts' balances. See the module docs.
pub struct BalanceLeaser {
    stats: Arc<BalanceStats>,
    worker: Worker,
}

impl BalanceLeaser {
    /// Connects, seeds each shared balance with its opening amount if Redis has none yet (the
    /// first node to start decides), and starts keeping `local`'s allowances. Redis must answer
    /// now.
    pub fn start(
        redis: &RedisTarget,
        accounts: &[(String, u64)],
        local: Arc<dyn LocalBalances>,
    ) -> Result<Self, LeaseError> {
        let error = |source| LeaseError::Redis {
            url: redis.redacted(),
            source,
        };
        let mut connection = redis.connect(TIMEOUT).map_err(error)?;
        let script = Script::new(BALANCE);
        script.load(&mut connection).map_err(error)?;
        let mut seed = connection.pipe();
        for (account, opening) in accounts {
            seed.cmd("SET")
                .arg(key(account))
                .arg(opening)
                .arg("NX")
                .ignore();
        }
        if !seed.is_empty() {
            seed.query::<()>(&mut connection).map_err(error)?;
        }
        let stats = Arc::new(BalanceStats::default());
        let keeper = Keeper {
            target: redis.clone(),
            connection: Some(connection),
            script,
            local,
            accounts: accounts
                .iter()
                .map(|(id, _)| Allowance {
                    id: id.clone(),
                    key: key(id),
                    last_held: 0,
                })
                .collect(),
        };
        let worker = {
            let stats = stats.clone();
            Worker::spawn("smsroute-balances", move |stop| keeper.run(&stats, stop))
        };
        Ok(Self { stats, worker })
    }

    /// What it has done so far.
    pub fn stats(&self) -> &Arc<BalanceStats> {
        &self.stats
    }

    /// Gives every allowance back and stops (as dropping it does).
    pub fn stop(mut self) {
        self.worker.halt();
    }
}

/// An account's shared balance.
fn key(account: &str) -> String {
    format!("smsroute:{{account:{account}}}:balance")
}

struct Allowance {
    id: String,
    key: String,
    /// What the node held after the last exchange.
    last_held: u64,
}

/// The thread's state.
struct Keeper {
    target: RedisTarget,
    connection: Option<Link>,
    script: Script,
    local: Arc<dyn LocalBalances>,
    accounts: Vec<Allowance>,
}

impl Keeper {
    fn run(mut self, stats: &BalanceStats, stop: &AtomicBool) {
        let mut up = true;
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(PERIOD);
            match self.exchange(stats, false) {
                Ok(()) if !up => {
                    tracing::info!(
                        "cluster: Redis reachable again: balances reserved from it again"
                    );
                    up = true;
                }
                Ok(()) => {}
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    if up {
                        tracing::warn!(
                            error = %e,
                            "cluster: Redis unreachable: each node spends only the balance it holds"
                        );
                    }
                    up = false;
                    self.connection = None;
                }
            }
        }
        if let Err(e) = self.exchange(stats, true) {
            tracing::error!(error = %e, "cluster: balances this node held could not be given back");
        }
    }

    /// One round trip for every account whose allowance is too low or too high (`all_back`:
    /// give everything back); on a Redis Cluster, one per account.
    fn exchange(&mut self, stats: &BalanceStats, all_back: bool) -> redis::RedisResult<()> {
        if self.connection.is_none() {
            let mut connection = self.target.connect(TIMEOUT)?;
            self.script.load(&mut connection)?;
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut().expect("connected");
        let mut commands = Commands::default();
        let mut asked = Vec::new();
        for (index, account) in self.accounts.iter().enumerate() {
            let held = self.local.held(&account.id);
            let spent = account.last_held.saturating_sub(held);
            let target = (spent * AHEAD).max(MIN_ALLOWANCE);
            let (returned, wanted) = if all_back {
                (self.local.debit_up_to(&account.id, u64::MAX), 0)
            } else if held < target / 2 {
                (0, target - held)
            } else if held > target * 2 {
                (self.local.debit_up_to(&account.id, held - target), 0)
            } else {
                continue;
            };
            if returned == 0 && wanted == 0 {
                continue;
            }
            let mut command = redis::cmd("EVALSHA");
            command
                .arg(self.script.get_hash())
                .arg(1)
                .arg(&account.key)
                .arg(returned)
                .arg(wanted);
            commands.push(&account.key, command);
            asked.push((index, returned));
        }
        // Each account's reply on its own: on a Redis Cluster, an account whose primary failed
        // loses its exchange, the others keep what their primaries granted.
        let (granted, failed) = if commands.is_empty() {
            (Vec::new(), None)
        } else {
            commands.query::<u64>(connection)
        };
        let mut lost = 0;
        for ((index, returned), granted) in asked.into_iter().zip(granted) {
            match granted {
                Some(granted) => {
                    self.local.credit(&self.accounts[index].id, granted);
                    stats.reserved.fetch_add(granted, Ordering::Relaxed);
                    stats.returned.fetch_add(returned, Ordering::Relaxed);
                }
                // Redis may have taken the return before the reply was lost: crediting it
                // here again could spend it twice. It is lost to the account instead (the
                // safe direction), and said so.
                None => lost += returned,
            }
        }
        if lost > 0 {
            tracing::warn!(
                micros = lost,
                "cluster: balance returns not confirmed by Redis: not spent again here"
            );
        }
        for account in &mut self.accounts {
            account.last_held = self.local.held(&account.id);
        }
        failed.map_or(Ok(()), Err)
    }
}
