//! The message a gateway hands to smsroute, validated once at the door.

use std::time::{Duration, SystemTime};

use crate::{E164, InvalidNumber, InvalidSender, Segmentation, Sender, segment};

/// Default cap on parts per message (`[limits] max_segments`), which a router applies when a
/// message is submitted.
pub const DEFAULT_MAX_SEGMENTS: u32 = 10;

/// Most parts any message may have: concatenation numbers parts in one octet. A router's own
/// limit (`[limits] max_segments`, at most this) is applied at submit.
pub const MAX_SEGMENTS: u32 = 255;

/// A message id, unique within one router.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a message was refused at validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// The destination is not an E.164 number.
    #[error("destination: {0}")]
    Destination(#[from] InvalidNumber),
    /// The sender is not a valid sender id.
    #[error("sender: {0}")]
    Sender(#[from] InvalidSender),
    /// The text needs more parts than allowed.
    #[error("text needs {segments} segments, at most {max} are allowed")]
    TooManySegments {
        /// Parts the text needs.
        segments: u32,
        /// The maximum ([`MAX_SEGMENTS`] when built, the router's `[limits] max_segments` at
        /// submit).
        max: u32,
    },
    /// A validity of zero would expire the message before its first attempt.
    #[error("validity must be greater than zero")]
    ZeroValidity,
    /// The tags and the client reference together are longer than [`MAX_ANNOTATIONS`].
    #[error("tags and client reference take {bytes} bytes, at most {max} are allowed")]
    Annotations {
        /// Their bytes.
        bytes: usize,
        /// [`MAX_ANNOTATIONS`].
        max: usize,
    },
    /// A tag's key is empty, or its key or value holds a control character.
    #[error("tag {key:?}: keys must be non-empty, keys and values free of control characters")]
    Tag {
        /// The offending tag's key.
        key: String,
    },
    /// The `max_price` tag is not a price.
    #[error("tag \"max_price\" {value:?} is not a price (a decimal of at most 6 places)")]
    MaxPrice {
        /// The tag's value.
        value: String,
    },
}

/// The most bytes a message's tags and client reference may take together (so a message, and
/// its journal record, stays small).
pub const MAX_ANNOTATIONS: usize = 64 * 1024;

/// Starts a tag in a message's body, after the text.
const TAG_KEY: char = '\u{1f}';
/// Separates a tag's key from its value.
const TAG_VALUE: char = '\u{1e}';

/// A validated message: destination, sender, text and its segmentation, delivery options.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    id: MessageId,
    to: E164,
    from: Sender,
    /// The text, then every tag as `\u{1f}key\u{1e}value`: one allocation for both, so a
    /// tagged message costs no more to build and free than an untagged one.
    body: Box<str>,
    text_len: usize,
    segmentation: Segmentation,
    validity: Option<Duration>,
    not_before: Option<SystemTime>,
    client_ref: Option<Box<str>>,
}

impl Message {
    /// Starts a message to `to` from `from` with `text`; nothing is checked until
    /// [`MessageBuilder::build`].
    ///
    /// ```
    /// use smsroute_types::Message;
    /// let m = Message::builder("+44 7700 900123", "ACME", "Your code is 1234")
    ///     .client_ref("order-17")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(m.to().as_str(), "447700900123");
    /// assert_eq!(m.segments(), 1);
    /// ```
    pub fn builder(to: &str, from: &str, text: &str) -> MessageBuilder {
        MessageBuilder {
            id: MessageId::default(),
            to: to.to_string(),
            from: from.to_string(),
            text: text.into(),
            validity: None,
            not_before: None,
            client_ref: None,
            tags: Vec::new(),
        }
    }

