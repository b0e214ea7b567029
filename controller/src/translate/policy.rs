//! NetworkPolicy -> port groups, address sets, ACLs.
//!
//! # Rule by rule
//!
//! | NetworkPolicy | logical model |
//! |---|---|
//! | `podSelector` | the *selected pods*: pods of the policy's namespace whose labels match (`{}` or missing = all). |
//! | `policyTypes` | as given; if missing: `Ingress` always, plus `Egress` when `spec.egress` is non-empty (the API server's defaulting). Rules of a direction not in `policyTypes` are ignored. |
//! | isolation | a selected pod is isolated for a direction when any policy of that direction selects it. Isolated pods join `pg/ns/<ns>/isolated-{ingress,egress}`; one Drop ACL per namespace and direction (`ToLport` for ingress, `FromLport` for egress) at priority 1000 in the NetworkPolicy tier. |
//! | union of policies | every rule becomes Allow ACLs at priority 2000, above every isolation drop: traffic allowed by any policy is allowed (no policy can deny). |
//! | rule with `from`/`to` missing or `[]` | peer = any address (`AclMatch::peer = None`). |
//! | peer `podSelector` only | pods of the policy's namespace matching it. |
//! | peer `namespaceSelector` only | all pods of the namespaces matching it (`{}` = all namespaces). |
//! | both in one peer | pods matching the podSelector *in* namespaces matching the namespaceSelector (AND). Separate peers are ORed: the rule's peer address set is the union of all its peers. |
//! | `matchLabels`, `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`) | see `selector`; invalid operators/values are load errors. |
//! | `ipBlock` `cidr` + `except` | the prefixes of `cidr` minus every `except` ([`IpBlock::prefixes`]) in the rule's address set. `except` outside `cidr`, or `ipBlock` combined with a selector, is a load error. |
//! | `ports` missing or `[]` | any traffic (all protocols, ICMP included). |
//! | `port: 80`, `protocol` (TCP default, UDP, SCTP) | `Traffic::L4 { dst_ports: 80 }`. |
//! | `port` + `endPort` | `dst_ports: port..=endPort` (the compiler emits value/mask pairs, [`PortRange::to_masks`]). `endPort` with a named port, without a port, or below `port` is a load error. |
//! | port missing, protocol given | the whole protocol. |
//! | named port (`port: http`) | resolved *per destination pod* against its containers' named ports with the same protocol. Ingress: the selected pods are split into groups with equal resolution, one ACL set per group; pods where the name does not resolve get nothing from that port. Egress: the destination pods (the peers' pods; for a rule without `to`, every pod of the tenant) are split the same way into per-group address sets; an `ipBlock` destination never matches a named port (it is not a pod). |
//!
//! Peers are only pods of the policy's own tenant (another tenant's pods
//! are unreachable anyway, and their addresses may coincide with this
//! tenant's: matching them would open the policy to the wrong pods).
//!
//! Names: `acl/np/<ns>/<policy>/<ingress|egress>/<rule>/<group>/<part>`,
//! `pg/np/.../local` (selected pods of the group), `pg/np/.../peer`,
//! `as/np/.../peer` (peer addresses), `as/np/.../local`.
//!
//! # Return traffic and ARP/ND (stateless, until conntrack)
//!
//! Without connection tracking, replies of an allowed connection must be
//! allowed by rules of their own. For every Allow ACL (direction D, selected
//! pods L, peer set P, traffic T) the translation adds two Allow ACLs at the
//! same priority whose traffic is T *reversed* (below):
//!
//! - `return-local`: direction reverse(D) on L, peer P, reversed T
//!   (the reply leaving / entering the selected pods);
//! - `return-peer`: direction D on the peer pods (P's pods; all pods of the
//!   tenant for an any-peer rule), peer = addresses of L, reversed T
//!   (the reply at the other end, when that pod is isolated too).
//!
//! Reversed traffic, clause by clause; it is never "any traffic", and it
//! never matches the first packet of a TCP connection (a SYN has no ACK)
//! nor a UDP/SCTP datagram to a port the rule does not name:
//!
//! | rule's traffic T | return traffic allowed (the other way) |
//! |---|---|
//! | any (`ports` missing or `[]`) | TCP with ACK set, any source and destination port; ICMP echo reply (0), destination unreachable (3, "fragmentation needed" included), time exceeded (11); ICMPv6 destination unreachable (1), packet too big (2), time exceeded (3), echo reply (129) ([`ICMP_RETURN`]). No UDP, no SCTP, no other ICMP. |
//! | TCP, ports R (or the whole protocol: R = any) | TCP with ACK set, *source* port in R, any destination port. |
//! | UDP or SCTP, ports R | that protocol, *source* port in R, any destination port. |
//! | UDP or SCTP without a port | nothing: no return ACL at all. |
//!
//! So a UDP/SCTP server's answers pass from the port it serves (DNS on 53
//! answers a client under deny-all-ingress whose egress rule names UDP 53),
//! but UDP/SCTP replies to traffic of a port-less rule are denied until
//! conntrack.
//!
//! What this allows beyond stateful Kubernetes (the price of no state):
//! packets that look like replies but are not. In the reply direction of
//! a rule (ingress rule on L from P: L to P; egress rule on L to P: P to
//! L; P = every address for a rule without `from`/`to`), the sender may
//! send and the receiver accepts even where either is isolated in that
//! direction: TCP segments with ACK from the allowed port (from any port
//! for a TCP rule without port and for a port-less rule), UDP/SCTP
//! datagrams *from* an allowed UDP/SCTP port to any port (e.g. a pod with
//! an ingress rule "UDP 53 from anywhere" and a deny-all egress policy can
//! still send UDP with source port 53 to any address), and for port-less
//! rules the ICMP messages listed above. None of them opens a TCP
//! connection (no SYN passes); UDP/SCTP passes only with a source port
//! that a rule names as its destination port.
//!
//! What it still denies that Kubernetes allows: UDP/SCTP replies of
//! port-less rules and of protocol-only UDP/SCTP rules; ICMP errors
//! (unreachable, fragmentation needed) about an allowed connection when
//! the rule names ports or a protocol; replies to an `ipBlock` peer range
//! that contains pods of the tenant when those pods are isolated; and
//! replies whose source port differs from the destination port of the
//! request (never for TCP/UDP/SCTP servers here).
//!
//! A pod isolated in one direction only (say ingress) still opens
//! connections in the other; the translation allows, in its isolated
//! direction, the return traffic of "any" from the table above (TCP with
//! ACK and the ICMP replies and errors, from any peer and port:
//! `acl/ns/<ns>/return-open-egress`, and `-ingress` for the mirror case).
//! UDP and SCTP replies to such connections are *denied* until conntrack
//! (e.g. DNS answers to a pod under a deny-all-ingress policy that has no
//! egress policy): add an ingress rule for them.
//!
//! Ping, as `check::Cluster::round_trip` walks it: an ICMP echo request
//! passes an isolated direction only by a port-less rule (a rule with
//! ports names TCP/UDP/SCTP only); its echo reply passes by that rule's
//! return ACLs, and back into a pod isolated in one direction only by
//! `return-open-*`. So ping round-trips exactly where Kubernetes allows
//! the echo request. UDP does not always: a reply through an isolated
//! direction needs a rule naming the UDP port (the round trip is then
//! denied while Kubernetes allows it; `weftctl policy check
//! --round-trip` prints both and a note).
//!
//! ARP and IPv6 ND (ICMPv6 133 to 137) are allowed to and from every pod by
//! tier-0 ACLs; port security limits what a pod may claim in them.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::topology::{id_full, parse_net, parse_protocol};
use super::{Ctx, PodInfo, invalid, selector};
use crate::model::acl::priority;
use crate::model::*;
use crate::source::{LoadError, LoadErrorKind, Loaded, Manifests, Origin};

