//! Actions and instructions: parsing and printing the `ovs-actions(7)`
//! syntax (OVS lib/ofp-actions.c `ofpacts_parse__` and `format_*`).

use core::net::Ipv4Addr;

use super::error::TextError;
use super::value::{
    Delim, KeyValue, format_field_value, hex_c, key_values, parse_field_value, parse_port,
    parse_uint, parse_uint_bits, parse_uint_max,
};
use crate::flow::action::{Action, ControllerReason, SubField};
use crate::flow::field::Field;
use crate::flow::{PortNo, TableId};
use crate::wire::EthernetAddress;

/// The NXM name `load`/`move` print for a field, as OVS
/// `mf_format_subfield` does; `None` where our field has no single NXM
/// name (then the `ovs-ofctl` name is printed).
pub(crate) fn nxm_name(f: Field) -> Option<String> {
    Some(
        match f {
            Field::InPort => "NXM_OF_IN_PORT",
            Field::Reg(i) => return Some(format!("NXM_NX_REG{i}")),
            Field::TunMetadata(i) => return Some(format!("NXM_NX_TUN_METADATA{i}")),
            Field::Metadata => "OXM_OF_METADATA",
            Field::TunId => "NXM_NX_TUN_ID",
            Field::TunSrc => "NXM_NX_TUN_IPV4_SRC",
            Field::TunDst => "NXM_NX_TUN_IPV4_DST",
            Field::TunIpv6Src => "NXM_NX_TUN_IPV6_SRC",
            Field::TunIpv6Dst => "NXM_NX_TUN_IPV6_DST",
            Field::TunFlags => "NXM_NX_TUN_FLAGS",
            Field::DlSrc => "NXM_OF_ETH_SRC",
            Field::DlDst => "NXM_OF_ETH_DST",
            Field::DlType => "NXM_OF_ETH_TYPE",
            Field::VlanTci => "NXM_OF_VLAN_TCI",
            Field::NwSrc => "NXM_OF_IP_SRC",
            Field::NwDst => "NXM_OF_IP_DST",
            Field::Ipv6Src => "NXM_NX_IPV6_SRC",
            Field::Ipv6Dst => "NXM_NX_IPV6_DST",
            Field::Ipv6Label => "NXM_NX_IPV6_LABEL",
            Field::NwProto => "NXM_OF_IP_PROTO",
            Field::NwTos => "NXM_OF_IP_TOS",
            Field::NwEcn => "NXM_NX_IP_ECN",
            Field::NwTtl => "NXM_NX_IP_TTL",
            Field::NwFrag => "NXM_NX_IP_FRAG",
            Field::TcpFlags => "NXM_NX_TCP_FLAGS",
            Field::ArpOp => "NXM_OF_ARP_OP",
            Field::ArpSpa => "NXM_OF_ARP_SPA",
            Field::ArpTpa => "NXM_OF_ARP_TPA",
            Field::ArpSha => "NXM_NX_ARP_SHA",
            Field::ArpTha => "NXM_NX_ARP_THA",
            Field::NdTarget => "NXM_NX_ND_TARGET",
            Field::NdSll => "NXM_NX_ND_SLL",
            Field::NdTll => "NXM_NX_ND_TLL",
            Field::ConjId
            | Field::DlVlan
            | Field::VlanVid
            | Field::VlanPcp
            | Field::IpDscp
            | Field::TpSrc
            | Field::TpDst
            | Field::IcmpType
            | Field::IcmpCode => return None,
        }
        .to_owned(),
    )
}

/// The name `set_field` prints after `->` (OVS `mf_field.name` where ours
/// differs and is unambiguous).
fn set_field_name(f: Field) -> &'static str {
    match f {
        Field::DlSrc => "eth_src",
        Field::DlDst => "eth_dst",
        Field::DlType => "eth_type",
        Field::NwSrc => "ip_src",
        Field::NwDst => "ip_dst",
        Field::NwFrag => "ip_frag",
        _ => f.name(),
    }
}

