//! Geneve (RFC 8926) and VXLAN (RFC 7348) tunnels, sans-IO: the pipeline
//! calls [`Tunnels::encap`] when a packet is output to a tunnel port and
//! [`Tunnels::decap`] for every frame received on the underlay port. The
//! daemon fills a [`Tunnels`] snapshot (ports, underlay facts, next hops,
//! TLV map) and publishes it with the pipeline; nothing here does I/O,
//! reads a clock or allocates per packet.
//!
//! # Model: native tunnelling, as OVS's userspace datapath
//!
//! The switch builds the whole outer frame (Ethernet, IPv4 or IPv6, UDP,
//! Geneve or VXLAN) in the packet buffer's headroom and sends it out of the
//! **underlay port** (an AF_PACKET port on the NIC). Frames received on the
//! underlay port whose outer destination is the local endpoint IP and whose
//! UDP destination port is a tunnel port's are decapsulated; the inner frame
//! enters the pipeline with `in_port` = the tunnel port.
//!
//! **Host traffic** (the OVS `br-phy` arrangement): the underlay IP
//! belongs to the host stack on an internal port ([`Underlay::host_port`])
//! instead of the NIC. Every underlay frame that is *not* tunnel traffic for
//! us (ARP, ND, SSH, the kernel's own traffic, outer fragments) goes from
//! the underlay port straight to `host_port`, untouched, without a table
//! lookup; every frame received on `host_port` goes straight out of the
//! underlay port. The trace shows this as a note. Because of the second
//! rule, `host_port` must be an internal port used only for the underlay
//! (OVS's `br-phy` LOCAL), not the port pods reach the host through. With
//! `host_port = None` such frames go through the tables like any other
//! packet (flows decide, e.g. `in_port=<underlay>,actions=LOCAL`).
//! [`Underlay::local_mac`] must be the host port's MAC, so that the
//! neighbours' ARP/ND caches (filled by the host stack's replies) and our
//! outer source MAC agree.
//!
//! # The API the daemon uses
//!
//! ```text
//! let t = Tunnels::new(
//!     vec![TunnelPort::new(PortNo(10), TunnelKind::Geneve, TunnelConfig::default())],
//!     Some(Underlay { port: PortNo(1), host_port: Some(PortNo::LOCAL),
//!                     local_ipv4: Some(ip), local_ipv6: None, local_mac, mtu: 1500 }),
//!     NextHops::from_entries([(remote_ip, remote_or_gateway_mac)]),
//!     TlvMap::new(&mappings)?,
//! )?;                                     // validates; errors name the object
//! let pl = Pipeline::compile(&flows, cfg, gen)?.with_tunnels(Arc::new(t));
//! shared.store(Arc::new(pl));
//! // a neighbour changed: republish without recompiling the tables
//! shared.store(Arc::new(shared.load().with_new_tunnels(Arc::new(t2), gen + 1)));
//! ```
//!
//! Inside the daemon, `control::Controller` does this already: tunnel
//! ports come from the state's `PortKind::Geneve/Vxlan` ports, the TLV map
//! from `SetTlvMap` (persisted), and `Controller::set_underlay(underlay,
//! next_hops)` republishes with the kernel's facts.
//!
//! The tunnel ports (their numbers) must also be in `SwitchConfig::ports`
//! so that flows may output to them. Events for the daemon come through
//! [`OutputSink::tunnel_event`](crate::pipeline::OutputSink::tunnel_event)
//! ([`TunnelEvent::MissingNextHop`]: resolve the route and neighbour for
//! this remote and republish). The recommended pod MTU is
//! [`pod_mtu`] (`weftctl show`).
//!
//! # Encapsulation ([`Tunnels::encap`])
//!
//! * Remote: the port's `remote_ip`, else the packet's `tun_dst` (if not
//!   0.0.0.0), else `tun_ipv6_dst` (if not `::`); none: counted drop
//!   [`TunnelDrop::NoRemote`]. VNI: the port's `key`, else the low 24 bits
//!   of `tun_id` (OVS `key=flow`).
//! * Local IP: the port's `local_ip`, else the underlay's address of the
//!   remote's family; none: [`TunnelDrop::NoLocalIp`].
//! * Outer Ethernet: destination = the next hop's MAC from [`NextHops`]
//!   (the daemon resolves route + neighbour per remote); missing:
//!   [`TunnelDrop::NoNextHop`] and a [`TunnelEvent::MissingNextHop`].
//!   Source = [`Underlay::local_mac`].
//! * Outer IPv4: TTL = `tun_ttl` if set, else 64 (OVS default); TOS =
//!   `tun_tos`; **DF always set** (OVS `df_default=true`), IP id 0 (RFC
//!   6864: atomic datagrams). Outer IPv6: hop limit as the TTL, traffic
//!   class = `tun_tos`, flow label 0.
//! * UDP source port: a hash of the inner flow (MACs, EtherType, IP
//!   addresses, IP protocol, L4 ports; not the TTL, so `tracepath` probes
//!   share a path) mapped into 32768..=60999 the way Linux's
//!   `udp_flow_src_port` maps into the default ephemeral range, for ECMP
//!   entropy. Deterministic (no seed), so a flow keeps its path across
//!   restarts.
//! * UDP checksum: IPv6 underlay: always computed (RFC 8200; the kernel and
//!   OVS do the same by default for IPv6). IPv4 underlay: zero (OVS
//!   `csum=false` default, RFC 7348/8926 allow it), unless the packet's
//!   `tun_flags` has `csum` (then computed).
//! * Geneve: protocol type 0x6558 (inner Ethernet), O flag from
//!   `tun_flags` `oam`, options from the present `tun_metadataN` slots in
//!   slot order, each written as `{class, type, len}` from the [`TlvMap`]
//!   with the low `len` bytes of the slot (big-endian); a present slot
//!   with no mapping is not sent (OVS refuses such flows; we skip the
//!   option). C flag set if any written option's type has the critical
//!   bit. VXLAN: flags = I only (RFC 7348 5), reserved bytes zero.
//! * The inner frame is not touched (checksums, TTL, nothing).
//! * Per packet (OVS `netdev_tnl_push_udp_header`): the outer headers are
//!   a template per (tunnel port, next-hop entry) built with the snapshot
//!   (see [`Tunnels`] for when it is rebuilt) and copied; then the
//!   lengths, TOS/TTL, the IPv4 header checksum (the template's
//!   precomputed sum plus TOS, total length and TTL: no header re-sum),
//!   the UDP source port, the VNI, Geneve's option length, flags and
//!   options are written, and where a UDP checksum is sent it is the
//!   template's pseudo-header sum plus the written fields by value plus
//!   the inner frame's sum (`protocol::wire::checksum::data`: 64-bit
//!   words with end-around carry, an `add` and an `adc` per 8 bytes, one
//!   fold at the end), the only per-byte work of an encapsulation. The
//!   remote's next hop is found through a hash index
//!   ([`NextHops::position`]), not a search; nothing asks the kernel per
//!   packet (the daemon reads routes and neighbours, `crate::underlay`).
//!
//! # MTU ([`Tunnels::encap`] returns [`EncapError::TooBig`])
//!
//! Underlay MTU is the IP MTU of the underlay link ([`Underlay::mtu`]).
//! If the outer IP packet would be longer, the packet is not sent and the
//! drop is counted ([`TunnelDrop::TooBig`]), and:
//! * inner IPv4 with DF: an ICMP "fragmentation needed" (type 3 code 4,
//!   RFC 1191) goes back out of the port the packet came in, with
//!   next-hop MTU = underlay MTU - the overhead in front of the inner IP
//!   header (outer IP + UDP + tunnel header + options + inner L2);
//! * inner IPv6: an ICMPv6 "packet too big" (RFC 4443 3.2) the same way;
//! * inner IPv4 without DF, or non-IP: only the counted drop. OVS with
//!   `df_default=true` (its default) also cannot send these; we do not
//!   fragment the outer packet (the receiving node would have to
//!   reassemble) nor the inner one.
//!
//! The ICMP error is built as a router would: source address = the
//! original destination (we have no address of our own on the overlay;
//! Linux accepts the error because it matches the embedded header),
//! destination = the original source, MACs swapped, TTL 64, as much of the
//! original packet as fits in 576 bytes (IPv4, RFC 1812) or 1280 (IPv6).
//! No error is sent about an ICMP error, a multicast or unspecified
//! source (RFC 1122 3.2.2, RFC 4443 2.4).
//!
//! # Decapsulation ([`Tunnels::decap`])
//!
//! A frame on the underlay port is tunnel traffic if it is Ethernet (no
//! VLAN tag) + IPv4 (not a fragment) or IPv6 (UDP directly after the fixed
//! header) addressed to a local endpoint IP + UDP to a tunnel port's
//! destination port. Then:
//! * Port choice, as OVS `tnl_find`: among ports of that kind and UDP port,
//!   one whose fixed `remote_ip` equals the outer source and whose fixed
//!   `key` equals the VNI wins; then fixed remote with flow key; then fixed
//!   key with flow remote; then the flow-based port. No match:
//!   [`TunnelDrop::NoPort`].
//! * Key fields: `tun_id` = VNI, `tun_src`/`tun_dst` (or the IPv6 pair),
//!   `tun_tos`, `tun_ttl` from the outer IP header, `tun_flags` = `key`,
//!   plus `csum` if the UDP checksum is non-zero, `df` if the outer IPv4
//!   had DF, `oam` for the Geneve O bit (the same fields `weftctl
//!   parse-pcap` shows). Geneve options found in the [`TlvMap`] with the
//!   mapped length go to their `tun_metadataN`; an unmapped option (or one
//!   of another length) with the critical bit is a counted drop
//!   ([`TunnelDrop::CriticalOption`], RFC 8926 3.5), other unmapped ones
//!   are ignored.
//! * Geneve protocol type 0x6558: the inner Ethernet frame. 0x0800 or
//!   0x86dd (an IP packet without Ethernet, e.g. Google Cloud): a dummy
//!   Ethernet header with zero MACs and that EtherType is put in front, as
//!   OVS does for packets from a legacy L3 port ("Add dummy Ethernet header
//!   to non-L2 packet"), so the tables see an L2 packet; output to another
//!   port sends that frame. Any other type: [`TunnelDrop::Unsupported`].
//! * Malformed: outer IP/UDP lengths that disagree, a truncated tunnel
//!   header, Geneve version != 0, options overrunning their area, VXLAN
//!   without the I flag, an empty inner frame: [`TunnelDrop::Malformed`].
//!   Outer checksums are not verified (as OVS: the NIC or nobody checks).
//! * Per packet: one pass over the bytes (Ethernet, IP, UDP read straight
//!   from the buffer with the `check_len` rules of `protocol::wire`, then
//!   the tunnel header and options), no per-packet scan of the ports: the
//!   UDP port is looked up in the snapshot's listeners (one per UDP port,
//!   giving the kind and, when the flow-based port is alone on it, the
//!   port), the ports' own `local_ip`s are only compared when some port
//!   has one, and each Geneve option is found by one probe of the
//!   [`TlvMap`]'s precomputed `{class, type}` index.
//!
//! # Thread safety
//!
//! [`Tunnels`] is immutable once built and shared by `Arc` inside the
//! pipeline snapshot; workers only read it. Per-worker state (a scratch
//! buffer for ICMP errors, counters) is [`TunnelWorker`] in the
//! `WorkerState`.

