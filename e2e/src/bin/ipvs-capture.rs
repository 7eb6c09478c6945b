//! Captures the netlink messages ipvsadm exchanges with the kernel's IPVS family, in the guest
//! lab, as test vectors for the agent's IPVS codec: one file per case under
//! `agent/tests/ipvs_captures/`, each with its provenance (kernel, ipvsadm, the state before,
//! the command) above `strace -e trace=sendmsg,recvmsg -e write=all -e read=all` output.
//!
//! `cargo run -p kube-vrrp-e2e --bin ipvs-capture [-- --out DIR]`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube_vrrp_e2e::guest::{self, Guest, GuestKernel, GuestSpec};

#[derive(Debug, Parser)]
struct Args {
    /// Where the capture files go.
    #[arg(long, default_value = "agent/tests/ipvs_captures")]
    out: PathBuf,
}

/// One capture: a name, commands that set the state up (not captured), and the command.
struct Case {
    name: &'static str,
    setup: &'static [&'static str],
    command: &'static str,
}

const SVC: &str = "ipvsadm -A -t 192.0.2.1:80 -s rr";
const DEST: &str = "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.1:8080 -m -w 3";

const CASES: &[Case] = &[
    Case {
        name: "get_info",
        setup: &[],
        command: "ipvsadm -v",
    },
    Case {
        name: "new_service_tcp_rr",
        setup: &[],
        command: "ipvsadm -A -t 192.0.2.1:80 -s rr",
    },
    Case {
        name: "new_service_udp_wrr_ops",
        setup: &[],
        command: "ipvsadm -A -u 192.0.2.1:53 -s wrr -o",
    },
    Case {
        name: "new_service_sctp_lc",
        setup: &[],
        command: "ipvsadm -A --sctp-service 192.0.2.1:5000 -s lc",
    },
    Case {
        name: "new_service_fwmark_wlc",
        setup: &[],
        command: "ipvsadm -A -f 7 -s wlc",
    },
    Case {
        name: "new_service_fwmark6_sed",
        setup: &[],
        command: "ipvsadm -A -f 8 -6 -s sed",
    },
    Case {
        name: "new_service_ipv6_mh_flags",
        setup: &[],
        command: "ipvsadm -A -t [2001:db8::1]:443 -s mh -b mh-fallback,mh-port",
    },
    Case {
        name: "new_service_sh_flags_persistent_netmask",
        setup: &[],
        command: "ipvsadm -A -t 192.0.2.2:80 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0",
    },
    Case {
        name: "new_service_ipv6_persistent_prefix",
        setup: &[],
        command: "ipvsadm -A -t [2001:db8::2]:80 -s lblcr -p 60 -M 64",
    },
    Case {
        name: "new_service_dh",
        setup: &[],
        command: "ipvsadm -A -t 192.0.2.3:80 -s dh",
    },
    Case {
        name: "new_service_udp_nq",
        setup: &[],
        command: "ipvsadm -A -u 192.0.2.3:80 -s nq",
    },
    Case {
        name: "set_service_scheduler",
        setup: &[SVC],
        command: "ipvsadm -E -t 192.0.2.1:80 -s wlc",
    },
    Case {
        name: "del_service",
        setup: &[SVC],
        command: "ipvsadm -D -t 192.0.2.1:80",
    },
    Case {
        name: "new_dest_nat_thresholds",
        setup: &[SVC],
        command: "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.1:8080 -m -w 3 -x 100 -y 10",
    },
    Case {
        name: "new_dest_dr",
        setup: &[SVC],
        command: "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.2:80 -g -w 1",
    },
    Case {
        name: "new_dest_tun_ipip",
        setup: &[SVC],
        command: "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.3:80 -i -w 2",
    },
    Case {
        name: "new_dest_tun_gue_csum",
        setup: &[SVC],
        command: "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.4:80 -i --tun-type gue --tun-port 6080 --tun-csum -w 1",
    },
    Case {
        name: "new_dest_tun_gre_csum",
        setup: &[SVC],
        command: "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.5:80 -i --tun-type gre --tun-csum -w 1",
    },
    Case {
        name: "new_dest_ipv6",
        setup: &["ipvsadm -A -t [2001:db8::1]:443 -s rr"],
        command: "ipvsadm -a -t [2001:db8::1]:443 -r [2001:db8:1::7]:8443 -m -w 5",
    },
    Case {
        name: "set_dest_weight",
        setup: &[SVC, DEST],
        command: "ipvsadm -e -t 192.0.2.1:80 -r 198.51.100.1:8080 -m -w 0",
    },
    Case {
        name: "del_dest",
        setup: &[SVC, DEST],
        command: "ipvsadm -d -t 192.0.2.1:80 -r 198.51.100.1:8080",
    },
    Case {
        name: "dump",
        setup: &[
            SVC,
            "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.1:8080 -m -w 3 -x 100 -y 10",
            "ipvsadm -a -t 192.0.2.1:80 -r 198.51.100.2:80 -g -w 1",
            "ipvsadm -A -t [2001:db8::2]:80 -s sh -b sh-port -p 60 -M 64",
            "ipvsadm -a -t [2001:db8::2]:80 -r [2001:db8:1::7]:80 -i --tun-type gue --tun-port 6080 -w 2",
            "ipvsadm -A -f 7 -s wlc",
        ],
        command: "ipvsadm -Ln",
    },
    Case {
        name: "set_config_timeouts",
        setup: &[],
        command: "ipvsadm --set 900 120 300",
    },
    Case {
        name: "get_config_timeouts",
        setup: &["ipvsadm --set 900 120 300"],
        command: "ipvsadm -L --timeout",
    },
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let kernel = GuestKernel::prepare(&guest::tools_dir()).context("preparing the guest kernel")?;
    let base = guest::image::base(&kernel, &["strace"]).context("building the initramfs")?;
    let mut vm =
        Guest::boot(&kernel, &[&base], &GuestSpec::default()).context("booting the guest")?;
    let ipvsadm = vm.ok("ipvsadm -v")?.trim().to_owned();
    let strace = vm.ok("strace -V | head -1")?.trim().to_owned();
    std::fs::create_dir_all(&args.out)?;
    for case in CASES {
        vm.ok("ipvsadm -C")?;
        for step in case.setup {
            vm.ok(step)
                .with_context(|| format!("{}: setting up", case.name))?;
        }
        let traced = format!(
            "strace -e trace=sendmsg,recvmsg -e write=all -e read=all -o /tmp/trace {} >/dev/null && cat /tmp/trace",
            case.command
        );
        let trace = vm.run_for(&traced, Duration::from_secs(60))?;
        anyhow::ensure!(trace.status == 0, "{}: {}", case.name, trace.text);
        let mut text = String::new();
        text.push_str(
            "# A netlink exchange of ipvsadm with the kernel's IPVS family, captured in the\n",
        );
        text.push_str("# guest lab by e2e/src/bin/ipvs-capture.rs (QEMU, -accel tcg -cpu max).\n");
        writeln!(
            text,
            "# kernel: Debian linux-image-{} (booted as packaged)",
            kernel.version
        )?;
        writeln!(text, "# ipvsadm: {ipvsadm} (Debian package ipvsadm)")?;
        writeln!(text, "# strace: {strace}")?;
        for step in case.setup {
            writeln!(text, "# state before: {step}")?;
        }
        writeln!(text, "# command: {}", case.command)?;
        text.push_str(
            "# captured with: strace -e trace=sendmsg,recvmsg -e write=all -e read=all\n",
        );
        text.push_str(&trace.text);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let path = args.out.join(format!("{}.strace", case.name));
        std::fs::write(&path, text)?;
        println!("{}", path.display());
    }
    vm.shutdown()?;
    Ok(())
}
