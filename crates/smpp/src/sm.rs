//! From a message to submit_sm parts, and from a deliver_sm to a receipt or a text.

use smsroute_delivery::ReceiptStatus;
use smsroute_types::{
    Encoding, Message, Sender, gsm7_decode, gsm7_encode, split_parts, ucs2_decode, ucs2_encode,
};

use std::time::{SystemTime, UNIX_EPOCH};

use crate::pdu::{Address, ShortMessage};

/// esm_class bit: the user data starts with a header (UDH).
pub const ESM_UDHI: u8 = 0x40;
/// esm_class message type: an MC delivery receipt.
pub const ESM_RECEIPT: u8 = 0x04;

/// The source address of a sender: alphanumeric TON 5, `+`-international TON 1 NPI 1,
/// other numeric TON 0 (short codes, national).
pub fn source_address(sender: &Sender) -> Address {
    match sender {
        Sender::Alphanumeric(text) => Address {
            ton: 5,
            npi: 0,
            addr: text.to_string(),
        },
        Sender::Numeric {
            digits,
            international,
        } => Address {
            ton: if *international { 1 } else { 0 },
            npi: 1,
            addr: digits.to_string(),
        },
    }
}

/// The submit_sm of each part: data_coding 0 (GSM-7, unpacked) or 8 (UCS-2); a multipart
/// message carries the 8-bit concatenation UDH (`05 00 03 ref total seq`) and esm_class 0x40.
pub fn submit_parts(message: &Message, reference: u8, receipt: bool) -> Vec<ShortMessage> {
    let text = message.text();
    let ranges = split_parts(text);
    let total = ranges.len() as u8;
    let (data_coding, encode): (u8, fn(&str, &mut Vec<u8>)) = match message.segmentation().encoding
    {
        Encoding::Gsm7 => (0, gsm7_encode),
        Encoding::Ucs2 => (8, ucs2_encode),
    };
    ranges
        .into_iter()
        .enumerate()
        .map(|(i, range)| {
            let mut user_data = Vec::with_capacity(160);
            if total > 1 {
                user_data.extend_from_slice(&[0x05, 0x00, 0x03, reference, total, i as u8 + 1]);
            }
            encode(&text[range], &mut user_data);
            ShortMessage {
                source: source_address(message.from()),
                destination: Address {
                    ton: 1,
                    npi: 1,
                    addr: message.to().as_str().to_string(),
                },
                esm_class: if total > 1 { ESM_UDHI } else { 0 },
                registered_delivery: u8::from(receipt),
                data_coding,
                short_message: user_data,
                message_payload: None,
                receipted_message_id: None,
                message_state: None,
                possible_duplicate: false,
                sar: None,
                schedule_delivery_time: String::new(),
                validity_period: String::new(),
            }
        })
        .collect()
}

/// A concatenation header: reference, total parts, this part (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concat {
    /// Reference shared by the parts.
    pub reference: u16,
    /// Parts in all.
    pub total: u8,
    /// This part, 1-based.
    pub part: u8,
}

/// The text of a submit_sm or deliver_sm, and its concatenation header if any (a UDH with an
/// 8- or 16-bit reference, else the SAR TLVs). Data coding 8
/// is UCS-2; 0 and 1 (node-smpp's GSM text) are treated as GSM / ASCII; others as Latin-1.
pub fn text_of(sm: &ShortMessage) -> (Option<Concat>, String) {
    let data = sm.message_payload.as_deref().unwrap_or(&sm.short_message);
    let (concat, body) = if sm.esm_class & ESM_UDHI != 0 && !data.is_empty() {
        let udh_len = usize::from(data[0]) + 1;
        let header = data.get(1..udh_len).unwrap_or(&[]);
        (parse_udh(header), data.get(udh_len..).unwrap_or(&[]))
    } else {
        (None, data)
    };
    let concat = concat.or(sm.sar);
    let text = match sm.data_coding {
        8 => ucs2_decode(body),
        0 => gsm7_decode(body),
        1 => String::from_utf8_lossy(body).into_owned(),
        _ => body.iter().map(|&b| char::from(b)).collect(),
    };
    (concat, text)
}

