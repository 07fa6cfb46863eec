//! One SMPP 3.4 session as a sans-IO state machine, for both roles: the ESME (our carrier
//! connections) and the SMSC (the simulator, and the router's own server).
//!
//! The machine owns framing, sequence numbers, the bind state, enquire_link, the dead-link
//! verdict, the timers a hostile peer must not defeat (bind, a started PDU, an unanswered
//! enquire_link or unbind) and the bound on bytes waiting for the peer to read. It does no I/O
//! and reads no clock: a driver feeds it bytes ([`Session::handle_input`]), the time
//! ([`Session::handle_timeout`] at [`Session::poll_timeout`]), and writes what
//! [`Session::poll_transmit`] gives; the application answers the [`SessionEvent`]s it polls.
//!
//! What the machine answers itself, the same way in both roles: enquire_link, unbind, a PDU
//! whose body does not decode (generic_nack `ESME_RINVCMDLEN`; the frame boundary is known so
//! the session goes on), a command it does not handle (generic_nack `ESME_RINVCMDID`), a request
//! not allowed in the bind state (its own response with `ESME_RINVBNDSTS`), a second bind
//! (`ESME_RALYBND`). A length outside 16..=64 KiB loses the frame boundary: generic_nack, close.
//!
//! ```
//! use std::time::Instant;
//! use smsroute_smpp::pdu::{Bind, BindKind, Body, Frame};
//! use smsroute_smpp::session::{Role, Session, SessionConfig, SessionEvent};
//!
//! let now = Instant::now();
//! let mut esme = Session::new(SessionConfig::new(Role::Esme), now);
//! let mut smsc = Session::new(SessionConfig::new(Role::Smsc), now);
//! let bind = Bind { kind: BindKind::Transceiver, system_id: "acme".into(),
//!     password: "secret".into(), system_type: String::new(), interface_version: 0x34 };
//! esme.bind(bind, now).unwrap();
//! let wire = esme.poll_transmit().unwrap().to_vec();
//! esme.advance_transmit(wire.len());
//! smsc.handle_input(&wire, now);
//! let Some(SessionEvent::BindRequest { sequence, bind }) = smsc.poll_event() else { panic!() };
//! smsc.accept_bind(sequence, bind.kind, "smsc").unwrap();
//! let wire = smsc.poll_transmit().unwrap().to_vec();
//! esme.handle_input(&wire, now);
//! assert_eq!(esme.poll_event(), Some(SessionEvent::Bound { kind: BindKind::Transceiver }));
//! assert!(esme.is_bound());
//! ```
//!
//! Length: past 500 lines: one state machine whose transitions (input, timers, the
//! application's calls) are best read together; its types are in `session/types.rs`, its
//! tests in `session/tests.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use crate::pdu::{Bind, BindKind, Body, Frame, MAX_PDU, status};

mod types;

pub use types::{CloseReason, Role, SessionConfig, SessionError, SessionEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Connected, not bound; ESME: `Some(sequence)` while its bind is out.
    Open {
        bind_sent: Option<u32>,
    },
    Bound(BindKind),
    Unbinding {
        deadline: Instant,
    },
    Closed,
}

/// One SMPP session (see the module docs).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    opened: Instant,
    /// Bytes read and not yet a whole PDU, from `rx_start`.
    rx: Vec<u8>,
    rx_start: usize,
    /// When the partial PDU in `rx` began.
    pdu_started: Option<Instant>,
    /// Encoded bytes for the peer, from `tx_start`.
    tx: Vec<u8>,
    tx_start: usize,
    events: VecDeque<SessionEvent>,
    next_sequence: u32,
    /// The last time the peer answered anything of ours (or the session opened).
    last_response: Instant,
    /// Our enquire_link waiting for its answer: its sequence and when it went out.
    probe: Option<(u32, Instant)>,
    /// PDUs that did not decode.
    garbage: u64,
    /// The driver stopped reading (the application has no room): the timers that wait for
    /// the peer's bytes are stopped with it.
    input_held: bool,
}

