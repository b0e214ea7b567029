//! `weftctl trace --from NS/POD --to NS/POD|IP`: one packet across a
//! running cluster, through the **live** switchds of the nodes it crosses.
//!
//! # Where the facts come from
//!
//! * **Pods and nodes**: the controller's status file (`weft-controller
//!   --status FILE`, rewritten on every change; `--cluster FILE`, or a
//!   directory holding `controller.json` such as the demo's state
//!   directory). A pod's entry gives its node, ofport, MAC, addresses,
//!   tenant, switch, subnet, gateway MAC, datapath (the VNI between nodes)
//!   and the NetworkPolicies that isolate it; a node's entry its switchd
//!   control socket. A file, not a query socket: the controller already
//!   writes it atomically for every deployment that sets `--status`, and a
//!   reader never blocks the controller. The cost: the tool must run where
//!   that file and the switchd sockets are reachable (the controller's
//!   host, as the demo is).
//! * **Walks**: each node's running switchd traces the packet through its
//!   current flows, ports and tunnel settings (`TraceDetailed`, protocol
//!   version 3; nothing is sent, no counter changes). The reply carries the
//!   exact bytes of every output and the cookie of every rule hit.
//! * **Names**: every cookie is named through the node's cookie table
//!   (`DumpCookies`), which the controller installs with the flows
//!   (`SetCookieInfo` in each sync), so a name always belongs to the
//!   generation of the flows it explains. The stage comes from the table
//!   number (the compiler's table bands: port security, ACL, L2 lookup,
//!   routing, ...).
//!
//! # The walk
//!
//! The packet is what the source pod would send: its MAC and first IPv4
//! address, to the destination's MAC when both share a switch and the
//! destination address is in that switch's subnet, else to the gateway's
//! MAC; TCP SYN (source port 40000), UDP, or ICMP echo request; TTL 64.
//! It is traced on the source node, entering on the pod's port. Every
//! output on the node's underlay port is an encapsulated frame: its outer
//! header is decoded (Ethernet, IPv4 or IPv6, UDP, Geneve with its options
//! or VXLAN) and shown as the tunnel hop, and the frame itself, byte for
//! byte, is traced on the node whose tunnel endpoint is the outer
//! destination address, entering on that node's underlay port (decap,
//! then its pipeline). Outputs on pod ports are named after the pod.
//!
//! # The verdict and what decided it
//!
//! Allowed when a walk outputs the packet on the destination pod's port
//! (of the destination's node). The decisive rules: every rule hit in the
//! two ACL stages that a NetworkPolicy installed (the allow rules), a
//! priority-0 ACL hit ("no policy isolates the pod"), an isolation drop
//! (named `Infrastructure NS/isolation-DIR` in the cookie table, one per
//! namespace and direction; the policies behind it come from the status
//! file's `isolated_by`), and for a dropped packet the last rule hit.
//!
//! Limits: IPv4 pods only (an IPv6-only pair is refused with a message);
//! a destination given as an address that no pod of the source's tenant
//! has is traced but has no "destination port" to reach (the verdict says
//! where it went); at most [`MAX_HOPS`] tunnel hops are followed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use protocol::ctl::{Body, CookieInfo, PortKind, TraceInput, TraceReport};
use protocol::flow::{FlowKey, PortNo, TableId};
use protocol::wire::{
    EtherType, EthernetAddress, EthernetFrame, GENEVE_UDP_PORT, GenevePacket, Ipv4Packet,
    Ipv6Packet, UdpPacket, VXLAN_UDP_PORT, VxlanPacket,
};
use serde::Serialize;
use serde_json::Value;
use weft_controller::compile::{cookie::source_of, table};

use crate::ctl_client::Client;
use crate::trace::parse_mac;

/// Tunnel hops followed at most (a loop between nodes would otherwise
/// never end).
pub(crate) const MAX_HOPS: usize = 4;

/// The first protocol version with `TraceDetailed`.
const TRACE_DETAILED_VERSION: u16 = 3;

/// A pod, as the controller's status file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pod {
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) ofport: u32,
    pub(crate) mac: EthernetAddress,
    pub(crate) ips: Vec<IpAddr>,
    pub(crate) tenant: String,
    pub(crate) switch: String,
    pub(crate) subnet: Option<ipnet::IpNet>,
    pub(crate) gateway_mac: Option<EthernetAddress>,
    pub(crate) datapath: Option<u32>,
    pub(crate) isolated_ingress: Vec<String>,
    pub(crate) isolated_egress: Vec<String>,
}

/// Pods and node sockets from the controller's status file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cluster {
    pub(crate) pods: BTreeMap<String, Pod>,
    pub(crate) sockets: BTreeMap<String, PathBuf>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

impl Cluster {
    /// Reads `path` (the status file, or a directory with
    /// `controller.json`).
    pub(crate) fn load(path: &Path) -> anyhow::Result<Cluster> {
        let file = if path.is_dir() {
            path.join("controller.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read(&file).with_context(|| {
            format!(
                "reading the controller status {} (weft-controller --status FILE)",
                file.display()
            )
        })?;
        let v: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not JSON", file.display()))?;
        Cluster::from_json(&v).with_context(|| format!("{}", file.display()))
    }

