//! kube-vrrp-agent binary: the command line. Subcommands only parse arguments and print; the
//! work lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kube_vrrp_agent::decode;

#[derive(Debug, Parser)]
#[command(
    name = "kube-vrrp-agent",
    version,
    about = "kube-vrrp node agent: VRRP, VIPs, IPVS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode VRRP packets to JSON lines (one object per packet; errors as objects with `error`).
    ///
    /// Exit status: 0 when every VRRP packet decoded, 1 when any error line was printed.
    Decode(DecodeArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct DecodeArgs {
    /// A whole IPv4/IPv6 packet or a bare VRRP message, in hex (spaces, `:` and `-` allowed).
    #[arg(long, value_name = "BYTES")]
    hex: Option<String>,
    /// A classic pcap file (Ethernet, Linux SLL/SLL2 or raw IP); non-VRRP frames are skipped and
    /// a summary goes to stderr. `index` in the output counts frames from 0.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

fn decode_command(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    let records = match (args.hex, args.pcap) {
        (Some(text), _) => vec![decode::hex_record(&text)],
        (None, Some(path)) => {
            let (records, summary) = decode::pcap_file_records(&path);
            decode::write_records(&mut stdout, &records)?;
            stdout.flush()?;
            eprintln!("{}", serde_json::json!({ "summary": summary }));
            return Ok(exit_code(&records));
        }
        (None, None) => anyhow::bail!("one of --hex or --pcap is required"),
    };
    decode::write_records(&mut stdout, &records)?;
    Ok(exit_code(&records))
}

fn exit_code(records: &[decode::Record]) -> ExitCode {
    if records.iter().any(decode::Record::is_error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Decode(args) => decode_command(args),
    }
}
