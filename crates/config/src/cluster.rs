//! `[cluster]`: the Redis several nodes share their contracts through, this node's name, and
//! the lease length.

use toml::Spanned;

use super::raw::RawCluster;
use super::validate::{Checker, is_id};
use super::{ClusterConfig, DEFAULT_LEASE_MS, Secret};

pub(super) fn cluster(check: &mut Checker<'_>, raw: &Spanned<RawCluster>) -> ClusterConfig {
    let c = raw.get_ref();
    let url = match &c.url {
        Some(url) => {
            let text = url.get_ref();
            let scheme = text.split_once("://").map(|(scheme, _)| scheme);
            // Never the URL itself in an error: it may hold a password.
            match scheme {
                Some("redis") => {}
                Some("rediss") => check.error(
                    url.span(),
                    "cluster url: TLS to Redis (rediss://) is not supported by this build; use redis://host:port",
                ),
                _ => check.error(url.span(), "cluster url must be redis://host:port"),
            }
            text.clone()
        }
        None => {
            check.error(raw.span(), "[cluster] needs url (redis://host:port)");
            String::new()
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
        url: Secret(url),
        node_id,
        lease_ms: check.int(
            c.lease_ms.as_ref(),
            "lease_ms",
            (1, 1_000),
            DEFAULT_LEASE_MS,
        ),
    }
}
