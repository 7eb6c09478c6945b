//! A member's adverts as encoded for the wire, kept between sends: a MASTER sends the same
//! bytes every interval, so they are encoded again only when what they say changes (priority,
//! interval, source address) or the member's configuration does.

use std::net::IpAddr;
use std::sync::Arc;

use super::beat::Payloads;

/// What an advert of one member says beyond its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertKey {
    pub priority: u8,
    pub max_advert_interval_cs: u16,
    pub source: IpAddr,
}

/// The encoded adverts of one member, one per destination, for the key they were encoded for.
#[derive(Debug)]
pub struct EncodedAdverts {
    key: Option<AdvertKey>,
    payloads: Payloads,
}

impl Default for EncodedAdverts {
    fn default() -> Self {
        Self {
            key: None,
            payloads: Arc::from(Vec::new()),
        }
    }
}

impl EncodedAdverts {
    /// Forgets what was encoded: the configuration (addresses, version, peers) changed.
    pub fn clear(&mut self) {
        self.key = None;
        self.payloads = Arc::from(Vec::new());
    }

    /// The payloads for `key`, each with its destination; `encode` makes them when the last
    /// ones were for another key (or none were made).
    pub fn get_or_encode(
        &mut self,
        key: AdvertKey,
        encode: impl FnOnce() -> Vec<(IpAddr, Vec<u8>)>,
    ) -> &Payloads {
        if self.key != Some(key) {
            self.payloads = Arc::from(encode());
            self.key = Some(key);
        }
        &self.payloads
    }

    /// The payloads last encoded, with their key.
    pub fn current(&self) -> Option<(AdvertKey, &Payloads)> {
        self.key.map(|key| (key, &self.payloads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(priority: u8) -> AdvertKey {
        AdvertKey {
            priority,
            max_advert_interval_cs: 100,
            source: "192.168.77.11".parse().unwrap(),
        }
    }

    #[test]
    fn the_same_advert_is_encoded_once_and_a_new_priority_or_a_clear_encodes_again() {
        let mut adverts = EncodedAdverts::default();
        let mut encoded = 0;
        let mut send = |adverts: &mut EncodedAdverts, priority: u8| {
            adverts
                .get_or_encode(key(priority), || {
                    encoded += 1;
                    vec![("224.0.0.18".parse().unwrap(), vec![priority])]
                })
                .to_vec()
        };
        assert_eq!(send(&mut adverts, 100)[0].1, [100]);
        send(&mut adverts, 100);
        assert_eq!(send(&mut adverts, 0)[0].1, [0]);
        adverts.clear();
        send(&mut adverts, 0);
        assert_eq!(encoded, 3);
    }
}
