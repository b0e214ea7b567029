//! Generated logical models for the compiler's own tests, property tests
//! and benches: a small "spec" (tenants, nodes, pods with labels, policies
//! with label selectors) and a direct translation of it into a valid
//! [`LogicalModel`], following the same shapes as the Kubernetes
//! translation (per-node switches, one router per tenant, isolation drop at
//! priority 1000, allows at 2000, ARP allowed in tier 0). It is *not* the
//! Kubernetes translation (that is `crate::translate`), only a fast,
//! dependency-free generator of realistic models.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use protocol::wire::EthernetAddress;

use crate::model::{
    Acl, AclAction, AclDirection, AclId, AclMatch, AclTier, AddressSet, AddressSetId,
    AddressSetOrigin, AppliesTo, IdAllocator, L4Protocol, LogicalModel, LogicalPort, LogicalRouter,
    LogicalSwitch, Node, PortGroup, PortGroupId, PortKind, PortRange, PortSecurity, Route,
    RouteKind, RouterPort, RuleDirection, RulePart, SourceKind, SourceRef, Tenant, Traffic,
};

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    /// Tenant index.
    pub tenant: usize,
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// Node index.
    pub node: usize,
    /// Host number inside the node's /24 (2..=254), fixed for the pod's life.
    pub host: u8,
    /// Labels (just values; selectors match one).
    pub labels: BTreeSet<String>,
}

/// A peer of a policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSpec {
    /// Pods of the same tenant with this label.
    Label(String),
    /// Every pod of a namespace.
    Namespace(String),
    /// A CIDR.
    Cidr(Ipv4Net),
}

/// A policy rule: peers (None = anyone) and TCP ports (empty = any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Peers.
    pub peers: Option<Vec<PeerSpec>>,
    /// Ports (protocol, first, last).
    pub ports: Vec<(L4Protocol, u16, u16)>,
}

/// A policy: selects pods of `ns` with `select` (None = all), isolates
/// them for ingress (and egress if `egress` is Some).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// Namespace.
    pub ns: String,
    /// Name.
    pub name: String,
    /// Pod label selector.
    pub select: Option<String>,
    /// Ingress rules (isolates for ingress).
    pub ingress: Vec<RuleSpec>,
    /// Egress rules (isolates for egress when Some).
    pub egress: Option<Vec<RuleSpec>>,
}

/// The whole input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Spec {
    /// Tenant names; tenant `i` uses 10.(i? no: all tenants) - pods of every
    /// tenant are in 10.244.<node>.0/24 (overlapping on purpose).
    pub tenants: Vec<String>,
    /// Node names; node `i` has underlay 192.0.2.<i+1> (wrapping into
    /// 198.51.100.x past 250) and podCIDR 10.244.<i>.0/24 per tenant.
    pub nodes: Vec<String>,
    /// Pods.
    pub pods: Vec<PodSpec>,
    /// Policies (all in tenant of their namespace's first pod, or 0).
    pub policies: Vec<PolicySpec>,
}

fn node_ip(i: usize) -> IpAddr {
    let i = i as u32 + 1;
    IpAddr::V4(Ipv4Addr::from(
        0xc000_0200u32 + (i / 250) * 0x0100_0000 + (i % 250),
    ))
}

fn subnet(node: usize) -> Ipv4Net {
    let hi = (node / 256) as u8;
    let lo = (node % 256) as u8;
    Ipv4Net::new(Ipv4Addr::new(10, 244 + hi, lo, 0), 24).unwrap_or_default()
}

fn mac_of(tenant: usize, ip: Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x0a, 0x58 + tenant as u8, o[0], o[1], o[2], o[3]])
}

impl Spec {
    /// The tenant of a namespace: the tenant of its first pod, else 0.
    fn ns_tenant(&self, ns: &str) -> usize {
        self.pods
            .iter()
            .find(|p| p.ns == ns)
            .map_or(0, |p| p.tenant)
    }

