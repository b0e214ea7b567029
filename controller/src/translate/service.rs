//! Services + EndpointSlices -> load balancers (modelled only).

use std::net::IpAddr;

use super::topology::{parse_ip, parse_protocol};
use super::{Ctx, invalid};
use crate::model::*;
use crate::source::{LoadError, Manifests};

pub(super) fn build(m: &Manifests, ctx: &mut Ctx) -> Result<(), LoadError> {
    for l in &m.services {
        let ns = l.object.metadata.namespace.clone().unwrap_or_default();
        let name = l.object.metadata.name.clone().unwrap_or_default();
        let label = format!("Service {ns}/{name}");
        let spec = l.object.spec.clone().unwrap_or_default();
        let mut vips: Vec<IpAddr> = Vec::new();
        let ips = spec
            .cluster_ips
            .clone()
            .filter(|v| !v.is_empty())
            .or(spec.cluster_ip.clone().map(|c| vec![c]))
            .unwrap_or_default();
        for (i, s) in ips.iter().enumerate() {
            if s == "None" || s.is_empty() {
                continue;
            }
            vips.push(
                parse_ip(s)
                    .map_err(|e| invalid(&l.origin, &label, &format!("spec.clusterIPs[{i}]"), e))?,
            );
        }
        let tenant = ctx.ns_tenant.get(&ns).cloned().unwrap_or_default();
        for (k, sp) in spec.ports.iter().flatten().enumerate() {
            let at = format!("spec.ports[{k}]");
            let proto = parse_protocol(sp.protocol.as_deref())
                .map_err(|e| invalid(&l.origin, &label, &format!("{at}.protocol"), e))?;
            let port = u16::try_from(sp.port)
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| {
                    invalid(
                        &l.origin,
                        &label,
                        &format!("{at}.port"),
                        format!("{} is not a port", sp.port),
                    )
                })?;
            let mut backends = Vec::new();
            for sl in &m.endpoint_slices {
                let o = &sl.object;
                let owner = o
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"));
                if o.metadata.namespace.as_deref() != Some(ns.as_str()) || owner != Some(&name) {
                    continue;
                }
                let slabel = format!(
                    "EndpointSlice {ns}/{}",
                    o.metadata.name.clone().unwrap_or_default()
                );
                for (pi, ep) in o.ports.iter().flatten().enumerate() {
                    if ep.name.as_deref().unwrap_or("") != sp.name.as_deref().unwrap_or("") {
                        continue;
                    }
                    let Some(tp) = ep.port else { continue };
                    let tp = u16::try_from(tp).ok().filter(|&p| p != 0).ok_or_else(|| {
                        invalid(
                            &sl.origin,
                            &slabel,
                            &format!("ports[{pi}].port"),
                            format!("{tp} is not a port"),
                        )
                    })?;
                    for (ei, e) in o.endpoints.iter().enumerate() {
                        if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                            continue;
                        }
                        for (ai, a) in e.addresses.iter().enumerate() {
                            let ip = parse_ip(a).map_err(|er| {
                                invalid(
                                    &sl.origin,
                                    &slabel,
                                    &format!("endpoints[{ei}].addresses[{ai}]"),
                                    er,
                                )
                            })?;
                            let port_id = ctx
                                .pods
                                .iter()
                                .find(|q| q.tenant == tenant && q.ips.contains(&ip))
                                .map(|q| q.port);
                            backends.push(Backend {
                                ip,
                                port: tp,
                                port_id,
                            });
                        }
                    }
                }
            }
            backends.sort();
            backends.dedup();
            let pname = sp
                .name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| port.to_string());
            let proto_s = match proto {
                L4Protocol::Tcp => "tcp",
                L4Protocol::Udp => "udp",
                L4Protocol::Sctp => "sctp",
            };
            let lb = format!("lb/{ns}/{name}/{pname}/{proto_s}");
            ctx.model.load_balancers.insert(
                lb.clone(),
                LoadBalancer {
                    name: lb,
                    tenant: tenant.clone(),
                    protocol: proto,
                    vips: vips.iter().map(|v| (*v, port)).collect(),
                    backends,
                    source: SourceRef::namespaced(SourceKind::Service, &ns, &name),
                },
            );
        }
    }
    Ok(())
}
