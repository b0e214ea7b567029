//! Where a logical object came from: the Kubernetes (or Weft) object and, for
//! ACLs, the rule inside it. Every port and every ACL carries one, so the
//! compiler can put a cookie on each flow that maps back to "NetworkPolicy
//! x/allow-web, ingress rule 0, peer side of the return traffic".

use std::fmt;

use serde::Serialize;

/// The kind of the source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum SourceKind {
    /// `v1/Namespace`.
    Namespace,
    /// `v1/Pod`.
    Pod,
    /// `v1/Node` (or a node implied by a pod's `spec.nodeName`).
    Node,
    /// `v1/Service`.
    Service,
    /// `discovery.k8s.io/v1/EndpointSlice`.
    EndpointSlice,
    /// `networking.k8s.io/v1/NetworkPolicy`.
    NetworkPolicy,
    /// `weft.dev/v1alpha1/Tenant`.
    Tenant,
    /// `weft.dev/v1alpha1/Subnet`.
    Subnet,
    /// Made by the translation itself, not by one object (ARP/ND allows,
    /// per-namespace isolation defaults, implied tenants). `name` says which.
    Infrastructure,
}

impl SourceKind {
    /// The Kubernetes kind name (or `Infrastructure`).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Namespace => "Namespace",
            SourceKind::Pod => "Pod",
            SourceKind::Node => "Node",
            SourceKind::Service => "Service",
            SourceKind::EndpointSlice => "EndpointSlice",
            SourceKind::NetworkPolicy => "NetworkPolicy",
            SourceKind::Tenant => "Tenant",
            SourceKind::Subnet => "Subnet",
            SourceKind::Infrastructure => "Infrastructure",
        }
    }
}

/// Direction of a NetworkPolicy rule (`spec.ingress[i]` or `spec.egress[i]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RuleDirection {
    /// `spec.ingress[index]`.
    Ingress,
    /// `spec.egress[index]`.
    Egress,
}

/// Which part of a rule an ACL implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum RulePart {
    /// The rule itself (the allowed direction of the connection).
    Allow,
    /// Replies leaving/entering the selected pods (stateless approximation).
    ReturnLocal,
    /// Replies at the peer pods' side (stateless approximation).
    ReturnPeer,
}

/// One rule inside a source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RuleRef {
    /// Ingress or egress list.
    pub direction: RuleDirection,
    /// Index in that list.
    pub index: u32,
    /// Which part of the rule.
    pub part: RulePart,
}

/// A reference to the object (and rule) a logical object came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceRef {
    /// Object kind.
    pub kind: SourceKind,
    /// Namespace, for namespaced kinds (and for per-namespace infrastructure).
    pub namespace: Option<String>,
    /// Object name (for `Infrastructure`: what it is, e.g. `arp-nd`).
    pub name: String,
    /// The rule, for ACLs made from a NetworkPolicy rule.
    pub rule: Option<RuleRef>,
}

impl SourceRef {
    /// A namespaced object.
    pub fn namespaced(kind: SourceKind, namespace: &str, name: &str) -> SourceRef {
        SourceRef {
            kind,
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
            rule: None,
        }
    }

    /// A cluster-scoped object.
    pub fn cluster(kind: SourceKind, name: &str) -> SourceRef {
        SourceRef {
            kind,
            namespace: None,
            name: name.to_owned(),
            rule: None,
        }
    }

    /// The same object, one of its rules.
    pub fn with_rule(mut self, direction: RuleDirection, index: u32, part: RulePart) -> SourceRef {
        self.rule = Some(RuleRef {
            direction,
            index,
            part,
        });
        self
    }
}

impl fmt::Display for SourceRef {
    /// `NetworkPolicy x/allow-web ingress[0]`, `... ingress[0] (return, peer side)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind.as_str())?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(r) = self.rule {
            let d = match r.direction {
                RuleDirection::Ingress => "ingress",
                RuleDirection::Egress => "egress",
            };
            write!(f, " {d}[{}]", r.index)?;
            match r.part {
                RulePart::Allow => {}
                RulePart::ReturnLocal => f.write_str(" (return traffic)")?,
                RulePart::ReturnPeer => f.write_str(" (return traffic, peer side)")?,
            }
        }
        Ok(())
    }
}
