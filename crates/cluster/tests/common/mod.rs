//! What the cluster tests share: counting sends in windows.

use std::time::Duration;

/// Most sends within any window of `width`.
pub fn max_in_window(sends: &[Duration], width: Duration) -> usize {
    let mut most = 0;
    let mut start = 0;
    for end in 0..sends.len() {
        while sends[end] - sends[start] >= width {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

pub fn count_between(sends: &[Duration], from: Duration, until: Duration) -> usize {
    sends.iter().filter(|&&s| s >= from && s < until).count()
}
