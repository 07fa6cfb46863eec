//! `[[clients]]`: the accounts of `smsroute serve`'s clients, checked with positions; secrets
//! never shown.

use smsroute_config::{Config, Password};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

#[test]
fn a_full_client_parses_into_checked_values() {
    let text = format!(
        r#"
[[accounts]]
id = "acme-prepaid"
balance = 100

[[clients]]
id = "acme"
system_id = "acme"
password = "secret"
api_keys = ["k_live_0123456789abcdef"]
account = "acme-prepaid"
senders = ["ACME", "+447700900123"]
tps = 50
window = 20
max_binds = 2
replies = ["+447700900123", "84433"]
webhook_url = "http://127.0.0.1:9000/sms/status"
webhook_secret = "whsec_0123456789abcdef"

[[clients]]
id = "beta"
system_id = "beta"
password_hash = "{HASH}"

[[clients]]
id = "http-only"
api_keys = ["k_live_fedcba9876543210"]
"#
    );
    let config = Config::parse(&text, "clients.toml").unwrap();
    let [acme, beta, http] = &config.clients[..] else {
        panic!("three clients: {:?}", config.clients);
    };
    let login = acme.smpp.as_ref().unwrap();
    assert_eq!(login.system_id, "acme");
    assert!(matches!(&login.password, Password::Plain(p) if p.expose() == "secret"));
    assert_eq!(acme.api_keys[0].expose(), "k_live_0123456789abcdef");
    assert_eq!(acme.account.as_deref(), Some("acme-prepaid"));
    assert_eq!(acme.senders.len(), 2);
    assert_eq!((acme.tps, acme.window, acme.max_binds), (Some(50), 20, 2));
    assert_eq!(acme.replies, ["447700900123", "84433"]);
    let hook = acme.webhook.as_ref().unwrap();
    assert_eq!(hook.url, "http://127.0.0.1:9000/sms/status");
    assert_eq!(hook.signing_key.expose(), "whsec_0123456789abcdef");
    assert!(beta.webhook.is_none());
    assert!(
        matches!(&beta.smpp.as_ref().unwrap().password, Password::Hash(h) if h.expose() == HASH)
    );
    assert_eq!(
        (beta.tps, beta.window, beta.max_binds),
        (None, 10, 4),
        "defaults"
    );
    assert!(http.smpp.is_none());
    // No secret in what a log line of the configuration would show.
    let shown = format!("{:?}", config.clients);
    for secret in [
        "secret",
        "k_live_0123456789abcdef",
        HASH,
        "whsec_0123456789abcdef",
    ] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
}

