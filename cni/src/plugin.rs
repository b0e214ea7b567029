//! The CNI commands: what `ADD`, `DEL`, `CHECK`, `STATUS` and `GC` do, in
//! order, and what each leaves behind if it dies half-way.
//!
//! # ADD
//!
//! 1. Connect to switchd (code 11 if unreachable: nothing was touched).
//! 2. Allocate the address (durable before anything else; a retry of the
//!    same attachment gets the same address, see [`crate::ipam`]).
//! 3. Remove the host veth left by an earlier, interrupted `ADD` of the
//!    same attachment (deterministic name), if any.
//! 4. Create the veth pair into the pod's namespace, configure the pod end
//!    (MAC from the address, MTU, address, default route via the gateway;
//!    offloads stay on unless the configuration says `"offloads": false`),
//!    bring the host end up.
//! 5. Add the host end to switchd as an AF_PACKET port. If switchd still
//!    has a port of that name (an interrupted `ADD`), it is removed and
//!    added again: the stale port is only looked for when `PortAdd` says
//!    it exists, so a normal `ADD` makes two requests to switchd (`Hello`,
//!    `PortAdd`). Each request waits for switchd's control thread to be
//!    scheduled, which on a busy node costs more than the work it does.
//! 6. If the configuration has `podReportDir` and `CNI_ARGS` names the pod
//!    (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`), write the pod report for the
//!    controller ([`crate::report`]; durable before ADD returns).
//! 7. Print the result.
//!
//! A failure in 3 to 5 undoes 2 to 5 (best effort) and returns the error. A
//! crash (kill -9) anywhere leaves the address file and maybe a veth and a
//! port, all found again by a retried `ADD`, `DEL` or `GC`.
//!
//! # DEL
//!
//! Idempotent and works without `CNI_NETNS` or with the namespace gone:
//! delete the host veth by its deterministic name (the pod end goes with
//! it), remove the switchd port, release the address. If switchd is
//! unreachable the local resources are still released and code 11 is
//! returned, so the runtime retries and the port is removed then.
//!
//! # CHECK
//!
//! Needs `prevResult`. Verifies the address reservation, the pod interface
//! (exists, up, MAC, MTU, address from `prevResult`), the host end (exists,
//! up) and the switchd port (present and open in the datapath). Routes are
//! not checked, since a later plugin of the chain may change them (spec).
//!
//! # STATUS and GC
//!
//! `STATUS` succeeds when switchd answers a `Ping` and the IPAM directory
//! can be locked; otherwise code 50. `GC` releases every allocation whose
//! attachment is not in `cni.dev/valid-attachments`, with its veth and
//! port. It works from the allocation records: every attachment has one
//! from step 2 of `ADD` until the end of its `DEL`, so nothing of ours can
//! exist without a record.

use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{Value, json};

use crate::ipam::{IpamError, Record, Store};
use crate::netdev::{self, VethSpec, host_ifname, mac_string, pod_mac};
use crate::spec::{Attachment, CniError, CniResult, Command, NetConf, Request, code, version_json};
use crate::switch::Switch;

/// Runs a parsed request; `Some(json)` is printed on stdout.
///
/// # Errors
/// The [`CniError`] to print.
pub fn run(req: &Request) -> CniResult<Option<Value>> {
    let Some(conf) = &req.conf else {
        return Ok(Some(version_json(&req.version)));
    };
    match req.command {
        Command::Version => Ok(Some(version_json(&req.version))),
        Command::Add => add(req, conf).map(Some),
        Command::Del => del(req, conf).map(|()| None),
        Command::Check => check(req, conf).map(|()| None),
        Command::Status => status(conf).map(|()| None),
        Command::Gc => gc(conf).map(|()| None),
    }
}

fn ipam_err(e: IpamError) -> CniError {
    match e {
        IpamError::Exhausted { .. } => CniError::new(code::POOL_EXHAUSTED, e.to_string()),
        IpamError::Io { .. } => CniError::new(code::IO_FAILURE, e.to_string()),
    }
}

fn store(conf: &NetConf) -> CniResult<Store> {
    let pool = conf
        .pool()
        .map_err(|e| CniError::new(code::INVALID_CONFIG, format!("ipam: {e}")))?;
    Store::open(&conf.ipam_dir(), pool).map_err(ipam_err)
}

fn attachment(req: &Request) -> CniResult<&Attachment> {
    req.attachment
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_CONTAINERID/CNI_IFNAME missing"))
}

fn netns(req: &Request) -> CniResult<&Path> {
    req.netns
        .as_deref()
        .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_NETNS is not set"))
}

