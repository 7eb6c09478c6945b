//! Debian's keepalived as the judge of the language: `keepalived --config-test` reads each
//! golden configuration (with the same config id), and what it says about unknown keywords,
//! nameless instances, instances without a VRID and trackers it cannot find must be in the
//! import report at the same file and line; every keyword import calls unknown must be one
//! keepalived calls unknown too. Needs the `keepalived` binary (`hack/install-deps.sh`).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kube_vrrp_import::{FileSystem, Input, ItemKind, Options, Report, default_config_id, import};

/// One thing keepalived said about a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finding {
    /// `Unknown keyword 'x'` at a line.
    Unknown { at: String, keyword: String },
    /// Something else at a line, with the word import's item must mention.
    At { at: String, mention: String },
    /// An instance keepalived refuses for lack of a VRID.
    NoVrid { instance: String },
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// keepalived's findings for `file` (absolute) with config id `id`, file names made relative
/// to `dir` as import names them.
fn keepalived_findings(dir: &Path, file: &Path, id: &str) -> Vec<Finding> {
    let output = Command::new("keepalived")
        .args([
            "--config-test",
            "--log-console",
            "--log-detail",
            "--config-id",
            id,
            "--use-file",
        ])
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run keepalived ({e}): install it (hack/install-deps.sh; make test does)")
        });
    assert!(
        output.status.signal().is_none(),
        "keepalived crashed on {}: {:?}\n{}",
        file.display(),
        output.status,
        std::fs::read_to_string(file).unwrap_or_default()
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let prefix = format!("{}/", dir.display());
    let mut findings = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('(')
            && let Some((place, message)) = rest.split_once(") ")
            && let Some((path, number)) = place.split_once(": Line ")
        {
            let at = format!("{}:{number}", path.strip_prefix(&prefix).unwrap_or(path));
            if let Some(keyword) = message
                .strip_prefix("Unknown keyword '")
                .and_then(|k| k.strip_suffix('\''))
            {
                findings.push(Finding::Unknown {
                    at,
                    keyword: keyword.to_owned(),
                });
            } else if message == "vrrp_instance must have a name" {
                findings.push(Finding::At {
                    at,
                    mention: "vrrp_instance".to_owned(),
                });
            } else if let Some((_, tracked)) = message.split_once(") track script ") {
                let name = tracked.split(' ').next().unwrap_or_default();
                findings.push(Finding::At {
                    at,
                    mention: format!("tracks {name}"),
                });
            } else if let Some((_, tracked)) = message.split_once(") track file ") {
                let name = tracked.split(' ').next().unwrap_or_default();
                findings.push(Finding::At {
                    at,
                    mention: format!("tracks {name}"),
                });
            }
        } else if let Some(rest) = line.strip_prefix('(')
            && let Some(instance) = rest.strip_suffix(") the virtual router id must be set")
        {
            findings.push(Finding::NoVrid {
                instance: instance.to_owned(),
            });
        }
    }
    findings
}

fn has_item(report: &Report, at: &str, mention: &str, kind: Option<ItemKind>) -> bool {
    report.items.iter().any(|item| {
        item.at.iter().any(|p| p.to_string() == at)
            && item.message.contains(mention)
            && kind.is_none_or(|k| item.kind == k)
    })
}

fn check_case(case: &str) -> usize {
    let dir = golden().join(case);
    let inputs: Vec<Input> = std::fs::read_to_string(dir.join("inputs"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Input {
                node: w[0].to_owned(),
                file: PathBuf::from(w[1]),
                config_id: w
                    .get(2)
                    .map_or_else(|| default_config_id(w[0]), |i| (*i).to_owned()),
                root: None,
            }
        })
        .collect();
    let outcome = import(&inputs, &mut FileSystem::new(&dir), &Options::default()).unwrap();
    let report = &outcome.report;
    let mut findings = Vec::new();
    for input in &inputs {
        findings.extend(keepalived_findings(
            &dir,
            &dir.join(&input.file),
            &input.config_id,
        ));
    }
    for finding in &findings {
        let found = match finding {
            Finding::Unknown { at, keyword } => {
                has_item(report, at, &format!("{keyword:?}"), Some(ItemKind::Unknown))
            }
            Finding::At { at, mention } => has_item(report, at, mention, None),
            Finding::NoVrid { instance } => report.items.iter().any(|i| {
                i.message.contains(&format!(
                    "vrrp_instance {instance} has no virtual_router_id"
                ))
            }),
        };
        assert!(
            found,
            "{case}: keepalived says {finding:?}, the import report does not:\n{}",
            report.render()
        );
    }
    for item in report.items.iter().filter(|i| i.kind == ItemKind::Unknown) {
        let agreed = findings.iter().any(|f| match f {
            Finding::Unknown { at, keyword } => {
                item.at.iter().any(|p| p.to_string() == *at)
                    && item.message.contains(&format!("{keyword:?}"))
            }
            _ => false,
        });
        assert!(
            agreed,
            "{case}: import calls a keyword unknown that keepalived knows: {item}"
        );
    }
    findings.len()
}

