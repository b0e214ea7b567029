//! Loader and translation errors: each bad-manifest case gets an error that
//! names file, document, object and field; nothing panics.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use weft_controller::source::{LoadErrorKind, MAX_FILE_BYTES, load_path, load_str};
use weft_controller::translate::{load_model, translate};

fn err(text: &str) -> String {
    match load_str("bad.yaml", text).and_then(|m| translate(&m)) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\nspec: {nodeName: n1, containers: [{name: c, image: i}]}\n";

#[test]
fn unknown_kind() {
    let e = err(&format!(
        "{POD}---\napiVersion: v1\nkind: ConfigMapp\nmetadata: {{name: cm}}\n"
    ));
    assert!(
        e.starts_with("bad.yaml: document 1: ConfigMapp cm: unknown kind \"ConfigMapp\""),
        "{e}"
    );
}

#[test]
fn bad_cidr() {
    let e =
        err("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.244.0.0/33}\n");
    assert_eq!(
        e,
        "bad.yaml: document 0: Node n1: spec.podCIDR: \"10.244.0.0/33\" is not a CIDR (e.g. 10.244.0.0/16)"
    );
    let e = err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]\n",
    );
    assert!(e.contains("NetworkPolicy ns/p: spec.ingress[0].from[0].ipBlock.except[0]: 11.0.0.0/16 is not strictly inside 10.0.0.0/8"), "{e}");
}

#[test]
fn selector_syntax_error() {
    let e = err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}\n",
    );
    assert!(e.contains("NetworkPolicy ns/p: spec.podSelector.matchExpressions[0].operator: unknown operator \"Equals\""), "{e}");
    let e = err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  podSelector: {}\n  egress: [{to: [{namespaceSelector: {matchExpressions: [{key: env, operator: In}]}}]}]\n",
    );
    assert!(e.contains("spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values: operator In needs at least one value"), "{e}");
}

#[test]
fn missing_fields() {
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {namespace: ns}\nspec: {containers: []}\n");
    assert!(
        e.contains("metadata.name: required field is missing"),
        "{e}"
    );
    let e = err(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ns}\n",
    );
    assert!(
        e.ends_with("NetworkPolicy ns/p: spec: required field is missing"),
        "{e}"
    );
    let e = err(
        "apiVersion: weft.dev/v1alpha1\nkind: Subnet\nmetadata: {name: s}\nspec: {tenant: default}\n",
    );
    assert!(e.contains("Subnet s: spec: missing field `cidr`"), "{e}");
    let e = err("kind: Pod\nmetadata: {name: p}\n");
    assert!(e.contains("apiVersion and kind"), "{e}");
}

#[test]
fn wrong_types_and_unknown_crd_fields() {
    let e = err(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: eighty}]}]}\n",
    );
    assert!(
        e.contains("Pod default/p: spec.containers[0].ports[0].containerPort:"),
        "{e}"
    );
    let e = err(
        "apiVersion: weft.dev/v1alpha1\nkind: Tenant\nmetadata: {name: t}\nspec: {namespaces: [], cidrs: [], cidr: 10.0.0.0/8}\n",
    );
    assert!(
        e.contains("Tenant t: spec.cidr: unknown field `cidr`"),
        "{e}"
    );
}

#[test]
fn bad_ports_and_policy_types() {
    let np = |s: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  podSelector: {{}}\n{s}"
        )
    };
    assert!(
        err(&np("  ingress: [{ports: [{port: 90, endPort: 80}]}]\n"))
            .contains("spec.ingress[0].ports[0].endPort: 80 is below port 90")
    );
    assert!(
        err(&np("  ingress: [{ports: [{port: http, endPort: 80}]}]\n"))
            .contains("endPort cannot be used with a named port")
    );
    assert!(
        err(&np("  ingress: [{ports: [{port: 70000}]}]\n"))
            .contains("spec.ingress[0].ports[0].port: 70000 is not a port")
    );
    assert!(
        err(&np("  ingress: [{ports: [{protocol: ICMP}]}]\n"))
            .contains("spec.ingress[0].ports[0].protocol: unknown protocol \"ICMP\"")
    );
    assert!(
        err(&np("  policyTypes: [Inbound]\n"))
            .contains("spec.policyTypes[0]: \"Inbound\" is not Ingress or Egress")
    );
    assert!(
        err(&np("  ingress: [{from: [{}]}]\n")).contains("spec.ingress[0].from[0]: a peer needs")
    );
}

