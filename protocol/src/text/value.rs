//! The lexical layer: splitting a line into `key=value` pairs the way
//! `ovs-ofctl` does (`ofputil_parse_key_value`), and reading and writing the
//! value syntaxes of fields (integers, MACs, IPv4/IPv6 with masks, ports,
//! fragment types, flag sets).

use core::fmt::Write as _;
use core::net::{Ipv4Addr, Ipv6Addr};

use super::error::TextError;
use crate::flow::PortNo;
use crate::flow::field::{Field, FieldFormat};
use crate::flow::key::{NW_FRAG_ANY, NW_FRAG_LATER};
use crate::wire::EthernetAddress;

/// How a key was separated from its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delim {
    /// A bare keyword (`ip`, `drop`, `dec_ttl`).
    None,
    /// `key=value` or `key:value`.
    Assign,
    /// `key(value)`.
    Paren,
}

/// One `key[=:(]value` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyValue<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: &'a str,
    pub(crate) delim: Delim,
}

/// Iterator over the `key=value` items of a string (OVS
/// `ofputil_parse_key_value`): items are separated by commas or white
/// space; a value after `=` or `:` runs to the next separator outside
/// parentheses; a value after `(` runs to the matching `)`.
#[derive(Debug, Clone)]
pub(crate) struct KeyValues<'a> {
    rest: &'a str,
}

pub(crate) fn key_values(s: &str) -> KeyValues<'_> {
    KeyValues { rest: s }
}

const SEPARATORS: &[u8] = b", \t\r\n";