mod decap;
mod encap;
mod icmp;
#[cfg(test)]
mod tests;
mod text;

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use protocol::ctl::{TlvMapping, TunnelConfig};
use protocol::flow::PortNo;
use protocol::flow::key::TUN_METADATA_SLOTS;
use protocol::wire::{EthernetAddress, geneve, vxlan};

pub use decap::Decap;
pub use encap::{EncapError, flow_src_port};
pub use icmp::{IcmpError, too_big_reply};
pub use text::{format_tlv_mapping, parse_tlv_map};

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// IPv4 header length (we never send options).
pub const IPV4_LEN: usize = 20;
/// IPv6 fixed header length.
pub const IPV6_LEN: usize = 40;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// Default outer TTL / hop limit (OVS).
pub const DEFAULT_TTL: u8 = 64;
/// First UDP source port used (Linux `ip_local_port_range` default).
pub const SRC_PORT_MIN: u16 = 32768;
/// Last UDP source port used (Linux default).
pub const SRC_PORT_MAX: u16 = 60999;
/// Largest option data a `tun_metadata` slot holds (64 bits).
pub const MAX_TLV_LEN: u8 = 8;

/// Which encapsulation a tunnel port uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelKind {
    /// Geneve, UDP 6081.
    Geneve,
    /// VXLAN, UDP 4789.
    Vxlan,
}

