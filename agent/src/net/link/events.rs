//! A stream of interface notifications from rtnetlink: links changing or going away
//! (RTNLGRP_LINK) and addresses coming and going (RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR).

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
use crate::net::address::InterfaceAddress;

/// One notification about an interface. The kernel sends one for every attribute change, so
/// equal states repeat; [`super::LinkDebounce`] absorbs that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceEvent {
    /// The link exists and is in `state`.
    Changed {
        ifindex: u32,
        name: String,
        state: LinkState,
        /// Its Ethernet address, when the message carries a 6-byte one.
        mac: Option<[u8; 6]>,
    },
    /// The link was deleted.
    Removed { ifindex: u32, name: String },
    /// An address was added to a link, or changed (flags, e.g. DAD done).
    AddressAdded(InterfaceAddress),
    /// An address was removed from a link.
    AddressRemoved(InterfaceAddress),
    /// The kernel dropped notifications (socket buffer overrun): re-read what you follow.
    Overrun,
}

/// Interface notifications of the calling thread's network namespace. Subscribe before reading
/// the initial state so no change falls between the two. Dropping it closes the socket.
pub struct InterfaceEvents {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    connection: JoinHandle<()>,
}

impl std::fmt::Debug for InterfaceEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterfaceEvents").finish_non_exhaustive()
    }
}

impl InterfaceEvents {
    /// Joins RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR and drives the socket on
    /// the current tokio runtime.
    pub fn subscribe() -> Result<Self, NetError> {
        let (connection, _handle, messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .map_err(NetError::io("subscribe to interface events"))?;
        let connection = tokio::spawn(connection);
        Ok(Self {
            messages,
            connection,
        })
    }

    /// The next event; `None` when the netlink socket has closed.
    pub async fn next(&mut self) -> Option<InterfaceEvent> {
        loop {
            let (message, _) = self.messages.next().await?;
            if let Some(event) = event_from(message.payload) {
                return Some(event);
            }
        }
    }
}

impl Drop for InterfaceEvents {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn event_from(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<InterfaceEvent> {
    match payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            Some(InterfaceEvent::Changed {
                ifindex: link.header.index,
                state: LinkState::from_flags(link.header.flags),
                name: name_of(&link),
                mac: mac_of(&link),
            })
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
            Some(InterfaceEvent::Removed {
                ifindex: link.header.index,
                name: name_of(&link),
            })
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(message)) => {
            InterfaceAddress::from_message(&message).map(InterfaceEvent::AddressAdded)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(message)) => {
            InterfaceAddress::from_message(&message).map(InterfaceEvent::AddressRemoved)
        }
        NetlinkPayload::Overrun(_) => Some(InterfaceEvent::Overrun),
        _ => None,
    }
}

fn mac_of(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        })
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
            Some(InterfaceEvent::Changed {
                ifindex: 4,
                name: "eth0".into(),
                state: LinkState::Up,
                mac: None,
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
            Some(InterfaceEvent::Changed {
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
            Some(InterfaceEvent::Removed {
                ifindex: 4,
                name: "eth0".into()
            })
        );
        assert_eq!(
            event_from(NetlinkPayload::Overrun(Vec::new())),
            Some(InterfaceEvent::Overrun)
        );
    }

    #[test]
    fn new_and_deleted_address_messages_are_address_events() {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
        let mut message = AddressMessage::default();
        message.header.index = 4;
        message.header.prefix_len = 24;
        message
            .attributes
            .push(AddressAttribute::Local("192.0.2.7".parse().unwrap()));
        let added = event_from(NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewAddress(message.clone()),
        ));
        let Some(InterfaceEvent::AddressAdded(address)) = added else {
            panic!("not an address event: {added:?}");
        };
        assert_eq!(address.ifindex, 4);
        assert_eq!(address.address.to_string(), "192.0.2.7/24");
        let removed = event_from(NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::DelAddress(message),
        ));
        assert!(matches!(removed, Some(InterfaceEvent::AddressRemoved(a)) if a == address));
    }
}