fn parse_udh(mut header: &[u8]) -> Option<Concat> {
    while header.len() >= 2 {
        let (iei, len) = (header[0], usize::from(header[1]));
        let value = header.get(2..2 + len)?;
        match (iei, value) {
            (0x00, [r, t, p]) => {
                return Some(Concat {
                    reference: u16::from(*r),
                    total: *t,
                    part: *p,
                });
            }
            (0x08, [r1, r2, t, p]) => {
                return Some(Concat {
                    reference: u16::from_be_bytes([*r1, *r2]),
                    total: *t,
                    part: *p,
                });
            }
            _ => header = &header[2 + len..],
        }
    }
    None
}

/// A delivery receipt read from a deliver_sm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedReceipt {
    /// The MC's message id (receipted_message_id TLV first, else the text's `id:`).
    pub id: String,
    /// Final state.
    pub status: ReceiptStatus,
    /// `err:` as a number (0 when absent).
    pub error: u32,
    /// The id came from the receipted_message_id TLV, which SMPP 3.4 defines as the id the
    /// submit_sm_resp gave: it is used as it is. An id read from the text may be written in
    /// another form (decimal for hex, leading zeros).
    pub exact: bool,
}

/// Reads a receipt from a deliver_sm, tolerantly: the TLVs when present, else the text
/// `id:… sub:… dlvrd:… submit date:… done date:… stat:… err:…` (keys in any case and order,
/// dates of 10 or 12 digits, ids as given). `None` when it is not a receipt.
pub fn parse_receipt(sm: &ShortMessage) -> Option<ParsedReceipt> {
    let (_, text) = text_of(sm);
    let fields = receipt_fields(&text);
    let looks_like_receipt = sm.esm_class & 0x3C == ESM_RECEIPT
        || sm.receipted_message_id.is_some()
        || (fields.id.is_some() && fields.stat.is_some());
    if !looks_like_receipt {
        return None;
    }
    let exact = sm.receipted_message_id.is_some();
    let id = sm
        .receipted_message_id
        .clone()
        .or(fields.id.map(str::to_string))?;
    let status = match (fields.stat, sm.message_state) {
        (Some(stat), _) => ReceiptStatus::parse(stat),
        (None, Some(state)) => match state {
            2 => ReceiptStatus::Delivered,
            3 => ReceiptStatus::Expired,
            5 => ReceiptStatus::Undeliverable,
            8 => ReceiptStatus::Rejected,
            _ => ReceiptStatus::Intermediate,
        },
        (None, None) => ReceiptStatus::Intermediate,
    };
    let error = fields
        .err
        .and_then(|e| e.trim_start_matches('0').parse().ok())
        .unwrap_or(0);
    Some(ParsedReceipt {
        id,
        status,
        error,
        exact,
    })
}

#[derive(Default)]
struct ReceiptFields<'a> {
    id: Option<&'a str>,
    stat: Option<&'a str>,
    err: Option<&'a str>,
}

/// Splits receipt text into its keys; values end at the next space (dates are digits only).
fn receipt_fields(text: &str) -> ReceiptFields<'_> {
    let mut fields = ReceiptFields::default();
    let lower = text.to_ascii_lowercase();
    for (key, slot) in [("id:", 0), ("stat:", 1), ("err:", 2)] {
        let mut from = 0;
        while let Some(at) = lower[from..].find(key).map(|i| i + from) {
            // A key starts the text or follows a space (so "sub:" is not mistaken for "b:").
            if at == 0 || lower.as_bytes()[at - 1] == b' ' {
                let start = at + key.len();
                let end = text[start..].find(' ').map_or(text.len(), |i| i + start);
                let value = &text[start..end];
                match slot {
                    0 => fields.id = Some(value),
                    1 => fields.stat = Some(value),
                    _ => fields.err = Some(value),
                }
                break;
            }
            from = at + key.len();
        }
    }
    fields
}