#[test]
fn every_bad_client_row_names_line_column_and_problem() {
    let key = "api_keys = [\"k_live_0123456789abcdef\"]\n";
    let cases: Vec<(String, &str, &str)> = vec![
        ("[[clients]]\nid = \"Acme\"\n".to_string() + key, "2:6", "client id must be [a-z0-9_-]+"),
        ("[[clients]]\nid = \"a\"\n".into(), "2:6", "client \"a\" has no way in"),
        ("[[clients]]\nid = \"a\"\nsystem_id = \"a\"\n".into(), "1:1", "system_id \"a\" needs a password or password_hash"),
        ("[[clients]]\nid = \"a\"\npassword = \"x\"\n".into(), "3:12", "a password needs a system_id"),
        ("[[clients]]\nid = \"a\"\nsystem_id = \"a\"\npassword = \"toolongpw\"\n".into(), "4:12", "password must be 1 to 8 ASCII characters"),
        ("[[clients]]\nid = \"a\"\nsystem_id = \"a\"\npassword = \"x\"\npassword_hash = \"y\"\n".into(), "4:12", "give password or password_hash, not both"),
        ("[[clients]]\nid = \"a\"\nsystem_id = \"a\"\npassword_hash = \"md5:abc\"\n".into(), "4:17", "password_hash must be an Argon2 hash in PHC form"),
        ("[[clients]]\nid = \"a\"\nsystem_id = \"a very long system id\"\npassword = \"x\"\n".into(), "3:13", "system_id must be 1 to 15 printable ASCII characters"),
        ("[[clients]]\nid = \"a\"\napi_keys = [\"short\"]\n".into(), "3:13", "an API key must be at least 16 printable characters"),
        (format!("[[clients]]\nid = \"a\"\n{key}[[clients]]\nid = \"b\"\n{key}"), "6:13", "API key already given on line 3"),
        (format!("[[clients]]\nid = \"a\"\n{key}[[clients]]\nid = \"a\"\napi_keys = [\"k_live_fedcba9876543210\"]\n"), "5:6", "duplicate client \"a\" (first on line 2)"),
        ("[[clients]]\nid = \"a\"\nsystem_id = \"s\"\npassword = \"p\"\n[[clients]]\nid = \"b\"\nsystem_id = \"s\"\npassword = \"p\"\n".into(), "7:13", "system_id \"s\" is already another client's (line 3)"),
        (format!("[[clients]]\nid = \"a\"\n{key}account = \"nope\"\n"), "4:11", "unknown account \"nope\""),
        (format!("[[clients]]\nid = \"a\"\n{key}senders = [\"\"]\n"), "4:12", "sender \"\" is invalid"),
        (format!("[[clients]]\nid = \"a\"\n{key}tps = 0\n"), "4:7", "tps must be between 1 and 1000000, got 0"),
        (format!("[[clients]]\nid = \"a\"\n{key}window = 0\n"), "4:10", "window must be between 1 and 10000, got 0"),
        (format!("[[clients]]\nid = \"a\"\n{key}max_binds = 5000\n"), "4:13", "max_binds must be between 1 and 1000, got 5000"),
        (format!("[[clients]]\nid = \"a\"\n{key}replies = [\"12\"]\n"), "4:12", "replies: \"12\" is not a number or short code"),
        (format!("[[clients]]\nid = \"a\"\n{key}replies = [\"84433\"]\n[[clients]]\nid = \"b\"\napi_keys = [\"k_live_fedcba9876543210\"]\nreplies = [\"84433\"]\n"), "8:12", "replies to \"84433\" already go to the client on line 4"),
        (format!("[[clients]]\nid = \"a\"\n{key}colour = \"red\"\n"), "4:1", "unknown field `colour`"),
        (format!("[[clients]]\nid = \"a\"\n{key}webhook_url = \"ftp://x\"\nwebhook_secret = \"whsec_0123456789abcdef\"\n"), "4:15", "webhook_url must be http(s)://host[:port]/path"),
        (format!("[[clients]]\nid = \"a\"\n{key}webhook_url = \"http://x/y\"\nwebhook_secret = \"whsec_0123456789abcdef\"\nwebhook_ca = \"ca.pem\"\n"), "6:14", "webhook_ca is for an https:// webhook_url"),
        (format!("[[clients]]\nid = \"a\"\n{key}webhook_url = \"http://x/y\"\n"), "1:1", "webhook_url needs a webhook_secret"),
        (format!("[[clients]]\nid = \"a\"\n{key}webhook_url = \"http://x/y\"\nwebhook_secret = \"short\"\n"), "5:18", "webhook_secret must be at least 16"),
        (format!("[[clients]]\nid = \"a\"\n{key}webhook_secret = \"whsec_0123456789abcdef\"\n"), "4:18", "webhook_secret needs a webhook_url"),
    ];
    for (text, at, fragment) in cases {
        let err = Config::parse(&text, "bad.toml").expect_err(&format!("should reject:\n{text}"));
        let rendered = err.to_string();
        let first = rendered.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("bad.toml:{at}: ")) && first.contains(fragment),
            "want {at} {fragment:?}, got {first:?} for:\n{text}"
        );
        assert!(
            !rendered.contains("k_live_0123456789abcdef"),
            "a key in {rendered}"
        );
    }
}
