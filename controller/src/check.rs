//! Policy checks through the **real switchd pipeline**: the compiled flows
//! of every node are loaded with `switchd::pipeline::compile`, a packet is
//! built as the source pod would send it (its MAC and IP; to the
//! destination pod's MAC when both share a switch, else to the gateway's)
//! and run through `Pipeline::process` on the source node. The verdict is
//! "allow" if the frame leaves on the destination pod's port, "deny"
//! otherwise.
//!
//! # The tunnel hop: real encapsulation and decapsulation
//!
//! Each node's pipeline is built with switchd's tunnel layer
//! (`Pipeline::with_tunnels`), configured as `weft-switchd` (or `weftctl
//! trace --offline --tunnel-port ... --underlay ...`) would be on that
//! node:
//!
//! - one flow-based Geneve port at [`CompileConfig::tunnel_port`];
//! - an underlay port [`UNDERLAY_OFPORT`] whose local endpoint is the
//!   node's `underlay_ip` and whose MAC is [`underlay_mac`] of it;
//! - static next hops: every other node's underlay address at its
//!   [`underlay_mac`] (an on-link underlay, as the namespace tests build);
//! - the TLV map the compiler needs (class `0xff57`, type `0x80`, 4 bytes
//!   -> `tun_metadata0`).
//!
//! A packet that the source node's flows output to the tunnel port is
//! encapsulated by switchd (outer Ethernet/IPv4/UDP/Geneve with the
//! option) and leaves on the underlay port. That outer frame is handed to
//! the node whose underlay address is its outer IPv4 destination, on that
//! node's underlay port, where switchd decapsulates it and the flows of
//! table 0 continue with the tunnel fields as received. So the probe
//! crosses the same bytes a real cluster would put on the wire; a frame
//! whose outer destination is no node is lost, as on a real underlay.
//!
//! What decided: the rules hit in the two ACL stages (their cookies, named
//! through the compiler's cookie table). A denied packet names the drop
//! rule that stopped it (an isolation ACL, or a port-security/lookup stage
//! default); an allowed one names the allow rules that let it pass in each
//! direction, or "no policy" when a stage passed it by its default.
//!
//! Probes use TCP SYN (flags `syn` only), UDP or SCTP from source port
//! [`PROBE_SRC_PORT`] (40000), or an ICMP echo request ([`Service::Ping`]),
//! with TTL 64: the first packet of a connection, which is what
//! Kubernetes NetworkPolicy decides on.
//!
//! # Round trips: what Weft really does with the replies
//!
//! Kubernetes NetworkPolicy governs connections: once the first packet is
//! allowed, the replies are allowed too, whatever the policies say about
//! the reverse direction. Weft has no connection tracking yet; its replies
//! pass only through the stateless return-traffic ACLs (table in
//! `translate/policy.rs`). [`Cluster::round_trip`] therefore sends the
//! forward probe and, when it reached the destination pod, the reply that
//! pod's stack would send back through the destination node's pipeline
//! (and the tunnel hop) to the source pod:
//!
//! | service | forward | reply |
//! |---|---|---|
//! | TCP port P | SYN, 40000 -> P | SYN+ACK, P -> 40000 |
//! | UDP / SCTP port P | datagram, 40000 -> P | datagram, P -> 40000 |
//! | ping | ICMP echo request (8/0) | ICMP echo reply (0/0) |
//!
//! The round trip is allowed when both directions are; [`RoundTrip`]
//! keeps both probes, so a caller sees where the first packet alone
//! (Kubernetes' answer) and the round trip (Weft's) differ. They differ
//! where the return-traffic table denies replies that Kubernetes allows:
//! UDP/SCTP replies through a direction the pod is isolated in, unless a
//! rule names the UDP/SCTP port (e.g. UDP from a pod isolated for ingress
//! only, or to a pod isolated for egress only, to a port no rule of the
//! other direction names), and UDP/SCTP replies of port-less rules. TCP
//! and ping replies pass wherever the first packet passed: every allow
//! rule returns TCP with ACK from its ports, a port-less rule (the only
//! kind that allows ICMP echo requests through an isolated direction)
//! returns ICMP echo replies, and a pod isolated in one direction only
//! gets TCP with ACK and ICMP echo replies back through that direction
//! (`return-open-*`).
//!
//! A [`SourceOverride`] replaces the probe's source IPv4 address and/or
//! source MAC (a pod sending with an address that is not its own): the
//! packet still enters on the source pod's port, so the verdict is what
//! port security makes of the spoofed packet. [`Probe::delivered_to`]
//! names every pod whose port the packet left on, so a probe to another
//! tenant's address shows which pod (if any) actually received it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use protocol::flow::{Cookie, Field, FlowKey, PortNo, TableId};
use protocol::wire::EthernetAddress;
use serde::Serialize;
use weft_switchd::buf::PacketBuf;
use weft_switchd::pipeline::{
    self, CollectSink, Pipeline, Rule, SwitchConfig, TraceSink, TreeTrace, WorkerState,
};
use weft_switchd::tunnel::{NextHops, TlvMap, TunnelKind, TunnelPort, Tunnels, Underlay};

