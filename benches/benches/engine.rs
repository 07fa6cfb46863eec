//! `engine/pipeline/10000` and `engine/pipeline_bare/10000`: 10,000 messages pushed through
//! the in-process engine to terminal status, with zero-latency simulated carriers. The
//! submitting and event-taking thread is the bench's; the dispatcher runs on one runtime
//! worker. `pipeline_bare` runs with no metrics recorder (every handle a no-op); `pipeline`
//! with the Prometheus recorder installed globally (upkeep running), as a deployment has it;
//! `pipeline_policy` as `pipeline` with the policy stage on: every message of a capped
//! marketing class with quiet-hour rules, checked against a suppression list of 10,000;
//! `pipeline_durable` as `pipeline` with a journal (`sync = "batch"`) in the system's temporary
//! directory: every message's acceptance, attempt, carrier answer and terminal status recorded
//! and synced in groups.

use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smsroute_benches::pipeline::{
    durable_router, install_prometheus_recorder, messages, policy_messages, policy_router,
    push_through, router, runtime,
};

const N: usize = 10_000;

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(N as u64));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    for name in ["pipeline_bare", "pipeline"] {
        if name == "pipeline" {
            // Handles bind to the recorder installed when a router registers them, so the
            // bare router above keeps its no-op handles.
            install_prometheus_recorder();
        }
        let rt = runtime();
        let (router, mut events) = router(&rt, N);
        group.bench_function(BenchmarkId::new(name, N), |b| {
            b.iter_batched(
                || messages(N),
                |batch| assert_eq!(push_through(&rt, &router, &mut events, batch), N),
                BatchSize::PerIteration,
            )
        });
    }
    let dir = std::env::temp_dir().join(format!("smsroute-bench-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let rt = runtime();
        let (router, mut events) = durable_router(&rt, N, &dir);
        group.bench_function(BenchmarkId::new("pipeline_durable", N), |b| {
            b.iter_batched(
                || messages(N),
                |batch| assert_eq!(push_through(&rt, &router, &mut events, batch), N),
                BatchSize::PerIteration,
            )
        });
        rt.block_on(router.shutdown(Duration::from_secs(5)));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let rt = runtime();
    let (router, mut events) = policy_router(&rt, N);
    let mut round = 0;
    group.bench_function(BenchmarkId::new("pipeline_policy", N), |b| {
        b.iter_batched(
            || {
                round += 1;
                policy_messages(N, round)
            },
            |batch| assert_eq!(push_through(&rt, &router, &mut events, batch), N),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
