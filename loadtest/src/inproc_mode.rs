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

/// Simulated carriers in this process, made once for the run: a router started again after
/// a crash takes the same ones (with what they were sent, and the receipts they still owe).
pub(crate) struct InprocFleet {
    carriers: BTreeMap<String, Arc<SimCarrier>>,
}

impl InprocFleet {
    /// A simulated carrier for every carrier the run may see (reloads included).
    pub(crate) fn new(ctx: &Context<'_>) -> Self {
        let prepared = ctx.prepared;
        let (seed, origin) = (prepared.scenario.seed, ctx.origin);
        let carriers = carrier_ids(prepared)
            .into_iter()
            .map(|id| {
                let behaviour = prepared.behaviours.get(&id).cloned().unwrap_or_default();
                let books = ctx.books.clone();
                let observer = Arc::new(move |id: MessageId, after: u64| {
                    books.carrier_accepted(id.0, origin.elapsed().as_micros() as u64, after)
                });
                let sim = SimCarrier::new(&id, behaviour, seed ^ hash(&id)).with_observer(observer);
                (id, Arc::new(sim))
            })
            .collect();
        InprocFleet { carriers }
    }
}

impl Fleet for InprocFleet {
    type Carrier = Arc<SimCarrier>;

    fn router(
        &self,
        ctx: &Context<'_>,
    ) -> Result<(Router<Arc<SimCarrier>>, EventStream), RunError> {
        let carriers = self.carriers.clone();
        let seed = ctx.prepared.scenario.seed;
        let _guard = ctx.runtime.enter();
        Ok(Router::start(
            &ctx.prepared.config,
            ctx.engine.clone(),
            move |c| {
                carriers.get(&c.id).cloned().unwrap_or_else(|| {
                    let sim = SimCarrier::new(&c.id, Default::default(), seed ^ hash(&c.id));
                    Arc::new(sim)
                })
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
        router: &Router<Arc<SimCarrier>>,
    ) -> BTreeMap<String, CarrierReport> {
        let prepared = ctx.prepared;
        carrier_ids(prepared)
            .into_iter()
            .filter_map(|id| {
                let sim = router.carrier(router.carrier_slot(&id)?)?;
                let report = carrier_report(prepared, &id, sim.stats(), sim.max_rate_1s(), |tps| {
                    sim.contract_use(tps)
                });
                Some((id, report))
            })
            .collect()
    }

    fn release_receipts(&self, _: &Context<'_>, router: &Router<Arc<SimCarrier>>) {
        for slot in 0..router.carriers().len() {
            if let Some(sim) = router.carrier(smsroute_types::CarrierSlot(slot as u16)) {
                sim.release_receipts();
            }
        }
    }

    fn inject(
        &self,
        ctx: &Context<'_>,
        router: &Router<Arc<SimCarrier>>,
        carrier: &str,
        reply: Inbound,
    ) {
        if let Some(sim) = router.carrier_slot(carrier).and_then(|i| router.carrier(i)) {
            ctx.runtime.block_on(sim.inject(reply));
        }
    }
}
