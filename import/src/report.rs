//! The import report: everything in the keepalived files that the manifests do not carry as
//! written, each with the file and line it comes from and what to do instead. Printed on stderr;
//! any item makes the exit status 1.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::position::Position;

/// How much of the configuration an item costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Imported, but something written is dropped or means something slightly different.
    Warning,
    /// Something is not imported at all (an instance, a server, an address), or the nodes'
    /// files disagree.
    Error,
}

impl Severity {
    /// The word printed before the message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// What kind of difference an item describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ItemKind {
    /// A keepalived keyword kube-vrrp has no equivalent for.
    Unsupported,
    /// A keyword that is not keepalived's (at that place), usually a typo.
    Unknown,
    /// A value keepalived itself refuses or corrects.
    Invalid,
    /// The nodes' files say different things where kube-vrrp needs one answer.
    Conflict,
    /// Imported with a change in meaning, said in the message.
    Changed,
    /// Something kube-vrrp will not check for you (a script path, a peer outside the files).
    Review,
}

impl ItemKind {
    /// A stable name (JSON, tests).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsupported => "unsupported",
            Self::Unknown => "unknown",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::Changed => "changed",
            Self::Review => "review",
        }
    }
}

/// One thing the user has to look at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Warning or error.
    pub severity: Severity,
    /// What kind of difference.
    pub kind: ItemKind,
    /// Where (several places for a conflict between files), in file and line order.
    #[serde(serialize_with = "positions")]
    pub at: Vec<Position>,
    /// What is the matter.
    pub message: String,
    /// What to do instead, when there is something to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

fn positions<S: serde::Serializer>(at: &[Position], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(at.iter().map(ToString::to_string))
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let places: Vec<String> = self.at.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{}: {}: {}",
            places.join(", "),
            self.severity.as_str(),
            self.message
        )?;
        if let Some(advice) = &self.advice {
            write!(f, "\n    instead: {advice}")?;
        }
        Ok(())
    }
}

/// The items of one import, in the order they were found; [`Report::sorted`] orders them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The items.
    pub items: Vec<Item>,
}

impl Report {
    /// Adds an item.
    pub fn push(
        &mut self,
        severity: Severity,
        kind: ItemKind,
        at: Vec<Position>,
        message: impl Into<String>,
        advice: Option<&str>,
    ) {
        let mut at = at;
        at.sort();
        at.dedup();
        let item = Item {
            severity,
            kind,
            at,
            message: message.into(),
            advice: advice.map(str::to_owned),
        };
        if !self.items.contains(&item) {
            self.items.push(item);
        }
    }

    /// Adds a warning at one place.
    pub fn warn(
        &mut self,
        kind: ItemKind,
        at: &Position,
        message: impl Into<String>,
        advice: Option<&str>,
    ) {
        self.push(Severity::Warning, kind, vec![at.clone()], message, advice);
    }

    /// Adds an error at one place.
    pub fn error(
        &mut self,
        kind: ItemKind,
        at: &Position,
        message: impl Into<String>,
        advice: Option<&str>,
    ) {
        self.push(Severity::Error, kind, vec![at.clone()], message, advice);
    }

    /// True when nothing needs looking at.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|i| i.severity == severity).count()
    }

    /// The items ordered by input file (in the order the files were given), then line; items
    /// that say the same thing in several files (the nodes' files are often copies) become
    /// one item naming every place.
    #[must_use]
    pub fn sorted(mut self, file_order: &[String]) -> Self {
        let mut merged: Vec<Item> = Vec::with_capacity(self.items.len());
        for item in self.items {
            match merged.iter_mut().find(|m| {
                (m.severity, m.kind, &m.message, &m.advice)
                    == (item.severity, item.kind, &item.message, &item.advice)
            }) {
                Some(same) => same.at.extend(item.at),
                None => merged.push(item),
            }
        }
        self.items = merged;
        let rank = |item: &Item| item.at.first().map(|p| rank_position(file_order, p));
        for item in &mut self.items {
            item.at.sort_by_key(|p| rank_position(file_order, p));
            item.at.dedup();
        }
        self.items
            .sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.message.cmp(&b.message)));
        self
    }

    /// The report as text, one item per paragraph.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            let _ = writeln!(out, "{item}");
        }
        out
    }
}

/// Orders positions by the rank of their file among the inputs, then name, then line.
fn rank_position(file_order: &[String], p: &Position) -> (usize, std::sync::Arc<str>, u32) {
    let file = file_order
        .iter()
        .position(|f| **f == *p.file)
        .unwrap_or(file_order.len());
    (file, p.file.clone(), p.line)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn at(file: &str, line: u32) -> Position {
        Position::new(&Arc::from(file), line)
    }

    #[test]
    fn an_item_prints_its_places_severity_message_and_advice() {
        let mut report = Report::default();
        report.push(
            Severity::Error,
            ItemKind::Conflict,
            vec![at("n2.conf", 9), at("n1.conf", 9)],
            "advert_int differs",
            Some("make them equal"),
        );
        assert_eq!(
            report.render(),
            "n1.conf:9, n2.conf:9: error: advert_int differs\n    instead: make them equal\n"
        );
    }

    #[test]
    fn items_sort_by_the_order_of_the_files_given_then_line_and_repeat_once() {
        let mut report = Report::default();
        report.warn(ItemKind::Unknown, &at("b.conf", 1), "x", None);
        report.warn(ItemKind::Unknown, &at("a.conf", 7), "y", None);
        report.warn(ItemKind::Unknown, &at("b.conf", 3), "z", None);
        report.warn(ItemKind::Unknown, &at("b.conf", 3), "z", None);
        let sorted = report.sorted(&["b.conf".into(), "a.conf".into()]);
        let messages: Vec<&str> = sorted.items.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(messages, ["x", "z", "y"]);
        assert_eq!(sorted.count(Severity::Warning), 3);
    }

    #[test]
    fn the_same_item_in_several_files_is_one_item_naming_every_place() {
        let mut report = Report::default();
        report.warn(ItemKind::Unsupported, &at("n2.conf", 4), "smtp", None);
        report.warn(ItemKind::Unsupported, &at("n1.conf", 4), "smtp", None);
        report.warn(ItemKind::Unsupported, &at("n1.conf", 9), "other", None);
        let sorted = report.sorted(&["n1.conf".into(), "n2.conf".into()]);
        assert_eq!(sorted.items.len(), 2);
        assert_eq!(
            sorted.render(),
            "n1.conf:4, n2.conf:4: warning: smtp\nn1.conf:9: warning: other\n"
        );
    }
}
