//! From files to logical lines, the way keepalived's line reader does it, so that what follows
//! sees one keyword line or one brace per [`Line`]:
//!
//! 1. Each physical line loses its comment (`#` or `!` outside double quotes; `\#` and `\!` are
//!    literal), leading and trailing blanks; blank lines vanish.
//! 2. `@name rest` keeps `rest` only when `name` is the config id; `@^name rest` only when it is
//!    not.
//! 3. `$NAME=value` defines a parameter (continued on the next lines while they end with `\`);
//!    `~SEQ(...)` / `~LST(...)` repeat the rest of their line; other lines have their
//!    parameters substituted (see [`crate::params`]).
//! 4. `include PATTERN` (and `includer`, `includem`, `includew`, `includeb`, `includea`) reads the
//!    files the glob names, relative to the including file's directory, in place.
//! 5. A line is cut before its first `{` or `}` outside double quotes, and after it, so braces are
//!    lines of their own (`vrrp_instance VI_1{` is `vrrp_instance VI_1` then `{`).
//!
//! Everything is bounded (see [`crate::error`]); positions stay those of the physical lines (for
//! expansions: the line that used the parameter or sequence).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{
    MAX_EXPANDED_BYTES, MAX_FILES, MAX_INCLUDE_DEPTH, MAX_LINE_BYTES, MAX_LOGICAL_LINES,
    MAX_TOTAL_BYTES, ReadError,
};
use crate::glob;
use crate::params::{Definitions, SubstitutionError, definition_line};
use crate::position::Position;
use crate::report::{ItemKind, Report};
use crate::sequence::{self, Sequence};
use crate::source::{Kind, Sources};

/// One logical line: `{`, `}`, or a keyword with its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Where it was read.
    pub at: Position,
    /// The text, blanks trimmed.
    pub text: String,
}

/// Reads `file` (and what it includes) as keepalived would with config id `config_id`. Things
/// that are read but not carried (an include matching nothing, a node-only parameter) are added
/// to `report`.
pub fn read(
    sources: &mut dyn Sources,
    file: &Path,
    config_id: &str,
    root: Option<&Path>,
    report: &mut Report,
) -> Result<Vec<Line>, ReadError> {
    let mut reader = Reader {
        sources,
        root: root.map(Path::to_owned),
        config_id: config_id.to_owned(),
        definitions: Definitions::new(config_id),
        frames: Vec::new(),
        collecting: None,
        out: Vec::new(),
        bytes_emitted: 0,
        bytes_read: 0,
        files_opened: 0,
        report,
    };
    reader.open(file, None)?;
    reader.run()?;
    Ok(reader.out)
}

/// A multi-line definition being read.
struct Collecting {
    name: String,
    lines: Vec<String>,
}

enum Frame {
    /// A file being read.
    File(FileFrame),
    /// The files an include matched that are still to be read.
    Include {
        at: Position,
        pending: VecDeque<PathBuf>,
    },
    /// The remaining lines of a multi-line parameter.
    Expansion {
        at: Position,
        lines: VecDeque<String>,
    },
    /// A `~SEQ` / `~LST` repeating its text.
    Repeat {
        at: Position,
        sequence: Sequence,
        next: usize,
    },
}

struct FileFrame {
    display: Arc<str>,
    dir: PathBuf,
    identity: PathBuf,
    bytes: Vec<u8>,
    offset: usize,
    line: u32,
}

/// Where the next raw line came from.
enum Origin {
    File,
    Other,
}

struct Reader<'a> {
    sources: &'a mut dyn Sources,
    /// Where absolute include paths are read from (the node's `/`), if not this machine's.
    root: Option<PathBuf>,
    config_id: String,
    definitions: Definitions,
    frames: Vec<Frame>,
    collecting: Option<Collecting>,
    out: Vec<Line>,
    bytes_emitted: usize,
    bytes_read: u64,
    files_opened: usize,
    report: &'a mut Report,
}

