//! A carrier's lane: one FIFO per priority level. The highest level with messages goes
//! first, except that a level with a guaranteed share earns credit whenever another level
//! is served while it waits, and goes first once it has a whole admission's worth: so it
//! gets at least its share of the carrier's throughput and never starves.

use std::collections::VecDeque;

use smsroute_config::PRIORITY_LEVELS;

use crate::dlr::EntryKey;

/// The most credit a level keeps beyond one round of its share (so a long wait does not
/// turn into a long burst).
const SPARE_CREDIT: f32 = 1.0;

#[derive(Debug, Default)]
pub(crate) struct Lane {
    levels: [VecDeque<EntryKey>; PRIORITY_LEVELS],
    /// Guaranteed share of admissions per level, 0 to 0.9.
    shares: [f32; PRIORITY_LEVELS],
    credit: [f32; PRIORITY_LEVELS],
}

impl Lane {
    /// Sets each level's guaranteed share (the classes' `min_share_pct`).
    pub fn set_shares(&mut self, shares: [f32; PRIORITY_LEVELS]) {
        self.shares = shares.map(|s| s.clamp(0.0, 0.9));
    }

    pub fn push_back(&mut self, level: u8, key: EntryKey) {
        self.levels[usize::from(level).min(PRIORITY_LEVELS - 1)].push_back(key);
    }

    pub fn push_front(&mut self, level: u8, key: EntryKey) {
        self.levels[usize::from(level).min(PRIORITY_LEVELS - 1)].push_front(key);
    }

    /// The message to serve next and its level: a level owed its share first, else the
    /// highest level with messages.
    pub fn front(&self) -> Option<(u8, EntryKey)> {
        let owed =
            (0..PRIORITY_LEVELS).find(|&l| self.credit[l] >= 1.0 && !self.levels[l].is_empty());
        let level = owed.or_else(|| {
            (0..PRIORITY_LEVELS)
                .rev()
                .find(|&l| !self.levels[l].is_empty())
        })?;
        self.levels[level].front().map(|&k| (level as u8, k))
    }

    pub fn pop_front(&mut self, level: u8) {
        self.levels[usize::from(level)].pop_front();
    }

    /// A message of `level` was admitted: waiting levels with a share earn credit (so that a
    /// level with share s is served once for every (1 − s) / s others).
    pub fn served(&mut self, level: u8) {
        let level = usize::from(level);
        if self.credit[level] >= 1.0 {
            self.credit[level] -= 1.0;
        }
        for l in 0..PRIORITY_LEVELS {
            let share = self.shares[l];
            if l != level && share > 0.0 && !self.levels[l].is_empty() {
                let per_other = share / (1.0 - share);
                let most = (per_other + SPARE_CREDIT).max(2.0);
                self.credit[l] = (self.credit[l] + per_other).min(most);
            }
        }
    }

    /// Keys in the lane, stale ones (messages that left) included.
    pub fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    /// Keeps only the keys `keep` says are still waiting here.
    pub fn retain(&mut self, mut keep: impl FnMut(EntryKey) -> bool) {
        for level in &mut self.levels {
            level.retain(|&k| keep(k));
        }
    }

    /// Takes every key out, level by level in queue order.
    pub fn take_all(&mut self) -> Vec<(u8, EntryKey)> {
        let mut out = Vec::with_capacity(self.len());
        for (level, keys) in self.levels.iter_mut().enumerate() {
            out.extend(keys.drain(..).map(|k| (level as u8, k)));
        }
        out
    }

    /// Takes the newest message of the lowest level with messages.
    pub fn pop_back(&mut self) -> Option<(u8, EntryKey)> {
        let level = (0..PRIORITY_LEVELS).find(|&l| !self.levels[l].is_empty())?;
        self.levels[level].pop_back().map(|k| (level as u8, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `n` messages; returns how many were of level 0.
    fn serve(lane: &mut Lane, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                let (level, _) = lane.front().unwrap();
                lane.pop_front(level);
                lane.served(level);
                level == 0
            })
            .count()
    }

    #[test]
    fn higher_levels_first_and_a_share_is_kept() {
        let mut lane = Lane::default();
        lane.set_shares([0.1, 0.0, 0.0, 0.0]);
        for i in 0..100 {
            lane.push_back(0, EntryKey(i));
            lane.push_back(3, EntryKey(1_000 + i));
        }
        let low = serve(&mut lane, 100);
        // 10 % of the admissions while both wait; the rest to the highest level.
        assert!((9..=11).contains(&low), "{low}");
        // Without a share, strict priority.
        let mut strict = Lane::default();
        strict.push_back(0, EntryKey(1));
        strict.push_back(2, EntryKey(2));
        assert_eq!(strict.front(), Some((2, EntryKey(2))));
        assert_eq!(strict.pop_back(), Some((0, EntryKey(1))));
    }

    /// Regression (issue 18 review): credit was capped at two admissions, so a share above
    /// two thirds was not honoured.
    #[test]
    fn a_high_share_is_honoured() {
        let mut lane = Lane::default();
        lane.set_shares([0.8, 0.0, 0.0, 0.0]);
        for i in 0..200 {
            lane.push_back(0, EntryKey(i));
            lane.push_back(3, EntryKey(1_000 + i));
        }
        let low = serve(&mut lane, 100);
        assert!((78..=82).contains(&low), "{low}");
    }
}
