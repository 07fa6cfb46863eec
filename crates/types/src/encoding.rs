//! Text encoding and segmentation: GSM 03.38 (7-bit, with its extension table) or UCS-2.
//!
//! GSM-7 counts septets: a basic-table character is one, an extension-table character
//! (`^ { } \ [ ~ ] | €` and form feed) is an escape plus the character, two septets that are
//! never split across parts. UCS-2 counts 16-bit units: a character outside the BMP is a
//! surrogate pair, two units never split. A single part holds 160 septets / 70 units; a
//! multipart message carries a concatenation header, leaving 153 / 67 per part.

use std::ops::Range;

/// The characters of the GSM 03.38 basic table (escape excluded: it is not text).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The characters of the GSM 03.38 extension table, each sent as escape + character.
const GSM_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// Septets in a single-part GSM-7 message.
pub const GSM7_SINGLE: u32 = 160;
/// Septets per part of a multipart GSM-7 message.
pub const GSM7_MULTI: u32 = 153;
/// UCS-2 units in a single-part message.
pub const UCS2_SINGLE: u32 = 70;
/// UCS-2 units per part of a multipart message.
pub const UCS2_MULTI: u32 = 67;

/// How a text goes over the air.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 default alphabet, 7 bits a character (SMPP data_coding 0).
    Gsm7,
    /// UCS-2 / UTF-16BE (SMPP data_coding 8).
    Ucs2,
}

/// The encoding, length and part count of a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segmentation {
    /// Encoding the text needs: GSM-7 when every character is in the GSM tables.
    pub encoding: Encoding,
    /// Length in septets (GSM-7) or 16-bit units (UCS-2).
    pub units: u32,
    /// Number of parts (segments); an empty text is one part.
    pub segments: u32,
}

/// Septets a character takes in GSM-7: 1 (basic), 2 (extension), or `None` if it has none.
pub fn gsm7_width(ch: char) -> Option<u32> {
    const fn ascii_table() -> [u8; 128] {
        // 0: not GSM, 1: basic, 2: extension. Built from the tables above at compile time.
        let mut table = [0u8; 128];
        let basic = GSM_BASIC.as_bytes();
        let mut i = 0;
        while i < basic.len() {
            if basic[i] < 128 {
                table[basic[i] as usize] = 1;
            }
            i += 1;
        }
        let ext = GSM_EXTENSION.as_bytes();
        let mut i = 0;
        while i < ext.len() {
            if ext[i] < 128 {
                table[ext[i] as usize] = 2;
            }
            i += 1;
        }
        table
    }
    static ASCII: [u8; 128] = ascii_table();
    if ch.is_ascii() {
        return match ASCII[ch as usize] {
            0 => None,
            width => Some(u32::from(width)),
        };
    }
    if GSM_BASIC.contains(ch) {
        Some(1)
    } else if GSM_EXTENSION.contains(ch) {
        Some(2)
    } else {
        None
    }
}

/// Whether every character of `text` has a GSM-7 encoding.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_width(c).is_some())
}

fn unit_width(encoding: Encoding, ch: char) -> u32 {
    match encoding {
        // Only called after `is_gsm7` said yes.
        Encoding::Gsm7 => gsm7_width(ch).unwrap_or(2),
        Encoding::Ucs2 => ch.len_utf16() as u32,
    }
}

fn limits(encoding: Encoding) -> (u32, u32) {
    match encoding {
        Encoding::Gsm7 => (GSM7_SINGLE, GSM7_MULTI),
        Encoding::Ucs2 => (UCS2_SINGLE, UCS2_MULTI),
    }
}

/// Picks the encoding and counts units and parts, without allocating.
///
/// ```
/// use smsroute_types::{segment, Encoding};
/// let s = segment(&"a".repeat(161));
/// assert_eq!((s.encoding, s.units, s.segments), (Encoding::Gsm7, 161, 2));
/// assert_eq!(segment("Привет").encoding, Encoding::Ucs2);
/// ```
pub fn segment(text: &str) -> Segmentation {
    let encoding = if is_gsm7(text) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    };
    let (single, multi) = limits(encoding);
    let mut units = 0u32;
    let mut parts = 1u32;
    let mut in_part = 0u32;
    for ch in text.chars() {
        let w = unit_width(encoding, ch);
        units += w;
        if in_part + w > multi {
            parts += 1;
            in_part = 0;
        }
        in_part += w;
    }
    let segments = if units <= single { 1 } else { parts };
    Segmentation {
        encoding,
        units,
        segments,
    }
}