/// Length of the value at the start of `b`, ending at a byte of `delims`
/// outside parentheses. `None` if a parenthesis is left open.
fn value_len(b: &[u8], delims: &[u8]) -> Option<usize> {
    let mut n = 0;
    while n < b.len() && !delims.contains(&b[n]) {
        if b[n] == b'(' {
            let mut level = 0usize;
            loop {
                match b.get(n) {
                    None => return None,
                    Some(b'(') => level += 1,
                    Some(b')') => level -= 1,
                    Some(_) => {}
                }
                n += 1;
                if level == 0 {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    Some(n)
}

impl<'a> Iterator for KeyValues<'a> {
    type Item = Result<KeyValue<'a>, TextError>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self
            .rest
            .trim_start_matches(|c: char| c.is_ascii() && SEPARATORS.contains(&(c as u8)));
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let b = s.as_bytes();
        // All delimiters are ASCII, so every index below is a char boundary.
        let key_len = b
            .iter()
            .position(|c| b":=(, \t\r\n".contains(c))
            .unwrap_or(b.len());
        let key = &s[..key_len];
        let delim = match b.get(key_len) {
            Some(b':') | Some(b'=') => Delim::Assign,
            Some(b'(') => Delim::Paren,
            _ => Delim::None,
        };
        let start = (key_len + 1).min(s.len());
        match delim {
            Delim::None => {
                self.rest = &s[start..];
                Some(Ok(KeyValue {
                    key,
                    value: "",
                    delim,
                }))
            }
            Delim::Assign => {
                let v = &s[start..];
                let Some(n) = value_len(v.as_bytes(), SEPARATORS) else {
                    self.rest = "";
                    return Some(Err(TextError::Unbalanced { text: v.to_owned() }));
                };
                self.rest = &v[n..];
                Some(Ok(KeyValue {
                    key,
                    value: &v[..n],
                    delim,
                }))
            }
            Delim::Paren => {
                let v = &s[start..];
                let n = value_len(v.as_bytes(), b")");
                match n {
                    Some(n) if n < v.len() => {
                        self.rest = &v[n + 1..];
                        Some(Ok(KeyValue {
                            key,
                            value: &v[..n],
                            delim,
                        }))
                    }
                    _ => {
                        self.rest = "";
                        Some(Err(TextError::Unbalanced { text: s.to_owned() }))
                    }
                }
            }
        }
    }
}

/// Parses an unsigned integer: decimal, or hexadecimal with `0x`.
pub(crate) fn parse_uint(s: &str) -> Option<u128> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    if digits.is_empty()
        || !digits
            .bytes()
            .all(|c| c.is_ascii_digit() || (radix == 16 && c.is_ascii_hexdigit()))
    {
        return None;
    }
    u128::from_str_radix(digits, radix).ok()
}

/// Parses an integer that must fit in `bits` bits.
pub(crate) fn parse_uint_bits(field: &str, text: &str, bits: u8) -> Result<u128, TextError> {
    let v = parse_uint(text).ok_or_else(|| TextError::invalid(field, text, "an integer"))?;
    if bits < 128 && v >> bits != 0 {
        return Err(TextError::range(field, text, format!("{bits} bits")));
    }
    Ok(v)
}

/// Parses an integer in `0..=max`, naming the range on error.
pub(crate) fn parse_uint_max(field: &str, text: &str, max: u128) -> Result<u128, TextError> {
    let v = parse_uint(text).ok_or_else(|| TextError::invalid(field, text, "an integer"))?;
    if v > max {
        return Err(TextError::range(field, text, format!("0..={max}")));
    }
    Ok(v)
}

/// `v` as C's `%#x` prints it: `0` for zero, else `0x...`.
pub(crate) fn hex_c(v: u128) -> String {
    if v == 0 {
        "0".to_owned()
    } else {
        format!("{v:#x}")
    }
}

/// Parses a port number or reserved port name.
pub(crate) fn parse_port(field: &str, text: &str) -> Result<PortNo, TextError> {
    if let Some(p) = PortNo::from_reserved_name(text) {
        return Ok(p);
    }
    match parse_uint(text) {
        Some(v) => u32::try_from(v)
            .map(PortNo)
            .map_err(|_| TextError::range(field, text, "32 bits")),
        None => Err(TextError::invalid(field, text, "a port number or name")),
    }
}

fn parse_mac(s: &str) -> Option<EthernetAddress> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(EthernetAddress(out))
}

fn parse_ipv4_mask(field: &str, text: &str, m: &str) -> Result<u32, TextError> {
    if !m.is_empty() && m.bytes().all(|c| c.is_ascii_digit()) {
        let n = parse_uint_max(field, m, 32)? as u32;
        return Ok(if n == 0 { 0 } else { u32::MAX << (32 - n) });
    }
    m.parse::<Ipv4Addr>().map(u32::from).map_err(|_| {
        TextError::invalid(
            field,
            text,
            "an IPv4 address with an optional /prefix or /mask",
        )
    })
}

fn parse_ipv6_mask(field: &str, text: &str, m: &str) -> Result<u128, TextError> {
    if !m.is_empty() && m.bytes().all(|c| c.is_ascii_digit()) {
        let n = parse_uint_max(field, m, 128)? as u32;
        return Ok(if n == 0 { 0 } else { u128::MAX << (128 - n) });
    }
    m.parse::<Ipv6Addr>().map(u128::from).map_err(|_| {
        TextError::invalid(
            field,
            text,
            "an IPv6 address with an optional /prefix or /mask",
        )
    })
}

/// The names of TCP flag bits, lowest bit first (OVS
/// `packet_tcp_flag_to_string`).
pub(crate) const TCP_FLAG_NAMES: [&str; 12] = [
    "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]",
];
/// The names of tunnel flag bits, lowest bit first (`TUN_FLAG_*`).
pub(crate) const TUN_FLAG_NAMES: [&str; 4] = ["oam", "df", "csum", "key"];

/// Parses a flag set: `V/M` numbers, `+a-b` (set/clear with an implied
/// mask), or `a|b|0x4` (exact). Port of OVS `parse_flags`.
pub(crate) fn parse_flags(
    field: &str,
    text: &str,
    names: &[&str],
    expected: &'static str,
) -> Result<(u32, u32), TextError> {
    let allowed: u32 = (1u32 << names.len()) - 1;
    let bad = || TextError::invalid(field, text, expected);
    if let Some((v, m)) = text.split_once('/') {
        let (v, m) = match (parse_uint(v), parse_uint(m)) {
            (Some(v), Some(m)) => (v, m),
            _ => return Err(bad()),
        };
        if (v | m) & !u128::from(allowed) != 0 {
            return Err(bad());
        }
        return Ok((v as u32, m as u32));
    }
    if text.starts_with(['+', '-']) {
        let (mut flags, mut mask) = (0u32, 0u32);
        let mut s = text;
        while !s.is_empty() {
            let set = s.starts_with('+');
            if !set && !s.starts_with('-') {
                return Err(bad());
            }
            s = &s[1..];
            let found = names.iter().enumerate().find(|(_, n)| {
                s.strip_prefix(**n)
                    .is_some_and(|r| r.is_empty() || r.starts_with(['+', '-']))
            });
            let Some((bit, name)) = found else {
                return Err(bad());
            };
            let bit = 1u32 << bit;
            if mask & bit != 0 {
                return Err(bad());
            }
            mask |= bit;
            if set {
                flags |= bit;
            }
            s = &s[name.len()..];
        }
        return Ok((flags, mask));
    }
    let mut flags = 0u32;
    for piece in text.split('|') {
        if let Some(v) = parse_uint(piece) {
            if v & !u128::from(allowed) != 0 {
                return Err(bad());
            }
            flags |= v as u32;
        } else if let Some(bit) = names.iter().position(|n| *n == piece) {
            flags |= 1 << bit;
        } else {
            return Err(bad());
        }
    }
    Ok((flags, allowed))
}

/// Formats a flag set (OVS `format_flags_masked`): `a|b` when the mask
/// covers every named bit, else `+a-b`; `0` for no flags, `0/0` for an
/// empty mask.
pub(crate) fn format_flags(v: u32, m: u32, names: &[&str]) -> String {
    let full: u32 = (1u32 << names.len()) - 1;
    let name = |bit: usize| names.get(bit).copied().unwrap_or("?");
    let mut s = String::new();
    if m & full == full {
        if v == 0 {
            return "0".to_owned();
        }
        for bit in (0..32).filter(|b| v & (1 << b) != 0) {
            if !s.is_empty() {
                s.push('|');
            }
            s.push_str(name(bit));
        }
        return s;
    }
    if m == 0 {
        return "0/0".to_owned();
    }
    for bit in (0..32).filter(|b| m & (1 << b) != 0) {
        s.push(if v & (1 << bit) != 0 { '+' } else { '-' });
        s.push_str(name(bit));
    }
    s
}

/// Parses a fragment type name into (value, mask) of `nw_frag`.
pub(crate) fn parse_frag(field: &str, text: &str) -> Result<(u8, u8), TextError> {
    const ANY: u8 = NW_FRAG_ANY;
    const LATER: u8 = NW_FRAG_LATER;
    Ok(match text {
        "no" => (0, ANY),
        "yes" => (ANY, ANY),
        "first" => (ANY, ANY | LATER),
        "later" => (ANY | LATER, ANY | LATER),
        "not_later" => (0, LATER),
        _ => {
            return Err(TextError::invalid(
                field,
                text,
                "a fragment type (no, yes, first, later or not_later)",
            ));
        }
    })
}

/// Formats `nw_frag` (OVS `match_format`); `None` if nothing is matched.
pub(crate) fn format_frag(v: u8, m: u8) -> Option<&'static str> {
    const ANY: u8 = NW_FRAG_ANY;
    const LATER: u8 = NW_FRAG_LATER;
    Some(match m & (ANY | LATER) {
        0 => return None,
        x if x == ANY | LATER => match (v & ANY != 0, v & LATER != 0) {
            (true, true) => "later",
            (true, false) => "first",
            (false, true) => "<error>",
            (false, false) => "no",
        },
        x if x == ANY => {
            if v & ANY != 0 {
                "yes"
            } else {
                "no"
            }
        }
        _ => {
            if v & LATER != 0 {
                "later"
            } else {
                "not_later"
            }
        }
    })
}

