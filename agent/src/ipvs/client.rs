//! The I/O edge of IPVS: one generic-netlink socket, the `IPVS` family resolved once through
//! `genetlink`, requests sent (changes in batches, one datagram per batch) and answers read
//! back. Encoding and decoding live in [`super::request`], [`super::model`] and
//! [`super::packet`]; nothing here builds an attribute.

use std::io;
use std::time::Duration;

use futures::StreamExt;
use genetlink::GenetlinkError;
use genetlink::message::{RawGenlMessage, map_from_rawgenlmsg, map_to_rawgenlmsg};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_proto::ConnectionHandle;
use netlink_proto::sys::SocketAddr;
use netlink_proto::sys::protocols::NETLINK_GENERIC;
use tokio::task::JoinHandle;

use super::model::{DestinationEntry, ServiceEntry, ServiceKey};
use super::packet::{IpvsAttribute, IpvsMessage};
use super::request::{Request, Timeouts};

/// How long one request (or one batch) may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Changes per datagram: their acknowledgements must fit the socket's receive buffer.
pub const BATCH: usize = 64;

/// What went wrong talking to IPVS.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    #[error("IPVS is not available: {0}")]
    Unavailable(String),
    #[error("opening a generic netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("{request}: {source}")]
    Kernel {
        request: String,
        #[source]
        source: io::Error,
    },
    #[error("{request}: the netlink connection closed")]
    Closed { request: String },
    #[error("{request}: malformed answer: {reason}")]
    Malformed { request: String, reason: String },
    #[error("{request}: no answer within {timeout:?}")]
    Timeout { request: String, timeout: Duration },
}

impl IpvsError {
    /// The errno of a kernel refusal, if it is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// IPVS as `IPVS_CMD_GET_INFO` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpvsInfo {
    /// Version code, e.g. 0x010201 for 1.2.1.
    pub version: u32,
    /// Size of the connection hash table.
    pub connection_table_size: u32,
}

impl IpvsInfo {
    /// `1.2.1`.
    pub fn version_string(&self) -> String {
        format!(
            "{}.{}.{}",
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff
        )
    }
}

/// Aborts the connection task when the client is dropped.
#[derive(Debug)]
struct Connection(JoinHandle<()>);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection to the kernel's IPVS family.
#[derive(Debug)]
pub struct IpvsClient {
    handle: ConnectionHandle<RawGenlMessage>,
    family_id: u16,
    _connection: Connection,
}

/// Resolves the family id with genetlink's resolver, on a connection of its own.
async fn resolve_family() -> Result<u16, IpvsError> {
    let (connection, handle, _) = genetlink::new_connection().map_err(IpvsError::Socket)?;
    let task = Connection(tokio::spawn(connection));
    let resolved = tokio::time::timeout(REQUEST_TIMEOUT, handle.resolve_family::<IpvsMessage>())
        .await
        .map_err(|_| IpvsError::Timeout {
            request: "resolve the IPVS family".into(),
            timeout: REQUEST_TIMEOUT,
        })?;
    drop(task);
    match resolved {
        Ok(family) => Ok(family.id),
        Err(GenetlinkError::NetlinkError(e)) if e.raw_os_error() == Some(libc_enoent()) => {
            Err(IpvsError::Unavailable(
                "the kernel has no generic netlink family IPVS (module ip_vs is not loaded)".into(),
            ))
        }
        Err(e) => Err(IpvsError::Unavailable(format!(
            "resolving the generic netlink family IPVS: {e}"
        ))),
    }
}

const fn libc_enoent() -> i32 {
    nix::libc::ENOENT
}

impl IpvsClient {
    /// Opens the socket and resolves the family. Must be called inside a tokio runtime.
    pub async fn connect() -> Result<Self, IpvsError> {
        let family_id = resolve_family().await?;
        let (mut connection, handle, _) =
            netlink_proto::new_connection::<RawGenlMessage>(NETLINK_GENERIC)
                .map_err(IpvsError::Socket)?;
        // Acknowledgements reach the answer streams, so that each change of a batch has its
        // own outcome (the kernel answers each message of a datagram in turn).
        connection.set_forward_ack(true);
        Ok(Self {
            handle,
            family_id,
            _connection: Connection(tokio::spawn(connection)),
        })
    }

    /// The family id the kernel assigned to IPVS.
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    fn raw(&self, request: &Request) -> NetlinkMessage<RawGenlMessage> {
        map_to_rawgenlmsg(request.netlink(self.family_id))
    }

