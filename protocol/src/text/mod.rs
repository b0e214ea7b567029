//! The `ovs-ofctl` flow syntax: parser and printer over the typed
//! vocabulary of [`crate::flow`].
//!
//! * [`parse_flow`] reads one `add-flow` line
//!   (`table=0,priority=100,ip,nw_dst=10.0.0.0/24,actions=resubmit(,1)`),
//!   also accepting `ovs-ofctl dump-flows` output (statistics are ignored).
//! * [`parse_match`] and [`parse_actions`] read the two halves alone.
//! * [`format_flow`], [`format_flow_with_stats`], [`format_match`] and
//!   [`format_actions`] print in the `dump-flows` layout, field order and
//!   shorthands of OVS (`match_format` in lib/match.c, `format_*` in
//!   lib/ofp-actions.c), so that `parse_flow(&format_flow(&f)) == Ok(f)` for
//!   every valid [`FlowSpec`].
//! * [`format_flow_key`] and [`flow_key_fields`] print an exact packet key as
//!   the `Flow:` line of `ofproto/trace` (OVS `flow_format`).
//!
//! # Syntax
//!
//! Items are separated by commas or white space. A match item is a protocol
//! shorthand (`ip`, `ipv6`, `tcp`, `udp`, `sctp`, `icmp`, `tcp6`, `udp6`,
//! `sctp6`, `icmp6`, `arp`) or `field=value[/mask]`, with the field names
//! of [`Field::from_name`](crate::flow::Field::from_name). Items may come
//! in any order: prerequisites (`nw_src` needs `ip` or `arp`) are checked
//! once the whole match has been read, and are errors (OVS silently drops
//! such fields instead). A field given twice with different values, or
//! items that contradict each other (`ip,ipv6`), are errors.
//! `actions=` (or `action=`) takes the rest of the line; a `#` starts a
//! comment.
//!
//! # Differences from OVS
//!
//! * Only the fields and actions of [`crate::flow`] exist; anything else is
//!   an unknown field or action. `output(port=..,max_len=..)`,
//!   `dec_ttl(ids)`, `controller(id=..,userdata=..)` and `resubmit(,,ct)`
//!   are rejected.
//! * `set_field` prints the field's own format from the registry (for
//!   example `vlan_vid` in hex) and our field name, except `eth_src`,
//!   `eth_dst`, `eth_type`, `ip_src`, `ip_dst`, `ip_frag` which follow OVS;
//!   `tp_src`/`tp_dst` print as such (OVS says `tcp_src`, `udp_src`, ...).
//! * `load`/`move` print NXM names where one exists for our field, else
//!   our name (`tp_src[]`, `icmp_type[]`).
//! * `controller` with reason `action` prints `CONTROLLER:N`, as OVS; an
//!   `Output(PortNo::CONTROLLER)` prints `output:CONTROLLER`.
//! * Matching `tun_metadataN` also matches "option present" (as in OVS).
//! * `tun_flags` accepts `oam`, `df`, `csum` and `key` (OVS matches `oam`
//!   only).
//! * `format_flow_key` shows `tp_src`/`tp_dst` of ICMP only for IPv4 and of
//!   ICMPv6 only for IPv6 (OVS shows them for either), so the line always
//!   parses back with [`parse_match`], except for ND packets, whose line
//!   shows both `nd_sll` and `nd_tll` as OVS does.
//! * The inner tag of a double-tagged packet (`vlan_tci1`, `dl_vlan1`,
//!   `dl_vlan_pcp1`, as trace lines show it) can be matched, but only with
//!   an outer tag match.
//! * A cookie mask is printed (`cookie=0x1/0xff`) when non-zero, so it
//!   survives a round trip; OVS rejects a mask in `add-flow`.

use core::fmt::Write as _;

use crate::flow::{Action, Cookie, FlowKey, FlowSpec, Match, Priority, TableId};

mod actions;
mod error;
mod flow_key;
mod match_;
mod value;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests_ovs;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests_prop;

pub use error::TextError;

use value::{key_values, parse_uint_bits, parse_uint_max};

/// Flow statistics printed by [`format_flow_with_stats`], as
/// `ovs-ofctl dump-flows` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowStats {
    /// Time since the flow was added, in milliseconds (`duration=1.234s`).
    pub duration_ms: u64,
    /// Packets matched (`n_packets=`).
    pub n_packets: u64,
    /// Bytes matched (`n_bytes=`).
    pub n_bytes: u64,
    /// Seconds since the flow last matched (`idle_age=`).
    pub idle_age_s: u64,
}

