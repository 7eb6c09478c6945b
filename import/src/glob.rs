//! `include` patterns as keepalived hands them to glob(3) with `GLOB_BRACE`: csh-style brace
//! alternatives (`{a,b}`, nested), then `*`, `?` and `[...]` per path component, a leading `.`
//! matched only by a literal `.`, each alternative's matches in sorted order. Matching is pure;
//! [`resolve`] walks directories through [`Sources`].

use std::path::{Path, PathBuf};

use crate::source::{Sources, normalize};

/// Brace alternatives one pattern may expand to; more is an error in the configuration.
pub const MAX_ALTERNATIVES: usize = 1024;

/// True when `pattern` holds a wildcard (`*`, `?` or `[`), so that matching nothing is not
/// an error for keepalived's plain `include`.
pub fn has_wildcard(pattern: &str) -> bool {
    let mut escaped = false;
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// The brace alternatives of `pattern` in order: `a{b,c{d,e}}f` gives `abf`, `acdf`, `acef`.
/// `None` when there are more than [`MAX_ALTERNATIVES`]. Unbalanced braces are kept literally.
pub fn expand_braces(pattern: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    expand_into(&chars, String::new(), &mut out)?;
    Some(out)
}

fn expand_into(rest: &[char], prefix: String, out: &mut Vec<String>) -> Option<()> {
    let Some((open, close, commas)) = first_group(rest) else {
        let mut done = prefix;
        done.extend(rest);
        if out.len() >= MAX_ALTERNATIVES {
            return None;
        }
        out.push(done);
        return Some(());
    };
    let mut head = prefix;
    head.extend(&rest[..open]);
    let tail = &rest[close + 1..];
    let mut start = open + 1;
    for end in commas.into_iter().chain([close]) {
        let mut alternative: Vec<char> = rest[start..end].to_vec();
        alternative.extend_from_slice(tail);
        expand_into(&alternative, head.clone(), out)?;
        start = end + 1;
    }
    Some(())
}

/// The first balanced `{...}` group: its open and close index and the top-level commas.
fn first_group(chars: &[char]) -> Option<(usize, usize, Vec<usize>)> {
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => {
                let mut depth = 0usize;
                let mut commas = Vec::new();
                let mut j = i;
                while j < chars.len() {
                    match chars[j] {
                        '\\' => j += 1,
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some((i, j, commas));
                            }
                        }
                        ',' if depth == 1 => commas.push(j),
                        _ => {}
                    }
                    j += 1;
                }
                return None;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether directory entry `name` matches one path component `pattern` (fnmatch without
/// `FNM_PERIOD` relaxations: a leading `.` must be written).
pub fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    // Iterative with one backtrack point per `*`: linear in practice, never exponential.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class(&p[pi..], n[ni]),
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(2),
            Some(&c) => (c == n[ni]).then_some(1),
            None => None,
        };
        if let Some(width) = step {
            pi += width;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p` (`[abc]`, `[a-z]`, `[!x]`, `[^x]`);
/// returns the class's width when it matches. An unclosed `[` matches itself.
fn class(p: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negated = matches!(p.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        let lo = p[i];
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&hi| hi != ']') {
            let hi = p[i + 2];
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
    if i >= p.len() {
        return (c == '[').then_some(1);
    }
    (found != negated).then_some(i + 1)
}

/// The existing paths that `pattern` names, relative to `dir` unless absolute: each brace
/// alternative's matches sorted, alternatives in order. `None` when the braces expand to more
/// than [`MAX_ALTERNATIVES`] patterns.
pub fn resolve(sources: &mut dyn Sources, dir: &Path, pattern: &str) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    for alternative in expand_braces(pattern)? {
        let start = if alternative.starts_with('/') {
            PathBuf::from("/")
        } else {
            dir.to_owned()
        };
        let mut paths = vec![start];
        for component in alternative.split('/').filter(|c| !c.is_empty()) {
            if has_wildcard(component) {
                let mut next = Vec::new();
                for path in &paths {
                    let mut names = sources.list(path).unwrap_or_default();
                    names.sort();
                    next.extend(
                        names
                            .into_iter()
                            .filter(|name| matches(component, name))
                            .map(|name| path.join(name)),
                    );
                }
                paths = next;
            } else {
                let literal = unescape(component);
                for path in &mut paths {
                    path.push(&literal);
                }
            }
        }
        let mut found: Vec<PathBuf> = paths
            .into_iter()
            .filter(|p| sources.kind(p).is_some())
            .map(|p| normalize(&p))
            .collect();
        found.sort();
        out.extend(found);
    }
    Some(out)
}

fn unescape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MemoryFiles;

    #[test]
    fn braces_expand_in_order_and_nest() {
        assert_eq!(
            expand_braces("a{b,c{d,e}}f").unwrap(),
            ["abf", "acdf", "acef"]
        );
        assert_eq!(
            expand_braces("{foo/{,cat,dog},bar}").unwrap(),
            ["foo/", "foo/cat", "foo/dog", "bar"]
        );
        assert_eq!(expand_braces("plain").unwrap(), ["plain"]);
        assert_eq!(expand_braces("open{a,b").unwrap(), ["open{a,b"]);
    }

    #[test]
    fn too_many_brace_alternatives_are_refused() {
        let pattern = "{a,b}".repeat(11);
        assert!(expand_braces(&pattern).is_none());
        assert_eq!(expand_braces(&"{a,b}".repeat(10)).unwrap().len(), 1024);
    }

    #[test]
    fn components_match_like_fnmatch() {
        assert!(matches("*.conf", "vips.conf"));
        assert!(!matches("*.conf", "vips.conf.bak"));
        assert!(!matches("*.conf", ".hidden.conf"));
        assert!(matches(".*.conf", ".hidden.conf"));
        assert!(matches("vi?s.conf", "vips.conf"));
        assert!(matches("[a-c]*", "b1"));
        assert!(!matches("[!a-c]*", "b1"));
        assert!(matches("[]x]", "]"));
        assert!(matches("a\\*", "a*"));
        assert!(!matches("a\\*", "ab"));
        assert!(matches("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!matches("*a*b*c*", "xxaxxcxxbxx"));
    }

    #[test]
    fn a_long_star_pattern_does_not_blow_up() {
        let name = "a".repeat(2000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!matches(&pattern, &name));
    }

    #[test]
    fn resolve_walks_directories_and_sorts_each_alternative() {
        let mut files = MemoryFiles::new()
            .with("etc/conf.d/b.conf", "")
            .with("etc/conf.d/a.conf", "")
            .with("etc/conf.d/.hidden.conf", "")
            .with("etc/conf.d/notes.txt", "")
            .with("etc/extra.conf", "");
        let found = resolve(&mut files, Path::new("etc"), "{conf.d/*.conf,extra.conf}").unwrap();
        assert_eq!(
            found,
            [
                PathBuf::from("etc/conf.d/a.conf"),
                PathBuf::from("etc/conf.d/b.conf"),
                PathBuf::from("etc/extra.conf")
            ]
        );
        assert!(
            resolve(&mut files, Path::new("etc"), "missing.conf")
                .unwrap()
                .is_empty()
        );
        assert!(has_wildcard("conf.d/*.conf"));
        assert!(!has_wildcard("extra.conf"));
        assert!(!has_wildcard("a\\*"));
    }
}
