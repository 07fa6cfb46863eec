//! A real `redis-server` on a free port for the cluster tests, killed when dropped. Without
//! `redis-server` on the PATH, [`RedisServer::start`] says so and gives `None` (the test
//! passes), unless `SMSROUTE_REQUIRE_REDIS` is set: then it fails (CI sets it).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    child: Child,
    port: u16,
    pub url: String,
}

impl RedisServer {
    pub fn start() -> Option<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match spawn(port) {
            Ok(child) => child,
            Err(e) if std::env::var_os("SMSROUTE_REQUIRE_REDIS").is_none() => {
                eprintln!("skipped: redis-server did not start ({e}); install redis-server");
                return None;
            }
            Err(e) => panic!("SMSROUTE_REQUIRE_REDIS is set but redis-server did not start: {e}"),
        };
        let url = format!("redis://127.0.0.1:{port}");
        let server = RedisServer { child, port, url };
        server.wait_ready();
        Some(server)
    }

    fn wait_ready(&self) {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        for _ in 0..100 {
            if let Ok(mut connection) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut connection).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} never answered", self.port);
    }

    /// Kills the server, as a crash: every connection drops, its state is gone.
    #[allow(dead_code)]
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, empty.
    #[allow(dead_code)]
    pub fn restart(&mut self) {
        self.child = spawn(self.port).expect("restart redis-server");
        self.wait_ready();
    }
}

fn spawn(port: u16) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
