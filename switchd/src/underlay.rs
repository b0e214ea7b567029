//! The underlay as the kernel sees it: the node's tunnel endpoint address,
//! MAC and MTU, and a next-hop MAC for every remote tunnel endpoint, read
//! through rtnetlink on the control thread and published with the pipeline
//! snapshot (workers never do I/O for it).
//!
//! # The node's plumbing (native tunnelling, as OVS's userspace datapath)
//!
//! ```text
//!            underlay network (switch, bridge, NIC peer)
//!                          |
//!   node netns      eth0 (afpacket port, no IP)  <- UnderlayConfig.port
//!                          |
//!                   weft-switchd pipeline ---- tunnel ports geneve0 / vxlan0
//!                          |                         (encap / decap)
//!                   weft0 (internal port, ofport LOCAL, a TAP)  <- host_port
//!                     192.0.2.1/24, the routes, the neighbour table
//! ```
//!
//! The underlay NIC (here the node's veth `eth0`) is an `afpacket` port
//! and holds no address; the node's underlay address lives on an
//! `internal` port (a TAP, OVS's `LOCAL` on `br-phy`). Frames on `eth0`
//! addressed to the local endpoint's tunnel UDP port are decapsulated;
//! every other frame (ARP, the host's own SSH, ICMP, ...) goes to `weft0`
//! untouched, and everything the host sends on `weft0` goes out of `eth0`
//! untouched (`crate::tunnel`, the "host traffic" rule). So the kernel keeps
//! working as if `weft0` were the NIC: it answers ARP for its address,
//! resolves its neighbours, and owns the routing table.
//!
//! The other layout OVS allows (tunnel packets sent through a kernel UDP
//! socket) is not implemented: with a NIC that has the address, use a veth
//! pair or move the address to the internal port, as for OVS with DPDK.
//!
//! # Next hops (OVS `tnl-route` + `tnl-neigh-cache`)
//!
//! For each remote endpoint the daemon needs (the node table, fixed
//! `remote_ip`s of tunnel ports, and any remote a worker reported with
//! `TunnelEvent::MissingNextHop`):
//!
//! 1. `RTM_GETROUTE` for the remote: the output interface must be the
//!    host port's interface (else the remote is not reachable through the
//!    underlay; unresolved); the next hop is the gateway or the remote
//!    itself.
//! 2. The kernel neighbour table (`RTM_GETNEIGH` dump) on that interface:
//!    a usable entry (reachable, stale, delay, probe, permanent, noarp)
//!    gives the MAC.
//! 3. Otherwise a MAC learned from a received tunnel packet (its outer
//!    source MAC, if the remote is on-link), and the kernel is asked to
//!    resolve the next hop: `RTM_NEWNEIGH` with `NTF_USE` (what
//!    `ip neigh replace ... use` sends), so the kernel sends the ARP
//!    request or neighbour solicitation itself from `weft0`, through the
//!    switch; the reply reaches the kernel the same way.
//!
//! The table is re-read every [`REFRESH_MS`] (every [`RETRY_MS`] while
//! something is unresolved) and right after a missing next hop is
//! reported; a snapshot is republished only when it changed. Packets sent
//! to a remote with no next hop are dropped and counted
//! (`tunnel_no_next_hop`), as OVS drops them while it sends an ARP.
//!
//! # Thread safety
//!
//! [`Netlink`] is used only by the control thread's runtime; its socket is
//! bound to the namespace the daemon entered (`--netns`) before the runtime
//! started.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use protocol::ctl::{NeighbourOrigin, NextHopInfo};
use protocol::wire::EthernetAddress;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};

/// Re-read period when every next hop is resolved, milliseconds.
pub const REFRESH_MS: u64 = 1000;
/// Re-read period while a next hop is unresolved, milliseconds.
pub const RETRY_MS: u64 = 100;

/// Why a netlink query failed.
#[derive(Debug, thiserror::Error)]
pub enum UnderlayError {
    /// The netlink socket could not be opened.
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A request failed.
    #[error("netlink {what}: {reason}")]
    Request {
        /// Which request (and object).
        what: String,
        /// The kernel's or the library's error.
        reason: String,
    },
    /// An interface does not exist.
    #[error("interface {name}: not found in the switch's namespace")]
    NoSuchLink {
        /// The name.
        name: String,
    },
}