#[test]
fn conflicts() {
    let e = err(&format!("{POD}---\n{POD}"));
    assert!(
        e.contains("document 1: Pod ns/p: metadata.name: Pod defined twice"),
        "{e}"
    );
    let e = err(
        "apiVersion: weft.dev/v1alpha1\nkind: Tenant\nmetadata: {name: a}\nspec: {namespaces: [nn], cidrs: []}\n---\napiVersion: weft.dev/v1alpha1\nkind: Tenant\nmetadata: {name: b}\nspec: {namespaces: [nn], cidrs: []}\n",
    );
    assert!(
        e.contains("Tenant b: spec.namespaces[0]: namespace nn already belongs to tenant a"),
        "{e}"
    );
    let two = format!(
        "{POD}status: {{podIP: 10.244.0.5}}\n---\n{}status: {{podIP: 10.244.0.5}}\n",
        POD.replace("name: p,", "name: q,")
    );
    assert!(err(&two).contains("10.244.0.5 is already used by pod ns/p"));
}

#[test]
fn bad_yaml_and_non_objects() {
    assert!(err("a: [unclosed\n").starts_with("bad.yaml: not valid YAML"));
    assert!(
        err("- 1\n- 2\n")
            .contains("document 0: not a Kubernetes object: the document is not a mapping")
    );
}

#[test]
fn ten_megabyte_file_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.yaml");
    std::fs::write(&f, vec![b'#'; 10 << 20]).unwrap();
    let e = load_path(&f).unwrap_err();
    assert_eq!(e.kind, LoadErrorKind::TooLarge { size: 10 << 20 });
    assert!(
        e.to_string()
            .contains("big.yaml: file is 10485760 bytes, larger than the 8388608-byte limit"),
        "{e}"
    );
    assert!(load_str("m", &"#".repeat(MAX_FILE_BYTES as usize + 1)).is_err());
}

#[test]
fn directory_reads_yaml_and_yml_only_and_list_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), POD).unwrap();
    std::fs::write(dir.path().join("b.yml"), "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: ns}\n").unwrap();
    std::fs::write(dir.path().join("c.txt"), "not yaml: [").unwrap();
    let m = load_path(dir.path()).unwrap();
    assert_eq!((m.pods.len(), m.namespaces.len()), (1, 1));
    let t = load_model(dir.path()).unwrap();
    let a: BTreeSet<_> = t
        .assumptions
        .iter()
        .map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(a.contains("assumed node n1"), "{a:?}");
    assert!(a.contains("assumed pod ns/p"), "{a:?}");
}

#[test]
fn host_route_for_address_outside_the_pod_cidr() {
    let text = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: n1}}\nspec: {{podCIDR: 10.244.1.0/24}}\n---\n{POD}status: {{podIP: 10.9.9.9}}\n"
    );
    let t = translate(&load_str("m.yaml", &text).unwrap()).unwrap();
    assert!(
        t.assumptions
            .iter()
            .any(|s| s.contains("10.9.9.9") && s.contains("host route")),
        "{:?}",
        t.assumptions
    );
    let r = &t.model.routers.values().next().unwrap().routes;
    assert!(r.iter().any(|r| r.prefix.to_string() == "10.9.9.9/32"));
}

#[test]
fn crd_schemas_match_types() {
    // Every field the Rust types accept is in the CRD schema, and back.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    for (file, fields) in [
        ("tenant.yaml", vec!["cidrs", "namespaces"]),
        (
            "subnet.yaml",
            vec!["cidr", "gateway", "namespaces", "tenant"],
        ),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let props = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        let mut keys: Vec<&str> = props
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, fields, "{file}");
    }
}

#[test]
fn generated_cluster_manifests_translate_and_compile() {
    use weft_controller::compile::fixture::Spec;
    use weft_controller::compile::{CompileConfig, Compiler};
    // Two tenants (Tenant objects, overlapping pod addresses), 4 nodes.
    let spec = Spec::generate(2, 4, 6, 40, 12);
    let text = spec.manifests_yaml();
    let m = load_str("gen.yaml", &text).unwrap();
    assert_eq!(
        (m.pods.len(), m.network_policies.len(), m.nodes.len()),
        (40, 12, 4)
    );
    let t = translate(&m).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(t.assumptions.is_empty(), "{:?}", t.assumptions);
    assert_eq!(t.model.pod_ports().count(), 40);
    for tn in ["t0", "t1"] {
        assert!(
            t.model.tenants.contains_key(tn),
            "{:?}",
            t.model.tenants.keys()
        );
    }
    for p in &spec.pods {
        let port = t.model.pod_port(&p.ns, &p.name).unwrap();
        assert_eq!(port.ips, vec![std::net::IpAddr::V4(spec.pod_ip(p))]);
        assert_eq!(port.node.as_deref(), Some(spec.nodes[p.node].as_str()));
    }
    let c = Compiler::new(t.model, CompileConfig::default());
    for n in c.nodes() {
        assert!(c.flow_count(n) > 0);
        assert!(c.table(n).unwrap().conflicts().is_empty());
    }
}

