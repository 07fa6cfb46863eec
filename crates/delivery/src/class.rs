//! Error classification as data: what an SMPP `command_status` or a receipt means for the
//! message. The table is documented in `docs/delivery.md`.

/// What a failed submit means for the next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The carrier asked us to slow down (throttled, queue full): retry the same carrier after
    /// backoff; not a health failure, feeds the adaptive rate.
    Throttled,
    /// The carrier failed (system error, submit failed, bind trouble): fail over to the next
    /// candidate.
    Failover,
    /// The message itself is wrong (destination, source, data): stop, no failover.
    Permanent,
    /// No answer (timeout) or the link died with the submit in flight: the carrier may have
    /// taken it. Fail over and flag the message as a possible duplicate.
    Unknown,
    /// Anything else, unknown codes included: retry the same carrier after backoff.
    Temporary,
}

impl ErrorClass {
    /// Whether health should count this against the carrier.
    pub fn is_carrier_failure(self) -> bool {
        matches!(
            self,
            ErrorClass::Failover | ErrorClass::Unknown | ErrorClass::Temporary
        )
    }
}

/// Classifies an SMPP 3.4 `command_status` of a failed `submit_sm_resp`.
///
/// ```
/// use smsroute_delivery::{classify_status, ErrorClass};
/// assert_eq!(classify_status(0x58), ErrorClass::Throttled);
/// assert_eq!(classify_status(0x0B), ErrorClass::Permanent);
/// assert_eq!(classify_status(0x45), ErrorClass::Failover);
/// assert_eq!(classify_status(0x1234), ErrorClass::Temporary);
/// ```
pub fn classify_status(status: u32) -> ErrorClass {
    match status {
        // ESME_RMSGQFUL, ESME_RTHROTTLED
        0x14 | 0x58 => ErrorClass::Throttled,
        // ESME_RINVCMDID, ESME_RINVBNDSTS, ESME_RALYBND, ESME_RSYSERR, ESME_RBINDFAIL,
        // ESME_RINVPASWD, ESME_RINVSYSID, ESME_RCANCELFAIL, ESME_RREPLACEFAIL, ESME_RCNTSUBDL,
        // ESME_RSUBMITFAIL, ESME_RINVSYSTYP, ESME_RQUERYFAIL, ESME_RDELIVERYFAILURE
        0x03 | 0x04 | 0x05 | 0x08 | 0x0D | 0x0E | 0x0F | 0x11 | 0x13 | 0x44 | 0x45 | 0x53
        | 0x67 | 0xFE => ErrorClass::Failover,
        // ESME_RINVMSGLEN, ESME_RINVPRTFLG, ESME_RINVREGDLVFLG, ESME_RINVSRCADR, ESME_RINVDSTADR,
        // ESME_RINVMSGID, ESME_RINVSERTYP, ESME_RINVNUMDESTS, ESME_RINVDLNAME, ESME_RINVDESTFLAG,
        // ESME_RINVSUBREP, ESME_RINVESMCLASS, ESME_RINVSRCTON/NPI, ESME_RINVDSTTON/NPI,
        // ESME_RINVREPFLAG, ESME_RINVNUMMSGS, ESME_RINVSCHED, ESME_RINVEXPIRY, ESME_RINVDFTMSGID,
        // ESME_RX_P_APPN, ESME_RX_R_APPN, ESME_RINVOPTPARSTREAM .. ESME_RINVOPTPARAMVAL
        0x01
        | 0x06
        | 0x07
        | 0x0A
        | 0x0B
        | 0x0C
        | 0x15
        | 0x33
        | 0x34
        | 0x40
        | 0x42
        | 0x43
        | 0x48
        | 0x49
        | 0x50
        | 0x51
        | 0x54
        | 0x55
        | 0x61
        | 0x62
        | 0x63
        | 0x65
        | 0x66
        | 0xC0..=0xC4 => ErrorClass::Permanent,
        // ESME_RX_T_APPN, ESME_RUNKNOWNERR, and every code we do not know.
        _ => ErrorClass::Temporary,
    }
}

