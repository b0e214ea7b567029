//! Small builders for the typed flows the compiler emits: a [`FlowSpec`] is
//! built field by field with the `protocol::flow` vocabulary, never from
//! text (text is for goldens and tools only).

use core::net::{Ipv4Addr, Ipv6Addr};

use protocol::flow::{Action, Cookie, Field, FlowSpec, Match, PortNo, Priority, SubField, TableId};
use protocol::wire::EthernetAddress;

/// `dl_type` values.
pub(crate) const ETH_IPV4: u128 = 0x0800;
pub(crate) const ETH_ARP: u128 = 0x0806;
pub(crate) const ETH_IPV6: u128 = 0x86dd;
/// IP protocol numbers.
pub(crate) const IPPROTO_TCP: u8 = 6;
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const IPPROTO_SCTP: u8 = 132;
pub(crate) const IPPROTO_ICMPV6: u128 = 58;
pub(crate) const IPPROTO_ICMP: u128 = 1;

/// A flow under construction.
#[derive(Debug, Clone)]
pub(crate) struct FlowBuilder {
    spec: FlowSpec,
}

impl FlowBuilder {
    /// A flow in `table` at `priority` with `cookie`, matching everything,
    /// with no actions (drop).
    pub(crate) fn new(table: TableId, priority: u16, cookie: Cookie) -> FlowBuilder {
        FlowBuilder {
            spec: FlowSpec {
                table,
                priority: Priority(priority),
                cookie,
                r#match: Match::CATCHALL,
                ..FlowSpec::default()
            },
        }
    }

    /// The table.
    pub(crate) fn table(&self) -> TableId {
        self.spec.table
    }

    /// The priority.
    pub(crate) fn priority(&self) -> u16 {
        self.spec.priority.0
    }

    /// The cookie.
    pub(crate) fn cookie(&self) -> Cookie {
        self.spec.cookie
    }

    /// Matches `field` exactly.
    pub(crate) fn m(mut self, field: Field, value: u128) -> FlowBuilder {
        self.spec.r#match.set_exact(field, value);
        self
    }

    /// Matches `field` under `mask`.
    pub(crate) fn masked(mut self, field: Field, value: u128, mask: u128) -> FlowBuilder {
        self.spec.r#match.set_masked(field, value, mask);
        self
    }

    /// `metadata=dp`.
    pub(crate) fn dp(self, dp: u32) -> FlowBuilder {
        self.m(Field::Metadata, u128::from(dp))
    }

    /// `ip`.
    pub(crate) fn ip(self) -> FlowBuilder {
        self.m(Field::DlType, ETH_IPV4)
    }

    /// `ipv6`.
    pub(crate) fn ipv6(self) -> FlowBuilder {
        self.m(Field::DlType, ETH_IPV6)
    }

    /// `arp`.
    pub(crate) fn arp(self) -> FlowBuilder {
        self.m(Field::DlType, ETH_ARP)
    }

    /// `nw_src`/`nw_dst` (or `ipv6_src`/`ipv6_dst`) as a prefix; also
    /// sets `dl_type`.
    pub(crate) fn prefix(self, dst: bool, net: &ipnet::IpNet) -> FlowBuilder {
        match net {
            ipnet::IpNet::V4(n) => {
                let f = if dst { Field::NwDst } else { Field::NwSrc };
                self.ip().masked(
                    f,
                    u128::from(u32::from(n.network())),
                    u128::from(u32::from(n.netmask())),
                )
            }
            ipnet::IpNet::V6(n) => {
                let f = if dst { Field::Ipv6Dst } else { Field::Ipv6Src };
                self.ipv6()
                    .masked(f, u128::from(n.network()), u128::from(n.netmask()))
            }
        }
    }

    /// Adds an action.
    pub(crate) fn a(mut self, action: Action) -> FlowBuilder {
        self.spec.actions.push(action);
        self
    }

    /// `set_field:value->field`.
    pub(crate) fn set(self, field: Field, value: u128) -> FlowBuilder {
        let mask = ones(field.width());
        self.a(Action::SetField { field, value, mask })
    }

    /// `move:src->dst` of whole fields or bit ranges.
    pub(crate) fn mv(self, src: SubField, dst: SubField) -> FlowBuilder {
        self.a(Action::Move { src, dst })
    }

    /// `goto_table:t`.
    pub(crate) fn goto(self, t: TableId) -> FlowBuilder {
        self.a(Action::GotoTable(t))
    }

    /// `resubmit(,t)`.
    pub(crate) fn resubmit(self, t: TableId) -> FlowBuilder {
        self.a(Action::Resubmit {
            port: None,
            table: Some(t),
        })
    }

    /// `output:p`.
    pub(crate) fn output(self, p: PortNo) -> FlowBuilder {
        self.a(Action::Output(p))
    }

    /// The finished flow.
    pub(crate) fn build(self) -> FlowSpec {
        self.spec
    }
}

/// `n` low bits set.
pub(crate) fn ones(n: u8) -> u128 {
    if n >= 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

/// A MAC as a field value.
pub(crate) fn mac(m: EthernetAddress) -> u128 {
    u128::from(m.to_u64())
}

/// An IPv4 address as a field value.
pub(crate) fn v4(a: Ipv4Addr) -> u128 {
    u128::from(u32::from(a))
}

/// An IPv6 address as a field value.
pub(crate) fn v6(a: Ipv6Addr) -> u128 {
    u128::from(a)
}

/// Bits `ofs..ofs+n` of `field`.
pub(crate) fn bits(field: Field, ofs: u8, n_bits: u8) -> SubField {
    SubField { field, ofs, n_bits }
}
