//! NetworkPolicy semantics at the model level, one test per rule of the
//! mapping table in `translate::policy`. `stage`/`allowed_pkt` evaluate the model's
//! ACLs exactly as the model's doc says the compiler must (tiers in order,
//! highest priority first, no match = allow), on the source port's
//! from-lport ACLs and then the destination port's to-lport ACLs.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use weft_controller::model::*;
use weft_controller::source::load_str;
use weft_controller::translate::translate;

const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {ns: x}}
---
apiVersion: v1
kind: Namespace
metadata: {name: y, labels: {ns: y, env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: z, labels: {ns: z}}
"#;

fn pods() -> String {
    let mut s = String::new();
    let mut n = 10;
    for ns in ["x", "y", "z"] {
        for pod in ["a", "b", "c"] {
            n += 1;
            let port = if pod == "b" { 8081 } else { 8080 };
            s.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}, labels: {{pod: {pod}}}}}\n\
                 spec: {{nodeName: n1, containers: [{{name: c, image: i, ports: [{{name: serve, containerPort: {port}}}, {{name: dns, containerPort: 53, protocol: UDP}}]}}]}}\n\
                 status: {{podIP: 10.244.0.{n}}}\n"
            ));
        }
    }
    s
}

fn model(policies: &str) -> LogicalModel {
    // `y` is a YAML 1.1 boolean (as in Kubernetes' own YAML reader): quote it.
    let text = format!("{BASE}{}\n---\n{policies}", pods())
        .replace(": y,", ": \"y\",")
        .replace(": y}", ": \"y\"}");
    let m = load_str("test.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    translate(&m).unwrap_or_else(|e| panic!("{e}")).model
}

#[derive(Clone, Copy)]
struct Pkt {
    proto: L4Protocol,
    sport: u16,
    dport: u16,
    ack: bool,
}

fn traffic_matches(t: &[Traffic], p: Pkt) -> bool {
    t.is_empty()
        || t.iter().any(|c| match c {
            Traffic::L4 {
                protocol,
                dst_ports,
                src_ports,
                tcp_ack,
            } => {
                *protocol == p.proto
                    && dst_ports.is_none_or(|r| r.contains(p.dport))
                    && src_ports.is_none_or(|r| r.contains(p.sport))
                    && (!*tcp_ack || p.proto != L4Protocol::Tcp || p.ack)
            }
            _ => false,
        })
}

fn stage(
    m: &LogicalModel,
    dir: AclDirection,
    port: LogicalPortId,
    peer: IpAddr,
    p: Pkt,
) -> Option<&Acl> {
    let mut best: Option<&Acl> = None;
    for a in m.acls.values() {
        if a.direction != dir
            || !m.acl_ports(a).contains(&port)
            || !traffic_matches(&a.matches.traffic, p)
        {
            continue;
        }
        if let Some(s) = a.matches.peer
            && !m.address_sets[&s].contains(peer)
        {
            continue;
        }
        if best.is_none_or(|b| {
            (a.tier, std::cmp::Reverse(a.priority)) < (b.tier, std::cmp::Reverse(b.priority))
        }) {
            best = Some(a);
        }
    }
    best
}

fn allowed_pkt(m: &LogicalModel, from: &str, to: &str, p: Pkt) -> bool {
    let port = |s: &str| {
        let (ns, pod) = s.split_once('/').unwrap();
        m.pod_port(ns, pod).unwrap_or_else(|| panic!("no pod {s}"))
    };
    let (a, b) = (port(from), port(to));
    let ok = |x: Option<&Acl>| x.is_none_or(|acl| acl.action == AclAction::Allow);
    ok(stage(m, AclDirection::FromLport, a.id, b.ips[0], p))
        && ok(stage(m, AclDirection::ToLport, b.id, a.ips[0], p))
}

/// A connection: request allowed and the reply allowed too.
fn conn(m: &LogicalModel, from: &str, to: &str, proto: L4Protocol, port: u16) -> bool {
    let req = Pkt {
        proto,
        sport: 40000,
        dport: port,
        ack: false,
    };
    let rep = Pkt {
        proto,
        sport: port,
        dport: 40000,
        ack: true,
    };
    allowed_pkt(m, from, to, req) && allowed_pkt(m, to, from, rep)
}

fn tcp(m: &LogicalModel, from: &str, to: &str, port: u16) -> bool {
    conn(m, from, to, L4Protocol::Tcp, port)
}

const ALL: [&str; 9] = [
    "x/a", "x/b", "x/c", "y/a", "y/b", "y/c", "z/a", "z/b", "z/c",
];

fn matrix(m: &LogicalModel, port: u16) -> Vec<String> {
    ALL.iter()
        .map(|f| {
            ALL.iter()
                .map(|t| {
                    if f == t || tcp(m, f, t, port) {
                        '.'
                    } else {
                        'X'
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn no_policy_allows_everything() {
    let m = model("");
    assert!(matrix(&m, 80).iter().all(|r| r == "........."));
}

#[test]
fn deny_all_ingress_isolates_selected_pods_only() {
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n",
    );
    for f in ALL {
        for t in ["x/a", "x/b", "x/c"] {
            if f == t {
                continue;
            }
            assert!(!tcp(&m, f, t, 80), "{f} -> {t}");
        }
        assert!(tcp(&m, "x/a", "y/a", 80), "egress not isolated");
    }
}

#[test]
fn policy_types_inference_egress_only_when_egress_present() {
    // egress present, no policyTypes: both directions isolated.
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]\n",
    );
    assert!(!tcp(&m, "x/a", "x/c", 80), "egress isolated");
    assert!(tcp(&m, "x/a", "x/b", 80), "egress rule allows b");
    assert!(
        !tcp(&m, "x/c", "x/a", 80),
        "ingress isolated by default type"
    );
    // explicit Egress only: ingress untouched.
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n",
    );
    assert!(
        tcp(&m, "x/c", "x/a", 80),
        "TCP replies leave through the isolated direction (ACK)"
    );
    assert!(
        !conn(&m, "x/c", "x/a", L4Protocol::Udp, 53),
        "UDP replies do not (documented)"
    );
    assert!(!tcp(&m, "x/a", "x/c", 80));
}

#[test]
fn empty_from_allows_all_missing_rules_deny() {
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{}]\n",
    );
    assert!(
        ALL.iter().all(|f| tcp(&m, f, "x/a", 80)),
        "rule with no from = any peer"
    );
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: []\n",
    );
    assert!(!tcp(&m, "x/b", "x/a", 80), "no rules = deny");
}

