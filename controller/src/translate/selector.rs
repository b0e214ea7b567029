//! Label selectors (`metav1.LabelSelector`): validation and evaluation.
//!
//! Semantics as in `k8s.io/apimachinery/pkg/labels`: `matchLabels` and every
//! `matchExpressions` entry are ANDed; an empty selector (`{}`) selects
//! everything; `In` needs the key present with one of the values, `NotIn`
//! matches when the key is absent or has none of the values, `Exists` and
//! `DoesNotExist` test the key only.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Checks operators, value lists and key syntax; `Err((field suffix, why))`.
pub(crate) fn validate(sel: &LabelSelector) -> Result<(), (String, String)> {
    if let Some(ml) = &sel.match_labels {
        for (k, v) in ml {
            check_key(k).map_err(|e| (format!("matchLabels.{k}"), e))?;
            check_value(v).map_err(|e| (format!("matchLabels.{k}"), e))?;
        }
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let at = |f: &str| format!("matchExpressions[{i}]{f}");
        check_key(&e.key).map_err(|m| (at(".key"), m))?;
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" => {
                if n == 0 {
                    return Err((
                        at(".values"),
                        format!("operator {} needs at least one value", e.operator),
                    ));
                }
                for v in e.values.iter().flatten() {
                    check_value(v).map_err(|m| (at(".values"), m))?;
                }
            }
            "Exists" | "DoesNotExist" => {
                if n != 0 {
                    return Err((
                        at(".values"),
                        format!("operator {} takes no values", e.operator),
                    ));
                }
            }
            op => {
                return Err((
                    at(".operator"),
                    format!("unknown operator {op:?} (In, NotIn, Exists, DoesNotExist)"),
                ));
            }
        }
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// A label value: empty, or up to 63 characters `[A-Za-z0-9_.-]`,
/// alphanumeric at both ends.
fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    let ok = v.len() <= 63
        && v.chars().all(is_name_char)
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("{v:?} is not a valid label value"))
    }
}

/// A label key: `[prefix/]name`, name as a value but non-empty, prefix a DNS
/// subdomain of at most 253 characters.
fn check_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let bad = || Err(format!("{k:?} is not a valid label key"));
    if name.is_empty() || check_value(name).is_err() {
        return bad();
    }
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// True if `labels` satisfy `sel` (which [`validate`] accepted; an unknown
/// operator matches nothing).
pub(crate) fn matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels
        && !ml.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    sel.match_expressions.iter().flatten().all(|e| {
        let val = labels.get(&e.key);
        let in_values = |v: &String| e.values.iter().flatten().any(|x| x == v);
        match e.operator.as_str() {
            "In" => val.is_some_and(in_values),
            "NotIn" => !val.is_some_and(in_values),
            "Exists" => val.is_some(),
            "DoesNotExist" => val.is_none(),
            _ => false,
        }
    })
}

/// An index of pods (positions in a list sorted by namespace, then name)
/// by namespace and by label `key=value`, so that a selector is evaluated
/// only on the pods that can match it: the shortest posting list of its
/// `matchLabels` pairs and `In` expressions, or, for a selector without
/// such a positive term, the pods of the namespaces in question. Every
/// candidate is still checked with [`matches`], so the index only prunes.
#[derive(Debug, Default, Clone)]
pub(crate) struct PodIndex {
    /// Namespace -> `start..end` in the pod list (contiguous: sorted by namespace).
    ns_range: BTreeMap<String, (usize, usize)>,
    /// Namespace -> its ordinal (position in name order).
    ns_ordinal: BTreeMap<String, usize>,
    /// Per pod position: the ordinal of its namespace.
    pod_ns: Vec<usize>,
    /// `key` -> `value` -> pod positions, ascending.
    labels: BTreeMap<String, BTreeMap<String, Vec<usize>>>,
}

