//! Manifest sources: Kubernetes YAML files (as `kubectl apply -f` reads
//! them) into typed objects.
//!
//! - [`load_path`] takes a file or a directory; a directory contributes its
//!   `*.yaml`/`*.yml` files (not recursive, sorted by name, like `kubectl
//!   apply -f DIR`). [`load_str`] parses one in-memory file.
//! - Every file may hold several YAML documents (`---`); empty documents are
//!   skipped; a `kind: List` (`v1/List`, what `kubectl get -o yaml` prints)
//!   contributes its `items`.
//! - Known kinds: `v1` Namespace, Pod, Node, Service;
//!   `discovery.k8s.io/v1` EndpointSlice; `networking.k8s.io/v1`
//!   NetworkPolicy (all typed with k8s-openapi, so the same translation
//!   later runs on kube-rs watcher stores); `weft.dev/v1alpha1` Tenant and
//!   Subnet ([`crd`]). Anything else is an error (not ignored: a typo in a
//!   kind would otherwise silently drop a policy).
//! - Limits: a file larger than [`MAX_FILE_BYTES`] is refused before it is
//!   read; YAML nesting and alias expansion are bounded by serde-saphyr's
//!   default budget.
//!
//! Errors ([`LoadError`]) name the file, the document index (0-based, as
//! counted by `---` separators), the object (`Kind ns/name`) when known and
//! the field path (`spec.ingress[0].from[1].ipBlock.cidr`). Loading is a
//! pure function returning a `Result`: on error nothing is returned, so the
//! caller's previous model stays in force.

pub mod crd;
mod load;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;

pub use load::{ManifestCache, load_path, load_path_cached, load_str};

/// Largest manifest file accepted (8 MiB: kubectl's own limit for a single
/// object is 1.5 MiB in etcd, so a real manifest set is far below).
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// Where an object came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// The file (or `<memory>`).
    pub file: Arc<str>,
    /// 0-based YAML document index inside the file.
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.document)
    }
}

/// An object with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    /// Where it came from.
    pub origin: Origin,
    /// The object.
    pub object: T,
}

/// Every object of a manifest set, by kind, in load order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifests {
    /// Namespaces.
    pub namespaces: Vec<Loaded<Namespace>>,
    /// Pods.
    pub pods: Vec<Loaded<Pod>>,
    /// Nodes.
    pub nodes: Vec<Loaded<Node>>,
    /// Services.
    pub services: Vec<Loaded<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Loaded<EndpointSlice>>,
    /// NetworkPolicies.
    pub network_policies: Vec<Loaded<NetworkPolicy>>,
    /// Weft Tenants.
    pub tenants: Vec<Loaded<crd::Tenant>>,
    /// Weft Subnets.
    pub subnets: Vec<Loaded<crd::Subnet>>,
}

impl Manifests {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.namespaces.len()
            + self.pods.len()
            + self.nodes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.network_policies.len()
            + self.tenants.len()
            + self.subnets.len()
    }

    /// True if there is no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every object of `other`.
    pub fn extend(&mut self, other: Manifests) {
        self.namespaces.extend(other.namespaces);
        self.pods.extend(other.pods);
        self.nodes.extend(other.nodes);
        self.services.extend(other.services);
        self.endpoint_slices.extend(other.endpoint_slices);
        self.network_policies.extend(other.network_policies);
        self.tenants.extend(other.tenants);
        self.subnets.extend(other.subnets);
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// Reading a file or directory failed.
    Io(String),
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// Not valid YAML.
    Yaml(String),
    /// A document without `apiVersion`/`kind`, or not a mapping.
    NotAnObject(String),
    /// `apiVersion`/`kind` not one of the known kinds.
    UnknownKind {
        /// `apiVersion`.
        api_version: String,
        /// `kind`.
        kind: String,
    },
    /// A required field is absent.
    Missing,
    /// A field has the wrong type or an unknown field is present.
    Schema(String),
    /// A field's value is invalid (bad CIDR, bad selector, ...).
    Invalid(String),
    /// Two objects conflict (same name twice, namespace in two tenants...).
    Conflict(String),
}

/// A manifest error: where (file, document, object, field) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// File and document, when the error is tied to one.
    pub origin: Option<Origin>,
    /// `Kind ns/name` or `Kind name`, when known.
    pub object: Option<String>,
    /// Field path, when the error is about one field.
    pub field: Option<String>,
    /// What.
    pub kind: LoadErrorKind,
}

impl LoadError {
    /// An error about a whole file.
    pub fn file(file: &str, kind: LoadErrorKind) -> LoadError {
        LoadError {
            origin: Some(Origin {
                file: file.into(),
                document: 0,
            }),
            object: None,
            field: None,
            kind,
        }
        .without_document()
    }

    fn without_document(mut self) -> LoadError {
        // Document 0 with no object means "the file"; printed without it.
        if let Some(o) = &mut self.origin {
            o.document = usize::MAX;
        }
        self
    }

    /// An error about one field of one object.
    pub fn field(origin: &Origin, object: &str, field: &str, kind: LoadErrorKind) -> LoadError {
        LoadError {
            origin: Some(origin.clone()),
            object: Some(object.to_owned()),
            field: Some(field.to_owned()),
            kind,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = &self.origin {
            if o.document == usize::MAX {
                write!(f, "{}: ", o.file)?;
            } else {
                write!(f, "{o}: ")?;
            }
        }
        if let Some(obj) = &self.object {
            write!(f, "{obj}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        match &self.kind {
            LoadErrorKind::Io(e) => write!(f, "cannot read: {e}"),
            LoadErrorKind::TooLarge { size } => {
                write!(
                    f,
                    "file is {size} bytes, larger than the {MAX_FILE_BYTES}-byte limit"
                )
            }
            LoadErrorKind::Yaml(e) => write!(f, "not valid YAML: {e}"),
            LoadErrorKind::NotAnObject(e) => write!(f, "not a Kubernetes object: {e}"),
            LoadErrorKind::UnknownKind { api_version, kind } => write!(
                f,
                "unknown kind {kind:?} (apiVersion {api_version:?}); known: v1 Namespace/Pod/Node/Service, \
                 discovery.k8s.io/v1 EndpointSlice, networking.k8s.io/v1 NetworkPolicy, \
                 weft.dev/v1alpha1 Tenant/Subnet, v1 List"
            ),
            LoadErrorKind::Missing => write!(f, "required field is missing"),
            LoadErrorKind::Schema(e) => write!(f, "{e}"),
            LoadErrorKind::Invalid(e) => write!(f, "{e}"),
            LoadErrorKind::Conflict(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A file or directory to load, for error messages.
pub(crate) fn display_path(p: &std::path::Path) -> String {
    PathBuf::from(p).display().to_string()
}
