//! The per-advert receive path allocates nothing: admission (TTL, source, codec, VRID, filter),
//! the route lookup among 255 VRIDs, the received counter and the hand-off to the instance's
//! queue, measured with a counting global allocator (`allocation-counter`) around 10,200 adverts.

use std::net::{IpAddr, Ipv4Addr};

use kube_vrrp_agent::driver::admissions::Admissions;
use kube_vrrp_agent::driver::receive::{AdvertFilter, Route, Routes};
use kube_vrrp_agent::driver::routine::{Routine, Settle};
use kube_vrrp_agent::net::socket::Received;
use kube_vrrp_agent::report::Metrics;
use kube_vrrp_agent::vrrp::packet::{Advertisement, Authentication};
use kube_vrrp_agent::vrrp::{VRRP_TTL, Version};
use tokio::sync::mpsc;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const OWN: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

fn advert(vrid: u8) -> Received {
    let advertisement = Advertisement {
        version: Version::V3,
        vrid,
        priority: 150,
        max_advert_interval_cs: 1,
        addresses: vec![IpAddr::V4(Ipv4Addr::new(172, 16, 1, vrid))],
        auth: Authentication::None,
    };
    let mut received = Received::empty();
    received.source = PEER;
    received.destination = GROUP;
    received.ttl = VRRP_TTL;
    received.payload = advertisement.encode(PEER, GROUP).expect("a valid advert");
    received
}

#[test]
fn receiving_an_advert_for_one_of_255_instances_allocates_nothing() {
    let metrics = Metrics::new();
    let routes = Routes::default();
    let (sender, mut queue) = mpsc::channel(1024);
    for vrid in 1..=255u8 {
        let instance = format!("vip-{vrid}");
        let route = Route {
            received: metrics.adverts_received_counter(&instance),
            routine: Routine::new(metrics.adverts_heard_late_counter(&instance)),
            instance,
            filter: AdvertFilter {
                version: Version::V3,
                authentication: Authentication::None,
                advert_interval_cs: 1,
                unicast_peers: Vec::new(),
            },
            member: usize::from(vrid),
            sender: sender.clone(),
        };
        routes.insert(vrid, route).expect("a free VRID");
    }
    let adverts: Vec<Received> = (1..=255u8).map(advert).collect();
    let own = [OWN];
    let mut admissions = Admissions::default();
    let mut handle = |received: &Received| {
        routes
            .deliver(received, &own, "eth0", Settle::Now, &mut admissions)
            .expect("an admitted advert");
        let queued = queue.try_recv().expect("the advert was queued");
        assert_eq!(
            (queued.member, queued.advert.source, queued.arrived),
            (usize::from(received.payload[1]), PEER, received.arrived)
        );
    };
    // Warm up: the queue's first blocks and anything lazily set up on first use.
    for received in &adverts {
        handle(received);
    }

    let counted = allocation_counter::measure(|| {
        for _ in 0..40 {
            for received in &adverts {
                handle(received);
            }
        }
    });

    assert_eq!(
        (counted.count_total, counted.bytes_total),
        (0, 0),
        "allocations on the receive path of 10,200 adverts"
    );
    let exposition = metrics.encode();
    assert!(
        exposition.contains("kube_vrrp_adverts_received_total{vrrp_instance=\"vip-7\"} 41"),
        "each advert is counted: {exposition}"
    );
}
