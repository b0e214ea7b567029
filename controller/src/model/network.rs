//! Topology objects: tenants, nodes, logical switches and routers, logical
//! ports, load balancers.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use protocol::wire::ethernet::EthernetAddress;
use serde::{Serialize, Serializer};

use super::ids::{DatapathId, LogicalPortId};
use super::source::SourceRef;

/// Serializes a MAC as `0a:58:0a:f4:00:05` (snapshots stay readable).
pub(crate) fn ser_mac<S: Serializer>(m: &EthernetAddress, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(m)
}

/// A tenant (VPC): an isolated address space with its own router. Two
/// tenants may use overlapping CIDRs: their switches and routers have
/// different datapath ids, so nothing of one is ever looked up in the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Tenant name (the `Tenant` object's name, or `default`).
    pub name: String,
    /// Namespaces that belong to the tenant.
    pub namespaces: BTreeSet<String>,
    /// The tenant's address space (pod addresses are taken from it).
    pub cidrs: Vec<IpNet>,
    /// The tenant's logical router (connects all its switches).
    pub router: DatapathId,
    /// The tenant's logical switches.
    pub switches: Vec<DatapathId>,
    /// `Tenant` object, or `Infrastructure`/`default` for the implied one.
    pub source: SourceRef,
}

/// A node (one `weft-switchd`, one tunnel endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// Tunnel endpoint address (`InternalIP`, else the first address; for an
    /// implied node, 192.0.2.x).
    pub underlay_ip: IpAddr,
    /// `spec.podCIDRs` (or `spec.podCIDR`); may be empty.
    pub pod_cidrs: Vec<IpNet>,
    /// True if no Node object exists and a pod's `spec.nodeName` implied it.
    pub implied: bool,
    /// The Node object (or the first pod that implied the node).
    pub source: SourceRef,
}

/// A logical switch (one L2 broadcast domain, one subnet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalSwitch {
    /// Datapath id (VNI between nodes).
    pub id: DatapathId,
    /// Unique name: `ls/<tenant>/<node>` (per-node podCIDR switch) or
    /// `ls/<tenant>/<subnet>` (tenant subnet).
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// The subnet.
    pub subnet: IpNet,
    /// Default gateway of the pods: the router port's address.
    pub gateway: IpAddr,
    /// Some(node) if the switch is a node's podCIDR switch (all its pod ports
    /// are on that node); None if it spans nodes (tenant subnet).
    pub node: Option<String>,
    /// The switch-side port peered with the tenant router's port.
    pub router_port: LogicalPortId,
    /// Pod ports on this switch (sorted).
    pub ports: Vec<LogicalPortId>,
    /// `Subnet` object, or the `Node` whose podCIDR it is.
    pub source: SourceRef,
}

/// A logical router (one per tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalRouter {
    /// Datapath id.
    pub id: DatapathId,
    /// `lr/<tenant>`.
    pub name: String,
    /// Owning tenant.
    pub tenant: String,
    /// One port per switch of the tenant.
    pub ports: Vec<RouterPort>,
    /// Static routes, most specific first is *not* implied: the compiler
    /// orders by prefix length (longest prefix wins).
    pub routes: Vec<Route>,
}

/// A router port: the router's leg on one logical switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterPort {
    /// Port id (the router-side id).
    pub id: LogicalPortId,
    /// `lrp/<tenant>/<switch-suffix>`.
    pub name: String,
    /// The router port's MAC (pods' gateway MAC); `0a:58:` + gateway IPv4.
    #[serde(serialize_with = "ser_mac")]
    pub mac: EthernetAddress,
    /// The router port's address (= the switch's gateway).
    pub ip: IpAddr,
    /// The connected network (= the switch's subnet).
    pub network: IpNet,
    /// The switch it connects to.
    pub switch: DatapathId,
    /// The switch-side peer port ([`LogicalSwitch::router_port`]).
    pub peer: LogicalPortId,
}

