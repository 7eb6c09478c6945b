//! Where a piece of keepalived configuration came from: a file, named as the user gave it or as
//! an `include` resolved it, and a 1-based line. Every report item and read error carries one.

use std::fmt;
use std::sync::Arc;

/// A line of a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The file as displayed: the path given on the command line, or an include's path
    /// joined to the including file's directory.
    pub file: Arc<str>,
    /// 1-based line number.
    pub line: u32,
}

impl Position {
    /// Line `line` of `file`.
    pub fn new(file: &Arc<str>, line: u32) -> Self {
        Self {
            file: Arc::clone(file),
            line,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A value and the line that set it (for a default: the line of the block that took it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub at: Position,
}

impl<T> Located<T> {
    /// `value` written at `at`.
    pub fn new(value: T, at: &Position) -> Self {
        Self {
            value,
            at: at.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_displays_as_file_colon_line() {
        let file: Arc<str> = Arc::from("conf.d/vips.conf");
        assert_eq!(Position::new(&file, 12).to_string(), "conf.d/vips.conf:12");
    }
}