impl TunnelKind {
    /// The IANA UDP destination port.
    pub const fn default_port(self) -> u16 {
        match self {
            TunnelKind::Geneve => geneve::UDP_PORT,
            TunnelKind::Vxlan => vxlan::UDP_PORT,
        }
    }

    /// The tunnel header length without options (8 for both).
    pub const fn header_len(self) -> usize {
        match self {
            TunnelKind::Geneve => geneve::HEADER_LEN,
            TunnelKind::Vxlan => vxlan::HEADER_LEN,
        }
    }

    /// `geneve` or `vxlan`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Geneve => "geneve",
            TunnelKind::Vxlan => "vxlan",
        }
    }
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes a tunnel adds in front of an inner **IP** packet: outer IP
/// header, UDP, tunnel header, `options_len` bytes of Geneve options and
/// the inner Ethernet header (14). DESIGN.md's definition.
pub const fn overhead(kind: TunnelKind, ipv6_underlay: bool, options_len: usize) -> usize {
    let ip = if ipv6_underlay { IPV6_LEN } else { IPV4_LEN };
    ip + UDP_LEN + kind.header_len() + options_len + ETH_LEN
}

/// The recommended pod (inner IP) MTU: `underlay_mtu` minus [`overhead`];
/// 0 if the underlay MTU is smaller than the overhead. Geneve with Weft's
/// one 8-byte option over IPv4 and a 1500-byte underlay: 1442; VXLAN: 1450.
pub const fn pod_mtu(
    underlay_mtu: u32,
    kind: TunnelKind,
    ipv6_underlay: bool,
    options_len: usize,
) -> u32 {
    let o = overhead(kind, ipv6_underlay, options_len) as u32;
    underlay_mtu.saturating_sub(o)
}