use crate::compile::{CompileConfig, Compiler, table, units::port_ofport};
use crate::model::{L4Protocol, LogicalModel, LogicalPort, PortKind};

/// An end of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A pod, `namespace/name`.
    Pod(String, String),
    /// An address (a pod's address is resolved to the pod; the first pod of
    /// any tenant with that address).
    Ip(IpAddr),
}

impl Endpoint {
    /// Parses `NS/POD` or an IP address.
    pub fn parse(s: &str) -> Result<Endpoint, CheckError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Endpoint::Ip(ip));
        }
        match s.split_once('/') {
            Some((ns, pod)) if !ns.is_empty() && !pod.is_empty() && !pod.contains('/') => {
                Ok(Endpoint::Pod(ns.to_owned(), pod.to_owned()))
            }
            _ => Err(CheckError::BadEndpoint(s.to_owned())),
        }
    }
}

/// Errors of a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Neither `NS/POD` nor an IP address.
    #[error("{0:?} is neither NAMESPACE/POD nor an IP address")]
    BadEndpoint(String),
    /// No such pod in the manifests.
    #[error("no pod {0} in the manifests")]
    NoPod(String),
    /// The pod has no IPv4 address (not scheduled, or IPv6 only).
    #[error("pod {0} has no IPv4 address")]
    NoAddress(String),
    /// An address that is not a pod's: traffic from or to outside the
    /// cluster has no entry point in the pipeline yet.
    #[error(
        "{0} is not the address of a pod in the manifests (addresses outside the cluster are not supported yet: the model has no external gateway)"
    )]
    External(IpAddr),
    /// A node's flows were refused by switchd's compile (a compiler bug).
    #[error("node {node}: switchd refused the compiled flows: {error}")]
    Switchd {
        /// Node.
        node: String,
        /// switchd's error.
        error: String,
    },
}

/// The answer to one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// True if the packet reached the destination pod's port.
    pub allowed: bool,
    /// The rules that decided, as `NetworkPolicy ns/name ingress[0]` etc.,
    /// each with the stage it acted in.
    pub decided_by: Vec<String>,
    /// Nodes walked (source first).
    pub nodes: Vec<String>,
    /// Every pod (`ns/name`) whose port the packet left on, the
    /// destination or not (e.g. the pod of the source's tenant that has
    /// the address of another tenant's destination pod).
    pub delivered_to: Vec<String>,
}

/// What a probe's packet claims as its source instead of the source pod's
/// own addresses (spoofing, stopped by port security); `None` = the pod's
/// own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceOverride {
    /// Source IPv4 address.
    pub ip: Option<std::net::Ipv4Addr>,
    /// Source MAC address.
    pub mac: Option<EthernetAddress>,
}

/// Every node's compiled pipeline, ready for probes.
#[derive(Debug)]
pub struct Cluster {
    compiler: Compiler,
    pipelines: BTreeMap<String, Pipeline>,
    cfg: CompileConfig,
}

/// What one node walk did.
#[derive(Debug, Default)]
struct Walk {
    /// (table, cookie, priority) of every rule hit.
    hits: Vec<(TableId, Cookie, u16)>,
}

impl TraceSink for Walk {
    fn table(&mut self, table: TableId, rule: Option<&Rule>, _conj_id: Option<u32>) {
        if let Some(r) = rule {
            self.hits.push((table, r.spec.cookie, r.spec.priority.0));
        }
    }
}

