//! Matches: reading `field=value` items and protocol shorthands into a
//! [`Match`], checking prerequisites, and printing a match in the order and
//! with the shorthands of OVS `match_format` (lib/match.c).

use super::error::TextError;
use super::value::{
    Delim, TCP_FLAG_NAMES, TUN_FLAG_NAMES, format_eth_masked, format_flags, format_frag,
    format_ipv4_masked, format_ipv6_masked, hex_c, parse_field_value, parse_uint,
};
use crate::flow::field::{Field, Prereq};
use crate::flow::key::{FlowKey, NUM_REGS, Slot, TUN_METADATA_SLOTS, VLAN_CFI, slots};
use crate::flow::{Match, PortNo};

const ETH_TYPE_IP: u16 = 0x0800;
const ETH_TYPE_ARP: u16 = 0x0806;
const ETH_TYPE_IPV6: u16 = 0x86dd;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

/// The bit of `tun_metadata_present` for option slot `i`.
pub(crate) fn tun_present_slot(i: usize) -> Slot {
    Slot {
        word: slots::tun_metadata_present.word,
        shift: slots::tun_metadata_present.shift + i as u8,
        width: 1,
    }
}

/// Protocol shorthands: name, `dl_type`, `nw_proto`.
fn shorthand(name: &str) -> Option<(u16, Option<u8>)> {
    Some(match name {
        "ip" => (ETH_TYPE_IP, None),
        "ipv6" => (ETH_TYPE_IPV6, None),
        "icmp" => (ETH_TYPE_IP, Some(IPPROTO_ICMP)),
        "icmp6" => (ETH_TYPE_IPV6, Some(IPPROTO_ICMPV6)),
        "tcp" => (ETH_TYPE_IP, Some(IPPROTO_TCP)),
        "tcp6" => (ETH_TYPE_IPV6, Some(IPPROTO_TCP)),
        "udp" => (ETH_TYPE_IP, Some(IPPROTO_UDP)),
        "udp6" => (ETH_TYPE_IPV6, Some(IPPROTO_UDP)),
        "sctp" => (ETH_TYPE_IP, Some(IPPROTO_SCTP)),
        "sctp6" => (ETH_TYPE_IPV6, Some(IPPROTO_SCTP)),
        "arp" => (ETH_TYPE_ARP, None),
        _ => return None,
    })
}

/// One field setting as given, kept for duplicate and prerequisite checks.
#[derive(Debug, Clone)]
struct Given {
    field: Field,
    label: String,
    value: u128,
    mask: u128,
    /// Set by `field[bits]=value`: other bits may be given separately.
    partial: bool,
}

/// Accumulates match items in any order; [`MatchBuilder::finish`] checks
/// prerequisites once everything has been read.
#[derive(Debug, Clone, Default)]
pub(crate) struct MatchBuilder {
    m: Match,
    given: Vec<Given>,
    /// The first inner-tag item (`vlan_tci1`, ...), if any.
    inner_vlan: Option<String>,
}

impl MatchBuilder {
    /// Writes `value/mask` into `slot`, refusing to contradict bits that an
    /// earlier item already matched.
    fn apply(
        &mut self,
        slot: Slot,
        value: u128,
        mask: u128,
        label: &str,
        text: &str,
    ) -> Result<(), TextError> {
        let ek = slot.get(&self.m.key.0);
        let em = slot.get(&self.m.mask.0.0);
        if (ek ^ value) & em & mask != 0 {
            return Err(TextError::Conflict {
                field: label.to_owned(),
                text: text.to_owned(),
            });
        }
        slot.set(&mut self.m.key.0, ek | (value & mask));
        slot.set(&mut self.m.mask.0.0, em | mask);
        Ok(())
    }