/// Formats a subfield: `NXM_NX_REG0[]`, `NXM_NX_REG0[3]`,
/// `NXM_NX_REG0[0..15]`.
pub(crate) fn format_subfield(sf: &SubField) -> String {
    let name = nxm_name(sf.field).unwrap_or_else(|| sf.field.name().to_owned());
    if sf.ofs == 0 && sf.n_bits == sf.field.width() {
        format!("{name}[]")
    } else if sf.n_bits == 1 {
        format!("{name}[{}]", sf.ofs)
    } else {
        format!(
            "{name}[{}..{}]",
            sf.ofs,
            u16::from(sf.ofs) + u16::from(sf.n_bits) - 1
        )
    }
}

/// Parses a subfield: `field`, `field[]`, `field[bit]` or
/// `field[start..end]`, by any name [`Field::from_name`] knows.
pub(crate) fn parse_subfield(action: &str, s: &str) -> Result<SubField, TextError> {
    let (name, range) = match s.find('[') {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let field = Field::from_name(name)
        .ok_or_else(|| TextError::action(action, format!("unknown field \"{name}\"")))?;
    let width = u32::from(field.width());
    let syntax = || {
        TextError::action(
            action,
            format!("\"{s}\": expected field, field[], field[bit] or field[start..end]"),
        )
    };
    let (start, end) = match range {
        None | Some("[]") => (0, width.saturating_sub(1)),
        Some(r) => {
            let inner = r
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or_else(syntax)?;
            let num = |t: &str| {
                parse_uint(t)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(syntax)
            };
            match inner.split_once("..") {
                Some((a, b)) => (num(a)?, num(b)?),
                None => {
                    let a = num(inner)?;
                    (a, a)
                }
            }
        }
    };
    if start > end || end >= width {
        return Err(TextError::action(
            action,
            format!("\"{s}\" is not a valid bit range of {name} ({width} bits)"),
        ));
    }
    let sf = SubField {
        field,
        ofs: start as u8,
        n_bits: (end - start + 1) as u8,
    };
    debug_assert!(sf.is_valid());
    Ok(sf)
}

fn check_writable(action: &str, f: Field) -> Result<(), TextError> {
    if f.info().writable {
        Ok(())
    } else {
        Err(TextError::action(
            action,
            format!("field \"{}\" is not writable", f.name()),
        ))
    }
}

fn parse_table(action: &str, text: &str) -> Result<TableId, TextError> {
    let v = parse_uint(text).ok_or_else(|| TextError::invalid(action, text, "a table number"))?;
    if v > u128::from(TableId::MAX.0) {
        return Err(TextError::action(
            action,
            format!("table {text} out of range (0..={})", TableId::MAX.0),
        ));
    }
    Ok(TableId(v as u8))
}

fn parse_reason(text: &str) -> Option<ControllerReason> {
    Some(match text {
        "action" => ControllerReason::Action,
        "no_match" => ControllerReason::NoMatch,
        "invalid_ttl" => ControllerReason::InvalidTtl,
        _ => return None,
    })
}

fn reason_name(r: ControllerReason) -> &'static str {
    match r {
        ControllerReason::Action => "action",
        ControllerReason::NoMatch => "no_match",
        ControllerReason::InvalidTtl => "invalid_ttl",
    }
}

fn parse_controller(kv: &KeyValue<'_>) -> Result<Action, TextError> {
    let mut max_len = u16::MAX;
    let mut reason = ControllerReason::Action;
    let parse_len = |t: &str| parse_uint_bits("controller", t, 16).map(|v| v as u16);
    match kv.delim {
        Delim::None => {}
        Delim::Assign => max_len = parse_len(kv.value)?,
        Delim::Paren => {
            for inner in key_values(kv.value) {
                let inner = inner?;
                match inner.key {
                    "reason" => {
                        reason = parse_reason(inner.value).ok_or_else(|| {
                            TextError::invalid(
                                "controller",
                                inner.value,
                                "a reason (action, no_match or invalid_ttl)",
                            )
                        })?
                    }
                    "max_len" => max_len = parse_len(inner.value)?,
                    k => {
                        return Err(TextError::action(
                            "controller",
                            format!("unknown or unsupported key \"{k}\""),
                        ));
                    }
                }
            }
        }
    }
    Ok(Action::Controller { max_len, reason })
}

