//! Reading files and documents into typed objects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{LoadError, LoadErrorKind, Loaded, MAX_FILE_BYTES, Manifests, Origin, display_path};

/// Loads a file, or every `*.yaml`/`*.yml` file of a directory (sorted by
/// name, not recursive).
pub fn load_path(path: &Path) -> Result<Manifests, LoadError> {
    load_path_cached(path, &mut ManifestCache::default())
}

/// The parsed objects of every file read so far, by path, with the bytes
/// they were parsed from. [`load_path_cached`] reads every file again
/// (cheap) but parses only the files whose bytes differ from the cached
/// ones: a watcher that reloads on every change re-parses the one changed
/// manifest, not the whole directory. Comparing bytes, not sizes and
/// modification times, keeps it exact for rewrites within one timestamp
/// tick.
#[derive(Debug, Default)]
pub struct ManifestCache {
    files: HashMap<PathBuf, (Vec<u8>, Manifests)>,
    parses: u64,
}

impl ManifestCache {
    /// Files parsed through this cache so far (a cache hit parses none).
    pub fn parses(&self) -> u64 {
        self.parses
    }
}

/// [`load_path`] through `cache`: only files whose content changed since
/// the last call are parsed. A file that fails to parse is not cached
/// (its error is returned every time until it is fixed); files no longer
/// present leave the cache.
pub fn load_path_cached(path: &Path, cache: &mut ManifestCache) -> Result<Manifests, LoadError> {
    let shown = display_path(path);
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadError::file(&shown, LoadErrorKind::Io(e.to_string())))?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        let rd = std::fs::read_dir(path)
            .map_err(|e| LoadError::file(&shown, LoadErrorKind::Io(e.to_string())))?;
        for entry in rd {
            let entry =
                entry.map_err(|e| LoadError::file(&shown, LoadErrorKind::Io(e.to_string())))?;
            let p = entry.path();
            let is_yaml = p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if is_yaml && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    cache.files.retain(|p, _| files.contains(p));
    let mut all = Manifests::default();
    for f in files {
        let bytes = read_file(&f)?;
        match cache.files.get(&f) {
            Some((b, m)) if *b == bytes => all.extend(m.clone()),
            _ => {
                cache.files.remove(&f);
                cache.parses += 1;
                let m = parse_file(&f, &bytes)?;
                all.extend(m.clone());
                cache.files.insert(f, (bytes, m));
            }
        }
    }
    Ok(all)
}

/// A file's bytes, refused above [`MAX_FILE_BYTES`].
fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let shown = display_path(path);
    let io = |e: std::io::Error| LoadError::file(&shown, LoadErrorKind::Io(e.to_string()));
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::file(&shown, LoadErrorKind::TooLarge { size }));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    // A file may grow between stat and read.
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::file(
            &shown,
            LoadErrorKind::TooLarge {
                size: bytes.len() as u64,
            },
        ));
    }
    Ok(bytes)
}

fn parse_file(path: &Path, bytes: &[u8]) -> Result<Manifests, LoadError> {
    let shown = display_path(path);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| LoadError::file(&shown, LoadErrorKind::Yaml(format!("not UTF-8: {e}"))))?;
    load_str(&shown, text)
}

