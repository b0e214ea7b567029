//! Compiler tests on generated models: every node's table passes switchd's
//! compile, no slot conflicts, goldens of a small fixture, probes through
//! the real pipeline (policy, tenants, spoofing).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use protocol::text::format_flow;
use weft_controller::check::{Cluster, Endpoint};
use weft_controller::compile::fixture::{PeerSpec, PodSpec, PolicySpec, RuleSpec, Spec};
use weft_controller::compile::{CompileConfig, Compiler};
use weft_controller::model::L4Protocol;

fn pod(tenant: usize, ns: &str, name: &str, node: usize, host: u8, label: &str) -> PodSpec {
    PodSpec {
        tenant,
        ns: ns.into(),
        name: name.into(),
        node,
        host,
        labels: [label.to_owned()].into_iter().collect(),
    }
}

/// Two nodes, one tenant, three pods, one policy: web accepts TCP 80 from
/// app=client only.
fn small() -> Spec {
    Spec {
        tenants: vec!["t0".into()],
        nodes: vec!["n1".into(), "n2".into()],
        pods: vec![
            pod(0, "x", "web", 0, 2, "web"),
            pod(0, "x", "client", 0, 3, "client"),
            pod(0, "x", "other", 1, 2, "other"),
        ],
        policies: vec![PolicySpec {
            ns: "x".into(),
            name: "web".into(),
            select: Some("web".into()),
            ingress: vec![RuleSpec {
                peers: Some(vec![PeerSpec::Label("client".into())]),
                ports: vec![(L4Protocol::Tcp, 80, 80)],
            }],
            egress: None,
        }],
    }
}

fn text(c: &Compiler, node: &str) -> String {
    c.flows(node)
        .iter()
        .map(|f| format_flow(f) + "\n")
        .collect()
}

#[test]
fn golden_small_fixture() {
    let m = small().build();
    m.validate().unwrap();
    let c = Compiler::new(m, CompileConfig::default());
    insta::assert_snapshot!("small_n1", text(&c, "n1"));
    insta::assert_snapshot!("small_n2", text(&c, "n2"));
    let cookies: Vec<String> = c
        .cookie_infos("n1")
        .iter()
        .map(|i| {
            format!(
                "{:#018x} {}",
                i.cookie.0,
                weft_controller::compile::cookie::source_of(i)
            )
        })
        .collect();
    insta::assert_snapshot!("small_n1_cookies", cookies.join("\n"));
}

#[test]
fn generated_tables_pass_switchd_and_have_no_conflicts() {
    for spec in [small(), Spec::generate(2, 4, 6, 60, 12)] {
        let m = spec.build();
        m.validate().unwrap();
        let c = Compiler::new(m, CompileConfig::default());
        for n in c.nodes().map(str::to_owned).collect::<Vec<_>>() {
            assert!(c.flow_count(&n) > 0, "{n} has flows");
            let conflicts = c.table(&n).unwrap().conflicts();
            assert!(conflicts.is_empty(), "{n}: {conflicts:?}");
            // Every cookie maps back to a source.
            for f in c.flows(&n) {
                assert!(c.source_of(f.cookie).is_some(), "{n}: {}", format_flow(&f));
            }
        }
        // Cluster::new runs switchd::pipeline::compile on every node.
        Cluster::new(c.model().clone()).unwrap();
    }
}

fn probe(cl: &Cluster, from: &str, to: &str, port: u16, proto: L4Protocol) -> bool {
    cl.probe(
        &Endpoint::parse(from).unwrap(),
        &Endpoint::parse(to).unwrap(),
        port,
        proto,
    )
    .unwrap()
    .allowed
}

