//! Input that cannot be read: a clear error with a position, never a panic, and reading
//! bounded whatever the input (a 10 MiB configuration, an endless device, binary data, every
//! truncation of a real configuration, arbitrary bytes).

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use std::path::{Path, PathBuf};

use kube_vrrp_import::error::{MAX_TOTAL_BYTES, ReadError};
use kube_vrrp_import::source::Kind;
use kube_vrrp_import::{FileSystem, Input, MemoryFiles, Options, Sources, import};
use proptest::prelude::*;

/// A real two-node configuration (the golden pair's first node).
const PAIR: &str = include_str!("data/golden/pair-master-backup/n1.conf");

/// Sources that count the bytes handed out.
struct Counting<S> {
    inner: S,
    bytes: u64,
}

impl<S: Sources> Sources for Counting<S> {
    fn read(&mut self, path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
        let read = self.inner.read(path, limit)?;
        self.bytes += read.as_ref().map_or(limit + 1, |b| b.len() as u64);
        Ok(read)
    }
    fn list(&mut self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn kind(&mut self, path: &Path) -> Option<Kind> {
        self.inner.kind(path)
    }
    fn identity(&mut self, path: &Path) -> PathBuf {
        self.inner.identity(path)
    }
}

/// A directory of test files, removed when dropped (also when the test fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("kube-vrrp-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn import_text(text: &[u8]) -> Result<kube_vrrp_import::Outcome, ReadError> {
    let mut files = MemoryFiles::new().with("n1.conf", text.to_vec());
    import(
        &[Input::new("n1", "n1.conf")],
        &mut files,
        &Options::default(),
    )
}

#[test]
fn a_ten_mib_configuration_is_refused_after_reading_at_most_the_limit() {
    let scratch = scratch("big");
    let dir = &scratch.0;
    // A plausible-looking file: the pair's configuration, then 10 MiB of comment lines.
    let mut text = PAIR.to_owned();
    let filler = "# padding to make a large configuration file\n";
    while text.len() < 10 * 1024 * 1024 {
        text.push_str(filler);
    }
    std::fs::write(dir.join("n1.conf"), &text).unwrap();
    let mut files = Counting {
        inner: FileSystem::new(dir),
        bytes: 0,
    };
    let err = import(
        &[Input::new("n1", "n1.conf")],
        &mut files,
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ReadError::TooLarge { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "n1.conf: the file is larger than 4 MiB; keepalived configurations are kilobytes: is \
         this the right file?"
    );
    assert!(
        files.bytes <= MAX_TOTAL_BYTES + 1,
        "read {} bytes",
        files.bytes
    );
}

#[test]
fn includes_count_towards_the_same_limit() {
    let scratch = scratch("includes");
    let dir = &scratch.0;
    let chunk = format!("# {}\n", "x".repeat(1000)).repeat(1024); // 1003 KiB
    let mut main = String::new();
    for i in 0..6 {
        let part = format!("part{i}.conf");
        std::fs::write(dir.join(&part), &chunk).unwrap();
        main.push_str("include ");
        main.push_str(&part);
        main.push('\n');
    }
    std::fs::write(dir.join("n1.conf"), main).unwrap();
    let mut files = Counting {
        inner: FileSystem::new(dir),
        bytes: 0,
    };
    let err = import(
        &[Input::new("n1", "n1.conf")],
        &mut files,
        &Options::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("n1.conf:5: part4.conf brings the configuration over 4 MiB"),
        "{err}"
    );
    assert!(
        files.bytes <= MAX_TOTAL_BYTES + 1,
        "read {} bytes",
        files.bytes
    );
}

#[test]
fn an_endless_device_as_the_configuration_is_refused_after_the_limit() {
    let mut files = Counting {
        inner: FileSystem::new("/"),
        bytes: 0,
    };
    let err = import(
        &[Input::new("n1", "/dev/zero")],
        &mut files,
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ReadError::TooLarge { .. }), "{err}");
    assert!(files.bytes <= MAX_TOTAL_BYTES + 1);
}