    /// Handles one item if it is a match field or shorthand; returns
    /// `Ok(false)` if the key is neither (the caller decides what it is).
    pub(crate) fn item(&mut self, key: &str, value: &str, delim: Delim) -> Result<bool, TextError> {
        if let Some((dl_type, proto)) = shorthand(key) {
            if delim != Delim::None || !value.is_empty() {
                return Err(TextError::invalid(
                    key,
                    value,
                    "allowed (a shorthand takes no value)",
                ));
            }
            self.apply(slots::dl_type, u128::from(dl_type), 0xffff, key, key)?;
            if let Some(p) = proto {
                self.apply(slots::nw_proto, u128::from(p), 0xff, key, key)?;
            }
            return Ok(true);
        }
        if key.contains('[') {
            return self.subfield_item(key, value).map(|()| true);
        }
        let (field, inner) = match key {
            "vlan_tci1" => (Field::VlanTci, true),
            "dl_vlan1" => (Field::DlVlan, true),
            "dl_vlan_pcp1" => (Field::VlanPcp, true),
            _ => match Field::from_name(key) {
                Some(f) => (f, false),
                None => return Ok(false),
            },
        };
        if value.is_empty() {
            return Err(TextError::MissingValue {
                field: key.to_owned(),
            });
        }
        if value == "*" {
            // OVS: an explicit wildcard, the same as not mentioning it.
            return Ok(true);
        }
        let no_mask = |text: &str| {
            if text.contains('/') {
                Err(TextError::NotMaskable {
                    field: key.to_owned(),
                    text: text.to_owned(),
                })
            } else {
                Ok(())
            }
        };
        let (slot, v, m) = match field {
            _ if inner => {
                // vlan_tci1 / dl_vlan1 / dl_vlan_pcp1: the inner tag, which
                // the Flow: line of a tagged packet shows.
                let p = parse_field_value(field, key, value)?;
                match field {
                    Field::DlVlan => (slots::vlan1_tci, p.value | u128::from(VLAN_CFI), 0x1fff),
                    Field::VlanPcp => (
                        slots::vlan1_tci,
                        (p.value << 13) | u128::from(VLAN_CFI),
                        0xf000,
                    ),
                    _ => (slots::vlan1_tci, p.value, p.mask),
                }
            }
            Field::DlVlan => {
                no_mask(value)?;
                let vid = parse_uint(value)
                    .ok_or_else(|| TextError::invalid(key, value, "an integer"))?;
                if vid == 0xffff {
                    (slots::vlan0_tci, 0, 0xffff)
                } else if vid <= 0x0fff {
                    (slots::vlan0_tci, u128::from(VLAN_CFI) | vid, 0x1fff)
                } else {
                    return Err(TextError::range(
                        key,
                        value,
                        "0..=4095, or 0xffff for no VLAN",
                    ));
                }
            }
            Field::VlanPcp => {
                no_mask(value)?;
                let pcp = super::value::parse_uint_max(key, value, 7)?;
                (slots::vlan0_tci, (pcp << 13) | u128::from(VLAN_CFI), 0xf000)
            }
            Field::NwTos => {
                no_mask(value)?;
                let tos = super::value::parse_uint_max(key, value, 255)?;
                if tos & 3 != 0 {
                    return Err(TextError::invalid(
                        key,
                        value,
                        "a TOS value with the two ECN bits zero (a multiple of 4)",
                    ));
                }
                (slots::nw_tos, tos, 0xfc)
            }
            _ => {
                let p = parse_field_value(field, key, value)?;
                (field.info().slot, p.value, p.mask)
            }
        };
        if inner {
            self.inner_vlan.get_or_insert_with(|| key.to_owned());
            return self.apply(slot, v, m, key, value).map(|()| true);
        }
        if let Some(prev) = self.given.iter().find(|g| g.field == field && !g.partial)
            && (prev.value, prev.mask) != (v, m)
        {
            return Err(TextError::Conflict {
                field: key.to_owned(),
                text: value.to_owned(),
            });
        }
        self.apply(slot, v, m, key, value)?;
        if let Field::TunMetadata(i) = field {
            self.apply(tun_present_slot(usize::from(i)), 1, 1, key, value)?;
        }
        self.given.push(Given {
            field,
            label: key.to_owned(),
            value: v,
            mask: m,
            partial: false,
        });
        Ok(true)
    }