    /// Parses the status JSON.
    pub(crate) fn from_json(v: &Value) -> anyhow::Result<Cluster> {
        let mut c = Cluster::default();
        for (name, n) in v["nodes"].as_object().into_iter().flatten() {
            if let Some(s) = n["socket"].as_str() {
                c.sockets.insert(name.clone(), PathBuf::from(s));
            }
        }
        for (name, p) in v["pods"].as_object().into_iter().flatten() {
            let field = |f: &str| anyhow!("pods.{name:?}.{f}: missing or malformed");
            let Some(node) = p["node"].as_str() else {
                continue; // Not scheduled: no port anywhere.
            };
            let Some(ofport) = p["ofport"].as_u64().and_then(|o| u32::try_from(o).ok()) else {
                continue; // Not attached yet: no port to trace from.
            };
            let mac = p["mac"]
                .as_str()
                .and_then(parse_mac)
                .ok_or_else(|| field("mac"))?;
            let ips = strings(&p["ips"])
                .iter()
                .map(|s| s.parse::<IpAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| field("ips"))?;
            c.pods.insert(
                name.clone(),
                Pod {
                    name: name.clone(),
                    node: node.to_owned(),
                    ofport,
                    mac,
                    ips,
                    tenant: p["tenant"].as_str().unwrap_or_default().to_owned(),
                    switch: p["switch"].as_str().unwrap_or_default().to_owned(),
                    subnet: p["subnet"].as_str().and_then(|s| s.parse().ok()),
                    gateway_mac: p["gateway_mac"].as_str().and_then(parse_mac),
                    datapath: p["datapath"].as_u64().and_then(|d| u32::try_from(d).ok()),
                    isolated_ingress: strings(&p["isolated_by"]["ingress"]),
                    isolated_egress: strings(&p["isolated_by"]["egress"]),
                },
            );
        }
        Ok(c)
    }

    fn pod(&self, name: &str) -> anyhow::Result<&Pod> {
        self.pods.get(name).ok_or_else(|| {
            anyhow!(
                "pod {name:?} is not in the controller status (known, attached: {})",
                self.pods.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    fn pod_at(&self, node: &str, port: PortNo) -> Option<&Pod> {
        self.pods
            .values()
            .find(|p| p.node == node && p.ofport == port.0)
    }
}

/// The L4 part of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proto {
    /// TCP SYN.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP echo request.
    Icmp,
}

/// The packet the source pod would send (see the module doc).
pub(crate) fn probe_key(
    src: &Pod,
    dst_ip: IpAddr,
    dst: Option<&Pod>,
    proto: Proto,
    port: u16,
) -> anyhow::Result<FlowKey> {
    let Some(IpAddr::V4(s4)) = src.ips.iter().copied().find(IpAddr::is_ipv4) else {
        bail!(
            "{} has no IPv4 address (IPv6 traces are not supported yet)",
            src.name
        );
    };
    let IpAddr::V4(d4) = dst_ip else {
        bail!("{dst_ip}: IPv6 traces are not supported yet");
    };
    let on_link = dst
        .is_some_and(|d| d.switch == src.switch && src.subnet.is_some_and(|n| n.contains(&dst_ip)));
    let dl_dst = match (on_link, dst, src.gateway_mac) {
        (true, Some(d), _) => d.mac,
        (_, _, Some(g)) => g,
        _ => bail!("{}: no gateway MAC in the controller status", src.name),
    };
    let mut key = FlowKey::default();
    key.set_dl_src(src.mac);
    key.set_dl_dst(dl_dst);
    key.set_dl_type(0x0800);
    key.set_nw_src(s4);
    key.set_nw_dst(d4);
    key.set_nw_ttl(64);
    match proto {
        Proto::Tcp => {
            key.set_nw_proto(6);
            key.set_tp_src(40000);
            key.set_tp_dst(port);
            key.set_tcp_flags(0x002);
        }
        Proto::Udp => {
            key.set_nw_proto(17);
            key.set_tp_src(40000);
            key.set_tp_dst(port);
        }
        Proto::Icmp => {
            key.set_nw_proto(1);
            key.set_tp_src(8); // echo request
            key.set_tp_dst(0);
        }
    }
    Ok(key)
}

/// One rule hit, labelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Step {
    pub(crate) table: u8,
    pub(crate) stage: String,
    pub(crate) depth: u16,
    /// `None`: a table miss.
    pub(crate) priority: Option<u16>,
    pub(crate) cookie: String,
    pub(crate) r#match: String,
    pub(crate) actions: String,
    /// What installed it (the cookie table's name), if known.
    pub(crate) source: Option<String>,
    /// Why it decided, if it did.
    pub(crate) decisive: Option<String>,
}

/// One output of a walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Out {
    pub(crate) port: u32,
    /// `pod NS/NAME`, `underlay` or `port N`.
    pub(crate) to: String,
    pub(crate) bytes: usize,
}

/// One node's walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct NodeWalk {
    pub(crate) node: String,
    pub(crate) in_port: u32,
    /// `pod NS/NAME` or `underlay`.
    pub(crate) from: String,
    pub(crate) flow: String,
    pub(crate) steps: Vec<Step>,
    pub(crate) outputs: Vec<Out>,
    pub(crate) dropped: bool,
    pub(crate) drop_reason: Option<String>,
    /// switchd's own trace text.
    pub(crate) text: String,
}

