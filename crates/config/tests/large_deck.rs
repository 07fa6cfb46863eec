//! Rate decks of real size (issue 15, defect 4): checking a config is linear in its length.
//! Before, each row's line number was found by scanning the file from its start, and each
//! route looked its carrier up in a list: a 1 MB deck took 9 s and a 4 MB one did not finish
//! in two minutes. This deck is a million routes over 20,000 carriers.

use smsroute_config::Config;

const CARRIERS: usize = 20_000;
const ROUTES: usize = 1_000_000;

/// `CARRIERS` carriers, then `ROUTES` routes (each prefix once per carrier), then `tail`.
/// Returns the text and the line the tail starts on.
fn deck(tail: &str) -> (String, usize) {
    let mut text = String::with_capacity(ROUTES * 64);
    for c in 0..CARRIERS {
        text += &format!("[[carriers]]\nid = \"c{c}\"\ntps = 100\n\n");
    }
    for r in 0..ROUTES {
        let carrier = r % CARRIERS;
        let prefix = 100_000 + r;
        text += &format!(
            "[[routes]]\nprefix = \"{prefix}\"\ncarrier = \"c{carrier}\"\ncost = 0.00{}\n\n",
            1 + r % 9
        );
    }
    let tail_line = text.matches('\n').count() + 1;
    text += tail;
    (text, tail_line)
}

#[test]
fn a_million_row_deck_is_checked_to_its_last_row() {
    // The deck with its first route repeated at the end: every row is checked (one error,
    // the last row's), and the error names both lines.
    let (text, tail_line) =
        deck("[[routes]]\nprefix = \"100000\"\ncarrier = \"c0\"\ncost = 0.002\n");
    let err = Config::parse(&text, "deck.toml").unwrap_err();
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    let first_route_line = CARRIERS * 4 + 1;
    let d = &err.diagnostics[0];
    assert_eq!((d.line, d.col), (tail_line + 1, 10), "{err}");
    assert!(
        d.message
            .contains(&format!("first on line {first_route_line}")),
        "{err}"
    );
    // Without it the deck is valid, every row kept.
    let valid = &text[..text.len()
        - text
            .lines()
            .rev()
            .take(4)
            .map(|l| l.len() + 1)
            .sum::<usize>()];
    let config = Config::parse(valid, "deck.toml").expect("the generated deck is valid");
    assert_eq!(config.carriers.len(), CARRIERS);
    assert_eq!(config.routes.len(), ROUTES);
    assert_eq!(config.carrier_index("c19999"), Some(CARRIERS - 1));
}