/// What the kernel says about one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFacts {
    /// Interface index.
    pub index: u32,
    /// Hardware address (Ethernet interfaces).
    pub mac: Option<EthernetAddress>,
    /// MTU.
    pub mtu: u32,
}

/// The result of a route lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteFacts {
    /// Output interface index.
    pub oif: u32,
    /// Gateway, if not on-link.
    pub gateway: Option<IpAddr>,
}

/// One kernel neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighFacts {
    /// Interface index.
    pub ifindex: u32,
    /// The neighbour's IP.
    pub ip: IpAddr,
    /// Its link-layer address, if known.
    pub mac: Option<EthernetAddress>,
    /// The state allows using the address (reachable, stale, delay, probe,
    /// permanent, noarp).
    pub usable: bool,
}

/// Everything a refresh read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderlayFacts {
    /// The host port's interface (holds the address).
    pub host: LinkFacts,
    /// The underlay port's interface (frames leave through it).
    pub underlay: LinkFacts,
    /// Local IPv4 endpoint (configured, else the host interface's first).
    pub local_ipv4: Option<Ipv4Addr>,
    /// Local IPv6 endpoint (configured, else the host interface's first
    /// global one).
    pub local_ipv6: Option<Ipv6Addr>,
    /// Route lookups by remote (`None`: no route).
    pub routes: BTreeMap<IpAddr, Option<RouteFacts>>,
    /// The neighbour table of the host interface.
    pub neighbours: Vec<NeighFacts>,
}

/// An rtnetlink connection in the switch's namespace.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

