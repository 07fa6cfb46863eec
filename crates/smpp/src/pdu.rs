//! Our SMPP 3.4 PDUs: the few commands smsroute speaks, as plain structs, encoded and decoded
//! through the `rusmpp` codec. Every field of every PDU we send is set here explicitly (rusmpp
//! 0.4.0's `EsmClass::default()` encodes 0x08, so defaults are never trusted).
//!
//! Length: past 500 lines because every command's encoding and decoding sit side by side, with
//! their tests (a third of the file).

use bytes::BytesMut;
use rusmpp::decode::DecodeWithLength;
use rusmpp::encode::{Encode, Length};
use rusmpp::pdus::{
    BindReceiver, BindReceiverResp, BindTransceiver, BindTransceiverResp, BindTransmitter,
    BindTransmitterResp, CancelSm, DeliverSm, DeliverSmResp, QuerySm, QuerySmResp, SubmitSm,
    SubmitSmResp,
};
use rusmpp::tlvs::{MessageDeliveryRequestTlvValue, MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::types::{COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, MessagePayload, MessageState, Npi, PriorityFlag,
    RegisteredDelivery, ReplaceIfPresentFlag, ServiceType, Ton,
};
use rusmpp::{Command, CommandId, CommandStatus, Pdu as Wire};

/// SMPP command ids we name.
pub mod command_id {
    /// generic_nack
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    /// bind_receiver
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    /// bind_transmitter
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    /// submit_sm
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    /// deliver_sm
    pub const DELIVER_SM: u32 = 0x0000_0005;
    /// unbind
    pub const UNBIND: u32 = 0x0000_0006;
    /// bind_transceiver
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    /// enquire_link
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
}

/// SMPP command statuses we send or act on.
pub mod status {
    /// Vendor-specific statuses (SMPP 3.4 keeps 0x400-0x4FF for the MC's own): the refusals
    /// `smsroute serve` answers that no standard status names (docs/serve.md).
    pub mod vendor {
        /// The recipient opted out of this sender.
        pub const OPTED_OUT: u32 = 0x0000_0400;
        /// The recipient already got the most messages of this class.
        pub const FREQUENCY_CAP: u32 = 0x0000_0401;
        /// The destination is in its quiet hours.
        pub const QUIET_HOURS: u32 = 0x0000_0402;
        /// The client's account cannot pay for the message.
        pub const INSUFFICIENT_FUNDS: u32 = 0x0000_0403;
        /// Every carrier for the destination costs more than the message's `max_price`.
        pub const OVER_MAX_PRICE: u32 = 0x0000_0404;
    }

    /// ESME_ROK
    pub const OK: u32 = 0x0000_0000;
    /// ESME_RINVMSGLEN
    pub const INVALID_MESSAGE_LENGTH: u32 = 0x0000_0001;
    /// ESME_RINVCMDLEN
    pub const INVALID_COMMAND_LENGTH: u32 = 0x0000_0002;
    /// ESME_RINVCMDID
    pub const INVALID_COMMAND_ID: u32 = 0x0000_0003;
    /// ESME_RINVBNDSTS: not bound for that
    pub const INVALID_BIND_STATUS: u32 = 0x0000_0004;
    /// ESME_RALYBND
    pub const ALREADY_BOUND: u32 = 0x0000_0005;
    /// ESME_RSYSERR
    pub const SYSTEM_ERROR: u32 = 0x0000_0008;
    /// ESME_RINVSRCADR
    pub const INVALID_SOURCE_ADDRESS: u32 = 0x0000_000A;
    /// ESME_RINVDSTADR
    pub const INVALID_DESTINATION_ADDRESS: u32 = 0x0000_000B;
    /// ESME_RINVPASWD
    pub const INVALID_PASSWORD: u32 = 0x0000_000E;
    /// ESME_RINVSYSID
    pub const INVALID_SYSTEM_ID: u32 = 0x0000_000F;
    /// ESME_RMSGQFUL
    pub const QUEUE_FULL: u32 = 0x0000_0014;
    /// ESME_RSUBMITFAIL
    pub const SUBMIT_FAILED: u32 = 0x0000_0045;
    /// ESME_RTHROTTLED
    pub const THROTTLED: u32 = 0x0000_0058;
    /// ESME_RINVSCHED: invalid schedule_delivery_time
    pub const INVALID_SCHEDULE: u32 = 0x0000_0061;
    /// ESME_RINVEXPIRY: invalid validity_period
    pub const INVALID_EXPIRY: u32 = 0x0000_0062;
    /// ESME_RCANCELFAIL
    pub const CANCEL_FAILED: u32 = 0x0000_0011;
    /// ESME_RQUERYFAIL
    pub const QUERY_FAILED: u32 = 0x0000_0067;
    /// ESME_RINVMSGID
    pub const INVALID_MESSAGE_ID: u32 = 0x0000_000C;
    /// ESME_RX_T_APPN: the receiver cannot take the deliver_sm now; the SMSC keeps it and
    /// tries again later.
    pub const TEMPORARY_APP_ERROR: u32 = 0x0000_0064;

    /// The name of a status this module knows (`ESME_RINVPASWD`), else `None`.
    pub fn name(status: u32) -> Option<&'static str> {
        Some(match status {
            OK => "ESME_ROK",
            INVALID_MESSAGE_LENGTH => "ESME_RINVMSGLEN",
            INVALID_COMMAND_LENGTH => "ESME_RINVCMDLEN",
            INVALID_COMMAND_ID => "ESME_RINVCMDID",
            INVALID_BIND_STATUS => "ESME_RINVBNDSTS",
            ALREADY_BOUND => "ESME_RALYBND",
            SYSTEM_ERROR => "ESME_RSYSERR",
            INVALID_SOURCE_ADDRESS => "ESME_RINVSRCADR",
            INVALID_DESTINATION_ADDRESS => "ESME_RINVDSTADR",
            INVALID_PASSWORD => "ESME_RINVPASWD",
            INVALID_SYSTEM_ID => "ESME_RINVSYSID",
            QUEUE_FULL => "ESME_RMSGQFUL",
            TEMPORARY_APP_ERROR => "ESME_RX_T_APPN",
            SUBMIT_FAILED => "ESME_RSUBMITFAIL",
            THROTTLED => "ESME_RTHROTTLED",
            INVALID_SCHEDULE => "ESME_RINVSCHED",
            INVALID_EXPIRY => "ESME_RINVEXPIRY",
            CANCEL_FAILED => "ESME_RCANCELFAIL",
            QUERY_FAILED => "ESME_RQUERYFAIL",
            INVALID_MESSAGE_ID => "ESME_RINVMSGID",
            _ => return None,
        })
    }
}

