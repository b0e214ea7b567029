//! Switch-wide settings that a [`Pipeline`](super::Pipeline) snapshot is
//! compiled with: VLAN parsing depth, fragment handling, table-miss
//! behaviour per table, port configuration, and MAC-learning limits.
//!
//! Everything here is plain data, cloned into each snapshot; changing a
//! setting means compiling and publishing a new snapshot.

use std::collections::BTreeMap;

use protocol::flow::{PortNo, TableId};
use serde::{Deserialize, Serialize};

/// How IP fragments are handled (OVS `ovs-ofctl set-frags`, OpenFlow
/// `OFPC_FRAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum FragMode {
    /// Fragments go through the tables like other packets, but their L4
    /// ports (`tp_src`, `tp_dst`) read as 0, first fragments included
    /// (OVS `normal`, the default).
    #[default]
    Normal,
    /// Every fragment is dropped before the first lookup (OVS `drop`),
    /// counted as [`DropReason::Fragment`](super::DropReason::Fragment).
    Drop,
    /// Fragments are matched as extracted: a first fragment keeps its L4
    /// ports, later fragments have none (OVS `nx-match`).
    NxMatch,
}

impl FragMode {
    /// Parses `normal`, `drop` or `nx-match` (as `ovs-ofctl set-frags`).
    pub fn from_name(s: &str) -> Option<FragMode> {
        match s {
            "normal" => Some(FragMode::Normal),
            "drop" => Some(FragMode::Drop),
            "nx-match" | "nx_match" => Some(FragMode::NxMatch),
            _ => None,
        }
    }
}

/// What a table does with a packet no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum MissBehavior {
    /// Drop (OpenFlow 1.3 default; no packet-in).
    #[default]
    Drop,
    /// Send a packet-in with reason `no_match` to the controller (unless the
    /// input port is `no-packet-in`), then end the chain.
    Controller,
    /// Continue with the next table (`table + 1`); a miss in table 254 drops.
    Continue,
}

impl MissBehavior {
    /// Parses `drop`, `controller` or `continue`.
    pub fn from_name(s: &str) -> Option<MissBehavior> {
        match s {
            "drop" => Some(MissBehavior::Drop),
            "controller" => Some(MissBehavior::Controller),
            "continue" => Some(MissBehavior::Continue),
            _ => None,
        }
    }

    /// The name [`from_name`](Self::from_name) reads.
    pub fn as_str(self) -> &'static str {
        match self {
            MissBehavior::Drop => "drop",
            MissBehavior::Controller => "controller",
            MissBehavior::Continue => "continue",
        }
    }
}

/// OpenFlow port configuration bits (`OFPPC_*`) that the pipeline honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PortConfig {
    /// Not included in `FLOOD` (nor in `NORMAL`'s flooding).
    pub no_flood: bool,
    /// Every output to this port is dropped.
    pub no_forward: bool,
    /// Packets received on this port are dropped before the first lookup
    /// ([`DropReason::NoReceive`](super::DropReason::NoReceive)).
    pub no_receive: bool,
    /// Table-miss packet-ins for packets received on this port are not sent
    /// (explicit `controller` actions still are, as in OVS).
    pub no_packet_in: bool,
}

impl PortConfig {
    /// Applies one `ovs-ofctl mod-port` style word: `no-flood`, `flood`,
    /// `no-forward`, `forward`, `no-receive`, `receive`, `no-packet-in`,
    /// `packet-in`. `false` if the word is unknown.
    pub fn apply(&mut self, word: &str) -> bool {
        match word {
            "no-flood" => self.no_flood = true,
            "flood" => self.no_flood = false,
            "no-forward" => self.no_forward = true,
            "forward" => self.no_forward = false,
            "no-receive" => self.no_receive = true,
            "receive" => self.no_receive = false,
            "no-packet-in" => self.no_packet_in = true,
            "packet-in" => self.no_packet_in = false,
            _ => return false,
        }
        true
    }
}

/// Switch-wide settings of a pipeline snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchConfig {
    /// VLAN tags parsed into the key (OVS `other_config:vlan-limit`, default
    /// 1; 0 means as many as the key holds, 2).
    pub vlan_limit: u8,
    /// Fragment handling.
    pub frag_mode: FragMode,
    /// The ports that exist, with their configuration. `FLOOD`, `ALL` and
    /// `NORMAL` flooding go to these ports (ascending port number; include
    /// `PortNo::LOCAL` to flood to the local port). When the map is not
    /// empty, [`compile`](super::compile) rejects outputs (and resubmit
    /// ports) naming an ordinary port that is not in it.
    pub ports: BTreeMap<PortNo, PortConfig>,
    /// Table-miss behaviour by table; tables not listed drop.
    pub table_miss: BTreeMap<TableId, MissBehavior>,
    /// MAC-learning entries per worker for `NORMAL` (rounded up to a power
    /// of two, at least 16).
    pub mac_table_size: usize,
    /// Idle time after which a learned MAC is forgotten, in milliseconds
    /// (OVS default 300 s).
    pub mac_aging_ms: u64,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        SwitchConfig {
            vlan_limit: 1,
            frag_mode: FragMode::Normal,
            ports: BTreeMap::new(),
            table_miss: BTreeMap::new(),
            mac_table_size: 2048,
            mac_aging_ms: 300_000,
        }
    }
}

impl SwitchConfig {
    /// A configuration with ports `ports` (default port configuration).
    pub fn with_ports(ports: impl IntoIterator<Item = PortNo>) -> SwitchConfig {
        SwitchConfig {
            ports: ports
                .into_iter()
                .map(|p| (p, PortConfig::default()))
                .collect(),
            ..SwitchConfig::default()
        }
    }

    /// The miss behaviour of `table`.
    pub fn miss(&self, table: TableId) -> MissBehavior {
        self.table_miss.get(&table).copied().unwrap_or_default()
    }
}