/// Both a [`Walk`] and a [`TreeTrace`] (for `--trace` output).
#[derive(Debug)]
struct Both<'a> {
    walk: Walk,
    tree: Option<&'a mut TreeTrace>,
}

impl TraceSink for Both<'_> {
    fn begin(&mut self, in_port: PortNo, key: &FlowKey) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.begin(in_port, key);
        }
    }
    fn table(&mut self, table: TableId, rule: Option<&Rule>, conj_id: Option<u32>) {
        self.walk.table(table, rule, conj_id);
        if let Some(t) = self.tree.as_deref_mut() {
            t.table(table, rule, conj_id);
        }
    }
    fn miss(&mut self, table: TableId, b: pipeline::MissBehavior) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.miss(table, b);
        }
    }
    fn end_table(&mut self) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.end_table();
        }
    }
    fn action(&mut self, a: &protocol::flow::Action) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.action(a);
        }
    }
    fn field(&mut self, field: Field, old: u128, new: u128) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.field(field, old, new);
        }
    }
    fn note(&mut self, n: pipeline::TraceNote) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.note(n);
        }
    }
    fn nest(&mut self) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.nest();
        }
    }
    fn unnest(&mut self) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.unnest();
        }
    }
    fn action_set(&mut self) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.action_set();
        }
    }
    fn output(&mut self, port: PortNo, bytes: &[u8]) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.output(port, bytes);
        }
    }
    fn packet_in(
        &mut self,
        r: protocol::flow::ControllerReason,
        table: TableId,
        c: Cookie,
        b: &[u8],
    ) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.packet_in(r, table, c, b);
        }
    }
    fn drop_reason(&mut self, r: pipeline::DropReason) {
        if let Some(t) = self.tree.as_deref_mut() {
            t.drop_reason(r);
        }
    }
}

/// One node's part of a traced probe.
#[derive(Debug, Clone)]
pub struct NodeTrace {
    /// Node.
    pub node: String,
    /// Trace text (switchd's `TreeTrace`).
    pub text: String,
}

impl Cluster {
    /// Compiles `model` and loads every node's flows into switchd.
    pub fn new(model: LogicalModel) -> Result<Cluster, CheckError> {
        let cfg = CompileConfig::default();
        Cluster::from_compiler(Compiler::new(model, cfg.clone()), cfg)
    }

    /// Loads the flows of an existing compile.
    pub fn from_compiler(compiler: Compiler, cfg: CompileConfig) -> Result<Cluster, CheckError> {
        let mut pipelines = BTreeMap::new();
        for node in compiler.nodes().map(str::to_owned).collect::<Vec<_>>() {
            let flows = compiler.flows(&node);
            let err = |e: String| CheckError::Switchd {
                node: node.clone(),
                error: e,
            };
            let tunnels = node_tunnels(compiler.model(), &node, &cfg).map_err(err)?;
            let pl = pipeline::compile(&flows, node_config(compiler.model(), &node, &cfg))
                .map_err(|e| err(e.to_string()))?
                .with_tunnels(Arc::new(tunnels));
            pipelines.insert(node, pl);
        }
        Ok(Cluster {
            compiler,
            pipelines,
            cfg,
        })
    }

    /// The compile configuration (tunnel port).
    pub fn config(&self) -> &CompileConfig {
        &self.cfg
    }

    /// The compiler (flows, cookies).
    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    /// The model.
    pub fn model(&self) -> &LogicalModel {
        self.compiler.model()
    }

    fn resolve(&self, e: &Endpoint) -> Result<&LogicalPort, CheckError> {
        let m = self.model();
        match e {
            Endpoint::Pod(ns, pod) => m
                .pod_port(ns, pod)
                .ok_or_else(|| CheckError::NoPod(format!("{ns}/{pod}"))),
            Endpoint::Ip(ip) => m
                .pod_ports()
                .find(|p| p.ips.contains(ip))
                .ok_or(CheckError::External(*ip)),
        }
    }

    /// Sends one probe; see the module doc.
    pub fn probe(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        port: u16,
        proto: L4Protocol,
    ) -> Result<Probe, CheckError> {
        self.run(
            from,
            to,
            Service::L4(proto, port).request(),
            SourceOverride::default(),
            None,
        )
    }

    /// A forward probe of `service` (the first packet only; see
    /// [`round_trip`](Self::round_trip) for the reply).
    pub fn probe_service(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        service: Service,
    ) -> Result<Probe, CheckError> {
        self.run(from, to, service.request(), SourceOverride::default(), None)
    }

