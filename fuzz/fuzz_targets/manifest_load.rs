//! Manifest loader, translation **and compiler**: random YAML, and random
//! structured mutations of a valid manifest set, through the whole path
//! the controller runs (`load_str` -> `translate` -> `Compiler` -> switchd's
//! `pipeline::compile` of every node's flows).
//!
//! The first byte picks the mode (so the committed raw seeds in
//! fuzz/seeds/manifest_load/ keep working):
//!
//! - `mode % 4 == 0 or 2`: the rest, as text, is one manifest file;
//! - `mode % 4 == 1`: the rest replaces line `mode / 4` of the fixture
//!   `controller/tests/fixtures/small/pods.yml`;
//! - `mode % 4 == 3`: the rest is decoded with `arbitrary` into a
//!   [`Plan`]: a seed set (the controller's small fixture, or a generated
//!   two-tenant cluster with overlapping pod addresses), a list of edits
//!   (replace / delete / insert a field of one object with a hostile value:
//!   bad CIDRs, out-of-range ports, `endPort` below `port`, odd selectors
//!   and operators, wrong types, huge strings; duplicate, rename or remove
//!   whole objects, i.e. duplicate names, missing nodes; add a Tenant that
//!   claims existing namespaces), then a second list applied on top as an
//!   incremental update. The edited set is written as JSON documents (JSON
//!   is YAML) separated by `---`.
//!
//! Oracles: no panic; every error has a message that names a file or an
//! object; no error is a broken model invariant (a translation bug, not
//! bad input); translation is deterministic; whenever the set translates,
//! every node's table has no conflicting flows and switchd accepts it;
//! `Compiler::update` to the second set gives exactly the tables of a full
//! compile of it.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use protocol::flow::FlowSpec;
use serde_json::{Value, json};
use weft_controller::check::node_config;
use weft_controller::compile::fixture::Spec;
use weft_controller::compile::{CompileConfig, Compiler};
use weft_controller::model::LogicalModel;
use weft_controller::source::load_str;
use weft_controller::translate::translate;

const PODS: &str = include_str!("../../controller/tests/fixtures/small/pods.yml");
const CLUSTER: &str = include_str!("../../controller/tests/fixtures/small/cluster.yaml");

/// The seed sets, as JSON documents.
fn bases() -> &'static [Vec<Value>; 2] {
    static B: OnceLock<[Vec<Value>; 2]> = OnceLock::new();
    B.get_or_init(|| {
        let docs = |text: &str| -> Vec<Value> {
            serde_saphyr::from_multiple::<Value>(text)
                .expect("seed YAML")
                .into_iter()
                .filter(|v| !v.is_null())
                .collect()
        };
        let small = docs(&format!("{CLUSTER}\n---\n{PODS}"));
        let generated = docs(&Spec::generate(2, 3, 4, 10, 4).manifests_yaml());
        for set in [&small, &generated] {
            let m = load_str("seed.yaml", &write(set)).expect("seed loads");
            translate(&m).expect("seed translates");
        }
        [small, generated]
    })
}

/// Strings that break fields: CIDRs, addresses, ports, protocols,
/// operators, names, kinds.
const STRINGS: &[&str] = &[
    "10.0.0.0/33", "10.0.0.0/8", "10.244.1.0/24", "10.244.0.0/16", "0.0.0.0/0", "::/0",
    "fe80::1/129", "2001:db8::/64", "300.1.1.1/8", "10.244.1.5", "10.244.1.1", "10.244.1.0",
    "10.244.1.255", "192.0.2.11", "2001:db8::5", "not-a-cidr", "", " ", "http", "dns", "80",
    "TCP", "UDP", "SCTP", "ICMP", "tcp", "Ingress", "Egress", "Inbound", "In", "NotIn",
    "Exists", "DoesNotExist", "Equals", "node-1", "node-2", "node-missing", "web", "ops",
    "default", "ns-0", "ns-1", "t0", "t1", "a/b", "-bad-", "InternalIP", "ExternalIP",
    "Hostname", "10.96.0.10", "None", "y", "no", "*", "\u{0}", "ñ",
    "kubernetes.io/metadata.name", "kubernetes.io/service-name", "v1", "Pod", "Node",
    "NetworkPolicy", "List", "weft.dev/v1alpha1", "networking.k8s.io/v1",
];

const INTS: &[i64] = &[
    0, 1, 53, 79, 80, 81, 8080, 65535, 65536, -1, 1 << 31, 1 << 32, i64::MAX, i64::MIN,
];

