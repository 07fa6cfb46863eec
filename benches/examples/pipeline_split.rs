//! Where a pipeline batch spends its time: the submitting thread's loop (validation, policy,
//! routing, queueing) against the whole batch to terminal status, for `pipeline` and
//! `pipeline_policy` in interleaved rounds (both see the same host noise); medians.
//! `cargo run --release -p smsroute-benches --example pipeline_split [plain|policy]`: with an
//! argument, only that pipeline runs (for `perf record`).
use std::time::{Duration, Instant};

use smsroute_benches::pipeline::{messages, policy_messages, policy_router, router, runtime};

const N: usize = 10_000;
const ROUNDS: u64 = 300;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let only = std::env::args().nth(1);
    let runs = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let rt = runtime();
    let (plain, mut plain_events) = router(&rt, N);
    let (policy, mut policy_events) = policy_router(&rt, N);
    let mut times = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for round in 1..=ROUNDS {
        for (slot, name) in ["plain", "policy"].into_iter().enumerate() {
            if !runs(name) {
                continue;
            }
            let (router, events, batch) = if name == "policy" {
                (&policy, &mut policy_events, policy_messages(N, round))
            } else {
                (&plain, &mut plain_events, messages(N))
            };
            let started = Instant::now();
            for message in batch {
                router
                    .try_submit(message)
                    .expect("room for the whole batch");
            }
            let submitted = started.elapsed();
            rt.block_on(async {
                let (mut terminal, mut buf) = (0, Vec::with_capacity(4096));
                while terminal < N {
                    let more =
                        tokio::time::timeout(Duration::from_secs(10), events.recv_many(&mut buf))
                            .await
                            .expect("the pipeline stalled");
                    assert!(more, "the event stream ended");
                    terminal += buf.drain(..).filter(|e| e.is_terminal()).count();
                }
            });
            times[slot].0.push(submitted);
            times[slot].1.push(started.elapsed());
        }
    }
    for ((submit, batch), name) in times.into_iter().zip(["pipeline", "pipeline_policy"]) {
        if submit.is_empty() {
            continue;
        }
        let submit = median(submit);
        println!(
            "{name}: submit loop {submit:?} ({} ns a message), batch {:?}",
            submit.as_nanos() / N as u128,
            median(batch)
        );
    }
}
