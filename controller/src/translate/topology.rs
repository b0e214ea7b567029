//! Tenants, nodes, switches, routers and pod ports (first half of the
//! translation; see the mapping table in the parent module).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use protocol::wire::ethernet::EthernetAddress;

use super::{Ctx, PodInfo, err_field, invalid};
use crate::model::ids::fnv1a64;
use crate::model::*;
use crate::source::{LoadError, LoadErrorKind, Manifests, Origin};

/// Name of the implied tenant for namespaces no `Tenant` lists.
pub const DEFAULT_TENANT: &str = "default";

struct NodePlan {
    underlay: Option<IpAddr>,
    pod_cidrs: Vec<IpNet>,
    implied: bool,
    source: SourceRef,
}

struct SwitchPlan {
    tenant: String,
    subnet: IpNet,
    gateway: IpAddr,
    node: Option<String>,
    source: SourceRef,
}

struct PodPlan {
    ns: String,
    name: String,
    tenant: String,
    node: String,
    switch: String,
    labels: BTreeMap<String, String>,
    named_ports: Vec<(String, L4Protocol, u16)>,
    ips: Vec<IpAddr>,
    origin: Origin,
}

pub(super) fn parse_net(s: &str) -> Result<IpNet, String> {
    s.trim()
        .parse::<IpNet>()
        .map_err(|_| format!("{s:?} is not a CIDR (e.g. 10.244.0.0/16)"))
}

pub(super) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("{s:?} is not an IP address"))
}

pub(super) fn parse_protocol(p: Option<&str>) -> Result<L4Protocol, String> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok(L4Protocol::Tcp),
        "UDP" => Ok(L4Protocol::Udp),
        "SCTP" => Ok(L4Protocol::Sctp),
        other => Err(format!("unknown protocol {other:?} (TCP, UDP, SCTP)")),
    }
}

/// `0a:58:` + the IPv4 address (OVN-Kubernetes' convention, readable in
/// dumps); for IPv6, `0a:58:` + 4 bytes of the name's hash.
pub(super) fn mac_for(ip: IpAddr, name: &str) -> EthernetAddress {
    let b = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(_) => (fnv1a64(name.as_bytes()) as u32).to_be_bytes(),
    };
    EthernetAddress([0x0a, 0x58, b[0], b[1], b[2], b[3]])
}

fn first_host(net: IpNet) -> IpAddr {
    offset(net, 1)
}

fn offset(net: IpNet, k: u128) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(k as u32))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(k))),
    }
}

fn host_count(net: IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    if bits >= 127 {
        u128::MAX
    } else {
        1u128 << bits
    }
}

