//! Regression (issue 15, defect 1): the SMSC simulator stopped accepting for good after one
//! `accept` error. Run with few file descriptors, flooded past them, it logs the error, backs
//! off and serves the next client once the flood is gone.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use smsroute_smpp::pdu::{Bind, BindKind, Body, Frame, status};

mod common;
use common::{Child, free_port};

/// Binds as a transmitter over a fresh connection; the bind_resp's status.
fn bind(port: u16) -> std::io::Result<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut pdu = Vec::new();
    let bind = Bind {
        kind: BindKind::Transmitter,
        system_id: "acme".into(),
        password: "pw".into(),
        system_type: String::new(),
        interface_version: 0x34,
    };
    Frame::new(1, Body::Bind(bind)).encode(&mut pdu).unwrap();
    stream.write_all(&pdu)?;
    let mut answer = vec![0u8; 16];
    stream.read_exact(&mut answer)?;
    let length = u32::from_be_bytes(answer[..4].try_into().unwrap()) as usize;
    answer.resize(length, 0);
    stream.read_exact(&mut answer[16..])?;
    Ok(Frame::decode(&answer).unwrap().status)
}

#[test]
fn the_simulator_keeps_accepting_after_running_out_of_file_descriptors() {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("smsroute-sim-fd-{}.log", std::process::id()));
    let exe = env!("CARGO_BIN_EXE_smsroute");
    let _sim = Child(
        std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -n 64 && exec '{exe}' sim --listen 127.0.0.1:{port} 2>'{}'",
                log.display()
            ))
            .spawn()
            .unwrap(),
    );
    let mut ready = false;
    for _ in 0..250 {
        if bind(port).is_ok_and(|s| s == status::OK) {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ready, "the simulator serves");
    // Twice as many idle connections as it has descriptors: its accepts fail.
    let flood: Vec<TcpStream> = (0..128)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(flood);
    // The flood is gone: the next client is served.
    let mut served = false;
    for _ in 0..100 {
        if bind(port).is_ok_and(|s| s == status::OK) {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(served, "still accepting after the accept errors:\n{logged}");
    assert!(
        logged.contains("accept failed"),
        "the error is logged:\n{logged}"
    );
}
