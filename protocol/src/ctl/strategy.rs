//! proptest strategies for every [`Message`] (tests only).
//!
//! Flow specs are generated simply: a few match fields, a few actions (one
//! level of `WriteActions`), so that every variant of [`Body`] and of the
//! records it carries is exercised by the encode/decode round trip.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::Union;

use super::*;
use crate::flow::{
    Action, ControllerReason, Cookie, FLOW_WORDS, Field, FlowKey, FlowSpec, Match, PortNo,
    Priority, SubField, TableId,
};
use crate::wire::EthernetAddress;

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9_ .-]{0,20}"
}

fn field() -> impl Strategy<Value = Field> {
    prop::sample::select(Field::all().collect::<Vec<_>>())
}

fn port() -> impl Strategy<Value = PortNo> {
    prop_oneof![
        (1u32..100).prop_map(PortNo),
        Just(PortNo::LOCAL),
        Just(PortNo::CONTROLLER),
        any::<u32>().prop_map(PortNo),
    ]
}

fn table() -> impl Strategy<Value = TableId> {
    any::<u8>().prop_map(TableId)
}

fn cookie() -> impl Strategy<Value = Cookie> {
    any::<u64>().prop_map(Cookie)
}

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

/// A key with a few arbitrary non-zero words (any word values round trip).
pub(crate) fn flow_key() -> impl Strategy<Value = FlowKey> {
    vec((0..FLOW_WORDS, any::<u64>()), 0..5).prop_map(|words| {
        let mut k = FlowKey::default();
        for (i, w) in words {
            k.0[i] = w;
        }
        k
    })
}

/// A match with a few fields set exactly or masked.
pub(crate) fn flow_match() -> impl Strategy<Value = Match> {
    vec((field(), any::<u128>(), any::<u128>(), any::<bool>()), 0..4).prop_map(|fields| {
        let mut m = Match::CATCHALL;
        for (f, value, mask, exact) in fields {
            if exact {
                m.set_exact(f, value);
            } else {
                m.set_masked(f, value, mask);
            }
        }
        m
    })
}

fn subfield() -> impl Strategy<Value = SubField> {
    (field(), any::<u8>(), any::<u8>()).prop_map(|(field, ofs, n_bits)| SubField {
        field,
        ofs,
        n_bits,
    })
}

fn controller_reason() -> impl Strategy<Value = ControllerReason> {
    prop_oneof![
        Just(ControllerReason::NoMatch),
        Just(ControllerReason::Action),
        Just(ControllerReason::InvalidTtl),
    ]
}

/// Every action variant; `WriteActions` nests one level.
pub(crate) fn action() -> impl Strategy<Value = Action> {
    let leaf = Union::new(vec![
        port().prop_map(Action::Output).boxed(),
        (any::<u16>(), controller_reason())
            .prop_map(|(max_len, reason)| Action::Controller { max_len, reason })
            .boxed(),
        (option::of(port()), option::of(table()))
            .prop_map(|(port, table)| Action::Resubmit { port, table })
            .boxed(),
        table().prop_map(Action::GotoTable).boxed(),
        (any::<u64>(), any::<u64>())
            .prop_map(|(value, mask)| Action::WriteMetadata { value, mask })
            .boxed(),
        (field(), any::<u128>(), any::<u128>())
            .prop_map(|(field, value, mask)| Action::SetField { field, value, mask })
            .boxed(),
        (subfield(), any::<u128>())
            .prop_map(|(dst, value)| Action::Load { dst, value })
            .boxed(),
        (subfield(), subfield())
            .prop_map(|(src, dst)| Action::Move { src, dst })
            .boxed(),
        mac().prop_map(Action::ModDlSrc).boxed(),
        mac().prop_map(Action::ModDlDst).boxed(),
        any::<[u8; 4]>()
            .prop_map(|a| Action::ModNwSrc(Ipv4Addr::from(a)))
            .boxed(),
        any::<[u8; 4]>()
            .prop_map(|a| Action::ModNwDst(Ipv4Addr::from(a)))
            .boxed(),
        any::<u8>().prop_map(Action::ModNwTos).boxed(),
        any::<u16>().prop_map(Action::ModTpSrc).boxed(),
        any::<u16>().prop_map(Action::ModTpDst).boxed(),
        Just(Action::DecTtl).boxed(),
        any::<u16>().prop_map(Action::PushVlan).boxed(),
        Just(Action::PopVlan).boxed(),
        Just(Action::StripVlan).boxed(),
        any::<u16>().prop_map(Action::ModVlanVid).boxed(),
        any::<u8>().prop_map(Action::ModVlanPcp).boxed(),
        Just(Action::ClearActions).boxed(),
        (any::<u32>(), any::<u8>(), any::<u8>())
            .prop_map(|(id, clause, n_clauses)| Action::Conjunction {
                id,
                clause,
                n_clauses,
            })
            .boxed(),
    ]);
    leaf.prop_recursive(2, 8, 4, |inner| {
        vec(inner, 0..4).prop_map(Action::WriteActions)
    })
}

