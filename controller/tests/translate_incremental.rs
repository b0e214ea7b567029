//! Incremental translation == full translation, after every step of random
//! edit sequences (pods added, replaced with other labels, named ports,
//! nodes or addresses, removed; policies added, changed, removed; a pod in
//! a namespace nothing defines; a pod on a node nothing defines) on a small
//! two-tenant generated cluster; an edit the translation rejects leaves
//! objects and model as they were.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use weft_controller::compile::fixture::Spec;
use weft_controller::source::{Manifests, load_str};
use weft_controller::translate::incremental::{Edit, Translator};
use weft_controller::translate::translate;

const SELECTORS: [&str; 6] = [
    "{}",
    "{matchLabels: {app-1: \"1\"}}",
    "{matchLabels: {app-2: \"1\", role: db}}",
    "{matchExpressions: [{key: role, operator: Exists}]}",
    "{matchExpressions: [{key: app-0, operator: In, values: [\"1\"]}]}",
    "{matchExpressions: [{key: role, operator: NotIn, values: [web]}]}",
];

const NS_SELECTORS: [&str; 3] = [
    "{}",
    "{matchLabels: {kubernetes.io/metadata.name: ns-1}}",
    "{matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [ns-0, ns-2]}]}",
];

const PORTS: [&str; 5] = [
    "",
    "[{port: 80}]",
    "[{protocol: TCP, port: http}]",
    "[{protocol: UDP, port: 53}, {protocol: TCP, port: 8000, endPort: 8080}]",
    "[{protocol: UDP}]",
];

#[derive(Debug, Clone)]
enum Op {
    UpsertPod {
        ns: u8,
        pod: u8,
        node: u8,
        app: u8,
        role: u8,
        http: Option<u16>,
        host: Option<u8>,
    },
    DeletePod(u8),
    UpsertPolicy {
        ns: u8,
        pol: u8,
        select: u8,
        peer: Option<(Option<u8>, Option<u8>)>,
        ports: u8,
        egress: bool,
    },
    DeletePolicy {
        ns: u8,
        pol: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5, 0u8..40, 0u8..4, 0u8..4, 0u8..3, proptest::option::of(8000u16..8003), proptest::option::weighted(0.2, 2u8..250))
            .prop_map(|(ns, pod, node, app, role, http, host)| Op::UpsertPod { ns, pod, node, app, role, http, host }),
        2 => (0u8..40).prop_map(Op::DeletePod),
        3 => (0u8..4, 0u8..12, 0u8..6, proptest::option::of((proptest::option::of(0u8..6), proptest::option::of(0u8..3))), 0u8..5, any::<bool>())
            .prop_map(|(ns, pol, select, peer, ports, egress)| Op::UpsertPolicy { ns, pol, select, peer, ports, egress }),
        1 => (0u8..4, 0u8..12).prop_map(|(ns, pol)| Op::DeletePolicy { ns, pol }),
    ]
}

fn one(yaml: &str) -> Manifests {
    load_str("edit.yaml", yaml).unwrap()
}

