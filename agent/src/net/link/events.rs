//! A stream of link up/down/removed events from rtnetlink's RTNLGRP_LINK multicast group.

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::sys::SocketAddr;
use tokio::task::JoinHandle;

use super::LinkState;
use crate::net::NetError;

/// One notification about a link. The kernel sends one for every attribute change, so equal
/// states repeat; [`super::LinkDebounce`] absorbs that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link exists and is in `state`.
    Changed {
        ifindex: u32,
        name: String,
        state: LinkState,
    },
    /// The link was deleted.
    Removed { ifindex: u32, name: String },
    /// The kernel dropped notifications (socket buffer overrun): re-read the links you watch.
    Overrun,
}

/// Link notifications of the calling thread's network namespace. Subscribe before reading the
/// initial state so no change falls between the two. Dropping it closes the socket.
pub struct LinkEvents {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    connection: JoinHandle<()>,
}

impl std::fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEvents").finish_non_exhaustive()
    }
}

impl LinkEvents {
    /// Joins RTNLGRP_LINK and drives the socket on the current tokio runtime.
    pub fn subscribe() -> Result<Self, NetError> {
        let (connection, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .map_err(NetError::io("subscribe to link events"))?;
        let connection = tokio::spawn(connection);
        Ok(Self {
            messages,
            connection,
        })
    }

    /// The next event; `None` when the netlink socket has closed.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            let (message, _) = self.messages.next().await?;
            if let Some(event) = event_from(message.payload) {
                return Some(event);
            }
        }
    }
}

impl Drop for LinkEvents {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn event_from(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            Some(LinkEvent::Changed {
                ifindex: link.header.index,
                state: LinkState::from_flags(link.header.flags),
                name: name_of(&link),
            })
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
            Some(LinkEvent::Removed {
                ifindex: link.header.index,
                name: name_of(&link),
            })
        }
        NetlinkPayload::Overrun(_) => Some(LinkEvent::Overrun),
        _ => None,
    }
}

fn name_of(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::LinkFlags;

    fn link_message(ifindex: u32, name: &str, flags: LinkFlags) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = ifindex;
        message.header.flags = flags;
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        message
    }

    #[test]
    fn a_new_link_message_that_is_up_and_running_is_an_up_event() {
        let message = link_message(4, "eth0", LinkFlags::Up | LinkFlags::Running);
        let event = event_from(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(
            message,
        )));
        assert_eq!(
            event,
            Some(LinkEvent::Changed {
                ifindex: 4,
                name: "eth0".into(),
                state: LinkState::Up
            })
        );
    }

    #[test]
    fn a_new_link_message_without_carrier_is_a_down_event() {
        let message = link_message(4, "eth0", LinkFlags::Up);
        let event = event_from(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(
            message,
        )));
        assert!(matches!(
            event,
            Some(LinkEvent::Changed {
                state: LinkState::Down,
                ..
            })
        ));
    }

    #[test]
    fn a_del_link_message_is_a_removed_event_and_an_overrun_asks_for_a_resync() {
        let message = link_message(4, "eth0", LinkFlags::empty());
        let event = event_from(NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(
            message,
        )));
        assert_eq!(
            event,
            Some(LinkEvent::Removed {
                ifindex: 4,
                name: "eth0".into()
            })
        );
        assert_eq!(
            event_from(NetlinkPayload::Overrun(Vec::new())),
            Some(LinkEvent::Overrun)
        );
    }
}
