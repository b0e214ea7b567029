//! Messages: the [`Message`] envelope, the [`Body`] enum of every request,
//! reply and event, and the records they carry.
//!
//! # One enum, three kinds
//!
//! [`Body`] is a single flat enum: requests (client to server), replies
//! (server to client, echoing the request's id) and events (server to
//! client, unsolicited, carrying the id of the `Subscribe` that asked for
//! them). One enum keeps one tag space, so "unknown tag" means the same
//! thing in both directions and a server can answer a misdirected reply
//! with [`CtlError::UnexpectedMessage`]. [`Body::kind`] says which kind a
//! variant is.
//!
//! # Tags are forever
//!
//! postcard encodes a variant as its index (a varint). Variants are
//! therefore **only appended**, never reordered or removed, and a changed
//! variant shape needs a new [`PROTOCOL_VERSION`]. Tags 0 to 3 (`Hello`,
//! `HelloReply`, `Error`, `Ok`) are frozen across all versions so any two
//! versions can negotiate and fail cleanly.
//!
//! # Request / reply table
//!
//! | request | success reply |
//! |---|---|
//! | `Hello` | `HelloReply` (or `Error(VersionMismatch)`) |
//! | `AddFlows`, `ModifyFlows`, `DeleteFlows` | `Ok` |
//! | `ReplaceFlows`, `BundleCommit` | `FlowsChanged` |
//! | `BundleOpen`, `BundleAdd`, `BundleDiscard` | `Ok` |
//! | `DumpFlows` | one or more `Flows` (all but the last with `more: true`) |
//! | `DumpPorts` | `Ports` |
//! | `PortAdd` | `PortAdded` |
//! | `PortDel`, `PortMod` | `Ok` |
//! | `DumpTables` | `Tables` |
//! | `PacketOut` | `Ok` |
//! | `Subscribe` | `Ok`, then `PacketIn` / `FlowRemoved` events |
//! | `Trace` | `TraceResult` |
//! | `SetTlvMap` | `Ok`; `DumpTlvMap`: `TlvMap` |
//! | `SetCookieInfo` | `Ok`; `DumpCookies`: `Cookies` |
//! | `Ping` | `Ok` |
//! | `Goodbye` | `Ok`, then the server closes |
//! | `SetNodes`, `DelNodes` (v2) | `Ok`; `DumpNodes`: `Nodes` |
//! | `SetUnderlay` (v2) | `Ok`; `DumpTunnels`: `Tunnels` |
//! | `DumpStats` (v2) | `Stats` |
//! | `TraceDetailed` (v3) | `TraceReport` |
//! | `PortAddWith` (v3) | `PortAdded` |
//! | `DumpPortOffloads` (v3) | `PortOffloads` |
//! | `DumpPortBackends` (v4) | `PortBackends` |
//!
//! # Versions
//!
//! * 1: tags 0 to 36.
//! * 2: appends tags 37 to 45 (node table, underlay, tunnel status,
//!   datapath statistics). No earlier variant changed shape, so a version-2
//!   server serves version-1 clients unchanged; a version-2 client talking
//!   to a version-1 server sees `HelloReply { version: 1 }` and must not
//!   send the new requests (a version-1 server would answer
//!   `UnknownMessage`).
//! * 3: appends tags 46 to 50: 46 and 47 (`TraceDetailed` / `TraceReport`: the trace
//!   as data, with the exact bytes of every output and the cookie of every
//!   rule hit, for `weftctl trace --from/--to` across nodes). Same rule:
//!   older clients are served unchanged, a version-3 client checks the
//!   negotiated version before sending `TraceDetailed`;
//!   48 to 50: `PortAddWith` (`PortAdd` with
//!   [`PortOptions`]: offloads on or off per port) and `DumpPortOffloads`
//!   / `PortOffloads` (what each port asked for and what the kernel
//!   accepted). `PortAdd` and `Ports` keep their version-1 shape, so older
//!   clients are served unchanged; `PortAdd` means default options.
//! * 4: appends [`PortKind::AfXdp`] (variant 5 of `PortKind`) and tags 51
//!   and 52, `DumpPortBackends` / `PortBackends` (whether an `afxdp` port
//!   runs on AF_XDP or fell back to AF_PACKET, and why). Older clients are
//!   served unchanged (a server lists an `afxdp` port to a client of
//!   version 3 or lower as `afpacket`, a kind it can decode); a client
//!   checks the negotiated version before sending `afxdp` or the new
//!   request.
//!
//! Any request may instead get `Error(CtlError)`. A request that changes
//! flows is applied atomically: either all of it is published in one
//! pipeline generation, or none of it and the reply names the first bad
//! flow ([`CtlError::BadFlow`]).

use core::fmt;
use core::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::error::CtlError;
use crate::flow::{
    Action, ControllerReason, Cookie, FlowKey, FlowSpec, Match, PortNo, Priority, TableId,
};
use crate::wire::EthernetAddress;

/// The protocol version this build speaks best.
pub const PROTOCOL_VERSION: u16 = 4;
/// The oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// At most this many versions in [`Body::Hello`]`.versions`.
pub const MAX_VERSIONS_OFFERED: usize = 16;
/// At most this many bytes in a name: [`Body::Hello`]`.client`,
/// [`Body::HelloReply`]`.server`, port names.
pub const MAX_NAME_LEN: usize = 256;

/// Every version this build supports, lowest first.
pub fn supported_versions() -> Vec<u16> {
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).collect()
}

/// Picks the version for a connection: the highest version in `offered`
/// that this build supports.
///
/// Fails with [`CtlError::LimitExceeded`] if more than
/// [`MAX_VERSIONS_OFFERED`] are offered and with
/// [`CtlError::VersionMismatch`] if none is supported.
pub fn negotiate(offered: &[u16]) -> Result<u16, CtlError> {
    if offered.len() > MAX_VERSIONS_OFFERED {
        return Err(CtlError::LimitExceeded {
            what: "Hello.versions".into(),
            limit: MAX_VERSIONS_OFFERED as u64,
        });
    }
    offered
        .iter()
        .copied()
        .filter(|v| (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(v))
        .max()
        .ok_or_else(|| CtlError::VersionMismatch {
            offered: offered.to_vec(),
            supported: supported_versions(),
        })
}

/// A bundle id, chosen by the client, scoped to its connection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct BundleId(pub u32);

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The envelope: a request id and a body.
///
/// The id is encoded first, so a server can read it even when the body is
/// unknown or malformed and answer with the same id. Clients choose ids
/// (unique among their outstanding requests); replies echo them; events
/// carry the id of the `Subscribe` request that enabled them.
///
/// Encode with [`encode_frame`](super::encode_frame), decode with
/// [`decode_message`](super::decode_message) (not with postcard directly:
/// it applies the limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Request id.
    pub id: u64,
    /// What the message says.
    pub body: Body,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.id, self.body)
    }
}