fn parse_resubmit(kv: &KeyValue<'_>) -> Result<Action, TextError> {
    const A: &str = "resubmit";
    let (port_s, table_s) = match kv.delim {
        Delim::Assign => (kv.value, ""),
        Delim::Paren => {
            let mut parts = kv.value.split(',');
            let p = parts.next().unwrap_or("");
            let t = parts.next().unwrap_or("");
            if let Some(extra) = parts.next() {
                return Err(TextError::action(
                    A,
                    format!("unknown or unsupported parameter \"{extra}\""),
                ));
            }
            (p.trim(), t.trim())
        }
        Delim::None => ("", ""),
    };
    let port = match port_s {
        "" => None,
        p => Some(parse_port(A, p)?),
    };
    let table = match table_s {
        "" => None,
        t => Some(parse_table(A, t)?),
    };
    if port.is_none() && table.is_none() {
        return Err(TextError::action(
            A,
            "at least one of in_port and table must be given",
        ));
    }
    Ok(Action::Resubmit { port, table })
}

fn split_arrow<'a>(action: &str, s: &'a str) -> Result<(&'a str, &'a str), TextError> {
    s.split_once("->")
        .ok_or_else(|| TextError::action(action, format!("\"{s}\": expected \"...->destination\"")))
}

fn parse_set_field(value: &str) -> Result<Action, TextError> {
    const A: &str = "set_field";
    let (v, name) = split_arrow(A, value)?;
    let field = Field::from_name(name)
        .ok_or_else(|| TextError::action(A, format!("unknown field \"{name}\"")))?;
    check_writable(A, field)?;
    let p = parse_field_value(field, A, v)?;
    if field == Field::NwTos && p.value & 3 != 0 {
        return Err(TextError::invalid(
            A,
            v,
            "a TOS value with the two ECN bits zero (a multiple of 4)",
        ));
    }
    Ok(Action::SetField {
        field,
        value: p.value,
        mask: p.mask,
    })
}

fn parse_load(value: &str) -> Result<Action, TextError> {
    const A: &str = "load";
    let (v, dst) = split_arrow(A, value)?;
    let dst = parse_subfield(A, dst)?;
    check_writable(A, dst.field)?;
    let n = parse_uint(v).ok_or_else(|| TextError::invalid(A, v, "an integer"))?;
    if dst.n_bits < 128 && n >> dst.n_bits != 0 {
        return Err(TextError::action(
            A,
            format!("value {v} does not fit into {} bits", dst.n_bits),
        ));
    }
    Ok(Action::Load { dst, value: n })
}

fn parse_move(value: &str) -> Result<Action, TextError> {
    const A: &str = "move";
    let (src, dst) = split_arrow(A, value)?;
    let src = parse_subfield(A, src)?;
    let dst = parse_subfield(A, dst)?;
    check_writable(A, dst.field)?;
    if src.n_bits != dst.n_bits {
        return Err(TextError::action(
            A,
            format!(
                "source and destination widths differ ({} vs {})",
                src.n_bits, dst.n_bits
            ),
        ));
    }
    Ok(Action::Move { src, dst })
}

