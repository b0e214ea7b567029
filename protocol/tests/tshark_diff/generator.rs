//! Deterministic random packet generator for the tshark differential test.
//!
//! Every header is written with OUR emitters (`Repr::emit`), plus view
//! setters where a `Repr` cannot express something (IPv4 options and IHL,
//! TCP options and data offset, IPv6 extension headers, Geneve option
//! lengths), and checksums are filled with the views' `fill_checksum*`.
//! A malformed variant starts as a well-formed packet and then has exactly
//! one defect applied with a view setter (or a cut).

use core::net::{Ipv4Addr, Ipv6Addr};

use protocol::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, GenevePacket, GeneveRepr, IpProtocol,
    Vni, VxlanPacket, VxlanRepr, arp, icmpv4, icmpv6, ipv4, ipv6, sctp, tcp, udp, vlan,
};

/// xorshift64*: tiny, seeded, deterministic.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    pub(crate) fn u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }
    pub(crate) fn u8(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `pct`%.
    pub(crate) fn pct(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
    pub(crate) fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    pub(crate) fn mac(&mut self) -> EthernetAddress {
        let mut b = [0u8; 6];
        b.iter_mut().for_each(|x| *x = self.u8());
        b[0] &= 0xfe; // unicast source-able
        EthernetAddress(b)
    }
    pub(crate) fn ipv4(&mut self) -> Ipv4Addr {
        // 1.0.0.0..=223.255.255.255, avoids 0/8, 127/8 and multicast.
        let first = self.range(1, 223) as u8;
        let first = if first == 127 { 128 } else { first };
        Ipv4Addr::new(first, self.u8(), self.u8(), self.range(1, 254) as u8)
    }
    pub(crate) fn ipv6(&mut self) -> Ipv6Addr {
        let mut b = [0u8; 16];
        b.iter_mut().for_each(|x| *x = self.u8());
        b[0] = self.pick(&[0x20, 0x26, 0xfd, 0xfe]);
        if b[0] == 0xfe {
            b[1] = 0x80;
        }
        Ipv6Addr::from(b)
    }
    /// A port that no enabled tshark dissector claims (not 4789/6081).
    pub(crate) fn port(&mut self) -> u16 {
        loop {
            let p = self.u16();
            if p != 0 && p != vxlan_port() && p != geneve_port() {
                return p;
            }
        }
    }
}

fn vxlan_port() -> u16 {
    protocol::wire::VXLAN_UDP_PORT
}
fn geneve_port() -> u16 {
    protocol::wire::GENEVE_UDP_PORT
}

/// The one defect a malformed packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Malform {
    /// Cut at a random point.
    Truncated,
    /// IPv4 IHL below 5.
    IhlTooSmall,
    /// IPv4 total length larger than the bytes that follow.
    Ipv4TotalLenTooBig,
    /// TCP data offset below 5.
    TcpDataOffsetSmall,
    /// UDP length below 8.
    UdpLenSmall,
    /// A Geneve option whose length runs past the options area.
    GeneveOptOverrun,
    /// IP version nibble not matching the EtherType.
    BadIpVersion,
}

/// What kind of packet this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Variant {
    /// Well-formed, all checksums correct.
    Good,
    /// Well-formed except one checksum is wrong (IPv4/TCP/UDP/ICMP).
    BadChecksum,
    /// Carries one structural defect.
    Malformed(Malform),
}

/// One generated packet.
pub(crate) struct Generated {
    pub(crate) bytes: Vec<u8>,
    pub(crate) variant: Variant,
    pub(crate) desc: String,
}

/// Where a header starts inside the bytes built so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Icmpv4,
    Icmpv6,
    Sctp,
    Geneve,
}

/// Bytes plus the offsets of the headers inside them.
struct Built {
    bytes: Vec<u8>,
    marks: Vec<(Mark, usize)>,
    desc: String,
}

impl Built {
    /// Prepends a header of `hdr_len` bytes (already at the front of
    /// `bytes`): shifts every mark.
    fn wrap(mut self, bytes: Vec<u8>, hdr_len: usize, mark: Option<Mark>, desc: &str) -> Built {
        for m in &mut self.marks {
            m.1 += hdr_len;
        }
        if let Some(mark) = mark {
            self.marks.insert(0, (mark, 0));
        }
        Built {
            bytes,
            marks: self.marks,
            desc: format!("{desc}/{}", self.desc),
        }
    }
}

#[derive(Clone, Copy)]
enum Net {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

/// What goes above IP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
    Icmp,
    Sctp,
    Vxlan,
    Geneve,
}

