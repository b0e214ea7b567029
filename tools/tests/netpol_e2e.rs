//! The upstream Kubernetes NetworkPolicy e2e model, reproduced: namespaces
//! x, y, z (labelled `ns: <name>`), pods a, b, c in each (labelled
//! `pod: <name>`, serving TCP and UDP on 80 and 81 with named ports
//! `serve-80-tcp`, `serve-80-udp`, `serve-81-tcp`, `serve-81-udp`, and SCTP
//! 80 as `serve-80-sctp`), pod a on node n1, b on n2, c on n3 (so every
//! namespace spans three nodes and most probes cross a tunnel). Each
//! scenario below (written from the Kubernetes documentation and the e2e
//! test descriptions, in our own words) applies its policies and checks
//! the full 9x9 matrix on TCP 80, TCP 81, UDP 80 and UDP 81 (plus extra
//! ports where the scenario is about them) through the real `weftctl`
//! binary: the manifests are written to a temporary directory and one
//! `weftctl policy matrix --manifests DIR --probe tcp/80 --probe tcp/81
//! --probe udp/80 --probe udp/81 [...] --json` per scenario compiles them
//! and runs every probe through the real switchd pipeline of each node.
//! Expected matrices are written as predicates over (from, to, port,
//! protocol); the diagonal (a pod to itself) is always allowed (loopback
//! never reaches the switch), as in the upstream model.
//!
//! The test lives in the tools crate so that cargo builds the current
//! `weftctl` before running it (`CARGO_BIN_EXE_weftctl`): a test in the
//! controller crate could only find a previously built binary, possibly
//! stale.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;
use weft_controller::model::L4Protocol;

const NS: [char; 3] = ['x', 'y', 'z'];
const PODS: [char; 3] = ['a', 'b', 'c'];

/// A pod: (namespace, name).
type P = (char, char);

fn node_of(pod: char) -> usize {
    match pod {
        'a' => 1,
        'b' => 2,
        _ => 3,
    }
}

fn ip_of(p: P) -> String {
    let ns = NS.iter().position(|n| *n == p.0).unwrap_or(0);
    format!("10.244.{}.{}", node_of(p.1), 10 + ns)
}

fn base(extra_ns_labels: &[(char, &str)]) -> String {
    let mut s = String::new();
    for n in 1..=3 {
        s.push_str(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: n{n}\nspec:\n  podCIDR: 10.244.{n}.0/24\nstatus:\n  addresses:\n  - type: InternalIP\n    address: 192.0.2.{n}\n---\n"
        ));
    }
    for ns in NS {
        let extra: String = extra_ns_labels
            .iter()
            .filter(|(n, _)| *n == ns)
            .map(|(_, l)| format!("    {l}\n"))
            .collect();
        s.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"{ns}\"\n  labels:\n    ns: \"{ns}\"\n{extra}---\n"
        ));
        for pod in PODS {
            s.push_str(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: \"{ns}\"\n  labels:\n    pod: {pod}\nspec:\n  nodeName: n{node}\n  containers:\n  - name: cont\n    image: agnhost\n    ports:\n    - {{name: serve-80-tcp, containerPort: 80, protocol: TCP}}\n    - {{name: serve-80-udp, containerPort: 80, protocol: UDP}}\n    - {{name: serve-81-tcp, containerPort: 81, protocol: TCP}}\n    - {{name: serve-81-udp, containerPort: 81, protocol: UDP}}\n    - {{name: serve-80-sctp, containerPort: 80, protocol: SCTP}}\nstatus:\n  podIP: {ip}\n---\n",
                node = node_of(pod),
                ip = ip_of((ns, pod)),
            ));
        }
    }
    s
}

fn policy(ns: char, name: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: \"{ns}\"\nspec:\n{spec}---\n"
    )
}

const STD: [(u16, L4Protocol); 4] = [
    (80, L4Protocol::Tcp),
    (81, L4Protocol::Tcp),
    (80, L4Protocol::Udp),
    (81, L4Protocol::Udp),
];

fn pods() -> Vec<P> {
    NS.iter()
        .flat_map(|n| PODS.iter().map(move |p| (*n, *p)))
        .collect()
}

