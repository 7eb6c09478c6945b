//! Kubernetes object names from keepalived names: `VI_1` becomes `vi-1` (lowercase letters,
//! digits and `-`, at most 63 characters, starting and ending with a letter or digit); two
//! names that become one get `-2`, `-3`, ... in the order they are given.

use std::collections::BTreeSet;

/// The longest name produced (a DNS label, so it also fits where labels are required).
pub const MAX_NAME: usize = 63;

/// `name` as a DNS label.
pub fn object_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let mut out = out.trim_matches('-').to_owned();
    out.truncate(MAX_NAME);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "imported".to_owned()
    } else {
        out
    }
}

/// Hands out distinct names.
#[derive(Clone, Debug, Default)]
pub struct Names {
    taken: BTreeSet<String>,
}

impl Names {
    /// `base` if free, else `base-2`, `base-3`, ... (shortened to fit).
    pub fn claim(&mut self, base: &str) -> String {
        let mut candidate = base.to_owned();
        let mut n = 2;
        while self.taken.contains(&candidate) {
            let suffix = format!("-{n}");
            let mut head = base.to_owned();
            head.truncate(MAX_NAME - suffix.len());
            candidate = format!("{}{suffix}", head.trim_end_matches('-'));
            n += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalived_names_become_dns_labels() {
        assert_eq!(object_name("VI_1"), "vi-1");
        assert_eq!(object_name("__Web  Front__"), "web-front");
        assert_eq!(object_name("***"), "imported");
        assert_eq!(object_name(&"a".repeat(100)).len(), MAX_NAME);
    }

    #[test]
    fn names_that_collide_get_a_number() {
        let mut names = Names::default();
        assert_eq!(names.claim("vi-1"), "vi-1");
        assert_eq!(names.claim("vi-1"), "vi-1-2");
        assert_eq!(names.claim("vi-1"), "vi-1-3");
        let long = "b".repeat(63);
        assert_eq!(names.claim(&long), long);
        assert_eq!(names.claim(&long).len(), 63);
    }
}
