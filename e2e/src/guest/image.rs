//! The guest's initramfs: a base archive (busybox and its applets, the init script, the
//! kernel modules in load order, ipvsadm and iproute2 with their shared libraries) and, after
//! it, an archive of the test's own files (binaries with their libraries, manifests). The
//! kernel unpacks both, so the base needs no rebuild for a new agent binary.

use std::collections::BTreeSet;
use std::path::Path;

use super::cpio::CpioWriter;
use super::kernel::GuestKernel;
use super::{GuestError, tool};

/// Modules every guest loads: IPVS with every scheduler, and the links the labs use.
pub const MODULES: &[&str] = &[
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "ip_vs_lc",
    "ip_vs_wlc",
    "ip_vs_lblc",
    "ip_vs_lblcr",
    "ip_vs_dh",
    "ip_vs_sh",
    "ip_vs_sed",
    "ip_vs_nq",
    "ip_vs_mh",
    "ip_vs_fo",
    "ip_vs_ovf",
    "dummy",
    "veth",
];

/// The line the init script prints when the shell is ready for commands.
pub const READY: &str = "KUBE-VRRP-GUEST-READY";

/// The guest's `/init`: mounts, modules, loopback up, quiet console, then (as a child of PID 1)
/// a shell on the serial console that reads the harness's commands (no echo).
fn init_script() -> String {
    format!(
        "#!/bin/busybox sh
/bin/busybox --install -s /bin
# busybox runs its own applets before PATH: iproute2's ip is /sbin/ip, called by its path.
mkdir -p /proc /sys /dev /run /tmp /var
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
ln -s /run /var/run
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m || echo \"insmod $m failed\"; done
/sbin/ip link set lo up
dmesg -n 1
stty -echo
export PATH=/usr/sbin:/sbin:/usr/bin:/bin PS1= PS2=
echo {READY}
# The command shell is not PID 1: orphans (background jobs of subshells) are reparented to
# PID 1, and their exit must not interrupt the shell that reads the harness's commands.
while :; do sh; done
"
    )
}

/// A set of files bound for the guest, written as one cpio archive.
#[derive(Debug, Default)]
pub struct Initramfs {
    dirs: BTreeSet<String>,
    writer: CpioWriter,
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn parents(&mut self, path: &str) {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            prefix.push('/');
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                self.writer.dir(&prefix);
            }
        }
    }

    /// `data` at `path` with permission bits `perm`.
    pub fn bytes(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.parents(path);
        self.writer.file(path, perm, data);
    }

    /// The host file `host` at `path`, with its permission bits.
    pub fn file(&mut self, path: &str, host: &Path) -> Result<(), GuestError> {
        let data =
            std::fs::read(host).map_err(GuestError::io(format!("reading {}", host.display())))?;
        let perm = std::fs::metadata(host).map_or(0o644, |m| {
            std::os::unix::fs::PermissionsExt::mode(&m.permissions())
        });
        self.bytes(path, perm, &data);
        Ok(())
    }

    /// The host program `host` at `path`, plus every shared library `ldd` names, at the
    /// same paths as on the host. `strip`: without debug information (smaller, faster to load).
    pub fn program(&mut self, path: &str, host: &Path, strip: bool) -> Result<(), GuestError> {
        if strip {
            // Unique per call: tests of one process build their images in parallel, and a
            // shared name let one remove the file while another read its permission bits
            // (the agent then landed in the guest without its execute bit).
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let stripped = std::env::temp_dir().join(format!(
                "kube-vrrp-guest-{}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                host.file_name().and_then(|n| n.to_str()).unwrap_or("bin")
            ));
            let out = stripped
                .to_str()
                .ok_or_else(|| GuestError::Invalid("temp dir is not UTF-8".into()))?;
            let input = host
                .to_str()
                .ok_or_else(|| GuestError::Invalid(format!("{} is not UTF-8", host.display())))?;
            tool("strip", &["--strip-debug", "-o", out, input])?;
            let result = self.file(path, &stripped);
            let _ = std::fs::remove_file(&stripped);
            result?;
        } else {
            self.file(path, host)?;
        }
        self.libraries_of(host)
    }

    fn libraries_of(&mut self, host: &Path) -> Result<(), GuestError> {
        let input = host
            .to_str()
            .ok_or_else(|| GuestError::Invalid(format!("{} is not UTF-8", host.display())))?;
        let out = tool("ldd", &[input])?;
        for line in String::from_utf8_lossy(&out).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = line
                .split("=>")
                .last()
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|p| p.starts_with('/'));
            if let Some(path) = path
                && self.dirs.insert(format!("lib:{path}"))
            {
                let real = std::fs::canonicalize(path)
                    .map_err(GuestError::io(format!("resolving {path}")))?;
                self.file(path, &real)?;
            }
        }
        Ok(())
    }

    /// The archive.
    pub fn finish(self) -> Vec<u8> {
        self.writer.finish()
    }
}

/// Finds `program` on the host's PATH (and the sbin folders).
pub fn which(program: &str) -> Result<std::path::PathBuf, GuestError> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| GuestError::Missing {
            tool: program.to_owned(),
            package: super::package_of(program),
        })
}

/// The base archive: init, busybox, ipvsadm, iproute2's `ip`, and the kernel's modules.
/// `extra_tools`: more host programs to carry (e.g. `strace` for captures).
pub fn base(kernel: &GuestKernel, extra_tools: &[&str]) -> Result<Vec<u8>, GuestError> {
    let mut image = Initramfs::new();
    image.bytes("/init", 0o755, init_script().as_bytes());
    image.file("/bin/busybox", &which("busybox")?)?;
    image.program("/usr/sbin/ipvsadm", &which("ipvsadm")?, false)?;
    image.program("/sbin/ip", &which("ip")?, false)?;
    for program in extra_tools {
        let host = which(program)?;
        image.program(&format!("/usr/bin/{program}"), &host, false)?;
    }
    let mut order = String::new();
    for module in kernel.modules_in_load_order(MODULES)? {
        let name = module
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| GuestError::Invalid(format!("module path {}", module.display())))?
            .to_owned();
        image.file(&format!("/lib/modules/{name}"), &module)?;
        order.push_str(&name);
        order.push('\n');
    }
    image.bytes("/etc/modules.order", 0o644, order.as_bytes());
    Ok(image.finish())
}