/// A tunnel port: number, kind and options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelPort {
    /// The OpenFlow port number flows output to and packets arrive on.
    pub port: PortNo,
    /// Geneve or VXLAN.
    pub kind: TunnelKind,
    /// Fixed remote/key/local/UDP port; `None` fields come from the flow.
    pub config: TunnelConfig,
}

impl TunnelPort {
    /// A port.
    pub const fn new(port: PortNo, kind: TunnelKind, config: TunnelConfig) -> TunnelPort {
        TunnelPort { port, kind, config }
    }

    /// The UDP destination port (configured or IANA).
    pub fn udp_port(&self) -> u16 {
        self.config.dst_port.unwrap_or(self.kind.default_port())
    }

    /// The kind and options of a `protocol::ctl::PortKind`, if it is a
    /// tunnel.
    pub fn from_port_kind(port: PortNo, kind: &protocol::ctl::PortKind) -> Option<TunnelPort> {
        match kind {
            protocol::ctl::PortKind::Geneve(c) => {
                Some(TunnelPort::new(port, TunnelKind::Geneve, *c))
            }
            protocol::ctl::PortKind::Vxlan(c) => Some(TunnelPort::new(port, TunnelKind::Vxlan, *c)),
            _ => None,
        }
    }
}

/// Facts about the underlay that the daemon learns from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Underlay {
    /// The port (AF_PACKET on the NIC) outer frames leave and arrive on.
    pub port: PortNo,
    /// The host stack's port (normally `LOCAL`) that owns the underlay IP;
    /// non-tunnel underlay traffic is bridged to and from it (module doc).
    pub host_port: Option<PortNo>,
    /// Local IPv4 tunnel endpoint.
    pub local_ipv4: Option<Ipv4Addr>,
    /// Local IPv6 tunnel endpoint.
    pub local_ipv6: Option<Ipv6Addr>,
    /// Source MAC of outer frames (the host port's MAC).
    pub local_mac: EthernetAddress,
    /// IP MTU of the underlay link (e.g. 1500).
    pub mtu: u32,
}

/// Next-hop MAC per remote endpoint: the result of the kernel's route
/// lookup (gateway or on-link) and neighbour table, filled by the daemon.
/// Sorted by remote; looked up per packet through an open-addressing hash
/// index (one multiply and usually one probe, whatever the number of
/// nodes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextHops {
    entries: Box<[(IpAddr, EthernetAddress)]>,
    /// Power-of-two table (at least twice the entries, empty for none):
    /// entry index + 1 at `hash(remote)`, linear probing, 0 = free.
    /// Derived from `entries` alone, so equality is unaffected.
    index: Box<[u32]>,
}

/// The index slot of `ip` in a table of `mask + 1` slots.
#[inline]
fn hop_slot(ip: IpAddr, mask: usize) -> usize {
    let h = match ip {
        IpAddr::V4(a) => u64::from(a.to_bits()),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            (b as u64) ^ ((b >> 64) as u64).rotate_left(29) ^ 0x6
        }
    };
    ((h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize) & mask
}

impl NextHops {
    /// A table from (remote, next-hop MAC) pairs; a later duplicate
    /// remote replaces an earlier one.
    pub fn from_entries(entries: impl IntoIterator<Item = (IpAddr, EthernetAddress)>) -> NextHops {
        let mut v: Vec<(IpAddr, EthernetAddress)> = Vec::new();
        for (ip, mac) in entries {
            match v.iter_mut().find(|e| e.0 == ip) {
                Some(e) => e.1 = mac,
                None => v.push((ip, mac)),
            }
        }
        v.sort_by_key(|e| e.0);
        let mut index = Vec::new();
        if !v.is_empty() {
            let size = (2 * v.len()).next_power_of_two();
            index = vec![0u32; size];
            let mask = size - 1;
            for (i, e) in v.iter().enumerate() {
                let mut s = hop_slot(e.0, mask);
                while index[s] != 0 {
                    s = (s + 1) & mask;
                }
                index[s] = i as u32 + 1;
            }
        }
        NextHops {
            entries: v.into_boxed_slice(),
            index: index.into_boxed_slice(),
        }
    }