fn probe_arg(port: u16, proto: L4Protocol) -> String {
    let p = match proto {
        L4Protocol::Tcp => "tcp",
        L4Protocol::Udp => "udp",
        L4Protocol::Sctp => "sctp",
    };
    format!("{p}/{port}")
}

fn to_text(pods: &[String], cells: &[Vec<bool>]) -> String {
    let mut s = String::from("-");
    for p in pods {
        s.push('\t');
        s.push_str(p);
    }
    s.push('\n');
    for (p, row) in pods.iter().zip(cells) {
        s.push_str(p);
        for c in row {
            s.push('\t');
            s.push(if *c { '.' } else { 'X' });
        }
        s.push('\n');
    }
    s
}

/// Runs one scenario: manifests = base + policies, written to a temporary
/// directory; one `weftctl policy matrix` run for every probe; checks
/// every matrix.
fn scenario(
    name: &str,
    ns_labels: &[(char, &str)],
    policies: &[String],
    extra: &[(u16, L4Protocol)],
    expect: impl Fn(P, P, u16, L4Protocol) -> bool,
) {
    let dir = tempfile::Builder::new()
        .prefix("weft-netpol-")
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("00-base.yaml"), base(ns_labels)).unwrap();
    let mut text = String::new();
    for p in policies {
        text.push_str(p);
    }
    std::fs::write(dir.path().join("10-policies.yaml"), text).unwrap();
    let probes: Vec<(u16, L4Protocol)> = STD.iter().chain(extra).copied().collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weftctl"));
    cmd.args(["policy", "matrix", "--json", "--manifests"])
        .arg(dir.path());
    for &(port, proto) in &probes {
        cmd.arg("--probe").arg(probe_arg(port, proto));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{name}: weftctl failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: weftctl printed no JSON ({e})"));
    let all = pods();
    let names: Vec<String> = all.iter().map(|(n, p)| format!("{n}/{p}")).collect();
    let got_pods: Vec<String> = serde_json::from_value(v["pods"].clone()).unwrap();
    assert_eq!(got_pods, names, "{name}: pods");
    let matrices = v["matrices"].as_array().unwrap();
    assert_eq!(matrices.len(), probes.len(), "{name}: one matrix per probe");
    for (m, &(port, proto)) in matrices.iter().zip(&probes) {
        let want_proto = probe_arg(port, proto);
        let got_proto = format!(
            "{}/{}",
            m["protocol"].as_str().unwrap().to_ascii_lowercase(),
            m["port"]
        );
        assert_eq!(got_proto, want_proto, "{name}: matrix order");
        let cells: Vec<Vec<bool>> = serde_json::from_value(m["cells"].clone()).unwrap();
        let want: Vec<Vec<bool>> = all
            .iter()
            .map(|&f| {
                all.iter()
                    .map(|&t| f == t || expect(f, t, port, proto))
                    .collect()
            })
            .collect();
        if cells != want {
            panic!(
                "{name}: {want_proto}\nobserved:\n{}expected:\n{}",
                to_text(&names, &cells),
                to_text(&names, &want)
            );
        }
    }
}

use L4Protocol::{Sctp, Tcp, Udp};

#[test]
fn s01_no_policy_everything_reachable() {
    scenario("no-policy", &[], &[], &[], |_, _, _, _| true);
}

#[test]
fn s02_default_deny_ingress() {
    let p = policy('x', "deny-in", "podSelector: {}\npolicyTypes: [Ingress]");
    scenario("default-deny-ingress", &[], &[p], &[], |_, t, _, _| {
        t.0 != 'x'
    });
}

#[test]
fn s03_default_deny_egress() {
    let p = policy('x', "deny-out", "podSelector: {}\npolicyTypes: [Egress]");
    scenario("default-deny-egress", &[], &[p], &[], |f, _, _, _| {
        f.0 != 'x'
    });
}

#[test]
fn s04_default_deny_both() {
    let p = policy(
        'x',
        "deny-all",
        "podSelector: {}\npolicyTypes: [Ingress, Egress]",
    );
    scenario("default-deny-all", &[], &[p], &[], |f, t, _, _| {
        f.0 != 'x' && t.0 != 'x'
    });
}

