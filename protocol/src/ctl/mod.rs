//! The switchd control protocol, sans I/O.
//!
//! Length-prefixed frames (u32 big-endian length, at most
//! [`MAX_FRAME_LEN`]) carrying postcard-encoded [`Message`]s: a request id
//! and a [`Body`], one enum of every request, reply and event. switchd and
//! weftctl do the I/O; this module only turns bytes into messages and back.
//!
//! # A session
//!
//! ```text
//! client                                  server
//!   Hello { versions: [1], client }  -->
//!                                    <--  HelloReply { version: 1 }   (same id)
//!   AddFlows { flows }        id=2   -->
//!                                    <--  Ok                           id=2
//!   BundleOpen / BundleAdd.. / BundleCommit
//!                                    <--  FlowsChanged / Error(BundleFailed)
//!   Goodbye                          -->
//!                                    <--  Ok, then close
//! ```
//!
//! * **Versions**: the client offers versions, the server picks the
//!   highest common one with [`negotiate`] or answers
//!   `Error(VersionMismatch)` and closes.
//! * **Ids**: chosen by the client, echoed by replies; a request whose body
//!   cannot be decoded still gets an error with its id when the id could be
//!   read ([`CodecError::request_id`], [`CodecError::to_ctl_error`]).
//! * **Errors** are typed ([`CtlError`]): which flow, which field, why.
//! * **Bundles**: open, add changes, commit (validate all, publish once)
//!   or discard.
//!
//! ```
//! use protocol::ctl::{Body, FrameDecoder, Message, decode_message, encode_frame};
//!
//! let bytes = encode_frame(&Message { id: 7, body: Body::Ping }).unwrap();
//! let mut dec = FrameDecoder::new();
//! dec.push(&bytes);
//! let frame = dec.next_frame().unwrap().unwrap();
//! assert_eq!(decode_message(&frame).unwrap(), Message { id: 7, body: Body::Ping });
//! ```
//!
//! See [`msg`] for the message table and tag rules, [`frame`] for the
//! framing and bounds.

pub mod error;
pub mod frame;
mod guard;
pub mod msg;
#[cfg(test)]
mod strategy;

pub use error::{CodecError, CtlError, FrameError};
pub use frame::{
    FrameDecoder, MAX_DECODED_LEN, MAX_DEPTH, MAX_FRAME_LEN, decode_message, encode_frame,
};
pub use msg::{
    Body, BodyKind, BundleId, ChangeCounts, CookieInfo, DatapathStats, DropCount, FlowChange,
    FlowEntryStats, FlowFilter, FlowModify, FlowRemoved, MAX_BACKEND_LEN, MAX_NAME_LEN,
    MAX_VERSIONS_OFFERED, MIN_PROTOCOL_VERSION, Message, NeighbourOrigin, NextHopInfo, NodeEntry,
    PROTOCOL_VERSION, PacketIn, PortBackendInfo, PortConfig, PortInfo, PortKind, PortOffloadInfo,
    PortOptions, PortRef, PortStats, RemovedReason, TableStat, TlvMapping, TraceInput, TraceOutput,
    TraceReport, TraceRule, TraceRuleHit, TunnelConfig, TunnelPortInfo, TunnelStatus,
    UnderlayConfig, negotiate, supported_versions,
};
