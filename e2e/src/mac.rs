//! Ethernet MAC addresses as the lab prints and parses them.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Self = Self([0xff; 6]);
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not six colon-separated hex bytes.
#[derive(Debug, thiserror::Error)]
#[error("not a MAC address: {0:?}")]
pub struct ParseMacError(String);

impl FromStr for Mac {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0_u8; 6];
        let mut parts = s.trim().split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| ParseMacError(s.to_owned()))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError(s.to_owned()))?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError(s.to_owned()));
        }
        Ok(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_prints_and_parses_back() {
        let mac: Mac = "02:77:00:00:00:0a".parse().unwrap();
        assert_eq!(mac, Mac([2, 0x77, 0, 0, 0, 10]));
        assert_eq!(mac.to_string(), "02:77:00:00:00:0a");
        assert!("02:77:00:00:00".parse::<Mac>().is_err());
        assert!("02:77:00:00:00:0a:01".parse::<Mac>().is_err());
    }
}