/// A delivery receipt as an SMSC sends it back: a deliver_sm from `source` (the message's
/// recipient) to `destination` (its sender) with esm_class 0x04, the SMPP 3.4 Appendix B text
/// (`id:… sub:001 dlvrd:… submit date:… done date:… stat:… err:… text:`, dates `YYMMDDhhmm`
/// UTC) and the `receipted_message_id` and `message_state` TLVs. `dates`: submitted, done.
pub fn receipt_deliver(
    source: Address,
    destination: Address,
    id: &str,
    outcome: ReceiptStatus,
    dates: (SystemTime, SystemTime),
) -> ShortMessage {
    let state = match outcome {
        ReceiptStatus::Delivered => FinalState::Delivered,
        ReceiptStatus::Expired => FinalState::Expired,
        ReceiptStatus::Undeliverable => FinalState::Undeliverable,
        ReceiptStatus::Rejected => FinalState::Rejected,
        ReceiptStatus::Intermediate => FinalState::Enroute,
    };
    receipt_in_state(source, destination, id, state, dates)
}

/// A message's state as a receipt reports it (SMPP 3.4 5.2.28 and Appendix B).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalState {
    /// `ENROUTE`, message_state 1.
    Enroute,
    /// `DELIVRD`, 2.
    Delivered,
    /// `EXPIRED`, 3.
    Expired,
    /// `DELETED`, 4: cancelled.
    Deleted,
    /// `UNDELIV`, 5.
    Undeliverable,
    /// `ACCEPTD`, 6: handed to the network, no final word.
    Accepted,
    /// `REJECTD`, 8.
    Rejected,
}

impl FinalState {
    /// The receipt text's `stat:` and the `message_state` TLV.
    pub fn stat_and_state(self) -> (&'static str, u8) {
        match self {
            FinalState::Enroute => ("ENROUTE", 1),
            FinalState::Delivered => ("DELIVRD", 2),
            FinalState::Expired => ("EXPIRED", 3),
            FinalState::Deleted => ("DELETED", 4),
            FinalState::Undeliverable => ("UNDELIV", 5),
            FinalState::Accepted => ("ACCEPTD", 6),
            FinalState::Rejected => ("REJECTD", 8),
        }
    }
}

/// [`receipt_deliver`] for any [`FinalState`].
pub fn receipt_in_state(
    source: Address,
    destination: Address,
    id: &str,
    state: FinalState,
    dates: (SystemTime, SystemTime),
) -> ShortMessage {
    let (stat, state) = state.stat_and_state();
    let text = receipt_text(id, stat, 0, &smpp_date(dates.0), &smpp_date(dates.1));
    ShortMessage {
        source,
        destination,
        esm_class: ESM_RECEIPT,
        registered_delivery: 0,
        data_coding: 0,
        short_message: text.into_bytes(),
        message_payload: None,
        receipted_message_id: Some(id.to_string()),
        message_state: Some(state),
        possible_duplicate: false,
        sar: None,
        schedule_delivery_time: String::new(),
        validity_period: String::new(),
    }
}

/// A mobile-originated message as a deliver_sm: GSM-7 (data_coding 0) when the text fits the
/// alphabet, else UCS-2 (8); text longer than a short_message goes whole in `message_payload`.
pub fn text_deliver(source: Address, destination: Address, text: &str) -> ShortMessage {
    let mut data = Vec::with_capacity(text.len());
    let data_coding = if smsroute_types::is_gsm7(text) {
        gsm7_encode(text, &mut data);
        0
    } else {
        ucs2_encode(text, &mut data);
        8
    };
    let (short_message, message_payload) = if data.len() > 254 {
        (Vec::new(), Some(data))
    } else {
        (data, None)
    };
    ShortMessage {
        source,
        destination,
        esm_class: 0,
        registered_delivery: 0,
        data_coding,
        short_message,
        message_payload,
        receipted_message_id: None,
        message_state: None,
        possible_duplicate: false,
        sar: None,
        schedule_delivery_time: String::new(),
        validity_period: String::new(),
    }
}

/// `YYMMDDhhmm` in UTC, as receipts write dates.
pub fn smpp_date(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        year % 100,
        month,
        day,
        rest / 3600,
        rest % 3600 / 60
    )
}