impl Reader<'_> {
    fn run(&mut self) -> Result<(), ReadError> {
        let mut residue: Option<(Position, String)> = None;
        loop {
            let (at, text, origin) = if let Some((at, text)) = residue.take() {
                (at, text, Origin::Other)
            } else {
                match self.next_raw()? {
                    Some(next) => next,
                    None => break,
                }
            };
            if matches!(origin, Origin::File) && self.collect(&text) {
                continue;
            }
            if let Some((line, rest)) = self.process(&at, text)? {
                self.emit(Line {
                    at: at.clone(),
                    text: line,
                })?;
                residue = rest.map(|r| (at, r));
            }
        }
        if let Some(c) = self.collecting.take() {
            self.definitions.define(&c.name, c.lines, true);
        }
        Ok(())
    }

    fn emit(&mut self, line: Line) -> Result<(), ReadError> {
        self.bytes_emitted += line.text.len();
        if self.out.len() >= MAX_LOGICAL_LINES || self.bytes_emitted > MAX_EXPANDED_BYTES {
            return Err(ReadError::TooManyLines { at: line.at });
        }
        self.out.push(line);
        Ok(())
    }

    /// Continues a multi-line definition with `text`; false when none is being read.
    fn collect(&mut self, text: &str) -> bool {
        let Some(c) = self.collecting.as_mut() else {
            return false;
        };
        let (content, more) = match text.strip_suffix('\\') {
            Some(t) => (t.trim_end_matches([' ', '\t']), true),
            None => (text, false),
        };
        if !content.is_empty() {
            c.lines.push(content.to_owned());
        }
        if !more && let Some(done) = self.collecting.take() {
            self.definitions.define(&done.name, done.lines, true);
        }
        true
    }

    /// The next line from the innermost source, comments removed; `None` at the end.
    fn next_raw(&mut self) -> Result<Option<(Position, String, Origin)>, ReadError> {
        loop {
            let Some(frame) = self.frames.last_mut() else {
                return Ok(None);
            };
            match frame {
                Frame::File(file) => {
                    let Some((at, raw)) = next_physical(file)? else {
                        self.frames.pop();
                        continue;
                    };
                    if raw.is_empty() {
                        // A blank line ends a multi-line definition.
                        if let Some(done) = self.collecting.take() {
                            self.definitions.define(&done.name, done.lines, true);
                        }
                        continue;
                    }
                    let text = decomment(&raw).map_err(|text| ReadError::UnterminatedQuote {
                        at: at.clone(),
                        text,
                    })?;
                    if text.is_empty() {
                        continue;
                    }
                    return Ok(Some((at, text, Origin::File)));
                }
                Frame::Include { at, pending } => {
                    let at = at.clone();
                    let Some(next) = pending.pop_front() else {
                        self.frames.pop();
                        continue;
                    };
                    self.open(&next, Some(&at))?;
                }
                Frame::Expansion { at, lines } => {
                    let at = at.clone();
                    let Some(line) = lines.pop_front() else {
                        self.frames.pop();
                        continue;
                    };
                    return Ok(Some((at, line, Origin::Other)));
                }
                Frame::Repeat { at, sequence, next } => {
                    let at = at.clone();
                    let Some(assignments) = sequence.assignments.get(*next).cloned() else {
                        self.frames.pop();
                        continue;
                    };
                    *next += 1;
                    let text = sequence.text.clone();
                    for (name, value) in assignments {
                        self.definitions.define(&name, vec![value], false);
                    }
                    return Ok(Some((at, text, Origin::Other)));
                }
            }
        }
    }

    /// Steps 2 to 5 for one line: the line to emit and what follows its first brace, or
    /// nothing when the line was consumed (a definition, an include, a false condition).
    fn process(
        &mut self,
        at: &Position,
        text: String,
    ) -> Result<Option<(String, Option<String>)>, ReadError> {
        let Some(mut text) = self.condition(text) else {
            return Ok(None);
        };
        if text.starts_with('$')
            && let Some(def) = definition_line(&text)
        {
            if def.continues {
                let mut lines = Vec::new();
                if !def.first.is_empty() {
                    lines.push(def.first);
                }
                self.collecting = Some(Collecting {
                    name: def.name,
                    lines,
                });
            } else {
                self.definitions.define(&def.name, vec![def.first], false);
            }
            return Ok(None);
        }
        if text.starts_with("~SEQ") || text.starts_with("~LST") {
            let definitions = &self.definitions;
            let sequence = sequence::parse(&text, |p| {
                definitions
                    .substitute(p)
                    .map_or_else(|_| p.to_owned(), |s| s.text)
            })
            .map_err(|message| ReadError::Expansion {
                at: at.clone(),
                message,
            })?;
            self.frames.push(Frame::Repeat {
                at: at.clone(),
                sequence,
                next: 0,
            });
            return Ok(None);
        }
        if !text.starts_with('~') && text.contains('$') {
            let substituted = self.definitions.substitute(&text).map_err(|e| ReadError::Expansion {
                at: at.clone(),
                message: match e {
                    SubstitutionError::TooLong => format!(
                        "substituting parameters makes the line longer than {MAX_LINE_BYTES} bytes"
                    ),
                    SubstitutionError::Endless => {
                        "parameter substitution never ends (a definition that uses itself?)"
                            .to_owned()
                    }
                },
            })?;
            for name in &substituted.node_only {
                self.report.warn(
                    ItemKind::Unsupported,
                    at,
                    format!("${{{name}}} is left as written: its value exists only on the node"),
                    Some("write the value itself (a path, a number) in the file"),
                );
            }
            for lines in substituted.following {
                self.frames.push(Frame::Expansion {
                    at: at.clone(),
                    lines: lines.into(),
                });
            }
            if substituted.changed {
                text =
                    decomment(&substituted.text).map_err(|text| ReadError::UnterminatedQuote {
                        at: at.clone(),
                        text,
                    })?;
                // keepalived documents `$IF_MAIN=@main` then `$IF_MAIN priority 240`.
                let Some(again) = self.condition(text) else {
                    return Ok(None);
                };
                text = again;
                if text.is_empty() {
                    return Ok(None);
                }
            }
        }
        if let Some(pattern) = include_pattern(&text) {
            self.include(at, pattern)?;
            return Ok(None);
        }
        Ok(Some(split_at_brace(&text)))
    }

    /// Applies an `@name` / `@^name` condition: the rest of the line, or `None` to drop it.
    fn condition(&self, text: String) -> Option<String> {
        let Some(rest) = text.strip_prefix('@') else {
            return Some(text);
        };
        let (negated, rest) = match rest.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let end = rest.find([' ', '\t'])?;
        let matched = rest[..end] == self.config_id;
        (matched != negated).then(|| rest[end..].trim_start_matches([' ', '\t']).to_owned())
    }

    fn include(&mut self, at: &Position, pattern: &str) -> Result<(), ReadError> {
        let absolute = pattern.starts_with('/');
        let (dir, relative) = match (&self.root, absolute) {
            (Some(root), true) => (root.clone(), pattern.trim_start_matches('/')),
            _ => (self.current_dir(), pattern),
        };
        let found =
            glob::resolve(self.sources, &dir, relative).ok_or_else(|| ReadError::Expansion {
                at: at.clone(),
                message: format!(
                    "include {pattern:?} has more than {} brace alternatives",
                    glob::MAX_ALTERNATIVES
                ),
            })?;
        if found.is_empty() {
            if glob::has_wildcard(pattern) {
                self.report.warn(
                    ItemKind::Review,
                    at,
                    format!(
                        "include {pattern:?} matches no file here (keepalived accepts an empty \
                         wildcard)"
                    ),
                    Some(
                        "if the node has files there, copy them next to the configuration as \
                         they are on the node and import again",
                    ),
                );
                return Ok(());
            }
            return Err(ReadError::IncludeMissing {
                at: at.clone(),
                pattern: pattern.to_owned(),
                resolved: crate::source::normalize(&dir.join(relative)),
                absolute,
            });
        }
        self.frames.push(Frame::Include {
            at: at.clone(),
            pending: found.into(),
        });
        Ok(())
    }

    /// The directory of the file being read (relative includes start there).
    fn current_dir(&self) -> PathBuf {
        self.frames
            .iter()
            .rev()
            .find_map(|f| match f {
                Frame::File(file) => Some(file.dir.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Opens `path` as the next file to read (`at`: the include line, if any).
    fn open(&mut self, path: &Path, at: Option<&Position>) -> Result<(), ReadError> {
        let skip = |report: &mut Report, why: &str| {
            if let Some(at) = at {
                report.warn(
                    ItemKind::Review,
                    at,
                    format!(
                        "{} {why}; keepalived skips it, and so does import",
                        path.display()
                    ),
                    None,
                );
            }
        };
        match self.sources.kind(path) {
            Some(Kind::Directory) if at.is_some() => {
                skip(self.report, "is a directory");
                return Ok(());
            }
            Some(Kind::File { executable: true }) if at.is_some() => {
                skip(self.report, "is executable");
                return Ok(());
            }
            Some(Kind::Other) if at.is_some() => {
                skip(self.report, "is not a regular file");
                return Ok(());
            }
            _ => {}
        }
        let depth = self
            .frames
            .iter()
            .filter(|f| matches!(f, Frame::File(_)))
            .count();
        if let Some(at) = at {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(ReadError::IncludeTooDeep { at: at.clone() });
            }
            if self.files_opened >= MAX_FILES {
                return Err(ReadError::TooManyFiles { at: at.clone() });
            }
        }
        let identity = self.sources.identity(path);
        let open: Vec<&FileFrame> = self
            .frames
            .iter()
            .filter_map(|f| match f {
                Frame::File(file) => Some(file),
                _ => None,
            })
            .collect();
        if open.iter().any(|f| f.identity == identity) {
            let chain: Vec<&str> = open.iter().map(|f| &*f.display).collect();
            return Err(ReadError::IncludeLoop {
                at: at
                    .cloned()
                    .unwrap_or_else(|| Position::new(&Arc::from(""), 0)),
                path: path.to_owned(),
                chain: format!("{} -> {}", chain.join(" -> "), path.display()),
            });
        }
        let budget = MAX_TOTAL_BYTES.saturating_sub(self.bytes_read);
        let bytes = match self.sources.read(path, budget) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(ReadError::TooLarge {
                    at: at.cloned(),
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(ReadError::Io {
                    at: at.cloned(),
                    path: path.to_owned(),
                    source,
                });
            }
        };
        self.bytes_read += bytes.len() as u64;
        self.files_opened += 1;
        self.frames.push(Frame::File(FileFrame {
            display: Arc::from(path.to_string_lossy().as_ref()),
            dir: path.parent().map(Path::to_owned).unwrap_or_default(),
            identity,
            bytes,
            offset: 0,
            line: 0,
        }));
        Ok(())
    }
}

/// The next physical line of `file` with its position, line ending removed; checked for
/// length, NUL bytes and UTF-8 outside comments (comments may hold any bytes).
fn next_physical(file: &mut FileFrame) -> Result<Option<(Position, String)>, ReadError> {
    if file.offset >= file.bytes.len() {
        return Ok(None);
    }
    let rest = &file.bytes[file.offset..];
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let mut raw = &rest[..end];
    file.offset += end + 1;
    file.line += 1;
    let at = Position::new(&file.display, file.line);
    while let [head @ .., b'\r'] = raw {
        raw = head;
    }
    if raw.len() > MAX_LINE_BYTES {
        return Err(ReadError::LineTooLong {
            at,
            length: raw.len(),
        });
    }
    if let Some(column) = raw.iter().position(|&b| b == 0) {
        return Err(ReadError::Nul {
            at,
            column: column + 1,
        });
    }
    let code_end = comment_start(raw).unwrap_or(raw.len());
    if let Err(e) = std::str::from_utf8(&raw[..code_end]) {
        let column = e.valid_up_to();
        return Err(ReadError::NotText {
            at,
            column: column + 1,
            byte: raw[column],
        });
    }
    Ok(Some((at, String::from_utf8_lossy(raw).into_owned())))
}

/// Where the comment of a line starts (`#` or `!` outside double quotes, not escaped).
fn comment_start(line: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => quoted = !quoted,
            b'\\' => i += 1,
            b'#' | b'!' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Removes the comment, the escaping of `\#` and `\!`, and leading and trailing blanks (a
/// final `\` is kept, without the blanks before it). An unclosed `"` is an error.
pub fn decomment(line: &str) -> Result<String, String> {
    let line = line.trim_start_matches([' ', '\t']);
    let mut out = String::with_capacity(line.len());
    let mut quoted = false;
    let mut continued = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '\\' => match chars.next() {
                Some(next @ ('#' | '!')) if !quoted => out.push(next),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => {
                    continued = true;
                    break;
                }
            },
            '#' | '!' if !quoted => break,
            _ => out.push(c),
        }
    }
    if quoted {
        return Err(line.to_owned());
    }
    let mut out = out.trim_end_matches([' ', '\t']).to_owned();
    if continued {
        out.push('\\');
    }
    Ok(out)
}

/// The pattern of an include line (`include`, or `include` + one of `r m w b a`, then blanks).
fn include_pattern(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("include")?;
    let rest = match rest.chars().next()? {
        ' ' | '\t' => rest,
        'r' | 'm' | 'w' | 'b' | 'a' => {
            let after = &rest[1..];
            if !after.starts_with([' ', '\t']) {
                return None;
            }
            after
        }
        _ => return None,
    };
    Some(rest.trim_start_matches([' ', '\t']))
}

/// Cuts `text` at its first brace outside double quotes: the line to emit and the rest to read
/// next. A line starting with a brace is that brace alone.
fn split_at_brace(text: &str) -> (String, Option<String>) {
    let mut quoted = false;
    let mut brace = None;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '}' if !quoted => {
                brace = Some(i);
                break;
            }
            _ => {}
        }
    }
    let rest = |s: &str| {
        let s = s.trim_matches([' ', '\t']);
        (!s.is_empty()).then(|| s.to_owned())
    };
    match brace {
        Some(0) => (text[..1].to_owned(), rest(&text[1..])),
        Some(i) => (
            text[..i].trim_end_matches([' ', '\t']).to_owned(),
            rest(&text[i..]),
        ),
        None => (text.trim_end_matches([' ', '\t']).to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemoryFiles;

    fn lines_of(files: MemoryFiles, main: &str, config_id: &str) -> (Vec<String>, Report) {
        let mut files = files;
        let mut report = Report::default();
        let lines = read(&mut files, Path::new(main), config_id, None, &mut report).unwrap();
        (
            lines
                .into_iter()
                .map(|l| format!("{}|{}", l.at, l.text))
                .collect(),
            report,
        )
    }

    fn texts(text: &str, config_id: &str) -> Vec<String> {
        let (lines, _) = lines_of(MemoryFiles::new().with("k.conf", text), "k.conf", config_id);
        lines
            .into_iter()
            .map(|l| l.split_once('|').unwrap().1.to_owned())
            .collect()
    }

    #[test]
    fn comments_go_anywhere_outside_double_quotes() {
        assert_eq!(
            texts(
                "! header\nvrrp_instance A { # open\n  auth_pass \"a#b\" ! trailing\n  x \\#y\n}\n",
                "n1"
            ),
            ["vrrp_instance A", "{", "auth_pass \"a#b\"", "x #y", "}"]
        );
    }

    #[test]
    fn braces_become_lines_of_their_own_even_without_spaces() {
        assert_eq!(
            texts(
                "vrrp_instance VI_1{\nvirtual_ipaddress {10.0.0.1/24}}\n",
                "n1"
            ),
            [
                "vrrp_instance VI_1",
                "{",
                "virtual_ipaddress",
                "{",
                "10.0.0.1/24",
                "}",
                "}"
            ]
        );
    }

    #[test]
    fn conditional_lines_follow_the_config_id() {
        let text = "@main router_id main_router\n@backup router_id backup_router\n\
                    @^main peer 1.2.3.4\n@^backup peer 1.2.3.5\n@main\n";
        assert_eq!(
            texts(text, "main"),
            ["router_id main_router", "peer 1.2.3.5"]
        );
        assert_eq!(texts(text, "other"), ["peer 1.2.3.4", "peer 1.2.3.5"]);
    }

    #[test]
    fn parameters_are_substituted_and_may_be_conditional() {
        let text = "@main $PRIORITY=240\n@backup $PRIORITY=200\npriority $PRIORITY\n\
                    $IF_MAIN=@main\n$IF_MAIN advert_int 2\n";
        assert_eq!(texts(text, "main"), ["priority 240", "advert_int 2"]);
        assert_eq!(texts(text, "backup"), ["priority 200"]);
    }

    #[test]
    fn multi_line_definitions_expand_in_place_and_see_current_parameters() {
        let text = "$INSTANCE= \\\nvrrp_instance VI_${NUM} { \\\n  @high priority 130 \\\n  \
                    @low priority 120 \\\n}\n\n$NUM=0\n$INSTANCE\n$NUM=1\n$INSTANCE\n";
        assert_eq!(
            texts(text, "low"),
            [
                "vrrp_instance VI_0",
                "{",
                "priority 120",
                "}",
                "vrrp_instance VI_1",
                "{",
                "priority 120",
                "}"
            ]
        );
    }

    #[test]
    fn sequences_repeat_the_rest_of_their_line() {
        assert_eq!(
            texts(
                "~SEQ(N, 1, 3) 10.0.${N}.1/24\n~LST(V, a, b) name_$V\n",
                "n1"
            ),
            [
                "10.0.1.1/24",
                "10.0.2.1/24",
                "10.0.3.1/24",
                "name_a",
                "name_b"
            ]
        );
    }

    #[test]
    fn includes_read_globs_relative_to_the_including_file_in_place() {
        let files = MemoryFiles::new()
            .with("etc/keepalived.conf", "a\ninclude conf.d/*.conf\nz\n")
            .with("etc/conf.d/2.conf", "two\n")
            .with("etc/conf.d/1.conf", "one\ninclude ../more/x.conf\n")
            .with("etc/more/x.conf", "x\n");
        let (lines, report) = lines_of(files, "etc/keepalived.conf", "n1");
        assert_eq!(
            lines,
            [
                "etc/keepalived.conf:1|a",
                "etc/conf.d/1.conf:1|one",
                "etc/more/x.conf:1|x",
                "etc/conf.d/2.conf:1|two",
                "etc/keepalived.conf:3|z"
            ]
        );
        assert!(report.is_empty());
    }

    #[test]
    fn an_empty_wildcard_include_is_reported_and_a_missing_file_is_an_error() {
        let files = MemoryFiles::new().with("k.conf", "include conf.d/*.conf\n");
        let (lines, report) = lines_of(files, "k.conf", "n1");
        assert!(lines.is_empty());
        assert_eq!(report.items.len(), 1);
        assert!(report.items[0].message.contains("matches no file"));

        let mut files = MemoryFiles::new().with("k.conf", "x\ninclude other.conf\n");
        let err = read(
            &mut files,
            Path::new("k.conf"),
            "n1",
            None,
            &mut Report::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ReadError::IncludeMissing { .. }));
        assert!(
            err.to_string()
                .starts_with("k.conf:2: include \"other.conf\" matches no file"),
            "{err}"
        );
    }

    #[test]
    fn absolute_includes_are_read_under_the_root_when_one_is_given() {
        let mut files = MemoryFiles::new()
            .with(
                "n1/keepalived.conf",
                "include /etc/keepalived/conf.d/*.conf\n",
            )
            .with("n1/root/etc/keepalived/conf.d/a.conf", "a\n");
        let mut report = Report::default();
        let lines = read(
            &mut files,
            Path::new("n1/keepalived.conf"),
            "n1",
            Some(Path::new("n1/root")),
            &mut report,
        )
        .unwrap();
        assert_eq!(
            lines[0].at.to_string(),
            "n1/root/etc/keepalived/conf.d/a.conf:1"
        );
        let mut files = MemoryFiles::new().with("k.conf", "include /nonexistent/x.conf\n");
        let err = read(
            &mut files,
            Path::new("k.conf"),
            "n1",
            Some(Path::new("r")),
            &mut report,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("(looked for r/nonexistent/x.conf)"),
            "{err}"
        );
        assert!(err.to_string().contains("--root"), "{err}");
    }

    #[test]
    fn an_include_loop_is_an_error_naming_the_chain() {
        let mut files = MemoryFiles::new()
            .with("a.conf", "include b.conf\n")
            .with("b.conf", "x\ninclude a.conf\n");
        let err = read(
            &mut files,
            Path::new("a.conf"),
            "n1",
            None,
            &mut Report::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.conf:2: include loop: a.conf is already being read (a.conf -> b.conf -> a.conf)"
        );
    }

    #[test]
    fn binary_data_is_refused_with_a_position_but_comments_may_hold_any_bytes() {
        let mut files = MemoryFiles::new().with("k.conf", b"# caf\xe9\nok\nbad \xff\n".to_vec());
        let err = read(
            &mut files,
            Path::new("k.conf"),
            "n1",
            None,
            &mut Report::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.conf:3: column 5: byte 0xff is not UTF-8 text: is this a binary file?"
        );
        let mut files = MemoryFiles::new().with("k.conf", b"a\0b\n".to_vec());
        let err = read(
            &mut files,
            Path::new("k.conf"),
            "n1",
            None,
            &mut Report::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.conf:1: column 2: NUL byte: is this a binary file?"
        );
    }

    #[test]
    fn lines_longer_than_keepalived_reads_and_endless_definitions_are_errors() {
        let long = format!("x {}\n", "y".repeat(MAX_LINE_BYTES));
        let mut files = MemoryFiles::new().with("k.conf", long);
        let err = read(
            &mut files,
            Path::new("k.conf"),
            "n1",
            None,
            &mut Report::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ReadError::LineTooLong { .. }), "{err}");
        let mut files = MemoryFiles::new().with("k.conf", "$A=$A\nx $A\n");
        let err = read(
            &mut files,
            Path::new("k.conf"),
            "n1",
            None,
            &mut Report::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("k.conf:2: parameter substitution never ends"),
            "{err}"
        );
    }

    #[test]
    fn decomment_keeps_a_final_backslash_and_refuses_an_open_quote() {
        assert_eq!(decomment("  a b  \\").unwrap(), "a b\\");
        assert_eq!(decomment("a \"b # c\" # d").unwrap(), "a \"b # c\"");
        assert!(decomment("a \"b").is_err());
    }
}
