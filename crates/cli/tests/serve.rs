//! `smsroute serve` as a process: in front of `smsroute sim`, spoken to over HTTP, stopped with
//! SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Child, free_port, http, wait_listening};

#[test]
fn serve_takes_messages_over_http_and_stops_on_sigterm() {
    let (smsc, api, smpp) = (free_port(), free_port(), free_port());
    let _sim = Child(
        Command::new(env!("CARGO_BIN_EXE_smsroute"))
            .args(["sim", "--listen", &format!("127.0.0.1:{smsc}")])
            .args(["--system-id", "acme", "--password", "secret"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dir = std::env::temp_dir().join(format!("smsroute-serve-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hub.toml");
    let write_config = |keys: &str| {
        std::fs::write(
            &config,
            format!(
                "[[carriers]]\nid = \"sim\"\ntps = 100\n[carriers.smpp]\nhost = \"127.0.0.1\"\n\
                 port = {smsc}\nsystem_id = \"acme\"\npassword = \"secret\"\n\n\
                 [[routes]]\nprefix = \"44\"\ncarrier = \"sim\"\ncost = 0.01\n\n\
                 [[clients]]\nid = \"shop\"\napi_keys = [{keys}]\n"
            ),
        )
        .unwrap()
    };
    write_config("\"shop-key-0123456789\"");
    wait_listening(smsc);
    let mut serve = Child(
        Command::new(env!("CARGO_BIN_EXE_smsroute"))
            .args(["serve", config.to_str().unwrap()])
            .args(["--http", &format!("127.0.0.1:{api}")])
            .args(["--smpp", &format!("127.0.0.1:{smpp}")])
            .args(["--journal", dir.join("journal").to_str().unwrap()])
            .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_listening(api);
    let message = r#"{"to": "+44 7700 900123", "from": "SHOP", "text": "hello"}"#;
    let (status, body) = http(api, "POST", "/v1/messages", "shop-key-0123456789", message);
    assert!(status.contains(" 202 "), "{status}: {body}");
    assert!(body.contains("\"id\":"), "{body}");
    let (status, body) = http(api, "POST", "/v1/messages", "not-a-key", message);
    assert!(status.contains(" 401 "), "{status}: {body}");
    let (status, _) = http(api, "GET", "/readyz", "", "");
    assert!(status.contains(" 200 "), "{status}");

    // SIGHUP: a new API key works once the configuration is read again; a broken
    // configuration is refused and the running one stays.
    let pid = serve.0.id().to_string();
    let hangup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        )
    };
    write_config("\"shop-key-0123456789\", \"next-key-0123456789\"");
    hangup();
    let mut reloaded = false;
    for _ in 0..100 {
        let (status, _) = http(api, "POST", "/v1/messages", "next-key-0123456789", message);
        if status.contains(" 202 ") {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reloaded, "the new key was taken on SIGHUP");
    std::fs::write(&config, "[[carriers]]\nid = \"sim\"\ntps = -1\n").unwrap();
    hangup();
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = http(api, "POST", "/v1/messages", "next-key-0123456789", message);
    assert!(
        status.contains(" 202 "),
        "still serving the last good configuration: {status} {body}"
    );
    let (status, body) = http(api, "GET", "/metrics", "", "");
    assert!(status.contains(" 200 ") && body.contains("smsroute_messages_accepted_total"));

    // SIGTERM: drained and stopped, exit 0.
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut exited = None;
    for _ in 0..500 {
        if let Some(status) = serve.0.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(exited.expect("stopped within 10 s").success());
    // The log tells of the refused key, and shows no key.
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap();
    assert!(log.contains("API key refused"), "{log}");
    for secret in ["shop-key-0123456789", "next-key-0123456789", "not-a-key"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_bad_flags_and_configs_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("smsroute-serve-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let no_clients = dir.join("no-clients.toml");
    std::fs::write(
        &no_clients,
        "[[carriers]]\nid = \"a\"\ntps = 1\n\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\ncost = 0.01\n",
    )
    .unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--http", "nowhere"], "--http nowhere"),
        (&["--smpp", "nowhere"], "--smpp nowhere"),
        (&["--grace", "1e9"], "--grace"),
        (&[], "no [[clients]] entry has api_keys"),
    ];
    for (flags, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_smsroute"))
            .args(["serve", no_clients.to_str().unwrap()])
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
    // A certificate that cannot be read: named, exit 2, before anything listens.
    let tls = dir.join("tls.toml");
    std::fs::write(
        &tls,
        "[[carriers]]\nid = \"a\"\ntps = 1\n\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\n\
         cost = 0.01\n\n[tls]\ncert = \"no-such-cert.pem\"\nkey = \"no-such-key.pem\"\n\n\
         [[clients]]\nid = \"shop\"\napi_keys = [\"shop-key-0123456789\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smsroute"))
        .args(["serve", tls.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-cert.pem"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether process `pid` still runs (a zombie waiting to be reaped does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(')').next().map(str::trim).map(str::to_string))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

#[test]
fn with_exit_with_parent_serve_stops_when_its_parent_is_killed() {
    let (api, smpp) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("smsroute-serve-orphan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hub.toml");
    std::fs::write(
        &config,
        "[[carriers]]\nid = \"sim\"\ntps = 100\n\n[[routes]]\nprefix = \"44\"\n\
         carrier = \"sim\"\ncost = 0.01\n\n[[clients]]\nid = \"shop\"\napi_keys = [\"k-0123456789abcdef\"]\n",
    )
    .unwrap();
    // A parent shell that starts serve and says its pid, then waits to be killed.
    let script = format!(
        "'{}' serve '{}' --http 127.0.0.1:{api} --smpp 127.0.0.1:{smpp} --journal '{}' \
         --grace 0 --exit-with-parent 2>/dev/null & echo $!; sleep 60",
        env!("CARGO_BIN_EXE_smsroute"),
        config.display(),
        dir.join("journal").display()
    );
    let mut parent = Child(
        Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(parent.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let pid: u32 = line.trim().parse().unwrap();
    wait_listening(api);
    assert!(running(pid));
    parent.0.kill().unwrap();
    parent.0.wait().unwrap();
    let mut gone = false;
    for _ in 0..250 {
        if !running(pid) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !gone {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(gone, "serve {pid} outlived its parent");
}
