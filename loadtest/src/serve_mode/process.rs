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
/// The login the process's carrier sessions give the simulators (which take any).
pub(crate) const SIMULATOR_LOGIN: (&str, &str) = ("smsroute", "sim");
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

/// The scenario's route table for the process: every carrier bound to its simulator (the
/// host and port of its `[carriers.smpp]` table set, the rest kept), and the harness's client
/// account, the only one (a route table with `[[clients]]` of its own is refused).
pub(crate) fn render_config(text: &str, ports: &BTreeMap<String, u16>) -> Result<String, String> {
    use toml::{Table, Value};
    let mut doc: Table = text.parse().map_err(|e| format!("the route table: {e}"))?;
    if doc.contains_key("clients") {
        return Err(
            "mode = \"serve\" brings its own client: the route table must have no \
                    [[clients]]"
                .into(),
        );
    }
    if let Some(Value::Array(carriers)) = doc.get_mut("carriers") {
        for carrier in carriers.iter_mut().filter_map(Value::as_table_mut) {
            let id = carrier
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let port = ports.get(&id).copied().unwrap_or(0);
            let smpp = carrier
                .entry("smpp")
                .or_insert_with(|| Value::Table(Table::new()));
            let Some(smpp) = smpp.as_table_mut() else {
                return Err(format!("carrier {id}: smpp is not a table"));
            };
            smpp.insert("host".into(), "127.0.0.1".into());
            smpp.insert("port".into(), i64::from(port).into());
            smpp.entry("system_id").or_insert(SIMULATOR_LOGIN.0.into());
            smpp.entry("password").or_insert(SIMULATOR_LOGIN.1.into());
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

/// Two distinct loopback addresses with free ports (free when asked: both listeners are held
/// until both ports are known).
fn free_addresses() -> Result<(SocketAddr, SocketAddr), RunError> {
    let fail = |e: std::io::Error| RunError::Serve(format!("no free loopback port: {e}"));
    let first = TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    let second = TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    Ok((
        first.local_addr().map_err(fail)?,
        second.local_addr().map_err(fail)?,
    ))
}

/// What the process says of a message at the end of the run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// It holds it, not finished.
    Unfinished,
    /// It finished it (so its receipt should have come).
    Finished,
    /// It does not know it (`404`), or did not answer.
    Unknown,
}

/// Terminal states as `GET /v1/messages/{id}` writes them.
const FINISHED: &[&str] = &["delivered", "sent", "failed", "expired"];

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
        let (smpp, http) = free_addresses()?;
        Ok(Hub {
            binary,
            dir: dir.to_path_buf(),
            smpp,
            http,
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
            .args(["--grace", "2", "--exit-with-parent"])
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

    /// How the current life ended, if it ended without the harness's doing.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL, as a crash: nothing the process did not write survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (a graceful stop), SIGKILL if it takes more than 10 s: whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(exit)) = child.try_wait() {
                return exit.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// What the process says of the message it answered `hub_id` for (its first part's id).
    pub fn lookup(&self, hub_id: &str) -> Lookup {
        let message = hub_id.split('-').next().unwrap_or(hub_id);
        let Some((200, body)) = self.get(&format!("/v1/messages/{message}")) else {
            return Lookup::Unknown;
        };
        let state = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("state")?.as_str().map(str::to_string));
        match state {
            Some(state) if FINISHED.contains(&state.as_str()) => Lookup::Finished,
            Some(_) => Lookup::Unfinished,
            None => Lookup::Unknown,
        }
    }

    /// A counter of the process's `/metrics` (summed over its labels); 0 if absent.
    pub fn counter(&self, name: &str) -> u64 {
        let Some((200, body)) = self.get("/metrics") else {
            return 0;
        };
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
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
        let with_clients = format!("{text}\n[[clients]]\nid = \"x\"\n");
        assert!(
            render_config(&with_clients, &ports)
                .unwrap_err()
                .contains("[[clients]]")
        );
        // The rest of a carrier's SMPP table is kept.
        let binds = text.replace(
            "tps = 50\n",
            "tps = 50\n[carriers.smpp]\nhost = \"x\"\nport = 1\nsystem_id = \"b\"\npassword = \"p\"\nbinds = 3\n",
        );
        let config =
            smsroute_config::Config::parse(&render_config(&binds, &ports).unwrap(), "r").unwrap();
        let smpp = config.carriers[1].smpp.as_ref().unwrap();
        assert_eq!(
            (smpp.port, smpp.binds, smpp.system_id.as_str()),
            (4002, 3, "b")
        );
    }
}