    /// The pod's address.
    pub fn pod_ip(&self, p: &PodSpec) -> Ipv4Addr {
        let s = subnet(p.node).network().octets();
        Ipv4Addr::new(s[0], s[1], s[2], p.host)
    }

    /// Translates into a model.
    pub fn build(&self) -> LogicalModel {
        let mut m = LogicalModel::default();
        let mut dps = IdAllocator::datapaths();
        let mut lps = IdAllocator::ports();
        let mut acl_ids = IdAllocator::wide("acl");
        let mut as_ids = IdAllocator::wide("address set");
        let mut pg_ids = IdAllocator::wide("port group");
        for (i, n) in self.nodes.iter().enumerate() {
            m.nodes.insert(
                n.clone(),
                Node {
                    name: n.clone(),
                    underlay_ip: node_ip(i),
                    pod_cidrs: vec![IpNet::V4(subnet(i))],
                    implied: false,
                    source: SourceRef::cluster(SourceKind::Node, n),
                },
            );
        }
        // Which (tenant, node) pairs need a switch: those with pods.
        let mut used: BTreeSet<(usize, usize)> = BTreeSet::new();
        for p in &self.pods {
            used.insert((p.tenant, p.node));
        }
        for (ti, t) in self.tenants.iter().enumerate() {
            let router = dps
                .datapath(&format!("lr/{t}"))
                .unwrap_or(crate::model::DatapathId(1));
            let mut rt = LogicalRouter {
                id: router,
                name: format!("lr/{t}"),
                tenant: t.clone(),
                ports: Vec::new(),
                routes: Vec::new(),
            };
            let mut tenant = Tenant {
                name: t.clone(),
                namespaces: self
                    .pods
                    .iter()
                    .filter(|p| p.tenant == ti)
                    .map(|p| p.ns.clone())
                    .collect(),
                cidrs: vec![
                    "10.244.0.0/16"
                        .parse()
                        .unwrap_or(IpNet::V4(Ipv4Net::default())),
                ],
                router,
                switches: Vec::new(),
                source: SourceRef::cluster(SourceKind::Tenant, t),
            };
            for (ni, n) in self.nodes.iter().enumerate() {
                if !used.contains(&(ti, ni)) {
                    continue;
                }
                let net = subnet(ni);
                let gw = Ipv4Addr::from(u32::from(net.network()) + 1);
                let sw_id = dps
                    .datapath(&format!("ls/{t}/{n}"))
                    .unwrap_or(crate::model::DatapathId(2));
                let rp_id = lps
                    .port(&format!("lrp/{t}/{n}"))
                    .unwrap_or(crate::model::LogicalPortId(1));
                let peer = lps
                    .port(&format!("lsp/{t}/{n}/router"))
                    .unwrap_or(crate::model::LogicalPortId(2));
                let src = SourceRef::cluster(SourceKind::Node, n);
                let mut ports: Vec<_> = Vec::new();
                for p in self.pods.iter().filter(|p| p.tenant == ti && p.node == ni) {
                    let ip = self.pod_ip(p);
                    let id = lps
                        .port(&format!("{t}/{}/{}", p.ns, p.name))
                        .unwrap_or(crate::model::LogicalPortId(3));
                    let mac = mac_of(ti, ip);
                    m.ports.insert(
                        id,
                        LogicalPort {
                            ofport: None,
                            id,
                            name: format!("{}/{}", p.ns, p.name),
                            switch: sw_id,
                            tenant: t.clone(),
                            mac,
                            ips: vec![IpAddr::V4(ip)],
                            node: Some(n.clone()),
                            security: Some(PortSecurity {
                                mac,
                                ips: vec![IpAddr::V4(ip)],
                            }),
                            kind: PortKind::Pod {
                                namespace: p.ns.clone(),
                                pod: p.name.clone(),
                            },
                            source: SourceRef::namespaced(SourceKind::Pod, &p.ns, &p.name),
                        },
                    );
                    ports.push(id);
                }
                ports.sort();
                m.ports.insert(
                    peer,
                    LogicalPort {
                        ofport: None,
                        id: peer,
                        name: format!("lsp/{t}/{n}/router"),
                        switch: sw_id,
                        tenant: t.clone(),
                        mac: mac_of(ti, gw),
                        ips: vec![IpAddr::V4(gw)],
                        node: None,
                        security: None,
                        kind: PortKind::Router {
                            router,
                            router_port: rp_id,
                        },
                        source: src.clone(),
                    },
                );
                m.switches.insert(
                    sw_id,
                    LogicalSwitch {
                        id: sw_id,
                        name: format!("ls/{t}/{n}"),
                        tenant: t.clone(),
                        subnet: IpNet::V4(net),
                        gateway: IpAddr::V4(gw),
                        node: Some(n.clone()),
                        router_port: peer,
                        ports,
                        source: src.clone(),
                    },
                );
                rt.ports.push(RouterPort {
                    id: rp_id,
                    name: format!("lrp/{t}/{n}"),
                    mac: mac_of(ti, gw),
                    ip: IpAddr::V4(gw),
                    network: IpNet::V4(net),
                    switch: sw_id,
                    peer,
                });
                rt.routes.push(Route {
                    prefix: IpNet::V4(net),
                    port: rp_id,
                    next_hop: None,
                    kind: RouteKind::Connected,
                    source: src,
                });
                tenant.switches.push(sw_id);
            }
            m.routers.insert(router, rt);
            m.tenants.insert(t.clone(), tenant);
        }
        // Infrastructure: ARP allowed in both directions.
        for (dir, name) in [
            (AclDirection::FromLport, "arp-out"),
            (AclDirection::ToLport, "arp-in"),
        ] {
            let id = AclId(acl_ids.alloc(name).unwrap_or(1) as u32);
            m.acls.insert(
                id,
                Acl {
                    id,
                    name: name.to_owned(),
                    direction: dir,
                    tier: AclTier::Infrastructure,
                    priority: 3000,
                    action: AclAction::Allow,
                    matches: AclMatch {
                        applies_to: AppliesTo::AllPods,
                        peer: None,
                        traffic: vec![Traffic::Arp],
                    },
                    source: SourceRef::cluster(SourceKind::Infrastructure, "arp-nd"),
                },
            );
        }
        // Pod -> port id, indexed once (a `pod_port` scan per pod would make
        // building the 10,000-pod fixture quadratic).
        let mut pod_ports: BTreeMap<String, BTreeMap<String, crate::model::LogicalPortId>> =
            BTreeMap::new();
        for x in m.ports.values() {
            if let PortKind::Pod { namespace, pod } = &x.kind {
                pod_ports
                    .entry(namespace.clone())
                    .or_default()
                    .insert(pod.clone(), x.id);
            }
        }
        let port_of = |_: &LogicalModel, p: &PodSpec| {
            pod_ports
                .get(p.ns.as_str())
                .and_then(|n| n.get(p.name.as_str()))
                .copied()
        };
        for pol in &self.policies {
            let ti = self.ns_tenant(&pol.ns);
            let selected: BTreeSet<_> = self
                .pods
                .iter()
                .filter(|p| p.tenant == ti && p.ns == pol.ns)
                .filter(|p| pol.select.as_ref().is_none_or(|l| p.labels.contains(l)))
                .filter_map(|p| port_of(&m, p))
                .collect();
            let pg_name = format!("pg/{}/{}", pol.ns, pol.name);
            let pg = PortGroupId(pg_ids.alloc(&pg_name).unwrap_or(1) as u32);
            m.port_groups.insert(
                pg,
                PortGroup {
                    id: pg,
                    name: pg_name,
                    ports: selected,
                },
            );
            let src = SourceRef::namespaced(SourceKind::NetworkPolicy, &pol.ns, &pol.name);
            let mut dirs = vec![(RuleDirection::Ingress, AclDirection::ToLport, &pol.ingress)];
            if let Some(e) = &pol.egress {
                dirs.push((RuleDirection::Egress, AclDirection::FromLport, e));
            }
            for (rd, ad, rules) in dirs {
                let dname = if rd == RuleDirection::Ingress {
                    "ingress"
                } else {
                    "egress"
                };
                let iso = format!("acl/{}/{}/{dname}/isolate", pol.ns, pol.name);
                let id = AclId(acl_ids.alloc(&iso).unwrap_or(1) as u32);
                m.acls.insert(
                    id,
                    Acl {
                        id,
                        name: iso,
                        direction: ad,
                        tier: AclTier::NetworkPolicy,
                        priority: 1000,
                        action: AclAction::Drop,
                        matches: AclMatch {
                            applies_to: AppliesTo::Group(pg),
                            peer: None,
                            traffic: Vec::new(),
                        },
                        source: src.clone(),
                    },
                );
                for (ri, r) in rules.iter().enumerate() {
                    let name = format!("acl/{}/{}/{dname}/{ri}", pol.ns, pol.name);
                    let peer = r.peers.as_ref().map(|peers| {
                        let mut addrs = BTreeSet::new();
                        for pe in peers {
                            match pe {
                                PeerSpec::Cidr(c) => {
                                    addrs.insert(IpNet::V4(*c));
                                }
                                PeerSpec::Label(l) => {
                                    for p in self
                                        .pods
                                        .iter()
                                        .filter(|p| p.tenant == ti && p.labels.contains(l))
                                    {
                                        addrs.insert(IpNet::V4(Ipv4Net::from(self.pod_ip(p))));
                                    }
                                }
                                PeerSpec::Namespace(ns) => {
                                    for p in
                                        self.pods.iter().filter(|p| p.tenant == ti && &p.ns == ns)
                                    {
                                        addrs.insert(IpNet::V4(Ipv4Net::from(self.pod_ip(p))));
                                    }
                                }
                            }
                        }
                        let asn = format!("as/{}/{}/{dname}/{ri}", pol.ns, pol.name);
                        let aid = AddressSetId(as_ids.alloc(&asn).unwrap_or(1) as u32);
                        m.address_sets.insert(
                            aid,
                            AddressSet {
                                id: aid,
                                name: asn,
                                addresses: addrs,
                                origin: AddressSetOrigin::RulePeers {
                                    ports: BTreeSet::new(),
                                    blocks: Vec::new(),
                                },
                            },
                        );
                        aid
                    });
                    let id = AclId(acl_ids.alloc(&name).unwrap_or(1) as u32);
                    m.acls.insert(
                        id,
                        Acl {
                            id,
                            name,
                            direction: ad,
                            tier: AclTier::NetworkPolicy,
                            priority: 2000,
                            action: AclAction::Allow,
                            matches: AclMatch {
                                applies_to: AppliesTo::Group(pg),
                                peer,
                                traffic: r
                                    .ports
                                    .iter()
                                    .map(|&(protocol, s, e)| Traffic::L4 {
                                        protocol,
                                        dst_ports: Some(PortRange { start: s, end: e }),
                                        src_ports: None,
                                        tcp_ack: false,
                                    })
                                    .collect(),
                            },
                            source: src.clone().with_rule(rd, ri as u32, RulePart::Allow),
                        },
                    );
                }
            }
        }
        m
    }