#[derive(Debug, Clone, PartialEq)]
enum PApplies {
    All,
    Group(String),
}

#[derive(Debug, Clone, PartialEq)]
struct PAcl {
    direction: AclDirection,
    tier: AclTier,
    priority: u16,
    action: AclAction,
    applies: PApplies,
    peer: Option<String>,
    traffic: Vec<Traffic>,
    source: SourceRef,
}

#[derive(Debug, Clone, PartialEq)]
enum POrigin {
    Group(String),
    Peers {
        ports: BTreeSet<LogicalPortId>,
        blocks: Vec<IpBlock>,
    },
}

/// One policy's contribution, by name (see [`fragment`]).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Pending {
    acls: BTreeMap<String, PAcl>,
    groups: BTreeMap<String, BTreeSet<LogicalPortId>>,
    sets: BTreeMap<String, (BTreeSet<IpNet>, POrigin)>,
}

/// The peers of one rule, resolved.
struct Peers {
    any: bool,
    /// Indices into `ctx.pods`.
    pods: BTreeSet<usize>,
    blocks: Vec<IpBlock>,
}

enum PortSpec {
    Numeric(Traffic),
    Named(String, L4Protocol),
}

fn l4(protocol: L4Protocol, dst: Option<PortRange>) -> Traffic {
    Traffic::L4 {
        protocol,
        dst_ports: dst,
        src_ports: None,
        tcp_ack: false,
    }
}