impl PodIndex {
    /// Indexes `pods` (`(namespace, labels)` in namespace order).
    pub(crate) fn build<'a>(
        pods: impl Iterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
    ) -> PodIndex {
        let mut ix = PodIndex::default();
        for (i, (ns, labels)) in pods.enumerate() {
            match ix.ns_range.get_mut(ns) {
                Some(r) => r.1 = i + 1,
                None => {
                    ix.ns_range.insert(ns.to_owned(), (i, i + 1));
                    let k = ix.ns_ordinal.len();
                    ix.ns_ordinal.insert(ns.to_owned(), k);
                }
            }
            ix.pod_ns.push(ix.ns_ordinal.len() - 1);
            for (k, v) in labels {
                ix.labels
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default()
                    .push(i);
            }
        }
        ix
    }

    /// The positions of the pods of `ns`.
    pub(crate) fn namespace(&self, ns: &str) -> std::ops::Range<usize> {
        self.ns_range.get(ns).map_or(0..0, |&(a, b)| a..b)
    }

    /// Number of namespaces that have pods.
    pub(crate) fn namespace_count(&self) -> usize {
        self.ns_ordinal.len()
    }

    /// The ordinal of a namespace that has pods.
    pub(crate) fn namespace_ordinal(&self, ns: &str) -> Option<usize> {
        self.ns_ordinal.get(ns).copied()
    }

    /// The namespace ordinal of the pod at position `i`.
    pub(crate) fn pod_namespace(&self, i: usize) -> usize {
        self.pod_ns[i]
    }

    /// Namespaces that have pods, with their position ranges.
    pub(crate) fn namespaces(&self) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
        self.ns_range.iter().map(|(n, &(a, b))| (n.as_str(), a..b))
    }

    /// A superset of the pods `sel` matches, ascending, or `None` when the
    /// selector has no positive term (`matchLabels`, `In`) to narrow with.
    pub(crate) fn candidates(&self, sel: &LabelSelector) -> Option<Vec<usize>> {
        let mut best: Option<Vec<usize>> = None;
        let mut consider = |v: Vec<usize>| {
            if best.as_ref().is_none_or(|b| v.len() < b.len()) {
                best = Some(v);
            }
        };
        if let Some(ml) = &sel.match_labels {
            for (k, v) in ml {
                let list = self.labels.get(k).and_then(|m| m.get(v));
                consider(list.cloned().unwrap_or_default());
            }
        }
        for e in sel.match_expressions.iter().flatten() {
            if e.operator != "In" {
                continue;
            }
            let Some(m) = self.labels.get(&e.key) else {
                consider(Vec::new());
                continue;
            };
            let mut v: Vec<usize> = e
                .values
                .iter()
                .flatten()
                .filter_map(|x| m.get(x))
                .flatten()
                .copied()
                .collect();
            v.sort_unstable();
            v.dedup();
            consider(v);
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: if values.is_empty() {
                    None
                } else {
                    Some(values.iter().map(|s| s.to_string()).collect())
                },
            }]),
        }
    }

    #[test]
    fn operators() {
        let a = labels(&[("app", "web"), ("tier", "fe")]);
        let none = labels(&[]);
        assert!(
            matches(&LabelSelector::default(), &none),
            "empty selector selects all"
        );
        assert!(matches(&expr("app", "In", &["web", "db"]), &a));
        assert!(!matches(&expr("app", "In", &["db"]), &a));
        assert!(!matches(&expr("app", "In", &["web"]), &none));
        assert!(matches(&expr("app", "NotIn", &["db"]), &a));
        assert!(
            matches(&expr("app", "NotIn", &["db"]), &none),
            "NotIn matches an absent key"
        );
        assert!(!matches(&expr("app", "NotIn", &["web"]), &a));
        assert!(matches(&expr("tier", "Exists", &[]), &a));
        assert!(!matches(&expr("tier", "Exists", &[]), &none));
        assert!(matches(&expr("tier", "DoesNotExist", &[]), &none));
        assert!(!matches(&expr("tier", "DoesNotExist", &[]), &a));
        let both = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            ..expr("tier", "In", &["be"])
        };
        assert!(!matches(&both, &a), "matchLabels AND matchExpressions");
    }

    #[test]
    fn validation() {
        assert!(validate(&expr("app", "In", &[])).is_err());
        assert!(validate(&expr("app", "Exists", &["x"])).is_err());
        assert_eq!(
            validate(&expr("app", "Equals", &["x"])).unwrap_err().0,
            "matchExpressions[0].operator"
        );
        assert!(validate(&expr("bad key!", "Exists", &[])).is_err());
        assert!(validate(&expr("example.com/app", "Exists", &[])).is_ok());
        assert!(validate(&expr("app", "In", &["-bad"])).is_err());
    }
}
