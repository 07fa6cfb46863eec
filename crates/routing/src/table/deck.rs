//! Rate decks with dates and hours: a configuration whose rows carry `valid_from` /
//! `valid_until` or a daily window compiles to one route table per distinct set of rows in
//! force, and the deck picks the table for an instant with two binary searches (the date
//! interval, then the UTC minute of the day). A window in an IANA zone adds the zone's clock
//! changes to the date intervals, so within each one its UTC edges are fixed. A new deck
//! loaded ahead of its date takes effect at its instant without a reload.

use smsroute_config::{Config, RouteConfig, Zone};

use super::{BuildError, RouteTable};

/// Most distinct tables one deck may compile to.
pub const MAX_PERIODS: usize = 64;

/// Route tables by period; undated decks have exactly one.
#[derive(Clone, Debug)]
pub struct RouteDeck {
    tables: Vec<RouteTable>,
    /// Sorted instants (ms since the Unix epoch) where some row starts or stops.
    instants: Vec<i64>,
    /// Sorted UTC minutes of the day where some row's window opens or closes.
    edges: Vec<u32>,
    /// Table index by (date interval, day segment): `(instants.len() + 1) × (edges.len() + 1)`.
    grid: Vec<u16>,
}

impl RouteDeck {
    /// Compiles every period of a checked configuration, following zone changes for
    /// [`Zone::horizon`] of now.
    pub fn compile(config: &Config) -> Result<RouteDeck, BuildError> {
        Self::compile_around(config, now_ms())
    }

    /// Compiles every period of a checked configuration, following zone changes (daylight
    /// saving) within [`Zone::horizon`] of `unix_ms`: `explain --at` compiles around its
    /// instant.
    pub fn compile_around(config: &Config, unix_ms: i64) -> Result<RouteDeck, BuildError> {
        if config.routes.iter().all(|r| r.period.is_always()) {
            return Ok(RouteDeck {
                tables: vec![RouteTable::compile_rows(config, |_| true)?],
                instants: Vec::new(),
                edges: Vec::new(),
                grid: vec![0],
            });
        }
        let windows = || config.routes.iter().filter_map(|r| r.period.hours.as_ref());
        // A zone's clock changes split date intervals too: within one, every offset is fixed.
        let (horizon_start, horizon_end) = Zone::horizon(unix_ms);
        let mut instants: Vec<i64> = config
            .routes
            .iter()
            .flat_map(|r| [r.period.valid_from, r.period.valid_until])
            .flatten()
            .chain(windows().flat_map(|w| w.zone.changes(horizon_start, horizon_end)))
            .collect();
        instants.sort_unstable();
        instants.dedup();
        // Any instant of an interval decides its date part and its offsets.
        let representative = |interval: usize| match interval {
            0 => instants.first().map_or(unix_ms, |first| first - 1),
            _ => instants[interval - 1],
        };
        let mut edges: Vec<u32> = (0..=instants.len())
            .flat_map(|interval| {
                let at = representative(interval);
                windows().flat_map(move |w| w.edges_with(w.zone.offset_min_at(at)))
            })
            .collect();
        edges.sort_unstable();
        edges.dedup();
        let dated: Vec<&RouteConfig> = config
            .routes
            .iter()
            .filter(|r| !r.period.is_always())
            .collect();
        let mut sets: Vec<Vec<bool>> = Vec::new();
        let mut grid = Vec::with_capacity((instants.len() + 1) * (edges.len() + 1));
        for interval in 0..=instants.len() {
            let at = representative(interval);
            let offsets: Vec<Option<i32>> = dated
                .iter()
                .map(|r| r.period.hours.as_ref().map(|w| w.zone.offset_min_at(at)))
                .collect();
            for segment in 0..=edges.len() {
                let minute = if segment == 0 { 0 } else { edges[segment - 1] };
                let active: Vec<bool> = dated
                    .iter()
                    .zip(&offsets)
                    .map(|(r, offset)| holds_on(r, at, minute, *offset))
                    .collect();
                let index = match sets.iter().position(|s| *s == active) {
                    Some(i) => i,
                    None if sets.len() == MAX_PERIODS => return Err(BuildError::TooManyPeriods),
                    None => {
                        sets.push(active);
                        sets.len() - 1
                    }
                };
                grid.push(index as u16);
            }
        }
        let tables = sets
            .iter()
            .map(|set| {
                let mut next = set.iter();
                RouteTable::compile_rows(config, |r| {
                    r.period.is_always() || next.next().copied().unwrap_or(false)
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(RouteDeck {
            tables,
            instants,
            edges,
            grid,
        })
    }

    /// The table in force at `unix_ms` (milliseconds since the Unix epoch).
    #[inline]
    pub fn at(&self, unix_ms: i64) -> &RouteTable {
        if self.tables.len() == 1 {
            return &self.tables[0];
        }
        &self.tables[usize::from(self.grid[self.cell(unix_ms)])]
    }

    /// Every table the deck compiled to (one per distinct set of rows in force).
    pub fn tables(&self) -> &[RouteTable] {
        &self.tables
    }

    /// The table in force at `unix_ms`, taken out of the deck.
    pub fn into_table_at(mut self, unix_ms: i64) -> RouteTable {
        let index = usize::from(self.grid[self.cell(unix_ms)]);
        self.tables.swap_remove(index)
    }

    fn cell(&self, unix_ms: i64) -> usize {
        let interval = self.instants.partition_point(|&i| i <= unix_ms);
        let minute = unix_ms.div_euclid(60_000).rem_euclid(1440) as u32;
        let segment = self.edges.partition_point(|&e| e <= minute);
        interval * (self.edges.len() + 1) + segment
    }
}

/// Whether row `r` is in force at instant `at` (for its dates) and UTC minute `minute` (for
/// its window, whose clock is `offset_min` ahead of UTC then).
fn holds_on(r: &RouteConfig, at: i64, minute: u32, offset_min: Option<i32>) -> bool {
    let p = &r.period;
    p.valid_from.is_none_or(|f| at >= f)
        && p.valid_until.is_none_or(|u| at < u)
        && p.hours
            .as_ref()
            .zip(offset_min)
            .is_none_or(|(w, offset)| w.holds_with(minute, offset))
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