/// Splits `text` into the byte ranges of its parts, never splitting an escape pair or a
/// surrogate pair. One range (the whole text) when it fits a single part.
pub fn split_parts(text: &str) -> Vec<Range<usize>> {
    let seg = segment(text);
    if seg.segments == 1 {
        #[allow(clippy::single_range_in_vec_init)] // one part: the whole text
        return vec![0..text.len()];
    }
    let (_, multi) = limits(seg.encoding);
    let mut parts = Vec::with_capacity(seg.segments as usize);
    let (mut start, mut in_part) = (0usize, 0u32);
    for (at, ch) in text.char_indices() {
        let w = unit_width(seg.encoding, ch);
        if in_part + w > multi {
            parts.push(start..at);
            start = at;
            in_part = 0;
        }
        in_part += w;
    }
    parts.push(start..text.len());
    parts
}

/// The GSM 03.38 code of a basic-table character (the table skips 0x1B, the escape).
fn gsm7_basic_code(ch: char) -> Option<u8> {
    match u8::try_from(u32::from(ch)) {
        Ok(latin1) => Some(GSM7_LATIN1[latin1 as usize]).filter(|code| *code != NONE),
        // The Greek capitals: a short scan.
        Err(_) => GSM_BASIC.chars().position(|c| c == ch).map(code_at),
    }
}

/// The code of the basic table's character at `index` (the table skips 0x1B, the escape).
fn code_at(index: usize) -> u8 {
    (if index >= 0x1B { index + 1 } else { index }) as u8
}

/// No code in [`GSM7_LATIN1`].
const NONE: u8 = 0xFF;

/// The basic table's codes of the characters below U+0100 (all but the Greek capitals).
static GSM7_LATIN1: std::sync::LazyLock<[u8; 256]> = std::sync::LazyLock::new(|| {
    let mut codes = [NONE; 256];
    for (index, ch) in GSM_BASIC.chars().enumerate() {
        if let Ok(latin1) = u8::try_from(u32::from(ch)) {
            codes[latin1 as usize] = code_at(index);
        }
    }
    codes
});

/// The basic table as characters, by code (the escape's place holds `?`).
static GSM7_CHARS: std::sync::LazyLock<[char; 128]> = std::sync::LazyLock::new(|| {
    let mut chars = ['?'; 128];
    for (index, ch) in GSM_BASIC.chars().enumerate() {
        chars[code_at(index) as usize] = ch;
    }
    chars
});

/// The code after the escape of an extension-table character.
fn gsm7_extension_code(ch: char) -> Option<u8> {
    Some(match ch {
        '\u{0C}' => 0x0A,
        '^' => 0x14,
        '{' => 0x28,
        '}' => 0x29,
        '\\' => 0x2F,
        '[' => 0x3C,
        '~' => 0x3D,
        ']' => 0x3E,
        '|' => 0x40,
        '€' => 0x65,
        _ => return None,
    })
}

/// Encodes text for SMPP data_coding 0: one GSM 03.38 code per octet (unpacked), an
/// extension character as 0x1B and its code. Characters outside GSM-7 become `?`.
pub fn gsm7_encode(text: &str, out: &mut Vec<u8>) {
    for ch in text.chars() {
        if let Some(code) = gsm7_basic_code(ch) {
            out.push(code);
        } else if let Some(code) = gsm7_extension_code(ch) {
            out.extend_from_slice(&[0x1B, code]);
        } else {
            out.push(b'?');
        }
    }
}

/// Decodes unpacked GSM 03.38 octets; unknown codes become `?`.
pub fn gsm7_decode(octets: &[u8]) -> String {
    let mut out = String::with_capacity(octets.len());
    let mut escaped = false;
    for &code in octets {
        let code = code & 0x7F;
        if escaped {
            escaped = false;
            let ch = GSM_EXTENSION
                .chars()
                .find(|&c| gsm7_extension_code(c) == Some(code));
            out.push(ch.unwrap_or('?'));
        } else if code == 0x1B {
            escaped = true;
        } else {
            out.push(GSM7_CHARS[code as usize]);
        }
    }
    out
}

/// Encodes text as UCS-2 / UTF-16BE (SMPP data_coding 8).
pub fn ucs2_encode(text: &str, out: &mut Vec<u8>) {
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_be_bytes());
    }
}