/// The controller's reload loop on a manifests directory: a bad edit (bad
/// CIDR, unknown kind, selector error, missing field, a 10 MB file) is
/// refused as a whole, naming file, object and field; the compiled tables
/// stay as they were; once the edit is fixed, the update carries exactly
/// the fixed change.
#[test]
fn bad_edit_keeps_previous_model_in_force() {
    use weft_controller::compile::{CompileConfig, Compiler};
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small");
    for f in ["cluster.yaml", "pods.yml"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut c = Compiler::new(
        load_model(dir.path()).unwrap().model,
        CompileConfig::default(),
    );
    let tables =
        |c: &Compiler| -> Vec<_> { c.nodes().map(|n| (n.to_owned(), c.flows(n))).collect() };
    let before = tables(&c);
    let np = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: ops}\nspec:\n";
    let bad: [(&str, String, &str); 5] = [
        (
            "z.yaml",
            format!(
                "{np}  podSelector: {{}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 10.1.0.0/40}}}}]}}]\n"
            ),
            "z.yaml: document 0: NetworkPolicy ops/deny: spec.ingress[0].from[0].ipBlock.cidr:",
        ),
        (
            "z.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n".into(),
            "z.yaml: document 0: Secret s: unknown kind",
        ),
        (
            "z.yaml",
            format!(
                "{np}  podSelector: {{matchExpressions: [{{key: a, operator: Exists, values: [b]}}]}}\n"
            ),
            "z.yaml: document 0: NetworkPolicy ops/deny: spec.podSelector.matchExpressions[0].values:",
        ),
        (
            "z.yaml",
            np.trim_end_matches("spec:\n").into(),
            "z.yaml: document 0: NetworkPolicy ops/deny: spec: required field is missing",
        ),
        (
            "z.yaml",
            "#".repeat(10 << 20),
            "z.yaml: file is 10485760 bytes",
        ),
    ];
    for (file, text, want) in &bad {
        std::fs::write(dir.path().join(file), text).unwrap();
        let e = load_model(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(want), "{want} not in: {e}");
        // The caller keeps the compiler (and its tables) as they were.
        assert_eq!(tables(&c), before);
    }
    // Fixed: a valid deny-all policy, and only its flows change.
    std::fs::write(
        dir.path().join("z.yaml"),
        format!("{np}  podSelector: {{}}\n  policyTypes: [Ingress]\n"),
    )
    .unwrap();
    let diffs = c.update(load_model(dir.path()).unwrap().model);
    assert!(!diffs.is_empty());
    assert!(
        diffs
            .values()
            .flat_map(|d| d.adds.iter().chain(&d.modifies).chain(&d.deletes))
            .all(|f| {
                let src = c
                    .source_of(f.cookie)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                src.contains("ops") || src.contains("Infrastructure")
            }),
        "{diffs:?}"
    );
    assert_ne!(tables(&c), before);
}

/// The reload cache parses only the files whose bytes changed, and always
/// returns what `load_path` returns: after an edit that keeps the size (a
/// rewrite within one timestamp tick looks unchanged to size and mtime),
/// a removed file, a broken file and its fix.
#[test]
fn manifest_cache_parses_only_changed_files() {
    use weft_controller::source::{ManifestCache, load_path_cached};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pod = |name: &str| POD.replace("name: p,", &format!("name: {name},"));
    std::fs::write(d.join("a.yaml"), pod("pa")).unwrap();
    std::fs::write(d.join("b.yaml"), pod("pb")).unwrap();
    std::fs::write(d.join("c.yml"), pod("pc")).unwrap();
    let mut cache = ManifestCache::default();
    let same = |cache: &mut ManifestCache| {
        let cached = load_path_cached(d, cache).unwrap();
        assert_eq!(cached, load_path(d).unwrap());
        cached
    };
    assert_eq!(same(&mut cache).pods.len(), 3);
    assert_eq!(cache.parses(), 3);
    // Nothing changed: nothing parsed.
    same(&mut cache);
    assert_eq!(cache.parses(), 3);
    // One file rewritten with the same length: only it is parsed.
    std::fs::write(d.join("b.yaml"), pod("pB")).unwrap();
    let m = same(&mut cache);
    assert_eq!(cache.parses(), 4);
    let names: BTreeSet<String> = m
        .pods
        .iter()
        .map(|p| p.object.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["pa".into(), "pB".into(), "pc".into()])
    );
    // A removed file is gone from the result.
    std::fs::remove_file(d.join("a.yaml")).unwrap();
    assert_eq!(same(&mut cache).pods.len(), 2);
    assert_eq!(cache.parses(), 4);
    // A broken file is an error every time, until fixed.
    std::fs::write(d.join("c.yml"), "kind: [\n").unwrap();
    assert!(load_path_cached(d, &mut cache).is_err());
    assert!(load_path_cached(d, &mut cache).is_err());
    std::fs::write(d.join("c.yml"), pod("pc")).unwrap();
    assert_eq!(same(&mut cache).pods.len(), 2);
}
