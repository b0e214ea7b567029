//! One greeted `protocol::ctl` connection to a switchd Unix socket, async
//! (tokio), strictly request/reply: the session never subscribes to
//! events, so every frame the server sends answers the request in flight.

use std::path::Path;

use protocol::ctl::{
    Body, CtlError, FlowEntryStats, FlowFilter, FrameDecoder, Message, decode_message,
    encode_frame, supported_versions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Why a connection failed: the transport (reconnect) or the peer's
/// protocol (also reconnect, but worth logging differently).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Connect, read or write failed, or the peer closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something this side cannot use.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer refused the Hello.
    #[error("hello refused: {0}")]
    Refused(CtlError),
}

/// A connected, greeted session.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    dec: FrameDecoder,
    buf: Vec<u8>,
    next_id: u64,
    /// The server's name from `HelloReply`.
    pub server: String,
}

impl Connection {
    /// Connects to `path` and exchanges Hello as `client`.
    ///
    /// # Errors
    /// Transport errors, or the server refusing every offered version.
    pub async fn connect(path: &Path, client: &str) -> Result<Connection, ConnError> {
        let stream = UnixStream::connect(path).await?;
        let mut c = Connection {
            stream,
            dec: FrameDecoder::new(),
            buf: vec![0; 64 * 1024],
            next_id: 1,
            server: String::new(),
        };
        match c
            .request(Body::Hello {
                versions: supported_versions(),
                client: client.into(),
            })
            .await?
        {
            Body::HelloReply { server, .. } => c.server = server,
            Body::Error(e) => return Err(ConnError::Refused(e)),
            b => {
                return Err(ConnError::Protocol(format!(
                    "Hello answered by {}",
                    b.name()
                )));
            }
        }
        Ok(c)
    }

    /// Sends `body` and returns the reply (an `Error` reply is a normal
    /// result here: the caller decides what a refusal means).
    ///
    /// # Errors
    /// Transport or framing errors: the connection is unusable after one.
    pub async fn request(&mut self, body: Body) -> Result<Body, ConnError> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&Message { id, body })
            .map_err(|e| ConnError::Protocol(format!("encode: {e}")))?;
        self.stream.write_all(&frame).await?;
        let m = self.read().await?;
        if m.id == id {
            return Ok(m.body);
        }
        // Id 0: a connection-level error from the server (bad frame).
        match m.body {
            Body::Error(e) => Err(ConnError::Protocol(format!("server error: {e}"))),
            _ => Err(ConnError::Protocol(format!(
                "reply id {} to request {id}",
                m.id
            ))),
        }
    }

    /// Sends every body of `bodies` in one write, then reads their
    /// replies in order (the server answers requests in the order it
    /// reads them): one round trip instead of one per request. Stops at
    /// the first transport error; an `Error` reply is a normal result.
    ///
    /// # Errors
    /// Transport or framing errors: the connection is unusable after one.
    pub async fn pipeline(&mut self, bodies: Vec<Body>) -> Result<Vec<Body>, ConnError> {
        let first = self.next_id;
        let mut frames = Vec::new();
        for body in bodies {
            let id = self.next_id;
            self.next_id += 1;
            let f = encode_frame(&Message { id, body })
                .map_err(|e| ConnError::Protocol(format!("encode: {e}")))?;
            frames.extend_from_slice(&f);
        }
        self.stream.write_all(&frames).await?;
        let mut out = Vec::new();
        for id in first..self.next_id {
            let m = self.read().await?;
            if m.id != id {
                return Err(match m.body {
                    Body::Error(e) => ConnError::Protocol(format!("server error: {e}")),
                    _ => ConnError::Protocol(format!("reply id {} to request {id}", m.id)),
                });
            }
            out.push(m.body);
        }
        Ok(out)
    }

    /// Every flow (no counters), gathered over the `more` parts.
    ///
    /// # Errors
    /// Transport errors, or an `Error` reply.
    pub async fn dump_flows(&mut self) -> Result<Vec<FlowEntryStats>, ConnError> {
        let mut out = Vec::new();
        let mut body = self
            .request(Body::DumpFlows {
                filter: FlowFilter::default(),
                with_stats: true,
            })
            .await?;
        loop {
            match body {
                Body::Flows { entries, more } => {
                    out.extend(entries);
                    if !more {
                        return Ok(out);
                    }
                }
                Body::Error(e) => return Err(ConnError::Protocol(format!("dump-flows: {e}"))),
                b => return Err(ConnError::Protocol(format!("dump-flows: got {}", b.name()))),
            }
            body = self.read().await?.body;
        }
    }

    /// Waits until the server closes the connection (or sends something:
    /// unsolicited frames are a protocol error for this client). Used while
    /// idle to notice a switchd that went away.
    pub async fn closed(&mut self) -> ConnError {
        match self.read().await {
            Ok(m) => ConnError::Protocol(format!("unsolicited {}", m.body.name())),
            Err(e) => e,
        }
    }

    /// Says Goodbye (best effort).
    pub async fn goodbye(mut self) {
        let _ = self.request(Body::Goodbye).await;
    }

    async fn read(&mut self) -> Result<Message, ConnError> {
        loop {
            match self.dec.next_frame() {
                Ok(Some(f)) => {
                    return decode_message(&f)
                        .map_err(|e| ConnError::Protocol(format!("decode: {e}")));
                }
                Ok(None) => {}
                Err(e) => return Err(ConnError::Protocol(format!("framing: {e}"))),
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Err(ConnError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "switchd closed the connection",
                )));
            }
            self.dec.push(self.buf.get(..n).unwrap_or_default());
        }
    }
}
