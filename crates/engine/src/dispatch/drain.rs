//! Stopping: a shutdown request, and the report of what did not finish.

use super::lookup::Lookup;
use super::*;

impl<C: Carrier> Dispatcher<C> {
    pub(super) fn control(&mut self, control: Option<Control>, now: Nanos) {
        match control {
            Some(Control::Shutdown { deadline, reply }) => self.draining = Some((deadline, reply)),
            Some(Control::Abandon { reply }) => self.abandoned = Some(reply),
            Some(Control::Query { id, reply }) => {
                self.lookups.push_back((Lookup::Query(reply), id, 0))
            }
            Some(Control::Cancel { id, reply }) => {
                self.lookups.push_back((Lookup::Cancel(reply), id, 0))
            }
            None => {
                self.handle_gone = true;
                // Gone without a shutdown: stop now.
                self.draining.get_or_insert((now, None));
            }
        }
    }

    /// Ends the dispatcher as a crash would: nothing is finished, flushed or reported; the
    /// journal's unwritten records are thrown away; submits in flight are forgotten.
    pub(super) fn abandon(mut self, reply: oneshot::Sender<()>) {
        tracing::warn!(
            live = self.slab.live(),
            "router abandoned (simulated crash)"
        );
        self.shared.stopped.store(true, Ordering::Release);
        if let Some(journal) = self.journal.take() {
            journal.abandon();
        }
        for entry in self.slab.drain() {
            if let Some(task) = entry.in_flight.and_then(|f| f.task) {
                task.abort();
            }
        }
        // The journal's threads have stopped: a new router may open it.
        let _ = reply.send(());
    }

    /// Ends the dispatcher: whatever is not terminal is reported unfinished (with a journal,
    /// it is resumed at the next start).
    pub(super) fn finish(mut self) {
        if !self.deferred.is_empty() {
            tracing::warn!(
                held = self.deferred.len(),
                "receipts still waiting for room at shutdown are answered not taken: their \
                 carriers offer them again after the restart"
            );
        }
        let mut unfinished: Vec<MessageId> = Vec::new();
        if let Some(journal) = self.journal.take() {
            // Synced on the way out: what waited for the disk is durable now.
            let (durable, held, events) = journal.close();
            for held in events {
                if durable {
                    self.hand_out_held(held);
                } else {
                    // Never durable: a terminal one stays unfinished in the journal, its slot
                    // given back; an `Accepted` one is dropped.
                    unfinished.extend(
                        held.events
                            .iter()
                            .filter(|status| status.event.is_terminal())
                            .map(|status| status.id),
                    );
                }
            }
            for (_, held) in held {
                match held {
                    journal::Held::Start(job) => unfinished.push(job.message.id()),
                    journal::Held::Receipt(ack) if durable => ack.taken(),
                    // Dropped unanswered: the carrier offers the receipt again.
                    journal::Held::Submit { .. } | journal::Held::Receipt(_) => {}
                }
            }
        }
        for entry in self.slab.drain() {
            if let Some(task) = entry.in_flight.and_then(|f| f.task) {
                task.abort();
            }
            unfinished.push(entry.delivery.id());
        }
        while let Some(job) = self.shared.submitted.pop() {
            unfinished.push(job.message.id());
        }
        for id in &unfinished {
            self.shared.ids.remove(id);
        }
        self.shared
            .counters
            .outstanding
            .fetch_sub(unfinished.len(), Ordering::AcqRel);
        // Parked messages stay in the journal, waiting for their receipts after the restart
        // (they do not count as outstanding).
        if let Some(parking) = &self.parking {
            let parked: Vec<MessageId> = parking.ids().collect();
            for id in &parked {
                self.shared.ids.remove(id);
            }
            unfinished.extend(parked);
        }
        self.events.flush();
        self.flush_metrics();
        self.shared.stopped.store(true, Ordering::Release);
        unfinished.sort_unstable();
        let report = ShutdownReport {
            drained: self.drained,
            unfinished,
            events_dropped: self.shared.counters.dropped.load(Ordering::Relaxed),
        };
        if let Some((_, Some(reply))) = self.draining.take() {
            let _ = reply.send(report);
        }
    }
}
