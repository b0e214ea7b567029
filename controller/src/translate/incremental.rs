//! Incremental translation: [`Translator`] keeps the objects and, per
//! NetworkPolicy, what it contributed to the model (its *fragment*: ACLs,
//! port groups, address sets by name), and re-derives on a change only the
//! fragments the change can affect.
//!
//! On every change the topology (tenants, nodes, switches, pod ports,
//! addresses) is rebuilt from all objects: ids and standalone addresses are
//! a function of the whole object set (an id moves when a colliding name
//! comes or goes, a generated address when another pod takes its probe
//! slot), and rebuilding it is cheap next to policies. Then the pods of the
//! new and the previous topology are compared field by field (labels,
//! tenant, port id, addresses, named ports), and a policy's fragment is
//! recomputed only if
//!
//! - the policy object itself changed or is new, or
//! - a changed pod (its previous or its new version) is one the policy
//!   selects (`podSelector` in its namespace) or can select as a peer (any
//!   peer selector matching it, or a rule with no peers at all: "any"
//!   peers reach every pod of the tenant), or
//! - any namespace's labels or any namespace's tenant changed (every
//!   fragment is recomputed then).
//!
//! The fragments are then merged, ids allocated and the model written as
//! [`translate`](super::translate) does; services are rebuilt. The result is
//! equal to a full translation of the same objects (the property test
//! `incremental_equals_full` checks this after every random edit), and on
//! an error the translator keeps its previous objects and model.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::policy::{self, Pending};
use super::{Ctx, PodInfo, Translation, selector, service, topology, validated};
use crate::source::{LoadError, LoadErrorKind, Loaded, Manifests};

/// One object change.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Adds a pod, or replaces the pod of the same namespace and name.
    UpsertPod(Box<Loaded<Pod>>),
    /// Removes the pod `namespace/name` (no-op if absent).
    DeletePod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Adds a NetworkPolicy, or replaces the one of the same namespace and name.
    UpsertPolicy(Box<Loaded<NetworkPolicy>>),
    /// Removes the NetworkPolicy `namespace/name` (no-op if absent).
    DeletePolicy {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Replaces every object (a re-read manifests directory); policies and
    /// pods that did not change keep their cached fragments.
    Replace(Manifests),
}

type Key = (String, String);

fn key_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

fn same_key(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: &str,
    name: &str,
) -> bool {
    m.namespace.as_deref().unwrap_or_default() == ns
        && m.name.as_deref().unwrap_or_default() == name
}

/// The translation state of a running controller (see the module doc).
#[derive(Debug, Clone)]
pub struct Translator {
    objects: Manifests,
    current: Translation,
    /// Pods of the current topology, by namespace and name.
    pods: Vec<PodInfo>,
    ns_labels: BTreeMap<String, BTreeMap<String, String>>,
    ns_tenant: BTreeMap<String, String>,
    /// Per policy: the object its fragment was computed from, and the fragment.
    frags: BTreeMap<Key, (NetworkPolicy, Pending)>,
}

impl Translator {
    /// Translates `objects` in full.
    pub fn new(objects: Manifests) -> Result<Translator, LoadError> {
        let mut t = Translator {
            objects,
            current: Translation {
                model: Default::default(),
                assumptions: Vec::new(),
            },
            pods: Vec::new(),
            ns_labels: BTreeMap::new(),
            ns_tenant: BTreeMap::new(),
            frags: BTreeMap::new(),
        };
        t.retranslate()?;
        Ok(t)
    }

    /// The current objects.
    pub fn objects(&self) -> &Manifests {
        &self.objects
    }

    /// The current translation.
    pub fn translation(&self) -> &Translation {
        &self.current
    }

    /// Applies one change; on error nothing changes.
    pub fn apply(&mut self, edit: Edit) -> Result<&Translation, LoadError> {
        let o = &mut self.objects;
        let undo = match edit {
            Edit::UpsertPod(p) => {
                let (ns, name) = key_of(&p.object.metadata);
                Undo::Pods(upsert(&mut o.pods, *p, |q| {
                    same_key(&q.object.metadata, &ns, &name)
                }))
            }
            Edit::DeletePod { namespace, name } => Undo::Pods(remove(&mut o.pods, |q| {
                same_key(&q.object.metadata, &namespace, &name)
            })),
            Edit::UpsertPolicy(p) => {
                let (ns, name) = key_of(&p.object.metadata);
                Undo::Policies(upsert(&mut o.network_policies, *p, |q| {
                    same_key(&q.object.metadata, &ns, &name)
                }))
            }
            Edit::DeletePolicy { namespace, name } => {
                Undo::Policies(remove(&mut o.network_policies, |q| {
                    same_key(&q.object.metadata, &namespace, &name)
                }))
            }
            Edit::Replace(m) => Undo::All(std::mem::replace(o, m)),
        };
        if let Err(e) = self.retranslate() {
            let o = &mut self.objects;
            match undo {
                Undo::Pods(s) => restore(&mut o.pods, s),
                Undo::Policies(s) => restore(&mut o.network_policies, s),
                Undo::All(m) => *o = m,
            }
            return Err(e);
        }
        Ok(&self.current)
    }

