//! `smsroute sim [--listen ADDR] [--profile FILE] [--system-id ID --password PW]`: a simulated
//! SMSC until Ctrl-C.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use serde::Deserialize;
use smsroute_loadtest::CarrierBehaviour;
use smsroute_sim::{Simulator, SimulatorConfig};

/// A behaviour profile file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    /// Most unanswered submits per session (0: no limit).
    #[serde(default)]
    window: usize,
    /// Close each session after this many submits.
    disconnect_after: Option<u64>,
    /// Seed of the behaviour model.
    #[serde(default)]
    seed: u64,
    /// Latency, errors, own rate limit, receipts: as a load-test scenario's carrier.
    #[serde(default)]
    behaviour: CarrierBehaviour,
}

pub fn run(
    listen: &str,
    profile: Option<&Path>,
    system_id: Option<String>,
    password: Option<String>,
) -> Result<(), String> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("--listen {listen}: {e} (expected host:port, e.g. 127.0.0.1:2775)"))?;
    if system_id.is_some() != password.is_some() {
        return Err("--system-id and --password go together".into());
    }
    let profile = match profile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            toml::from_str::<Profile>(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => Profile::default(),
    };
    let behaviour = profile
        .behaviour
        .behaviour()
        .map_err(|e| format!("profile behaviour: {e}"))?;
    let config = SimulatorConfig {
        system_id,
        password,
        behaviour,
        seed: profile.seed,
        window: profile.window,
        disconnect_after: profile.disconnect_after,
        ..SimulatorConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sim = Simulator::start(addr, config)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        eprintln!("smsroute sim: SMPP 3.4 simulator listening on {}", sim.local_addr());
        let _ = tokio::signal::ctrl_c().await;
        let s = sim.stats();
        eprintln!(
            "smsroute sim: {} binds ({} refused), {} submits, {} accepted, {} throttled, {} refused, {} receipts, {} garbage",
            s.binds.load(Ordering::Relaxed),
            s.binds_refused.load(Ordering::Relaxed),
            s.carrier.submits.load(Ordering::Relaxed),
            s.carrier.accepted.load(Ordering::Relaxed),
            s.carrier.throttled.load(Ordering::Relaxed),
            s.carrier.refused.load(Ordering::Relaxed),
            s.carrier.receipts.load(Ordering::Relaxed),
            s.garbage.load(Ordering::Relaxed),
        );
        Ok(())
    })
}