    /// The forward probe and, if it reached the destination pod, that
    /// pod's reply back to the source (module doc, "Round trips"); with
    /// each node's trace of the forward probe and of the reply when `trace`
    /// is set.
    pub fn round_trip(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        service: Service,
        trace: bool,
    ) -> Result<RoundTripTrace, CheckError> {
        let mut fwd_traces = Vec::new();
        let mut reply_traces = Vec::new();
        let forward = self.run(
            from,
            to,
            service.request(),
            SourceOverride::default(),
            trace.then_some(&mut fwd_traces),
        )?;
        let loopback = forward.nodes.is_empty();
        let reply = if forward.allowed && !loopback {
            // The destination pod answers from its own address to the
            // source pod's (the forward probe resolved both; an address
            // is the pod of the source's tenant that has it).
            let src = self.resolve(from)?;
            let dst = match to {
                Endpoint::Pod(..) => self.resolve(to)?,
                Endpoint::Ip(ip) => self
                    .model()
                    .pod_ports()
                    .find(|p| p.tenant == src.tenant && p.ips.contains(ip))
                    .ok_or(CheckError::External(*ip))?,
            };
            Some(self.run(
                &pod_endpoint(dst)?,
                &pod_endpoint(src)?,
                service.reply(),
                SourceOverride::default(),
                trace.then_some(&mut reply_traces),
            )?)
        } else {
            None
        };
        Ok(RoundTripTrace {
            round_trip: RoundTrip {
                allowed: forward.allowed && (loopback || reply.as_ref().is_some_and(|r| r.allowed)),
                forward,
                reply,
            },
            forward: fwd_traces,
            reply: reply_traces,
        })
    }

    /// [`probe`](Self::probe) with the source addresses replaced, and each
    /// node's trace when `trace` is set.
    pub fn probe_as(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        port: u16,
        proto: L4Protocol,
        src: SourceOverride,
        trace: bool,
    ) -> Result<(Probe, Vec<NodeTrace>), CheckError> {
        let mut traces = Vec::new();
        let p = self.run(
            from,
            to,
            Service::L4(proto, port).request(),
            src,
            trace.then_some(&mut traces),
        )?;
        Ok((p, traces))
    }

    /// [`probe`](Self::probe), also returning each node's trace.
    pub fn trace(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        port: u16,
        proto: L4Protocol,
    ) -> Result<(Probe, Vec<NodeTrace>), CheckError> {
        let mut traces = Vec::new();
        let p = self.run(
            from,
            to,
            Service::L4(proto, port).request(),
            SourceOverride::default(),
            Some(&mut traces),
        )?;
        Ok((p, traces))
    }

