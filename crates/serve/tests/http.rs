//! The HTTP API over real TCP: a hub with a journal and a simulated carrier, spoken to with
//! plain HTTP/1.1 requests.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use smsroute_config::Config;
use smsroute_engine::{EngineOptions, Router};
use smsroute_journal::JournalOptions;
use smsroute_serve::Hub;
use smsroute_sim::{Behaviour, SimCarrier};
use smsroute_types::CarrierSlot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
api_keys = ["shop-key-0123456789"]
senders = ["SHOP", "+447700900000"]

[[clients]]
id = "bank"
api_keys = ["bank-key-0123456789"]
"#;

/// A journal directory of its own, removed afterwards.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hub on a free port; its address.
async fn hub(name: &str) -> (String, Hub<SimCarrier>, Dir) {
    let dir =
        Dir(std::env::temp_dir().join(format!("smsroute-serve-{name}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let config = Config::parse(CONFIG, "hub.toml").unwrap();
    let options = EngineOptions::default()
        .request_receipts(false)
        .journal(JournalOptions::new(&dir.0));
    let (router, events) = Router::start(&config, options, |c| {
        SimCarrier::new(&c.id, Behaviour::default(), 1)
    })
    .unwrap();
    let hub = Hub::new(router, events, &config.clients);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = hub.http(Some(std::sync::Arc::new(|| "smsroute_up 1\n".to_string())));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hub, dir)
}

/// One request; the status and the body (JSON when it is).
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: hub\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 15 s")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (status, json)
}

#[tokio::test]
async fn a_valid_message_is_answered_202_with_its_id_once_durable() {
    let (addr, hub, _dir) = hub("accept").await;
    let body = r#"{"to": "+44 7700 900123", "from": "SHOP", "text": "Your order shipped",
                   "client_ref": "order-17", "validity": 3600, "tags": {"campaign": "x"}}"#;
    let (status, json) = request(
        &addr,
        "POST",
        "/v1/messages",
        Some("shop-key-0123456789"),
        body,
    )
    .await;
    assert_eq!(status, 202, "{json}");
    let id = json["id"].as_u64().expect("an id");
    assert!(id > 0);
    // It went on to the carrier.
    let carrier = hub.router().carrier(CarrierSlot(0)).unwrap();
    for _ in 0..500 {
        if carrier.stats().submits.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(carrier.stats().submits.load(Ordering::Relaxed), 1);
    // A second one gets an id of its own.
    let (status, json) = request(
        &addr,
        "POST",
        "/v1/messages",
        Some("bank-key-0123456789"),
        body,
    )
    .await;
    assert_eq!(status, 202, "{json}");
    assert_ne!(json["id"].as_u64(), Some(id));
}

#[tokio::test]
async fn bad_requests_name_what_was_wrong() {
    let (addr, _hub, _dir) = hub("errors").await;
    let ok = r#"{"to": "447700900123", "from": "SHOP", "text": "hi"}"#;
    // (API key, body, status, field at fault, what the error says)
    type Case<'a> = (Option<&'a str>, &'a str, u16, Option<&'a str>, &'a str);
    let cases: [Case; 9] = [
        (None, ok, 401, Some("authorization"), "missing"),
        (
            Some("wrong"),
            ok,
            401,
            Some("authorization"),
            "unknown API key",
        ),
        (
            Some("shop-key-0123456789"),
            "{not json",
            400,
            None,
            "key must be a string",
        ),
        (
            Some("shop-key-0123456789"),
            r#"{"from": "SHOP", "text": "hi"}"#,
            400,
            Some("to"),
            "missing field `to`",
        ),
        (
            Some("shop-key-0123456789"),
            r#"{"to": "447700900123", "from": "SHOP", "text": "hi", "colour": "red"}"#,
            400,
            None,
            "unknown field `colour`",
        ),
        (
            Some("shop-key-0123456789"),
            r#"{"to": "12", "from": "SHOP", "text": "hi"}"#,
            400,
            Some("to"),
            "destination",
        ),
        (
            Some("shop-key-0123456789"),
            r#"{"to": "447700900123", "from": "OTHER", "text": "hi"}"#,
            403,
            Some("from"),
            "not one of this client's senders",
        ),
        (
            Some("bank-key-0123456789"),
            r#"{"to": "447700100001", "from": "BANK", "text": "hi"}"#,
            422,
            Some("to"),
            "blocked",
        ),
        (
            Some("bank-key-0123456789"),
            r#"{"to": "33612345678", "from": "BANK", "text": "hi"}"#,
            422,
            Some("to"),
            "no_route",
        ),
    ];
    for (key, body, status, field, says) in cases {
        let (got, json) = request(&addr, "POST", "/v1/messages", key, body).await;
        assert_eq!(got, status, "{body}: {json}");
        assert_eq!(json["field"].as_str(), field, "{body}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{body}: {error:?} should say {says:?}"
        );
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let (addr, _hub, _dir) = hub("health").await;
    assert_eq!(request(&addr, "GET", "/healthz", None, "").await.0, 200);
    // Simulated carriers need no connection: ready at once.
    assert_eq!(request(&addr, "GET", "/readyz", None, "").await.0, 200);
    let (status, body) = request(&addr, "GET", "/metrics", None, "").await;
    assert_eq!((status, body.as_str()), (200, Some("smsroute_up 1\n")));
}

/// A 202 means the message survives a crash: answered, then the router killed at once (its
/// carrier never answered the submit), a new router on the same journal still has it and
/// finishes it.
#[tokio::test]
async fn a_message_answered_202_survives_a_crash() {
    let dir =
        Dir(std::env::temp_dir().join(format!("smsroute-serve-crash-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let config = Config::parse(CONFIG, "hub.toml").unwrap();
    let options = || {
        EngineOptions::default()
            .request_receipts(false)
            .journal(JournalOptions::new(&dir.0))
    };
    let hangs = Behaviour {
        hang: 1.0,
        ..Behaviour::default()
    };
    let (router, events) = Router::start(&config, options(), move |c| {
        SimCarrier::new(&c.id, hangs.clone(), 1)
    })
    .unwrap();
    let hub = Hub::new(router, events, &config.clients);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(axum::serve(listener, hub.http(None)).into_future());
    let body = r#"{"to": "447700900123", "from": "SHOP", "text": "kept"}"#;
    let (status, json) = request(
        &addr,
        "POST",
        "/v1/messages",
        Some("shop-key-0123456789"),
        body,
    )
    .await;
    assert_eq!(status, 202, "{json}");
    let id = json["id"].as_u64().unwrap();
    hub.router().abandon().await;

    let (router, mut events) = Router::start(&config, options(), |c| {
        SimCarrier::new(&c.id, Behaviour::default(), 1)
    })
    .unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let e = events.recv().await.expect("events");
            if e.is_terminal() {
                return e;
            }
        }
    })
    .await
    .expect("the message resumes after the crash");
    assert_eq!(finished.id.0, id);
    router.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_client_sees_and_cancels_only_its_own_messages() {
    let (addr, _hub, _dir) = hub("lookup").await;
    let shop = Some("shop-key-0123456789");
    let bank = Some("bank-key-0123456789");
    // Scheduled for an hour from now: cancellable.
    let later = humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(3600));
    let body = format!(
        r#"{{"to": "447700900123", "from": "SHOP", "text": "later", "client_ref": "r-9",
            "send_at": "{later}"}}"#
    );
    let (status, json) = request(&addr, "POST", "/v1/messages", shop, &body).await;
    assert_eq!(status, 202, "{json}");
    let id = json["id"].as_u64().unwrap();
    let path = format!("/v1/messages/{id}");
    let (status, json) = request(&addr, "GET", &path, shop, "").await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["state"], "scheduled");
    assert_eq!(json["client_ref"], "r-9");
    // Another client: as if it did not exist, for reading and for cancelling.
    assert_eq!(request(&addr, "GET", &path, bank, "").await.0, 404);
    assert_eq!(request(&addr, "DELETE", &path, bank, "").await.0, 404);
    let (status, json) = request(&addr, "DELETE", &path, shop, "").await;
    assert_eq!(
        (status, json["state"].as_str()),
        (200, Some("cancelled")),
        "{json}"
    );
    // Finished: it reads as failed, cancelled, and cannot be cancelled again.
    let mut json = Value::Null;
    for _ in 0..200 {
        json = request(&addr, "GET", &path, shop, "").await.1;
        if json["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        (json["state"].as_str(), json["reason"].as_str()),
        (Some("failed"), Some("cancelled"))
    );
    let (status, json) = request(&addr, "DELETE", &path, shop, "").await;
    assert_eq!(status, 409, "{json}");
    // Sent at once: it reads as sent once finished.
    let (_, sent) = request(
        &addr,
        "POST",
        "/v1/messages",
        shop,
        r#"{"to": "447700900123", "from": "SHOP", "text": "now"}"#,
    )
    .await;
    let path = format!("/v1/messages/{}", sent["id"]);
    let mut json = Value::Null;
    for _ in 0..200 {
        json = request(&addr, "GET", &path, shop, "").await.1;
        if json["state"] == "sent" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(json["state"], "sent", "{json}");
    assert_eq!(json["carrier"], "alpha");
    assert_eq!(json["attempts"], 1);
    // Ids that are not numbers, or nobody's.
    let (status, json) = request(&addr, "GET", "/v1/messages/abc", shop, "").await;
    assert_eq!((status, json["field"].as_str()), (400, Some("id")));
    assert_eq!(
        request(&addr, "GET", "/v1/messages/987654321", shop, "")
            .await
            .0,
        404
    );
    let (status, json) = request(
        &addr,
        "POST",
        "/v1/messages",
        shop,
        r#"{"to": "447700900123", "from": "SHOP", "text": "x", "send_at": "tomorrow"}"#,
    )
    .await;
    assert_eq!(
        (status, json["field"].as_str()),
        (400, Some("send_at")),
        "{json}"
    );
}

#[tokio::test]
async fn a_batch_answers_each_message_on_its_own() {
    let (addr, hub, _dir) = hub("batch").await;
    let shop = Some("shop-key-0123456789");
    let body = r#"{"messages": [
        {"to": "447700900123", "from": "SHOP", "text": "one"},
        {"to": "12", "from": "SHOP", "text": "bad number"},
        {"to": "447700900124", "from": "SHOP", "text": "three", "colour": "red"},
        {"to": "447700900125", "from": "OTHER", "text": "not our sender"},
        {"to": "447700900126", "from": "SHOP", "text": "five"}
    ]}"#;
    let (status, json) = request(&addr, "POST", "/v1/messages/batch", shop, body).await;
    assert_eq!(status, 200, "{json}");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert!(results[0]["id"].as_u64().is_some(), "{json}");
    assert_eq!(
        (results[1]["status"].as_u64(), results[1]["field"].as_str()),
        (Some(400), Some("to"))
    );
    assert_eq!(results[2]["status"], 400);
    assert!(results[2]["error"].as_str().unwrap().contains("colour"));
    assert_eq!(
        (results[3]["status"].as_u64(), results[3]["field"].as_str()),
        (Some(403), Some("from"))
    );
    assert!(results[4]["id"].as_u64().is_some());
    assert_ne!(results[0]["id"], results[4]["id"]);
    // Both taken ones reach the carrier.
    let carrier = hub.router().carrier(CarrierSlot(0)).unwrap();
    for _ in 0..500 {
        if carrier.stats().submits.load(Ordering::Relaxed) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(carrier.stats().submits.load(Ordering::Relaxed), 2);
    // Empty, too large, or not a batch at all.
    let one = r#"{"to": "447700900123", "from": "SHOP", "text": "x"}"#;
    let too_many = format!(r#"{{"messages": [{}]}}"#, vec![one; 1001].join(","));
    for bad in [
        r#"{"messages": []}"#,
        too_many.as_str(),
        r#"{"to": "447700900123"}"#,
    ] {
        let (status, json) = request(&addr, "POST", "/v1/messages/batch", shop, bad).await;
        assert_eq!(
            (status, json["field"].as_str()),
            (400, Some("messages")),
            "{json}"
        );
    }
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed() {
    let (_addr, hub, _dir) = hub("capped").await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = smsroute_serve::CappedListener::new(tcp, 100, 1);
    let app = hub
        .http(None)
        .into_make_service_with_connect_info::<smsroute_serve::PeerAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ask = "GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n";
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(ask.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The first is still open: a second from the same address is closed unanswered.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let _ = second.write_all(ask.as_bytes()).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(answer, Ok(0) | Err(_)), "{answer:?}");
    // Once the first goes, there is room again.
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(ask.as_bytes()).await.unwrap();
    let n = third.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