/// A flow spec with a few fields set and a few actions.
pub(crate) fn flow_spec() -> impl Strategy<Value = FlowSpec> {
    (
        table(),
        any::<u16>(),
        cookie(),
        any::<u64>(),
        any::<u16>(),
        any::<u16>(),
        flow_match(),
        vec(action(), 0..4),
    )
        .prop_map(
            |(table, prio, cookie, cookie_mask, idle_timeout, hard_timeout, m, actions)| FlowSpec {
                table,
                priority: Priority(prio),
                cookie,
                cookie_mask,
                idle_timeout,
                hard_timeout,
                r#match: m,
                actions,
            },
        )
}

fn flow_filter() -> impl Strategy<Value = FlowFilter> {
    (
        option::of(table()),
        flow_match(),
        option::of(any::<u16>().prop_map(Priority)),
        cookie(),
        any::<u64>(),
        option::of(port()),
    )
        .prop_map(
            |(table, m, priority, cookie, cookie_mask, out_port)| FlowFilter {
                table,
                r#match: m,
                priority,
                cookie,
                cookie_mask,
                out_port,
            },
        )
}

fn flow_modify() -> impl Strategy<Value = FlowModify> {
    (flow_spec(), any::<bool>()).prop_map(|(spec, strict)| FlowModify { spec, strict })
}

