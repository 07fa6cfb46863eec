//! The compiled trie agrees with a brute-force reference on random tables and numbers,
//! blocks and ported numbers included.

use proptest::prelude::*;
use smsroute_routing::{AllHealthy, CarrierIndex, CarrierInfo, DropReason, Offer, TableBuilder};
use smsroute_types::{E164, Money};

#[derive(Debug, Clone)]
struct Table {
    carriers: usize,
    /// (prefix, carrier, cost, tier, weight)
    routes: Vec<(String, usize, u64, u8, u32)>,
    blocks: Vec<String>,
    /// (number, route_as)
    ported: Vec<(String, String)>,
}

/// Digits from a small alphabet so prefixes nest and collide often; `0` included so digits
/// past a number's end (packed as zero nibbles) are exercised. Never a leading zero.
fn digits(min: usize, max: usize) -> impl Strategy<Value = String> {
    let digit = || prop_oneof![Just('0'), Just('1'), Just('2')];
    (
        prop_oneof![Just('1'), Just('2')],
        proptest::collection::vec(digit(), min - 1..=max - 1),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

fn table() -> impl Strategy<Value = Table> {
    table_of(0..40)
}

/// Tables large enough (hundreds of nodes) that lookups enter through a multi-digit jump table.
fn large_table() -> impl Strategy<Value = Table> {
    table_of(400..900)
}

fn table_of(routes: std::ops::Range<usize>) -> impl Strategy<Value = Table> {
    let route = (digits(1, 8), 0usize..5, 0u64..4, 0u8..2, 1u32..4);
    (
        proptest::collection::vec(route, routes),
        proptest::collection::vec(digits(1, 9), 0..6),
        proptest::collection::vec((digits(7, 10), digits(1, 9)), 0..4),
    )
        .prop_map(|(mut routes, mut blocks, mut ported)| {
            routes.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            routes.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
            blocks.sort();
            blocks.dedup();
            ported.sort();
            ported.dedup_by(|a, b| a.0 == b.0);
            Table {
                carriers: 5,
                routes,
                blocks,
                ported,
            }
        })
}

/// The reference: scan every row and block, exactly as DESIGN.md words the rules.
/// What the reference decides for one number.
struct Expected {
    /// Offers in rank order, each with its carrier's prefix length.
    offers: Vec<(Offer, usize)>,
    blocked: bool,
    /// `(carrier, prefix length)` of carriers a block dropped.
    dropped: Vec<(usize, usize)>,
}

fn reference(t: &Table, number: &str) -> Expected {
    let digits = t
        .ported
        .iter()
        .find(|p| p.0 == number)
        .map_or(number, |p| p.1.as_str());
    let block_len = t
        .blocks
        .iter()
        .filter(|b| digits.starts_with(b.as_str()))
        .map(|b| b.len())
        .max();
    let mut offers = Vec::new();
    let mut dropped = Vec::new();
    for carrier in 0..t.carriers {
        let best = t
            .routes
            .iter()
            .filter(|r| r.1 == carrier && digits.starts_with(r.0.as_str()))
            .max_by_key(|r| r.0.len());
        let Some((prefix, _, cost, tier, weight)) = best else {
            continue;
        };
        if block_len.is_some_and(|b| prefix.len() <= b) {
            dropped.push((carrier, prefix.len()));
            continue;
        }
        let offer = Offer {
            cost: Money::from_micros(*cost),
            weight: *weight,
            carrier: CarrierIndex(carrier as u16),
            tier: *tier,
            own: true,
        };
        offers.push((offer, prefix.len()));
    }
    offers.sort_by_key(|(o, _)| (o.tier, o.cost, std::cmp::Reverse(o.weight), o.carrier));
    let blocked = offers.is_empty() && block_len.is_some();
    Expected {
        offers,
        blocked,
        dropped,
    }
}

fn compile(t: &Table) -> smsroute_routing::RouteTable {
    let mut b = TableBuilder::new();
    for i in 0..t.carriers {
        b.carrier(CarrierInfo::new(&format!("c{i}"))).unwrap();
    }
    for (prefix, carrier, cost, tier, weight) in &t.routes {
        b.route(
            prefix,
            CarrierIndex(*carrier as u16),
            Money::from_micros(*cost),
            *tier,
            *weight,
        )
        .unwrap();
    }
    for block in &t.blocks {
        b.block(block).unwrap();
    }
    for (number, route_as) in &t.ported {
        b.ported(E164::parse(number).unwrap(), route_as).unwrap();
    }
    b.build().unwrap()
}

fn check_against_reference(t: &Table, numbers: &[String]) -> Result<(), TestCaseError> {
    let compiled = compile(t);
    // Query random numbers and every ported number too.
    let all = numbers
        .iter()
        .cloned()
        .chain(t.ported.iter().map(|p| p.0.clone()));
    for number in all {
        let e164 = E164::parse(&number).unwrap();
        let Expected {
            offers: want,
            blocked: want_blocked,
            dropped: want_dropped,
        } = reference(t, &number);
        let got = compiled.candidates(&e164);
        let terms = |o: &Offer| (o.carrier, o.cost, o.tier, o.weight);
        let got_terms: Vec<_> = got.offers.iter().map(terms).collect();
        let want_terms: Vec<_> = want.iter().map(|(o, _)| terms(o)).collect();
        prop_assert_eq!(got_terms, want_terms, "offers for {}", number);
        prop_assert_eq!(got.blocked, want_blocked, "blocked flag for {}", number);

        let explained = compiled.explain(&e164, &AllHealthy);
        let prefixes: Vec<(usize, usize)> = explained
            .candidates
            .iter()
            .map(|c| (c.carrier.get(), c.prefix.len()))
            .collect();
        let want_prefixes: Vec<(usize, usize)> = want
            .iter()
            .map(|(o, len)| (o.carrier.get(), *len))
            .collect();
        prop_assert_eq!(prefixes, want_prefixes, "candidate prefixes for {}", number);
        let mut dropped: Vec<(usize, usize)> = explained
            .dropped
            .iter()
            .map(|d| {
                assert!(matches!(d.reason, DropReason::Blocked { .. }));
                (d.carrier.get(), d.prefix.len())
            })
            .collect();
        dropped.sort();
        prop_assert_eq!(dropped, want_dropped, "dropped for {}", number);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn trie_matches_brute_force(t in table(), numbers in proptest::collection::vec(digits(7, 12), 1..30)) {
        check_against_reference(&t, &numbers)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn large_tables_match_brute_force(t in large_table(), numbers in proptest::collection::vec(digits(7, 12), 50..100)) {
        check_against_reference(&t, &numbers)?;
    }
}
