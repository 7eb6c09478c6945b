//! The advert a receive path admitted last for each VRID, kept by its exact bytes: a MASTER
//! repeats the same advert every interval (same source, group, priority, addresses and so the
//! same checksum), and the same bytes again, checked against the same routes, are admitted
//! by one comparison instead of a decode. Anything that differs, however little, is decoded
//! and checked in full.

use std::net::IpAddr;

use super::receive::{Admitted, AdvertFilter, admit};
use crate::net::socket::Received;
use crate::vrrp::packet::DropReason;

/// The longest VRRP packet remembered: a header, a few addresses and v2's authentication
/// data. A longer advert (many IPv6 VIPs) is decoded every time.
const REMEMBERED_BYTES: usize = 64;

/// One remembered admission per VRID.
#[derive(Debug)]
pub struct Admissions {
    by_vrid: Vec<Option<Box<Admission>>>,
}

impl Default for Admissions {
    fn default() -> Self {
        Self {
            by_vrid: (0..=u8::MAX).map(|_| None).collect(),
        }
    }
}

/// An advert admitted, with what its admission depended on besides the TTL and our own
/// addresses (which are checked again each time).
#[derive(Debug)]
struct Admission {
    /// The routes' version the advert was checked against (see [`Admissions::admit`]).
    routes: u64,
    source: IpAddr,
    destination: IpAddr,
    len: usize,
    bytes: [u8; REMEMBERED_BYTES],
    admitted: Admitted,
}

impl Admission {
    fn repeats(&self, routes: u64, received: &Received) -> bool {
        self.routes == routes
            && self.source == received.source
            && self.destination == received.destination
            && self.bytes.get(..self.len) == Some(received.payload.as_slice())
    }
}

impl Admissions {
    /// [`admit`], remembered: `routes` is the version of the routes `filter_of` reads (a
    /// change of any route's filter changes it), `own` this node's addresses.
    pub fn admit<'a>(
        &mut self,
        routes: u64,
        received: &Received,
        own: &[IpAddr],
        filter_of: impl Fn(u8) -> Option<&'a AdvertFilter>,
    ) -> Result<Admitted, DropReason> {
        let slot = received
            .payload
            .get(1)
            .and_then(|vrid| self.by_vrid.get_mut(usize::from(*vrid)));
        if let Some(Some(known)) = slot.as_deref()
            && known.repeats(routes, received)
            && received.ttl == crate::vrrp::VRRP_TTL
            && !own.contains(&received.source)
        {
            return Ok(known.admitted);
        }
        let admitted = admit(received, own, filter_of)?;
        let len = received.payload.len();
        if let Some(slot) = slot
            && len <= REMEMBERED_BYTES
        {
            let known = slot.get_or_insert_with(|| {
                Box::new(Admission {
                    routes,
                    source: received.source,
                    destination: received.destination,
                    len: 0,
                    bytes: [0; REMEMBERED_BYTES],
                    admitted,
                })
            });
            known.routes = routes;
            known.source = received.source;
            known.destination = received.destination;
            known.len = len;
            known.bytes[..len].copy_from_slice(&received.payload);
            known.admitted = admitted;
        }
        Ok(admitted)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::vrrp::Version;
    use crate::vrrp::packet::{Advertisement, Authentication};

    const SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    const OWN: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

    fn filter() -> AdvertFilter {
        AdvertFilter {
            version: Version::V3,
            authentication: Authentication::None,
            advert_interval_cs: 100,
            unicast_peers: Vec::new(),
        }
    }

    fn received(priority: u8) -> Received {
        let advert = Advertisement {
            version: Version::V3,
            vrid: 51,
            priority,
            max_advert_interval_cs: 100,
            addresses: vec!["192.0.2.50".parse().unwrap()],
            auth: Authentication::None,
        };
        Received {
            source: SOURCE,
            destination: GROUP,
            ttl: 255,
            payload: advert.encode(SOURCE, GROUP).unwrap(),
            queue_drops: None,
            arrived: Instant::now(),
            read: Instant::now(),
        }
    }

    /// Routes serving VRID 51 with `filter`.
    fn serve<'a>(filter: &'a AdvertFilter) -> impl Fn(u8) -> Option<&'a AdvertFilter> {
        move |vrid| (vrid == 51).then_some(filter)
    }

    #[test]
    fn the_same_bytes_again_are_admitted_as_before_and_anything_else_is_checked_anew() {
        let mut admissions = Admissions::default();
        let v3 = filter();
        let v2 = AdvertFilter {
            version: Version::V2,
            ..filter()
        };
        let first = admissions
            .admit(1, &received(150), &[OWN], serve(&v3))
            .unwrap();
        assert_eq!(first.advert.priority, 150);
        assert_eq!(first.advert.max_advert_interval, Duration::from_secs(1));
        assert_eq!(
            admissions.admit(1, &received(150), &[OWN], serve(&v2)),
            Ok(first),
            "the same routes' version: remembered (the filter is not looked at again)"
        );
        assert_eq!(
            admissions.admit(2, &received(150), &[OWN], serve(&v2)),
            Err(DropReason::Version),
            "the routes changed: checked anew"
        );
        let lower = admissions
            .admit(2, &received(120), &[OWN], serve(&v3))
            .unwrap();
        assert_eq!(lower.advert.priority, 120, "other bytes: decoded");
        let mut corrupt = received(120);
        corrupt.payload[6] ^= 0xff;
        assert_eq!(
            admissions.admit(2, &corrupt, &[OWN], serve(&v3)),
            Err(DropReason::Checksum)
        );
        let mut hop = received(120);
        hop.ttl = 254;
        assert_eq!(
            admissions.admit(2, &hop, &[OWN], serve(&v3)),
            Err(DropReason::Ttl),
            "the TTL is checked every time"
        );
        assert_eq!(
            admissions.admit(2, &received(120), &[SOURCE], serve(&v3)),
            Err(DropReason::Source),
            "so is our own source"
        );
    }
}
