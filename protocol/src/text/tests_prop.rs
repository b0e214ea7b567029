//! Property tests: print/parse round trip of generated flows, trace lines
//! that parse back, and no panics on arbitrary or mutated input.

use proptest::prelude::*;

use super::*;
use crate::flow::action::{ControllerReason, SubField};
use crate::flow::key::{Slot, slots};
use crate::flow::{Field, FlowMask, PortNo};
use crate::wire::EthernetAddress;

/// Protocol contexts a generated match may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    None,
    Other,
    Arp,
    Ip(u16),
    Proto(u16, u8),
    Nd(u16),
}

fn ctx_strategy() -> impl Strategy<Value = Ctx> {
    prop_oneof![
        Just(Ctx::None),
        Just(Ctx::Other),
        Just(Ctx::Arp),
        Just(Ctx::Ip(0x0800)),
        Just(Ctx::Ip(0x86dd)),
        (
            prop::sample::select(vec![0x0800u16, 0x86dd]),
            prop::sample::select(vec![1u8, 6, 17, 47, 58, 132])
        )
            .prop_map(|(t, p)| Ctx::Proto(t, p)),
        prop::sample::select(vec![135u16, 136]).prop_map(Ctx::Nd),
    ]
}

/// Writes `v/m` into a slot (whole slot), keeping key & mask == key.
fn put(m: &mut Match, s: Slot, v: u128, mask: u128) {
    s.set(&mut m.key.0, v & mask);
    s.set(&mut m.mask.0.0, mask);
}

/// Hands out the generated (value, mask, choice) triples in turn.
struct Gen<'a> {
    vals: core::slice::Iter<'a, (u128, u128, u8)>,
}

impl Gen<'_> {
    fn next(&mut self) -> (u128, u128, u8) {
        self.vals.next().copied().unwrap_or((0, 0, 255))
    }

    /// Roughly one candidate in three is used, half of those with a random
    /// mask when the field is maskable.
    fn maybe(&mut self, m: &mut Match, s: Slot, maskable: bool) {
        let (v, mask, c) = self.next();
        if c % 3 != 0 {
            return;
        }
        let full = s.value_mask();
        let mask = if maskable && c & 0x40 != 0 {
            mask & full
        } else {
            full
        };
        put(m, s, v & full, mask);
    }
}

