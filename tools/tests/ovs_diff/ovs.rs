//! A private Open vSwitch: ovsdb-server + ovs-vswitchd on the dummy
//! datapath, everything under one temporary directory, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running daemons. Dropping kills both (by the child handles we
/// spawned) and removes the directory.
#[derive(Debug)]
pub(crate) struct Ovs {
    dir: PathBuf,
    children: Vec<Child>,
}

/// Whether `ovs-vswitchd` can be run at all.
pub(crate) fn available() -> bool {
    [
        "ovs-vswitchd",
        "ovsdb-server",
        "ovsdb-tool",
        "ovs-vsctl",
        "ovs-ofctl",
        "ovs-appctl",
    ]
    .iter()
    .all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

fn wait_for(path: &Path, what: &str) -> Result<(), String> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("{what}: {} did not appear", path.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

impl Ovs {
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        for v in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            c.env(v, &self.dir);
        }
        c.current_dir(&self.dir);
        c
    }

    fn run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let o = self
            .cmd(prog)
            .args(args)
            .output()
            .map_err(|e| format!("{prog}: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "{prog} {args:?}: {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn db(&self) -> String {
        format!("--db=unix:{}/db.sock", self.dir.display())
    }

    /// Starts the daemons and a bridge `br0` with ports `p1..pN`
    /// (`ofport_request=i`, dummy datapath port `i`; LOCAL is datapath
    /// port 100).
    pub(crate) fn start(nports: u32) -> Result<Ovs, String> {
        let dir = std::env::temp_dir().join(format!("weft-ovs-diff-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut ovs = Ovs {
            dir,
            children: Vec::new(),
        };
        let d = ovs.dir.display().to_string();
        ovs.run("ovsdb-tool", &["create", &format!("{d}/conf.db"), SCHEMA])?;
        let db = ovs
            .cmd("ovsdb-server")
            .args([
                &format!("{d}/conf.db"),
                &format!("--remote=punix:{d}/db.sock"),
                &format!("--unixctl={d}/ovsdb-server.ctl"),
                &format!("--log-file={d}/ovsdb-server.log"),
                "--no-chdir",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ovsdb-server: {e}"))?;
        ovs.children.push(db);
        wait_for(&ovs.dir.join("db.sock"), "ovsdb-server")?;
        ovs.run("ovs-vsctl", &[&ovs.db(), "--no-wait", "init"])?;
        let sw = ovs
            .cmd("ovs-vswitchd")
            .args([
                "--enable-dummy=override",
                &format!("unix:{d}/db.sock"),
                &format!("--unixctl={d}/vswitchd.ctl"),
                &format!("--log-file={d}/vswitchd.log"),
                "--no-chdir",
                "-vconsole:off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ovs-vswitchd: {e}"))?;
        ovs.children.push(sw);
        wait_for(&ovs.dir.join("vswitchd.ctl"), "ovs-vswitchd")?;
        let mut args: Vec<String> = vec![
            ovs.db(),
            "--timeout=20".into(),
            "--".into(),
            "add-br".into(),
            "br0".into(),
            "--".into(),
            "set".into(),
            "bridge".into(),
            "br0".into(),
            "datapath_type=dummy".into(),
            "fail-mode=secure".into(),
            "protocols=OpenFlow10,OpenFlow13,OpenFlow15".into(),
        ];
        for i in 1..=nports {
            args.extend([
                "--".into(),
                "add-port".into(),
                "br0".into(),
                format!("p{i}"),
                "--".into(),
                "set".into(),
                "interface".into(),
                format!("p{i}"),
                "type=dummy".into(),
                format!("ofport_request={i}"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ovs.run("ovs-vsctl", &args)?;
        wait_for(&ovs.dir.join("br0.mgmt"), "br0")?;
        Ok(ovs)
    }

    /// Replaces the flow table of `br0` by `flows` (OpenFlow 1.5: needed
    /// for `goto_table` and `push_vlan`).
    pub(crate) fn replace_flows(&self, flows: &[String]) -> Result<(), String> {
        let f = self.dir.join("flows.txt");
        std::fs::write(&f, flows.join("\n") + "\n").map_err(|e| e.to_string())?;
        self.run(
            "ovs-ofctl",
            &[
                "-O",
                "OpenFlow15",
                "replace-flows",
                &format!("unix:{}/br0.mgmt", self.dir.display()),
                &f.display().to_string(),
            ],
        )
        .map(|_| ())
    }

    /// `ofproto/trace br0 in_port=P HEX`: the full text.
    pub(crate) fn trace(&self, in_port: u32, packet: &[u8]) -> Result<String, String> {
        let hex: String = packet.iter().map(|b| format!("{b:02x}")).collect();
        self.run(
            "ovs-appctl",
            &[
                "-t",
                &format!("{}/vswitchd.ctl", self.dir.display()),
                "ofproto/trace",
                "br0",
                &format!("in_port={in_port}"),
                &hex,
            ],
        )
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        // ovs-vswitchd first (it holds the db connection), then the db.
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("WEFT_OVS_DIFF_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