/// A Geneve option of the tunnel hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TunOpt {
    pub(crate) class: u16,
    pub(crate) r#type: u8,
    pub(crate) data: String,
}

/// The tunnel hop: the outer header of the frame on the underlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct TunnelHop {
    pub(crate) from_node: String,
    pub(crate) to_node: Option<String>,
    pub(crate) kind: String,
    pub(crate) outer_src_mac: String,
    pub(crate) outer_dst_mac: String,
    pub(crate) outer_src: String,
    pub(crate) outer_dst: String,
    pub(crate) ttl: u8,
    pub(crate) udp_src: u16,
    pub(crate) udp_dst: u16,
    pub(crate) vni: u32,
    pub(crate) options: Vec<TunOpt>,
    pub(crate) bytes: usize,
}

/// A hop of the trace, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Hop {
    Node(NodeWalk),
    Tunnel(TunnelHop),
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CrossTrace {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) packet: String,
    pub(crate) hops: Vec<Hop>,
    pub(crate) allowed: bool,
    pub(crate) delivered_to: Vec<String>,
    pub(crate) decided_by: Vec<String>,
}

/// Decodes the outer headers of an encapsulated frame; `None` if it is
/// not Geneve or VXLAN over UDP.
pub(crate) fn decode_outer(frame: &[u8]) -> Option<TunnelHop> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (src, dst, ttl, l4): (IpAddr, IpAddr, u8, &[u8]) = match eth.ethertype() {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != protocol::wire::IpProtocol::Udp {
                return None;
            }
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.ttl(),
                ip.payload(),
            )
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != protocol::wire::IpProtocol::Udp {
                return None;
            }
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.hop_limit(),
                ip.payload(),
            )
        }
        _ => return None,
    };
    let udp = UdpPacket::new_checked(l4).ok()?;
    let (kind, vni, options) = match udp.dst_port() {
        GENEVE_UDP_PORT => {
            let g = GenevePacket::new_checked(udp.payload()).ok()?;
            let opts = g
                .options_iter()
                .filter_map(Result::ok)
                .map(|o| TunOpt {
                    class: o.class,
                    r#type: o.kind,
                    data: hex(o.data),
                })
                .collect();
            ("geneve", g.vni().get(), opts)
        }
        VXLAN_UDP_PORT => {
            let x = VxlanPacket::new_checked(udp.payload()).ok()?;
            ("vxlan", x.vni().get(), Vec::new())
        }
        _ => return None,
    };
    Some(TunnelHop {
        from_node: String::new(),
        to_node: None,
        kind: kind.to_owned(),
        outer_src_mac: eth.src_addr().to_string(),
        outer_dst_mac: eth.dst_addr().to_string(),
        outer_src: src.to_string(),
        outer_dst: dst.to_string(),
        ttl,
        udp_src: udp.src_port(),
        udp_dst: udp.dst_port(),
        vni,
        options,
        bytes: frame.len(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The stage name of table `t` (the compiler's bands), or `table N`.
fn stage(t: u8) -> String {
    match table::name(TableId(t)) {
        "?" => format!("table {t}"),
        n => n.to_owned(),
    }
}

/// Labels the rules of one walk (cookie names, stages); the decisive
/// ones are marked afterwards by [`decide`].
pub(crate) fn label(rep: &TraceReport, cookies: &BTreeMap<u64, CookieInfo>) -> Vec<Step> {
    rep.rules
        .iter()
        .map(|r| {
            let (priority, cookie, m, actions, source) = match &r.hit {
                Some(h) => (
                    Some(h.priority.0),
                    format!("{:#x}", h.cookie.0),
                    h.r#match.clone(),
                    h.actions.clone(),
                    cookies.get(&h.cookie.0).map(source_of),
                ),
                None => (None, String::new(), String::new(), String::new(), None),
            };
            Step {
                table: r.table.0,
                stage: stage(r.table.0),
                depth: r.depth,
                priority,
                cookie,
                r#match: m,
                actions,
                source,
                decisive: None,
            }
        })
        .collect()
}

/// The isolation drop of namespace `ns` for `dir` (`ingress`/`egress`),
/// if `source` names one.
fn isolation(source: &str) -> Option<(&str, &str)> {
    let rest = source.strip_prefix("Infrastructure ")?;
    let (ns, what) = rest.split_once('/')?;
    let dir = what.strip_prefix("isolation-")?;
    Some((ns, dir))
}

/// Marks the decisive rules of every walk and returns the "decided by"
/// lines (see the module doc). `src`/`dst` name the policies behind an
/// isolation drop.
pub(crate) fn decide(hops: &mut [Hop], allowed: bool, src: &Pod, dst: Option<&Pod>) -> Vec<String> {
    let mut lines = Vec::new();
    let acl = |t: u8| TableId(t) == table::IN_ACL || TableId(t) == table::OUT_ACL;
    let behind = |ns: &str, dir: &str| -> Vec<String> {
        let pod = match dir {
            "ingress" => dst,
            _ => Some(src),
        };
        let list = pod.map_or_else(Vec::new, |p| match dir {
            "ingress" => p.isolated_ingress.clone(),
            _ => p.isolated_egress.clone(),
        });
        list.into_iter()
            .filter(|n| n.split('/').next() == Some(ns))
            .collect()
    };
    let mut last: Option<(usize, usize)> = None;
    for (hi, hop) in hops.iter_mut().enumerate() {
        let Hop::Node(w) = hop else { continue };
        let node = w.node.clone();
        for (si, s) in w.steps.iter_mut().enumerate() {
            if s.priority.is_some() {
                last = Some((hi, si));
            }
            if !acl(s.table) {
                continue;
            }
            let why = match (s.priority, s.source.as_deref()) {
                (None, _) => None,
                (Some(0), _) => Some("no policy isolates the pod".to_owned()),
                (Some(_), Some(src_name)) if src_name.starts_with("NetworkPolicy ") => {
                    Some(format!("allowed by {src_name}"))
                }
                (Some(_), Some(src_name)) => isolation(src_name).map(|(ns, dir)| {
                    let pols = behind(ns, dir);
                    if pols.is_empty() {
                        format!("{dir} isolation of namespace {ns} ({src_name})")
                    } else {
                        format!(
                            "{dir} isolation of namespace {ns} by NetworkPolicy {} ({src_name})",
                            pols.join(", NetworkPolicy ")
                        )
                    }
                }),
                _ => None,
            };
            if let Some(why) = why {
                lines.push(format!("{} on {node}: {why}", s.stage));
                s.decisive = Some(why);
            }
        }
    }
    if !allowed
        && let Some((hi, si)) = last
        && let Some(Hop::Node(w)) = hops.get_mut(hi)
        && let Some(s) = w.steps.get_mut(si)
    {
        let name = s
            .source
            .clone()
            .unwrap_or_else(|| format!("cookie {}", s.cookie));
        let why = format!("stopped by {name} (actions {})", s.actions);
        if s.decisive.is_none() {
            lines.push(format!("{} on {}: {why}", s.stage, w.node));
            s.decisive = Some(why);
        } else if let Some(d) = &mut s.decisive {
            d.push_str(": the packet stops here");
        }
    }
    lines.dedup();
    lines
}

/// One node's switchd: its cookie table, underlay port and tunnel
/// endpoint.
struct NodeConn {
    client: Client,
    cookies: BTreeMap<u64, CookieInfo>,
    underlay: Option<PortNo>,
    local_ip: Option<IpAddr>,
}

impl NodeConn {
    fn open(node: &str, socket: &Path) -> anyhow::Result<NodeConn> {
        let mut client =
            Client::connect(socket).with_context(|| format!("node {node}'s switchd"))?;
        if client.version < TRACE_DETAILED_VERSION {
            bail!(
                "node {node}'s switchd ({}) speaks control protocol version {}; a cross-node \
                 trace needs version {TRACE_DETAILED_VERSION} (upgrade weft-switchd)",
                client.server,
                client.version
            );
        }
        let cookies = match client.request(Body::DumpCookies)? {
            Body::Cookies(c) => c.into_iter().map(|i| (i.cookie.0, i)).collect(),
            b => bail!("node {node}: unexpected reply to DumpCookies: {b}"),
        };
        let tunnels = match client.request(Body::DumpTunnels)? {
            Body::Tunnels(t) => t,
            b => bail!("node {node}: unexpected reply to DumpTunnels: {b}"),
        };
        let ports = match client.request(Body::DumpPorts)? {
            Body::Ports(p) => p,
            b => bail!("node {node}: unexpected reply to DumpPorts: {b}"),
        };
        let underlay = tunnels.underlay.as_ref().and_then(|u| {
            ports
                .iter()
                .find(|p| p.name == u.port && matches!(p.kind, PortKind::AfPacket))
                .or_else(|| ports.iter().find(|p| p.name == u.port))
                .map(|p| p.port)
        });
        Ok(NodeConn {
            client,
            cookies,
            underlay,
            local_ip: tunnels.local_ip,
        })
    }

    fn trace(
        &mut self,
        node: &str,
        in_port: PortNo,
        bytes: Vec<u8>,
    ) -> anyhow::Result<TraceReport> {
        match self.client.request(Body::TraceDetailed {
            in_port,
            input: TraceInput::Packet(bytes),
        })? {
            Body::TraceReport(r) => Ok(r),
            b => bail!("node {node}: unexpected reply to TraceDetailed: {b}"),
        }
    }
}

/// Runs the trace (see the module doc).
pub(crate) fn trace(
    cluster: &Cluster,
    from: &str,
    to: &str,
    proto: Proto,
    port: u16,
) -> anyhow::Result<CrossTrace> {
    let src = cluster.pod(from)?;
    let (dst_ip, dst) = match to.parse::<IpAddr>() {
        Ok(ip) => (
            ip,
            cluster
                .pods
                .values()
                .find(|p| p.tenant == src.tenant && p.ips.contains(&ip)),
        ),
        Err(_) => {
            let d = cluster.pod(to)?;
            let ip = d.ips.iter().copied().find(IpAddr::is_ipv4).ok_or_else(|| {
                anyhow!("{to} has no IPv4 address (IPv6 traces are not supported yet)")
            })?;
            (ip, Some(d))
        }
    };
    let key = probe_key(src, dst_ip, dst, proto, port)?;
    let bytes = weft_switchd::pipeline::packet::packet_from_key(&key);
    // Every node's switchd: the walks need the source's and the tunnel
    // targets', and every node's tunnel endpoint says where an outer frame
    // goes. A node that cannot be reached only matters if the packet goes
    // there.
    if !cluster.sockets.contains_key(&src.node) {
        bail!(
            "node {}: no switchd socket in the controller status",
            src.node
        );
    }
    let mut conns: BTreeMap<String, NodeConn> = BTreeMap::new();
    let mut unreachable: BTreeMap<String, anyhow::Error> = BTreeMap::new();
    for (n, sock) in &cluster.sockets {
        match NodeConn::open(n, sock) {
            Ok(c) => {
                conns.insert(n.clone(), c);
            }
            Err(e) if *n == src.node => return Err(e),
            Err(e) => {
                unreachable.insert(n.clone(), e);
            }
        }
    }
    let endpoints: Vec<(IpAddr, String)> = conns
        .iter()
        .filter_map(|(n, c)| c.local_ip.map(|ip| (ip, n.clone())))
        .collect();
    let mut hops = Vec::new();
    let mut delivered = Vec::new();
    let mut allowed = false;
    // (node, in_port, from, bytes) still to trace.
    let mut queue = vec![(
        src.node.clone(),
        PortNo(src.ofport),
        format!("pod {}", src.name),
        bytes,
    )];
    let mut tunnels = 0;
    while let Some((node, in_port, from_what, frame)) = queue.pop() {
        let c = conns
            .get_mut(&node)
            .ok_or_else(|| anyhow!("node {node}: not connected"))?;
        let rep = c.trace(&node, in_port, frame)?;
        let steps = label(&rep, &c.cookies);
        let underlay = c.underlay;
        let mut outs = Vec::new();
        let mut next = Vec::new();
        for o in &rep.outputs {
            let to_what = if let Some(p) = cluster.pod_at(&node, o.port) {
                delivered.push(p.name.clone());
                if dst.is_some_and(|d| d.name == p.name) {
                    allowed = true;
                }
                format!("pod {}", p.name)
            } else if Some(o.port) == underlay {
                if let Some(mut t) = decode_outer(&o.packet) {
                    t.from_node.clone_from(&node);
                    t.to_node = endpoints
                        .iter()
                        .find(|(ip, _)| ip.to_string() == t.outer_dst)
                        .map(|(_, n)| n.clone());
                    next.push((t, o.packet.clone()));
                }
                "underlay".to_owned()
            } else {
                format!("port {}", o.port)
            };
            outs.push(Out {
                port: o.port.0,
                to: to_what,
                bytes: o.packet.len(),
            });
        }
        hops.push(Hop::Node(NodeWalk {
            node: node.clone(),
            in_port: in_port.0,
            from: from_what,
            flow: rep.flow.clone(),
            steps,
            outputs: outs,
            dropped: rep.dropped,
            drop_reason: rep.drop_reason.clone(),
            text: rep.text.clone(),
        }));
        for (t, frame) in next {
            tunnels += 1;
            let target = t.to_node.clone();
            if target.is_none() && !unreachable.is_empty() {
                bail!(
                    "the packet tunnels to {}, which is no reachable node's endpoint; \
                     not reachable: {}",
                    t.outer_dst,
                    unreachable
                        .iter()
                        .map(|(n, e)| format!("{n} ({e:#})"))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            hops.push(Hop::Tunnel(t));
            let Some(n2) = target else { continue };
            if tunnels > MAX_HOPS {
                bail!("more than {MAX_HOPS} tunnel hops: a forwarding loop?");
            }
            if let Some(e) = unreachable.remove(&n2) {
                return Err(e.context(format!("the packet tunnels to node {n2}")));
            }
            let Some(u2) = conns.get(&n2).and_then(|c| c.underlay) else {
                bail!("node {n2}: its switchd has no underlay port");
            };
            queue.push((n2, u2, "underlay".to_owned(), frame));
        }
    }
    let decided_by = decide(&mut hops, allowed, src, dst);
    for (_, c) in conns {
        let mut c = c.client;
        let _ = c.request(Body::Goodbye);
    }
    Ok(CrossTrace {
        from: from.to_owned(),
        to: to.to_owned(),
        packet: protocol::text::format_flow_key(&key),
        hops,
        allowed,
        delivered_to: delivered,
        decided_by,
    })
}

/// Renders the trace as text (see README for an example). `full` adds
/// each node's switchd trace text.
pub(crate) fn render(t: &CrossTrace, full: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "Trace {} -> {}", t.from, t.to);
    let _ = writeln!(s, "Packet: {}", t.packet);
    for h in &t.hops {
        s.push('\n');
        match h {
            Hop::Node(w) => {
                let _ = writeln!(s, "== node {}: in_port {} ({})", w.node, w.in_port, w.from);
                for st in &w.steps {
                    let ind = "  ".repeat(usize::from(st.depth) + 1);
                    match st.priority {
                        None => {
                            let _ = writeln!(s, "{ind}{:>2}. {}: no match", st.table, st.stage);
                        }
                        Some(p) => {
                            let _ = write!(
                                s,
                                "{ind}{:>2}. {}: priority {p}, {}",
                                st.table,
                                st.stage,
                                st.source.as_deref().unwrap_or("(cookie not in the table)")
                            );
                            if let Some(d) = &st.decisive {
                                let _ = write!(s, "  <== {d}");
                            }
                            s.push('\n');
                        }
                    }
                }
                for o in &w.outputs {
                    let _ = writeln!(
                        s,
                        "  -> output to port {} ({}, {} bytes)",
                        o.port, o.to, o.bytes
                    );
                }
                if w.outputs.is_empty() {
                    let _ = writeln!(
                        s,
                        "  -> dropped{}",
                        w.drop_reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    );
                }
                if full {
                    s.push('\n');
                    for l in w.text.lines() {
                        let _ = writeln!(s, "    | {l}");
                    }
                }
            }
            Hop::Tunnel(x) => {
                let _ = writeln!(
                    s,
                    "== tunnel {} -> {}: {} {} -> {} (ttl {}), udp {} -> {}, vni {}",
                    x.from_node,
                    x.to_node.as_deref().unwrap_or("no node"),
                    x.kind,
                    x.outer_src,
                    x.outer_dst,
                    x.ttl,
                    x.udp_src,
                    x.udp_dst,
                    x.vni
                );
                let _ = writeln!(
                    s,
                    "  outer ethernet {} -> {}, {} bytes",
                    x.outer_src_mac, x.outer_dst_mac, x.bytes
                );
                for o in &x.options {
                    let _ = writeln!(
                        s,
                        "  option class {:#06x} type {:#04x} data {}",
                        o.class, o.r#type, o.data
                    );
                }
            }
        }
    }
    s.push('\n');
    let verdict = if t.allowed { "ALLOWED" } else { "DENIED" };
    let _ = write!(s, "Verdict: {verdict}");
    if t.delivered_to.is_empty() {
        s.push_str(" (delivered to no pod)\n");
    } else {
        let _ = writeln!(s, " (delivered to {})", t.delivered_to.join(", "));
    }
    for d in &t.decided_by {
        let _ = writeln!(s, "  {d}");
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

    use super::*;
    use protocol::ctl::{TraceOutput, TraceRule, TraceRuleHit};
    use protocol::flow::{Cookie, Priority};
    use serde_json::json;

    fn status() -> Value {
        json!({
            "nodes": {
                "node-a": {"socket": "/run/a.sock", "connected": true},
                "node-c": {"socket": "/run/c.sock", "connected": true},
            },
            "pods": {
                "red-web/frontend": {
                    "node": "node-a", "ofport": 3, "mac": "0a:58:0a:0a:01:02",
                    "ips": ["10.10.1.2"], "tenant": "red", "switch": "ls/red/red-main",
                    "subnet": "10.10.1.0/24", "gateway_mac": "0a:58:0a:0a:01:01",
                    "datapath": 7,
                    "isolated_by": {"ingress": ["red-web/frontend"], "egress": ["red-web/frontend"]},
                },
                "red-db/postgres": {
                    "node": "node-c", "ofport": 2, "mac": "0a:58:0a:0a:01:03",
                    "ips": ["10.10.1.3"], "tenant": "red", "switch": "ls/red/red-main",
                    "subnet": "10.10.1.0/24", "gateway_mac": "0a:58:0a:0a:01:01",
                    "datapath": 7,
                    "isolated_by": {"ingress": ["red-db/db-from-frontend"], "egress": []},
                },
                "red-web/pending": {"node": null, "ofport": null, "mac": "0a:58:0a:0a:01:09", "ips": []},
            },
        })
    }

    #[test]
    fn status_file_parses_and_skips_unattached_pods() {
        let c = Cluster::from_json(&status()).unwrap();
        assert_eq!(c.pods.len(), 2);
        assert_eq!(c.sockets["node-c"], PathBuf::from("/run/c.sock"));
        let p = &c.pods["red-db/postgres"];
        assert_eq!(p.ofport, 2);
        assert_eq!(p.isolated_ingress, ["red-db/db-from-frontend"]);
        assert_eq!(
            c.pod_at("node-c", PortNo(2)).unwrap().name,
            "red-db/postgres"
        );
        assert!(c.pod_at("node-a", PortNo(2)).is_none());
        let mut bad = status();
        bad["pods"]["red-db/postgres"]["mac"] = json!("nonsense");
        let e = Cluster::from_json(&bad).unwrap_err().to_string();
        assert!(e.contains("red-db/postgres") && e.contains("mac"), "{e}");
    }

    #[test]
    fn probe_goes_to_the_peer_on_link_and_to_the_gateway_otherwise() {
        let c = Cluster::from_json(&status()).unwrap();
        let (a, b) = (&c.pods["red-web/frontend"], &c.pods["red-db/postgres"]);
        let k = probe_key(a, b.ips[0], Some(b), Proto::Tcp, 5432).unwrap();
        assert_eq!(k.dl_dst(), b.mac);
        assert_eq!(k.tp_dst(), 5432);
        let other: IpAddr = "10.10.9.9".parse().unwrap();
        let k = probe_key(a, other, None, Proto::Icmp, 0).unwrap();
        assert_eq!(k.dl_dst(), a.gateway_mac.unwrap());
        assert_eq!(k.nw_proto(), 1);
        assert!(probe_key(a, "fd00::1".parse().unwrap(), None, Proto::Udp, 53).is_err());
    }

    /// A Geneve frame laid out as switchd emits it (RFC 8926 section 3.4,
    /// written out by hand): outer Ethernet, IPv4, UDP 51000 -> 6081,
    /// Geneve VNI 7 with one 4-byte option of class 0xff57 type 0x80.
    fn geneve_frame() -> Vec<u8> {
        let inner = [0xaau8; 20];
        let geneve: [u8; 16] = [
            0x02, 0x40, 0x65, 0x58, // ver 0, opt len 2 words; C bit; Ethernet
            0x00, 0x00, 0x07, 0x00, // VNI 7
            0xff, 0x57, 0x80, 0x01, // class, type, length 1 word
            0x00, 0x03, 0x00, 0x02, // ingress port 3, egress port 2
        ];
        let ulen = 8 + geneve.len() + inner.len();
        let mut b = vec![
            2, 0, 0, 0, 0, 0x13, 2, 0, 0, 0, 0, 0x11, 0x08, 0x00, // Ethernet
        ];
        let tot = u16::try_from(20 + ulen).unwrap().to_be_bytes();
        b.extend_from_slice(&[0x45, 0, tot[0], tot[1], 0, 0, 0x40, 0, 64, 17, 0, 0]);
        b.extend_from_slice(&[192, 0, 2, 11, 192, 0, 2, 13]);
        let ul = u16::try_from(ulen).unwrap().to_be_bytes();
        b.extend_from_slice(&[0xc7, 0x38, 0x17, 0xc1, ul[0], ul[1], 0, 0]);
        b.extend_from_slice(&geneve);
        b.extend_from_slice(&inner);
        Ipv4Packet::new_unchecked(&mut b[14..34]).fill_checksum();
        b
    }

    #[test]
    fn outer_header_of_a_geneve_frame() {
        let t = decode_outer(&geneve_frame()).unwrap();
        assert_eq!(t.kind, "geneve");
        assert_eq!(
            (t.outer_src.as_str(), t.outer_dst.as_str()),
            ("192.0.2.11", "192.0.2.13")
        );
        assert_eq!((t.udp_src, t.udp_dst, t.vni, t.ttl), (51000, 6081, 7, 64));
        assert_eq!(
            t.options,
            [TunOpt {
                class: 0xff57,
                r#type: 0x80,
                data: "00030002".into()
            }]
        );
        assert_eq!(t.outer_dst_mac, "02:00:00:00:00:13");
        // Not a tunnel frame: a plain UDP packet to another port.
        let mut f = geneve_frame();
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        assert!(decode_outer(&f).is_none());
        assert!(decode_outer(&f[..20]).is_none());
    }

    fn rule(table: u8, depth: u16, prio: u16, cookie: u64, actions: &str) -> TraceRule {
        TraceRule {
            table: TableId(table),
            depth,
            hit: Some(TraceRuleHit {
                priority: Priority(prio),
                cookie: Cookie(cookie),
                r#match: "ip".into(),
                actions: actions.into(),
            }),
        }
    }

    fn info(cookie: u64, kind: &str, ns: &str, name: &str, rule: u32) -> (u64, CookieInfo) {
        (
            cookie,
            CookieInfo {
                cookie: Cookie(cookie),
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
                rule,
            },
        )
    }

    fn walk(node: &str, rules: Vec<TraceRule>, cookies: &BTreeMap<u64, CookieInfo>) -> Hop {
        let rep = TraceReport {
            text: String::new(),
            flow: String::new(),
            dropped: false,
            drop_reason: None,
            outputs: vec![TraceOutput {
                port: PortNo(1),
                packet: vec![0; 60],
            }],
            packet_ins: 0,
            rules,
        };
        Hop::Node(NodeWalk {
            node: node.into(),
            in_port: 1,
            from: "underlay".into(),
            flow: String::new(),
            steps: label(&rep, cookies),
            outputs: Vec::new(),
            dropped: false,
            drop_reason: None,
            text: String::new(),
        })
    }

    #[test]
    fn allowed_walks_name_the_policy_rules_of_both_nodes() {
        let c = Cluster::from_json(&status()).unwrap();
        let cookies: BTreeMap<_, _> = [
            info(1, "Pod", "red-web", "frontend", u32::MAX),
            info(2, "NetworkPolicy", "red-web", "frontend", 1 << 31),
            info(3, "NetworkPolicy", "red-db", "db-from-frontend", 0),
        ]
        .into_iter()
        .collect();
        let mut hops = vec![
            walk(
                "node-a",
                vec![
                    rule(0, 0, 100, 1, "resubmit(,10)"),
                    rule(20, 1, 2000, 2, "resubmit(,25)"),
                    rule(40, 2, 100, 9, "output:5"),
                ],
                &cookies,
            ),
            walk(
                "node-c",
                vec![
                    rule(0, 0, 100, 1, "resubmit(,45)"),
                    rule(45, 1, 2000, 3, "output:2"),
                ],
                &cookies,
            ),
        ];
        let lines = decide(
            &mut hops,
            true,
            &c.pods["red-web/frontend"],
            Some(&c.pods["red-db/postgres"]),
        );
        assert_eq!(
            lines,
            [
                "ingress ACL (Kubernetes egress policy) on node-a: allowed by NetworkPolicy red-web/frontend egress[0]",
                "egress ACL (Kubernetes ingress policy) on node-c: allowed by NetworkPolicy red-db/db-from-frontend ingress[0]",
            ]
        );
        let Hop::Node(w) = &hops[0] else { panic!() };
        assert_eq!(w.steps[0].source.as_deref(), Some("Pod red-web/frontend"));
        assert_eq!(w.steps[0].stage, "physical-in");
        assert!(w.steps[0].decisive.is_none());
        assert_eq!(w.steps[2].source, None, "cookie 9 is not in the table");
    }

    #[test]
    fn a_drop_names_the_isolation_and_the_policies_behind_it() {
        let c = Cluster::from_json(&status()).unwrap();
        let cookies: BTreeMap<_, _> = [
            info(1, "Pod", "red-web", "frontend", u32::MAX),
            info(4, "Infrastructure", "red-db", "isolation-ingress", u32::MAX),
        ]
        .into_iter()
        .collect();
        let mut hops = vec![walk(
            "node-c",
            vec![
                rule(0, 0, 100, 1, "resubmit(,45)"),
                rule(45, 1, 1000, 4, "drop"),
            ],
            &cookies,
        )];
        let lines = decide(
            &mut hops,
            false,
            &c.pods["red-web/frontend"],
            Some(&c.pods["red-db/postgres"]),
        );
        assert_eq!(
            lines,
            [
                "egress ACL (Kubernetes ingress policy) on node-c: ingress isolation of namespace \
              red-db by NetworkPolicy red-db/db-from-frontend (Infrastructure red-db/isolation-ingress)"
            ]
        );
        let Hop::Node(w) = &hops[0] else { panic!() };
        assert!(
            w.steps[1]
                .decisive
                .as_deref()
                .unwrap()
                .ends_with("the packet stops here")
        );
        // A drop outside the ACL stages is named by the last rule.
        let mut hops = vec![walk("node-a", vec![rule(10, 0, 0, 1, "drop")], &cookies)];
        let lines = decide(&mut hops, false, &c.pods["red-web/frontend"], None);
        assert_eq!(
            lines,
            [
                "ingress port security (L2) on node-a: stopped by Pod red-web/frontend (actions drop)"
            ]
        );
    }

    #[test]
    fn rendering_shows_walks_tunnel_and_verdict() {
        let t = CrossTrace {
            from: "red-web/frontend".into(),
            to: "red-db/postgres".into(),
            packet: "tcp,nw_src=10.10.1.2".into(),
            hops: vec![
                Hop::Node(NodeWalk {
                    node: "node-a".into(),
                    in_port: 3,
                    from: "pod red-web/frontend".into(),
                    flow: String::new(),
                    steps: vec![Step {
                        table: 20,
                        stage: stage(20),
                        depth: 1,
                        priority: Some(2000),
                        cookie: "0x2".into(),
                        r#match: "ip".into(),
                        actions: "resubmit(,25)".into(),
                        source: Some("NetworkPolicy red-web/frontend egress[0]".into()),
                        decisive: Some(
                            "allowed by NetworkPolicy red-web/frontend egress[0]".into(),
                        ),
                    }],
                    outputs: vec![Out {
                        port: 5,
                        to: "underlay".into(),
                        bytes: 124,
                    }],
                    dropped: false,
                    drop_reason: None,
                    text: "Flow: x\n".into(),
                }),
                Hop::Tunnel({
                    let mut x = decode_outer(&geneve_frame()).unwrap();
                    x.from_node = "node-a".into();
                    x.to_node = Some("node-c".into());
                    x
                }),
            ],
            allowed: true,
            delivered_to: vec!["red-db/postgres".into()],
            decided_by: vec!["x".into()],
        };
        let s = render(&t, false);
        assert!(
            s.contains("== node node-a: in_port 3 (pod red-web/frontend)"),
            "{s}"
        );
        assert!(
            s.contains("    20. ingress ACL (Kubernetes egress policy): priority 2000, NetworkPolicy red-web/frontend egress[0]  <== allowed by"),
            "{s}"
        );
        assert!(
            s.contains("  -> output to port 5 (underlay, 124 bytes)"),
            "{s}"
        );
        assert!(
            s.contains("== tunnel node-a -> node-c: geneve 192.0.2.11 -> 192.0.2.13 (ttl 64), udp 51000 -> 6081, vni 7"),
            "{s}"
        );
        assert!(
            s.contains("option class 0xff57 type 0x80 data 00030002"),
            "{s}"
        );
        assert!(
            s.contains("Verdict: ALLOWED (delivered to red-db/postgres)"),
            "{s}"
        );
        assert!(!s.contains("| Flow: x"));
        assert!(render(&t, true).contains("    | Flow: x"));
        let j = serde_json::to_value(&t).unwrap();
        assert_eq!(j["hops"][1]["tunnel"]["vni"], 7);
        assert_eq!(
            j["hops"][0]["node"]["steps"][0]["source"],
            "NetworkPolicy red-web/frontend egress[0]"
        );
    }
}
