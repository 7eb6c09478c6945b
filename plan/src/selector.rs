//! Kubernetes label selectors (`matchLabels` + `matchExpressions`) compiled once and matched
//! against node labels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One compiled requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    /// The label is present with this value (`matchLabels`, or `In` with one value).
    Equals(String, String),
    /// The label is present with one of these values.
    In(String, Vec<String>),
    /// The label is absent, or present with none of these values.
    NotIn(String, Vec<String>),
    /// The label is present.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

/// A label selector ready to match. An empty selector matches every set of labels, as in
/// Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

/// A selector that Kubernetes would reject.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The operator is not In, NotIn, Exists or DoesNotExist.
    #[error(
        "matchExpressions[{index}] has operator {operator:?}; use In, NotIn, Exists or \
         DoesNotExist"
    )]
    UnknownOperator { index: usize, operator: String },
    /// In/NotIn without values, or Exists/DoesNotExist with values.
    #[error("matchExpressions[{index}] ({operator} on {key:?}) {problem}")]
    BadValues {
        index: usize,
        operator: String,
        key: String,
        problem: &'static str,
    },
}

impl Selector {
    /// Compiles a Kubernetes `LabelSelector`.
    pub fn compile(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            reqs.push(Requirement::Equals(k.clone(), v.clone()));
        }
        for (index, e) in selector.match_expressions.iter().flatten().enumerate() {
            let values = e.values.clone().unwrap_or_default();
            let bad = |problem| SelectorError::BadValues {
                index,
                operator: e.operator.clone(),
                key: e.key.clone(),
                problem,
            };
            let req = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(bad("needs at least one value"));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(bad("must not have values"));
                }
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err(SelectorError::UnknownOperator {
                        index,
                        operator: other.to_owned(),
                    });
                }
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|v| (*v).to_owned()).collect())
            },
        }
    }

    fn selector(
        match_labels: &[(&str, &str)],
        exprs: Vec<LabelSelectorRequirement>,
    ) -> Result<Selector, SelectorError> {
        Selector::compile(&LabelSelector {
            match_labels: Some(labels(match_labels)),
            match_expressions: Some(exprs),
        })
    }

    #[test]
    fn empty_selector_matches_any_labels() {
        let s = Selector::compile(&LabelSelector::default()).unwrap();
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector(&[("zone", "a"), ("vip", "true")], vec![]).unwrap();
        assert!(s.matches(&labels(&[("zone", "a"), ("vip", "true"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("zone", "a")])));
        assert!(!s.matches(&labels(&[("zone", "b"), ("vip", "true")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let s = selector(
            &[],
            vec![
                expr("zone", "In", &["a", "b"]),
                expr("tier", "NotIn", &["db"]),
                expr("vip", "Exists", &[]),
                expr("drain", "DoesNotExist", &[]),
            ],
        )
        .unwrap();
        assert!(s.matches(&labels(&[("zone", "b"), ("vip", "")])));
        assert!(s.matches(&labels(&[("zone", "a"), ("vip", "1"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("zone", "c"), ("vip", "")])));
        assert!(!s.matches(&labels(&[("zone", "a"), ("vip", ""), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("zone", "a")])));
        assert!(!s.matches(&labels(&[("zone", "a"), ("vip", ""), ("drain", "")])));
    }

    #[test]
    fn unknown_operator_is_rejected_with_its_position() {
        let err =
            selector(&[], vec![expr("a", "Exists", &[]), expr("b", "Gt", &["1"])]).unwrap_err();
        assert_eq!(
            err,
            SelectorError::UnknownOperator {
                index: 1,
                operator: "Gt".to_owned()
            }
        );
    }

    #[test]
    fn in_without_values_and_exists_with_values_are_rejected() {
        assert!(matches!(
            selector(&[], vec![expr("a", "In", &[])]),
            Err(SelectorError::BadValues { .. })
        ));
        assert!(matches!(
            selector(&[], vec![expr("a", "Exists", &["x"])]),
            Err(SelectorError::BadValues { .. })
        ));
    }
}
