//! `smsroute serve`: the router as a standalone hub for gateways that do not embed it. This
//! crate holds its two fronts (`docs/serve.md`): the SMPP 3.4 server (binds with the
//! `[[clients]]` logins, multipart put back together, receipts and replies as deliver_sm)
//! and the HTTP API (`POST /v1/messages`, `GET`/`DELETE /v1/messages/{id}`, `/healthz`,
//! `/readyz`, `/metrics`), and the clients' signed status webhooks.
//!
//! A message is answered (`submit_sm_resp`, `202 Accepted`) with its id only once the
//! router's journal holds it (its `Accepted` event): a client that gets its id can forget the
//! message.
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use smsroute_carrier::mock::MockCarrier;
//! use smsroute_config::Config;
//! use smsroute_engine::{EngineOptions, Router};
//!
//! # async fn run() {
//! let config = Config::parse(
//!     "[[carriers]]\nid = \"alpha\"\ntps = 100\n\n[[routes]]\nprefix = \"44\"\n\
//!      carrier = \"alpha\"\ncost = 0.004\n\n[[clients]]\nid = \"shop\"\napi_keys = [\"k1-0123456789abcdef\"]\n",
//!     "hub.toml",
//! )
//! .unwrap();
//! let (router, events) =
//!     Router::start(&config, EngineOptions::default(), |c| MockCarrier::new(&c.id)).unwrap();
//! let hub = smsroute_serve::Hub::new(router, events, &config.clients);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! let app = hub.http(None).into_make_service_with_connect_info::<smsroute_serve::PeerAddr>();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accepted;
mod clients;
mod front_metrics;
mod http;
mod listen;
mod lookup;
mod penalty;
mod receipts;
mod smpp;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use smsroute_carrier::Carrier;
use smsroute_config::{ClientConfig, Config};
use smsroute_engine::{EventStream, ReloadReport, Router, SetupError};
use tokio::sync::{mpsc, watch};

pub use clients::{CLIENT_TAG, Client, OUTBOX_CAPACITY, Settings};
pub use http::HttpError;
pub use listen::{
    CappedListener, HANDSHAKE_TIMEOUT, PeerAddr, TlsListener, acceptor as tls_acceptor,
};
pub use lookup::{MessageView, RECENT};
pub use receipts::RECEIPT_TAG;
pub use smpp::{SmppLimits, vendor};
pub use tokio_rustls::TlsAcceptor;
pub use webhooks::{GIVE_UP_AFTER, SIGNATURE_HEADER, signature};

/// The longest a submit waits for its message's acceptance to be durable (a journal that
/// stopped syncing: refused, and the message may still be accepted).
pub(crate) const DURABLE_WAIT: Duration = Duration::from_secs(10);

/// Receipt answers in flight from the sessions to the event task, at most.
const ANSWERS_QUEUE: usize = 65_536;

/// The router behind the fronts, the client accounts, and the messages waiting for their
/// acceptance to be durable.
pub struct Hub<C: Carrier> {
    router: Router<C>,
    /// The client accounts (swapped whole on reload).
    clients: Arc<ArcSwap<clients::Clients>>,
    waiters: Arc<accepted::Waiters>,
    /// The last finished messages, for lookups.
    recent: Arc<lookup::Recent>,
    /// Messages submitted over SMPP whose submit_sm_resp is not written yet: their receipts
    /// wait (a client must know an id before a receipt names it).
    unanswered: Arc<dashmap::DashSet<smsroute_types::MessageId>>,
    /// Failed logins by source address (both fronts).
    penalties: Arc<penalty::Penalties>,
    /// The fronts' metric handles.
    metrics: Arc<front_metrics::FrontMetrics>,
    /// Receipts the clients answered, by the acknowledgement number of their terminal event.
    receipts_answered: mpsc::Sender<u64>,
}