/// The traffic that answers `t` (the stateless approximation of the
/// module doc): never "any", and never the first packet of a TCP
/// connection or of a UDP/SCTP flow to a port the rule did not name.
///
/// - any traffic (empty `t`): TCP segments with ACK, from any port to any
///   port, plus [`ICMP_RETURN`] (echo replies and errors);
/// - TCP (port range or whole protocol): TCP with ACK, source port in the
///   rule's destination range (any when the rule names no port);
/// - UDP/SCTP with a port range: that range as the *source* port range;
/// - UDP/SCTP without a port: nothing (no port anchors a reply, and "UDP
///   from any port" would admit any new flow);
/// - ARP/ND: themselves (symmetric; tier 0 allows them anyway).
///
/// An empty result means "no return traffic", not "any": the caller emits
/// no return ACL then.
fn reversed(t: &[Traffic]) -> Vec<Traffic> {
    let tcp_ack = |src_ports| Traffic::L4 {
        protocol: L4Protocol::Tcp,
        dst_ports: None,
        src_ports,
        tcp_ack: true,
    };
    if t.is_empty() {
        let mut v = vec![tcp_ack(None)];
        v.extend(ICMP_RETURN);
        return v;
    }
    let mut v: Vec<Traffic> = t
        .iter()
        .filter_map(|c| match c {
            Traffic::L4 {
                protocol: L4Protocol::Tcp,
                dst_ports,
                ..
            } => Some(tcp_ack(*dst_ports)),
            Traffic::L4 {
                protocol,
                dst_ports: Some(r),
                ..
            } => Some(Traffic::L4 {
                protocol: *protocol,
                dst_ports: None,
                src_ports: Some(*r),
                tcp_ack: false,
            }),
            Traffic::L4 {
                dst_ports: None, ..
            } => None,
            Traffic::Arp | Traffic::NeighborDiscovery => Some(c.clone()),
            // Never in a rule's traffic (only in return traffic itself).
            Traffic::Icmp { .. } => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

fn check_selector(
    sel: &LabelSelector,
    origin: &Origin,
    label: &str,
    field: &str,
) -> Result<(), LoadError> {
    selector::validate(sel).map_err(|(f, why)| invalid(origin, label, &format!("{field}.{f}"), why))
}

pub(super) fn build(m: &Manifests, ctx: &mut Ctx) -> Result<(), LoadError> {
    let mut frags = Vec::with_capacity(m.network_policies.len());
    let mut seen = BTreeSet::new();
    let mut policies: Vec<_> = m.network_policies.iter().collect();
    policies.sort_by_key(|l| {
        (
            l.object.metadata.namespace.clone(),
            l.object.metadata.name.clone(),
        )
    });
    for l in policies {
        let ns = l.object.metadata.namespace.clone().unwrap_or_default();
        let name = l.object.metadata.name.clone().unwrap_or_default();
        let label = format!("NetworkPolicy {ns}/{name}");
        if !seen.insert((ns.clone(), name.clone())) {
            return Err(LoadError::field(
                &l.origin,
                &label,
                "metadata.name",
                LoadErrorKind::Conflict("NetworkPolicy defined twice".into()),
            ));
        }
        frags.push(fragment(ctx, l)?);
    }
    assemble(ctx, frags.into_iter().map(Cow::Owned))
}

/// The NetworkPolicies that isolate each pod, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Isolation {
    /// `namespace/name` of the policies that select the pod for ingress.
    pub ingress: Vec<String>,
    /// The same for egress.
    pub egress: Vec<String>,
}

/// Which policies isolate which pod (`namespace/pod` -> [`Isolation`]),
/// with the selection and `policyTypes` rules of [`fragment`] (the table
/// in the module doc). The isolation drop ACLs are one per namespace and
/// direction (`Infrastructure <ns>/isolation-ingress`), shared by every
/// policy that selects a pod; this names the policies behind them, for
/// `weftctl trace`. Pods no policy selects are left out. Assumes
/// manifests [`translate`](super::translate) accepted (an invalid
/// selector selects nothing here).
pub fn isolating_policies(m: &Manifests) -> BTreeMap<String, Isolation> {
    let mut out: BTreeMap<String, Isolation> = BTreeMap::new();
    // Pods by namespace: a policy only selects in its own, so the cost is
    // the sum over policies of their namespace's pods, not policies x pods.
    let mut by_ns: BTreeMap<&str, Vec<&Loaded<k8s_openapi::api::core::v1::Pod>>> = BTreeMap::new();
    for pod in &m.pods {
        let ns = pod
            .object
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default");
        by_ns.entry(ns).or_default().push(pod);
    }
    for np in &m.network_policies {
        let md = &np.object.metadata;
        let ns = md.namespace.clone().unwrap_or_else(|| "default".into());
        let name = format!("{ns}/{}", md.name.as_deref().unwrap_or(""));
        let Some(spec) = &np.object.spec else {
            continue;
        };
        let (ing, egr) = match &spec.policy_types {
            Some(t) if !t.is_empty() => (
                t.iter().any(|x| x == "Ingress"),
                t.iter().any(|x| x == "Egress"),
            ),
            _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
        };
        let sel = spec.pod_selector.clone().unwrap_or_default();
        if selector::validate(&sel).is_err() {
            continue;
        }
        for pod in by_ns.get(ns.as_str()).into_iter().flatten() {
            let pmd = &pod.object.metadata;
            let pns = pmd.namespace.as_deref().unwrap_or("default");
            if !selector::matches(&sel, &pmd.labels.clone().unwrap_or_default()) {
                continue;
            }
            let e = out
                .entry(format!("{pns}/{}", pmd.name.as_deref().unwrap_or("")))
                .or_default();
            if ing {
                e.ingress.push(name.clone());
            }
            if egr {
                e.egress.push(name.clone());
            }
        }
    }
    out
}

/// Everything one NetworkPolicy contributes (its ACLs, port groups and
/// address sets; its pods' share of the namespace's isolation groups): a
/// function of the policy and of the pods, namespaces and tenants in `ctx`.
pub(super) fn fragment(ctx: &Ctx, l: &Loaded<NetworkPolicy>) -> Result<Pending, LoadError> {
    let mut p = Pending::default();
    let ns = l.object.metadata.namespace.clone().unwrap_or_default();
    let name = l.object.metadata.name.clone().unwrap_or_default();
    let label = format!("NetworkPolicy {ns}/{name}");
    let Some(spec) = &l.object.spec else {
        return Err(LoadError::field(
            &l.origin,
            &label,
            "spec",
            LoadErrorKind::Missing,
        ));
    };
    let pod_sel = spec.pod_selector.clone().unwrap_or_default();
    check_selector(&pod_sel, &l.origin, &label, "spec.podSelector")?;
    let (mut ing, mut egr) = (false, false);
    match &spec.policy_types {
        Some(types) if !types.is_empty() => {
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => ing = true,
                    "Egress" => egr = true,
                    other => {
                        return Err(invalid(
                            &l.origin,
                            &label,
                            &format!("spec.policyTypes[{i}]"),
                            format!("{other:?} is not Ingress or Egress"),
                        ));
                    }
                }
            }
        }
        _ => {
            ing = true;
            egr = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
        }
    }
    let tenant = ctx.ns_tenant.get(&ns).cloned().unwrap_or_default();
    let mut selected = BTreeSet::new();
    select_pods(
        ctx,
        Some(&pod_sel),
        &[(ns.as_str(), ctx.index.namespace(&ns))],
        None,
        &mut selected,
    );
    let src = SourceRef::namespaced(SourceKind::NetworkPolicy, &ns, &name);
    let dirs = [
        (
            ing,
            RuleDirection::Ingress,
            AclDirection::ToLport,
            "ingress",
        ),
        (
            egr,
            RuleDirection::Egress,
            AclDirection::FromLport,
            "egress",
        ),
    ];
    for (on, rdir, adir, word) in dirs {
        // Validate the rules even when their direction is off.
        let rules: Vec<RawRule<'_>> = match rdir {
            RuleDirection::Ingress => spec
                .ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_ref(), r.ports.as_ref()))
                .collect(),
            RuleDirection::Egress => spec
                .egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_ref(), r.ports.as_ref()))
                .collect(),
        };
        let peer_word = if rdir == RuleDirection::Ingress {
            "from"
        } else {
            "to"
        };
        let mut parsed = Vec::new();
        for (i, (peers, ports)) in rules.iter().enumerate() {
            let at = format!("spec.{word}[{i}]");
            let peers = resolve_peers(
                ctx,
                &l.origin,
                &label,
                &format!("{at}.{peer_word}"),
                &ns,
                &tenant,
                *peers,
            )?;
            let ports = parse_ports(&l.origin, &label, &format!("{at}.ports"), *ports)?;
            parsed.push((peers, ports));
        }
        if !on {
            continue;
        }
        if !selected.is_empty() {
            let g = p
                .groups
                .entry(format!("pg/ns/{ns}/isolated-{word}"))
                .or_default();
            g.extend(selected.iter().map(|&i| ctx.pods[i].port));
            p.acls
                .entry(format!("acl/ns/{ns}/isolated-{word}"))
                .or_insert_with(|| PAcl {
                    direction: adir,
                    tier: AclTier::NetworkPolicy,
                    priority: priority::ISOLATION_DROP,
                    action: AclAction::Drop,
                    applies: PApplies::Group(format!("pg/ns/{ns}/isolated-{word}")),
                    peer: None,
                    traffic: Vec::new(),
                    source: SourceRef::namespaced(
                        SourceKind::Infrastructure,
                        &ns,
                        &format!("isolation-{word}"),
                    ),
                });
        }
        for (i, (peers, ports)) in parsed.into_iter().enumerate() {
            let entries = rule_entries(ctx, rdir, &selected, &tenant, &peers, &ports);
            for (k, (local, peer_pods, blocks, any, traffic)) in entries.into_iter().enumerate() {
                let base = format!("np/{ns}/{name}/{word}/{i}/{k}");
                let rsrc = |part| src.clone().with_rule(rdir, i as u32, part);
                emit_entry(
                    ctx, &mut p, &base, adir, &local, &peer_pods, &blocks, any, &traffic, &tenant,
                    rsrc,
                );
            }
        }
    }
    Ok(p)
}

