//! Status webhooks: each terminal status of a client's message is posted as JSON to its
//! `webhook_url` (http or https), signed with HMAC-SHA256 (`X-Smsroute-Signature: t=UNIX,v1=HEX` over
//! `UNIX.BODY`), retried with backoff until the endpoint answers 2xx or 24 hours have passed.
//! The router's terminal event is acknowledged only then, so a restart posts it again
//! (at least once; `event_id` and `replay` let the receiver deduplicate).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use smsroute_engine::StatusEvent;
use smsroute_smpp::server::{Timed, sleep_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clients::Client;

/// Posts waiting to be made, at most (past it, an event waits in the journal for a restart).
pub const QUEUE: usize = 100_000;
/// Posts in flight at once.
const MAX_IN_FLIGHT: usize = 64;
/// The longest one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// A failed post is retried after 1 s, doubling up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Retries stop this long after the first post; the event is then acknowledged (logged).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The signature's header.
pub const SIGNATURE_HEADER: &str = "x-smsroute-signature";

/// One status to post.
pub(crate) struct Post {
    client: Arc<Client>,
    body: Bytes,
    ack: u64,
    first: Instant,
    tries: u32,
}

impl Post {
    /// The post of terminal `event` for `client` (its JSON body: the message's lookup view,
    /// `event_id` and `replay`).
    pub fn new(client: Arc<Client>, event: &StatusEvent) -> Post {
        let mut view = serde_json::to_value(crate::lookup::Recent::view_of(event))
            .unwrap_or(serde_json::Value::Null);
        if let Some(fields) = view.as_object_mut() {
            fields.insert("event_id".into(), format!("{}-final", event.id).into());
            fields.insert("replay".into(), event.replay.into());
        }
        Post {
            client,
            body: Bytes::from(view.to_string()),
            ack: event.ack,
            first: Instant::now(),
            tries: 0,
        }
    }
}

/// `t=UNIX,v1=HEX`: HMAC-SHA256 with `key` over `UNIX.BODY`.
pub fn signature(key: &str, unix: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={unix},v1={hex}")
}

enum Outcome {
    Delivered,
    Failed(String),
    /// The client has no webhook any more (a reload took it away).
    Gone,
}

type Http = HttpClient<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// An HTTP(S) client trusting the public certificate authorities (Mozilla's, as
/// `webpki-roots` ships them) and those in the PEM file `ca`.
fn http_client(ca: Option<&str>) -> Result<Http, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(ca) = ca {
        for cert in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("webhook_ca {ca}: {e}"))?
        {
            let cert = cert.map_err(|e| format!("webhook_ca {ca}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("webhook_ca {ca}: {e}"))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(HttpClient::builder(TokioExecutor::new()).build(https))
}

/// The clients by the extra CA file they trust (`None`: the public ones only), made when
/// first needed.
#[derive(Default)]
struct Clients(std::collections::HashMap<Option<String>, Http>);

impl Clients {
    fn get(&mut self, ca: Option<&str>) -> Result<Http, String> {
        let key = ca.map(str::to_string);
        if let Some(client) = self.0.get(&key) {
            return Ok(client.clone());
        }
        let client = http_client(ca)?;
        self.0.insert(key, client.clone());
        Ok(client)
    }
}

/// Makes the posts, `MAX_IN_FLIGHT` at a time; tells `answered` the acknowledgement number
/// of each status posted (or given up on).
pub(crate) async fn run(mut posts: mpsc::Receiver<Post>, answered: mpsc::Sender<u64>) {
    let mut http = Clients::default();
    let delivered = metrics::counter!(smsroute_metrics::names::WEBHOOKS, "outcome" => "delivered");
    let failed = metrics::counter!(smsroute_metrics::names::WEBHOOKS, "outcome" => "failed");
    let given_up = metrics::counter!(smsroute_metrics::names::WEBHOOKS, "outcome" => "given_up");
    let mut in_flight: FuturesUnordered<BoxFuture<'static, (Post, Outcome)>> =
        FuturesUnordered::new();
    let mut later: BinaryHeap<Reverse<Timed<Post>>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut open = true;
    loop {
        let room = in_flight.len() < MAX_IN_FLIGHT;
        let due = later.peek().map(|Reverse(t)| t.at);
        tokio::select! {
            post = posts.recv(), if open && room => match post {
                Some(post) => in_flight.push(attempt(&mut http, post)),
                None => open = false,
            },
            Some((mut post, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                match outcome {
                    Outcome::Delivered => {
                        delivered.increment(1);
                        let _ = answered.send(post.ack).await;
                    }
                    Outcome::Gone => {
                        tracing::info!(client = %post.client.id,
                            "status webhook dropped: the client has no webhook any more");
                        let _ = answered.send(post.ack).await;
                    }
                    Outcome::Failed(why) if post.first.elapsed() >= GIVE_UP_AFTER => {
                        given_up.increment(1);
                        tracing::error!(client = %post.client.id, error = %why, tries = post.tries,
                            "status webhook given up after 24 h");
                        let _ = answered.send(post.ack).await;
                    }
                    Outcome::Failed(why) => {
                        failed.increment(1);
                        post.tries += 1;
                        let backoff = Duration::from_secs(1 << post.tries.min(10)).min(MAX_BACKOFF);
                        tracing::warn!(client = %post.client.id, error = %why,
                            retry_in_s = backoff.as_secs(), "status webhook failed");
                        order += 1;
                        later.push(Reverse(Timed { at: Instant::now() + backoff, order, item: post }));
                    }
                }
            }
            () = sleep_until(due), if room && due.is_some() => {
                if let Some(Reverse(t)) = later.pop() {
                    in_flight.push(attempt(&mut http, t.item));
                }
            }
            else => break,
        }
    }
}

/// One post of `post`, signed now.
fn attempt(clients: &mut Clients, post: Post) -> BoxFuture<'static, (Post, Outcome)> {
    let hook = post.client.settings().webhook.clone();
    let http = hook.as_ref().map(|h| clients.get(h.ca.as_deref()));
    Box::pin(async move {
        let (Some(hook), Some(http)) = (hook, http) else {
            return (post, Outcome::Gone);
        };
        let http = match http {
            Ok(http) => http,
            Err(e) => return (post, Outcome::Failed(e)),
        };
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let request = hyper::Request::post(hook.url.as_str())
            .header("content-type", "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(hook.signing_key.expose(), unix, &post.body),
            )
            .body(Full::new(post.body.clone()));
        let request = match request {
            Ok(r) => r,
            Err(e) => return (post, Outcome::Failed(e.to_string())),
        };
        let outcome = match tokio::time::timeout(POST_TIMEOUT, http.request(request)).await {
            Ok(Ok(answer)) if answer.status().is_success() => Outcome::Delivered,
            Ok(Ok(answer)) => Outcome::Failed(format!("answered {}", answer.status())),
            Ok(Err(e)) => Outcome::Failed(e.to_string()),
            Err(_) => Outcome::Failed(format!("no answer within {POST_TIMEOUT:?}")),
        };
        (post, outcome)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_time_and_body() {
        // The same as Python's hmac.new(b"key", b"1700000000." + body, hashlib.sha256).
        let body = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(
            signature("key", 1_700_000_000, body),
            "t=1700000000,v1=2f658d6aef4f246e91cd741bbcded7479e9605f9d41c9e248122a117e0e1765b"
        );
        assert_ne!(signature("key", 1, b"x"), signature("key", 2, b"x"));
    }
}