    /// `field[bits]=value`: matches some bits of a field (OVS
    /// `parse_subfield` in lib/ofp-flow.c).
    fn subfield_item(&mut self, key: &str, value: &str) -> Result<(), TextError> {
        let sf = super::actions::parse_subfield(key, key)?;
        if value.is_empty() {
            return Err(TextError::MissingValue {
                field: key.to_owned(),
            });
        }
        let v = super::value::parse_uint_bits(key, value, sf.n_bits)?;
        let bits = if sf.n_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << sf.n_bits) - 1
        };
        self.apply(
            sf.field.info().slot,
            v << sf.ofs,
            bits << sf.ofs,
            key,
            value,
        )?;
        self.given.push(Given {
            field: sf.field,
            label: key.to_owned(),
            value: v,
            mask: bits,
            partial: true,
        });
        Ok(())
    }

    fn pinned(&self, slot: Slot, v: u128) -> bool {
        slot.get(&self.m.mask.0.0) == slot.value_mask() && slot.get(&self.m.key.0) == v
    }

    /// Checks every given field's prerequisites and returns the match.
    pub(crate) fn finish(self) -> Result<Match, TextError> {
        let dl = |t: u16| self.pinned(slots::dl_type, u128::from(t));
        let proto = |p: u8| self.pinned(slots::nw_proto, u128::from(p));
        let (ipv4, ipv6, arp) = (dl(ETH_TYPE_IP), dl(ETH_TYPE_IPV6), dl(ETH_TYPE_ARP));
        let ip = ipv4 || ipv6;
        let icmp_type = |t: u8| self.pinned(Field::IcmpType.info().slot, u128::from(t));
        let icmp6 = ipv6 && proto(IPPROTO_ICMPV6);
        for g in &self.given {
            let (ok, requires) = match g.field.info().prereq {
                Prereq::None => (true, ""),
                Prereq::Ipv4 if matches!(g.field, Field::NwSrc | Field::NwDst) => {
                    (ipv4 || arp, "ip or arp")
                }
                Prereq::Ipv4 => (ipv4, "ip"),
                Prereq::Ipv6 => (ipv6, "ipv6"),
                Prereq::IpAny => (ip, "ip or ipv6"),
                Prereq::Arp => (arp, "arp"),
                Prereq::L4 => (
                    ip && (proto(IPPROTO_TCP) || proto(IPPROTO_UDP) || proto(IPPROTO_SCTP)),
                    "tcp, udp, sctp, tcp6, udp6 or sctp6",
                ),
                Prereq::Tcp => (ip && proto(IPPROTO_TCP), "tcp or tcp6"),
                Prereq::Icmp => ((ipv4 && proto(IPPROTO_ICMP)) || icmp6, "icmp or icmp6"),
                Prereq::Nd => (
                    icmp6 && (icmp_type(135) || icmp_type(136)),
                    "icmp6 with icmp_type=135 or icmp_type=136",
                ),
                Prereq::NdSolicit => (icmp6 && icmp_type(135), "icmp6 with icmp_type=135"),
                Prereq::NdAdvert => (icmp6 && icmp_type(136), "icmp6 with icmp_type=136"),
                Prereq::Vlan => {
                    let cfi = u64::from(VLAN_CFI);
                    let (k, m) = (
                        slots::vlan0_tci.get(&self.m.key.0) as u64,
                        slots::vlan0_tci.get(&self.m.mask.0.0) as u64,
                    );
                    (
                        k & m & cfi != 0,
                        "a VLAN tag (dl_vlan, or vlan_tci with the 0x1000 bit set)",
                    )
                }
            };
            if !ok {
                return Err(TextError::Prerequisite {
                    field: g.label.clone(),
                    requires,
                });
            }
        }
        if let Some(label) = self.inner_vlan
            && slots::vlan0_tci.get(&self.m.mask.0.0) == 0
        {
            return Err(TextError::Prerequisite {
                field: label,
                requires: "an outer VLAN tag match (dl_vlan, dl_vlan_pcp or vlan_tci)",
            });
        }
        Ok(self.m)
    }
}

