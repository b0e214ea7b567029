//! The pod's network devices, through rtnetlink: the veth pair, the pod
//! side's name, MAC, MTU, address and default route, and reading them back
//! for `CHECK`.
//!
//! # Namespaces without `unsafe`
//!
//! `setns(2)` changes only the calling thread's namespace. Work inside the
//! pod's namespace ([`in_netns`], with nix's safe `setns`) enters it on the
//! calling thread, builds a current-thread tokio runtime and a netlink
//! socket there (a netlink socket belongs to the namespace of the thread
//! that opened it), and returns to the node's namespace, where the host
//! end of the veth and switchd live, through a descriptor of it opened
//! before leaving. The plugin is single-threaded (a current-thread runtime
//! starts no threads), so nothing else runs in the wrong namespace
//! meanwhile. Earlier versions ran this on a short-lived thread; its start
//! and `join` were one more wait for the scheduler in every `ADD`, which
//! on a busy node costs milliseconds.
//!
//! # The veth pair
//!
//! One `RTM_NEWLINK` creates both ends: the host end (named by
//! [`host_ifname`]) in the node's namespace, and the peer with its final
//! name (`CNI_IFNAME`), MAC and MTU directly in the pod's namespace
//! (`IFLA_NET_NS_FD` inside `VETH_INFO_PEER`, what `ip link add ... peer
//! name eth0 netns POD` sends), so no temporary name ever appears in either
//! namespace. Deleting the host end deletes the pair.
//!
//! # Offloads
//!
//! The pod side keeps the offloads a veth is created with (checksum
//! offload, scatter-gather, TSO, GSO, GRO on): switchd reads the host end
//! through an AF_PACKET socket with `PACKET_VNET_HDR`, so a TSO super-frame
//! arrives with its virtio-net header and switchd completes the checksum
//! or segments it in software where the output needs it (a tunnel, a port
//! without the offload). Pods then send 64 KiB segments to the veth, as
//! with the bridge plugin or OVN-Kubernetes. `"offloads": false` in the
//! network configuration turns them off on the pod end
//! ([`VethSpec::offloads`]), as earlier versions always did.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::spec::{CniError, CniResult, code};

/// Name of the host end of an attachment's veth (also its switchd port
/// name): `wft` + 12 hex digits of a 64-bit FNV-1a hash of network name,
/// container id and interface name. Deterministic, so `DEL` finds the
/// device and port without any state; 48 bits make a collision between
/// the few hundred pods of a node negligible (about 1 in 10^10 for 300).
pub fn host_ifname(network: &str, container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [network, container_id, ifname] {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("wft{:012x}", h >> 16)
}

/// The pod interface's MAC: `0a:58` + the IPv4 address (the OVN-Kubernetes
/// convention: locally administered, unicast, and derivable from the
/// address by the controller for port security without asking the node).
pub fn pod_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn nl_err(what: impl std::fmt::Display) -> impl FnOnce(rtnetlink::Error) -> CniError {
    move |e| CniError::new(code::NETLINK, format!("{what}: {e}"))
}

fn runtime() -> CniResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("tokio runtime: {e}")))
}