/// Whether a [`Body`] is a request, a reply or an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// Client to server.
    Request,
    /// Server to client, answering a request.
    Reply,
    /// Server to client, unsolicited (after `Subscribe`).
    Event,
}

/// Every message. See the [module docs](self) for the request/reply table
/// and the tag rules. The comment on each variant is its wire tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    // ---- frozen: tags 0..=3 never change ----
    /// Tag 0. Request, must be first: the versions the client speaks and
    /// its name (for logs).
    Hello {
        /// Versions offered (at most [`MAX_VERSIONS_OFFERED`]).
        versions: Vec<u16>,
        /// Client name and version, e.g. `weftctl 0.1.0` (at most
        /// [`MAX_NAME_LEN`] bytes).
        client: String,
    },
    /// Tag 1. Reply to `Hello`: the version chosen by [`negotiate`].
    HelloReply {
        /// The version both sides now speak.
        version: u16,
        /// Server name and version (at most [`MAX_NAME_LEN`] bytes).
        server: String,
    },
    /// Tag 2. Reply: the request failed.
    Error(CtlError),
    /// Tag 3. Reply: the request succeeded and has nothing to return.
    Ok,

    // ---- requests: flows ----
    /// Tag 4. Adds flows (OpenFlow `ADD`: a flow with the same table,
    /// priority and match replaces the old one, counters reset).
    AddFlows {
        /// The flows, all validated before any is applied.
        flows: Vec<FlowSpec>,
    },
    /// Tag 5. Changes the actions of matching flows.
    ModifyFlows(FlowModify),
    /// Tag 6. Deletes matching flows.
    DeleteFlows(FlowFilter),
    /// Tag 7. Makes the flow tables hold exactly `flows`: the server
    /// computes the difference and applies it in one generation (flows
    /// that did not change keep their counters). For sets too large for
    /// one frame use a bundle: `Delete(all)` then adds, committed once,
    /// has the same net effect.
    ReplaceFlows {
        /// The complete new flow set.
        flows: Vec<FlowSpec>,
    },

    // ---- requests: bundles ----
    /// Tag 8. Opens a bundle (per connection; closed by commit, discard or
    /// disconnect).
    BundleOpen {
        /// Client-chosen id.
        bundle_id: BundleId,
    },
    /// Tag 9. Adds changes to an open bundle. They are checked for form
    /// now and validated against the tables at commit.
    BundleAdd {
        /// The bundle.
        bundle_id: BundleId,
        /// Changes, applied in order at commit.
        changes: Vec<FlowChange>,
    },
    /// Tag 10. Validates every change and publishes the net result once,
    /// or applies nothing and replies `BundleFailed`. Closes the bundle.
    BundleCommit {
        /// The bundle.
        bundle_id: BundleId,
    },
    /// Tag 11. Drops the bundle's changes and closes it.
    BundleDiscard {
        /// The bundle.
        bundle_id: BundleId,
    },

    // ---- requests: reading state ----
    /// Tag 12. Lists flows selected by `filter`.
    DumpFlows {
        /// Which flows.
        filter: FlowFilter,
        /// Include counters and ages (otherwise they are zero).
        with_stats: bool,
    },
    /// Tag 13. Lists ports with their counters.
    DumpPorts,
    /// Tag 14. Per-table statistics.
    DumpTables,

    // ---- requests: ports ----
    /// Tag 15. Adds a port.
    PortAdd {
        /// Interface name (at most [`MAX_NAME_LEN`] bytes).
        name: String,
        /// What kind of port.
        kind: PortKind,
        /// The OpenFlow port number wanted (`None`: the server picks).
        requested_ofport: Option<PortNo>,
    },
    /// Tag 16. Removes a port (and the flows that only exist for it are
    /// left to the client).
    PortDel {
        /// Which port.
        port: PortRef,
    },
    /// Tag 17. Changes a port's configuration.
    PortMod {
        /// Which port.
        port: PortRef,
        /// The changes; `None` fields are left as they are.
        config: PortConfig,
    },

    // ---- requests: packets ----
    /// Tag 18. Sends a packet through `actions` as if received on
    /// `in_port` (use [`PortNo::CONTROLLER`] for none; `Output(TABLE)`
    /// submits it to table 0).
    PacketOut {
        /// The input port the actions see.
        in_port: PortNo,
        /// The Ethernet frame.
        packet: Vec<u8>,
        /// What to do with it.
        actions: Vec<Action>,
    },
    /// Tag 19. Chooses which events this connection receives (replaces
    /// the previous choice; both false unsubscribes). Events carry this
    /// request's id.
    Subscribe {
        /// Receive `PacketIn` events.
        packet_in: bool,
        /// Receive `FlowRemoved` events.
        flow_removed: bool,
    },
    /// Tag 20. Runs a packet through the real pipeline with a tracing sink
    /// and returns what happened; nothing is sent.
    Trace {
        /// The input port.
        in_port: PortNo,
        /// The packet or its flow key.
        input: TraceInput,
    },

    // ---- requests: switch configuration ----
    /// Tag 21. Replaces the Geneve option to `tun_metadata` slot map.
    SetTlvMap {
        /// The complete new map.
        mappings: Vec<TlvMapping>,
    },
    /// Tag 22. Reads the Geneve option map.
    DumpTlvMap,
    /// Tag 23. Records what produced each cookie, for `dump-flows
    /// --explain` and `trace`.
    SetCookieInfo {
        /// The entries.
        entries: Vec<CookieInfo>,
        /// Replace the whole table (otherwise add/overwrite these).
        replace: bool,
    },
    /// Tag 24. Reads the cookie table.
    DumpCookies,
    /// Tag 25. Liveness check.
    Ping,
    /// Tag 26. The client is closing; the server replies `Ok`, discards
    /// open bundles and closes.
    Goodbye,

    // ---- replies ----
    /// Tag 27. Reply to `ReplaceFlows` and `BundleCommit`: what changed.
    FlowsChanged(ChangeCounts),
    /// Tag 28. Reply to `DumpFlows`. Large dumps come as several replies
    /// with the same id; all but the last have `more: true`.
    Flows {
        /// The flows of this part.
        entries: Vec<FlowEntryStats>,
        /// More parts follow.
        more: bool,
    },
    /// Tag 29. Reply to `DumpPorts`.
    Ports(Vec<PortInfo>),
    /// Tag 30. Reply to `PortAdd`: the port's number.
    PortAdded {
        /// The number given to the port.
        port: PortNo,
    },
    /// Tag 31. Reply to `DumpTables`.
    Tables(Vec<TableStat>),
    /// Tag 32. Reply to `Trace`.
    TraceResult {
        /// The trace, human-readable (a tree of table, rule, action,
        /// output). A structured form may be added as a new variant.
        text: String,
    },
    /// Tag 33. Reply to `DumpTlvMap`.
    TlvMap(Vec<TlvMapping>),
    /// Tag 34. Reply to `DumpCookies`.
    Cookies(Vec<CookieInfo>),

    // ---- events ----
    /// Tag 35. Event: a packet sent to the controller.
    PacketIn(PacketIn),
    /// Tag 36. Event: a flow expired or was deleted.
    FlowRemoved(FlowRemoved),

    // ---- version 2: node table, underlay, tunnels, statistics ----
    /// Tag 37. Request: adds or updates nodes of the node table (node name
    /// to underlay IP); with `replace`, the table becomes exactly `nodes`.
    SetNodes {
        /// The entries (names unique, at most [`MAX_NAME_LEN`] bytes).
        nodes: Vec<NodeEntry>,
        /// Replace the whole table.
        replace: bool,
    },
    /// Tag 38. Request: removes nodes by name (unknown names are an error,
    /// nothing removed).
    DelNodes {
        /// The names.
        names: Vec<String>,
    },
    /// Tag 39. Request: reads the node table.
    DumpNodes,
    /// Tag 40. Request: sets (or with `None` clears) the underlay: which
    /// port faces the underlay network and which carries the node's IP.
    SetUnderlay(Option<UnderlayConfig>),
    /// Tag 41. Request: reads the underlay, tunnel ports, their overhead
    /// and recommended pod MTU, and the next-hop table.
    DumpTunnels,
    /// Tag 42. Reply to `DumpNodes`.
    Nodes(Vec<NodeEntry>),
    /// Tag 43. Reply to `DumpTunnels`.
    Tunnels(TunnelStatus),
    /// Tag 44. Request: datapath counters (packets, drops by reason).
    DumpStats,
    /// Tag 45. Reply to `DumpStats`.
    Stats(DatapathStats),

    // ---- version 3: structured traces ----
    /// Tag 46. Request: as `Trace`, answered with the trace as data
    /// ([`TraceReport`]).
    TraceDetailed {
        /// The input port.
        in_port: PortNo,
        /// The packet or its flow key.
        input: TraceInput,
    },
    /// Tag 47. Reply to `TraceDetailed`.
    TraceReport(TraceReport),
    // ---- version 3: per-port options ----
    /// Tag 48. Request: adds a port with options (`PortAdd` is this with
    /// [`PortOptions::default`]).
    PortAddWith {
        /// Interface name (at most [`MAX_NAME_LEN`] bytes).
        name: String,
        /// What kind of port.
        kind: PortKind,
        /// The OpenFlow port number wanted (`None`: the server picks).
        requested_ofport: Option<PortNo>,
        /// Per-port options.
        options: PortOptions,
    },
    /// Tag 49. Request: per-port offload state.
    DumpPortOffloads,
    /// Tag 50. Reply to `DumpPortOffloads`, one entry per port.
    PortOffloads(Vec<PortOffloadInfo>),
    // ---- version 4: AF_XDP ports ----
    /// Tag 51. Request: what actually serves each port whose backend can
    /// differ from its kind (`afxdp`: AF_XDP, or the AF_PACKET fallback).
    DumpPortBackends,
    /// Tag 52. Reply to `DumpPortBackends`.
    PortBackends(Vec<PortBackendInfo>),
}