    fn run(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        pkt: Packet,
        spoof: SourceOverride,
        mut traces: Option<&mut Vec<NodeTrace>>,
    ) -> Result<Probe, CheckError> {
        let m = self.model();
        let src = self.resolve(from)?;
        // The destination pod: the one named, or for an address the pod of
        // the source's tenant that has it (another tenant's address space
        // is not reachable, whatever the address).
        let (dst_ip, dst) = match to {
            Endpoint::Ip(ip) => (
                *ip,
                m.pod_ports()
                    .find(|p| p.tenant == src.tenant && p.ips.contains(ip)),
            ),
            Endpoint::Pod(..) => {
                let d = self.resolve(to)?;
                (
                    first_v4(d).ok_or_else(|| CheckError::NoAddress(d.name.clone()))?,
                    Some(d),
                )
            }
        };
        if dst.is_some_and(|d| d.id == src.id) {
            // A pod reaching itself never leaves its network namespace
            // (Kubernetes: a pod cannot block its own loopback traffic).
            return Ok(Probe {
                allowed: true,
                decided_by: vec![
                    "loopback: a pod reaching itself never leaves its network namespace".to_owned(),
                ],
                nodes: Vec::new(),
                delivered_to: Vec::new(),
            });
        }
        let (IpAddr::V4(s4), IpAddr::V4(d4)) = (
            first_v4(src).ok_or_else(|| CheckError::NoAddress(src.name.clone()))?,
            dst_ip,
        ) else {
            return Err(CheckError::NoAddress(format!("{dst_ip}")));
        };
        let sw = m.switches.get(&src.switch);
        // On-link destination (the pod would ARP and the responder answers
        // with the owner's MAC in its own switch), else the gateway.
        let on_link = m
            .pod_ports()
            .find(|p| p.switch == src.switch && p.ips.contains(&dst_ip));
        let dl_dst = match on_link {
            Some(d) if sw.is_some_and(|s| s.subnet.contains(&dst_ip)) => d.mac,
            _ => gateway_mac(m, src).unwrap_or(src.mac),
        };
        let mut key = FlowKey::default();
        key.set_dl_src(spoof.mac.unwrap_or(src.mac));
        key.set_dl_dst(dl_dst);
        key.set_dl_type(0x0800);
        key.set_nw_src(spoof.ip.unwrap_or(s4));
        key.set_nw_dst(d4);
        key.set_nw_ttl(64);
        key.set_nw_proto(pkt.proto);
        key.set_tp_src(pkt.tp_src);
        key.set_tp_dst(pkt.tp_dst);
        if pkt.proto == L4Protocol::Tcp.ip_proto() {
            key.set_tcp_flags(pkt.tcp_flags);
        }
        let bytes = pipeline::packet::packet_from_key(&key);
        let Some(node) = src.node.clone() else {
            return Err(CheckError::NoPod(src.name.clone()));
        };
        let target = dst.map(|d| (d.node.clone(), port_ofport(d)));
        let mut hits = Vec::new();
        let mut nodes = vec![node.clone()];
        let (out, walk) = self.walk(&node, &bytes, port_ofport(src), traces.as_deref_mut());
        hits.extend(walk.hits.iter().map(|h| (node.clone(), *h)));
        let mut allowed = false;
        let mut delivered = std::collections::BTreeSet::new();
        let pod_at = |n: &str, p: PortNo| {
            m.ports_on_node(n)
                .find(|q| port_ofport(q) == p)
                .map(|q| q.name.clone())
        };
        for (p, frame) in &out.outputs {
            if Some((Some(node.clone()), *p)) == target {
                allowed = true;
            }
            delivered.extend(pod_at(&node, *p));
            if *p == UNDERLAY_OFPORT {
                // The tunnel hop: switchd encapsulated; the outer IPv4
                // destination names the receiving node.
                let Some(next) = outer_ipv4_dst(frame)
                    .and_then(|d| m.nodes.values().find(|n| n.underlay_ip == IpAddr::V4(d)))
                else {
                    continue;
                };
                nodes.push(next.name.clone());
                let (out2, walk2) =
                    self.walk(&next.name, frame, UNDERLAY_OFPORT, traces.as_deref_mut());
                hits.extend(walk2.hits.iter().map(|h| (next.name.clone(), *h)));
                delivered.extend(
                    out2.outputs
                        .iter()
                        .filter_map(|(p2, _)| pod_at(&next.name, *p2)),
                );
                if out2
                    .outputs
                    .iter()
                    .any(|(p2, _)| Some((Some(next.name.clone()), *p2)) == target)
                {
                    allowed = true;
                }
            }
        }
        Ok(Probe {
            allowed,
            decided_by: {
                let elsewhere = !allowed && !delivered.is_empty();
                let mut v = self.explain(&hits, allowed, elsewhere);
                if elsewhere {
                    // Another tenant's destination whose address a pod of
                    // the source's tenant also has: routing in the source's
                    // tenant found that pod.
                    v.push(format!(
                        "{dst_ip} in tenant {} is {}, not {}",
                        src.tenant,
                        delivered.iter().cloned().collect::<Vec<_>>().join(", "),
                        dst.map_or_else(
                            || dst_ip.to_string(),
                            |d| format!("{} (tenant {})", d.name, d.tenant)
                        ),
                    ));
                }
                v
            },
            nodes,
            delivered_to: delivered.into_iter().collect(),
        })
    }

    fn walk(
        &self,
        node: &str,
        bytes: &[u8],
        in_port: PortNo,
        traces: Option<&mut Vec<NodeTrace>>,
    ) -> (CollectSink, Walk) {
        let mut out = CollectSink::default();
        let Some(pl) = self.pipelines.get(node) else {
            return (out, Walk::default());
        };
        let mut tree = traces.as_ref().map(|_| TreeTrace::new());
        let mut sink = Both {
            walk: Walk::default(),
            tree: tree.as_mut(),
        };
        let mut ws = WorkerState::new(pl.config());
        let mut buf = PacketBuf::from_slice(bytes);
        let v = pl.process(&mut buf, in_port, 0, &mut ws, &mut out, &mut sink);
        let walk = sink.walk;
        if let (Some(traces), Some(tree)) = (traces, tree) {
            traces.push(NodeTrace {
                node: node.to_owned(),
                text: tree.to_text(&v),
            });
        }
        (out, walk)
    }

