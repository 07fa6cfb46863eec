//! `smsroute serve`: the router as a standalone hub for gateways that do not embed it. This
//! crate holds its fronts: the HTTP API so far (`POST /v1/messages`, `/healthz`, `/readyz`,
//! `/metrics`; `docs/serve.md`); the SMPP server front and webhooks are still to come.
//!
//! A message is answered `202 Accepted` with its id only once the router's journal holds it
//! (its `Accepted` event): a client that gets its id can forget the message.
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
//! axum::serve(listener, hub.http(None)).await.unwrap();
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accepted;
mod http;

use std::collections::HashMap;
use std::sync::Arc;

use smsroute_carrier::Carrier;
use smsroute_config::ClientConfig;
use smsroute_engine::{EventStream, Router};

pub use http::HttpError;

/// What the fronts know of a client account.
#[derive(Debug)]
pub struct Client {
    /// Its id in the configuration.
    pub id: String,
    /// The spend account its messages are charged to (the message's `account` tag).
    pub account: Option<String>,
    /// The sender ids it may send as; empty: any.
    pub senders: Vec<smsroute_types::Sender>,
}

/// The router behind the fronts, the client accounts, and the messages waiting for their
/// acceptance to be durable.
pub struct Hub<C: Carrier> {
    router: Router<C>,
    /// Clients by API key.
    by_key: HashMap<String, Arc<Client>>,
    waiters: Arc<accepted::Waiters>,
}

impl<C: Carrier> Clone for Hub<C> {
    fn clone(&self) -> Self {
        Hub {
            router: self.router.clone(),
            by_key: self.by_key.clone(),
            waiters: self.waiters.clone(),
        }
    }
}

impl<C: Carrier> Hub<C> {
    /// The hub for `router`, taking its event stream (a task on the current runtime reads it:
    /// acceptances answer the clients waiting for them; terminal events are acknowledged, as
    /// nothing after them is promised yet: webhooks are still to come).
    pub fn new(router: Router<C>, events: EventStream, clients: &[ClientConfig]) -> Self {
        let mut by_key = HashMap::new();
        for c in clients {
            let client = Arc::new(Client {
                id: c.id.clone(),
                account: c.account.clone(),
                senders: c.senders.clone(),
            });
            for key in &c.api_keys {
                by_key.insert(key.expose().to_string(), client.clone());
            }
        }
        let waiters = Arc::new(accepted::Waiters::default());
        tokio::spawn(accepted::pump(router.clone(), events, waiters.clone()));
        Hub {
            router,
            by_key,
            waiters,
        }
    }

    /// The router behind the hub.
    pub fn router(&self) -> &Router<C> {
        &self.router
    }

    /// The HTTP API; `metrics` renders `GET /metrics` (none: 404).
    pub fn http(&self, metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>) -> axum::Router {
        http::routes(self.clone(), metrics)
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
