//! The client accounts as the fronts use them: who a request or a bind is, what it may send,
//! its own rate, and the outbox of deliver_sm (receipts, replies) waiting for its binds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use arc_swap::ArcSwap;

use smsroute_config::{ClientConfig, Password};
use smsroute_smpp::pdu::ShortMessage;
use smsroute_smpp::server::Outbox;
use smsroute_throttle::{Admission, Gcra, Quota};
use smsroute_types::{MessageBuilder, Sender};

/// Deliver_sm a client's outbox holds at most (receipts and replies not yet acknowledged by
/// one of its binds); past it, receipts wait in the journal for a restart (`docs/serve.md`).
pub const OUTBOX_CAPACITY: usize = 100_000;

/// A deliver_sm for a client: a receipt (with the acknowledgement number of the terminal
/// event it reports, which is acknowledged to the router once the client answered every
/// receipt of it, and its message) or a reply (`ack` 0, no message).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub sm: ShortMessage,
    pub ack: u64,
    pub message: Option<smsroute_types::MessageId>,
}

/// A client's settings from the configuration; a reload replaces them whole.
#[derive(Debug)]
pub struct Settings {
    /// The spend account its messages are charged to (the message's `account` tag).
    pub account: Option<String>,
    /// The sender ids it may send as; empty: any.
    pub senders: Vec<Sender>,
    pub(crate) login: Option<smsroute_config::SmppLogin>,
    /// Submits one bind may have unanswered.
    pub(crate) window: u32,
    pub(crate) max_binds: u32,
    tps: Option<u32>,
    /// Where its statuses are posted.
    pub(crate) webhook: Option<smsroute_config::Webhook>,
}

impl Settings {
    fn new(config: &ClientConfig) -> Self {
        Settings {
            account: config.account.clone(),
            senders: config.senders.clone(),
            login: config.smpp.clone(),
            window: config.window.max(1),
            max_binds: config.max_binds,
            tps: config.tps,
            webhook: config.webhook.clone(),
        }
    }
}

/// A client account as the fronts know it: its settings, and what outlives a reload (its
/// binds, its rate's bucket, its outbox).
pub struct Client {
    /// Its id in the configuration.
    pub id: String,
    settings: ArcSwap<Settings>,
    binds: AtomicU32,
    rate: Gcra,
    pub(crate) outbox: Outbox<Outgoing>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("id", &self.id).finish()
    }
}

/// A second's worth of burst: a client at its rate is never refused for jitter.
fn quota(tps: Option<u32>) -> Quota {
    let tps = tps.unwrap_or(1).max(1);
    Quota::per_second(f64::from(tps), tps).unwrap_or_else(|_| Quota::per_second(1.0, 1).unwrap())
}

impl Client {
    pub(crate) fn new(config: &ClientConfig) -> Self {
        Client {
            id: config.id.clone(),
            settings: ArcSwap::from_pointee(Settings::new(config)),
            binds: AtomicU32::new(0),
            rate: Gcra::new(quota(config.tps)),
            outbox: Outbox::new(OUTBOX_CAPACITY),
        }
    }

    /// Its current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Takes the settings of a reloaded configuration (binds already held stay).
    fn update(&self, config: &ClientConfig) {
        let settings = Settings::new(config);
        if settings.tps != self.settings.load().tps {
            self.rate.set_quota(quota(settings.tps));
        }
        self.settings.store(Arc::new(settings));
    }

    /// Whether the client's own rate (`tps`) admits `segments` now (router clock).
    pub(crate) fn admit(&self, segments: u32, now: u64) -> bool {
        self.settings.load().tps.is_none()
            || self.rate.try_admit(segments, now) == Admission::Admitted
    }

    /// Submits one bind may have unanswered (read without taking a reference to the
    /// settings: it is asked at every submit).
    pub(crate) fn window(&self) -> u32 {
        self.settings.load().window
    }

    /// Whether the client may send as `sender`.
    pub(crate) fn may_send_as(&self, sender: &Sender) -> bool {
        let settings = self.settings.load();
        settings.senders.is_empty() || settings.senders.contains(sender)
    }

    /// Tags a message with its client (the `client` tag: what receipts, replies and
    /// lookups are matched on) and the client's spend account.
    pub(crate) fn tag(&self, builder: MessageBuilder) -> MessageBuilder {
        let builder = builder.tag(CLIENT_TAG, &self.id);
        match &self.settings.load().account {
            Some(account) => builder.tag("account", account),
            None => builder,
        }
    }

    /// Checks an SMPP password (an Argon2 hash is checked on a blocking thread).
    pub(crate) async fn password_matches(&self, password: &str) -> bool {
        let settings = self.settings.load_full();
        match settings.login.as_ref().map(|l| &l.password) {
            None => false,
            Some(Password::Plain(secret)) => secret.expose() == password,
            Some(Password::Hash(hash)) => {
                let (hash, password) = (hash.expose().to_string(), password.to_string());
                tokio::task::spawn_blocking(move || verify_hash(&hash, &password))
                    .await
                    .unwrap_or(false)
            }
        }
    }