pub(super) fn build(m: &Manifests, ctx: &mut Ctx) -> Result<(), LoadError> {
    // --- namespaces ------------------------------------------------------
    let mut ns_seen = BTreeSet::new();
    for l in &m.namespaces {
        let name = l.object.metadata.name.clone().unwrap_or_default();
        if !ns_seen.insert(name.clone()) {
            return Err(err_field(
                &l.origin,
                &format!("Namespace {name}"),
                "metadata.name",
                LoadErrorKind::Conflict("Namespace defined twice".into()),
            ));
        }
        let mut labels = l.object.metadata.labels.clone().unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), name.clone());
        ctx.ns_labels.insert(name, labels);
    }
    let referenced: BTreeSet<String> = m
        .pods
        .iter()
        .filter_map(|p| p.object.metadata.namespace.clone())
        .chain(
            m.network_policies
                .iter()
                .filter_map(|p| p.object.metadata.namespace.clone()),
        )
        .chain(
            m.services
                .iter()
                .filter_map(|p| p.object.metadata.namespace.clone()),
        )
        .chain(
            m.tenants
                .iter()
                .flat_map(|t| t.object.spec.namespaces.clone()),
        )
        .collect();
    for ns in referenced {
        if !ctx.ns_labels.contains_key(&ns) {
            ctx.assume(format!(
                "assumed namespace {ns} exists with no labels (objects use it; no Namespace object)"
            ));
            let labels = [("kubernetes.io/metadata.name".to_string(), ns.clone())].into();
            ctx.ns_labels.insert(ns, labels);
        }
    }

    // --- tenants ---------------------------------------------------------
    let mut tenants: BTreeMap<String, Tenant> = BTreeMap::new();
    let mut ns_tenant: BTreeMap<String, String> = BTreeMap::new();
    for l in &m.tenants {
        let name = l.object.metadata.name.clone().unwrap_or_default();
        let label = format!("Tenant {name}");
        if tenants.contains_key(&name) {
            return Err(err_field(
                &l.origin,
                &label,
                "metadata.name",
                LoadErrorKind::Conflict("Tenant defined twice".into()),
            ));
        }
        let mut cidrs = Vec::new();
        for (i, c) in l.object.spec.cidrs.iter().enumerate() {
            cidrs.push(
                parse_net(c)
                    .map_err(|e| invalid(&l.origin, &label, &format!("spec.cidrs[{i}]"), e))?
                    .trunc(),
            );
        }
        for (i, ns) in l.object.spec.namespaces.iter().enumerate() {
            if let Some(other) = ns_tenant.insert(ns.clone(), name.clone()) {
                return Err(err_field(
                    &l.origin,
                    &label,
                    &format!("spec.namespaces[{i}]"),
                    LoadErrorKind::Conflict(format!(
                        "namespace {ns} already belongs to tenant {other}"
                    )),
                ));
            }
        }
        tenants.insert(
            name.clone(),
            Tenant {
                name: name.clone(),
                namespaces: l.object.spec.namespaces.iter().cloned().collect(),
                cidrs,
                router: DatapathId(0),
                switches: Vec::new(),
                source: SourceRef::cluster(SourceKind::Tenant, &name),
            },
        );
    }
    let implied_default = !tenants.contains_key(DEFAULT_TENANT);
    {
        let def = tenants
            .entry(DEFAULT_TENANT.to_owned())
            .or_insert_with(|| Tenant {
                name: DEFAULT_TENANT.to_owned(),
                namespaces: BTreeSet::new(),
                cidrs: Vec::new(),
                router: DatapathId(0),
                switches: Vec::new(),
                source: SourceRef::cluster(SourceKind::Infrastructure, "default-tenant"),
            });
        for ns in ctx.ns_labels.keys() {
            if !ns_tenant.contains_key(ns) {
                def.namespaces.insert(ns.clone());
                ns_tenant.insert(ns.clone(), DEFAULT_TENANT.to_owned());
            }
        }
    }

    // --- nodes -----------------------------------------------------------
    let mut nodes: BTreeMap<String, NodePlan> = BTreeMap::new();
    for l in &m.nodes {
        let name = l.object.metadata.name.clone().unwrap_or_default();
        let label = format!("Node {name}");
        if nodes.contains_key(&name) {
            return Err(err_field(
                &l.origin,
                &label,
                "metadata.name",
                LoadErrorKind::Conflict("Node defined twice".into()),
            ));
        }
        let mut underlay = None;
        let addrs = l
            .object
            .status
            .as_ref()
            .and_then(|s| s.addresses.clone())
            .unwrap_or_default();
        for (i, a) in addrs.iter().enumerate() {
            if a.type_ != "InternalIP" && a.type_ != "ExternalIP" {
                continue;
            }
            let ip = parse_ip(&a.address).map_err(|e| {
                invalid(
                    &l.origin,
                    &label,
                    &format!("status.addresses[{i}].address"),
                    e,
                )
            })?;
            if underlay.is_none()
                || a.type_ == "InternalIP" && !addrs.iter().take(i).any(|b| b.type_ == "InternalIP")
            {
                underlay = Some(ip);
            }
        }
        let mut pod_cidrs = Vec::new();
        let spec = l.object.spec.clone().unwrap_or_default();
        if let Some(list) = &spec.pod_cidrs {
            for (i, c) in list.iter().enumerate() {
                pod_cidrs.push(
                    parse_net(c)
                        .map_err(|e| invalid(&l.origin, &label, &format!("spec.podCIDRs[{i}]"), e))?
                        .trunc(),
                );
            }
        }
        if pod_cidrs.is_empty()
            && let Some(c) = &spec.pod_cidr
        {
            pod_cidrs.push(
                parse_net(c)
                    .map_err(|e| invalid(&l.origin, &label, "spec.podCIDR", e))?
                    .trunc(),
            );
        }
        nodes.insert(
            name.clone(),
            NodePlan {
                underlay,
                pod_cidrs,
                implied: false,
                source: SourceRef::cluster(SourceKind::Node, &name),
            },
        );
    }

    // --- pods (first pass: placement, explicit addresses) ----------------
    let mut pods: Vec<PodPlan> = Vec::new();
    let mut pod_seen = BTreeSet::new();
    for l in &m.pods {
        let ns = l.object.metadata.namespace.clone().unwrap_or_default();
        let name = l.object.metadata.name.clone().unwrap_or_default();
        let label = format!("Pod {ns}/{name}");
        if !pod_seen.insert((ns.clone(), name.clone())) {
            return Err(err_field(
                &l.origin,
                &label,
                "metadata.name",
                LoadErrorKind::Conflict("Pod defined twice".into()),
            ));
        }
        let spec = l.object.spec.clone().unwrap_or_default();
        if spec.host_network == Some(true) {
            ctx.assume(format!(
                "assumed pod {ns}/{name} needs no logical port (hostNetwork: true)"
            ));
            continue;
        }
        let Some(node) = spec.node_name.clone().filter(|n| !n.is_empty()) else {
            ctx.assume(format!(
                "assumed pod {ns}/{name} is not scheduled yet (no spec.nodeName): no logical port"
            ));
            continue;
        };
        if !nodes.contains_key(&node) {
            ctx.assume(format!(
                "assumed node {node} exists (pod {ns}/{name} runs there; no Node object)"
            ));
            nodes.insert(
                node.clone(),
                NodePlan {
                    underlay: None,
                    pod_cidrs: Vec::new(),
                    implied: true,
                    source: SourceRef::namespaced(SourceKind::Pod, &ns, &name),
                },
            );
        }
        let mut named_ports = Vec::new();
        for (ci, c) in spec.containers.iter().enumerate() {
            for (pi, p) in c.ports.iter().flatten().enumerate() {
                let proto = parse_protocol(p.protocol.as_deref()).map_err(|e| {
                    invalid(
                        &l.origin,
                        &label,
                        &format!("spec.containers[{ci}].ports[{pi}].protocol"),
                        e,
                    )
                })?;
                let port = u16::try_from(p.container_port)
                    .ok()
                    .filter(|&x| x != 0)
                    .ok_or_else(|| {
                        invalid(
                            &l.origin,
                            &label,
                            &format!("spec.containers[{ci}].ports[{pi}].containerPort"),
                            format!("{} is not a port (1..65535)", p.container_port),
                        )
                    })?;
                if let Some(n) = &p.name {
                    named_ports.push((n.clone(), proto, port));
                }
            }
        }
        let mut ips = Vec::new();
        let status = l.object.status.clone().unwrap_or_default();
        if let Some(list) = status.pod_ips.as_ref().filter(|l| !l.is_empty()) {
            for (i, a) in list.iter().enumerate() {
                ips.push(parse_ip(&a.ip).map_err(|e| {
                    invalid(&l.origin, &label, &format!("status.podIPs[{i}].ip"), e)
                })?);
            }
        } else if let Some(ip) = status.pod_ip.as_ref().filter(|s| !s.is_empty()) {
            ips.push(parse_ip(ip).map_err(|e| invalid(&l.origin, &label, "status.podIP", e))?);
        }
        let tenant = ns_tenant
            .get(&ns)
            .cloned()
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned());
        pods.push(PodPlan {
            ns,
            name,
            tenant,
            node,
            switch: String::new(),
            labels: l.object.metadata.labels.clone().unwrap_or_default(),
            named_ports,
            ips,
            origin: l.origin.clone(),
        });
    }
    pods.sort_by(|a, b| (&a.ns, &a.name).cmp(&(&b.ns, &b.name)));

    // --- standalone: underlay addresses and podCIDRs for nodes lacking them
    let mut used_underlay: BTreeSet<IpAddr> = nodes.values().filter_map(|n| n.underlay).collect();
    let mut used_cidrs: Vec<IpNet> = nodes.values().flat_map(|n| n.pod_cidrs.clone()).collect();
    for (name, n) in nodes.iter_mut() {
        if n.underlay.is_none() {
            let ip = (1u8..=254)
                .map(|k| IpAddr::V4(Ipv4Addr::new(192, 0, 2, k)))
                .find(|ip| !used_underlay.contains(ip));
            let Some(ip) = ip else {
                return Err(LoadError {
                    origin: None,
                    object: Some(format!("Node {name}")),
                    field: Some("status.addresses".into()),
                    kind: LoadErrorKind::Invalid("no address and 192.0.2.0/24 is exhausted".into()),
                });
            };
            used_underlay.insert(ip);
            n.underlay = Some(ip);
            ctx.assume(format!(
                "assumed node {name} has underlay address {ip} (no InternalIP)"
            ));
        }
        if n.pod_cidrs.is_empty() {
            let net = (0u8..=255)
                .filter_map(|k| IpNet::new(IpAddr::V4(Ipv4Addr::new(10, 244, k, 0)), 24).ok())
                .find(|c| !used_cidrs.iter().any(|u| u.contains(c) || c.contains(u)));
            let Some(net) = net else {
                return Err(LoadError {
                    origin: None,
                    object: Some(format!("Node {name}")),
                    field: Some("spec.podCIDR".into()),
                    kind: LoadErrorKind::Invalid(
                        "no podCIDR and 10.244.0.0/16 is exhausted".into(),
                    ),
                });
            };
            used_cidrs.push(net);
            n.pod_cidrs.push(net);
            ctx.assume(format!(
                "assumed node {name} has podCIDR {net} (none given)"
            ));
        }
    }
    if implied_default && let Some(def) = tenants.get_mut(DEFAULT_TENANT) {
        def.cidrs = nodes
            .values()
            .flat_map(|n| n.pod_cidrs.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
    }

    // --- subnets ---------------------------------------------------------
    let mut switches: BTreeMap<String, SwitchPlan> = BTreeMap::new();
    let mut tenant_subnets: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for l in &m.subnets {
        let name = l.object.metadata.name.clone().unwrap_or_default();
        let label = format!("Subnet {name}");
        let spec = &l.object.spec;
        let Some(t) = tenants.get(&spec.tenant) else {
            return Err(invalid(
                &l.origin,
                &label,
                "spec.tenant",
                format!("no Tenant named {:?}", spec.tenant),
            ));
        };
        let cidr = parse_net(&spec.cidr)
            .map_err(|e| invalid(&l.origin, &label, "spec.cidr", e))?
            .trunc();
        if !t.cidrs.is_empty() && !t.cidrs.iter().any(|c| c.contains(&cidr)) {
            return Err(invalid(
                &l.origin,
                &label,
                "spec.cidr",
                format!("{cidr} is outside the address space of tenant {}", t.name),
            ));
        }
        let gateway = match &spec.gateway {
            Some(g) => {
                let ip = parse_ip(g).map_err(|e| invalid(&l.origin, &label, "spec.gateway", e))?;
                if !cidr.contains(&ip) {
                    return Err(invalid(
                        &l.origin,
                        &label,
                        "spec.gateway",
                        format!("{ip} is outside {cidr}"),
                    ));
                }
                ip
            }
            None => first_host(cidr),
        };
        for (i, ns) in spec.namespaces.iter().enumerate() {
            if ns_tenant.get(ns) != Some(&spec.tenant) {
                return Err(invalid(
                    &l.origin,
                    &label,
                    &format!("spec.namespaces[{i}]"),
                    format!("namespace {ns} does not belong to tenant {}", spec.tenant),
                ));
            }
        }
        let sw = format!("ls/{}/{name}", spec.tenant);
        if switches.contains_key(&sw) {
            return Err(err_field(
                &l.origin,
                &label,
                "metadata.name",
                LoadErrorKind::Conflict("Subnet defined twice".into()),
            ));
        }
        switches.insert(
            sw.clone(),
            SwitchPlan {
                tenant: spec.tenant.clone(),
                subnet: cidr,
                gateway,
                node: None,
                source: SourceRef::cluster(SourceKind::Subnet, &name),
            },
        );
        tenant_subnets
            .entry(spec.tenant.clone())
            .or_default()
            .push((sw, spec.namespaces.clone()));
    }

    // --- pod placement -----------------------------------------------------
    for p in &mut pods {
        if let Some(subs) = tenant_subnets.get(&p.tenant) {
            let listed = subs.iter().find(|(_, nss)| nss.contains(&p.ns));
            let default = subs.iter().find(|(_, nss)| nss.is_empty());
            p.switch = match (listed, default) {
                (Some((sw, _)), _) | (None, Some((sw, _))) => sw.clone(),
                (None, None) => {
                    let sw = subs[0].0.clone();
                    ctx.assume(format!("assumed pod {}/{} attaches to {sw} (no Subnet lists namespace {} and tenant {} has no default Subnet)", p.ns, p.name, p.ns, p.tenant));
                    sw
                }
            };
        } else {
            let sw = format!("ls/{}/{}", p.tenant, p.node);
            if !switches.contains_key(&sw) {
                let n = &nodes[&p.node];
                let subnet = n.pod_cidrs[0];
                switches.insert(
                    sw.clone(),
                    SwitchPlan {
                        tenant: p.tenant.clone(),
                        subnet,
                        gateway: first_host(subnet),
                        node: Some(p.node.clone()),
                        source: n.source.clone(),
                    },
                );
            }
            p.switch = sw;
        }
    }

    // --- addresses: explicit ones reserved first, then deterministic -----
    let mut used: BTreeMap<(String, IpAddr), String> = BTreeMap::new();
    for s in switches.values() {
        used.insert((s.tenant.clone(), s.gateway), "the gateway".into());
    }
    for p in &pods {
        for ip in &p.ips {
            if let Some(other) =
                used.insert((p.tenant.clone(), *ip), format!("pod {}/{}", p.ns, p.name))
            {
                return Err(invalid(
                    &p.origin,
                    &format!("Pod {}/{}", p.ns, p.name),
                    "status.podIP",
                    format!("{ip} is already used by {other} in tenant {}", p.tenant),
                ));
            }
        }
    }
    for p in &mut pods {
        if !p.ips.is_empty() {
            continue;
        }
        let sw = &switches[&p.switch];
        let n = host_count(sw.subnet);
        let v4 = sw.subnet.network().is_ipv4();
        let (first, last) = if v4 && n > 2 {
            (1, n - 2)
        } else {
            (1, n.saturating_sub(1))
        };
        let span = last.saturating_sub(first) + 1;
        let start = u128::from(fnv1a64(format!("{}/{}", p.ns, p.name).as_bytes())) % span;
        let mut found = None;
        let probes = span.min(1 << 20);
        for k in 0..probes {
            let ip = offset(sw.subnet, first + (start + k) % span);
            if !used.contains_key(&(p.tenant.clone(), ip)) {
                found = Some(ip);
                break;
            }
        }
        let Some(ip) = found else {
            return Err(invalid(
                &p.origin,
                &format!("Pod {}/{}", p.ns, p.name),
                "status.podIP",
                format!("no status.podIP and no free address left in {}", sw.subnet),
            ));
        };
        used.insert((p.tenant.clone(), ip), format!("pod {}/{}", p.ns, p.name));
        ctx.assume(format!(
            "assumed pod {}/{} has address {ip} (no status.podIP; taken from {})",
            p.ns, p.name, sw.subnet
        ));
        p.ips.push(ip);
    }

    // --- ids: every name known, allocate in sorted order ------------------
    let mut dp_names: Vec<String> = switches.keys().cloned().collect();
    dp_names.extend(tenants.keys().map(|t| format!("lr/{t}")));
    dp_names.sort();
    let mut dpa = IdAllocator::datapaths();
    let mut dp_ids = BTreeMap::new();
    for n in &dp_names {
        dp_ids.insert(n.clone(), dpa.datapath(n).map_err(id_full)?);
    }
    let mut port_names: Vec<String> = pods
        .iter()
        .map(|p| format!("{}/{}", p.ns, p.name))
        .collect();
    for sw in switches.keys() {
        let suffix = &sw[3..];
        port_names.push(format!("lsp/{suffix}/router"));
        port_names.push(format!("lrp/{suffix}"));
    }
    port_names.sort();
    let mut pa = IdAllocator::ports();
    let mut port_ids = BTreeMap::new();
    for n in &port_names {
        port_ids.insert(n.clone(), pa.port(n).map_err(id_full)?);
    }

    // --- build ---------------------------------------------------------------
    let model = &mut ctx.model;
    for (name, n) in &nodes {
        model.nodes.insert(
            name.clone(),
            Node {
                name: name.clone(),
                underlay_ip: n.underlay.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                pod_cidrs: n.pod_cidrs.clone(),
                implied: n.implied,
                source: n.source.clone(),
            },
        );
    }
    for (tname, t) in &mut tenants {
        let rid = dp_ids[&format!("lr/{tname}")];
        t.router = rid;
        model.routers.insert(
            rid,
            LogicalRouter {
                id: rid,
                name: format!("lr/{tname}"),
                tenant: tname.clone(),
                ports: Vec::new(),
                routes: Vec::new(),
            },
        );
    }
    for (swname, s) in &switches {
        let id = dp_ids[swname];
        let suffix = &swname[3..];
        let peer = port_ids[&format!("lsp/{suffix}/router")];
        let rp_id = port_ids[&format!("lrp/{suffix}")];
        let rp_name = format!("lrp/{suffix}");
        let mac = mac_for(s.gateway, &rp_name);
        let t = tenants.get_mut(&s.tenant).ok_or_else(|| LoadError {
            origin: None,
            object: None,
            field: None,
            kind: LoadErrorKind::Invalid(format!("switch {swname} of unknown tenant")),
        })?;
        t.switches.push(id);
        let router = model.routers.get_mut(&t.router).ok_or_else(|| LoadError {
            origin: None,
            object: None,
            field: None,
            kind: LoadErrorKind::Invalid("router missing".into()),
        })?;
        router.ports.push(RouterPort {
            id: rp_id,
            name: rp_name,
            mac,
            ip: s.gateway,
            network: s.subnet,
            switch: id,
            peer,
        });
        router.routes.push(Route {
            prefix: s.subnet,
            port: rp_id,
            next_hop: None,
            kind: RouteKind::Connected,
            source: s.source.clone(),
        });
        model.ports.insert(
            peer,
            LogicalPort {
                ofport: None,
                id: peer,
                name: format!("lsp/{suffix}/router"),
                switch: id,
                tenant: s.tenant.clone(),
                mac,
                ips: vec![s.gateway],
                node: None,
                security: None,
                kind: PortKind::Router {
                    router: t.router,
                    router_port: rp_id,
                },
                source: s.source.clone(),
            },
        );
        model.switches.insert(
            id,
            LogicalSwitch {
                id,
                name: swname.clone(),
                tenant: s.tenant.clone(),
                subnet: s.subnet,
                gateway: s.gateway,
                node: s.node.clone(),
                router_port: peer,
                ports: Vec::new(),
                source: s.source.clone(),
            },
        );
    }
    for p in pods {
        let pname = format!("{}/{}", p.ns, p.name);
        let id = port_ids[&pname];
        let sw_id = dp_ids[&p.switch];
        let sw = &switches[&p.switch];
        let mac = mac_for(p.ips[0], &pname);
        let source = SourceRef::namespaced(SourceKind::Pod, &p.ns, &p.name);
        for ip in &p.ips {
            if !sw.subnet.contains(ip) {
                ctx.assumptions.push(format!("assumed pod {pname} address {ip} (outside {} of {}) is reached by a host route", sw.subnet, p.switch));
                let t = &tenants[&p.tenant];
                if let Some(r) = model.routers.get_mut(&t.router) {
                    let rp = port_ids[&format!("lrp/{}", &p.switch[3..])];
                    let prefix = IpNet::from(*ip);
                    r.routes.push(Route {
                        prefix,
                        port: rp,
                        next_hop: None,
                        kind: RouteKind::Host,
                        source: source.clone(),
                    });
                }
            }
        }
        model.ports.insert(
            id,
            LogicalPort {
                ofport: None,
                id,
                name: pname,
                switch: sw_id,
                tenant: p.tenant.clone(),
                mac,
                ips: p.ips.clone(),
                node: Some(p.node.clone()),
                security: Some(PortSecurity {
                    mac,
                    ips: p.ips.clone(),
                }),
                kind: PortKind::Pod {
                    namespace: p.ns.clone(),
                    pod: p.name.clone(),
                },
                source,
            },
        );
        if let Some(s) = model.switches.get_mut(&sw_id) {
            s.ports.push(id);
        }
        ctx.pods.push(PodInfo {
            ns: p.ns,
            name: p.name,
            labels: p.labels,
            tenant: p.tenant,
            port: id,
            ips: p.ips,
            named_ports: p.named_ports,
            origin: p.origin,
        });
    }
    for s in model.switches.values_mut() {
        s.ports.sort();
    }
    for r in model.routers.values_mut() {
        r.ports.sort_by_key(|p| p.id);
        r.routes.sort_by(|a, b| {
            (b.prefix.prefix_len(), a.prefix).cmp(&(a.prefix.prefix_len(), b.prefix))
        });
    }
    for t in tenants.values_mut() {
        t.switches.sort();
    }
    model.tenants = tenants;
    ctx.ns_tenant = ns_tenant;
    Ok(())
}

pub(super) fn id_full(e: IdSpaceFull) -> LoadError {
    LoadError {
        origin: None,
        object: None,
        field: None,
        kind: LoadErrorKind::Invalid(e.to_string()),
    }
}
