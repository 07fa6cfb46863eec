//! The contract between the smsroute engine and a carrier connection: submit a message (all
//! its parts) and get the carrier's message ids or a classified error; hand delivery receipts
//! to a sink. Real SMPP sessions, the in-process simulator and the [`mock`] implement it.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use smsroute_carrier::{Carrier, SubmitError, SubmitRequest, mock::MockCarrier};
//! use smsroute_types::Message;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let carrier = MockCarrier::new("alpha");
//! carrier.push_result(Err(SubmitError::Rejected { status: 0x58 }));
//! let message = Arc::new(Message::builder("447700900123", "ACME", "hi").build().unwrap());
//! let request = SubmitRequest { message, attempt: 1, receipt: true };
//! assert_eq!(carrier.submit(request.clone()).await, Err(SubmitError::Rejected { status: 0x58 }));
//! assert!(carrier.submit(request).await.is_ok()); // script used up: accept
//! assert_eq!(carrier.submitted().len(), 2);
//! # });
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod mock;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use smsroute_delivery::ReceiptStatus;
use smsroute_types::Message;

/// One attempt to hand a message to a carrier.
#[derive(Clone, Debug)]
pub struct SubmitRequest {
    /// The message; every part goes in this one attempt, with one concatenation reference.
    pub message: Arc<Message>,
    /// The attempt number (1-based), for logs and duplicate detection.
    pub attempt: u32,
    /// Ask for delivery receipts.
    pub receipt: bool,
}

/// The carrier accepted every part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The carrier's message id of each part, in part order.
    pub message_ids: SmallVec<[Box<str>; 1]>,
}

/// Why an attempt did not go through, classified where it happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The carrier answered a part with this SMPP command_status.
    #[error("carrier refused with status {status:#04x}")]
    Rejected {
        /// The command_status.
        status: u32,
    },
    /// No answer within the submit timeout: the carrier may have the message.
    #[error("no answer from the carrier")]
    Timeout,
    /// The connection died with the submit in flight: the carrier may have the message.
    #[error("connection lost with the submit in flight")]
    ConnectionLost,
    /// Not sent at all: no usable connection right now (a failover-class error).
    #[error("carrier unavailable: {0}")]
    Unavailable(&'static str),
}

impl SubmitError {
    /// The SMPP status the delivery state machine classifies this by.
    pub fn as_submit_result(&self) -> smsroute_delivery::SubmitResult {
        use smsroute_delivery::SubmitResult;
        match self {
            SubmitError::Rejected { status } => SubmitResult::Rejected { status: *status },
            SubmitError::Timeout => SubmitResult::TimedOut,
            SubmitError::ConnectionLost => SubmitResult::ConnectionLost,
            // Not sent, so no duplicate risk; fail over.
            SubmitError::Unavailable(_) => SubmitResult::NotSent,
        }
    }
}

/// A delivery receipt for one part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The carrier's message id of the part.
    pub message_id: Box<str>,
    /// The final state it reports.
    pub status: ReceiptStatus,
    /// The carrier's error code (`err:`), 0 when none.
    pub error: u32,
    /// The carrier says the message may have reached its own carrier twice (an upstream
    /// `smsroute serve` flags its receipts so, with its vendor TLV 0x1501; another vendor's
    /// TLV of that number would read the same). Read by SMPP clients of such a hub (the
    /// load-test harness); the router does not fold it into its own events yet.
    pub possible_duplicate: bool,
}

/// A message a recipient sent us (mobile-originated): a reply, a keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The recipient's number, as the carrier wrote it.
    pub from: String,
    /// Our sender id or number it was sent to.
    pub to: String,
    /// The text.
    pub text: String,
}

/// Where a carrier hands inbound messages: bounded like the [`ReceiptSink`].
pub type InboundSink = tokio::sync::mpsc::Sender<Inbound>;