#[test]
fn union_of_policies() {
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p1, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p2, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{podSelector: {matchLabels: {pod: c}}}]}]\n",
    );
    assert!(tcp(&m, "x/b", "x/a", 80) && tcp(&m, "x/c", "x/a", 80));
    assert!(!tcp(&m, "y/b", "x/a", 80));
}

#[test]
fn pod_and_namespace_selector_and_vs_or() {
    let and = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: b}}}]}]\n",
    );
    let or = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}, {podSelector: {matchLabels: {pod: b}}}]}]\n",
    );
    assert!(tcp(&and, "y/b", "x/a", 80));
    assert!(!tcp(&and, "y/c", "x/a", 80), "AND: y/c is not pod b");
    assert!(!tcp(&and, "x/b", "x/a", 80), "AND: x is not ns y");
    assert!(tcp(&or, "y/c", "x/a", 80), "OR: any pod of y");
    assert!(
        tcp(&or, "x/b", "x/a", 80),
        "OR: pod b of the policy's namespace"
    );
    assert!(
        !tcp(&or, "z/b", "x/a", 80),
        "podSelector alone = own namespace"
    );
}

#[test]
fn match_expressions_operators() {
    let pol = |op: &str, vals: &str| {
        model(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: x}}\nspec:\n  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress: [{{from: [{{namespaceSelector: {{matchExpressions: [{{key: env, operator: {op}{vals}}}]}}}}]}}]\n"
        ))
    };
    let m = pol("In", ", values: [prod]");
    assert!(tcp(&m, "y/a", "x/a", 80) && !tcp(&m, "z/a", "x/a", 80));
    let m = pol("NotIn", ", values: [prod]");
    assert!(!tcp(&m, "y/a", "x/a", 80) && tcp(&m, "z/a", "x/a", 80) && tcp(&m, "x/b", "x/a", 80));
    let m = pol("Exists", "");
    assert!(tcp(&m, "y/a", "x/a", 80) && !tcp(&m, "z/a", "x/a", 80));
    let m = pol("DoesNotExist", "");
    assert!(!tcp(&m, "y/a", "x/a", 80) && tcp(&m, "z/a", "x/a", 80));
}

#[test]
fn ip_block_with_except() {
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.244.0.0/24, except: [10.244.0.16/28]}}]}]\n",
    );
    // y/* are .14 .15 .16, z/* .17 .18 .19
    assert!(tcp(&m, "x/a", "y/a", 80) && tcp(&m, "x/a", "y/b", 80));
    assert!(
        !tcp(&m, "x/a", "y/c", 80) && !tcp(&m, "x/a", "z/a", 80),
        "except hole"
    );
    let set = m
        .address_sets
        .values()
        .find(|s| s.name.ends_with("/peer"))
        .unwrap();
    assert!(!set.contains("10.1.0.1".parse().unwrap()));
}