#[test]
fn s05_allow_all_ingress_beats_deny() {
    let d = policy('x', "deny-in", "podSelector: {}\npolicyTypes: [Ingress]");
    let a = policy('x', "allow-in", "podSelector: {}\ningress:\n- {}");
    scenario("allow-all-ingress", &[], &[d, a], &[], |_, _, _, _| true);
}

#[test]
fn s06_ingress_from_pod_label_same_namespace() {
    let p = policy(
        'x',
        "a-from-b",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - podSelector:\n      matchLabels: {pod: b}",
    );
    scenario("ingress-from-pod-label", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') || f == ('x', 'b')
    });
}

#[test]
fn s07_ingress_from_namespace_label() {
    let p = policy(
        'x',
        "a-from-y",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}",
    );
    scenario("ingress-from-namespace", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') || f.0 == 'y'
    });
}

#[test]
fn s08_pod_and_namespace_selector_in_one_peer_is_and() {
    let p = policy(
        'x',
        "a-from-yb",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}\n    podSelector:\n      matchLabels: {pod: b}",
    );
    scenario("and-selector", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') || f == ('y', 'b')
    });
}

#[test]
fn s09_separate_peers_are_or() {
    let p = policy(
        'x',
        "a-from-y-or-b",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}\n  - podSelector:\n      matchLabels: {pod: b}",
    );
    scenario("or-selector", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') || f.0 == 'y' || f == ('x', 'b')
    });
}

#[test]
fn s10_empty_namespace_selector_means_every_namespace() {
    let p = policy(
        'x',
        "a-from-all-ns",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector: {}",
    );
    scenario("all-namespaces", &[], &[p], &[], |_, _, _, _| true);
}

#[test]
fn s11_empty_pod_selector_peer_means_own_namespace() {
    let p = policy(
        'x',
        "a-from-x",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - podSelector: {}",
    );
    scenario("own-namespace", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') || f.0 == 'x'
    });
}

#[test]
fn s12_match_expressions_in() {
    let p = policy(
        'x',
        "in",
        "podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: ns, operator: In, values: [\"y\", z]}",
    );
    scenario("expr-in", &[], &[p], &[], |f, t, _, _| {
        t.0 != 'x' || f.0 != 'x'
    });
}

#[test]
fn s13_match_expressions_not_in() {
    let p = policy(
        'x',
        "notin",
        "podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: ns, operator: NotIn, values: [\"y\"]}",
    );
    scenario("expr-notin", &[], &[p], &[], |f, t, _, _| {
        t.0 != 'x' || f.0 != 'y'
    });
}

#[test]
fn s14_match_expressions_exists() {
    let p = policy(
        'x',
        "exists",
        "podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: team, operator: Exists}",
    );
    scenario(
        "expr-exists",
        &[('z', "team: blue")],
        &[p],
        &[],
        |f, t, _, _| t.0 != 'x' || f.0 == 'z',
    );
}

#[test]
fn s15_match_expressions_does_not_exist() {
    let p = policy(
        'x',
        "dne",
        "podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchExpressions:\n      - {key: team, operator: DoesNotExist}",
    );
    scenario(
        "expr-dne",
        &[('z', "team: blue")],
        &[p],
        &[],
        |f, t, _, _| t.0 != 'x' || f.0 != 'z',
    );
}

#[test]
fn s16_pod_match_expressions_select_targets() {
    let p = policy(
        'x',
        "ab",
        "podSelector:\n  matchExpressions:\n  - {key: pod, operator: In, values: [a, b]}\npolicyTypes: [Ingress]",
    );
    scenario("target-expr", &[], &[p], &[], |_, t, _, _| {
        !(t == ('x', 'a') || t == ('x', 'b'))
    });
}

#[test]
fn s17_only_tcp_80() {
    let p = policy(
        'x',
        "tcp80",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- ports:\n  - {port: 80, protocol: TCP}",
    );
    scenario("tcp-80", &[], &[p], &[], |_, t, port, proto| {
        t != ('x', 'a') || (port == 80 && proto == Tcp)
    });
}