    /// Takes one of the client's binds; `None` when it holds `max_binds` already.
    pub(crate) fn take_bind(self: &Arc<Self>) -> Option<BindSlot> {
        let max = self.settings.load().max_binds;
        let mut held = self.binds.load(Ordering::Relaxed);
        loop {
            if held >= max {
                return None;
            }
            match self.binds.compare_exchange_weak(
                held,
                held + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(BindSlot(self.clone())),
                Err(now) => held = now,
            }
        }
    }
}

/// Every client, by each way of finding one.
#[derive(Default)]
pub(crate) struct Clients {
    pub by_id: HashMap<String, Arc<Client>>,
    /// By HTTP API key.
    pub by_key: HashMap<String, Arc<Client>>,
    /// By SMPP system_id.
    pub by_system_id: HashMap<String, Arc<Client>>,
    /// By the number or short code whose replies it gets (digits).
    pub owners: HashMap<String, Arc<Client>>,
}

impl Clients {
    /// The clients of `configs`; a client `previous` had by the same id is kept (its binds,
    /// bucket and outbox) with the new settings.
    pub fn new(configs: &[ClientConfig], previous: Option<&Clients>) -> Self {
        let mut clients = Clients::default();
        for c in configs {
            let client = match previous.and_then(|p| p.by_id.get(&c.id)) {
                Some(kept) => {
                    kept.update(c);
                    kept.clone()
                }
                None => Arc::new(Client::new(c)),
            };
            for key in &c.api_keys {
                clients
                    .by_key
                    .insert(key.expose().to_string(), client.clone());
            }
            if let Some(login) = &c.smpp {
                clients
                    .by_system_id
                    .insert(login.system_id.clone(), client.clone());
            }
            for number in &c.replies {
                clients.owners.insert(number.clone(), client.clone());
            }
            clients.by_id.insert(c.id.clone(), client);
        }
        clients
    }
}

/// The tag naming the client a message came from.
pub const CLIENT_TAG: &str = "client";

fn verify_hash(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// One bind a client holds; given back when dropped.
pub(crate) struct BindSlot(Arc<Client>);

impl BindSlot {
    pub fn client(&self) -> &Arc<Client> {
        &self.0
    }
}

impl Drop for BindSlot {
    fn drop(&mut self) {
        self.0.binds.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smsroute_config::Config;

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!(
                "[[carriers]]\nid = \"a\"\ntps = 10\n[[routes]]\nprefix = \"44\"\ncarrier = \"a\"\n\
                 cost = 0.01\n[[clients]]\nid = \"shop\"\n{extra}"
            ),
            "t.toml",
        )
        .unwrap()
    }

    fn client(extra: &str) -> Arc<Client> {
        Arc::new(Client::new(&config(extra).clients[0]))
    }

    #[test]
    fn a_reload_keeps_a_client_and_changes_its_settings() {
        let before = Clients::new(
            &config("system_id = \"shop\"\npassword = \"old\"\ntps = 1\n").clients,
            None,
        );
        let shop = before.by_id["shop"].clone();
        let _bind = shop.take_bind().unwrap();
        assert!(shop.admit(1, 0));
        assert!(!shop.admit(1, 0));
        let after = Clients::new(
            &config("system_id = \"shop2\"\npassword = \"new\"\ntps = 1000\n").clients,
            Some(&before),
        );
        let kept = &after.by_id["shop"];
        assert!(
            Arc::ptr_eq(kept, &shop),
            "the same client: its binds and outbox stay"
        );
        assert!(after.by_system_id.contains_key("shop2"));
        assert!(!after.by_system_id.contains_key("shop"));
        assert!(
            kept.admit(1, 10_000_000),
            "the new rate applies (the old one: not before 1 s)"
        );
        assert_eq!(kept.binds.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn binds_are_capped_and_given_back() {
        let shop = client("max_binds = 2\nsystem_id = \"shop\"\npassword = \"pw\"\n");
        let (a, b) = (shop.take_bind().unwrap(), shop.take_bind().unwrap());
        assert!(shop.take_bind().is_none(), "a third bind is over max_binds");
        drop(a);
        assert!(shop.take_bind().is_some());
        drop(b);
    }

    #[tokio::test]
    async fn passwords_in_the_clear_and_hashed() {
        let plain = client("system_id = \"shop\"\npassword = \"pw\"\n");
        assert!(plain.password_matches("pw").await);
        assert!(!plain.password_matches("PW").await);
        use argon2::PasswordHasher;
        let salt = argon2::password_hash::SaltString::encode_b64(b"smsroute-salt-16").unwrap();
        let hash = argon2::Argon2::default()
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        let hashed = client(&format!(
            "system_id = \"shop\"\npassword_hash = \"{hash}\"\n"
        ));
        assert!(hashed.password_matches("s3cret").await);
        assert!(!hashed.password_matches("s3cre").await);
    }

    #[test]
    fn the_client_rate_refuses_past_its_burst() {
        let shop = client("tps = 2\nsystem_id = \"shop\"\npassword = \"pw\"\n");
        assert!(shop.admit(1, 0));
        assert!(shop.admit(1, 0));
        assert!(!shop.admit(1, 0), "two a second, a second's burst");
        assert!(shop.admit(1, 1_000_000_000));
    }
}
