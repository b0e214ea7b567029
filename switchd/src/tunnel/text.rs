//! TLV map text, as `ovs-ofctl add-tlv-map`:
//! `{class=0xffff,type=0,len=4}->tun_metadata0,{...}->tun_metadata1`.

use protocol::ctl::TlvMapping;

fn num(s: &str, what: &str) -> Result<u64, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("{what}: {t:?} is not a number"))
}

/// Parses a comma-separated list of `{class=C,type=T,len=L}->tun_metadataN`
/// (numbers decimal or 0x-hex). Only the syntax and ranges of each field
/// are checked here; [`super::TlvMap::new`] checks the map as a whole.
///
/// # Errors
/// The entry and field at fault.
pub fn parse_tlv_map(s: &str) -> Result<Vec<TlvMapping>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let body_start = rest
            .strip_prefix('{')
            .ok_or_else(|| format!("tlv map: expected '{{' at {rest:?}"))?;
        let (body, after) = body_start
            .split_once('}')
            .ok_or_else(|| format!("tlv map: missing '}}' in {rest:?}"))?;
        let after = after
            .trim_start()
            .strip_prefix("->")
            .ok_or_else(|| format!("tlv map: expected '->' after {{{body}}}"))?
            .trim_start();
        let field_end = after.find(',').unwrap_or(after.len());
        let field = after[..field_end].trim();
        rest = after[field_end..].trim_start_matches(',').trim_start();
        let slot = field
            .strip_prefix("tun_metadata")
            .ok_or_else(|| format!("tlv map: {field:?} is not tun_metadataN"))?;
        let slot = num(slot, field)?;
        let (mut class, mut kind, mut len) = (None, None, None);
        for kv in body.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("tlv map: {kv:?} is not key=value"))?;
            let v = num(v, k.trim())?;
            match k.trim() {
                "class" => class = Some(v),
                "type" => kind = Some(v),
                "len" => len = Some(v),
                other => return Err(format!("tlv map: unknown key {other:?}")),
            }
        }
        let class = class.ok_or("tlv map: class missing")?;
        let kind = kind.ok_or("tlv map: type missing")?;
        let len = len.ok_or("tlv map: len missing")?;
        out.push(TlvMapping {
            class: u16::try_from(class).map_err(|_| format!("class {class:#x} out of range"))?,
            r#type: u8::try_from(kind).map_err(|_| format!("type {kind:#x} out of range"))?,
            len: u8::try_from(len).map_err(|_| format!("len {len} out of range"))?,
            slot: u8::try_from(slot).map_err(|_| format!("{field}: slot out of range"))?,
        });
    }
    Ok(out)
}

/// `{class=0xffff,type=0x0,len=4}->tun_metadata0`.
pub fn format_tlv_mapping(m: &TlvMapping) -> String {
    format!(
        "{{class={:#x},type={:#x},len={}}}->tun_metadata{}",
        m.class, m.r#type, m.len, m.slot
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let m = parse_tlv_map("{class=0xffff,type=0,len=4}->tun_metadata0, {class=0xff57,type=0x80,len=8}->tun_metadata3").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[1].class, m[1].r#type, m[1].len, m[1].slot),
            (0xff57, 0x80, 8, 3)
        );
        assert_eq!(
            format_tlv_mapping(&m[0]),
            "{class=0xffff,type=0x0,len=4}->tun_metadata0"
        );
        assert_eq!(parse_tlv_map(&format_tlv_mapping(&m[1])).unwrap()[0], m[1]);
        assert!(
            parse_tlv_map("{class=1,type=2}->tun_metadata0")
                .unwrap_err()
                .contains("len")
        );
        assert!(
            parse_tlv_map("{class=1,type=2,len=4}->reg0")
                .unwrap_err()
                .contains("reg0")
        );
        assert!(parse_tlv_map("{class=0x10000,type=2,len=4}->tun_metadata0").is_err());
        assert!(parse_tlv_map("").unwrap().is_empty());
    }
}
