//! Store and forward of deliver_sm (receipts and replies), one store per system_id, as an SMSC
//! keeps them: each waits until its time, then until a session of its system_id able to
//! receive has room for it, and stays that session's until acknowledged (a session that ends
//! gives its unacknowledged ones back). Bounded: past `capacity` new ones are dropped and
//! counted. No task or timer per message: sessions take what is due when they wake.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use parking_lot::Mutex;
use smsroute_smpp::pdu::Frame;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Timed;

#[derive(Default)]
struct Inner {
    ready: VecDeque<Frame>,
    scheduled: BinaryHeap<Reverse<Timed<Frame>>>,
    order: u64,
}

/// One system_id's deliver_sm not yet handed to a session.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Bumped whenever something is added: sessions waiting for work look again.
    changed: watch::Sender<u64>,
}

impl Store {
    pub fn new(capacity: usize) -> Self {
        Store {
            inner: Mutex::default(),
            capacity,
            changed: watch::Sender::new(0),
        }
    }

    /// A receiver for "something was added".
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Keeps `frame` until `due`; `false` (dropped) when the store is full.
    pub fn schedule(&self, due: Instant, frame: Frame) -> bool {
        {
            let mut inner = self.inner.lock();
            if inner.ready.len() + inner.scheduled.len() >= self.capacity {
                return false;
            }
            inner.order += 1;
            let order = inner.order;
            inner.scheduled.push(Reverse(Timed {
                at: due,
                order,
                item: frame,
            }));
        }
        self.changed.send_modify(|n| *n += 1);
        true
    }

    /// Puts back what a session that ended never had acknowledged, first in line.
    pub fn give_back(&self, frames: impl IntoIterator<Item = Frame>) {
        {
            let mut inner = self.inner.lock();
            for frame in frames {
                inner.ready.push_front(frame);
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Up to `max` deliver_sm due by `now`, oldest first.
    pub fn take(&self, now: Instant, max: usize) -> Vec<Frame> {
        if max == 0 {
            return Vec::new();
        }
        let mut inner = self.inner.lock();
        while let Some(Reverse(next)) = inner.scheduled.peek()
            && next.at <= now
        {
            let Some(Reverse(due)) = inner.scheduled.pop() else {
                break;
            };
            inner.ready.push_back(due.item);
        }
        let n = max.min(inner.ready.len());
        inner.ready.drain(..n).collect()
    }

    /// When the next scheduled deliver_sm falls due.
    pub fn next_due(&self) -> Option<Instant> {
        let inner = self.inner.lock();
        if !inner.ready.is_empty() {
            return Some(Instant::now());
        }
        inner.scheduled.peek().map(|Reverse(s)| s.at)
    }

    /// Deliver_sm held.
    pub fn len(&self) -> usize {
        let inner = self.inner.lock();
        inner.ready.len() + inner.scheduled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smsroute_smpp::pdu::Body;
    use std::time::Duration;

    fn frame(n: u32) -> Frame {
        Frame::new(n, Body::EnquireLink)
    }

    #[test]
    fn deliver_sm_come_out_in_time_order_and_never_past_the_capacity() {
        let store = Store::new(3);
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert!(store.schedule(t + ms(20), frame(2)));
        assert!(store.schedule(t + ms(10), frame(1)));
        assert!(store.schedule(t + ms(30), frame(3)));
        assert!(!store.schedule(t, frame(4)), "full");
        assert_eq!(store.next_due(), Some(t + ms(10)));
        assert!(store.take(t + ms(5), 10).is_empty());
        let due: Vec<u32> = store
            .take(t + ms(25), 10)
            .iter()
            .map(|f| f.sequence)
            .collect();
        assert_eq!(due, [1, 2]);
        // A session that ended gives one back: it goes first.
        store.give_back([frame(9)]);
        let rest: Vec<u32> = store
            .take(t + ms(30), 1)
            .iter()
            .map(|f| f.sequence)
            .collect();
        assert_eq!(rest, [9]);
        assert_eq!(store.len(), 1);
    }
}
