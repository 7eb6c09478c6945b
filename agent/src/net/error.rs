//! The one error type of the kernel edges (`net`).

use std::net::IpAddr;

use crate::vrrp::packet::{DecodeError, DropReason};

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
    #[error("received a malformed IP datagram: {0}")]
    MalformedIp(#[source] DecodeError),
    #[error("received datagram lacks the {0} control message")]
    MissingControlMessage(&'static str),
    #[error("received datagram of more than {0} bytes was truncated")]
    Truncated(usize),
    #[error(
        "{} is already on the interface and was not installed by kube-vrrp (owner: {})",
        .0.address,
        .0.owner()
    )]
    AddressTaken(Box<crate::net::address::InterfaceAddress>),
    #[error("{op}: {message}")]
    Nftables { op: &'static str, message: String },
    #[error(
        "an interface named {name} exists and is not the virtual MAC of this instance on {parent}"
    )]
    VmacNameTaken { name: String, parent: String },
}

impl NetError {
    /// Whether the error concerns one received datagram only (the socket stays usable): count
    /// it and receive again.
    pub fn is_datagram_error(&self) -> bool {
        matches!(
            self,
            Self::MalformedIp(_) | Self::MissingControlMessage(_) | Self::Truncated(_)
        )
    }

    /// The drop counter a per-datagram error is counted under; `None` for errors of the socket
    /// itself.
    pub fn drop_reason(&self) -> Option<DropReason> {
        match self {
            Self::MalformedIp(error) => Some(error.drop_reason()),
            Self::Truncated(_) => Some(DropReason::Length),
            Self::MissingControlMessage(_) => Some(DropReason::Malformed),
            _ => None,
        }
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
        let short = NetError::MalformedIp(DecodeError::IpTooShort { len: 3, min: 20 });
        assert!(short.is_datagram_error());
        assert_eq!(short.drop_reason(), Some(DropReason::Length));
        assert!(NetError::MissingControlMessage("IP_PKTINFO").is_datagram_error());
        let socket_error = NetError::Io {
            op: "receive a VRRP datagram",
            source: std::io::Error::from_raw_os_error(nix::libc::EBADF),
        };
        assert!(!socket_error.is_datagram_error());
        assert_eq!(socket_error.drop_reason(), None);
    }
}
