//! Route and sender buckets: a route row's own `tps` towards numbers under its prefix on its
//! carrier, and a sender id's own `tps` on every carrier (`[[senders]]`), enforced in the
//! carrier's lane together with the carrier's bucket (`dispatch::lanes`). A message passes
//! the longest matching route bucket of its carrier whose row is in force (dated rows:
//! `valid_from`, `valid_until`, `hours`), if any, and its sender's.
//!
//! Buckets are kept by key across reloads (carrier and prefix; sender id), so a reload
//! never refills one. A bucket whose contract other nodes share also has this node's lease
//! of it (`EngineOptions::leases`, named `route:CARRIER:PREFIX` and `sender:ID`).

use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;
use smsroute_config::{Config, RoutePeriod};
use smsroute_throttle::{Gcra, InvalidQuota, LeasePool, Quota};
use smsroute_types::{CarrierSlot, Message};

type Map<K> = HashMap<K, Bucket, ahash::RandomState>;

/// A route's or a sender's bucket, and this node's lease of it when other nodes share it.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    pub gcra: Arc<Gcra>,
    pub lease: Option<Arc<LeasePool>>,
    /// What it is keyed by, and its contract, for `smsroute explain`.
    pub kind: PathBucket,
}

/// A route or sender bucket as `smsroute explain` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathBucket {
    /// `"route"` or `"sender"`.
    pub kind: &'static str,
    /// The route row's prefix, or the sender id.
    pub key: Arc<str>,
    /// Its contract: segments a second, and depth.
    pub tps: u32,
    /// Bucket depth in segments.
    pub burst: u32,
}

/// The name a route row's own contract goes by among shared contracts
/// (`EngineOptions::leases`).
pub fn route_bucket_name(carrier: &str, prefix: &str) -> String {
    format!("route:{carrier}:{prefix}")
}

/// The name a sender id's own contract goes by among shared contracts.
pub fn sender_bucket_name(sender: &str) -> String {
    format!("sender:{sender}")
}

/// The route and sender buckets a message from `from` to `to` passes on carrier `carrier`
/// (an index into `config.carriers`) at `wall_ms` besides the carrier's own: the rule the
/// lanes apply, for `smsroute explain`.
pub fn buckets_on_path(
    config: &Config,
    carrier: usize,
    to: &str,
    from: Option<&str>,
    wall_ms: i64,
) -> Result<Vec<PathBucket>, InvalidQuota> {
    // A configuration holds at most MAX_CARRIERS carriers: every index is a slot.
    let slot = |index: usize| CarrierSlot(u16::try_from(index).unwrap_or(u16::MAX));
    let slots: Vec<CarrierSlot> = (0..config.carriers.len()).map(slot).collect();
    let buckets = Buckets::build(config, &slots, &Buckets::default(), &HashMap::new())?;
    let found = buckets.of_parts(slot(carrier), to.as_bytes(), from, wall_ms);
    Ok(found.into_iter().map(|b| b.kind.clone()).collect())
}

/// A route bucket's key: the carrier, the prefix's length and its digits as a number.
type RouteKey = (CarrierSlot, u8, u64);

/// Every route and sender bucket of one configuration.
#[derive(Debug, Default)]
pub(crate) struct Buckets {
    route: Map<RouteKey>,
    /// When each route bucket's rows are in force (one entry per row; any may hold).
    periods: HashMap<RouteKey, SmallVec<[RoutePeriod; 1]>, ahash::RandomState>,
    /// Per slot: the prefix lengths that have a bucket, longest first.
    lengths: Vec<SmallVec<[u8; 4]>>,
    senders: Map<Box<str>>,
}

/// Leading digits as a number (at most 15 of them: a prefix, or a network).
pub(crate) fn digits_value(digits: &[u8]) -> u64 {
    digits
        .iter()
        .fold(0, |n, d| n * 10 + u64::from(d.wrapping_sub(b'0')))
}