    /// The index of `remote` in [`entries`](Self::entries).
    #[inline]
    pub fn position(&self, remote: IpAddr) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut s = hop_slot(remote, mask);
        // At most half full: a free slot ends every probe sequence.
        loop {
            let i = *self.index.get(s)? as usize;
            let e = self.entries.get(i.checked_sub(1)?)?;
            if e.0 == remote {
                return Some(i - 1);
            }
            s = (s + 1) & mask;
        }
    }

    /// The next-hop MAC for `remote`.
    #[inline]
    pub fn get(&self, remote: IpAddr) -> Option<EthernetAddress> {
        self.position(remote)
            .and_then(|i| self.entries.get(i))
            .map(|e| e.1)
    }

    /// All entries, sorted by remote.
    pub fn entries(&self) -> &[(IpAddr, EthernetAddress)] {
        &self.entries
    }
}

/// Entries of [`TlvMap`]'s lookup index (a power of two, twice the slots).
const TLV_INDEX_LEN: usize = 2 * TUN_METADATA_SLOTS;

/// The home entry of option id `class << 8 | type` in the TLV index.
#[inline]
fn tlv_hash(id: u32) -> usize {
    (id.wrapping_mul(0x9e37_79b1) >> 28) as usize
}

/// The Geneve option <-> `tun_metadataN` map (OVS `add-tlv-map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlvMap {
    /// By slot: (class, type, len).
    slots: [Option<(u16, u8, u8)>; TUN_METADATA_SLOTS],
    /// Precomputed encap layout (built once in [`TlvMap::new`], so encap
    /// does no per-slot decoding): bit `i` set if slot `i` is mapped.
    mapped: u8,
    /// Bit `i` set if slot `i` maps a critical option type.
    critical: u8,
    /// Decap's option lookup: an open-addressed table (16 entries for at
    /// most 8 mappings, linear probing, built in slot order so equal maps
    /// are equal) of `class << 16 | type << 8 | 0x80 | slot << 4 | len /
    /// 4`, 0 = empty: one multiply and usually one load per option.
    index: [u32; TLV_INDEX_LEN],
    /// By slot: `class << 8 | type` (decap matches an option header with
    /// one compare per mapped slot; only slots in `mapped` count).
    ids: [u32; TUN_METADATA_SLOTS],
    /// By slot: the encoded 4-byte option header (class, type, length in
    /// words), copied as is in front of the data.
    headers: [[u8; 4]; TUN_METADATA_SLOTS],
    /// Encap's option layout by presence mask, one table per nibble
    /// (slots 0-3, slots 4-7) so that two loads and an add replace a walk
    /// over the bits: for the mapped slots of the nibble, the encoded
    /// length in bytes `<< 24` plus the one's complement sum of their
    /// option headers as 16-bit words (at most 4 * 0x1fffe < 2^19, so the
    /// two halves add without carrying into the length).
    layout: [[u32; 16]; 2],
}

/// A tunnel configuration that cannot be used; the message names the
/// object and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// A TLV mapping is invalid.
    #[error(
        "tlv map entry {{class={class:#06x},type={kind:#04x},len={len}}}->tun_metadata{slot}: {why}"
    )]
    BadTlv {
        /// Class.
        class: u16,
        /// Type.
        kind: u8,
        /// Length.
        len: u8,
        /// Slot.
        slot: u8,
        /// Why.
        why: &'static str,
    },
    /// Two tunnel ports share a number, or a port is also the underlay.
    #[error("tunnel port {port}: {why}")]
    BadPort {
        /// The port.
        port: PortNo,
        /// Why.
        why: &'static str,
    },
    /// The underlay is unusable.
    #[error("underlay port {port}: {why}")]
    BadUnderlay {
        /// The underlay port.
        port: PortNo,
        /// Why.
        why: &'static str,
    },
}