fn req_err(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> UnderlayError {
    let what = what.into();
    move |e| UnderlayError::Request {
        what,
        reason: e.to_string(),
    }
}

fn mac_of(bytes: &[u8]) -> Option<EthernetAddress> {
    <[u8; 6]>::try_from(bytes).ok().map(EthernetAddress)
}

impl Netlink {
    /// Opens a connection and spawns its driver on the current tokio
    /// runtime (call from the control thread, inside the runtime).
    ///
    /// # Errors
    /// If the socket cannot be opened.
    pub fn connect() -> Result<Netlink, UnderlayError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(UnderlayError::Socket)?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// The interface `name`.
    ///
    /// # Errors
    /// Not found, or the request failed.
    pub async fn link(&self, name: &str) -> Result<LinkFacts, UnderlayError> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let msg = match s.try_next().await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(UnderlayError::NoSuchLink { name: name.into() }),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.code.map(|c| c.get()) == Some(-libc::ENODEV) =>
            {
                return Err(UnderlayError::NoSuchLink { name: name.into() });
            }
            Err(e) => return Err(req_err(format!("link {name}"))(e)),
        };
        let mut f = LinkFacts {
            index: msg.header.index,
            mac: None,
            mtu: 0,
        };
        for a in &msg.attributes {
            match a {
                LinkAttribute::Address(b) => f.mac = mac_of(b),
                LinkAttribute::Mtu(m) => f.mtu = *m,
                _ => {}
            }
        }
        Ok(f)
    }

    /// The first IPv4 and the first global IPv6 address of interface
    /// `index`.
    ///
    /// # Errors
    /// The request failed.
    pub async fn addresses(
        &self,
        index: u32,
    ) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), UnderlayError> {
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let (mut v4, mut v6) = (None, None);
        while let Some(m) = s
            .try_next()
            .await
            .map_err(req_err(format!("addresses of ifindex {index}")))?
        {
            if m.header.index != index {
                continue;
            }
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a {
                    match ip {
                        IpAddr::V4(a) => {
                            v4.get_or_insert(*a);
                        }
                        IpAddr::V6(a) if !is_link_local(a) => {
                            v6.get_or_insert(*a);
                        }
                        IpAddr::V6(_) => {}
                    }
                }
            }
        }
        Ok((v4, v6))
    }

    /// The route the kernel would use to reach `dst` (`ip route get`).
    ///
    /// # Errors
    /// The request failed for another reason than "unreachable".
    pub async fn route(&self, dst: IpAddr) -> Result<Option<RouteFacts>, UnderlayError> {
        let prefix = if dst.is_ipv4() { 32 } else { 128 };
        let msg = rtnetlink::RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, prefix)
            .map_err(|e| UnderlayError::Request {
                what: format!("route to {dst}"),
                reason: e.to_string(),
            })?
            .build();
        let mut s = self.handle.route().get(msg).execute();
        let m = match s.try_next().await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(
                    e.code.map(|c| -c.get()),
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(req_err(format!("route to {dst}"))(e)),
        };
        let mut r = RouteFacts {
            oif: 0,
            gateway: None,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Oif(i) => r.oif = *i,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => r.gateway = Some(IpAddr::V4(*g)),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                    r.gateway = Some(IpAddr::V6(*g));
                }
                _ => {}
            }
        }
        // Drain the rest of the answer.
        while let Ok(Some(_)) = s.try_next().await {}
        Ok(Some(r))
    }

    /// The IPv4 and IPv6 neighbour entries of interface `index`.
    ///
    /// # Errors
    /// The request failed.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<NeighFacts>, UnderlayError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut s = self
                .handle
                .neighbours()
                .get()
                .set_address_family(family)
                .execute();
            while let Some(m) = s.try_next().await.map_err(req_err("neighbour dump"))? {
                if m.header.ifindex != index {
                    continue;
                }
                let mut ip = None;
                let mut mac = None;
                for a in &m.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                            ip = Some(IpAddr::V4(*a));
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                            ip = Some(IpAddr::V6(*a));
                        }
                        NeighbourAttribute::LinkLayerAddress(b) => mac = mac_of(b),
                        _ => {}
                    }
                }
                let usable = matches!(
                    m.header.state,
                    NeighbourState::Reachable
                        | NeighbourState::Stale
                        | NeighbourState::Delay
                        | NeighbourState::Probe
                        | NeighbourState::Permanent
                        | NeighbourState::Noarp
                );
                if let Some(ip) = ip {
                    out.push(NeighFacts {
                        ifindex: index,
                        ip,
                        mac,
                        usable,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Asks the kernel to resolve `ip` on interface `index` (`RTM_NEWNEIGH`
    /// with `NTF_USE`: the kernel sends an ARP request or a neighbour
    /// solicitation if the entry is not valid).
    ///
    /// # Errors
    /// The request failed.
    pub async fn solicit(&self, index: u32, ip: IpAddr) -> Result<(), UnderlayError> {
        self.handle
            .neighbours()
            .add(index, ip)
            .state(NeighbourState::None)
            .flags(NeighbourFlags::Use)
            .replace()
            .execute()
            .await
            .map_err(req_err(format!("resolve {ip} on ifindex {index}")))
    }

    /// Reads everything a refresh needs: the two interfaces, the local
    /// endpoint, routes to `remotes`, the host interface's neighbours.
    ///
    /// # Errors
    /// A missing interface or a failed request.
    pub async fn gather(
        &self,
        underlay_port: &str,
        host_port: &str,
        local_ip: Option<IpAddr>,
        remotes: &BTreeSet<IpAddr>,
    ) -> Result<UnderlayFacts, UnderlayError> {
        let underlay = self.link(underlay_port).await?;
        let host = self.link(host_port).await?;
        let (mut v4, mut v6) = self.addresses(host.index).await?;
        match local_ip {
            Some(IpAddr::V4(a)) => v4 = Some(a),
            Some(IpAddr::V6(a)) => v6 = Some(a),
            None => {}
        }
        let mut routes = BTreeMap::new();
        for r in remotes {
            routes.insert(*r, self.route(*r).await?);
        }
        let neighbours = self.neighbours(host.index).await?;
        Ok(UnderlayFacts {
            host,
            underlay,
            local_ipv4: v4,
            local_ipv6: v6,
            routes,
            neighbours,
        })
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// The next-hop table for `facts` (pure): per remote, the next hop (gateway
/// or the remote) on the host interface, its MAC from the kernel's
/// neighbour table, else from `learned` (on-link remotes only), else
/// unresolved. Remotes whose route leaves through another interface, or
/// that have no route, are unresolved with no gateway.
pub fn next_hops(
    facts: &UnderlayFacts,
    learned: &BTreeMap<IpAddr, EthernetAddress>,
) -> Vec<NextHopInfo> {
    facts
        .routes
        .iter()
        .map(|(remote, route)| {
            let unresolved = NextHopInfo {
                remote: *remote,
                gateway: None,
                mac: None,
                origin: NeighbourOrigin::Unresolved,
            };
            let Some(r) = route.filter(|r| r.oif == facts.host.index) else {
                return unresolved;
            };
            let hop = r.gateway.unwrap_or(*remote);
            let kernel = facts
                .neighbours
                .iter()
                .find(|n| n.ip == hop && n.usable && n.mac.is_some())
                .and_then(|n| n.mac);
            let (mac, origin) = match (kernel, r.gateway, learned.get(remote)) {
                (Some(m), _, _) => (Some(m), NeighbourOrigin::Kernel),
                (None, None, Some(m)) => (Some(*m), NeighbourOrigin::Learned),
                _ => (None, NeighbourOrigin::Unresolved),
            };
            NextHopInfo {
                remote: *remote,
                gateway: r.gateway,
                mac,
                origin,
            }
        })
        .collect()
}

/// The next hops that need the kernel to resolve them: `(ifindex, IP)`.
pub fn to_solicit(facts: &UnderlayFacts, hops: &[NextHopInfo]) -> Vec<(u32, IpAddr)> {
    hops.iter()
        .filter(|h| h.origin != NeighbourOrigin::Kernel)
        .filter(|h| {
            facts
                .routes
                .get(&h.remote)
                .copied()
                .flatten()
                .is_some_and(|r| r.oif == facts.host.index)
        })
        .map(|h| (facts.host.index, h.gateway.unwrap_or(h.remote)))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn facts() -> UnderlayFacts {
        let link = |index| LinkFacts {
            index,
            mac: Some(EthernetAddress([2, 0, 0, 0, 0, index as u8])),
            mtu: 1500,
        };
        let mut routes = BTreeMap::new();
        let on_link = Some(RouteFacts {
            oif: 7,
            gateway: None,
        });
        routes.insert(ip("192.0.2.2"), on_link);
        routes.insert(ip("192.0.2.3"), on_link);
        routes.insert(
            ip("198.51.100.9"),
            Some(RouteFacts {
                oif: 7,
                gateway: Some(ip("192.0.2.254")),
            }),
        );
        routes.insert(
            ip("203.0.113.1"),
            Some(RouteFacts {
                oif: 1,
                gateway: None,
            }),
        );
        routes.insert(ip("203.0.113.2"), None);
        UnderlayFacts {
            host: link(7),
            underlay: link(3),
            local_ipv4: Some("192.0.2.1".parse().unwrap()),
            local_ipv6: None,
            routes,
            neighbours: vec![
                NeighFacts {
                    ifindex: 7,
                    ip: ip("192.0.2.2"),
                    mac: Some(EthernetAddress([0xaa; 6])),
                    usable: true,
                },
                NeighFacts {
                    ifindex: 7,
                    ip: ip("192.0.2.3"),
                    mac: None,
                    usable: false,
                },
                NeighFacts {
                    ifindex: 7,
                    ip: ip("192.0.2.254"),
                    mac: Some(EthernetAddress([0xbb; 6])),
                    usable: true,
                },
            ],
        }
    }

    #[test]
    fn kernel_gateway_learned_and_unresolved() {
        let f = facts();
        let mut learned = BTreeMap::new();
        learned.insert(ip("192.0.2.3"), EthernetAddress([0xcc; 6]));
        // Learned MACs are never used for a remote behind a gateway.
        learned.insert(ip("198.51.100.9"), EthernetAddress([0xdd; 6]));
        let h = next_hops(&f, &learned);
        let by: BTreeMap<IpAddr, &NextHopInfo> = h.iter().map(|h| (h.remote, h)).collect();
        assert_eq!(by[&ip("192.0.2.2")].mac, Some(EthernetAddress([0xaa; 6])));
        assert_eq!(by[&ip("192.0.2.2")].origin, NeighbourOrigin::Kernel);
        assert_eq!(by[&ip("192.0.2.3")].mac, Some(EthernetAddress([0xcc; 6])));
        assert_eq!(by[&ip("192.0.2.3")].origin, NeighbourOrigin::Learned);
        let gw = by[&ip("198.51.100.9")];
        assert_eq!(gw.gateway, Some(ip("192.0.2.254")));
        assert_eq!(gw.mac, Some(EthernetAddress([0xbb; 6])));
        // Another interface, no route: unresolved, never solicited.
        assert_eq!(by[&ip("203.0.113.1")].origin, NeighbourOrigin::Unresolved);
        assert_eq!(by[&ip("203.0.113.2")].mac, None);
        let sol = to_solicit(&f, &h);
        assert_eq!(sol, vec![(7, ip("192.0.2.3"))]);
        let h = next_hops(&f, &BTreeMap::new());
        assert_eq!(to_solicit(&f, &h), vec![(7, ip("192.0.2.3"))]);
    }
}
