//! ACLs, address sets and port groups (OVN's `ACL`, `Address_Set`,
//! `Port_Group` tables, typed).
//!
//! # Evaluation (what the compiler must implement)
//!
//! - A `FromLport` ACL applies to packets *sent by* a port of its port group
//!   (OVN's ingress ACL stage: Kubernetes egress policy); a `ToLport` ACL to
//!   packets *delivered to* a port of the group (egress ACL stage: Kubernetes
//!   ingress policy). Both stages run on the node of that port.
//! - Tiers are evaluated in order (lower first); within a tier the highest
//!   priority matching ACL decides. No matching ACL at all = allow (a pod
//!   nobody isolates talks freely, as in Kubernetes).
//! - An ACL matches when the port is in `applies_to`, the peer address (the
//!   destination for `FromLport`, the source for `ToLport`) is in `peer`, and
//!   the traffic matches one of `traffic` (an OR list; empty = any IP
//!   traffic, ARP and ND included). So one ACL is a product of three sets:
//!   ports x peer prefixes x traffic clauses, which the compiler emits as a
//!   conjunctive match (flow count additive in the three sizes).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::ids::{AclId, AddressSetId, LogicalPortId, PortGroupId};
use super::network::L4Protocol;
use super::source::SourceRef;

/// OVN ACL direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AclDirection {
    /// Packets sent by the port (Kubernetes egress).
    FromLport,
    /// Packets delivered to the port (Kubernetes ingress).
    ToLport,
}

impl AclDirection {
    /// The other direction.
    pub fn reverse(self) -> AclDirection {
        match self {
            AclDirection::FromLport => AclDirection::ToLport,
            AclDirection::ToLport => AclDirection::FromLport,
        }
    }
}

/// What a matching ACL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AclAction {
    /// Let the packet continue.
    Allow,
    /// Drop silently.
    Drop,
    /// Drop and answer (TCP RST / ICMP unreachable) once the compiler can
    /// generate packets; until then it drops like `Drop`.
    Reject,
}

/// ACL tier: lower tiers are evaluated first; a match in a lower tier
/// decides even over a higher priority in a later tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AclTier {
    /// Made by the translation for the network to work at all (ARP, ND).
    Infrastructure = 0,
    /// Kubernetes NetworkPolicy (and its stateless return traffic).
    NetworkPolicy = 1,
}

/// Priorities used by the translation (OVN-Kubernetes uses the same shape:
/// default deny 1000, allow 1001).
pub mod priority {
    /// Infrastructure allows (ARP, ND).
    pub const INFRA_ALLOW: u16 = 3000;
    /// NetworkPolicy allow rules and their return traffic.
    pub const POLICY_ALLOW: u16 = 2000;
    /// Default deny of an isolated pod (per direction).
    pub const ISOLATION_DROP: u16 = 1000;
}

/// An inclusive L4 port range (`port` .. `endPort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port (>= start).
    pub end: u16,
}

impl PortRange {
    /// One port.
    pub fn single(p: u16) -> PortRange {
        PortRange { start: p, end: p }
    }

    /// True if `p` is inside.
    pub fn contains(&self, p: u16) -> bool {
        self.start <= p && p <= self.end
    }

    /// The range as value/mask pairs (`tp_dst=0x1f90/0xfff0`), the minimal
    /// cover of prefix blocks, for the compiler.
    pub fn to_masks(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut lo = u32::from(self.start);
        let hi = u32::from(self.end);
        while lo <= hi {
            // Largest aligned block starting at lo that fits in [lo, hi].
            let mut size: u32 = if lo == 0 {
                1 << 16
            } else {
                1 << lo.trailing_zeros()
            };
            while lo + size - 1 > hi {
                size >>= 1;
            }
            let mask = !(size - 1) & 0xffff;
            out.push((lo as u16, mask as u16));
            lo += size;
        }
        out
    }
}

/// One traffic clause of an ACL match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Traffic {
    /// ARP (any opcode).
    Arp,
    /// IPv6 Neighbor Discovery (ICMPv6 types 133 to 137).
    NeighborDiscovery,
    /// IP of one L4 protocol, optionally restricted by port ranges.
    L4 {
        /// Protocol.
        protocol: L4Protocol,
        /// Destination port range (None = any).
        dst_ports: Option<PortRange>,
        /// Source port range (None = any); set by return-traffic ACLs.
        src_ports: Option<PortRange>,
        /// Only TCP segments with ACK set (no pure SYN): return traffic of a
        /// TCP connection never opens a new one. Ignored for UDP/SCTP.
        tcp_ack: bool,
    },
    /// ICMP (IPv4) or ICMPv6 messages of one type, any code. Only the
    /// stateless return traffic uses it ([`ICMP_RETURN`]); the compiler
    /// emits ICMPv6 clauses only when the model has IPv6 addresses.
    Icmp {
        /// ICMPv6 (`true`) or ICMP for IPv4 (`false`).
        v6: bool,
        /// Message type.
        icmp_type: u8,
    },
}

/// The ICMP messages that answer or report on traffic in the other
/// direction, which the stateless return-traffic ACLs allow: ICMP echo
/// reply (0), destination unreachable (3, "fragmentation needed"
/// included), time exceeded (11); ICMPv6 destination unreachable (1),
/// packet too big (2), time exceeded (3), echo reply (129).
pub const ICMP_RETURN: [Traffic; 7] = [
    Traffic::Icmp {
        v6: false,
        icmp_type: 0,
    },
    Traffic::Icmp {
        v6: false,
        icmp_type: 3,
    },
    Traffic::Icmp {
        v6: false,
        icmp_type: 11,
    },
    Traffic::Icmp {
        v6: true,
        icmp_type: 1,
    },
    Traffic::Icmp {
        v6: true,
        icmp_type: 2,
    },
    Traffic::Icmp {
        v6: true,
        icmp_type: 3,
    },
    Traffic::Icmp {
        v6: true,
        icmp_type: 129,
    },
];

