//! The smsroute engine: the [`Router`] a gateway embeds. Messages go in through
//! [`Router::submit`] (non-blocking: an id or a [`Rejection`]); status events come out of an
//! [`EventStream`], exactly one terminal event (delivered, sent, failed, expired) per accepted
//! message.
//!
//! Inside, submitters route on their own threads (lock-free snapshot of the compiled table,
//! lock-free health board) and hand each message to one dispatcher task, which owns every
//! message's [state machine](smsroute_delivery::Delivery), a lane per carrier paced by its
//! token bucket (waiting for the bucket's "not before" time, never spinning) and its in-flight
//! window, the timers, the health trackers and the retry budgets. Carrier answers that come at
//! once are handled in the same turn; slower ones come back from a task per submit. Receipts
//! are correlated through a concurrent map. [`Router::reload`] swaps the route table
//! atomically while carriers keep their connections, buckets and health. Everything is
//! bounded: past `max_outstanding` messages or a full inbound queue, `submit` answers
//! [`Rejection::Overloaded`]. `docs/engine.md` has the design.
//!
//! # Example
//! ```
//! use smsroute_engine::{EngineOptions, Router};
//! use smsroute_config::Config;
//! use smsroute_sim::{Behaviour, SimCarrier};
//! use smsroute_delivery::Event;
//! use smsroute_types::Message;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let config = Config::parse(r#"
//!     [[carriers]]
//!     id = "alpha"
//!     tps = 100
//!     [[routes]]
//!     prefix = "44"
//!     carrier = "alpha"
//!     cost = 0.004
//! "#, "inline").unwrap();
//! let (router, mut events) = Router::start(&config, EngineOptions::default(), |c| {
//!     SimCarrier::new(&c.id, Behaviour::default(), 1)
//! }).unwrap();
//! let id = router.try_submit(Message::builder("447700900123", "ACME", "hi").build().unwrap()).unwrap();
//! loop {
//!     let e = events.recv().await.unwrap();
//!     if e.is_terminal() {
//!         assert_eq!((e.id, e.event), (id, Event::Delivered));
//!         break;
//!     }
//! }
//! let report = router.shutdown(std::time::Duration::from_secs(1)).await;
//! assert!(report.unfinished.is_empty());
//! # });
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod buckets;
mod dispatch;
mod dlr;
mod event;
mod inbound;
mod options;
mod park;
mod quality;
mod registry;
mod router;
mod shared;

pub use buckets::{PathBucket, buckets_on_path, route_bucket_name, sender_bucket_name};
pub use event::{EventStream, StatusEvent};
pub use inbound::{InboundEvent, InboundStream};
pub use options::EngineOptions;
pub use registry::MAX_CARRIERS;
pub use router::{
    CancelError, CarrierFactory, CarrierStats, MessageStatus, NotReady, Refused, Rejection,
    ReloadReport, Router, RouterStats, SetupError, ShutdownReport,
};
pub use smsroute_carrier::LinkState;
pub use smsroute_delivery::Phase;
pub use smsroute_policy::{Keyword, Suppression};