fn parse_conjunction(value: &str) -> Result<Action, TextError> {
    const A: &str = "conjunction";
    let syntax = || TextError::action(A, format!("\"{value}\": syntax is conjunction(id,k/n)"));
    let (id, kn) = value.split_once(',').ok_or_else(syntax)?;
    let (k, n) = kn.split_once('/').ok_or_else(syntax)?;
    let id = parse_uint(id.trim()).ok_or_else(syntax)?;
    let id = u32::try_from(id).map_err(|_| TextError::range(A, &id.to_string(), "32 bits"))?;
    let k = parse_uint(k.trim()).ok_or_else(syntax)?;
    let n = parse_uint(n.trim()).ok_or_else(syntax)?;
    if !(2..=64).contains(&n) {
        return Err(TextError::action(
            A,
            format!("{n} clauses out of range (2..=64)"),
        ));
    }
    if k < 1 {
        return Err(TextError::action(A, "clause numbers start at 1"));
    }
    if k > n {
        return Err(TextError::action(
            A,
            format!("clause {k} exceeds {n} clauses"),
        ));
    }
    Ok(Action::Conjunction {
        id,
        clause: k as u8,
        n_clauses: n as u8,
    })
}

/// Instruction rank: plain actions 0, then `clear_actions`,
/// `write_actions`, `write_metadata`, `goto_table` (OpenFlow order).
fn rank(a: &Action) -> u8 {
    match a {
        Action::ClearActions => 1,
        Action::WriteActions(_) => 2,
        Action::WriteMetadata { .. } => 3,
        Action::GotoTable(_) => 4,
        _ => 0,
    }
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::ClearActions => "clear_actions",
        Action::WriteActions(_) => "write_actions",
        Action::WriteMetadata { .. } => "write_metadata",
        Action::GotoTable(_) => "goto_table",
        _ => "actions",
    }
}

/// Checks instruction placement: instructions after plain actions, in
/// OpenFlow order, each at most once; none inside `write_actions`.
fn verify(list: &[Action], nested: bool) -> Result<(), TextError> {
    let mut last = 0u8;
    for a in list {
        let r = rank(a);
        if r > 0 && nested {
            return Err(TextError::action(
                action_name(a),
                "instruction not allowed inside write_actions",
            ));
        }
        if r > 0 && r == last {
            return Err(TextError::action(
                action_name(a),
                "instruction may be given only once",
            ));
        }
        if r < last {
            return Err(TextError::action(
                action_name(a),
                "out of order: actions come first, then clear_actions, write_actions, \
                 write_metadata and goto_table",
            ));
        }
        last = r;
    }
    Ok(())
}

fn no_arg(kv: &KeyValue<'_>, a: Action) -> Result<Action, TextError> {
    if kv.delim == Delim::None {
        Ok(a)
    } else {
        Err(TextError::action(kv.key, "takes no argument"))
    }
}

fn need<'a>(kv: &KeyValue<'a>) -> Result<&'a str, TextError> {
    if kv.value.is_empty() {
        Err(TextError::MissingValue {
            field: kv.key.to_owned(),
        })
    } else {
        Ok(kv.value)
    }
}

