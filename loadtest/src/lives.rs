//! The router's lives in a run: the first starts with the run; a `crash` fault abandons the
//! current one (as a kill would) and the next starts from its journal after the downtime. The
//! event reader follows every life's stream in turn into one ledger, acknowledging what it
//! records, as a gateway does.

use std::sync::mpsc;
use std::thread::JoinHandle;

use smsroute_carrier::Carrier;
use smsroute_engine::{EventStream, Keyword, Router};

use crate::ledger::Tally;
use crate::run::{Context, Fleet, RunError};

/// A life's router, its event stream, and harness time minus router time (µs).
type Life<C> = (Router<C>, EventStream, u64);

/// The current router and everything that outlives it.
pub(crate) struct Lives<C: Carrier> {
    /// The router of the current life.
    pub router: Router<C>,
    streams: mpsc::Sender<Life<C>>,
    reader: JoinHandle<Tally>,
    /// Whether message ids are kept (only runs with crashes need them).
    keep_ids: bool,
    /// Ids accepted by `try_submit` in the current life.
    life_ids: Vec<u64>,
    /// Ids accepted by `try_submit` in lives that crashed.
    crashed_ids: Vec<u64>,
    /// Crashes so far.
    pub crashes: u64,
}

impl<C: Carrier> Lives<C> {
    /// Starts the first life and the event reader.
    pub fn start<F: Fleet<Carrier = C>>(ctx: &Context<'_>, fleet: &F) -> Result<Self, RunError> {
        let (router, events) = fleet.router(ctx)?;
        let (streams, rx) = mpsc::channel::<Life<C>>();
        let reader = {
            let (books, handle) = (ctx.books.clone(), ctx.runtime.handle().clone());
            let scenario = &ctx.prepared.scenario;
            let carriers = ctx.prepared.config.carriers.len();
            let (planned, warmup_us) = (ctx.planned, (scenario.warmup_s * 1e6) as u64);
            let classes = scenario.mix.classes.is_some();
            let spend = crate::spend::Spend::new(
                &ctx.prepared.config,
                &ctx.prepared.reloads,
                scenario.warmup_s,
                scenario.duration_s,
            );
            std::thread::spawn(move || {
                let mut tally = Tally::new(planned, carriers, warmup_us);
                tally.spend = Some(spend);
                if classes {
                    tally.classes = Some(Default::default());
                }
                let mut batch = Vec::with_capacity(4096);
                // One life's stream after another: each ends when its router stops.
                while let Ok((acknowledger, mut events, offset_us)) = rx.recv() {
                    while handle.block_on(events.recv_many(&mut batch)) {
                        let mut acknowledged = 0;
                        for event in batch.drain(..) {
                            acknowledged = acknowledged.max(event.ack);
                            tally.record(&event, event.at / 1_000 + offset_us, &books);
                        }
                        // Handled: with a journal, not replayed, and compaction drops them.
                        acknowledger.acknowledge(acknowledged);
                    }
                }
                tally
            })
        };
        let mut lives = Lives {
            router: router.clone(),
            streams,
            reader,
            keep_ids: !ctx.prepared.crashes.is_empty(),
            life_ids: Vec::new(),
            crashed_ids: Vec::new(),
            crashes: 0,
        };
        lives.begin(ctx, router, events);
        Ok(lives)
    }

    /// Hands a new life's stream to the reader and follows its replies.
    fn begin(&mut self, ctx: &Context<'_>, router: Router<C>, events: EventStream) {
        // Harness time = router time + offset.
        let offset_us = ctx.now_us().saturating_sub(router.now() / 1_000);
        let _ = self.streams.send((router.clone(), events, offset_us));
        follow_replies(ctx, &router, offset_us);
        self.router = router;
    }

    /// `try_submit` accepted message `id` in the current life.
    pub fn accepted(&mut self, id: u64) {
        if self.keep_ids {
            self.life_ids.push(id);
        }
    }

    /// The current router dies as a killed process would.
    pub fn crash<F: Fleet<Carrier = C>>(&mut self, ctx: &Context<'_>, fleet: &F) {
        ctx.runtime.block_on(self.router.abandon());
        fleet.crashed(ctx, &self.router);
        self.crashed_ids.append(&mut self.life_ids);
        self.crashes += 1;
    }

    /// The next life, from the journal.
    pub fn restart<F: Fleet<Carrier = C>>(
        &mut self,
        ctx: &Context<'_>,
        fleet: &F,
    ) -> Result<(), RunError> {
        let (router, events) = fleet.router(ctx)?;
        self.begin(ctx, router, events);
        Ok(())
    }

    /// Once the last router has shut down: the reader's ledger, and how many messages
    /// `try_submit` accepted in a life that crashed before their acceptance was durable (no
    /// `Accepted` event, no terminal status: never accepted, so not lost).
    pub fn finish(self) -> (Tally, u64) {
        drop(self.streams);
        let tally = self.reader.join().expect("the event reader does not panic");
        let unconfirmed = self
            .crashed_ids
            .iter()
            .filter(|id| !tally.is_terminal(**id) && !tally.was_accepted(**id))
            .count() as u64;
        (tally, unconfirmed)
    }
}

/// Replies the router processed: STOPs are what no later acceptance may follow.
fn follow_replies<C: Carrier>(ctx: &Context<'_>, router: &Router<C>, offset_us: u64) {
    let Some(mut replies) = router.take_inbound() else {
        return;
    };
    let books = ctx.books.clone();
    ctx.runtime.spawn(async move {
        while let Some(reply) = replies.recv().await {
            let sender = match reply.keyword {
                Some(Keyword::Stop) => reply.to.as_str(),
                Some(Keyword::StopAll) => "*",
                Some(Keyword::Start) => {
                    books.started(&reply.from);
                    continue;
                }
                _ => continue,
            };
            books.stopped(&reply.from, sender, reply.at / 1_000 + offset_us);
        }
    });
}
