//! What routing made of the contracts: the share of the summed contracted rate used after
//! the warm-up, and the cost per segment against the floor the contracts allow.
//!
//! The floor gives the segments each candidate list received, cheapest list first, to its
//! candidates in price order within each carrier's contracted segments for the period its
//! route table was in force (a greedy fill: exact when every number has the same candidates,
//! as in `spillover`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::StatusEvent;
use smsroute_routing::RouteTable;

/// The figures in the report (`routing`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SpendReport {
    /// Segments submitted between the warm-up and the end of the load, over the summed
    /// contracted segments of that window.
    pub contracted_use: f64,
    /// Mean price paid per segment submitted in that window.
    pub cost_per_segment: f64,
    /// The least mean price the contracts allowed for the same segments (greedy fill).
    pub cost_floor_per_segment: f64,
    /// Submits in the last third of the load, by network (the number's first
    /// `[routing] quality_digits` digits) and carrier: where each network's traffic ended up.
    pub late_networks: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Tallies submits by price while the events come.
pub struct Spend {
    /// Route tables in force from a harness time (µs), oldest first.
    tables: Vec<(u64, RouteTable)>,
    /// The measured window, µs on the harness clock.
    window: (u64, u64),
    /// Contracted segments per second by carrier id (the last contract seen).
    tps: HashMap<String, u32>,
    /// Segments submitted in the window.
    segments: u64,
    /// Their price, micro-units.
    paid: u128,
    /// Segments by candidate list: (table, [(carrier id, price)] cheapest first).
    lists: HashMap<(usize, Vec<(u16, u64)>), u64>,
    /// Digits that name a network, and where the last third of the load starts (µs).
    network_digits: usize,
    late_from: u64,
    late_networks: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Spend {
    /// For a run on `config`, reloaded to each `(at_s, config)`, measured from `warmup_s` to
    /// `end_s`.
    pub fn new(config: &Config, reloads: &[(f64, Config)], warmup_s: f64, end_s: f64) -> Self {
        let mut tables = Vec::new();
        let mut tps = HashMap::new();
        for (at, config) in
            std::iter::once((0.0, config)).chain(reloads.iter().map(|(a, c)| (*a, c)))
        {
            if let Ok(table) = RouteTable::compile(config) {
                tables.push(((at * 1e6) as u64, table));
            }
            for c in &config.carriers {
                tps.insert(c.id.clone(), c.tps);
            }
        }
        let (from, to) = ((warmup_s * 1e6) as u64, (end_s * 1e6) as u64);
        Spend {
            tables,
            window: (from, to),
            tps,
            segments: 0,
            paid: 0,
            lists: HashMap::new(),
            network_digits: usize::from(config.routing.quality_digits),
            late_from: to - (to.saturating_sub(from)) / 3,
            late_networks: BTreeMap::new(),
        }
    }

    /// Folds in one event seen at `at_us`.
    pub fn record(&mut self, event: &StatusEvent, at_us: u64) {
        let (Event::Submitted { .. }, Some(name)) = (event.event, event.carrier_name) else {
            return;
        };
        if !(self.window.0..self.window.1).contains(&at_us) {
            return;
        }
        let Some(t) = self.tables.iter().rposition(|(from, _)| *from <= at_us) else {
            return;
        };
        if at_us >= self.late_from {
            let number = event.message.to().as_str();
            let network = &number[..self.network_digits.min(number.len())];
            *self
                .late_networks
                .entry(network.to_string())
                .or_default()
                .entry(name.to_string())
                .or_default() += 1;
        }
        let table = &self.tables[t].1;
        let offers = table.candidates(event.message.to()).offers;
        let Some(price) = offers
            .iter()
            .find(|o| table.carrier_id(o.carrier) == name)
            .map(|o| o.cost.micros())
        else {
            return;
        };
        let segments = u64::from(event.message.segments());
        self.segments += segments;
        self.paid += u128::from(price) * u128::from(segments);
        let mut list: Vec<(u16, u64)> = offers
            .iter()
            .map(|o| (o.carrier.0, o.cost.micros()))
            .collect();
        list.sort_by_key(|&(c, price)| (price, c));
        *self.lists.entry((t, list)).or_default() += segments;
    }

    /// The figures, when anything was submitted in the window.
    pub fn report(&self) -> Option<SpendReport> {
        if self.segments == 0 {
            return None;
        }
        let (w0, w1) = self.window;
        let seconds = (w1 - w0) as f64 / 1e6;
        let contracted: f64 = self.tps.values().map(|&t| f64::from(t) * seconds).sum();
        let mut lists: Vec<_> = self.lists.iter().collect();
        lists.sort_by_key(|((t, list), _)| (*t, list.first().map(|l| l.1)));
        let mut floor = 0.0;
        // Each table's period: the contracts' segments within it are what its lists can use.
        let mut room: HashMap<&str, f64> = HashMap::new();
        let mut period = usize::MAX;
        for ((t, list), &segments) in lists {
            let table = &self.tables[*t].1;
            if *t != period {
                period = *t;
                let from = self.tables[*t].0.max(w0);
                let to = self.tables.get(*t + 1).map_or(w1, |n| n.0.min(w1));
                let span = to.saturating_sub(from) as f64 / 1e6;
                room = self
                    .tps
                    .iter()
                    .map(|(id, &tps)| (id.as_str(), f64::from(tps) * span))
                    .collect();
            }
            let mut left = segments as f64;
            for &(carrier, price) in list {
                let id = table.carrier_id(smsroute_routing::CarrierIndex(carrier));
                let Some(free) = room.get_mut(id) else {
                    continue;
                };
                let take = left.min(*free);
                *free -= take;
                left -= take;
                floor += take * price as f64;
            }
            // Beyond every contract (a burst): at the dearest price.
            floor += left * list.last().map_or(0, |l| l.1) as f64;
        }
        let per_segment = |micros: f64| micros / self.segments as f64 / 1e6;
        Some(SpendReport {
            contracted_use: self.segments as f64 / contracted.max(1.0),
            cost_per_segment: per_segment(self.paid as f64),
            cost_floor_per_segment: per_segment(floor),
            late_networks: self.late_networks.clone(),
        })
    }
}