fn gen_match(ctx: Ctx, vals: &[(u128, u128, u8)]) -> Match {
    let mut m = Match::CATCHALL;
    let mut g = Gen { vals: vals.iter() };
    g.maybe(&mut m, Field::ConjId.info().slot, false);
    for r in [0u8, 5, 15] {
        g.maybe(&mut m, Field::Reg(r).info().slot, true);
    }
    for f in [
        Field::TunId,
        Field::TunSrc,
        Field::TunDst,
        Field::TunIpv6Src,
        Field::TunIpv6Dst,
        Field::Metadata,
        Field::DlSrc,
        Field::DlDst,
    ] {
        g.maybe(&mut m, f.info().slot, true);
    }
    g.maybe(&mut m, Field::InPort.info().slot, false);
    g.maybe(&mut m, slots::vlan0_tci, true);
    let (v, mask, c) = g.next();
    if c % 3 == 0 {
        put(&mut m, Field::TunFlags.info().slot, v & 0xf, mask & 0xf);
    }
    for i in [0usize, 7] {
        let (v, mask, c) = g.next();
        if c % 3 == 0 {
            let f = Field::TunMetadata(i as u8);
            let mask = if c & 0x40 != 0 {
                mask & u128::from(u64::MAX)
            } else {
                u128::from(u64::MAX)
            };
            put(&mut m, f.info().slot, v, mask);
            put(&mut m, match_::tun_present_slot(i), 1, 1);
        }
    }
    let dl = |m: &mut Match, t: u16| put(m, slots::dl_type, u128::from(t), 0xffff);
    let proto = |m: &mut Match, p: u8| put(m, slots::nw_proto, u128::from(p), 0xff);
    let (dl_type, nw_proto) = match ctx {
        Ctx::None => return m,
        Ctx::Other => {
            let (v, _, _) = g.next();
            let t = match v as u16 {
                0x0800 | 0x0806 | 0x86dd => 0x88cc,
                t => t,
            };
            dl(&mut m, t);
            return m;
        }
        Ctx::Arp => {
            dl(&mut m, 0x0806);
            for f in [Field::ArpSpa, Field::ArpTpa, Field::ArpSha, Field::ArpTha] {
                g.maybe(&mut m, f.info().slot, true);
            }
            g.maybe(&mut m, Field::ArpOp.info().slot, false);
            return m;
        }
        Ctx::Ip(t) => {
            dl(&mut m, t);
            let (v, _, c) = g.next();
            if c % 2 == 0 {
                proto(&mut m, v as u8);
            }
            (t, None)
        }
        Ctx::Proto(t, p) => {
            dl(&mut m, t);
            proto(&mut m, p);
            (t, Some(p))
        }
        Ctx::Nd(ty) => {
            dl(&mut m, 0x86dd);
            proto(&mut m, 58);
            put(&mut m, Field::IcmpType.info().slot, u128::from(ty), 0xff);
            g.maybe(&mut m, Field::NdTarget.info().slot, true);
            let f = if ty == 135 {
                Field::NdSll
            } else {
                Field::NdTll
            };
            g.maybe(&mut m, f.info().slot, true);
            (0x86dd, None)
        }
    };
    if dl_type == 0x0800 {
        g.maybe(&mut m, Field::NwSrc.info().slot, true);
        g.maybe(&mut m, Field::NwDst.info().slot, true);
    } else {
        g.maybe(&mut m, Field::Ipv6Src.info().slot, true);
        g.maybe(&mut m, Field::Ipv6Dst.info().slot, true);
        g.maybe(&mut m, Field::Ipv6Label.info().slot, true);
    }
    let (v, mask, c) = g.next();
    if c % 3 == 0 {
        let tos_mask = [0u128, 0xfc, 0x03, 0xff][(mask % 4) as usize];
        put(&mut m, slots::nw_tos, v, tos_mask);
    }
    g.maybe(&mut m, Field::NwTtl.info().slot, false);
    let (v, _, c) = g.next();
    if c % 3 == 0 {
        let (fv, fm) = [(0, 1), (1, 1), (1, 3), (3, 3), (0, 2)][(v % 5) as usize];
        put(&mut m, Field::NwFrag.info().slot, fv, fm);
    }
    match nw_proto {
        Some(6 | 17 | 132) => {
            g.maybe(&mut m, Field::TpSrc.info().slot, true);
            g.maybe(&mut m, Field::TpDst.info().slot, true);
            if nw_proto == Some(6) {
                g.maybe(&mut m, Field::TcpFlags.info().slot, true);
            }
        }
        Some(1) if dl_type == 0x0800 => {
            g.maybe(&mut m, Field::IcmpType.info().slot, false);
            g.maybe(&mut m, Field::IcmpCode.info().slot, false);
        }
        Some(58) if dl_type == 0x86dd => {
            g.maybe(&mut m, Field::IcmpType.info().slot, false);
            g.maybe(&mut m, Field::IcmpCode.info().slot, false);
        }
        _ => {}
    }
    m
}

fn writable_fields() -> Vec<Field> {
    Field::all().filter(|f| f.info().writable).collect()
}

fn any_subfield(fields: Vec<Field>) -> impl Strategy<Value = SubField> {
    (prop::sample::select(fields), any::<u8>(), any::<u8>()).prop_map(|(field, a, b)| {
        let w = field.width();
        let ofs = a % w;
        let n_bits = 1 + b % (w - ofs);
        SubField { field, ofs, n_bits }
    })
}