    /// The rules that decided (see the module doc).
    /// `elsewhere`: denied although delivered (to another pod than the
    /// destination), so no rule "stopped" it.
    fn explain(
        &self,
        hits: &[(String, (TableId, Cookie, u16))],
        allowed: bool,
        elsewhere: bool,
    ) -> Vec<String> {
        let name = |c: Cookie| {
            self.compiler
                .source_of(c)
                .map_or_else(|| format!("cookie {:#x}", c.0), ToString::to_string)
        };
        let mut v = Vec::new();
        for (node, (t, c, prio)) in hits {
            let acl_stage = *t == table::IN_ACL || *t == table::OUT_ACL;
            if acl_stage {
                if *prio == 0 {
                    v.push(format!(
                        "{} on {node}: no policy isolates the pod",
                        table::name(*t)
                    ));
                } else if self.compiler.source_of(*c).is_some_and(|s| {
                    s.kind != crate::model::SourceKind::Infrastructure
                        // The return traffic of connections opened from a
                        // pod isolated in one direction only: it decides
                        // replies (round trips), so name it.
                        || s.name.starts_with("return-open-")
                }) {
                    v.push(format!("{} on {node}: {}", table::name(*t), name(*c)));
                }
            }
        }
        if !allowed && !elsewhere {
            // The last rule hit stopped the packet (an isolation drop in
            // an ACL stage too: the loop above names only policy rules;
            // `dedup` drops a repeat of the line it already pushed).
            if let Some((node, (t, c, _))) = hits.last() {
                v.push(format!("{} on {node}: {}", table::name(*t), name(*c)));
            } else {
                v.push("no rule matched".to_owned());
            }
        }
        v.dedup();
        v
    }

    /// The matrix of every pod (sorted `ns/name`) to every pod: forward
    /// probes (the first packet).
    pub fn matrix(&self, port: u16, proto: L4Protocol) -> Result<Matrix, CheckError> {
        self.matrix_of(Service::L4(proto, port), false)
    }

    /// The matrix of `service`: forward probes, or round trips (module doc)
    /// when `round_trip` is set.
    pub fn matrix_of(&self, service: Service, round_trip: bool) -> Result<Matrix, CheckError> {
        let pods: Vec<(String, String)> = self
            .model()
            .pod_ports()
            .filter(|p| first_v4(p).is_some() && p.node.is_some())
            .filter_map(|p| match &p.kind {
                PortKind::Pod { namespace, pod } => Some((namespace.clone(), pod.clone())),
                PortKind::Router { .. } => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut cells = Vec::with_capacity(pods.len());
        for (fns, fp) in &pods {
            let mut row = Vec::with_capacity(pods.len());
            for (tns, tp) in &pods {
                let from = Endpoint::Pod(fns.clone(), fp.clone());
                let to = Endpoint::Pod(tns.clone(), tp.clone());
                row.push(if round_trip {
                    self.round_trip(&from, &to, service, false)?
                        .round_trip
                        .allowed
                } else {
                    self.probe_service(&from, &to, service)?.allowed
                });
            }
            cells.push(row);
        }
        Ok(Matrix {
            pods: pods.into_iter().map(|(n, p)| format!("{n}/{p}")).collect(),
            cells,
        })
    }
}

/// The source port of every probe (the reply goes back to it).
pub const PROBE_SRC_PORT: u16 = 40000;

/// What a probe exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Service {
    /// TCP, UDP or SCTP to a destination port.
    L4(L4Protocol, u16),
    /// ICMP echo (ping).
    Ping,
}

impl Service {
    /// Parses `tcp/80`, `UDP/53`, `sctp/9`, `icmp` or `ping`.
    pub fn parse(s: &str) -> Result<Service, String> {
        let l = s.to_ascii_lowercase();
        if l == "icmp" || l == "ping" {
            return Ok(Service::Ping);
        }
        let (proto, port) = l.split_once('/').ok_or_else(|| {
            format!("{s:?}: expected PROTO/PORT (tcp/80, udp/53, sctp/9) or icmp")
        })?;
        let proto = match proto {
            "tcp" => L4Protocol::Tcp,
            "udp" => L4Protocol::Udp,
            "sctp" => L4Protocol::Sctp,
            "icmp" | "ping" => return Err(format!("{s:?}: icmp takes no port")),
            _ => {
                return Err(format!(
                    "{s:?}: protocol {proto:?} is not TCP, UDP, SCTP or ICMP"
                ));
            }
        };
        let port = port
            .parse()
            .map_err(|_| format!("{s:?}: port {port:?} is not a number 0..=65535"))?;
        Ok(Service::L4(proto, port))
    }