fn edit(op: &Op) -> Edit {
    match *op {
        Op::UpsertPod {
            ns,
            pod,
            node,
            app,
            role,
            http,
            host,
        } => {
            let role = ["", ", role: db", ", role: web"][role as usize];
            let ports = http.map_or(String::new(), |p| {
                format!(", ports: [{{name: http, containerPort: {p}}}]")
            });
            let status = host.map_or(String::new(), |h| {
                format!("\nstatus: {{podIP: 10.244.{node}.{h}}}")
            });
            let m = one(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: pod-{pod}, namespace: ns-{ns}, labels: {{app-{app}: \"1\"{role}}}}}\nspec: {{nodeName: node-{node}, containers: [{{name: c, image: pause{ports}}}]}}{status}\n"
            ));
            Edit::UpsertPod(Box::new(m.pods.into_iter().next().unwrap()))
        }
        Op::DeletePod(p) => Edit::DeletePod {
            namespace: format!("ns-{}", p % 4),
            name: format!("pod-{p}"),
        },
        Op::UpsertPolicy {
            ns,
            pol,
            select,
            peer,
            ports,
            egress,
        } => {
            let peers = match peer {
                None => String::new(),
                Some((pod, nsel)) => {
                    let mut parts = Vec::new();
                    if let Some(s) = pod {
                        parts.push(format!("podSelector: {}", SELECTORS[s as usize]));
                    }
                    if let Some(s) = nsel {
                        parts.push(format!("namespaceSelector: {}", NS_SELECTORS[s as usize]));
                    }
                    if parts.is_empty() {
                        parts
                            .push("ipBlock: {cidr: 10.244.0.0/16, except: [10.244.1.0/24]}".into());
                    }
                    format!(
                        "{}: [{{{}}}]",
                        if egress { "to" } else { "from" },
                        parts.join(", ")
                    )
                }
            };
            let ports = PORTS[ports as usize];
            let mut rule = Vec::new();
            if !peers.is_empty() {
                rule.push(peers);
            }
            if !ports.is_empty() {
                rule.push(format!("ports: {ports}"));
            }
            let rule = if rule.is_empty() {
                "{}".to_owned()
            } else {
                rule.join("\n    ")
            };
            let (types, dir) = if egress {
                ("[Ingress, Egress]", "egress")
            } else {
                ("[Ingress]", "ingress")
            };
            let m = one(&format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: pol-{pol}, namespace: ns-{ns}}}\nspec:\n  podSelector: {}\n  policyTypes: {types}\n  {dir}:\n  - {rule}\n",
                SELECTORS[select as usize]
            ));
            Edit::UpsertPolicy(Box::new(m.network_policies.into_iter().next().unwrap()))
        }
        Op::DeletePolicy { ns, pol } => Edit::DeletePolicy {
            namespace: format!("ns-{ns}"),
            name: format!("pol-{pol}"),
        },
    }
}

fn base() -> Manifests {
    load_str(
        "base.yaml",
        &Spec::generate(2, 3, 4, 24, 10).manifests_yaml(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_full(ops in proptest::collection::vec(op(), 1..14)) {
        let mut tr = Translator::new(base()).unwrap();
        prop_assert_eq!(tr.translation(), &translate(tr.objects()).unwrap());
        for (step, o) in ops.iter().enumerate() {
            let before = tr.clone();
            match tr.apply(edit(o)) {
                Ok(_) => {
                    let full = translate(tr.objects()).unwrap();
                    prop_assert!(tr.translation() == &full, "step {step} {o:?}: incremental != full");
                }
                Err(e) => {
                    prop_assert_eq!(tr.objects(), before.objects(), "step {} {:?}: {}", step, o, e);
                    prop_assert_eq!(tr.translation(), before.translation());
                }
            }
        }
    }
}

/// An edit the translation rejects (an address another pod holds) names the
/// pod and field, and the translator keeps the previous objects and model.
#[test]
fn rejected_edit_keeps_previous_state() {
    let mut tr = Translator::new(base()).unwrap();
    let before = tr.translation().clone();
    let taken = tr
        .translation()
        .model
        .pod_port("ns-0", "pod-0")
        .unwrap()
        .ips[0];
    let m = one(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: clash, namespace: ns-0}}\nspec: {{nodeName: node-0, containers: [{{name: c, image: pause}}]}}\nstatus: {{podIP: {taken}}}\n"
    ));
    let err = tr
        .apply(Edit::UpsertPod(Box::new(
            m.pods.into_iter().next().unwrap(),
        )))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("clash") && err.contains("status.podIP"),
        "{err}"
    );
    assert_eq!(tr.translation(), &before);
    assert!(
        tr.objects()
            .pods
            .iter()
            .all(|p| p.object.metadata.name.as_deref() != Some("clash"))
    );
}
