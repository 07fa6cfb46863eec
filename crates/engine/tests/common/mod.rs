//! Shared pieces of the end-to-end tests: configs, simulated carriers, and the ledger.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use smsroute_config::Config;
use smsroute_delivery::Event;
use smsroute_engine::{EngineOptions, EventStream, Rejection, Router, StatusEvent};
use smsroute_journal::JournalOptions;
use smsroute_sim::{Behaviour, Outage, OutageKind, SimCarrier};
use smsroute_types::CarrierSlot;
use smsroute_types::{Message, MessageId};

/// A journal directory of its own under the system's temporary directory (this test
/// process's, named `name`), removed afterwards.
pub struct JournalDir(pub PathBuf);

impl JournalDir {
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("smsroute-engine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        JournalDir(dir)
    }

    /// Default options with a journal here.
    pub fn options(&self) -> EngineOptions {
        EngineOptions::default().journal(JournalOptions::new(&self.0))
    }
}

impl Drop for JournalDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const MS: u64 = 1_000_000;
pub const S: u64 = 1_000_000_000;

/// A config with `carriers` as `(id, tps, cost)` all serving prefix 44.
pub fn config(carriers: &[(&str, u32, &str)], extra: &str) -> Config {
    let mut text = String::new();
    for (id, tps, _) in carriers {
        text += &format!("[[carriers]]\nid = \"{id}\"\ntps = {tps}\n\n");
    }
    for (id, _, cost) in carriers {
        text += &format!("[[routes]]\nprefix = \"44\"\ncarrier = \"{id}\"\ncost = {cost}\n\n");
    }
    text += extra;
    Config::parse(&text, "test.toml").unwrap()
}

/// Starts a router whose carriers are simulated with the given behaviours (default: perfect).
pub fn start(
    config: &Config,
    options: EngineOptions,
    behaviours: &[(&str, Behaviour)],
) -> (Router<SimCarrier>, EventStream) {
    let behaviours: HashMap<String, Behaviour> = behaviours
        .iter()
        .map(|(id, b)| (id.to_string(), b.clone()))
        .collect();
    Router::start(config, options, move |c| {
        let behaviour = behaviours.get(&c.id).cloned().unwrap_or_default();
        SimCarrier::new(&c.id, behaviour, 42)
    })
    .unwrap()
}

/// A carrier that refuses every submit (ESME_RSYSERR) for the whole test.
pub fn refusing() -> Behaviour {
    Behaviour {
        outages: vec![Outage {
            start: 0,
            duration: u64::MAX / 2,
            kind: OutageKind::Refuse,
        }],
        ..Behaviour::default()
    }
}

/// `try_submit`, with just the reason of a refusal.
pub fn submit<C: smsroute_carrier::Carrier>(
    router: &Router<C>,
    message: Message,
) -> Result<MessageId, Rejection> {
    router.try_submit(message).map_err(|r| r.reason)
}

pub fn message(n: u64) -> Message {
    Message::builder(&format!("4477009{:05}", n % 100_000), "ACME", "hello")
        .build()
        .unwrap()
}

/// Every event, checked as it comes: no event for an id never accepted, exactly one
/// terminal event per accepted message, nothing after it.
#[derive(Default)]
pub struct Ledger {
    pub accepted: Vec<MessageId>,
    pub rejected: Vec<Rejection>,
    pub terminal: HashMap<MessageId, StatusEvent>,
    pub events: Vec<StatusEvent>,
}

impl Ledger {
    pub fn submit(&mut self, router: &Router<SimCarrier>, message: Message) -> bool {
        match router.try_submit(message).map_err(|r| r.reason) {
            Ok(id) => {
                self.accepted.push(id);
                true
            }
            Err(e) => {
                self.rejected.push(e);
                false
            }
        }
    }

    pub fn record(&mut self, event: StatusEvent) {
        assert!(
            self.accepted.contains(&event.id),
            "event for a message never accepted: {event:?}"
        );
        assert!(
            !self.terminal.contains_key(&event.id),
            "event after the terminal one: {event:?}"
        );
        if event.is_terminal() {
            self.terminal.insert(event.id, event.clone());
        }
        self.events.push(event);
    }

    /// Takes every event ready now.
    pub fn poll(&mut self, events: &mut EventStream) {
        while let Some(e) = events.try_recv() {
            self.record(e);
        }
    }

    /// Takes events until every accepted message is terminal.
    pub async fn settle(&mut self, events: &mut EventStream) {
        while self.terminal.len() < self.accepted.len() {
            let event = tokio::time::timeout(Duration::from_secs(24 * 3600), events.recv())
                .await
                .expect("a day without an event")
                .expect("stream ended early");
            self.record(event);
        }
        self.assert_complete();
    }

    /// Every accepted message has exactly one terminal status.
    pub fn assert_complete(&self) {
        assert_eq!(
            self.terminal.len(),
            self.accepted.len(),
            "unfinished messages"
        );
        for id in &self.accepted {
            assert!(self.terminal.contains_key(id), "{id} has no terminal event");
        }
    }

    /// Terminal events of each kind.
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.terminal.values().filter(|e| pred(&e.event)).count()
    }

    /// Submit times (router clock) of every attempt to `carrier`.
    pub fn submits_to(&self, carrier: CarrierSlot) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e.event {
                Event::Submitted { carrier: c, .. } if c == carrier => Some(e.at),
                _ => None,
            })
            .collect()
    }
}
