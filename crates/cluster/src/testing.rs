//! A real `redis-server` on a free port, or a real Redis Cluster of three, killed when
//! dropped: for tests (this crate's, `smsroute serve`'s) and the load-test harness. Without
//! `redis-server` on the PATH, [`RedisServer::start`] and [`RedisCluster::start`] say so and
//! give `None` (the caller's test then passes without running), unless
//! `SMSROUTE_REQUIRE_REDIS` is set: then they panic (CI sets it).
//! [`RedisServer::start_persistent`] and [`RedisCluster::launch`] are for tools: they answer
//! an error instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::RedisTarget;

/// A `redis-server` process of a test's own.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// Where it keeps its append-only file, if it persists.
    dir: Option<PathBuf>,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

/// A test's Redis, or `None` (said) when there is no `redis-server` and none is required.
fn required<T>(started: std::io::Result<T>) -> Option<T> {
    match started {
        Ok(redis) => Some(redis),
        Err(e) if std::env::var_os("SMSROUTE_REQUIRE_REDIS").is_none() => {
            eprintln!("skipped: redis-server did not start ({e}); install redis-server");
            None
        }
        Err(e) => panic!("SMSROUTE_REQUIRE_REDIS is set but redis-server did not start: {e}"),
    }
}

impl RedisServer {
    /// Starts one on a free port, empty, without persistence; waits until it answers.
    pub fn start() -> Option<RedisServer> {
        required(Self::launch(None))
    }

    /// Where it is, for the cluster's threads.
    pub fn target(&self) -> RedisTarget {
        RedisTarget::Server(self.url.clone())
    }

    /// Starts one that persists every write to an append-only file in `dir` before it
    /// answers (`appendfsync always`): a kill and a restart keep everything it acknowledged.
    pub fn start_persistent(dir: &Path) -> std::io::Result<RedisServer> {
        Self::launch(Some(dir.to_path_buf()))
    }

    fn launch(dir: Option<PathBuf>) -> std::io::Result<RedisServer> {
        launch_retried(|| Self::launch_once(dir.clone()))
    }

    fn launch_once(dir: Option<PathBuf>) -> std::io::Result<RedisServer> {
        let port = free_port()?;
        let child = spawn(port, dir.as_deref(), &[])?;
        let server = RedisServer {
            child,
            port,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> std::io::Result<()> {
        wait_ready(self.port).map(drop)
    }

    /// Kills the server, as a crash: every connection drops; its state is gone unless it
    /// persists.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port: empty, or with what it persisted.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.child = spawn(self.port, self.dir.as_deref(), &[])?;
        self.wait_ready()
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `count` distinct free ports (each held until all are found). Another process may still
/// take one before the server binds it: [`launch_retried`].
fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Launches, and on other ports again (twice at most) if a port was taken meanwhile. A
/// missing `redis-server` is not tried again.
fn launch_retried<T>(launch: impl Fn() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut result = launch();
    for _ in 0..2 {
        match &result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => result = launch(),
            _ => break,
        }
    }
    result
}

/// Waits (up to 5 s) until the server on `port` answers PING; a connection to it.
fn wait_ready(port: u16) -> std::io::Result<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}").as_str())
        .map_err(std::io::Error::other)?;
    for _ in 0..250 {
        if let Ok(mut connection) = client.get_connection()
            && redis::cmd("PING").query::<String>(&mut connection).is_ok()
        {
            return Ok(connection);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(std::io::Error::other(format!(
        "redis-server on port {port} never answered"
    )))
}

fn spawn(port: u16, dir: Option<&Path>, extra: &[&str]) -> std::io::Result<Child> {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(extra);
    match dir {
        None => command.args(["--appendonly", "no"]),
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            command
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .arg("--dir")
                .arg(dir)
        }
    };
    command.stdout(Stdio::null()).spawn()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of three primaries without replicas, each a `redis-server` of the test's
/// own on free ports, the 16,384 slots split evenly between them; killed when dropped.
pub struct RedisCluster {
    nodes: Vec<Child>,
    /// Each node's port and cluster bus port.
    ports: Vec<(u16, u16)>,
    /// Where the nodes keep their cluster configuration files.
    dir: PathBuf,
    /// `redis://127.0.0.1:PORT` of each node.
    pub urls: Vec<String>,
}

/// The nodes of a [`RedisCluster`].
const CLUSTER_NODES: usize = 3;
/// Slots in a Redis Cluster.
const SLOTS: usize = 16_384;

impl RedisCluster {
    /// Starts one and waits until every node sees every slot served.
    pub fn start() -> Option<RedisCluster> {
        required(Self::launch())
    }

    /// As [`start`](Self::start), with an error instead of a skip.
    pub fn launch() -> std::io::Result<RedisCluster> {
        launch_retried(Self::launch_once)
    }

    fn launch_once() -> std::io::Result<RedisCluster> {
        // Each node's port and its cluster bus port: all distinct.
        let free = free_ports(2 * CLUSTER_NODES)?;
        let dir = std::env::temp_dir().join(format!(
            "smsroute-redis-cluster-{}-{}",
            std::process::id(),
            free[0]
        ));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
            urls: Vec::new(),
        };
        for index in 0..CLUSTER_NODES {
            // The bus port is its own free port: port + 10,000 may be past 65,535.
            let (port, bus) = (free[2 * index], free[2 * index + 1]);
            cluster.ports.push((port, bus));
            cluster.nodes.push(cluster.spawn_node(index)?);
            cluster.urls.push(format!("redis://127.0.0.1:{port}"));
        }
        let ports = cluster.ports.clone();
        let mut connections = Vec::new();
        for (index, (port, _)) in ports.iter().enumerate() {
            let mut connection = wait_ready(*port)?;
            let (from, to) = (
                SLOTS * index / CLUSTER_NODES,
                SLOTS * (index + 1) / CLUSTER_NODES - 1,
            );
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(from)
                .arg(to)
                .query::<()>(&mut connection)
                .map_err(std::io::Error::other)?;
            connections.push(connection);
        }
        for (port, bus) in &ports[1..] {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(port)
                .arg(bus)
                .query::<()>(&mut connections[0])
                .map_err(std::io::Error::other)?;
        }
        wait_agreed(&mut connections)?;
        Ok(cluster)
    }

    /// Starts node `index` on its ports and its cluster configuration file (empty of data).
    fn spawn_node(&self, index: usize) -> std::io::Result<Child> {
        let (port, bus) = self.ports[index];
        let config = self.dir.join(format!("nodes-{port}.conf"));
        let config = config.to_string_lossy();
        let bus = bus.to_string();
        let extra = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            &config,
            "--cluster-port",
            &bus,
            "--appendonly",
            "no",
        ];
        spawn(port, None, &extra)
    }

