//! What the SMPP tests share: a request, a simulator, an ESME config for it, a wait, and raw
//! PDU reads and writes for scripted peers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use smsroute_carrier::SubmitRequest;
use smsroute_sim::{Simulator, SimulatorConfig};
use smsroute_smpp::EsmeConfig;
use smsroute_smpp::pdu::Frame;
use smsroute_types::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn request(text: &str) -> SubmitRequest {
    SubmitRequest {
        message: Arc::new(
            Message::builder("447700900123", "ACME", text)
                .build()
                .unwrap(),
        ),
        attempt: 1,
        receipt: true,
    }
}

pub async fn simulator(config: SimulatorConfig) -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

pub fn esme(sim: &Simulator, password: &str) -> EsmeConfig {
    EsmeConfig {
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(100),
        ..EsmeConfig::new("127.0.0.1", sim.local_addr().port(), "acme", password)
    }
}

/// Waits up to 5 s for `ok`.
pub async fn until(mut ok: impl FnMut() -> bool) {
    for _ in 0..500 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}

/// Reads one PDU from a raw stream.
pub async fn read_pdu(stream: &mut TcpStream) -> Frame {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await.unwrap();
    let mut pdu = length.to_vec();
    pdu.resize(u32::from_be_bytes(length) as usize, 0);
    stream.read_exact(&mut pdu[4..]).await.unwrap();
    Frame::decode(&pdu).unwrap()
}

pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame.encode(&mut bytes).unwrap();
    bytes
}

pub async fn write_pdu(stream: &mut TcpStream, frame: Frame) {
    stream.write_all(&encode(&frame)).await.unwrap();
}
