//! Rate decks shaped like real ones: prefixes of 3–12 digits belong to ~5,000 networks; each
//! of 8 carriers covers a network with probability 0.5 at one price for the whole network, so
//! identical candidate lists repeat, as they do in real decks.

use std::collections::HashSet;

use smsroute_routing::{CarrierIndex, CarrierInfo, RouteDeck, RouteTable, TableBuilder};
use smsroute_types::{E164, Money, SplitMix64, pack_digits};

/// Networks in a generated deck.
pub const NETWORKS: usize = 5_000;
/// Carriers in a generated deck.
pub const CARRIERS: usize = 8;
/// Longest generated prefix.
pub const MAX_PREFIX: usize = 12;

/// One mobile network: a base prefix (country code + network code) and its carriers' prices.
#[derive(Clone, Debug)]
pub struct Network {
    /// Country code (1–3 digits) and network code (1–3 digits): 3 to 6 digits.
    pub base: String,
    /// `(carrier, price per segment)` for the carriers that cover this network (at least one).
    pub offers: Vec<(u16, Money)>,
}

/// A generated deck: networks and prefixes, each prefix under one network.
#[derive(Clone, Debug)]
pub struct Deck {
    /// The networks.
    pub networks: Vec<Network>,
    /// `(digits, network index)`; digits are 3–12 long and distinct.
    pub prefixes: Vec<(String, u32)>,
}

fn random_digits(rng: &mut SplitMix64, n: usize, out: &mut String) {
    for _ in 0..n {
        out.push(char::from(b'0' + rng.below(10) as u8));
    }
}

impl Deck {
    /// A deck of `prefixes` distinct prefixes, fixed by `seed`.
    pub fn generate(prefixes: usize, seed: u64) -> Deck {
        let mut rng = SplitMix64::new(seed);
        let networks: Vec<Network> = (0..NETWORKS)
            .map(|_| {
                let mut base = String::new();
                base.push(char::from(b'1' + rng.below(9) as u8));
                let country_rest = rng.below(3) as usize;
                let network_code = 1 + rng.below(3) as usize;
                random_digits(&mut rng, country_rest + network_code, &mut base);
                while base.len() < 3 {
                    random_digits(&mut rng, 1, &mut base);
                }
                let mut offers: Vec<(u16, Money)> = Vec::new();
                while offers.is_empty() {
                    for carrier in 0..CARRIERS as u16 {
                        if rng.chance(0.5) {
                            offers.push((carrier, Money::from_micros(500 + rng.below(50_000))));
                        }
                    }
                }
                Network { base, offers }
            })
            .collect();
        let mut seen: HashSet<(u64, u8)> = HashSet::with_capacity(prefixes);
        let mut out = Vec::with_capacity(prefixes);
        while out.len() < prefixes {
            let network = rng.below(networks.len() as u64) as u32;
            let base = &networks[network as usize].base;
            let len = base.len() + rng.below((MAX_PREFIX - base.len() + 1) as u64) as usize;
            let mut prefix = base.clone();
            random_digits(&mut rng, len - base.len(), &mut prefix);
            if seen.insert((pack_digits(prefix.as_bytes()), prefix.len() as u8)) {
                out.push((prefix, network));
            }
        }
        Deck {
            networks,
            prefixes: out,
        }
    }

    /// Rate-deck rows: every covering carrier of a prefix's network, at the network's price.
    pub fn rows(&self) -> impl Iterator<Item = (&str, u16, Money)> {
        self.prefixes.iter().flat_map(|(prefix, network)| {
            self.networks[*network as usize]
                .offers
                .iter()
                .map(move |&(c, cost)| (prefix.as_str(), c, cost))
        })
    }

    /// Compiles the deck.
    pub fn table(&self) -> RouteTable {
        let mut b = TableBuilder::new();
        for c in 0..CARRIERS {
            b.carrier(CarrierInfo::new(&format!("carrier-{c}")))
                .expect("8 carriers fit");
        }
        for (prefix, carrier, cost) in self.rows() {
            b.route(prefix, CarrierIndex(carrier), cost, 0, 1)
                .expect("generated rows are valid");
        }
        b.build().expect("generated rows are distinct")
    }

    /// The deck with issue 18's routing features configured, as a configuration compiles
    /// them: carrier 0 is repriced from `switch_ms` on (rows dated both sides, so the deck
    /// holds two tables), every row of carrier 1 has its own `tps`, and a `[[senders]]` row
    /// exists. (Price ceilings and quality penalties are applied per lookup by the caller.)
    pub fn featured(&self, switch_ms: i64) -> RouteDeck {
        let mut config = smsroute_config::Config::parse("", "featured").expect("empty config");
        for c in 0..CARRIERS {
            config.carriers.push(smsroute_config::CarrierConfig {
                id: format!("carrier-{c}"),
                tps: 100,
                burst: 10,
                window: 64,
                max_queue_wait_ms: None,
                smpp: None,
            });
        }
        let row = |prefix: &str, carrier: u16, cost: Money| smsroute_config::RouteConfig {
            prefix: prefix.to_string(),
            carrier: usize::from(carrier),
            cost,
            tier: 0,
            weight: 1,
            period: Default::default(),
            limit: (carrier == 1).then_some((50, 10)),
        };
        for (prefix, carrier, cost) in self.rows() {
            let mut r = row(prefix, carrier, cost);
            if carrier == 0 {
                r.period.valid_until = Some(switch_ms);
                let mut after = row(prefix, carrier, Money::from_micros(cost.micros() / 2));
                after.period.valid_from = Some(switch_ms);
                config.routes.push(after);
            }
            config.routes.push(r);
        }
        config.senders.push(smsroute_config::SenderConfig {
            id: "TENDLC".into(),
            tps: 1,
            burst: 10,
        });
        RouteDeck::compile(&config).expect("generated rows are valid")
    }

    /// `count` full numbers of 11–12 digits, each under a random prefix of the deck.
    pub fn queries(&self, count: usize, seed: u64) -> Vec<E164> {
        let mut rng = SplitMix64::new(seed);
        (0..count)
            .map(|_| {
                let (prefix, _) = &self.prefixes[rng.below(self.prefixes.len() as u64) as usize];
                let len = (11 + rng.below(2) as usize).max(prefix.len());
                let mut number = prefix.clone();
                random_digits(&mut rng, len - prefix.len(), &mut number);
                E164::parse(&number).expect("generated numbers are valid")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smsroute_routing::AllHealthy;

    #[test]
    fn decks_are_deterministic_distinct_and_routable() {
        let a = Deck::generate(20_000, 3);
        let b = Deck::generate(20_000, 3);
        assert_eq!(a.prefixes, b.prefixes);
        let distinct: HashSet<&String> = a.prefixes.iter().map(|p| &p.0).collect();
        assert_eq!(distinct.len(), 20_000);
        assert!(
            a.prefixes
                .iter()
                .all(|(p, _)| (3..=MAX_PREFIX).contains(&p.len()))
        );
        let table = a.table();
        // Every query falls under some prefix, so at least one carrier serves it.
        for q in a.queries(500, 9) {
            assert!(!table.route(&q, &AllHealthy, 0).is_empty(), "{q}");
        }
        // Prefixes of one network share one list (about 4 prefixes a network here).
        assert!(
            table.stats().lists < table.stats().prefixes / 2,
            "{:?}",
            table.stats()
        );
    }
}
