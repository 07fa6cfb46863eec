//! Compiling rate-deck rows, blocks and ported numbers into a [`RouteTable`].
//!
//! Rows are sorted once; the trie is then built depth-first from the sorted keys in linear
//! time, each node's candidate list resolved on the way down (a carrier's deeper row replaces
//! its shallower one; a block empties the list) and interned.

use smallvec::SmallVec;
use smsroute_types::{E164, MAX_DIGITS, Money, pack_digits};

use super::lists::{CarrierIndex, Interner, Offer, shift_id, sort_offers};
use super::trie::{MAX_SKIP, Node, Trie, chunk, digit};
use super::{CarrierInfo, RouteTable, TableStats};

/// Why rows could not be compiled into a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A prefix that is empty, too long or not all digits.
    #[error("prefix {0:?} must be 1 to 15 digits")]
    BadPrefix(String),
    /// Two rows for the same carrier and prefix.
    #[error("duplicate route for carrier {carrier:?} and prefix {prefix:?}")]
    DuplicateRoute {
        /// Carrier id.
        carrier: String,
        /// The prefix.
        prefix: String,
    },
    /// A route names a carrier index the builder never handed out.
    #[error("route names unknown carrier index {0}")]
    UnknownCarrier(u16),
    /// The same number ported twice.
    #[error("number {0} is ported twice")]
    DuplicatePorted(String),
    /// More carriers than [`smsroute_config::MAX_CARRIERS`] (what a `u16` indexes).
    #[error("too many carriers: at most {}", smsroute_config::MAX_CARRIERS)]
    TooManyCarriers,
    /// The dated rows make more distinct sets of rows in force than a deck compiles.
    #[error("dated routes make more than {} distinct periods", super::MAX_PERIODS)]
    TooManyPeriods,
}

#[derive(Clone, Copy)]
struct Row {
    packed: u64,
    len: u8,
    offer: Offer,
}

/// One distinct digit string and everything that ends at it.
#[derive(Clone, Copy)]
struct Key {
    packed: u64,
    len: u8,
    block: bool,
    ported: Option<u32>,
    rows: (u32, u32),
}

/// Collects carriers, rows, blocks and ported numbers, then compiles them.
///
/// ```
/// use smsroute_routing::{CarrierInfo, TableBuilder};
/// use smsroute_types::{E164, Money};
///
/// let mut b = TableBuilder::new();
/// let alpha = b.carrier(CarrierInfo::new("alpha")).unwrap();
/// b.route("44", alpha, Money::from_micros(4_000), 0, 1).unwrap();
/// let table = b.build().unwrap();
/// let found = table.candidates(&E164::parse("447700900123").unwrap());
/// assert_eq!(found.offers[0].carrier, alpha);
/// ```
pub struct TableBuilder {
    carriers: Vec<CarrierInfo>,
    rows: Vec<Row>,
    blocks: Vec<(u64, u8)>,
    ported: Vec<(E164, u64, u8, Box<str>)>,
    band: f32,
}

fn packed_prefix(prefix: &str) -> Result<(u64, u8), BuildError> {
    if prefix.is_empty() || prefix.len() > MAX_DIGITS || !prefix.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(BuildError::BadPrefix(prefix.to_string()));
    }
    Ok((pack_digits(prefix.as_bytes()), prefix.len() as u8))
}

fn unpack(packed: u64, len: u8) -> String {
    (0..usize::from(len))
        .map(|i| char::from(b'0' + digit(packed, i) as u8))
        .collect()
}

impl Default for TableBuilder {
    fn default() -> Self {
        Self {
            carriers: Vec::new(),
            rows: Vec::new(),
            blocks: Vec::new(),
            ported: Vec::new(),
            band: smsroute_config::RoutingConfig::default().band_factor(),
        }
    }
}

impl TableBuilder {
    /// An empty builder (equal-cost band: the configuration's default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Health penalties up to `factor` (at least 1) rank as 1.
    pub fn equal_cost_band(&mut self, factor: f32) -> &mut Self {
        self.band = factor.max(1.0);
        self
    }

    /// Adds a carrier; routes name it by the returned index.
    pub fn carrier(&mut self, info: CarrierInfo) -> Result<CarrierIndex, BuildError> {
        let index = u16::try_from(self.carriers.len()).map_err(|_| BuildError::TooManyCarriers)?;
        self.carriers.push(info);
        Ok(CarrierIndex(index))
    }

