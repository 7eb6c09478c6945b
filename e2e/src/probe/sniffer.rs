//! The VRRP sniffer: reads every frame entering the lab switch from a node port and records the
//! VRRP adverts among them (multicast and unicast alike), with time and node.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::frame::{self, WireAdvert};
use super::packet_socket::{PACKET_OUTGOING, PacketSocket};
use super::recording::Recording;
use crate::error::LabError;
use crate::netns::Netns;

/// One advert as it entered the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// When the advert entered the switch: its kernel receive stamp, on CLOCK_MONOTONIC.
    pub at: Instant,
    /// The lab node whose switch port it came in on (numbered from 1).
    pub node: usize,
    pub wire: WireAdvert,
}

/// A running sniffer; stops its thread when dropped.
#[derive(Debug)]
pub struct AdvertSniffer {
    adverts: Recording<Advert>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdvertSniffer {
    /// Starts sniffing in `switch`, where `ports` maps a port's ifindex to its node number.
    pub fn start(switch: &Netns, ports: HashMap<u32, usize>) -> Result<Self, LabError> {
        let socket = switch
            .run_in(|| PacketSocket::open(None, Duration::from_millis(20)))?
            .map_err(LabError::io(format!("packet socket in {}", switch.name())))?;
        let stop = Arc::new(AtomicBool::new(false));
        let adverts = Recording::default();
        let thread = {
            let (stop, adverts) = (Arc::clone(&stop), adverts.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0_u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(got)) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let at = got.arrived;
                    // Count each frame once: where it entered the switch from a node.
                    if got.pkttype == PACKET_OUTGOING {
                        continue;
                    }
                    let Some(&node) = ports.get(&got.ifindex) else {
                        continue;
                    };
                    if let Some(wire) = frame::vrrp_advert(&buf[..got.len]) {
                        adverts.push(Advert { at, node, wire });
                    }
                }
            })
        };
        Ok(Self {
            adverts,
            stop,
            thread: Some(thread),
        })
    }

    /// Every advert so far, oldest first.
    pub fn adverts(&self) -> Vec<Advert> {
        self.adverts.snapshot()
    }

    /// Waits until `done` holds for the adverts recorded so far.
    pub fn wait_until(&self, timeout: Duration, done: impl FnMut(&[Advert]) -> bool) -> bool {
        self.adverts.wait_until(timeout, done)
    }
}

impl Drop for AdvertSniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
