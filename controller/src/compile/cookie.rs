//! Flow cookies: every compiled flow carries the cookie of the logical
//! object (and rule) that produced it, so `dump-flows`, `trace` and
//! `weftctl policy check` can name "NetworkPolicy x/allow-web ingress[0]".
//!
//! A cookie is the 64-bit FNV-1a hash of the source's kind, namespace, name
//! and rule (fixed, seedless: the same object always gets the same cookie,
//! on every node and in every compile, which full-vs-incremental equality
//! needs). The node learns the mapping through the ctl `SetCookieInfo`
//! message ([`CookieInfo`]), whose `rule` field encodes the
//! [`RuleRef`] as:
//!
//! | bits | meaning |
//! |---|---|
//! | 31 | 0 = `spec.ingress`, 1 = `spec.egress` |
//! | 29..=30 | 0 = the rule, 1 = its return traffic, 2 = return traffic at the peer |
//! | 0..=28 | index of the rule in its list |
//!
//! and `0xffff_ffff` when the source has no rule (a pod, a switch, the
//! pipeline's own defaults).

use protocol::ctl::CookieInfo;
use protocol::flow::Cookie;

use crate::model::{RuleDirection, RulePart, RuleRef, SourceRef, ids::fnv1a64};

/// `rule` value of a source without a rule.
pub const NO_RULE: u32 = u32::MAX;

/// The cookie of `src`.
pub fn cookie_of(src: &SourceRef) -> Cookie {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(src.kind.as_str().as_bytes());
    bytes.push(0);
    if let Some(ns) = &src.namespace {
        bytes.extend_from_slice(ns.as_bytes());
    }
    bytes.push(0);
    bytes.extend_from_slice(src.name.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&encode_rule(src.rule).to_be_bytes());
    // 0 is "no cookie" in OpenFlow tools and all ones means "table miss"
    // in packet-ins: never produce either.
    match fnv1a64(&bytes) {
        0 | u64::MAX => Cookie(1),
        h => Cookie(h),
    }
}

/// The `rule` field of a [`CookieInfo`] (see the module doc).
pub fn encode_rule(rule: Option<RuleRef>) -> u32 {
    let Some(r) = rule else { return NO_RULE };
    let dir = match r.direction {
        RuleDirection::Ingress => 0,
        RuleDirection::Egress => 1u32 << 31,
    };
    let part = match r.part {
        RulePart::Allow => 0,
        RulePart::ReturnLocal => 1u32 << 29,
        RulePart::ReturnPeer => 2u32 << 29,
    };
    dir | part | (r.index & 0x1fff_ffff)
}

/// Inverse of [`encode_rule`].
pub fn decode_rule(v: u32) -> Option<RuleRef> {
    if v == NO_RULE {
        return None;
    }
    let direction = if v & (1 << 31) != 0 {
        RuleDirection::Egress
    } else {
        RuleDirection::Ingress
    };
    let part = match (v >> 29) & 3 {
        0 => RulePart::Allow,
        1 => RulePart::ReturnLocal,
        _ => RulePart::ReturnPeer,
    };
    Some(RuleRef {
        direction,
        index: v & 0x1fff_ffff,
        part,
    })
}

/// The ctl cookie-table entry for `src`.
pub fn cookie_info(src: &SourceRef) -> CookieInfo {
    CookieInfo {
        cookie: cookie_of(src),
        kind: src.kind.as_str().to_owned(),
        namespace: src.namespace.clone().unwrap_or_default(),
        name: src.name.clone(),
        rule: encode_rule(src.rule),
    }
}

/// A [`SourceRef`] back from a [`CookieInfo`] (for printing).
pub fn source_of(info: &CookieInfo) -> String {
    let mut s = format!("{} ", info.kind);
    if !info.namespace.is_empty() {
        s.push_str(&info.namespace);
        s.push('/');
    }
    s.push_str(&info.name);
    if let Some(r) = decode_rule(info.rule) {
        let d = match r.direction {
            RuleDirection::Ingress => "ingress",
            RuleDirection::Egress => "egress",
        };
        s.push_str(&format!(" {d}[{}]", r.index));
        match r.part {
            RulePart::Allow => {}
            RulePart::ReturnLocal => s.push_str(" (return traffic)"),
            RulePart::ReturnPeer => s.push_str(" (return traffic, peer side)"),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceKind;

    #[test]
    fn rule_encoding_round_trips_and_cookies_differ() {
        let a = SourceRef::namespaced(SourceKind::NetworkPolicy, "x", "p").with_rule(
            RuleDirection::Egress,
            3,
            RulePart::ReturnPeer,
        );
        let b = SourceRef::namespaced(SourceKind::NetworkPolicy, "x", "p").with_rule(
            RuleDirection::Ingress,
            3,
            RulePart::Allow,
        );
        assert_eq!(decode_rule(encode_rule(a.rule)), a.rule);
        assert_eq!(decode_rule(encode_rule(None)), None);
        assert_ne!(cookie_of(&a), cookie_of(&b));
        assert_eq!(cookie_of(&a), cookie_of(&a.clone()));
        assert_eq!(source_of(&cookie_info(&a)), a.to_string());
        assert_eq!(source_of(&cookie_info(&b)), b.to_string());
    }
}
