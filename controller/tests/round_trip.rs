//! Round trips through the real switchd pipelines (`check::Cluster::round_trip`):
//! the forward probe (Kubernetes' answer: the first packet of a connection)
//! and the destination's reply (ICMP echo reply, UDP from the served port,
//! TCP SYN+ACK) through the stateless return-traffic ACLs, across a tunnel
//! hop. Each case names where Weft's stateless answer and Kubernetes'
//! connection semantics agree or differ (module doc of `check`).

#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use weft_controller::check::{Cluster, Endpoint, Service};
use weft_controller::model::L4Protocol;
use weft_controller::source::load_str;
use weft_controller::translate::translate;

/// Namespace `x`, pods `a` (node n1), `b` (node n2), `c` (node n1).
const PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.244.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec:
  nodeName: n2
  containers: [{name: c, image: i, ports: [{name: dns, containerPort: 53, protocol: UDP}]}]
status: {podIP: 10.244.0.12}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: x, labels: {app: c}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {podIP: 10.244.0.13}
"#;

fn cluster(policies: &str) -> Cluster {
    let text = format!("{PODS}---\n{policies}");
    let m = load_str("test.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let model = translate(&m).unwrap_or_else(|e| panic!("{e}")).model;
    Cluster::new(model).unwrap()
}

fn pod(s: &str) -> Endpoint {
    Endpoint::parse(s).unwrap()
}

const UDP53: Service = Service::L4(L4Protocol::Udp, 53);
const TCP80: Service = Service::L4(L4Protocol::Tcp, 80);

/// (forward allowed, reply sent and allowed, round trip allowed)
fn rt(cl: &Cluster, from: &str, to: &str, s: Service) -> (bool, Option<bool>, bool) {
    let r = cl
        .round_trip(&pod(from), &pod(to), s, false)
        .unwrap()
        .round_trip;
    (
        r.forward.allowed,
        r.reply.as_ref().map(|p| p.allowed),
        r.allowed,
    )
}

#[test]
fn no_policy_every_round_trip_passes_across_the_tunnel() {
    let cl = cluster("");
    for s in [
        Service::Ping,
        UDP53,
        TCP80,
        Service::L4(L4Protocol::Sctp, 9),
    ] {
        assert_eq!(rt(&cl, "x/a", "x/b", s), (true, Some(true), true), "{s}");
        assert_eq!(rt(&cl, "x/b", "x/a", s), (true, Some(true), true), "{s}");
    }
    // The reply walked back from b's node (n2) to a's (n1).
    let r = cl
        .round_trip(&pod("x/a"), &pod("x/b"), Service::Ping, true)
        .unwrap();
    let reply = r.round_trip.reply.unwrap();
    assert_eq!(reply.nodes, ["n2", "n1"]);
    assert_eq!(reply.delivered_to, ["x/a"]);
    assert_eq!(r.forward.len(), 2);
    assert_eq!(r.reply.len(), 2);
    // The traces show an echo request going out and an echo reply back.
    assert!(
        r.forward[0].text.contains("icmp_type=8"),
        "{}",
        r.forward[0].text
    );
    assert!(
        r.reply[0].text.contains("icmp_type=0"),
        "{}",
        r.reply[0].text
    );
}

#[test]
fn loopback_needs_no_reply() {
    let cl = cluster(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n",
    );
    assert_eq!(rt(&cl, "x/a", "x/a", Service::Ping), (true, None, true));
}

/// `a` isolated for ingress only: it still opens connections. Kubernetes
/// allows every reply; Weft's `return-open-egress` (the return traffic of
/// a's open egress) lets TCP with ACK and
/// ICMP echo replies back in, not UDP.
#[test]
fn ingress_isolated_client_gets_tcp_and_ping_replies_not_udp() {
    let cl = cluster(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a-deny-in, namespace: x}\nspec: {podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress]}\n",
    );
    assert_eq!(rt(&cl, "x/a", "x/b", TCP80), (true, Some(true), true));
    assert_eq!(
        rt(&cl, "x/a", "x/b", Service::Ping),
        (true, Some(true), true)
    );
    // The echo reply came in by the return traffic of a's open egress
    // (`return-open-egress`), named.
    let r = cl
        .round_trip(&pod("x/a"), &pod("x/b"), Service::Ping, false)
        .unwrap()
        .round_trip;
    assert!(
        r.reply
            .as_ref()
            .unwrap()
            .decided_by
            .iter()
            .any(|d| d.ends_with("on n1: Infrastructure x/return-open-egress")),
        "{r:?}"
    );
    // Where Weft differs from Kubernetes: the first datagram passes, the
    // answer is dropped by a's isolation.
    let r = cl
        .round_trip(&pod("x/a"), &pod("x/b"), UDP53, false)
        .unwrap()
        .round_trip;
    assert!(r.forward.allowed && !r.allowed);
    let reply = r.reply.unwrap();
    assert!(!reply.allowed);
    assert_eq!(reply.nodes, ["n2", "n1"]);
    assert!(reply.delivered_to.is_empty(), "{:?}", reply.delivered_to);
    // Stopped at a's node by a's ingress isolation.
    assert!(
        reply
            .decided_by
            .iter()
            .any(|d| d.contains("on n1: Infrastructure x/isolation-ingress")),
        "{:?}",
        reply.decided_by
    );
    // Toward a: nothing passes at all.
    for s in [Service::Ping, UDP53, TCP80] {
        assert_eq!(rt(&cl, "x/b", "x/a", s), (false, None, false), "{s}");
    }
}

