//! query_sm and cancel_sm through the SMPP server front: a client sees and cancels only its
//! own messages.

mod smpp_common;

use smpp_common::*;
use smsroute_smpp::pdu::{Address, BindKind, Body, Frame, status};

#[tokio::test]
async fn a_scheduled_message_is_queried_and_cancelled_by_its_client_only() {
    let (addr, _hub, _stop, _dir) = hub("cancel").await;
    let mut shop = Client::connect(&addr).await;
    assert_eq!(
        shop.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let mut later = sm("447700900123", "SHOP", 0, b"in an hour".to_vec());
    later.schedule_delivery_time = "000000010000000R".into();
    let seq = shop.submit(later);
    let [(code, id)] = shop.answers(&[seq]).await.try_into().unwrap();
    assert_eq!(code, status::OK);
    let query = |id: &str| Body::QuerySm {
        message_id: id.into(),
        source: Address {
            ton: 5,
            npi: 0,
            addr: "SHOP".into(),
        },
    };
    let cancel = |id: &str| Body::CancelSm {
        message_id: id.into(),
        source: Address {
            ton: 5,
            npi: 0,
            addr: "SHOP".into(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: "447700900123".into(),
        },
    };
    /// The status, message_state and final_date of a query_sm_resp.
    fn state(frame: &Frame) -> (u32, u8, String) {
        match &frame.body {
            Body::QuerySmResp {
                message_state,
                final_date,
                ..
            } => (frame.status, *message_state, final_date.clone()),
            other => panic!("{other:?}"),
        }
    }
    let (code, message_state, final_date) = state(&shop.ask(query(&id)).await);
    assert_eq!(code, status::OK);
    assert_eq!(
        (message_state, final_date.as_str()),
        (1, ""),
        "ENROUTE, no final date"
    );
    // The bank may neither see nor cancel the shop's message.
    let mut bank = Client::connect(&addr).await;
    assert_eq!(
        bank.bind(BindKind::Transceiver, "bank", "vault").await,
        status::OK
    );
    assert_eq!(bank.ask(query(&id)).await.status, status::QUERY_FAILED);
    assert_eq!(bank.ask(cancel(&id)).await.status, status::CANCEL_FAILED);
    // The shop cancels it; it asked for a receipt: DELETED.
    assert_eq!(shop.ask(cancel(&id)).await.status, status::OK);
    let [receipt] = shop.deliveries(1).await.try_into().unwrap();
    assert_eq!(receipt.message_state, Some(4));
    assert!(String::from_utf8_lossy(&receipt.short_message).contains("stat:DELETED"));
    let (_, message_state, final_date) = state(&shop.ask(query(&id)).await);
    assert_eq!(message_state, 4, "DELETED");
    assert_eq!(final_date.len(), 16);
    assert_eq!(
        shop.ask(cancel(&id)).await.status,
        status::CANCEL_FAILED,
        "finished"
    );
    assert_eq!(
        shop.ask(query("nonsense")).await.status,
        status::QUERY_FAILED
    );
}
