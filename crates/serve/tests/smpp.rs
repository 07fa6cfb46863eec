//! The SMPP server front over real TCP: binds, submits, multipart, refusals, client
//! isolation (receipts in `smpp_receipts.rs`, lookups in `smpp_lookup.rs`).

mod smpp_common;

use std::time::Duration;

use smpp_common::*;
use smsroute_carrier::Inbound;
use smsroute_serve::vendor;
use smsroute_smpp::pdu::{BindKind, status};
use smsroute_smpp::session::SessionEvent;
use smsroute_smpp::sm::{parse_receipt, text_of};
use smsroute_types::CarrierSlot;

#[tokio::test]
async fn a_submit_is_answered_with_our_id_and_its_receipt_comes_back() {
    let (addr, hub, _stop, _dir) = hub("single").await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let seq = client.submit(sm("447700900123", "SHOP", 0, b"hello".to_vec()));
    let [(code, id)] = client.answers(&[seq]).await.try_into().unwrap();
    assert_eq!(code, status::OK);
    let id: u64 = id.parse().expect("a single part's id is the message id");
    let [receipt] = client.deliveries(1).await.try_into().unwrap();
    assert_eq!(receipt.esm_class, 0x04);
    assert_eq!(receipt.source.addr, "447700900123");
    assert_eq!(receipt.destination.addr, "SHOP");
    let parsed = parse_receipt(&receipt).unwrap();
    assert_eq!(parsed.id, id.to_string());
    assert_eq!(receipt.message_state, Some(2), "DELIVRD");
    let carrier = hub.router().carrier(CarrierSlot(0)).unwrap();
    assert_eq!(
        carrier
            .stats()
            .submits
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn multipart_is_reassembled_into_one_message_with_a_receipt_per_part() {
    let (addr, hub, _stop, _dir) = hub("multipart").await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    // UCS-2, three parts with a 16-bit reference UDH, sent out of order; the third part
    // asks for no receipt.
    let text = "Привет, это длинное сообщение. ".repeat(5);
    let units: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let chunks: Vec<&[u8]> = units.chunks(128).collect();
    assert_eq!(chunks.len(), 3);
    let mut seqs = Vec::new();
    for (i, chunk) in chunks.iter().enumerate().rev() {
        let mut data = vec![0x06, 0x08, 0x04, 0x12, 0x34, 3, i as u8 + 1];
        data.extend_from_slice(chunk);
        let mut part = sm("447700900123", "SHOP", 8, data);
        part.esm_class = 0x40;
        part.registered_delivery = u8::from(i != 2);
        seqs.push(client.submit(part));
    }
    seqs.reverse();
    let answers = client.answers(&seqs).await;
    let id = answers[0].1.split('-').next().unwrap().to_string();
    for (k, (code, part_id)) in answers.iter().enumerate() {
        assert_eq!(*code, status::OK);
        assert_eq!(*part_id, format!("{id}-{}", k + 1));
    }
    let receipts = client.deliveries(2).await;
    let mut ids: Vec<String> = receipts
        .iter()
        .map(|r| r.receipted_message_id.clone().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [format!("{id}-1"), format!("{id}-2")]);
    let carrier = hub.router().carrier(CarrierSlot(0)).unwrap();
    let stats = carrier.stats();
    assert_eq!(
        stats.submits.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one message"
    );
    assert_eq!(stats.segments.load(std::sync::atomic::Ordering::Relaxed), 3);
    // The SAR TLVs make one message too.
    let mut seqs = Vec::new();
    for part in 1..=2u8 {
        let mut p = sm("447700900124", "SHOP", 0, vec![b'a' + part; 150]);
        p.sar = Some(smsroute_smpp::sm::Concat {
            reference: 77,
            total: 2,
            part,
        });
        seqs.push(client.submit(p));
    }
    let answers = client.answers(&seqs).await;
    assert!(answers.iter().all(|(code, _)| *code == status::OK));
    let _ = client.deliveries(2).await;
    assert_eq!(stats.submits.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test]
async fn refusals_map_to_smpp_statuses() {
    let (addr, _hub, _stop, _dir) = hub("refusals").await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transmitter, "shop", "secret").await,
        status::OK
    );
    let cases = [
        (
            sm("44", "SHOP", 0, b"x".to_vec()),
            status::INVALID_DESTINATION_ADDRESS,
        ),
        (
            sm("447700900123", "OTHER", 0, b"x".to_vec()),
            status::INVALID_SOURCE_ADDRESS,
        ),
        (
            sm("15551234567", "SHOP", 0, b"x".to_vec()),
            status::SUBMIT_FAILED,
        ),
        (
            sm("447700100123", "SHOP", 0, b"x".to_vec()),
            status::SUBMIT_FAILED,
        ),
    ];
    for (message, expected) in cases {
        let to = message.destination.addr.clone();
        let seq = client.submit(message);
        let [(code, id)] = client.answers(&[seq]).await.try_into().unwrap();
        assert_eq!(code, expected, "to {to}");
        assert!(id.is_empty());
    }
    // A STOP from the recipient: the vendor status for opted out.
    let carrier = _hub.router().carrier(CarrierSlot(0)).unwrap();
    assert!(
        carrier
            .inject(Inbound {
                from: "447700900555".into(),
                to: "447700900000".into(),
                text: "STOP".into(),
            })
            .await
    );
    let mut refused = 0;
    for _ in 0..100 {
        let seq = client.submit(sm("447700900555", "+447700900000", 0, b"x".to_vec()));
        let [(code, _)] = client.answers(&[seq]).await.try_into().unwrap();
        if code == vendor::OPTED_OUT {
            refused += 1;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused, 1, "the STOP took effect");
}

#[tokio::test]
async fn binds_check_credentials_and_the_bind_limit() {
    let (addr, _hub, _stop, _dir) = hub("binds").await;
    let mut wrong = Client::connect(&addr).await;
    assert_eq!(
        wrong.bind(BindKind::Transceiver, "shop", "nope").await,
        status::INVALID_PASSWORD
    );
    let mut unknown = Client::connect(&addr).await;
    assert_eq!(
        unknown.bind(BindKind::Transceiver, "nobody", "x").await,
        status::INVALID_SYSTEM_ID
    );
    let mut first = Client::connect(&addr).await;
    let mut second = Client::connect(&addr).await;
    let mut third = Client::connect(&addr).await;
    assert_eq!(
        first.bind(BindKind::Transmitter, "shop", "secret").await,
        status::OK
    );
    assert_eq!(
        second.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    assert_eq!(
        third.bind(BindKind::Receiver, "shop", "secret").await,
        status::ALREADY_BOUND,
        "max_binds = 2"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = Client::connect(&addr).await;
    assert_eq!(
        fourth.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK,
        "a bind that ended gave its place back"
    );
}

#[tokio::test]
async fn receipts_and_replies_reach_only_their_client_and_wait_for_a_receiver() {
    let (addr, hub, _stop, _dir) = hub("isolation").await;
    let mut shop_tx = Client::connect(&addr).await;
    assert_eq!(
        shop_tx.bind(BindKind::Transmitter, "shop", "secret").await,
        status::OK
    );
    let mut bank = Client::connect(&addr).await;
    assert_eq!(
        bank.bind(BindKind::Receiver, "bank", "vault").await,
        status::OK
    );
    let seq = shop_tx.submit(sm("447700900123", "SHOP", 0, b"hi".to_vec()));
    let [(code, id)] = shop_tx.answers(&[seq]).await.try_into().unwrap();
    assert_eq!(code, status::OK);
    // A reply to the bank's short code goes to the bank alone.
    let carrier = hub.router().carrier(CarrierSlot(0)).unwrap();
    carrier
        .inject(Inbound {
            from: "447700900321".into(),
            to: "88888".into(),
            text: "balance?".into(),
        })
        .await;
    let [reply] = bank.deliveries(1).await.try_into().unwrap();
    assert_eq!(text_of(&reply).1, "balance?");
    assert_eq!(reply.source.addr, "447700900321");
    assert_eq!(reply.esm_class, 0);
    // The shop's receipt waited for a receiver of the shop's own.
    let mut shop_rx = Client::connect(&addr).await;
    assert_eq!(
        shop_rx.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    let [receipt] = shop_rx.deliveries(1).await.try_into().unwrap();
    assert_eq!(receipt.receipted_message_id.as_deref(), Some(id.as_str()));
    // Nothing else came to the bank.
    let extra = tokio::time::timeout(Duration::from_millis(300), bank.next()).await;
    assert!(!matches!(extra, Ok(SessionEvent::Request(_))), "{extra:?}");
}
