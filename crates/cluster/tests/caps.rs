//! Frequency caps shared through a real `redis-server`: what one node sent a recipient counts
//! against the cap on the others within a fraction of a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use smsroute_cluster::{CapSync, RedisTarget};
use smsroute_policy::FrequencyCaps;

const PAIR: u64 = 0x5EED_0000_0000_0042;
const DAY: u32 = 86_400;

smsroute_cluster::on_server_and_cluster!(
    a_recipients_messages_on_one_node_count_on_the_others,
    a_recipients_messages_on_one_node_count_on_the_others_on_a_redis_cluster,
    counts_on_the_others
);

fn counts_on_the_others(redis: &RedisTarget) {
    let a = Arc::new(FrequencyCaps::new(1024));
    let b = Arc::new(FrequencyCaps::new(1024));
    let a_sync = CapSync::start(redis, "a", a.clone()).unwrap();
    let b_sync = CapSync::start(redis, "b", b.clone()).unwrap();
    // Three a day: node a sends two.
    let now = 1_000_000;
    assert!(a.try_take(PAIR, 3, DAY, now).is_some());
    assert!(a.try_take(PAIR, 3, DAY, now).is_some());
    let start = Instant::now();
    let recorded = || {
        b_sync
            .stats()
            .recorded
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while recorded() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "b recorded a's takes within 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("b recorded a's takes after {:?}", start.elapsed());
    // Node b may send one more, then the cap holds on both.
    assert!(b.try_take(PAIR, 3, DAY, now + 1).is_some());
    assert!(b.try_take(PAIR, 3, DAY, now + 2).is_none());
    // a learns of b's within a second; until then it might send one more, by design.
    let b_published = || b_pub(&b_sync);
    let start = Instant::now();
    while b_published() < 1 {
        assert!(start.elapsed() < Duration::from_secs(1), "b published");
        std::thread::sleep(Duration::from_millis(5));
    }
    let recorded_by_a = || {
        a_sync
            .stats()
            .recorded
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while recorded_by_a() < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "a recorded b's take"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        a.try_take(PAIR, 3, DAY, now + 3).is_none(),
        "a sends no fourth"
    );
    assert_eq!(
        a_sync
            .stats()
            .published
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    // A node that starts later reads what was sent before it.
    let c = Arc::new(FrequencyCaps::new(1024));
    let _c_sync = CapSync::start(redis, "c", c.clone()).unwrap();
    assert!(
        c.try_take(PAIR, 3, DAY, now + 4).is_none(),
        "c knows of all three"
    );
}

fn b_pub(sync: &CapSync) -> u64 {
    sync.stats()
        .published
        .load(std::sync::atomic::Ordering::Relaxed)
}
