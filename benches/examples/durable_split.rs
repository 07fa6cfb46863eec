//! Where `engine/pipeline_durable` spends its time against `engine/pipeline`: both pipelines in
//! alternating rounds (both see the same host noise), each batch's wall time (median and mean:
//! criterion quotes the mean, which the slow rounds weigh on), the CPU
//! each thread spent on it (mean over the rounds, user and system, from
//! `/proc/self/task/*/stat`: the submitting thread, each dispatcher's runtime worker, the
//! journal's sync and compaction threads) and the two ratios `docs/benchmarks.md` quotes.
//!
//! `cargo run --release -p smsroute-benches --example durable_split [rounds]`
//!
//! - `PIN=1`: the dispatchers' threads on CPU 0, every other thread on CPU 1 (with `taskset`),
//!   so the journal's sync thread never takes the dispatcher's core.
//! - `TIMELINE=1`: when, in a batch (medians), the last message was submitted, the last
//!   `Accepted` event and the first and last terminal events came.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use smsroute_benches::pipeline::{
    durable_router, install_prometheus_recorder, messages, push_through, router,
};
use smsroute_delivery::Event;
use smsroute_engine::{EventStream, Router};
use smsroute_sim::SimCarrier;
use smsroute_types::Message;
use tokio::runtime::Runtime;

/// Messages a batch (`N` in the environment; the benches' 10,000 by default).
static N: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
    std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
});
const WARM_UP: usize = 5;
/// Clock ticks a second in `/proc/*/stat` (USER_HZ).
const TICKS_PER_S: f64 = 100.0;

/// CPU time per thread name so far, in clock ticks: `name` (user and system) and
/// `name (system)`.
fn cpu_by_thread() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("stat")),
        ) else {
            continue;
        };
        // After the parenthesised name: utime and stime are the 12th and 13th fields.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (user, system) = (ticks(11).unwrap_or(0), ticks(12).unwrap_or(0));
        let name = comm.trim();
        *out.entry(name.to_string()).or_default() += user + system;
        *out.entry(format!("{name} (system)")).or_default() += system;
    }
    out
}

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Pins the dispatchers' threads (`*-rt`) to CPU 0 and the others to CPU 1.
fn pin_threads() {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let tid = task.file_name().to_string_lossy().into_owned();
        let cpu = if comm.trim().ends_with("-rt") {
            "0"
        } else {
            "1"
        };
        let pinned = std::process::Command::new("taskset")
            .args(["-p", "-c", cpu, &tid])
            .output()
            .is_ok_and(|o| o.status.success());
        eprintln!("{} ({tid}) on CPU {cpu}: {pinned}", comm.trim());
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(200, |r| r.parse().expect("a round count"));
    let with_timeline = std::env::var_os("TIMELINE").is_some();
    let dir = std::env::temp_dir().join(format!("smsroute-split-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // As in the benches: handles bound to a Prometheus recorder, upkeep running.
    install_prometheus_recorder();
    let (plain_rt, durable_rt) = (runtime("plain-rt"), runtime("durable-rt"));
    let (plain, mut plain_events) = router(&plain_rt, *N);
    let (durable, mut durable_events) = durable_router(&durable_rt, *N, &dir);
    if std::env::var_os("PIN").is_some() {
        pin_threads();
    }
    let mut walls = [Vec::new(), Vec::new()];
    let mut marks = [Vec::new(), Vec::new()];
    let mut cpu = [BTreeMap::<String, u64>::new(), BTreeMap::new()];
    for round in 0..rounds + WARM_UP {
        for slot in 0..2 {
            let batch = messages(*N);
            let before = cpu_by_thread();
            let started = Instant::now();
            let (rt, router, events) = if slot == 0 {
                (&plain_rt, &plain, &mut plain_events)
            } else {
                (&durable_rt, &durable, &mut durable_events)
            };
            let sent = if with_timeline {
                let (sent, mark) = timeline(rt, router, events, batch, started);
                marks[slot].push(mark);
                sent
            } else {
                push_through(rt, router, events, batch)
            };
            let wall = started.elapsed();
            assert_eq!(sent, *N);
            if round < WARM_UP {
                continue;
            }
            walls[slot].push(wall);
            for (name, ticks) in cpu_by_thread() {
                let spent = ticks - before.get(&name).copied().unwrap_or(0);
                *cpu[slot].entry(name).or_default() += spent;
            }
        }
    }
    let (mut medians, mut means) = ([Duration::ZERO; 2], [Duration::ZERO; 2]);
    for (slot, name) in ["pipeline", "pipeline_durable"].into_iter().enumerate() {
        medians[slot] = median(&mut walls[slot]);
        means[slot] = walls[slot].iter().sum::<Duration>() / walls[slot].len() as u32;
        println!(
            "{name}: median batch {:?}, mean {:?}",
            medians[slot], means[slot]
        );
        for (thread, ticks) in cpu[slot].iter().filter(|(_, t)| **t > 0) {
            let ms = *ticks as f64 / TICKS_PER_S * 1000.0 / rounds as f64;
            println!("  {thread}: {ms:.2} ms CPU a batch");
        }
        if !marks[slot].is_empty() {
            let at = |i: usize| median(&mut marks[slot].iter().map(|m| m[i]).collect::<Vec<_>>());
            println!(
                "  submitted {:?}, last accepted {:?}, first terminal {:?}, last terminal {:?}",
                at(0),
                at(1),
                at(2),
                at(3)
            );
        }
    }
    let dispatcher = |slot: usize, name: &str| cpu[slot].get(name).copied().unwrap_or(0) as f64;
    println!(
        "ratios (durable / in memory): wall {:.3} (means {:.3}), dispatcher CPU {:.3}",
        medians[1].as_secs_f64() / medians[0].as_secs_f64(),
        means[1].as_secs_f64() / means[0].as_secs_f64(),
        dispatcher(1, "durable-rt") / dispatcher(0, "plain-rt").max(1.0)
    );
    durable_rt.block_on(durable.shutdown(Duration::from_secs(5)));
    let _ = std::fs::remove_dir_all(&dir);
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// [`push_through`], noting when (from `started`) the last message was submitted, the last
/// `Accepted` event and the first and last terminal events came.
fn timeline(
    rt: &Runtime,
    router: &Router<SimCarrier>,
    events: &mut EventStream,
    batch: Vec<Message>,
    started: Instant,
) -> (usize, [Duration; 4]) {
    let n = batch.len();
    for message in batch {
        router
            .try_submit(message)
            .expect("room for the whole batch");
    }
    let submitted = started.elapsed();
    let (mut last_accepted, mut first_terminal) = (Duration::ZERO, Duration::ZERO);
    let (sent, acknowledged) = rt.block_on(async {
        let (mut terminal, mut sent, mut acknowledged) = (0, 0, 0);
        let mut buf = Vec::with_capacity(4096);
        while terminal < n {
            assert!(events.recv_many(&mut buf).await, "the event stream ended");
            for e in buf.drain(..) {
                if e.is_terminal() {
                    if terminal == 0 {
                        first_terminal = started.elapsed();
                    }
                    terminal += 1;
                    sent += usize::from(e.event == Event::Sent);
                    acknowledged = acknowledged.max(e.ack);
                } else if e.event == Event::Accepted {
                    last_accepted = started.elapsed();
                }
            }
        }
        (sent, acknowledged)
    });
    let last_terminal = started.elapsed();
    router.acknowledge(acknowledged);
    (
        sent,
        [submitted, last_accepted, first_terminal, last_terminal],
    )
}
