//! A scripted carrier for tests: answers from a queue of results (accepting once the queue is
//! empty), records every submit, and sends receipts when told to.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::{Accepted, Carrier, Receipt, ReceiptAck, ReceiptSink, SubmitError, SubmitRequest};

/// A carrier whose answers a test scripts.
#[derive(Debug)]
pub struct MockCarrier {
    id: String,
    script: Mutex<VecDeque<Result<(), SubmitError>>>,
    submitted: Mutex<Vec<SubmitRequest>>,
    sink: Mutex<Option<ReceiptSink>>,
}

impl MockCarrier {
    /// A carrier that accepts everything until scripted otherwise.
    pub fn new(id: &str) -> Self {
        MockCarrier {
            id: id.to_string(),
            script: Mutex::new(VecDeque::new()),
            submitted: Mutex::new(Vec::new()),
            sink: Mutex::new(None),
        }
    }

    /// Queues the answer to a future submit (`Ok` accepts).
    pub fn push_result(&self, result: Result<(), SubmitError>) {
        self.script.lock().push_back(result);
    }

    /// Every submit so far.
    pub fn submitted(&self) -> Vec<SubmitRequest> {
        self.submitted.lock().clone()
    }

    /// The carrier message id the mock gives part `part` of `attempt` of message `id`.
    pub fn message_id(message: u64, attempt: u32, part: u32) -> Box<str> {
        format!("{message}-{attempt}-{part}").into()
    }

    /// Sends a receipt as the carrier would (wanting no answer).
    ///
    /// # Panics
    /// If no sink is attached or the engine dropped it.
    pub async fn send_receipt(&self, receipt: Receipt) {
        self.send_receipt_answered(receipt, ReceiptAck::none())
            .await;
    }

    /// Sends a receipt with the token the engine answers it with.
    ///
    /// # Panics
    /// If no sink is attached or the engine dropped it.
    pub async fn send_receipt_answered(&self, receipt: Receipt, ack: ReceiptAck) {
        let sink = self.sink.lock().clone().expect("attach_receipts first");
        sink.send((receipt, ack)).await.expect("receipt sink open");
    }
}

impl Carrier for MockCarrier {
    fn id(&self) -> &str {
        &self.id
    }

    async fn submit(&self, request: SubmitRequest) -> Result<Accepted, SubmitError> {
        let answer = self.script.lock().pop_front().unwrap_or(Ok(()));
        let (id, attempt, parts) = (
            request.message.id().0,
            request.attempt,
            request.message.segments(),
        );
        self.submitted.lock().push(request);
        answer.map(|()| Accepted {
            message_ids: (0..parts)
                .map(|p| MockCarrier::message_id(id, attempt, p))
                .collect(),
        })
    }

    fn attach_receipts(&self, sink: ReceiptSink) {
        *self.sink.lock() = Some(sink);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use smsroute_delivery::ReceiptStatus;
    use smsroute_types::{Message, MessageId};

    use super::*;

    #[tokio::test]
    async fn scripted_answers_ids_and_receipts() {
        let carrier = MockCarrier::new("m");
        carrier.push_result(Err(SubmitError::Timeout));
        let message = Message::builder("447700900123", "ACME", &"x".repeat(200))
            .id(MessageId(9))
            .build()
            .unwrap();
        let request = SubmitRequest {
            message: Arc::new(message),
            attempt: 2,
            receipt: true,
        };
        assert_eq!(
            carrier.submit(request.clone()).await,
            Err(SubmitError::Timeout)
        );
        let accepted = carrier.submit(request).await.unwrap();
        assert_eq!(
            accepted.message_ids.as_slice(),
            &[Box::from("9-2-0"), Box::from("9-2-1")]
        );

        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        carrier.attach_receipts(tx);
        let receipt = Receipt {
            message_id: "9-2-0".into(),
            status: ReceiptStatus::Delivered,
            error: 0,
            possible_duplicate: false,
        };
        carrier.send_receipt(receipt.clone()).await;
        assert_eq!(rx.recv().await.map(|(r, _)| r), Some(receipt.clone()));
        assert_eq!(carrier.id(), "m");

        // The answer reaches the carrier: taken, or "not taken" when dropped unanswered.
        let answers = Arc::new(parking_lot::Mutex::new(Vec::new()));
        for _ in 0..2 {
            let answers = answers.clone();
            let ack = ReceiptAck::new(move |taken| answers.lock().push(taken));
            carrier.send_receipt_answered(receipt.clone(), ack).await;
        }
        rx.recv().await.unwrap().1.taken();
        drop(rx.recv().await.unwrap());
        assert_eq!(*answers.lock(), [true, false]);
    }

    #[test]
    fn errors_map_to_the_state_machine_inputs() {
        use smsroute_delivery::SubmitResult;
        assert_eq!(
            SubmitError::Timeout.as_submit_result(),
            SubmitResult::TimedOut
        );
        assert_eq!(
            SubmitError::Unavailable("no bind").as_submit_result(),
            SubmitResult::NotSent
        );
        assert_eq!(
            SubmitError::Rejected { status: 0x58 }.as_submit_result(),
            SubmitResult::Rejected { status: 0x58 }
        );
    }
}
