//! A client's submit_sm (one part, or the parts of one message put back together) into a
//! message for the router, and the SMPP status of every refusal (`docs/serve.md` has the
//! table).

use std::time::SystemTime;

use std::sync::Arc;

use dashmap::DashSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use smsroute_carrier::Carrier;
use smsroute_engine::Rejection;
use smsroute_smpp::pdu::{Address, ShortMessage, status};
use smsroute_smpp::sm::smpp_time;
use smsroute_types::{InvalidMessage, Message, MessageId};

use super::assemble::Part;
use crate::Hub;
use crate::clients::Client;
use crate::receipts::{RECEIPT_TAG, receipt_tag};

pub use smsroute_smpp::pdu::status::vendor;

/// The answer every part of one message gets: `status`, and with `ESME_ROK` the message id.
pub struct Answer {
    /// The parts' submit_sm sequence numbers, in part order.
    pub sequences: Vec<u32>,
    pub status: u32,
    pub id: u64,
    /// Holds the message's receipts back until dropped, once the answer is written.
    pub written: Unanswered,
}

/// A message whose submit_sm_resp is not written yet: its receipts wait until this is
/// dropped (after the answer is written, or with the session).
pub struct Unanswered {
    set: Arc<DashSet<MessageId>>,
    id: MessageId,
}

impl Unanswered {
    fn new(set: &Arc<DashSet<MessageId>>, id: MessageId) -> Self {
        set.insert(id);
        Unanswered {
            set: set.clone(),
            id,
        }
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        self.set.remove(&self.id);
    }
}

/// Submits the message `parts` make (their text in order; addresses from `sm`, the last
/// part): a future resolving once it is durable (answered `ESME_ROK`) or given up on, or the
/// status it is refused with at once.
pub fn submit<C: Carrier>(
    hub: &Hub<C>,
    client: &Client,
    sm: &ShortMessage,
    parts: Vec<Part>,
) -> Result<BoxFuture<'static, Answer>, u32> {
    let text: String = parts.iter().map(|p| p.text.as_str()).collect();
    if sm.source.addr.is_empty() {
        return Err(status::INVALID_SOURCE_ADDRESS);
    }
    let mut builder = client.tag(Message::builder(
        &destination(&sm.destination),
        &sender(&sm.source),
        &text,
    ));
    let now = SystemTime::now();
    let schedule =
        smpp_time(&sm.schedule_delivery_time, now).map_err(|_| status::INVALID_SCHEDULE)?;
    if let Some(at) = schedule.filter(|at| *at > now) {
        builder = builder.not_before(at);
    }
    if let Some(until) = smpp_time(&sm.validity_period, now).map_err(|_| status::INVALID_EXPIRY)? {
        let validity = until
            .duration_since(now)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(status::INVALID_EXPIRY)?;
        builder = builder.validity(validity);
    }
    if parts.iter().any(|p| p.receipt & 0x03 != 0) {
        let tag = receipt_tag(SystemTime::now(), parts.iter().map(|p| p.receipt));
        builder = builder.tag(RECEIPT_TAG, &tag);
    }
    let message = builder.build().map_err(|e| invalid(&e))?;
    if !client.may_send_as(message.from()) {
        return Err(status::INVALID_SOURCE_ADDRESS);
    }
    if !client.admit(message.segmentation().segments, hub.router.now()) {
        return Err(status::THROTTLED);
    }
    let id = hub
        .router
        .try_submit(message)
        .map_err(|r| refused(&r.reason))?;
    let written = Unanswered::new(&hub.unanswered, id);
    let durable = hub.waiters.wait(id);
    let waiters = hub.waiters.clone();
    let client = client.id.clone();
    let sequences = parts.iter().map(|p| p.sequence).collect();
    Ok(async move {
        let status = match tokio::time::timeout(crate::DURABLE_WAIT, durable).await {
            Ok(Ok(())) => status::OK,
            _ => {
                waiters.forget(id);
                tracing::warn!(%id, %client, "a message's acceptance did not become durable \
                    in time: answered ESME_RSYSERR (it may still be accepted)");
                status::SYSTEM_ERROR
            }
        };
        Answer {
            sequences,
            status,
            id: id.0,
            written,
        }
    }
    .boxed())
}

/// A destination as the router reads it: the digits as an international number (clients
/// send TON 1; other TONs are read the same way).
fn destination(address: &Address) -> String {
    match address.addr.strip_prefix('+') {
        Some(_) => address.addr.clone(),
        None => format!("+{}", address.addr),
    }
}

/// A sender: TON 1 is an international number; others are read as written (alphanumeric,
/// short code, national number).
fn sender(address: &Address) -> String {
    if address.ton == 1 && !address.addr.starts_with('+') {
        format!("+{}", address.addr)
    } else {
        address.addr.clone()
    }
}

/// The status of a message that does not validate.
fn invalid(e: &InvalidMessage) -> u32 {
    match e {
        InvalidMessage::Destination(_) => status::INVALID_DESTINATION_ADDRESS,
        InvalidMessage::Sender(_) => status::INVALID_SOURCE_ADDRESS,
        InvalidMessage::TooManySegments { .. } => status::INVALID_MESSAGE_LENGTH,
        InvalidMessage::ZeroValidity => status::INVALID_EXPIRY,
        _ => status::SUBMIT_FAILED,
    }
}

/// The status of a message the router refused.
pub fn refused(reason: &Rejection) -> u32 {
    match reason {
        Rejection::Invalid(e) => invalid(e),
        Rejection::Blocked | Rejection::NoRoute => status::SUBMIT_FAILED,
        Rejection::OptedOut => vendor::OPTED_OUT,
        Rejection::FrequencyCap => vendor::FREQUENCY_CAP,
        Rejection::QuietHours => vendor::QUIET_HOURS,
        Rejection::InsufficientFunds => vendor::INSUFFICIENT_FUNDS,
        Rejection::OverMaxPrice => vendor::OVER_MAX_PRICE,
        Rejection::Overloaded | Rejection::ShuttingDown => status::QUEUE_FULL,
        _ => status::SYSTEM_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_international_numbers_and_sender_ids() {
        let at = |ton, addr: &str| Address {
            ton,
            npi: 1,
            addr: addr.into(),
        };
        assert_eq!(destination(&at(1, "447700900123")), "+447700900123");
        assert_eq!(destination(&at(0, "+447700900123")), "+447700900123");
        assert_eq!(sender(&at(1, "447700900123")), "+447700900123");
        assert_eq!(sender(&at(5, "ACME")), "ACME");
        assert_eq!(sender(&at(0, "12345")), "12345");
    }

    #[test]
    fn refusals_map_to_their_statuses() {
        assert_eq!(refused(&Rejection::NoRoute), status::SUBMIT_FAILED);
        assert_eq!(refused(&Rejection::Overloaded), status::QUEUE_FULL);
        assert_eq!(refused(&Rejection::OptedOut), vendor::OPTED_OUT);
        let bad = smsroute_types::Message::builder("+1", "ACME", "x")
            .build()
            .unwrap_err();
        assert_eq!(
            refused(&Rejection::Invalid(bad)),
            status::INVALID_DESTINATION_ADDRESS
        );
    }
}
