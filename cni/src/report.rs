//! Pod reports for the controller (format and mechanism:
//! [`protocol::pod_report`]).
//!
//! `ADD` writes `<podReportDir>/<containerId>-<ifname>.json` after the
//! switchd port exists: temporary file in the same directory, `fsync`,
//! `rename`, `fsync` of the directory, so the controller never reads half
//! a record and a crash leaves either the old state or the new record.
//! `DEL` and `GC` remove it (a missing file is fine: DEL is idempotent).
//! Without `podReportDir` in the configuration, or without
//! `K8S_POD_NAMESPACE`/`K8S_POD_NAME` in `CNI_ARGS` (a runtime that is not
//! kubelet-like), nothing is written: the controller cannot name the pod.

use std::fs;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use protocol::pod_report::PodReport;

use crate::netdev::mac_string;
use crate::spec::{Attachment, CniError, CniResult, NetConf, Request, code};

fn io(what: &str, path: &Path, e: &std::io::Error) -> CniError {
    CniError::new(
        code::IO_FAILURE,
        format!("pod report: {what} {}: {e}", path.display()),
    )
}

/// The node name: `nodeName` from the configuration, else the host name.
fn node_name(conf: &NetConf) -> String {
    if let Some(n) = &conf.node_name {
        return n.clone();
    }
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Writes the report of attachment `att` (see the module doc).
///
/// # Errors
/// The directory cannot be created or the record written (code 5).
pub fn write(
    conf: &NetConf,
    req: &Request,
    att: &Attachment,
    ip: Ipv4Addr,
    mac: &[u8; 6],
    port: &str,
    ofport: u32,
) -> CniResult<()> {
    let Some(dir) = &conf.pod_report_dir else {
        return Ok(());
    };
    let (Some(namespace), Some(name)) = (
        req.args.get("K8S_POD_NAMESPACE"),
        req.args.get("K8S_POD_NAME"),
    ) else {
        return Ok(());
    };
    let r = PodReport {
        namespace: namespace.clone(),
        name: name.clone(),
        node: node_name(conf),
        container_id: att.container_id.clone(),
        ifname: att.ifname.clone(),
        ip,
        mac: mac_string(mac),
        port: port.to_owned(),
        ofport,
    };
    fs::create_dir_all(dir).map_err(|e| io("creating", dir, &e))?;
    let path = dir.join(PodReport::file_name(&att.container_id, &att.ifname));
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let body = serde_json::to_vec_pretty(&r)
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("pod report: encoding: {e}")))?;
    (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    })()
    .map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io("writing", &path, &e)
    })
}

/// Removes the report of attachment `att`, if any.
///
/// # Errors
/// It exists and cannot be removed (code 5).
pub fn remove(conf: &NetConf, att: &Attachment) -> CniResult<()> {
    let Some(dir) = &conf.pod_report_dir else {
        return Ok(());
    };
    let path = dir.join(PodReport::file_name(&att.container_id, &att.ifname));
    match fs::remove_file(&path) {
        Ok(()) => fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing", dir, &e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("removing", &path, &e)),
    }
}
