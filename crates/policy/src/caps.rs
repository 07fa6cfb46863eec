//! Per-(recipient, class) frequency caps in a fixed, lock-free table.
//!
//! Each pair is one atomic word: a 16-bit fingerprint, the index of the current fixed window
//! (24 bits) and the counts of the previous and the current window (12 bits each). A message
//! is allowed while `previous + current < max`: any sliding window of the class's length
//! overlaps at most two consecutive fixed windows, so no recipient ever gets more than `max`
//! in any window of that length (strict, and conservative: a recipient at its cap waits
//! until the windows move on). A pair lives in one of the 8 words of a cache line chosen by
//! its hash; a word whose windows have passed is reused. When all 8 hold live pairs, a new
//! recipient is refused rather than let through unchecked. Memory is fixed at 8 bytes a slot.
//!
//! Several nodes share caps by telling each other their takes: an observer
//! ([`on_take`](FrequencyCaps::on_take)) sees each one here, and
//! [`record`](FrequencyCaps::record) counts one taken elsewhere.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

/// Most messages a cap can allow per window (12-bit counts).
pub const MAX_CAP: u32 = 4095;

const LINE: usize = 8;
const WINDOW_MASK: u32 = 0xFF_FFFF;

fn pack(fingerprint: u16, window: u32, previous: u32, current: u32) -> u64 {
    (u64::from(fingerprint) << 48)
        | (u64::from(window & WINDOW_MASK) << 24)
        | (u64::from(previous.min(MAX_CAP)) << 12)
        | u64::from(current.min(MAX_CAP))
}

fn unpack(word: u64) -> (u16, u32, u32, u32) {
    (
        (word >> 48) as u16,
        ((word >> 24) as u32) & WINDOW_MASK,
        ((word >> 12) as u32) & 0xFFF,
        (word as u32) & 0xFFF,
    )
}

/// A cap taken for a message: give it back if the message is not accepted after all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapTicket {
    slot: usize,
    fingerprint: u16,
    window: u32,
}

/// Sees each take made here: the pair's hash, the window's length and the time (seconds).
type TakeObserver = Box<dyn Fn(u64, u32, u32) + Send + Sync>;

/// The table. See the module docs.
pub struct FrequencyCaps {
    slots: Box<[AtomicU64]>,
    lines: usize,
    observer: std::sync::OnceLock<TakeObserver>,
}

impl std::fmt::Debug for FrequencyCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrequencyCaps")
            .field("slots", &self.slots.len())
            .field("observed", &self.observer.get().is_some())
            .finish()
    }
}