/// Parses one file's text (`file` is only used in error messages).
pub fn load_str(file: &str, text: &str) -> Result<Manifests, LoadError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::file(
            file,
            LoadErrorKind::TooLarge {
                size: text.len() as u64,
            },
        ));
    }
    let file: Arc<str> = file.into();
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| LoadError {
        origin: Some(Origin {
            file: file.clone(),
            document: usize::MAX,
        }),
        object: None,
        field: None,
        kind: LoadErrorKind::Yaml(e.to_string()),
    })?;
    let mut out = Manifests::default();
    for (i, doc) in docs.into_iter().enumerate() {
        let origin = Origin {
            file: file.clone(),
            document: i,
        };
        add_document(&mut out, &origin, doc, 0)?;
    }
    Ok(out)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn add_document(
    out: &mut Manifests,
    origin: &Origin,
    doc: Value,
    depth: u32,
) -> Result<(), LoadError> {
    let not_object = |why: &str| LoadError {
        origin: Some(origin.clone()),
        object: None,
        field: None,
        kind: LoadErrorKind::NotAnObject(why.to_owned()),
    };
    match &doc {
        Value::Null => return Ok(()), // empty document
        Value::Object(_) => {}
        _ => return Err(not_object("the document is not a mapping")),
    }
    let (Some(api), Some(kind)) = (str_field(&doc, "apiVersion"), str_field(&doc, "kind")) else {
        return Err(not_object("apiVersion and kind (strings) are required"));
    };
    let (api, kind) = (api.to_owned(), kind.to_owned());
    // Name for messages before the typed parse (which may fail).
    let meta = doc.get("metadata");
    let name = meta
        .and_then(|m| str_field(m, "name"))
        .unwrap_or("<unnamed>")
        .to_owned();
    let ns = meta
        .and_then(|m| str_field(m, "namespace"))
        .map(str::to_owned);
    match (api.as_str(), kind.as_str()) {
        ("v1", "List") => {
            if depth > 0 {
                return Err(not_object("a List inside a List"));
            }
            let items = match doc.get("items") {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(_) => {
                    return Err(LoadError::field(
                        origin,
                        "List",
                        "items",
                        LoadErrorKind::Schema("expected a sequence".into()),
                    ));
                }
            };
            for item in items {
                add_document(out, origin, item, depth + 1)?;
            }
            Ok(())
        }
        ("v1", "Namespace") => push(&mut out.namespaces, origin, doc, &kind, &name, None, |o| {
            &mut o.metadata
        }),
        ("v1", "Pod") => push(&mut out.pods, origin, doc, &kind, &name, Some(ns), |o| {
            &mut o.metadata
        }),
        ("v1", "Node") => push(&mut out.nodes, origin, doc, &kind, &name, None, |o| {
            &mut o.metadata
        }),
        ("v1", "Service") => push(
            &mut out.services,
            origin,
            doc,
            &kind,
            &name,
            Some(ns),
            |o| &mut o.metadata,
        ),
        ("discovery.k8s.io/v1", "EndpointSlice") => push(
            &mut out.endpoint_slices,
            origin,
            doc,
            &kind,
            &name,
            Some(ns),
            |o| &mut o.metadata,
        ),
        ("networking.k8s.io/v1", "NetworkPolicy") => push(
            &mut out.network_policies,
            origin,
            doc,
            &kind,
            &name,
            Some(ns),
            |o| &mut o.metadata,
        ),
        ("weft.dev/v1alpha1", "Tenant") => {
            push(&mut out.tenants, origin, doc, &kind, &name, None, |o| {
                &mut o.metadata
            })
        }
        ("weft.dev/v1alpha1", "Subnet") => {
            push(&mut out.subnets, origin, doc, &kind, &name, None, |o| {
                &mut o.metadata
            })
        }
        _ => Err(LoadError {
            origin: Some(origin.clone()),
            object: Some(format!("{kind} {name}")),
            field: None,
            kind: LoadErrorKind::UnknownKind {
                api_version: api,
                kind,
            },
        }),
    }
}

/// Deserializes `doc` as `T` (errors carry the field path), checks the name,
/// defaults the namespace of namespaced kinds to `default`, appends.
fn push<T: DeserializeOwned>(
    list: &mut Vec<Loaded<T>>,
    origin: &Origin,
    doc: Value,
    kind: &str,
    name: &str,
    namespace: Option<Option<String>>,
    meta: impl Fn(&mut T) -> &mut ObjectMeta,
) -> Result<(), LoadError> {
    let label = match &namespace {
        Some(ns) => format!("{kind} {}/{name}", ns.as_deref().unwrap_or("default")),
        None => format!("{kind} {name}"),
    };
    let mut obj: T = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        LoadError::field(
            origin,
            &label,
            if path == "." { "<document>" } else { &path },
            LoadErrorKind::Schema(msg),
        )
    })?;
    let m = meta(&mut obj);
    if m.name.as_deref().is_none_or(str::is_empty) {
        return Err(LoadError::field(
            origin,
            &label,
            "metadata.name",
            LoadErrorKind::Missing,
        ));
    }
    if namespace.is_some() && m.namespace.as_deref().is_none_or(str::is_empty) {
        m.namespace = Some("default".to_owned());
    }
    list.push(Loaded {
        origin: origin.clone(),
        object: obj,
    });
    Ok(())
}
