//! `VrrpVersion`: VRRP version 2 (RFC 3768) or 3 (RFC 5798), written as the integer 2 or 3.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The VRRP version an instance speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum VrrpVersion {
    /// RFC 3768: IPv4 only, advert interval in whole seconds, optional PASS authentication.
    V2,
    /// RFC 5798: IPv4 and IPv6, advert interval in centiseconds. The default.
    #[default]
    V3,
}

/// A version number other than 2 or 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported VRRP version {0}: use 2 or 3")]
pub struct UnsupportedVersion(pub u8);

impl VrrpVersion {
    /// The version number as sent in the VRRP header.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "2",
            Self::V3 => "3",
        }
    }
}

impl TryFrom<u8> for VrrpVersion {
    type Error = UnsupportedVersion;

    fn try_from(v: u8) -> Result<Self, Self::Error> {
        match v {
            2 => Ok(Self::V2),
            3 => Ok(Self::V3),
            other => Err(UnsupportedVersion(other)),
        }
    }
}

impl From<VrrpVersion> for u8 {
    fn from(v: VrrpVersion) -> u8 {
        v.as_u8()
    }
}

impl JsonSchema for VrrpVersion {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "VrrpVersion".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "enum": [2, 3],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_serialises_as_its_number() {
        assert_eq!(serde_json::to_string(&VrrpVersion::V2).unwrap(), "2");
        assert_eq!(serde_json::to_string(&VrrpVersion::V3).unwrap(), "3");
        assert_eq!(
            serde_json::from_str::<VrrpVersion>("2").unwrap(),
            VrrpVersion::V2
        );
    }

    #[test]
    fn version_four_is_rejected_with_a_clear_message() {
        let err = serde_json::from_str::<VrrpVersion>("4").unwrap_err();
        assert!(
            err.to_string().contains("unsupported VRRP version 4"),
            "{err}"
        );
    }

    #[test]
    fn default_version_is_three() {
        assert_eq!(VrrpVersion::default(), VrrpVersion::V3);
    }
}
