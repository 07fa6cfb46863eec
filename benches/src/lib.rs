//! Shared pieces of the smsroute benches: a generator of realistic rate decks and the
//! baselines our code is measured against in the same criterion group.
//!
//! # Example
//! ```
//! use smsroute_benches::deck::Deck;
//! let deck = Deck::generate(1_000, 7);
//! let table = deck.table();
//! assert_eq!(table.stats().prefixes, 1_000);
//! assert!(deck.queries(10, 1).iter().all(|n| n.len() >= 11));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod deck;
pub mod journal;
pub mod naive;
pub mod pipeline;