fn flow_change() -> impl Strategy<Value = FlowChange> {
    prop_oneof![
        flow_spec().prop_map(FlowChange::Add),
        flow_modify().prop_map(FlowChange::Modify),
        flow_filter().prop_map(FlowChange::Delete),
    ]
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn tunnel() -> impl Strategy<Value = TunnelConfig> {
    (
        option::of(ip()),
        option::of(ip()),
        option::of(any::<u32>()),
        option::of(any::<u16>()),
    )
        .prop_map(|(remote_ip, local_ip, key, dst_port)| TunnelConfig {
            remote_ip,
            local_ip,
            key,
            dst_port,
        })
}

fn port_kind() -> impl Strategy<Value = PortKind> {
    prop_oneof![
        Just(PortKind::Tap),
        Just(PortKind::AfPacket),
        Just(PortKind::Internal),
        tunnel().prop_map(PortKind::Geneve),
        tunnel().prop_map(PortKind::Vxlan),
        Just(PortKind::AfXdp),
    ]
}

fn port_ref() -> impl Strategy<Value = PortRef> {
    prop_oneof![
        name().prop_map(PortRef::Name),
        port().prop_map(PortRef::Number)
    ]
}

fn port_stats() -> impl Strategy<Value = PortStats> {
    any::<[u64; 8]>().prop_map(|s| PortStats {
        rx_packets: s[0],
        rx_bytes: s[1],
        rx_dropped: s[2],
        rx_errors: s[3],
        tx_packets: s[4],
        tx_bytes: s[5],
        tx_dropped: s[6],
        tx_errors: s[7],
    })
}

fn port_info() -> impl Strategy<Value = PortInfo> {
    (
        port(),
        name(),
        port_kind(),
        option::of(mac()),
        any::<u32>(),
        any::<[bool; 3]>(),
        port_stats(),
    )
        .prop_map(|(port, name, kind, mac, mtu, flags, stats)| PortInfo {
            port,
            name,
            kind,
            mac,
            mtu,
            admin_up: flags[0],
            no_flood: flags[1],
            link_up: flags[2],
            stats,
        })
}

fn table_stat() -> impl Strategy<Value = TableStat> {
    (table(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(table, active, lookups, matched)| TableStat {
            table,
            active,
            lookups,
            matched,
        },
    )
}

fn tlv() -> impl Strategy<Value = TlvMapping> {
    (any::<u16>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(class, r#type, len, slot)| {
        TlvMapping {
            class,
            r#type,
            len,
            slot,
        }
    })
}

fn cookie_info() -> impl Strategy<Value = CookieInfo> {
    (cookie(), name(), name(), name(), any::<u32>()).prop_map(
        |(cookie, kind, namespace, name, rule)| CookieInfo {
            cookie,
            kind,
            namespace,
            name,
            rule,
        },
    )
}

fn bundle_id() -> impl Strategy<Value = BundleId> {
    any::<u32>().prop_map(BundleId)
}

/// Every [`CtlError`] variant; `BundleFailed` nests one level.
pub(crate) fn ctl_error() -> impl Strategy<Value = CtlError> {
    let leaf = Union::new(vec![
        any::<u32>()
            .prop_map(|tag| CtlError::UnknownMessage { tag })
            .boxed(),
        (name(), name())
            .prop_map(|(message, reason)| CtlError::UnexpectedMessage { message, reason })
            .boxed(),
        name()
            .prop_map(|detail| CtlError::Malformed { detail })
            .boxed(),
        (any::<u64>(), any::<u64>())
            .prop_map(|(len, max)| CtlError::FrameTooLarge { len, max })
            .boxed(),
        (name(), any::<u64>())
            .prop_map(|(what, limit)| CtlError::LimitExceeded { what, limit })
            .boxed(),
        (vec(any::<u16>(), 0..4), vec(any::<u16>(), 0..4))
            .prop_map(|(offered, supported)| CtlError::VersionMismatch { offered, supported })
            .boxed(),
        (any::<usize>(), name(), name(), name())
            .prop_map(|(index, flow, field, reason)| CtlError::BadFlow {
                index,
                flow,
                field,
                reason,
            })
            .boxed(),
        (name(), name())
            .prop_map(|(field, reason)| CtlError::BadRequest { field, reason })
            .boxed(),
        table()
            .prop_map(|table| CtlError::NoSuchTable { table })
            .boxed(),
        port_ref()
            .prop_map(|port| CtlError::NoSuchPort { port })
            .boxed(),
        port_ref()
            .prop_map(|port| CtlError::PortExists { port })
            .boxed(),
        (name(), name())
            .prop_map(|(name, reason)| CtlError::PortFailed { name, reason })
            .boxed(),
        bundle_id()
            .prop_map(|bundle_id| CtlError::NoSuchBundle { bundle_id })
            .boxed(),
        bundle_id()
            .prop_map(|bundle_id| CtlError::BundleExists { bundle_id })
            .boxed(),
        name()
            .prop_map(|what| CtlError::Unsupported { what })
            .boxed(),
        name()
            .prop_map(|detail| CtlError::Internal { detail })
            .boxed(),
    ]);
    leaf.prop_recursive(2, 4, 1, |inner| {
        (bundle_id(), any::<usize>(), inner).prop_map(|(bundle_id, index, e)| {
            CtlError::BundleFailed {
                bundle_id,
                index,
                error: Box::new(e),
            }
        })
    })
}

fn packet() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

/// Every [`Body`] variant.
pub(crate) fn body() -> impl Strategy<Value = Body> {
    Union::new(vec![
        (vec(any::<u16>(), 0..=MAX_VERSIONS_OFFERED), name())
            .prop_map(|(versions, client)| Body::Hello { versions, client })
            .boxed(),
        (any::<u16>(), name())
            .prop_map(|(version, server)| Body::HelloReply { version, server })
            .boxed(),
        ctl_error().prop_map(Body::Error).boxed(),
        Just(Body::Ok).boxed(),
        vec(flow_spec(), 0..4)
            .prop_map(|flows| Body::AddFlows { flows })
            .boxed(),
        flow_modify().prop_map(Body::ModifyFlows).boxed(),
        flow_filter().prop_map(Body::DeleteFlows).boxed(),
        vec(flow_spec(), 0..4)
            .prop_map(|flows| Body::ReplaceFlows { flows })
            .boxed(),
        bundle_id()
            .prop_map(|bundle_id| Body::BundleOpen { bundle_id })
            .boxed(),
        (bundle_id(), vec(flow_change(), 0..4))
            .prop_map(|(bundle_id, changes)| Body::BundleAdd { bundle_id, changes })
            .boxed(),
        bundle_id()
            .prop_map(|bundle_id| Body::BundleCommit { bundle_id })
            .boxed(),
        bundle_id()
            .prop_map(|bundle_id| Body::BundleDiscard { bundle_id })
            .boxed(),
        (flow_filter(), any::<bool>())
            .prop_map(|(filter, with_stats)| Body::DumpFlows { filter, with_stats })
            .boxed(),
        Just(Body::DumpPorts).boxed(),
        Just(Body::DumpTables).boxed(),
        (name(), port_kind(), option::of(port()))
            .prop_map(|(name, kind, requested_ofport)| Body::PortAdd {
                name,
                kind,
                requested_ofport,
            })
            .boxed(),
        port_ref().prop_map(|port| Body::PortDel { port }).boxed(),
        (
            port_ref(),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
        )
            .prop_map(|(port, admin_up, no_flood)| Body::PortMod {
                port,
                config: PortConfig { admin_up, no_flood },
            })
            .boxed(),
        (port(), packet(), vec(action(), 0..4))
            .prop_map(|(in_port, packet, actions)| Body::PacketOut {
                in_port,
                packet,
                actions,
            })
            .boxed(),
        (any::<bool>(), any::<bool>())
            .prop_map(|(packet_in, flow_removed)| Body::Subscribe {
                packet_in,
                flow_removed,
            })
            .boxed(),
        (
            port(),
            prop_oneof![
                packet().prop_map(TraceInput::Packet),
                flow_key().prop_map(|k| TraceInput::Key(Box::new(k))),
            ],
        )
            .prop_map(|(in_port, input)| Body::Trace { in_port, input })
            .boxed(),
        vec(tlv(), 0..4)
            .prop_map(|mappings| Body::SetTlvMap { mappings })
            .boxed(),
        Just(Body::DumpTlvMap).boxed(),
        (vec(cookie_info(), 0..4), any::<bool>())
            .prop_map(|(entries, replace)| Body::SetCookieInfo { entries, replace })
            .boxed(),
        Just(Body::DumpCookies).boxed(),
        Just(Body::Ping).boxed(),
        Just(Body::Goodbye).boxed(),
        any::<[u64; 4]>()
            .prop_map(|c| {
                Body::FlowsChanged(ChangeCounts {
                    added: c[0],
                    modified: c[1],
                    removed: c[2],
                    generation: c[3],
                })
            })
            .boxed(),
        (
            vec(
                (flow_spec(), any::<[u64; 4]>()).prop_map(|(spec, s)| FlowEntryStats {
                    spec,
                    n_packets: s[0],
                    n_bytes: s[1],
                    duration_ms: s[2],
                    idle_age_ms: s[3],
                }),
                0..4,
            ),
            any::<bool>(),
        )
            .prop_map(|(entries, more)| Body::Flows { entries, more })
            .boxed(),
        vec(port_info(), 0..4).prop_map(Body::Ports).boxed(),
        port().prop_map(|port| Body::PortAdded { port }).boxed(),
        vec(table_stat(), 0..4).prop_map(Body::Tables).boxed(),
        name().prop_map(|text| Body::TraceResult { text }).boxed(),
        vec(tlv(), 0..4).prop_map(Body::TlvMap).boxed(),
        vec(cookie_info(), 0..4).prop_map(Body::Cookies).boxed(),
        (
            controller_reason(),
            table(),
            cookie(),
            flow_key(),
            packet(),
            any::<u32>(),
        )
            .prop_map(|(reason, table, cookie, key, packet, total_len)| {
                Body::PacketIn(PacketIn {
                    reason,
                    table,
                    cookie,
                    key,
                    packet,
                    total_len,
                })
            })
            .boxed(),
        (
            flow_spec(),
            prop_oneof![
                Just(RemovedReason::IdleTimeout),
                Just(RemovedReason::HardTimeout),
                Just(RemovedReason::Delete),
            ],
            any::<[u64; 3]>(),
        )
            .prop_map(|(spec, reason, s)| {
                Body::FlowRemoved(FlowRemoved {
                    spec,
                    reason,
                    duration_ms: s[0],
                    n_packets: s[1],
                    n_bytes: s[2],
                })
            })
            .boxed(),
        (vec(node(), 0..4), any::<bool>())
            .prop_map(|(nodes, replace)| Body::SetNodes { nodes, replace })
            .boxed(),
        vec(name(), 0..4)
            .prop_map(|names| Body::DelNodes { names })
            .boxed(),
        Just(Body::DumpNodes).boxed(),
        option::of(underlay()).prop_map(Body::SetUnderlay).boxed(),
        Just(Body::DumpTunnels).boxed(),
        vec(node(), 0..4).prop_map(Body::Nodes).boxed(),
        tunnel_status().prop_map(Body::Tunnels).boxed(),
        Just(Body::DumpStats).boxed(),
        (name(), port_kind(), option::of(port()), any::<bool>())
            .prop_map(
                |(name, kind, requested_ofport, offloads)| Body::PortAddWith {
                    name,
                    kind,
                    requested_ofport,
                    options: PortOptions { offloads },
                },
            )
            .boxed(),
        Just(Body::DumpPortOffloads).boxed(),
        vec(
            (port(), name(), any::<bool>(), option::of(any::<bool>())).prop_map(
                |(port, name, requested, vnet_hdr)| PortOffloadInfo {
                    port,
                    name,
                    requested,
                    vnet_hdr,
                },
            ),
            0..4,
        )
        .prop_map(Body::PortOffloads)
        .boxed(),
        Just(Body::DumpPortBackends).boxed(),
        vec(
            (port(), name(), name()).prop_map(|(port, name, backend)| PortBackendInfo {
                port,
                name,
                backend,
            }),
            0..4,
        )
        .prop_map(Body::PortBackends)
        .boxed(),
        (any::<[u64; 3]>(), vec((name(), any::<u64>()), 0..4))
            .prop_map(|(c, d)| {
                Body::Stats(DatapathStats {
                    packets: c[0],
                    outputs: c[1],
                    packet_ins: c[2],
                    drops: d
                        .into_iter()
                        .map(|(reason, count)| DropCount { reason, count })
                        .collect(),
                })
            })
            .boxed(),
        (
            port(),
            prop_oneof![
                packet().prop_map(TraceInput::Packet),
                flow_key().prop_map(|k| TraceInput::Key(Box::new(k))),
            ],
        )
            .prop_map(|(in_port, input)| Body::TraceDetailed { in_port, input })
            .boxed(),
        trace_report().prop_map(Body::TraceReport).boxed(),
    ])
}

fn trace_report() -> impl Strategy<Value = TraceReport> {
    let hit =
        (any::<u16>(), cookie(), name(), name()).prop_map(|(p, cookie, m, actions)| TraceRuleHit {
            priority: Priority(p),
            cookie,
            r#match: m,
            actions,
        });
    let rule = (table(), any::<u16>(), option::of(hit)).prop_map(|(table, depth, hit)| TraceRule {
        table,
        depth,
        hit,
    });
    (
        (name(), name(), any::<bool>(), option::of(name())),
        vec(
            (port(), packet()).prop_map(|(port, packet)| TraceOutput { port, packet }),
            0..3,
        ),
        any::<u32>(),
        vec(rule, 0..6),
    )
        .prop_map(
            |((text, flow, dropped, drop_reason), outputs, packet_ins, rules)| TraceReport {
                text,
                flow,
                dropped,
                drop_reason,
                outputs,
                packet_ins,
                rules,
            },
        )
}

fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

fn node() -> impl Strategy<Value = NodeEntry> {
    (name(), ip_addr()).prop_map(|(name, ip)| NodeEntry { name, ip })
}

fn underlay() -> impl Strategy<Value = UnderlayConfig> {
    (name(), name(), option::of(ip_addr())).prop_map(|(port, host_port, local_ip)| UnderlayConfig {
        port,
        host_port,
        local_ip,
    })
}

fn tunnel_status() -> impl Strategy<Value = TunnelStatus> {
    (
        option::of(underlay()),
        option::of(ip_addr()),
        option::of(mac()),
        any::<u32>(),
        vec(
            (port(), name(), port_kind(), any::<[u32; 2]>()).prop_map(|(port, name, kind, m)| {
                TunnelPortInfo {
                    port,
                    name,
                    kind,
                    overhead: m[0],
                    pod_mtu: m[1],
                }
            }),
            0..3,
        ),
        vec(
            (
                ip_addr(),
                option::of(ip_addr()),
                option::of(mac()),
                prop_oneof![
                    Just(NeighbourOrigin::Kernel),
                    Just(NeighbourOrigin::Learned),
                    Just(NeighbourOrigin::Unresolved),
                ],
            )
                .prop_map(|(remote, gateway, mac, origin)| NextHopInfo {
                    remote,
                    gateway,
                    mac,
                    origin,
                }),
            0..3,
        ),
    )
        .prop_map(
            |(underlay, local_ip, local_mac, underlay_mtu, ports, next_hops)| TunnelStatus {
                underlay,
                local_ip,
                local_mac,
                underlay_mtu,
                ports,
                next_hops,
            },
        )
}

/// Any message.
pub(crate) fn message() -> impl Strategy<Value = Message> {
    (any::<u64>(), body()).prop_map(|(id, body)| Message { id, body })
}

/// Writes encoded message bodies as fuzz seeds for `ctl_decode` into
/// `$WEFT_SEED_DIR` (run by hand: `WEFT_SEED_DIR=fuzz/seeds/ctl_decode
/// cargo test -p weft-protocol write_fuzz_seeds -- --ignored`).
#[test]
#[ignore = "writes files; run by hand to refresh fuzz seeds"]
fn write_fuzz_seeds() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let dir = std::env::var("WEFT_SEED_DIR").expect("set WEFT_SEED_DIR");
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    for i in 0..40 {
        let m = message().new_tree(&mut runner).expect("strategy").current();
        let frame = super::encode_frame(&m).expect("encodes");
        std::fs::write(format!("{dir}/seed-{i:02}"), &frame[4..]).expect("write seed");
    }
}