/// Where a carrier hands delivery receipts, each with the answer the engine gives it: a bounded
/// channel the engine drains. A full sink applies back-pressure to the carrier (its
/// `deliver_sm_resp` waits), never drops a receipt.
pub type ReceiptSink = tokio::sync::mpsc::Sender<(Receipt, ReceiptAck)>;

/// The engine's answer to one receipt, given once: [`ReceiptAck::taken`] when the receipt is
/// safe (its effect recorded durably when the router has a journal, so a crash cannot forget
/// it), or, when the token is dropped unanswered (the router stopped or crashed first), "not
/// taken": the carrier keeps the receipt and offers it again, as an SMSC does with a
/// `deliver_sm` answered with an error.
pub struct ReceiptAck(Option<Box<dyn FnOnce(bool) + Send + Sync>>);

impl ReceiptAck {
    /// Calls `answer(true)` when the engine has the receipt safe, `answer(false)` if it never
    /// will.
    pub fn new(answer: impl FnOnce(bool) + Send + Sync + 'static) -> Self {
        ReceiptAck(Some(Box::new(answer)))
    }

    /// For a receipt whose carrier wants no answer.
    pub fn none() -> Self {
        ReceiptAck(None)
    }

    /// The receipt is safe with the engine.
    pub fn taken(mut self) {
        if let Some(answer) = self.0.take() {
            answer(true);
        }
    }
}

impl Drop for ReceiptAck {
    fn drop(&mut self) {
        if let Some(answer) = self.0.take() {
            answer(false);
        }
    }
}

impl std::fmt::Debug for ReceiptAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ReceiptAck(awaited)"
        } else {
            "ReceiptAck(none)"
        })
    }
}

/// Whether a carrier can take submits now, as its connection sees it. Health reads it: a
/// carrier that is not up is no candidate while another is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Ready: a session is bound (or the carrier needs no connection).
    Up,
    /// No session is bound: why (the last bind failure, a lost link, still connecting).
    Down {
        /// What an operator needs to know, e.g. "bind refused: ESME_RINVPASWD (0x0e)".
        reason: String,
    },
    /// The carrier has no connection configured: it can never take a submit (and a router
    /// waiting for its carriers to be ready does not wait for it).
    NotConfigured,
}

impl LinkState {
    /// Whether submits can go now.
    pub fn is_up(&self) -> bool {
        *self == LinkState::Up
    }
}

/// Where a router that shares carrier accounts with other nodes says which carrier message
/// ids it waits for, and hands on the receipts it does not wait for: a receipt may come on any
/// bind of the account, so on another node's (`smsroute-cluster` passes it to its owner, which
/// takes it with `Router::receipt_from_peer`). Both are called on the router's dispatcher:
/// they must not block.
pub trait ReceiptRelay: Send + Sync + std::fmt::Debug + 'static {
    /// The router now waits for receipts of these part ids from carrier `carrier` (after a
    /// submit's answer, and again for what a restart resumes from its journal).
    fn waiting(&self, carrier: &str, ids: &[&str]);
    /// A final receipt from `carrier` the router does not wait for (it holds it a few seconds
    /// in case its submit's answer is still on the way). Answer `ack` once the receipt is
    /// passed on, or known to be nobody else's; dropped unanswered, the carrier offers the
    /// receipt again (to this node or another), so a node that dies first loses nothing.
    fn unmatched(&self, carrier: &str, receipt: &Receipt, ack: ReceiptAck);
}