/// Whole fragments: selectors, peers, ports, ipBlocks, address lists.
fn fragment(i: u8) -> Value {
    let all = [
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}),
        json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}),
        json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["client"]}]}),
        json!({"matchExpressions": [{"key": "", "operator": "DoesNotExist"}]}),
        json!({"matchLabels": {"": "x"}}),
        json!({"matchLabels": {"app": null}}),
        json!({"matchLabels": {"team": "ops"}, "matchExpressions": [{"key": "team", "operator": "In", "values": ["web"]}]}),
        json!({"podSelector": {}, "namespaceSelector": {}}),
        json!({"ipBlock": {"cidr": "0.0.0.0/0"}, "podSelector": {}}),
        json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}),
        json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}),
        json!({"ipBlock": {"cidr": "::/0", "except": ["10.0.0.0/8"]}}),
        json!({"ipBlock": {"cidr": "10.244.1.0/24", "except": ["10.244.1.10/32", "10.244.1.0/25"]}}),
        json!({}),
        json!({"port": 90, "endPort": 80}),
        json!({"port": "http", "endPort": 81}),
        json!({"endPort": 81}),
        json!({"port": 0}),
        json!({"protocol": "SCTP", "port": 65535, "endPort": 65535}),
        json!({"protocol": "UDP", "port": 1, "endPort": 65535}),
        json!([{"type": "InternalIP", "address": "2001:db8::1"}]),
        json!([{"type": "InternalIP", "address": "192.0.2.11"}, {"type": "InternalIP", "address": "192.0.2.12"}]),
        json!([{"ip": "10.244.1.10"}, {"ip": "2001:db8::10"}]),
        json!([{"ip": "10.244.1.10"}, {"ip": "10.244.1.10"}]),
        json!(["10.244.0.0/16", "10.244.1.0/24"]),
        (0..64).fold(json!([]), |v, _| json!([v])),
        json!([{"from": [], "ports": []}]),
        json!([{}]),
        json!({"name": "http", "containerPort": 70000}),
        json!({"name": "http", "containerPort": 8080, "protocol": "UDP"}),
    ];
    all[usize::from(i) % all.len()].clone()
}

/// Field names to insert.
const KEYS: &[&str] = &[
    "endPort", "except", "matchExpressions", "matchLabels", "namespaceSelector",
    "podSelector", "ipBlock", "podIPs", "podIP", "hostNetwork", "policyTypes", "nodeName",
    "podCIDR", "podCIDRs", "addresses", "ingress", "egress", "from", "to", "ports",
    "namespace", "name", "labels", "cidrs", "namespaces", "gateway", "tenant", "cidr", "items",
    "status", "spec", "metadata", "unknownField",
];

#[derive(Debug, Arbitrary)]
enum Val {
    Str(u8),
    Int(u8),
    Fragment(u8),
    Fuzz(String),
    FuzzInt(i64),
    Float(f64),
    Null,
    Bool(bool),
    /// A copy of a value elsewhere in the set.
    Copy { doc: u8, path: u16 },
    /// A long string (names, label values).
    Long(u16),
}

#[derive(Debug, Arbitrary)]
enum Edit {
    Set { doc: u8, path: u16, val: Val },
    Delete { doc: u8, path: u16 },
    Insert { doc: u8, path: u16, key: u8, val: Val },
    Duplicate { doc: u8 },
    Rename { doc: u8, name: Val },
    Remove { doc: u8 },
    /// A Tenant claiming existing namespaces (overlapping tenants).
    Tenant { name: u8, ns: Vec<u8>, cidr: u8 },
}

#[derive(Debug, Arbitrary)]
struct Plan {
    generated: bool,
    first: Vec<Edit>,
    second: Vec<Edit>,
}

/// JSON pointers of every value in `v` below the root.
fn paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: &mut String, out: &mut Vec<String>) {
        let n = at.len();
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    at.push('/');
                    at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    out.push(at.clone());
                    walk(x, at, out);
                    at.truncate(n);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    at.push_str(&format!("/{i}"));
                    out.push(at.clone());
                    walk(x, at, out);
                    at.truncate(n);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut String::new(), &mut out);
    out
}

fn pick<T>(v: &[T], i: impl Into<usize>) -> Option<&T> {
    (!v.is_empty()).then(|| &v[i.into() % v.len()])
}

fn value(docs: &[Value], v: Val) -> Value {
    match v {
        Val::Str(i) => json!(STRINGS[usize::from(i) % STRINGS.len()]),
        Val::Int(i) => json!(INTS[usize::from(i) % INTS.len()]),
        Val::Fragment(i) => fragment(i),
        Val::Fuzz(s) => json!(s),
        Val::FuzzInt(i) => json!(i),
        Val::Float(f) => json!(f),
        Val::Null => Value::Null,
        Val::Bool(b) => json!(b),
        Val::Copy { doc, path } => pick(docs, doc)
            .and_then(|d| pick(&paths(d), path).and_then(|p| d.pointer(p)).cloned())
            .unwrap_or(Value::Null),
        Val::Long(n) => json!("x".repeat(usize::from(n) % 20_000)),
    }
}

