//! `smpp/decode/submit_sm`: decoding one typical submit_sm through our PDU layer (rusmpp
//! underneath). `smpp/loopback/10000`: 10,000 submits pipelined through our ESME's window to
//! our simulator over one loopback TCP session, all acked; both ends in this process on the
//! 2-core machine.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smsroute_carrier::{Carrier, SubmitRequest};
use smsroute_sim::{Simulator, SimulatorConfig};
use smsroute_smpp::pdu::{Body, Frame};
use smsroute_smpp::sm::submit_parts;
use smsroute_smpp::{EsmeConfig, SmppCarrier};
use smsroute_types::Message;

const N: usize = 10_000;
/// Submits in flight at once (the ESME's window).
const WINDOW: usize = 1024;

fn message() -> Message {
    Message::builder(
        "447700900123",
        "ACME",
        "Your code is 123456. Do not share it.",
    )
    .build()
    .unwrap()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("smpp");
    group.throughput(Throughput::Elements(1));
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let part = submit_parts(&message(), 0, true).remove(0);
    let mut bytes = Vec::new();
    Frame::new(7, Body::SubmitSm(part))
        .encode(&mut bytes)
        .unwrap();
    group.bench_function(BenchmarkId::new("decode", "submit_sm"), |b| {
        b.iter(|| Frame::decode(black_box(&bytes)).unwrap())
    });
    group.finish();
}

fn loopback(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_sim, carrier) = runtime.block_on(async {
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorConfig::default())
            .await
            .unwrap();
        let config = EsmeConfig {
            window: WINDOW as u32,
            ..EsmeConfig::new("127.0.0.1", sim.local_addr().port(), "bench", "pw")
        };
        let carrier = Arc::new(SmppCarrier::connect("sim", config));
        while carrier.bound() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (sim, carrier)
    });
    let request = SubmitRequest {
        message: Arc::new(message()),
        attempt: 1,
        receipt: false,
    };
    let mut group = c.benchmark_group("smpp");
    group.throughput(Throughput::Elements(N as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function(BenchmarkId::new("loopback", N), |b| {
        b.iter(|| {
            runtime.block_on(async {
                // WINDOW submitters, each submitting its share in turn: the window stays full.
                let mut workers = tokio::task::JoinSet::new();
                for w in 0..WINDOW {
                    let (carrier, request) = (carrier.clone(), request.clone());
                    let share = N / WINDOW + usize::from(w < N % WINDOW);
                    workers.spawn(async move {
                        for _ in 0..share {
                            carrier.submit(request.clone()).await.expect("acked");
                        }
                    });
                }
                while let Some(done) = workers.join_next().await {
                    done.unwrap();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, decode, loopback);
criterion_main!(benches);
