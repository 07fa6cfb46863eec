//! The engine pipeline the `engine/*` benches and the profiling example drive: a router over
//! zero-latency simulated carriers, a batch of messages pushed through to terminal status.

use std::time::Duration;

use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, EventStream, Router};
use smsroute_sim::{Behaviour, SimCarrier};
use smsroute_types::Message;
use tokio::runtime::Runtime;

/// A config of three carriers over two countries, ~1,000 prefixes, contracts far above the
/// bench's rate (so the buckets admit everything and the bench measures the engine).
pub fn config() -> Config {
    let mut text = String::new();
    for id in ["uk-alpha", "uk-beta", "fr-gamma"] {
        text += &format!("[[carriers]]\nid = \"{id}\"\ntps = 100000000\nwindow = 1000000\n\n");
    }
    for i in 0..500u32 {
        let (a, b) = (4470 + i / 100, i % 100);
        text += &format!(
            "[[routes]]\nprefix = \"{a}{b:02}\"\ncarrier = \"uk-alpha\"\ncost = 0.00{}\n\n",
            30 + i % 7
        );
        text += &format!(
            "[[routes]]\nprefix = \"{a}{b:02}\"\ncarrier = \"uk-beta\"\ncost = 0.00{}\n\n",
            31 + i % 5
        );
        text += &format!(
            "[[routes]]\nprefix = \"336{i:03}\"\ncarrier = \"fr-gamma\"\ncost = 0.0050\n\n"
        );
    }
    Config::parse(&text, "bench.toml").expect("the bench config is valid")
}

/// `n` single-part messages to numbers the config serves.
pub fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let to = if i % 4 == 3 {
                format!("336{:03}{:05}", i % 500, i % 99_991)
            } else {
                format!("44{}{:02}{:05}", 70 + (i % 500) / 100, i % 100, i % 99_991)
            };
            Message::builder(&to, "ACME", "Your code is 123456")
                .build()
                .expect("a valid message")
        })
        .collect()
}

/// The policy stage's rules for `engine/pipeline_policy`: a capped marketing class (3 per
/// second per recipient, deferred in quiet hours) and a quiet window elsewhere (prefix 1).
pub const POLICY: &str = "[[classes]]\nname = \"marketing\"\nmax_per_recipient = 3\nper_s = 1\n\
    quiet_hours = \"defer\"\n\n[[quiet_hours]]\nprefix = \"1\"\nstart = \"00:00\"\nend = \"23:59\"\n";

/// `n` marketing messages for iteration `round`: recipients never repeat within a round and
/// rarely across rounds, so the caps see a new pair per message, as a campaign does.
pub fn policy_messages(n: usize, round: u64) -> Vec<Message> {
    (0..n)
        .map(|i| {
            let to = format!(
                "44{}{:02}{:07}",
                70 + (i % 500) / 100,
                i % 100,
                (round as usize * n + i) % 10_000_000
            );
            Message::builder(&to, "ACME", "Your code is 123456")
                .tag("class", "marketing")
                .build()
                .expect("a valid message")
        })
        .collect()
}

/// A router with the policy stage on: [`POLICY`], and 10,000 other numbers opted out.
pub fn policy_router(runtime: &Runtime, batch: usize) -> (Router<SimCarrier>, EventStream) {
    let mut config = config();
    let policy = Config::parse(
        &format!("[[carriers]]\nid = \"x\"\ntps = 1\n{POLICY}"),
        "policy.toml",
    )
    .expect("the bench policy is valid");
    config.policy = policy.policy;
    let options = EngineOptions::default()
        .max_outstanding(batch * 2)
        .inbound_capacity(batch * 2)
        .request_receipts(false)
        .cap_capacity(1 << 25);
    let _guard = runtime.enter();
    let (router, events) = Router::start(&config, options, |c| {
        SimCarrier::new(&c.id, Behaviour::default(), 1)
    })
    .expect("the bench router starts");
    for i in 0..10_000 {
        let number = smsroute_types::E164::parse(&format!("3361{i:07}")).expect("a number");
        router
            .suppression()
            .opt_out(&number, None)
            .expect("in memory");
    }
    (router, events)
}

/// A router on `runtime` with zero-latency simulated carriers and no receipts (terminal
/// status `sent`), sized for batches of `batch`.
pub fn router(runtime: &Runtime, batch: usize) -> (Router<SimCarrier>, EventStream) {
    let options = EngineOptions::default()
        .max_outstanding(batch * 2)
        .inbound_capacity(batch * 2)
        .request_receipts(false);
    let config = config();
    let _guard = runtime.enter();
    Router::start(&config, options, |c| {
        SimCarrier::new(&c.id, Behaviour::default(), 1)
    })
    .expect("the bench router starts")
}

/// [`router`] with a journal in `dir` (group commit, the default 1 ms batch interval), on
/// whatever disk holds it.
pub fn durable_router(
    runtime: &Runtime,
    batch: usize,
    dir: &std::path::Path,
) -> (Router<SimCarrier>, EventStream) {
    let options = EngineOptions::default()
        .max_outstanding(batch * 2)
        .inbound_capacity(batch * 2)
        .request_receipts(false)
        .journal(smsroute_journal::JournalOptions::new(dir));
    let config = config();
    let _guard = runtime.enter();
    Router::start(&config, options, |c| {
        SimCarrier::new(&c.id, Behaviour::default(), 1)
    })
    .expect("the bench router starts")
}

/// Submits every message and waits until each has its terminal event, acknowledges them;
/// returns how many were sent.
pub fn push_through(
    runtime: &Runtime,
    router: &Router<SimCarrier>,
    events: &mut EventStream,
    batch: Vec<Message>,
) -> usize {
    let n = batch.len();
    for message in batch {
        router
            .try_submit(message)
            .expect("room for the whole batch");
    }
    let (sent, acknowledged) = runtime.block_on(async {
        let (mut terminal, mut sent, mut buf) = (0, 0, Vec::with_capacity(4096));
        let mut acknowledged = 0;
        while terminal < n {
            let more = tokio::time::timeout(Duration::from_secs(10), events.recv_many(&mut buf))
                .await
                .expect("the pipeline stalled");
            assert!(more, "the event stream ended");
            for e in buf.drain(..) {
                if e.is_terminal() {
                    terminal += 1;
                    sent += usize::from(e.event == Event::Sent);
                    acknowledged = acknowledged.max(e.ack);
                }
            }
        }
        (sent, acknowledged)
    });
    // Handled: with a journal, they are not replayed (and compaction drops them).
    router.acknowledge(acknowledged);
    sent
}

/// Installs the Prometheus recorder globally, as a deployment has it, with its upkeep running
/// on a thread of its own: handles a router registers from now on record into it. Once a
/// process.
pub fn install_prometheus_recorder() {
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the first recorder");
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            handle.run_upkeep();
        }
    });
}

/// A multi-threaded runtime with one worker: the dispatcher's thread; the caller's thread
/// submits and takes events, as a gateway would.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}