/// Cuts a `#` comment off.
fn strip_comment(s: &str) -> &str {
    match s.find('#') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Splits `head actions=tail` at an `action=` or `actions=` keyword that
/// starts an item.
fn split_actions(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(off) = s[from..].find("action") {
        let i = from + off;
        let at_item_start = i == 0 || b",\t\r\n ".contains(&b[i - 1]);
        let mut j = i + "action".len();
        if s[j..].starts_with('s') {
            j += 1;
        }
        let rest = s[j..].trim_start_matches([' ', '\t']);
        if at_item_start && let Some(tail) = rest.strip_prefix('=') {
            return Some((&s[..i], tail));
        }
        from = j;
    }
    None
}

/// What the non-match, non-action items of a flow line set.
fn flow_keyword(spec: &mut FlowSpec, key: &str, value: &str) -> Result<bool, TextError> {
    const IGNORED_WITH_VALUE: [&str; 6] = [
        "duration",
        "n_packets",
        "n_bytes",
        "idle_age",
        "hard_age",
        "importance",
    ];
    const IGNORED_FLAGS: [&str; 7] = [
        "send_flow_rem",
        "check_overlap",
        "reset_counts",
        "no_packet_counts",
        "no_byte_counts",
        "no_readonly_table",
        "allow_hidden_fields",
    ];
    if IGNORED_FLAGS.contains(&key) || IGNORED_WITH_VALUE.contains(&key) {
        return Ok(true);
    }
    if !matches!(
        key,
        "table" | "priority" | "idle_timeout" | "hard_timeout" | "cookie"
    ) {
        return Ok(false);
    }
    if value.is_empty() {
        return Err(TextError::MissingValue {
            field: key.to_owned(),
        });
    }
    match key {
        "table" => {
            spec.table = TableId(parse_uint_max(key, value, u128::from(TableId::MAX.0))? as u8)
        }
        "priority" => spec.priority = Priority(parse_uint_bits(key, value, 16)? as u16),
        "idle_timeout" => spec.idle_timeout = parse_uint_bits(key, value, 16)? as u16,
        "hard_timeout" => spec.hard_timeout = parse_uint_bits(key, value, 16)? as u16,
        _ => {
            let (v, m) = match value.split_once('/') {
                Some((v, m)) => (v, Some(m)),
                None => (value, None),
            };
            spec.cookie = Cookie(parse_uint_bits(key, v, 64)? as u64);
            spec.cookie_mask = match m {
                Some(m) => parse_uint_bits(key, m, 64)? as u64,
                None => 0,
            };
        }
    }
    Ok(true)
}

/// Parses one `ovs-ofctl add-flow` line (or a line of `dump-flows`
/// output): `[table=N] [priority=P] [cookie=C[/M]] [idle_timeout=S]
/// [hard_timeout=S] match... actions=...`.
///
/// ```
/// use protocol::text::{format_flow, parse_flow};
/// let f = parse_flow("table=1,priority=100,ip,nw_dst=10.0.0.0/24,actions=resubmit(,2)")?;
/// assert_eq!(f.priority.0, 100);
/// assert_eq!(format_flow(&f), "table=1, priority=100,ip,nw_dst=10.0.0.0/24 actions=resubmit(,2)");
/// # Ok::<(), protocol::text::TextError>(())
/// ```
pub fn parse_flow(s: &str) -> Result<FlowSpec, TextError> {
    let s = strip_comment(s);
    let (head, acts) = split_actions(s).ok_or(TextError::MissingActions)?;
    let mut spec = FlowSpec::default();
    let mut b = match_::MatchBuilder::default();
    for kv in key_values(head) {
        let kv = kv?;
        if b.item(kv.key, kv.value, kv.delim)? || flow_keyword(&mut spec, kv.key, kv.value)? {
            continue;
        }
        return Err(TextError::UnknownField {
            name: kv.key.to_owned(),
        });
    }
    spec.r#match = b.finish()?;
    spec.actions = actions::parse_actions_str(acts)?;
    for a in &spec.actions {
        if let Action::GotoTable(t) = a
            && *t <= spec.table
        {
            return Err(TextError::action(
                "goto_table",
                format!("table {t} is not after this flow's table {}", spec.table),
            ));
        }
    }
    Ok(spec)
}

/// Parses a match alone (`del-flows` patterns, trace flows):
/// `tcp,nw_src=10.0.0.1,tp_dst=80`. The empty string is the catch-all.
pub fn parse_match(s: &str) -> Result<Match, TextError> {
    match_::parse_match_str(strip_comment(s))
}

/// Parses an action list (the text after `actions=`); `drop` or the empty
/// string is the empty list.
pub fn parse_actions(s: &str) -> Result<Vec<Action>, TextError> {
    actions::parse_actions_str(s)
}

/// Formats a match in OVS `match_format` order with its shorthands
/// (`tcp,nw_src=10.0.0.1,tp_dst=80`); the catch-all is the empty string.
pub fn format_match(m: &Match) -> String {
    match_::format_match_str(m)
}

/// Formats an action list; the empty list is `drop`.
pub fn format_actions(a: &[Action]) -> String {
    actions::format_actions_str(a)
}

fn format_flow_inner(f: &FlowSpec, stats: Option<&FlowStats>) -> String {
    let mut s = String::new();
    if stats.is_some() || f.cookie.0 != 0 || f.cookie_mask != 0 {
        let _ = write!(s, "cookie={:#x}", f.cookie.0);
        if f.cookie_mask != 0 {
            let _ = write!(s, "/{:#x}", f.cookie_mask);
        }
        s.push_str(", ");
    }
    if let Some(st) = stats {
        let _ = write!(s, "duration={}", st.duration_ms / 1000);
        if st.duration_ms % 1000 != 0 {
            let _ = write!(s, ".{:03}", st.duration_ms % 1000);
        }
        s.push_str("s, ");
    }
    if stats.is_some() || f.table.0 != 0 {
        let _ = write!(s, "table={}, ", f.table);
    }
    if let Some(st) = stats {
        let _ = write!(s, "n_packets={}, n_bytes={}, ", st.n_packets, st.n_bytes);
    }
    if f.idle_timeout != 0 {
        let _ = write!(s, "idle_timeout={}, ", f.idle_timeout);
    }
    if f.hard_timeout != 0 {
        let _ = write!(s, "hard_timeout={}, ", f.hard_timeout);
    }
    if let Some(st) = stats {
        let _ = write!(s, "idle_age={}, ", st.idle_age_s);
    }
    let m = format_match(&f.r#match);
    let mut head = String::new();
    if f.priority != Priority::DEFAULT {
        let _ = write!(head, "priority={}", f.priority.0);
    }
    if !m.is_empty() {
        if !head.is_empty() {
            head.push(',');
        }
        head.push_str(&m);
    }
    if !head.is_empty() {
        s.push_str(&head);
        s.push(' ');
    }
    s.push_str("actions=");
    s.push_str(&format_actions(&f.actions));
    s
}

/// Formats a flow as `ovs-ofctl --no-stats dump-flows` does:
/// `cookie=0x5, table=1, idle_timeout=10, priority=100,ip actions=drop`,
/// omitting a zero cookie, table 0, zero timeouts and the default
/// priority.
pub fn format_flow(f: &FlowSpec) -> String {
    format_flow_inner(f, None)
}

/// Formats a flow with statistics as `ovs-ofctl dump-flows` does:
/// `cookie=0x0, duration=1.5s, table=0, n_packets=3, n_bytes=180,
/// idle_age=2, priority=100,ip actions=drop`. [`parse_flow`] reads it back
/// (ignoring the statistics).
pub fn format_flow_with_stats(f: &FlowSpec, stats: &FlowStats) -> String {
    format_flow_inner(f, Some(stats))
}

/// Formats an exact packet key as the `Flow:` line of `ovs-appctl
/// ofproto/trace` (OVS `flow_format`), e.g.
/// `tcp,in_port=1,vlan_tci=0x0000,dl_src=50:54:00:00:00:05,...,tcp_flags=syn`:
/// only the fields a packet of its type has; port, registers, metadata and
/// tunnel only when set.
pub fn format_flow_key(k: &FlowKey) -> String {
    match_::join_items(&match_::match_items(&flow_key::packet_match(k)))
}

/// The fields of [`format_flow_key`] as (name, value) pairs in the same
/// order, for JSON output. A shorthand (`tcp`) appears as the `dl_type` and
/// `nw_proto` pairs it stands for, so every pair is a field that
/// [`parse_match`] accepts.
pub fn flow_key_fields(k: &FlowKey) -> Vec<(&'static str, String)> {
    flow_key::key_fields(k)
}
