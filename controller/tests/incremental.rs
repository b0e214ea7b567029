//! Incremental compile == full compile, after every step of random change
//! sequences (pod add/remove/relabel, policy add/change/remove, namespace
//! relabel, node add), and the per-node diffs turn the old tables into the
//! new ones.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use protocol::flow::FlowSpec;
use weft_controller::compile::assemble::Slot;
use weft_controller::compile::fixture::{PeerSpec, PodSpec, PolicySpec, RuleSpec, Spec};
use weft_controller::compile::units::{Derived, UnitKey};
use weft_controller::compile::{CompileConfig, Compiler, NodeDiff};
use weft_controller::model::{L4Protocol, ModelDelta};

#[derive(Debug, Clone)]
enum Change {
    AddPod {
        ns: u8,
        node: u8,
        label: u8,
    },
    RemovePod(u8),
    Relabel {
        pod: u8,
        label: u8,
    },
    AddPolicy {
        ns: u8,
        select: u8,
        from: u8,
        port: u16,
        egress: bool,
    },
    EditPolicy {
        idx: u8,
        from: u8,
        port: u16,
    },
    RemovePolicy(u8),
    /// Every pod of a namespace moves to another label (what a namespace
    /// relabel does to namespaceSelector peers, in this fixture's terms).
    RelabelNamespace {
        ns: u8,
        label: u8,
    },
    AddNode,
    /// A pod moves to another node (same address on the new node's
    /// subnet host number): its port-group clause flows move with it and
    /// the ACLs it is selected by may gain or lose a node.
    MovePod {
        pod: u8,
        node: u8,
    },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..3u8, 0..4u8, 0..4u8).prop_map(|(ns, node, label)| Change::AddPod { ns, node, label }),
        2 => any::<u8>().prop_map(Change::RemovePod),
        2 => (any::<u8>(), 0..4u8).prop_map(|(pod, label)| Change::Relabel { pod, label }),
        2 => (0..3u8, 0..4u8, 0..4u8, 79..83u16, any::<bool>()).prop_map(|(ns, select, from, port, egress)| {
            Change::AddPolicy { ns, select, from, port, egress }
        }),
        2 => (any::<u8>(), 0..4u8, 79..83u16).prop_map(|(idx, from, port)| Change::EditPolicy { idx, from, port }),
        1 => any::<u8>().prop_map(Change::RemovePolicy),
        1 => (0..3u8, 0..4u8).prop_map(|(ns, label)| Change::RelabelNamespace { ns, label }),
        1 => Just(Change::AddNode),
        1 => (any::<u8>(), 0..4u8).prop_map(|(pod, node)| Change::MovePod { pod, node }),
    ]
}

fn apply(s: &mut Spec, c: &Change, serial: &mut u32) {
    *serial += 1;
    let label = |l: u8| format!("l{l}");
    match c {
        Change::AddPod { ns, node, label: l } => {
            let node = usize::from(*node) % s.nodes.len();
            let used: Vec<u8> = s
                .pods
                .iter()
                .filter(|p| p.node == node)
                .map(|p| p.host)
                .collect();
            let Some(host) = (2..=254u8).find(|h| !used.contains(h)) else {
                return;
            };
            s.pods.push(PodSpec {
                tenant: usize::from(*ns) % s.tenants.len(),
                ns: format!("ns{ns}"),
                name: format!("p{serial}"),
                node,
                host,
                labels: [label(*l)].into_iter().collect(),
            });
        }
        Change::RemovePod(i) => {
            if !s.pods.is_empty() {
                let i = usize::from(*i) % s.pods.len();
                s.pods.remove(i);
            }
        }
        Change::Relabel { pod, label: l } => {
            if !s.pods.is_empty() {
                let i = usize::from(*pod) % s.pods.len();
                s.pods[i].labels = [label(*l)].into_iter().collect();
            }
        }
        Change::AddPolicy {
            ns,
            select,
            from,
            port,
            egress,
        } => s.policies.push(PolicySpec {
            ns: format!("ns{ns}"),
            name: format!("pol{serial}"),
            select: Some(label(*select)),
            ingress: vec![RuleSpec {
                peers: Some(vec![
                    PeerSpec::Label(label(*from)),
                    PeerSpec::Namespace(format!("ns{}", (ns + 1) % 3)),
                ]),
                ports: vec![(L4Protocol::Tcp, *port, port + 1)],
            }],
            egress: egress.then(|| {
                vec![RuleSpec {
                    peers: None,
                    ports: vec![(L4Protocol::Udp, 53, 53)],
                }]
            }),
        }),
        Change::EditPolicy { idx, from, port } => {
            if !s.policies.is_empty() {
                let i = usize::from(*idx) % s.policies.len();
                s.policies[i].ingress = vec![RuleSpec {
                    peers: Some(vec![PeerSpec::Label(label(*from))]),
                    ports: vec![(L4Protocol::Tcp, *port, *port)],
                }];
            }
        }
        Change::RemovePolicy(i) => {
            if !s.policies.is_empty() {
                let i = usize::from(*i) % s.policies.len();
                s.policies.remove(i);
            }
        }
        Change::RelabelNamespace { ns, label: l } => {
            for p in s.pods.iter_mut().filter(|p| p.ns == format!("ns{ns}")) {
                p.labels = [label(*l)].into_iter().collect();
            }
        }
        Change::AddNode => {
            let n = s.nodes.len();
            s.nodes.push(format!("n{n}"));
        }
        Change::MovePod { pod, node } => {
            if !s.pods.is_empty() {
                let i = usize::from(*pod) % s.pods.len();
                let node = usize::from(*node) % s.nodes.len();
                let used: Vec<u8> = s
                    .pods
                    .iter()
                    .filter(|p| p.node == node)
                    .map(|p| p.host)
                    .collect();
                if let Some(host) = (2..=254u8).find(|h| !used.contains(h)) {
                    s.pods[i].node = node;
                    s.pods[i].host = host;
                }
            }
        }
    }
}

