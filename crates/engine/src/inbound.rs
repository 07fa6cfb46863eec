//! Inbound messages (replies) out to the gateway, after their keywords were applied.

use smsroute_delivery::Nanos;
use smsroute_policy::Keyword;
use smsroute_routing::CarrierIndex;
use tokio::sync::mpsc;

/// A reply a recipient sent, as the gateway gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundEvent {
    /// The carrier it came through.
    pub carrier: CarrierIndex,
    /// The recipient's number, as the carrier wrote it.
    pub from: String,
    /// Our sender id or number it was sent to.
    pub to: String,
    /// The text.
    pub text: String,
    /// Its keyword, already applied to the suppression list (STOP, STOPALL, START) or for the
    /// gateway to answer (HELP).
    pub keyword: Option<Keyword>,
    /// Whether the suppression list changed because of it.
    pub changed: bool,
    /// When it was processed, on the router's clock: no message is dispatched to a number
    /// after its STOP was processed.
    pub at: Nanos,
}

/// The gateway's end of the inbound events ([`Router::take_inbound`](crate::Router::take_inbound)).
#[derive(Debug)]
pub struct InboundStream {
    pub(crate) rx: mpsc::Receiver<InboundEvent>,
}

impl InboundStream {
    /// The next reply, waiting for one; `None` once the router has shut down.
    pub async fn recv(&mut self) -> Option<InboundEvent> {
        self.rx.recv().await
    }

    /// The next reply if one is ready.
    pub fn try_recv(&mut self) -> Option<InboundEvent> {
        self.rx.try_recv().ok()
    }
}
