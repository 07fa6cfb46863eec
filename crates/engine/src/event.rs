//! Status events out to the gateway: a bounded stream where terminal events are never
//! dropped.
//!
//! The dispatcher hands events over in batches (one channel operation per batch, not per
//! event). Room is accounted in events: every outstanding message (accepted, terminal event
//! not yet taken by the gateway) has room reserved for its terminal event, so that one always
//! fits; progress events use the headroom beyond that and are dropped, and counted, when the
//! gateway lags that far. Submits are refused as `Overloaded` once `max_outstanding`
//! messages are outstanding, which is what keeps the whole thing bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use smallvec::SmallVec;
use smsroute_delivery::{AttemptRecord, Event, Nanos};
use smsroute_types::CarrierSlot;
use smsroute_types::{CarrierMessageId, Message, MessageId};
use tokio::sync::mpsc;

/// One thing that happened to one message.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StatusEvent {
    /// The message.
    pub id: MessageId,
    /// When, on the router's clock ([`Router::now`](crate::Router::now)).
    pub at: Nanos,
    /// What happened. Carrier indices are the router's carrier slots
    /// ([`Router::carrier_id`](crate::Router::carrier_id)). `Submitted` is reported once the
    /// attempt's answer is known (accepted, refused, or given up on), stamped with the time it
    /// was sent.
    pub event: Event,
    /// Terminal events: submits made (0 if it never reached a carrier).
    pub attempts: u32,
    /// Terminal events: a submit timed out or was lost in flight, so the carrier may have
    /// sent a copy.
    pub possible_duplicate: bool,
    /// The carrier the event is about: `Submitted` and `Retrying`, theirs; `FailedOver`, the
    /// next one; a terminal event, the last attempt's (none if it never reached a carrier).
    pub carrier: Option<CarrierSlot>,
    /// That carrier's id, valid whatever happens to the router (no lookup needed).
    pub carrier_name: Option<&'static str>,
    /// Terminal events of messages that needed more than one attempt: every attempt.
    pub history: Option<Box<[AttemptRecord]>>,
    /// The carrier's message id of every part: on `Submitted`, those of that attempt when the
    /// carrier accepted it (empty when it refused or never answered); on a terminal event,
    /// those of the last attempt a carrier accepted (empty when none did). With
    /// `possible_duplicate`, what to look up in the carrier's records.
    pub carrier_message_ids: SmallVec<[CarrierMessageId; 1]>,
    /// The message as submitted: its client reference and tags (shared, not copied).
    pub message: Arc<Message>,
    /// Terminal events with a journal: the event's place in the acknowledgement order (from
    /// 1, increasing in the order terminal events are handed out). Once the gateway has
    /// handled every terminal event up to `n`, [`Router::acknowledge(n)`](crate::Router::acknowledge)
    /// says so, and they are not replayed after a restart. 0 without a journal.
    pub ack: u64,
    /// A terminal event emitted again after a restart: the gateway may have seen it before
    /// it stopped (it did not acknowledge it). Same id, status and `ack` as the first time.
    pub replay: bool,
}

impl StatusEvent {
    /// Whether this is the message's one terminal event.
    pub fn is_terminal(&self) -> bool {
        self.event.is_terminal()
    }

    /// The gateway's own reference for the message, if it gave one.
    pub fn client_ref(&self) -> Option<&str> {
        self.message.client_ref()
    }

    /// One of the message's tags.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.message.tag(key)
    }
}

/// Counters shared by the router, the dispatcher and the stream.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Accepted messages whose terminal event the gateway has not yet taken.
    pub outstanding: AtomicUsize,
    /// Events handed over and not yet taken.
    pub queued: AtomicUsize,
    /// Progress events dropped because the gateway lagged.
    pub dropped: AtomicU64,
    /// Submits refused as overloaded (for the overload log lines).
    pub overloaded: AtomicU64,
    /// Announces room (an outstanding slot freed, the queue drained) to `submit`s waiting.
    pub room: tokio::sync::Notify,
    /// `submit`s waiting for room: room is announced only when there are some.
    pub room_waiters: AtomicUsize,
}

impl Counters {
    /// Wakes the `submit`s waiting for room, if any.
    pub fn announce_room(&self) {
        if self.room_waiters.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }
}

/// The dispatcher's end: collects a batch, hands it over on flush.
pub(crate) struct EventSink {
    tx: mpsc::UnboundedSender<Vec<StatusEvent>>,
    batch: Vec<StatusEvent>,
    terminals: usize,
    counters: Arc<Counters>,
    /// Events that may be queued: max_outstanding + progress headroom.
    limit: usize,
    progress: bool,
}

/// Events per batch before an early flush.
const BATCH: usize = 1024;

/// The events in `buffer` (room for `room`) as a batch to hand over, `buffer` left empty with
/// that room. A batch at least a quarter full goes as it is (no copy) and `buffer` gets a new
/// allocation; a smaller one is copied out at its size, so a queue of small batches (a quiet
/// router, a gateway that stopped reading) never holds more than 4x the events' bytes.
pub(crate) fn take_batch<T>(buffer: &mut Vec<T>, room: usize) -> Vec<T> {
    if buffer.len() * 4 >= room {
        std::mem::replace(buffer, Vec::with_capacity(room))
    } else {
        let mut batch = Vec::with_capacity(buffer.len());
        batch.append(buffer);
        batch
    }
}