/// The generator.
pub(crate) struct Generator {
    rng: Rng,
}

impl Generator {
    pub(crate) fn new(seed: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
        }
    }

    /// `n` packets, about 20% malformed and 3% with a bad checksum.
    pub(crate) fn packets(&mut self, n: usize) -> Vec<Generated> {
        (0..n).map(|i| self.one(i)).collect()
    }

    fn one(&mut self, i: usize) -> Generated {
        let roll = self.rng.below(100);
        let variant = if roll < 20 {
            const KINDS: [Malform; 7] = [
                Malform::Truncated,
                Malform::IhlTooSmall,
                Malform::Ipv4TotalLenTooBig,
                Malform::TcpDataOffsetSmall,
                Malform::UdpLenSmall,
                Malform::GeneveOptOverrun,
                Malform::BadIpVersion,
            ];
            Variant::Malformed(KINDS[i % KINDS.len()])
        } else if roll < 23 {
            Variant::BadChecksum
        } else {
            Variant::Good
        };
        // Retry until a packet has a header the defect can be applied to.
        loop {
            let force = match variant {
                Variant::Malformed(Malform::GeneveOptOverrun) => Some(L4::Geneve),
                Variant::Malformed(Malform::TcpDataOffsetSmall) => Some(L4::Tcp),
                Variant::Malformed(Malform::UdpLenSmall) => Some(L4::Udp),
                _ => None,
            };
            let built = self.frame(0, force);
            if let Some(g) = self.apply(built, variant) {
                return g;
            }
        }
    }

    fn apply(&mut self, built: Built, variant: Variant) -> Option<Generated> {
        let Built {
            mut bytes,
            marks,
            desc,
        } = built;
        let find = |rng: &mut Rng, want: &[Mark]| -> Option<usize> {
            let c: Vec<usize> = marks
                .iter()
                .filter(|m| want.contains(&m.0))
                .map(|m| m.1)
                .collect();
            (!c.is_empty()).then(|| c[rng.below(c.len())])
        };
        let rng = &mut self.rng;
        let what = match variant {
            Variant::Good => String::new(),
            Variant::BadChecksum => {
                let m: Vec<(Mark, usize)> = marks
                    .iter()
                    .copied()
                    .filter(|m| {
                        matches!(
                            m.0,
                            Mark::Ipv4
                                | Mark::Tcp
                                | Mark::Udp
                                | Mark::Icmpv4
                                | Mark::Icmpv6
                                | Mark::Sctp
                        )
                    })
                    .collect();
                if m.is_empty() {
                    return None;
                }
                let (mark, off) = m[rng.below(m.len())];
                let at = off
                    + match mark {
                        Mark::Ipv4 => 10,
                        Mark::Tcp => 16,
                        Mark::Udp => 6,
                        Mark::Sctp => 8,
                        _ => 2,
                    };
                // A UDP checksum of zero means "none"; keep it non-zero.
                let old = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
                let mut new = old ^ (1 + rng.u16() % 0xfffe);
                if new == 0 {
                    new = 0x1234;
                }
                if mark == Mark::Udp && old == 0 {
                    return None;
                }
                bytes[at..at + 2].copy_from_slice(&new.to_be_bytes());
                format!(" badsum({mark:?}@{off})")
            }
            Variant::Malformed(m) => match m {
                Malform::Truncated => {
                    let cut = rng.range(1, bytes.len() - 1);
                    bytes.truncate(cut);
                    format!(" cut@{cut}")
                }
                Malform::IhlTooSmall => {
                    let off = find(rng, &[Mark::Ipv4])?;
                    let ihl = rng.range(0, 4) as u8 * 4;
                    let mut p = ipv4::Packet::new_unchecked(&mut bytes[off..]);
                    p.set_header_len(ihl);
                    format!(" ihl={ihl}@{off}")
                }
                Malform::Ipv4TotalLenTooBig => {
                    let off = find(rng, &[Mark::Ipv4])?;
                    let avail = bytes.len() - off;
                    let new = (avail + rng.range(1, 200)).min(65535) as u16;
                    let mut p = ipv4::Packet::new_unchecked(&mut bytes[off..]);
                    p.set_total_len(new);
                    p.fill_checksum();
                    format!(" totlen={new}@{off}")
                }
                Malform::TcpDataOffsetSmall => {
                    let off = find(rng, &[Mark::Tcp])?;
                    let hl = rng.range(0, 4) * 4;
                    let mut p = tcp::Packet::new_unchecked(&mut bytes[off..]);
                    p.set_header_len(hl);
                    format!(" tcp_hl={hl}@{off}")
                }
                Malform::UdpLenSmall => {
                    let off = find(rng, &[Mark::Udp])?;
                    let l = rng.range(0, 7) as u16;
                    let mut p = udp::Packet::new_unchecked(&mut bytes[off..]);
                    p.set_len(l);
                    format!(" udp_len={l}@{off}")
                }
                Malform::GeneveOptOverrun => {
                    let off = find(rng, &[Mark::Geneve])?;
                    let p = GenevePacket::new_unchecked(&bytes[off..]);
                    let opts_len = p.options_len();
                    if opts_len == 0 {
                        return None;
                    }
                    // Walk to the last option and make it claim more words
                    // than are left in the options area.
                    let base = off + protocol::wire::GENEVE_HEADER_LEN;
                    let mut at = 0;
                    loop {
                        let len = 4 + 4 * usize::from(bytes[base + at + 3] & 0x1f);
                        if at + len >= opts_len {
                            break;
                        }
                        at += len;
                    }
                    let left_words = (opts_len - at - 4) / 4;
                    let new = rng.range(left_words + 1, 31);
                    if new > 31 {
                        return None;
                    }
                    bytes[base + at + 3] = (bytes[base + at + 3] & 0xe0) | new as u8;
                    format!(" geneve_opt_len={new}words@{}", base + at)
                }
                Malform::BadIpVersion => {
                    let off = find(rng, &[Mark::Ipv4, Mark::Ipv6])?;
                    let is_v4 = bytes[off] >> 4 == 4;
                    let v = loop {
                        let v = rng.below(16) as u8;
                        if v != 4 && v != 6 {
                            break v;
                        }
                    };
                    if is_v4 {
                        ipv4::Packet::new_unchecked(&mut bytes[off..]).set_version(v);
                    } else {
                        ipv6::Packet::new_unchecked(&mut bytes[off..]).set_version(v);
                    }
                    format!(" ipver={v}@{off}")
                }
            },
        };
        if let Variant::Malformed(m) = variant
            && m != Malform::Truncated
        {
            refill_enclosing_udp(&mut bytes, &marks, &what);
        }
        Some(Generated {
            bytes,
            variant,
            desc: format!("{desc}{what}"),
        })
    }

    /// An Ethernet frame: 0..2 VLAN tags, then ARP / IPv4 / IPv6.
    /// `depth` 1 is the frame inside a tunnel (no further tunnels).
    fn frame(&mut self, depth: u8, force: Option<L4>) -> Built {
        let rng = &mut self.rng;
        let tags = if depth == 0 {
            match rng.below(10) {
                0..=5 => 0,
                6..=7 => 1,
                _ => 2,
            }
        } else {
            usize::from(rng.pct(15))
        };
        let kind = if force.is_some() {
            rng.range(1, 2)
        } else {
            match rng.below(20) {
                0..=1 => 0, // ARP
                2..=11 => 1,
                _ => 2,
            }
        };
        let (inner, ethertype) = match kind {
            0 => (self.arp(), EtherType::Arp),
            1 => (self.ipv4_packet(depth, force), EtherType::Ipv4),
            _ => (self.ipv6_packet(depth, force), EtherType::Ipv6),
        };
        let rng = &mut self.rng;
        // Tags, innermost first.
        let mut built = inner;
        let mut next_type = ethertype;
        for t in 0..tags {
            let outer_of_two = tags == 2 && t == 1;
            let repr = vlan::Repr {
                pcp: rng.below(8) as u8,
                dei: rng.pct(10),
                vid: rng.below(4096) as u16,
                ethertype: next_type,
            };
            let mut buf = vec![0u8; repr.buffer_len(built.bytes.len())];
            repr.emit(&mut vlan::Packet::new_unchecked(&mut buf[..]));
            buf[vlan::HEADER_LEN..].copy_from_slice(&built.bytes);
            next_type = if outer_of_two {
                EtherType::QinQ
            } else {
                EtherType::Vlan
            };
            built = built.wrap(buf, vlan::HEADER_LEN, None, &format!("vlan{}", repr.vid));
        }
        let repr = EthernetRepr {
            src_addr: rng.mac(),
            dst_addr: if rng.pct(10) {
                EthernetAddress::BROADCAST
            } else {
                rng.mac()
            },
            ethertype: next_type,
        };
        let mut buf = vec![0u8; repr.buffer_len(built.bytes.len())];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        buf[protocol::wire::ETHERNET_HEADER_LEN..].copy_from_slice(&built.bytes);
        built.wrap(buf, protocol::wire::ETHERNET_HEADER_LEN, None, "eth")
    }

    fn arp(&mut self) -> Built {
        let rng = &mut self.rng;
        let request = rng.bool();
        let repr = arp::Repr {
            operation: if request {
                arp::Operation::Request
            } else {
                arp::Operation::Reply
            },
            source_hardware_addr: rng.mac(),
            source_protocol_addr: rng.ipv4(),
            target_hardware_addr: if request {
                EthernetAddress::ZERO
            } else {
                rng.mac()
            },
            target_protocol_addr: rng.ipv4(),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut arp::Packet::new_unchecked(&mut buf[..]));
        Built {
            bytes: buf,
            marks: vec![],
            desc: if request { "arp-req" } else { "arp-rep" }.into(),
        }
    }

    fn pick_l4(&mut self, depth: u8, force: Option<L4>) -> L4 {
        if let Some(f) = force {
            // A forced tunnel or L4 may sit at either depth; tunnels only
            // at depth 0.
            if depth == 0 || !matches!(f, L4::Vxlan | L4::Geneve) {
                return f;
            }
        }
        let tunnels = depth == 0;
        match self.rng.below(if tunnels { 22 } else { 16 }) {
            0..=5 => L4::Tcp,
            6..=10 => L4::Udp,
            11..=13 => L4::Icmp,
            14..=15 => L4::Sctp,
            16..=18 => L4::Vxlan,
            _ => L4::Geneve,
        }
    }

    /// Builds the IP payload for `l4` given the addresses.
    fn l4(&mut self, l4: L4, net: Net, depth: u8, frag_first: bool) -> Built {
        match l4 {
            L4::Tcp => self.tcp(net),
            L4::Udp => {
                let payload_len = self.rng.range(0, 64);
                let payload = self.rng.bytes(payload_len);
                let (sp, dp) = (self.rng.port(), self.rng.port());
                self.udp(
                    net,
                    sp,
                    dp,
                    Built {
                        bytes: payload,
                        marks: vec![],
                        desc: "data".into(),
                    },
                    frag_first,
                )
            }
            L4::Icmp => match net {
                Net::V4(..) => self.icmpv4(),
                Net::V6(s, d) => self.icmpv6(s, d),
            },
            L4::Sctp => self.sctp(),
            L4::Vxlan | L4::Geneve => {
                let _ = depth;
                let inner = self.frame(1, None);
                let tun = if l4 == L4::Vxlan {
                    self.vxlan(inner)
                } else {
                    self.geneve(inner)
                };
                let sp = self.rng.range(49152, 65535) as u16;
                let dp = if l4 == L4::Vxlan {
                    vxlan_port()
                } else {
                    geneve_port()
                };
                self.udp(net, sp, dp, tun, false)
            }
        }
    }

    fn udp(&mut self, net: Net, sp: u16, dp: u16, inner: Built, no_sum: bool) -> Built {
        let repr = udp::Repr {
            src_port: sp,
            dst_port: dp,
            payload_len: inner.bytes.len(),
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut p = udp::Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&inner.bytes);
        // Over IPv4 a zero checksum ("none") is legal: use it sometimes.
        let zero = matches!(net, Net::V4(..)) && (no_sum || self.rng.pct(20));
        if !zero {
            match net {
                Net::V4(s, d) => p.fill_checksum_v4(s, d),
                Net::V6(s, d) => p.fill_checksum_v6(s, d),
            }
        }
        inner.wrap(buf, udp::HEADER_LEN, Some(Mark::Udp), "udp")
    }

    fn tcp(&mut self, net: Net) -> Built {
        let rng = &mut self.rng;
        let flags = tcp::TcpFlags(rng.u16() & 0x1ff);
        let repr = tcp::Repr {
            src_port: rng.port(),
            dst_port: rng.port(),
            seq_number: rng.u32(),
            ack_number: if rng.pct(20) { 0 } else { rng.u32() },
            flags,
            window_len: rng.u16(),
            urgent_at: if flags.contains(tcp::TcpFlags::URG) {
                rng.u16()
            } else {
                0
            },
        };
        let opts = tcp_options(rng);
        let n = rng.range(0, 48);
        let payload = rng.bytes(n);
        let hl = repr.header_len() + opts.len();
        let mut buf = vec![0u8; hl + payload.len()];
        let mut p = tcp::Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.set_header_len(hl);
        p.options_mut().copy_from_slice(&opts);
        p.payload_mut().copy_from_slice(&payload);
        match net {
            Net::V4(s, d) => p.fill_checksum_v4(s, d),
            Net::V6(s, d) => p.fill_checksum_v6(s, d),
        }
        Built {
            bytes: buf,
            marks: vec![(Mark::Tcp, 0)],
            desc: format!("tcp{:#05x}+{}opt", flags.0, opts.len()),
        }
    }

    fn icmpv4(&mut self) -> Built {
        let rng = &mut self.rng;
        let data_owned;
        let kind = rng.below(3);
        let repr = match kind {
            0 | 1 => {
                let n = rng.range(0, 56);
                data_owned = rng.bytes(n);
                let (id, seq) = (rng.u16(), rng.u16());
                if kind == 0 {
                    icmpv4::Repr::echo_request(id, seq, &data_owned)
                } else {
                    icmpv4::Repr::echo_reply(id, seq, &data_owned)
                }
            }
            _ => {
                // The start of an offending datagram: an IPv4 header with
                // DF and 8 bytes of UDP.
                let ip = ipv4::Repr {
                    src_addr: rng.ipv4(),
                    dst_addr: rng.ipv4(),
                    next_header: IpProtocol::Udp,
                    payload_len: rng.range(1400, 9000),
                    ttl: rng.range(1, 255) as u8,
                    dscp: 0,
                    ecn: 0,
                    ident: rng.u16(),
                    dont_frag: true,
                    more_frags: false,
                    frag_offset: 0,
                };
                let mut orig = vec![0u8; ip.header_len() + 8];
                ip.emit(&mut ipv4::Packet::new_unchecked(&mut orig[..]));
                let l4 = rng.bytes(8);
                orig[ip.header_len()..].copy_from_slice(&l4);
                data_owned = orig;
                icmpv4::Repr::frag_needed(rng.range(576, 1500) as u16, &data_owned)
            }
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]));
        Built {
            bytes: buf,
            marks: vec![(Mark::Icmpv4, 0)],
            desc: ["icmp-echo", "icmp-echoreply", "icmp-fragneeded"][kind].into(),
        }
    }

    fn icmpv6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) -> Built {
        let rng = &mut self.rng;
        let kind = rng.below(4);
        let mut buf;
        match kind {
            0 | 1 => {
                let n = rng.range(0, 56);
                let data = rng.bytes(n);
                let (id, seq) = (rng.u16(), rng.u16());
                let repr = if kind == 0 {
                    icmpv6::Repr::echo_request(id, seq, &data)
                } else {
                    icmpv6::Repr::echo_reply(id, seq, &data)
                };
                buf = vec![0u8; repr.buffer_len()];
                repr.emit(&mut icmpv6::Packet::new_unchecked(&mut buf[..]));
            }
            _ => {
                let target_addr = rng.ipv6();
                let lladdr = Some(rng.mac());
                let repr = if kind == 2 {
                    icmpv6::NdiscRepr::NeighborSolicit {
                        target_addr,
                        lladdr,
                    }
                } else {
                    icmpv6::NdiscRepr::NeighborAdvert {
                        flags: icmpv6::NeighborFlags::from_byte(rng.u8() & 0xe0),
                        target_addr,
                        lladdr,
                    }
                };
                buf = vec![0u8; repr.buffer_len()];
                repr.emit(&mut icmpv6::Packet::new_unchecked(&mut buf[..]));
            }
        }
        icmpv6::Packet::new_unchecked(&mut buf[..]).fill_checksum(src, dst);
        Built {
            bytes: buf,
            marks: vec![(Mark::Icmpv6, 0)],
            desc: ["icmp6-echo", "icmp6-echoreply", "icmp6-ns", "icmp6-na"][kind].into(),
        }
    }

    fn sctp(&mut self) -> Built {
        let rng = &mut self.rng;
        let repr = sctp::Repr {
            src_port: rng.port(),
            dst_port: rng.port(),
            verification_tag: rng.u32(),
        };
        // One DATA chunk (RFC 9260 3.3.1): TSN, stream id, stream seq,
        // PPID, user data; padded to 4 bytes.
        let n = rng.range(1, 40);
        let mut chunk = vec![0u8, 0x03];
        chunk.extend_from_slice(&(16 + n as u16).to_be_bytes());
        chunk.extend_from_slice(&rng.u32().to_be_bytes());
        chunk.extend_from_slice(&rng.u16().to_be_bytes());
        chunk.extend_from_slice(&rng.u16().to_be_bytes());
        chunk.extend_from_slice(&rng.u32().to_be_bytes());
        chunk.extend(rng.bytes(n));
        while chunk.len() % 4 != 0 {
            chunk.push(0);
        }
        let mut buf = vec![0u8; repr.buffer_len(chunk.len())];
        let mut p = sctp::Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&chunk);
        p.fill_checksum();
        Built {
            bytes: buf,
            marks: vec![(Mark::Sctp, 0)],
            desc: "sctp-data".into(),
        }
    }

    fn vxlan(&mut self, inner: Built) -> Built {
        let repr = VxlanRepr {
            vni: Vni::new_masked(self.rng.u32()),
        };
        let mut buf = vec![0u8; repr.buffer_len(inner.bytes.len())];
        let mut p = VxlanPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&inner.bytes);
        inner.wrap(buf, protocol::wire::VXLAN_HEADER_LEN, None, "vxlan")
    }

    fn geneve(&mut self, inner: Built) -> Built {
        let rng = &mut self.rng;
        let mut opts = protocol::wire::GeneveOptionsBuilder::<256>::new();
        let nopts = rng.below(4);
        for _ in 0..nopts {
            let any = rng.u16();
            let class = rng.pick(&[0x0000u16, 0x0101, 0x0132, 0xffff, any]);
            let mut kind = rng.u8() & 0x7f;
            if rng.pct(40) {
                kind |= protocol::wire::geneve::OPTION_TYPE_CRITICAL;
            }
            let n = 4 * rng.below(4);
            let data = rng.bytes(n);
            opts.push(class, kind, &data).unwrap();
        }
        // Without an inner Ethernet header the payload must be IP: strip
        // the Ethernet header of the inner frame (only when it has no tag).
        let bare = inner.bytes.len() > 14
            && matches!(
                u16::from_be_bytes([inner.bytes[12], inner.bytes[13]]),
                0x0800 | 0x86dd
            )
            && rng.pct(25);
        let (proto, payload, skip) = if bare {
            let et = EtherType::from(u16::from_be_bytes([inner.bytes[12], inner.bytes[13]]));
            (et, inner.bytes[14..].to_vec(), 14)
        } else {
            (EtherType::TransparentEthernet, inner.bytes.clone(), 0)
        };
        let repr = GeneveRepr {
            vni: Vni::new_masked(rng.u32()),
            protocol_type: proto,
            oam: rng.pct(10),
            critical: opts.has_critical(),
            options: opts.as_bytes(),
        };
        let hl = repr.header_len();
        let mut buf = vec![0u8; repr.buffer_len(payload.len())];
        let mut p = GenevePacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&payload);
        let mut inner = inner;
        inner.marks.retain(|m| m.1 >= skip);
        for m in &mut inner.marks {
            m.1 -= skip;
        }
        let mut b = inner.wrap(buf, hl, Some(Mark::Geneve), &format!("geneve{nopts}opt"));
        if bare {
            b.desc = b.desc.replacen("/eth", "/(no-eth)", 1);
        }
        b
    }

    fn ipv4_packet(&mut self, depth: u8, force: Option<L4>) -> Built {
        let l4 = self.pick_l4(depth, force);
        let rng = &mut self.rng;
        let (src, dst) = (rng.ipv4(), rng.ipv4());
        // Fragments: 10% first fragments, 10% later fragments.
        let frag = if matches!(l4, L4::Tcp | L4::Udp | L4::Icmp | L4::Sctp) && force.is_none() {
            match rng.below(10) {
                0 => 1,
                1 => 2,
                _ => 0,
            }
        } else {
            0
        };
        let proto = match l4 {
            L4::Tcp => IpProtocol::Tcp,
            L4::Icmp => IpProtocol::Icmp,
            L4::Sctp => IpProtocol::Sctp,
            _ => IpProtocol::Udp,
        };
        let payload = if frag == 2 {
            let n = 8 * rng.range(1, 8);
            Built {
                bytes: rng.bytes(n),
                marks: vec![],
                desc: "frag-data".into(),
            }
        } else {
            let mut b = self.l4(l4, Net::V4(src, dst), depth, frag == 1);
            if frag == 1 {
                // tshark cannot check an L4 checksum of a fragment: no
                // defects there.
                b.marks.clear();
            }
            b
        };
        let rng = &mut self.rng;
        let opts = ipv4_options(rng);
        let repr = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: proto,
            payload_len: payload.bytes.len(),
            ttl: rng.range(1, 255) as u8,
            dscp: rng.below(64) as u8,
            ecn: rng.below(4) as u8,
            ident: rng.u16(),
            dont_frag: frag == 0 && rng.pct(50),
            more_frags: frag == 1 || (frag == 2 && rng.bool()),
            frag_offset: if frag == 2 {
                8 * rng.range(1, 1000) as u16
            } else {
                0
            },
        };
        let hl = repr.header_len() + opts.len();
        let total = hl + payload.bytes.len();
        let mut buf = vec![0u8; total];
        let mut p = ipv4::Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.set_header_len(hl as u8);
        p.set_total_len(total as u16);
        p.options_mut().copy_from_slice(&opts);
        p.payload_mut().copy_from_slice(&payload.bytes);
        p.fill_checksum();
        let d = format!(
            "ip4{}{}",
            if opts.is_empty() { "" } else { "+opt" },
            ["", "(frag-first)", "(frag-later)"][frag]
        );
        payload.wrap(buf, hl, Some(Mark::Ipv4), &d)
    }

    fn ipv6_packet(&mut self, depth: u8, force: Option<L4>) -> Built {
        let l4 = self.pick_l4(depth, force);
        let rng = &mut self.rng;
        let (src, dst) = (rng.ipv6(), rng.ipv6());
        // Extension headers, in RFC 8200 order, each with some probability.
        let hbh = rng.pct(20);
        let dst1 = rng.pct(10);
        let routing = rng.pct(10);
        let frag = if matches!(l4, L4::Tcp | L4::Udp | L4::Icmp | L4::Sctp) && force.is_none() {
            match rng.below(10) {
                0 => 1,
                1 => 2,
                _ => 0,
            }
        } else {
            0
        };
        let dst2 = rng.pct(10);
        let proto = match l4 {
            L4::Tcp => IpProtocol::Tcp,
            L4::Icmp => IpProtocol::Icmpv6,
            L4::Sctp => IpProtocol::Sctp,
            _ => IpProtocol::Udp,
        };
        let mut chain: Vec<IpProtocol> = vec![];
        if hbh {
            chain.push(IpProtocol::HopByHop);
        }
        if dst1 {
            chain.push(IpProtocol::Ipv6Opts);
        }
        if routing {
            chain.push(IpProtocol::Ipv6Route);
        }
        if frag != 0 {
            chain.push(IpProtocol::Ipv6Frag);
        }
        if dst2 && frag != 2 {
            chain.push(IpProtocol::Ipv6Opts);
        }
        let upper = if frag == 2 {
            let n = 8 * rng.range(1, 8);
            Built {
                bytes: rng.bytes(n),
                marks: vec![],
                desc: "frag-data".into(),
            }
        } else {
            let mut b = self.l4(l4, Net::V6(src, dst), depth, frag == 1);
            if frag == 1 {
                b.marks.clear();
            }
            b
        };
        let rng = &mut self.rng;
        // Emit the extension headers back to front.
        let mut built = upper;
        let mut next = proto;
        for &h in chain.iter().rev() {
            let (hdr, name) = match h {
                IpProtocol::Ipv6Frag => {
                    let repr = ipv6::FragmentRepr {
                        next_header: next,
                        frag_offset: if frag == 2 {
                            8 * rng.range(1, 1000) as u16
                        } else {
                            0
                        },
                        more_frags: frag == 1 || rng.bool(),
                        ident: rng.u32(),
                    };
                    let mut b = vec![0u8; repr.header_len()];
                    repr.emit(&mut ipv6::FragmentHeader::new_unchecked(&mut b[..]));
                    (b, "frag")
                }
                IpProtocol::Ipv6Route => {
                    // Segment routing header (type 4) with segments left 0
                    // and one segment: the destination stays final.
                    let mut b = vec![0u8; 24];
                    let mut e = ipv6::ExtHeader::new_unchecked(&mut b[..]);
                    e.set_next_header(next);
                    e.set_hdr_ext_len(2);
                    let d = e.data_mut();
                    d[0] = 4; // routing type
                    d[1] = 0; // segments left
                    d[2] = 0; // last entry
                    d[6..22].copy_from_slice(&dst.octets());
                    (b, "rh")
                }
                _ => {
                    // Options area: PadN / Pad1 padding plus maybe an
                    // unknown skippable option (type 0x1e, "skip").
                    let words = rng.range(0, 2);
                    let len = 8 * (words + 1);
                    let mut b = vec![0u8; len];
                    let mut e = ipv6::ExtHeader::new_unchecked(&mut b[..]);
                    e.set_next_header(next);
                    e.set_hdr_ext_len(words as u8);
                    let d = e.data_mut();
                    fill_tlv_options(rng, d);
                    (
                        b,
                        if h == IpProtocol::HopByHop {
                            "hbh"
                        } else {
                            "dst"
                        },
                    )
                }
            };
            let l = hdr.len();
            let mut buf = hdr;
            buf.extend_from_slice(&built.bytes);
            built = built.wrap(buf, l, None, name);
            next = h;
        }
        let repr = ipv6::Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: next,
            payload_len: built.bytes.len(),
            hop_limit: rng.range(1, 255) as u8,
            traffic_class: rng.u8(),
            flow_label: rng.u32() & 0xfffff,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut p = ipv6::Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&built.bytes);
        built.wrap(buf, ipv6::HEADER_LEN, Some(Mark::Ipv6), "ip6")
    }
}