/// `b` isolated both ways, ingress rule "UDP dns from a": the datagram
/// passes and the answer from port 53 returns (`return-local`); ping is
/// not in the rule: the request is dropped, no reply is tried.
#[test]
fn udp_rule_returns_answers_from_its_port_only() {
    let cl = cluster(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{port: dns, protocol: UDP}]
"#,
    );
    assert_eq!(rt(&cl, "x/a", "x/b", UDP53), (true, Some(true), true));
    assert_eq!(rt(&cl, "x/c", "x/b", UDP53), (false, None, false));
    assert_eq!(
        rt(&cl, "x/a", "x/b", Service::L4(L4Protocol::Udp, 54)),
        (false, None, false)
    );
    assert_eq!(rt(&cl, "x/a", "x/b", Service::Ping), (false, None, false));
    assert_eq!(rt(&cl, "x/a", "x/b", TCP80), (false, None, false));
}

/// A port-less rule allows ICMP echo requests; its return traffic has
/// echo replies but no UDP: ping round-trips, UDP does not (Kubernetes
/// would allow the UDP answer).
#[test]
fn portless_rule_round_trips_ping_but_not_udp() {
    let cl = cluster(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-a, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
"#,
    );
    assert_eq!(
        rt(&cl, "x/a", "x/b", Service::Ping),
        (true, Some(true), true)
    );
    assert_eq!(rt(&cl, "x/a", "x/b", TCP80), (true, Some(true), true));
    assert_eq!(rt(&cl, "x/a", "x/b", UDP53), (true, Some(false), false));
    assert_eq!(rt(&cl, "x/c", "x/b", Service::Ping), (false, None, false));
}

#[test]
fn round_trip_matrix_agrees_with_single_round_trips() {
    let cl = cluster(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a-deny-in, namespace: x}\nspec: {podSelector: {matchLabels: {app: a}}, policyTypes: [Ingress]}\n",
    );
    for s in [Service::Ping, UDP53, TCP80] {
        let rtm = cl.matrix_of(s, true).unwrap();
        let fwd = cl.matrix_of(s, false).unwrap();
        assert_eq!(rtm.pods, ["x/a", "x/b", "x/c"]);
        for (i, f) in rtm.pods.iter().enumerate() {
            for (j, t) in rtm.pods.iter().enumerate() {
                let (fa, _, ra) = rt(&cl, f, t, s);
                assert_eq!(rtm.cells[i][j], ra, "{s} {f} -> {t}");
                assert_eq!(fwd.cells[i][j], fa, "{s} {f} -> {t}");
            }
        }
    }
    // The one place they differ here: UDP out of the ingress-isolated pod.
    let u = cl.matrix_of(UDP53, true).unwrap();
    let f = cl.matrix_of(UDP53, false).unwrap();
    assert!(f.cells[0][1] && !u.cells[0][1]);
    assert_eq!(cl.matrix(53, L4Protocol::Udp).unwrap(), f);
}

#[test]
fn service_parse() {
    assert_eq!(Service::parse("icmp"), Ok(Service::Ping));
    assert_eq!(Service::parse("PING"), Ok(Service::Ping));
    assert_eq!(Service::parse("UDP/53"), Ok(UDP53));
    assert_eq!(Service::parse("tcp/80"), Ok(TCP80));
    assert!(Service::parse("icmp/8").unwrap_err().contains("no port"));
    assert!(Service::parse("gre/1").unwrap_err().contains("gre"));
    assert!(Service::parse("tcp/x").unwrap_err().contains("port"));
    assert!(Service::parse("tcp").is_err());
    assert_eq!(UDP53.to_string(), "udp/53");
    assert_eq!(Service::Ping.to_string(), "icmp");
}