#[test]
fn probes_follow_the_policy_across_nodes() {
    let cl = Cluster::new(small().build()).unwrap();
    let tcp = L4Protocol::Tcp;
    assert!(
        probe(&cl, "x/client", "x/web", 80, tcp),
        "same node, allowed"
    );
    assert!(!probe(&cl, "x/client", "x/web", 81, tcp), "wrong port");
    assert!(
        !probe(&cl, "x/client", "x/web", 80, L4Protocol::Udp),
        "wrong protocol"
    );
    assert!(
        !probe(&cl, "x/other", "x/web", 80, tcp),
        "other node, not selected"
    );
    assert!(
        probe(&cl, "x/web", "x/other", 80, tcp),
        "web's egress is open, cross node"
    );
    assert!(
        probe(&cl, "x/web", "x/client", 5000, tcp),
        "client not isolated"
    );
    let p = cl
        .probe(
            &Endpoint::parse("x/client").unwrap(),
            &Endpoint::parse("x/web").unwrap(),
            80,
            tcp,
        )
        .unwrap();
    assert!(
        p.decided_by
            .iter()
            .any(|d| d.contains("NetworkPolicy x/web ingress[0]")),
        "{p:?}"
    );
    let p = cl
        .probe(
            &Endpoint::parse("x/other").unwrap(),
            &Endpoint::parse("x/web").unwrap(),
            80,
            tcp,
        )
        .unwrap();
    assert_eq!(
        p.nodes,
        vec!["n2".to_owned(), "n1".to_owned()],
        "tunnel hop walked"
    );
    assert!(
        p.decided_by
            .iter()
            .any(|d| d.contains("NetworkPolicy x/web")),
        "{p:?}"
    );
}

/// Two tenants, the same pod CIDR and the same pod addresses.
fn two_tenants() -> Spec {
    Spec {
        tenants: vec!["blue".into(), "red".into()],
        nodes: vec!["n1".into(), "n2".into()],
        pods: vec![
            pod(0, "blue", "a", 0, 2, "a"),
            pod(0, "blue", "b", 1, 2, "b"),
            pod(1, "red", "a", 0, 3, "a"),
            pod(1, "red", "b", 1, 3, "b"),
            // Same address as blue/a, on the other tenant.
            pod(1, "red", "twin", 0, 2, "t"),
        ],
        policies: Vec::new(),
    }
}

#[test]
fn tenants_with_overlapping_cidrs_cannot_reach_each_other() {
    let spec = two_tenants();
    let cl = Cluster::new(spec.build()).unwrap();
    let m = cl.matrix(80, L4Protocol::Tcp).unwrap();
    for (i, from) in m.pods.iter().enumerate() {
        for (j, to) in m.pods.iter().enumerate() {
            let same = from.split('/').next() == to.split('/').next();
            assert_eq!(m.cells[i][j], same, "{from} -> {to}\n{}", m.to_text());
        }
    }
    // red/twin has blue/a's address: probing "10.244.0.2" from red/b reaches
    // red/twin, never blue/a (the address is looked up in red's router).
    let (p, traces) = cl
        .trace(
            &Endpoint::parse("red/b").unwrap(),
            &Endpoint::parse("red/twin").unwrap(),
            80,
            L4Protocol::Tcp,
        )
        .unwrap();
    assert!(p.allowed);
    let blue_a = cl.model().pod_port("blue", "a").unwrap();
    let all: String = traces.iter().map(|t| t.text.clone()).collect();
    assert!(
        !all.contains(&format!("output:{}", blue_a.id.0)),
        "never delivered to blue/a:\n{all}"
    );
}

