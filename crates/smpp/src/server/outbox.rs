//! Store and forward of deliver_sm (receipts and replies), one outbox per account, as an SMSC
//! keeps them: each waits until its time, then until a session of its account able to receive
//! has room for it, and stays that session's until acknowledged (a session that ends gives its
//! unacknowledged ones back). Bounded: past `capacity` new ones are refused. No task or timer
//! per message: sessions take what is due when they wake.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Timed;

struct Inner<T> {
    ready: VecDeque<T>,
    scheduled: BinaryHeap<Reverse<Timed<T>>>,
    order: u64,
}

/// One account's deliver_sm (or whatever a session sends them from) not yet handed to a
/// session.
pub struct Outbox<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
    /// Bumped whenever something is added: sessions waiting for work look again.
    changed: watch::Sender<u64>,
}

impl<T> Outbox<T> {
    /// An empty outbox that holds at most `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Outbox {
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                scheduled: BinaryHeap::new(),
                order: 0,
            }),
            capacity,
            changed: watch::Sender::new(0),
        }
    }

    /// A receiver for "something was added".
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Keeps `item` until `due`; `Err(item)` when the outbox is full.
    pub fn schedule(&self, due: Instant, item: T) -> Result<(), T> {
        self.schedule_quietly(due, item)?;
        self.notify();
        Ok(())
    }

    /// [`Outbox::schedule`] without waking the sessions: for a batch, followed by one
    /// [`Outbox::notify`].
    pub fn schedule_quietly(&self, due: Instant, item: T) -> Result<(), T> {
        {
            let mut inner = self.inner.lock();
            if inner.ready.len() + inner.scheduled.len() >= self.capacity {
                return Err(item);
            }
            inner.order += 1;
            let order = inner.order;
            inner.scheduled.push(Reverse(Timed {
                at: due,
                order,
                item,
            }));
        }
        Ok(())
    }

    /// Wakes the sessions waiting for work.
    pub fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Puts back what a session that ended never had acknowledged, first in line.
    pub fn give_back(&self, items: impl IntoIterator<Item = T>) {
        {
            let mut inner = self.inner.lock();
            for item in items {
                inner.ready.push_front(item);
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Up to `max` items due by `now`, oldest first.
    pub fn take(&self, now: Instant, max: usize) -> Vec<T> {
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

    /// Items held.
    pub fn len(&self) -> usize {
        let inner = self.inner.lock();
        inner.ready.len() + inner.scheduled.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(n: u32) -> u32 {
        n
    }

    #[test]
    fn deliver_sm_come_out_in_time_order_and_never_past_the_capacity() {
        let store = Outbox::new(3);
        let t = Instant::now();
        let ms = Duration::from_millis;
        assert!(store.schedule(t + ms(20), frame(2)).is_ok());
        assert!(store.schedule(t + ms(10), frame(1)).is_ok());
        assert!(store.schedule(t + ms(30), frame(3)).is_ok());
        assert_eq!(store.schedule(t, frame(4)), Err(4), "full");
        assert_eq!(store.next_due(), Some(t + ms(10)));
        assert!(store.take(t + ms(5), 10).is_empty());
        assert_eq!(store.take(t + ms(25), 10), [1, 2]);
        // A session that ended gives one back: it goes first.
        store.give_back([frame(9)]);
        assert_eq!(store.take(t + ms(30), 1), [9]);
        assert_eq!(store.len(), 1);
    }
}
