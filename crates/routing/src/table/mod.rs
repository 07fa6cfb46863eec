//! The compiled, immutable route table and its lookups.

mod build;
mod deck;
mod explain;
mod lists;
mod trie;

use smsroute_types::E164;

use crate::rank::{Route, rank};
use smsroute_config::Config;

use crate::HealthView;

pub use build::{BuildError, TableBuilder};
pub use deck::{MAX_PERIODS, RouteDeck, now_ms};
pub use explain::{DropReason, Dropped, Explained, Explanation};
pub use lists::{CarrierIndex, Offer};

/// A carrier as the table knows it: its id and contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarrierInfo {
    /// Unique id.
    pub id: Box<str>,
    /// Contracted segments per second.
    pub tps: u32,
    /// Token-bucket depth in segments.
    pub burst: u32,
    /// Most submits in flight.
    pub window: u32,
}

impl CarrierInfo {
    /// A carrier with default contract figures (tps 100, burst 10, window 64).
    pub fn new(id: &str) -> Self {
        Self {
            id: id.into(),
            tps: 100,
            burst: 10,
            window: 64,
        }
    }
}

/// Sizes of a compiled table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Carriers.
    pub carriers: usize,
    /// Rate-deck rows.
    pub routes: usize,
    /// Distinct route prefixes.
    pub prefixes: usize,
    /// Block rules.
    pub blocks: usize,
    /// Ported numbers.
    pub ported: usize,
    /// Trie nodes.
    pub nodes: usize,
    /// Distinct candidate lists.
    pub lists: usize,
}

/// What the trie says for a number, before health and ranking.
#[derive(Clone, Copy, Debug)]
pub struct Candidates<'a> {
    /// Each serving carrier's offer, in static rank order (tier, cost, weight desc, id).
    pub offers: &'a [Offer],
    /// A block rule emptied the list.
    pub blocked: bool,
    /// The number is ported; index into the ported table.
    pub ported: Option<u32>,
}

/// A compiled route table: immutable, shared by every router thread, swapped whole on reload.
#[derive(Clone, Debug)]
pub struct RouteTable {
    carriers: Vec<CarrierInfo>,
    trie: trie::Trie,
    lists: lists::Lists,
    /// `(node, list before the block)` sorted by node: what `explain` shows as dropped.
    block_nodes: Vec<(u32, u32)>,
    /// Ported numbers and their `route_as` digits, sorted by number.
    ported: Vec<(E164, Box<str>)>,
    stats: TableStats,
    /// Penalties up to this rank as 1 (`[routing] equal_cost_band_pct`).
    band: f32,
}

impl RouteTable {
    /// Compiles a checked configuration: the rows in force now, when some are dated
    /// ([`RouteDeck`] keeps every period).
    pub fn compile(config: &Config) -> Result<Self, BuildError> {
        if config.routes.iter().all(|r| r.period.is_always()) {
            return Self::compile_rows(config, |_| true);
        }
        Ok(RouteDeck::compile(config)?.into_table_at(now_ms()))
    }

    /// Compiles the rows of `config` that `in_force` keeps.
    fn compile_rows(
        config: &Config,
        mut in_force: impl FnMut(&smsroute_config::RouteConfig) -> bool,
    ) -> Result<Self, BuildError> {
        let mut b = TableBuilder::new();
        for c in &config.carriers {
            b.carrier(CarrierInfo {
                id: c.id.as_str().into(),
                tps: c.tps,
                burst: c.burst,
                window: c.window,
            })?;
        }
        for r in config.routes.iter().filter(|r| in_force(r)) {
            b.route(
                &r.prefix,
                CarrierIndex(r.carrier as u16),
                r.cost,
                r.tier,
                r.weight,
            )?;
        }
        for block in &config.blocks {
            b.block(&block.prefix)?;
        }
        for p in &config.ported {
            b.ported(p.number, &p.route_as)?;
        }
        b.equal_cost_band(config.routing.band_factor());
        b.build()
    }

    /// Every carrier, by index.
    pub fn carriers(&self) -> &[CarrierInfo] {
        &self.carriers
    }

    /// The carrier with this id.
    pub fn carrier_index(&self, id: &str) -> Option<CarrierIndex> {
        self.carriers
            .iter()
            .position(|c| &*c.id == id)
            .map(|i| CarrierIndex(i as u16))
    }

    /// The id of a carrier.
    pub fn carrier_id(&self, carrier: CarrierIndex) -> &str {
        &self.carriers[carrier.get()].id
    }

    /// Health penalties up to this factor rank as 1 (the equal-cost band).
    pub fn equal_cost_band(&self) -> f32 {
        self.band
    }

    /// Sizes of the table.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Bytes the compiled table holds: trie, candidate lists, block and ported side tables.
    pub fn memory_bytes(&self) -> usize {
        self.trie.memory_bytes()
            + self.lists.memory_bytes()
            + self.block_nodes.len() * size_of::<(u32, u32)>()
            + self
                .ported
                .iter()
                .map(|(_, r)| size_of::<(E164, Box<str>)>() + r.len())
                .sum::<usize>()
            + self
                .carriers
                .iter()
                .map(|c| size_of::<CarrierInfo>() + c.id.len())
                .sum::<usize>()
    }

    /// The serving carriers' offers for `number`: one trie walk, no allocation.
    #[inline]
    pub fn candidates(&self, number: &E164) -> Candidates<'_> {
        let hit = self.trie.lookup(number.packed(), number.len(), true);
        let (offers, blocked) = self.lists.get(hit.list);
        Candidates {
            offers,
            blocked,
            ported: hit.ported,
        }
    }

    /// Routes `number`: candidates ranked under `health`, with `pick` (a uniform random
    /// `u64`) choosing among equal-cost healthy carriers by weight.
    #[inline]
    pub fn route<H: HealthView + ?Sized>(&self, number: &E164, health: &H, pick: u64) -> Route<'_> {
        let found = self.candidates(number);
        rank(found.offers, found.blocked, health, self.band, Some(pick))
    }
}
