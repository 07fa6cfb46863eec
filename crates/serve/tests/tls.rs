//! TLS on both fronts: SMPP and HTTPS with a certificate from PEM files; plain connections to
//! a TLS port get nothing; bad PEM files are refused with the file named.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use smsroute_config::{Config, TlsConfig};
use smsroute_engine::{EngineOptions, Router};
use smsroute_serve::{Hub, SmppLimits, TlsListener, tls_acceptor};
use smsroute_sim::{Behaviour, SimCarrier};
use smsroute_smpp::pdu::{Address, Bind, BindKind, Body, Frame, ShortMessage, status};
use smsroute_smpp::session::{Role, Session, SessionConfig, SessionEvent};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

const CONFIG: &str = r#"
[[carriers]]
id = "alpha"
tps = 1000

[[routes]]
prefix = "44"
carrier = "alpha"
cost = 0.004

[[clients]]
id = "shop"
system_id = "shop"
password = "secret"
api_keys = ["shop-key-0123456789"]
"#;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost` in `dir`: the `[tls]` table for it and a
/// connector that trusts it.
fn certificate(dir: &Dir) -> (TlsConfig, TlsConnector) {
    std::fs::create_dir_all(&dir.0).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = TlsConfig {
        cert: cert.to_string_lossy().into_owned(),
        key: key.to_string_lossy().into_owned(),
        smpp: true,
        http: true,
    };
    (tls, TlsConnector::from(Arc::new(client)))
}

fn hub() -> Hub<SimCarrier> {
    let config = Config::parse(CONFIG, "hub.toml").unwrap();
    let (router, events) = Router::start(
        &config,
        EngineOptions::default().request_receipts(false),
        |c| SimCarrier::new(&c.id, Behaviour::default(), 1),
    )
    .unwrap();
    Hub::new(router, events, &config.clients)
}

/// Binds as the shop over `stream` and submits one message; the submit's status.
async fn bind_and_submit<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> u32 {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let now = Instant::now().into_std();
    let mut session = Session::new(SessionConfig::new(Role::Esme), now);
    let bind = Bind {
        kind: BindKind::Transceiver,
        system_id: "shop".into(),
        password: "secret".into(),
        system_type: String::new(),
        interface_version: 0x34,
    };
    session.bind(bind, now).unwrap();
    let mut submitted = false;
    loop {
        while let Some(bytes) = session.poll_transmit() {
            let bytes = bytes.to_vec();
            writer.write_all(&bytes).await.unwrap();
            session.advance_transmit(bytes.len());
        }
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::Bound { .. } if !submitted => {
                    submitted = true;
                    let address = |ton, addr: &str| Address {
                        ton,
                        npi: 1,
                        addr: addr.into(),
                    };
                    session
                        .request(Body::SubmitSm(ShortMessage {
                            source: address(5, "SHOP"),
                            destination: address(1, "447700900123"),
                            short_message: b"over TLS".to_vec(),
                            ..ShortMessage::default()
                        }))
                        .unwrap();
                }
                SessionEvent::Response(Frame {
                    status,
                    body: Body::SubmitSmResp { .. },
                    ..
                }) => return status,
                SessionEvent::Closed(reason) => panic!("closed: {reason}"),
                _ => {}
            }
        }
        if session.poll_transmit().is_some() {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "the hub closed the connection");
        session.handle_input(&buf[..n], Instant::now().into_std());
    }
}

#[tokio::test]
async fn smpp_over_tls_binds_and_submits_and_plain_tcp_gets_nothing() {
    let dir = Dir(std::env::temp_dir().join(format!("smsroute-tls-smpp-{}", std::process::id())));
    let (tls, connector) = certificate(&dir);
    let hub = hub();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let acceptor = tls_acceptor(&tls).unwrap();
    let front = hub.clone();
    tokio::spawn(async move {
        front
            .serve_smpp(listener, SmppLimits::default(), Some(acceptor), stop)
            .await
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(bind_and_submit(stream).await, status::OK);
    // A plain bind to the TLS port: no bind_resp, the connection is closed.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    let mut bind = Vec::new();
    Frame::new(
        1,
        Body::Bind(Bind {
            kind: BindKind::Transceiver,
            system_id: "shop".into(),
            password: "secret".into(),
            system_type: String::new(),
            interface_version: 0x34,
        }),
    )
    .encode(&mut bind)
    .unwrap();
    plain.write_all(&bind).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), plain.read_to_end(&mut answer)).await;
    let answer = match read {
        Ok(Ok(_)) | Ok(Err(_)) => answer,
        Err(_) => panic!("the connection stayed open"),
    };
    assert!(
        Frame::decode(&answer).is_err(),
        "no SMPP answer in the clear: {answer:?}"
    );
}

#[tokio::test]
async fn https_takes_messages() {
    let dir = Dir(std::env::temp_dir().join(format!("smsroute-tls-http-{}", std::process::id())));
    let (tls, connector) = certificate(&dir);
    let hub = hub();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener::new(tcp, tls_acceptor(&tls).unwrap()).unwrap();
    let app = hub
        .http(None)
        .into_make_service_with_connect_info::<smsroute_serve::PeerAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let stream = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, stream).await.unwrap();
    let body = r#"{"to": "447700900123", "from": "SHOP", "text": "over https"}"#;
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer shop-key-0123456789\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.contains("\"id\":"), "{answer}");
}

#[test]
fn bad_certificate_files_are_refused_naming_the_file() {
    let dir = Dir(std::env::temp_dir().join(format!("smsroute-tls-bad-{}", std::process::id())));
    let (mut tls, _) = certificate(&dir);
    let missing = TlsConfig {
        cert: dir.0.join("nope.pem").to_string_lossy().into_owned(),
        ..tls.clone()
    };
    let error = tls_acceptor(&missing).err().unwrap();
    assert!(error.contains("nope.pem"), "{error}");
    let garbage = dir.0.join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    tls.key = garbage.to_string_lossy().into_owned();
    let error = tls_acceptor(&tls).err().unwrap();
    assert!(
        error.contains("tls key") && error.contains("garbage.pem"),
        "{error}"
    );
}
