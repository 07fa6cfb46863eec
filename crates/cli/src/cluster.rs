//! `[cluster]` in `smsroute serve`: every carrier's contract leased from Redis with the other
//! nodes (`docs/cluster.md`), the leases handed to the engine, the leaser's counts in metrics.

use std::sync::Arc;
use std::time::Duration;

use smsroute_cluster::{
    BalanceLeaser, CapSync, LeaseOptions, LeasePool, LeaseStats, Leaser, LocalBalances, OptOutSync,
    ReceiptExchange, RedisTarget, SharedBucket,
};
use smsroute_config::{ClusterConfig, Config, RedisAddress};

/// Where `[cluster]` says Redis is.
fn redis(cluster: &ClusterConfig) -> RedisTarget {
    match &cluster.redis {
        RedisAddress::Server(url) => RedisTarget::Server(url.expose().to_string()),
        RedisAddress::Cluster(nodes) => {
            RedisTarget::Cluster(nodes.iter().map(|n| n.expose().to_string()).collect())
        }
    }
}

/// Starts leasing every carrier's contract; `None` without `[cluster]`. Redis must answer.
pub fn start(config: &Config) -> Result<Option<Leaser>, String> {
    let Some(cluster) = &config.cluster else {
        return Ok(None);
    };
    let options = LeaseOptions {
        redis: redis(cluster),
        node_id: cluster.node_id.clone(),
        lease: Duration::from_millis(cluster.lease_ms),
    };
    let leaser =
        Leaser::start(&options, &buckets(config)).map_err(|e| format!("[cluster]: {e}"))?;
    tracing::info!(
        node_id = %cluster.node_id,
        contracts = buckets(config).len(),
        live_nodes = leaser.stats().live_nodes.load(std::sync::atomic::Ordering::Relaxed),
        "cluster: carriers' contracts leased from Redis, shared with the other nodes"
    );
    Ok(Some(leaser))
}

/// Shares the router's opt-outs with the other nodes (`None` without `[cluster]`): what
/// either side holds is kept, and changes flow both ways until the value is dropped.
pub fn share_optouts(
    config: &Config,
    list: &Arc<smsroute_policy::Suppression>,
) -> Result<Option<OptOutSync>, String> {
    let Some(cluster) = &config.cluster else {
        return Ok(None);
    };
    let sync = OptOutSync::start(&redis(cluster), list.clone())
        .map_err(|e| format!("[cluster] opt-outs: {e}"))?;
    tracing::info!(
        opted_out = list.len(),
        "cluster: opt-outs shared with the other nodes"
    );
    Ok(Some(sync))
}

/// Receipts passed between the nodes (`None` without `[cluster]`): ownership of this node's
/// carrier ids is kept as long as the router awaits receipts (`[retry] receipt_timeout_s`).
pub fn exchange_receipts(config: &Config) -> Result<Option<ReceiptExchange>, String> {
    let Some(cluster) = &config.cluster else {
        return Ok(None);
    };
    let ttl = Duration::from_secs(config.retry.receipt_timeout_s);
    ReceiptExchange::start(&redis(cluster), &cluster.node_id, ttl)
        .map(Some)
        .map_err(|e| format!("[cluster] receipts: {e}"))
}

/// Shares the router's frequency caps with the other nodes (`None` without `[cluster]` or
/// without a capped class): each node's takes count on the others within about 100 ms.
pub fn share_caps(
    config: &Config,
    caps: &Arc<smsroute_policy::FrequencyCaps>,
) -> Result<Option<CapSync>, String> {
    let Some(cluster) = &config.cluster else {
        return Ok(None);
    };
    if config.policy.classes.iter().all(|c| c.cap.is_none()) {
        return Ok(None);
    }
    CapSync::start(&redis(cluster), &cluster.node_id, caps.clone())
        .map(Some)
        .map_err(|e| format!("[cluster] frequency caps: {e}"))
}

/// Whether accounts are shared: then each opens empty on this node and is leased in.
pub fn shares_balances(config: &Config) -> bool {
    config.cluster.is_some() && !config.policy.accounts.is_empty()
}

/// Keeps this node's allowance of every account's shared balance (`None` unless
/// [`shares_balances`]); gives it back when dropped.
pub fn lease_balances<C: smsroute::Carrier>(
    config: &Config,
    router: &smsroute::Router<C>,
) -> Result<Option<BalanceLeaser>, String> {
    let Some(cluster) = config.cluster.as_ref().filter(|_| shares_balances(config)) else {
        return Ok(None);
    };
    let accounts: Vec<(String, u64)> = config
        .policy
        .accounts
        .iter()
        .map(|a| (a.id.clone(), a.balance.micros()))
        .collect();
    let local = Arc::new(RouterBalances(router.clone()));
    BalanceLeaser::start(&redis(cluster), &accounts, local)
        .map(Some)
        .map_err(|e| format!("[cluster] balances: {e}"))
}

