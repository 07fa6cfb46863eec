//! Route selection for smsroute: rate decks compiled into a digit trie, least-cost ranking
//! with live health, and `explain`.
//!
//! The main types: [`RouteTable`] (a checked `smsroute_config::Config` compiled into an
//! immutable snapshot; build it with [`RouteTable::compile`] or [`TableBuilder`]),
//! [`HealthView`] (carrier health, an input) and [`Route`] (the ranked decision).
//!
//! Semantics (see `docs/routing.md`): each carrier's own longest matching prefix decides
//! whether it serves a number and at what cost; a block rule drops every carrier whose own
//! match is not longer than the block; a ported number routes as its `route_as` digits.
//! Ranking is by tier, then cost × health penalty, with a weighted split among equal-cost
//! healthy carriers. No I/O, no clock, no locks: health and randomness come in as arguments.
//!
//! # Example
//! ```
//! use smsroute_config::Config;
//! use smsroute_routing::{AllHealthy, RouteTable};
//! use smsroute_types::E164;
//!
//! let config = Config::parse(r#"
//!     [[carriers]]
//!     id = "uk-alpha"
//!     tps = 500
//!     [[carriers]]
//!     id = "uk-beta"
//!     tps = 200
//!
//!     [[routes]]
//!     prefix = "44"
//!     carrier = "uk-alpha"
//!     cost = 0.0040
//!     [[routes]]
//!     prefix = "447"
//!     carrier = "uk-beta"
//!     cost = 0.0035
//! "#, "inline.toml").unwrap();
//! let table = RouteTable::compile(&config).unwrap();
//!
//! let number = E164::parse("+44 7700 900123").unwrap();
//! let route = table.route(&number, &AllHealthy, 0);
//! let order: Vec<&str> = route.iter().map(|c| table.carrier_id(c.carrier)).collect();
//! assert_eq!(order, ["uk-beta", "uk-alpha"]); // both serve it; beta is cheaper
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod health;
mod rank;
mod table;

pub use health::{AllHealthy, CarrierHealth, HealthState, HealthView};
pub use rank::{Route, rank};
pub use table::{
    BuildError, Candidates, CarrierIndex, CarrierInfo, DropReason, Dropped, Explained, Explanation,
    MAX_PERIODS, Offer, RouteDeck, RouteTable, TableBuilder, TableStats, now_ms,
};