#[test]
fn named_ports_resolve_per_destination_pod() {
    // b serves on 8081, a and c on 8080.
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: serve}]}]\n",
    );
    assert!(tcp(&m, "y/a", "x/a", 8080) && !tcp(&m, "y/a", "x/a", 8081));
    assert!(tcp(&m, "y/a", "x/b", 8081) && !tcp(&m, "y/a", "x/b", 8080));
    let groups = m
        .acls
        .values()
        .filter(|a| a.name.starts_with("acl/np/x/p/ingress/0/") && a.name.ends_with("/allow"))
        .count();
    assert_eq!(groups, 2, "one ACL per distinct resolution");
    // Egress: resolved against the destination.
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: serve}]}]\n",
    );
    assert!(tcp(&m, "x/a", "y/b", 8081) && !tcp(&m, "x/a", "y/b", 8080));
    assert!(tcp(&m, "x/a", "y/c", 8080) && !tcp(&m, "x/a", "y/c", 8081));
}

#[test]
fn end_port_ranges_and_protocols() {
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80, endPort: 90}, {protocol: UDP, port: 53}, {protocol: SCTP}]}]\n",
    );
    assert!(
        tcp(&m, "y/a", "x/a", 80)
            && tcp(&m, "y/a", "x/a", 90)
            && !tcp(&m, "y/a", "x/a", 91)
            && !tcp(&m, "y/a", "x/a", 79)
    );
    assert!(
        conn(&m, "y/a", "x/a", L4Protocol::Udp, 53) && !conn(&m, "y/a", "x/a", L4Protocol::Udp, 80)
    );
    assert!(
        !conn(&m, "y/a", "x/a", L4Protocol::Udp, 85),
        "TCP range does not open UDP"
    );
    assert!(
        conn(&m, "y/a", "x/a", L4Protocol::Sctp, 1234),
        "protocol without port = whole protocol"
    );
}

#[test]
fn return_traffic_stateless_approximation() {
    // Both ends isolated both ways; x/a may call y/a:80.
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: y}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}], ports: [{port: 80}]}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: in, namespace: y}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: 80}]}]\n",
    );
    assert!(tcp(&m, "x/a", "y/a", 80), "request and reply");
    assert!(!tcp(&m, "y/a", "x/a", 80), "not the other way");
    // A reply-shaped packet without ACK (a SYN from port 80) is refused.
    let syn = Pkt {
        proto: L4Protocol::Tcp,
        sport: 80,
        dport: 40000,
        ack: false,
    };
    assert!(!allowed_pkt(&m, "y/a", "x/a", syn));
    // UDP has no ACK: a datagram from port 80 back to x/a passes (documented).
    let m2 = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: 53, protocol: UDP}]}]\n",
    );
    assert!(conn(&m2, "x/a", "y/a", L4Protocol::Udp, 53));
}

/// The reversal of a port-less ("any traffic") rule is TCP with ACK plus
/// ICMP replies and errors, never "any" (issue #6 scenarios s35 and s43
/// failed when it stayed "any"); UDP/SCTP without a port has no return
/// traffic at all.
#[test]
fn return_traffic_of_portless_rules_is_never_any() {
    // No policyTypes: x/a is isolated both ways, may send anything to y.
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: y}}}]}]\n",
    );
    let pkt = |proto, sport, dport, ack| Pkt {
        proto,
        sport,
        dport,
        ack,
    };
    assert!(tcp(&m, "x/a", "y/a", 80), "request and its ACK replies");
    assert!(
        !allowed_pkt(&m, "y/a", "x/a", pkt(L4Protocol::Tcp, 40000, 80, false)),
        "y/a cannot open a connection to x/a (a SYN has no ACK)"
    );
    for proto in [L4Protocol::Udp, L4Protocol::Sctp] {
        assert!(
            !allowed_pkt(&m, "y/a", "x/a", pkt(proto, 80, 40000, false)),
            "{proto:?} into x/a: denied (no port anchors a reply)"
        );
    }
    let tcp_ack = Traffic::L4 {
        protocol: L4Protocol::Tcp,
        dst_ports: None,
        src_ports: None,
        tcp_ack: true,
    };
    let want: Vec<Traffic> = std::iter::once(tcp_ack).chain(ICMP_RETURN).collect();
    let returns: Vec<&Acl> = m
        .acls
        .values()
        .filter(|a| a.name.starts_with("acl/np/x/out/") && a.name.contains("/return-"))
        .collect();
    assert_eq!(returns.len(), 2, "return-local and return-peer");
    for a in returns {
        assert_eq!(a.matches.traffic, want, "{}", a.name);
    }
    // UDP without a port: the allow ACL, and no return ACL (an empty
    // traffic list would mean "any").
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: udp, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{protocol: UDP}]}]\n",
    );
    let names: Vec<&str> = m
        .acls
        .values()
        .filter(|a| a.name.starts_with("acl/np/x/udp/"))
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(names, ["acl/np/x/udp/ingress/0/0/allow"]);
    // TCP without a port: TCP with ACK from any port.
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: t, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{protocol: TCP}]}]\n",
    );
    let back = m
        .acls
        .values()
        .find(|a| a.name == "acl/np/x/t/ingress/0/0/return-local")
        .unwrap();
    assert_eq!(
        back.matches.traffic,
        [Traffic::L4 {
            protocol: L4Protocol::Tcp,
            dst_ports: None,
            src_ports: None,
            tcp_ack: true,
        }]
    );
}

