//! A real `redis-server` on a free port, killed when dropped: for tests (this crate's,
//! `smsroute serve`'s) and the load-test harness. Without `redis-server` on the PATH,
//! [`RedisServer::start`] says so and gives `None` (the caller's test then passes without
//! running), unless `SMSROUTE_REQUIRE_REDIS` is set: then it panics (CI sets it).
//! [`RedisServer::start_persistent`] is for tools: it answers an error instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` process of a test's own.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// Where it keeps its append-only file, if it persists.
    dir: Option<PathBuf>,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

impl RedisServer {
    /// Starts one on a free port, empty, without persistence; waits until it answers.
    pub fn start() -> Option<RedisServer> {
        match Self::launch(None) {
            Ok(server) => Some(server),
            Err(e) if std::env::var_os("SMSROUTE_REQUIRE_REDIS").is_none() => {
                eprintln!("skipped: redis-server did not start ({e}); install redis-server");
                None
            }
            Err(e) => panic!("SMSROUTE_REQUIRE_REDIS is set but redis-server did not start: {e}"),
        }
    }

    /// Starts one that persists every write to an append-only file in `dir` before it
    /// answers (`appendfsync always`): a kill and a restart keep everything it acknowledged.
    pub fn start_persistent(dir: &Path) -> std::io::Result<RedisServer> {
        Self::launch(Some(dir.to_path_buf()))
    }

    fn launch(dir: Option<PathBuf>) -> std::io::Result<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = spawn(port, dir.as_deref())?;
        let server = RedisServer {
            child,
            port,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits (up to 2 s) until it answers PING.
    fn wait_ready(&self) -> std::io::Result<()> {
        let client = redis::Client::open(self.url.as_str()).map_err(std::io::Error::other)?;
        for _ in 0..100 {
            if let Ok(mut connection) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut connection).is_ok()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other(format!(
            "redis-server on port {} never answered",
            self.port
        )))
    }

    /// Kills the server, as a crash: every connection drops; its state is gone unless it
    /// persists.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port: empty, or with what it persisted.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.child = spawn(self.port, self.dir.as_deref())?;
        self.wait_ready()
    }
}

fn spawn(port: u16, dir: Option<&Path>) -> std::io::Result<Child> {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""]);
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