/// A router's accounts, as the balance leaser moves them.
struct RouterBalances<C: smsroute::Carrier>(smsroute::Router<C>);

impl<C: smsroute::Carrier> LocalBalances for RouterBalances<C> {
    fn held(&self, account: &str) -> u64 {
        self.0.balance(account).map_or(0, |b| b.micros())
    }

    fn credit(&self, account: &str, micros: u64) {
        self.0.credit(account, micros);
    }

    fn debit_up_to(&self, account: &str, micros: u64) -> u64 {
        self.0.debit_up_to(account, micros)
    }
}

/// Every contract as Redis keeps it, each with the name the engine knows it by
/// (`EngineOptions::leases`): carriers by id, a route row with its own `tps` as
/// `route:CARRIER:PREFIX` (once, however many dated rows share it), a sender as `sender:ID`.
fn contracts(config: &Config) -> Vec<(String, SharedBucket)> {
    let carriers = config.carriers.iter().map(|c| {
        let bucket = SharedBucket::carrier(&c.id, f64::from(c.tps), c.burst);
        (c.id.clone(), bucket)
    });
    let mut routes: Vec<(String, SharedBucket)> = Vec::new();
    for r in &config.routes {
        let Some((tps, burst)) = r.limit else {
            continue;
        };
        let carrier = &config.carriers[r.carrier].id;
        let name = smsroute_engine::route_bucket_name(carrier, &r.prefix);
        if routes.iter().all(|(n, _)| *n != name) {
            let bucket = SharedBucket::route(carrier, &r.prefix, f64::from(tps), burst);
            routes.push((name, bucket));
        }
    }
    let senders = config.senders.iter().map(|s| {
        let bucket = SharedBucket::sender(&s.id, f64::from(s.tps), s.burst);
        (smsroute_engine::sender_bucket_name(&s.id), bucket)
    });
    carriers.chain(routes).chain(senders).collect()
}

fn buckets(config: &Config) -> Vec<SharedBucket> {
    contracts(config).into_iter().map(|(_, b)| b).collect()
}

/// Contract name → this node's pool, for `EngineOptions::leases`.
pub fn leases(config: &Config, leaser: &Leaser) -> Vec<(String, Arc<LeasePool>)> {
    contracts(config)
        .into_iter()
        .enumerate()
        .map(|(index, (name, _))| (name, leaser.pool(index).clone()))
        .collect()
}

/// Why a reload is refused while clustered: the leases were set up for the contracts of the
/// start, and a carrier, route row or sender added or given another rate on one node only
/// would break the contract the nodes share.
pub fn reload_refusal(started: &Config, reloaded: &Config) -> Option<String> {
    started.cluster.as_ref()?;
    (buckets(started) != buckets(reloaded)).then(|| {
        "[cluster]: the contracts (carriers, route rows and senders with their tps / burst) are fixed while the node is clustered; \
         restart every node to change them"
            .to_string()
    })
}

/// Copies the leaser's counts into the metrics every second, forever.
pub async fn report(stats: Arc<LeaseStats>) {
    use std::sync::atomic::Ordering::Relaxed;
    let metrics = smsroute_metrics::ClusterMetrics::register();
    loop {
        let up = stats.redis_up.load(Relaxed);
        metrics.redis_up.set(if up { 1.0 } else { 0.0 });
        metrics
            .live_nodes
            .set(stats.live_nodes.load(Relaxed) as f64);
        metrics
            .round_trips
            .absolute(stats.round_trips.load(Relaxed));
        metrics.failures.absolute(stats.failures.load(Relaxed));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tps: u32, cluster: bool) -> Config {
        let mut text = format!(
            "[[carriers]]\nid = \"a\"\ntps = {tps}\n\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\ncost = 0.01\n"
        );
        if cluster {
            text += "\n[cluster]\nurl = \"redis://127.0.0.1:6379\"\nnode_id = \"n1\"\n";
        }
        Config::parse(&text, "c.toml").unwrap()
    }

    #[test]
    fn a_clustered_node_refuses_reloads_that_change_the_shared_contracts() {
        assert!(reload_refusal(&config(100, true), &config(200, true)).is_some());
        let route_tps = |tps: u32| {
            let text = format!(
                "[[carriers]]\nid = \"a\"\ntps = 100\n\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\n\
                 cost = 0.01\ntps = {tps}\n\n[cluster]\nurl = \"redis://127.0.0.1:6379\"\nnode_id = \"n1\"\n"
            );
            Config::parse(&text, "c.toml").unwrap()
        };
        assert!(reload_refusal(&route_tps(10), &route_tps(20)).is_some());
        assert_eq!(reload_refusal(&route_tps(10), &route_tps(10)), None);
        assert_eq!(reload_refusal(&config(100, true), &config(100, true)), None);
        assert_eq!(
            reload_refusal(&config(100, false), &config(200, false)),
            None
        );
    }
}