#[test]
fn arp_nd_always_allowed_in_tier_zero() {
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n",
    );
    let infra: Vec<_> = m
        .acls
        .values()
        .filter(|a| a.tier == AclTier::Infrastructure)
        .collect();
    assert_eq!(infra.len(), 2);
    for a in infra {
        assert_eq!(a.matches.applies_to, AppliesTo::AllPods);
        assert_eq!(
            a.matches.traffic,
            vec![Traffic::Arp, Traffic::NeighborDiscovery]
        );
        assert_eq!(a.action, AclAction::Allow);
    }
}

#[test]
fn acl_sources_name_policy_and_rule() {
    let m = model(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 1}]}, {ports: [{port: 2}]}]\n",
    );
    let a = m
        .acls
        .values()
        .find(|a| a.name == "acl/np/x/p/ingress/1/0/allow")
        .unwrap();
    assert_eq!(a.source.to_string(), "NetworkPolicy x/p ingress[1]");
    let r = m
        .acls
        .values()
        .find(|a| a.name == "acl/np/x/p/ingress/1/0/return-peer")
        .unwrap();
    assert_eq!(
        r.source.to_string(),
        "NetworkPolicy x/p ingress[1] (return traffic, peer side)"
    );
}

#[test]
fn tenants_with_overlapping_cidrs_do_not_see_each_other() {
    let text = "apiVersion: weft.dev/v1alpha1\nkind: Tenant\nmetadata: {name: red}\nspec: {namespaces: [r], cidrs: [10.0.0.0/16]}\n---\n\
        apiVersion: weft.dev/v1alpha1\nkind: Tenant\nmetadata: {name: blue}\nspec: {namespaces: [b], cidrs: [10.0.0.0/16]}\n---\n\
        apiVersion: weft.dev/v1alpha1\nkind: Subnet\nmetadata: {name: red-main}\nspec: {tenant: red, cidr: 10.0.1.0/24}\n---\n\
        apiVersion: weft.dev/v1alpha1\nkind: Subnet\nmetadata: {name: blue-main}\nspec: {tenant: blue, cidr: 10.0.1.0/24}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: r, labels: {app: p}}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.1.5}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: r}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.1.6}\n---\n\
        apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: b}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {podIP: 10.0.1.5}\n---\n\
        apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: all-ns, namespace: r}\nspec:\n  podSelector: {matchLabels: {app: p}}\n  ingress: [{from: [{namespaceSelector: {}}]}]\n";
    let t = translate(&load_str("t.yaml", text).unwrap()).unwrap();
    let m = &t.model;
    let (rp, bp) = (m.pod_port("r", "p").unwrap(), m.pod_port("b", "p").unwrap());
    assert_eq!(rp.ips, bp.ips, "same address in both tenants");
    assert_ne!(rp.switch, bp.switch);
    assert_ne!(m.tenants["red"].router, m.tenants["blue"].router);
    // The red policy's peer set holds only red pods, not blue's.
    let peer = m
        .address_sets
        .values()
        .find(|s| s.name.starts_with("as/np/r/all-ns/") && s.name.ends_with("/peer"))
        .unwrap();
    match &peer.origin {
        AddressSetOrigin::RulePeers { ports, .. } => {
            assert!(!ports.contains(&bp.id) && ports.contains(&rp.id))
        }
        o => panic!("{o:?}"),
    }
}