/// A connection to one carrier (all its binds). Implementations must be cheap to call from
/// many tasks at once; pacing and windows are the engine's job, not theirs.
pub trait Carrier: Send + Sync + 'static {
    /// The carrier's id, as in the configuration.
    fn id(&self) -> &str;

    /// Submits every part of the message; resolves when the carrier answered all of them or
    /// the attempt failed.
    fn submit(
        &self,
        request: SubmitRequest,
    ) -> impl Future<Output = Result<Accepted, SubmitError>> + Send;

    /// Starts handing receipts to `sink`; called once, before the first submit.
    fn attach_receipts(&self, sink: ReceiptSink);

    /// Starts handing inbound (mobile-originated) messages to `sink`; called once. Carriers
    /// that receive none need not implement it.
    fn attach_inbound(&self, sink: InboundSink) {
        let _ = sink;
    }

    /// Whether the connection can take submits now; read on the router's housekeeping tick
    /// (every 100 ms), never per message. Carriers without connections are always up.
    fn link(&self) -> LinkState {
        LinkState::Up
    }

    /// Closes the connection (unbinds every session), waiting up to `grace` for the peer's
    /// answers; the router's shutdown calls it once it has drained. Carriers without
    /// connections need not implement it.
    fn close(&self, grace: Duration) -> impl Future<Output = ()> + Send {
        let _ = grace;
        std::future::ready(())
    }
}

/// A future a [`DynCarrier`] returns.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Carrier`] in a form that can be a trait object, for a router over carriers of different
/// types: `Router<Box<dyn DynCarrier>>`. Every `Carrier` is one; a submit through it costs a
/// boxed future.
pub trait DynCarrier: Send + Sync + 'static {
    /// [`Carrier::id`].
    fn id(&self) -> &str;
    /// [`Carrier::submit`], boxed.
    fn submit_boxed(&self, request: SubmitRequest) -> BoxFuture<'_, Result<Accepted, SubmitError>>;
    /// [`Carrier::attach_receipts`].
    fn attach_receipts(&self, sink: ReceiptSink);
    /// [`Carrier::attach_inbound`].
    fn attach_inbound(&self, sink: InboundSink);
    /// [`Carrier::link`].
    fn link(&self) -> LinkState;
    /// [`Carrier::close`], boxed.
    fn close_boxed(&self, grace: Duration) -> BoxFuture<'_, ()>;
}

impl<C: Carrier> DynCarrier for C {
    fn id(&self) -> &str {
        Carrier::id(self)
    }
    fn submit_boxed(&self, request: SubmitRequest) -> BoxFuture<'_, Result<Accepted, SubmitError>> {
        Box::pin(Carrier::submit(self, request))
    }
    fn attach_receipts(&self, sink: ReceiptSink) {
        Carrier::attach_receipts(self, sink)
    }
    fn attach_inbound(&self, sink: InboundSink) {
        Carrier::attach_inbound(self, sink)
    }
    fn link(&self) -> LinkState {
        Carrier::link(self)
    }
    fn close_boxed(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(Carrier::close(self, grace))
    }
}

/// A shared connection: one carrier outliving the router that used it (a router started
/// again after a crash takes the same simulated carrier).
impl<C: Carrier> Carrier for Arc<C> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn submit(
        &self,
        request: SubmitRequest,
    ) -> impl Future<Output = Result<Accepted, SubmitError>> + Send {
        (**self).submit(request)
    }
    fn attach_receipts(&self, sink: ReceiptSink) {
        (**self).attach_receipts(sink)
    }
    fn attach_inbound(&self, sink: InboundSink) {
        (**self).attach_inbound(sink)
    }
    fn link(&self) -> LinkState {
        (**self).link()
    }
    fn close(&self, grace: Duration) -> impl Future<Output = ()> + Send {
        (**self).close(grace)
    }
}

impl Carrier for Box<dyn DynCarrier> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn submit(
        &self,
        request: SubmitRequest,
    ) -> impl Future<Output = Result<Accepted, SubmitError>> + Send {
        (**self).submit_boxed(request)
    }
    fn attach_receipts(&self, sink: ReceiptSink) {
        (**self).attach_receipts(sink)
    }
    fn attach_inbound(&self, sink: InboundSink) {
        (**self).attach_inbound(sink)
    }
    fn link(&self) -> LinkState {
        (**self).link()
    }
    fn close(&self, grace: Duration) -> impl Future<Output = ()> + Send {
        (**self).close_boxed(grace)
    }
}
