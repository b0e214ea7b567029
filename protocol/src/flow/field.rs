//! The field registry: every matchable and settable field by name, with its
//! place in the [`FlowKey`](super::FlowKey), its text format and its
//! prerequisites (OVS `meta-flow`).
//!
//! The names are those of `ovs-ofctl(8)` and `ovs-fields(7)`; NXM/OXM names
//! (`NXM_NX_REG0`, `OXM_OF_IPV4_SRC`, ...) are accepted where OVS accepts
//! them (in `load`, `move` and `set_field`).

use serde::{Deserialize, Serialize};

use super::key::{FlowKey, NUM_REGS, Slot, TUN_METADATA_SLOTS, slots};

/// A named field of the flow key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Field {
    /// `in_port`.
    InPort,
    /// `conj_id`.
    ConjId,
    /// `metadata`.
    Metadata,
    /// `reg0`..`reg15`.
    Reg(u8),
    /// `tun_id` (`tunnel_id`).
    TunId,
    /// `tun_src`.
    TunSrc,
    /// `tun_dst`.
    TunDst,
    /// `tun_ipv6_src`.
    TunIpv6Src,
    /// `tun_ipv6_dst`.
    TunIpv6Dst,
    /// `tun_flags`.
    TunFlags,
    /// `tun_metadata0`..`tun_metadata7`.
    TunMetadata(u8),
    /// `dl_src` (`eth_src`).
    DlSrc,
    /// `dl_dst` (`eth_dst`).
    DlDst,
    /// `dl_type` (`eth_type`).
    DlType,
    /// `vlan_tci`: the whole outer TCI including the present bit.
    VlanTci,
    /// `dl_vlan`: the outer VID (12 bits).
    DlVlan,
    /// `vlan_vid`: OXM form, VID plus present bit (13 bits).
    VlanVid,
    /// `dl_vlan_pcp` / `vlan_pcp`.
    VlanPcp,
    /// `nw_src` (`ip_src`).
    NwSrc,
    /// `nw_dst` (`ip_dst`).
    NwDst,
    /// `ipv6_src`.
    Ipv6Src,
    /// `ipv6_dst`.
    Ipv6Dst,
    /// `ipv6_label`.
    Ipv6Label,
    /// `nw_proto` (`ip_proto`).
    NwProto,
    /// `nw_tos`: the TOS byte with the ECN bits ignored.
    NwTos,
    /// `ip_dscp`: DSCP (6 bits).
    IpDscp,
    /// `nw_ecn` (`ip_ecn`).
    NwEcn,
    /// `nw_ttl`.
    NwTtl,
    /// `nw_frag` (`ip_frag`).
    NwFrag,
    /// `tp_src` (and `tcp_src`/`udp_src`/`sctp_src`).
    TpSrc,
    /// `tp_dst` (and `tcp_dst`/`udp_dst`/`sctp_dst`).
    TpDst,
    /// `tcp_flags`.
    TcpFlags,
    /// `icmp_type` / `icmpv6_type`.
    IcmpType,
    /// `icmp_code` / `icmpv6_code`.
    IcmpCode,
    /// `arp_op`.
    ArpOp,
    /// `arp_spa`.
    ArpSpa,
    /// `arp_tpa`.
    ArpTpa,
    /// `arp_sha`.
    ArpSha,
    /// `arp_tha`.
    ArpTha,
    /// `nd_target`.
    NdTarget,
    /// `nd_sll`.
    NdSll,
    /// `nd_tll`.
    NdTll,
}

/// How a field's values are written in flow text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldFormat {
    /// Decimal integer (hex `0x..` accepted on input).
    Decimal,
    /// Hexadecimal integer, printed `0x..`.
    Hex,
    /// A port number or a reserved port name (`LOCAL`, ...).
    Port,
    /// `xx:xx:xx:xx:xx:xx`.
    Ethernet,
    /// Dotted quad, masks as prefix length or dotted quad.
    Ipv4,
    /// IPv6 text form, masks as prefix length or address.
    Ipv6,
    /// `no`, `yes`, `first`, `later`, `not_later`.
    Frag,
    /// `+syn-ack` style flags or value/mask.
    TcpFlags,
    /// `+oam` style tunnel flags.
    TunFlags,
}

