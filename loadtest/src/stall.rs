//! How far behind the harness's runtime fell: a task on it that sleeps a millisecond at a
//! time and records how late it woke (it ends with the runtime). The simulated carriers meter
//! a submit when their session task reads it, so while that runtime is behind (a starved or
//! busy machine) submits queue in the sockets and are metered together: a second at the
//! carrier then holds a little more than a second of what the router sent. The carriers'
//! rate bounds allow for the longest lag measured ([`crate::CarrierReport::allow_stall`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The meter's tick.
const TICK: Duration = Duration::from_millis(1);

/// The longest lag seen so far, nanoseconds, by a task that runs as long as its runtime.
pub(crate) struct StallMeter(Arc<AtomicU64>);

impl StallMeter {
    /// Starts metering on `runtime` (one task).
    pub(crate) fn start(runtime: &tokio::runtime::Runtime) -> Self {
        let longest = Arc::new(AtomicU64::new(0));
        let meter = longest.clone();
        runtime.spawn(async move {
            loop {
                let before = tokio::time::Instant::now();
                tokio::time::sleep(TICK).await;
                let late = before.elapsed().saturating_sub(TICK);
                meter.fetch_max(late.as_nanos() as u64, Ordering::Relaxed);
            }
        });
        StallMeter(longest)
    }

    /// The longest a tick woke late so far.
    pub(crate) fn longest(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }
}