    /// The id (assigned by the router on submit).
    pub fn id(&self) -> MessageId {
        self.id
    }
    /// Sets the id; the router does this on submit.
    pub fn set_id(&mut self, id: MessageId) {
        self.id = id;
    }
    /// Holds the message until `at` (a policy deferring it, e.g. quiet hours).
    pub fn set_not_before(&mut self, at: Option<SystemTime>) {
        self.not_before = at;
    }
    /// Destination number.
    pub fn to(&self) -> &E164 {
        &self.to
    }
    /// Sender id.
    pub fn from(&self) -> &Sender {
        &self.from
    }
    /// Text as given.
    pub fn text(&self) -> &str {
        &self.body[..self.text_len]
    }
    /// Encoding and length of the text.
    pub fn segmentation(&self) -> Segmentation {
        self.segmentation
    }
    /// Parts the text needs: what cost and throughput are charged by.
    pub fn segments(&self) -> u32 {
        self.segmentation.segments
    }
    /// The message's own validity, overriding the configured default.
    pub fn validity(&self) -> Option<Duration> {
        self.validity
    }
    /// Earliest time to send (scheduled delivery).
    pub fn not_before(&self) -> Option<SystemTime> {
        self.not_before
    }
    /// The gateway's own reference, echoed in status events.
    pub fn client_ref(&self) -> Option<&str> {
        self.client_ref.as_deref()
    }
    /// Free-form key/value tags, echoed in status events.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str)> {
        self.body[self.text_len..]
            .split(TAG_KEY)
            .skip(1)
            .map(|tag| tag.split_once(TAG_VALUE).unwrap_or((tag, "")))
    }

    /// Whether the message has any tag (cheaper than looking at [`Message::tags`]).
    pub fn has_tags(&self) -> bool {
        self.body.len() > self.text_len
    }

    /// The value of the tag `key` (the first, if repeated).
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Smart encoding: replaces look-alike characters with GSM-7 ones when that alone makes
    /// the text GSM-7 and saves segments ([`crate::smart_gsm7`]). Returns the segments saved
    /// (0: the text is unchanged).
    pub fn smart_encode(&mut self) -> u32 {
        let Some(text) = crate::smart_gsm7(self.text()) else {
            return 0;
        };
        let before = self.segments();
        let mut body = String::with_capacity(text.len() + self.body.len() - self.text_len);
        body.push_str(&text);
        body.push_str(&self.body[self.text_len..]);
        self.body = body.into_boxed_str();
        self.text_len = text.len();
        self.segmentation = crate::segment(&text);
        before - self.segments()
    }
}

impl std::fmt::Debug for Message {
    /// The fields as a user knows them: the text and the tags apart, not their packed body.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("from", &self.from)
            .field("text", &self.text())
            .field("segmentation", &self.segmentation)
            .field("validity", &self.validity)
            .field("not_before", &self.not_before)
            .field("client_ref", &self.client_ref)
            .field("tags", &self.tags().collect::<Vec<_>>())
            .finish()
    }
}

/// Builds a [`Message`]; `build` validates number, sender and segment count.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    id: MessageId,
    to: String,
    from: String,
    text: Box<str>,
    validity: Option<Duration>,
    not_before: Option<SystemTime>,
    client_ref: Option<Box<str>>,
    tags: Vec<(Box<str>, Box<str>)>,
}