#[test]
fn spoofed_source_is_dropped_by_port_security() {
    use weft_switchd::buf::PacketBuf;
    use weft_switchd::pipeline::{CollectSink, NoTrace, WorkerState, packet::packet_from_key};
    let spec = two_tenants();
    let m = spec.build();
    let c = Compiler::new(m.clone(), CompileConfig::default());
    let red_a = m.pod_port("red", "a").unwrap();
    let red_twin = m.pod_port("red", "twin").unwrap();
    let blue_a = m.pod_port("blue", "a").unwrap();
    let cfg = weft_controller::check::node_config(&m, "n1", &CompileConfig::default());
    let pl = weft_switchd::pipeline::compile(&c.flows("n1"), cfg).unwrap();
    let send = |src_mac, src_ip: std::net::IpAddr, dst_mac, dst_ip: std::net::IpAddr| {
        let mut k = protocol::flow::FlowKey::default();
        k.set_dl_src(src_mac);
        k.set_dl_dst(dst_mac);
        k.set_dl_type(0x0800);
        let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (src_ip, dst_ip) else {
            panic!()
        };
        k.set_nw_src(s);
        k.set_nw_dst(d);
        k.set_nw_ttl(64);
        k.set_nw_proto(6);
        k.set_tp_dst(80);
        let mut buf = PacketBuf::from_slice(&packet_from_key(&k));
        let mut ws = WorkerState::new(pl.config());
        let mut out = CollectSink::default();
        pl.process(
            &mut buf,
            weft_controller::compile::units::ofport(red_a.id),
            0,
            &mut ws,
            &mut out,
            &mut NoTrace,
        );
        out.outputs.len()
    };
    // Honest packet from red/a to red/twin (same switch): delivered.
    assert_eq!(
        send(red_a.mac, red_a.ips[0], red_twin.mac, red_twin.ips[0]),
        1
    );
    // red/a spoofing blue/a's MAC, or its address, or both: dropped.
    assert_eq!(
        send(blue_a.mac, red_a.ips[0], red_twin.mac, red_twin.ips[0]),
        0
    );
    assert_eq!(
        send(red_a.mac, blue_a.ips[0], red_twin.mac, red_twin.ips[0]),
        0
    );
    // red/a sending to blue/a's MAC: not in red's switch, dropped.
    assert_eq!(send(red_a.mac, red_a.ips[0], blue_a.mac, blue_a.ips[0]), 0);
}

#[test]
fn cookie_table_covers_every_flow() {
    let c = Compiler::new(
        Spec::generate(1, 3, 3, 20, 5).build(),
        CompileConfig::default(),
    );
    for n in c.nodes().map(str::to_owned).collect::<Vec<_>>() {
        let infos: BTreeSet<u64> = c.cookie_infos(&n).iter().map(|i| i.cookie.0).collect();
        for f in c.flows(&n) {
            assert!(infos.contains(&f.cookie.0), "{}", format_flow(&f));
        }
    }
}

