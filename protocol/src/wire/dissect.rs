//! A tcpdump-like dissector over every header in this module: one line per
//! layer, inner frames of VXLAN/Geneve indented. Used by `weftctl`, traces
//! and the `wire_parse` fuzz target (which checks that it never panics on
//! any input).
//!
//! It prints what the views say and stops at the first layer that fails its
//! length or field check, printing the error there. It does not verify
//! checksums (the data path never does either).

use core::fmt::{self, Write};

use super::{
    ArpPacket, EtherType, EthernetFrame, GenevePacket, Icmpv4Packet, Icmpv6Packet, IpProtocol,
    Ipv4Packet, Ipv6Packet, NdiscRepr, SctpPacket, TcpPacket, UdpPacket, VlanPacket, VxlanPacket,
    walk_extension_headers,
};

/// Deepest tunnel nesting the dissector follows.
pub const MAX_TUNNEL_DEPTH: usize = 3;
/// Most VLAN tags the dissector walks before giving up.
pub const MAX_VLAN_TAGS: usize = 8;

/// Writes one line per header of the Ethernet frame `frame` to `out`.
pub fn dissect<W: Write>(frame: &[u8], out: &mut W) -> fmt::Result {
    Dissector { out, depth: 0 }.ethernet(frame)
}

/// [`dissect`] into a new `String` (for tools and tests).
pub fn dissect_to_string(frame: &[u8]) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = dissect(frame, &mut s);
    s
}

struct Dissector<'w, W> {
    out: &'w mut W,
    depth: usize,
}

