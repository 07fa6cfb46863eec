//! The SMPP 3.4 server front: clients bind (transmitter, receiver, transceiver) with their
//! `[[clients]]` login (`system_id`, `password`), submit messages (multipart put back together), and get receipts
//! and replies as deliver_sm (`docs/serve.md`).

mod assemble;
mod session;
mod submit;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use smsroute_carrier::Carrier;
use smsroute_engine::InboundStream;
use smsroute_smpp::pdu::Address;
use smsroute_smpp::server::SessionCaps;
use smsroute_smpp::sm::text_deliver;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use submit::vendor;

use crate::Hub;
use crate::clients::{Clients, Outgoing};

/// Limits on the SMPP front's sessions.
#[derive(Clone, Copy, Debug)]
pub struct SmppLimits {
    /// Sessions at once (default 1,000).
    pub max_sessions: usize,
    /// Sessions from one address at once (default 64).
    pub max_per_address: usize,
}

impl Default for SmppLimits {
    fn default() -> Self {
        SmppLimits {
            max_sessions: 1_000,
            max_per_address: 64,
        }
    }
}

/// How long the sessions get, once the hub stops, to answer their waiting submits and unbind.
const UNBIND_GRACE: Duration = Duration::from_secs(5);

/// Serves SMPP clients on `listener` until `stop` turns true; then every session answers its
/// waiting submits and unbinds (for at most [`UNBIND_GRACE`]).
pub(crate) async fn serve<C: Carrier>(
    hub: Hub<C>,
    listener: TcpListener,
    limits: SmppLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let caps = SessionCaps::new(limits.max_sessions, limits.max_per_address);
    let numbers = AtomicU64::new(0);
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "SMPP accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(admitted) = caps.admit(peer.ip()) else {
                    tracing::warn!(%peer, "SMPP connection refused: too many sessions");
                    continue;
                };
                let number = numbers.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let (hub, stop, tls) = (hub.clone(), stop.clone(), tls.clone());
                sessions.spawn(async move {
                    let peer = peer.ip();
                    match tls {
                        None => session::serve(stream, peer, hub, number, admitted, stop).await,
                        Some(tls) => {
                            let handshake = tokio::time::timeout(
                                crate::listen::HANDSHAKE_TIMEOUT,
                                tls.accept(stream),
                            );
                            match handshake.await {
                                Ok(Ok(stream)) => {
                                    session::serve(stream, peer, hub, number, admitted, stop).await
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "SMPP TLS handshake failed")
                                }
                                Err(_) => tracing::debug!(%peer, "SMPP TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(UNBIND_GRACE, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = sessions.len(),
            "SMPP sessions still open after the unbind grace: closed"
        );
        sessions.abort_all();
    }
}

/// Hands every reply (MO) to the client that owns the number it was sent to, as a deliver_sm
/// in its outbox; a reply to a number no client owns is logged and dropped.
pub(crate) async fn replies(mut inbound: InboundStream, clients: Arc<ArcSwap<Clients>>) {
    while let Some(reply) = inbound.recv().await {
        let to = reply.to.trim_start_matches('+');
        let clients = clients.load();
        let Some(client) = clients.owners.get(to) else {
            tracing::debug!(to, "reply to a number no client owns: dropped");
            continue;
        };
        let sm = text_deliver(
            Address {
                ton: 1,
                npi: 1,
                addr: reply.from.trim_start_matches('+').to_string(),
            },
            Address {
                ton: if to.len() <= 8 { 0 } else { 1 },
                npi: 1,
                addr: to.to_string(),
            },
            &reply.text,
        );
        if client
            .outbox
            .schedule(
                tokio::time::Instant::now(),
                Outgoing {
                    sm,
                    ack: 0,
                    message: None,
                },
            )
            .is_err()
        {
            tracing::warn!(client = %client.id, "reply dropped: the client's outbox is full");
        }
    }
}