fn plain_action() -> impl Strategy<Value = Action> {
    let port = prop_oneof![
        (0u32..100).prop_map(PortNo),
        any::<u32>().prop_map(PortNo),
        prop::sample::select(vec![
            PortNo::IN_PORT,
            PortNo::TABLE,
            PortNo::NORMAL,
            PortNo::FLOOD,
            PortNo::ALL,
            PortNo::CONTROLLER,
            PortNo::LOCAL,
            PortNo::NONE,
        ]),
    ];
    let reason = prop::sample::select(vec![
        ControllerReason::Action,
        ControllerReason::NoMatch,
        ControllerReason::InvalidTtl,
    ]);
    let set_field = (
        prop::sample::select(writable_fields()),
        any::<u128>(),
        any::<u128>(),
        any::<bool>(),
    )
        .prop_map(|(field, v, m, masked)| {
            let info = field.info();
            let full = info.slot.value_mask();
            let (mut v, mut m) = (
                v & full,
                if masked && info.maskable {
                    m & full
                } else {
                    full
                },
            );
            if field == Field::TunFlags {
                (v, m) = (v & 0xf, if masked { m & 0xf } else { 0xf });
            }
            if field == Field::NwTos {
                v &= 0xfc;
            }
            Action::SetField {
                field,
                value: v & m,
                mask: m,
            }
        });
    let load = (any_subfield(writable_fields()), any::<u128>()).prop_map(|(dst, v)| {
        let value = if dst.n_bits >= 128 {
            v
        } else {
            v & ((1u128 << dst.n_bits) - 1)
        };
        Action::Load { dst, value }
    });
    let mv = (
        any_subfield(Field::all().collect()),
        any_subfield(writable_fields()),
    )
        .prop_map(|(src, dst)| {
            let n = src.n_bits.min(dst.n_bits);
            Action::Move {
                src: SubField { n_bits: n, ..src },
                dst: SubField { n_bits: n, ..dst },
            }
        });
    prop_oneof![
        port.clone().prop_map(Action::Output),
        (any::<u16>(), reason).prop_map(|(max_len, reason)| Action::Controller { max_len, reason }),
        (prop::option::of(port), prop::option::of(0u8..=254)).prop_filter_map(
            "resubmit needs a port or a table",
            |(p, t)| (p.is_some() || t.is_some()).then_some(Action::Resubmit {
                port: p,
                table: t.map(TableId)
            })
        ),
        set_field,
        load,
        mv,
        any::<[u8; 6]>().prop_map(|b| Action::ModDlSrc(EthernetAddress(b))),
        any::<[u8; 6]>().prop_map(|b| Action::ModDlDst(EthernetAddress(b))),
        any::<u32>().prop_map(|a| Action::ModNwSrc(a.into())),
        any::<u32>().prop_map(|a| Action::ModNwDst(a.into())),
        any::<u8>().prop_map(|t| Action::ModNwTos(t & 0xfc)),
        any::<u16>().prop_map(Action::ModTpSrc),
        any::<u16>().prop_map(Action::ModTpDst),
        Just(Action::DecTtl),
        prop::sample::select(vec![0x8100u16, 0x88a8]).prop_map(Action::PushVlan),
        Just(Action::PopVlan),
        Just(Action::StripVlan),
        (0u16..4096).prop_map(Action::ModVlanVid),
        (0u8..8).prop_map(Action::ModVlanPcp),
        (any::<u32>(), 2u8..=64, any::<u8>()).prop_map(|(id, n, k)| Action::Conjunction {
            id,
            clause: 1 + k % n,
            n_clauses: n
        }),
    ]
}

prop_compose! {
    fn flow_spec()(
        ctx in ctx_strategy(),
        vals in prop::collection::vec(any::<(u128, u128, u8)>(), 48),
        table in 0u8..=253,
        priority in any::<u16>(),
        cookie in any::<u64>(),
        cookie_mask in prop_oneof![Just(0u64), any::<u64>()],
        idle_timeout in any::<u16>(),
        hard_timeout in any::<u16>(),
        plain in prop::collection::vec(plain_action(), 0..5),
        clear in any::<bool>(),
        write in prop::option::of(prop::collection::vec(plain_action(), 0..3)),
        metadata in prop::option::of((any::<u64>(), any::<u64>())),
        goto in prop::option::of(any::<u8>()),
    ) -> FlowSpec {
        let mut actions = plain;
        if clear {
            actions.push(Action::ClearActions);
        }
        if let Some(w) = write {
            actions.push(Action::WriteActions(w));
        }
        if let Some((value, mask)) = metadata {
            actions.push(Action::WriteMetadata { value, mask });
        }
        if let Some(g) = goto {
            actions.push(Action::GotoTable(TableId(table + 1 + g % (254 - table))));
        }
        FlowSpec {
            table: TableId(table),
            priority: crate::flow::Priority(priority),
            cookie: crate::flow::Cookie(cookie),
            cookie_mask,
            idle_timeout,
            hard_timeout,
            r#match: gen_match(ctx, &vals),
            actions,
        }
    }
}

