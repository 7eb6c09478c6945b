//! Client-side validation: `Violation`s and the checks shared by every spec's `validate()`.
//!
//! These mirror the schema's ranges and CEL rules (see `cel.rs`) so that standalone mode,
//! which has no API server, rejects exactly what a cluster would.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::duration::DurationString;
use crate::version::VrrpVersion;

/// Most addresses one VirtualIP may carry (schema `maxItems`).
pub const MAX_ADDRESSES: usize = 64;
/// Most entries in `priorities` (schema `maxItems`).
pub const MAX_PRIORITIES: usize = 64;
/// Most static real servers in one VirtualServer (schema `maxItems`).
pub const MAX_REAL_SERVERS: usize = 256;
/// Most trackers of one kind (schema `maxItems`).
pub const MAX_TRACKERS: usize = 32;
/// Longest address or CIDR string (schema `maxLength`).
pub const MAX_ADDRESS_LENGTH: usize = 64;
/// Most requirements (`matchExpressions`) in one label selector (schema `maxItems`, which keeps
/// the CEL rule on each requirement within the API server's cost budget).
pub const MAX_SELECTOR_REQUIREMENTS: usize = 32;
/// Most values of one selector requirement (schema `maxItems`).
pub const MAX_SELECTOR_VALUES: usize = 64;

/// Shortest VRRPv3 advert interval: one centisecond.
pub const V3_MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
/// Longest VRRPv3 advert interval: 4095 centiseconds (a 12-bit field).
pub const V3_MAX_ADVERT_INTERVAL: Duration = Duration::from_millis(40_950);
/// Shortest VRRPv2 advert interval: one second.
pub const V2_MIN_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest VRRPv2 advert interval: 255 seconds (an 8-bit field).
pub const V2_MAX_ADVERT_INTERVAL: Duration = Duration::from_secs(255);
/// Weights of trackers lie within ±`MAX_WEIGHT` (keepalived's bound).
pub const MAX_WEIGHT: i32 = 253;

/// What kind of rule a field broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// A required list or string is empty.
    Required,
    /// A list has more entries than the schema allows.
    TooMany,
    /// A number lies outside its range.
    OutOfRange,
    /// An address is not a CIDR (`10.0.0.50/24`, `2001:db8::50/64`).
    InvalidCidr,
    /// An address is not an IP address.
    InvalidIp,
    /// Addresses mix IPv4 and IPv6.
    MixedFamilies,
    /// A duration string does not parse.
    InvalidDuration,
    /// A duration is not a whole number of seconds where one is required.
    NotWholeSeconds,
    /// A VRRPv3 advert interval is not a multiple of 10 ms.
    NotCentiseconds,
    /// Something only VRRPv3 supports (IPv6 addresses) is asked of VRRPv2.
    RequiresVersion3,
    /// A field that only VRRPv2 supports is set with VRRPv3.
    RequiresVersion2,
    /// Exactly one of several alternative fields must be set.
    ExactlyOneOf,
    /// A string does not have the required form.
    InvalidFormat,
    /// A field the schema does not know (usually a misspelling); the API server would prune
    /// it, so standalone mode rejects it instead of ignoring it silently.
    UnknownField,
    /// An address range starts above its end.
    InvalidRange,
}

impl ViolationKind {
    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::TooMany => "too_many",
            Self::OutOfRange => "out_of_range",
            Self::InvalidCidr => "invalid_cidr",
            Self::InvalidIp => "invalid_ip",
            Self::MixedFamilies => "mixed_families",
            Self::InvalidDuration => "invalid_duration",
            Self::NotWholeSeconds => "not_whole_seconds",
            Self::NotCentiseconds => "not_centiseconds",
            Self::RequiresVersion3 => "requires_version_3",
            Self::RequiresVersion2 => "requires_version_2",
            Self::ExactlyOneOf => "exactly_one_of",
            Self::InvalidFormat => "invalid_format",
            Self::UnknownField => "unknown_field",
            Self::InvalidRange => "invalid_range",
        }
    }
}

/// One broken rule: where (`spec.addresses[1]`), what kind, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The field path from the object root, e.g. `spec.priorities[0]`.
    pub field: String,
    /// The rule that was broken.
    pub kind: ViolationKind,
    /// A sentence a person can act on.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects violations while a spec is checked.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<Violation>);

impl Violations {
    pub(crate) fn push(&mut self, field: impl Into<String>, kind: ViolationKind, message: String) {
        self.0.push(Violation {
            field: field.into(),
            kind,
            message,
        });
    }

