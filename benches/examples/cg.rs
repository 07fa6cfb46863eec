//! Deterministic per-lookup costs for cachegrind, ours against the naive trie:
//! `valgrind --tool=cachegrind --cache-sim=yes --LL=8388608,16,64 target/release/examples/cg route 1000000 N`
//! Run with N = 0 and N > 0 (and `naive` for the baseline); the difference is the lookups'.
use std::hint::black_box;

use smsroute_benches::deck::Deck;
use smsroute_benches::naive::NaiveTrie;
use smsroute_routing::CarrierHealth;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().expect("route or naive");
    let mut numbers = args.map(|a| a.parse::<usize>().expect("a number"));
    let size = numbers.next().expect("prefix count");
    let n = numbers.next().expect("lookups");
    let deck = Deck::generate(size, 0xDEC0 + size as u64);
    let queries = deck.queries(1 << 16, 5);
    let mut acc = 0usize;
    if mode == "naive" {
        let mut naive = NaiveTrie::default();
        for (i, (p, _)) in deck.prefixes.iter().enumerate() {
            naive.insert(p, i as u32);
        }
        for i in 0..n {
            let number = black_box(&queries[i & 0xFFFF]);
            acc += naive.longest_match(number.as_str().as_bytes()).unwrap_or(0) as usize;
        }
    } else {
        let table = deck.table();
        let health = vec![CarrierHealth::HEALTHY; table.carriers().len()];
        for i in 0..n {
            let route = table.route(black_box(&queries[i & 0xFFFF]), &health[..], i as u64);
            acc += route
                .first()
                .map_or(0, |o| o.carrier.get() + o.cost.micros() as usize);
        }
    }
    black_box(acc);
}