    /// Translates `self.objects`, reusing what the previous translation
    /// allows; on error only the fragment cache may have been emptied.
    fn retranslate(&mut self) -> Result<(), LoadError> {
        let objects = &self.objects;
        let mut ctx = Ctx::default();
        topology::build(objects, &mut ctx)?;
        ctx.index_pods();
        let all_stale = ctx.ns_labels != self.ns_labels || ctx.ns_tenant != self.ns_tenant;
        let changed = if all_stale {
            Vec::new()
        } else {
            changed_pods(&self.pods, &ctx.pods)
        };
        let mut policies: Vec<_> = objects.network_policies.iter().collect();
        policies.sort_by_key(|l| key_of(&l.object.metadata));
        let mut frags: BTreeMap<Key, (NetworkPolicy, Pending)> = BTreeMap::new();
        // Cached fragments move into the new cache; on an error the cache
        // is left empty (every fragment is recomputed next time), so it
        // never holds a fragment of a topology other than `self.pods`'.
        let mut old = std::mem::take(&mut self.frags);
        for l in policies {
            let key = key_of(&l.object.metadata);
            if frags.contains_key(&key) {
                return Err(LoadError::field(
                    &l.origin,
                    &format!("NetworkPolicy {}/{}", key.0, key.1),
                    "metadata.name",
                    LoadErrorKind::Conflict("NetworkPolicy defined twice".into()),
                ));
            }
            let cached = old.remove(&key).filter(|(obj, _)| {
                !all_stale && *obj == l.object && !changed.iter().any(|q| touches(&ctx, obj, q))
            });
            let entry = match cached {
                Some(c) => c,
                None => (l.object.clone(), policy::fragment(&ctx, l)?),
            };
            frags.insert(key, entry);
        }
        policy::assemble(&mut ctx, frags.values().map(|(_, f)| Cow::Borrowed(f)))?;
        service::build(objects, &mut ctx)?;
        let current = validated(ctx.model, ctx.assumptions)?;
        self.current = current;
        self.pods = ctx.pods;
        self.ns_labels = ctx.ns_labels;
        self.ns_tenant = ctx.ns_tenant;
        self.frags = frags;
        Ok(())
    }
}

/// What a policy fragment reads of a pod.
fn same_pod(a: &PodInfo, b: &PodInfo) -> bool {
    a.labels == b.labels
        && a.tenant == b.tenant
        && a.port == b.port
        && a.ips == b.ips
        && a.named_ports == b.named_ports
}

/// Pods (previous and new versions) that differ between two pod lists
/// sorted by namespace and name.
fn changed_pods(old: &[PodInfo], new: &[PodInfo]) -> Vec<PodInfo> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let ord = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => (&a.ns, &a.name).cmp(&(&b.ns, &b.name)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                out.push(old[i].clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(new[j].clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if !same_pod(&old[i], &new[j]) {
                    out.push(old[i].clone());
                    out.push(new[j].clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// True if policy `np` may read pod `q` (a superset, see the module doc).
fn touches(ctx: &Ctx, np: &NetworkPolicy, q: &PodInfo) -> bool {
    let ns = np.metadata.namespace.as_deref().unwrap_or_default();
    let Some(spec) = &np.spec else {
        return true;
    };
    if q.ns == ns
        && spec
            .pod_selector
            .as_ref()
            .is_none_or(|s| selector::matches(s, &q.labels))
    {
        return true;
    }
    let tenant = ctx
        .ns_tenant
        .get(ns)
        .map(String::as_str)
        .unwrap_or_default();
    if q.tenant != tenant {
        return false;
    }
    let peers = spec
        .ingress
        .iter()
        .flatten()
        .map(|r| r.from.as_ref())
        .chain(spec.egress.iter().flatten().map(|r| r.to.as_ref()));
    for list in peers {
        let Some(list) = list.filter(|l| !l.is_empty()) else {
            return true;
        };
        for peer in list {
            if peer.ip_block.is_some() {
                continue;
            }
            let ns_ok = match &peer.namespace_selector {
                Some(s) => ctx
                    .ns_labels
                    .get(&q.ns)
                    .is_none_or(|l| selector::matches(s, l)),
                None => q.ns == ns,
            };
            let pod_ok = peer
                .pod_selector
                .as_ref()
                .is_none_or(|s| selector::matches(s, &q.labels));
            if ns_ok && pod_ok {
                return true;
            }
        }
    }
    false
}

/// How to undo one edit of the object lists (short-lived, one per edit:
/// its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Undo {
    Pods(Slot<Loaded<Pod>>),
    Policies(Slot<Loaded<NetworkPolicy>>),
    All(Manifests),
}

/// What an edit did to one list.
enum Slot<T> {
    /// The item at this index was replaced; the previous one.
    Replaced(usize, T),
    /// An item was appended.
    Pushed,
    /// These items were removed (index before removal, ascending).
    Removed(Vec<(usize, T)>),
}

fn upsert<T>(v: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) -> Slot<T> {
    match v.iter().position(same) {
        Some(i) => Slot::Replaced(i, std::mem::replace(&mut v[i], item)),
        None => {
            v.push(item);
            Slot::Pushed
        }
    }
}

fn remove<T>(v: &mut Vec<T>, same: impl Fn(&T) -> bool) -> Slot<T> {
    let mut removed = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < v.len() {
        if same(&v[i]) {
            removed.push((k, v.remove(i)));
        } else {
            i += 1;
        }
        k += 1;
    }
    Slot::Removed(removed)
}

fn restore<T>(v: &mut Vec<T>, s: Slot<T>) {
    match s {
        Slot::Replaced(i, old) => v[i] = old,
        Slot::Pushed => {
            v.pop();
        }
        Slot::Removed(items) => {
            for (k, item) in items {
                v.insert(k, item);
            }
        }
    }
}
