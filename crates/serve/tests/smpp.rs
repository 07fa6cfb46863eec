//! The SMPP server front over real TCP: a hub with a journal and a simulated carrier, spoken to
//! by a test client driving the session machine in the ESME role.

use std::path::PathBuf;
use std::time::Duration;

use smsroute_carrier::Inbound;
use smsroute_config::Config;
use smsroute_engine::{EngineOptions, Router};
use smsroute_journal::JournalOptions;
use smsroute_serve::{Hub, SmppLimits, vendor};
use smsroute_sim::{Behaviour, SimCarrier};
use smsroute_smpp::pdu::{Address, Bind, BindKind, Body, Frame, ShortMessage, status};
use smsroute_smpp::session::{CloseReason, Role, Session, SessionConfig, SessionEvent};
use smsroute_smpp::sm::{parse_receipt, text_of};
use smsroute_types::CarrierSlot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

const CONFIG: &str = r#"
[[carriers]]
id = "alpha"
tps = 1000

[[routes]]
prefix = "44"
carrier = "alpha"
cost = 0.004

[[block]]
prefix = "4477001"

[[clients]]
id = "shop"
senders = ["SHOP", "+447700900000"]
window = 20
max_binds = 2
replies = ["447700900000"]
system_id = "shop"
password = "secret"

[[clients]]
id = "bank"
replies = ["88888"]
system_id = "bank"
password = "vault"
"#;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hub serving SMPP on a free port, with receipts from the carrier; its address.
async fn hub(name: &str) -> (String, Hub<SimCarrier>, watch::Sender<bool>, Dir) {
    let dir = Dir(
        std::env::temp_dir().join(format!("smsroute-serve-smpp-{name}-{}", std::process::id()))
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    let (addr, hub, stop) = hub_in(&dir).await;
    (addr, hub, stop, dir)
}

/// A hub whose journal is `dir` (what an earlier hub left there is recovered).
async fn hub_in(dir: &Dir) -> (String, Hub<SimCarrier>, watch::Sender<bool>) {
    hub_with(EngineOptions::default().journal(JournalOptions::new(&dir.0))).await
}

/// A hub with these engine options.
async fn hub_with(options: EngineOptions) -> (String, Hub<SimCarrier>, watch::Sender<bool>) {
    hub_made(options, |make| make()).await
}

/// A hub with these engine options, made inside `within` (a metrics recorder's scope).
async fn hub_made(
    options: EngineOptions,
    within: impl FnOnce(&mut dyn FnMut() -> Hub<SimCarrier>) -> Hub<SimCarrier>,
) -> (String, Hub<SimCarrier>, watch::Sender<bool>) {
    let config = Config::parse(CONFIG, "hub.toml").unwrap();
    let mut options = Some(options);
    let hub = within(&mut || {
        let (router, events) = Router::start(&config, options.take().unwrap(), |c| {
            SimCarrier::new(&c.id, Behaviour::default(), 1)
        })
        .unwrap();
        Hub::new(router, events, &config.clients)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop_tx, stop) = watch::channel(false);
    let front = hub.clone();
    tokio::spawn(async move {
        front
            .serve_smpp(listener, SmppLimits::default(), None, stop)
            .await
    });
    (addr, hub, stop_tx)
}

/// A client: the session machine over a TCP stream.
struct Client {
    stream: TcpStream,
    session: Session,
    /// Whether deliver_sm are answered (else left unanswered).
    answer_deliveries: bool,
}

impl Client {
    async fn connect(addr: &str) -> Self {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            session: Session::new(SessionConfig::new(Role::Esme), Instant::now().into_std()),
            answer_deliveries: true,
        }
    }

    async fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            let bytes = bytes.to_vec();
            self.stream.write_all(&bytes).await.unwrap();
            self.session.advance_transmit(bytes.len());
        }
    }

    /// The next event, within 10 s.
    async fn next(&mut self) -> SessionEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.flush().await;
            if let Some(event) = self.session.poll_event() {
                if self.answer_deliveries
                    && let SessionEvent::Request(Frame { sequence, .. }) = &event
                {
                    let _ = self
                        .session
                        .respond(*sequence, status::OK, Body::DeliverSmResp);
                    self.flush().await;
                }
                return event;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .expect("an event within 10 s")
                .unwrap();
            if n == 0 {
                self.session.handle_eof(None);
            } else {
                self.session
                    .handle_input(&buf[..n], Instant::now().into_std());
            }
        }
    }

    /// Binds; the bind_resp's status.
    async fn bind(&mut self, kind: BindKind, system_id: &str, password: &str) -> u32 {
        let bind = Bind {
            kind,
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            interface_version: 0x34,
        };
        self.session.bind(bind, Instant::now().into_std()).unwrap();
        loop {
            match self.next().await {
                SessionEvent::Bound { .. } => return status::OK,
                SessionEvent::Response(frame) => return frame.status,
                SessionEvent::Closed(CloseReason::BindRefused(code)) => return code,
                SessionEvent::Closed(reason) => panic!("closed while binding: {reason}"),
                _ => {}
            }
        }
    }

    fn submit(&mut self, sm: ShortMessage) -> u32 {
        self.session.request(Body::SubmitSm(sm)).unwrap()
    }

    /// The submit_sm_resp for each of `sequences`: (status, message_id), in that order.
    async fn answers(&mut self, sequences: &[u32]) -> Vec<(u32, String)> {
        let mut got = std::collections::HashMap::new();
        while got.len() < sequences.len() {
            if let SessionEvent::Response(Frame {
                sequence,
                status,
                body: Body::SubmitSmResp { message_id },
            }) = self.next().await
            {
                got.insert(sequence, (status, message_id));
            }
        }
        sequences.iter().map(|s| got.remove(s).unwrap()).collect()
    }

    /// The next `n` deliver_sm.
    async fn deliveries(&mut self, n: usize) -> Vec<ShortMessage> {
        let mut got = Vec::new();
        while got.len() < n {
            if let SessionEvent::Request(Frame {
                body: Body::DeliverSm(sm),
                ..
            }) = self.next().await
            {
                got.push(sm);
            }
        }
        got
    }
}

