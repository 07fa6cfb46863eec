//! What the cluster's background threads share: a thread asked to stop, and waited for, when
//! its owner is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// A named thread that runs until its stop flag is set.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts `run` on a thread called `name`; it should return soon after the flag it is
    /// given turns true.
    pub fn spawn(name: &str, run: impl FnOnce(&AtomicBool) + Send + 'static) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(&flag))
            .expect("the OS starts a thread");
        Worker {
            stop,
            thread: Some(thread),
        }
    }

    /// Asks the thread to stop and waits for it (once; later calls do nothing).
    pub fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.halt();
    }
}