impl<C: Carrier> Clone for Hub<C> {
    fn clone(&self) -> Self {
        Hub {
            router: self.router.clone(),
            clients: self.clients.clone(),
            waiters: self.waiters.clone(),
            recent: self.recent.clone(),
            unanswered: self.unanswered.clone(),
            penalties: self.penalties.clone(),
            metrics: self.metrics.clone(),
            receipts_answered: self.receipts_answered.clone(),
        }
    }
}

impl<C: Carrier> Hub<C> {
    /// The hub for `router`, taking its event stream and its replies (tasks on the current
    /// runtime read them: acceptances answer the clients waiting for them; terminal events
    /// become receipts for SMPP clients that asked, and are acknowledged to the router once
    /// the client answered them; replies go to the client owning the number).
    pub fn new(router: Router<C>, events: EventStream, clients: &[ClientConfig]) -> Self {
        let clients = Arc::new(ArcSwap::from_pointee(clients::Clients::new(clients, None)));
        let waiters = Arc::new(accepted::Waiters::default());
        let recent = Arc::new(lookup::Recent::default());
        let (answered_tx, answered_rx) = mpsc::channel(ANSWERS_QUEUE);
        let (posts_tx, posts_rx) = mpsc::channel(webhooks::QUEUE);
        tokio::spawn(webhooks::run(posts_rx, answered_tx.clone()));
        tokio::spawn(accepted::pump(
            router.clone(),
            events,
            accepted::Readers {
                waiters: waiters.clone(),
                clients: clients.clone(),
                recent: recent.clone(),
                posts: posts_tx,
            },
            answered_rx,
        ));
        if let Some(inbound) = router.take_inbound() {
            tokio::spawn(smpp::replies(inbound, clients.clone()));
        }
        Hub {
            router,
            clients,
            waiters,
            recent,
            unanswered: Arc::default(),
            penalties: Arc::default(),
            metrics: Arc::default(),
            receipts_answered: answered_tx,
        }
    }

    /// Takes a new configuration: the router's ([`Router::reload`]: routes, carriers,
    /// policy), then the clients'. A client kept by id keeps its binds, its rate's bucket
    /// and its outbox; its new settings apply to new binds and submits. A removed client
    /// can no longer bind or call the API; sessions it holds stay until they end. Nothing
    /// changes when the router refuses the configuration.
    pub fn reload(&self, config: &Config) -> Result<ReloadReport, SetupError> {
        let report = self.router.reload(config)?;
        let next = clients::Clients::new(&config.clients, Some(&self.clients.load()));
        tracing::info!(clients = next.by_id.len(), "clients reloaded");
        self.clients.store(Arc::new(next));
        Ok(report)
    }

    /// The router behind the hub.
    pub fn router(&self) -> &Router<C> {
        &self.router
    }

    /// The HTTP API; `metrics` renders `GET /metrics` (none: 404). Serve it with
    /// `into_make_service_with_connect_info::<PeerAddr>()` so that bad API keys are slowed
    /// down per address (without it, all requests count as one address).
    pub fn http(&self, metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>) -> axum::Router {
        http::routes(self.clone(), metrics)
    }

    /// Serves SMPP clients on `listener` (over TLS with `tls`: plain connections are then
    /// refused) until `stop` turns true; then the sessions answer their waiting submits and
    /// unbind (for at most 5 s) before this returns.
    pub async fn serve_smpp(
        &self,
        listener: tokio::net::TcpListener,
        limits: SmppLimits,
        tls: Option<TlsAcceptor>,
        stop: watch::Receiver<bool>,
    ) {
        smpp::serve(self.clone(), listener, limits, tls, stop).await
    }
}

/// Installs the Prometheus recorder for `GET /metrics` (before the router starts, so its
/// handles bind to it); returns what renders the page. Upkeep runs on a thread of its own.
pub fn install_metrics() -> Result<Arc<dyn Fn() -> String + Send + Sync>, String> {
    let handle = smsroute_metrics::prometheus_builder()
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    smsroute_metrics::describe();
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })
        .map_err(|e| format!("metrics: {e}"))?;
    Ok(Arc::new(move || handle.render()))
}
