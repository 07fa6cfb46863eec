//! PDUs over a byte stream: reading one at a time, writing in batches.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::pdu::{Frame, MAX_PDU, PduError};

/// What reading the next PDU gave.
#[derive(Debug)]
pub enum Read {
    /// A PDU.
    Frame(Frame),
    /// A PDU with a sound length whose body the codec refused: answer it, keep the session.
    Malformed {
        /// Its sequence number (to answer with generic_nack).
        sequence: u32,
        /// What was wrong.
        error: PduError,
    },
    /// A length outside 16..=64 KiB: the stream cannot be resynchronised; close it.
    BadLength(u32),
    /// The peer closed the connection.
    Closed,
}

/// Reads the next PDU; `buf` is scratch space reused between calls.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Read> {
    let mut length = [0u8; 4];
    match reader.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Read::Closed),
        Err(e) => return Err(e),
    }
    let declared = u32::from_be_bytes(length);
    let len = declared as usize;
    if !(16..=MAX_PDU).contains(&len) {
        return Ok(Read::BadLength(declared));
    }
    buf.clear();
    buf.extend_from_slice(&length);
    buf.resize(len, 0);
    match reader.read_exact(&mut buf[4..]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Read::Closed),
        Err(e) => return Err(e),
    }
    Ok(match Frame::decode(buf) {
        Ok(frame) => Read::Frame(frame),
        Err(error) => Read::Malformed {
            sequence: u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]),
            error,
        },
    })
}

/// Encodes a frame for [`write_frames`]; errors surface to whoever built the frame.
pub fn encoded(frame: &Frame) -> Result<Vec<u8>, PduError> {
    // A submit_sm with a short text is ~100 octets: one allocation, no regrowth.
    let mut out = Vec::with_capacity(192);
    frame.encode(&mut out)?;
    Ok(out)
}

/// Encodes `frame` and queues it on `link`. For a side's own answers, built from checked
/// values: one that fails to encode, or a link already closed, is dropped (the peer's timers
/// deal with a missing answer).
pub async fn send_frame(link: &mpsc::Sender<Vec<u8>>, frame: &Frame) {
    if let Ok(bytes) = encoded(frame) {
        let _ = link.send(bytes).await;
    }
}

/// Writes every encoded PDU from `pdus` until the channel closes or the peer goes away,
/// coalescing whatever is queued into one write (pipelined submits leave in few syscalls).
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut pdus: mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(64 * 1024);
    while let Some(pdu) = pdus.recv().await {
        out.clear();
        out.extend_from_slice(&pdu);
        while out.len() < 60 * 1024 {
            match pdus.try_recv() {
                Ok(pdu) => out.extend_from_slice(&pdu),
                Err(_) => break,
            }
        }
        writer.write_all(&out).await?;
    }
    writer.flush().await?;
    writer.shutdown().await
}