/// Decodes UTF-16BE octets (an odd last octet is dropped; a lone surrogate becomes U+FFFD).
pub fn ucs2_decode(octets: &[u8]) -> String {
    let units: Vec<u16> = octets
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_and_ucs2_octets_roundtrip() {
        let text = "@£$ Hello {world} €5 ÄÖÑÜ§¿äöñüà ÆæßÉ_Δ\n";
        let mut octets = Vec::new();
        gsm7_encode(text, &mut octets);
        assert_eq!(octets[..3], [0x00, 0x01, 0x02]);
        assert_eq!(gsm7_decode(&octets), text);
        // Codes past the escape are shifted: Æ is 0x1C, É 0x1F; € is 0x1B 0x65.
        let mut one = Vec::new();
        gsm7_encode("ÆÉ€", &mut one);
        assert_eq!(one, [0x1C, 0x1F, 0x1B, 0x65]);
        let mut wide = Vec::new();
        ucs2_encode("Привет 😀", &mut wide);
        assert_eq!(wide.len(), 2 * 9);
        assert_eq!(ucs2_decode(&wide), "Привет 😀");
    }

    #[test]
    fn every_basic_character_has_its_place_in_the_table() {
        for (index, ch) in GSM_BASIC.chars().enumerate() {
            let code = if index >= 0x1B { index + 1 } else { index } as u8;
            let mut octets = Vec::new();
            gsm7_encode(&ch.to_string(), &mut octets);
            assert_eq!(octets, [code], "{ch:?}");
            assert_eq!(gsm7_decode(&octets), ch.to_string());
        }
        let mut unknown = Vec::new();
        gsm7_encode("ЖaÿΔ", &mut unknown);
        assert_eq!(unknown, [b'?', 0x61, b'?', 0x10]);
    }

    #[test]
    fn table_driven_segments() {
        let euro = "€";
        let cases: Vec<(String, Encoding, u32, u32)> = vec![
            (String::new(), Encoding::Gsm7, 0, 1),
            ("hello".into(), Encoding::Gsm7, 5, 1),
            ("a".repeat(160), Encoding::Gsm7, 160, 1),
            ("a".repeat(161), Encoding::Gsm7, 161, 2),
            ("a".repeat(306), Encoding::Gsm7, 306, 2),
            ("a".repeat(307), Encoding::Gsm7, 307, 3),
            (euro.repeat(80), Encoding::Gsm7, 160, 1),
            (euro.repeat(81), Encoding::Gsm7, 162, 2),
            // 152 basic + one escape pair: the pair does not fit in part one's last septet.
            (
                format!("{}{}", "a".repeat(152), euro),
                Encoding::Gsm7,
                154,
                1,
            ),
            (
                format!("{}{}x", "a".repeat(152), euro.repeat(4)),
                Encoding::Gsm7,
                161,
                2,
            ),
            (
                format!("{}{}{}", "a".repeat(152), euro, "a".repeat(10)),
                Encoding::Gsm7,
                164,
                2,
            ),
            ("Ünïcödé ä".into(), Encoding::Ucs2, 9, 1), // ï is not in GSM 03.38
            (
                "é à ù ì ò Ç Ø Å Æ ß É Ä Ö Ñ Ü ä ö ñ ü ΔΦΓΛΩΠΨΣΘΞ ¡¿§¤£¥".into(),
                Encoding::Gsm7,
                55,
                1,
            ),
            ("ж".repeat(70), Encoding::Ucs2, 70, 1),
            ("ж".repeat(71), Encoding::Ucs2, 71, 2),
            ("ж".repeat(134), Encoding::Ucs2, 134, 2),
            ("ж".repeat(135), Encoding::Ucs2, 135, 3),
            ("😀".repeat(35), Encoding::Ucs2, 70, 1),
            ("😀".repeat(36), Encoding::Ucs2, 72, 2),
            // 66 units + a surrogate pair: the pair moves whole to part two.
            (format!("{}😀", "ж".repeat(66)), Encoding::Ucs2, 68, 1),
            (
                format!("{}😀{}", "ж".repeat(66), "ж".repeat(3)),
                Encoding::Ucs2,
                71,
                2,
            ),
            ("`".into(), Encoding::Ucs2, 1, 1), // backtick has no GSM-7 code
        ];
        for (text, encoding, units, segments) in cases {
            let got = segment(&text);
            assert_eq!(
                got,
                Segmentation {
                    encoding,
                    units,
                    segments
                },
                "text {text:?}"
            );
            let parts = split_parts(&text);
            assert_eq!(parts.len() as u32, segments, "parts of {text:?}");
        }
    }

    #[test]
    fn parts_never_split_pairs_and_respect_capacity() {
        let text = format!("{}{}{}", "a".repeat(152), "€".repeat(100), "b");
        let parts = split_parts(&text);
        for range in &parts {
            let part = &text[range.clone()];
            let septets: u32 = part.chars().map(|c| gsm7_width(c).unwrap()).sum();
            assert!(septets <= GSM7_MULTI, "part of {septets} septets");
        }
        assert_eq!(
            parts.iter().map(|r| &text[r.clone()]).collect::<String>(),
            text
        );
        assert_eq!(&text[parts[0].clone()], "a".repeat(152));
    }

    proptest::proptest! {
        #[test]
        fn parts_cover_text_and_fit(text in "[a-z€😀ж]{0,400}") {
            let seg = segment(&text);
            let parts = split_parts(&text);
            proptest::prop_assert_eq!(parts.len() as u32, seg.segments);
            let joined: String = parts.iter().map(|r| &text[r.clone()]).collect();
            proptest::prop_assert_eq!(joined, text.clone());
            if seg.segments > 1 {
                let (_, multi) = limits(seg.encoding);
                for r in parts {
                    let units: u32 = text[r].chars().map(|c| unit_width(seg.encoding, c)).sum();
                    proptest::prop_assert!(units <= multi);
                }
            }
        }
    }
}