    /// Sends one request and returns every message of its answer (none for a change).
    pub async fn call(&self, request: &Request) -> Result<Vec<IpvsMessage>, IpvsError> {
        let describe = || request.to_string();
        let mut answers = self
            .handle
            .request(self.raw(request), SocketAddr::new(0, 0))
            .map_err(|_| IpvsError::Closed {
                request: describe(),
            })?;
        let collect = async {
            let mut out = Vec::new();
            while let Some(raw) = answers.next().await {
                let message =
                    map_from_rawgenlmsg::<IpvsMessage>(raw).map_err(|e| IpvsError::Malformed {
                        request: describe(),
                        reason: e.to_string(),
                    })?;
                match message.payload {
                    NetlinkPayload::InnerMessage(genl) => out.push(genl.payload),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(IpvsError::Kernel {
                            request: describe(),
                            source: e.to_io(),
                        });
                    }
                    _ => {}
                }
            }
            Ok(out)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, collect)
            .await
            .map_err(|_| IpvsError::Timeout {
                request: describe(),
                timeout: REQUEST_TIMEOUT,
            })?
    }

    /// Sends changes (requests answered by an acknowledgement only) [`BATCH`] to a datagram
    /// and returns each one's outcome, in order. The kernel handles every message of a
    /// datagram in turn and acknowledges each, so a refused change does not stop the others.
    pub async fn apply(&self, requests: &[Request]) -> Vec<Result<(), IpvsError>> {
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(BATCH) {
            out.extend(self.apply_chunk(chunk).await);
        }
        out
    }

    async fn apply_chunk(&self, chunk: &[Request]) -> Vec<Result<(), IpvsError>> {
        let messages: Vec<NetlinkMessage<RawGenlMessage>> =
            chunk.iter().map(|r| self.raw(r)).collect();
        let closed = || {
            chunk
                .iter()
                .map(|r| {
                    Err(IpvsError::Closed {
                        request: r.to_string(),
                    })
                })
                .collect()
        };
        let Ok(mut answers) = self.handle.request_batch(messages, SocketAddr::new(0, 0)) else {
            return closed();
        };
        let collect = async {
            let mut outcomes: Vec<Result<(), IpvsError>> = Vec::with_capacity(chunk.len());
            while let Some(raw) = answers.next().await {
                if let NetlinkPayload::Error(e) = raw.payload
                    && let Some(request) = chunk.get(outcomes.len())
                {
                    outcomes.push(match e.code {
                        None => Ok(()),
                        Some(_) => Err(IpvsError::Kernel {
                            request: request.to_string(),
                            source: e.to_io(),
                        }),
                    });
                }
            }
            outcomes
        };
        let mut outcomes = tokio::time::timeout(REQUEST_TIMEOUT, collect)
            .await
            .unwrap_or_default();
        for request in chunk.iter().skip(outcomes.len()) {
            outcomes.push(Err(IpvsError::Timeout {
                request: request.to_string(),
                timeout: REQUEST_TIMEOUT,
            }));
        }
        outcomes
    }

    /// The IPVS version and connection table size.
    pub async fn info(&self) -> Result<IpvsInfo, IpvsError> {
        let answers = self.call(&Request::GetInfo).await?;
        let mut info = IpvsInfo {
            version: 0,
            connection_table_size: 0,
        };
        for a in answers.iter().flat_map(|m| &m.attributes) {
            match a {
                IpvsAttribute::InfoVersion(v) => info.version = *v,
                IpvsAttribute::InfoConnTabSize(n) => info.connection_table_size = *n,
                _ => {}
            }
        }
        Ok(info)
    }

    /// Every service in this network namespace.
    pub async fn services(&self) -> Result<Vec<ServiceEntry>, IpvsError> {
        let request = Request::DumpServices;
        let answers = self.call(&request).await?;
        answers
            .iter()
            .filter_map(IpvsMessage::service)
            .map(|attributes| {
                ServiceEntry::from_attributes(attributes).map_err(|e| IpvsError::Malformed {
                    request: request.to_string(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Every destination of service `key` (none when the service does not exist).
    pub async fn destinations(&self, key: ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        let request = Request::DumpDestinations(key);
        let answers = self.call(&request).await?;
        answers
            .iter()
            .filter_map(IpvsMessage::dest)
            .map(|attributes| {
                DestinationEntry::from_attributes(key.family(), attributes).map_err(|e| {
                    IpvsError::Malformed {
                        request: request.to_string(),
                        reason: e.to_string(),
                    }
                })
            })
            .collect()
    }

    /// The global connection timeouts.
    pub async fn timeouts(&self) -> Result<Timeouts, IpvsError> {
        let answers = self.call(&Request::GetConfig).await?;
        let mut out = Timeouts::default();
        for a in answers.iter().flat_map(|m| &m.attributes) {
            match a {
                IpvsAttribute::TimeoutTcp(v) => out.tcp = *v,
                IpvsAttribute::TimeoutTcpFin(v) => out.tcp_fin = *v,
                IpvsAttribute::TimeoutUdp(v) => out.udp = *v,
                _ => {}
            }
        }
        Ok(out)
    }
}
