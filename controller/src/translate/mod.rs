//! Kubernetes objects -> logical model.
//!
//! [`translate`] is a pure function of the loaded [`Manifests`]: it returns
//! a new [`LogicalModel`] plus the standalone assumptions it made, or a
//! [`LoadError`] naming object and field; it never mutates anything else, so
//! on error the caller's previous model stays in force. [`load_model`] is
//! `load_path` + `translate`. [`incremental::Translator`] keeps the
//! objects and re-derives only what an edit affects, with the same result.
//!
//! # Mapping
//!
//! | Kubernetes / Weft object | logical objects |
//! |---|---|
//! | `Tenant` (weft.dev) | [`Tenant`](crate::model::Tenant) + its router `lr/<tenant>`; namespaces listed join it. Namespaces no Tenant lists form the implied tenant `default` (its address space: the nodes' podCIDRs). Tenants may overlap in address space: each has its own datapaths, and policy peers are only ever looked up inside the policy's own tenant. |
//! | `Subnet` (weft.dev) | a switch `ls/<tenant>/<subnet>` spanning nodes (gateway = `spec.gateway` or the first host), a router port `lrp/<tenant>/<subnet>` with its switch-side peer `lsp/<tenant>/<subnet>/router`, a connected route. Pods of the namespaces it lists attach there; a Subnet listing no namespace is the tenant's default. |
//! | `Node` | [`Node`](crate::model::Node) (underlay = `InternalIP`, else `ExternalIP`); for a tenant **without** Subnets, one switch `ls/<tenant>/<node>` per node that runs a pod of the tenant, subnet = the node's first podCIDR, gateway = its first host, plus router port, peer and connected route as above. |
//! | `Namespace` | its labels (plus `kubernetes.io/metadata.name`, as the API server adds) for `namespaceSelector`; its tenant. |
//! | `Pod` | a logical port `<ns>/<pod>` on its switch and node: IPs from `status.podIPs`/`podIP`, MAC `0a:58:<IPv4>`, port security = that MAC and those IPs; named container ports kept for policy. `hostNetwork` and unscheduled pods get no port. |
//! | `Service` + `EndpointSlice` | one [`LoadBalancer`](crate::model::LoadBalancer) per Service port: VIPs = `clusterIPs` x port, backends = ready endpoints of the slices labelled `kubernetes.io/service-name` with the matching port name. Headless Services (`clusterIP: None`) get none. Modelled only: the compiler realises them once conntrack exists. |
//! | `NetworkPolicy` | port groups, address sets and ACLs, below. |
//! | (always) | tier-0 ACLs allowing ARP and IPv6 ND to and from every pod (`Infrastructure arp-nd`): port security already stops spoofed ARP/ND, and policy must not break address resolution. |
//!
//! # Standalone assumptions
//!
//! A manifests directory often holds only workloads. Then: a pod naming a
//! node without a Node object implies that node (underlay 192.0.2.k, the
//! first free k); a node without podCIDR gets the first free
//! `10.244.k.0/24`; a pod without `status.podIP` gets a deterministic
//! address (hash of `ns/name` into its switch's subnet, probing forward past
//! the gateway and taken addresses; explicit addresses are reserved first);
//! a pod whose address is outside its switch's subnet keeps it and gets a
//! host route (`/32`, `/128`) on the tenant router; a namespace used but not
//! defined is assumed with no labels. Each is reported as one
//! `assumed ...` line in [`Translation::assumptions`].
//!
//! # NetworkPolicy (`networking.k8s.io/v1`)
//!
//! See [`policy`] for the rule-by-rule mapping and the stateless
//! approximation of return traffic.

pub mod incremental;
pub mod policy;
pub(crate) mod selector;
mod service;
pub mod topology;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use crate::model::{L4Protocol, LogicalModel, LogicalPortId};
use crate::source::{LoadError, LoadErrorKind, Manifests, Origin, load_path};

/// A translated model and what was assumed to build it.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The model.
    pub model: LogicalModel,
    /// Standalone assumptions, one sentence each, starting with `assumed`.
    pub assumptions: Vec<String>,
}

/// Loads a file or directory and translates it.
pub fn load_model(path: &Path) -> Result<Translation, LoadError> {
    translate(&load_path(path)?)
}

/// Translates loaded objects into a logical model.
pub fn translate(m: &Manifests) -> Result<Translation, LoadError> {
    let mut ctx = Ctx::default();
    topology::build(m, &mut ctx)?;
    ctx.index_pods();
    policy::build(m, &mut ctx)?;
    service::build(m, &mut ctx)?;
    validated(ctx.model, ctx.assumptions)
}

/// `model` after [`LogicalModel::validate`], with its assumptions.
fn validated(model: LogicalModel, assumptions: Vec<String>) -> Result<Translation, LoadError> {
    model.validate().map_err(|e| LoadError {
        origin: None,
        object: None,
        field: None,
        kind: LoadErrorKind::Invalid(e.to_string()),
    })?;
    Ok(Translation { model, assumptions })
}

/// What the policy and service steps need to know about a pod.
#[derive(Debug, Clone)]
pub(crate) struct PodInfo {
    pub(crate) ns: String,
    #[allow(dead_code)]
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) tenant: String,
    pub(crate) port: LogicalPortId,
    pub(crate) ips: Vec<IpAddr>,
    /// `(name, protocol, containerPort)` of every named container port.
    pub(crate) named_ports: Vec<(String, L4Protocol, u16)>,
    #[allow(dead_code)]
    pub(crate) origin: Origin,
}

/// Translation state.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) model: LogicalModel,
    pub(crate) assumptions: Vec<String>,
    /// Sorted by namespace, name.
    pub(crate) pods: Vec<PodInfo>,
    pub(crate) ns_labels: BTreeMap<String, BTreeMap<String, String>>,
    pub(crate) ns_tenant: BTreeMap<String, String>,
    /// `pods` by namespace and label (built after the topology).
    pub(crate) index: selector::PodIndex,
    /// Positions in `pods` of each tenant's pods, ascending.
    pub(crate) tenant_pods: BTreeMap<String, Vec<usize>>,
    /// Ports of each tenant's pods.
    pub(crate) tenant_ports: BTreeMap<String, BTreeSet<LogicalPortId>>,
}

impl Ctx {
    fn assume(&mut self, s: String) {
        self.assumptions.push(s);
    }

    /// Builds the pod indexes the policy step selects with.
    fn index_pods(&mut self) {
        self.index =
            selector::PodIndex::build(self.pods.iter().map(|p| (p.ns.as_str(), &p.labels)));
        for (i, p) in self.pods.iter().enumerate() {
            self.tenant_pods
                .entry(p.tenant.clone())
                .or_default()
                .push(i);
            self.tenant_ports
                .entry(p.tenant.clone())
                .or_default()
                .insert(p.port);
        }
    }
}

pub(crate) fn err_field(
    origin: &Origin,
    object: &str,
    field: &str,
    kind: LoadErrorKind,
) -> LoadError {
    LoadError::field(origin, object, field, kind)
}

pub(crate) fn invalid(origin: &Origin, object: &str, field: &str, why: String) -> LoadError {
    LoadError::field(origin, object, field, LoadErrorKind::Invalid(why))
}
