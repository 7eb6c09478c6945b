//! What a user reads, parsed: `kubectl get` tables (cells cut at the header's column
//! offsets, so an empty cell stays empty) and the Events section of `kubectl describe`.

use std::collections::BTreeMap;

/// A `kubectl get` table: one map per row, keyed by the upper-case header.
pub fn table(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let columns = column_starts(header);
    lines
        .map(|line| {
            columns
                .iter()
                .enumerate()
                .map(|(i, (start, name))| {
                    let end = columns.get(i + 1).map_or(line.len(), |(next, _)| *next);
                    let cell = line.get(*start..end.min(line.len())).unwrap_or("").trim();
                    (name.clone(), cell.to_owned())
                })
                .collect()
        })
        .collect()
}

/// Each header word with its byte offset.
fn column_starts(header: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_word = false;
    for (i, c) in header.char_indices() {
        if c == ' ' {
            in_word = false;
        } else if !in_word {
            in_word = true;
            let word: String = header[i..].chars().take_while(|c| *c != ' ').collect();
            out.push((i, word));
        }
    }
    out
}

/// One row of a `kubectl describe` Events section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedEvent {
    /// "Normal" or "Warning".
    pub kind: String,
    pub reason: String,
    pub from: String,
    pub message: String,
}

/// The Events section of `kubectl describe` output (empty for `Events: <none>`).
pub fn described_events(text: &str) -> Vec<DescribedEvent> {
    let Some(section) = text.split("\nEvents:").nth(1) else {
        return Vec::new();
    };
    let body: Vec<&str> = section
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("----"))
        .collect();
    table(&body.join("\n"))
        .into_iter()
        .map(|row| {
            let get = |k: &str| row.get(k).cloned().unwrap_or_default();
            DescribedEvent {
                kind: get("Type"),
                reason: get("Reason"),
                from: get("From"),
                message: get("Message"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_follow_the_header_and_empty_cells_stay_empty() {
        let text = "NAME   ADDRESS            MASTER   STATE      NODES   AGE\n\
                    web    192.168.77.50/24   n2       Ready      3/3     6s\n\
                    idle   192.168.77.51/24            NoMaster   0/3     1s\n";
        let rows = table(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["ADDRESS"], "192.168.77.50/24");
        assert_eq!(rows[0]["MASTER"], "n2");
        assert_eq!(rows[1]["MASTER"], "");
        assert_eq!(rows[1]["STATE"], "NoMaster");
        assert_eq!(rows[1]["AGE"], "1s");
    }

    #[test]
    fn described_events_are_read_from_the_events_section() {
        let text = "Name:  web\nStatus:\n  Master:  n1\nEvents:\n  Type     Reason         Age   From                Message\n  ----     ------         ----  ----                -------\n  Normal   MasterChanged  34s   kube-vrrp-operator  n1 became MASTER of 192.168.77.50/24 (VRID 51)\n  Warning  SplitBrain     2s    kube-vrrp-operator  n1 and n2 are both MASTER\n";
        let events = described_events(text);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, "Normal");
        assert_eq!(events[0].reason, "MasterChanged");
        assert_eq!(
            events[0].message,
            "n1 became MASTER of 192.168.77.50/24 (VRID 51)"
        );
        assert_eq!(events[1].kind, "Warning");
        assert!(described_events("Name: web\nEvents:  <none>\n").is_empty());
    }
}
