//! Clients waiting for their message's acceptance to be durable, and the task that reads the
//! router's events: answers them, and turns terminal events into receipts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use smsroute_carrier::Carrier;
use smsroute_delivery::Event;
use smsroute_engine::{EventStream, Router, StatusEvent};
use smsroute_types::MessageId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::clients::{CLIENT_TAG, Client, Clients, Outgoing};
use crate::receipts::{Watermark, receipts_for};

/// One message's acceptance, as the submitting request and the event task meet it (either may
/// come first).
enum Slot {
    /// A request waits for it.
    Waiting(oneshot::Sender<()>),
    /// It came before the request looked.
    Durable,
}

/// Acceptances by message id.
#[derive(Default)]
pub(crate) struct Waiters(DashMap<MessageId, Slot>);

impl Waiters {
    /// Resolves once message `id`'s acceptance is durable (an error: the router stopped
    /// first).
    pub fn wait(&self, id: MessageId) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        match self.0.entry(id) {
            Entry::Occupied(o) => {
                o.remove();
                let _ = tx.send(());
            }
            Entry::Vacant(v) => {
                v.insert(Slot::Waiting(tx));
            }
        }
        rx
    }

    /// Stops waiting for `id` (its request gave up).
    pub fn forget(&self, id: MessageId) {
        self.0.remove(&id);
    }

    fn durable(&self, id: MessageId) {
        match self.0.entry(id) {
            Entry::Occupied(o) => {
                if let Slot::Waiting(tx) = o.remove() {
                    let _ = tx.send(());
                }
            }
            Entry::Vacant(v) => {
                v.insert(Slot::Durable);
            }
        }
    }
}

/// Who hears of the router's events.
pub(crate) struct Readers {
    /// Requests waiting for their message's acceptance.
    pub waiters: Arc<Waiters>,
    /// The clients, for their receipts.
    pub clients: Arc<ArcSwap<Clients>>,
    /// The last finished messages, for lookups.
    pub recent: Arc<crate::lookup::Recent>,
    /// Status webhook posts to make.
    pub posts: mpsc::Sender<crate::webhooks::Post>,
}

/// Reads every event: an acceptance answers its request; a terminal event becomes the
/// receipts its SMPP client asked for, and is acknowledged to the router once the client
/// answered them (at once when it asked for none).
pub(crate) async fn pump<C: Carrier>(
    router: Router<C>,
    mut events: EventStream,
    readers: Readers,
    mut answered: mpsc::Receiver<u64>,
) {
    let Readers {
        waiters,
        clients,
        recent,
        posts,
    } = readers;
    let mut watermark = Watermark::default();
    let mut finished_order = std::collections::VecDeque::new();
    let mut batch = Vec::with_capacity(1024);
    // Clients given receipts in this batch: their sessions are woken once, after it.
    let mut touched: Vec<Arc<Client>> = Vec::new();
    loop {
        tokio::select! {
            more = events.recv_many(&mut batch) => {
                if !more {
                    break;
                }
                let clients = clients.load();
                for event in batch.drain(..) {
                    if event.event == Event::Accepted {
                        waiters.durable(event.id);
                    } else if event.is_terminal() {
                        recent.finished(&event, &mut finished_order);
                        let owed = hand_out(&event, &clients.by_id, &posts, &mut touched);
                        watermark.handed_out(event.ack, owed);
                    }
                }
                for client in touched.drain(..) {
                    client.outbox.notify();
                }
            }
            Some(ack) = answered.recv() => watermark.answered(ack),
        }
        if let Some(upto) = watermark.advance() {
            router.acknowledge(upto);
        }
    }
}

/// Puts the receipts `event` owes its SMPP client in the client's outbox (the client goes in
/// `touched`, to be woken), and its webhook post in the queue; how many answers the event
/// waits for before it is acknowledged. One that does not fit (a full outbox or queue) is
/// never answered: the event stays unacknowledged, and a restart hands it out again.
fn hand_out(
    event: &StatusEvent,
    clients: &HashMap<String, Arc<Client>>,
    posts: &mpsc::Sender<crate::webhooks::Post>,
    touched: &mut Vec<Arc<Client>>,
) -> u32 {
    let Some(client) = event.message.tag(CLIENT_TAG).and_then(|id| clients.get(id)) else {
        return 0;
    };
    let mut owed = 0;
    for sm in receipts_for(event, SystemTime::now()) {
        owed += 1;
        let receipt = Outgoing {
            sm,
            ack: event.ack,
            message: Some(event.id),
        };
        if !touched.iter().any(|t| Arc::ptr_eq(t, client)) {
            touched.push(client.clone());
        }
        if client
            .outbox
            .schedule_quietly(Instant::now(), receipt)
            .is_err()
        {
            tracing::warn!(client = %client.id, id = %event.id, "receipt not queued: the \
                client's outbox is full (it is sent again after a restart)");
        }
    }
    if client.settings().webhook.is_some() {
        owed += 1;
        let post = crate::webhooks::Post::new(client.clone(), event);
        if posts.try_send(post).is_err() {
            tracing::warn!(client = %client.id, id = %event.id, "status webhook not queued: \
                the queue is full (it is posted after a restart)");
        }
    }
    owed
}