/// An IP block: `cidr` minus the `except` prefixes (NetworkPolicy `ipBlock`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct IpBlock {
    /// The block.
    pub cidr: IpNet,
    /// Holes (each inside `cidr`, validated by the loader).
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// `cidr` minus `except` as disjoint prefixes, so an address set (and a
    /// flow table, which cannot say "not") can match it. At most
    /// `except.len() * prefix-length-difference` prefixes.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let mut work = vec![self.cidr.trunc()];
        for ex in &self.except {
            let ex = ex.trunc();
            let mut next = Vec::new();
            for p in work {
                subtract(p, ex, &mut next);
            }
            work = next;
        }
        work.sort();
        work
    }
}

/// Pushes `p` minus `ex` (as prefixes) onto `out`.
fn subtract(p: IpNet, ex: IpNet, out: &mut Vec<IpNet>) {
    if ex.contains(&p) {
        return; // hole covers it
    }
    if !p.contains(&ex) {
        out.push(p); // disjoint
        return;
    }
    // ex is strictly inside p: split p in halves, recurse into the half
    // holding ex, keep the other.
    let Ok(mut halves) = p.subnets(p.prefix_len() + 1) else {
        return;
    };
    if let (Some(a), Some(b)) = (halves.next(), halves.next()) {
        for h in [a, b] {
            if h.contains(&ex) {
                subtract(h, ex, out);
            } else {
                out.push(h);
            }
        }
    }
}

/// What an address set holds the addresses of (for explanations and for
/// the return-traffic ACLs of the translation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AddressSetOrigin {
    /// The addresses of the ports of a port group.
    PortGroup(PortGroupId),
    /// The union of a NetworkPolicy rule's peers: pods and IP blocks.
    RulePeers {
        /// Pods (their ports) among the peers.
        ports: BTreeSet<LogicalPortId>,
        /// IP blocks among the peers.
        blocks: Vec<IpBlock>,
    },
}

/// A set of IP prefixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressSet {
    /// Id.
    pub id: AddressSetId,
    /// Unique name (`as/<ns>/<policy>/ingress/0`, ...).
    pub name: String,
    /// The prefixes (pod addresses as /32 or /128); sorted, deduplicated.
    pub addresses: BTreeSet<IpNet>,
    /// Where the addresses come from.
    pub origin: AddressSetOrigin,
}

impl AddressSet {
    /// True if `ip` is inside one of the prefixes.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|n| n.contains(&ip))
    }
}

/// A set of logical ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortGroup {
    /// Id.
    pub id: PortGroupId,
    /// Unique name (`pg/<ns>/<policy>`, `pg/<ns>/isolated-ingress`, ...).
    pub name: String,
    /// Member ports (sorted).
    pub ports: BTreeSet<LogicalPortId>,
}

/// Which ports an ACL is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AppliesTo {
    /// Every pod port of the model.
    AllPods,
    /// The ports of a group.
    Group(PortGroupId),
}

/// The match of an ACL (see the module doc for evaluation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclMatch {
    /// Ports it is attached to.
    pub applies_to: AppliesTo,
    /// Remote addresses: None = any address.
    pub peer: Option<AddressSetId>,
    /// Traffic clauses (OR); empty = any traffic.
    pub traffic: Vec<Traffic>,
}

/// An ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acl {
    /// Id (derived from the name).
    pub id: AclId,
    /// Unique name: `acl/<ns>/<policy>/ingress/0/allow[/g1]`, ...
    pub name: String,
    /// Direction.
    pub direction: AclDirection,
    /// Tier.
    pub tier: AclTier,
    /// Priority within the tier (higher wins).
    pub priority: u16,
    /// Action.
    pub action: AclAction,
    /// Match.
    pub matches: AclMatch,
    /// Source object and rule (for the flow cookie).
    pub source: SourceRef,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ipblock_except_is_complement_cover() {
        let b = IpBlock {
            cidr: net("10.0.0.0/24"),
            except: vec![net("10.0.0.128/25"), net("10.0.0.5/32")],
        };
        let p = b.prefixes();
        for last in 0u8..=255 {
            let ip: IpAddr = format!("10.0.0.{last}").parse().unwrap();
            let inside = p.iter().any(|n| n.contains(&ip));
            assert_eq!(inside, last < 128 && last != 5, "10.0.0.{last}");
        }
        assert!(
            !p.iter()
                .any(|n| n.contains(&"10.0.1.0".parse::<IpAddr>().unwrap()))
        );
        let whole = IpBlock {
            cidr: net("10.0.0.0/8"),
            except: vec![net("10.0.0.0/8")],
        };
        assert!(whole.prefixes().is_empty());
    }

    #[test]
    fn port_range_masks_cover_exactly() {
        for (s, e) in [
            (0u16, 65535u16),
            (80, 80),
            (1000, 2000),
            (1, 65535),
            (32768, 32769),
            (5, 9),
        ] {
            let r = PortRange { start: s, end: e };
            let masks = r.to_masks();
            for p in 0..=65535u16 {
                let hit = masks.iter().any(|&(v, m)| p & m == v);
                assert_eq!(hit, r.contains(p), "{s}-{e} port {p}");
            }
        }
        assert_eq!(
            PortRange {
                start: 0,
                end: 65535
            }
            .to_masks(),
            vec![(0, 0)]
        );
    }
}