/// What a match must already pin down before a field may be used
/// (OVS "prerequisites").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prereq {
    /// Always usable.
    None,
    /// `dl_type=0x0800`.
    Ipv4,
    /// `dl_type=0x86dd`.
    Ipv6,
    /// IPv4 or IPv6.
    IpAny,
    /// `dl_type=0x0806`.
    Arp,
    /// IPv4 or IPv6 with `nw_proto` TCP, UDP or SCTP.
    L4,
    /// IPv4 or IPv6 with `nw_proto=6`.
    Tcp,
    /// IPv4 with `nw_proto=1`, or IPv6 with `nw_proto=58`.
    Icmp,
    /// IPv6 ICMPv6 type 135 or 136.
    Nd,
    /// IPv6 ICMPv6 type 135.
    NdSolicit,
    /// IPv6 ICMPv6 type 136.
    NdAdvert,
    /// A VLAN tag present (`vlan_tci` with the CFI bit matched and set).
    Vlan,
}

/// Static facts about a [`Field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldInfo {
    /// The `ovs-ofctl` name.
    pub name: &'static str,
    /// Where its bits are in the key.
    pub slot: Slot,
    /// Text format.
    pub format: FieldFormat,
    /// What the match must pin first.
    pub prereq: Prereq,
    /// Whether `name=value/mask` is allowed.
    pub maskable: bool,
    /// Whether `set_field`/`load`/`move` may write it.
    pub writable: bool,
}

const fn info(
    name: &'static str,
    slot: Slot,
    format: FieldFormat,
    prereq: Prereq,
    maskable: bool,
    writable: bool,
) -> FieldInfo {
    FieldInfo {
        name,
        slot,
        format,
        prereq,
        maskable,
        writable,
    }
}

const fn sub(slot: Slot, shift: u8, width: u8) -> Slot {
    Slot {
        word: slot.word,
        shift: slot.shift + shift,
        width,
    }
}

const REG_NAMES: [&str; NUM_REGS] = [
    "reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7", "reg8", "reg9", "reg10",
    "reg11", "reg12", "reg13", "reg14", "reg15",
];
const TUN_MD_NAMES: [&str; TUN_METADATA_SLOTS] = [
    "tun_metadata0",
    "tun_metadata1",
    "tun_metadata2",
    "tun_metadata3",
    "tun_metadata4",
    "tun_metadata5",
    "tun_metadata6",
    "tun_metadata7",
];

impl Field {
    /// Every field, in the order `ovs-ofctl` prints matches.
    pub fn all() -> impl Iterator<Item = Field> {
        use Field::*;
        let head = [ConjId];
        let regs = (0..NUM_REGS as u8).map(Reg);
        let tun = [TunId, TunSrc, TunDst, TunIpv6Src, TunIpv6Dst, TunFlags];
        let md = (0..TUN_METADATA_SLOTS as u8).map(TunMetadata);
        let rest = [
            Metadata, InPort, VlanTci, DlVlan, VlanVid, VlanPcp, DlSrc, DlDst, DlType, Ipv6Src,
            Ipv6Dst, Ipv6Label, ArpSpa, ArpTpa, NwSrc, NwDst, ArpOp, NwProto, ArpSha, ArpTha,
            NwTos, IpDscp, NwEcn, NwTtl, NwFrag, IcmpType, IcmpCode, NdTarget, NdSll, NdTll, TpSrc,
            TpDst, TcpFlags,
        ];
        head.into_iter()
            .chain(regs)
            .chain(tun)
            .chain(md)
            .chain(rest)
    }

