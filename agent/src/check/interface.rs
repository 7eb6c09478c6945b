//! Interface trackers: a link is up while it has both IFF_UP and IFF_RUNNING (keepalived's test),
//! learnt from rtnetlink link events plus a periodic RTM_GETLINK resync. A missing link is down.

use std::io;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::sys::SocketAddr;
use rtnetlink::{Handle, MulticastGroup};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::Slot;
use super::aggregate::Observation;

/// How often the link is re-read even without events (events can be lost on overrun).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

type Events = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// An open rtnetlink connection subscribed to link events. Opened on the caller's thread, so it
/// belongs to that thread's network namespace. Must be opened inside a tokio runtime.
pub(crate) struct LinkWatch {
    handle: Handle,
    events: Events,
    connection: AbortOnDrop,
}

/// Aborts the netlink connection task when the tracker task ends or is aborted.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LinkWatch {
    pub(crate) fn open() -> io::Result<Self> {
        let (connection, handle, events) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])?;
        Ok(Self {
            handle,
            events,
            connection: AbortOnDrop(tokio::spawn(connection)),
        })
    }
}

/// Up or down from a link message's flags. Pure.
pub fn link_observation(message: &LinkMessage) -> Observation {
    let flags = message.header.flags;
    if flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running) {
        Observation::Up
    } else {
        Observation::Down
    }
}

fn link_name(message: &LinkMessage) -> Option<&str> {
    message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.as_str()),
            _ => None,
        })
}

/// What a multicast message says about `interface`, if anything. Pure.
fn event_observation(
    message: &NetlinkMessage<RouteNetlinkMessage>,
    interface: &str,
) -> Option<Observation> {
    match &message.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
            if link_name(link) == Some(interface) =>
        {
            Some(link_observation(link))
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link))
            if link_name(link) == Some(interface) =>
        {
            Some(Observation::Down)
        }
        _ => None,
    }
}

/// Opens a link watch from the tracker task, every [`RESYNC_INTERVAL`] until it works.
async fn open_retrying(interface: &str) -> LinkWatch {
    loop {
        match LinkWatch::open() {
            Ok(watch) => return watch,
            Err(error) => {
                tracing::warn!(interface, %error, "cannot open a netlink link watch; retrying");
                tokio::time::sleep(RESYNC_INTERVAL).await;
            }
        }
    }
}

/// Asks the kernel for the link now. A missing link (ENODEV) is down; any other error is down too
/// and logged.
async fn query(handle: &Handle, interface: &str) -> Observation {
    let mut links = handle
        .link()
        .get()
        .match_name(interface.to_owned())
        .execute();
    match links.try_next().await {
        Ok(Some(link)) => link_observation(&link),
        Ok(None) => Observation::Down,
        Err(rtnetlink::Error::NetlinkError(error))
            if error.raw_code() == -(nix::errno::Errno::ENODEV as i32) =>
        {
            Observation::Down
        }
        Err(error) => {
            tracing::warn!(interface, %error, "cannot read link state; counting it as down");
            Observation::Down
        }
    }
}

/// The tracker task: initial query, then events for `interface` and a resync every
/// [`RESYNC_INTERVAL`].
pub(crate) async fn track(interface: String, watch: Option<LinkWatch>, slot: Slot) {
    let watch = match watch {
        Some(watch) => watch,
        None => open_retrying(&interface).await,
    };
    let LinkWatch {
        handle,
        mut events,
        connection: _connection,
    } = watch;
    let mut resync = tokio::time::interval(RESYNC_INTERVAL);
    resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut events_open = true;
    loop {
        let observation = tokio::select! {
            _ = resync.tick() => query(&handle, &interface).await,
            event = events.next(), if events_open => {
                let Some((message, _)) = event else {
                    tracing::warn!(interface, "link event stream ended; polling every {RESYNC_INTERVAL:?}");
                    events_open = false;
                    continue;
                };
                let Some(observation) = event_observation(&message, &interface) else {
                    continue;
                };
                observation
            }
        };
        slot.report_counting_failure_on_change(observation);
    }
}
