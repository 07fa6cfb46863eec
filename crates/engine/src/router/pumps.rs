//! The tasks between a carrier and the dispatcher: a receipt pump that correlates each
//! receipt, and an inbound pump that tags replies with their carrier.

use smsroute_carrier::{Carrier, Inbound, Receipt};
use smsroute_types::CarrierSlot;
use tokio::sync::mpsc;

use super::{RECEIPT_QUEUE, Router};
use crate::registry::SlotEntry;

impl<C: Carrier> Router<C> {
    /// Gives a carrier its receipt sink and starts the pump that correlates its receipts.
    pub(super) fn attach_receipts(&self, index: CarrierSlot, slot: &SlotEntry<C>) {
        let (tx, mut rx) = mpsc::channel::<Receipt>(RECEIPT_QUEUE);
        slot.carrier.attach_receipts(tx);
        let (shared, matched) = (self.shared.clone(), self.handle.matched_tx.clone());
        let early_ttl = shared.options.early_receipt_ttl_ms * 1_000_000;
        let pump = tokio::spawn(async move {
            while let Some(receipt) = rx.recv().await {
                let now = shared.now();
                if let Some(m) = shared.dlr.arrive(index, receipt, now, early_ttl)
                    && matched.send(m).await.is_err()
                {
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