    /// Static facts about this field.
    ///
    /// A `Reg(i)` or `TunMetadata(i)` with `i` out of range reports the last
    /// valid one; [`Field::is_valid`] tells them apart.
    pub fn info(self) -> FieldInfo {
        use FieldFormat as F;
        use Prereq as P;
        match self {
            Field::InPort => info("in_port", slots::in_port, F::Port, P::None, false, true),
            Field::ConjId => info("conj_id", slots::conj_id, F::Decimal, P::None, false, false),
            Field::Metadata => info("metadata", slots::metadata, F::Hex, P::None, true, true),
            Field::Reg(i) => {
                let i = usize::from(i).min(NUM_REGS - 1);
                info(
                    REG_NAMES[i],
                    FlowKey::reg_slot(i),
                    F::Hex,
                    P::None,
                    true,
                    true,
                )
            }
            Field::TunId => info("tun_id", slots::tun_id, F::Hex, P::None, true, true),
            Field::TunSrc => info("tun_src", slots::tun_src, F::Ipv4, P::None, true, true),
            Field::TunDst => info("tun_dst", slots::tun_dst, F::Ipv4, P::None, true, true),
            Field::TunIpv6Src => info(
                "tun_ipv6_src",
                slots::tun_ipv6_src,
                F::Ipv6,
                P::None,
                true,
                true,
            ),
            Field::TunIpv6Dst => info(
                "tun_ipv6_dst",
                slots::tun_ipv6_dst,
                F::Ipv6,
                P::None,
                true,
                true,
            ),
            Field::TunFlags => info(
                "tun_flags",
                slots::tun_flags,
                F::TunFlags,
                P::None,
                true,
                true,
            ),
            Field::TunMetadata(i) => {
                let i = usize::from(i).min(TUN_METADATA_SLOTS - 1);
                info(
                    TUN_MD_NAMES[i],
                    FlowKey::tun_metadata_slot(i),
                    F::Hex,
                    P::None,
                    true,
                    true,
                )
            }
            Field::DlSrc => info("dl_src", slots::dl_src, F::Ethernet, P::None, true, true),
            Field::DlDst => info("dl_dst", slots::dl_dst, F::Ethernet, P::None, true, true),
            Field::DlType => info("dl_type", slots::dl_type, F::Hex, P::None, false, false),
            Field::VlanTci => info("vlan_tci", slots::vlan0_tci, F::Hex, P::None, true, true),
            Field::DlVlan => info(
                "dl_vlan",
                sub(slots::vlan0_tci, 0, 12),
                F::Decimal,
                P::None,
                false,
                true,
            ),
            Field::VlanVid => info(
                "vlan_vid",
                sub(slots::vlan0_tci, 0, 13),
                F::Hex,
                P::None,
                true,
                true,
            ),
            Field::VlanPcp => info(
                "dl_vlan_pcp",
                sub(slots::vlan0_tci, 13, 3),
                F::Decimal,
                P::Vlan,
                false,
                true,
            ),
            Field::NwSrc => info("nw_src", slots::nw_src, F::Ipv4, P::Ipv4, true, true),
            Field::NwDst => info("nw_dst", slots::nw_dst, F::Ipv4, P::Ipv4, true, true),
            Field::Ipv6Src => info("ipv6_src", slots::ipv6_src, F::Ipv6, P::Ipv6, true, true),
            Field::Ipv6Dst => info("ipv6_dst", slots::ipv6_dst, F::Ipv6, P::Ipv6, true, true),
            Field::Ipv6Label => info(
                "ipv6_label",
                sub(slots::ipv6_label, 0, 20),
                F::Hex,
                P::Ipv6,
                true,
                true,
            ),
            Field::NwProto => info(
                "nw_proto",
                slots::nw_proto,
                F::Decimal,
                P::IpAny,
                false,
                false,
            ),
            Field::NwTos => info("nw_tos", slots::nw_tos, F::Decimal, P::IpAny, false, true),
            Field::IpDscp => info(
                "ip_dscp",
                sub(slots::nw_tos, 2, 6),
                F::Decimal,
                P::IpAny,
                false,
                true,
            ),
            Field::NwEcn => info(
                "nw_ecn",
                sub(slots::nw_tos, 0, 2),
                F::Decimal,
                P::IpAny,
                false,
                true,
            ),
            Field::NwTtl => info("nw_ttl", slots::nw_ttl, F::Decimal, P::IpAny, false, true),
            Field::NwFrag => info(
                "nw_frag",
                sub(slots::nw_frag, 0, 2),
                F::Frag,
                P::IpAny,
                true,
                false,
            ),
            Field::TpSrc => info("tp_src", slots::tp_src, F::Decimal, P::L4, true, true),
            Field::TpDst => info("tp_dst", slots::tp_dst, F::Decimal, P::L4, true, true),
            Field::TcpFlags => info(
                "tcp_flags",
                sub(slots::tcp_flags, 0, 12),
                F::TcpFlags,
                P::Tcp,
                true,
                false,
            ),
            Field::IcmpType => info(
                "icmp_type",
                sub(slots::tp_src, 0, 8),
                F::Decimal,
                P::Icmp,
                false,
                true,
            ),
            Field::IcmpCode => info(
                "icmp_code",
                sub(slots::tp_dst, 0, 8),
                F::Decimal,
                P::Icmp,
                false,
                true,
            ),
            Field::ArpOp => info("arp_op", slots::nw_proto, F::Decimal, P::Arp, false, true),
            Field::ArpSpa => info("arp_spa", slots::nw_src, F::Ipv4, P::Arp, true, true),
            Field::ArpTpa => info("arp_tpa", slots::nw_dst, F::Ipv4, P::Arp, true, true),
            Field::ArpSha => info("arp_sha", slots::arp_sha, F::Ethernet, P::Arp, true, true),
            Field::ArpTha => info("arp_tha", slots::arp_tha, F::Ethernet, P::Arp, true, true),
            Field::NdTarget => info("nd_target", slots::nd_target, F::Ipv6, P::Nd, true, true),
            Field::NdSll => info(
                "nd_sll",
                slots::arp_sha,
                F::Ethernet,
                P::NdSolicit,
                true,
                true,
            ),
            Field::NdTll => info(
                "nd_tll",
                slots::arp_tha,
                F::Ethernet,
                P::NdAdvert,
                true,
                true,
            ),
        }
    }