impl TlvMap {
    /// Validates and builds a map: slot < 8, length a multiple of 4 and at
    /// most 8 (a slot is 64 bits; OVS allows 124 bytes over several
    /// slots), no slot or `{class,type}` mapped twice.
    ///
    /// # Errors
    /// The first bad mapping.
    pub fn new(mappings: &[TlvMapping]) -> Result<TlvMap, TunnelError> {
        let mut m = TlvMap::default();
        for t in mappings {
            let bad = |why| TunnelError::BadTlv {
                class: t.class,
                kind: t.r#type,
                len: t.len,
                slot: t.slot,
                why,
            };
            if usize::from(t.slot) >= TUN_METADATA_SLOTS {
                return Err(bad("slot out of range (tun_metadata0..7)"));
            }
            if t.len == 0 || t.len % 4 != 0 || t.len > MAX_TLV_LEN {
                return Err(bad("len must be 4 or 8"));
            }
            if m.slots
                .iter()
                .flatten()
                .any(|e| e.0 == t.class && e.1 == t.r#type)
            {
                return Err(bad("{class,type} already mapped"));
            }
            let s = &mut m.slots[usize::from(t.slot)];
            if s.is_some() {
                return Err(bad("slot already mapped"));
            }
            *s = Some((t.class, t.r#type, t.len));
            let bit = 1u8 << t.slot;
            m.mapped |= bit;
            if t.r#type & protocol::wire::geneve::OPTION_TYPE_CRITICAL != 0 {
                m.critical |= bit;
            }
            let c = t.class.to_be_bytes();
            m.headers[usize::from(t.slot)] = [c[0], c[1], t.r#type, t.len / 4];
            m.ids[usize::from(t.slot)] = u32::from(t.class) << 8 | u32::from(t.r#type);
        }
        for (half, table) in m.layout.iter_mut().enumerate() {
            for (nibble, e) in table.iter_mut().enumerate() {
                for bit in 0..4 {
                    let slot = 4 * half + bit;
                    if nibble & (1 << bit) == 0 || m.mapped & (1 << slot) == 0 {
                        continue;
                    }
                    let h = m.headers[slot];
                    let len = 4 + 4 * u32::from(h[3]);
                    *e += (len << 24)
                        + (u32::from(h[0]) << 8 | u32::from(h[1]))
                        + (u32::from(h[2]) << 8 | u32::from(h[3]));
                }
            }
        }
        for (slot, s) in m.slots.iter().enumerate() {
            let Some((class, kind, len)) = *s else {
                continue;
            };
            let id = u32::from(class) << 8 | u32::from(kind);
            let mut h = tlv_hash(id);
            while m.index[h & (TLV_INDEX_LEN - 1)] != 0 {
                h += 1;
            }
            m.index[h & (TLV_INDEX_LEN - 1)] =
                id << 8 | 0x80 | (slot as u32) << 4 | u32::from(len / 4);
        }
        Ok(m)
    }

    /// The mappings, in slot order (for `DumpTlvMap`).
    pub fn mappings(&self) -> Vec<TlvMapping> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.map(|(class, r#type, len)| TlvMapping {
                    class,
                    r#type,
                    len,
                    slot: i as u8,
                })
            })
            .collect()
    }

    /// The (class, type, len) of slot `i`.
    #[inline]
    pub fn slot(&self, i: usize) -> Option<(u16, u8, u8)> {
        self.slots.get(i).copied().flatten()
    }

    /// The mapped slots of `present` (a `tun_metadata` presence mask),
    /// the options' total encoded length, whether one is critical and the
    /// one's complement sum of their option headers (16-bit words, not
    /// folded): two table loads (`layout`), no walk over the bits.
    #[inline]
    pub(crate) fn encap_layout(&self, present: u8) -> (u8, usize, bool, u32) {
        let slots = present & self.mapped;
        let [lo, hi] = &self.layout;
        let e = lo[usize::from(slots & 0x0f)] + hi[usize::from(slots >> 4)];
        (
            slots,
            (e >> 24) as usize,
            slots & self.critical != 0,
            e & 0x00ff_ffff,
        )
    }

    /// The encoded option header of mapped slot `i` (masked to 0..8).
    #[inline]
    pub(crate) fn header(&self, i: usize) -> [u8; 4] {
        self.headers[i & (TUN_METADATA_SLOTS - 1)]
    }

    /// The slot and data length an option `{class, type}` maps to: a
    /// probe of the precomputed index (no walk over the slots).
    #[inline]
    pub fn find(&self, class: u16, kind: u8) -> Option<(usize, u8)> {
        let id = u32::from(class) << 8 | u32::from(kind);
        let h = tlv_hash(id);
        // At most half full: an empty entry ends every probe sequence;
        // the bound only keeps the loop visibly finite.
        for i in h..h + TLV_INDEX_LEN {
            let e = self.index[i & (TLV_INDEX_LEN - 1)];
            if e == 0 {
                return None;
            }
            if e >> 8 == id {
                return Some((((e >> 4) & 7) as usize, 4 * (e & 0x0f) as u8));
            }
        }
        None
    }

    /// True if nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

/// Why a tunnel packet was dropped (each is a `DropReason` of the
/// pipeline, counted per worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelDrop {
    /// Output to a tunnel port but no underlay is configured.
    NoUnderlay,
    /// No remote endpoint from the port or the flow.
    NoRemote,
    /// No local endpoint of the remote's address family.
    NoLocalIp,
    /// No next-hop MAC known for the remote (an event asks the daemon).
    NoNextHop,
    /// The encapsulated packet would exceed the underlay MTU.
    TooBig,
    /// The packet does not fit the buffer's headroom (should not happen:
    /// the headroom is sized for the largest outer header).
    NoHeadroom,
    /// Malformed tunnel packet addressed to us.
    Malformed,
    /// An unknown critical Geneve option (RFC 8926 3.5).
    CriticalOption,
    /// No tunnel port matches the packet's remote and VNI.
    NoPort,
    /// A Geneve protocol type other than Ethernet, IPv4 or IPv6.
    Unsupported,
}

/// Something the daemon should act on, reported through the output sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelEvent {
    /// A packet for `remote` was dropped because its next-hop MAC is not
    /// in [`NextHops`]: resolve it (route + neighbour) and republish.
    MissingNextHop(IpAddr),
    /// A tunnel packet from `remote` arrived with outer source MAC `mac`,
    /// which is not the published next hop for `remote` (the daemon may
    /// use it for an on-link remote the kernel has not resolved; see
    /// `crate::underlay`).
    Learned {
        /// The outer source IP.
        remote: IpAddr,
        /// The outer source MAC.
        mac: EthernetAddress,
    },
}

