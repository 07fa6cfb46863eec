//! smsroute: the SMS routing core a gateway embeds. One dependency gives the [`Router`] (submit
//! messages, take status events, reload, shut down), its [`EngineOptions`], the
//! [`Config`]uration file, [`Message`]s and their [`StatusEvent`]s, the [`Carrier`] contract
//! and the SMPP carrier ([`SmppCarrier`]); the simulated carriers are behind the `sim`
//! feature. `docs/engine.md` has the design, `docs/configuration.md` the file format.
//!
//! For the library alone, without the `smsroute` command's dependencies:
//! `smsroute = { version = "0.1", default-features = false }` (add `features = ["sim"]` for
//! the simulators).
//!
//! # Example
//! A gateway over the SMPP carriers of its configuration (`examples/gateway.rs` runs this
//! against `smsroute sim`):
//! ```no_run
//! use std::time::Duration;
//! use smsroute::{Config, EngineOptions, Message, StreamExt};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_file("gateway.toml".as_ref())?;
//! let (router, mut events) = smsroute::start_smpp(&config, EngineOptions::default())?;
//! router.ready(Duration::from_secs(10)).await?; // every SMPP carrier bound, or why not
//! let message = Message::builder("+44 7700 900123", "ACME", "Your code is 1234")
//!     .client_ref("order-17")
//!     .build()?;
//! router.submit(message).await?; // waits while the router is full
//! while let Some(event) = events.next().await {
//!     println!("{} {}", event.client_ref().unwrap_or("-"), event.event.as_str());
//!     if event.is_terminal() {
//!         break;
//!     }
//! }
//! router.shutdown(Duration::from_secs(5)).await; // drains, then unbinds every carrier
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::time::Duration;

pub use futures::StreamExt;
pub use smsroute_carrier::{
    Accepted, BoxFuture, Carrier, DynCarrier, Inbound, LinkState, Receipt, SubmitError,
    SubmitRequest,
};
pub use smsroute_config::{CarrierConfig, SmppConfig};
pub use smsroute_config::{Config, ConfigError};
pub use smsroute_delivery::{AttemptOutcome, AttemptRecord, Event, FailReason, ReceiptStatus};
pub use smsroute_engine::{
    CarrierStats, EngineOptions, EventStream, InboundEvent, InboundStream, Keyword, NotReady,
    Refused, Rejection, ReloadReport, Router, RouterStats, SetupError, ShutdownReport, StatusEvent,
};
pub use smsroute_routing::{CarrierHealth, HealthState};
pub use smsroute_smpp::{EsmeConfig, SmppCarrier};
pub use smsroute_types::{CarrierSlot, InvalidMessage, Message, MessageBuilder, MessageId, Money};

/// Simulated carriers for trials and tests: in-process ([`sim::SimCarrier`]) and an SMPP 3.4
/// SMSC simulator ([`sim::Simulator`]), both following seeded behaviour models.
#[cfg(feature = "sim")]
pub mod sim {
    pub use smsroute_sim::*;
}

/// Starts a router whose carriers are the SMPP connections of `config` (each carrier's
/// `[carriers.smpp]` table; a carrier without one is `LinkState::NotConfigured` and takes no
/// traffic). The sessions connect and bind in the background: [`Router::ready`] waits for
/// them.
///
/// # Panics
/// Outside a tokio runtime.
pub fn start_smpp(
    config: &Config,
    options: EngineOptions,
) -> Result<(Router<SmppCarrier>, EventStream), SetupError> {
    let retry = smsroute_delivery::RetryPolicy::from(&config.retry);
    let submit_timeout = Duration::from_nanos(retry.submit_timeout);
    Router::start(config, options, move |c| smpp_carrier(c, submit_timeout))
}

/// The SMPP connection of one configured carrier (or one that never connects).
fn smpp_carrier(carrier: &CarrierConfig, submit_timeout: Duration) -> SmppCarrier {
    match &carrier.smpp {
        Some(smpp) => SmppCarrier::connect(
            &carrier.id,
            EsmeConfig::from_config(smpp, carrier.window, submit_timeout),
        ),
        None => SmppCarrier::unconfigured(&carrier.id),
    }
}