impl Body {
    /// Number of tags this version knows: a tag `>= TAG_COUNT` is
    /// [`CodecError::UnknownBody`](super::CodecError::UnknownBody).
    pub const TAG_COUNT: u32 = 53;

    /// The wire tag (variant index).
    pub fn tag(&self) -> u32 {
        match self {
            Body::Hello { .. } => 0,
            Body::HelloReply { .. } => 1,
            Body::Error(_) => 2,
            Body::Ok => 3,
            Body::AddFlows { .. } => 4,
            Body::ModifyFlows(_) => 5,
            Body::DeleteFlows(_) => 6,
            Body::ReplaceFlows { .. } => 7,
            Body::BundleOpen { .. } => 8,
            Body::BundleAdd { .. } => 9,
            Body::BundleCommit { .. } => 10,
            Body::BundleDiscard { .. } => 11,
            Body::DumpFlows { .. } => 12,
            Body::DumpPorts => 13,
            Body::DumpTables => 14,
            Body::PortAdd { .. } => 15,
            Body::PortDel { .. } => 16,
            Body::PortMod { .. } => 17,
            Body::PacketOut { .. } => 18,
            Body::Subscribe { .. } => 19,
            Body::Trace { .. } => 20,
            Body::SetTlvMap { .. } => 21,
            Body::DumpTlvMap => 22,
            Body::SetCookieInfo { .. } => 23,
            Body::DumpCookies => 24,
            Body::Ping => 25,
            Body::Goodbye => 26,
            Body::FlowsChanged(_) => 27,
            Body::Flows { .. } => 28,
            Body::Ports(_) => 29,
            Body::PortAdded { .. } => 30,
            Body::Tables(_) => 31,
            Body::TraceResult { .. } => 32,
            Body::TlvMap(_) => 33,
            Body::Cookies(_) => 34,
            Body::PacketIn(_) => 35,
            Body::FlowRemoved(_) => 36,
            Body::SetNodes { .. } => 37,
            Body::DelNodes { .. } => 38,
            Body::DumpNodes => 39,
            Body::SetUnderlay(_) => 40,
            Body::DumpTunnels => 41,
            Body::Nodes(_) => 42,
            Body::Tunnels(_) => 43,
            Body::DumpStats => 44,
            Body::Stats(_) => 45,
            Body::TraceDetailed { .. } => 46,
            Body::TraceReport(_) => 47,
            Body::PortAddWith { .. } => 48,
            Body::DumpPortOffloads => 49,
            Body::PortOffloads(_) => 50,
            Body::DumpPortBackends => 51,
            Body::PortBackends(_) => 52,
        }
    }