    /// Adds a rate-deck row.
    pub fn route(
        &mut self,
        prefix: &str,
        carrier: CarrierIndex,
        cost: Money,
        tier: u8,
        weight: u32,
    ) -> Result<(), BuildError> {
        if carrier.get() >= self.carriers.len() {
            return Err(BuildError::UnknownCarrier(carrier.0));
        }
        let (packed, len) = packed_prefix(prefix)?;
        self.rows.push(Row {
            packed,
            len,
            offer: Offer {
                cost,
                weight,
                carrier,
                tier,
                own: true,
            },
        });
        Ok(())
    }

    /// Adds a block rule.
    pub fn block(&mut self, prefix: &str) -> Result<(), BuildError> {
        self.blocks.push(packed_prefix(prefix)?);
        Ok(())
    }

    /// Adds a ported number that routes as the digits `route_as`.
    pub fn ported(&mut self, number: E164, route_as: &str) -> Result<(), BuildError> {
        let (packed, len) = packed_prefix(route_as)?;
        self.ported.push((number, packed, len, route_as.into()));
        Ok(())
    }

    /// Compiles the table.
    pub fn build(mut self) -> Result<RouteTable, BuildError> {
        self.rows
            .sort_unstable_by_key(|r| (r.packed, r.len, r.offer.carrier));
        if let Some(w) = self.rows.windows(2).find(|w| {
            (w[0].packed, w[0].len, w[0].offer.carrier)
                == (w[1].packed, w[1].len, w[1].offer.carrier)
        }) {
            return Err(BuildError::DuplicateRoute {
                carrier: self.carriers[w[0].offer.carrier.get()].id.to_string(),
                prefix: unpack(w[0].packed, w[0].len),
            });
        }
        self.ported.sort_by_key(|p| (p.0.packed(), p.0.len()));
        if let Some(w) = self.ported.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(BuildError::DuplicatePorted(w[0].0.to_string()));
        }
        let keys = self.keys();
        let prefixes = keys.iter().filter(|k| k.rows.0 < k.rows.1).count();

        let mut compiler = Compiler {
            nodes: vec![Node::EMPTY],
            interner: Interner::new(),
            block_nodes: Vec::new(),
            exact: Vec::new(),
        };
        compiler.node(0, 0, &keys, &self.rows, &Resolved::default());
        drop(keys);

        let (lists, shift) = compiler.interner.finish();
        for node in &mut compiler.nodes {
            node.list = shift_id(node.list, shift);
        }
        let mut block_nodes: Vec<(u32, u32)> = compiler
            .block_nodes
            .iter()
            .map(|&(node, list)| (node, shift_id(list, shift)))
            .collect();
        block_nodes.sort_unstable_by_key(|b| b.0);
        compiler.nodes.shrink_to_fit();
        let mut trie = Trie::new(compiler.nodes);
        // A ported number takes the list its route_as digits resolve to (prefix matches only).
        trie.exact = compiler
            .exact
            .iter()
            .map(|&(node, ported)| {
                let (_, packed, len, _) = &self.ported[ported as usize];
                (
                    node,
                    trie.lookup(*packed, usize::from(*len), false).list,
                    ported,
                )
            })
            .collect();
        trie.exact.sort_unstable_by_key(|e| e.0);

        let stats = TableStats {
            carriers: self.carriers.len(),
            routes: self.rows.len(),
            prefixes,
            blocks: self.blocks.len(),
            ported: self.ported.len(),
            nodes: trie.nodes.len(),
            lists: lists.count(),
        };
        Ok(RouteTable {
            stats,
            band: self.band,
            carriers: self.carriers,
            trie,
            lists,
            block_nodes,
            ported: self
                .ported
                .into_iter()
                .map(|(number, _, _, route_as)| (number, route_as))
                .collect(),
        })
    }

    /// Distinct digit strings in trie order, each with its rows, block flag and ported entry.
    fn keys(&mut self) -> Vec<Key> {
        let mut keys: Vec<Key> =
            Vec::with_capacity(self.rows.len() / 2 + self.blocks.len() + self.ported.len());
        let mut start = 0usize;
        while start < self.rows.len() {
            let (packed, len) = (self.rows[start].packed, self.rows[start].len);
            let end = start
                + self.rows[start..]
                    .iter()
                    .take_while(|r| r.packed == packed && r.len == len)
                    .count();
            keys.push(Key {
                packed,
                len,
                block: false,
                ported: None,
                rows: (start as u32, end as u32),
            });
            start = end;
        }
        let none = (0, 0);
        keys.extend(self.blocks.iter().map(|&(packed, len)| Key {
            packed,
            len,
            block: true,
            ported: None,
            rows: none,
        }));
        keys.extend(self.ported.iter().enumerate().map(|(i, (number, ..))| Key {
            packed: number.packed(),
            len: number.len() as u8,
            block: false,
            ported: Some(i as u32),
            rows: none,
        }));
        keys.sort_by_key(|k| (k.packed, k.len));
        keys.dedup_by(|later, kept| {
            if (later.packed, later.len) != (kept.packed, kept.len) {
                return false;
            }
            kept.block |= later.block;
            kept.ported = kept.ported.or(later.ported);
            if later.rows.0 < later.rows.1 {
                kept.rows = later.rows;
            }
            true
        });
        keys
    }
}