    pub(crate) fn into_vec(self) -> Vec<Violation> {
        self.0
    }

    /// Checks that `list` has at most `max` entries.
    pub(crate) fn max_items<T>(&mut self, field: &str, list: &[T], max: usize) {
        if list.len() > max {
            self.push(
                field,
                ViolationKind::TooMany,
                format!("has {} entries; at most {max} are allowed", list.len()),
            );
        }
    }

    /// Checks that `value` lies in `min..=max`.
    pub(crate) fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.push(
                field,
                ViolationKind::OutOfRange,
                format!("{value} is out of range; use a value from {min} to {max}"),
            );
        }
    }

    /// Checks that `value` is not empty.
    pub(crate) fn required(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(
                field,
                ViolationKind::Required,
                "must not be empty".to_owned(),
            );
        }
    }

    /// Parses a duration, recording a violation when it does not parse.
    pub(crate) fn duration(&mut self, field: &str, d: &DurationString) -> Option<Duration> {
        match d.parse() {
            Ok(d) => Some(d),
            Err(e) => {
                self.push(field, ViolationKind::InvalidDuration, e.to_string());
                None
            }
        }
    }

    /// Checks that a duration is a whole number of seconds.
    pub(crate) fn whole_seconds(&mut self, field: &str, d: &DurationString) {
        if let Some(parsed) = self.duration(field, d)
            && parsed.subsec_nanos() != 0
        {
            self.push(
                field,
                ViolationKind::NotWholeSeconds,
                format!("{d} is not a whole number of seconds; write e.g. \"1s\""),
            );
        }
    }

    /// Checks an IP address (no prefix length).
    pub(crate) fn ip(&mut self, field: &str, s: &str) -> Option<IpAddr> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            Some(ip)
        } else {
            self.push(
                field,
                ViolationKind::InvalidIp,
                format!("{s:?} is not an IP address; write e.g. 10.0.0.10 or 2001:db8::10"),
            );
            None
        }
    }

    /// Checks a list of CIDRs: at least one, at most [`MAX_ADDRESSES`], each valid, one family.
    pub(crate) fn cidrs(&mut self, field: &str, addresses: &[String]) -> Vec<IpNet> {
        if addresses.is_empty() {
            self.push(
                field,
                ViolationKind::Required,
                "needs at least one address, e.g. 10.0.0.50/24".to_owned(),
            );
        }
        self.max_items(field, addresses, MAX_ADDRESSES);
        let mut nets = Vec::with_capacity(addresses.len());
        for (i, a) in addresses.iter().enumerate() {
            match parse_cidr(a) {
                Some(net) => nets.push(net),
                None => self.push(
                    format!("{field}[{i}]"),
                    ViolationKind::InvalidCidr,
                    format!(
                        "{a:?} is not a CIDR; write an address with its prefix length, \
                         e.g. 10.0.0.50/24 or 2001:db8::50/64"
                    ),
                ),
            }
        }
        if let Some(first) = nets.first() {
            let first_v4 = matches!(first, IpNet::V4(_));
            if nets.iter().any(|n| matches!(n, IpNet::V4(_)) != first_v4) {
                self.push(
                    field,
                    ViolationKind::MixedFamilies,
                    "mixes IPv4 and IPv6 addresses; one VirtualIP carries one family, \
                     so make a second VirtualIP for the other family"
                        .to_owned(),
                );
            }
        }
        nets
    }

    /// Checks an advert interval against the version's range and granularity.
    pub(crate) fn advert_interval(
        &mut self,
        field: &str,
        version: VrrpVersion,
        d: &DurationString,
    ) {
        let Some(parsed) = self.duration(field, d) else {
            return;
        };
        match version {
            VrrpVersion::V2 => {
                if parsed < V2_MIN_ADVERT_INTERVAL || parsed > V2_MAX_ADVERT_INTERVAL {
                    self.push(
                        field,
                        ViolationKind::OutOfRange,
                        format!("{d} is out of range for VRRPv2; use 1s to 255s"),
                    );
                } else if parsed.subsec_nanos() != 0 {
                    self.push(
                        field,
                        ViolationKind::NotWholeSeconds,
                        format!(
                            "{d} is not a whole number of seconds, which VRRPv2 adverts \
                             require; use e.g. \"1s\", or version 3 for shorter intervals"
                        ),
                    );
                }
            }
            VrrpVersion::V3 => {
                if parsed < V3_MIN_ADVERT_INTERVAL || parsed > V3_MAX_ADVERT_INTERVAL {
                    self.push(
                        field,
                        ViolationKind::OutOfRange,
                        format!("{d} is out of range for VRRPv3; use 10ms to 40.95s"),
                    );
                } else if parsed.as_nanos() % 10_000_000 != 0 {
                    self.push(
                        field,
                        ViolationKind::NotCentiseconds,
                        format!(
                            "{d} is not a multiple of 10ms, the unit of VRRPv3 adverts; \
                             use e.g. \"100ms\""
                        ),
                    );
                }
            }
        }
    }

    /// Checks a label selector the way Kubernetes validates built-in ones: operators are
    /// In, NotIn, Exists or DoesNotExist; In/NotIn need values; Exists/DoesNotExist take none;
    /// at most [`MAX_SELECTOR_REQUIREMENTS`] requirements of at most [`MAX_SELECTOR_VALUES`]
    /// values. (The CRD schema says the same: an enum, bounds, and the CEL rule
    /// `cel::LABEL_SELECTOR_REQUIREMENT` on each requirement.)
    pub(crate) fn label_selector(&mut self, field: &str, selector: &LabelSelector) {
        let requirements = selector.match_expressions.as_deref().unwrap_or_default();
        self.max_items(
            &format!("{field}.matchExpressions"),
            requirements,
            MAX_SELECTOR_REQUIREMENTS,
        );
        for (i, e) in requirements.iter().enumerate() {
            let f = format!("{field}.matchExpressions[{i}]");
            self.required(&format!("{f}.key"), &e.key);
            let values = e.values.as_deref().unwrap_or_default();
            self.max_items(&format!("{f}.values"), values, MAX_SELECTOR_VALUES);
            let has_values = !values.is_empty();
            match e.operator.as_str() {
                "In" | "NotIn" if !has_values => self.push(
                    format!("{f}.values"),
                    ViolationKind::Required,
                    format!("operator {} needs at least one value", e.operator),
                ),
                "Exists" | "DoesNotExist" if has_values => self.push(
                    format!("{f}.values"),
                    ViolationKind::InvalidFormat,
                    format!("operator {} takes no values; remove them", e.operator),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => self.push(
                    format!("{f}.operator"),
                    ViolationKind::InvalidFormat,
                    format!("{other:?} is not an operator; use In, NotIn, Exists or DoesNotExist"),
                ),
            }
        }
    }

    /// Checks a tracker weight.
    pub(crate) fn weight(&mut self, field: &str, weight: Option<i32>) {
        if let Some(w) = weight {
            self.range(
                field,
                i64::from(w),
                -i64::from(MAX_WEIGHT),
                i64::from(MAX_WEIGHT),
            );
        }
    }
}

