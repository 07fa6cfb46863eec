//! Deterministic cost of lookups for cachegrind: `valgrind --tool=cachegrind target/release/examples/cg 1000000 N`
//! Run with N = 0 and N > 0; the difference is the lookups' share.
use std::hint::black_box;

use smsroute_benches::deck::Deck;
use smsroute_routing::CarrierHealth;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let size = args.next().expect("prefix count");
    let n = args.next().expect("lookups");
    let deck = Deck::generate(size, 0xDEC0 + size as u64);
    let table = deck.table();
    let queries = deck.queries(1 << 16, 5);
    let health = vec![CarrierHealth::HEALTHY; table.carriers().len()];
    let mut acc = 0usize;
    for i in 0..n {
        let route = table.route(black_box(&queries[i & 0xFFFF]), &health[..], i as u64);
        acc += route.first().map_or(0, |o| o.carrier.get() + o.cost.micros() as usize);
    }
    black_box(acc);
}
