//! keepalived as a lab peer: renders a `keepalived.conf` from [`InstanceSpec`]s and runs it in a
//! node namespace with its own pid files; stops it with SIGTERM or lets it "die".

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::addressing;
use crate::error::LabError;
use crate::instance::{InstanceSpec, Version};
use crate::lab::{LAB_IF, Lab};
use crate::process::DaemonProcess;

/// The keepalived binary (Debian's package).
pub const KEEPALIVED: &str = "keepalived";

/// What keepalived needs to know about the node it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Lab node number (from 1).
    pub node: usize,
    /// Lab node name, used as keepalived's router_id.
    pub name: String,
    /// All lab nodes, for unicast peers.
    pub nodes: usize,
}

/// keepalived's spelling of an advert interval: seconds, with decimals when below a second.
fn advert_int(interval: Duration) -> String {
    if interval.subsec_nanos() == 0 {
        interval.as_secs().to_string()
    } else {
        format!("{:.2}", interval.as_secs_f64())
    }
}

/// Renders a complete keepalived.conf for `node` running `instances`.
pub fn render_config(node: &NodeView, instances: &[InstanceSpec]) -> String {
    let mut conf = String::new();
    let _ = writeln!(conf, "# kube-vrrp lab: {} (node {})", node.name, node.node);
    let _ = writeln!(conf, "global_defs {{");
    let _ = writeln!(conf, "    router_id {}", node.name);
    // A new MASTER sends its gratuitous ARPs / NAs at once and refreshes none later, so the
    // prober sees ordinary answers, not a GARP schedule.
    let _ = writeln!(conf, "    vrrp_garp_master_delay 0");
    let _ = writeln!(conf, "    vrrp_garp_master_repeat 1");
    let _ = writeln!(conf, "}}");
    for spec in instances {
        let priority = spec.priority(node.node);
        let _ = writeln!(conf, "\nvrrp_instance {} {{", spec.name);
        let _ = writeln!(conf, "    state BACKUP");
        let _ = writeln!(conf, "    interface {LAB_IF}");
        let _ = writeln!(conf, "    virtual_router_id {}", spec.vrid);
        let _ = writeln!(conf, "    version {}", spec.version.as_str());
        let _ = writeln!(conf, "    priority {priority}");
        let _ = writeln!(conf, "    advert_int {}", advert_int(spec.advert_interval));
        if spec.preempt {
            if !spec.preempt_delay.is_zero() {
                let _ = writeln!(conf, "    preempt_delay {}", advert_int(spec.preempt_delay));
            }
        } else {
            let _ = writeln!(conf, "    nopreempt");
        }
        if let (Version::V2, Some(password)) = (spec.version, &spec.password) {
            let _ = writeln!(conf, "    authentication {{");
            let _ = writeln!(conf, "        auth_type PASS");
            let _ = writeln!(conf, "        auth_pass {password}");
            let _ = writeln!(conf, "    }}");
        }
        if spec.unicast {
            let own: IpAddr = addressing::node_ip(node.node, spec.family());
            let _ = writeln!(conf, "    unicast_src_ip {own}");
            // One peer per line: keepalived reads only the first of several on one line.
            let _ = writeln!(conf, "    unicast_peer {{");
            for peer in spec.unicast_peers(node.node, node.nodes) {
                let _ = writeln!(conf, "        {peer}");
            }
            let _ = writeln!(conf, "    }}");
        }
        let _ = writeln!(conf, "    virtual_ipaddress {{");
        for vip in &spec.vips {
            let _ = writeln!(conf, "        {vip} dev {LAB_IF}");
        }
        let _ = writeln!(conf, "    }}");
        let _ = writeln!(conf, "}}");
    }
    conf
}

/// A keepalived running in a lab node. Killed when dropped.
#[derive(Debug)]
pub struct Keepalived {
    node: usize,
    process: DaemonProcess,
    config: PathBuf,
}

impl Keepalived {
    /// Writes the config for `node` and starts keepalived in its namespace.
    pub fn start(lab: &Lab, node: usize, instances: &[InstanceSpec]) -> Result<Self, LabError> {
        Self::start_wrapped(lab, node, instances, &[])
    }

    /// [`Keepalived::start`] under a wrapper command (`prefix`, e.g. valgrind).
    pub fn start_wrapped(
        lab: &Lab,
        node: usize,
        instances: &[InstanceSpec],
        prefix: &[String],
    ) -> Result<Self, LabError> {
        for spec in instances {
            spec.validate().map_err(LabError::Invalid)?;
            if spec.track_file.is_some() {
                return Err(LabError::Invalid(format!(
                    "instance {}: the lab renders no trackers for keepalived",
                    spec.name
                )));
            }
        }
        let view = NodeView {
            node,
            name: lab.node_name(node)?.to_owned(),
            nodes: lab.node_count(),
        };
        Self::spawn(lab, node, &render_config(&view, instances), prefix)
    }

