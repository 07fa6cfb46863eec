//! What the SMPP front's tests share: a hub with a journal and a simulated carrier on a free
//! port, and a test client driving the session machine in the ESME role.
#![allow(dead_code)] // each test file uses part of it

use std::path::PathBuf;
use std::time::Duration;

use smsroute_config::Config;
use smsroute_engine::{EngineOptions, Router};
use smsroute_journal::JournalOptions;
use smsroute_serve::{Hub, SmppLimits};
use smsroute_sim::{Behaviour, SimCarrier};
use smsroute_smpp::pdu::{Address, Bind, BindKind, Body, Frame, ShortMessage, status};
use smsroute_smpp::session::{CloseReason, Role, Session, SessionConfig, SessionEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

pub const CONFIG: &str = r#"
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

pub struct Dir(pub PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A hub serving SMPP on a free port, with receipts from the carrier; its address.
pub async fn hub(name: &str) -> (String, Hub<SimCarrier>, watch::Sender<bool>, Dir) {
    let dir = Dir(
        std::env::temp_dir().join(format!("smsroute-serve-smpp-{name}-{}", std::process::id()))
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    let (addr, hub, stop) = hub_in(&dir).await;
    (addr, hub, stop, dir)
}

/// A hub whose journal is `dir` (what an earlier hub left there is recovered).
pub async fn hub_in(dir: &Dir) -> (String, Hub<SimCarrier>, watch::Sender<bool>) {
    hub_with(EngineOptions::default().journal(JournalOptions::new(&dir.0))).await
}

/// A hub with these engine options.
pub async fn hub_with(options: EngineOptions) -> (String, Hub<SimCarrier>, watch::Sender<bool>) {
    hub_made(options, |make| make()).await
}

/// A hub with these engine options, made inside `within` (a metrics recorder's scope).
pub async fn hub_made(
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
pub struct Client {
    stream: TcpStream,
    pub session: Session,
    /// Whether deliver_sm are answered (else left unanswered).
    pub answer_deliveries: bool,
}

impl Client {
    pub async fn connect(addr: &str) -> Self {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            session: Session::new(SessionConfig::new(Role::Esme), Instant::now().into_std()),
            answer_deliveries: true,
        }
    }

    pub async fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            let bytes = bytes.to_vec();
            self.stream.write_all(&bytes).await.unwrap();
            self.session.advance_transmit(bytes.len());
        }
    }

    /// The next event, within 10 s.
    pub async fn next(&mut self) -> SessionEvent {
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
    pub async fn bind(&mut self, kind: BindKind, system_id: &str, password: &str) -> u32 {
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

    /// Sends a request and waits for its response.
    pub async fn ask(&mut self, body: Body) -> Frame {
        let seq = self.session.request(body).unwrap();
        loop {
            if let SessionEvent::Response(frame) = self.next().await
                && frame.sequence == seq
            {
                return frame;
            }
        }
    }

    pub fn submit(&mut self, sm: ShortMessage) -> u32 {
        self.session.request(Body::SubmitSm(sm)).unwrap()
    }

    /// The submit_sm_resp for each of `sequences`: (status, message_id), in that order.
    pub async fn answers(&mut self, sequences: &[u32]) -> Vec<(u32, String)> {
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
    pub async fn deliveries(&mut self, n: usize) -> Vec<ShortMessage> {
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

pub fn sm(to: &str, from: &str, data_coding: u8, user_data: Vec<u8>) -> ShortMessage {
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
