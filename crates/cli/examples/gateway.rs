//! A gateway on smsroute: load a configuration, start a router over the SMPP carriers it
//! names, wait until they are bound, submit messages with the gateway's own references, take
//! the status events and acknowledge them (the configuration keeps a journal: what was
//! accepted survives a crash), shut down (every carrier unbinds).
//!
//! ```sh
//! smsroute sim --listen 127.0.0.1:2775 --system-id acme --password secret &
//! cargo run -p smsroute --example gateway -- docs/examples/gateway.toml
//! ```
//! Exits 0 once every message reached a terminal status (delivered, sent, failed, expired).

use std::time::Duration;

use smsroute::{Config, EngineOptions, Message, StreamExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or("docs/examples/gateway.toml".into());
    let orders = [
        ("order-1", "+44 7700 900123"),
        ("order-2", "+44 7700 900456"),
    ];

    // smsroute begins here.
    let config = Config::from_file(path.as_ref())?;
    let (router, mut events) = smsroute::start_smpp(&config, EngineOptions::default())?;
    router.ready(Duration::from_secs(10)).await?;
    for (reference, to) in orders {
        let text = format!("Your {reference} has shipped");
        let message = Message::builder(to, "ACME", &text).client_ref(reference);
        router.submit(message.build()?).await?;
    }
    let mut finished = 0;
    while let Some(event) = events.next().await {
        let reference = event.client_ref().unwrap_or("-");
        println!(
            "{reference}: {} {:?}",
            event.event.as_str(),
            event.carrier_message_ids
        );
        // Handled: not replayed after a restart.
        router.acknowledge(event.ack);
        finished += usize::from(event.is_terminal());
        if finished == orders.len() {
            break;
        }
    }
    router.shutdown(Duration::from_secs(5)).await;
    // smsroute ends here.
    Ok(())
}