impl EventSink {
    pub fn new(counters: Arc<Counters>, limit: usize, progress: bool) -> (EventSink, EventStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = EventStream {
            rx,
            current: Vec::new().into_iter(),
            counters: counters.clone(),
        };
        let sink = EventSink {
            tx,
            batch: Vec::with_capacity(BATCH),
            terminals: 0,
            counters,
            limit,
            progress,
        };
        (sink, stream)
    }

    /// A progress event; `live` messages still owe their terminal event.
    pub fn progress(&mut self, event: StatusEvent, live: usize) {
        if !self.progress {
            return;
        }
        let queued = self.counters.queued.load(Ordering::Relaxed) + self.batch.len();
        if queued + live < self.limit {
            self.push(event);
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether progress events are wanted at all (skip building them when not).
    pub fn wants_progress(&self) -> bool {
        self.progress
    }

    /// A terminal event: always kept (its room was reserved at submit).
    pub fn terminal(&mut self, event: StatusEvent) {
        self.terminals += 1;
        self.push(event);
    }

    fn push(&mut self, event: StatusEvent) {
        self.batch.push(event);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Hands the batch to the gateway.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = take_batch(&mut self.batch, BATCH);
        let terminals = std::mem::take(&mut self.terminals);
        self.send(batch, terminals);
    }

    /// Hands a batch made elsewhere to the gateway as it is, after what was pushed before it:
    /// the events the journal held (`terminals` of them terminal) once durable. Never dropped,
    /// progress events on or off: a gateway waits for a durable message's `Accepted` event to
    /// confirm it to its own client (at most one per outstanding message beyond the queue's
    /// limit).
    pub fn hand_over(&mut self, events: Vec<StatusEvent>, terminals: usize) {
        self.flush();
        self.send(events, terminals);
    }

    fn send(&mut self, batch: Vec<StatusEvent>, terminals: usize) {
        let len = batch.len();
        self.counters.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(batch).is_err() {
            // Nobody listens: the events are taken as soon as they are made.
            self.counters.queued.fetch_sub(len, Ordering::Relaxed);
            self.counters
                .outstanding
                .fetch_sub(terminals, Ordering::AcqRel);
        }
    }
}

/// The gateway's end: every status event, in order per message. Ends (`None`) after the
/// router has shut down and every event was taken.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Vec<StatusEvent>>,
    current: std::vec::IntoIter<StatusEvent>,
    counters: Arc<Counters>,
}

impl EventStream {
    /// The next event, waiting for one.
    pub async fn recv(&mut self) -> Option<StatusEvent> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(event);
            }
            let batch = self.rx.recv().await?;
            self.current = self.take(batch).into_iter();
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Option<StatusEvent> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(event);
            }
            let batch = self.rx.try_recv().ok()?;
            self.current = self.take(batch).into_iter();
        }
    }

    /// Every event ready now, appended to `out`, waiting for at least one; `false` once the
    /// stream has ended.
    pub async fn recv_many(&mut self, out: &mut Vec<StatusEvent>) -> bool {
        out.extend(self.current.by_ref());
        if out.is_empty() {
            match self.rx.recv().await {
                Some(batch) => out.extend(self.take(batch)),
                None => return false,
            }
        }
        while let Ok(batch) = self.rx.try_recv() {
            out.extend(self.take(batch));
        }
        true
    }

    /// Frees the room of a batch the gateway now holds.
    fn take(&self, batch: Vec<StatusEvent>) -> Vec<StatusEvent> {
        let terminals = batch.iter().filter(|e| e.is_terminal()).count();
        self.counters
            .queued
            .fetch_sub(batch.len(), Ordering::Relaxed);
        self.counters
            .outstanding
            .fetch_sub(terminals, Ordering::AcqRel);
        if terminals > 0 {
            self.counters.announce_room();
        }
        batch
    }
}

/// The events as a [`futures::Stream`]: `while let Some(e) = events.next().await`.
impl futures::Stream for EventStream {
    type Item = StatusEvent;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<StatusEvent>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if let Some(event) = this.current.next() {
                return Poll::Ready(Some(event));
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => this.current = this.take(batch).into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for EventStream {
    /// A gateway that stops listening must not leave the room of unread events taken.
    fn drop(&mut self) {
        self.rx.close();
        while let Ok(batch) = self.rx.try_recv() {
            self.take(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::take_batch;

    #[test]
    fn a_batch_a_quarter_full_moves_and_a_smaller_one_is_copied_at_its_size() {
        let mut buffer: Vec<u32> = Vec::with_capacity(64);
        buffer.extend(0..16);
        let at = buffer.as_ptr();
        let batch = take_batch(&mut buffer, 64);
        assert_eq!(batch, (0..16).collect::<Vec<_>>());
        assert_eq!(batch.as_ptr(), at, "moved, not copied");
        assert!(buffer.is_empty() && buffer.capacity() >= 64);

        buffer.extend(0..15);
        let at = buffer.as_ptr();
        let batch = take_batch(&mut buffer, 64);
        assert_eq!(batch, (0..15).collect::<Vec<_>>());
        assert_eq!(batch.capacity(), 15, "copied out at its size");
        assert_eq!(buffer.as_ptr(), at, "the buffer keeps its room");
        assert!(buffer.is_empty());
    }
}
