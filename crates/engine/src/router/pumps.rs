//! The tasks between a carrier and the dispatcher: a receipt pump and an inbound pump that tag
//! what a carrier sends with the carrier (the dispatcher correlates receipts as it takes them,
//! so a message that moved in or out of memory meanwhile is found where it is).

use smsroute_carrier::{Carrier, Inbound, Receipt, ReceiptAck};
use smsroute_types::CarrierSlot;
use tokio::sync::mpsc;

use super::{RECEIPT_QUEUE, Router};
use crate::registry::SlotEntry;

impl<C: Carrier> Router<C> {
    /// A receipt for carrier `carrier` that came on another node's bind of the account and
    /// was passed here (`smsroute-cluster`): matched as if this router's own connection had
    /// taken it, `ack` answered as a carrier's would be (taken once what the receipt did is
    /// safe: with a journal, durable). `false` when it cannot take it now: its receipt queue is
    /// full, or it stopped (shutting down, or its journal failed); the caller keeps the receipt
    /// for later. A receipt for a carrier this router does not have is dropped, answered
    /// taken (no router here can use it).
    pub fn receipt_from_peer(&self, carrier: &str, receipt: Receipt, ack: ReceiptAck) -> bool {
        if self
            .shared
            .stopped
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return false;
        }
        let snapshot = self.shared.snapshot.load();
        let Some(index) = snapshot.slots.iter().position(|s| &*s.id == carrier) else {
            tracing::warn!(carrier, id = %receipt.message_id,
                "receipt passed from another node for a carrier this node does not have: dropped");
            ack.taken();
            return true;
        };
        // Refused, `ack` is dropped here, before this returns: answered not taken.
        self.handle
            .matched_tx
            .try_send((CarrierSlot(index as u16), receipt, ack))
            .is_ok()
    }

    /// Gives a carrier its receipt sink and starts the pump that hands its receipts on.
    pub(super) fn attach_receipts(&self, index: CarrierSlot, slot: &SlotEntry<C>) {
        let (tx, mut rx) = mpsc::channel::<(Receipt, ReceiptAck)>(RECEIPT_QUEUE);
        slot.carrier.attach_receipts(tx);
        let matched = self.handle.matched_tx.clone();
        let pump = tokio::spawn(async move {
            while let Some((receipt, ack)) = rx.recv().await {
                if matched.send((index, receipt, ack)).await.is_err() {
                    return;
                }
            }
        });
        self.handle.pumps.lock().push(pump.abort_handle());
        let (tx, mut rx) = mpsc::channel::<Inbound>(RECEIPT_QUEUE);
        slot.carrier.attach_inbound(tx);
        let forward = self.handle.inbound_tx.clone();
        let pump = tokio::spawn(async move {
            while let Some(inbound) = rx.recv().await {
                if forward.send((index, inbound)).await.is_err() {
                    return;
                }
            }
        });
        self.handle.pumps.lock().push(pump.abort_handle());
    }
}
