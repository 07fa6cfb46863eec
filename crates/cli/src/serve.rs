//! `smsroute serve CONFIG [--smpp ADDR] [--http ADDR] [--journal DIR]`: the router as a
//! process, with the configuration's SMPP carriers, a journal, and the SMPP and HTTP fronts of
//! `smsroute-serve` for the `[[clients]]` (`docs/serve.md`). SIGTERM or Ctrl-C: stop taking
//! requests, answer the waiting ones and unbind the clients, drain for `--grace` seconds,
//! unbind the carriers. SIGHUP: read the configuration again and take it (routes, carriers,
//! policy, clients); a configuration with errors is logged and the running one stays. With
//! `--exit-with-parent`, the parent's death stops it as SIGTERM does.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use smsroute_engine::EngineOptions;
use smsroute_journal::JournalOptions;

use crate::check::load_config;

/// What `serve` was asked to do.
pub struct ServeArgs<'a> {
    pub config: &'a Path,
    pub smpp: &'a str,
    pub http: &'a str,
    pub journal: &'a Path,
    pub grace: f64,
    pub exit_with_parent: bool,
}

/// HTTP connections at once, in all and from one address.
const MAX_HTTP_CONNECTIONS: usize = 4_096;
const MAX_HTTP_PER_ADDRESS: usize = 256;

/// The longest `--grace`, seconds.
pub const MAX_GRACE_S: f64 = 3_600.0;

pub fn run(args: ServeArgs<'_>) -> Result<(), String> {
    // The parent as of the first instruction: one that dies while the journal opens or the
    // listeners bind still counts as gone.
    #[cfg(unix)]
    let parent = std::os::unix::process::parent_id();
    #[cfg(not(unix))]
    let parent = 0;
    let (config, _) = load_config(args.config)?;
    let http: SocketAddr = args
        .http
        .parse()
        .map_err(|e| format!("--http {}: {e} (expected HOST:PORT)", args.http))?;
    let smpp: SocketAddr = args
        .smpp
        .parse()
        .map_err(|e| format!("--smpp {}: {e} (expected HOST:PORT)", args.smpp))?;
    if !(0.0..=MAX_GRACE_S).contains(&args.grace) {
        return Err(format!(
            "--grace {}: expected 0 to {MAX_GRACE_S} seconds",
            args.grace
        ));
    }
    if config
        .clients
        .iter()
        .all(|c| c.api_keys.is_empty() && c.smpp.is_none())
    {
        return Err(format!(
            "{}: no [[clients]] entry has api_keys or an smpp login: nobody could send",
            args.config.display()
        ));
    }
    let tls = config
        .tls
        .as_ref()
        .map(|t| smsroute_serve::tls_acceptor(t).map(|acceptor| (t.clone(), acceptor)))
        .transpose()?;
    let leaser = crate::cluster::start(&config)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let served = runtime.block_on(serve(
        &config,
        args,
        (http, smpp),
        tls,
        parent,
        leaser.as_ref(),
    ));
    if let Some(leaser) = leaser {
        // After the drain: what this node did not use goes back to the others.
        leaser.stop();
    }
    served
}

/// `[tls]` and its acceptor.
type Tls = (smsroute_config::TlsConfig, smsroute_serve::TlsAcceptor);