/// An IPv4 address with its mask as OVS prints it: plain when exact,
/// `/N` for a prefix, `/a.b.c.d` otherwise.
pub(crate) fn format_ipv4_masked(v: u32, m: u32) -> String {
    let mut s = Ipv4Addr::from(v).to_string();
    if m != u32::MAX {
        if m.leading_ones() + m.trailing_zeros() == 32 {
            let _ = write!(s, "/{}", m.leading_ones());
        } else {
            let _ = write!(s, "/{}", Ipv4Addr::from(m));
        }
    }
    s
}

/// An IPv6 address with its mask, as [`format_ipv4_masked`].
pub(crate) fn format_ipv6_masked(v: u128, m: u128) -> String {
    let mut s = Ipv6Addr::from(v).to_string();
    if m != u128::MAX {
        if m.leading_ones() + m.trailing_zeros() == 128 {
            let _ = write!(s, "/{}", m.leading_ones());
        } else {
            let _ = write!(s, "/{}", Ipv6Addr::from(m));
        }
    }
    s
}

/// An Ethernet address with its mask: plain when exact, else `a/m`.
pub(crate) fn format_eth_masked(v: u128, m: u128) -> String {
    let a = EthernetAddress::from_u64(v as u64);
    if m & 0xffff_ffff_ffff == 0xffff_ffff_ffff {
        a.to_string()
    } else {
        format!("{a}/{}", EthernetAddress::from_u64(m as u64))
    }
}

