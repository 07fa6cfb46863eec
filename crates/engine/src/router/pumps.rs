//! The tasks between a carrier and the dispatcher: a receipt pump and an inbound pump that tag
//! what a carrier sends with the carrier (the dispatcher correlates receipts as it takes them,
//! so a message that moved in or out of memory meanwhile is found where it is).

use smsroute_carrier::{Carrier, Inbound, Receipt, ReceiptAck};
use smsroute_types::CarrierSlot;
use tokio::sync::mpsc;

use super::{RECEIPT_QUEUE, Router};
use crate::registry::SlotEntry;

impl<C: Carrier> Router<C> {
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