    /// Starts keepalived in node `node`'s namespace with `config` as its keepalived.conf (a
    /// user's own file, e.g. the one an import started from).
    pub fn start_with_config(lab: &Lab, node: usize, config: &str) -> Result<Self, LabError> {
        Self::spawn(lab, node, config, &[])
    }

    fn spawn(lab: &Lab, node: usize, config: &str, prefix: &[String]) -> Result<Self, LabError> {
        let name = lab.node_name(node)?.to_owned();
        let dir = lab.workdir().join(format!("keepalived-{name}"));
        std::fs::create_dir_all(&dir).map_err(LabError::io(format!("create {}", dir.display())))?;
        let config_path = dir.join("keepalived.conf");
        std::fs::write(&config_path, config)
            .map_err(LabError::io(format!("write {}", config_path.display())))?;
        let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
        let (conf, pid, vrrp_pid, check_pid) = (
            config_path.to_string_lossy().into_owned(),
            path("keepalived.pid"),
            path("vrrp.pid"),
            path("checkers.pid"),
        );
        let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
        args.extend([
            KEEPALIVED, "-n", "-l", "-D", "-f", &conf, "-p", &pid, "-r", &vrrp_pid, "-c",
            &check_pid,
        ]);
        let mut process = DaemonProcess::spawn(
            "keepalived",
            &name,
            lab.node_ns(node)?,
            &args,
            &[],
            &dir.join("keepalived.log"),
        )?;
        // A config error ends keepalived at once; catch it here rather than as a silent peer.
        std::thread::sleep(Duration::from_millis(150));
        process.ensure_running()?;
        Ok(Self {
            node,
            process,
            config: config_path,
        })
    }

    pub fn node(&self) -> usize {
        self.node
    }

    /// The parent keepalived's pid (its VRRP child is a descendant).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn config_path(&self) -> &std::path::Path {
        &self.config
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Graceful stop: SIGTERM (a MASTER sends priority 0 and removes its VIPs) and wait.
    pub fn terminate(&mut self) -> Result<(), LabError> {
        self.process.terminate(Duration::from_secs(10))?;
        Ok(())
    }

    /// Node death without a goodbye: cut the node's switch port, then SIGKILL. The VIP stays on
    /// the dead node's interface, as after a real crash.
    pub fn die(&mut self, lab: &Lab) -> Result<(), LabError> {
        lab.cut(self.node)?;
        self.process.kill()?;
        Ok(())
    }

    /// SIGKILL without cutting the link (keepalived's VRRP child still says goodbye).
    pub fn kill(&mut self) -> Result<(), LabError> {
        self.process.kill()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addressing::{Family, vip};

    fn view(node: usize) -> NodeView {
        NodeView {
            node,
            name: format!("n{node}"),
            nodes: 3,
        }
    }

    #[test]
    fn v2_config_carries_priority_interval_pass_auth_and_every_vip() {
        let mut spec = InstanceSpec::new("web", 51, vec![vip(Family::V4, 0), vip(Family::V4, 1)]);
        spec.version = Version::V2;
        spec.priorities = vec![150, 100, 50];
        spec.password = Some("secret".into());
        let conf = render_config(&view(2), &[spec]);
        for line in [
            "vrrp_instance web {",
            "virtual_router_id 51",
            "version 2",
            "priority 100",
            "advert_int 1",
            "auth_type PASS",
            "auth_pass secret",
            "192.168.77.50/24 dev eth0",
            "192.168.77.51/24 dev eth0",
        ] {
            assert!(
                conf.lines().any(|l| l.trim() == line),
                "missing `{line}` in\n{conf}"
            );
        }
        assert!(!conf.contains("nopreempt"));
        assert!(!conf.contains("unicast"));
    }

    #[test]
    fn unicast_peers_are_written_one_per_line() {
        let mut spec = InstanceSpec::new("web", 51, vec![vip(Family::V6, 0)]);
        spec.unicast = true;
        spec.advert_interval = Duration::from_millis(10);
        let conf = render_config(&view(1), &[spec]);
        let lines: Vec<&str> = conf.lines().map(str::trim).collect();
        let start = lines.iter().position(|l| *l == "unicast_peer {").unwrap();
        assert_eq!(
            &lines[start + 1..start + 4],
            ["fd00:77::c", "fd00:77::d", "}"]
        );
        assert!(lines.contains(&"unicast_src_ip fd00:77::b"));
        assert!(lines.contains(&"advert_int 0.01"));
    }

    #[test]
    fn nopreempt_and_preempt_delay_are_rendered() {
        let mut spec = InstanceSpec::new("web", 51, vec![vip(Family::V4, 0)]);
        spec.preempt = false;
        assert!(render_config(&view(1), &[spec.clone()]).contains("    nopreempt\n"));
        spec.preempt = true;
        spec.preempt_delay = Duration::from_secs(2);
        let conf = render_config(&view(1), &[spec]);
        assert!(conf.contains("    preempt_delay 2\n"), "{conf}");
        assert!(!conf.contains("nopreempt"));
    }
}