    /// The variant's name, for logs and [`CtlError::UnexpectedMessage`].
    pub fn name(&self) -> &'static str {
        match self {
            Body::Hello { .. } => "Hello",
            Body::HelloReply { .. } => "HelloReply",
            Body::Error(_) => "Error",
            Body::Ok => "Ok",
            Body::AddFlows { .. } => "AddFlows",
            Body::ModifyFlows(_) => "ModifyFlows",
            Body::DeleteFlows(_) => "DeleteFlows",
            Body::ReplaceFlows { .. } => "ReplaceFlows",
            Body::BundleOpen { .. } => "BundleOpen",
            Body::BundleAdd { .. } => "BundleAdd",
            Body::BundleCommit { .. } => "BundleCommit",
            Body::BundleDiscard { .. } => "BundleDiscard",
            Body::DumpFlows { .. } => "DumpFlows",
            Body::DumpPorts => "DumpPorts",
            Body::DumpTables => "DumpTables",
            Body::PortAdd { .. } => "PortAdd",
            Body::PortDel { .. } => "PortDel",
            Body::PortMod { .. } => "PortMod",
            Body::PacketOut { .. } => "PacketOut",
            Body::Subscribe { .. } => "Subscribe",
            Body::Trace { .. } => "Trace",
            Body::SetTlvMap { .. } => "SetTlvMap",
            Body::DumpTlvMap => "DumpTlvMap",
            Body::SetCookieInfo { .. } => "SetCookieInfo",
            Body::DumpCookies => "DumpCookies",
            Body::Ping => "Ping",
            Body::Goodbye => "Goodbye",
            Body::FlowsChanged(_) => "FlowsChanged",
            Body::Flows { .. } => "Flows",
            Body::Ports(_) => "Ports",
            Body::PortAdded { .. } => "PortAdded",
            Body::Tables(_) => "Tables",
            Body::TraceResult { .. } => "TraceResult",
            Body::TlvMap(_) => "TlvMap",
            Body::Cookies(_) => "Cookies",
            Body::PacketIn(_) => "PacketIn",
            Body::FlowRemoved(_) => "FlowRemoved",
            Body::SetNodes { .. } => "SetNodes",
            Body::DelNodes { .. } => "DelNodes",
            Body::DumpNodes => "DumpNodes",
            Body::SetUnderlay(_) => "SetUnderlay",
            Body::DumpTunnels => "DumpTunnels",
            Body::Nodes(_) => "Nodes",
            Body::Tunnels(_) => "Tunnels",
            Body::DumpStats => "DumpStats",
            Body::Stats(_) => "Stats",
            Body::TraceDetailed { .. } => "TraceDetailed",
            Body::TraceReport(_) => "TraceReport",
            Body::PortAddWith { .. } => "PortAddWith",
            Body::DumpPortOffloads => "DumpPortOffloads",
            Body::PortOffloads(_) => "PortOffloads",
            Body::DumpPortBackends => "DumpPortBackends",
            Body::PortBackends(_) => "PortBackends",
        }
    }

    /// Request, reply or event.
    pub fn kind(&self) -> BodyKind {
        match self.tag() {
            1..=3 | 27..=34 | 42 | 43 | 45 | 47 | 50 | 52 => BodyKind::Reply,
            35..=36 => BodyKind::Event,
            _ => BodyKind::Request,
        }
    }

    /// Checks the bounds that are not enforced by the frame length alone
    /// ([`MAX_VERSIONS_OFFERED`], [`MAX_NAME_LEN`]). Applied by both
    /// [`encode_frame`](super::encode_frame) and
    /// [`decode_message`](super::decode_message).
    pub fn check_limits(&self) -> Result<(), CtlError> {
        fn name(what: &str, s: &str) -> Result<(), CtlError> {
            if s.len() > MAX_NAME_LEN {
                return Err(CtlError::LimitExceeded {
                    what: what.into(),
                    limit: MAX_NAME_LEN as u64,
                });
            }
            Ok(())
        }
        match self {
            Body::Hello { versions, client } => {
                if versions.len() > MAX_VERSIONS_OFFERED {
                    return Err(CtlError::LimitExceeded {
                        what: "Hello.versions".into(),
                        limit: MAX_VERSIONS_OFFERED as u64,
                    });
                }
                name("Hello.client", client)
            }
            Body::HelloReply { server, .. } => name("HelloReply.server", server),
            Body::PortAdd { name: n, .. } => name("PortAdd.name", n),
            Body::PortAddWith { name: n, .. } => name("PortAddWith.name", n),
            Body::PortOffloads(ps) => ps
                .iter()
                .try_for_each(|p| name("PortOffloads.name", &p.name)),
            Body::PortBackends(ps) => ps.iter().try_for_each(|p| {
                name("PortBackends.name", &p.name)?;
                if p.backend.len() > MAX_BACKEND_LEN {
                    return Err(CtlError::LimitExceeded {
                        what: "PortBackends.backend".into(),
                        limit: MAX_BACKEND_LEN as u64,
                    });
                }
                Ok(())
            }),
            Body::SetNodes { nodes, .. } | Body::Nodes(nodes) => nodes
                .iter()
                .try_for_each(|node| name("node name", &node.name)),
            Body::DelNodes { names } => names.iter().try_for_each(|n| name("node name", n)),
            Body::SetUnderlay(Some(u)) => {
                name("underlay port", &u.port)?;
                name("underlay host_port", &u.host_port)
            }
            Body::PortDel {
                port: PortRef::Name(n),
            }
            | Body::PortMod {
                port: PortRef::Name(n),
                ..
            } => name("port name", n),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Body {
    /// The variant name and its main fields, one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        match self {
            Body::Hello { versions, client } => {
                write!(f, " versions={versions:?} client={client:?}")
            }
            Body::HelloReply { version, server } => {
                write!(f, " version={version} server={server:?}")
            }
            Body::Error(e) => write!(f, " {e}"),
            Body::AddFlows { flows } | Body::ReplaceFlows { flows } => {
                write!(f, " flows={}", flows.len())
            }
            Body::BundleOpen { bundle_id }
            | Body::BundleCommit { bundle_id }
            | Body::BundleDiscard { bundle_id } => write!(f, " bundle={bundle_id}"),
            Body::BundleAdd { bundle_id, changes } => {
                write!(f, " bundle={bundle_id} changes={}", changes.len())
            }
            Body::PortAdd { name, kind, .. } => write!(f, " name={name:?} kind={}", kind.name()),
            Body::PortAddWith {
                name,
                kind,
                options,
                ..
            } => write!(
                f,
                " name={name:?} kind={} offloads={}",
                kind.name(),
                options.offloads
            ),
            Body::PortOffloads(p) => write!(f, " ports={}", p.len()),
            Body::PortBackends(p) => write!(f, " ports={}", p.len()),
            Body::PortDel { port } | Body::PortMod { port, .. } => write!(f, " port={port}"),
            Body::PacketOut {
                in_port, packet, ..
            } => write!(f, " in_port={in_port} len={}", packet.len()),
            Body::Trace { in_port, .. } | Body::TraceDetailed { in_port, .. } => {
                write!(f, " in_port={in_port}")
            }
            Body::TraceReport(r) => write!(
                f,
                " dropped={} outputs={} rules={}",
                r.dropped,
                r.outputs.len(),
                r.rules.len()
            ),
            Body::FlowsChanged(c) => write!(
                f,
                " added={} modified={} removed={}",
                c.added, c.modified, c.removed
            ),
            Body::Flows { entries, more } => write!(f, " entries={} more={more}", entries.len()),
            Body::Ports(p) => write!(f, " ports={}", p.len()),
            Body::PortAdded { port } => write!(f, " port={port}"),
            Body::PacketIn(p) => write!(
                f,
                " reason={:?} table={} len={}",
                p.reason,
                p.table,
                p.packet.len()
            ),
            Body::FlowRemoved(r) => write!(f, " reason={:?} table={}", r.reason, r.spec.table),
            _ => Ok(()),
        }
    }
}