fn tables(c: &Compiler) -> BTreeMap<String, Vec<FlowSpec>> {
    c.nodes().map(|n| (n.to_owned(), c.flows(n))).collect()
}

fn apply_diff(old: &[FlowSpec], d: &NodeDiff) -> Vec<FlowSpec> {
    let mut m: BTreeMap<Slot, FlowSpec> = old.iter().map(|f| (Slot::of(f), f.clone())).collect();
    for f in &d.deletes {
        assert!(m.remove(&Slot::of(f)).is_some(), "delete of a missing flow");
    }
    for f in &d.modifies {
        assert!(
            m.insert(Slot::of(f), f.clone()).is_some(),
            "modify of a missing flow"
        );
    }
    for f in &d.adds {
        assert!(
            m.insert(Slot::of(f), f.clone()).is_none(),
            "add over an existing flow"
        );
    }
    m.into_values().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn incremental_equals_full(changes in proptest::collection::vec(change(), 1..12)) {
        let mut spec = Spec::generate(2, 3, 3, 12, 3);
        let cfg = CompileConfig::default();
        let mut inc = Compiler::new(spec.build(), cfg.clone());
        // The same steps through `update_with` with a delta naming more
        // than changed (every port and ACL of both models): allowed, and
        // must give the same tables.
        let mut wide = inc.clone();
        let mut serial = 0;
        for c in &changes {
            let before = tables(&inc);
            apply(&mut spec, c, &mut serial);
            let model = spec.build();
            model.validate().unwrap();
            let mut delta = ModelDelta::between(wide.model(), &model);
            delta.ports.extend(wide.model().ports.keys().chain(model.ports.keys()));
            delta.acls.extend(wide.model().acls.keys().chain(model.acls.keys()));
            // Without the set members (the compiler compares the sets):
            // `inc.update` covers the path with them.
            delta.set_members.clear();
            let diffs = inc.update(model.clone());
            // The patched derived facts equal the ones computed afresh.
            prop_assert_eq!(inc.derived(), &Derived::of(&model), "after {:?}", c);
            let (wide_diffs, _old) = wide.update_with(model.clone(), &delta);
            prop_assert_eq!(&wide_diffs, &diffs, "update_with after {:?}", c);
            let full = Compiler::new(model, cfg.clone());
            let (got, want) = (tables(&inc), tables(&full));
            prop_assert_eq!(&got, &want, "after {:?}", c);
            prop_assert_eq!(&tables(&wide), &want, "update_with after {:?}", c);
            // The diffs turn every old table into the new one.
            for (node, new) in &want {
                let old = before.get(node).cloned().unwrap_or_default();
                let d = diffs.get(node).cloned().unwrap_or_default();
                prop_assert_eq!(&apply_diff(&old, &d), new, "diff of {} after {:?}", node, c);
            }
        }
    }
}

/// A pod add touches only the new pod's unit and, for the ACLs whose port
/// group or peers it joins, the member units of its address and port (set
/// membership, not the ACLs), and the diff is only on its node plus the
/// nodes of those ACLs' ports.
#[test]
fn one_pod_add_recompiles_only_what_it_affects() {
    let mut spec = Spec::generate(1, 5, 5, 100, 20);
    let mut c = Compiler::new(spec.build(), CompileConfig::default());
    // Label app-3 in ns-0: in the peer sets of the policies whose rule
    // allows app-3 (by label, any namespace) and of those allowing ns-0.
    spec.pods.push(PodSpec {
        tenant: 0,
        ns: "ns-0".into(),
        name: "p1001".into(),
        node: 1,
        host: 250,
        labels: ["app-3".to_owned()].into_iter().collect(),
    });
    let diffs = c.update(spec.build());
    let rec = c.recompiled();
    assert!(rec.iter().any(|u| matches!(u, UnitKey::Port(_))), "{rec:?}");
    assert!(rec.len() <= 8, "only a few units recompiled: {rec:?}");
    // Only member units of the new pod's address (no ACL recompiled), and
    // the switch and router of its node (their node sets may grow).
    let ip = c
        .model()
        .ports
        .values()
        .find(|p| p.name.ends_with("p1001"))
        .map(|p| (p.id, p.ips.clone()))
        .unwrap();
    for u in rec {
        match u {
            UnitKey::Port(p) => assert_eq!(*p, ip.0),
            UnitKey::AclPeer(_, net) => assert!(ip.1.iter().any(|a| net.contains(a)), "{u:?}"),
            UnitKey::AclPort(_, p) => assert_eq!(*p, ip.0),
            UnitKey::Switch(_) | UnitKey::Router(_) => {}
            other => panic!("unexpected unit {other:?} in {rec:?}"),
        }
    }
    assert!(
        rec.iter().any(|u| matches!(u, UnitKey::AclPeer(..))),
        "the pod joins the namespace peer sets: {rec:?}"
    );
    assert!(!diffs.is_empty());
    // Nothing changed: nothing recompiled, no diff.
    let diffs = c.update(spec.build());
    assert!(c.recompiled().is_empty() && diffs.is_empty());
}
