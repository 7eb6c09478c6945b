//! The guest lab: real IPVS in a QEMU guest booted from Debian's cloud kernel, because the
//! host kernel has no IPVS and cannot load modules. [`kernel`] fetches and unpacks the kernel
//! package once (cached under `.tools/guest/`), [`image`] builds the initramfs (busybox,
//! ipvsadm, iproute2, the kernel modules in dependency order, and a second archive with the
//! binaries and files of the test), and [`vm`] boots it under software emulation
//! (`-accel tcg -cpu max`: /dev/kvm here hangs stock kernels) and runs shell commands over
//! the serial console.

pub mod callgrind;
pub mod cpio;
pub mod image;
pub mod ipvsadm;
pub mod kernel;
pub mod lab;
pub mod proc_ip_vs;
pub mod timeline;
pub mod vm;

use std::path::PathBuf;
use std::time::Duration;

pub use image::Initramfs;
pub use kernel::GuestKernel;
pub use vm::{Guest, GuestSpec, Output};

/// What went wrong preparing or running the guest.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Tool {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{tool} is missing: install it with hack/install-deps.sh (Debian package {package})")]
    Missing { tool: String, package: &'static str },
    #[error("the guest did not {what} within {timeout:?}; console tail:\n{tail}")]
    Timeout {
        what: String,
        timeout: Duration,
        tail: String,
    },
    #[error("the guest exited; console tail:\n{tail}")]
    Exited { tail: String },
    #[error("in the guest, `{command}` exited {status}:\n{output}")]
    Command {
        command: String,
        status: i32,
        output: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl GuestError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }
}

/// The workspace's `.tools/` folder (git-ignored), where the kernel is cached.
pub fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".tools"), |root| root.join(".tools"))
}

/// Runs `program args`, returning stdout; a failure carries stderr.
pub(crate) fn tool(program: &str, args: &[&str]) -> Result<Vec<u8>, GuestError> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                GuestError::Missing {
                    tool: program.to_owned(),
                    package: package_of(program),
                }
            } else {
                GuestError::Io {
                    context: format!("running {program}"),
                    source,
                }
            }
        })?;
    if !output.status.success() {
        return Err(GuestError::Tool {
            command: format!("{program} {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(output.stdout)
}

/// The Debian package that provides a tool the guest lab runs on the host.
pub fn package_of(program: &str) -> &'static str {
    match program {
        "qemu-system-x86_64" => "qemu-system-x86",
        "busybox" => "busybox-static",
        "ipvsadm" => "ipvsadm",
        "modprobe" | "depmod" => "kmod",
        "dpkg-deb" => "dpkg",
        "apt-get" | "apt-cache" => "apt",
        "strip" | "objcopy" => "binutils",
        "ldd" => "libc-bin",
        "ip" => "iproute2",
        "strace" => "strace",
        _ => "(unknown)",
    }
}