/// After a defect inside a tunnel, recomputes the checksums of the UDP
/// datagrams that enclose it (outermost last), so that the defect is the
/// only thing wrong with the packet. `what` ends with `@offset`.
fn refill_enclosing_udp(bytes: &mut [u8], marks: &[(Mark, usize)], what: &str) {
    let at: usize = what.rsplit('@').next().unwrap().parse().unwrap();
    for (i, &(m, off)) in marks.iter().enumerate().rev() {
        if m != Mark::Udp || off >= at {
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[off + 4], bytes[off + 5]]));
        if off + len <= at || u16::from_be_bytes([bytes[off + 6], bytes[off + 7]]) == 0 {
            continue;
        }
        // The addresses of the nearest IP header before it.
        let (ip, ipoff) = marks[..i]
            .iter()
            .rev()
            .find(|m| matches!(m.0, Mark::Ipv4 | Mark::Ipv6))
            .copied()
            .unwrap();
        if ip == Mark::Ipv4 {
            let h = ipv4::Packet::new_unchecked(&bytes[ipoff..]);
            let (s, d) = (h.src_addr(), h.dst_addr());
            udp::Packet::new_unchecked(&mut bytes[off..off + len]).fill_checksum_v4(s, d);
        } else {
            let h = ipv6::Packet::new_unchecked(&bytes[ipoff..]);
            let (s, d) = (h.src_addr(), h.dst_addr());
            udp::Packet::new_unchecked(&mut bytes[off..off + len]).fill_checksum_v6(s, d);
        }
    }
}