impl Buckets {
    /// The buckets of `config`, whose carrier `i` has slot `slot_of[i]`; a bucket whose key
    /// `previous` has keeps its state, with the new quota.
    pub fn build(
        config: &Config,
        slot_of: &[CarrierSlot],
        previous: &Buckets,
        leases: &HashMap<String, Arc<LeasePool>>,
    ) -> Result<Buckets, InvalidQuota> {
        let mut out = Buckets::default();
        let bucket = |old: Option<&Bucket>,
                      tps: u32,
                      burst: u32,
                      name: String,
                      kind: &'static str,
                      key: &str| {
            let quota = Quota::per_second(f64::from(tps), burst)?;
            let gcra = match old {
                Some(b) => {
                    b.gcra.set_quota(quota);
                    b.gcra.clone()
                }
                None => Arc::new(Gcra::new(quota)),
            };
            Ok::<_, InvalidQuota>(Bucket {
                gcra,
                lease: leases.get(&name).cloned(),
                kind: PathBucket {
                    kind,
                    key: key.into(),
                    tps,
                    burst,
                },
            })
        };
        for r in &config.routes {
            let Some((tps, burst)) = r.limit else {
                continue;
            };
            let slot = slot_of[r.carrier];
            let key = (
                slot,
                r.prefix.len() as u8,
                digits_value(r.prefix.as_bytes()),
            );
            out.periods.entry(key).or_default().push(r.period.clone());
            if out.route.contains_key(&key) {
                continue;
            }
            let name = route_bucket_name(&config.carriers[r.carrier].id, &r.prefix);
            let b = bucket(
                previous.route.get(&key),
                tps,
                burst,
                name,
                "route",
                &r.prefix,
            )?;
            out.route.insert(key, b);
            if out.lengths.len() <= slot.get() {
                out.lengths.resize(slot.get() + 1, SmallVec::new());
            }
            let lengths = &mut out.lengths[slot.get()];
            if !lengths.contains(&key.1) {
                lengths.push(key.1);
                lengths.sort_unstable_by(|a, b| b.cmp(a));
            }
        }
        for s in &config.senders {
            let old = previous.senders.get(s.id.as_str());
            let b = bucket(
                old,
                s.tps,
                s.burst,
                sender_bucket_name(&s.id),
                "sender",
                &s.id,
            )?;
            out.senders.insert(s.id.as_str().into(), b);
        }
        Ok(out)
    }

    /// No route or sender bucket: the lanes skip the lookup.
    pub fn is_empty(&self) -> bool {
        self.route.is_empty() && self.senders.is_empty()
    }

    /// The buckets a message to `carrier` passes besides the carrier's own, at `wall_ms`
    /// (milliseconds since the Unix epoch: dated rows' buckets apply while a row is in force).
    pub fn of(
        &self,
        carrier: CarrierSlot,
        message: &Message,
        wall_ms: i64,
    ) -> SmallVec<[&Bucket; 2]> {
        let to = message.to().as_str().as_bytes();
        self.of_parts(carrier, to, Some(message.from().as_str()), wall_ms)
    }

    /// As [`of`](Self::of), for a destination's digits and a sender id (if any).
    fn of_parts(
        &self,
        carrier: CarrierSlot,
        digits: &[u8],
        from: Option<&str>,
        wall_ms: i64,
    ) -> SmallVec<[&Bucket; 2]> {
        let mut out = SmallVec::new();
        for &len in self.lengths.get(carrier.get()).map_or(&[][..], |l| &l[..]) {
            let Some(head) = digits.get(..usize::from(len)) else {
                continue;
            };
            let key = (carrier, len, digits_value(head));
            let in_force = self
                .periods
                .get(&key)
                .is_some_and(|p| p.iter().any(|p| p.is_always() || p.holds(wall_ms)));
            if let (Some(b), true) = (self.route.get(&key), in_force) {
                out.push(b);
                break;
            }
        }
        if !self.senders.is_empty()
            && let Some(b) = from.and_then(|from| self.senders.get(from))
        {
            out.push(b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 18 review): a dated row's bucket throttled traffic before its row
    /// was in force.
    #[test]
    fn a_dated_rows_bucket_applies_only_while_its_row_is_in_force() {
        let text = "[[carriers]]\nid = \"a\"\ntps = 100\n\n\
            [[routes]]\nprefix = \"44\"\ncarrier = \"a\"\ncost = 0.01\n\
            [[routes]]\nprefix = \"4477\"\ncarrier = \"a\"\ncost = 0.01\ntps = 5\n\
            valid_from = \"2030-01-01T00:00:00Z\"\n\n\
            [[senders]]\nid = \"TENDLC\"\ntps = 1\n";
        let config = Config::parse(text, "t.toml").unwrap();
        let buckets = Buckets::build(
            &config,
            &[CarrierSlot(0)],
            &Buckets::default(),
            &HashMap::new(),
        )
        .unwrap();
        let message = Message::builder("447700900123", "ACME", "hi")
            .build()
            .unwrap();
        let from = smsroute_config::parse_instant("2030-01-01T00:00:00Z").unwrap();
        assert!(buckets.of(CarrierSlot(0), &message, from - 1).is_empty());
        assert_eq!(buckets.of(CarrierSlot(0), &message, from).len(), 1);
        let limited = Message::builder("447700900123", "TENDLC", "hi")
            .build()
            .unwrap();
        assert_eq!(
            buckets.of(CarrierSlot(0), &limited, from - 1).len(),
            1,
            "the sender's"
        );
        assert_eq!(buckets.of(CarrierSlot(0), &limited, from).len(), 2);
    }
}
