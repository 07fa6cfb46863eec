//! The `smsroute serve` child process of mode `serve`: its configuration (the scenario's
//! route table, each carrier at its simulator, one client account), its start, SIGKILL and
//! SIGTERM, and questions to its HTTP API.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::RunError;

/// The client account the harness binds as.
pub(crate) const SYSTEM_ID: &str = "loadtest";
pub(crate) const PASSWORD: &str = "secret";
/// Its HTTP API key (the end-of-run questions).
const API_KEY: &str = "k_loadtest_harness_0123456789";
/// SMPP binds the harness opens (the account allows more: a bind of a dead life may linger).
pub(crate) const BINDS: u32 = 4;

/// Where the `smsroute` binary is: `SMSROUTE_BIN`, else this very program (the harness runs
/// inside `smsroute loadtest`).
fn binary() -> Result<PathBuf, RunError> {
    if let Some(path) = std::env::var_os("SMSROUTE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| RunError::Serve(e.to_string()))?;
    let named = exe
        .file_stem()
        .is_some_and(|n| n.to_string_lossy() == "smsroute");
    if named {
        Ok(exe)
    } else {
        Err(RunError::Serve(format!(
            "{} is not the smsroute binary: set SMSROUTE_BIN to it",
            exe.display()
        )))
    }
}

/// The scenario's route table for the process: every carrier bound to its simulator, and the
/// harness's client account.
pub(crate) fn render_config(text: &str, ports: &BTreeMap<String, u16>) -> Result<String, String> {
    use toml::{Table, Value};
    let mut doc: Table = text.parse().map_err(|e| format!("the route table: {e}"))?;
    if let Some(Value::Array(carriers)) = doc.get_mut("carriers") {
        for carrier in carriers.iter_mut().filter_map(Value::as_table_mut) {
            let id = carrier
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let port = ports.get(id).copied().unwrap_or(0);
            let mut smpp = Table::new();
            smpp.insert("host".into(), "127.0.0.1".into());
            smpp.insert("port".into(), i64::from(port).into());
            smpp.insert("system_id".into(), "loadtest".into());
            smpp.insert("password".into(), "secret".into());
            carrier.insert("smpp".into(), Value::Table(smpp));
        }
    }
    let mut client = Table::new();
    client.insert("id".into(), SYSTEM_ID.into());
    client.insert("system_id".into(), SYSTEM_ID.into());
    client.insert("password".into(), PASSWORD.into());
    client.insert("api_keys".into(), Value::Array(vec![API_KEY.into()]));
    client.insert("window".into(), 10_000.into());
    client.insert("max_binds".into(), i64::from(BINDS * 4).into());
    doc.insert("clients".into(), Value::Array(vec![Value::Table(client)]));
    toml::to_string(&doc).map_err(|e| e.to_string())
}

/// A loopback address with a free port (free when asked).
fn free_address() -> Result<SocketAddr, RunError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| RunError::Serve(format!("no free loopback port: {e}")))
}

/// The process, over its lives: the same configuration, journal and addresses each time.
pub(crate) struct Hub {
    binary: PathBuf,
    dir: PathBuf,
    /// Its SMPP front.
    pub smpp: SocketAddr,
    http: SocketAddr,
    child: Option<Child>,
}

impl Hub {
    /// Writes the configuration into `dir` (which then holds the journal and `serve.log`).
    pub fn new(dir: &Path, config: &str) -> Result<Hub, RunError> {
        let binary = binary()?;
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join("serve.toml"), config))
            .map_err(|e| RunError::Serve(format!("{}: {e}", dir.display())))?;
        Ok(Hub {
            binary,
            dir: dir.to_path_buf(),
            smpp: free_address()?,
            http: free_address()?,
            child: None,
        })
    }

    /// Where the process writes its log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("serve.log")
    }

    /// Starts a life and waits (up to 15 s) until `/readyz` says its carriers are bound and its
    /// journal writable.
    pub fn start(&mut self) -> Result<(), RunError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .map_err(|e| RunError::Serve(format!("{}: {e}", self.log().display())))?;
        let child = Command::new(&self.binary)
            .arg("serve")
            .arg(self.dir.join("serve.toml"))
            .args(["--smpp", &self.smpp.to_string()])
            .args(["--http", &self.http.to_string()])
            .arg("--journal")
            .arg(self.dir.join("journal"))
            .args(["--grace", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| RunError::Serve(format!("{}: {e}", self.binary.display())))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.get("/readyz").is_some_and(|(status, _)| status == 200) {
                return Ok(());
            }
            if let Some(Ok(Some(exit))) = self.child.as_mut().map(Child::try_wait) {
                return Err(RunError::Serve(format!(
                    "smsroute serve exited ({exit}) while starting: see {}",
                    self.log().display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(RunError::Serve(format!(
            "smsroute serve not ready after 15 s: see {}",
            self.log().display()
        )))
    }

    /// SIGKILL, as a crash: nothing the process did not write survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (a graceful stop), SIGKILL if it takes more than 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// `GET path` on the HTTP API with the harness's key: the status and the body.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let timeout = Duration::from_secs(2);
        let mut stream = TcpStream::connect_timeout(&self.http, timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {API_KEY}\r\n\
             Connection: close\r\n\r\n",
            self.http
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.take(1 << 20).read_to_string(&mut answer).ok()?;
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        Some((status, body))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_config_binds_each_carrier_to_its_simulator_and_adds_the_client() {
        let text = "[[carriers]]\nid = \"a\"\ntps = 100\n\n[[carriers]]\nid = \"b\"\ntps = 50\n\n\
                    [[routes]]\nprefix = \"44\"\ncarrier = \"a\"\ncost = 0.004\n";
        let ports = BTreeMap::from([("a".to_string(), 4001), ("b".to_string(), 4002)]);
        let rendered = render_config(text, &ports).unwrap();
        let config = smsroute_config::Config::parse(&rendered, "rendered").unwrap();
        let port = |i: usize| config.carriers[i].smpp.as_ref().map(|s| s.port);
        assert_eq!((port(0), port(1)), (Some(4001), Some(4002)));
        assert_eq!(config.clients.len(), 1);
        assert_eq!(config.clients[0].id, SYSTEM_ID);
        assert_eq!(config.routes.len(), 1);
        assert!(render_config("carriers = [", &ports).is_err());
    }
}