/// A netlink handle in the calling thread's namespace (call inside a
/// runtime).
fn connect() -> CniResult<Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()
        .map_err(|e| CniError::new(code::NETLINK, format!("netlink socket: {e}")))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Runs `f` on the calling thread inside the network namespace `netns` (a
/// file such as `/run/netns/NAME` or `/proc/PID/ns/net`), then returns the
/// thread to the namespace it was in (see the module doc).
///
/// # Errors
/// The namespace cannot be opened or entered (code 5), or `f`'s error.
///
/// # Panics
/// If the thread cannot go back to its own namespace (it could enter
/// another one, and the descriptor is ours): continuing there would touch
/// the pod's devices instead of the node's.
pub fn in_netns<T>(netns: &Path, f: impl FnOnce() -> CniResult<T>) -> CniResult<T> {
    fn io_err(what: String) -> impl FnOnce(&dyn std::fmt::Display) -> CniError {
        move |e| CniError::new(code::IO_FAILURE, format!("{what}: {e}"))
    }
    let file = File::open(netns)
        .map_err(|e| io_err(format!("network namespace {}", netns.display()))(&e))?;
    let home = File::open("/proc/thread-self/ns/net")
        .map_err(|e| io_err("this thread's network namespace".into())(&e))?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| io_err(format!("entering network namespace {}", netns.display()))(&e))?;
    let r = f();
    if let Err(e) = nix::sched::setns(home.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET) {
        panic!(
            "cannot return from network namespace {} to the node's: {e}",
            netns.display()
        );
    }
    r
}

fn is_enodev(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == nix::errno::Errno::ENODEV as i32)
}

async fn link_by_name(h: &Handle, name: &str) -> CniResult<Option<LinkMessage>> {
    match h.link().get().match_name(name).execute().try_next().await {
        Ok(m) => Ok(m),
        Err(e) if is_enodev(&e) => Ok(None),
        Err(e) => Err(nl_err(format!("looking up {name}"))(e)),
    }
}

/// What [`create_veth`] sets up.
#[derive(Debug, Clone)]
pub struct VethSpec {
    /// Host end name.
    pub host: String,
    /// Pod end name (`CNI_IFNAME`).
    pub pod: String,
    /// Pod end MAC.
    pub mac: [u8; 6],
    /// MTU of both ends.
    pub mtu: u32,
    /// Pod address.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Default gateway.
    pub gateway: Ipv4Addr,
    /// Keep the pod end's offloads (the default); `false` turns them off.
    pub offloads: bool,
}

/// Creates the veth pair, configures the pod end (up, address, default
/// route, offloads off if asked) and brings the host end up. Returns the host end's
/// MAC. A host end left over from an earlier attempt of the same
/// attachment is deleted first (the name is ours: [`host_ifname`]).
///
/// # Errors
/// Netlink failures (code 101); an interface of the pod's name already in
/// the namespace is one.
pub fn create_veth(netns: &Path, spec: &VethSpec) -> CniResult<[u8; 6]> {
    let ns = File::open(netns).map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            format!("network namespace {}: {e}", netns.display()),
        )
    })?;
    let rt = runtime()?;
    crate::timing::mark("tokio-runtime");
    rt.block_on(async {
        let h = connect()?;
        if let Some(old) = link_by_name(&h, &spec.host).await? {
            h.link()
                .del(old.header.index)
                .execute()
                .await
                .map_err(nl_err(format!("deleting stale {}", spec.host)))?;
        }
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.pod.clone())
            .mtu(spec.mtu)
            .address(spec.mac.to_vec())
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkVeth::new(&spec.host, &spec.pod)
            .mtu(spec.mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        h.link().add(msg).execute().await.map_err(|e| {
            CniError::new(
                code::NETLINK,
                format!(
                    "creating veth {} <-> {} in {}: {e}",
                    spec.host,
                    spec.pod,
                    netns.display()
                ),
            )
            .with_details("an interface of that name may already exist in the pod's namespace")
        })?;
        Ok::<(), CniError>(())
    })?;
    crate::timing::mark("veth-create");
    crate::test_hook::pause_at("veth-created");
    in_netns(netns, || configure_pod(spec))?;
    crate::timing::mark("pod-configure");
    let r = rt.block_on(async {
        let h = connect()?;
        let link = link_by_name(&h, &spec.host).await?.ok_or_else(|| {
            CniError::new(
                code::NETLINK,
                format!("{} vanished after creation", spec.host),
            )
        })?;
        h.link()
            .set(LinkUnspec::new_with_index(link.header.index).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("setting {} up", spec.host)))?;
        Ok(link_mac(&link).unwrap_or_default())
    });
    crate::timing::mark("host-up");
    r
}