fn add(req: &Request, conf: &NetConf) -> CniResult<Value> {
    let att = attachment(req)?;
    let ns = netns(req)?;
    if !ns.exists() {
        return Err(CniError::new(
            code::IO_FAILURE,
            format!("network namespace {} does not exist", ns.display()),
        ));
    }
    crate::timing::mark("checks");
    let mut sw = Switch::connect(&conf.socket)?;
    crate::timing::mark("switchd-connect");
    let pool = conf
        .pool()
        .map_err(|e| CniError::new(code::INVALID_CONFIG, format!("ipam: {e}")))?;
    let host = host_ifname(&conf.name, &att.container_id, &att.ifname);
    let st = store(conf)?;
    let rec = {
        let l = st.lock().map_err(ipam_err)?;
        l.allocate(&Record {
            ip: Ipv4Addr::UNSPECIFIED,
            attachment: att.clone(),
            host_ifname: host.clone(),
            pod_namespace: req.args.get("K8S_POD_NAMESPACE").cloned(),
            pod_name: req.args.get("K8S_POD_NAME").cloned(),
        })
        .map_err(ipam_err)?
    };
    crate::timing::mark("ipam-allocate");
    crate::test_hook::pause_at("allocated");
    let mtu = conf.pod_mtu();
    let spec = VethSpec {
        host: host.clone(),
        pod: att.ifname.clone(),
        mac: pod_mac(rec.ip),
        mtu,
        ip: rec.ip,
        prefix: pool.subnet.prefix,
        gateway: pool.gateway,
        offloads: conf.offloads.unwrap_or(true),
    };
    let attach = |sw: &mut Switch| -> CniResult<[u8; 6]> {
        let host_mac = netdev::create_veth(ns, &spec)?;
        crate::test_hook::pause_at("before-port-add");
        let ofport = sw.port_replace(&host)?;
        crate::timing::mark("switchd-port-add");
        crate::report::write(conf, req, att, rec.ip, &spec.mac, &host, ofport.0)?;
        crate::timing::mark("pod-report");
        Ok(host_mac)
    };
    let host_mac = match attach(&mut sw) {
        Ok(m) => m,
        Err(e) => {
            // Undo what this ADD did; the runtime may also call DEL.
            let _ = sw.port_del(&host);
            let _ = netdev::delete_link(&host);
            let _ = crate::report::remove(conf, att);
            if let Ok(l) = st.lock() {
                let _ = l.release_record(&rec);
            }
            return Err(e);
        }
    };
    let v11 = req.version != "1.0.0";
    let mut host_if = json!({"name": host, "mac": mac_string(&host_mac)});
    let mut pod_if = json!({
        "name": att.ifname,
        "mac": mac_string(&spec.mac),
        "sandbox": ns.display().to_string(),
    });
    if v11 {
        for i in [&mut host_if, &mut pod_if] {
            if let Some(o) = i.as_object_mut() {
                o.insert("mtu".into(), json!(mtu));
            }
        }
    }
    let mut result = json!({
        "cniVersion": req.version,
        "interfaces": [host_if, pod_if],
        "ips": [{
            "address": format!("{}/{}", rec.ip, pool.subnet.prefix),
            "gateway": pool.gateway.to_string(),
            "interface": 1,
        }],
        "routes": [{"dst": "0.0.0.0/0", "gw": pool.gateway.to_string()}],
    });
    if let (Some(dns), Some(o)) = (&conf.dns, result.as_object_mut()) {
        o.insert("dns".into(), dns.clone());
    }
    crate::timing::mark("result-json");
    Ok(result)
}

fn del(req: &Request, conf: &NetConf) -> CniResult<()> {
    let att = attachment(req)?;
    let host = host_ifname(&conf.name, &att.container_id, &att.ifname);
    let st = store(conf)?;
    let rec = st.lock().and_then(|l| l.find(att)).map_err(ipam_err)?;
    crate::timing::mark("ipam-find");
    let mut names = vec![host];
    if let Some(r) = &rec
        && !names.contains(&r.host_ifname)
        && !r.host_ifname.is_empty()
    {
        names.push(r.host_ifname.clone());
    }
    for n in &names {
        netdev::delete_link(n)?;
    }
    crate::timing::mark("link-delete");
    crate::report::remove(conf, att)?;
    crate::timing::mark("pod-report-remove");
    let sw_result = Switch::connect(&conf.socket).and_then(|mut sw| {
        crate::timing::mark("switchd-connect");
        for n in &names {
            sw.port_del(n)?;
        }
        Ok(())
    });
    crate::timing::mark("switchd-port-del");
    // The record found above is still this attachment's: the runtime
    // does not run two operations on one attachment at once.
    st.lock()
        .and_then(|l| match &rec {
            Some(r) => l.release_record(r),
            None => l.release(att).map(drop),
        })
        .map_err(ipam_err)?;
    crate::timing::mark("ipam-release");
    sw_result
}

fn check_err(msg: String) -> CniError {
    CniError::new(code::CHECK_FAILED, msg)
}

