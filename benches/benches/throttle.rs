//! `throttle/*`: one admit through our GCRA bucket against the `governor` crate's direct
//! limiter with the same quota, on one thread (`…/1`) and two threads sharing the bucket
//! (`…/2`, where an iteration is one admit on each thread).
//!
//! Both read a clock per admit the way they would in service: ours the coarse `quanta`
//! recent time (kept fresh by an upkeep thread, as the engine will), governor its own quanta
//! clock. The quota is high enough that every admit succeeds, so both measure the admit path.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota as GovernorQuota, RateLimiter};
use smsroute_throttle::{Admission, Gcra, Quota};

const RATE: u32 = 1_000_000_000;
const BURST: u32 = 1_000_000;

fn nanos_since(clock: &quanta::Clock, origin: quanta::Instant) -> u64 {
    clock.recent().saturating_duration_since(origin).as_nanos() as u64
}

/// Runs `admit` `iters` times on each of `threads` threads at once; wall time of the slowest.
fn on_threads(threads: usize, iters: u64, admit: &(impl Fn() -> bool + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(admit());
                    }
                    started.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn throttle(c: &mut Criterion) {
    let _upkeep = quanta::Upkeep::new(Duration::from_millis(1))
        .start()
        .expect("quanta upkeep thread");
    let clock = quanta::Clock::new();
    let origin = clock.now();
    let mut group = c.benchmark_group("throttle");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        let ours = Gcra::new(Quota::per_second(f64::from(RATE), BURST).expect("valid quota"));
        let admit_ours = || ours.try_admit(1, nanos_since(&clock, origin)) == Admission::Admitted;
        let governor_quota = GovernorQuota::per_second(NonZeroU32::new(RATE).expect("non-zero"))
            .allow_burst(NonZeroU32::new(BURST).expect("non-zero"));
        let theirs = RateLimiter::direct(governor_quota);
        let admit_theirs = || theirs.check().is_ok();

        group.bench_function(BenchmarkId::new("admit", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, &admit_ours))
        });
        group.bench_function(BenchmarkId::new("governor", threads), |b| {
            b.iter_custom(|iters| on_threads(threads, iters, &admit_theirs))
        });
        // Both must have admitted everything: otherwise they measured different paths.
        assert!(
            admit_ours() && admit_theirs(),
            "the quota must admit every call"
        );
    }
    group.finish();
}

criterion_group!(benches, throttle);
criterion_main!(benches);
