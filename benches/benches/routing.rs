//! `routing/*`: full lookup and ranking on the compiled trie, against a naive 10-ary trie
//! (LPM only) and an ordered regex list (as Jasmin routes), on generated rate decks.
//!
//! Sizes to run: `SMSROUTE_BENCH_SIZES=1k,100k,1M,10M` (the default). Table statistics and
//! compile times go to stderr.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smsroute_benches::deck::Deck;
use smsroute_benches::naive::NaiveTrie;
use smsroute_routing::CarrierHealth;
use smsroute_types::SplitMix64;

const QUERIES: usize = 1 << 16;
const SIZES: [(&str, usize); 4] = [
    ("1k", 1_000),
    ("100k", 100_000),
    ("1M", 1_000_000),
    ("10M", 10_000_000),
];
/// The naive trie is measured up to 1M (at 10M it would need tens of GiB).
const NAIVE_MAX: usize = 1_000_000;

fn wanted(label: &str) -> bool {
    match std::env::var("SMSROUTE_BENCH_SIZES") {
        Ok(list) => list.split(',').any(|s| s.trim() == label),
        Err(_) => true,
    }
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(1));
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (label, size) in SIZES {
        if !wanted(label) {
            continue;
        }
        let deck = Deck::generate(size, 0xDEC0 + size as u64);
        let started = Instant::now();
        let table = deck.table();
        let compile = started.elapsed();
        let stats = table.stats();
        eprintln!(
            "routing/{label}: {} prefixes, {} routes, {} nodes, {} lists; {:.1} bytes/prefix; compiled in {:.3} s",
            stats.prefixes,
            stats.routes,
            stats.nodes,
            stats.lists,
            table.memory_bytes() as f64 / stats.prefixes as f64,
            compile.as_secs_f64()
        );
        let queries = deck.queries(QUERIES, 0x0BE5 + size as u64);

        // A health view that is read per candidate, as the engine's is (all healthy here).
        let health = vec![CarrierHealth::HEALTHY; table.carriers().len()];
        group.bench_function(BenchmarkId::new("lookup", label), |b| {
            let mut i = 0usize;
            let mut rng = SplitMix64::new(1);
            b.iter(|| {
                i = (i + 1) & (QUERIES - 1);
                let route = table.route(black_box(&queries[i]), &health[..], rng.next_u64());
                // Consume what a router uses: the chosen carrier and its price.
                black_box(route.first().map(|o| (o.carrier, o.cost)))
            })
        });
        drop(table);

        // The same deck with issue 18's features configured (dated rows: two tables, route
        // and sender buckets), looked up as the router does: the table in force now, the
        // route, and the first candidate under a price ceiling.
        if size <= NAIVE_MAX {
            let now = smsroute_routing::now_ms();
            let featured = deck.featured(now + 3_600_000);
            let ceiling = Some(smsroute_types::Money::from_micros(40_000));
            group.bench_function(BenchmarkId::new("lookup_featured", label), |b| {
                let mut i = 0usize;
                let mut rng = SplitMix64::new(1);
                b.iter(|| {
                    i = (i + 1) & (QUERIES - 1);
                    let table = featured.at(black_box(now));
                    let route = table.route(black_box(&queries[i]), &health[..], rng.next_u64());
                    black_box(
                        route
                            .iter()
                            .find(|o| o.within(ceiling))
                            .map(|o| (o.carrier, o.cost)),
                    )
                })
            });
        }

        if size <= NAIVE_MAX {
            let mut naive = NaiveTrie::default();
            for (i, (prefix, _)) in deck.prefixes.iter().enumerate() {
                naive.insert(prefix, i as u32);
            }
            eprintln!(
                "routing/naive_trie/{label}: {:.1} bytes/prefix",
                naive.memory_bytes() as f64 / deck.prefixes.len() as f64
            );
            group.bench_function(BenchmarkId::new("naive_trie", label), |b| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & (QUERIES - 1);
                    black_box(naive.longest_match(black_box(queries[i].as_str().as_bytes())))
                })
            });
        }

        if size == 1_000 {
            // Longest first, so the first match is the longest prefix, as an LCR would order it.
            let mut prefixes: Vec<&String> = deck.prefixes.iter().map(|p| &p.0).collect();
            prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
            let routes: Vec<(regex::Regex, usize)> = prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        regex::Regex::new(&format!("^{p}")).expect("valid pattern"),
                        i,
                    )
                })
                .collect();
            group.bench_function(BenchmarkId::new("regex_list", label), |b| {
                let mut i = 0usize;
                b.iter(|| {
                    i = (i + 1) & (QUERIES - 1);
                    let number = queries[i].as_str();
                    black_box(
                        routes
                            .iter()
                            .find(|(re, _)| re.is_match(number))
                            .map(|r| r.1),
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