fn check(req: &Request, conf: &NetConf) -> CniResult<()> {
    let att = attachment(req)?;
    let ns = netns(req)?;
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs prevResult in the configuration",
        )
    })?;
    let st = store(conf)?;
    let rec = st
        .lock()
        .and_then(|l| l.find(att))
        .map_err(ipam_err)?
        .ok_or_else(|| {
            check_err(format!(
                "no address is reserved for container {} interface {}",
                att.container_id, att.ifname
            ))
        })?;
    let pool = conf
        .pool()
        .map_err(|e| CniError::new(code::INVALID_CONFIG, format!("ipam: {e}")))?;
    let want_addr = format!("{}/{}", rec.ip, pool.subnet.prefix);
    let prev_ips: Vec<&str> = prev
        .get("ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("address")?.as_str())
                .collect()
        })
        .unwrap_or_default();
    if !prev_ips.contains(&want_addr.as_str()) {
        return Err(check_err(format!(
            "prevResult lists {prev_ips:?}, but the reservation is {want_addr}"
        )));
    }
    let prev_mac = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|i| i.get("name").and_then(Value::as_str) == Some(att.ifname.as_str()))
        })
        .and_then(|i| i.get("mac")?.as_str().map(str::to_owned));
    let ifname = att.ifname.clone();
    let pod = netdev::in_netns(ns, move || netdev::inspect(&ifname))?
        .ok_or_else(|| check_err(format!("{} is missing in {}", att.ifname, ns.display())))?;
    let mac = pod.mac.map(|m| mac_string(&m)).unwrap_or_default();
    if mac != mac_string(&pod_mac(rec.ip)) || prev_mac.as_deref().is_some_and(|p| p != mac) {
        return Err(check_err(format!(
            "{} has MAC {mac}, expected {} (prevResult {prev_mac:?})",
            att.ifname,
            mac_string(&pod_mac(rec.ip))
        )));
    }
    if !pod.up {
        return Err(check_err(format!("{} is down", att.ifname)));
    }
    if pod.mtu != Some(conf.pod_mtu()) {
        return Err(check_err(format!(
            "{} has MTU {:?}, expected {}",
            att.ifname,
            pod.mtu,
            conf.pod_mtu()
        )));
    }
    if !pod.addrs.contains(&(rec.ip, pool.subnet.prefix)) {
        return Err(check_err(format!(
            "{} lacks {want_addr} (has {:?})",
            att.ifname, pod.addrs
        )));
    }
    let host = netdev::inspect(&rec.host_ifname)?
        .ok_or_else(|| check_err(format!("host end {} is missing", rec.host_ifname)))?;
    if !host.up {
        return Err(check_err(format!("host end {} is down", rec.host_ifname)));
    }
    // The datapath reports an opened port with its next statistics
    // publication, so allow a convergence delay (the spec asks for one
    // right after ADD).
    let mut sw = Switch::connect(&conf.socket)?;
    let deadline = std::time::Instant::now() + CHECK_CONVERGENCE;
    loop {
        let ports = sw.ports()?;
        let err = match ports.iter().find(|p| p.name == rec.host_ifname) {
            None => check_err(format!("switchd has no port {}", rec.host_ifname)),
            Some(p) if !p.link_up => check_err(format!(
                "switchd port {} ({}) is not open in the datapath",
                rec.host_ifname, p.port
            )),
            Some(_) => return Ok(()),
        };
        if std::time::Instant::now() >= deadline {
            return Err(err);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// How long `CHECK` waits for switchd to report a new port open.
const CHECK_CONVERGENCE: std::time::Duration = std::time::Duration::from_secs(5);

fn status(conf: &NetConf) -> CniResult<()> {
    let not_ready = |e: CniError| {
        CniError::new(code::NOT_AVAILABLE, e.msg).with_details(
            e.details
                .unwrap_or_else(|| "the plugin cannot serve ADD now".into()),
        )
    };
    Switch::connect(&conf.socket)
        .and_then(|mut s| s.ping())
        .map_err(not_ready)?;
    store(conf)
        .and_then(|s| s.lock().map(drop).map_err(ipam_err))
        .map_err(not_ready)
}

fn gc(conf: &NetConf) -> CniResult<()> {
    let valid = conf.gc_valid();
    let st = store(conf)?;
    let stale: Vec<Record> = st
        .lock()
        .and_then(|l| l.records())
        .map_err(ipam_err)?
        .into_iter()
        .filter(|r| !valid.contains(&r.attachment))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let mut sw = Switch::connect(&conf.socket);
    let mut first_err = None;
    for r in &stale {
        if !r.host_ifname.is_empty() {
            if let Err(e) = netdev::delete_link(&r.host_ifname) {
                first_err.get_or_insert(e);
            }
            match &mut sw {
                Ok(s) => {
                    if let Err(e) = s.port_del(&r.host_ifname) {
                        first_err.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e.clone());
                }
            }
        }
        if let Err(e) = crate::report::remove(conf, &r.attachment) {
            first_err.get_or_insert(e);
        }
        if let Err(e) = st.lock().and_then(|l| l.release_record(r)) {
            first_err.get_or_insert(ipam_err(e));
        }
    }
    first_err.map_or(Ok(()), Err)
}