/// The policy step's output from per-policy fragments (in policy order):
/// the tier-0 ARP/ND ACLs, the fragments merged (isolation groups are
/// shared by the policies of a namespace: their ports are united), the
/// open-direction return ACLs, then ids and model objects.
pub(super) fn assemble<'a>(
    ctx: &mut Ctx,
    frags: impl Iterator<Item = Cow<'a, Pending>>,
) -> Result<(), LoadError> {
    let mut p = Pending::default();
    for (suffix, dir) in [
        ("from-lport", AclDirection::FromLport),
        ("to-lport", AclDirection::ToLport),
    ] {
        p.acls.insert(
            format!("acl/infra/arp-nd/{suffix}"),
            PAcl {
                direction: dir,
                tier: AclTier::Infrastructure,
                priority: priority::INFRA_ALLOW,
                action: AclAction::Allow,
                applies: PApplies::All,
                peer: None,
                traffic: vec![Traffic::Arp, Traffic::NeighborDiscovery],
                source: SourceRef::cluster(SourceKind::Infrastructure, "arp-nd"),
            },
        );
    }
    for f in frags {
        let f = f.into_owned();
        for (k, v) in f.acls {
            p.acls.entry(k).or_insert(v);
        }
        for (k, v) in f.groups {
            match p.groups.entry(k) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().extend(v),
            }
        }
        p.sets.extend(f.sets);
    }
    open_direction_returns(&mut p);
    finish(ctx, p)
}