    /// The first packet.
    fn request(self) -> Packet {
        match self {
            Service::L4(proto, port) => Packet {
                proto: proto.ip_proto(),
                tp_src: PROBE_SRC_PORT,
                tp_dst: port,
                tcp_flags: TCP_SYN,
            },
            Service::Ping => Packet {
                proto: IPPROTO_ICMP,
                tp_src: ICMP_ECHO_REQUEST,
                tp_dst: 0,
                tcp_flags: 0,
            },
        }
    }

    /// The destination's answer to [`request`](Self::request).
    fn reply(self) -> Packet {
        match self {
            Service::L4(proto, port) => Packet {
                proto: proto.ip_proto(),
                tp_src: port,
                tp_dst: PROBE_SRC_PORT,
                tcp_flags: TCP_SYN | TCP_ACK,
            },
            Service::Ping => Packet {
                proto: IPPROTO_ICMP,
                tp_src: ICMP_ECHO_REPLY,
                tp_dst: 0,
                tcp_flags: 0,
            },
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Service::L4(L4Protocol::Tcp, p) => write!(f, "tcp/{p}"),
            Service::L4(L4Protocol::Udp, p) => write!(f, "udp/{p}"),
            Service::L4(L4Protocol::Sctp, p) => write!(f, "sctp/{p}"),
            Service::Ping => f.write_str("icmp"),
        }
    }
}

const TCP_SYN: u16 = 0x002;
const TCP_ACK: u16 = 0x010;
const IPPROTO_ICMP: u8 = 1;
/// ICMP types (FlowKey keeps them in `tp_src`, the code in `tp_dst`).
const ICMP_ECHO_REQUEST: u16 = 8;
const ICMP_ECHO_REPLY: u16 = 0;

/// The L4 part of a probe packet.
#[derive(Debug, Clone, Copy)]
struct Packet {
    proto: u8,
    /// Source port, or ICMP type.
    tp_src: u16,
    /// Destination port, or ICMP code.
    tp_dst: u16,
    /// TCP only.
    tcp_flags: u16,
}

/// A round trip (module doc): the forward probe and the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundTrip {
    /// Both directions passed (a pod reaching itself: always).
    pub allowed: bool,
    /// The first packet: Kubernetes' answer.
    pub forward: Probe,
    /// The destination pod's answer, sent only when the forward probe
    /// reached it.
    pub reply: Option<Probe>,
}

/// [`Cluster::round_trip`]'s answer with the node traces of each
/// direction (empty unless asked for).
#[derive(Debug, Clone)]
pub struct RoundTripTrace {
    /// The verdicts.
    pub round_trip: RoundTrip,
    /// Node walks of the forward probe.
    pub forward: Vec<NodeTrace>,
    /// Node walks of the reply.
    pub reply: Vec<NodeTrace>,
}

fn pod_endpoint(p: &LogicalPort) -> Result<Endpoint, CheckError> {
    match &p.kind {
        PortKind::Pod { namespace, pod } => Ok(Endpoint::Pod(namespace.clone(), pod.clone())),
        PortKind::Router { .. } => Err(CheckError::NoPod(p.name.clone())),
    }
}

/// A reachability matrix: `cells[from][to]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// Pods, `ns/name`, sorted; rows are sources, columns destinations.
    pub pods: Vec<String>,
    /// `true` = allowed.
    pub cells: Vec<Vec<bool>>,
}