impl Session {
    /// A session whose connection opened at `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        Session {
            config,
            state: State::Open { bind_sent: None },
            opened: now,
            rx: Vec::new(),
            rx_start: 0,
            pdu_started: None,
            tx: Vec::new(),
            tx_start: 0,
            events: VecDeque::new(),
            next_sequence: 1,
            last_response: now,
            probe: None,
            garbage: 0,
            input_held: false,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Bound, and as what.
    pub fn bound_as(&self) -> Option<BindKind> {
        match self.state {
            State::Bound(kind) => Some(kind),
            _ => None,
        }
    }

    /// Bound (and not unbinding).
    pub fn is_bound(&self) -> bool {
        self.bound_as().is_some()
    }

    /// Closed: the driver drops the connection once [`Session::poll_event`] is drained.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// PDUs from the peer that did not decode.
    pub fn garbage(&self) -> u64 {
        self.garbage
    }

    /// Encoded bytes waiting to be written.
    pub fn unwritten(&self) -> usize {
        self.tx.len() - self.tx_start
    }

    /// Whether the application may send requests now (bound, and the peer reads).
    pub fn can_send(&self) -> bool {
        self.is_bound() && self.unwritten() <= self.config.max_unwritten
    }

    // ---- from the application ----

    /// ESME: sends a bind; [`SessionEvent::Bound`] or a close follows.
    pub fn bind(&mut self, bind: Bind, now: Instant) -> Result<u32, SessionError> {
        if self.config.role != Role::Esme {
            return Err(SessionError::WrongRole("bind"));
        }
        match self.state {
            State::Open { bind_sent: None } => {}
            State::Closed => return Err(SessionError::Closed),
            _ => return Err(SessionError::NotBound),
        }
        let sequence = self.sequence();
        self.push(&Frame::new(sequence, Body::Bind(bind)))?;
        self.state = State::Open {
            bind_sent: Some(sequence),
        };
        // The bind timeout runs from now for an answer.
        self.opened = now;
        Ok(sequence)
    }