#[test]
fn an_include_of_a_device_is_skipped_like_keepalived_does_and_reported() {
    let scratch = scratch("device");
    let dir = &scratch.0;
    std::fs::write(dir.join("n1.conf"), format!("{PAIR}include /dev/zero\n")).unwrap();
    let mut files = FileSystem::new(dir);
    let outcome = import(
        &[Input::new("n1", "n1.conf")],
        &mut files,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(outcome.manifests.virtual_ips.len(), 1);
    let rendered = outcome.report.render();
    assert!(
        rendered.contains("n1.conf:21: warning: /dev/zero is not a regular file; keepalived skips it, and so does import"),
        "{rendered}"
    );
}

#[test]
fn binary_garbage_is_an_error_at_its_line_and_column() {
    let mut garbage = b"global_defs {\n  router_id n1\n}\n".to_vec();
    garbage.extend([b'a', 0xff, 0xfe, b'\n']);
    let err = import_text(&garbage).unwrap_err();
    assert_eq!(
        err.to_string(),
        "n1.conf:4: column 2: byte 0xff is not UTF-8 text: is this a binary file?"
    );
    let err = import_text(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "n1.conf:1: column 8: NUL byte: is this a binary file?"
    );
}

#[test]
fn an_over_long_line_is_an_error_not_a_silent_drop() {
    let text = format!("global_defs {{\n  router_id {}\n}}\n", "n".repeat(2000));
    let err = import_text(text.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "n1.conf:2: the line is 2012 bytes long; keepalived ignores lines longer than 1022 \
         bytes, so split it"
    );
}

#[test]
fn deep_nesting_and_a_self_including_file_are_errors_not_stack_overflows() {
    let err = import_text("x {\n".repeat(10_000).as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "n1.conf:33: blocks are nested more than 32 deep"
    );
    let mut files = MemoryFiles::new().with("n1.conf", "include n1.conf\n");
    let err = import(
        &[Input::new("n1", "n1.conf")],
        &mut files,
        &Options::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "n1.conf:1: include loop: n1.conf is already being read (n1.conf -> n1.conf)"
    );
}

#[test]
fn sequences_that_expand_without_bound_are_refused() {
    let text = "~SEQ(A, 1, 1000) ~SEQ(B, 1, 1000) x ${A} ${B}\n";
    let err = import_text(text.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "n1.conf:1: expanding definitions and sequences produces more than 100000 lines or 16 MiB"
    );
}

#[test]
fn long_expanded_lines_are_refused_by_their_size_before_their_number() {
    let text = format!("$L={}\n~SEQ(N, 1, 50000) $L\n", "x".repeat(1000));
    let err = import_text(text.as_bytes()).unwrap_err();
    assert!(matches!(err, ReadError::TooManyLines { .. }), "{err}");
}

#[test]
fn every_truncation_of_a_real_configuration_is_read_or_refused_with_a_position() {
    let bytes = PAIR.as_bytes();
    for end in 0..=bytes.len() {
        match import_text(&bytes[..end]) {
            Ok(_) => {}
            Err(e) => assert!(
                e.position().is_some(),
                "truncated at {end}: error without a position: {e}"
            ),
        }
    }
    // Cut inside the instance: the unclosed block is named.
    let cut = PAIR.find("virtual_ipaddress").unwrap();
    let err = import_text(&bytes[..cut]).unwrap_err();
    assert!(matches!(err, ReadError::Unclosed { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_have_positions(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        if let Err(e) = import_text(&bytes) {
            prop_assert!(e.position().is_some(), "{}", e);
        }
    }

    #[test]
    fn arbitrary_keepalived_shaped_text_never_panics(
        lines in prop::collection::vec(
            prop_oneof![
                Just("vrrp_instance VI_1 {".to_owned()),
                Just("}".to_owned()),
                Just("{".to_owned()),
                Just("virtual_ipaddress {".to_owned()),
                Just("10.0.0.1/24".to_owned()),
                Just("virtual_router_id 51".to_owned()),
                Just("priority 100".to_owned()),
                Just("state MASTER".to_owned()),
                Just("$X=${X}${X}".to_owned()),
                Just("$X".to_owned()),
                Just("@n1 priority 1".to_owned()),
                Just("include n1.conf".to_owned()),
                Just("~SEQ(N, 3) a $N".to_owned()),
                Just("virtual_server 10.0.0.1 80 {".to_owned()),
                Just("real_server 10.0.0.2 80 { TCP_CHECK { } }".to_owned()),
                "[ -~]{0,40}",
            ],
            0..60,
        )
    ) {
        let text = lines.join("\n");
        if let Err(e) = import_text(text.as_bytes()) {
            prop_assert!(e.position().is_some(), "{}", e);
        }
    }
}