/// Selects flows for `DeleteFlows`, `DumpFlows` and bundle deletes
/// (OpenFlow's `ofp_flow_mod`/`ofp_flow_stats_request` selection).
///
/// A flow is selected when all hold:
/// * its table is `table` (or `table` is `None`: every table);
/// * **non-strict** (`priority == None`): the flow's match is at least as
///   specific as `match` (every packet the flow matches, `match` matches),
///   so [`Match::CATCHALL`] selects every flow; **strict**
///   (`priority == Some(p)`): the flow's match equals `match` and its
///   priority is `p`;
/// * `flow.cookie & cookie_mask == cookie & cookie_mask`;
/// * `out_port` is `None` or the flow has an `Output` to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFilter {
    /// Table, or every table.
    pub table: Option<TableId>,
    /// The match (see the selection rules above).
    pub r#match: Match,
    /// `Some`: strict selection at this priority.
    pub priority: Option<Priority>,
    /// Cookie value compared under `cookie_mask`.
    pub cookie: Cookie,
    /// Which cookie bits must equal (0: any cookie).
    pub cookie_mask: u64,
    /// Only flows that output to this port.
    pub out_port: Option<PortNo>,
}

impl Default for FlowFilter {
    /// Selects every flow.
    fn default() -> FlowFilter {
        FlowFilter {
            table: None,
            r#match: Match::CATCHALL,
            priority: None,
            cookie: Cookie(0),
            cookie_mask: 0,
            out_port: None,
        }
    }
}

/// A modify request (OpenFlow `MODIFY` / `MODIFY_STRICT`): sets the actions
/// of the selected flows to `spec.actions`, keeping their counters.
///
/// Selection uses `spec.table` ([`TableId::ALL`] for every table),
/// `spec.match`, `spec.cookie`/`spec.cookie_mask`, and `spec.priority`
/// when `strict` (the rules of [`FlowFilter`]). Timeouts in `spec` are
/// ignored. Selecting nothing is not an error (as OpenFlow 1.2+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowModify {
    /// Selection and new actions.
    pub spec: FlowSpec,
    /// Match exactly (match and priority equal) instead of by subsumption.
    pub strict: bool,
}

/// One change in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowChange {
    /// As `AddFlows` with one flow.
    Add(FlowSpec),
    /// As `ModifyFlows`.
    Modify(FlowModify),
    /// As `DeleteFlows`.
    Delete(FlowFilter),
}

/// What a `ReplaceFlows` or `BundleCommit` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChangeCounts {
    /// Flows added.
    pub added: u64,
    /// Flows whose actions or timeouts changed (counters kept).
    pub modified: u64,
    /// Flows removed.
    pub removed: u64,
    /// The pipeline generation that holds the result.
    pub generation: u64,
}

/// A flow in a `Flows` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEntryStats {
    /// The flow (`cookie_mask` is 0).
    pub spec: FlowSpec,
    /// Packets matched.
    pub n_packets: u64,
    /// Bytes matched.
    pub n_bytes: u64,
    /// Time since the flow was added, in milliseconds.
    pub duration_ms: u64,
    /// Time since it last matched a packet (or since it was added), in
    /// milliseconds.
    pub idle_age_ms: u64,
}

/// Names a port by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortRef {
    /// By interface name.
    Name(String),
    /// By OpenFlow port number.
    Number(PortNo),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Name(n) => write!(f, "{n:?}"),
            PortRef::Number(p) => write!(f, "{p}"),
        }
    }
}

/// What a port is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortKind {
    /// A TAP device the switch creates (or opens if it exists).
    Tap,
    /// An existing interface, read and written with `AF_PACKET`
    /// (e.g. the host side of a pod's veth, or the underlay NIC).
    AfPacket,
    /// The switch's internal port: a TAP device the host stack sees
    /// (OVS `internal`); the first one is [`PortNo::LOCAL`].
    Internal,
    /// A Geneve tunnel port (RFC 8926).
    Geneve(TunnelConfig),
    /// A VXLAN tunnel port (RFC 7348).
    Vxlan(TunnelConfig),
    /// An existing interface (a pod's veth end) read and written through
    /// an AF_XDP socket fed by an XDP program (OVS `afxdp`); falls back to
    /// `AF_PACKET` where AF_XDP cannot be set up. Appended in version 4
    /// (an older server answers a `PortAdd` with it as undecodable).
    AfXdp,
}

impl PortKind {
    /// Lower-case name as in `ovs-vsctl` (`tap`, `afpacket`, `internal`,
    /// `geneve`, `vxlan`, `afxdp`).
    pub fn name(&self) -> &'static str {
        match self {
            PortKind::Tap => "tap",
            PortKind::AfPacket => "afpacket",
            PortKind::Internal => "internal",
            PortKind::Geneve(_) => "geneve",
            PortKind::Vxlan(_) => "vxlan",
            PortKind::AfXdp => "afxdp",
        }
    }
}

/// Tunnel port options (OVS `options:` column). `None` means "from the
/// flow": the value comes from the packet's `tun_*` fields set by actions
/// (OVS `remote_ip=flow`, `key=flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TunnelConfig {
    /// Remote endpoint, or from `tun_dst`/`tun_ipv6_dst`.
    pub remote_ip: Option<IpAddr>,
    /// Local endpoint, or chosen by the route to the remote.
    pub local_ip: Option<IpAddr>,
    /// VNI (24 bits), or from `tun_id`.
    pub key: Option<u32>,
    /// UDP destination port, or the IANA default (6081 Geneve, 4789
    /// VXLAN).
    pub dst_port: Option<u16>,
}

