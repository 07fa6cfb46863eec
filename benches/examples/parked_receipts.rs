//! Receipts matched for days, memory flat (issue 16): `N` messages (default 3,000,000) accepted
//! by a carrier that sends no receipt until told, the process's resident memory measured idle
//! (router started) and once every message is parked waiting for its receipt, then every
//! receipt sent at once and the rate at which they finish messages (terminal events taken by
//! the gateway). The carrier keeps nothing per message (its ids are the messages' client references), so the
//! memory is the router's. Journal on, `sync = "batch"`, in the system's temporary directory.
//! Each receipt is answered as an SMPP session's is (the router answers it once what it did is
//! durable), or with `unanswered` as a carrier that wants no answer.
//! `cargo run --profile ci -p smsroute-benches --example parked_receipts -- [N] [unanswered]`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use smallvec::smallvec;
use smsroute_carrier::{
    Accepted, Carrier, Receipt, ReceiptAck, ReceiptSink, SubmitError, SubmitRequest,
};
use smsroute_config::Config;
use smsroute_delivery::{Event, ReceiptStatus};
use smsroute_engine::{EngineOptions, EventStream, Router};
use smsroute_journal::JournalOptions;
use smsroute_types::Message;

/// The system allocator, counting the bytes live on the heap.
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only a counter is added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        HEAP.fetch_add(new, Ordering::Relaxed);
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: allocated by this allocator with this layout.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Accepts every part at once under the message's client reference (the ids `submit` returns
/// skip the ones given to refused tries); sends receipts only when told.
struct Quiet {
    id: String,
    sink: Mutex<Option<ReceiptSink>>,
}

impl Carrier for Quiet {
    fn id(&self) -> &str {
        &self.id
    }

    async fn submit(&self, request: SubmitRequest) -> Result<Accepted, SubmitError> {
        Ok(Accepted {
            message_ids: smallvec![request.message.client_ref().unwrap_or_default().into()],
        })
    }

    fn attach_receipts(&self, sink: ReceiptSink) {
        *self.sink.lock() = Some(sink);
    }
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Takes every event on its own thread; counts terminal ones (delivered ones apart).
fn consume(rt: &tokio::runtime::Runtime, mut events: EventStream) -> Arc<[AtomicUsize; 2]> {
    let counts: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
    let (handle, seen) = (rt.handle().clone(), counts.clone());
    std::thread::spawn(move || {
        let mut batch = Vec::new();
        while handle.block_on(events.recv_many(&mut batch)) {
            for e in batch.drain(..) {
                if e.is_terminal() {
                    seen[0].fetch_add(1, Ordering::Relaxed);
                    seen[1].fetch_add(usize::from(e.event == Event::Delivered), Ordering::Relaxed);
                }
            }
        }
    });
    counts
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3_000_000);
    let answered = std::env::args().nth(2).as_deref() != Some("unanswered");
    let taken = Arc::new(AtomicUsize::new(0));
    let dir = std::env::temp_dir().join(format!("smsroute-parked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config::parse(
        "[[carriers]]\nid = \"alpha\"\ntps = 1000000\n\n\
         [[routes]]\nprefix = \"44\"\ncarrier = \"alpha\"\ncost = 0.004\n",
        "parked.toml",
    )
    .expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let options = EngineOptions::default().journal(JournalOptions::new(&dir));
    let (router, events) = {
        let _enter = rt.enter();
        Router::start(&config, options, |c| Quiet {
            id: c.id.clone(),
            sink: Mutex::new(None),
        })
        .expect("router")
    };
    let counts = consume(&rt, events);
    std::thread::sleep(Duration::from_millis(500));
    let (idle, idle_heap) = (rss(), HEAP.load(Ordering::Relaxed));

    let started = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let to = format!("447700{:06}", i % 1_000_000);
            let message = Message::builder(
                &to,
                "ACME",
                "Your code is 123456; it expires in 10 minutes.",
            )
            .client_ref(&format!("ref-{i}"))
            .build()
            .expect("valid");
            router.submit(message).await.expect("accepted");
        }
    });
    let submitted = started.elapsed();
    while router.stats().parked < n {
        std::thread::sleep(Duration::from_millis(100));
    }
    let parked_after = started.elapsed();
    // Let the journal's compaction and the allocator settle.
    std::thread::sleep(Duration::from_secs(5));
    let (parked, parked_heap) = (rss(), HEAP.load(Ordering::Relaxed));
    let stats = router.stats();
    println!(
        "{n} messages submitted in {:.1} s, all parked after {:.1} s; outstanding {}, ids awaited {}",
        submitted.as_secs_f64(),
        parked_after.as_secs_f64(),
        stats.outstanding,
        stats.receipts_pending
    );
    println!(
        "resident memory: idle {:.0} MB, {n} parked {:.0} MB: {:.0} MB above idle ({:.0} bytes a \
         message); heap in use {:.0} MB above idle ({:.0} bytes a message)",
        idle as f64 / 1e6,
        parked as f64 / 1e6,
        parked.saturating_sub(idle) as f64 / 1e6,
        parked.saturating_sub(idle) as f64 / n as f64,
        parked_heap.saturating_sub(idle_heap) as f64 / 1e6,
        parked_heap.saturating_sub(idle_heap) as f64 / n as f64
    );

    let sink = router
        .carrier(smsroute_types::CarrierSlot(0))
        .and_then(|c| c.sink.lock().clone())
        .expect("receipts attached");
    let released = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            let receipt = Receipt {
                message_id: format!("ref-{i}").into(),
                status: ReceiptStatus::Delivered,
                error: 0,
                possible_duplicate: false,
            };
            let ack = if answered {
                let taken = taken.clone();
                ReceiptAck::new(move |ok| {
                    taken.fetch_add(usize::from(ok), Ordering::Relaxed);
                })
            } else {
                ReceiptAck::none()
            };
            sink.send((receipt, ack)).await.expect("sink open");
        }
    });
    let mut last = (0, Instant::now());
    while counts[0].load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(10));
        let done = counts[0].load(Ordering::Relaxed);
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(10) {
            let s = router.stats();
            panic!(
                "stuck at {done} of {n} finished: outstanding {}, parked {}, ids awaited {}, unknown {}",
                s.outstanding, s.parked, s.receipts_pending, s.unknown_receipts
            );
        }
    }
    let took = released.elapsed().as_secs_f64();
    println!(
        "{n} receipts released at once: matched and finished in {took:.2} s, {:.0} a second \
         ({} delivered, {} answered taken so far, {} unknown receipts); resident memory after \
         {:.0} MB",
        n as f64 / took,
        counts[1].load(Ordering::Relaxed),
        taken.load(Ordering::Relaxed),
        router.stats().unknown_receipts,
        rss() as f64 / 1e6
    );
    rt.block_on(router.shutdown(Duration::from_secs(5)));
    let _ = std::fs::remove_dir_all(&dir);
}
