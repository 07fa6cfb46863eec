//! `mode = "smpp"`: every carrier is a simulated SMSC on loopback TCP, reached through real
//! SMPP sessions (our ESME), with the same behaviour models as in-process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smsroute_carrier::Inbound;
use smsroute_delivery::RetryPolicy;
use smsroute_engine::{EventStream, Router};
use smsroute_sim::{Simulator, SimulatorConfig, SubmitObserver};
use smsroute_smpp::pdu::ShortMessage;
use smsroute_smpp::sm::text_of;
use smsroute_smpp::{EsmeConfig, SmppCarrier};
use smsroute_types::{Message, MessageId};

use crate::report::CarrierReport;
use crate::run::{Context, Fleet, RunError, carrier_ids, carrier_report, hash};

/// The message number the harness writes at the start of every text (`#123# …`), read back
/// from the first part a simulator accepts: the simulator's own view of what it accepted.
fn marked_id(sm: &ShortMessage) -> Option<u64> {
    let (concat, text) = text_of(sm);
    if concat.is_some_and(|c| c.part != 1) {
        return None;
    }
    text.strip_prefix('#')?.split('#').next()?.parse().ok()
}

/// The template's text behind a `#n#` marker (n + 1, the message's id), which the simulator
/// reads back.
pub(crate) fn marked_message(template: &Message, n: u64) -> Message {
    let text = format!("#{}# {}", n + 1, template.text());
    Message::builder(template.to().as_str(), template.from().as_str(), &text)
        .id(MessageId(n + 1))
        .build()
        .unwrap_or_else(|_| {
            let mut m = template.clone();
            m.set_id(MessageId(n + 1));
            m
        })
}

/// A simulated SMSC per carrier on loopback, each started before the router.
pub(crate) struct SmppFleet {
    simulators: BTreeMap<String, Simulator>,
}

impl SmppFleet {
    /// Starts a simulator for every carrier the run may see (reloads included).
    pub(crate) fn start(ctx: &Context<'_>) -> Result<SmppFleet, RunError> {
        let prepared = ctx.prepared;
        let (books, origin) = (ctx.books.clone(), ctx.origin);
        let observer = SubmitObserver(Arc::new(move |sm: &ShortMessage, after: u64| {
            if let Some(id) = marked_id(sm) {
                books.carrier_accepted(id, origin.elapsed().as_micros() as u64, after);
            }
        }));
        let simulators = ctx.runtime.block_on(async {
            let mut sims = BTreeMap::new();
            for id in carrier_ids(prepared) {
                let config = SimulatorConfig {
                    behaviour: prepared.behaviours.get(&id).cloned().unwrap_or_default(),
                    seed: prepared.scenario.seed ^ hash(&id),
                    disconnect_after: prepared
                        .scenario
                        .carriers
                        .get(&id)
                        .and_then(|c| c.smpp_disconnect_after),
                    observer: Some(observer.clone()),
                    ..SimulatorConfig::default()
                };
                let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
                match Simulator::start(loopback, config).await {
                    Ok(sim) => sims.insert(id, sim),
                    Err(error) => {
                        return Err(RunError::Simulator { carrier: id, error });
                    }
                };
            }
            Ok(sims)
        })?;
        Ok(SmppFleet { simulators })
    }

    /// Each carrier's simulator port.
    pub(crate) fn ports(&self) -> BTreeMap<String, u16> {
        self.simulators
            .iter()
            .map(|(id, s)| (id.clone(), s.local_addr().port()))
            .collect()
    }

    /// Each carrier's figures, as its simulator counted them.
    /// `carrier`'s simulator sends `reply` to a session bound as `system_id`.
    pub(crate) fn send_mo(
        &self,
        ctx: &Context<'_>,
        carrier: &str,
        system_id: &str,
        reply: &Inbound,
    ) {
        if let Some(sim) = self.simulators.get(carrier) {
            ctx.runtime
                .block_on(sim.send_mo(system_id, &reply.from, &reply.to, &reply.text));
        }
    }

    pub(crate) fn carrier_reports(&self, ctx: &Context<'_>) -> BTreeMap<String, CarrierReport> {
        self.simulators
            .iter()
            .map(|(id, sim)| {
                let s = sim.stats();
                let meter = s.rate.lock();
                let report = carrier_report(ctx.prepared, id, &s.carrier, meter.max(), |tps| {
                    meter.contract_use(tps)
                });
                (id.clone(), report)
            })
            .collect()
    }
}

impl Fleet for SmppFleet {
    type Carrier = SmppCarrier;

    /// The router with an ESME per carrier; returns once every session is bound (or after
    /// 5 s, when the load starts anyway and the unbound carrier shows in the report).
    fn router(&self, ctx: &Context<'_>) -> Result<(Router<SmppCarrier>, EventStream), RunError> {
        let prepared = ctx.prepared;
        let ports = self.ports();
        let timeout =
            Duration::from_nanos(RetryPolicy::from(&prepared.config.retry).submit_timeout);
        let (router, events) = {
            let _guard = ctx.runtime.enter();
            Router::start(&prepared.config, ctx.engine.clone(), move |c| {
                let port = ports.get(&c.id).copied().unwrap_or(0);
                let config = EsmeConfig {
                    window: c.window,
                    submit_timeout: timeout + Duration::from_secs(1),
                    reconnect_min: Duration::from_millis(20),
                    reconnect_max: Duration::from_millis(500),
                    ..EsmeConfig::new("127.0.0.1", port, "loadtest", "secret")
                };
                SmppCarrier::connect(&c.id, config)
            })?
        };
        ctx.runtime.block_on(async {
            for _ in 0..500 {
                let bound = prepared.config.carriers.iter().all(|c| {
                    router
                        .carrier_slot(&c.id)
                        .and_then(|i| router.carrier(i))
                        .is_none_or(|c| c.bound() > 0)
                });
                if bound {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Ok((router, events))
    }

    /// The dead router's sessions die with it: closed at once (the simulators keep the
    /// receipts they owe for the next bind).
    fn crashed(&self, ctx: &Context<'_>, router: &Router<SmppCarrier>) {
        ctx.runtime.block_on(router.shutdown(Duration::ZERO));
    }

    fn message(&self, template: &Message, n: u64) -> Message {
        marked_message(template, n)
    }

    fn reports(
        &self,
        ctx: &Context<'_>,
        _: &Router<SmppCarrier>,
    ) -> BTreeMap<String, CarrierReport> {
        self.carrier_reports(ctx)
    }

    fn inject(&self, ctx: &Context<'_>, _: &Router<SmppCarrier>, carrier: &str, reply: Inbound) {
        self.send_mo(ctx, carrier, "loadtest", &reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smsroute_smpp::sm::submit_parts;

    #[test]
    fn the_marker_is_read_from_the_first_part_only() {
        let m = Message::builder("447700900123", "ACME", &format!("#42# {}", "x".repeat(200)))
            .build()
            .unwrap();
        let parts = submit_parts(&m, 1, false);
        assert_eq!(marked_id(&parts[0]), Some(42));
        assert_eq!(marked_id(&parts[1]), None);
        let u = Message::builder("447700900123", "ACME", "#7# Привет")
            .build()
            .unwrap();
        assert_eq!(marked_id(&submit_parts(&u, 1, false)[0]), Some(7));
    }
}
