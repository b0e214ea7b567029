//! The typed vocabulary of flow tables, shared by switchd, the controller
//! and the tools: [`FlowKey`] (what a packet looks like to a flow table),
//! [`FlowMask`], [`Match`], [`Action`] and [`FlowSpec`] (a rule as
//! `ovs-ofctl add-flow` would describe it), plus the identifier newtypes.
//!
//! Strings exist only at the edges ([`crate::text`]); inside, everything is
//! these types.

use core::fmt;

use serde::{Deserialize, Serialize};

pub mod action;
pub mod extract;
pub mod field;
pub mod key;

pub use action::{Action, ControllerReason, SubField};
pub use extract::{
    ExtractConfig, ExtractError, Extracted, FAST_WORDS, Layer, Layers, extract, extract_shaped,
};
pub use field::{Field, FieldFormat, FieldInfo, Prereq};
pub use key::{FLOW_WORDS, FlowKey, FlowMask, NUM_REGS, Slot, TUN_METADATA_SLOTS};

/// An OpenFlow port number (32-bit, OpenFlow 1.1+ numbering). Physical and
/// logical ports are `1..=PortNo::MAX`; the rest are reserved values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortNo(pub u32);

impl PortNo {
    /// Highest ordinary port number.
    pub const MAX: PortNo = PortNo(0xffff_ff00);
    /// The input port (`in_port` action).
    pub const IN_PORT: PortNo = PortNo(0xffff_fff8);
    /// Submit to the flow table (packet-out only).
    pub const TABLE: PortNo = PortNo(0xffff_fff9);
    /// The MAC-learning switch.
    pub const NORMAL: PortNo = PortNo(0xffff_fffa);
    /// All ports except the input port and `no-flood` ones.
    pub const FLOOD: PortNo = PortNo(0xffff_fffb);
    /// All ports except the input port.
    pub const ALL: PortNo = PortNo(0xffff_fffc);
    /// The controller.
    pub const CONTROLLER: PortNo = PortNo(0xffff_fffd);
    /// The switch's local port.
    pub const LOCAL: PortNo = PortNo(0xffff_fffe);
    /// No port (`OFPP_ANY`).
    pub const NONE: PortNo = PortNo(0xffff_ffff);

    /// The reserved name of this port, if it has one (`ovs-ofctl` spelling).
    pub fn reserved_name(self) -> Option<&'static str> {
        Some(match self {
            PortNo::IN_PORT => "IN_PORT",
            PortNo::TABLE => "TABLE",
            PortNo::NORMAL => "NORMAL",
            PortNo::FLOOD => "FLOOD",
            PortNo::ALL => "ALL",
            PortNo::CONTROLLER => "CONTROLLER",
            PortNo::LOCAL => "LOCAL",
            PortNo::NONE => "ANY",
            _ => return None,
        })
    }

    /// Parses a reserved port name (case-insensitive, as `ovs-ofctl`).
    pub fn from_reserved_name(s: &str) -> Option<PortNo> {
        Some(match s.to_ascii_uppercase().as_str() {
            "IN_PORT" => PortNo::IN_PORT,
            "TABLE" => PortNo::TABLE,
            "NORMAL" => PortNo::NORMAL,
            "FLOOD" => PortNo::FLOOD,
            "ALL" => PortNo::ALL,
            "CONTROLLER" => PortNo::CONTROLLER,
            "LOCAL" => PortNo::LOCAL,
            "ANY" | "NONE" => PortNo::NONE,
            _ => return None,
        })
    }
}

impl fmt::Display for PortNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reserved_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A flow table number (0..=254; 255 is "all tables" in requests).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct TableId(pub u8);

impl TableId {
    /// The highest usable table.
    pub const MAX: TableId = TableId(254);
    /// "All tables" in requests.
    pub const ALL: TableId = TableId(255);
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A rule priority; higher wins. Default 32768 as in OpenFlow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Priority(pub u16);

impl Priority {
    /// OpenFlow's default priority.
    pub const DEFAULT: Priority = Priority(32768);
}

impl Default for Priority {
    fn default() -> Self {
        Priority::DEFAULT
    }
}

/// An opaque 64-bit rule cookie (the controller maps it back to the object
/// and rule that produced the flow).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Cookie(pub u64);

/// A match: a key and a mask, with the invariant `key & mask == key`
/// (bits outside the mask are zero), so equal matches compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Match {
    /// The values matched (zero outside the mask).
    pub key: FlowKey,
    /// The bits matched.
    pub mask: FlowMask,
}

impl Match {
    /// The match that matches every packet.
    pub const CATCHALL: Match = Match {
        key: FlowKey([0; FLOW_WORDS]),
        mask: FlowMask::CATCHALL,
    };

    /// Matches `field` exactly against `value`.
    pub fn set_exact(&mut self, field: Field, value: u128) {
        let s = field.info().slot;
        s.set(&mut self.key.0, value);
        self.mask.set_exact(s);
    }

    /// Matches `field` against `value` under `mask` (value bits outside the
    /// mask are dropped to keep the invariant).
    pub fn set_masked(&mut self, field: Field, value: u128, mask: u128) {
        let s = field.info().slot;
        s.set(&mut self.key.0, value & mask);
        s.set(&mut self.mask.0.0, mask);
    }

    /// The value and mask of `field` in this match.
    pub fn get(&self, field: Field) -> (u128, u128) {
        let s = field.info().slot;
        (s.get(&self.key.0), s.get(&self.mask.0.0))
    }

    /// True if a packet with key `pkt` matches.
    #[inline]
    pub fn matches(&self, pkt: &FlowKey) -> bool {
        pkt.matches_masked(&self.key, &self.mask)
    }

    /// Restores the invariant `key & mask == key`.
    pub fn normalize(&mut self) {
        self.key = self.key.masked(&self.mask);
    }
}

/// A flow rule as `ovs-ofctl add-flow` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FlowSpec {
    /// Table (default 0).
    pub table: TableId,
    /// Priority (default 32768).
    pub priority: Priority,
    /// Cookie.
    pub cookie: Cookie,
    /// Cookie mask (only meaningful in modify/delete requests; 0 in adds).
    pub cookie_mask: u64,
    /// Idle timeout in seconds (0 = none).
    pub idle_timeout: u16,
    /// Hard timeout in seconds (0 = none).
    pub hard_timeout: u16,
    /// What it matches.
    pub r#match: Match,
    /// What it does; empty means drop.
    pub actions: Vec<Action>,
}