/// Which way a session is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindKind {
    /// Submits only.
    Transmitter,
    /// Deliveries only.
    Receiver,
    /// Both.
    Transceiver,
}

/// A bind request. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Bind {
    /// Which way.
    pub kind: BindKind,
    /// Up to 15 characters.
    pub system_id: String,
    /// Up to 8 characters.
    pub password: String,
    /// Up to 12 characters.
    pub system_type: String,
    /// 0x34 for SMPP 3.4 (node-smpp sends 0x50).
    pub interface_version: u8,
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bind")
            .field("kind", &self.kind)
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .field("system_type", &self.system_type)
            .field("interface_version", &self.interface_version)
            .finish()
    }
}

/// An address with its type of number and numbering plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Address {
    /// Type of number (1 international, 5 alphanumeric).
    pub ton: u8,
    /// Numbering plan (1 E.164).
    pub npi: u8,
    /// Up to 20 characters.
    pub addr: String,
}

/// A submit_sm or deliver_sm: the fields smsroute sets or reads, every one explicit (the
/// default is all zeros and empty: no UDH, GSM-7, no receipt, no TLVs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShortMessage {
    /// Source.
    pub source: Address,
    /// Destination.
    pub destination: Address,
    /// 0x40 when the message carries a UDH; 0x04 on a deliver_sm that is a receipt.
    pub esm_class: u8,
    /// 1: a final receipt is wanted.
    pub registered_delivery: u8,
    /// 0 GSM default alphabet, 8 UCS-2 (1 IA5 from node-smpp).
    pub data_coding: u8,
    /// User data (UDH included), up to 254 octets; longer content goes in `message_payload`.
    pub short_message: Vec<u8>,
    /// The message_payload TLV, when used instead of short_message.
    pub message_payload: Option<Vec<u8>>,
    /// receipted_message_id TLV (receipts).
    pub receipted_message_id: Option<String>,
    /// message_state TLV (receipts).
    pub message_state: Option<u8>,
    /// smsroute's vendor TLV [`POSSIBLE_DUPLICATE_TAG`] on a receipt (one octet, 1): the
    /// message may have reached its carrier twice (a submit whose answer never came, through
    /// a timeout, a lost link or a crash, was sent again). Absent: not flagged.
    pub possible_duplicate: bool,
    /// The SAR TLVs (`sar_msg_ref_num`, `sar_total_segments`, `sar_segment_seqnum`): a part
    /// of a message split without a UDH. Read when all three are present; written on submit_sm.
    pub sar: Option<crate::sm::Concat>,
    /// schedule_delivery_time, as written (SMPP 3.4 7.1.1: `YYMMDDhhmmsstnnp`, absolute or
    /// relative); empty: at once. [`crate::sm::smpp_time`] reads it.
    pub schedule_delivery_time: String,
    /// validity_period, as written; empty: the MC's default.
    pub validity_period: String,
}

