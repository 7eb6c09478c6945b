//! Why a set of keepalived files cannot be read at all (exit status 2), and the limits that keep
//! reading bounded in time and memory whatever the input.
//!
//! These are errors in the input's form (a file missing, a brace never closed, binary data),
//! each with the position it was found at. What keepalived's language can express but kube-vrrp
//! cannot is not an error: it goes to the [`crate::report::Report`].

use std::path::PathBuf;

use crate::position::Position;

/// Bytes read over all files of one node: real configurations are kilobytes; this bounds memory
/// whatever is named (a huge file, `/dev/zero`).
pub const MAX_TOTAL_BYTES: u64 = 4 * 1024 * 1024;
/// Files opened for one node (the main file and every include).
pub const MAX_FILES: usize = 256;
/// Includes within includes.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// The longest line keepalived reads (its line buffer is 1024 bytes with the newline and the
/// terminator); it ignores longer lines, so such a file does not mean what it says.
pub const MAX_LINE_BYTES: usize = 1022;
/// Lines produced by one node's files after multi-line definitions and `~SEQ` / `~LST` are
/// expanded.
pub const MAX_LOGICAL_LINES: usize = 100_000;
/// Bytes of those lines (the tree built from them is a small multiple of this).
pub const MAX_EXPANDED_BYTES: usize = 16 * 1024 * 1024;
/// Parameter substitutions on one line (a definition that names itself never ends).
pub const MAX_SUBSTITUTIONS: usize = 1_000;
/// Blocks within blocks (keepalived's deepest is five).
pub const MAX_BLOCK_DEPTH: usize = 32;

/// Why reading failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file could not be opened or read.
    #[error("{}: {source}", place(.at.as_ref(), .path, "cannot read"))]
    Io {
        at: Option<Position>,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The files of one node add up to more than [`MAX_TOTAL_BYTES`].
    #[error(
        "{}; keepalived configurations are kilobytes: is this the right file?",
        too_large(.at.as_ref(), .path)
    )]
    TooLarge { at: Option<Position>, path: PathBuf },
    /// More than [`MAX_FILES`] files.
    #[error("{at}: more than {MAX_FILES} configuration files are included")]
    TooManyFiles { at: Position },
    /// Includes nested deeper than [`MAX_INCLUDE_DEPTH`].
    #[error("{at}: includes are nested more than {MAX_INCLUDE_DEPTH} deep")]
    IncludeTooDeep { at: Position },
    /// A file includes itself, directly or through others.
    #[error("{at}: include loop: {} is already being read ({chain})", .path.display())]
    IncludeLoop {
        at: Position,
        path: PathBuf,
        chain: String,
    },
    /// An include names a file (no wildcard) that does not exist.
    #[error(
        "{at}: include {pattern:?} matches no file (looked for {}); {}",
        .resolved.display(),
        missing_advice(*.absolute)
    )]
    IncludeMissing {
        at: Position,
        pattern: String,
        resolved: PathBuf,
        /// The pattern is an absolute path.
        absolute: bool,
    },
    /// A byte sequence that is not UTF-8 text outside a comment.
    #[error("{at}: column {column}: byte 0x{byte:02x} is not UTF-8 text: is this a binary file?")]
    NotText {
        at: Position,
        column: usize,
        byte: u8,
    },
    /// A NUL byte (keepalived drops such lines).
    #[error("{at}: column {column}: NUL byte: is this a binary file?")]
    Nul { at: Position, column: usize },
    /// A line longer than keepalived reads.
    #[error(
        "{at}: the line is {length} bytes long; keepalived ignores lines longer than \
         {MAX_LINE_BYTES} bytes, so split it"
    )]
    LineTooLong { at: Position, length: usize },
    /// A quote that is never closed.
    #[error("{at}: unterminated quote: {text}")]
    UnterminatedQuote { at: Position, text: String },
    /// Parameter substitution or expansion went wrong.
    #[error("{at}: {message}")]
    Expansion { at: Position, message: String },
    /// Expansion produced more than [`MAX_LOGICAL_LINES`] lines or [`MAX_EXPANDED_BYTES`].
    #[error(
        "{at}: expanding definitions and sequences produces more than {MAX_LOGICAL_LINES} lines \
         or {} MiB",
        MAX_EXPANDED_BYTES / 1024 / 1024
    )]
    TooManyLines { at: Position },
    /// A `}` that closes nothing.
    #[error("{at}: '}}' closes no block (unbalanced braces)")]
    UnexpectedClose { at: Position },
    /// A `{` that follows no keyword.
    #[error("{at}: '{{' follows no keyword; write it on the line of the keyword it opens")]
    OpenWithoutKeyword { at: Position },
    /// A block still open at the end of the input.
    #[error(
        "{at}: the '{{' of {keyword} is never closed (the configuration ends at {end}): the \
         file is truncated or a '}}' is missing"
    )]
    Unclosed {
        at: Position,
        keyword: String,
        end: Position,
    },
    /// Blocks nested deeper than [`MAX_BLOCK_DEPTH`].
    #[error("{at}: blocks are nested more than {MAX_BLOCK_DEPTH} deep")]
    TooDeep { at: Position },
}

fn missing_advice(absolute: bool) -> &'static str {
    if absolute {
        "run import on the node, or copy the node's files under a directory and name it with \
         --root (absolute includes are read under it)"
    } else {
        "copy the included files next to the configuration, as they are on the node"
    }
}

fn too_large(at: Option<&Position>, path: &std::path::Path) -> String {
    let mib = MAX_TOTAL_BYTES / 1024 / 1024;
    match at {
        Some(at) => format!(
            "{at}: {} brings the configuration over {mib} MiB",
            path.display()
        ),
        None => format!("{}: the file is larger than {mib} MiB", path.display()),
    }
}

/// "file: verb" for a file given on the command line, "include line: file verb" for one that
/// an include brought in.
fn place(at: Option<&Position>, path: &std::path::Path, verb: &str) -> String {
    match at {
        Some(at) => format!("{at}: {} {verb}", path.display()),
        None => format!("{}: {verb}", path.display()),
    }
}

impl ReadError {
    /// Where the problem is (the including line for file errors of an include).
    pub fn position(&self) -> Option<&Position> {
        match self {
            Self::Io { at, .. } | Self::TooLarge { at, .. } => at.as_ref(),
            Self::TooManyFiles { at }
            | Self::IncludeTooDeep { at }
            | Self::IncludeLoop { at, .. }
            | Self::IncludeMissing { at, .. }
            | Self::NotText { at, .. }
            | Self::Nul { at, .. }
            | Self::LineTooLong { at, .. }
            | Self::UnterminatedQuote { at, .. }
            | Self::Expansion { at, .. }
            | Self::TooManyLines { at }
            | Self::UnexpectedClose { at }
            | Self::OpenWithoutKeyword { at }
            | Self::Unclosed { at, .. }
            | Self::TooDeep { at } => Some(at),
        }
    }
}