/// Port configuration changes for `PortMod`; `None` leaves a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PortConfig {
    /// Administrative state (down: no rx, no tx).
    pub admin_up: Option<bool>,
    /// Exclude from `FLOOD` output.
    pub no_flood: Option<bool>,
}

/// Per-port options of `PortAddWith` (OVS `other_config`-like; new options
/// need a new protocol version, postcard has no optional fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortOptions {
    /// Exchange offload metadata with the kernel (`PACKET_VNET_HDR` on
    /// AF_PACKET, `IFF_VNET_HDR` on TAP/internal ports): partial checksums
    /// and TSO/GSO super-frames pass through the switch. Off: plain
    /// frames; the switch segments and completes checksums itself for
    /// this port (and the pod's veth needs its TX offloads off). Default
    /// on; no effect on tunnel ports (they have no device).
    pub offloads: bool,
}

impl Default for PortOptions {
    fn default() -> Self {
        PortOptions { offloads: true }
    }
}

/// A port in a `PortOffloads` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortOffloadInfo {
    /// OpenFlow port number.
    pub port: PortNo,
    /// Interface name.
    pub name: String,
    /// Offloads asked for ([`PortOptions::offloads`]; false also when the
    /// daemon runs with `WEFT_OFFLOADS=off`).
    pub requested: bool,
    /// Whether the kernel accepted the vnet header on the open device
    /// (`None`: no device, i.e. a tunnel port, or not open).
    pub vnet_hdr: Option<bool>,
}

/// Longest [`PortBackendInfo::backend`] text, in bytes.
pub const MAX_BACKEND_LEN: usize = 512;

/// A port in a `PortBackends` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBackendInfo {
    /// OpenFlow port number.
    pub port: PortNo,
    /// Interface name.
    pub name: String,
    /// What serves it, e.g. `afxdp (copy mode, native XDP)` or
    /// `afpacket (fallback: BPF_LINK_CREATE(xdp): ...)` (at most
    /// [`MAX_BACKEND_LEN`] bytes).
    pub backend: String,
}

/// A port in a `Ports` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// OpenFlow port number.
    pub port: PortNo,
    /// Interface name.
    pub name: String,
    /// Kind and options.
    pub kind: PortKind,
    /// MAC address, if the port has one.
    pub mac: Option<EthernetAddress>,
    /// MTU in bytes.
    pub mtu: u32,
    /// Configuration flags.
    pub admin_up: bool,
    /// Excluded from `FLOOD`.
    pub no_flood: bool,
    /// Carrier/operational state as the OS reports it.
    pub link_up: bool,
    /// Counters.
    pub stats: PortStats,
}

/// Port counters (summed over workers when read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Received packets dropped (no buffer, parse failure, ...).
    pub rx_dropped: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets dropped on send (queue full, ...).
    pub tx_dropped: u64,
    /// Send errors.
    pub tx_errors: u64,
}

/// A table in a `Tables` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TableStat {
    /// The table.
    pub table: TableId,
    /// Flows in it.
    pub active: u64,
    /// Packets looked up in it.
    pub lookups: u64,
    /// Lookups that matched a flow.
    pub matched: u64,
}

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceInput {
    /// An Ethernet frame (extracted as the data path would).
    Packet(Vec<u8>),
    /// A flow key directly (as `ovs-appctl ofproto/trace` with a flow;
    /// `in_port` is taken from the request).
    Key(Box<FlowKey>),
}

/// Reply to `TraceDetailed`: what the pipeline did with the packet, as
/// data (the same run as `Trace`'s text, which it also carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceReport {
    /// The rendered trace, exactly `TraceResult`'s text.
    pub text: String,
    /// The packet's flow key after extraction, in flow text.
    pub flow: String,
    /// No output and no packet-in.
    pub dropped: bool,
    /// Why it was dropped (switchd's drop-reason name), if a reason was
    /// recorded.
    pub drop_reason: Option<String>,
    /// The frames that would leave, in order, with their exact bytes
    /// (after every rewrite and encapsulation).
    pub outputs: Vec<TraceOutput>,
    /// Packet-ins the packet would cause.
    pub packet_ins: u32,
    /// Every table lookup, in the order the walk made them (depth-first;
    /// a resubmit's lookups follow the rule that resubmitted).
    pub rules: Vec<TraceRule>,
}

/// A frame a trace would send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOutput {
    /// The port it leaves on.
    pub port: PortNo,
    /// Its exact bytes.
    pub packet: Vec<u8>,
}

/// One table lookup of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRule {
    /// The table.
    pub table: TableId,
    /// Nesting depth (0: the lookup of table 0; a resubmit or goto adds 1).
    pub depth: u16,
    /// The rule found, or `None` on a miss.
    pub hit: Option<TraceRuleHit>,
}

/// The rule a [`TraceRule`] lookup found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRuleHit {
    /// Its priority.
    pub priority: Priority,
    /// Its cookie (names its source through the cookie table).
    pub cookie: Cookie,
    /// Its match, in flow text.
    pub r#match: String,
    /// Its actions, in flow text.
    pub actions: String,
}

/// One Geneve option to `tun_metadata` slot mapping (OVS `add-tlv-map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TlvMapping {
    /// Option class.
    pub class: u16,
    /// Option type.
    pub r#type: u8,
    /// Option data length in bytes (multiple of 4, at most 8 in Weft).
    pub len: u8,
    /// Slot, `0..TUN_METADATA_SLOTS`.
    pub slot: u8,
}

/// What produced a cookie (the controller's object and rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CookieInfo {
    /// The cookie.
    pub cookie: Cookie,
    /// Object kind (e.g. `NetworkPolicy`).
    pub kind: String,
    /// Object namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// Rule index within the object.
    pub rule: u32,
}

/// A packet-in event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketIn {
    /// Why it was sent.
    pub reason: ControllerReason,
    /// The table of the flow that sent it (or missed).
    pub table: TableId,
    /// That flow's cookie (0 on a miss).
    pub cookie: Cookie,
    /// The packet's flow key when it was sent: pipeline metadata
    /// (`in_port`, `metadata`, registers, tunnel fields) as the pipeline
    /// had set it, packet fields as extracted.
    pub key: FlowKey,
    /// The frame as modified so far, truncated to the action's `max_len`.
    pub packet: Vec<u8>,
    /// The frame's length before truncation.
    pub total_len: u32,
}

/// One node of the cluster: its name and underlay (tunnel endpoint)
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeEntry {
    /// Node name (Kubernetes node name).
    pub name: String,
    /// Its tunnel endpoint address.
    pub ip: IpAddr,
}