impl MessageBuilder {
    /// Sets the id (normally the router assigns it).
    pub fn id(mut self, id: MessageId) -> Self {
        self.id = id;
        self
    }
    /// Gives up after `validity` instead of the configured default.
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = Some(validity);
        self
    }
    /// Holds the message until `at`.
    pub fn not_before(mut self, at: SystemTime) -> Self {
        self.not_before = Some(at);
        self
    }
    /// The gateway's own reference.
    pub fn client_ref(mut self, reference: &str) -> Self {
        self.client_ref = Some(reference.into());
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    /// Validates and builds: number, sender, tags, at most [`MAX_SEGMENTS`] parts. The
    /// router that takes the message checks its own segment limit when it is submitted.
    pub fn build(self) -> Result<Message, InvalidMessage> {
        let to = E164::parse(&self.to)?;
        let from = Sender::parse(&self.from)?;
        let segmentation = segment(&self.text);
        if segmentation.segments > MAX_SEGMENTS {
            return Err(InvalidMessage::TooManySegments {
                segments: segmentation.segments,
                max: MAX_SEGMENTS,
            });
        }
        if self.validity == Some(Duration::ZERO) {
            return Err(InvalidMessage::ZeroValidity);
        }
        let annotations = self.client_ref.as_deref().map_or(0, str::len)
            + self
                .tags
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if annotations > MAX_ANNOTATIONS {
            return Err(InvalidMessage::Annotations {
                bytes: annotations,
                max: MAX_ANNOTATIONS,
            });
        }
        let text_len = self.text.len();
        let body = if self.tags.is_empty() {
            self.text
        } else {
            let tags_len: usize = self.tags.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            let mut body = String::with_capacity(self.text.len() + tags_len);
            body.push_str(&self.text);
            for (key, value) in &self.tags {
                let bad = |s: &str| s.chars().any(char::is_control);
                if key.is_empty() || bad(key) || bad(value) {
                    return Err(InvalidMessage::Tag {
                        key: key.to_string(),
                    });
                }
                body.push(TAG_KEY);
                body.push_str(key);
                body.push(TAG_VALUE);
                body.push_str(value);
            }
            body.into_boxed_str()
        };
        Ok(Message {
            id: self.id,
            to,
            from,
            body,
            text_len,
            segmentation,
            validity: self.validity,
            not_before: self.not_before,
            client_ref: self.client_ref,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encoding;

    #[test]
    fn smart_encoding_rewrites_the_text_and_keeps_the_tags() {
        let text = format!("{}\u{2019}s \u{2013} ok", "x".repeat(90));
        let mut m = Message::builder("447700900123", "ACME", &text)
            .tag("class", "otp")
            .build()
            .unwrap();
        assert_eq!(
            (m.segmentation().encoding, m.segments()),
            (Encoding::Ucs2, 2)
        );
        assert_eq!(m.smart_encode(), 1);
        assert_eq!(m.text(), format!("{}'s - ok", "x".repeat(90)));
        assert_eq!(
            (m.segmentation().encoding, m.segments()),
            (Encoding::Gsm7, 1)
        );
        assert_eq!(m.tag("class"), Some("otp"));
        assert_eq!(m.smart_encode(), 0, "GSM-7 already");
    }

    #[test]
    fn builds_a_valid_message() {
        let m = Message::builder("00 33 6 12 34 56 78", "+33612345678", &"ж".repeat(100))
            .id(MessageId(7))
            .validity(Duration::from_secs(60))
            .tag("campaign", "spring")
            .build()
            .unwrap();
        assert_eq!(m.id(), MessageId(7));
        assert_eq!(m.to().as_str(), "33612345678");
        assert_eq!(m.segmentation().encoding, Encoding::Ucs2);
        assert_eq!(m.segments(), 2);
        assert_eq!(m.tags().collect::<Vec<_>>(), vec![("campaign", "spring")]);
        assert_eq!(m.text(), "ж".repeat(100));
    }

    #[test]
    fn tags_keep_their_order_and_leave_the_text_alone() {
        let m = Message::builder("447700900123", "ACME", "a=b; c")
            .tag("class", "marketing")
            .tag("account", "")
            .tag("class", "second")
            .build()
            .unwrap();
        assert_eq!(m.text(), "a=b; c");
        assert_eq!(
            m.tags().collect::<Vec<_>>(),
            vec![("class", "marketing"), ("account", ""), ("class", "second")]
        );
        assert_eq!(m.tag("class"), Some("marketing"));
        assert_eq!(m.tag("account"), Some(""));
        assert_eq!(m.tag("campaign"), None);
        assert!(m.has_tags());
        let untagged = Message::builder("447700900123", "ACME", "a=b; c")
            .build()
            .unwrap();
        assert!(!untagged.has_tags());
        assert_eq!(untagged.tags().count(), 0);
        let shown = format!("{m:?}");
        assert!(shown.contains(r#"text: "a=b; c""#), "{shown}");
        assert!(shown.contains(r#"("class", "marketing")"#), "{shown}");
        let untagged = Message::builder("447700900123", "ACME", "hi")
            .build()
            .unwrap();
        assert_eq!(untagged.tags().count(), 0);
    }

    #[test]
    fn refuses_tags_that_would_be_ambiguous() {
        for (key, value) in [
            ("", "x"),
            ("cla\u{1f}ss", "x"),
            ("class", "a\u{1e}b"),
            ("k", "new\nline"),
        ] {
            let err = Message::builder("447700900123", "ACME", "hi")
                .tag(key, value)
                .build()
                .unwrap_err();
            assert_eq!(
                err,
                InvalidMessage::Tag {
                    key: key.to_string()
                }
            );
        }
    }

    #[test]
    fn refuses_invalid_parts() {
        let build = |to: &str, from: &str, text: &str| Message::builder(to, from, text).build();
        assert!(matches!(
            build("12", "ACME", "hi"),
            Err(InvalidMessage::Destination(_))
        ));
        assert!(matches!(
            build("447700900123", "", "hi"),
            Err(InvalidMessage::Sender(_))
        ));
        // 256 parts of 153 GSM-7 characters: one more than concatenation can number.
        let longest = "a".repeat(153 * 255);
        assert_eq!(
            build("447700900123", "ACME", &longest).map(|m| m.segments()),
            Ok(255)
        );
        assert_eq!(
            build("447700900123", "ACME", &format!("{longest}a")),
            Err(InvalidMessage::TooManySegments {
                segments: 256,
                max: MAX_SEGMENTS
            })
        );
        let zero = Message::builder("447700900123", "ACME", "hi").validity(Duration::ZERO);
        assert_eq!(zero.build(), Err(InvalidMessage::ZeroValidity));
        let err = build("447700900123", "ACME", &format!("{longest}a")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "text needs 256 segments, at most 255 are allowed"
        );
    }

    #[test]
    fn tags_and_reference_past_their_limit_are_refused() {
        let big = "x".repeat(MAX_ANNOTATIONS / 2);
        let message = |n: usize| {
            let mut b = Message::builder("447700900123", "ACME", "hi").client_ref(&big);
            for i in 0..n {
                b = b.tag(&format!("k{i}"), &big);
            }
            b.build()
        };
        assert!(message(0).is_ok());
        assert!(matches!(
            message(1),
            Err(InvalidMessage::Annotations {
                max: MAX_ANNOTATIONS,
                ..
            })
        ));
    }
}
