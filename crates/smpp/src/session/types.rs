//! What a session is configured with and says: its role, timers and bounds, events, and why
//! it closed or refused something.

use std::time::Duration;

use crate::pdu::{Bind, BindKind, Frame, PduError, status};

/// Which end of the session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The client: binds, submits, receives deliver_sm.
    Esme,
    /// The server: answers binds, takes submits, sends deliver_sm.
    Smsc,
}

/// Timers and bounds of a session. Every field has a default ([`SessionConfig::new`]).
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Which end this is.
    pub role: Role,
    /// A session not bound this long after it opened is closed (an SMSC that gets no bind, an
    /// ESME whose bind is not answered). Default 10 s.
    pub bind_timeout: Duration,
    /// A PDU whose first bytes arrived must be whole within this (a peer sending one byte a
    /// second). Default 10 s.
    pub pdu_timeout: Duration,
    /// With no response from the peer for this long, an enquire_link goes out. Default 30 s.
    pub enquire_link: Duration,
    /// An enquire_link or unbind unanswered this long: the link is dead. Default 10 s.
    pub response_timeout: Duration,
    /// Most encoded bytes waiting for the peer to read them. Past it new requests are refused
    /// ([`SessionError::Backlogged`]); past twice it (the peer keeps sending requests while it
    /// reads none of the answers) the session is closed. Default 1 MiB.
    pub max_unwritten: usize,
}

impl SessionConfig {
    /// The defaults for `role`.
    pub fn new(role: Role) -> Self {
        SessionConfig {
            role,
            bind_timeout: Duration::from_secs(10),
            pdu_timeout: Duration::from_secs(10),
            enquire_link: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            max_unwritten: 1 << 20,
        }
    }
}

/// What the application hears from a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// SMSC: a bind arrived; answer with [`Session::accept_bind`](super::Session::accept_bind) or [`Session::refuse_bind`](super::Session::refuse_bind).
    BindRequest {
        /// Its sequence number.
        sequence: u32,
        /// What it asks for.
        bind: Bind,
    },
    /// ESME: the bind was accepted.
    Bound {
        /// As what.
        kind: BindKind,
    },
    /// A request for the application to answer with [`Session::respond`](super::Session::respond): submit_sm, query_sm and cancel_sm at the
    /// SMSC, deliver_sm at the ESME.
    Request(Frame),
    /// The answer to one of the application's requests (its response, or a generic_nack with
    /// its sequence number).
    Response(Frame),
    /// The session ended; nothing more comes from it.
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// The peer closed the connection (the driver said so).
    #[error("closed by the peer")]
    PeerClosed,
    /// The connection failed (the driver said so).
    #[error("connection error: {0}")]
    Io(String),
    /// We unbound and the peer answered.
    #[error("unbound")]
    Unbound,
    /// The peer unbound.
    #[error("unbound by the peer")]
    UnboundByPeer,
    /// Our unbind was not answered in time.
    #[error("no answer to unbind within {0:?}")]
    UnbindUnanswered(Duration),
    /// ESME: the bind was refused.
    #[error("bind refused: {}", status_text(*.0))]
    BindRefused(u32),
    /// No bind (SMSC) or no answer to ours (ESME) within the bind timeout.
    #[error("not bound within {0:?}")]
    BindTimeout(Duration),
    /// A PDU started and was not whole within the PDU timeout.
    #[error("a PDU was started and not finished within {0:?}")]
    PduTimeout(Duration),
    /// An enquire_link went unanswered: the link is dead.
    #[error("no answer to enquire_link within {0:?}")]
    Dead(Duration),
    /// A command_length outside 16..=64 KiB: the frame boundary is lost.
    #[error("a PDU with an impossible length ({0})")]
    BadLength(u32),
    /// The peer does not read what we send.
    #[error("the peer stopped reading ({0} bytes unwritten)")]
    NotReading(usize),
    /// The application closed it.
    #[error("closed: {0}")]
    Local(&'static str),
}

fn status_text(code: u32) -> String {
    match status::name(code) {
        Some(name) => format!("{name} ({code:#010x})"),
        None => format!("status {code:#010x}"),
    }
}

/// Why the session did not take something from the application.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session is closed.
    #[error("the session is closed")]
    Closed,
    /// The request needs a bind state the session is not in.
    #[error("not bound for this")]
    NotBound,
    /// That is not this role's to send.
    #[error("{0} is not sent by this side")]
    WrongRole(&'static str),
    /// Too many bytes wait for the peer to read them.
    #[error("the peer is not reading: {0} bytes wait")]
    Backlogged(usize),
    /// It does not encode.
    #[error(transparent)]
    Pdu(#[from] PduError),
}