/// The immutable tunnel configuration of a pipeline snapshot.
///
/// # Outer header templates (invalidation)
///
/// Built with the snapshot: one `encap::Template` per (tunnel port,
/// next-hop entry) the port can send to, holding the whole outer header
/// (next hop MAC, local MAC, addresses, UDP port, tunnel header base).
/// Every input of a template is a field of this value (ports, underlay
/// MAC/addresses, next hops), which is immutable: a changed neighbour or
/// route ([`Tunnels::with_next_hops`]), port, or underlay fact comes with
/// a new `Tunnels` (the daemon's `republish_tunnels`, once per change, at
/// most every `underlay::RETRY_MS`), whose templates are built from the
/// new facts; workers pick it up with the next pipeline snapshot (per
/// batch). Nothing can serve a stale template. Memory: about 80 bytes per
/// (port, next hop), e.g. 160 KiB for two ports and 1000 nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tunnels {
    ports: Box<[TunnelPort]>,
    underlay: Option<Underlay>,
    next_hops: NextHops,
    tlv: TlvMap,
    /// Row per port (order of `ports`), column per `next_hops` entry.
    /// Derived from the fields above, so equality is unaffected.
    templates: Box<[Option<encap::Template>]>,
    /// One entry per UDP port the tunnel ports listen on (decap's
    /// per-packet facts), derived from `ports`.
    listeners: Box<[decap::Listener]>,
    /// Some port has its own `local_ip` (decap then also compares the
    /// outer destination with the ports' addresses; usually false).
    port_local_ip: bool,
}

impl Tunnels {
    /// Validates and builds the configuration: tunnel port numbers are
    /// ordinary ports and unique; at most one flow-based port
    /// (`remote_ip` and `key` both `None`) per kind and UDP port; a UDP
    /// port belongs to one kind; the
    /// underlay port is not a tunnel port, has an MTU of at least 576 and a
    /// local IP if there are tunnel ports.
    ///
    /// # Errors
    /// The first problem, naming the port.
    pub fn new(
        ports: Vec<TunnelPort>,
        underlay: Option<Underlay>,
        next_hops: NextHops,
        tlv: TlvMap,
    ) -> Result<Tunnels, TunnelError> {
        let mut ports = ports;
        ports.sort_by_key(|p| p.port);
        for w in ports.windows(2) {
            if w[0].port == w[1].port {
                return Err(TunnelError::BadPort {
                    port: w[0].port,
                    why: "configured twice",
                });
            }
        }
        for (i, p) in ports.iter().enumerate() {
            if p.port.0 == 0 || p.port > PortNo::MAX {
                return Err(TunnelError::BadPort {
                    port: p.port,
                    why: "not an ordinary port number",
                });
            }
            if p.config.key.is_some_and(|k| k > vxlan::Vni::MAX.get()) {
                return Err(TunnelError::BadPort {
                    port: p.port,
                    why: "key does not fit in 24 bits",
                });
            }
            let flow_based = |q: &TunnelPort| {
                q.config.remote_ip.is_none()
                    && q.config.key.is_none()
                    && q.kind == p.kind
                    && q.udp_port() == p.udp_port()
            };
            if flow_based(p) && ports.iter().skip(i + 1).any(flow_based) {
                return Err(TunnelError::BadPort {
                    port: p.port,
                    why: "a second flow-based port of this kind and UDP port",
                });
            }
            if ports
                .iter()
                .any(|q| q.kind != p.kind && q.udp_port() == p.udp_port())
            {
                return Err(TunnelError::BadPort {
                    port: p.port,
                    why: "its UDP port is used by a tunnel of the other kind",
                });
            }
        }
        if let Some(u) = &underlay {
            if ports.iter().any(|p| p.port == u.port) {
                return Err(TunnelError::BadUnderlay {
                    port: u.port,
                    why: "is also a tunnel port",
                });
            }
            if u.host_port == Some(u.port) {
                return Err(TunnelError::BadUnderlay {
                    port: u.port,
                    why: "host_port is the underlay port itself",
                });
            }
            if u.mtu < 576 {
                return Err(TunnelError::BadUnderlay {
                    port: u.port,
                    why: "mtu below 576",
                });
            }
            if !ports.is_empty() && u.local_ipv4.is_none() && u.local_ipv6.is_none() {
                return Err(TunnelError::BadUnderlay {
                    port: u.port,
                    why: "no local IPv4 or IPv6 endpoint",
                });
            }
        }
        let templates = encap::build_templates(&ports, underlay.as_ref(), &next_hops);
        let listeners = decap::build_listeners(&ports);
        let port_local_ip = ports.iter().any(|p| p.config.local_ip.is_some());
        Ok(Tunnels {
            ports: ports.into_boxed_slice(),
            underlay,
            next_hops,
            tlv,
            templates,
            listeners,
            port_local_ip,
        })
    }