/// A time field of SMPP 3.4 (7.1.1, `schedule_delivery_time`, `validity_period`) as an
/// instant: absolute `YYMMDDhhmmsstnn±` (local time `nn` quarter hours ahead of or behind
/// UTC; years 2000-2099), or relative `YYMMDDhhmmss000R` from `now` (a year as 365 days, a
/// month as 30). Empty: `None`.
pub fn smpp_time(text: &str, now: SystemTime) -> Result<Option<SystemTime>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let b = text.as_bytes();
    if b.len() != 16 || !b[..15].iter().all(u8::is_ascii_digit) {
        return Err(format!("{text:?}: expected 16 characters YYMMDDhhmmsstnnp"));
    }
    let n = |at: usize| u64::from(b[at] - b'0') * 10 + u64::from(b[at + 1] - b'0');
    let (yy, mo, dd, hh, mi, ss) = (n(0), n(2), n(4), n(6), n(8), n(10));
    let tenths = u64::from(b[12] - b'0');
    let quarters = n(13);
    match b[15] {
        b'R' => {
            let secs = ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss;
            Ok(Some(now + std::time::Duration::from_secs(secs)))
        }
        sign @ (b'+' | b'-') => {
            if !(1..=12).contains(&mo) || !(1..=31).contains(&dd) || hh > 23 || mi > 59 || ss > 59 {
                return Err(format!("{text:?}: not a valid date and time"));
            }
            if quarters > 48 {
                return Err(format!("{text:?}: offset past 12 hours"));
            }
            let days = days_from_civil(2000 + yy as i64, mo as i64, dd as i64);
            let local = days * 86_400 + (hh * 3600 + mi * 60 + ss) as i64;
            let offset = (quarters * 900) as i64;
            let utc = if sign == b'+' {
                local - offset
            } else {
                local + offset
            };
            let at = UNIX_EPOCH
                + std::time::Duration::from_secs(utc.max(0) as u64)
                + std::time::Duration::from_millis(tenths * 100);
            Ok(Some(at))
        }
        _ => Err(format!("{text:?}: the last character must be +, - or R")),
    }
}

