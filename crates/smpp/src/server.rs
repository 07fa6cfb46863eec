//! What the SMSC end of sessions shares, for the simulator and the router's own server: the
//! [`Outbox`] of deliver_sm waiting for a session of their account, the [`SessionCaps`] on
//! sessions in total and per address, and [`Timed`] items for the heaps that hold things due
//! later (no task or timer each).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use smsroute_smpp::server::SessionCaps;
//!
//! let caps = SessionCaps::new(10, 1);
//! let here = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! let first = caps.admit(here).unwrap();
//! assert!(caps.admit(here).is_none(), "one session per address");
//! drop(first);
//! assert!(caps.admit(here).is_some());
//! ```

mod outbox;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::time::Instant;

pub use outbox::Outbox;

/// A session driver's read buffer: 2 KiB at first, doubling (to 64 KiB) while reads fill
/// it, so an idle session costs little and a busy one reads in large gulps.
pub struct ReadBuffer(Vec<u8>);

impl ReadBuffer {
    const MIN: usize = 2 * 1024;
    const MAX: usize = 64 * 1024;

    /// A buffer of the first size.
    pub fn new() -> Self {
        ReadBuffer(vec![0; Self::MIN])
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// The bytes a read into [`ReadBuffer::space`] gave (empty: the peer closed), growing the
    /// buffer after a read that filled it.
    pub fn filled(&mut self, read: std::io::Result<usize>) -> std::io::Result<&[u8]> {
        let n = read?;
        if n == self.0.len() && n < Self::MAX {
            self.0.resize(n * 2, 0);
        }
        Ok(&self.0[..n])
    }
}

/// Sleeps until `wake`; forever when there is nothing to wake for (a `select!` branch).
pub async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when an outbox a session listens to got something; never when it listens to
/// none (a transmitter) or the outbox is gone.
pub async fn outbox_changed(listening: Option<&mut tokio::sync::watch::Receiver<u64>>) {
    if let Some(rx) = listening
        && rx.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

impl Default for ReadBuffer {
    fn default() -> Self {
        ReadBuffer::new()
    }
}

/// Something due at a time: a min-heap entry (under `Reverse`) ordered by the time, then by
/// arrival, so things due together leave in the order they came.
pub struct Timed<T> {
    /// When it is due.
    pub at: Instant,
    /// Its place among things due at the same time.
    pub order: u64,
    /// The thing.
    pub item: T,
}

impl<T> PartialEq for Timed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl<T> Eq for Timed<T> {}
impl<T> PartialOrd for Timed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Timed<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// Caps on sessions at once, in total and from one address (connections past them are closed
/// as they come).
#[derive(Clone)]
pub struct SessionCaps(Arc<Caps>);

struct Caps {
    max: usize,
    max_per_address: usize,
    open: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// A session's place under the caps, given back when it is dropped.
pub struct Admitted {
    caps: Arc<Caps>,
    address: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.caps.open.fetch_sub(1, Ordering::AcqRel);
        let mut by_address = self.caps.by_address.lock();
        if let Some(n) = by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}

impl SessionCaps {
    /// At most `max` sessions at once, `max_per_address` of them from one address.
    pub fn new(max: usize, max_per_address: usize) -> Self {
        SessionCaps(Arc::new(Caps {
            max,
            max_per_address,
            open: AtomicUsize::new(0),
            by_address: Mutex::default(),
        }))
    }

    /// A place for a session from `address`, if the caps allow one.
    pub fn admit(&self, address: IpAddr) -> Option<Admitted> {
        let caps = &self.0;
        let mut by_address = caps.by_address.lock();
        let from_here = by_address.get(&address).copied().unwrap_or(0);
        if caps.open.load(Ordering::Acquire) >= caps.max || from_here >= caps.max_per_address {
            return None;
        }
        caps.open.fetch_add(1, Ordering::AcqRel);
        by_address.insert(address, from_here + 1);
        Some(Admitted {
            caps: caps.clone(),
            address,
        })
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.0.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_buffer_grows_while_reads_fill_it_and_keeps_what_was_read() {
        let mut buf = ReadBuffer::new();
        assert_eq!(buf.space().len(), 2048);
        buf.space()[..3].copy_from_slice(b"abc");
        assert_eq!(buf.filled(Ok(3)).unwrap(), b"abc");
        assert_eq!(buf.space().len(), 2048, "a short read: no growth");
        buf.space()[2047] = b'z';
        let full = buf.filled(Ok(2048)).unwrap();
        assert_eq!((full.len(), full[2047]), (2048, b'z'));
        assert_eq!(buf.space().len(), 4096);
        for _ in 0..10 {
            let n = buf.space().len();
            let _ = buf.filled(Ok(n));
        }
        assert_eq!(buf.space().len(), 64 * 1024, "at most 64 KiB");
        assert!(
            buf.filled(Err(std::io::ErrorKind::BrokenPipe.into()))
                .is_err()
        );
    }
}