    /// The tunnel ports, by port number.
    pub fn ports(&self) -> &[TunnelPort] {
        &self.ports
    }

    /// The underlay, if configured.
    pub fn underlay(&self) -> Option<&Underlay> {
        self.underlay.as_ref()
    }

    /// The next-hop table.
    pub fn next_hops(&self) -> &NextHops {
        &self.next_hops
    }

    /// The TLV map.
    pub fn tlv_map(&self) -> &TlvMap {
        &self.tlv
    }

    /// A copy with another next-hop table (neighbour changes); the outer
    /// header templates are rebuilt from it.
    pub fn with_next_hops(&self, next_hops: NextHops) -> Tunnels {
        let templates = encap::build_templates(&self.ports, self.underlay.as_ref(), &next_hops);
        Tunnels {
            ports: self.ports.clone(),
            underlay: self.underlay,
            next_hops,
            tlv: self.tlv,
            templates,
            listeners: self.listeners.clone(),
            port_local_ip: self.port_local_ip,
        }
    }

    /// True if nothing is configured (the pipeline skips all hooks).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.underlay.is_none()
    }

    /// The tunnel port numbered `p`.
    #[inline]
    pub fn port(&self, p: PortNo) -> Option<&TunnelPort> {
        if self.ports.is_empty() {
            return None;
        }
        self.ports
            .binary_search_by_key(&p, |t| t.port)
            .ok()
            .and_then(|i| self.ports.get(i))
    }

    /// The recommended pod MTU for port `p` (see [`pod_mtu`]), counting
    /// `options_len` option bytes (Geneve) and the underlay family of the
    /// port's fixed remote, else IPv4 if a local IPv4 exists.
    pub fn pod_mtu_of(&self, p: PortNo, options_len: usize) -> Option<u32> {
        let t = self.port(p)?;
        let u = self.underlay.as_ref()?;
        let v6 = match t.config.remote_ip {
            Some(ip) => ip.is_ipv6(),
            None => u.local_ipv4.is_none(),
        };
        let opts = if t.kind == TunnelKind::Geneve {
            options_len
        } else {
            0
        };
        Some(pod_mtu(u.mtu, t.kind, v6, opts))
    }
}

/// Per-worker tunnel state: a scratch buffer for ICMP errors and
/// counters. Allocated once with the worker.
#[derive(Debug, Clone)]
pub struct TunnelWorker {
    /// Room for one ICMP/ICMPv6 error frame.
    pub(crate) scratch: Box<[u8; icmp::SCRATCH_LEN]>,
    /// Packets encapsulated and sent.
    pub encapsulated: u64,
    /// Packets decapsulated.
    pub decapsulated: u64,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" sent.
    pub icmp_too_big: u64,
    /// Non-tunnel frames bridged between the underlay and host ports.
    pub host_bridged: u64,
    /// One segment of a GSO super-frame (or a frame whose partial checksum
    /// was completed) on its way into the tunnel: offload metadata is
    /// honoured *before* encapsulation (no UDP-tunnel GSO yet, see
    /// [`crate::offload`]).
    pub(crate) seg: crate::buf::PacketBuf,
    /// Where [`crate::offload::segment`] builds each segment.
    pub(crate) seg_scratch: Box<[u8]>,
    /// Frames with offload metadata refused for a tunnel (malformed).
    pub offload_drops: u64,
}

impl Default for TunnelWorker {
    fn default() -> Self {
        TunnelWorker {
            seg: crate::buf::PacketBuf::new(),
            seg_scratch: vec![0; crate::buf::MAX_PACKET].into_boxed_slice(),
            offload_drops: 0,
            scratch: Box::new([0; icmp::SCRATCH_LEN]),
            encapsulated: 0,
            decapsulated: 0,
            icmp_too_big: 0,
            host_bridged: 0,
        }
    }
}
