//! The live progress line of a run and its resident-memory samples.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;

use crate::ledger::Books;

/// Resident memory, MiB (Linux; 0 elsewhere).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / (1024.0 * 1024.0))
}

/// Once a second: a resident-memory sample, and the live progress line (rate, p99, in flight,
/// failovers; every second on a terminal, every five as plain lines otherwise).
pub(crate) struct Progress {
    /// Resident memory each second, MiB.
    pub rss_mb: Vec<f64>,
    enabled: bool,
    tty: bool,
    next_us: u64,
    last: (u64, u64),
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        Progress {
            rss_mb: Vec::new(),
            enabled,
            tty: std::io::stderr().is_terminal(),
            next_us: 1_000_000,
            last: (0, 0),
        }
    }

    /// Samples and prints when a second has passed since the last time.
    pub fn tick(&mut self, now: u64, books: &Books) {
        if now < self.next_us {
            return;
        }
        self.next_us = now + 1_000_000;
        self.rss_mb.push(rss_mb());
        self.print(now, books);
    }

    fn print(&mut self, now: u64, books: &Books) {
        let accepted = Books::total(&books.accepted);
        let (last_at, last_accepted) = self.last;
        self.last = (now, accepted);
        if !self.enabled || (!self.tty && !(now / 1_000_000).is_multiple_of(5)) {
            return;
        }
        let rate = (accepted - last_accepted) as f64 / ((now - last_at).max(1) as f64 / 1e6);
        let line = format!(
            "[{:>5.1} s] {:>9.0} msg/s  p99 {:>7.1} ms  in flight {:>7}  failovers {:>6}  rejected {}",
            now as f64 / 1e6,
            rate,
            books.recent_p99_us.load(Ordering::Relaxed) as f64 / 1e3,
            accepted.saturating_sub(books.terminal.load(Ordering::Relaxed)),
            books.failovers.load(Ordering::Relaxed),
            Books::total(&books.rejected),
        );
        if self.tty {
            eprint!("\r{line}");
        } else {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}