fn parse_one(kv: &KeyValue<'_>) -> Result<Option<Action>, TextError> {
    let name = kv.key.to_ascii_lowercase();
    let a = match name.as_str() {
        "drop" => {
            if kv.delim != Delim::None {
                return Err(TextError::action("drop", "takes no argument"));
            }
            return Ok(None);
        }
        "output" => {
            if kv.delim == Delim::Paren {
                return Err(TextError::action("output", "output(...) is not supported"));
            }
            Action::Output(parse_port("output", need(kv)?)?)
        }
        "controller" => parse_controller(kv)?,
        "resubmit" => parse_resubmit(kv)?,
        "goto_table" => Action::GotoTable(parse_table("goto_table", need(kv)?)?),
        "write_metadata" => {
            let v = need(kv)?;
            let (vt, mt) = match v.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (v, None),
            };
            let value = parse_uint_bits("write_metadata", vt, 64)? as u64;
            let mask = match mt {
                Some(m) => parse_uint_bits("write_metadata", m, 64)? as u64,
                None => u64::MAX,
            };
            Action::WriteMetadata { value, mask }
        }
        "set_field" => parse_set_field(need(kv)?)?,
        "load" => parse_load(need(kv)?)?,
        "move" => parse_move(need(kv)?)?,
        "mod_dl_src" | "mod_dl_dst" => {
            let p = parse_field_value(Field::DlSrc, kv.key, need(kv)?)?;
            if p.masked {
                return Err(TextError::NotMaskable {
                    field: kv.key.to_owned(),
                    text: kv.value.to_owned(),
                });
            }
            let mac = EthernetAddress::from_u64(p.value as u64);
            if name == "mod_dl_src" {
                Action::ModDlSrc(mac)
            } else {
                Action::ModDlDst(mac)
            }
        }
        "mod_nw_src" | "mod_nw_dst" => {
            let v = need(kv)?;
            let ip: Ipv4Addr = v
                .parse()
                .map_err(|_| TextError::invalid(kv.key, v, "an IPv4 address"))?;
            if name == "mod_nw_src" {
                Action::ModNwSrc(ip)
            } else {
                Action::ModNwDst(ip)
            }
        }
        "mod_nw_tos" => {
            let v = need(kv)?;
            let tos = parse_uint_max(kv.key, v, 255)? as u8;
            if tos & 3 != 0 {
                return Err(TextError::invalid(
                    kv.key,
                    v,
                    "a TOS value with the two ECN bits zero (a multiple of 4)",
                ));
            }
            Action::ModNwTos(tos)
        }
        "mod_tp_src" => Action::ModTpSrc(parse_uint_bits(kv.key, need(kv)?, 16)? as u16),
        "mod_tp_dst" => Action::ModTpDst(parse_uint_bits(kv.key, need(kv)?, 16)? as u16),
        "dec_ttl" => no_arg(kv, Action::DecTtl)?,
        "push_vlan" => {
            let v = need(kv)?;
            let tpid = parse_uint_bits(kv.key, v, 16)? as u16;
            if tpid != 0x8100 && tpid != 0x88a8 {
                return Err(TextError::invalid(
                    kv.key,
                    v,
                    "a VLAN ethertype (0x8100 or 0x88a8)",
                ));
            }
            Action::PushVlan(tpid)
        }
        "pop_vlan" => no_arg(kv, Action::PopVlan)?,
        "strip_vlan" => no_arg(kv, Action::StripVlan)?,
        "mod_vlan_vid" => Action::ModVlanVid(parse_uint_max(kv.key, need(kv)?, 4095)? as u16),
        "mod_vlan_pcp" => Action::ModVlanPcp(parse_uint_max(kv.key, need(kv)?, 7)? as u8),
        "clear_actions" => no_arg(kv, Action::ClearActions)?,
        "write_actions" => {
            if kv.delim != Delim::Paren {
                return Err(TextError::action(
                    "write_actions",
                    "syntax is write_actions(...)",
                ));
            }
            let inner = parse_list(kv.value, true)?;
            Action::WriteActions(inner)
        }
        "conjunction" => {
            if kv.delim != Delim::Paren {
                return Err(TextError::action(
                    "conjunction",
                    "syntax is conjunction(id,k/n)",
                ));
            }
            parse_conjunction(kv.value)?
        }
        _ => {
            let port = PortNo::from_reserved_name(kv.key).or_else(|| {
                parse_uint(kv.key)
                    .and_then(|v| u32::try_from(v).ok())
                    .map(PortNo)
            });
            match port {
                Some(p) if kv.delim == Delim::None => Action::Output(p),
                _ => {
                    return Err(TextError::UnknownAction {
                        name: kv.key.to_owned(),
                    });
                }
            }
        }
    };
    Ok(Some(a))
}

fn parse_list(s: &str, nested: bool) -> Result<Vec<Action>, TextError> {
    let mut out = Vec::new();
    let mut drop = false;
    for kv in key_values(s) {
        match parse_one(&kv?)? {
            Some(a) => out.push(a),
            None => drop = true,
        }
    }
    if drop && !out.is_empty() {
        return Err(TextError::action(
            "drop",
            "must not be accompanied by any other action or instruction",
        ));
    }
    verify(&out, nested)?;
    Ok(out)
}

