//! Network namespaces for tests and the lab: create, wire with veth, run commands or closures inside, always delete.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// What went wrong while building or using a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("could not enter namespace {name}: {reason}")]
    Enter { name: String, reason: String },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fails the calling test with a clear message unless it runs as root.
///
/// The lab needs `CAP_NET_ADMIN` and `CAP_NET_RAW`; a test that cannot get them fails loudly
/// instead of skipping.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test builds network namespaces and needs root (CAP_NET_ADMIN, CAP_NET_RAW): run it as root, e.g. `sudo make test`"
    );
}

/// A named network namespace, deleted (with every process still inside) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a uniquely named namespace `{prefix}{pid}x{n}` with `lo` up.
    pub fn create(prefix: &str) -> Result<Self, NetnsError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}{}x{n}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace and returns its stdout; a non-zero exit is an error
    /// carrying stderr.
    pub fn exec(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Starts a long-running command inside the namespace (stdout/stderr as given by the caller
    /// through the returned `Command` defaults: inherited). The caller owns and must reap it.
    pub fn spawn(&self, args: &[&str]) -> Result<Child, NetnsError> {
        self.command(args)
            .spawn()
            .map_err(|source| NetnsError::Spawn {
                command: args.join(" "),
                source,
            })
    }

    /// A `Command` that will run `args` inside the namespace, for callers that need to set up
    /// stdio or environment themselves.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `f` on a fresh thread that has entered this namespace: sockets and netlink
    /// connections it opens belong to the namespace.
    pub fn run_in<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        run_in_named(&self.name, f)
    }

    /// Kills every process still running inside the namespace.
    pub fn kill_all(&self) {
        if let Ok(pids) = run(&["ip", "netns", "pids", &self.name]) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill")
                    .args(["-KILL", pid])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// [`Netns::run_in`] for a namespace known by name (for threads that outlive a borrow).
pub fn run_in_named<T, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = format!("/run/netns/{name}");
    let name = name.to_owned();
    let handle = std::thread::spawn(move || -> Result<T, NetnsError> {
        let enter_error = |reason: String| NetnsError::Enter {
            name: name.clone(),
            reason,
        };
        let file = File::open(&path).map_err(|e| enter_error(e.to_string()))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| enter_error(e.to_string()))?;
        Ok(f())
    });
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Creates a veth pair with one end in each namespace and both ends up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<(), NetnsError> {
    run(&[
        "ip",
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.exec(&["ip", "link", "set", a_if, "up"])?;
    b.exec(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}

/// Runs a host command, returning stdout or an error with stderr.
pub fn run(args: &[&str]) -> Result<String, NetnsError> {
    let command = args.join(" ");
    let (program, rest) = args.split_first().ok_or_else(|| NetnsError::Command {
        command: command.clone(),
        stderr: "empty command".into(),
    })?;
    let output = Command::new(program)
        .args(rest)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetnsError::Command {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_pair_connects_two_namespaces_and_drop_deletes_them() {
        require_root();
        let (a_name, b_name);
        {
            let a = Netns::create("kvt").unwrap();
            let b = Netns::create("kvt").unwrap();
            a_name = a.name().to_owned();
            b_name = b.name().to_owned();
            veth(&a, "va", &b, "vb").unwrap();
            a.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])
                .unwrap();
            b.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])
                .unwrap();
            let out = a
                .exec(&["ping", "-c", "1", "-W", "2", "192.0.2.2"])
                .unwrap();
            assert!(out.contains("1 received"), "ping output: {out}");
            let inside = a
                .run_in(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
                .unwrap();
            assert!(
                inside.contains("va:"),
                "thread did not enter the namespace: {inside}"
            );
        }
        let list = run(&["ip", "netns", "list"]).unwrap();
        assert!(
            !list.contains(&a_name) && !list.contains(&b_name),
            "left behind: {list}"
        );
    }
}
