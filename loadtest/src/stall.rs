//! How far behind the harness's runtime fell: a task on it that sleeps a millisecond at a
//! time and records how late it woke. The simulated carriers meter a submit when their
//! session task reads it, so while that runtime is behind (a starved or busy machine) submits
//! queue in the sockets and are metered together: a second at the carrier then holds a
//! little more than a second of what the router sent. The carriers' rate bounds allow for
//! the longest lag measured ([`crate::CarrierReport::allow_stall`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The meter's tick.
const TICK: Duration = Duration::from_millis(1);

/// A running lag meter; [`stop`](Self::stop) gives the longest lag seen.
pub(crate) struct StallMeter {
    stop: Arc<AtomicBool>,
    longest_nanos: Arc<AtomicU64>,
}

impl StallMeter {
    /// Starts metering on `runtime` (one task).
    pub(crate) fn start(runtime: &tokio::runtime::Runtime) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let longest_nanos = Arc::new(AtomicU64::new(0));
        let (flag, longest) = (stop.clone(), longest_nanos.clone());
        runtime.spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                let before = tokio::time::Instant::now();
                tokio::time::sleep(TICK).await;
                let late = before.elapsed().saturating_sub(TICK);
                longest.fetch_max(late.as_nanos() as u64, Ordering::Relaxed);
            }
        });
        StallMeter {
            stop,
            longest_nanos,
        }
    }

    /// Stops metering: the longest a tick woke late.
    pub(crate) fn stop(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        Duration::from_nanos(self.longest_nanos.load(Ordering::Relaxed))
    }
}