fn apply(docs: &mut Vec<Value>, e: Edit) {
    let n = docs.len();
    let idx = |d: u8| (n > 0).then(|| usize::from(d) % n);
    match e {
        Edit::Set { doc, path, val } => {
            let v = value(docs, val);
            if let Some(i) = idx(doc)
                && let Some(p) = pick(&paths(&docs[i]), path).cloned()
                && let Some(slot) = docs[i].pointer_mut(&p)
            {
                *slot = v;
            }
        }
        Edit::Delete { doc, path } => {
            let Some(i) = idx(doc) else { return };
            let Some(p) = pick(&paths(&docs[i]), path).cloned() else { return };
            let (parent, last) = p.rsplit_once('/').unwrap_or(("", &p));
            match docs[i].pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(a)) => {
                    if let Ok(k) = last.parse::<usize>()
                        && k < a.len()
                    {
                        a.remove(k);
                    }
                }
                _ => {}
            }
        }
        Edit::Insert { doc, path, key, val } => {
            let v = value(docs, val);
            let Some(i) = idx(doc) else { return };
            let mut ps = paths(&docs[i]);
            ps.push(String::new()); // the document itself
            let Some(p) = pick(&ps, path).cloned() else { return };
            match docs[i].pointer_mut(&p) {
                Some(Value::Object(m)) => {
                    m.insert(KEYS[usize::from(key) % KEYS.len()].to_owned(), v);
                }
                Some(Value::Array(a)) => a.push(v),
                _ => {}
            }
        }
        Edit::Duplicate { doc } => {
            if let Some(i) = idx(doc) {
                docs.push(docs[i].clone());
            }
        }
        Edit::Rename { doc, name } => {
            let v = value(docs, name);
            if let Some(i) = idx(doc)
                && let Some(Value::Object(m)) = docs[i].get_mut("metadata")
            {
                m.insert("name".into(), v);
            }
        }
        Edit::Remove { doc } => {
            if let Some(i) = idx(doc) {
                docs.remove(i);
            }
        }
        Edit::Tenant { name, ns, cidr } => {
            let known: Vec<Value> = docs
                .iter()
                .filter_map(|d| d.pointer("/metadata/namespace").cloned())
                .collect();
            let ns: Vec<Value> = ns
                .into_iter()
                .take(4)
                .filter_map(|k| pick(&known, k).cloned())
                .collect();
            docs.push(json!({
                "apiVersion": "weft.dev/v1alpha1",
                "kind": "Tenant",
                "metadata": {"name": STRINGS[usize::from(name) % STRINGS.len()]},
                "spec": {"namespaces": ns, "cidrs": [STRINGS[usize::from(cidr) % STRINGS.len()]]},
            }));
        }
    }
}

/// The documents as one file: JSON documents separated by `---`.
fn write(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_json::to_string(d).expect("JSON"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Load and translate, with the error oracles; the model when valid.
fn check(text: &str) -> Option<LogicalModel> {
    let res = load_str("fuzz.yaml", text).and_then(|m| {
        let t = translate(&m)?;
        let again = translate(&m).expect("second translation");
        assert_eq!(again, t, "translation is not deterministic");
        Ok(t)
    });
    match res {
        Ok(t) => Some(t.model),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.is_empty());
            assert!(!s.contains("invariant broken"), "translation bug: {s}");
            assert!(
                e.origin.is_some() || e.object.is_some(),
                "error names neither file nor object: {s}"
            );
            None
        }
    }
}

fn tables(c: &Compiler) -> BTreeMap<String, Vec<FlowSpec>> {
    c.nodes().map(|n| (n.to_owned(), c.flows(n))).collect()
}

/// Compiles `model` for every node; every table is conflict-free and
/// accepted by switchd.
fn compile(model: LogicalModel) -> Compiler {
    let cfg = CompileConfig::default();
    let c = Compiler::new(model, cfg.clone());
    for node in c.nodes() {
        let t = c.table(node).expect("table");
        assert!(t.conflicts().is_empty(), "{node}: {:?}", t.conflicts());
        if let Err(e) = weft_switchd::pipeline::compile(
            &c.flows(node),
            node_config(c.model(), node, &cfg),
        ) {
            panic!("{node}: switchd refused the compiled flows: {e}");
        }
    }
    c
}

fn structured(data: &[u8]) {
    let Ok(plan) = Plan::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut docs = bases()[usize::from(plan.generated)].clone();
    for e in plan.first.into_iter().take(8) {
        apply(&mut docs, e);
    }
    let Some(m1) = check(&write(&docs)) else { return };
    let mut c = compile(m1);
    if plan.second.is_empty() {
        return;
    }
    for e in plan.second.into_iter().take(4) {
        apply(&mut docs, e);
    }
    let Some(m2) = check(&write(&docs)) else { return };
    c.update(m2.clone());
    let full = compile(m2);
    assert_eq!(tables(&c), tables(&full), "incremental != full compile");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 4 {
        3 => structured(rest),
        1 => {
            let Ok(s) = std::str::from_utf8(rest) else { return };
            // Replace line `mode / 4` of the base manifest by the input.
            let k = usize::from(mode / 4);
            let mut lines: Vec<&str> = PODS.lines().collect();
            if k < lines.len() {
                lines[k] = s;
            } else {
                lines.push(s);
            }
            if let Some(m) = check(&lines.join("\n")) {
                compile(m);
            }
        }
        _ => {
            let Ok(s) = std::str::from_utf8(rest) else { return };
            if let Some(m) = check(s) {
                compile(m);
            }
        }
    }
});
