//! Weft custom resources (`weft.dev/v1alpha1`), as Rust types. Their
//! OpenAPI schemas are `deploy/crds/tenant.yaml` and `deploy/crds/subnet.yaml`;
//! a test checks that every field here is in the schema and the other way
//! round (`crd_schemas_match_types`).
//!
//! Unknown fields are refused (`deny_unknown_fields`), as the API server's
//! structural schema pruning would silently drop them and a typo in a CIDR
//! field name would otherwise go unnoticed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// `Tenant` (cluster-scoped): an isolated network (VPC). Namespaces listed
/// here belong to it; all others belong to the implied `default` tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// `weft.dev/v1alpha1`.
    pub api_version: String,
    /// `Tenant`.
    pub kind: String,
    /// Standard metadata (name required).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: TenantSpec,
}

/// `Tenant.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    /// Namespaces of the tenant (a namespace belongs to at most one tenant).
    pub namespaces: Vec<String>,
    /// Address space (CIDRs); may overlap another tenant's.
    pub cidrs: Vec<String>,
}

/// `Subnet` (cluster-scoped): one logical switch of a tenant, spanning nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    /// `weft.dev/v1alpha1`.
    pub api_version: String,
    /// `Subnet`.
    pub kind: String,
    /// Standard metadata (name required).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec.
    pub spec: SubnetSpec,
}

/// `Subnet.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubnetSpec {
    /// The owning tenant (`default` allowed).
    pub tenant: String,
    /// The subnet CIDR (inside one of the tenant's CIDRs).
    pub cidr: String,
    /// Gateway address (default: the first host address of `cidr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Namespaces whose pods attach here; empty = the tenant's default subnet
    /// (for namespaces no other subnet lists).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}
