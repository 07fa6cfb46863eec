//! `health/record/1`: one outcome folded into a carrier's tracker and its snapshot published
//! on the board (what the engine does per submit response). `health/penalty/1`: one lock-free
//! read of a carrier's health, what ranking does per candidate.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smsroute_health::{CarrierSlot, CarrierTracker, HealthBoard, HealthConfig, Outcome};

fn health(c: &mut Criterion) {
    let mut group = c.benchmark_group("health");
    group.throughput(Throughput::Elements(1));
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let board = HealthBoard::new(8, 0.5);
    let mut tracker = CarrierTracker::new(HealthConfig::default(), 1).expect("default config");
    // A mix that keeps the carrier closed: mostly successes, some throttles, rare failures.
    let outcomes = [
        Outcome::Success {
            latency: 40_000_000,
        },
        Outcome::Success {
            latency: 60_000_000,
        },
        Outcome::Throttled,
        Outcome::Success {
            latency: 50_000_000,
        },
        Outcome::Failure,
        Outcome::Success {
            latency: 45_000_000,
        },
        Outcome::Success {
            latency: 55_000_000,
        },
        Outcome::Success {
            latency: 42_000_000,
        },
    ];
    group.bench_function(BenchmarkId::new("record", 1), |b| {
        let mut i = 0usize;
        let mut now = 1_000_000_000u64;
        b.iter(|| {
            i = (i + 1) & 7;
            now += 100_000;
            tracker.record(black_box(outcomes[i]), now);
            board.publish(CarrierSlot(3), tracker.snapshot());
        })
    });
    group.bench_function(BenchmarkId::new("penalty", 1), |b| {
        let mut i = 0u16;
        b.iter(|| {
            i = (i + 1) & 7;
            black_box(board.health(black_box(CarrierSlot(i))).penalty)
        })
    });
    group.finish();
}

criterion_group!(benches, health);
criterion_main!(benches);
