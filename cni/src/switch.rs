//! A small blocking `protocol::ctl` client for the node's switchd: connect
//! and greet, then one request at a time.
//!
//! Every failure to reach switchd (no socket, connection refused, no
//! answer within [`TIMEOUT`]) is CNI code 11, "try again later"
//! (`DESIGN.md`): the runtime retries, and the plugin never blocks longer
//! than the timeout. Errors switchd itself answers with are code 102.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use protocol::ctl::{
    Body, CtlError, FrameDecoder, Message, PortInfo, PortKind, PortRef, decode_message,
    encode_frame, supported_versions,
};
use protocol::flow::PortNo;

use crate::spec::{CniError, CniResult, code};

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A greeted session.
#[derive(Debug)]
pub struct Switch {
    stream: UnixStream,
    dec: FrameDecoder,
    next_id: u64,
    socket: String,
}

fn unreachable(socket: &str, why: impl std::fmt::Display) -> CniError {
    CniError::new(
        code::TRY_AGAIN_LATER,
        format!("switchd at {socket} is unreachable: {why}"),
    )
    .with_details("weft-switchd is not running or not ready on this node; retry later")
}

impl Switch {
    /// Connects to `socket` and says Hello.
    ///
    /// # Errors
    /// Code 11 if switchd cannot be reached or does not answer.
    pub fn connect(socket: &Path) -> CniResult<Switch> {
        let shown = socket.display().to_string();
        let stream = UnixStream::connect(socket).map_err(|e| unreachable(&shown, e))?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
            .map_err(|e| unreachable(&shown, e))?;
        let mut s = Switch {
            stream,
            dec: FrameDecoder::new(),
            next_id: 1,
            socket: shown,
        };
        match s.request(Body::Hello {
            versions: supported_versions(),
            client: concat!("weft-cni ", env!("CARGO_PKG_VERSION")).into(),
        })? {
            Ok(Body::HelloReply { .. }) => Ok(s),
            Ok(b) => Err(unreachable(
                &s.socket,
                format!("unexpected reply to Hello: {b}"),
            )),
            Err(e) => Err(unreachable(&s.socket, format!("Hello refused: {e}"))),
        }
    }

    /// Sends `body`; the outer error is "unreachable" (code 11), the inner
    /// one switchd's answer.
    fn request(&mut self, body: Body) -> CniResult<Result<Body, CtlError>> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = encode_frame(&Message { id, body })
            .map_err(|e| CniError::new(code::SWITCHD_REFUSED, format!("encoding request: {e}")))?;
        self.stream
            .write_all(&frame)
            .map_err(|e| unreachable(&self.socket, e))?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.dec.next_frame() {
                Ok(Some(f)) => {
                    let m = decode_message(&f)
                        .map_err(|e| unreachable(&self.socket, format!("bad reply: {e}")))?;
                    if m.id != id {
                        // An event or a stale reply: not ours.
                        continue;
                    }
                    return Ok(match m.body {
                        Body::Error(e) => Err(e),
                        b => Ok(b),
                    });
                }
                Ok(None) => {}
                Err(e) => return Err(unreachable(&self.socket, format!("bad frame: {e}"))),
            }
            let n = self
                .stream
                .read(&mut buf)
                .map_err(|e| unreachable(&self.socket, e))?;
            if n == 0 {
                return Err(unreachable(&self.socket, "connection closed"));
            }
            self.dec.push(buf.get(..n).unwrap_or_default());
        }
    }

    fn refused(&self, what: &str, e: &CtlError) -> CniError {
        CniError::new(
            code::SWITCHD_REFUSED,
            format!("switchd at {} refused {what}: {e}", self.socket),
        )
    }

    /// Liveness (`Ping`).
    ///
    /// # Errors
    /// Code 11 or 102.
    pub fn ping(&mut self) -> CniResult<()> {
        match self.request(Body::Ping)? {
            Ok(_) => Ok(()),
            Err(e) => Err(self.refused("Ping", &e)),
        }
    }

    /// Adds `name` as an AF_PACKET port; returns its OpenFlow number.
    ///
    /// # Errors
    /// Code 11 or 102.
    pub fn port_add(&mut self, name: &str) -> CniResult<PortNo> {
        self.port_add_inner(name, false)
    }

    /// As [`Switch::port_add`], but a port of that name left by an earlier,
    /// interrupted attempt is replaced (removed, then added again): one
    /// round trip when there is none, three when there is.
    ///
    /// # Errors
    /// Code 11 or 102.
    pub fn port_replace(&mut self, name: &str) -> CniResult<PortNo> {
        self.port_add_inner(name, true)
    }

    fn port_add_inner(&mut self, name: &str, replace: bool) -> CniResult<PortNo> {
        let req = || Body::PortAdd {
            name: name.into(),
            kind: PortKind::AfPacket,
            requested_ofport: None,
        };
        let mut reply = self.request(req())?;
        if replace && matches!(reply, Err(CtlError::PortExists { .. })) {
            self.port_del(name)?;
            reply = self.request(req())?;
        }
        match reply {
            Ok(Body::PortAdded { port }) => Ok(port),
            Ok(b) => Err(CniError::new(
                code::SWITCHD_REFUSED,
                format!("unexpected reply to PortAdd: {b}"),
            )),
            Err(e) => Err(self.refused(&format!("PortAdd {name}"), &e)),
        }
    }

    /// Removes port `name`; `false` if switchd had no such port.
    ///
    /// # Errors
    /// Code 11 or 102.
    pub fn port_del(&mut self, name: &str) -> CniResult<bool> {
        match self.request(Body::PortDel {
            port: PortRef::Name(name.into()),
        })? {
            Ok(_) => Ok(true),
            Err(CtlError::NoSuchPort { .. }) => Ok(false),
            Err(e) => Err(self.refused(&format!("PortDel {name}"), &e)),
        }
    }

    /// The ports.
    ///
    /// # Errors
    /// Code 11 or 102.
    pub fn ports(&mut self) -> CniResult<Vec<PortInfo>> {
        match self.request(Body::DumpPorts)? {
            Ok(Body::Ports(p)) => Ok(p),
            Ok(b) => Err(CniError::new(
                code::SWITCHD_REFUSED,
                format!("unexpected reply to DumpPorts: {b}"),
            )),
            Err(e) => Err(self.refused("DumpPorts", &e)),
        }
    }
}