/// The tag of smsroute's vendor-specific TLV (SMPP 3.4 5.3.2: 0x1400-0x3FFF are the
/// SMSC vendor's) flagging a receipt's message as a possible duplicate.
pub const POSSIBLE_DUPLICATE_TAG: u16 = 0x1501;

/// The commands smsroute speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// bind_transmitter / bind_receiver / bind_transceiver.
    Bind(Bind),
    /// The response to a bind of this kind.
    BindResp {
        /// Which bind it answers.
        kind: BindKind,
        /// The MC's system id.
        system_id: String,
    },
    /// submit_sm.
    SubmitSm(ShortMessage),
    /// submit_sm_resp (an empty id on errors).
    SubmitSmResp {
        /// The MC's id for the message.
        message_id: String,
    },
    /// deliver_sm (a receipt or a mobile-originated message).
    DeliverSm(ShortMessage),
    /// deliver_sm_resp.
    DeliverSmResp,
    /// query_sm: the state of a message submitted earlier.
    QuerySm {
        /// Its id, as the submit_sm_resp gave it.
        message_id: String,
        /// The source address it was submitted with.
        source: Address,
    },
    /// query_sm_resp.
    QuerySmResp {
        /// The id asked about.
        message_id: String,
        /// When it reached its final state (`YYMMDDhhmmss000+`), empty while it has none.
        final_date: String,
        /// Its message_state (SMPP 3.4 5.2.28: 1 enroute, 2 delivered, …).
        message_state: u8,
        /// A network error code, 0 when none.
        error_code: u8,
    },
    /// cancel_sm: cancel a message submitted earlier, not yet delivered.
    CancelSm {
        /// Its id.
        message_id: String,
        /// The source address it was submitted with.
        source: Address,
        /// Its destination.
        destination: Address,
    },
    /// cancel_sm_resp.
    CancelSmResp,
    /// enquire_link.
    EnquireLink,
    /// enquire_link_resp.
    EnquireLinkResp,
    /// unbind.
    Unbind,
    /// unbind_resp.
    UnbindResp,
    /// generic_nack.
    GenericNack,
    /// A valid command we do not handle (answered with generic_nack ESME_RINVCMDID).
    Unsupported {
        /// Its command id.
        command_id: u32,
    },
}

/// One PDU: header fields and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// command_status.
    pub status: u32,
    /// sequence_number.
    pub sequence: u32,
    /// The command.
    pub body: Body,
}

/// Why bytes are not a PDU we can use, or a PDU cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// command_length below 16 or above the limit.
    #[error("command_length {0} out of range (16..={MAX_PDU})")]
    Length(usize),
    /// The codec refused the body.
    #[error("malformed {command}: {reason}")]
    Malformed {
        /// The command id, as far as it was read.
        command: String,
        /// What the codec said.
        reason: String,
    },
    /// A field too long for its SMPP size.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Largest PDU we accept (SMPP allows more; no command we use comes near).
pub const MAX_PDU: usize = 64 * 1024;

fn c_octet<const MIN: usize, const MAX: usize>(
    field: &'static str,
    text: &str,
) -> Result<COctetString<MIN, MAX>, PduError> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    COctetString::from_vec(bytes).map_err(|e| PduError::Field {
        field,
        reason: format!("{e} (at most {} characters)", MAX - 1),
    })
}

/// A time field: empty, or the 16 characters of SMPP 3.4 7.1.1.
fn smpp_time_field(
    field: &'static str,
    text: &str,
) -> Result<EmptyOrFullCOctetString<17>, PduError> {
    if text.is_empty() {
        return Ok(EmptyOrFullCOctetString::empty());
    }
    EmptyOrFullCOctetString::from_string(text.to_string()).map_err(|e| PduError::Field {
        field,
        reason: format!("{e} (16 characters, YYMMDDhhmmsstnnp)"),
    })
}