    /// SMSC: accepts the bind `sequence` as `kind`.
    pub fn accept_bind(
        &mut self,
        sequence: u32,
        kind: BindKind,
        system_id: &str,
    ) -> Result<(), SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        let answer = Body::BindResp {
            kind,
            system_id: system_id.into(),
        };
        self.push(&Frame::new(sequence, answer))?;
        self.state = State::Bound(kind);
        Ok(())
    }

    /// SMSC: refuses the bind `sequence` with `code` (the session stays open, unbound; its
    /// bind timeout still runs).
    pub fn refuse_bind(
        &mut self,
        sequence: u32,
        kind: BindKind,
        code: u32,
    ) -> Result<(), SessionError> {
        let mut answer = Frame::new(
            sequence,
            Body::BindResp {
                kind,
                system_id: String::new(),
            },
        );
        answer.status = code;
        self.push(&answer)
    }

    /// Sends a request (submit_sm from the ESME, deliver_sm from the SMSC); returns its
    /// sequence number, which its [`SessionEvent::Response`] carries.
    pub fn request(&mut self, body: Body) -> Result<u32, SessionError> {
        let kind = match self.state {
            State::Bound(kind) => kind,
            State::Closed => return Err(SessionError::Closed),
            _ => return Err(SessionError::NotBound),
        };
        let allowed = match (&body, self.config.role) {
            (Body::SubmitSm(_) | Body::QuerySm { .. } | Body::CancelSm { .. }, Role::Esme) => {
                kind != BindKind::Receiver
            }
            (Body::DeliverSm(_), Role::Smsc) => kind != BindKind::Transmitter,
            (Body::SubmitSm(_), Role::Smsc) => return Err(SessionError::WrongRole("submit_sm")),
            (Body::DeliverSm(_), Role::Esme) => return Err(SessionError::WrongRole("deliver_sm")),
            _ => return Err(SessionError::WrongRole("this command")),
        };
        if !allowed {
            return Err(SessionError::NotBound);
        }
        let unwritten = self.unwritten();
        if unwritten > self.config.max_unwritten {
            return Err(SessionError::Backlogged(unwritten));
        }
        let sequence = self.sequence();
        self.push(&Frame::new(sequence, body))?;
        Ok(sequence)
    }

    /// Answers the peer's request `sequence` (a [`SessionEvent::Request`]).
    pub fn respond(&mut self, sequence: u32, code: u32, body: Body) -> Result<(), SessionError> {
        if self.state == State::Closed {
            return Err(SessionError::Closed);
        }
        let mut answer = Frame::new(sequence, body);
        answer.status = code;
        self.push(&answer)
    }

    /// Unbinds: the session closes when the peer answers, or after the response timeout. An
    /// unbound session just closes.
    pub fn unbind(&mut self, now: Instant) {
        match self.state {
            State::Bound(_) => {
                let sequence = self.sequence();
                let _ = self.push(&Frame::new(sequence, Body::Unbind));
                self.state = State::Unbinding {
                    deadline: now + self.config.response_timeout,
                };
            }
            State::Open { .. } => self.close(CloseReason::Local("closed before it was bound")),
            State::Unbinding { .. } | State::Closed => {}
        }
    }

    /// Ends the session now (what is unwritten may still be written by the driver).
    pub fn close(&mut self, reason: CloseReason) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(SessionEvent::Closed(reason));
        }
    }

    // ---- from the driver ----

    /// Bytes read from the peer.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.rx.extend_from_slice(bytes);
        loop {
            let available = &self.rx[self.rx_start..];
            if available.len() < 4 {
                break;
            }
            let declared =
                u32::from_be_bytes([available[0], available[1], available[2], available[3]]);
            let length = declared as usize;
            if !(16..=MAX_PDU).contains(&length) {
                self.garbage += 1;
                self.nack(0, status::INVALID_COMMAND_LENGTH);
                self.close(CloseReason::BadLength(declared));
                self.rx.clear();
                self.rx_start = 0;
                return;
            }
            if available.len() < length {
                break;
            }
            let decoded = Frame::decode(&available[..length]);
            let sequence =
                u32::from_be_bytes([available[12], available[13], available[14], available[15]]);
            let id = u32::from_be_bytes([available[4], available[5], available[6], available[7]]);
            self.rx_start += length;
            self.pdu_started = None;
            match decoded {
                Ok(frame) => self.handle_frame(frame, now),
                Err(_) => {
                    self.garbage += 1;
                    // A response we cannot read is dropped; a request is answered.
                    if id & 0x8000_0000 == 0 {
                        self.nack(sequence, status::INVALID_COMMAND_LENGTH);
                    }
                }
            }
            if self.state == State::Closed {
                return;
            }
        }
        // Keep the partial PDU at the front; the buffer holds at most one PDU and a read.
        if self.rx_start == self.rx.len() {
            self.rx.clear();
            self.rx_start = 0;
            self.pdu_started = None;
        } else {
            if self.rx_start > 0 {
                self.rx.drain(..self.rx_start);
                self.rx_start = 0;
            }
            self.pdu_started.get_or_insert(now);
        }
        if self.rx.capacity() > 4 * MAX_PDU && self.rx.len() < MAX_PDU {
            self.rx.shrink_to(MAX_PDU);
        }
        self.check_backlog();
    }

    /// The driver stops reading because the application has no room for more (back-pressure):
    /// until [`Session::resume_input`], no enquire_link goes out and neither an unanswered one
    /// nor a started PDU times out (their answers and bytes may be waiting unread).
    pub fn hold_input(&mut self) {
        self.input_held = true;
    }

    /// The driver reads again: the paused timers start afresh from `now`.
    pub fn resume_input(&mut self, now: Instant) {
        if !self.input_held {
            return;
        }
        self.input_held = false;
        self.last_response = now;
        if let Some((sequence, _)) = self.probe {
            self.probe = Some((sequence, now));
        }
        if self.pdu_started.is_some() {
            self.pdu_started = Some(now);
        }
    }

    /// What a read of the connection gave: bytes (the peer's), nothing (it closed), or an
    /// error (the connection failed).
    pub fn handle_read(&mut self, read: std::io::Result<&[u8]>, now: Instant) {
        match read {
            Ok([]) => self.handle_eof(None),
            Ok(bytes) => self.handle_input(bytes, now),
            Err(e) => self.handle_eof(Some(e.to_string())),
        }
    }

    /// What a write of [`Session::poll_transmit`]'s bytes gave: how many went, or an error.
    pub fn handle_write(&mut self, written: std::io::Result<usize>) {
        match written {
            Ok(n) => self.advance_transmit(n),
            Err(e) => self.handle_eof(Some(e.to_string())),
        }
    }

    /// The peer closed the connection, or it failed.
    pub fn handle_eof(&mut self, error: Option<String>) {
        self.close(match error {
            None => CloseReason::PeerClosed,
            Some(e) => CloseReason::Io(e),
        });
    }

    /// The next time [`Session::handle_timeout`] must run, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.state {
            State::Closed => return None,
            State::Open { .. } => consider(self.opened + self.config.bind_timeout),
            State::Unbinding { deadline } => consider(deadline),
            State::Bound(_) if self.input_held => {}
            State::Bound(_) => match self.probe {
                Some((_, sent)) => consider(sent + self.config.response_timeout),
                None => consider(self.last_response + self.config.enquire_link),
            },
        }
        if let Some(started) = self.pdu_started
            && !self.input_held
        {
            consider(started + self.config.pdu_timeout);
        }
        next
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let c = &self.config;
        if let Some(started) = self.pdu_started
            && !self.input_held
            && now >= started + c.pdu_timeout
        {
            let wait = c.pdu_timeout;
            return self.close(CloseReason::PduTimeout(wait));
        }
        match self.state {
            State::Open { .. } if now >= self.opened + c.bind_timeout => {
                let wait = c.bind_timeout;
                self.close(CloseReason::BindTimeout(wait));
            }
            State::Unbinding { deadline } if now >= deadline => {
                let wait = c.response_timeout;
                self.close(CloseReason::UnbindUnanswered(wait));
            }
            State::Bound(_) if self.input_held => {}
            State::Bound(_) => match self.probe {
                Some((_, sent)) if now >= sent + c.response_timeout => {
                    let wait = c.response_timeout;
                    self.close(CloseReason::Dead(wait));
                }
                None if now >= self.last_response + c.enquire_link => {
                    let sequence = self.sequence();
                    if self.push(&Frame::new(sequence, Body::EnquireLink)).is_ok() {
                        self.probe = Some((sequence, now));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Bytes to write to the peer, if any; say how many were written with
    /// [`Session::advance_transmit`].
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        let pending = &self.tx[self.tx_start..];
        (!pending.is_empty()).then_some(pending)
    }

    /// `n` bytes of [`Session::poll_transmit`] were written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.tx_start = (self.tx_start + n).min(self.tx.len());
        if self.tx_start == self.tx.len() {
            self.tx.clear();
            self.tx_start = 0;
            if self.tx.capacity() > 4 * self.config.max_unwritten.max(MAX_PDU) {
                self.tx.shrink_to(MAX_PDU);
            }
        } else if self.tx_start > 64 * 1024 && self.tx_start * 2 > self.tx.len() {
            self.tx.drain(..self.tx_start);
            self.tx_start = 0;
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    // ---- inside ----

    fn sequence(&mut self) -> u32 {
        let n = self.next_sequence;
        // 1..=0x7FFFFFFF, as SMPP allows.
        self.next_sequence = if n >= 0x7FFF_FFFF { 1 } else { n + 1 };
        n
    }

    fn push(&mut self, frame: &Frame) -> Result<(), SessionError> {
        frame.encode(&mut self.tx)?;
        Ok(())
    }

    fn nack(&mut self, sequence: u32, code: u32) {
        let mut nack = Frame::new(sequence, Body::GenericNack);
        nack.status = code;
        let _ = self.push(&nack);
    }

    /// A peer that keeps sending requests while reading none of the answers is cut off.
    fn check_backlog(&mut self) {
        let unwritten = self.unwritten();
        if unwritten > 2 * self.config.max_unwritten {
            self.close(CloseReason::NotReading(unwritten));
        }
    }

    fn handle_frame(&mut self, frame: Frame, now: Instant) {
        let sequence = frame.sequence;
        let role = self.config.role;
        match frame.body {
            Body::EnquireLink => {
                let _ = self.respond(sequence, status::OK, Body::EnquireLinkResp);
            }
            Body::EnquireLinkResp => {
                self.last_response = now;
                if self.probe.is_some_and(|(s, _)| s == sequence) {
                    self.probe = None;
                }
            }
            Body::Unbind => {
                let _ = self.respond(sequence, status::OK, Body::UnbindResp);
                self.close(CloseReason::UnboundByPeer);
            }
            Body::UnbindResp => {
                if matches!(self.state, State::Unbinding { .. }) {
                    self.close(CloseReason::Unbound);
                }
            }
            Body::Bind(bind) if role == Role::Smsc => match self.state {
                State::Open { .. } => {
                    self.events
                        .push_back(SessionEvent::BindRequest { sequence, bind });
                }
                _ => {
                    let _ = self.refuse_bind(sequence, bind.kind, status::ALREADY_BOUND);
                }
            },
            Body::BindResp { kind, .. } if role == Role::Esme => {
                if self.state
                    == (State::Open {
                        bind_sent: Some(sequence),
                    })
                {
                    self.answer_to_bind(frame.status, kind, now);
                }
            }
            Body::GenericNack
                if role == Role::Esme
                    && self.state
                        == (State::Open {
                            bind_sent: Some(sequence),
                        }) =>
            {
                let code = if frame.status == status::OK {
                    status::INVALID_COMMAND_ID
                } else {
                    frame.status
                };
                self.close(CloseReason::BindRefused(code));
            }
            Body::GenericNack if self.probe.is_some_and(|(s, _)| s == sequence) => {
                // An answer all the same: the peer reads.
                self.last_response = now;
                self.probe = None;
            }
            body @ (Body::SubmitSmResp { .. }
            | Body::DeliverSmResp
            | Body::QuerySmResp { .. }
            | Body::CancelSmResp
            | Body::GenericNack) => {
                self.last_response = now;
                self.events.push_back(SessionEvent::Response(Frame {
                    status: frame.status,
                    sequence,
                    body,
                }));
            }
            body @ (Body::SubmitSm(_) | Body::QuerySm { .. } | Body::CancelSm { .. })
                if role == Role::Smsc =>
            {
                self.request_in(sequence, body, BindKind::Receiver)
            }
            Body::DeliverSm(sm) if role == Role::Esme => {
                self.request_in(sequence, Body::DeliverSm(sm), BindKind::Transmitter)
            }
            Body::Unsupported { command_id: id } if id & 0x8000_0000 != 0 => {
                // A response to nothing we send: ignored.
            }
            // A command this role never receives, or one we do not handle.
            Body::Bind(_)
            | Body::BindResp { .. }
            | Body::SubmitSm(_)
            | Body::DeliverSm(_)
            | Body::QuerySm { .. }
            | Body::CancelSm { .. }
            | Body::Unsupported { .. } => self.nack(sequence, status::INVALID_COMMAND_ID),
        }
    }

    fn answer_to_bind(&mut self, code: u32, kind: BindKind, now: Instant) {
        if code == status::OK {
            self.state = State::Bound(kind);
            self.last_response = now;
            self.events.push_back(SessionEvent::Bound { kind });
        } else {
            self.close(CloseReason::BindRefused(code));
        }
    }

    /// A request from the peer: to the application when the bind state allows it (bound, and
    /// not as `excluded`), else answered `ESME_RINVBNDSTS` here.
    fn request_in(&mut self, sequence: u32, body: Body, excluded: BindKind) {
        match self.state {
            State::Bound(kind) if kind != excluded => {
                self.events
                    .push_back(SessionEvent::Request(Frame::new(sequence, body)));
            }
            _ => {
                let answer = match body {
                    Body::SubmitSm(_) => Body::SubmitSmResp {
                        message_id: String::new(),
                    },
                    Body::QuerySm { message_id, .. } => Body::QuerySmResp {
                        message_id,
                        final_date: String::new(),
                        message_state: 0,
                        error_code: 0,
                    },
                    Body::CancelSm { .. } => Body::CancelSmResp,
                    _ => Body::DeliverSmResp,
                };
                let _ = self.respond(sequence, status::INVALID_BIND_STATUS, answer);
            }
        }
    }
}

#[cfg(test)]
mod tests;
