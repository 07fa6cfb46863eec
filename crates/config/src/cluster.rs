//! `[cluster]`: the Redis several nodes share their contracts through (one server, or a Redis
//! Cluster's nodes), this node's name, and the lease length.

use toml::Spanned;

use super::raw::RawCluster;
use super::validate::{Checker, is_id};
use super::{ClusterConfig, DEFAULT_LEASE_MS, RedisAddress, Secret};

pub(super) fn cluster(check: &mut Checker<'_>, raw: &Spanned<RawCluster>) -> ClusterConfig {
    let c = raw.get_ref();
    let redis = match (&c.url, &c.redis_cluster) {
        (Some(url), None) => RedisAddress::Server(redis_url(check, url, "cluster url")),
        (None, Some(nodes)) => {
            if nodes.get_ref().is_empty() {
                check.error(
                    nodes.span(),
                    "redis_cluster needs at least one node (redis://host:port)",
                );
            }
            RedisAddress::Cluster(
                nodes
                    .get_ref()
                    .iter()
                    .map(|url| redis_url(check, url, "redis_cluster node"))
                    .collect(),
            )
        }
        (Some(url), Some(_)) => {
            check.error(
                url.span(),
                "[cluster] takes url (one Redis server) or redis_cluster (a Redis Cluster's nodes), not both",
            );
            RedisAddress::Server(Secret(String::new()))
        }
        (None, None) => {
            check.error(
                raw.span(),
                "[cluster] needs url (redis://host:port) or redis_cluster (a Redis Cluster's nodes)",
            );
            RedisAddress::Server(Secret(String::new()))
        }
    };
    let node_id = match &c.node_id {
        Some(id) if is_id(id.get_ref()) => id.get_ref().clone(),
        Some(id) => {
            check.error(
                id.span(),
                format!("node_id must be [a-z0-9_-]+, got {:?}", id.get_ref()),
            );
            String::new()
        }
        None => {
            check.error(raw.span(), "[cluster] needs node_id (this node's name)");
            String::new()
        }
    };
    ClusterConfig {
        redis,
        node_id,
        lease_ms: check.int(
            c.lease_ms.as_ref(),
            "lease_ms",
            (1, 1_000),
            DEFAULT_LEASE_MS,
        ),
    }
}

/// A Redis URL, checked for its scheme; `what` names it in errors (never the URL itself: it
/// may hold a password).
fn redis_url(check: &mut Checker<'_>, url: &Spanned<String>, what: &str) -> Secret {
    let text = url.get_ref();
    match text.split_once("://").map(|(scheme, _)| scheme) {
        Some("redis") => {}
        Some("rediss") => check.error(
            url.span(),
            format!("{what}: TLS to Redis (rediss://) is not supported by this build; use redis://host:port"),
        ),
        _ => check.error(url.span(), format!("{what} must be redis://host:port")),
    }
    Secret(text.clone())
}