/// The underlay of a node (see the switchd `underlay` module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnderlayConfig {
    /// The `afpacket` port attached to the underlay network (a NIC or a
    /// veth); encapsulated frames leave through it.
    pub port: String,
    /// The port whose interface holds the node's underlay address (an
    /// `internal` port, or a `tap`, or an `afpacket` port on one end of a
    /// veth pair whose other end holds the address): every frame on `port` that is not tunnel
    /// traffic for this node goes to it untouched, and everything it sends
    /// goes out of `port`.
    pub host_port: String,
    /// The local tunnel endpoint; `None`: the first address of
    /// `host_port`'s interface (IPv4 first).
    pub local_ip: Option<IpAddr>,
}

/// Where a next-hop MAC address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NeighbourOrigin {
    /// The kernel's neighbour table (rtnetlink).
    Kernel,
    /// Learned from a received tunnel packet.
    Learned,
    /// Not resolved yet (resolution was asked of the kernel).
    Unresolved,
}

/// One entry of the next-hop table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NextHopInfo {
    /// The remote tunnel endpoint.
    pub remote: IpAddr,
    /// The gateway the route names (`None`: on-link).
    pub gateway: Option<IpAddr>,
    /// The next hop's MAC address, when known.
    pub mac: Option<EthernetAddress>,
    /// Where it came from.
    pub origin: NeighbourOrigin,
}

/// A tunnel port in a `Tunnels` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelPortInfo {
    /// OpenFlow number.
    pub port: PortNo,
    /// Name.
    pub name: String,
    /// `Geneve` or `Vxlan` with its options.
    pub kind: PortKind,
    /// Bytes added by encapsulation over an IPv4 underlay (outer Ethernet
    /// not counted: it does not use MTU).
    pub overhead: u32,
    /// Recommended pod MTU: underlay MTU minus `overhead`.
    pub pod_mtu: u32,
}

/// Reply to `DumpTunnels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// The configured underlay.
    pub underlay: Option<UnderlayConfig>,
    /// The local tunnel endpoint in use (configured or discovered).
    pub local_ip: Option<IpAddr>,
    /// The source MAC of encapsulated frames (the host port's address).
    pub local_mac: Option<EthernetAddress>,
    /// The underlay interface's MTU (0: unknown).
    pub underlay_mtu: u32,
    /// Tunnel ports.
    pub ports: Vec<TunnelPortInfo>,
    /// The next-hop table published to the workers.
    pub next_hops: Vec<NextHopInfo>,
}

/// One drop counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DropCount {
    /// The reason (snake_case, as the datapath names it).
    pub reason: String,
    /// Packets dropped for it.
    pub count: u64,
}

/// Reply to `DumpStats`: datapath counters summed over workers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DatapathStats {
    /// Packets processed by the pipeline.
    pub packets: u64,
    /// Copies sent to ports.
    pub outputs: u64,
    /// Packet-ins sent.
    pub packet_ins: u64,
    /// Drops by reason (every reason, zero counts included).
    pub drops: Vec<DropCount>,
}

/// Why a flow was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RemovedReason {
    /// Its idle timeout expired.
    IdleTimeout,
    /// Its hard timeout expired.
    HardTimeout,
    /// A delete request removed it.
    Delete,
}

