//! The handles of a node sharing contracts through Redis (`[cluster]`).

use metrics::{Counter, Gauge, counter, gauge};

use crate::names::{CLUSTER_FAILURES, CLUSTER_LIVE_NODES, CLUSTER_REDIS_UP, CLUSTER_ROUND_TRIPS};

/// A node's cluster metrics, registered once.
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    /// 1 while leasing from Redis, 0 on static shares.
    pub redis_up: Gauge,
    /// Live nodes last seen.
    pub live_nodes: Gauge,
    /// Round trips to Redis for leases.
    pub round_trips: Counter,
    /// Failed renewals.
    pub failures: Counter,
}

impl ClusterMetrics {
    /// Registers the handles with the installed recorder.
    pub fn register() -> Self {
        Self {
            redis_up: gauge!(CLUSTER_REDIS_UP),
            live_nodes: gauge!(CLUSTER_LIVE_NODES),
            round_trips: counter!(CLUSTER_ROUND_TRIPS),
            failures: counter!(CLUSTER_FAILURES),
        }
    }
}
