//! `[[clients]]`: the accounts of the gateways that talk to `smsroute serve` (over SMPP with a
//! `system_id` and password, over HTTP with API keys), their own limits, and the numbers whose
//! replies they receive.

use std::collections::HashMap;
use std::fmt;

use smsroute_types::Sender;
use toml::Spanned;

use super::raw::RawClient;
use super::validate::{Checker, is_id};

/// A client account (`[[clients]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Its id (`[a-z0-9_-]+`), unique.
    pub id: String,
    /// How it binds over SMPP, if it does.
    pub smpp: Option<SmppLogin>,
    /// The keys it calls the HTTP API with (`Authorization: Bearer KEY`), unique across
    /// clients.
    pub api_keys: Vec<Secret>,
    /// The spend account (`[[accounts]]`) its messages are charged to.
    pub account: Option<String>,
    /// The sender ids it may send as; empty: any.
    pub senders: Vec<Sender>,
    /// Its own throughput, messages a second; `None`: only the carriers' limits apply.
    pub tps: Option<u32>,
    /// Submits a bind may have unanswered at once (default 10).
    pub window: u32,
    /// Binds it may hold at once (default 4).
    pub max_binds: u32,
    /// Numbers and short codes (digits, as written without `+`) whose replies go to it;
    /// each belongs to one client.
    pub replies: Vec<String>,
    /// Where its messages' terminal statuses are posted, signed (`docs/serve.md`).
    pub webhook: Option<Webhook>,
}

/// A client's status webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// `http://` or `https://host[:port]/path`.
    pub url: String,
    /// A PEM file of certificate authorities trusted for an https URL besides the usual
    /// public ones (a private endpoint's own CA), as written.
    pub ca: Option<String>,
    /// The HMAC-SHA256 key its bodies are signed with (`webhook_secret`, at least 16
    /// characters).
    pub signing_key: Secret,
}

/// An SMPP login: the `system_id` and how its password is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmppLogin {
    /// The `system_id` of its binds (1 to 15 characters, unique across clients).
    pub system_id: String,
    /// Its password.
    pub password: Password,
}

/// A password as the configuration gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Password {
    /// In the clear (`password`, 1 to 8 characters as SMPP 3.4 allows).
    Plain(Secret),
    /// An Argon2 hash in PHC form (`password_hash = "$argon2id$v=19$m=…,t=…,p=…$salt$hash"`).
    Hash(Secret),
}

/// A password, key or hash: its `Debug` never shows it, so no log line or error can.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(crate) String);