fn text_of<const MIN: usize, const MAX: usize>(s: &COctetString<MIN, MAX>) -> String {
    s.as_str().to_string()
}

fn bind_kind(id: u32) -> Option<BindKind> {
    match id {
        command_id::BIND_TRANSMITTER => Some(BindKind::Transmitter),
        command_id::BIND_RECEIVER => Some(BindKind::Receiver),
        command_id::BIND_TRANSCEIVER => Some(BindKind::Transceiver),
        _ => None,
    }
}

macro_rules! to_bind {
    ($ty:ident, $b:expr) => {{
        let b = $b;
        $ty {
            system_id: c_octet("system_id", &b.system_id)?,
            password: c_octet("password", &b.password)?,
            system_type: c_octet("system_type", &b.system_type)?,
            interface_version: InterfaceVersion::from(b.interface_version),
            addr_ton: Ton::from(0u8),
            addr_npi: Npi::from(0u8),
            address_range: c_octet("address_range", "")?,
        }
    }};
}

macro_rules! from_bind {
    ($kind:expr, $b:expr) => {{
        let b = $b;
        Body::Bind(Bind {
            kind: $kind,
            system_id: text_of(&b.system_id),
            password: text_of(&b.password),
            system_type: text_of(&b.system_type),
            interface_version: u8::from(b.interface_version),
        })
    }};
}

macro_rules! to_short_message {
    ($ty:ident, $tlv:ident, $m:expr) => {{
        let m: &ShortMessage = $m;
        let mut tlvs = Vec::new();
        if let Some(payload) = &m.message_payload {
            tlvs.push($tlv::MessagePayload(MessagePayload::new(
                rusmpp::types::AnyOctetString::from_slice(payload),
            )));
        }
        $ty::new(
            ServiceType::default(),
            Ton::from(m.source.ton),
            Npi::from(m.source.npi),
            c_octet("source_addr", &m.source.addr)?,
            Ton::from(m.destination.ton),
            Npi::from(m.destination.npi),
            c_octet("destination_addr", &m.destination.addr)?,
            EsmClass::from(m.esm_class),
            0,
            PriorityFlag::from(0u8),
            smpp_time_field("schedule_delivery_time", &m.schedule_delivery_time)?,
            smpp_time_field("validity_period", &m.validity_period)?,
            RegisteredDelivery::from(m.registered_delivery),
            ReplaceIfPresentFlag::from(0u8),
            DataCoding::from(m.data_coding),
            0,
            OctetString::from_slice(&m.short_message).map_err(|e| PduError::Field {
                field: "short_message",
                reason: e.to_string(),
            })?,
            tlvs,
        )
    }};
}

/// Reads the fields we use from a submit_sm or deliver_sm.
macro_rules! from_short_message {
    ($s:expr) => {{
        let s = $s;
        let mut m = ShortMessage {
            source: Address {
                ton: u8::from(s.source_addr_ton),
                npi: u8::from(s.source_addr_npi),
                addr: text_of(&s.source_addr),
            },
            destination: Address {
                ton: u8::from(s.dest_addr_ton),
                npi: u8::from(s.dest_addr_npi),
                addr: text_of(&s.destination_addr),
            },
            esm_class: u8::from(s.esm_class),
            registered_delivery: u8::from(s.registered_delivery),
            data_coding: u8::from(s.data_coding),
            short_message: s.short_message().as_ref().to_vec(),
            message_payload: None,
            receipted_message_id: None,
            message_state: None,
            possible_duplicate: false,
            sar: None,
            schedule_delivery_time: s.schedule_delivery_time.as_str().to_string(),
            validity_period: s.validity_period.as_str().to_string(),
        };
        let mut sar: (Option<u16>, Option<u8>, Option<u8>) = (None, None, None);
        for tlv in s.tlvs() {
            match tlv.value() {
                Some(TlvValue::MessagePayload(p)) => {
                    m.message_payload = Some(p.value.as_ref().to_vec())
                }
                Some(TlvValue::ReceiptedMessageId(id)) => {
                    m.receipted_message_id = Some(text_of(id))
                }
                Some(TlvValue::MessageState(state)) => m.message_state = Some(u8::from(*state)),
                Some(TlvValue::SarMsgRefNum(r)) => sar.0 = Some(*r),
                Some(TlvValue::SarTotalSegments(t)) => sar.1 = Some(*t),
                Some(TlvValue::SarSegmentSeqnum(p)) => sar.2 = Some(*p),
                Some(TlvValue::Other { tag, value })
                    if u16::from(*tag) == POSSIBLE_DUPLICATE_TAG =>
                {
                    m.possible_duplicate = value.as_ref().first().is_some_and(|v| *v != 0)
                }
                _ => {}
            }
        }
        if let (Some(reference), Some(total), Some(part)) = sar {
            m.sar = Some(crate::sm::Concat {
                reference,
                total,
                part,
            });
        }
        m
    }};
}

