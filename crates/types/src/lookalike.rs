//! Smart encoding: look-alike characters that alone would force a text into UCS-2 (curly
//! quotes, long dashes, odd spaces, the ellipsis, invisible marks), replaced with their GSM-7
//! equivalents. A text changes only when every character outside GSM-7 has a look-alike and
//! the change saves at least one segment; anything else (an emoji, Cyrillic) keeps UCS-2.

use crate::encoding::{Encoding, gsm7_width, segment};

/// Each look-alike and what replaces it (`docs/policy.md` shows this table).
pub const LOOKALIKES: &[(char, &str)] = &[
    ('\u{2018}', "'"),   // left single quotation mark
    ('\u{2019}', "'"),   // right single quotation mark, apostrophe
    ('\u{201A}', "'"),   // single low-9 quotation mark
    ('\u{201B}', "'"),   // single high-reversed-9 quotation mark
    ('\u{2032}', "'"),   // prime
    ('\u{00B4}', "'"),   // acute accent
    ('`', "'"),          // grave accent (not in GSM-7)
    ('\u{201C}', "\""),  // left double quotation mark
    ('\u{201D}', "\""),  // right double quotation mark
    ('\u{201E}', "\""),  // double low-9 quotation mark
    ('\u{201F}', "\""),  // double high-reversed-9 quotation mark
    ('\u{2033}', "\""),  // double prime
    ('\u{00AB}', "\""),  // left-pointing double angle quotation mark
    ('\u{00BB}', "\""),  // right-pointing double angle quotation mark
    ('\u{2010}', "-"),   // hyphen
    ('\u{2011}', "-"),   // non-breaking hyphen
    ('\u{2012}', "-"),   // figure dash
    ('\u{2013}', "-"),   // en dash
    ('\u{2014}', "-"),   // em dash
    ('\u{2015}', "-"),   // horizontal bar
    ('\u{2212}', "-"),   // minus sign
    ('\u{2026}', "..."), // horizontal ellipsis
    ('\u{00A0}', " "),   // no-break space
    ('\u{2002}', " "),   // en space
    ('\u{2003}', " "),   // em space
    ('\u{2004}', " "),   // three-per-em space
    ('\u{2005}', " "),   // four-per-em space
    ('\u{2006}', " "),   // six-per-em space
    ('\u{2007}', " "),   // figure space
    ('\u{2008}', " "),   // punctuation space
    ('\u{2009}', " "),   // thin space
    ('\u{200A}', " "),   // hair space
    ('\u{202F}', " "),   // narrow no-break space
    ('\u{205F}', " "),   // medium mathematical space
    ('\u{3000}', " "),   // ideographic space
    ('\u{200B}', ""),    // zero width space
    ('\u{200C}', ""),    // zero width non-joiner
    ('\u{200D}', ""),    // zero width joiner
    ('\u{2060}', ""),    // word joiner
    ('\u{FEFF}', ""),    // zero width no-break space (byte order mark)
    ('\u{00AD}', ""),    // soft hyphen
];

/// The GSM-7 replacement of a look-alike character.
pub fn lookalike(ch: char) -> Option<&'static str> {
    LOOKALIKES
        .iter()
        .find(|(c, _)| *c == ch)
        .map(|(_, replacement)| *replacement)
}

/// `text` with its look-alikes replaced, when that alone makes it GSM-7 and saves at least
/// one segment; `None` otherwise (already GSM-7, other characters need UCS-2, or no saving).
///
/// ```
/// use smsroute_types::smart_gsm7;
/// // 93 characters: 2 segments in UCS-2, 1 in GSM-7.
/// let text = format!("{}\u{2014} don\u{2019}t share it", "Your code is 1234. ".repeat(4));
/// let fixed = format!("{}- don't share it", "Your code is 1234. ".repeat(4));
/// assert_eq!(smart_gsm7(&text), Some(fixed));
/// assert_eq!(smart_gsm7("Привет \u{2014} 1234"), None);
/// assert_eq!(smart_gsm7("plain"), None);
/// ```
pub fn smart_gsm7(text: &str) -> Option<String> {
    let before = segment(text);
    if before.encoding == Encoding::Gsm7 {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if gsm7_width(ch).is_some() {
            out.push(ch);
        } else {
            out.push_str(lookalike(ch)?);
        }
    }
    (segment(&out).segments < before.segments).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_replacement_is_gsm7_and_every_lookalike_is_not() {
        for (ch, replacement) in LOOKALIKES {
            assert!(gsm7_width(*ch).is_none(), "{ch:?} is GSM-7 already");
            assert!(crate::is_gsm7(replacement), "{replacement:?} for {ch:?}");
        }
    }

    #[test]
    fn only_a_saving_rewrite_happens() {
        // 70 UCS-2 units with one curly quote: 1 segment either way, so it stays as it is.
        let one = format!("{}\u{2019}", "a".repeat(69));
        assert_eq!(segment(&one).segments, 1);
        assert_eq!(smart_gsm7(&one), None);
        // 100 characters: 2 UCS-2 segments, 1 in GSM-7.
        let two = format!("{}\u{201C}ok\u{201D}", "a".repeat(96));
        let fixed = smart_gsm7(&two).expect("saves a segment");
        assert_eq!((segment(&two).segments, segment(&fixed).segments), (2, 1));
        assert_eq!(fixed, format!("{}\"ok\"", "a".repeat(96)));
        // Ellipses grow three-fold: 67 of them are 1 UCS-2 segment but 2 GSM-7 ones.
        assert_eq!(smart_gsm7(&"\u{2026}".repeat(67)), None);
        // Invisible marks vanish.
        let hidden = format!("{}\u{200B}\u{FEFF}", "b".repeat(100));
        assert_eq!(smart_gsm7(&hidden), Some("b".repeat(100)));
    }
}
