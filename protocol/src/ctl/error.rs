//! Errors: [`CtlError`] travels on the wire in [`Body::Error`] replies;
//! [`FrameError`] and [`CodecError`] are local (framing and decoding), and
//! convert to a [`CtlError`] the server can send back.
//!
//! [`Body::Error`]: super::Body::Error

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::msg::{BundleId, PortRef};
use crate::flow::TableId;

/// An error reply: what went wrong, naming the object and the field.
///
/// Sent as [`Body::Error`](super::Body::Error) with the id of the request
/// that failed. New variants are only ever appended (the variant index is
/// the wire tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum CtlError {
    /// The request's body tag is not one this side knows (a newer peer).
    #[error("unknown message: body tag {tag} is not known to this version")]
    UnknownMessage {
        /// The body's variant tag.
        tag: u32,
    },
    /// A known message arrived where it is not allowed (a reply sent as a
    /// request, a request before `Hello`, a second `Hello`).
    #[error("unexpected message {message}: {reason}")]
    UnexpectedMessage {
        /// The message's name (`Body::name`).
        message: String,
        /// Why it is not allowed here.
        reason: String,
    },
    /// The body did not decode.
    #[error("malformed message: {detail}")]
    Malformed {
        /// What the decoder said.
        detail: String,
    },
    /// A frame declared a length over the limit.
    #[error("frame too large: declared length {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Declared (or encoded) length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A bounded field or resource was over its limit.
    #[error("limit exceeded: {what} over the limit of {limit}")]
    LimitExceeded {
        /// What was over (e.g. `Hello.versions`, `table 3 flows`).
        what: String,
        /// The limit.
        limit: u64,
    },
    /// No protocol version in common.
    #[error("version mismatch: peer offered {offered:?}, this side supports {supported:?}")]
    VersionMismatch {
        /// Versions the client offered.
        offered: Vec<u16>,
        /// Versions this side supports.
        supported: Vec<u16>,
    },
    /// A flow in a request is invalid.
    #[error("flow {index} ({flow}): field {field}: {reason}")]
    BadFlow {
        /// Index of the flow in the request (or of the change in a bundle).
        index: usize,
        /// The flow in `ovs-ofctl` text form, if the server can print it.
        flow: String,
        /// The offending field or action (e.g. `tp_dst`, `actions[2]`).
        field: String,
        /// Why (e.g. `requires nw_proto=6 or 17 or 132`).
        reason: String,
    },
    /// Some other field of a request is invalid.
    #[error("bad request: field {field}: {reason}")]
    BadRequest {
        /// The field (e.g. `PacketOut.in_port`).
        field: String,
        /// Why.
        reason: String,
    },
    /// The table does not exist (over [`TableId::MAX`] or not configured).
    #[error("no such table: {table}")]
    NoSuchTable {
        /// The table.
        table: TableId,
    },
    /// The port does not exist.
    #[error("no such port: {port}")]
    NoSuchPort {
        /// The port as the request named it.
        port: PortRef,
    },
    /// A port with that name or number already exists.
    #[error("port already exists: {port}")]
    PortExists {
        /// The port as the request named it.
        port: PortRef,
    },
    /// Creating, opening or configuring the port failed.
    #[error("port {name}: {reason}")]
    PortFailed {
        /// The port name.
        name: String,
        /// Why (e.g. the OS error).
        reason: String,
    },
    /// The bundle is not open.
    #[error("no such bundle: {bundle_id}")]
    NoSuchBundle {
        /// The bundle.
        bundle_id: BundleId,
    },
    /// A bundle with that id is already open on this connection.
    #[error("bundle already open: {bundle_id}")]
    BundleExists {
        /// The bundle.
        bundle_id: BundleId,
    },
    /// A bundle's change failed validation at commit; nothing was applied
    /// (the bundle is discarded).
    #[error("bundle {bundle_id} change {index}: {error}")]
    BundleFailed {
        /// The bundle.
        bundle_id: BundleId,
        /// Index of the failing change, counting over every `BundleAdd`.
        index: usize,
        /// What was wrong with it.
        error: Box<CtlError>,
    },
    /// The request is valid but this server does not implement it (yet).
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// The server failed for a reason that is not the request's fault.
    #[error("internal error: {detail}")]
    Internal {
        /// What happened.
        detail: String,
    },
}

/// A framing error: the byte stream cannot be split into frames. Fatal for
/// the connection (there is no way to find the next frame boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length prefix declares more than [`MAX_FRAME_LEN`](super::MAX_FRAME_LEN).
    #[error("frame too large: declared length {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("truncated frame: stream ended with {have} of {need} bytes of the frame")]
    Truncated {
        /// Bytes of the frame (prefix included) received.
        have: usize,
        /// Bytes needed for the frame (4 while the prefix is incomplete).
        need: usize,
    },
}