async fn serve(
    config: &smsroute_config::Config,
    args: ServeArgs<'_>,
    (http, smpp): (SocketAddr, SocketAddr),
    tls: Option<Tls>,
    parent: u32,
    leaser: Option<&smsroute_cluster::Leaser>,
) -> Result<(), String> {
    let metrics = smsroute_serve::install_metrics()?;
    let mut options = EngineOptions::default().journal(JournalOptions::new(args.journal));
    if let Some(leaser) = leaser {
        options = options.leases(crate::cluster::leases(config, leaser));
        tokio::spawn(crate::cluster::report(leaser.stats().clone()));
    }
    let receipts = crate::cluster::exchange_receipts(config)?;
    if let Some(exchange) = &receipts {
        options = options.receipt_relay(exchange.relay());
    }
    options = options.leased_balances(crate::cluster::shares_balances(config));
    let (router, events) = smsroute::start_smpp(config, options).map_err(|e| e.to_string())?;
    // Opt-outs shared with the other nodes for as long as the node serves; receipts that
    // other nodes' binds took for this node's messages come here.
    let _optouts = crate::cluster::share_optouts(config, router.suppression())?;
    let _caps = crate::cluster::share_caps(config, router.frequency_caps())?;
    // Dropped when serve returns, after the drain: this node's allowances go back then.
    let _balances = crate::cluster::lease_balances(config, &router)?;
    if let Some(exchange) = &receipts {
        let peer = router.clone();
        exchange
            .deliver_to(move |carrier, receipt, ack| peer.receipt_from_peer(carrier, receipt, ack));
    }
    let hub = smsroute_serve::Hub::new(router.clone(), events, &config.clients);
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .map_err(|e| format!("--http {http}: {e}"))?;
    let smpp_listener = tokio::net::TcpListener::bind(smpp)
        .await
        .map_err(|e| format!("--smpp {smpp}: {e}"))?;
    let smpp_tls = tls.as_ref().filter(|(t, _)| t.smpp).map(|(_, a)| a.clone());
    let http_tls = tls.as_ref().filter(|(t, _)| t.http).map(|(_, a)| a.clone());
    tracing::info!(
        %smpp, %http, smpp_tls = smpp_tls.is_some(), http_tls = http_tls.is_some(),
        journal = %args.journal.display(), "smsroute serve: SMPP and HTTP fronts listening"
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let smpp_front = {
        let hub = hub.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let limits = smsroute_serve::SmppLimits::default();
            hub.serve_smpp(smpp_listener, limits, smpp_tls, stop).await
        })
    };
    let mut http_stop = stop.clone();
    let stopped = async move {
        let _ = http_stop.wait_for(|stopped| *stopped).await;
    };
    let app = hub
        .http(Some(metrics))
        .into_make_service_with_connect_info::<smsroute_serve::PeerAddr>();
    let (max, per_address) = (MAX_HTTP_CONNECTIONS, MAX_HTTP_PER_ADDRESS);
    let http_front = match http_tls {
        None => {
            let listener = smsroute_serve::CappedListener::new(listener, max, per_address);
            tokio::spawn(
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .into_future(),
            )
        }
        Some(acceptor) => {
            let listener = smsroute_serve::TlsListener::new(listener, acceptor)
                .map_err(|e| format!("--http {http}: {e}"))?;
            let listener = smsroute_serve::CappedListener::new(listener, max, per_address);
            tokio::spawn(
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .into_future(),
            )
        }
    };
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(
        hub.clone(),
        args.config.to_path_buf(),
        config.clone(),
    ));
    let exit_with_parent = args.exit_with_parent;
    tokio::select! {
        () = stop_signal() => {}
        () = parent_gone(parent), if exit_with_parent => {
            tracing::warn!("smsroute serve: the process that started it is gone: stopping");
        }
    }
    let _ = stop_tx.send(true);
    let _ = smpp_front.await;
    match http_front.await {
        Ok(result) => result.map_err(|e| e.to_string())?,
        Err(e) => return Err(e.to_string()),
    }
    tracing::info!(
        grace_s = args.grace,
        "smsroute serve: stopping (no new requests), draining"
    );
    router.shutdown(Duration::from_secs_f64(args.grace)).await;
    Ok(())
}

/// Reloads the configuration at every SIGHUP.
#[cfg(unix)]
async fn reload_on_hangup<C: smsroute_carrier::Carrier>(
    hub: smsroute_serve::Hub<C>,
    path: std::path::PathBuf,
    started: smsroute_config::Config,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be caught: no reload on SIGHUP");
        return;
    };
    while hangup.recv().await.is_some() {
        let answer = load_config(&path).and_then(|(config, _)| {
            if let Some(refusal) = crate::cluster::reload_refusal(&started, &config) {
                return Err(format!("{}: {refusal}", path.display()));
            }
            hub.reload(&config)
                .map_err(|e| format!("{}: {e}", path.display()))
        });
        match answer {
            Ok(report) => tracing::info!(
                generation = report.generation, added = ?report.added,
                removed = ?report.removed, "SIGHUP: configuration reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: reload refused, the running configuration stays")
            }
        }
    }
}

/// Resolves once this process's parent is no longer `parent` (it died and the process was
/// adopted).
async fn parent_gone(parent: u32) {
    #[cfg(unix)]
    {
        loop {
            if std::os::unix::process::parent_id() != parent {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = parent;
        std::future::pending::<()>().await
    }
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