/// An instant as an absolute SMPP time in UTC (`YYMMDDhhmmss000+`), as `final_date` writes it.
pub fn smpp_time_text(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{}{:02}000+", smpp_date(at), secs % 60)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The standard receipt text (SMPP 3.4 appendix B), as the simulator sends it.
pub fn receipt_text(id: &str, stat: &str, err: u32, submit: &str, done: &str) -> String {
    let dlvrd = if stat == "DELIVRD" { "001" } else { "000" };
    format!(
        "id:{id} sub:001 dlvrd:{dlvrd} submit date:{submit} done date:{done} stat:{stat} err:{err:03} text:"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smpp_times_absolute_and_relative() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let at = |t| smpp_time(t, now).unwrap().unwrap();
        // 2025-11-25 15:31:00 UTC, written in UTC and at UTC+1 (4 quarter hours).
        let utc = UNIX_EPOCH + std::time::Duration::from_secs(1_764_084_660);
        assert_eq!(at("251125153100000+"), utc);
        assert_eq!(at("251125163100004+"), utc);
        assert_eq!(at("251125143100004-"), utc);
        assert_eq!(
            at("251125153100500+"),
            utc + std::time::Duration::from_millis(500)
        );
        assert_eq!(smpp_date(at("251125153100000+")), "2511251531");
        assert_eq!(
            smpp_time_text(utc + std::time::Duration::from_secs(7)),
            "251125153107000+"
        );
        // Relative: one day, two hours, three seconds.
        assert_eq!(
            at("000001020003000R"),
            now + std::time::Duration::from_secs(86_400 + 7_200 + 3)
        );
        assert_eq!(smpp_time("", now), Ok(None));
        for bad in [
            "2511251531",
            "251125153100000X",
            "251325153100000+",
            "2511251531000a0+",
        ] {
            assert!(smpp_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_yymmddhhmm_utc() {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_764_084_660); // 2025-11-25 15:31 UTC
        assert_eq!(smpp_date(at), "2511251531");
        assert_eq!(smpp_date(UNIX_EPOCH), "7001010000");
    }

    fn deliver(text: &str) -> ShortMessage {
        ShortMessage {
            source: Address {
                ton: 1,
                npi: 1,
                addr: "447700900123".into(),
            },
            destination: Address {
                ton: 5,
                npi: 0,
                addr: "ACME".into(),
            },
            esm_class: ESM_RECEIPT,
            registered_delivery: 0,
            data_coding: 0,
            short_message: text.as_bytes().to_vec(),
            message_payload: None,
            receipted_message_id: None,
            message_state: None,
            possible_duplicate: false,
            sar: None,
            schedule_delivery_time: String::new(),
            validity_period: String::new(),
        }
    }

    #[test]
    fn multipart_messages_get_a_udh_per_part() {
        let m = Message::builder("447700900123", "ACME", &"x".repeat(200))
            .build()
            .unwrap();
        let parts = submit_parts(&m, 0x2A, true);
        assert_eq!(parts.len(), 2);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.esm_class, ESM_UDHI);
            assert_eq!(p.short_message[..6], [5, 0, 3, 0x2A, 2, i as u8 + 1]);
            assert_eq!((p.data_coding, p.registered_delivery), (0, 1));
            let (concat, text) = text_of(p);
            assert_eq!(concat.map(|c| (c.total, c.part)), Some((2, i as u8 + 1)));
            assert_eq!(text.len(), if i == 0 { 153 } else { 47 });
        }
        let u = Message::builder("+447700900123", "+447700900001", &"Ж".repeat(100))
            .build()
            .unwrap();
        let parts = submit_parts(&u, 7, false);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].data_coding, 8);
        assert_eq!(parts[0].short_message.len(), 6 + 67 * 2);
        assert_eq!((parts[0].source.ton, parts[0].source.npi), (1, 1));
        assert_eq!(text_of(&parts[1]).1, "Ж".repeat(33));
        let single = Message::builder("447700900123", "ACME", "hi €")
            .build()
            .unwrap();
        let p = &submit_parts(&single, 1, false)[0];
        assert_eq!(
            (p.esm_class, p.short_message.clone()),
            (0, vec![b'h', b'i', 0x20, 0x1B, 0x65])
        );
        assert_eq!(text_of(p).1, "hi €");
    }

    #[test]
    fn receipts_are_read_tolerantly() {
        let cases = [
            (
                "id:1a2b3c sub:001 dlvrd:001 submit date:2511241530 done date:2511241531 stat:DELIVRD err:000 text:hi",
                "1a2b3c",
                ReceiptStatus::Delivered,
                0,
            ),
            (
                "ID:00012345 SUB:001 DLVRD:000 SUBMIT DATE:251124153000 DONE DATE:251124153100 STAT:UNDELIV ERR:034",
                "00012345",
                ReceiptStatus::Undeliverable,
                34,
            ),
            ("stat:EXPIRED err:0 id:77", "77", ReceiptStatus::Expired, 0),
            ("id:9 stat:REJECTD", "9", ReceiptStatus::Rejected, 0),
            ("id:9 stat:ENROUTE", "9", ReceiptStatus::Intermediate, 0),
        ];
        for (text, id, status, error) in cases {
            let r = parse_receipt(&deliver(text)).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(
                (r.id.as_str(), r.status, r.error),
                (id, status, error),
                "{text}"
            );
        }
        // TLVs win over the text.
        let mut tlv = deliver("id:wrong stat:UNDELIV");
        tlv.receipted_message_id = Some("right".into());
        assert_eq!(parse_receipt(&tlv).unwrap().id, "right");
        let mut only_tlv = deliver("");
        only_tlv.receipted_message_id = Some("r1".into());
        only_tlv.message_state = Some(2);
        assert_eq!(
            parse_receipt(&only_tlv).unwrap().status,
            ReceiptStatus::Delivered
        );
        // A mobile-originated message is not a receipt.
        let mut mo = deliver("STOP");
        mo.esm_class = 0;
        assert_eq!(parse_receipt(&mo), None);
    }

    #[test]
    fn the_simulators_receipt_text_parses_back() {
        let text = receipt_text("abc", "DELIVRD", 0, "2511241530", "2511241531");
        let r = parse_receipt(&deliver(&text)).unwrap();
        assert_eq!((r.id.as_str(), r.status), ("abc", ReceiptStatus::Delivered));
    }
}
