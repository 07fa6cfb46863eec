//! One way to Redis for every thread of the cluster: a single server, or a Redis Cluster
//! reached through any of its nodes. In a Redis Cluster each command goes to the primary that
//! holds its key's slot (every key a script touches shares one `{tag}`), a [`Pipe`] is split
//! into one pipeline per primary (all its replies or none: one failing primary fails it), a
//! [`Commands`] into one round trip per slot (a failing primary loses only its own commands'
//! replies), and scripts are loaded on every primary.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection, ClusterPipeline};
use redis::cluster_routing::Slot;
use redis::{
    Client, Cmd, Connection, ConnectionLike, ErrorKind, FromRedisValue, Pipeline, RedisError,
    RedisResult, ToRedisArgs, Value,
};

/// Where the nodes' shared state lives. Printed (`{:?}`) without passwords.
#[derive(Clone, PartialEq, Eq)]
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
                let client = ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // A failed round trip is retried by the caller's next one; a command
                    // redirected after a resharding (MOVED, ASK, also inside a pipeline) is
                    // sent again to its new primary.
                    .retries(2)
                    .min_retry_wait(5)
                    .max_retry_wait(timeout.as_millis().max(5) as u64)
                    .build()?;
                let connection = cluster_connection(&client, timeout)?;
                Ok(Link::Cluster(Box::new(ClusterLink {
                    client,
                    connection,
                    timeout,
                })))
            }
        }
    }
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn cluster_connection(client: &ClusterClient, timeout: Duration) -> RedisResult<ClusterConnection> {
    let connection = client.get_connection()?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// `INFO cluster` says `cluster_enabled:1` on a Redis Cluster node. A server that refuses
/// `INFO` (an ACL user without it, a renamed command) is taken for what it was given as.
fn refuse_cluster_node(connection: &mut Connection) -> RedisResult<()> {
    let info: String = match redis::cmd("INFO").arg("cluster").query(connection) {
        Ok(info) => info,
        Err(e) if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
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
    Cluster(Box<ClusterLink>),
}

/// A Redis Cluster connection and what it takes to open a new one.
pub(crate) struct ClusterLink {
    client: ClusterClient,
    connection: ClusterConnection,
    timeout: Duration,
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
            Link::Cluster(c) => c.connection.req_packed_command(cmd),
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
            Link::Cluster(c) => c.connection.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> RedisResult<Value> {
        match self {
            Link::Server(c) => c.req_command(cmd),
            Link::Cluster(c) => c.connection.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Server(c) => c.get_db(),
            Link::Cluster(c) => c.connection.get_db(),
        }
    }

    fn supports_pipelining(&self) -> bool {
        match self {
            Link::Server(c) => c.supports_pipelining(),
            Link::Cluster(c) => c.connection.supports_pipelining(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Link::Server(c) => c.check_connection(),
            Link::Cluster(c) => c.connection.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Server(c) => c.is_open(),
            Link::Cluster(c) => c.connection.is_open(),
        }
    }
}

/// A pipeline for a [`Link`]: one round trip to a server; one to each primary involved in a
/// Redis Cluster, all replies or an error (commands on the primaries that answered ran).
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
            (PipeKind::Cluster(p), Link::Cluster(c)) => p.query(&mut c.connection),
            _ => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "a pipeline built for the other kind of Redis connection",
            ))),
        }
    }
}

/// Commands whose replies are taken one by one: one round trip for all on a server; on a Redis
/// Cluster one per slot involved, so that a primary that fails (down, slow) loses only its own
/// commands' replies. A command that failed may still have run (its reply lost).
#[derive(Default)]
pub(crate) struct Commands {
    commands: Vec<(Slot, Cmd)>,
}

impl Commands {
    /// Adds `command`, whose keys are all in `key`'s slot.
    pub fn push(&mut self, key: &str, command: Cmd) {
        self.commands.push((Slot::for_key(key), command));
    }

    /// Whether no command was added.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Sends them: each command's reply in order (`None` where it failed) and the first error.
    /// On a cluster, a round trip that fails leaves its connections in doubt (a late reply
    /// could be read as the next one's), so the link is opened again before the next slot;
    /// if that fails too, the remaining commands fail with it.
    pub fn query<T: FromRedisValue>(
        &self,
        link: &mut Link,
    ) -> (Vec<Option<T>>, Option<RedisError>) {
        let mut replies: Vec<Option<T>> = self.commands.iter().map(|_| None).collect();
        let mut first_error = None;
        match link {
            Link::Server(connection) => {
                let mut pipe = redis::pipe();
                for (_, command) in &self.commands {
                    pipe.add_command(command.clone());
                }
                match pipe.query::<Vec<Value>>(connection) {
                    Ok(values) => {
                        first_error = convert(values, 0..self.commands.len(), &mut replies)
                    }
                    Err(e) => first_error = Some(e),
                }
            }
            Link::Cluster(cluster) => {
                let mut slots: Vec<(Slot, Vec<usize>)> = Vec::new();
                for (index, (slot, _)) in self.commands.iter().enumerate() {
                    match slots.iter_mut().find(|(s, _)| s == slot) {
                        Some((_, indexes)) => indexes.push(index),
                        None => slots.push((*slot, vec![index])),
                    }
                }
                let mut in_doubt = false;
                for (_, indexes) in slots {
                    if in_doubt {
                        match cluster_connection(&cluster.client, cluster.timeout) {
                            Ok(connection) => {
                                cluster.connection = connection;
                                in_doubt = false;
                            }
                            Err(e) => {
                                first_error.get_or_insert(e);
                                break;
                            }
                        }
                    }
                    let mut pipe = redis::cluster::cluster_pipe();
                    for &index in &indexes {
                        pipe.add_command(self.commands[index].1.clone());
                    }
                    let error = match pipe.query::<Vec<Value>>(&mut cluster.connection) {
                        Ok(values) => convert(values, indexes.iter().copied(), &mut replies),
                        Err(e) => {
                            in_doubt = true;
                            Some(e)
                        }
                    };
                    if let Some(e) = error {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        (replies, first_error)
    }
}

/// Puts `values`, the replies of the commands at `indexes`, into `replies`: the first reply
/// that is not a `T`.
fn convert<T: FromRedisValue>(
    values: Vec<Value>,
    indexes: impl Iterator<Item = usize>,
    replies: &mut [Option<T>],
) -> Option<RedisError> {
    let mut first_error = None;
    for (value, index) in values.into_iter().zip(indexes) {
        match T::from_redis_value(value) {
            Ok(reply) => replies[index] = Some(reply),
            Err(e) => {
                first_error.get_or_insert(RedisError::from(e));
            }
        }
    }
    first_error
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