impl From<FrameError> for CtlError {
    fn from(e: FrameError) -> CtlError {
        match e {
            FrameError::TooLarge { len, max } => CtlError::FrameTooLarge {
                len: len as u64,
                max: max as u64,
            },
            FrameError::Truncated { .. } => CtlError::Malformed {
                detail: e.to_string(),
            },
        }
    }
}

/// Encoding or decoding a message body failed.
///
/// Every decode error carries the request id when it could be read, so the
/// server can answer `Error(..)` with that id ([`CodecError::request_id`],
/// [`CodecError::to_ctl_error`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The body ended before the message did.
    #[error("truncated message body")]
    Truncated {
        /// The request id, if it was read.
        id: Option<u64>,
    },
    /// The body's variant tag is unknown (a newer peer's message).
    #[error("message {id}: unknown body tag {tag}")]
    UnknownBody {
        /// The request id.
        id: u64,
        /// The body's variant tag.
        tag: u32,
    },
    /// The body is not a valid encoding (bad varint, bool, option or enum
    /// tag inside the body, invalid UTF-8, ...).
    #[error("malformed message body: {detail}")]
    Malformed {
        /// The request id, if it was read.
        id: Option<u64>,
        /// What the decoder said.
        detail: String,
    },
    /// Bytes were left over after the message.
    #[error("message {id}: {count} trailing bytes after the body")]
    TrailingBytes {
        /// The request id.
        id: u64,
        /// How many bytes were left.
        count: usize,
    },
    /// A bound was exceeded: nesting depth, decoded size, or a bounded
    /// field (see [`Body::check_limits`](super::Body::check_limits)).
    #[error("message limit exceeded: {what} over the limit of {limit}")]
    LimitExceeded {
        /// The request id, if it was read.
        id: Option<u64>,
        /// What was over.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// Encoding: the body is longer than [`MAX_FRAME_LEN`](super::MAX_FRAME_LEN).
    #[error("frame too large: encoded body of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Encoding failed in the serializer.
    #[error("encoding failed: {detail}")]
    Encode {
        /// What the serializer said.
        detail: String,
    },
}

impl CodecError {
    /// The request id, if the failed message's id was read (reply with it).
    pub fn request_id(&self) -> Option<u64> {
        match self {
            CodecError::Truncated { id }
            | CodecError::Malformed { id, .. }
            | CodecError::LimitExceeded { id, .. } => *id,
            CodecError::UnknownBody { id, .. } | CodecError::TrailingBytes { id, .. } => Some(*id),
            CodecError::FrameTooLarge { .. } | CodecError::Encode { .. } => None,
        }
    }

    /// The error to send back to the peer.
    pub fn to_ctl_error(&self) -> CtlError {
        match self {
            CodecError::UnknownBody { tag, .. } => CtlError::UnknownMessage { tag: *tag },
            CodecError::LimitExceeded { what, limit, .. } => CtlError::LimitExceeded {
                what: what.clone(),
                limit: *limit,
            },
            CodecError::FrameTooLarge { len, max } => CtlError::FrameTooLarge {
                len: *len as u64,
                max: *max as u64,
            },
            CodecError::Truncated { .. }
            | CodecError::Malformed { .. }
            | CodecError::TrailingBytes { .. }
            | CodecError::Encode { .. } => CtlError::Malformed {
                detail: self.to_string(),
            },
        }
    }

    /// Adds the request id to an error that does not have one yet.
    pub(crate) fn with_id(self, id: u64) -> CodecError {
        match self {
            CodecError::Truncated { id: None } => CodecError::Truncated { id: Some(id) },
            CodecError::Malformed { id: None, detail } => CodecError::Malformed {
                id: Some(id),
                detail,
            },
            CodecError::LimitExceeded {
                id: None,
                what,
                limit,
            } => CodecError::LimitExceeded {
                id: Some(id),
                what,
                limit,
            },
            other => other,
        }
    }
}

impl From<CtlError> for CodecError {
    /// Bound violations found by [`Body::check_limits`](super::Body::check_limits).
    fn from(e: CtlError) -> CodecError {
        match e {
            CtlError::LimitExceeded { what, limit } => CodecError::LimitExceeded {
                id: None,
                what,
                limit,
            },
            other => CodecError::Malformed {
                id: None,
                detail: other.to_string(),
            },
        }
    }
}