/// Parses a match: comma or white-space separated `field=value` items and
/// shorthands, in any order.
pub(crate) fn parse_match_str(s: &str) -> Result<Match, TextError> {
    let mut b = MatchBuilder::default();
    for kv in super::value::key_values(s) {
        let kv = kv?;
        if !b.item(kv.key, kv.value, kv.delim)? {
            return Err(TextError::UnknownField {
                name: kv.key.to_owned(),
            });
        }
    }
    b.finish()
}

/// One printed item: a bare shorthand (`tcp`) or `name=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A shorthand with the `dl_type` (and `nw_proto`) it stands for.
    Word(&'static str, u16, Option<u8>),
    /// `name=value`.
    Pair(&'static str, String),
}

/// Joins items as `match_format` does (`tcp,nw_src=...`).
pub(crate) fn join_items(items: &[Item]) -> String {
    let mut s = String::new();
    for it in items {
        if !s.is_empty() {
            s.push(',');
        }
        match it {
            Item::Word(w, _, _) => s.push_str(w),
            Item::Pair(n, v) => {
                s.push_str(n);
                s.push('=');
                s.push_str(v);
            }
        }
    }
    s
}

fn be_masked(v: u128, m: u128, full: u128) -> String {
    if m == full {
        v.to_string()
    } else {
        format!("{v:#x}/{m:#x}")
    }
}

fn hex_masked(v: u128, m: u128, full: u128) -> String {
    if m == full {
        hex_c(v)
    } else {
        format!("{}/{}", hex_c(v), hex_c(m))
    }
}

/// The items of a match in OVS `match_format` order.
pub(crate) fn match_items(m: &Match) -> Vec<Item> {
    let mut out = Vec::new();
    let key: &FlowKey = &m.key;
    let mask: &FlowKey = &m.mask.0;
    let gs = |s: Slot| (s.get(&key.0), s.get(&mask.0));
    let gf = |f: Field| gs(f.info().slot);
    let mut push = |n: &'static str, v: String| out.push(Item::Pair(n, v));
    let mut words: Option<Item> = None;

    let (cv, cm) = gf(Field::ConjId);
    let mut head = Vec::new();
    if cm != 0 {
        head.push(Item::Pair("conj_id", cv.to_string()));
    }

    let (dt, dtm) = gs(slots::dl_type);
    let (pr, prm) = gs(slots::nw_proto);
    let (dt, pr) = (dt as u16, pr as u8);
    let mut skip_type = false;
    let mut skip_proto = false;
    if dtm != 0 {
        skip_type = true;
        let proto_word = |v4: bool| -> Option<&'static str> {
            if prm == 0 {
                return None;
            }
            Some(match (v4, pr) {
                (true, IPPROTO_ICMP) => "icmp",
                (false, IPPROTO_ICMPV6) => "icmp6",
                (true, IPPROTO_TCP) => "tcp",
                (false, IPPROTO_TCP) => "tcp6",
                (true, IPPROTO_UDP) => "udp",
                (false, IPPROTO_UDP) => "udp6",
                (true, IPPROTO_SCTP) => "sctp",
                (false, IPPROTO_SCTP) => "sctp6",
                _ => return None,
            })
        };
        words = match dt {
            ETH_TYPE_IP | ETH_TYPE_IPV6 => {
                let v4 = dt == ETH_TYPE_IP;
                match proto_word(v4) {
                    Some(w) => {
                        skip_proto = true;
                        Some(Item::Word(w, dt, Some(pr)))
                    }
                    None => Some(Item::Word(if v4 { "ip" } else { "ipv6" }, dt, None)),
                }
            }
            ETH_TYPE_ARP => Some(Item::Word("arp", dt, None)),
            _ => {
                skip_type = false;
                None
            }
        };
    }

    for i in 0..NUM_REGS {
        let f = Field::Reg(i as u8);
        let (v, mm) = gf(f);
        if mm != 0 {
            push(f.name(), hex_masked(v, mm, u128::from(u32::MAX)));
        }
    }

    // Tunnel.
    let (v, mm) = gf(Field::TunId);
    if mm != 0 {
        push("tun_id", hex_masked(v, mm, u128::from(u64::MAX)));
    }
    for (f, n) in [(Field::TunSrc, "tun_src"), (Field::TunDst, "tun_dst")] {
        let (v, mm) = gf(f);
        if mm != 0 {
            push(n, format_ipv4_masked(v as u32, mm as u32));
        }
    }
    for (f, n) in [
        (Field::TunIpv6Src, "tun_ipv6_src"),
        (Field::TunIpv6Dst, "tun_ipv6_dst"),
    ] {
        let (v, mm) = gf(f);
        if mm != 0 {
            push(n, format_ipv6_masked(v, mm));
        }
    }
    let (v, mm) = gf(Field::TunFlags);
    let defined = (1u128 << TUN_FLAG_NAMES.len()) - 1;
    if mm & defined != 0 {
        push(
            "tun_flags",
            format_flags((v & defined) as u32, (mm & defined) as u32, &TUN_FLAG_NAMES),
        );
    }
    for i in 0..TUN_METADATA_SLOTS {
        let f = Field::TunMetadata(i as u8);
        let (v, mm) = gf(f);
        let (_, pm) = gs(tun_present_slot(i));
        if mm != 0 || pm != 0 {
            push(f.name(), hex_masked(v, mm, u128::from(u64::MAX)));
        }
    }

    let (v, mm) = gf(Field::Metadata);
    if mm != 0 {
        push("metadata", hex_masked(v, mm, u128::from(u64::MAX)));
    }
    let (v, mm) = gf(Field::InPort);
    if mm != 0 {
        push("in_port", PortNo(v as u32).to_string());
    }

    // VLAN tags, outermost first, as dl_vlan/dl_vlan_pcp when possible.
    let vlan_names = [
        ("dl_vlan", "dl_vlan_pcp", "vlan_tci", slots::vlan0_tci),
        ("dl_vlan1", "dl_vlan_pcp1", "vlan_tci1", slots::vlan1_tci),
    ];
    for (n_vid, n_pcp, n_tci, slot) in vlan_names {
        let (tci, tm) = gs(slot);
        let (tci, tm) = (tci as u16, tm as u16);
        if tm == 0 {
            break;
        }
        let vid_mask = tm & 0x0fff;
        let pcp_mask = tm & 0xe000;
        if tm & VLAN_CFI != 0
            && tci & VLAN_CFI != 0
            && (vid_mask == 0 || vid_mask == 0x0fff)
            && (pcp_mask == 0 || pcp_mask == 0xe000)
            && (vid_mask != 0 || pcp_mask != 0)
        {
            if vid_mask != 0 {
                push(n_vid, (tci & 0x0fff).to_string());
            }
            if pcp_mask != 0 {
                push(n_pcp, (tci >> 13).to_string());
            }
        } else if tm == 0xffff {
            push(n_tci, format!("0x{tci:04x}"));
        } else {
            push(n_tci, format!("0x{tci:04x}/0x{tm:04x}"));
        }
    }

    for (f, n) in [(Field::DlSrc, "dl_src"), (Field::DlDst, "dl_dst")] {
        let (v, mm) = gf(f);
        if mm != 0 {
            push(n, format_eth_masked(v, mm));
        }
    }
    if !skip_type && dtm != 0 {
        push("dl_type", format!("0x{dt:04x}"));
    }
    let is_arp = dt == ETH_TYPE_ARP;
    if dt == ETH_TYPE_IPV6 {
        for (f, n) in [(Field::Ipv6Src, "ipv6_src"), (Field::Ipv6Dst, "ipv6_dst")] {
            let (v, mm) = gf(f);
            if mm != 0 {
                push(n, format_ipv6_masked(v, mm));
            }
        }
        let (v, mm) = gf(Field::Ipv6Label);
        if mm == 0xfffff {
            push("ipv6_label", format!("0x{v:05x}"));
        } else if mm != 0 {
            push("ipv6_label", format!("0x{v:05x}/0x{mm:05x}"));
        }
    } else {
        let names = if is_arp {
            ["arp_spa", "arp_tpa"]
        } else {
            ["nw_src", "nw_dst"]
        };
        for (f, n) in [Field::NwSrc, Field::NwDst].into_iter().zip(names) {
            let (v, mm) = gf(f);
            if mm != 0 {
                push(n, format_ipv4_masked(v as u32, mm as u32));
            }
        }
    }
    if !skip_proto && prm != 0 {
        push(if is_arp { "arp_op" } else { "nw_proto" }, pr.to_string());
    }
    if is_arp {
        for (f, n) in [(Field::ArpSha, "arp_sha"), (Field::ArpTha, "arp_tha")] {
            let (v, mm) = gf(f);
            if mm != 0 {
                push(n, format_eth_masked(v, mm));
            }
        }
    }
    let (tos, tosm) = gs(slots::nw_tos);
    if tosm & 0xfc != 0 {
        push("nw_tos", (tos & 0xfc).to_string());
    }
    if tosm & 0x03 != 0 {
        push("nw_ecn", (tos & 0x03).to_string());
    }
    let (v, mm) = gf(Field::NwTtl);
    if mm != 0 {
        push("nw_ttl", v.to_string());
    }
    let (v, mm) = gf(Field::NwFrag);
    if let Some(s) = format_frag(v as u8, mm as u8) {
        push("nw_frag", s.to_owned());
    }
    let icmp4 = dt == ETH_TYPE_IP && pr == IPPROTO_ICMP;
    let icmp6 = dt == ETH_TYPE_IPV6 && pr == IPPROTO_ICMPV6;
    if icmp4 || icmp6 {
        for (f, n) in [
            (Field::IcmpType, "icmp_type"),
            (Field::IcmpCode, "icmp_code"),
        ] {
            let (v, mm) = gf(f);
            if mm != 0 {
                push(n, be_masked(v, mm, 0xff));
            }
        }
        if icmp6 {
            let (v, mm) = gf(Field::NdTarget);
            if mm != 0 {
                push("nd_target", format_ipv6_masked(v, mm));
            }
            for (f, n) in [(Field::NdSll, "nd_sll"), (Field::NdTll, "nd_tll")] {
                let (v, mm) = gf(f);
                if mm != 0 {
                    push(n, format_eth_masked(v, mm));
                }
            }
        }
    } else {
        for (f, n) in [(Field::TpSrc, "tp_src"), (Field::TpDst, "tp_dst")] {
            let (v, mm) = gf(f);
            if mm != 0 {
                push(n, be_masked(v, mm, 0xffff));
            }
        }
    }
    let (v, mm) = gf(Field::TcpFlags);
    if (dt == ETH_TYPE_IP || dt == ETH_TYPE_IPV6) && pr == IPPROTO_TCP && mm != 0 {
        push(
            "tcp_flags",
            format_flags(v as u32, mm as u32, &TCP_FLAG_NAMES),
        );
    }

    // conj_id and the shorthand come first, as in OVS.
    head.extend(words);
    head.extend(out);
    head
}

/// Formats a match as `ovs-ofctl` prints it (without priority); the
/// catch-all match is the empty string.
pub(crate) fn format_match_str(m: &Match) -> String {
    join_items(&match_items(m))
}