fn sm(to: &str, from: &str, data_coding: u8, user_data: Vec<u8>) -> ShortMessage {
    ShortMessage {
        source: Address {
            ton: if from.chars().all(|c| c.is_ascii_digit()) {
                1
            } else {
                5
            },
            npi: 1,
            addr: from.into(),
        },
        destination: Address {
            ton: 1,
            npi: 1,
            addr: to.into(),
        },
        registered_delivery: 1,
        data_coding,
        short_message: user_data,
        ..ShortMessage::default()
    }
}

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

#[tokio::test]
async fn an_unanswered_receipt_goes_to_the_next_bind() {
    let (addr, hub, _stop, _dir) = hub("reoffer").await;
    let mut first = Client::connect(&addr).await;
    first.answer_deliveries = false;
    assert_eq!(
        first.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let seq = first.submit(sm("447700900123", "SHOP", 0, b"hi".to_vec()));
    let [(_, id)] = first.answers(&[seq]).await.try_into().unwrap();
    let [got] = first.deliveries(1).await.try_into().unwrap();
    assert_eq!(got.receipted_message_id.as_deref(), Some(id.as_str()));
    drop(first);
    let mut second = Client::connect(&addr).await;
    assert_eq!(
        second.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    let [again] = second.deliveries(1).await.try_into().unwrap();
    assert_eq!(again.receipted_message_id.as_deref(), Some(id.as_str()));
    assert_eq!(hub.router().stats().outstanding, 0);
}

#[tokio::test]
async fn a_receipt_the_client_never_answered_survives_a_crash() {
    let (addr, hub, stop, dir) = hub("crash").await;
    let mut client = Client::connect(&addr).await;
    client.answer_deliveries = false;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let seq = client.submit(sm("447700900123", "SHOP", 0, b"hi".to_vec()));
    let [(_, id)] = client.answers(&[seq]).await.try_into().unwrap();
    let [got] = client.deliveries(1).await.try_into().unwrap();
    assert_eq!(got.receipted_message_id.as_deref(), Some(id.as_str()));
    // The process dies with the receipt unanswered, long after anything it acknowledged
    // would have been durable.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    hub.router().abandon().await;
    drop((client, hub));
    let (addr, hub, stop) = hub_in(&dir).await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    let [again] = client.deliveries(1).await.try_into().unwrap();
    assert_eq!(again.receipted_message_id.as_deref(), Some(id.as_str()));
    // Answered now: the next restart does not send it again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).unwrap();
    hub.router().shutdown(Duration::from_secs(1)).await;
    drop((client, hub));
    let (addr, _hub, _stop) = hub_in(&dir).await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Receiver, "shop", "secret").await,
        status::OK
    );
    let more = tokio::time::timeout(Duration::from_millis(500), client.next()).await;
    assert!(more.is_err(), "nothing more for the client: {more:?}");
}

