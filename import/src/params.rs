//! keepalived's parameters: `$NAME=value` definitions (multi-line when a line ends with `\`)
//! and their substitution, `$NAME` (followed by a space, tab, `,`, `)` or the end of the line)
//! or `${NAME}` anywhere. Substitution is recursive and happens when a line is used, not when a
//! name is defined; an undefined name stays as written. A multi-line definition is used alone
//! at the end of a line: its first line replaces the name and its other lines follow.
//!
//! Pre-defined names: `${_INSTANCE}` (the config id), `${_HASH}` (`#`), `${_BANG}` (`!`).
//! `${_PWD}`, `${_RANDOM}` and `${_ENV ...}` depend on the machine keepalived runs on, so import
//! leaves them as written and says so.

use crate::error::{MAX_LINE_BYTES, MAX_SUBSTITUTIONS};

/// Pre-defined names whose value only the node knows.
const NODE_ONLY: [&str; 3] = ["_PWD", "_RANDOM", "_ENV"];

#[derive(Clone, Debug, PartialEq, Eq)]
struct Definition {
    name: String,
    /// The value's lines (one for an ordinary definition).
    lines: Vec<String>,
    multiline: bool,
}

/// The definitions in force while one node's files are read.
#[derive(Clone, Debug)]
pub struct Definitions {
    defs: Vec<Definition>,
}

/// A `$NAME=value` line: the name, the text after `=`, and whether it continues on the next
/// lines (it ended with `\`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionLine {
    pub name: String,
    pub first: String,
    pub continues: bool,
}

/// Reads `line` as a definition, if it is one: `$` then a name (letters, digits, `_`, not
/// starting with a digit) then `=` with no space before it.
pub fn definition_line(line: &str) -> Option<DefinitionLine> {
    let rest = line.strip_prefix('$')?;
    let first = rest.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let value = rest[name_len..].strip_prefix('=')?;
    let value = value.trim_start_matches([' ', '\t']);
    let (first, continues) = match value.strip_suffix('\\') {
        Some(v) => (v.trim_end_matches([' ', '\t']).to_owned(), true),
        None => (value.to_owned(), false),
    };
    Some(DefinitionLine {
        name: rest[..name_len].to_owned(),
        first,
        continues,
    })
}

/// What substituting one line gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Substituted {
    /// The line with every defined name replaced.
    pub text: String,
    /// Whether anything was replaced.
    pub changed: bool,
    /// For each multi-line definition used, the lines that follow the first, in the order they
    /// must be read after this line (the last one used first).
    pub following: Vec<Vec<String>>,
    /// Pre-defined names left as written because only the node knows their value.
    pub node_only: Vec<String>,
}

/// Why substitution failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubstitutionError {
    /// The line grew past keepalived's line length.
    TooLong,
    /// The line never stops changing (a definition that uses itself).
    Endless,
}

impl Definitions {
    /// The pre-defined names, `${_INSTANCE}` being `config_id`.
    pub fn new(config_id: &str) -> Self {
        let builtin = |name: &str, value: &str| Definition {
            name: name.to_owned(),
            lines: vec![value.to_owned()],
            multiline: false,
        };
        Self {
            defs: vec![
                builtin("_INSTANCE", config_id),
                builtin("_HASH", "#"),
                builtin("_BANG", "!"),
            ],
        }
    }

    /// Defines (or redefines) `name`.
    pub fn define(&mut self, name: &str, lines: Vec<String>, multiline: bool) {
        let def = Definition {
            name: name.to_owned(),
            lines,
            multiline,
        };
        if let Some(existing) = self.defs.iter_mut().find(|d| d.name == name) {
            *existing = def;
        } else {
            self.defs.push(def);
        }
    }

    /// Replaces the defined names in `line`, rescanning each replacement.
    pub fn substitute(&self, line: &str) -> Result<Substituted, SubstitutionError> {
        let mut out = Substituted {
            text: line.to_owned(),
            ..Substituted::default()
        };
        let mut at = 0;
        let mut count = 0;
        while let Some(offset) = out.text[at..].find('$') {
            let dollar = at + offset;
            let Some(reference) = self.reference(&out.text, dollar) else {
                at = dollar + 1;
                continue;
            };
            count += 1;
            if count > MAX_SUBSTITUTIONS {
                return Err(SubstitutionError::Endless);
            }
            let replacement = match reference {
                Reference::Defined { def, len } => {
                    if def.multiline && def.lines.len() > 1 {
                        out.following.push(def.lines[1..].to_vec());
                    }
                    let first = def.lines.first().cloned().unwrap_or_default();
                    (first, len)
                }
                Reference::NodeOnly { name, len } => {
                    if !out.node_only.contains(&name) {
                        out.node_only.push(name);
                    }
                    at = dollar + len;
                    continue;
                }
            };
            let (text, len) = replacement;
            out.text.replace_range(dollar..dollar + len, &text);
            out.changed = true;
            if out.text.len() > MAX_LINE_BYTES {
                return Err(SubstitutionError::TooLong);
            }
            if text.trim_start_matches([' ', '\t']).starts_with('~') {
                break;
            }
        }
        Ok(out)
    }

