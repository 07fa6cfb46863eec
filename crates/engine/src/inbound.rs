//! Inbound messages (replies) out to the gateway, after their keywords were applied.

use smsroute_delivery::Nanos;
use smsroute_policy::Keyword;
use smsroute_types::CarrierSlot;
use tokio::sync::mpsc;

/// A reply a recipient sent, as the gateway gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundEvent {
    /// The carrier it came through.
    pub carrier: CarrierSlot,
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

/// What the `keyword` label of `smsroute_inbound_total` counts a reply as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InboundKind {
    /// A reply with a keyword.
    Keyword(Keyword),
    /// A reply with none (`none`).
    Other,
    /// A reply the gateway had no room for (`dropped`).
    Dropped,
}

impl smsroute_delivery::Label for InboundKind {
    const LABELS: &'static [&'static str] =
        &["stop", "stopall", "start", "help", "none", "dropped"];

    fn index(&self) -> usize {
        match self {
            InboundKind::Keyword(Keyword::Stop) => 0,
            InboundKind::Keyword(Keyword::StopAll) => 1,
            InboundKind::Keyword(Keyword::Start) => 2,
            InboundKind::Keyword(Keyword::Help) => 3,
            InboundKind::Other => 4,
            InboundKind::Dropped => 5,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use smsroute_delivery::Label;

    #[test]
    fn each_keyword_is_counted_under_its_own_word() {
        for keyword in [
            Keyword::Stop,
            Keyword::StopAll,
            Keyword::Start,
            Keyword::Help,
        ] {
            let label = InboundKind::Keyword(keyword).label();
            assert_eq!(Keyword::parse(label), Some(keyword), "{label}");
        }
        let mut places: Vec<usize> = [InboundKind::Other, InboundKind::Dropped]
            .iter()
            .chain(
                &[
                    Keyword::Stop,
                    Keyword::StopAll,
                    Keyword::Start,
                    Keyword::Help,
                ]
                .map(InboundKind::Keyword),
            )
            .map(Label::index)
            .collect();
        places.sort_unstable();
        places.dedup();
        assert_eq!(places.len(), InboundKind::LABELS.len());
    }
}