/// Applies byte edits to an ASCII line: (position, operation, byte).
fn mutate(line: &str, edits: &[(usize, u8, u8)]) -> String {
    const BYTES: &[u8] = b",=:()[]/.-+>|x0123456789abcdefAZ _#";
    let mut b = line.as_bytes().to_vec();
    for &(pos, op, c) in edits {
        let c = BYTES[c as usize % BYTES.len()];
        let at = if b.is_empty() { 0 } else { pos % (b.len() + 1) };
        match op % 3 {
            0 if at < b.len() => {
                b.remove(at);
            }
            1 if at < b.len() => b[at] = c,
            _ => b.insert(at, c),
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_flows_round_trip(f in flow_spec()) {
        let text = format_flow(&f);
        let back = parse_flow(&text);
        prop_assert_eq!(back.as_ref(), Ok(&f), "text: {}", text);
        // And with statistics, as dump-flows prints them.
        let st = FlowStats { duration_ms: 1234, n_packets: 5, n_bytes: 6, idle_age_s: 7 };
        let text = format_flow_with_stats(&f, &st);
        let back = parse_flow(&text);
        prop_assert_eq!(back.as_ref(), Ok(&f), "text: {}", text);
        // The match alone.
        let mt = format_match(&f.r#match);
        prop_assert_eq!(parse_match(&mt), Ok(f.r#match), "match: {}", mt);
    }

    #[test]
    fn flow_key_line_is_matched_by_its_packet(ctx in ctx_strategy(),
                                              vals in prop::collection::vec(any::<(u128, u128, u8)>(), 48)) {
        // Any generated match's key, taken as a packet: its Flow: line
        // parses back to a match that the packet matches.
        let k = gen_match(ctx, &vals).key;
        let line = format_flow_key(&k);
        // Like OVS, an ND packet's line shows both nd_sll and nd_tll, of
        // which a match may only use the one its ICMPv6 type has.
        if line.contains("nd_sll") {
            return Ok(());
        }
        let m = parse_match(&line);
        prop_assert!(m.is_ok(), "{}: {:?}", line, m);
        prop_assert!(m.unwrap_or_default().matches(&k), "{}", line);
        prop_assert_eq!(flow_key_fields(&k).len() >= 3, true);
    }

    #[test]
    fn parse_never_panics(s in ".{0,120}") {
        let _ = parse_flow(&s);
        let _ = parse_match(&s);
        let _ = parse_actions(&s);
    }

    #[test]
    fn parse_never_panics_on_syntax_soup(s in "[a-z_0-9,=:()\\[\\]/.>+|-]{0,80}") {
        let _ = parse_flow(&s);
        let _ = parse_actions(&s);
    }

    #[test]
    fn parse_never_panics_on_mutated_lines(
        i in any::<prop::sample::Index>(),
        edits in prop::collection::vec(any::<(usize, u8, u8)>(), 1..6),
    ) {
        let lines = super::tests_ovs::VECTORS;
        let (line, _) = lines[i.index(lines.len())];
        let s = mutate(line, &edits);
        if let Ok(f) = parse_flow(&s) {
            // Whatever parses must print and parse back to itself.
            let text = format_flow(&f);
            prop_assert_eq!(parse_flow(&text), Ok(f), "{} -> {}", s, text);
        }
    }
}

#[test]
fn flowmask_catchall_is_default() {
    // The generator relies on CATCHALL being all-zero.
    assert_eq!(Match::CATCHALL.mask, FlowMask::default());
}
