//! Status webhooks: posted signed, retried until answered 2xx, and posted again after a
//! crash when they had not been answered.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;
use smsroute_config::Config;
use smsroute_engine::{EngineOptions, Router};
use smsroute_journal::JournalOptions;
use smsroute_serve::Hub;
use smsroute_sim::{Behaviour, SimCarrier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "whsec_0123456789abcdef";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the receiving end saw: each post's signature header and body.
#[derive(Clone, Default)]
struct Endpoint {
    posts: Arc<Mutex<Vec<(String, Value)>>>,
    /// Posts still to refuse with 500.
    refuse: Arc<Mutex<u32>>,
}

/// A webhook endpoint on `port` (0: any); its port.
async fn endpoint(state: Endpoint, port: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = receiver(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// What the endpoint does with a post: checks its signature, keeps it, answers.
fn receiver(state: Endpoint) -> axum::Router {
    axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(s): axum::extract::State<Endpoint>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let signature = headers
                        .get("x-smsroute-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    assert!(verify(&signature, &body), "bad signature {signature}");
                    s.posts.lock().push((signature, json));
                    let mut refuse = s.refuse.lock();
                    if *refuse > 0 {
                        *refuse -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                },
            ),
        )
        .with_state(state)
}

/// Checks `t=UNIX,v1=HEX` against the body, as a receiver would.
fn verify(header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

fn config(hook_port: u16) -> Config {
    config_for(&format!(
        "webhook_url = \"http://127.0.0.1:{hook_port}/hook\"\n"
    ))
}

fn config_for(webhook: &str) -> Config {
    Config::parse(
        &format!(
            "[[carriers]]\nid = \"alpha\"\ntps = 1000\n\n\
             [[routes]]\nprefix = \"44\"\ncarrier = \"alpha\"\ncost = 0.004\n\n\
             [[clients]]\nid = \"shop\"\napi_keys = [\"shop-key-0123456789\"]\n\
             {webhook}webhook_secret = \"{KEY}\"\n"
        ),
        "hub.toml",
    )
    .unwrap()
}

/// A hub with a journal in `dir`, its HTTP API on a free port; its address.
async fn hub(config: &Config, dir: &Dir) -> (String, Hub<SimCarrier>) {
    let options = EngineOptions::default()
        .request_receipts(false)
        .journal(JournalOptions::new(&dir.0));
    let (router, events) = Router::start(config, options, |c| {
        SimCarrier::new(&c.id, Behaviour::default(), 1)
    })
    .unwrap();
    let hub = Hub::new(router, events, &config.clients);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(axum::serve(listener, hub.http(None)).into_future());
    (addr, hub)
}

async fn post_message(addr: &str) -> u64 {
    let body = r#"{"to": "447700900123", "from": "SHOP", "text": "hi", "client_ref": "c-1"}"#;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer shop-key-0123456789\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let json: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    json["id"].as_u64().unwrap()
}

async fn wait_for_posts(endpoint: &Endpoint, n: usize) -> Vec<(String, Value)> {
    for _ in 0..1000 {
        if endpoint.posts.lock().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    endpoint.posts.lock().clone()
}

#[tokio::test]
async fn a_status_is_posted_signed_and_retried_until_answered() {
    let dir = Dir(std::env::temp_dir().join(format!("smsroute-hooks-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    let received = Endpoint::default();
    *received.refuse.lock() = 1;
    let port = endpoint(received.clone(), 0).await;
    let (addr, hub) = hub(&config(port), &dir).await;
    let id = post_message(&addr).await;
    let posts = wait_for_posts(&received, 2).await;
    assert_eq!(posts.len(), 2, "refused once, posted again: {posts:?}");
    let (_, body) = &posts[1];
    assert_eq!(body["id"], id);
    assert_eq!(body["state"], "sent");
    assert_eq!(body["client_ref"], "c-1");
    assert_eq!(body["event_id"], format!("{id}-final"));
    assert_eq!(body["replay"], false);
    assert_eq!(posts[0].1, posts[1].1, "the same event both times");
    assert!(body.get("client").is_none(), "internal fields stay out");
    hub.router().shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_status_not_yet_posted_survives_a_crash() {
    let dir =
        Dir(std::env::temp_dir().join(format!("smsroute-hooks-crash-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    // Nothing listens on the webhook's port yet: every post fails.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = config(port);
    let (addr, hub_before) = hub(&config, &dir).await;
    let id = post_message(&addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    hub_before.router().abandon().await;
    // Restarted, with the endpoint up: the status is posted, flagged as a replay.
    let received = Endpoint::default();
    endpoint(received.clone(), port).await;
    let (_addr, hub_after) = hub(&config, &dir).await;
    let posts = wait_for_posts(&received, 1).await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].1["id"], id);
    assert_eq!(posts[0].1["replay"], true);
    hub_after.router().shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_status_is_posted_over_https_to_an_endpoint_of_a_private_ca() {
    let dir = Dir(std::env::temp_dir().join(format!("smsroute-hooks-tls-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let tls = smsroute_config::TlsConfig {
        cert: cert.to_string_lossy().into_owned(),
        key: key.to_string_lossy().into_owned(),
        smpp: false,
        http: true,
    };
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener =
        smsroute_serve::TlsListener::new(tcp, smsroute_serve::tls_acceptor(&tls).unwrap()).unwrap();
    let received = Endpoint::default();
    let app = receiver(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = config_for(&format!(
        "webhook_url = \"https://localhost:{port}/hook\"\nwebhook_ca = \"{}\"\n",
        cert.display()
    ));
    let journal = Dir(dir.0.join("journal"));
    let (addr, hub) = hub(&config, &journal).await;
    let id = post_message(&addr).await;
    let posts = wait_for_posts(&received, 1).await;
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].1["id"], id);
    hub.router().shutdown(Duration::from_secs(1)).await;
}