/// A route of a logical router. Connected routes (one per router port) are
/// listed too, so the compiler needs no other source of truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Output router port.
    pub port: LogicalPortId,
    /// Next hop; None = the destination itself (connected network or host
    /// route to a pod on that port's switch).
    pub next_hop: Option<IpAddr>,
    /// Why the route exists.
    pub kind: RouteKind,
    /// The Node/Subnet (connected) or Pod (host route).
    pub source: SourceRef,
}

/// Why a route exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RouteKind {
    /// The subnet of a connected switch.
    Connected,
    /// A /32 or /128 for a pod whose address lies outside every subnet of
    /// its tenant (standalone assumption, reported).
    Host,
}

/// What kind of logical port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PortKind {
    /// A pod's interface (lives on `node`).
    Pod {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
    },
    /// The switch-side peer of a router port (OVN `type=router`): it exists
    /// on every node where the switch has a pod.
    Router {
        /// The router.
        router: DatapathId,
        /// The router-side port.
        router_port: LogicalPortId,
    },
}

/// Port security (OVN `port_security`): what a port may send. Frames from the
/// port with another source MAC, IP packets with another source address, ARP
/// with another sender MAC/IP and ND with another target/link-layer address
/// are dropped. Traffic *to* the port is restricted to `mac` and `ips` too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSecurity {
    /// The only source MAC allowed.
    #[serde(serialize_with = "ser_mac")]
    pub mac: EthernetAddress,
    /// The only source IPs allowed (plus `0.0.0.0`/`::` for DAD is *not*
    /// granted: addresses are static here).
    pub ips: Vec<IpAddr>,
}

/// A logical port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogicalPort {
    /// Port id.
    pub id: LogicalPortId,
    /// Unique name: `<ns>/<pod>` for pods, `lsp/<switch-suffix>/router` for
    /// router peers.
    pub name: String,
    /// The switch it is on.
    pub switch: DatapathId,
    /// Owning tenant.
    pub tenant: String,
    /// MAC.
    #[serde(serialize_with = "ser_mac")]
    pub mac: EthernetAddress,
    /// Addresses.
    pub ips: Vec<IpAddr>,
    /// The node it lives on (None for router peers, which are everywhere).
    pub node: Option<String>,
    /// Port security (Some for pods; None for router peers).
    pub security: Option<PortSecurity>,
    /// Pod or router peer.
    pub kind: PortKind,
    /// The switchd port number the CNI plugin reported for this pod
    /// ([`protocol::pod_report`]); `None`: the logical port id is the
    /// ofport (offline checks, fixtures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ofport: Option<u32>,
    /// The Pod (or the Subnet/Node of the switch for router peers).
    pub source: SourceRef,
}

/// L4 protocol of a load balancer or ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum L4Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
}

impl L4Protocol {
    /// The IP protocol number.
    pub fn ip_proto(self) -> u8 {
        match self {
            L4Protocol::Tcp => 6,
            L4Protocol::Udp => 17,
            L4Protocol::Sctp => 132,
        }
    }
}

/// One backend of a VIP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Backend {
    /// Endpoint address.
    pub ip: IpAddr,
    /// Endpoint port.
    pub port: u16,
    /// The backend pod's port, when it is a pod of the model.
    pub port_id: Option<LogicalPortId>,
}

/// A load balancer: one Service port (modelled now; realised by the
/// compiler when conntrack lands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadBalancer {
    /// `lb/<ns>/<service>/<port-name-or-number>/<proto>`.
    pub name: String,
    /// Owning tenant (the Service's namespace's tenant).
    pub tenant: String,
    /// Protocol.
    pub protocol: L4Protocol,
    /// VIPs (`clusterIPs`) x this port.
    pub vips: Vec<(IpAddr, u16)>,
    /// Ready endpoints from the EndpointSlices (sorted).
    pub backends: Vec<Backend>,
    /// The Service.
    pub source: SourceRef,
}