impl Frame {
    /// A request with `body`.
    pub fn new(sequence: u32, body: Body) -> Self {
        Frame {
            status: status::OK,
            sequence,
            body,
        }
    }

    fn to_wire(&self) -> Result<Command, PduError> {
        let pdu: Wire = match &self.body {
            Body::Bind(b) => match b.kind {
                BindKind::Transmitter => Wire::BindTransmitter(to_bind!(BindTransmitter, b)),
                BindKind::Receiver => Wire::BindReceiver(to_bind!(BindReceiver, b)),
                BindKind::Transceiver => Wire::BindTransceiver(to_bind!(BindTransceiver, b)),
            },
            Body::BindResp { kind, system_id } => {
                let id = c_octet("system_id", system_id)?;
                match kind {
                    BindKind::Transmitter => {
                        Wire::BindTransmitterResp(BindTransmitterResp::new(id, None))
                    }
                    BindKind::Receiver => Wire::BindReceiverResp(BindReceiverResp::new(id, None)),
                    BindKind::Transceiver => {
                        Wire::BindTransceiverResp(BindTransceiverResp::new(id, None))
                    }
                }
            }
            Body::SubmitSm(m) => {
                let mut s = to_short_message!(SubmitSm, MessageSubmissionRequestTlvValue, m);
                if let Some(c) = m.sar {
                    s.push_tlv(MessageSubmissionRequestTlvValue::SarMsgRefNum(c.reference));
                    s.push_tlv(MessageSubmissionRequestTlvValue::SarTotalSegments(c.total));
                    s.push_tlv(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(c.part));
                }
                Wire::SubmitSm(s)
            }
            Body::DeliverSm(m) => {
                let mut d = to_short_message!(DeliverSm, MessageDeliveryRequestTlvValue, m);
                if let Some(id) = &m.receipted_message_id {
                    d.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(c_octet(
                        "receipted_message_id",
                        id,
                    )?));
                }
                if let Some(state) = m.message_state {
                    d.push_tlv(MessageDeliveryRequestTlvValue::MessageState(
                        MessageState::from(state),
                    ));
                }
                if m.possible_duplicate {
                    d.push_tlv(MessageDeliveryRequestTlvValue::Other {
                        tag: rusmpp::tlvs::TlvTag::Other(POSSIBLE_DUPLICATE_TAG),
                        value: rusmpp::types::AnyOctetString::from_vec(vec![1]),
                    });
                }
                Wire::DeliverSm(d)
            }
            Body::SubmitSmResp { message_id } => Wire::SubmitSmResp(SubmitSmResp::new(
                c_octet("message_id", message_id)?,
                vec![],
            )),
            Body::DeliverSmResp => {
                Wire::DeliverSmResp(DeliverSmResp::new(c_octet("message_id", "")?, vec![]))
            }
            Body::QuerySm { message_id, source } => Wire::QuerySm(QuerySm::new(
                c_octet("message_id", message_id)?,
                Ton::from(source.ton),
                Npi::from(source.npi),
                c_octet("source_addr", &source.addr)?,
            )),
            Body::QuerySmResp {
                message_id,
                final_date,
                message_state,
                error_code,
            } => Wire::QuerySmResp(QuerySmResp::new(
                c_octet("message_id", message_id)?,
                smpp_time_field("final_date", final_date)?,
                MessageState::from(*message_state),
                *error_code,
            )),
            Body::CancelSm {
                message_id,
                source,
                destination,
            } => Wire::CancelSm(CancelSm::new(
                ServiceType::default(),
                c_octet("message_id", message_id)?,
                Ton::from(source.ton),
                Npi::from(source.npi),
                c_octet("source_addr", &source.addr)?,
                Ton::from(destination.ton),
                Npi::from(destination.npi),
                c_octet("destination_addr", &destination.addr)?,
            )),
            Body::CancelSmResp => Wire::CancelSmResp,
            Body::EnquireLink => Wire::EnquireLink,
            Body::EnquireLinkResp => Wire::EnquireLinkResp,
            Body::Unbind => Wire::Unbind,
            Body::UnbindResp => Wire::UnbindResp,
            Body::GenericNack => Wire::GenericNack,
            Body::Unsupported { command_id } => {
                return Err(PduError::Field {
                    field: "command_id",
                    reason: format!("{command_id:#010x} is not sent by smsroute"),
                });
            }
        };
        Ok(Command::new(
            CommandStatus::from(self.status),
            self.sequence,
            pdu,
        ))
    }

    /// Appends the encoded PDU (command_length included) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        let command = self.to_wire()?;
        let length = 4 + command.length();
        let start = out.len();
        out.extend_from_slice(&(length as u32).to_be_bytes());
        out.resize(start + length, 0);
        command.encode(&mut out[start + 4..]);
        Ok(())
    }

    /// Decodes one whole PDU (`bytes` starts with command_length and holds exactly it).
    pub fn decode(bytes: &[u8]) -> Result<Frame, PduError> {
        if bytes.len() < 16 || bytes.len() > MAX_PDU {
            return Err(PduError::Length(bytes.len()));
        }
        let declared = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if declared != bytes.len() {
            return Err(PduError::Length(declared));
        }
        let id = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let mut buf = BytesMut::from(&bytes[4..]);
        let (command, _) =
            Command::decode(&mut buf, bytes.len() - 4).map_err(|e| PduError::Malformed {
                command: format!("{:?}", CommandId::from(id)),
                reason: e.to_string(),
            })?;
        let body = match command.pdu() {
            Some(Wire::BindTransmitter(b)) => from_bind!(BindKind::Transmitter, b),
            Some(Wire::BindReceiver(b)) => from_bind!(BindKind::Receiver, b),
            Some(Wire::BindTransceiver(b)) => from_bind!(BindKind::Transceiver, b),
            Some(Wire::BindTransmitterResp(r)) => Body::BindResp {
                kind: BindKind::Transmitter,
                system_id: text_of(&r.system_id),
            },
            Some(Wire::BindReceiverResp(r)) => Body::BindResp {
                kind: BindKind::Receiver,
                system_id: text_of(&r.system_id),
            },
            Some(Wire::BindTransceiverResp(r)) => Body::BindResp {
                kind: BindKind::Transceiver,
                system_id: text_of(&r.system_id),
            },
            Some(Wire::SubmitSm(s)) => Body::SubmitSm(from_short_message!(s)),
            Some(Wire::DeliverSm(s)) => Body::DeliverSm(from_short_message!(s)),
            Some(Wire::SubmitSmResp(r)) => Body::SubmitSmResp {
                message_id: text_of(r.message_id()),
            },
            Some(Wire::DeliverSmResp(_)) => Body::DeliverSmResp,
            Some(Wire::QuerySm(q)) => Body::QuerySm {
                message_id: text_of(&q.message_id),
                source: Address {
                    ton: u8::from(q.source_addr_ton),
                    npi: u8::from(q.source_addr_npi),
                    addr: text_of(&q.source_addr),
                },
            },
            Some(Wire::QuerySmResp(r)) => Body::QuerySmResp {
                message_id: text_of(&r.message_id),
                final_date: r.final_date.as_str().to_string(),
                message_state: u8::from(r.message_state),
                error_code: r.error_code,
            },
            Some(Wire::CancelSm(c)) => Body::CancelSm {
                message_id: text_of(&c.message_id),
                source: Address {
                    ton: u8::from(c.source_addr_ton),
                    npi: u8::from(c.source_addr_npi),
                    addr: text_of(&c.source_addr),
                },
                destination: Address {
                    ton: u8::from(c.dest_addr_ton),
                    npi: u8::from(c.dest_addr_npi),
                    addr: text_of(&c.destination_addr),
                },
            },
            Some(Wire::CancelSmResp) => Body::CancelSmResp,
            Some(Wire::EnquireLink) => Body::EnquireLink,
            Some(Wire::EnquireLinkResp) => Body::EnquireLinkResp,
            Some(Wire::Unbind) => Body::Unbind,
            Some(Wire::UnbindResp) => Body::UnbindResp,
            Some(Wire::GenericNack) => Body::GenericNack,
            // A response with an error status may come without a body.
            None if id == command_id::GENERIC_NACK => Body::GenericNack,
            None => match id {
                0x8000_0004 => Body::SubmitSmResp {
                    message_id: String::new(),
                },
                0x8000_0005 => Body::DeliverSmResp,
                0x8000_0003 => Body::QuerySmResp {
                    message_id: String::new(),
                    final_date: String::new(),
                    message_state: 0,
                    error_code: 0,
                },
                _ => match bind_kind(id & 0x7FFF_FFFF) {
                    Some(kind) if id & 0x8000_0000 != 0 => Body::BindResp {
                        kind,
                        system_id: String::new(),
                    },
                    _ => Body::Unsupported { command_id: id },
                },
            },
            Some(_) => Body::Unsupported { command_id: id },
        };
        Ok(Frame {
            status: u32::from(command.status()),
            sequence: command.sequence_number(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn message() -> ShortMessage {
        ShortMessage {
            source: Address {
                ton: 5,
                npi: 0,
                addr: "ACME".into(),
            },
            destination: Address {
                ton: 1,
                npi: 1,
                addr: "447700900123".into(),
            },
            esm_class: 0,
            registered_delivery: 1,
            data_coding: 0,
            short_message: b"hello".to_vec(),
            message_payload: None,
            receipted_message_id: None,
            message_state: None,
            possible_duplicate: false,
            sar: None,
            schedule_delivery_time: String::new(),
            validity_period: String::new(),
        }
    }

    fn roundtrip(frame: Frame) {
        let mut bytes = Vec::new();
        frame.encode(&mut bytes).unwrap();
        assert_eq!(Frame::decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn a_bind_and_the_esme_settings_never_print_the_password() {
        let bind = Bind {
            kind: BindKind::Transceiver,
            system_id: "acme".into(),
            password: "s3cr3t".into(),
            system_type: String::new(),
            interface_version: 0x34,
        };
        let frame = Frame::new(1, Body::Bind(bind));
        let esme = crate::EsmeConfig::new("127.0.0.1", 2775, "acme", "s3cr3t");
        for debug in [format!("{frame:?}"), format!("{esme:?}")] {
            assert!(
                debug.contains("acme") && !debug.contains("s3cr3t"),
                "{debug}"
            );
        }
    }

    #[test]
    fn every_command_we_speak_roundtrips() {
        let bind = Bind {
            kind: BindKind::Transceiver,
            system_id: "acme".into(),
            password: "secret".into(),
            system_type: "".into(),
            interface_version: 0x34,
        };
        for kind in [
            BindKind::Transmitter,
            BindKind::Receiver,
            BindKind::Transceiver,
        ] {
            roundtrip(Frame::new(
                1,
                Body::Bind(Bind {
                    kind,
                    ..bind.clone()
                }),
            ));
            roundtrip(Frame::new(
                1,
                Body::BindResp {
                    kind,
                    system_id: "smsc".into(),
                },
            ));
        }
        roundtrip(Frame::new(2, Body::SubmitSm(message())));
        let mut receipt = message();
        receipt.esm_class = 0x04;
        receipt.receipted_message_id = Some("a1b2".into());
        receipt.message_state = Some(2);
        roundtrip(Frame::new(3, Body::DeliverSm(receipt.clone())));
        receipt.possible_duplicate = true;
        roundtrip(Frame::new(3, Body::DeliverSm(receipt.clone())));
        // On the wire as tag 0x1501, length 1, value 1.
        let mut bytes = Vec::new();
        Frame::new(3, Body::DeliverSm(receipt))
            .encode(&mut bytes)
            .unwrap();
        assert!(
            bytes
                .windows(5)
                .any(|w| w == [0x15, 0x01, 0x00, 0x01, 0x01])
        );
        let mut long = message();
        long.short_message.clear();
        long.message_payload = Some(vec![b'x'; 600]);
        roundtrip(Frame::new(4, Body::SubmitSm(long)));
        let mut sar = message();
        sar.sar = Some(crate::sm::Concat {
            reference: 0xBEEF,
            total: 3,
            part: 2,
        });
        roundtrip(Frame::new(5, Body::SubmitSm(sar)));
        let mut timed = message();
        timed.schedule_delivery_time = "261203100000000+".into();
        timed.validity_period = "000001000000000R".into();
        roundtrip(Frame::new(6, Body::SubmitSm(timed)));
        for body in [
            Body::QuerySm {
                message_id: "42-2".into(),
                source: message().source,
            },
            Body::QuerySmResp {
                message_id: "42-2".into(),
                final_date: "261203100000000+".into(),
                message_state: 2,
                error_code: 0,
            },
            Body::CancelSm {
                message_id: "42".into(),
                source: message().source,
                destination: message().destination,
            },
            Body::CancelSmResp,
            Body::SubmitSmResp {
                message_id: "42".into(),
            },
            Body::DeliverSmResp,
            Body::EnquireLink,
            Body::EnquireLinkResp,
            Body::Unbind,
            Body::UnbindResp,
            Body::GenericNack,
        ] {
            roundtrip(Frame::new(7, body));
        }
    }

    #[test]
    fn fields_are_encoded_exactly_as_set() {
        let mut bytes = Vec::new();
        Frame::new(0x0102_0304, Body::EnquireLink)
            .encode(&mut bytes)
            .unwrap();
        assert_eq!(
            bytes,
            [0, 0, 0, 16, 0, 0, 0, 0x15, 0, 0, 0, 0, 1, 2, 3, 4],
            "enquire_link, status 0, sequence 0x01020304"
        );
        bytes.clear();
        Frame::new(9, Body::SubmitSm(message()))
            .encode(&mut bytes)
            .unwrap();
        // Header, service_type "", TON/NPI, "ACME", TON/NPI, the number, then esm_class.
        let esm_at = 16 + 1 + 2 + 5 + 2 + 13;
        assert_eq!(
            bytes[esm_at], 0x00,
            "esm_class 0, not rusmpp's default 0x08"
        );
        assert_eq!(
            &bytes[esm_at + 1..esm_at + 3],
            [0, 0],
            "protocol_id, priority"
        );
        assert_eq!(
            &bytes[esm_at + 3..esm_at + 5],
            [0, 0],
            "no schedule, no validity"
        );
        assert_eq!(
            &bytes[esm_at + 5..esm_at + 10],
            [1, 0, 0, 0, 5],
            "receipt, dc 0, len"
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let mut m = message();
        m.source.addr = "A".repeat(30);
        let err = Frame::new(1, Body::SubmitSm(m)).encode(&mut Vec::new());
        assert!(
            matches!(
                err,
                Err(PduError::Field {
                    field: "source_addr",
                    ..
                })
            ),
            "{err:?}"
        );
        assert_eq!(Frame::decode(&[0; 8]), Err(PduError::Length(8)));
        let mut bytes = Vec::new();
        Frame::new(2, Body::SubmitSm(message()))
            .encode(&mut bytes)
            .unwrap();
        bytes.truncate(bytes.len() - 3);
        let declared = bytes.len() + 3;
        assert_eq!(Frame::decode(&bytes), Err(PduError::Length(declared)));
        // Fix the length: now the body itself is cut short.
        let cut = (bytes.len() as u32).to_be_bytes();
        bytes[..4].copy_from_slice(&cut);
        assert!(matches!(
            Frame::decode(&bytes),
            Err(PduError::Malformed { .. })
        ));
    }

    #[test]
    fn unknown_commands_decode_as_unsupported() {
        // query_sm (0x03) with an empty body: valid framing, not ours.
        let mut bytes = vec![0, 0, 0, 16, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 5];
        match Frame::decode(&bytes) {
            Ok(Frame {
                body: Body::Unsupported { command_id: 3 },
                ..
            })
            | Err(PduError::Malformed { .. }) => {}
            other => panic!("{other:?}"),
        }
        bytes[7] = 0x77;
        assert!(matches!(
            Frame::decode(&bytes),
            Ok(Frame {
                body: Body::Unsupported { command_id: 0x77 },
                ..
            }) | Err(PduError::Malformed { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Arbitrary bytes with a consistent length field: an error or a frame, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(mut body in proptest::collection::vec(any::<u8>(), 12..300)) {
            let len = (body.len() + 4) as u32;
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.append(&mut body);
            let _ = Frame::decode(&bytes);
        }

        /// Real PDUs with bytes flipped: still never a panic.
        #[test]
        fn corrupted_pdus_never_panic(flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8)) {
            let mut bytes = Vec::new();
            let mut m = message();
            m.receipted_message_id = Some("abc".into());
            m.message_state = Some(2);
            Frame::new(5, Body::DeliverSm(m)).encode(&mut bytes).unwrap();
            for (at, value) in flips {
                let at = 4 + at % (bytes.len() - 4);
                bytes[at] = value;
            }
            let _ = Frame::decode(&bytes);
        }
    }
}