    /// False for a `Reg(i)` or `TunMetadata(i)` whose index is out of range.
    pub fn is_valid(self) -> bool {
        match self {
            Field::Reg(i) => usize::from(i) < NUM_REGS,
            Field::TunMetadata(i) => usize::from(i) < TUN_METADATA_SLOTS,
            _ => true,
        }
    }

    /// The `ovs-ofctl` name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Width in bits.
    pub fn width(self) -> u8 {
        self.info().slot.width
    }

    /// Looks a field up by any name OVS accepts for it: the `ovs-ofctl`
    /// name, its aliases (`eth_src`, `ip_src`, `tcp_dst`, `icmpv6_type`,
    /// ...), and NXM/OXM names (`NXM_NX_REG0`, `NXM_OF_ETH_SRC`,
    /// `OXM_OF_IPV4_DST`, ...), case-sensitively as OVS does.
    pub fn from_name(name: &str) -> Option<Field> {
        use Field::*;
        if let Some(n) = name
            .strip_prefix("reg")
            .or_else(|| name.strip_prefix("NXM_NX_REG"))
        {
            return parse_index(n, NUM_REGS).map(Reg);
        }
        if let Some(n) = name
            .strip_prefix("tun_metadata")
            .or_else(|| name.strip_prefix("NXM_NX_TUN_METADATA"))
        {
            return parse_index(n, TUN_METADATA_SLOTS).map(TunMetadata);
        }
        Some(match name {
            "in_port" | "NXM_OF_IN_PORT" | "OXM_OF_IN_PORT" => InPort,
            "conj_id" => ConjId,
            "metadata" | "OXM_OF_METADATA" => Metadata,
            "tun_id" | "tunnel_id" | "NXM_NX_TUN_ID" | "OXM_OF_TUNNEL_ID" => TunId,
            "tun_src" | "NXM_NX_TUN_IPV4_SRC" => TunSrc,
            "tun_dst" | "NXM_NX_TUN_IPV4_DST" => TunDst,
            "tun_ipv6_src" | "NXM_NX_TUN_IPV6_SRC" => TunIpv6Src,
            "tun_ipv6_dst" | "NXM_NX_TUN_IPV6_DST" => TunIpv6Dst,
            "tun_flags" | "NXM_NX_TUN_FLAGS" => TunFlags,
            "dl_src" | "eth_src" | "NXM_OF_ETH_SRC" | "OXM_OF_ETH_SRC" => DlSrc,
            "dl_dst" | "eth_dst" | "NXM_OF_ETH_DST" | "OXM_OF_ETH_DST" => DlDst,
            "dl_type" | "eth_type" | "NXM_OF_ETH_TYPE" | "OXM_OF_ETH_TYPE" => DlType,
            "vlan_tci" | "NXM_OF_VLAN_TCI" => VlanTci,
            "dl_vlan" => DlVlan,
            "vlan_vid" | "OXM_OF_VLAN_VID" => VlanVid,
            "dl_vlan_pcp" | "vlan_pcp" | "OXM_OF_VLAN_PCP" => VlanPcp,
            "nw_src" | "ip_src" | "NXM_OF_IP_SRC" | "OXM_OF_IPV4_SRC" => NwSrc,
            "nw_dst" | "ip_dst" | "NXM_OF_IP_DST" | "OXM_OF_IPV4_DST" => NwDst,
            "ipv6_src" | "NXM_NX_IPV6_SRC" | "OXM_OF_IPV6_SRC" => Ipv6Src,
            "ipv6_dst" | "NXM_NX_IPV6_DST" | "OXM_OF_IPV6_DST" => Ipv6Dst,
            "ipv6_label" | "NXM_NX_IPV6_LABEL" | "OXM_OF_IPV6_FLABEL" => Ipv6Label,
            "nw_proto" | "ip_proto" | "NXM_OF_IP_PROTO" | "OXM_OF_IP_PROTO" => NwProto,
            "nw_tos" | "NXM_OF_IP_TOS" => NwTos,
            "ip_dscp" | "OXM_OF_IP_DSCP" => IpDscp,
            "nw_ecn" | "ip_ecn" | "NXM_NX_IP_ECN" | "OXM_OF_IP_ECN" => NwEcn,
            "nw_ttl" | "NXM_NX_IP_TTL" => NwTtl,
            "nw_frag" | "ip_frag" | "NXM_NX_IP_FRAG" => NwFrag,
            "tp_src" | "tcp_src" | "udp_src" | "sctp_src" | "NXM_OF_TCP_SRC" | "NXM_OF_UDP_SRC"
            | "OXM_OF_TCP_SRC" | "OXM_OF_UDP_SRC" | "OXM_OF_SCTP_SRC" => TpSrc,
            "tp_dst" | "tcp_dst" | "udp_dst" | "sctp_dst" | "NXM_OF_TCP_DST" | "NXM_OF_UDP_DST"
            | "OXM_OF_TCP_DST" | "OXM_OF_UDP_DST" | "OXM_OF_SCTP_DST" => TpDst,
            "tcp_flags" | "NXM_NX_TCP_FLAGS" => TcpFlags,
            "icmp_type" | "icmpv6_type" | "NXM_OF_ICMP_TYPE" | "NXM_NX_ICMPV6_TYPE"
            | "OXM_OF_ICMPV4_TYPE" | "OXM_OF_ICMPV6_TYPE" => IcmpType,
            "icmp_code" | "icmpv6_code" | "NXM_OF_ICMP_CODE" | "NXM_NX_ICMPV6_CODE"
            | "OXM_OF_ICMPV4_CODE" | "OXM_OF_ICMPV6_CODE" => IcmpCode,
            "arp_op" | "NXM_OF_ARP_OP" | "OXM_OF_ARP_OP" => ArpOp,
            "arp_spa" | "NXM_OF_ARP_SPA" | "OXM_OF_ARP_SPA" => ArpSpa,
            "arp_tpa" | "NXM_OF_ARP_TPA" | "OXM_OF_ARP_TPA" => ArpTpa,
            "arp_sha" | "NXM_NX_ARP_SHA" | "OXM_OF_ARP_SHA" => ArpSha,
            "arp_tha" | "NXM_NX_ARP_THA" | "OXM_OF_ARP_THA" => ArpTha,
            "nd_target" | "NXM_NX_ND_TARGET" | "OXM_OF_IPV6_ND_TARGET" => NdTarget,
            "nd_sll" | "NXM_NX_ND_SLL" | "OXM_OF_IPV6_ND_SLL" => NdSll,
            "nd_tll" | "NXM_NX_ND_TLL" | "OXM_OF_IPV6_ND_TLL" => NdTll,
            _ => return None,
        })
    }