#[test]
fn keepalived_reports_nothing_about_the_language_that_import_does_not() {
    let mut cases: Vec<String> = std::fs::read_dir(golden())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("error-"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "{cases:?}");
    let findings: usize = cases.iter().map(|c| check_case(c)).sum();
    // The typo and include cases make keepalived complain; zero would mean it was not heard.
    assert!(
        findings >= 5,
        "keepalived reported only {findings} findings"
    );
}

/// A configuration with `line` in a block of `context`.
fn placed(context: kube_vrrp_import::keywords::Context, checker: &str, line: &str) -> String {
    use kube_vrrp_import::keywords::Context;
    let instance = |extra: &str| {
        format!(
            "vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 1\n  {extra}\n  \
             virtual_ipaddress {{\n    10.0.0.1\n  }}\n}}\n"
        )
    };
    let server = |vs: &str, rs: &str| {
        format!(
            "virtual_server 10.0.0.1 80 {{\n  {vs}\n  real_server 10.0.0.2 80 {{\n    {rs}\n  \
             }}\n}}\n"
        )
    };
    match context {
        Context::Top => format!("{line}\n"),
        Context::Global => format!("global_defs {{\n  {line}\n}}\n"),
        Context::Instance => instance(line),
        Context::SyncGroup => format!(
            "{}vrrp_sync_group G {{\n  group {{\n    VI_1\n  }}\n  {line}\n}}\n",
            instance("")
        ),
        Context::Script => format!("vrrp_script s {{\n  script /bin/true\n  {line}\n}}\n"),
        Context::TrackFile => format!("track_file f {{\n  file /tmp/f\n  {line}\n}}\n"),
        Context::VirtualServer => server(line, "weight 1"),
        Context::RealServer => server("lb_algo rr", line),
        Context::Checker if checker == "url" => server(
            "lb_algo rr",
            &format!("HTTP_GET {{\n      url {{\n        path /\n        {line}\n      }}\n    }}"),
        ),
        Context::Checker => server(
            "lb_algo rr",
            &format!("{checker} {{\n      {line}\n      url {{\n        path /\n      }}\n    }}"),
        ),
    }
}

/// Keywords that open a block, written with a minimal body.
const BLOCKS: &[(&str, &str)] = &[
    (
        "authentication",
        "authentication {\n auth_type PASS\n auth_pass x\n}",
    ),
    ("unicast_peer", "unicast_peer {\n 10.0.0.9\n}"),
    ("virtual_ipaddress", "virtual_ipaddress {\n 10.0.0.8\n}"),
    (
        "virtual_ipaddress_excluded",
        "virtual_ipaddress_excluded {\n 10.0.0.7\n}",
    ),
    ("track_interface", "track_interface {\n eth0\n}"),
    ("track_script", "track_script {\n s\n}"),
    ("track_file", "track_file {\n f\n}"),
    ("group", "group {\n VI_1\n}"),
    ("real_server", "real_server 10.0.0.3 80 {\n weight 1\n}"),
    ("TCP_CHECK", "TCP_CHECK {\n connect_timeout 1\n}"),
    ("HTTP_GET", "HTTP_GET {\n url {\n path /\n }\n}"),
    ("SSL_GET", "SSL_GET {\n url {\n path /\n }\n}"),
    ("MISC_CHECK", "MISC_CHECK {\n misc_path /bin/true\n}"),
    ("url", "url {\n path /\n}"),
];

#[test]
fn every_keyword_import_translates_or_calls_unsupported_is_one_keepalived_knows_there() {
    struct Removed(PathBuf);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(format!("kube-vrrp-keywords-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _removed = Removed(dir.clone());
    let file = dir.join("keepalived.conf");
    let mut checked = 0;
    let mut unknown = Vec::new();
    // The top-level blocks are in every golden file; alone with a "1" they crash keepalived.
    let translated = kube_vrrp_import::keywords::CONTEXTS
        .iter()
        .filter(|c| **c != kube_vrrp_import::keywords::Context::Top)
        .map(|c| {
            (
                std::slice::from_ref(c),
                kube_vrrp_import::keywords::translated(*c),
            )
        });
    let unsupported = kube_vrrp_import::keywords::UNSUPPORTED
        .iter()
        .map(|(c, k, _)| (*c, *k));
    for (contexts, keywords) in translated.chain(unsupported) {
        for context in contexts {
            for keyword in keywords {
                let checkers: &[&str] = if *context == kube_vrrp_import::keywords::Context::Checker
                {
                    &["HTTP_GET", "SSL_GET", "MISC_CHECK", "TCP_CHECK", "url"]
                } else {
                    &[""]
                };
                // Blocks get a minimal body: keepalived crashes on some empty checkers.
                let line = match BLOCKS.iter().find(|(k, _)| k == keyword) {
                    Some((_, body)) => (*body).to_owned(),
                    None => format!("{keyword} 1"),
                };
                let known = checkers.iter().any(|checker| {
                    std::fs::write(&file, placed(*context, checker, &line)).unwrap();
                    !keepalived_findings(&dir, &file, "n1")
                        .iter()
                        .any(|f| matches!(f, Finding::Unknown { keyword: k, .. } if k == keyword))
                });
                if !known {
                    unknown.push(format!("{keyword} in {}", context.as_str()));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 250, "only {checked} keywords checked");
    assert!(unknown.is_empty(), "keepalived does not know: {unknown:?}");
}
