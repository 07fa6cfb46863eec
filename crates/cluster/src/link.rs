//! One way to Redis for every thread of the cluster: a single server, or a Redis Cluster
//! reached through any of its nodes. In a Redis Cluster each command goes to the primary that
//! holds its key's slot (every key the scripts touch together shares one `{tag}`), a pipeline
//! is split by slot, and scripts are loaded on every primary.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection, ClusterPipeline};
use redis::{Client, Connection, ConnectionLike, Pipeline, RedisResult, ToRedisArgs, Value};

/// Where the nodes' shared state lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis server: `redis://[:password@]host:port[/db]`.
    Server(String),
    /// A Redis Cluster, through any of these nodes (the rest are found from them).
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// The URLs without their passwords, for errors and logs.
    pub fn redacted(&self) -> String {
        match self {
            RedisTarget::Server(url) => redact(url),
            RedisTarget::Cluster(urls) => {
                let urls: Vec<String> = urls.iter().map(|u| redact(u)).collect();
                format!("cluster [{}]", urls.join(", "))
            }
        }
    }

    /// Connects; connecting, each read and each write give up after `timeout`. A server
    /// that turns out to be a Redis Cluster node is refused: most keys would not be its own.
    pub(crate) fn connect(&self, timeout: Duration) -> RedisResult<Link> {
        match self {
            RedisTarget::Server(url) => {
                let mut connection =
                    Client::open(url.as_str())?.get_connection_with_timeout(timeout)?;
                connection.set_read_timeout(Some(timeout))?;
                connection.set_write_timeout(Some(timeout))?;
                refuse_cluster_node(&mut connection)?;
                Ok(Link::Server(connection))
            }
            RedisTarget::Cluster(urls) => {
                let connection = ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // A failed round trip is retried by the caller's next one; a redirect
                    // after a resharding still follows.
                    .retries(2)
                    .min_retry_wait(5)
                    .max_retry_wait(timeout.as_millis().max(5) as u64)
                    .build()?
                    .get_connection()?;
                connection.set_read_timeout(Some(timeout))?;
                connection.set_write_timeout(Some(timeout))?;
                Ok(Link::Cluster(Box::new(connection)))
            }
        }
    }
}

/// `INFO cluster` says `cluster_enabled:1` on a Redis Cluster node.
fn refuse_cluster_node(connection: &mut Connection) -> RedisResult<()> {
    let info: String = redis::cmd("INFO").arg("cluster").query(connection)?;
    if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "this Redis is a node of a Redis Cluster",
            "list its nodes as [cluster] redis_cluster = [...] instead of url".to_string(),
        )));
    }
    Ok(())
}

/// A connection to either kind of target.
pub(crate) enum Link {
    Server(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Link {
    /// An empty pipeline this connection can send.
    pub fn pipe(&self) -> Pipe {
        let kind = match self {
            Link::Server(_) => PipeKind::Server(redis::pipe()),
            Link::Cluster(_) => PipeKind::Cluster(redis::cluster::cluster_pipe()),
        };
        Pipe { kind, commands: 0 }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Link::Server(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Link::Server(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> RedisResult<Value> {
        match self {
            Link::Server(c) => c.req_command(cmd),
            Link::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Server(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }

    fn supports_pipelining(&self) -> bool {
        match self {
            Link::Server(c) => c.supports_pipelining(),
            Link::Cluster(c) => c.supports_pipelining(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Link::Server(c) => c.check_connection(),
            Link::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Server(c) => c.is_open(),
            Link::Cluster(c) => c.is_open(),
        }
    }
}

/// A pipeline for a [`Link`]: one round trip to a server; one to each primary involved in a
/// Redis Cluster.
pub(crate) struct Pipe {
    kind: PipeKind,
    commands: usize,
}

enum PipeKind {
    Server(Pipeline),
    Cluster(ClusterPipeline),
}

impl Pipe {
    /// Starts a command.
    pub fn cmd(&mut self, name: &str) -> &mut Self {
        self.commands += 1;
        match &mut self.kind {
            PipeKind::Server(p) => {
                p.cmd(name);
            }
            PipeKind::Cluster(p) => {
                p.cmd(name);
            }
        }
        self
    }

    /// Adds an argument to the last command.
    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        match &mut self.kind {
            PipeKind::Server(p) => {
                p.arg(arg);
            }
            PipeKind::Cluster(p) => {
                p.arg(arg);
            }
        }
        self
    }

    /// Leaves the last command's reply out of the result.
    pub fn ignore(&mut self) -> &mut Self {
        match &mut self.kind {
            PipeKind::Server(p) => {
                p.ignore();
            }
            PipeKind::Cluster(p) => {
                p.ignore();
            }
        }
        self
    }

    /// Whether no command was added.
    pub fn is_empty(&self) -> bool {
        self.commands == 0
    }

    /// Sends every command and reads the replies not ignored.
    pub fn query<T: redis::FromRedisValue>(&self, link: &mut Link) -> RedisResult<T> {
        match (&self.kind, link) {
            (PipeKind::Server(p), Link::Server(c)) => p.query(c),
            (PipeKind::Cluster(p), Link::Cluster(c)) => p.query(c),
            _ => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "a pipeline built for the other kind of Redis connection",
            ))),
        }
    }
}

/// `url` without its password.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}