#[test]
fn s18_only_udp_81() {
    let p = policy(
        'x',
        "udp81",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- ports:\n  - {port: 81, protocol: UDP}",
    );
    scenario("udp-81", &[], &[p], &[], |_, t, port, proto| {
        t != ('x', 'a') || (port == 81 && proto == Udp)
    });
}

#[test]
fn s19_protocol_defaults_to_tcp() {
    let p = policy(
        'x',
        "p81",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- ports:\n  - port: 81",
    );
    scenario("default-tcp", &[], &[p], &[], |_, t, port, proto| {
        t != ('x', 'a') || (port == 81 && proto == Tcp)
    });
}

#[test]
fn s20_named_port_tcp() {
    let p = policy(
        'x',
        "named",
        "podSelector: {}\ningress:\n- ports:\n  - port: serve-81-tcp",
    );
    scenario("named-port", &[], &[p], &[], |_, t, port, proto| {
        t.0 != 'x' || (port == 81 && proto == Tcp)
    });
}

#[test]
fn s21_named_port_udp() {
    let p = policy(
        'x',
        "named-udp",
        "podSelector: {}\ningress:\n- ports:\n  - {port: serve-80-udp, protocol: UDP}",
    );
    scenario("named-port-udp", &[], &[p], &[], |_, t, port, proto| {
        t.0 != 'x' || (port == 80 && proto == Udp)
    });
}

#[test]
fn s22_named_port_with_wrong_protocol_matches_nothing() {
    let p = policy(
        'x',
        "named-wrong",
        "podSelector: {}\ningress:\n- ports:\n  - {port: serve-80-tcp, protocol: UDP}",
    );
    scenario("named-port-wrong-proto", &[], &[p], &[], |_, t, _, _| {
        t.0 != 'x'
    });
}

#[test]
fn s23_end_port_range() {
    let p = policy(
        'x',
        "range",
        "podSelector: {}\ningress:\n- ports:\n  - {port: 80, endPort: 81, protocol: TCP}",
    );
    scenario(
        "end-port",
        &[],
        &[p],
        &[(82, Tcp), (79, Tcp)],
        |_, t, port, proto| t.0 != 'x' || (proto == Tcp && (80..=81).contains(&port)),
    );
}

#[test]
fn s24_end_port_range_starting_above() {
    let p = policy(
        'x',
        "range2",
        "podSelector: {}\ningress:\n- ports:\n  - {port: 81, endPort: 90, protocol: UDP}",
    );
    scenario(
        "end-port-81-90",
        &[],
        &[p],
        &[(90, Udp), (91, Udp)],
        |_, t, port, proto| t.0 != 'x' || (proto == Udp && (81..=90).contains(&port)),
    );
}

#[test]
fn s25_protocol_without_port() {
    let p = policy(
        'x',
        "udp-any",
        "podSelector: {}\ningress:\n- ports:\n  - protocol: UDP",
    );
    scenario(
        "protocol-only",
        &[],
        &[p],
        &[(9999, Udp)],
        |_, t, _, proto| t.0 != 'x' || proto == Udp,
    );
}

#[test]
fn s26_ports_and_peers_together() {
    let p = policy(
        'x',
        "y-on-80",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}\n  ports:\n  - {port: 80, protocol: TCP}",
    );
    scenario("peer-and-port", &[], &[p], &[], |f, t, port, proto| {
        t != ('x', 'a') || (f.0 == 'y' && port == 80 && proto == Tcp)
    });
}

#[test]
fn s27_two_rules_in_one_policy_are_ored() {
    let p = policy(
        'x',
        "two-rules",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}\n  ports:\n  - {port: 80, protocol: TCP}\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: z}\n  ports:\n  - {port: 81, protocol: UDP}",
    );
    scenario("two-rules", &[], &[p], &[], |f, t, port, proto| {
        t != ('x', 'a')
            || (f.0 == 'y' && port == 80 && proto == Tcp)
            || (f.0 == 'z' && port == 81 && proto == Udp)
    });
}