/// The final state a delivery receipt reports for one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReceiptStatus {
    /// DELIVRD.
    Delivered,
    /// UNDELIV: the network could not deliver it.
    Undeliverable,
    /// REJECTD: the carrier refused it after accepting.
    Rejected,
    /// EXPIRED: validity ran out in the network.
    Expired,
    /// ENROUTE, ACCEPTD, UNKNOWN, DELETED and the like: not final here, ignored.
    Intermediate,
}

impl smsroute_types::Label for ReceiptStatus {
    const LABELS: &'static [&'static str] = &[
        "delivered",
        "undeliverable",
        "rejected",
        "expired",
        "intermediate",
    ];

    fn index(&self) -> usize {
        *self as usize
    }
}

impl ReceiptStatus {
    /// Whether the receipt is final (an intermediate one changes nothing).
    pub fn is_final(self) -> bool {
        self != ReceiptStatus::Intermediate
    }

    /// Parses the `stat:` field of a receipt (case-insensitive).
    ///
    /// ```
    /// use smsroute_delivery::ReceiptStatus;
    /// assert_eq!(ReceiptStatus::parse("DELIVRD"), ReceiptStatus::Delivered);
    /// assert_eq!(ReceiptStatus::parse("undeliv"), ReceiptStatus::Undeliverable);
    /// ```
    pub fn parse(stat: &str) -> ReceiptStatus {
        match stat.trim().to_ascii_uppercase().as_str() {
            "DELIVRD" | "DELIVERED" => ReceiptStatus::Delivered,
            "UNDELIV" | "UNDELIVERABLE" => ReceiptStatus::Undeliverable,
            "REJECTD" | "REJECTED" => ReceiptStatus::Rejected,
            "EXPIRED" => ReceiptStatus::Expired,
            _ => ReceiptStatus::Intermediate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        let cases = [
            (0x58, Throttled, "ESME_RTHROTTLED"),
            (0x14, Throttled, "ESME_RMSGQFUL"),
            (0x08, Failover, "ESME_RSYSERR"),
            (0x45, Failover, "ESME_RSUBMITFAIL"),
            (0x04, Failover, "ESME_RINVBNDSTS"),
            (0x0D, Failover, "ESME_RBINDFAIL"),
            (0xFE, Failover, "ESME_RDELIVERYFAILURE"),
            (0x0B, Permanent, "ESME_RINVDSTADR"),
            (0x0A, Permanent, "ESME_RINVSRCADR"),
            (0x0C, Permanent, "ESME_RINVMSGID"),
            (0x01, Permanent, "ESME_RINVMSGLEN"),
            (0x50, Permanent, "ESME_RINVDSTTON"),
            (0x62, Permanent, "ESME_RINVEXPIRY"),
            (0xC2, Permanent, "ESME_RINVPARLEN"),
            (0x64, Temporary, "ESME_RX_T_APPN"),
            (0xFF, Temporary, "ESME_RUNKNOWNERR"),
            (0x0400, Temporary, "vendor code"),
        ];
        for (status, class, name) in cases {
            assert_eq!(classify_status(status), class, "{name} ({status:#x})");
        }
        assert!(!Throttled.is_carrier_failure() && !Permanent.is_carrier_failure());
        assert!(Failover.is_carrier_failure() && Unknown.is_carrier_failure());
    }

    #[test]
    fn receipt_states() {
        let cases = [
            ("DELIVRD", ReceiptStatus::Delivered),
            ("UNDELIV", ReceiptStatus::Undeliverable),
            ("REJECTD", ReceiptStatus::Rejected),
            ("EXPIRED", ReceiptStatus::Expired),
            ("ENROUTE", ReceiptStatus::Intermediate),
            ("ACCEPTD", ReceiptStatus::Intermediate),
            ("", ReceiptStatus::Intermediate),
        ];
        for (stat, want) in cases {
            assert_eq!(ReceiptStatus::parse(stat), want, "{stat}");
        }
    }
}