impl<W: Write> Dissector<'_, W> {
    fn line(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        for _ in 0..self.depth {
            self.out.write_str("    ")?;
        }
        self.out.write_fmt(args)?;
        self.out.write_char('\n')
    }

    fn ethernet(&mut self, b: &[u8]) -> fmt::Result {
        let eth = match EthernetFrame::new_checked(b) {
            Ok(e) => e,
            Err(e) => return self.line(format_args!("EthernetII ({e}, {} bytes)", b.len())),
        };
        self.line(format_args!("{eth}"))?;
        let mut ty = eth.ethertype();
        let mut rest = eth.payload();
        let mut tags = 0;
        while ty.is_vlan_tpid() {
            if tags == MAX_VLAN_TAGS {
                return self.line(format_args!("(more than {MAX_VLAN_TAGS} VLAN tags)"));
            }
            let v = match VlanPacket::new_checked(rest) {
                Ok(v) => v,
                Err(e) => return self.line(format_args!("{ty} tag ({e})")),
            };
            self.line(format_args!("{v}"))?;
            ty = v.ethertype();
            rest = v.payload();
            tags += 1;
        }
        self.l3(ty, rest)
    }

    fn l3(&mut self, ty: EtherType, b: &[u8]) -> fmt::Result {
        match ty {
            EtherType::Arp => match ArpPacket::new_checked(b) {
                Ok(p) => self.line(format_args!("{p}")),
                Err(e) => self.line(format_args!("ARP ({e})")),
            },
            EtherType::Ipv4 => {
                let p = match Ipv4Packet::new_checked(b) {
                    Ok(p) => p,
                    Err(e) => return self.line(format_args!("IPv4 ({e})")),
                };
                self.line(format_args!("{p}"))?;
                if p.is_later_fragment() {
                    return self.line(format_args!("(later fragment: no upper-layer header)"));
                }
                self.l4(p.next_header(), p.payload())
            }
            EtherType::Ipv6 => {
                let p = match Ipv6Packet::new_checked(b) {
                    Ok(p) => p,
                    Err(e) => return self.line(format_args!("IPv6 ({e})")),
                };
                self.line(format_args!("{p}"))?;
                let payload = p.payload();
                match walk_extension_headers(p.next_header(), payload) {
                    Ok(w) => {
                        if w.count > 0 {
                            self.line(format_args!(
                                "IPv6 extension headers: {} then {}",
                                w.count, w.protocol
                            ))?;
                        }
                        if let Some(f) = w.fragment.filter(|f| f.offset != 0) {
                            return self.line(format_args!(
                                "(later fragment offset={}: no upper-layer header)",
                                f.offset
                            ));
                        }
                        match payload.get(w.offset..) {
                            Some(rest) => self.l4(w.protocol, rest),
                            None => self.line(format_args!("(extension headers overrun)")),
                        }
                    }
                    Err(e) => self.line(format_args!("IPv6 extension headers ({e})")),
                }
            }
            other => self.line(format_args!("{other} payload, {} bytes", b.len())),
        }
    }

    fn l4(&mut self, proto: IpProtocol, b: &[u8]) -> fmt::Result {
        match proto {
            IpProtocol::Tcp => match TcpPacket::new_checked(b) {
                Ok(p) => self.line(format_args!("{p}")),
                Err(e) => self.line(format_args!("TCP ({e})")),
            },
            IpProtocol::Udp => {
                let p = match UdpPacket::new_checked(b) {
                    Ok(p) => p,
                    Err(e) => return self.line(format_args!("UDP ({e})")),
                };
                self.line(format_args!("{p}"))?;
                match p.dst_port() {
                    super::vxlan::UDP_PORT => self.vxlan(p.payload()),
                    super::geneve::UDP_PORT => self.geneve(p.payload()),
                    _ => Ok(()),
                }
            }
            IpProtocol::Sctp => match SctpPacket::new_checked(b) {
                Ok(p) => self.line(format_args!("{p}")),
                Err(e) => self.line(format_args!("SCTP ({e})")),
            },
            IpProtocol::Icmp => match Icmpv4Packet::new_checked(b) {
                Ok(p) => self.line(format_args!("{p}")),
                Err(e) => self.line(format_args!("ICMPv4 ({e})")),
            },
            IpProtocol::Icmpv6 => {
                let p = match Icmpv6Packet::new_checked(b) {
                    Ok(p) => p,
                    Err(e) => return self.line(format_args!("ICMPv6 ({e})")),
                };
                self.line(format_args!("{p}"))?;
                match NdiscRepr::parse(&p) {
                    Ok(nd) => self.line(format_args!("{nd}")),
                    Err(super::ParseError::Unsupported) => Ok(()),
                    Err(e) => self.line(format_args!("ND ({e})")),
                }
            }
            other => self.line(format_args!("{other} payload, {} bytes", b.len())),
        }
    }

    fn vxlan(&mut self, b: &[u8]) -> fmt::Result {
        let p = match VxlanPacket::new_checked(b) {
            Ok(p) => p,
            Err(e) => return self.line(format_args!("VXLAN ({e})")),
        };
        self.line(format_args!("{p}"))?;
        self.inner(|d| d.ethernet(p.payload()))
    }

    fn geneve(&mut self, b: &[u8]) -> fmt::Result {
        let p = match GenevePacket::new_checked(b) {
            Ok(p) => p,
            Err(e) => return self.line(format_args!("Geneve ({e})")),
        };
        self.line(format_args!("{p}"))?;
        for opt in p.options_iter() {
            match opt {
                Ok(o) => self.line(format_args!("  option {o}"))?,
                Err(e) => return self.line(format_args!("  option ({e})")),
            }
        }
        let ty = p.protocol_type();
        let payload = p.payload();
        match ty {
            EtherType::TransparentEthernet => self.inner(|d| d.ethernet(payload)),
            EtherType::Ipv4 | EtherType::Ipv6 => self.inner(|d| d.l3(ty, payload)),
            other => self.line(format_args!(
                "Geneve payload type {other}, {} bytes",
                payload.len()
            )),
        }
    }

    fn inner(&mut self, f: impl FnOnce(&mut Self) -> fmt::Result) -> fmt::Result {
        if self.depth == MAX_TUNNEL_DEPTH {
            return self.line(format_args!(
                "(tunnels nested deeper than {MAX_TUNNEL_DEPTH})"
            ));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packet 1 of `tcpdump-vxlan.pcap` (tcpdump test suite): VXLAN VNI 100
    /// carrying an ICMP echo request 192.168.203.3 -> 192.168.203.5.
    const VXLAN_ICMP: &str = "00163e0871cf36dc851eb340080045000086d2c0400040115152c0a8cb01c0a8ca01b05d12b50072\
        0000080000000000640000308801000200163e37f604080045000054000040004001234fc0a8cb03\
        c0a8cb050800f6f2050c0001fce2975100000000a6f8020000000000101112131415161718191a1b\
        1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn vxlan_frame_layers() {
        let out = dissect_to_string(&hex(VXLAN_ICMP));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 7, "{out}");
        assert!(
            lines[0].starts_with("EthernetII src=36:dc:85:1e:b3:40"),
            "{out}"
        );
        assert!(lines[1].starts_with("IPv4"), "{out}");
        assert!(lines[2].starts_with("UDP"), "{out}");
        assert!(lines[3].contains("100"), "VNI in {out}");
        assert!(lines[4].starts_with("    EthernetII"), "{out}");
        assert!(lines[5].starts_with("    IPv4"), "{out}");
        assert!(lines[6].starts_with("    ICMP"), "{out}");
    }

    #[test]
    fn every_truncation_prints_without_panicking() {
        let f = hex(VXLAN_ICMP);
        for n in 0..f.len() {
            let out = dissect_to_string(&f[..n]);
            assert!(!out.is_empty());
        }
    }
}