/// A value (and mask) parsed for a field by its [`FieldFormat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) value: u128,
    pub(crate) mask: u128,
    /// True if the text had an explicit `/mask` (or a `+flag` form).
    pub(crate) masked: bool,
}

/// Parses `text` as a value of field `f` in the field's own format,
/// accepting `value/mask` forms. Checks the width and maskability. Fields
/// whose match semantics differ from their storage (`dl_vlan`,
/// `dl_vlan_pcp`, `nw_tos`) are handled by the match parser, not here.
pub(crate) fn parse_field_value(f: Field, label: &str, text: &str) -> Result<Parsed, TextError> {
    let info = f.info();
    let full = info.slot.value_mask();
    if text.is_empty() {
        return Err(TextError::MissingValue {
            field: label.to_owned(),
        });
    }
    let (v, m) = match info.format {
        FieldFormat::Decimal | FieldFormat::Hex => {
            let (vt, mt) = match text.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (text, None),
            };
            let v = parse_uint_bits(label, vt, info.slot.width)?;
            let m = match mt {
                Some(mt) => parse_uint_bits(label, mt, info.slot.width)?,
                None => full,
            };
            (v, m)
        }
        FieldFormat::Port => (u128::from(parse_port(label, text)?.0), full),
        FieldFormat::Ethernet => {
            let bad = || TextError::invalid(label, text, "an Ethernet address");
            let (vt, mt) = match text.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (text, None),
            };
            let v = parse_mac(vt).ok_or_else(bad)?;
            let m = match mt {
                Some(mt) => u128::from(parse_mac(mt).ok_or_else(bad)?.to_u64()),
                None => full,
            };
            (u128::from(v.to_u64()), m)
        }
        FieldFormat::Ipv4 => {
            let (vt, mt) = match text.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (text, None),
            };
            let v = vt
                .parse::<Ipv4Addr>()
                .map_err(|_| TextError::invalid(label, text, "an IPv4 address"))?;
            let m = match mt {
                Some(mt) => u128::from(parse_ipv4_mask(label, text, mt)?),
                None => full,
            };
            (u128::from(u32::from(v)), m)
        }
        FieldFormat::Ipv6 => {
            let (vt, mt) = match text.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (text, None),
            };
            let v = vt
                .parse::<Ipv6Addr>()
                .map_err(|_| TextError::invalid(label, text, "an IPv6 address"))?;
            let m = match mt {
                Some(mt) => parse_ipv6_mask(label, text, mt)?,
                None => full,
            };
            (u128::from(v), m)
        }
        FieldFormat::Frag => {
            let (v, m) = parse_frag(label, text)?;
            (u128::from(v), u128::from(m))
        }
        FieldFormat::TcpFlags => {
            let (v, m) = parse_flags(
                label,
                text,
                &TCP_FLAG_NAMES,
                "a TCP flags value (e.g. +syn-ack, syn|ack, 0x002/0x012)",
            )?;
            (u128::from(v), u128::from(m))
        }
        FieldFormat::TunFlags => {
            let (v, m) = parse_flags(
                label,
                text,
                &TUN_FLAG_NAMES,
                "a tunnel flags value (e.g. +oam, oam|csum, 0x1/0x1)",
            )?;
            (u128::from(v), u128::from(m))
        }
    };
    let masked = m != full;
    if masked && !info.maskable {
        return Err(TextError::NotMaskable {
            field: label.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(Parsed {
        value: v & m,
        mask: m,
        masked,
    })
}

/// Formats a value (and mask, unless it covers the whole field) of `f` in
/// the field's own format, as `set_field` prints it (OVS `mf_format`).
pub(crate) fn format_field_value(f: Field, v: u128, m: u128) -> String {
    let info = f.info();
    let full = info.slot.value_mask();
    let exact = m & full == full;
    match info.format {
        FieldFormat::Decimal | FieldFormat::Hex | FieldFormat::Port => {
            let mut s = match info.format {
                FieldFormat::Decimal => v.to_string(),
                FieldFormat::Port if exact => PortNo(v as u32).to_string(),
                _ => format!("{v:#x}"),
            };
            if !exact {
                let _ = write!(s, "/{m:#x}");
            }
            s
        }
        FieldFormat::Ethernet => format_eth_masked(v, if exact { full } else { m }),
        FieldFormat::Ipv4 => format_ipv4_masked(v as u32, if exact { u32::MAX } else { m as u32 }),
        FieldFormat::Ipv6 => format_ipv6_masked(v, if exact { u128::MAX } else { m }),
        FieldFormat::Frag => format_frag(v as u8, m as u8).unwrap_or("0/0").to_owned(),
        FieldFormat::TcpFlags => format_flags(v as u32, m as u32, &TCP_FLAG_NAMES),
        FieldFormat::TunFlags => format_flags(v as u32, m as u32, &TUN_FLAG_NAMES),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kvs(s: &str) -> Vec<(String, String, Delim)> {
        key_values(s)
            .map(|kv| {
                let kv = kv.unwrap();
                (kv.key.to_owned(), kv.value.to_owned(), kv.delim)
            })
            .collect()
    }

    #[test]
    fn splits_like_ofputil_parse_key_value() {
        assert_eq!(
            kvs("ip, nw_src=1.2.3.4 resubmit(,3),output:1,write_actions(output:1,drop)"),
            vec![
                ("ip".into(), "".into(), Delim::None),
                ("nw_src".into(), "1.2.3.4".into(), Delim::Assign),
                ("resubmit".into(), ",3".into(), Delim::Paren),
                ("output".into(), "1".into(), Delim::Assign),
                ("write_actions".into(), "output:1,drop".into(), Delim::Paren),
            ]
        );
        assert!(matches!(
            key_values("write_actions(output:1").next(),
            Some(Err(TextError::Unbalanced { .. }))
        ));
        assert!(matches!(
            key_values("x=a(b").next(),
            Some(Err(TextError::Unbalanced { .. }))
        ));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_uint("0x1F"), Some(31));
        assert_eq!(parse_uint("42"), Some(42));
        assert_eq!(parse_uint("+42"), None);
        assert_eq!(parse_uint("0x"), None);
        assert_eq!(parse_uint("1a"), None);
        assert_eq!(hex_c(0), "0");
        assert_eq!(hex_c(0x1234), "0x1234");
    }

    #[test]
    fn flags_forms() {
        let n = &TCP_FLAG_NAMES;
        assert_eq!(
            parse_flags("f", "+syn-ack", n, "x").unwrap(),
            (0x002, 0x012)
        );
        assert_eq!(parse_flags("f", "syn|ack", n, "x").unwrap(), (0x012, 0xfff));
        assert_eq!(
            parse_flags("f", "0x002/0x012", n, "x").unwrap(),
            (0x002, 0x012)
        );
        assert!(parse_flags("f", "+ack-ack", n, "x").is_err());
        assert!(parse_flags("f", "+bogus", n, "x").is_err());
        assert!(parse_flags("f", "0x1000/0x1000", n, "x").is_err());
        assert_eq!(format_flags(0x002, 0x012, n), "+syn-ack");
        assert_eq!(format_flags(0x012, 0xfff, n), "syn|ack");
        assert_eq!(format_flags(0, 0xfff, n), "0");
    }

    #[test]
    fn masks() {
        assert_eq!(format_ipv4_masked(0x0a00_0000, 0xffff_ff00), "10.0.0.0/24");
        assert_eq!(
            format_ipv4_masked(0x0a00_0000, 0xff00_ff00),
            "10.0.0.0/255.0.255.0"
        );
        assert_eq!(format_ipv4_masked(0x0a00_0001, u32::MAX), "10.0.0.1");
        assert_eq!(format_ipv6_masked(0, 0), "::/0");
        assert_eq!(format_frag(0, 2), Some("not_later"));
    }
}