#[test]
fn s28_multiple_policies_union() {
    let p1 = policy(
        'x',
        "from-yb",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}\n    podSelector:\n      matchLabels: {pod: b}",
    );
    let p2 = policy(
        'x',
        "from-zc-81",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: z}\n    podSelector:\n      matchLabels: {pod: c}\n  ports:\n  - {port: 81, protocol: TCP}",
    );
    scenario("union", &[], &[p1, p2], &[], |f, t, port, proto| {
        t != ('x', 'a') || f == ('y', 'b') || (f == ('z', 'c') && port == 81 && proto == Tcp)
    });
}

#[test]
fn s29_ip_block_with_except() {
    let p = policy(
        'x',
        "cidr",
        "podSelector:\n  matchLabels: {pod: a}\ningress:\n- from:\n  - ipBlock:\n      cidr: 10.244.0.0/16\n      except: [10.244.2.0/24]",
    );
    scenario("ipblock-except", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') || f.1 != 'b'
    });
}

#[test]
fn s30_ip_block_single_address() {
    let cidr = format!("{}/32", ip_of(('z', 'c')));
    let p = policy(
        'x',
        "one-ip",
        &format!(
            "podSelector:\n  matchLabels: {{pod: a}}\ningress:\n- from:\n  - ipBlock:\n      cidr: {cidr}"
        ),
    );
    scenario("ipblock-32", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') || f == ('z', 'c')
    });
}

#[test]
fn s31_egress_to_namespace() {
    let p = policy(
        'x',
        "out-to-y",
        "podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}",
    );
    scenario("egress-namespace", &[], &[p], &[], |f, t, _, _| {
        f != ('x', 'a') || t.0 == 'y'
    });
}

#[test]
fn s32_egress_to_ip_block_except() {
    let p = policy(
        'x',
        "out-cidr",
        "podSelector: {}\npolicyTypes: [Egress]\negress:\n- to:\n  - ipBlock:\n      cidr: 10.244.0.0/16\n      except: [10.244.1.0/24]",
    );
    scenario("egress-ipblock", &[], &[p], &[], |f, t, _, _| {
        f.0 != 'x' || t.1 != 'a'
    });
}

#[test]
fn s33_egress_dns_only() {
    let p = policy(
        'x',
        "dns-only",
        "podSelector: {}\npolicyTypes: [Egress]\negress:\n- ports:\n  - {port: 53, protocol: UDP}\n  - {port: 53, protocol: TCP}",
    );
    scenario(
        "egress-dns",
        &[],
        &[p],
        &[(53, Udp), (53, Tcp)],
        |f, _, port, _| f.0 != 'x' || port == 53,
    );
}

#[test]
fn s34_egress_named_port_resolved_at_destination() {
    let p = policy(
        'x',
        "out-named",
        "podSelector: {}\npolicyTypes: [Egress]\negress:\n- ports:\n  - {port: serve-81-udp, protocol: UDP}",
    );
    scenario("egress-named-port", &[], &[p], &[], |f, _, port, proto| {
        f.0 != 'x' || (port == 81 && proto == Udp)
    });
}

#[test]
fn s35_policy_types_inferred_from_egress_rules() {
    // No policyTypes: Ingress is always implied, Egress because there are
    // egress rules. So x/a is isolated both ways, reachable from nobody.
    let p = policy(
        'x',
        "inferred",
        "podSelector:\n  matchLabels: {pod: a}\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}",
    );
    scenario("policy-types-inferred", &[], &[p], &[], |f, t, _, _| {
        t != ('x', 'a') && (f != ('x', 'a') || t.0 == 'y')
    });
}

#[test]
fn s36_egress_only_policy_type_leaves_ingress_open() {
    let p = policy(
        'x',
        "egress-only",
        "podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Egress]\negress:\n- to:\n  - podSelector:\n      matchLabels: {pod: b}",
    );
    scenario("egress-type-only", &[], &[p], &[], |f, t, _, _| {
        f != ('x', 'a') || t == ('x', 'b')
    });
}

#[test]
fn s37_empty_ingress_list_denies_all() {
    let p = policy(
        'x',
        "empty-list",
        "podSelector: {}\npolicyTypes: [Ingress]\ningress: []",
    );
    scenario("empty-ingress-list", &[], &[p], &[], |_, t, _, _| {
        t.0 != 'x'
    });
}