impl Secret {
    /// The secret itself, to check a login against.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The shortest API key accepted.
const MIN_API_KEY: usize = 16;

/// Checks every `[[clients]]` row; `accounts` are the ids `[[accounts]]` defines.
pub(super) fn clients(
    check: &mut Checker<'_>,
    raw: &[Spanned<RawClient>],
    accounts: &[&str],
) -> Vec<ClientConfig> {
    let mut out = Vec::with_capacity(raw.len());
    let mut ids = HashMap::new();
    let mut system_ids = HashMap::new();
    let mut keys = HashMap::new();
    let mut replies = HashMap::new();
    for row in raw {
        let c = row.get_ref();
        let id = c.id.get_ref();
        if !is_id(id) {
            check.error(
                c.id.span(),
                format!("client id must be [a-z0-9_-]+, got {id:?}"),
            );
        } else if let Some(first) = ids.insert(id.clone(), check.line_at(c.id.span().start)) {
            check.error(
                c.id.span(),
                format!("duplicate client {id:?} (first on line {first})"),
            );
        }
        let smpp = login(check, c, row);
        if let Some(login) = &smpp
            && let Some(first) = system_ids.insert(
                login.system_id.clone(),
                check.line_at(c.system_id.as_ref().map_or(0, |s| s.span().start)),
            )
        {
            let span = c.system_id.as_ref().map_or(row.span(), Spanned::span);
            check.error(
                span,
                format!(
                    "system_id {:?} is already another client's (line {first})",
                    login.system_id
                ),
            );
        }
        let mut api_keys = Vec::new();
        for key in c.api_keys.iter().flatten() {
            let k = key.get_ref();
            if k.len() < MIN_API_KEY || !k.bytes().all(|b| b.is_ascii_graphic()) {
                check.error(
                    key.span(),
                    format!(
                        "an API key must be at least {MIN_API_KEY} printable characters \
                         without spaces"
                    ),
                );
            } else if let Some(first) = keys.insert(k.clone(), check.line_at(key.span().start)) {
                // The key itself is never repeated in the message.
                check.error(key.span(), format!("API key already given on line {first}"));
            } else {
                api_keys.push(Secret(k.clone()));
            }
        }
        let tried = [&c.system_id, &c.password, &c.password_hash]
            .iter()
            .any(|f| f.is_some())
            || c.api_keys.is_some();
        if !tried {
            check.error(
                c.id.span(),
                format!(
                    "client {id:?} has no way in: give system_id and password (SMPP) or \
                     api_keys (HTTP)"
                ),
            );
        }
        let account = c.account.as_ref().and_then(|a| {
            let name = a.get_ref();
            if accounts.contains(&name.as_str()) {
                Some(name.clone())
            } else {
                check.error(
                    a.span(),
                    format!("unknown account {name:?} (see [[accounts]])"),
                );
                None
            }
        });
        let mut senders = Vec::new();
        for sender in c.senders.iter().flatten() {
            match Sender::parse(sender.get_ref()) {
                Ok(s) => senders.push(s),
                Err(e) => check.error(
                    sender.span(),
                    format!("sender {:?} is invalid: {e}", sender.get_ref()),
                ),
            }
        }
        let mut own_replies = Vec::new();
        for number in c.replies.iter().flatten() {
            let written = number.get_ref();
            let digits = written.strip_prefix('+').unwrap_or(written);
            if !(3..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                check.error(
                    number.span(),
                    format!("replies: {written:?} is not a number or short code (3 to 15 digits)"),
                );
            } else if let Some(first) =
                replies.insert(digits.to_string(), check.line_at(number.span().start))
            {
                check.error(
                    number.span(),
                    format!("replies to {written:?} already go to the client on line {first}"),
                );
            } else {
                own_replies.push(digits.to_string());
            }
        }
        let webhook = webhook(check, c, row);
        out.push(ClientConfig {
            id: id.clone(),
            smpp,
            api_keys,
            account,
            senders,
            tps: c
                .tps
                .as_ref()
                .map(|t| check.int(Some(t), "tps", (1, 1_000_000), 1)),
            window: check.int(c.window.as_ref(), "window", (1, 10_000), 10),
            max_binds: check.int(c.max_binds.as_ref(), "max_binds", (1, 1_000), 4),
            replies: own_replies,
            webhook,
        });
    }
    out
}

/// The shortest webhook secret accepted.
const MIN_WEBHOOK_SECRET: usize = 16;

/// The webhook of a client row, if it gives one (and it is whole).
fn webhook(check: &mut Checker<'_>, c: &RawClient, row: &Spanned<RawClient>) -> Option<Webhook> {
    match (&c.webhook_url, &c.webhook_secret) {
        (None, None) => {
            if let Some(ca) = &c.webhook_ca {
                check.error(ca.span(), "webhook_ca needs a webhook_url");
            }
            None
        }
        (None, Some(secret)) => {
            check.error(secret.span(), "webhook_secret needs a webhook_url");
            None
        }
        (Some(url), secret) => {
            let text = url.get_ref();
            let host = text
                .strip_prefix("http://")
                .or_else(|| text.strip_prefix("https://"))
                .and_then(|rest| rest.split('/').next())
                .filter(|host| !host.is_empty());
            if host.is_none() {
                check.error(url.span(), "webhook_url must be http(s)://host[:port]/path");
                return None;
            }
            let Some(secret) = secret else {
                check.error(
                    row.span(),
                    "webhook_url needs a webhook_secret to sign with",
                );
                return None;
            };
            let key = secret.get_ref();
            if key.len() < MIN_WEBHOOK_SECRET || !key.bytes().all(|b| b.is_ascii_graphic()) {
                check.error(
                    secret.span(),
                    format!(
                        "webhook_secret must be at least {MIN_WEBHOOK_SECRET} printable \
                         characters without spaces"
                    ),
                );
                return None;
            }
            let ca = match &c.webhook_ca {
                Some(ca) if ca.get_ref().trim().is_empty() => {
                    check.error(ca.span(), "webhook_ca must name a PEM file");
                    return None;
                }
                Some(ca) if !text.starts_with("https://") => {
                    check.error(ca.span(), "webhook_ca is for an https:// webhook_url");
                    return None;
                }
                other => other.as_ref().map(|ca| ca.get_ref().clone()),
            };
            Some(Webhook {
                url: text.clone(),
                ca,
                signing_key: Secret(key.clone()),
            })
        }
    }
}

/// The SMPP login of a client row, if it gives one (and it is whole).
fn login(check: &mut Checker<'_>, c: &RawClient, row: &Spanned<RawClient>) -> Option<SmppLogin> {
    let password = match (&c.password, &c.password_hash) {
        (Some(p), None) => {
            let n = p.get_ref().chars().count();
            if !(1..=8).contains(&n) || !p.get_ref().is_ascii() {
                check.error(
                    p.span(),
                    "password must be 1 to 8 ASCII characters (SMPP 3.4); use password_hash \
                     for a stored hash",
                );
                None
            } else {
                Some(Password::Plain(Secret(p.get_ref().clone())))
            }
        }
        (None, Some(h)) => {
            if is_phc_argon2(h.get_ref()) {
                Some(Password::Hash(Secret(h.get_ref().clone())))
            } else {
                check.error(
                    h.span(),
                    "password_hash must be an Argon2 hash in PHC form \
                     ($argon2id$v=19$m=…,t=…,p=…$salt$hash)",
                );
                None
            }
        }
        (Some(p), Some(_)) => {
            check.error(p.span(), "give password or password_hash, not both");
            None
        }
        (None, None) => None,
    };
    let Some(system_id) = &c.system_id else {
        if let Some(p) = c.password.as_ref().or(c.password_hash.as_ref()) {
            check.error(p.span(), "a password needs a system_id");
        }
        return None;
    };
    let id = system_id.get_ref();
    if !(1..=15).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_graphic()) {
        check.error(
            system_id.span(),
            format!("system_id must be 1 to 15 printable ASCII characters, got {id:?}"),
        );
        return None;
    }
    let Some(password) = password else {
        if c.password.is_none() && c.password_hash.is_none() {
            check.error(
                row.span(),
                format!("system_id {id:?} needs a password or password_hash"),
            );
        }
        return None;
    };
    Some(SmppLogin {
        system_id: id.clone(),
        password,
    })
}

/// Whether `hash` has the shape of an Argon2 PHC string (the algorithm, version, parameters,
/// salt and hash fields); the hash itself is checked at the first login.
fn is_phc_argon2(hash: &str) -> bool {
    let fields: Vec<&str> = hash.split('$').collect();
    matches!(
        fields.as_slice(),
        ["", "argon2id" | "argon2i" | "argon2d", version, params, salt, digest]
            if version.starts_with("v=")
                && params.split(',').count() == 3
                && params.split(',').all(|p| p.contains('='))
                && !salt.is_empty()
                && !digest.is_empty()
    )
}