    /// Kills node `index` (a primary with a third of the slots), as a crash.
    pub fn kill_node(&mut self, index: usize) {
        let _ = self.nodes[index].kill();
        let _ = self.nodes[index].wait();
    }

    /// Starts node `index` again, empty, with its slots; waits until every node sees every
    /// slot served.
    pub fn restart_node(&mut self, index: usize) -> std::io::Result<()> {
        self.nodes[index] = self.spawn_node(index)?;
        let mut connections = Vec::new();
        for (port, _) in &self.ports {
            connections.push(wait_ready(*port)?);
        }
        wait_agreed(&mut connections)
    }

    /// Where it is, for the cluster's threads.
    pub fn target(&self) -> RedisTarget {
        RedisTarget::Cluster(self.urls.clone())
    }

    /// The index of the node whose slots hold `key` (asked of a live node: `CLUSTER KEYSLOT`).
    pub fn primary_of(&self, key: &str) -> usize {
        let slot: usize = query(
            &self.target(),
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key),
        )
        .expect("CLUSTER KEYSLOT");
        (0..CLUSTER_NODES)
            .find(|&index| slot < SLOTS * (index + 1) / CLUSTER_NODES)
            .expect("a slot below 16,384")
    }

    /// The first name `{prefix}0`, `{prefix}1`, … not in `skip` whose key (`key(name)`) is
    /// not on node `node`: for tests that take one primary away from under some keys only.
    pub fn name_off(
        &self,
        node: usize,
        prefix: &str,
        key: impl Fn(&str) -> String,
        skip: &[&str],
    ) -> String {
        (0..1_000)
            .map(|n| format!("{prefix}{n}"))
            .find(|name| !skip.contains(&name.as_str()) && self.primary_of(&key(name)) != node)
            .expect("a name whose key is on another node")
    }
}

/// Waits (up to 10 s) until every node sees every slot served.
fn wait_agreed(connections: &mut [redis::Connection]) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connections.iter_mut().all(serves_every_slot) {
        if Instant::now() > deadline {
            return Err(std::io::Error::other(
                "the Redis Cluster's nodes never agreed on its slots",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Whether this node knows every node and sees every slot served (`cluster_state:ok`).
fn serves_every_slot(connection: &mut redis::Connection) -> bool {
    let Ok(info) = redis::cmd("CLUSTER")
        .arg("INFO")
        .query::<String>(connection)
    else {
        return false;
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(str::to_string)
    };
    field("cluster_state:").as_deref() == Some("ok")
        && field("cluster_known_nodes:") == Some(CLUSTER_NODES.to_string())
        && field("cluster_slots_ok:") == Some(SLOTS.to_string())
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs one command on `target` (a server or a Redis Cluster): for tests that look at what
/// the nodes left in Redis.
pub fn query<T: redis::FromRedisValue>(
    target: &RedisTarget,
    command: &redis::Cmd,
) -> redis::RedisResult<T> {
    command.query(&mut target.connect(Duration::from_secs(2))?)
}

/// Two tests of one body, `fn(&RedisTarget)`: `$server` against a `redis-server` of its own,
/// `$cluster` against a Redis Cluster of three of its own (each skipped as
/// [`RedisServer::start`] says when there is no `redis-server`).
///
/// ```text
/// smsroute_cluster::on_server_and_cluster!(stops_spread, stops_spread_on_a_redis_cluster, body);
/// ```
#[macro_export]
macro_rules! on_server_and_cluster {
    ($server:ident, $cluster:ident, $body:path) => {
        #[test]
        fn $server() {
            if let Some(redis) = $crate::testing::RedisServer::start() {
                $body(&redis.target());
            }
        }

        #[test]
        fn $cluster() {
            if let Some(redis) = $crate::testing::RedisCluster::start() {
                $body(&redis.target());
            }
        }
    };
}