/// Parses `a.b.c.d/n` or `x::y/n`; host bits may be set (`10.0.0.50/24` names the VIP
/// 10.0.0.50 on a /24), as Kubernetes' `isCIDR` allows.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    // ipnet also accepts a bare address without a prefix length; CEL's isCIDR does not.
    if !s.contains('/') {
        return None;
    }
    s.parse::<IpNet>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_needs_a_prefix_length_and_allows_host_bits() {
        assert!(parse_cidr("10.0.0.50/24").is_some());
        assert!(parse_cidr("2001:db8::50/64").is_some());
        assert!(parse_cidr("10.0.0.50").is_none());
        assert!(parse_cidr("10.0.0.50/33").is_none());
        assert!(parse_cidr("eth0").is_none());
    }

    #[test]
    fn violation_kinds_have_distinct_names() {
        let kinds = [
            ViolationKind::Required,
            ViolationKind::TooMany,
            ViolationKind::OutOfRange,
            ViolationKind::InvalidCidr,
            ViolationKind::InvalidIp,
            ViolationKind::MixedFamilies,
            ViolationKind::InvalidDuration,
            ViolationKind::NotWholeSeconds,
            ViolationKind::NotCentiseconds,
            ViolationKind::RequiresVersion3,
            ViolationKind::RequiresVersion2,
            ViolationKind::ExactlyOneOf,
            ViolationKind::InvalidFormat,
            ViolationKind::UnknownField,
            ViolationKind::InvalidRange,
        ];
        let names: std::collections::HashSet<_> = kinds.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), kinds.len());
    }

    #[test]
    fn violation_displays_field_then_message() {
        let v = Violation {
            field: "spec.addresses[0]".into(),
            kind: ViolationKind::InvalidCidr,
            message: "bad".into(),
        };
        assert_eq!(v.to_string(), "spec.addresses[0]: bad");
    }
}