    /// The same cluster as Kubernetes manifests: one multi-document YAML
    /// text for `source::load_str` (benches and fuzz seeds run the whole
    /// path loader -> translation -> compiler on it). Objects: a `Tenant`
    /// per tenant when there is more than one (its namespaces; all share
    /// 10.244.0.0/16), a `Node` per node (podCIDR 10.244.<i>.0/24,
    /// InternalIP as in [`Spec::build`]), a `Namespace` per namespace used,
    /// a `Pod` per pod (`status.podIP` set, each label `L` as `L: "1"`), a
    /// `NetworkPolicy` per policy. Peers: a label peer becomes
    /// `{namespaceSelector: {}, podSelector: L}` (any namespace of the
    /// tenant, as in the fixture), a namespace peer matches
    /// `kubernetes.io/metadata.name`, a CIDR an `ipBlock`.
    ///
    /// The translation adds what the fixture model leaves out (return
    /// traffic ACLs, per-namespace isolation groups, ND), so the compiled
    /// tables are larger than those of [`Spec::build`].
    pub fn manifests_yaml(&self) -> String {
        use std::fmt::Write as _;
        let mut y = String::with_capacity(256 * (self.pods.len() + self.policies.len()) + 4096);
        let doc = |y: &mut String| y.push_str("---\n");
        let sel = |l: &Option<String>| match l {
            Some(l) => format!("{{matchLabels: {{\"{l}\": \"1\"}}}}"),
            None => "{}".to_owned(),
        };
        let mut namespaces: BTreeSet<&str> = self.pods.iter().map(|p| p.ns.as_str()).collect();
        namespaces.extend(self.policies.iter().map(|p| p.ns.as_str()));
        if self.tenants.len() > 1 {
            for (ti, t) in self.tenants.iter().enumerate() {
                let mut ns: BTreeSet<&str> = self
                    .pods
                    .iter()
                    .filter(|p| p.tenant == ti)
                    .map(|p| p.ns.as_str())
                    .collect();
                if ti == 0 {
                    // Namespaces without pods (policies only): tenant 0,
                    // as in `Spec::build`.
                    ns.extend(
                        self.policies
                            .iter()
                            .map(|p| p.ns.as_str())
                            .filter(|n| !self.pods.iter().any(|p| p.ns == *n)),
                    );
                }
                let list: Vec<String> = ns.iter().map(|n| format!("\"{n}\"")).collect();
                doc(&mut y);
                let _ = writeln!(
                    y,
                    "apiVersion: weft.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: \"{t}\"}}\nspec: {{namespaces: [{}], cidrs: [10.244.0.0/16]}}",
                    list.join(", ")
                );
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            doc(&mut y);
            let _ = writeln!(
                y,
                "apiVersion: v1\nkind: Node\nmetadata: {{name: \"{n}\"}}\nspec: {{podCIDR: {}}}\nstatus: {{addresses: [{{type: InternalIP, address: {}}}]}}",
                subnet(i),
                node_ip(i)
            );
        }
        for ns in &namespaces {
            doc(&mut y);
            let _ = writeln!(
                y,
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: \"{ns}\"}}"
            );
        }
        for p in &self.pods {
            let labels: Vec<String> = p.labels.iter().map(|l| format!("\"{l}\": \"1\"")).collect();
            doc(&mut y);
            let _ = writeln!(
                y,
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: \"{}\", namespace: \"{}\", labels: {{{}}}}}\nspec: {{nodeName: \"{}\", containers: [{{name: c, image: pause}}]}}\nstatus: {{podIP: {}}}",
                p.name,
                p.ns,
                labels.join(", "),
                self.nodes.get(p.node).map_or("", String::as_str),
                self.pod_ip(p)
            );
        }
        let rules = |rules: &[RuleSpec], dir: &str| -> String {
            let mut s = String::new();
            for r in rules {
                s.push_str("  - ");
                let mut sep = "";
                if let Some(peers) = &r.peers {
                    let list: Vec<String> = peers
                        .iter()
                        .map(|pe| match pe {
                            PeerSpec::Label(l) => format!(
                                "{{namespaceSelector: {{}}, podSelector: {}}}",
                                sel(&Some(l.clone()))
                            ),
                            PeerSpec::Namespace(ns) => format!(
                                "{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: \"{ns}\"}}}}}}"
                            ),
                            PeerSpec::Cidr(c) => format!("{{ipBlock: {{cidr: {c}}}}}"),
                        })
                        .collect();
                    let _ = write!(s, "{dir}: [{}]", list.join(", "));
                    sep = "\n    ";
                }
                if !r.ports.is_empty() {
                    let list: Vec<String> = r
                        .ports
                        .iter()
                        .map(|&(proto, a, b)| {
                            let proto = match proto {
                                L4Protocol::Tcp => "TCP",
                                L4Protocol::Udp => "UDP",
                                L4Protocol::Sctp => "SCTP",
                            };
                            if b > a {
                                format!("{{protocol: {proto}, port: {a}, endPort: {b}}}")
                            } else {
                                format!("{{protocol: {proto}, port: {a}}}")
                            }
                        })
                        .collect();
                    let _ = write!(s, "{sep}ports: [{}]", list.join(", "));
                } else if r.peers.is_none() {
                    s.push_str("{}");
                }
                s.push('\n');
            }
            s
        };
        for pol in &self.policies {
            doc(&mut y);
            let types = if pol.egress.is_some() {
                "[Ingress, Egress]"
            } else {
                "[Ingress]"
            };
            let _ = writeln!(
                y,
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: \"{}\", namespace: \"{}\"}}\nspec:\n  podSelector: {}\n  policyTypes: {types}",
                pol.name,
                pol.ns,
                sel(&pol.select)
            );
            if !pol.ingress.is_empty() {
                y.push_str("  ingress:\n");
                y.push_str(&rules(&pol.ingress, "from"));
            }
            if let Some(e) = pol.egress.as_ref().filter(|e| !e.is_empty()) {
                y.push_str("  egress:\n");
                y.push_str(&rules(e, "to"));
            }
        }
        y
    }

    /// A generated cluster: `tenants` tenants, `nodes` nodes, `pods` pods
    /// spread over `namespaces` namespaces (round robin over nodes, labels
    /// `app-<k>` with 10 values), `policies` policies (each selects one
    /// label of its namespace, allows TCP 80-81 from one label and from
    /// one other namespace; every fifth also isolates egress, allowing
    /// UDP 53 anywhere).
    pub fn generate(
        tenants: usize,
        nodes: usize,
        namespaces: usize,
        pods: usize,
        policies: usize,
    ) -> Spec {
        let mut s = Spec {
            tenants: (0..tenants.max(1)).map(|i| format!("t{i}")).collect(),
            nodes: (0..nodes.max(1)).map(|i| format!("node-{i}")).collect(),
            ..Spec::default()
        };
        let mut per_node: BTreeMap<usize, u32> = BTreeMap::new();
        for i in 0..pods {
            let ns = i % namespaces.max(1);
            let node = i % s.nodes.len();
            let c = per_node.entry(node).or_insert(0);
            let host = 2 + *c;
            *c += 1;
            if host > 254 {
                continue;
            }
            s.pods.push(PodSpec {
                tenant: ns % s.tenants.len(),
                ns: format!("ns-{ns}"),
                name: format!("pod-{i}"),
                node,
                host: host as u8,
                labels: [format!("app-{}", i % 10)].into_iter().collect(),
            });
        }
        for i in 0..policies {
            let ns = i % namespaces.max(1);
            s.policies.push(PolicySpec {
                ns: format!("ns-{ns}"),
                name: format!("pol-{i}"),
                select: Some(format!("app-{}", i % 10)),
                ingress: vec![RuleSpec {
                    peers: Some(vec![
                        PeerSpec::Label(format!("app-{}", (i + 1) % 10)),
                        PeerSpec::Namespace(format!("ns-{}", (ns + 1) % namespaces.max(1))),
                    ]),
                    ports: vec![(L4Protocol::Tcp, 80, 81)],
                }],
                egress: (i % 5 == 0).then(|| {
                    vec![RuleSpec {
                        peers: None,
                        ports: vec![(L4Protocol::Udp, 53, 53)],
                    }]
                }),
            });
        }
        s
    }
}