impl FrequencyCaps {
    /// Room for about `capacity` (recipient, class) pairs (rounded up to whole cache lines).
    pub fn new(capacity: usize) -> Self {
        let lines = capacity.div_ceil(LINE).max(1);
        FrequencyCaps {
            slots: (0..lines * LINE).map(|_| AtomicU64::new(0)).collect(),
            lines,
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Calls `observer` with every take made here from now on (not [`record`](Self::record)s):
    /// the pair's hash, the window's length and the time, in seconds. It runs on the
    /// submitting thread: it must not block. One observer per table: `false` if one is set.
    pub fn on_take(&self, observer: impl Fn(u64, u32, u32) + Send + Sync + 'static) -> bool {
        self.observer.set(Box::new(observer)).is_ok()
    }

    /// Counts one message for the pair `hash` that another node sent at `at_s`, whatever the
    /// cap (it is already sent): in the pair's current window, or its previous one when the
    /// pair has moved on by one; a take older than that no longer counts. A pair whose line is
    /// full is not recorded.
    pub fn record(&self, hash: u64, window_s: u32, at_s: u32) {
        let fingerprint = ((hash >> 48) as u16).max(1);
        let window = (at_s / window_s.max(1)) & WINDOW_MASK;
        let base = (hash as usize % self.lines) * LINE;
        loop {
            let line = &self.slots[base..base + LINE];
            let (found, free) = find(line, fingerprint, window);
            let (i, word, next) = match found {
                Some((i, word)) => {
                    let (fp, w, prev, cur) = unpack(word);
                    // How far the pair's window is ahead of the take's.
                    let ahead = w.wrapping_sub(window) & WINDOW_MASK;
                    let next = match ahead {
                        0 => pack(fp, w, prev, cur + 1),
                        1 => pack(fp, w, prev + 1, cur),
                        WINDOW_MASK => pack(fp, window, cur, 1),
                        a if a < WINDOW_MASK / 2 => return,
                        _ => pack(fp, window, 0, 1),
                    };
                    (i, word, next)
                }
                None => match free {
                    Some((i, word)) => (i, word, pack(fingerprint, window, 0, 1)),
                    None => return,
                },
            };
            if line[i]
                .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Counts one message for the pair `hash` (well mixed) against `max` per `window_s`
    /// seconds at `now_s`; `None` when the cap is reached or the pair's line is full.
    pub fn try_take(&self, hash: u64, max: u32, window_s: u32, now_s: u32) -> Option<CapTicket> {
        let fingerprint = ((hash >> 48) as u16).max(1); // 0 marks an empty word
        let window = (now_s / window_s.max(1)) & WINDOW_MASK;
        let base = (hash as usize % self.lines) * LINE;
        let max = max.min(MAX_CAP);
        loop {
            let line = &self.slots[base..base + LINE];
            let (found, free) = find(line, fingerprint, window);
            let (i, word, previous, current) = match found {
                Some((i, word)) => {
                    let (_, w, prev, cur) = unpack(word);
                    let (prev, cur) = if w == window {
                        (prev, cur)
                    } else if w == window.wrapping_sub(1) & WINDOW_MASK {
                        (cur, 0)
                    } else {
                        (0, 0)
                    };
                    (i, word, prev, cur)
                }
                None => {
                    let (i, word) = free?;
                    (i, word, 0, 0)
                }
            };
            if previous + current >= max {
                return None;
            }
            let next = pack(fingerprint, window, previous, current + 1);
            if line[i]
                .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                if let Some(observer) = self.observer.get() {
                    observer(hash, window_s, now_s);
                }
                return Some(CapTicket {
                    slot: base + i,
                    fingerprint,
                    window,
                });
            }
            // Another message changed the line meanwhile: look again.
        }
    }

    /// Starts loading the pair's line, so the memory access overlaps the work done before
    /// [`try_take`](Self::try_take) (a fresh recipient's line is rarely in cache).
    #[inline]
    pub fn touch(&self, hash: u64) {
        prefetch(&self.slots[(hash as usize % self.lines) * LINE]);
    }

    /// Gives a taken cap back (the message was refused later, e.g. overloaded).
    pub fn give_back(&self, ticket: CapTicket) {
        let slot = &self.slots[ticket.slot];
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            let (fp, w, prev, cur) = unpack(word);
            (fp == ticket.fingerprint && w == ticket.window && cur > 0)
                .then(|| pack(fp, w, prev, cur - 1))
        });
    }
}

/// In a line: the pair's own word, and the first word that is empty or whose windows have
/// passed (by `window`), each as (index, word).
type Found = Option<(usize, u64)>;

fn find(line: &[AtomicU64], fingerprint: u16, window: u32) -> (Found, Found) {
    let mut free = None;
    for (i, slot) in line.iter().enumerate() {
        let word = slot.load(Ordering::Acquire);
        let (fp, w, _, _) = unpack(word);
        if word != 0 && fp == fingerprint {
            return (Some((i, word)), free);
        }
        let stale = word == 0 || (w != window && w != window.wrapping_sub(1) & WINDOW_MASK);
        if stale && free.is_none() {
            free = Some((i, word));
        }
    }
    (None, free)
}

/// Asks the CPU to bring `slot`'s cache line in without waiting for it: unlike a load, the
/// hint retires at once, so the work after it runs while the line arrives.
#[inline(always)]
#[allow(unsafe_code)]
fn prefetch(slot: &AtomicU64) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: a prefetch is only a hint: it never faults and reads or writes nothing the
    // program sees; the pointer comes from a live reference anyway. SSE is part of every
    // x86_64 target.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(slot).cast());
    }
    #[cfg(any(not(target_arch = "x86_64"), loom))]
    std::hint::black_box(slot.load(Ordering::Relaxed));
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn takes_recorded_from_elsewhere_count_against_the_cap() {
        let caps = FrequencyCaps::new(64);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        assert!(caps.on_take(move |h, w, t| sink.lock().unwrap().push((h, w, t))));
        let pair = 0xABCD_0000_0000_0001;
        // Another node sent two in this window (t = 150 of a 100 s window) and one in the
        // previous: a cap of 4 per 100 s leaves one.
        caps.record(pair, 100, 150);
        caps.record(pair, 100, 160);
        caps.record(pair, 100, 99);
        assert!(caps.try_take(pair, 4, 100, 170).is_some());
        assert!(caps.try_take(pair, 4, 100, 171).is_none());
        assert_eq!(
            *seen.lock().unwrap(),
            [(pair, 100, 170)],
            "records are not observed"
        );
        // A take from two windows back no longer counts.
        caps.record(pair, 100, 5);
        assert!(caps.try_take(pair, 4, 100, 172).is_none());
        // A record that moves the pair on: the old current becomes previous.
        let other = 0x1234_0000_0000_0002;
        caps.record(other, 100, 50);
        caps.record(other, 100, 150);
        assert!(
            caps.try_take(other, 2, 100, 151).is_none(),
            "1 previous + 1 current"
        );
        assert!(caps.try_take(other, 3, 100, 151).is_some());
    }

    #[test]
    fn words_pack_and_unpack() {
        let w = pack(0xBEEF, 0x12_3456, 7, 4095);
        assert_eq!(unpack(w), (0xBEEF, 0x12_3456, 7, 4095));
    }

    #[test]
    fn no_sliding_window_ever_holds_more_than_max() {
        // Property check by brute force: one pair, random send attempts over 10 windows;
        // every interval of one window's length holds at most `max` accepted sends.
        let caps = FrequencyCaps::new(64);
        let (max, window) = (3, 100);
        let mut rng = 0x1234_5678_9ABC_DEF0u64;
        let mut accepted = Vec::new();
        for t in 0..1000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng.is_multiple_of(3)
                && caps
                    .try_take(0xABCD_0000_0000_0042, max, window, t)
                    .is_some()
            {
                accepted.push(t);
            }
        }
        for (i, &start) in accepted.iter().enumerate() {
            let within = accepted[i..]
                .iter()
                .take_while(|&&t| t < start + window)
                .count();
            assert!(within <= max as usize, "{within} from {start}");
        }
        assert!(accepted.len() >= 10, "it does send: {}", accepted.len());
    }

    #[test]
    fn a_full_line_refuses_new_pairs_until_theirs_pass() {
        let caps = FrequencyCaps::new(8); // one line
        for k in 1..=8u64 {
            assert!(caps.try_take(k << 48, 1, 10, 0).is_some());
        }
        assert!(
            caps.try_take(9 << 48, 1, 10, 5).is_none(),
            "full of live pairs"
        );
        assert!(
            caps.try_take(9 << 48, 1, 10, 25).is_some(),
            "two windows on: reused"
        );
        let t = caps.try_take(10 << 48, 2, 10, 25).unwrap();
        assert!(caps.try_take(10 << 48, 2, 10, 26).is_some());
        assert!(caps.try_take(10 << 48, 2, 10, 27).is_none());
        caps.give_back(t);
        assert!(caps.try_take(10 << 48, 2, 10, 28).is_some(), "given back");
    }

    #[test]
    fn concurrent_takers_never_exceed_the_cap() {
        let caps = std::sync::Arc::new(FrequencyCaps::new(1024));
        let taken: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let caps = caps.clone();
                    s.spawn(move || {
                        (0..1000)
                            .filter(|_| caps.try_take(0x7777_0000_0000_0001, 50, 60, 0).is_some())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 50);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Racing takers of one pair's last message: exactly one gets it, whatever the order.
    #[test]
    fn one_taker_gets_the_last_message() {
        loom::model(|| {
            let caps = Arc::new(FrequencyCaps::new(8));
            assert!(caps.try_take(7 << 48, 2, 60, 0).is_some());
            let other = {
                let caps = caps.clone();
                loom::thread::spawn(move || caps.try_take(7 << 48, 2, 60, 1).is_some())
            };
            let mine = caps.try_take(7 << 48, 2, 60, 1).is_some();
            let theirs = other.join().unwrap();
            assert!(mine ^ theirs, "mine {mine}, theirs {theirs}");
        });
    }

    /// Two new pairs racing for the free words of one line both land, in different words:
    /// neither overwrites the other, so each is at its cap afterwards.
    #[test]
    fn new_pairs_never_share_a_word() {
        loom::model(|| {
            let caps = Arc::new(FrequencyCaps::new(8)); // one line
            let other = {
                let caps = caps.clone();
                loom::thread::spawn(move || caps.try_take(1 << 48, 1, 60, 0).is_some())
            };
            assert!(caps.try_take(2 << 48, 1, 60, 0).is_some());
            assert!(other.join().unwrap());
            assert!(caps.try_take(1 << 48, 1, 60, 0).is_none());
            assert!(caps.try_take(2 << 48, 1, 60, 0).is_none());
        });
    }

    /// A take recorded from another node while one is taken here: both count.
    #[test]
    fn a_record_racing_a_take_counts_both() {
        loom::model(|| {
            let caps = Arc::new(FrequencyCaps::new(8));
            let recorder = {
                let caps = caps.clone();
                loom::thread::spawn(move || caps.record(5 << 48, 60, 0))
            };
            assert!(caps.try_take(5 << 48, 3, 60, 0).is_some());
            recorder.join().unwrap();
            assert!(caps.try_take(5 << 48, 3, 60, 0).is_some());
            assert!(caps.try_take(5 << 48, 3, 60, 0).is_none());
        });
    }

    /// A cap given back while another message takes one: the count ends where the two
    /// operations put it, never below or above.
    #[test]
    fn give_back_racing_a_take() {
        loom::model(|| {
            let caps = Arc::new(FrequencyCaps::new(8));
            let ticket = caps.try_take(9 << 48, 2, 60, 0).unwrap();
            let taker = {
                let caps = caps.clone();
                loom::thread::spawn(move || caps.try_take(9 << 48, 2, 60, 0).is_some())
            };
            caps.give_back(ticket);
            assert!(taker.join().unwrap(), "one of two was free");
            // One taken, one given back and taken again: one left.
            assert!(caps.try_take(9 << 48, 2, 60, 0).is_some());
            assert!(caps.try_take(9 << 48, 2, 60, 0).is_none());
        });
    }
}