impl Matrix {
    /// The table as text: `.` allowed, `X` denied (the upstream e2e
    /// notation), one row per source.
    pub fn to_text(&self) -> String {
        let mut s = String::from("-");
        for p in &self.pods {
            s.push('\t');
            s.push_str(p);
        }
        s.push('\n');
        for (i, row) in self.cells.iter().enumerate() {
            s.push_str(self.pods.get(i).map_or("?", String::as_str));
            for c in row {
                s.push('\t');
                s.push(if *c { '.' } else { 'X' });
            }
            s.push('\n');
        }
        s
    }
}

fn first_v4(p: &LogicalPort) -> Option<IpAddr> {
    p.ips.iter().copied().find(IpAddr::is_ipv4)
}

/// The MAC of the router port on `p`'s switch: where a pod sends a packet
/// for another subnet.
pub fn gateway_mac(m: &LogicalModel, p: &LogicalPort) -> Option<protocol::wire::EthernetAddress> {
    let sw = m.switches.get(&p.switch)?;
    m.routers
        .values()
        .flat_map(|r| r.ports.iter())
        .find(|rp| rp.switch == sw.id)
        .map(|rp| rp.mac)
}

/// The switch configuration of `node`: its pods' ports, the tunnel port
/// and the underlay port.
pub fn node_config(m: &LogicalModel, node: &str, cfg: &CompileConfig) -> SwitchConfig {
    let mut ports: Vec<PortNo> = m.ports_on_node(node).map(port_ofport).collect();
    ports.push(cfg.tunnel_port);
    ports.push(UNDERLAY_OFPORT);
    SwitchConfig::with_ports(ports)
}

/// The underlay port of every node in a check (after the tunnel port, so
/// never a pod's port).
pub const UNDERLAY_OFPORT: PortNo = PortNo(crate::compile::TUNNEL_OFPORT + 1);

/// The Geneve option the compiler carries the logical ports in (DESIGN.md),
/// mapped to `tun_metadata0`.
pub const WEFT_TLV: protocol::ctl::TlvMapping = protocol::ctl::TlvMapping {
    class: 0xff57,
    r#type: 0x80,
    len: 4,
    slot: 0,
};

/// The underlay MAC a check gives the node with underlay address `ip`: a
/// locally administered address derived from the address, so next hops
/// are static and distinct.
pub fn underlay_mac(ip: IpAddr) -> protocol::wire::EthernetAddress {
    let o = match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let b = a.octets();
            [b[12], b[13], b[14], b[15]]
        }
    };
    protocol::wire::EthernetAddress([0x02, 0x57, o[0], o[1], o[2], o[3]])
}

/// `node`'s tunnel configuration (module doc): a flow-based Geneve port,
/// the underlay with the node's endpoint, the other nodes as static next
/// hops, the Weft TLV map.
pub fn node_tunnels(m: &LogicalModel, node: &str, cfg: &CompileConfig) -> Result<Tunnels, String> {
    let me = m
        .nodes
        .get(node)
        .ok_or_else(|| format!("no node {node} in the model"))?;
    let (local_ipv4, local_ipv6) = match me.underlay_ip {
        IpAddr::V4(a) => (Some(a), None),
        IpAddr::V6(a) => (None, Some(a)),
    };
    let underlay = Underlay {
        port: UNDERLAY_OFPORT,
        host_port: None,
        local_ipv4,
        local_ipv6,
        local_mac: underlay_mac(me.underlay_ip),
        mtu: 1500,
    };
    let hops = NextHops::from_entries(
        m.nodes
            .values()
            .filter(|n| n.name != node)
            .map(|n| (n.underlay_ip, underlay_mac(n.underlay_ip))),
    );
    let tlv = TlvMap::new(&[WEFT_TLV]).map_err(|e| e.to_string())?;
    Tunnels::new(
        vec![TunnelPort::new(
            cfg.tunnel_port,
            TunnelKind::Geneve,
            protocol::ctl::TunnelConfig::default(),
        )],
        Some(underlay),
        hops,
        tlv,
    )
    .map_err(|e| e.to_string())
}

/// The outer IPv4 destination of an encapsulated frame (Ethernet + IPv4,
/// no VLAN: what switchd's encapsulation writes).
fn outer_ipv4_dst(frame: &[u8]) -> Option<std::net::Ipv4Addr> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let d: [u8; 4] = frame.get(30..34)?.try_into().ok()?;
    Some(std::net::Ipv4Addr::from(d))
}
