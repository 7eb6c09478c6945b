//! Writes the CustomResourceDefinitions to `crds/yaml/`, or with `--check` fails when the
//! committed files differ from what the types generate (for CI).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: crdgen [--check] [--out DIR]   (DIR defaults to crds/yaml next to this crate)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut check = false;
    let mut out: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--out" => match args.next() {
                Some(dir) => out = PathBuf::from(dir),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let files = match kube_vrrp_crds::crd_yaml::render_all() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = Vec::new();
    for (name, yaml) in &files {
        let path = out.join(name);
        if check {
            match std::fs::read_to_string(&path) {
                Ok(existing) if existing == *yaml => {}
                Ok(_) => stale.push(format!("{} differs", path.display())),
                Err(e) => stale.push(format!("{}: {e}", path.display())),
            }
        } else {
            if let Err(e) = std::fs::create_dir_all(&out).and_then(|()| std::fs::write(&path, yaml))
            {
                eprintln!("crdgen: writing {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        ExitCode::SUCCESS
    } else {
        for s in &stale {
            eprintln!("crdgen: {s}");
        }
        eprintln!("crdgen: run `cargo run -p kube-vrrp-crds --bin crdgen` and commit the result");
        ExitCode::FAILURE
    }
}
