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