/// A flow-removed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRemoved {
    /// The flow (actions may be empty).
    pub spec: FlowSpec,
    /// Why.
    pub reason: RemovedReason,
    /// Its age when removed, in milliseconds.
    pub duration_ms: u64,
    /// Packets matched.
    pub n_packets: u64,
    /// Bytes matched.
    pub n_bytes: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    use super::*;
    use crate::ctl::strategy;

    #[test]
    fn negotiate_picks_highest_common() {
        assert_eq!(negotiate(&[1]), Ok(1));
        assert_eq!(negotiate(&[5, 1, 2]), Ok(2));
        assert_eq!(negotiate(&[3, 1, 2]), Ok(3));
        assert_eq!(negotiate(&[5, 1, 2, 3]), Ok(3));
        assert_eq!(negotiate(&[4, 1, 2, 3]), Ok(4));
        assert_eq!(negotiate(&[1, 5]), Ok(1));
        assert_eq!(negotiate(&[0, 1]), Ok(1));
        assert_eq!(negotiate(&[PROTOCOL_VERSION, 9]), Ok(PROTOCOL_VERSION));
    }

    #[test]
    fn negotiate_mismatch() {
        let e = negotiate(&[5, 6]).unwrap_err();
        assert_eq!(
            e,
            CtlError::VersionMismatch {
                offered: vec![5, 6],
                supported: vec![1, 2, 3, 4]
            }
        );
        assert_eq!(
            e.to_string(),
            "version mismatch: peer offered [5, 6], this side supports [1, 2, 3, 4]"
        );
        assert_eq!(
            negotiate(&[]),
            Err(CtlError::VersionMismatch {
                offered: vec![],
                supported: vec![1, 2, 3, 4]
            })
        );
        assert_eq!(
            negotiate(&[0]).unwrap_err().to_string(),
            "version mismatch: peer offered [0], this side supports [1, 2, 3, 4]"
        );
    }

    #[test]
    fn afxdp_is_port_kind_variant_5() {
        // Appended: the older kinds keep their postcard indices.
        let enc = |k: &PortKind| postcard::to_allocvec(k).unwrap();
        assert_eq!(enc(&PortKind::AfPacket), vec![1]);
        assert_eq!(enc(&PortKind::AfXdp), vec![5]);
        assert_eq!(PortKind::AfXdp.name(), "afxdp");
    }

    #[test]
    fn negotiate_too_many_versions() {
        assert_eq!(negotiate(&[1; MAX_VERSIONS_OFFERED]), Ok(1));
        assert_eq!(
            negotiate(&[1; MAX_VERSIONS_OFFERED + 1]),
            Err(CtlError::LimitExceeded {
                what: "Hello.versions".into(),
                limit: 16
            })
        );
    }

    #[test]
    fn supported_range() {
        assert_eq!(supported_versions(), vec![1, 2, 3, 4]);
        const { assert!(MIN_PROTOCOL_VERSION <= PROTOCOL_VERSION) };
    }

    #[test]
    fn every_tag_is_generated_and_matches_postcard() {
        // Deterministic sample: the strategy covers every tag, and `tag()`,
        // `name()` and `kind()` agree with the encoding.
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let strat = strategy::body();
        let mut seen = BTreeSet::new();
        for _ in 0..3000 {
            let body = strat.new_tree(&mut runner).unwrap().current();
            let bytes = postcard::to_allocvec(&body).unwrap();
            let (tag, _) = postcard::take_from_bytes::<u32>(&bytes).unwrap();
            assert_eq!(tag, body.tag(), "{}", body.name());
            assert!(tag < Body::TAG_COUNT);
            seen.insert(tag);
        }
        assert_eq!(seen, (0..Body::TAG_COUNT).collect::<BTreeSet<_>>());
    }

    #[test]
    fn frozen_tags() {
        let hello = Body::Hello {
            versions: vec![],
            client: String::new(),
        };
        assert_eq!(postcard::to_allocvec(&hello).unwrap(), [0, 0, 0]);
        let reply = Body::HelloReply {
            version: 1,
            server: String::new(),
        };
        assert_eq!(postcard::to_allocvec(&reply).unwrap(), [1, 1, 0]);
        let err = Body::Error(CtlError::UnknownMessage { tag: 5 });
        assert_eq!(postcard::to_allocvec(&err).unwrap(), [2, 0, 5]);
        assert_eq!(postcard::to_allocvec(&Body::Ok).unwrap(), [3]);
    }

    #[test]
    fn kinds() {
        assert_eq!(Body::Ping.kind(), BodyKind::Request);
        assert_eq!(Body::Goodbye.kind(), BodyKind::Request);
        assert_eq!(Body::Ok.kind(), BodyKind::Reply);
        assert_eq!(Body::Cookies(vec![]).kind(), BodyKind::Reply);
        assert_eq!(
            Body::Flows {
                entries: vec![],
                more: false
            }
            .kind(),
            BodyKind::Reply
        );
        let hello = Body::Hello {
            versions: vec![1],
            client: "c".into(),
        };
        assert_eq!(hello.kind(), BodyKind::Request);
        let pi = PacketIn {
            reason: ControllerReason::Action,
            table: TableId(10),
            cookie: Cookie(1),
            key: FlowKey::default(),
            packet: vec![0; 60],
            total_len: 60,
        };
        assert_eq!(Body::PacketIn(pi.clone()).kind(), BodyKind::Event);
        assert_eq!(
            Message {
                id: 9,
                body: Body::PacketIn(pi)
            }
            .to_string(),
            "#9 PacketIn reason=Action table=10 len=60"
        );
    }

    /// The version-3 messages' exact encoding (postcard: varints, tags 46
    /// and 47), also the `ctl_decode` fuzz seeds `seed-40` and `seed-41`.
    #[test]
    fn trace_detailed_encoding_is_fixed() {
        use crate::ctl::{decode_message, encode_frame};
        let eth = [10, 88, 10, 10, 1, 170, 10, 88, 10, 10, 1, 2, 8, 0];
        let req = Message {
            id: 1,
            body: Body::TraceDetailed {
                in_port: PortNo(3),
                input: TraceInput::Packet(eth.to_vec()),
            },
        };
        let mut bytes = vec![1, 46, 3, 0, 14];
        bytes.extend_from_slice(&eth);
        assert_eq!(decode_message(&bytes).unwrap(), req);
        assert_eq!(encode_frame(&req).unwrap()[4..], bytes[..]);
        assert_eq!(req.body.kind(), BodyKind::Request);
        let rep = Message {
            id: 1,
            body: Body::TraceReport(TraceReport {
                text: "t".into(),
                flow: "ip".into(),
                dropped: false,
                drop_reason: Some("no_output".into()),
                outputs: vec![TraceOutput {
                    port: PortNo(65537),
                    packet: vec![0xde, 0xad, 0xbe, 0xef],
                }],
                packet_ins: 0,
                rules: vec![
                    TraceRule {
                        table: TableId(0),
                        depth: 0,
                        hit: Some(TraceRuleHit {
                            priority: Priority(100),
                            cookie: Cookie(5),
                            r#match: "ip".into(),
                            actions: "drop".into(),
                        }),
                    },
                    TraceRule {
                        table: TableId(45),
                        depth: 1,
                        hit: None,
                    },
                ],
            }),
        };
        let mut bytes = vec![1, 47, 1, b't', 2, b'i', b'p', 0, 1, 9];
        bytes.extend_from_slice(b"no_output");
        bytes.extend_from_slice(&[1, 0x81, 0x80, 0x04, 4, 0xde, 0xad, 0xbe, 0xef, 0]);
        bytes.extend_from_slice(&[2, 0, 0, 1, 100, 5, 2, b'i', b'p', 4]);
        bytes.extend_from_slice(b"drop");
        bytes.extend_from_slice(&[45, 1, 0]);
        assert_eq!(decode_message(&bytes).unwrap(), rep);
        assert_eq!(encode_frame(&rep).unwrap()[4..], bytes[..]);
        assert_eq!(rep.body.kind(), BodyKind::Reply);
        assert_eq!(
            rep.body.to_string(),
            "TraceReport dropped=false outputs=1 rules=2"
        );
    }

    #[test]
    fn display() {
        let m = Message {
            id: 3,
            body: Body::Hello {
                versions: vec![1, 2],
                client: "weftctl 0.1.0".into(),
            },
        };
        assert_eq!(
            m.to_string(),
            "#3 Hello versions=[1, 2] client=\"weftctl 0.1.0\""
        );
        let m = Message {
            id: 4,
            body: Body::PortDel {
                port: PortRef::Name("veth0".into()),
            },
        };
        assert_eq!(m.to_string(), "#4 PortDel port=\"veth0\"");
        let m = Message {
            id: 5,
            body: Body::Error(CtlError::NoSuchPort {
                port: PortRef::Number(PortNo::LOCAL),
            }),
        };
        assert_eq!(m.to_string(), "#5 Error no such port: LOCAL");
    }

    #[test]
    fn error_messages_name_object_and_field() {
        let e = CtlError::BundleFailed {
            bundle_id: BundleId(7),
            index: 3,
            error: Box::new(CtlError::BadFlow {
                index: 3,
                flow: "table=0,tcp,tp_dst=80,actions=drop".into(),
                field: "tp_dst".into(),
                reason: "requires ip_proto=6".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "bundle 7 change 3: flow 3 (table=0,tcp,tp_dst=80,actions=drop): field tp_dst: requires ip_proto=6"
        );
        assert_eq!(
            CtlError::NoSuchTable { table: TableId(99) }.to_string(),
            "no such table: 99"
        );
        assert_eq!(
            CtlError::PortFailed {
                name: "tap0".into(),
                reason: "EPERM".into()
            }
            .to_string(),
            "port tap0: EPERM"
        );
    }

    proptest! {
        #[test]
        fn errors_round_trip(e in strategy::ctl_error()) {
            let bytes = postcard::to_allocvec(&e).unwrap();
            prop_assert_eq!(postcard::from_bytes::<CtlError>(&bytes).unwrap(), e);
        }
    }
}
