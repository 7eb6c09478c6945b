//! The one error type of the kernel edges (`net`).

use std::net::IpAddr;

/// What went wrong at a kernel edge. Each variant names the operation so logs say what failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {source}")]
    Netlink {
        op: &'static str,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    #[error("no interface with index {0}")]
    NoSuchInterfaceIndex(u32),
    #[error("interface {ifname} has no usable {what} to send VRRP from")]
    NoSourceAddress { ifname: String, what: &'static str },
    #[error("interface {0} has no Ethernet MAC address")]
    NoMacAddress(String),
    #[error("address {address} does not match the socket's family")]
    FamilyMismatch { address: IpAddr },
    #[error("received a malformed IPv4 datagram: {0}")]
    MalformedIpv4(&'static str),
    #[error("received datagram lacks the {0} control message")]
    MissingControlMessage(&'static str),
    #[error("received datagram of more than {0} bytes was truncated")]
    Truncated(usize),
}

impl NetError {
    /// Whether the error concerns one received datagram only (the socket stays usable): count
    /// it and receive again.
    pub fn is_datagram_error(&self) -> bool {
        matches!(
            self,
            Self::MalformedIpv4(_) | Self::MissingControlMessage(_) | Self::Truncated(_)
        )
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { op, source }
    }

    pub(crate) fn errno(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> Self {
        move |errno| Self::Io {
            op,
            source: std::io::Error::from(errno),
        }
    }

    pub(crate) fn netlink(op: &'static str) -> impl FnOnce(rtnetlink::Error) -> Self {
        move |source| Self::Netlink { op, source }
    }
}

/// The errno of a netlink error reply, if the error is one.
pub(crate) fn netlink_errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_errors_are_told_apart_from_socket_errors() {
        assert!(NetError::Truncated(65_536).is_datagram_error());
        assert!(NetError::MalformedIpv4("bad total length").is_datagram_error());
        assert!(NetError::MissingControlMessage("IP_PKTINFO").is_datagram_error());
        let socket_error = NetError::Io {
            op: "receive a VRRP datagram",
            source: std::io::Error::from_raw_os_error(nix::libc::EBADF),
        };
        assert!(!socket_error.is_datagram_error());
    }
}
