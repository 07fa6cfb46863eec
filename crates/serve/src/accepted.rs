//! Clients waiting for their message's acceptance to be durable, and the task that reads the
//! router's events and answers them.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use smsroute_carrier::Carrier;
use smsroute_delivery::Event;
use smsroute_engine::{EventStream, Router};
use smsroute_types::MessageId;
use tokio::sync::oneshot;

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

/// Reads every event: an acceptance answers its request; a terminal event is acknowledged
/// (the router keeps nothing more for it).
pub(crate) async fn pump<C: Carrier>(
    router: Router<C>,
    mut events: EventStream,
    waiters: std::sync::Arc<Waiters>,
) {
    while let Some(event) = events.recv().await {
        if event.event == Event::Accepted {
            waiters.durable(event.id);
        } else if event.is_terminal() && event.ack > 0 {
            router.acknowledge(event.ack);
        }
    }
}