/// The stateless return traffic of a port-less rule, through the real
/// pipeline (compiled flows loaded into switchd): x/a is isolated both
/// ways and may send anything to namespace y. Back from y/a: ICMP echo
/// replies and errors and TCP segments with ACK pass; an echo request, a
/// TCP SYN, UDP and SCTP do not (before the fix, all of them passed).
#[test]
fn portless_rule_return_traffic_through_the_pipeline() {
    use weft_switchd::buf::PacketBuf;
    use weft_switchd::pipeline::{CollectSink, NoTrace, WorkerState, packet::packet_from_key};
    let text = "\
apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.244.1.0/24}\nstatus: {addresses: [{type: InternalIP, address: 192.0.2.1}]}\n---\n\
apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: {ns: x}}\n---\n\
apiVersion: v1\nkind: Namespace\nmetadata: {name: \"y\", labels: {ns: \"y\"}}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {pod: a}}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {podIP: 10.244.1.10}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: \"y\", labels: {pod: a}}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {podIP: 10.244.1.11}\n---\n\
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: a}}\n  egress: [{to: [{namespaceSelector: {matchLabels: {ns: \"y\"}}}]}]\n";
    let manifests = weft_controller::source::load_str("t.yaml", text).unwrap();
    let m = weft_controller::translate::translate(&manifests)
        .unwrap()
        .model;
    let c = Compiler::new(m.clone(), CompileConfig::default());
    let cfg = weft_controller::check::node_config(&m, "n1", &CompileConfig::default());
    let pl = weft_switchd::pipeline::compile(&c.flows("n1"), cfg).unwrap();
    let (xa, ya) = (m.pod_port("x", "a").unwrap(), m.pod_port("y", "a").unwrap());
    // (from, to, nw_proto, tp_src/icmp type, tp_dst/icmp code, tcp flags)
    let send = |from: &weft_controller::model::LogicalPort,
                to: &weft_controller::model::LogicalPort,
                proto: u8,
                src: u16,
                dst: u16,
                flags: u16| {
        let mut k = protocol::flow::FlowKey::default();
        k.set_dl_src(from.mac);
        k.set_dl_dst(to.mac);
        k.set_dl_type(0x0800);
        let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) = (from.ips[0], to.ips[0]) else {
            panic!()
        };
        k.set_nw_src(s);
        k.set_nw_dst(d);
        k.set_nw_ttl(64);
        k.set_nw_proto(proto);
        k.set_tp_src(src);
        k.set_tp_dst(dst);
        k.set_tcp_flags(flags);
        let mut buf = PacketBuf::from_slice(&packet_from_key(&k));
        let mut ws = WorkerState::new(pl.config());
        let mut out = CollectSink::default();
        pl.process(
            &mut buf,
            weft_controller::compile::units::ofport(from.id),
            0,
            &mut ws,
            &mut out,
            &mut NoTrace,
        );
        out.outputs
            .iter()
            .any(|(p, _)| *p == weft_controller::compile::units::ofport(to.id))
    };
    let (tcp, udp, sctp, icmp) = (6, 17, 132, 1);
    // Forward: anything from x/a to y/a.
    assert!(send(xa, ya, icmp, 8, 0, 0), "echo request out");
    assert!(send(xa, ya, tcp, 40000, 80, 0x002), "SYN out");
    assert!(send(xa, ya, udp, 40000, 53, 0), "UDP out");
    // Back: replies and errors.
    assert!(send(ya, xa, icmp, 0, 0, 0), "echo reply");
    assert!(send(ya, xa, icmp, 3, 4, 0), "fragmentation needed");
    assert!(send(ya, xa, icmp, 11, 0, 0), "time exceeded");
    assert!(send(ya, xa, tcp, 80, 40000, 0x012), "SYN+ACK");
    assert!(send(ya, xa, tcp, 80, 40000, 0x010), "ACK");
    // Back: nothing that opens anything.
    assert!(!send(ya, xa, icmp, 8, 0, 0), "echo request in");
    assert!(!send(ya, xa, icmp, 5, 0, 0), "redirect in");
    assert!(!send(ya, xa, tcp, 40000, 80, 0x002), "SYN in");
    assert!(
        !send(ya, xa, udp, 53, 40000, 0),
        "UDP in (no port anchors it)"
    );
    assert!(!send(ya, xa, sctp, 80, 40000, 0), "SCTP in");
}

/// The full compile fills node tables on several threads: the tables, the
/// cookie tables and what a later update changes do not depend on the
/// thread count (fixture model and the model translated from its
/// manifests, with return-traffic ACLs).
#[test]
fn full_compile_is_the_same_on_one_and_many_threads() {
    let translated = |s: &Spec| {
        let all = weft_controller::source::load_str("gen.yaml", &s.manifests_yaml()).unwrap();
        weft_controller::translate::translate(&all).unwrap().model
    };
    let spec = Spec::generate(1, 5, 6, 80, 12);
    let mut next = spec.clone();
    next.pods.push(pod(0, "ns-1", "pod-new", 2, 250, "app-1"));
    next.pods.remove(7);
    for (m, m2) in [
        (spec.build(), next.build()),
        (translated(&spec), translated(&next)),
    ] {
        let cfg = CompileConfig::default();
        let one = Compiler::with_threads(m.clone(), cfg.clone(), 1);
        let flows: usize = one.nodes().map(|n| one.flow_count(n)).sum();
        assert!(flows > 1000, "a real table: {flows} flows");
        for threads in [2, 4, 64] {
            let many = Compiler::with_threads(m.clone(), cfg.clone(), threads);
            let nodes: Vec<&str> = one.nodes().collect();
            assert_eq!(nodes, many.nodes().collect::<Vec<_>>());
            for n in &nodes {
                assert_eq!(one.flows(n), many.flows(n), "node {n}, {threads} threads");
                assert_eq!(one.cookie_infos(n), many.cookie_infos(n));
                assert!(many.table(n).unwrap().conflicts().is_empty());
            }
            // The per-unit bookkeeping too: the same update, the same diff.
            let (mut a, mut b) = (one.clone(), many);
            assert_eq!(a.update(m2.clone()), b.update(m2.clone()));
        }
    }
}
