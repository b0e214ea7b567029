//! OpenFlow actions as Weft implements them (typed; text form in
//! [`crate::text`]). Semantics follow OVS's `ovs-actions(7)`; the switch
//! implements them, this module only names them.

use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::field::Field;
use super::{PortNo, TableId};
use crate::wire::EthernetAddress;

/// A contiguous run of bits of a field: `NXM_NX_REG0[0..15]` is
/// `SubField { field: Reg(0), ofs: 0, n_bits: 16 }`; `reg0[]` covers the
/// whole field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubField {
    /// The field.
    pub field: Field,
    /// Offset of the least significant bit.
    pub ofs: u8,
    /// Number of bits (1..=width).
    pub n_bits: u8,
}

impl SubField {
    /// The whole of `field`.
    pub fn whole(field: Field) -> SubField {
        SubField {
            field,
            ofs: 0,
            n_bits: field.width(),
        }
    }

    /// True if the bit range lies inside the field.
    pub fn is_valid(&self) -> bool {
        self.field.is_valid()
            && self.n_bits >= 1
            && u16::from(self.ofs) + u16::from(self.n_bits) <= u16::from(self.field.width())
    }
}

/// Why a packet is sent to the controller (OpenFlow `ofp_packet_in_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ControllerReason {
    /// No matching flow (table-miss).
    NoMatch,
    /// An explicit `controller` action.
    Action,
    /// The packet has an invalid TTL (`dec_ttl` at TTL <= 1).
    InvalidTtl,
}

/// One action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// `output:N`, or a reserved port: `in_port` (`PortNo::IN_PORT`),
    /// `LOCAL`, `ALL`, `FLOOD`, `NORMAL`.
    Output(PortNo),
    /// `controller(reason=..,max_len=..)`; `controller` alone is
    /// `max_len=65535, reason=action`.
    Controller {
        /// Bytes of the packet to send (65535 = all).
        max_len: u16,
        /// Reason reported with the packet-in.
        reason: ControllerReason,
    },
    /// `resubmit([port],[table])`: look the packet up again, with `in_port`
    /// replaced if a port is given, in the given table (default: current).
    Resubmit {
        /// Replacement in_port, if any.
        port: Option<PortNo>,
        /// Table, if any (else the current one).
        table: Option<TableId>,
    },
    /// `goto_table:N` (must be a later table; the last instruction).
    GotoTable(TableId),
    /// `write_metadata:value[/mask]`.
    WriteMetadata {
        /// Value.
        value: u64,
        /// Mask (all ones if not given).
        mask: u64,
    },
    /// `set_field:value[/mask]->field`.
    SetField {
        /// Field written.
        field: Field,
        /// Value (right-aligned in the field).
        value: u128,
        /// Mask of the bits written (all ones if not given).
        mask: u128,
    },
    /// `load:value->dst`.
    Load {
        /// Destination bits.
        dst: SubField,
        /// Value (right-aligned in `dst`).
        value: u128,
    },
    /// `move:src->dst` (same bit count).
    Move {
        /// Source bits.
        src: SubField,
        /// Destination bits.
        dst: SubField,
    },
    /// `mod_dl_src:mac`.
    ModDlSrc(EthernetAddress),
    /// `mod_dl_dst:mac`.
    ModDlDst(EthernetAddress),
    /// `mod_nw_src:ip`.
    ModNwSrc(Ipv4Addr),
    /// `mod_nw_dst:ip`.
    ModNwDst(Ipv4Addr),
    /// `mod_nw_tos:tos` (DSCP bits of the TOS byte; the ECN bits are kept).
    ModNwTos(u8),
    /// `mod_tp_src:port`.
    ModTpSrc(u16),
    /// `mod_tp_dst:port`.
    ModTpDst(u16),
    /// `dec_ttl`: at TTL <= 1 the packet goes to the controller with reason
    /// `InvalidTtl` instead (OVS behaviour).
    DecTtl,
    /// `push_vlan:tpid`.
    PushVlan(u16),
    /// `pop_vlan`.
    PopVlan,
    /// `strip_vlan` (pops the outer tag; OpenFlow 1.0 name).
    StripVlan,
    /// `mod_vlan_vid:vid` (pushes a tag if none, as OVS does).
    ModVlanVid(u16),
    /// `mod_vlan_pcp:pcp` (pushes a tag if none, as OVS does).
    ModVlanPcp(u8),
    /// `clear_actions`: empties the action set.
    ClearActions,
    /// `write_actions(...)`: adds to the action set executed at pipeline end.
    WriteActions(Vec<Action>),
    /// `conjunction(id,k/n)`: clause `k` (1-based) of `n` of conjunctive
    /// match `id`.
    Conjunction {
        /// Conjunction id (becomes `conj_id` when all clauses match).
        id: u32,
        /// Clause number, 1..=n.
        clause: u8,
        /// Number of clauses, 2..=64.
        n_clauses: u8,
    },
}
