//! What a wake-up costs this machine, apart from any daemon (`wake_cost`): three readers of
//! the same datagrams, keepalived's loop, the agent's loop and a bare deadline wake-up, run
//! side by side in a namespace of their own; prints the CPU each took per wake-up and per
//! second, median (min–max) over the runs. `make bench` runs it after `lab-bench`, whose
//! CPU column at 1 s adverts it explains.
//!
//! `cargo run --release -p kube-vrrp-e2e --bin wake-floor [-- --runs 3 --window 60]` (root)

use std::time::Duration;

use clap::Parser;
use kube_vrrp_e2e::netns::require_root;
use kube_vrrp_e2e::summary::{range_cell, summarize};
use kube_vrrp_e2e::wake_cost::{self, Reader, ReaderCost};

#[derive(Debug, Parser)]
struct Args {
    /// Runs, each in a fresh namespace, for the spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds each run measures.
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// The sender's interval, in milliseconds (the adverts').
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    require_root();
    let interval = Duration::from_millis(args.interval_ms);
    let window = Duration::from_secs(args.window);
    let mut runs: Vec<Vec<ReaderCost>> = Vec::new();
    for run in 1..=args.runs {
        eprintln!(
            "wake-floor: run {run} of {}, {} s, one datagram every {} ms",
            args.runs, args.window, args.interval_ms
        );
        runs.push(wake_cost::measure(&Reader::ALL, interval, window)?);
    }
    println!(
        "\nWake-up floor: three readers side by side, one datagram every {} ms, deadline readers asleep {} ms at a time; {} runs of {} s\n",
        args.interval_ms,
        wake_cost::deadline_sleep(interval).as_millis(),
        args.runs,
        args.window
    );
    println!("| reader | wake-ups / s | datagrams / wake-up | CPU µs / wake-up | CPU µs / s |");
    println!("| --- | --- | --- | --- | --- |");
    for reader in Reader::ALL {
        let of = |value: &dyn Fn(&ReaderCost) -> f64| {
            summarize(
                runs.iter()
                    .flatten()
                    .filter(|cost| cost.reader == reader)
                    .map(value)
                    .collect(),
            )
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            reader.describe(),
            range_cell(of(&ReaderCost::wakes_per_second), 2),
            range_cell(
                of(&|cost| cost.datagrams as f64 / (cost.wakes.max(1) as f64)),
                1
            ),
            range_cell(of(&ReaderCost::micros_per_wake), 1),
            range_cell(of(&ReaderCost::micros_per_second), 1),
        );
    }
    Ok(())
}
