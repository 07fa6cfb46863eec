//! `mode = "inproc"`: every carrier is a behaviour model in this process, behind the
//! `Carrier` trait.

use std::collections::BTreeMap;
use std::sync::Arc;

use smsroute_carrier::Inbound;
use smsroute_engine::{EventStream, Router};
use smsroute_sim::SimCarrier;
use smsroute_types::{Message, MessageId};

use crate::report::CarrierReport;
use crate::run::{Context, Fleet, RunError, carrier_ids, carrier_report, hash};

/// Simulated carriers in this process.
pub(crate) struct InprocFleet;

impl Fleet for InprocFleet {
    type Carrier = SimCarrier;

    fn router(&self, ctx: &Context<'_>) -> Result<(Router<SimCarrier>, EventStream), RunError> {
        let prepared = ctx.prepared;
        let (behaviours, seed, books, origin) = (
            prepared.behaviours.clone(),
            prepared.scenario.seed,
            ctx.books.clone(),
            ctx.origin,
        );
        let _guard = ctx.runtime.enter();
        Ok(Router::start(
            &prepared.config,
            ctx.engine.clone(),
            move |c| {
                let behaviour = behaviours.get(&c.id).cloned().unwrap_or_default();
                let books = books.clone();
                let observer = Arc::new(move |id: MessageId, after: u64| {
                    books.carrier_accepted(id.0, origin.elapsed().as_micros() as u64, after)
                });
                SimCarrier::new(&c.id, behaviour, seed ^ hash(&c.id)).with_observer(observer)
            },
        )?)
    }

    /// The template itself, numbered: the simulator reports the id it accepted.
    fn message(&self, template: &Message, n: u64) -> Message {
        let mut message = template.clone();
        message.set_id(MessageId(n + 1));
        message
    }

    fn reports(
        &self,
        ctx: &Context<'_>,
        router: &Router<SimCarrier>,
    ) -> BTreeMap<String, CarrierReport> {
        let prepared = ctx.prepared;
        carrier_ids(prepared)
            .into_iter()
            .filter_map(|id| {
                let sim = router.carrier(router.carrier_slot(&id)?)?;
                let report = carrier_report(prepared, &id, sim.stats(), sim.max_rate_1s());
                Some((id, report))
            })
            .collect()
    }

    fn inject(
        &self,
        ctx: &Context<'_>,
        router: &Router<SimCarrier>,
        carrier: &str,
        reply: Inbound,
    ) {
        if let Some(sim) = router.carrier_slot(carrier).and_then(|i| router.carrier(i)) {
            ctx.runtime.block_on(sim.inject(reply));
        }
    }
}
