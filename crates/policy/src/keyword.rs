//! Inbound keywords: what a recipient's reply asks for.

/// A keyword reply, case- and space-insensitive, alone in the message (trailing punctuation
/// allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Keyword {
    /// STOP, UNSUBSCRIBE, CANCEL, END, QUIT: opt out of the sender that was replied to.
    Stop,
    /// STOPALL: opt out of every sender.
    StopAll,
    /// START, UNSTOP: opt back in (to everything).
    Start,
    /// HELP: the gateway should answer with help text.
    Help,
}

impl Keyword {
    /// The keyword a reply is, if any.
    ///
    /// ```
    /// use smsroute_policy::Keyword;
    /// assert_eq!(Keyword::parse("Stop all"), Some(Keyword::StopAll));
    /// assert_eq!(Keyword::parse("unsubscribe!"), Some(Keyword::Stop));
    /// assert_eq!(Keyword::parse("stop sending me these"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Keyword> {
        let word: String = text
            .trim()
            .trim_end_matches(['.', '!', '?'])
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_uppercase)
            .collect();
        match word.as_str() {
            "STOP" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" => Some(Keyword::Stop),
            "STOPALL" => Some(Keyword::StopAll),
            "START" | "UNSTOP" => Some(Keyword::Start),
            "HELP" => Some(Keyword::Help),
            _ => None,
        }
    }

    /// The name as events and logs write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Stop => "stop",
            Keyword::StopAll => "stopall",
            Keyword::Start => "start",
            Keyword::Help => "help",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_table() {
        let cases = [
            ("STOP", Some(Keyword::Stop)),
            ("stop", Some(Keyword::Stop)),
            ("  Stop.  ", Some(Keyword::Stop)),
            ("S T O P", Some(Keyword::Stop)),
            ("UNSUBSCRIBE", Some(Keyword::Stop)),
            ("cancel", Some(Keyword::Stop)),
            ("End", Some(Keyword::Stop)),
            ("quit!", Some(Keyword::Stop)),
            ("STOPALL", Some(Keyword::StopAll)),
            ("stop all", Some(Keyword::StopAll)),
            ("START", Some(Keyword::Start)),
            ("unstop", Some(Keyword::Start)),
            ("help?", Some(Keyword::Help)),
            ("Stopp", None),
            ("please stop", None),
            ("", None),
            ("Привет", None),
        ];
        for (text, want) in cases {
            assert_eq!(Keyword::parse(text), want, "{text:?}");
        }
    }
}
