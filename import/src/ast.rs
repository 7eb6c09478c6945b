//! The located syntax tree of a keepalived configuration: statements (a keyword and its words,
//! with the file and line they were read at), some owning a `{ ... }` block of statements.
//! Built from [`crate::lines`] output; knows braces, not keywords.

use crate::error::{MAX_BLOCK_DEPTH, ReadError};
use crate::lines::Line;
use crate::position::Position;
use crate::words::split_words;

/// A keyword line and its block, if it opens one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Where the keyword line was read.
    pub at: Position,
    /// The keyword and its values, quotes removed (never empty).
    pub words: Vec<String>,
    /// The line as read (after comments, conditions and parameters), for keywords whose value
    /// is a command and is split again with shell-like quoting.
    pub raw: String,
    /// The statements between the `{` that follows the keyword and its `}`.
    pub block: Option<Block>,
}

/// A `{ ... }` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// Where the `{` was.
    pub open: Position,
    /// The statements inside.
    pub statements: Vec<Statement>,
}

impl Statement {
    /// The keyword (first word).
    pub fn keyword(&self) -> &str {
        &self.words[0]
    }

    /// Word `i` (0 is the keyword).
    pub fn word(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// The statements of the block (none without one).
    pub fn children(&self) -> &[Statement] {
        self.block.as_ref().map_or(&[], |b| &b.statements)
    }

    /// The keyword and its values as written, for messages.
    pub fn text(&self) -> String {
        self.words.join(" ")
    }
}

/// Builds the tree of `lines`.
pub fn parse(lines: Vec<Line>) -> Result<Vec<Statement>, ReadError> {
    struct Open {
        owner: Statement,
        brace: Position,
        statements: Vec<Statement>,
    }
    let mut top: Vec<Statement> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut after_statement = false;
    let mut last = None;
    for line in lines {
        last = Some(line.at.clone());
        match line.text.as_str() {
            "{" => {
                let current = stack.last_mut().map_or(&mut top, |o| &mut o.statements);
                let owner = match current.pop() {
                    Some(owner) if after_statement => owner,
                    _ => return Err(ReadError::OpenWithoutKeyword { at: line.at }),
                };
                if stack.len() >= MAX_BLOCK_DEPTH {
                    return Err(ReadError::TooDeep { at: line.at });
                }
                stack.push(Open {
                    owner,
                    brace: line.at,
                    statements: Vec::new(),
                });
                after_statement = false;
            }
            "}" => {
                let Some(done) = stack.pop() else {
                    return Err(ReadError::UnexpectedClose { at: line.at });
                };
                let mut owner = done.owner;
                owner.block = Some(Block {
                    open: done.brace,
                    statements: done.statements,
                });
                stack
                    .last_mut()
                    .map_or(&mut top, |o| &mut o.statements)
                    .push(owner);
                after_statement = false;
            }
            text => {
                let words = split_words(text).map_err(|q| ReadError::UnterminatedQuote {
                    at: line.at.clone(),
                    text: q.0,
                })?;
                if words.is_empty() {
                    // `""` alone: nothing to read.
                    after_statement = false;
                    continue;
                }
                stack
                    .last_mut()
                    .map_or(&mut top, |o| &mut o.statements)
                    .push(Statement {
                        at: line.at,
                        words,
                        raw: text.to_owned(),
                        block: None,
                    });
                after_statement = true;
            }
        }
    }
    if let Some(open) = stack.pop() {
        let mut keyword = open.owner.text();
        if let Some(outer) = stack.first() {
            keyword = format!(
                "{keyword} (in {} opened at {})",
                outer.owner.text(),
                outer.brace
            );
        }
        return Err(ReadError::Unclosed {
            at: open.brace,
            keyword,
            end: last.unwrap_or(open.owner.at),
        });
    }
    Ok(top)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::report::Report;
    use crate::source::MemoryFiles;

    fn tree(text: &str) -> Result<Vec<Statement>, ReadError> {
        let mut files = MemoryFiles::new().with("k.conf", text);
        let lines = crate::lines::read(
            &mut files,
            Path::new("k.conf"),
            "n1",
            None,
            &mut Report::default(),
        )?;
        parse(lines)
    }

    #[test]
    fn blocks_nest_and_keep_positions() {
        let t = tree("global_defs {\n router_id a\n}\nvrrp_instance VI_1\n{\n  virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n")
            .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].children()[0].words, ["router_id", "a"]);
        let vi = &t[1];
        assert_eq!(
            (vi.keyword(), vi.word(1), vi.at.line),
            ("vrrp_instance", Some("VI_1"), 4)
        );
        assert_eq!(vi.block.as_ref().unwrap().open.line, 5);
        let vips = &vi.children()[0];
        assert_eq!(vips.children()[0].words, ["10.0.0.1/24"]);
        assert_eq!(vips.children()[0].at.to_string(), "k.conf:7");
    }

    #[test]
    fn unbalanced_braces_are_errors_with_positions() {
        assert_eq!(
            tree("a {\n}\n}\n").unwrap_err().to_string(),
            "k.conf:3: '}' closes no block (unbalanced braces)"
        );
        assert_eq!(
            tree("vrrp_instance VI_1 {\n  priority 100\n")
                .unwrap_err()
                .to_string(),
            "k.conf:1: the '{' of vrrp_instance VI_1 is never closed (the configuration ends at \
             k.conf:2): the file is truncated or a '}' is missing"
        );
        assert_eq!(
            tree("a {\n}\n{\n}\n").unwrap_err().to_string(),
            "k.conf:3: '{' follows no keyword; write it on the line of the keyword it opens"
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_it_can_exhaust_the_stack() {
        let text = "a {\n".repeat(MAX_BLOCK_DEPTH + 1);
        assert!(matches!(
            tree(&text).unwrap_err(),
            ReadError::TooDeep { .. }
        ));
    }
}
