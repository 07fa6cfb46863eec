//! Quick A/B probe of lookup latency outside criterion: the minimum over interleaved rounds.
//! `cargo run --release -p smsroute-benches --example probe -- 1000000`
use std::hint::black_box;
use std::time::Instant;

use smsroute_benches::deck::Deck;
use smsroute_benches::naive::NaiveTrie;
use smsroute_routing::CarrierHealth;

fn time(n: usize, mut f: impl FnMut(usize) -> usize) -> f64 {
    let t = Instant::now();
    let mut acc = 0usize;
    for i in 0..n {
        acc = acc.wrapping_add(f(i));
    }
    black_box(acc);
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let size: usize = std::env::args()
        .nth(1)
        .expect("a prefix count")
        .parse()
        .expect("a number");
    let deck = Deck::generate(size, 0xDEC0 + size as u64);
    let table = deck.table();
    let queries = deck.queries(1 << 16, 5);
    let mut naive = NaiveTrie::default();
    for (i, (p, _)) in deck.prefixes.iter().enumerate() {
        naive.insert(p, i as u32);
    }
    let health = vec![CarrierHealth::HEALTHY; table.carriers().len()];
    let n = 1_000_000;
    let mut best = [f64::MAX; 3];
    for _ in 0..7 {
        let c = time(n, |i| {
            table
                .candidates(black_box(&queries[i & 0xFFFF]))
                .offers
                .len()
        });
        let o = time(n, |i| {
            table
                .candidates(black_box(&queries[i & 0xFFFF]))
                .offers
                .iter()
                .map(|o| o.cost.micros() as usize)
                .sum()
        });
        let f = time(n, |i| {
            table
                .candidates(black_box(&queries[i & 0xFFFF]))
                .offers
                .first()
                .map_or(0, |o| o.cost.micros() as usize)
        });
        let l = time(n, |i| {
            table
                .candidates(black_box(&queries[i & 0xFFFF]))
                .offers
                .last()
                .map_or(0, |o| o.cost.micros() as usize)
        });
        eprintln!("offers read all {o:.1} first {f:.1} last {l:.1}");
        let r = time(n, |i| {
            let route = table.route(black_box(&queries[i & 0xFFFF]), &health[..], i as u64);
            route
                .first()
                .map_or(0, |o| o.carrier.get() + o.cost.micros() as usize)
        });
        let v = time(n, |i| {
            naive
                .longest_match(black_box(queries[i & 0xFFFF].as_str().as_bytes()))
                .unwrap_or(0) as usize
        });
        eprintln!("round: candidates {c:.0} route {r:.0} naive {v:.0}");
        for (b, x) in best.iter_mut().zip([c, r, v]) {
            *b = b.min(x);
        }
    }
    println!(
        "{size}: candidates {:.1} ns, route {:.1} ns, naive {:.1} ns; route/naive {:.2}",
        best[0],
        best[1],
        best[2],
        best[1] / best[2]
    );
    let smaps = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let huge: Vec<&str> = smaps
        .lines()
        .filter(|l| l.starts_with("AnonHugePages"))
        .collect();
    eprintln!("{}", huge.join(" "));
}
