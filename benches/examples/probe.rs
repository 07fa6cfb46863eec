use std::hint::black_box;
use std::time::Instant;

use smsroute_benches::deck::Deck;
use smsroute_benches::naive::NaiveTrie;
use smsroute_routing::AllHealthy;

fn main() {
    let size: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let deck = Deck::generate(size, 0xDEC0 + size as u64);
    let table = deck.table();
    let queries = deck.queries(1 << 16, 5);
    let n = 4_000_000;
    for round in 0..2 {
        let t = Instant::now();
        let mut acc = 0usize;
        for i in 0..n {
            acc += table
                .candidates(black_box(&queries[i & 0xFFFF]))
                .offers
                .len();
        }
        println!(
            "{round} candidates: {:.1} ns ({acc})",
            t.elapsed().as_nanos() as f64 / n as f64
        );
        let t = Instant::now();
        for i in 0..n {
            acc += table
                .route(black_box(&queries[i & 0xFFFF]), &AllHealthy, i as u64)
                .candidates
                .len();
        }
        println!(
            "{round} route: {:.1} ns ({acc})",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
    let mut naive = NaiveTrie::default();
    for (i, (p, _)) in deck.prefixes.iter().enumerate() {
        naive.insert(p, i as u32);
    }
    let t = Instant::now();
    let mut acc = 0u64;
    for i in 0..n {
        acc += u64::from(
            naive
                .longest_match(black_box(queries[i & 0xFFFF].as_str().as_bytes()))
                .unwrap_or(0),
        );
    }
    println!(
        "naive: {:.1} ns ({acc})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    let smaps = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    println!(
        "{}",
        smaps
            .lines()
            .filter(|l| l.contains("AnonHuge") || l.starts_with("Rss"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}
#[allow(dead_code)]
fn huge() {}