/// A pod isolated in one direction only still opens connections in the
/// other; their replies come back through the isolated direction. Allow
/// the return traffic of "any" there (TCP segments with ACK, ICMP replies
/// and errors: `Infrastructure <ns>/return-open-<dir>`).
fn open_direction_returns(p: &mut Pending) {
    let namespaces: BTreeSet<String> = p
        .groups
        .keys()
        .filter_map(|g| {
            g.strip_prefix("pg/ns/")
                .and_then(|r| r.rsplit_once("/isolated-"))
                .map(|(ns, _)| ns.to_owned())
        })
        .collect();
    for ns in namespaces {
        let ing = p
            .groups
            .get(&format!("pg/ns/{ns}/isolated-ingress"))
            .cloned()
            .unwrap_or_default();
        let egr = p
            .groups
            .get(&format!("pg/ns/{ns}/isolated-egress"))
            .cloned()
            .unwrap_or_default();
        for (only, dir, open) in [
            (&ing - &egr, AclDirection::ToLport, "egress"),
            (&egr - &ing, AclDirection::FromLport, "ingress"),
        ] {
            if only.is_empty() {
                continue;
            }
            let g = format!("pg/ns/{ns}/open-{open}");
            p.groups.insert(g.clone(), only);
            p.acls.insert(
                format!("acl/ns/{ns}/return-open-{open}"),
                PAcl {
                    direction: dir,
                    tier: AclTier::NetworkPolicy,
                    priority: priority::POLICY_ALLOW,
                    action: AclAction::Allow,
                    applies: PApplies::Group(g),
                    peer: None,
                    traffic: reversed(&[]),
                    source: SourceRef::namespaced(
                        SourceKind::Infrastructure,
                        &ns,
                        &format!("return-open-{open}"),
                    ),
                },
            );
        }
    }
}

type RawRule<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

type Entry = (
    BTreeSet<usize>,
    BTreeSet<usize>,
    Vec<IpBlock>,
    bool,
    Vec<Traffic>,
);

