//! Reading the Prometheus text exposition an agent serves on `/metrics`: one sample by metric
//! name and labels.

/// One sample line: `name{k="v",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `k="v",k2="v2"` into pairs; `None` on malformed input. Escapes (`\"`, `\\`, `\n`)
/// are decoded.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                other => value.push(other),
            }
        };
        out.push((key.trim().to_owned(), value));
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(out)
}

/// Every sample in `text`; comments and lines that do not parse are skipped.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (head, value) = match line.rfind('}') {
                Some(close) => (&line[..=close], line[close + 1..].trim()),
                None => line.split_once(' ')?,
            };
            let value: f64 = value.split_whitespace().next()?.parse().ok()?;
            let (name, labels) = match head.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.strip_suffix('}')?)?),
                None => (head, Vec::new()),
            };
            Some(Sample {
                name: name.trim().to_owned(),
                labels,
                value,
            })
        })
        .collect()
}

/// The value of the first sample named `name` carrying every label in `labels`.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP kube_vrrp_instance_state VRRP instance state
# TYPE kube_vrrp_instance_state gauge
kube_vrrp_instance_state{vrrp_instance="web",vrid="51",interface="eth0",state="MASTER"} 1
kube_vrrp_instance_state{vrrp_instance="web",vrid="51",interface="eth0",state="BACKUP"} 0
kube_vrrp_adverts_sent_total{vrrp_instance="web"} 42
kube_vrrp_odd{path="a\"b,c"} 2.5
kube_vrrp_up 1
# EOF
"#;

    #[test]
    fn a_sample_is_found_by_name_and_a_subset_of_its_labels() {
        let state = "kube_vrrp_instance_state";
        assert_eq!(value(TEXT, state, &[("state", "MASTER")]), Some(1.0));
        assert_eq!(
            value(
                TEXT,
                state,
                &[("vrrp_instance", "web"), ("state", "BACKUP")]
            ),
            Some(0.0)
        );
        assert_eq!(value(TEXT, "kube_vrrp_adverts_sent_total", &[]), Some(42.0));
        assert_eq!(value(TEXT, "kube_vrrp_up", &[]), Some(1.0));
        assert_eq!(value(TEXT, state, &[("state", "FAULT")]), None);
        assert_eq!(value(TEXT, "kube_vrrp_missing", &[]), None);
    }

    #[test]
    fn quoted_label_values_may_hold_commas_and_escaped_quotes() {
        assert_eq!(
            value(TEXT, "kube_vrrp_odd", &[("path", "a\"b,c")]),
            Some(2.5)
        );
        assert_eq!(samples(TEXT).len(), 5);
    }
}