#[test]
fn s38_empty_from_allows_all() {
    let p = policy('x', "empty-from", "podSelector: {}\ningress:\n- from: []");
    scenario("empty-from", &[], &[p], &[], |_, _, _, _| true);
}

#[test]
fn s39_ports_without_from() {
    let p = policy(
        'x',
        "port-any-src",
        "podSelector: {}\ningress:\n- ports:\n  - {port: 81, protocol: TCP}",
    );
    scenario("ports-without-from", &[], &[p], &[], |_, t, port, proto| {
        t.0 != 'x' || (port == 81 && proto == Tcp)
    });
}

#[test]
fn s40_ingress_and_egress_pair() {
    let out = policy(
        'x',
        "a-out",
        "podSelector:\n  matchLabels: {pod: a}\npolicyTypes: [Egress]\negress:\n- to:\n  - namespaceSelector:\n      matchLabels: {ns: \"y\"}\n    podSelector:\n      matchLabels: {pod: b}\n  ports:\n  - {port: 80, protocol: TCP}",
    );
    let inn = policy(
        'y',
        "b-in",
        "podSelector:\n  matchLabels: {pod: b}\npolicyTypes: [Ingress]\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels: {ns: x}\n    podSelector:\n      matchLabels: {pod: a}",
    );
    scenario(
        "ingress-egress-pair",
        &[],
        &[out, inn],
        &[],
        |f, t, port, proto| {
            let egress_ok = f != ('x', 'a') || (t == ('y', 'b') && port == 80 && proto == Tcp);
            let ingress_ok = t != ('y', 'b') || f == ('x', 'a');
            egress_ok && ingress_ok
        },
    );
}

#[test]
fn s41_deny_everything_everywhere() {
    let ps: Vec<String> = NS
        .iter()
        .map(|n| {
            policy(
                *n,
                "deny",
                "podSelector: {}\npolicyTypes: [Ingress, Egress]",
            )
        })
        .collect();
    scenario("deny-everywhere", &[], &ps, &[], |_, _, _, _| false);
}

#[test]
fn s42_same_namespace_by_metadata_name_label() {
    let p = policy(
        'y',
        "own",
        "podSelector: {}\ningress:\n- from:\n  - namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: \"y\"",
    );
    scenario("metadata-name", &[], &[p], &[], |f, t, _, _| {
        t.0 != 'y' || f.0 == 'y'
    });
}

#[test]
fn s43_pod_label_in_any_namespace() {
    let p = policy(
        'y',
        "c-anywhere",
        "podSelector: {}\ningress:\n- from:\n  - namespaceSelector: {}\n    podSelector:\n      matchLabels: {pod: c}",
    );
    scenario("pod-in-any-namespace", &[], &[p], &[], |f, t, _, _| {
        t.0 != 'y' || f.1 == 'c'
    });
}

#[test]
fn s44_egress_to_own_namespace_only() {
    let p = policy(
        'z',
        "stay-home",
        "podSelector: {}\npolicyTypes: [Egress]\negress:\n- to:\n  - podSelector: {}",
    );
    scenario("egress-own-namespace", &[], &[p], &[], |f, t, _, _| {
        f.0 != 'z' || t.0 == 'z'
    });
}

#[test]
fn s45_sctp_only() {
    let p = policy(
        'x',
        "sctp",
        "podSelector: {}\ningress:\n- ports:\n  - {port: 80, protocol: SCTP}",
    );
    scenario(
        "sctp",
        &[],
        &[p],
        &[(80, Sctp), (81, Sctp)],
        |_, t, port, proto| t.0 != 'x' || (proto == Sctp && port == 80),
    );
}

#[test]
fn s46_mixed_protocol_ports() {
    let p = policy(
        'x',
        "mixed",
        "podSelector:\n  matchLabels: {pod: c}\ningress:\n- ports:\n  - {port: 80, protocol: TCP}\n  - {port: 81, protocol: UDP}",
    );
    scenario("mixed-ports", &[], &[p], &[], |_, t, port, proto| {
        t != ('x', 'c') || (port == 80 && proto == Tcp) || (port == 81 && proto == Udp)
    });
}