/// Parses an action list (the text after `actions=`).
pub(crate) fn parse_actions_str(s: &str) -> Result<Vec<Action>, TextError> {
    parse_list(s, false)
}

fn format_one(a: &Action, s: &mut String) {
    use core::fmt::Write as _;
    let _ = match a {
        Action::Output(p) => match p.reserved_name() {
            Some(n) if *p != PortNo::CONTROLLER => write!(s, "{n}"),
            _ => write!(s, "output:{p}"),
        },
        Action::Controller { max_len, reason } => {
            if *reason == ControllerReason::Action {
                write!(s, "CONTROLLER:{max_len}")
            } else if *max_len == u16::MAX {
                write!(s, "controller(reason={})", reason_name(*reason))
            } else {
                write!(
                    s,
                    "controller(reason={},max_len={max_len})",
                    reason_name(*reason)
                )
            }
        }
        Action::Resubmit { port, table } => match (port, table) {
            (Some(p), None) => write!(s, "resubmit:{p}"),
            _ => {
                s.push_str("resubmit(");
                if let Some(p) = port {
                    let _ = write!(s, "{p}");
                }
                s.push(',');
                if let Some(t) = table {
                    let _ = write!(s, "{t}");
                }
                write!(s, ")")
            }
        },
        Action::GotoTable(t) => write!(s, "goto_table:{t}"),
        Action::WriteMetadata { value, mask } => {
            let _ = write!(s, "write_metadata:{}", hex_c(u128::from(*value)));
            if *mask != u64::MAX {
                let _ = write!(s, "/{}", hex_c(u128::from(*mask)));
            }
            Ok(())
        }
        Action::SetField { field, value, mask } => write!(
            s,
            "set_field:{}->{}",
            format_field_value(*field, *value, *mask),
            set_field_name(*field)
        ),
        Action::Load { dst, value } => {
            write!(s, "load:{}->{}", hex_c(*value), format_subfield(dst))
        }
        Action::Move { src, dst } => {
            write!(s, "move:{}->{}", format_subfield(src), format_subfield(dst))
        }
        Action::ModDlSrc(m) => write!(s, "mod_dl_src:{m}"),
        Action::ModDlDst(m) => write!(s, "mod_dl_dst:{m}"),
        Action::ModNwSrc(ip) => write!(s, "mod_nw_src:{ip}"),
        Action::ModNwDst(ip) => write!(s, "mod_nw_dst:{ip}"),
        Action::ModNwTos(t) => write!(s, "mod_nw_tos:{t}"),
        Action::ModTpSrc(p) => write!(s, "mod_tp_src:{p}"),
        Action::ModTpDst(p) => write!(s, "mod_tp_dst:{p}"),
        Action::DecTtl => write!(s, "dec_ttl"),
        Action::PushVlan(t) => write!(s, "push_vlan:{}", hex_c(u128::from(*t))),
        Action::PopVlan => write!(s, "pop_vlan"),
        Action::StripVlan => write!(s, "strip_vlan"),
        Action::ModVlanVid(v) => write!(s, "mod_vlan_vid:{v}"),
        Action::ModVlanPcp(p) => write!(s, "mod_vlan_pcp:{p}"),
        Action::ClearActions => write!(s, "clear_actions"),
        Action::WriteActions(list) => {
            s.push_str("write_actions(");
            format_list(list, s);
            write!(s, ")")
        }
        Action::Conjunction {
            id,
            clause,
            n_clauses,
        } => write!(s, "conjunction({id},{clause}/{n_clauses})"),
    };
}

fn format_list(list: &[Action], s: &mut String) {
    if list.is_empty() {
        s.push_str("drop");
        return;
    }
    for (i, a) in list.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        format_one(a, s);
    }
}

/// Formats an action list; the empty list is `drop`.
pub(crate) fn format_actions_str(list: &[Action]) -> String {
    let mut s = String::new();
    format_list(list, &mut s);
    s
}
