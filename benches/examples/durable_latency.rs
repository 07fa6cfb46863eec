//! Accept-to-durable latency as a gateway sees it: messages submitted at a steady rate, and
//! the time from `try_submit` to the message's `Accepted` event (with a journal, the event
//! comes once the record is durable). The same run measures a router without a journal as the
//! baseline. `cargo run --release -p smsroute-benches --example durable_latency -- [RATE] [SECONDS]`
//! (default 20,000 msg/s for 3 s; the journal lives in the system's temporary directory).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use smsroute_benches::pipeline::{durable_router, messages, router, runtime};
use smsroute_delivery::Event;
use smsroute_engine::{EventStream, Router};
use smsroute_sim::SimCarrier;

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000.0);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(3.0);
    let n = (rate * seconds) as usize;
    let dir = std::env::temp_dir().join(format!("smsroute-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for durable in [false, true] {
        let rt = runtime();
        let (router, events) = if durable {
            durable_router(&rt, n, &dir)
        } else {
            router(&rt, n)
        };
        let histogram = measure(&rt, &router, events, n, rate);
        println!(
            "{:<10} {n} messages at {rate} msg/s: accept-to-Accepted p50 {:.2} ms, p99 {:.2} ms, \
             p99.9 {:.2} ms, max {:.2} ms",
            if durable { "journal" } else { "memory" },
            histogram.value_at_quantile(0.5) as f64 / 1e3,
            histogram.value_at_quantile(0.99) as f64 / 1e3,
            histogram.value_at_quantile(0.999) as f64 / 1e3,
            histogram.max() as f64 / 1e3,
        );
        rt.block_on(router.shutdown(Duration::from_secs(5)));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Submits `n` messages at `rate` from this thread while another takes the events; returns
/// the latencies in microseconds.
fn measure(
    rt: &tokio::runtime::Runtime,
    router: &Router<SimCarrier>,
    mut events: EventStream,
    n: usize,
    rate: f64,
) -> Histogram<u64> {
    let origin = Instant::now();
    let handle = rt.handle().clone();
    // Submit times by id (ids are assigned from 1 in order), microseconds since origin.
    let submitted: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>> =
        std::sync::Arc::new((0..=n).map(|_| Default::default()).collect());
    let reader = {
        let submitted = submitted.clone();
        std::thread::spawn(move || {
            let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
            let (mut terminal, mut batch) = (0, Vec::new());
            while terminal < n && handle.block_on(events.recv_many(&mut batch)) {
                let now = origin.elapsed().as_micros() as u64;
                for e in batch.drain(..) {
                    terminal += usize::from(e.is_terminal());
                    if e.event == Event::Accepted {
                        let at =
                            submitted[e.id.0 as usize].load(std::sync::atomic::Ordering::Acquire);
                        histogram.saturating_record(now.saturating_sub(at));
                    }
                }
            }
            histogram
        })
    };
    let gap = Duration::from_secs_f64(1.0 / rate);
    for (i, message) in messages(n).into_iter().enumerate() {
        let due = origin + gap * i as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        // Ids are assigned from 1 in submit order: stamp before the event can come.
        let at = origin.elapsed().as_micros() as u64;
        submitted[i + 1].store(at, std::sync::atomic::Ordering::Release);
        let id = router.try_submit(message).expect("room for every message");
        assert_eq!(id.0 as usize, i + 1, "a fresh router numbers from 1");
    }
    reader.join().expect("the reader does not panic")
}
