//! A real container runtime as the CNI client: a private containerd (own
//! root, state and socket in a temporary directory, CRI plugin off) and
//! `ctr run --cni` with a busybox rootfs (Debian's busybox-static, no image
//! registry), through `weft-cni` and a real `weft-switchd`.
//!
//! Two containers get addresses from weft-cni; the second pings the first
//! through switchd; when the runtime removes them (`ctr run --rm` calls the
//! CNI DEL), their addresses, veths and switchd ports are gone.
//!
//! # Where ctr looks for CNI
//!
//! containerd 1.6's `ctr run --cni` only uses `/etc/cni/net.d` and
//! `/opt/cni/bin`. The test installs nothing there on the host: it runs
//! `ctr` inside `ip netns exec` (which gives it a private mount namespace),
//! puts an overlay over `/etc` and a tmpfs over `/opt` in that namespace
//! only, and writes `10-weft.conflist` and the plugin there. They vanish
//! with the process.
//!
//! Needs root, containerd, ctr, runc, busybox (static) and the usual
//! namespace tools; fails under `CI=true` if one is missing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, can_run};
use serde_json::json;

/// The private containerd, killed on drop.
struct Containerd {
    child: Child,
    sock: String,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let sock = dir.join("containerd.sock").display().to_string();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { child, sock };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new("ctr")
            .args(["-a", &c.sock, "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A busybox rootfs.
fn rootfs(dir: &Path) -> std::path::PathBuf {
    let r = dir.join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", r.join("bin/busybox")).unwrap();
    for a in ["sh", "ping", "ip", "sleep"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
    }
    r
}

/// `ctr run --rm --cni` inside the node, with the CNI files in a private
/// mount namespace (see the module doc).
fn ctr_run(node: &Node, ctrd: &Containerd, dir: &Path, id: &str, cmd: &str) -> Command {
    let setup = format!(
        "set -e\n\
         mount -t overlay weftetc -o lowerdir=/etc,upperdir={up},workdir={work} /etc\n\
         mkdir -p /etc/cni/net.d\n\
         cp {conflist} /etc/cni/net.d/10-weft.conflist\n\
         mount -t tmpfs weftopt /opt\n\
         mkdir -p /opt/cni/bin\n\
         cp {plugin} /opt/cni/bin/weft-cni\n\
         exec ctr -a {sock} run --rm --cni --rootfs {rootfs} {id} /bin/sh -c '{cmd}'\n",
        up = dir.join(format!("up-{id}")).display(),
        work = dir.join(format!("work-{id}")).display(),
        conflist = dir.join("10-weft.conflist").display(),
        plugin = common::cni_bin().display(),
        sock = ctrd.sock,
        rootfs = dir.join("rootfs").display(),
    );
    std::fs::create_dir_all(dir.join(format!("up-{id}"))).unwrap();
    std::fs::create_dir_all(dir.join(format!("work-{id}"))).unwrap();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &node.ns, "sh", "-c", &setup])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn containerd_two_containers_ping() {
    if !can_run(
        "containerd_two_containers_ping",
        &[
            "/usr/bin/containerd",
            "/usr/bin/ctr",
            "/usr/sbin/runc",
            "/usr/bin/busybox",
        ],
    ) {
        return;
    }
    let node = Node::start("ctrd");
    node.ctl(&["add-flow", "priority=0,actions=NORMAL"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rootfs(d);
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "weftnet",
        "plugins": [{
            "type": "weft-cni",
            "socket": node.socket(),
            "ipam": {"subnet": "10.244.7.0/24", "dataDir": node.ipam_root()},
        }],
    });
    std::fs::write(d.join("10-weft.conflist"), conflist.to_string()).unwrap();
    let ctrd = Containerd::start(d);

    // Container A waits; B pings it.
    let mut a = ctr_run(&node, &ctrd, d, "weft-a", "sleep 60")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let a_ip = loop {
        if let Some(ip) = node.ipam_files().first() {
            break ip.clone();
        }
        if let Ok(Some(st)) = a.try_wait() {
            let out = a.wait_with_output().unwrap();
            panic!(
                "container A exited ({st}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "container A got no address");
        std::thread::sleep(Duration::from_millis(100));
    };
    let b = ctr_run(
        &node,
        &ctrd,
        d,
        "weft-b",
        &format!("ip addr show eth0; ping -c 3 -W 3 {a_ip}"),
    )
    .output()
    .unwrap();
    let b_out = String::from_utf8_lossy(&b.stdout);
    assert!(
        b.status.success(),
        "container B pings A ({a_ip}): {b_out} {}",
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(
        b_out.contains("inet 10.244.7."),
        "B has an address: {b_out}"
    );
    assert!(b_out.contains("3 packets received"), "{b_out}");
    // B is gone (--rm): only A's address is left.
    assert_eq!(
        node.ipam_files(),
        vec![a_ip.clone()],
        "B's address released"
    );

    // Stop A through the runtime; ctr removes its network.
    let kill = Command::new("ctr")
        .args(["-a", &ctrd.sock, "task", "kill", "-s", "KILL", "weft-a"])
        .output()
        .unwrap();
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
    let _ = a.wait().unwrap();
    assert_eq!(
        node.ipam_files(),
        Vec::<String>::new(),
        "A's address released"
    );
    assert_eq!(node.host_links(), Vec::<String>::new());
    assert!(
        node.ports().iter().all(|p| !p.1.starts_with("wft")),
        "ports removed: {:?}",
        node.ports()
    );
}