/// Splits a rule into (local pods, peer pods, peer blocks, any-peer,
/// traffic) entries with named ports resolved.
fn rule_entries(
    ctx: &Ctx,
    dir: RuleDirection,
    selected: &BTreeSet<usize>,
    tenant: &str,
    peers: &Peers,
    ports: &[PortSpec],
) -> Vec<Entry> {
    let numeric: Vec<Traffic> = ports
        .iter()
        .filter_map(|s| match s {
            PortSpec::Numeric(t) => Some(t.clone()),
            PortSpec::Named(..) => None,
        })
        .collect();
    let resolve_named = |pod: &PodInfo| -> Vec<Traffic> {
        let mut v: Vec<Traffic> = ports
            .iter()
            .filter_map(|s| match s {
                PortSpec::Named(n, proto) => pod
                    .named_ports
                    .iter()
                    .find(|(pn, pp, _)| pn == n && pp == proto)
                    .map(|&(_, pp, num)| l4(pp, Some(PortRange::single(num)))),
                PortSpec::Numeric(_) => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut out = Vec::new();
    if ports.is_empty() {
        out.push((
            selected.clone(),
            peers.pods.clone(),
            peers.blocks.clone(),
            peers.any,
            Vec::new(),
        ));
        return out;
    }
    match dir {
        RuleDirection::Ingress => {
            // Group the selected pods by their full resolution.
            let mut groups: BTreeMap<Vec<Traffic>, BTreeSet<usize>> = BTreeMap::new();
            for &i in selected {
                let mut t = numeric.clone();
                t.extend(resolve_named(&ctx.pods[i]));
                t.sort();
                t.dedup();
                if !t.is_empty() {
                    groups.entry(t).or_default().insert(i);
                }
            }
            for (t, local) in groups {
                out.push((
                    local,
                    peers.pods.clone(),
                    peers.blocks.clone(),
                    peers.any,
                    t,
                ));
            }
        }
        RuleDirection::Egress => {
            if !numeric.is_empty() {
                let mut t = numeric.clone();
                t.sort();
                t.dedup();
                out.push((
                    selected.clone(),
                    peers.pods.clone(),
                    peers.blocks.clone(),
                    peers.any,
                    t,
                ));
            }
            let dests: Vec<usize> = if peers.any {
                ctx.tenant_pods.get(tenant).cloned().unwrap_or_default()
            } else {
                peers.pods.iter().copied().collect()
            };
            let mut groups: BTreeMap<Vec<Traffic>, BTreeSet<usize>> = BTreeMap::new();
            for i in dests {
                let t = resolve_named(&ctx.pods[i]);
                if !t.is_empty() {
                    groups.entry(t).or_default().insert(i);
                }
            }
            for (t, dst) in groups {
                out.push((selected.clone(), dst, Vec::new(), false, t));
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn emit_entry(
    ctx: &Ctx,
    p: &mut Pending,
    base: &str,
    dir: AclDirection,
    local: &BTreeSet<usize>,
    peer_pods: &BTreeSet<usize>,
    blocks: &[IpBlock],
    any: bool,
    traffic: &[Traffic],
    tenant: &str,
    src: impl Fn(RulePart) -> SourceRef,
) {
    if local.is_empty() {
        return;
    }
    let peer_set = if any {
        None
    } else {
        let mut addrs: BTreeSet<IpNet> = peer_pods
            .iter()
            .flat_map(|&i| ctx.pods[i].ips.iter().map(|ip| IpNet::from(*ip)))
            .collect();
        addrs.extend(blocks.iter().flat_map(IpBlock::prefixes));
        if addrs.is_empty() {
            return; // the peers select nothing: the rule allows nothing
        }
        let name = format!("as/{base}/peer");
        let ports = peer_pods.iter().map(|&i| ctx.pods[i].port).collect();
        p.sets.insert(
            name.clone(),
            (
                addrs,
                POrigin::Peers {
                    ports,
                    blocks: blocks.to_vec(),
                },
            ),
        );
        Some(name)
    };
    let local_pg = format!("pg/{base}/local");
    p.groups.insert(
        local_pg.clone(),
        local.iter().map(|&i| ctx.pods[i].port).collect(),
    );
    let allow = |direction, applies, peer, traffic: Vec<Traffic>, source| PAcl {
        direction,
        tier: AclTier::NetworkPolicy,
        priority: priority::POLICY_ALLOW,
        action: AclAction::Allow,
        applies,
        peer,
        traffic,
        source,
    };
    p.acls.insert(
        format!("acl/{base}/allow"),
        allow(
            dir,
            PApplies::Group(local_pg.clone()),
            peer_set.clone(),
            traffic.to_vec(),
            src(RulePart::Allow),
        ),
    );
    let back = reversed(traffic);
    if back.is_empty() {
        // Nothing answers this traffic statelessly (UDP/SCTP without a
        // port); an ACL with no traffic clause would mean "any".
        return;
    }
    p.acls.insert(
        format!("acl/{base}/return-local"),
        allow(
            dir.reverse(),
            PApplies::Group(local_pg.clone()),
            peer_set,
            back.clone(),
            src(RulePart::ReturnLocal),
        ),
    );
    let remote: BTreeSet<LogicalPortId> = if any {
        ctx.tenant_ports.get(tenant).cloned().unwrap_or_default()
    } else {
        peer_pods.iter().map(|&i| ctx.pods[i].port).collect()
    };
    if !remote.is_empty() {
        let peer_pg = format!("pg/{base}/peer");
        p.groups.insert(peer_pg.clone(), remote);
        let local_as = format!("as/{base}/local");
        let addrs = local
            .iter()
            .flat_map(|&i| ctx.pods[i].ips.iter().map(|ip| IpNet::from(*ip)))
            .collect();
        p.sets
            .insert(local_as.clone(), (addrs, POrigin::Group(local_pg)));
        p.acls.insert(
            format!("acl/{base}/return-peer"),
            allow(
                dir,
                PApplies::Group(peer_pg),
                Some(local_as),
                back,
                src(RulePart::ReturnPeer),
            ),
        );
    }
}

fn resolve_peers(
    ctx: &Ctx,
    origin: &Origin,
    label: &str,
    field: &str,
    ns: &str,
    tenant: &str,
    peers: Option<&Vec<NetworkPolicyPeer>>,
) -> Result<Peers, LoadError> {
    let mut out = Peers {
        any: false,
        pods: BTreeSet::new(),
        blocks: Vec::new(),
    };
    let Some(peers) = peers.filter(|p| !p.is_empty()) else {
        out.any = true;
        return Ok(out);
    };
    for (j, peer) in peers.iter().enumerate() {
        let at = format!("{field}[{j}]");
        if let Some(b) = &peer.ip_block {
            if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                return Err(invalid(
                    origin,
                    label,
                    &at,
                    "ipBlock cannot be combined with podSelector or namespaceSelector".into(),
                ));
            }
            let cidr = parse_net(&b.cidr)
                .map_err(|e| invalid(origin, label, &format!("{at}.ipBlock.cidr"), e))?;
            let mut except = Vec::new();
            for (x, e) in b.except.iter().flatten().enumerate() {
                let f = format!("{at}.ipBlock.except[{x}]");
                let net = parse_net(e).map_err(|e| invalid(origin, label, &f, e))?;
                if !cidr.contains(&net) || net.prefix_len() <= cidr.prefix_len() {
                    return Err(invalid(
                        origin,
                        label,
                        &f,
                        format!("{net} is not strictly inside {cidr}"),
                    ));
                }
                except.push(net);
            }
            out.blocks.push(IpBlock {
                cidr: cidr.trunc(),
                except,
            });
            continue;
        }
        if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
            return Err(invalid(
                origin,
                label,
                &at,
                "a peer needs podSelector, namespaceSelector or ipBlock".into(),
            ));
        }
        if let Some(s) = &peer.pod_selector {
            check_selector(s, origin, label, &format!("{at}.podSelector"))?;
        }
        if let Some(s) = &peer.namespace_selector {
            check_selector(s, origin, label, &format!("{at}.namespaceSelector"))?;
        }
        let spaces: Vec<(&str, Range<usize>)> = match &peer.namespace_selector {
            Some(s) => ctx
                .index
                .namespaces()
                .filter(|(n, _)| {
                    ctx.ns_labels
                        .get(*n)
                        .is_some_and(|l| selector::matches(s, l))
                })
                .collect(),
            None => vec![(ns, ctx.index.namespace(ns))],
        };
        select_pods(
            ctx,
            peer.pod_selector.as_ref(),
            &spaces,
            Some(tenant),
            &mut out.pods,
        );
    }
    Ok(out)
}

/// Adds to `out` the pods of the namespaces `spaces` (name, positions;
/// ascending by name) that match `sel` (all when `None`) and belong to
/// `tenant` when given. Uses the index: only the candidates of the
/// selector's most selective positive term are checked, or, without one,
/// the namespaces' pods.
fn select_pods(
    ctx: &Ctx,
    sel: Option<&LabelSelector>,
    spaces: &[(&str, Range<usize>)],
    tenant: Option<&str>,
    out: &mut BTreeSet<usize>,
) {
    let ok = |i: usize| {
        let q = &ctx.pods[i];
        tenant.is_none_or(|t| q.tenant == t) && sel.is_none_or(|s| selector::matches(s, &q.labels))
    };
    match sel.and_then(|s| ctx.index.candidates(s)) {
        Some(cands) => {
            // Namespace membership by ordinal, not by name.
            let mut mask = vec![false; ctx.index.namespace_count()];
            for (n, _) in spaces {
                if let Some(k) = ctx.index.namespace_ordinal(n) {
                    mask[k] = true;
                }
            }
            for i in cands {
                if mask[ctx.index.pod_namespace(i)] && ok(i) {
                    out.insert(i);
                }
            }
        }
        None => {
            for (_, r) in spaces {
                out.extend(r.clone().filter(|&i| ok(i)));
            }
        }
    }
}

fn parse_ports(
    origin: &Origin,
    label: &str,
    field: &str,
    ports: Option<&Vec<NetworkPolicyPort>>,
) -> Result<Vec<PortSpec>, LoadError> {
    let mut out = Vec::new();
    for (k, port) in ports.into_iter().flatten().enumerate() {
        let at = format!("{field}[{k}]");
        let proto = parse_protocol(port.protocol.as_deref())
            .map_err(|e| invalid(origin, label, &format!("{at}.protocol"), e))?;
        let num = |v: i32, f: &str| {
            u16::try_from(v).ok().filter(|&x| x != 0).ok_or_else(|| {
                invalid(
                    origin,
                    label,
                    &format!("{at}.{f}"),
                    format!("{v} is not a port (1..65535)"),
                )
            })
        };
        match (&port.port, port.end_port) {
            (None, None) => out.push(PortSpec::Numeric(l4(proto, None))),
            (None, Some(_)) => {
                return Err(invalid(
                    origin,
                    label,
                    &format!("{at}.endPort"),
                    "endPort needs port".into(),
                ));
            }
            (Some(IntOrString::Int(p)), end) => {
                let start = num(*p, "port")?;
                let end = match end {
                    Some(e) => num(e, "endPort")?,
                    None => start,
                };
                if end < start {
                    return Err(invalid(
                        origin,
                        label,
                        &format!("{at}.endPort"),
                        format!("{end} is below port {start}"),
                    ));
                }
                out.push(PortSpec::Numeric(l4(proto, Some(PortRange { start, end }))));
            }
            (Some(IntOrString::String(name)), end) => {
                if end.is_some() {
                    return Err(invalid(
                        origin,
                        label,
                        &format!("{at}.endPort"),
                        "endPort cannot be used with a named port".into(),
                    ));
                }
                let ok = !name.is_empty()
                    && name.len() <= 15
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && name.chars().any(|c| c.is_ascii_lowercase());
                if !ok {
                    return Err(invalid(
                        origin,
                        label,
                        &format!("{at}.port"),
                        format!("{name:?} is not a port number or a port name (IANA_SVC_NAME)"),
                    ));
                }
                out.push(PortSpec::Named(name.clone(), proto));
            }
        }
    }
    Ok(out)
}

/// Allocates ids (sorted by name) and writes the sets, groups and ACLs.
fn finish(ctx: &mut Ctx, p: Pending) -> Result<(), LoadError> {
    let mut ga = IdAllocator::wide("port group");
    let mut gid = BTreeMap::new();
    for (name, ports) in &p.groups {
        let id = PortGroupId(ga.alloc(name).map_err(id_full)? as u32);
        gid.insert(name.clone(), id);
        ctx.model.port_groups.insert(
            id,
            PortGroup {
                id,
                name: name.clone(),
                ports: ports.clone(),
            },
        );
    }
    let mut sa = IdAllocator::wide("address set");
    let mut sid = BTreeMap::new();
    for (name, (addrs, origin)) in p.sets {
        let id = AddressSetId(sa.alloc(&name).map_err(id_full)? as u32);
        sid.insert(name.clone(), id);
        let origin = match origin {
            POrigin::Group(g) => AddressSetOrigin::PortGroup(gid[&g]),
            POrigin::Peers { ports, blocks } => AddressSetOrigin::RulePeers { ports, blocks },
        };
        ctx.model.address_sets.insert(
            id,
            AddressSet {
                id,
                name,
                addresses: addrs,
                origin,
            },
        );
    }
    let mut aa = IdAllocator::wide("acl");
    for (name, a) in p.acls {
        let id = AclId(aa.alloc(&name).map_err(id_full)? as u32);
        let applies_to = match a.applies {
            PApplies::All => AppliesTo::AllPods,
            PApplies::Group(g) => AppliesTo::Group(gid[&g]),
        };
        let peer = a.peer.map(|s| sid[&s]);
        ctx.model.acls.insert(
            id,
            Acl {
                id,
                name,
                direction: a.direction,
                tier: a.tier,
                priority: a.priority,
                action: a.action,
                matches: AclMatch {
                    applies_to,
                    peer,
                    traffic: a.traffic,
                },
                source: a.source,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolating_policies_of_the_examples() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests");
        let m = crate::source::load_path(&dir).unwrap();
        let iso = isolating_policies(&m);
        let get = |p: &str| iso.get(p).cloned().unwrap_or_default();
        // blue-web: default-deny (no rules, Ingress by default) selects
        // both pods; worker-to-frontend only the frontend, dns-from-frontend
        // only the worker.
        assert_eq!(
            get("blue-web/worker").ingress,
            ["blue-web/default-deny", "blue-web/dns-from-frontend"]
        );
        assert_eq!(
            get("blue-web/frontend").ingress,
            ["blue-web/default-deny", "blue-web/worker-to-frontend"]
        );
        assert!(get("blue-web/frontend").egress.is_empty());
        // red-web/frontend has both directions (egress rules, no
        // policyTypes); admin-egress is Egress only.
        assert_eq!(get("red-web/frontend").ingress, ["red-web/frontend"]);
        assert_eq!(get("red-web/frontend").egress, ["red-web/frontend"]);
        assert_eq!(get("red-web/admin").egress, ["red-web/admin-egress"]);
        assert!(get("red-web/admin").ingress.is_empty());
        assert_eq!(get("red-db/postgres").ingress, ["red-db/db-from-frontend"]);
    }
}