/// Fills an IPv6 options area (`data` of a hop-by-hop / destination header)
/// with a valid TLV sequence.
fn fill_tlv_options(rng: &mut Rng, d: &mut [u8]) {
    let mut at = 0;
    while at < d.len() {
        let left = d.len() - at;
        if left == 1 {
            d[at] = 0; // Pad1
            return;
        }
        if left >= 6 && rng.pct(40) {
            // An unknown option with action "skip" (00), 4 data bytes.
            d[at] = 0x1e;
            d[at + 1] = 4;
            for b in &mut d[at + 2..at + 6] {
                *b = rng.u8();
            }
            at += 6;
            continue;
        }
        // PadN over the rest.
        d[at] = 1;
        d[at + 1] = (left - 2) as u8;
        for b in &mut d[at + 2..] {
            *b = 0;
        }
        return;
    }
}

/// IPv4 options bytes (a multiple of 4, maybe empty): NOP, record route,
/// router alert, end of list.
fn ipv4_options(rng: &mut Rng) -> Vec<u8> {
    if !rng.pct(15) {
        return vec![];
    }
    let mut o = vec![];
    match rng.below(3) {
        0 => o.extend_from_slice(&[148, 4, 0, 0]), // router alert
        1 => {
            // record route with 2 slots, pointer at the first
            o.extend_from_slice(&[7, 11, 4]);
            o.extend_from_slice(&[0; 8]);
        }
        _ => o.extend_from_slice(&[1, 1, 1]),
    }
    while o.len() % 4 != 0 {
        o.push(0); // EOL padding
    }
    o
}

/// TCP options bytes (a multiple of 4, maybe empty).
fn tcp_options(rng: &mut Rng) -> Vec<u8> {
    let mut o = vec![];
    if rng.pct(50) {
        return o;
    }
    if rng.bool() {
        o.extend_from_slice(&[2, 4]);
        o.extend_from_slice(&(rng.range(536, 9000) as u16).to_be_bytes());
    }
    if rng.bool() {
        o.extend_from_slice(&[1, 3, 3, rng.below(15) as u8]);
    }
    if rng.bool() {
        o.extend_from_slice(&[4, 2]);
    }
    if rng.bool() {
        o.extend_from_slice(&[8, 10]);
        o.extend_from_slice(&rng.u32().to_be_bytes());
        o.extend_from_slice(&rng.u32().to_be_bytes());
    }
    while o.len() % 4 != 0 {
        o.push(1); // NOP padding
    }
    o
}
