//! One QEMU guest: booted under software emulation from a kernel and an initramfs, driven
//! over its serial console. Each command is written as a line for the guest's shell and its
//! output read up to a marker carrying its exit status. Dropping the guest kills QEMU.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::image::READY;
use super::{GuestError, GuestKernel};

/// How the guest is booted.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// Memory in MiB.
    pub memory_mib: u32,
    /// The longest boot to a shell.
    pub boot_timeout: Duration,
}

impl Default for GuestSpec {
    fn default() -> Self {
        Self {
            memory_mib: 1024,
            boot_timeout: Duration::from_secs(90),
        }
    }
}

/// A command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    /// Standard output and standard error, interleaved.
    pub text: String,
}

#[derive(Default)]
struct Console {
    bytes: Vec<u8>,
    /// Bytes before this offset belong to earlier commands.
    consumed: usize,
    closed: bool,
}

/// A running guest.
pub struct Guest {
    child: Child,
    stdin: ChildStdin,
    console: Arc<(Mutex<Console>, Condvar)>,
    sequence: u64,
    /// Where the whole console is copied when the guest is dropped (for failed tests).
    log: Option<PathBuf>,
    booted_in: Duration,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guest")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Guest {
    /// Boots `kernel` with the archives `images` concatenated as its initramfs, and waits for
    /// the shell.
    pub fn boot(
        kernel: &GuestKernel,
        images: &[&[u8]],
        spec: &GuestSpec,
    ) -> Result<Self, GuestError> {
        let initrd = std::env::temp_dir().join(format!(
            "kube-vrrp-guest-{}-{}.cpio",
            std::process::id(),
            unique()
        ));
        let mut file =
            std::fs::File::create(&initrd).map_err(GuestError::io("writing the initramfs"))?;
        for image in images {
            file.write_all(image)
                .map_err(GuestError::io("writing the initramfs"))?;
        }
        drop(file);
        let started = Instant::now();
        let mut child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-cpu", "max", "-smp", "1"])
            .args(["-m", &spec.memory_mib.to_string()])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .args(["-nic", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(kernel.vmlinuz())
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", "console=ttyS0 panic=-1 quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    GuestError::Missing {
                        tool: "qemu-system-x86_64".into(),
                        package: "qemu-system-x86",
                    }
                } else {
                    GuestError::Io {
                        context: "starting qemu".into(),
                        source,
                    }
                }
            })?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| GuestError::Invalid("qemu has no stdin".into()))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| GuestError::Invalid("qemu has no stdout".into()))?;
        let console: Arc<(Mutex<Console>, Condvar)> = Arc::default();
        let reader = Arc::clone(&console);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = stdout.read(&mut buf).unwrap_or(0);
                let (lock, signal) = &*reader;
                let mut c = lock.lock().unwrap_or_else(PoisonError::into_inner);
                if n == 0 {
                    c.closed = true;
                    signal.notify_all();
                    return;
                }
                c.bytes.extend_from_slice(&buf[..n]);
                signal.notify_all();
            }
        });
        let mut guest = Self {
            child,
            stdin,
            console,
            sequence: 0,
            log: None,
            booted_in: Duration::ZERO,
        };
        let ready = guest.wait_for(READY.as_bytes(), spec.boot_timeout, "boot to a shell");
        let _ = std::fs::remove_file(&initrd);
        ready?;
        // The shell prints a banner first: a first command consumes it.
        guest.run_for("true", spec.boot_timeout)?;
        guest.booted_in = started.elapsed();
        Ok(guest)
    }

    /// How long the boot to a shell took.
    pub fn boot_time(&self) -> Duration {
        self.booted_in
    }

    /// Copies the whole console to `path` when the guest is dropped.
    pub fn keep_console_at(&mut self, path: impl Into<PathBuf>) {
        self.log = Some(path.into());
    }

    /// Waits until `needle` appears after the consumed part of the console; consumes up to
    /// its end and returns what came before it.
    fn wait_for(
        &mut self,
        needle: &[u8],
        timeout: Duration,
        what: &str,
    ) -> Result<Vec<u8>, GuestError> {
        let deadline = Instant::now() + timeout;
        let (lock, signal) = &*self.console;
        let mut c = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(at) = c.bytes[c.consumed..]
                .windows(needle.len())
                .position(|w| w == needle)
            {
                let start = c.consumed;
                let end = start + at;
                c.consumed = end + needle.len();
                return Ok(c.bytes[start..end].to_vec());
            }
            let tail = || {
                String::from_utf8_lossy(&c.bytes[c.bytes.len().saturating_sub(3000)..]).into_owned()
            };
            if c.closed {
                return Err(GuestError::Exited { tail: tail() });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(GuestError::Timeout {
                    what: what.to_owned(),
                    timeout,
                    tail: tail(),
                });
            }
            c = signal
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `command` in the guest's shell and returns its status and output, waiting at most
    /// `timeout`.
    pub fn run_for(&mut self, command: &str, timeout: Duration) -> Result<Output, GuestError> {
        self.sequence += 1;
        let n = self.sequence;
        // A subshell: `exit` or `set -e` in a command must not end the guest's shell (init).
        // The marker is split in the command so that it can only be matched in the output.
        let line = format!("( {command}\n) 2>&1; echo \"@@KV\"\"DONE {n} $?@@\"\n");
        self.stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(GuestError::io("writing to the guest console"))?;
        let prefix = format!("@@KVDONE {n} ");
        let before = self.wait_for(prefix.as_bytes(), timeout, &format!("finish `{command}`"))?;
        let status = self.wait_for(b"@@", Duration::from_secs(5), "print an exit status")?;
        let status = String::from_utf8_lossy(&status)
            .trim()
            .parse()
            .unwrap_or(-1);
        let text = String::from_utf8_lossy(&before).replace('\r', "");
        Ok(Output {
            status,
            text: text.trim_start_matches('\n').to_owned(),
        })
    }

    /// [`Guest::run_for`] with a minute to finish.
    pub fn run(&mut self, command: &str) -> Result<Output, GuestError> {
        self.run_for(command, Duration::from_secs(60))
    }

    /// Runs `command` and returns its output, or an error when it exits non-zero.
    pub fn ok(&mut self, command: &str) -> Result<String, GuestError> {
        let out = self.run(command)?;
        if out.status == 0 {
            Ok(out.text)
        } else {
            Err(GuestError::Command {
                command: command.to_owned(),
                status: out.status,
                output: out.text,
            })
        }
    }

    /// Writes `content` to `path` in the guest (through a shell here-document).
    pub fn write_file(&mut self, path: &str, content: &str) -> Result<(), GuestError> {
        const END: &str = "__KUBE_VRRP_EOF__";
        if content.lines().any(|l| l == END) {
            return Err(GuestError::Invalid(format!(
                "{path}: content holds the line {END}"
            )));
        }
        let mut text = content.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        self.ok(&format!(
            "mkdir -p \"$(dirname {path})\"; cat > {path} <<'{END}'\n{text}{END}"
        ))?;
        Ok(())
    }

    /// Powers the guest off and waits for QEMU to exit.
    pub fn shutdown(mut self) -> Result<(), GuestError> {
        let _ = self.stdin.write_all(b"poweroff -f\n");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(GuestError::Timeout {
            what: "power off".into(),
            timeout: Duration::from_secs(20),
            tail: String::new(),
        })
    }

    /// Everything the console printed so far.
    pub fn console(&self) -> String {
        let (lock, _) = &*self.console;
        let c = lock.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&c.bytes).into_owned()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(path) = &self.log {
            let _ = std::fs::write(path, self.console());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A number no other guest of this process uses.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The agent's target folder binary `name` (`target/debug/NAME`, or `$CARGO_TARGET_DIR`).
pub fn target_binary(name: &str, profile: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join(profile).join(name)
}
