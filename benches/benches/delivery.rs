//! `delivery/step/1`: one transition of the delivery state machine. The bench cycles a
//! message through admit → throttled result → backoff timer, so every iteration is one
//! `handle_*` call on a live machine.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smallvec::smallvec;
use smsroute_delivery::{
    Action, Admission, Delivery, DeliveryRequest, RetryPolicy, SubmitResult, Unlimited,
};
use smsroute_types::CarrierSlot;
use smsroute_types::MessageId;

fn fresh() -> Delivery {
    let request = DeliveryRequest {
        id: MessageId(1),
        parts: 2,
        candidates: smallvec![CarrierSlot(0), CarrierSlot(1), CarrierSlot(2)],
        receipt: true,
        validity: None,
        not_before: None,
    };
    let policy = RetryPolicy {
        max_attempts: u32::MAX,
        validity: u64::MAX / 4,
        ..RetryPolicy::default()
    };
    Delivery::start(request, policy, 0).0
}

fn delivery(c: &mut Criterion) {
    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(1));
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function(BenchmarkId::new("step", 1), |b| {
        let template = fresh();
        let (mut d, mut now, mut phase, mut attempt, mut steps) =
            (template.clone(), 0u64, 0u8, 0u32, 0u32);
        b.iter(|| {
            // A fresh message every 999 steps keeps the attempt history small; the reset is
            // a clone of an inline-sized machine, amortised over the steps.
            steps += 1;
            if steps == 999 {
                (d, now, phase, attempt, steps) = (template.clone(), 0, 0, 0, 0);
            }
            now += 1_000_000;
            let actions = match phase {
                0 => d.handle_admission(Admission::Admitted, now, &mut Unlimited),
                1 => d.handle_submit_result(
                    attempt,
                    SubmitResult::Rejected { status: 0x58 },
                    now,
                    &mut Unlimited,
                ),
                _ => d.handle_timer(now + 10_000_000_000, &mut Unlimited),
            };
            if let Some(Action::Submit { attempt: a, .. }) =
                actions.iter().find(|a| matches!(a, Action::Submit { .. }))
            {
                attempt = *a;
            }
            phase = (phase + 1) % 3;
            black_box(actions)
        })
    });
    group.finish();
}

criterion_group!(benches, delivery);
criterion_main!(benches);