fn link_mac(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
        _ => None,
    })
}

/// Inside the pod's namespace: up, address, default route, and offloads
/// off when the configuration says `"offloads": false`.
fn configure_pod(spec: &VethSpec) -> CniResult<()> {
    runtime()?.block_on(async {
        let h = connect()?;
        let link = link_by_name(&h, &spec.pod).await?.ok_or_else(|| {
            CniError::new(
                code::NETLINK,
                format!("{} did not appear in the pod's namespace", spec.pod),
            )
        })?;
        let idx = link.header.index;
        h.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .map_err(nl_err(format!("setting {} up", spec.pod)))?;
        h.address()
            .add(idx, IpAddr::V4(spec.ip), spec.prefix)
            .execute()
            .await
            .map_err(nl_err(format!(
                "adding {}/{} to {}",
                spec.ip, spec.prefix, spec.pod
            )))?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(spec.gateway)
            .output_interface(idx)
            .build();
        h.route()
            .add(route)
            .execute()
            .await
            .map_err(nl_err(format!("default route via {}", spec.gateway)))?;
        Ok::<(), CniError>(())
    })?;
    if spec.offloads {
        return Ok(());
    }
    weft_switchd::port::disable_offloads(&spec.pod).map_err(|e| {
        CniError::new(
            code::NETLINK,
            format!("turning offloads off on {}: {e}", spec.pod),
        )
    })
}

/// Deletes the host link `name` (and with it the pod end); `false` if it
/// did not exist.
///
/// # Errors
/// Netlink failures other than "no such device".
pub fn delete_link(name: &str) -> CniResult<bool> {
    runtime()?.block_on(async {
        let h = connect()?;
        let Some(link) = link_by_name(&h, name).await? else {
            return Ok(false);
        };
        match h.link().del(link.header.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if is_enodev(&e) => Ok(false),
            Err(e) => Err(nl_err(format!("deleting {name}"))(e)),
        }
    })
}

/// What [`inspect`] finds about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    /// Its MAC.
    pub mac: Option<[u8; 6]>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// IPv4 addresses with prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

/// Reads interface `name` in the calling thread's namespace (`None` if
/// absent). Use inside [`in_netns`] for the pod's side.
///
/// # Errors
/// Netlink failures.
pub fn inspect(name: &str) -> CniResult<Option<LinkState>> {
    runtime()?.block_on(async {
        let h = connect()?;
        let Some(link) = link_by_name(&h, name).await? else {
            return Ok(None);
        };
        let mut addrs = Vec::new();
        let mut s = h
            .address()
            .get()
            .set_link_index_filter(link.header.index)
            .execute();
        while let Some(a) = s
            .try_next()
            .await
            .map_err(nl_err(format!("addresses of {name}")))?
        {
            for attr in &a.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = attr {
                    addrs.push((*ip, a.header.prefix_len));
                }
            }
        }
        Ok(Some(LinkState {
            mac: link_mac(&link),
            mtu: link.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            }),
            up: link.header.flags.contains(LinkFlags::Up),
            addrs,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_short_and_distinct() {
        let a = host_ifname("weft", "c1", "eth0");
        assert_eq!(a, host_ifname("weft", "c1", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(crate::spec::valid_ifname(&a));
        assert_ne!(a, host_ifname("weft", "c1", "eth1"));
        assert_ne!(a, host_ifname("weft2", "c1", "eth0"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(host_ifname("n", "ab", "c"), host_ifname("n", "a", "bc"));
    }

    #[test]
    fn mac_from_ip() {
        let m = pod_mac(Ipv4Addr::new(10, 244, 1, 7));
        assert_eq!(mac_string(&m), "0a:58:0a:f4:01:07");
        assert_eq!(m[0] & 1, 0, "unicast");
        assert_eq!(m[0] & 2, 2, "locally administered");
    }
}
