//! Prints table statistics for generated decks: `cargo run --release -p smsroute-benches --example deck_stats -- 1000000`.
use std::time::Instant;

use smsroute_benches::deck::Deck;

fn main() {
    for arg in std::env::args().skip(1) {
        let size: usize = arg.parse().expect("a prefix count");
        let started = Instant::now();
        let deck = Deck::generate(size, 0xDEC0 + size as u64);
        let generated = started.elapsed();
        let started = Instant::now();
        let table = deck.table();
        let compiled = started.elapsed();
        let s = table.stats();
        println!(
            "{size}: {:?}; {:.1} bytes/prefix; generated in {:.2} s, compiled in {:.3} s",
            s,
            table.memory_bytes() as f64 / s.prefixes as f64,
            generated.as_secs_f64(),
            compiled.as_secs_f64()
        );
    }
}