#[tokio::test]
async fn stopping_answers_every_submit_and_unbinds() {
    let (addr, _hub, stop, _dir) = hub("stop").await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transmitter, "shop", "secret").await,
        status::OK
    );
    let mut waiting: std::collections::HashSet<u32> = (0..15)
        .map(|i| client.submit(sm("447700900123", "SHOP", 0, format!("m{i}").into_bytes())))
        .collect();
    // Once one is answered the hub has read them all (one write); then it stops.
    let mut stopped = false;
    let reason = loop {
        match client.next().await {
            SessionEvent::Response(Frame {
                sequence, status, ..
            }) => {
                assert_eq!(status, status::OK);
                assert!(waiting.remove(&sequence));
                if !stopped {
                    stop.send(true).unwrap();
                    stopped = true;
                }
            }
            SessionEvent::Closed(reason) => break reason,
            _ => {}
        }
    };
    assert!(waiting.is_empty(), "unanswered: {waiting:?}");
    assert_eq!(reason, CloseReason::UnboundByPeer);
}

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
    let ask = async |client: &mut Client, body: Body| {
        let seq = client.session.request(body).unwrap();
        loop {
            if let SessionEvent::Response(frame) = client.next().await
                && frame.sequence == seq
            {
                return frame;
            }
        }
    };
    let answer = ask(&mut shop, query(&id)).await;
    assert_eq!(answer.status, status::OK);
    let Body::QuerySmResp {
        message_state,
        final_date,
        ..
    } = &answer.body
    else {
        panic!("{answer:?}")
    };
    assert_eq!(
        (*message_state, final_date.as_str()),
        (1, ""),
        "ENROUTE, no final date"
    );
    // The bank may neither see nor cancel the shop's message.
    let mut bank = Client::connect(&addr).await;
    assert_eq!(
        bank.bind(BindKind::Transceiver, "bank", "vault").await,
        status::OK
    );
    assert_eq!(
        ask(&mut bank, query(&id)).await.status,
        status::QUERY_FAILED
    );
    assert_eq!(
        ask(&mut bank, cancel(&id)).await.status,
        status::CANCEL_FAILED
    );
    // The shop cancels it; it asked for a receipt: DELETED.
    assert_eq!(ask(&mut shop, cancel(&id)).await.status, status::OK);
    let [receipt] = shop.deliveries(1).await.try_into().unwrap();
    assert_eq!(receipt.message_state, Some(4));
    assert!(String::from_utf8_lossy(&receipt.short_message).contains("stat:DELETED"));
    let answer = ask(&mut shop, query(&id)).await;
    let Body::QuerySmResp {
        message_state,
        final_date,
        ..
    } = &answer.body
    else {
        panic!("{answer:?}")
    };
    assert_eq!(*message_state, 4, "DELETED");
    assert_eq!(final_date.len(), 16);
    assert_eq!(
        ask(&mut shop, cancel(&id)).await.status,
        status::CANCEL_FAILED,
        "finished"
    );
    assert_eq!(
        ask(&mut shop, query("nonsense")).await.status,
        status::QUERY_FAILED
    );
}

/// Regression: a receipt could reach the client before the submit_sm_resp that told it the
/// id (Kannel then drops the receipt as unknown).
#[tokio::test]
async fn no_receipt_comes_before_the_answer_naming_its_id() {
    // No journal, no receipts from the carrier: a message is accepted and sent in the same
    // dispatcher turn, so its acceptance and its terminal event reach the hub together.
    let options = EngineOptions::default().request_receipts(false);
    let (addr, _hub, _stop) = hub_with(options).await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let mut answered = std::collections::HashSet::new();
    let mut receipts = 0;
    for round in 0..10 {
        for i in 0..15 {
            client.submit(sm(
                "447700900123",
                "SHOP",
                0,
                format!("{round}-{i}").into_bytes(),
            ));
        }
        while receipts < 15 * (round + 1) {
            match client.next().await {
                SessionEvent::Response(Frame {
                    body: Body::SubmitSmResp { message_id },
                    status: code,
                    ..
                }) => {
                    assert_eq!(code, status::OK);
                    answered.insert(message_id);
                }
                SessionEvent::Request(Frame {
                    body: Body::DeliverSm(receipt),
                    ..
                }) => {
                    let id = receipt.receipted_message_id.unwrap();
                    assert!(
                        answered.contains(&id),
                        "a receipt for {id} before its answer"
                    );
                    receipts += 1;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn the_fronts_count_submits_sessions_and_receipts() {
    let recorder = smsroute_metrics::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let (addr, _hub, _stop) = hub_made(EngineOptions::default(), |make| {
        metrics::with_local_recorder(&recorder, make)
    })
    .await;
    let mut client = Client::connect(&addr).await;
    assert_eq!(
        client.bind(BindKind::Transceiver, "shop", "secret").await,
        status::OK
    );
    let good = client.submit(sm("447700900123", "SHOP", 0, b"hi".to_vec()));
    let bad = client.submit(sm("44", "SHOP", 0, b"hi".to_vec()));
    let _ = client.answers(&[good, bad]).await;
    let _ = client.deliveries(1).await;
    let mut text = String::new();
    let series = |text: &str, parts: &[&str]| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    for _ in 0..100 {
        text = handle.render();
        if series(
            &text,
            &["smsroute_front_deliveries_total", "receipt", "answered"],
        ) == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let submits = |answer| series(&text, &["smsroute_front_submits_total", "\"smpp\"", answer]);
    assert_eq!(submits("\"accepted\""), Some(1.0), "{text}");
    assert_eq!(submits("\"refused\""), Some(1.0), "{text}");
    assert_eq!(
        series(&text, &["smsroute_front_smpp_sessions"]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            &["smsroute_front_deliveries_total", "receipt", "answered"]
        ),
        Some(1.0),
        "{text}"
    );
}