/// The candidate list in force below a node, while compiling.
#[derive(Clone, Default)]
struct Resolved {
    /// Interned id of `offers` (with the blocked flag).
    list: u32,
    offers: SmallVec<[Offer; 8]>,
    /// A block rule matched somewhere above.
    block_seen: bool,
}

struct Compiler {
    nodes: Vec<Node>,
    interner: Interner,
    /// `(node, list before the block emptied it)`, for `explain`.
    block_nodes: Vec<(u32, u32)>,
    /// `(node, ported index)`.
    exact: Vec<(u32, u32)>,
}

fn common_digits(a: &Key, b: &Key) -> usize {
    let same = ((a.packed ^ b.packed).leading_zeros() / 4) as usize;
    same.min(usize::from(a.len)).min(usize::from(b.len))
}

impl Compiler {
    /// Fills node `at`, which stands for the first `depth` digits shared by every key in `keys`.
    fn node(&mut self, at: u32, depth: usize, keys: &[Key], rows: &[Row], inherited: &Resolved) {
        let mut rest = keys;
        let own;
        let mut below = inherited;
        if let Some(key) = keys.first().filter(|k| usize::from(k.len) == depth) {
            rest = &keys[1..];
            if let Some(ported) = key.ported {
                self.nodes[at as usize].set_exact();
                self.exact.push((at, ported));
            }
            if key.block || key.rows.0 < key.rows.1 {
                own = self.resolve(at, key, rows, inherited);
                below = &own;
            }
        }
        // Every node carries the list in force at its depth, terminal or not.
        self.nodes[at as usize].list = below.list;
        if rest.is_empty() {
            return;
        }
        // (branch digit, group start, group end, depth the child stands for)
        let mut groups: SmallVec<[(u32, usize, usize, usize); 10]> = SmallVec::new();
        let mut start = 0;
        while start < rest.len() {
            let d = digit(rest[start].packed, depth);
            let end = start
                + rest[start..]
                    .iter()
                    .take_while(|k| digit(k.packed, depth) == d)
                    .count();
            // Keys are sorted, so the first and last of a group share the fewest digits.
            let child_depth = common_digits(&rest[start], &rest[end - 1]).min(depth + 1 + MAX_SKIP);
            groups.push((d, start, end, child_depth));
            start = end;
        }
        let first_child = self.nodes.len() as u32;
        let bitmap = groups.iter().fold(0u32, |m, g| m | (1 << g.0));
        self.nodes[at as usize].set_children(first_child, bitmap);
        for &(_, start, _, child_depth) in &groups {
            let skip_len = child_depth - depth - 1;
            self.nodes.push(Node::with_skip(
                chunk(rest[start].packed, depth + 1, skip_len),
                skip_len,
            ));
        }
        for (i, &(_, start, end, child_depth)) in groups.iter().enumerate() {
            self.node(
                first_child + i as u32,
                child_depth,
                &rest[start..end],
                rows,
                below,
            );
        }
    }

    /// The list of a prefix that has rows or a block: the inherited list with this prefix's
    /// rows replacing each carrier's shallower one; a block then empties it.
    fn resolve(&mut self, at: u32, key: &Key, rows: &[Row], inherited: &Resolved) -> Resolved {
        let mut resolved = inherited.clone();
        for offer in &mut resolved.offers {
            offer.own = false;
        }
        for row in &rows[key.rows.0 as usize..key.rows.1 as usize] {
            match resolved
                .offers
                .iter_mut()
                .find(|o| o.carrier == row.offer.carrier)
            {
                Some(existing) => *existing = row.offer,
                None => resolved.offers.push(row.offer),
            }
        }
        sort_offers(&mut resolved.offers);
        if key.block {
            let before = self.interner.intern(&resolved.offers, false);
            self.block_nodes.push((at, before));
            resolved.offers.clear();
            resolved.block_seen = true;
        }
        resolved.list = self.interner.intern(&resolved.offers, resolved.block_seen);
        self.nodes[at as usize].set_terminal();
        resolved
    }
}
