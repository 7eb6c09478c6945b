//! `make bench`'s IPVS part: boots the guest lab with the release build of the agent's sync
//! benchmark (agent/examples/ipvs_sync_bench.rs) and reports, over several runs, the median
//! time to program 1,000 services × 10 real servers from empty and to apply a 1 % change,
//! with the agent's synchroniser and with `ipvsadm --restore`, and their ratios.
//!
//! `cargo run --release -p kube-vrrp-e2e --bin ipvs-bench [-- --runs N --services N --real-servers N]`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube_vrrp_e2e::guest::image::{self, Initramfs};
use kube_vrrp_e2e::guest::{self, Guest, GuestKernel, GuestSpec};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    real_servers: usize,
    /// The guest-side program (default: the release build of the agent's example).
    #[arg(long)]
    program: Option<PathBuf>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let program = args
        .program
        .unwrap_or_else(|| guest::vm::target_binary("examples/ipvs_sync_bench", "release"));
    anyhow::ensure!(
        program.exists(),
        "{} is not built: cargo build --release -p kube-vrrp-agent --example ipvs_sync_bench",
        program.display()
    );
    let kernel = GuestKernel::prepare(&guest::tools_dir())?;
    let base = image::base(&kernel, &[])?;
    let mut payload = Initramfs::new();
    payload.program("/opt/kv/ipvs_sync_bench", &program, true)?;
    let payload = payload.finish();
    let spec = GuestSpec {
        memory_mib: 2048,
        ..GuestSpec::default()
    };
    let mut vm = Guest::boot(&kernel, &[&base, &payload], &spec).context("booting the guest")?;
    let out = vm.run_for(
        &format!(
            "/opt/kv/ipvs_sync_bench {} {} {}",
            args.services, args.real_servers, args.runs
        ),
        Duration::from_secs(3000),
    )?;
    anyhow::ensure!(out.status == 0, "the benchmark failed:\n{}", out.text);
    let runs: Vec<serde_json::Value> = out
        .text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for r in &runs {
        println!("{r}");
    }
    let field = |name: &str| median(runs.iter().filter_map(|r| r[name].as_f64()).collect());
    let (agent_full, agent_change) = (field("agent_full_ms"), field("agent_change_ms"));
    let (restore_full, restore_change) = (
        field("ipvsadm_restore_full_ms"),
        field("ipvsadm_restore_change_ms"),
    );
    println!();
    println!(
        "IPVS sync, {} services x {} real servers, median of {} runs in the guest (QEMU TCG):",
        args.services,
        args.real_servers,
        runs.len()
    );
    println!(
        "  full sync from empty:   agent {agent_full:.1} ms, ipvsadm --restore {restore_full:.1} ms  (agent / restore = {:.2})",
        agent_full / restore_full
    );
    println!(
        "  1 % change:             agent {agent_change:.1} ms, ipvsadm --restore of the change {restore_change:.1} ms"
    );
    println!(
        "  full restore / agent 1 % change = {:.1}x (goal >= 20x)",
        restore_full / agent_change
    );
    vm.shutdown()?;
    Ok(())
}
