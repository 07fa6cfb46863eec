//! Two `smsroute serve` processes with `[cluster]`, one `redis-server`, one `smsroute sim`
//! carrier they both bind to: together the nodes keep the carrier's contract and use it.
//! Without `redis-server` on the PATH the test says so and passes, unless
//! `SMSROUTE_REQUIRE_REDIS` is set (CI sets it).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Child, free_port, http, wait_listening};
use smsroute_cluster::testing::RedisServer;

const TPS: u64 = 200;
const BURST: u64 = 20;
const KEY: &str = "shop-key-0123456789";

/// Submits the carrier accepted, as a node's `/metrics` counts them.
fn accepted(port: u16) -> u64 {
    http(port, "GET", "/metrics", KEY, "")
        .1
        .lines()
        .filter(|l| {
            l.starts_with("smsroute_submits_total{")
                && l.contains("carrier=\"sim\"")
                && l.contains("result=\"accepted\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn two_serve_nodes_keep_one_contract_together() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let smsc = free_port();
    let _sim = Child(
        Command::new(env!("CARGO_BIN_EXE_smsroute"))
            .args(["sim", "--listen", &format!("127.0.0.1:{smsc}")])
            .args(["--system-id", "acme", "--password", "secret"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(smsc);
    let dir = std::env::temp_dir().join(format!("smsroute-cluster-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut nodes = Vec::new();
    for node in ["a", "b"] {
        let (api, smpp) = (free_port(), free_port());
        let config = dir.join(format!("{node}.toml"));
        std::fs::write(
            &config,
            format!(
                "[[carriers]]\nid = \"sim\"\ntps = {TPS}\nburst = {BURST}\n[carriers.smpp]\n\
                 host = \"127.0.0.1\"\nport = {smsc}\nsystem_id = \"acme\"\npassword = \"secret\"\n\n\
                 [[routes]]\nprefix = \"44\"\ncarrier = \"sim\"\ncost = 0.01\n\n\
                 [[clients]]\nid = \"shop\"\napi_keys = [\"{KEY}\"]\n\n\
                 [cluster]\nurl = \"{}\"\nnode_id = \"node-{node}\"\n",
                redis.url
            ),
        )
        .unwrap();
        let child = Child(
            Command::new(env!("CARGO_BIN_EXE_smsroute"))
                .args(["serve", config.to_str().unwrap()])
                .args(["--http", &format!("127.0.0.1:{api}")])
                .args(["--smpp", &format!("127.0.0.1:{smpp}")])
                .args([
                    "--journal",
                    dir.join(format!("journal-{node}")).to_str().unwrap(),
                ])
                .args(["--grace", "0"])
                .stderr(std::fs::File::create(dir.join(format!("{node}.log"))).unwrap())
                .spawn()
                .unwrap(),
        );
        nodes.push((api, child));
    }
    for (api, _) in &nodes {
        wait_listening(*api);
    }
    // 300 messages a second offered to each node, 600 against a contract of 200, for 4 s;
    // the nodes' accepted submits sampled every 100 ms.
    let batch = |step: usize| {
        let messages: Vec<String> = (0..30)
            .map(|i| {
                format!(
                    r#"{{"to": "4477009{:05}", "from": "ACME", "text": "hi"}}"#,
                    step * 30 + i
                )
            })
            .collect();
        format!(r#"{{"messages": [{}]}}"#, messages.join(","))
    };
    let start = Instant::now();
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    for step in 0..40 {
        for (api, _) in &nodes {
            http(*api, "POST", "/v1/messages/batch", KEY, &batch(step));
        }
        let total = nodes.iter().map(|(api, _)| accepted(*api)).sum();
        samples.push((start.elapsed(), total));
        std::thread::sleep(
            (start + Duration::from_millis(100 * (step as u64 + 1)))
                .saturating_duration_since(Instant::now()),
        );
    }
    let logs: String = ["a", "b"]
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default())
        .collect();
    // Over every window between samples about a second apart: at most tps × t + burst. The
    // nodes' counts are read one after the other and count answers (a few ms after each
    // send): 50 ms of slack.
    for (i, &(from, before)) in samples.iter().enumerate() {
        for &(to, after) in &samples[i + 1..] {
            let t = (to - from).as_secs_f64();
            if t < 0.95 {
                continue;
            }
            let bound = (TPS as f64 * (t + 0.05)) as u64 + BURST;
            assert!(
                after - before <= bound,
                "{} submits in {t:.2} s against {bound}\n{logs}",
                after - before
            );
            break;
        }
    }
    // From the second second on, the contract is used.
    let at = |s: f64| {
        samples
            .iter()
            .find(|(t, _)| t.as_secs_f64() >= s)
            .copied()
            .unwrap()
    };
    let ((from, before), (to, after)) = (at(1.5), at(3.5));
    let contracted = TPS as f64 * (to - from).as_secs_f64();
    eprintln!(
        "two nodes: {} submits in {:.2} s, {contracted:.0} contracted",
        after - before,
        (to - from).as_secs_f64()
    );
    assert!(
        (after - before) as f64 >= 0.95 * contracted,
        "{} submits of {contracted:.0} contracted\n{logs}",
        after - before
    );
    assert!(logs.contains("leased from Redis"), "{logs}");
    assert!(
        logs.contains("opt-outs shared with the other nodes"),
        "{logs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
