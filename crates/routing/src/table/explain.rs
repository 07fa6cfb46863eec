//! `explain`: how a number is routed and why each carrier is in or out. Cold path.

use smsroute_types::{E164, Money, pack_digits};

use super::RouteTable;
use crate::rank::rank;
use crate::{CarrierHealth, CarrierIndex, HealthView};

/// A candidate as `explain` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// The carrier.
    pub carrier: CarrierIndex,
    /// The carrier's own longest matching prefix.
    pub prefix: String,
    /// Price per segment.
    pub cost: Money,
    /// Tier.
    pub tier: u8,
    /// Weight.
    pub weight: u32,
    /// Health at the time of the explanation.
    pub health: CarrierHealth,
}

/// Why a carrier that matched the number is not a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A block prefix at least as long as the carrier's own match.
    Blocked {
        /// The longest matching block prefix.
        block_prefix: String,
    },
    /// The carrier is ejected and others are available.
    Ejected,
    /// Its price is above the message's (or its class's) `max_price`.
    OverMaxPrice {
        /// The ceiling.
        max_price: Money,
    },
}

/// A carrier that matched but was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The carrier.
    pub carrier: CarrierIndex,
    /// Its own longest matching prefix.
    pub prefix: String,
    /// Why it was dropped.
    pub reason: DropReason,
}

/// The routing of one number, for people.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// The number.
    pub number: E164,
    /// For a ported number, the digits it routes as.
    pub ported_as: Option<String>,
    /// A block rule removed every carrier.
    pub blocked: bool,
    /// The longest block prefix that matched, if any.
    pub block_prefix: Option<String>,
    /// Every candidate was ejected, so all are used.
    pub panic_mode: bool,
    /// Candidates in rank order; an equal-cost healthy group by weight descending, then id.
    pub candidates: Vec<Explained>,
    /// Carriers that matched but are not candidates.
    pub dropped: Vec<Dropped>,
}

impl RouteTable {
    /// Explains the routing of `number` under `health` (use [`crate::AllHealthy`] offline).
    pub fn explain<H: HealthView + ?Sized>(&self, number: &E164, health: &H) -> Explanation {
        self.explain_priced(number, health, None)
    }

    /// [`RouteTable::explain`] for a message with a price ceiling: candidates dearer than
    /// `max_price` are dropped, as routing drops them.
    pub fn explain_priced<H: HealthView + ?Sized>(
        &self,
        number: &E164,
        health: &H,
        max_price: Option<Money>,
    ) -> Explanation {
        let found = self.candidates(number);
        let ported_as = found.ported.map(|i| self.ported[i as usize].1.to_string());
        let digits: &str = ported_as.as_deref().unwrap_or(number.as_str());
        let packed = pack_digits(digits.as_bytes());

        // Every carrier that matched on the path, with the depth of its own deepest row, and
        // the deepest block.
        let mut matched: Vec<(CarrierIndex, usize)> = Vec::new();
        let mut block_depth = None;
        self.trie.walk(packed, digits.len(), |depth, node| {
            // At a block, the list before the block first, then the (empty) list after it.
            let block = self.block_nodes.binary_search_by_key(&node, |b| b.0).ok();
            if block.is_some() {
                block_depth = Some(depth);
            }
            let before_block = block.map(|i| self.block_nodes[i].1);
            for list in before_block
                .into_iter()
                .chain([self.trie.nodes[node as usize].list])
            {
                for offer in self.lists.get(list).0.iter().filter(|o| o.own) {
                    match matched.iter_mut().find(|m| m.0 == offer.carrier) {
                        Some(m) => m.1 = depth,
                        None => matched.push((offer.carrier, depth)),
                    }
                }
            }
        });
        let block_prefix = block_depth.map(|d| digits[..d].to_string());
        let prefix_of = |carrier: CarrierIndex| {
            let depth = matched.iter().find(|m| m.0 == carrier).map_or(0, |m| m.1);
            digits[..depth].to_string()
        };

        let ranked = rank(found.offers, found.blocked, health, self.band, None);
        let mut candidates: Vec<Explained> = ranked
            .iter()
            .map(|o| Explained {
                carrier: o.carrier,
                prefix: prefix_of(o.carrier),
                cost: o.cost,
                tier: o.tier,
                weight: o.weight,
                health: health.health(o.carrier),
            })
            .collect();
        let mut dropped: Vec<Dropped> = Vec::new();
        for offer in found.offers {
            if !candidates.iter().any(|c| c.carrier == offer.carrier) {
                let prefix = prefix_of(offer.carrier);
                dropped.push(Dropped {
                    carrier: offer.carrier,
                    prefix,
                    reason: DropReason::Ejected,
                });
            }
        }
        for &(carrier, depth) in &matched {
            if !found.offers.iter().any(|o| o.carrier == carrier) {
                let block_prefix = block_prefix.clone().unwrap_or_default();
                let prefix = digits[..depth].to_string();
                dropped.push(Dropped {
                    carrier,
                    prefix,
                    reason: DropReason::Blocked { block_prefix },
                });
            }
        }
        if let Some(max) = max_price {
            for c in candidates.iter().filter(|c| c.cost > max) {
                dropped.push(Dropped {
                    carrier: c.carrier,
                    prefix: c.prefix.clone(),
                    reason: DropReason::OverMaxPrice { max_price: max },
                });
            }
            candidates.retain(|c| c.cost <= max);
        }
        dropped.sort_by_key(|d| d.carrier);
        Explanation {
            number: *number,
            ported_as,
            blocked: found.blocked,
            block_prefix,
            panic_mode: ranked.panic_mode,
            candidates,
            dropped,
        }
    }
}