    /// Reads the field's value from a key.
    #[inline]
    pub fn get(self, key: &FlowKey) -> u128 {
        self.info().slot.get(&key.0)
    }

    /// Writes the field's value (truncated to its width) into a key.
    #[inline]
    pub fn set(self, key: &mut FlowKey, value: u128) {
        self.info().slot.set(&mut key.0, value)
    }
}

fn parse_index(s: &str, max: usize) -> Option<u8> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let i: usize = s.parse().ok()?;
    (i < max).then_some(i as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for f in Field::all() {
            assert!(f.is_valid());
            assert_eq!(Field::from_name(f.name()), Some(f), "{}", f.name());
        }
        assert_eq!(Field::from_name("reg16"), None);
        assert_eq!(Field::from_name("reg"), None);
        assert_eq!(Field::from_name("NXM_NX_REG15"), Some(Field::Reg(15)));
        assert_eq!(Field::from_name("tun_metadata8"), None);
        assert_eq!(Field::from_name("eth_src"), Some(Field::DlSrc));
    }

    #[test]
    fn virtual_fields_alias_storage() {
        let mut k = FlowKey::default();
        Field::IpDscp.set(&mut k, 46);
        Field::NwEcn.set(&mut k, 1);
        assert_eq!(k.nw_tos(), (46 << 2) | 1);
        Field::VlanTci.set(&mut k, 0x1000 | (5 << 13) | 100);
        assert_eq!(Field::DlVlan.get(&k), 100);
        assert_eq!(Field::VlanPcp.get(&k), 5);
        assert_eq!(Field::VlanVid.get(&k), 0x1000 | 100);
        Field::IcmpType.set(&mut k, 8);
        assert_eq!(k.tp_src(), 8);
    }
}