    /// The definition referred to at `dollar` in `text`, and the length of the reference.
    fn reference(&self, text: &str, dollar: usize) -> Option<Reference<'_>> {
        let after = &text[dollar + 1..];
        let (braced, name_start) = match after.strip_prefix('{') {
            Some(inner) => (true, inner),
            None => (false, after),
        };
        let first = name_start.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let name_len = name_start
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(name_start.len());
        let name = &name_start[..name_len];
        let (len, at_end) = if braced {
            // `${NAME}` or `${NAME params}`; parameters are for pre-defined names only.
            let close = name_start.find('}')?;
            let params = &name_start[name_len..close];
            if !params.is_empty() {
                let well_formed = params.starts_with([' ', '\t'])
                    && !params.ends_with([' ', '\t'])
                    && params
                        .chars()
                        .all(|c| c == ' ' || c == '\t' || c.is_ascii_alphanumeric() || c == '_');
                if !well_formed || !NODE_ONLY.contains(&name) {
                    return None;
                }
            }
            (close + 3, dollar + close + 3 == text.len())
        } else {
            let next = name_start[name_len..].chars().next();
            if !matches!(next, None | Some(' ' | '\t' | ',' | ')')) {
                return None;
            }
            (name_len + 1, next.is_none())
        };
        if let Some(def) = self.defs.iter().find(|d| d.name == name) {
            if def.multiline && !at_end {
                return None;
            }
            return Some(Reference::Defined { def, len });
        }
        NODE_ONLY.contains(&name).then(|| Reference::NodeOnly {
            name: name.to_owned(),
            len,
        })
    }
}

enum Reference<'a> {
    Defined { def: &'a Definition, len: usize },
    NodeOnly { name: String, len: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(pairs: &[(&str, &str)]) -> Definitions {
        let mut d = Definitions::new("lb1");
        for (name, value) in pairs {
            d.define(name, vec![(*value).to_owned()], false);
        }
        d
    }

    #[test]
    fn definition_lines_need_a_name_and_an_equals_sign_without_space() {
        assert_eq!(
            definition_line("$PRIO=150"),
            Some(DefinitionLine {
                name: "PRIO".into(),
                first: "150".into(),
                continues: false
            })
        );
        assert_eq!(definition_line("$PRIO =150"), None);
        assert_eq!(definition_line("$1X=2"), None);
        let multi = definition_line("$INSTANCE= \\").unwrap();
        assert_eq!((multi.first.as_str(), multi.continues), ("", true));
        assert_eq!(definition_line("$EMPTY=").unwrap().first, "");
    }

    #[test]
    fn substitution_is_recursive_and_happens_at_use() {
        let mut d = defs(&[("ADDRESS_BASE", "10.2.${ADDRESS_BASE_SUB}")]);
        d.define("ADDRESS_BASE_SUB", vec!["0".into()], false);
        assert_eq!(
            d.substitute("${ADDRESS_BASE}.100/32").unwrap().text,
            "10.2.0.100/32"
        );
        d.define("ADDRESS_BASE_SUB", vec!["10".into()], false);
        assert_eq!(
            d.substitute("${ADDRESS_BASE}.100/32").unwrap().text,
            "10.2.10.100/32"
        );
    }

    #[test]
    fn a_bare_name_must_be_followed_by_a_separator_and_undefined_names_stay() {
        let d = defs(&[("P", "240")]);
        assert_eq!(d.substitute("priority $P").unwrap().text, "priority 240");
        assert_eq!(d.substitute("x $Px").unwrap().text, "x $Px");
        assert_eq!(d.substitute("f($P,$P)").unwrap().text, "f(240,240)");
        let kept = d.substitute("script \"$HOME/x ${UNDEF}\"").unwrap();
        assert_eq!(kept.text, "script \"$HOME/x ${UNDEF}\"");
        assert!(!kept.changed);
    }

    #[test]
    fn pre_defined_names_give_the_config_id_and_comment_characters() {
        let d = defs(&[]);
        assert_eq!(
            d.substitute("router_id ${_INSTANCE}").unwrap().text,
            "router_id lb1"
        );
        assert_eq!(d.substitute("a${_HASH}b").unwrap().text, "a#b");
        let pwd = d.substitute("script ${_PWD}/check ${_RANDOM 1 9}").unwrap();
        assert_eq!(pwd.text, "script ${_PWD}/check ${_RANDOM 1 9}");
        assert_eq!(pwd.node_only, ["_PWD", "_RANDOM"]);
    }

    #[test]
    fn a_multi_line_definition_expands_only_at_the_end_of_a_line() {
        let mut d = defs(&[]);
        d.define(
            "BLOCK",
            vec!["vrrp_instance X {".into(), "priority 1".into(), "}".into()],
            true,
        );
        let s = d.substitute("$BLOCK").unwrap();
        assert_eq!(s.text, "vrrp_instance X {");
        assert_eq!(s.following, [vec!["priority 1".to_owned(), "}".to_owned()]]);
        assert_eq!(d.substitute("$BLOCK x").unwrap().text, "$BLOCK x");
    }

    #[test]
    fn a_definition_that_uses_itself_is_an_error_not_a_hang() {
        let d = defs(&[("A", "$A")]);
        assert_eq!(d.substitute("$A"), Err(SubstitutionError::Endless));
        let d = defs(&[("B", "$B $B")]);
        assert_eq!(d.substitute("$B"), Err(SubstitutionError::TooLong));
    }
}
