//! Which IPVS services are this agent's. A service is ours when both hold:
//! - it is listed in the agent's record (a JSON file on the node, written before a service is
//!   added and after one is deleted), and
//! - the kernel shows it with [`OWNER_MARK`] among its flags: a bit of `IP_VS_SVC_F_*` the
//!   kernel does not use, stores as given and reports back, and ipvsadm neither shows nor
//!   sets. A service replaced or edited with ipvsadm loses the mark (ipvsadm writes the
//!   whole flag word), and so stops being ours.
//!
//! Everything else — kube-proxy's services, an administrator's — is never edited, deleted or
//! flushed. A marked service missing from the record (the record was lost) is adopted only
//! when the configuration wants exactly that service; otherwise it is left alone.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{ServiceEntry, ServiceKey};
use super::packet::{AddressFamily, Protocol};

/// The service flag that marks kube-vrrp's services (bit 24; the kernel defines bits 0–5).
pub const OWNER_MARK: u32 = 1 << 24;

/// The record's file name in the agent's state folder.
pub const RECORD_FILE: &str = "ipvs-services.json";

/// The services this agent recorded as its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub services: BTreeSet<ServiceKey>,
}

/// One service as written in the record file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordedService {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RecordFile {
    version: u32,
    services: Vec<RecordedService>,
}

fn protocol_of(name: &str) -> Option<Protocol> {
    match name {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        other => other.parse().ok().map(Protocol::Other),
    }
}

fn protocol_name(p: Protocol) -> String {
    match p {
        Protocol::Other(n) => n.to_string(),
        known => known.as_str().to_owned(),
    }
}

impl Record {
    /// The record as JSON.
    pub fn to_json(&self) -> String {
        let file = RecordFile {
            version: 1,
            services: self
                .services
                .iter()
                .map(|key| match *key {
                    ServiceKey::Address {
                        protocol,
                        address,
                        port,
                    } => RecordedService {
                        protocol: Some(protocol_name(protocol)),
                        address: Some(address),
                        port: Some(port),
                        fwmark: None,
                        ipv6: None,
                    },
                    ServiceKey::FirewallMark { family, mark } => RecordedService {
                        protocol: None,
                        address: None,
                        port: None,
                        fwmark: Some(mark),
                        ipv6: Some(family == AddressFamily::Inet6),
                    },
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Reads a record; entries it cannot read are dropped (never ours, then).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let file: RecordFile = serde_json::from_str(text)?;
        let services = file
            .services
            .into_iter()
            .filter_map(|s| match (s.fwmark, s.protocol, s.address, s.port) {
                (Some(mark), ..) => Some(ServiceKey::FirewallMark {
                    family: if s.ipv6 == Some(true) {
                        AddressFamily::Inet6
                    } else {
                        AddressFamily::Inet
                    },
                    mark,
                }),
                (None, Some(p), Some(address), Some(port)) => Some(ServiceKey::Address {
                    protocol: protocol_of(&p)?,
                    address,
                    port,
                }),
                _ => None,
            })
            .collect();
        Ok(Self { services })
    }

    /// Reads the record at `path`; a missing file is an empty record.
    pub fn load(path: &Path) -> io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(&text).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the record to `path` atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)
    }
}

/// Whose each service in the kernel is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Recorded and marked: ours.
    pub owned: BTreeSet<ServiceKey>,
    /// Marked but not recorded, and wanted: adopted (the record was lost).
    pub adopted: BTreeSet<ServiceKey>,
    /// Recorded but unmarked in the kernel: replaced or edited by someone else; no longer ours.
    pub disowned: BTreeSet<ServiceKey>,
    /// Recorded but absent from the kernel: gone (removed by someone, or a reboot).
    pub vanished: BTreeSet<ServiceKey>,
}

impl Ownership {
    /// Every service this agent may change.
    pub fn ours(&self) -> BTreeSet<ServiceKey> {
        self.owned.union(&self.adopted).copied().collect()
    }
}

/// Sorts the kernel's `services` by owner, given the `record` and the `wanted` keys.
pub fn classify(
    record: &Record,
    services: &[ServiceEntry],
    wanted: &BTreeSet<ServiceKey>,
) -> Ownership {
    let mut out = Ownership::default();
    for entry in services {
        let key = entry.service.key;
        let marked = entry.service.settings.flags & OWNER_MARK != 0;
        let recorded = record.services.contains(&key);
        match (recorded, marked) {
            (true, true) => {
                out.owned.insert(key);
            }
            (false, true) if wanted.contains(&key) => {
                out.adopted.insert(key);
            }
            (true, false) => {
                out.disowned.insert(key);
            }
            _ => {}
        }
    }
    for key in &record.services {
        if !services.iter().any(|s| s.service.key == *key) {
            out.vanished.insert(*key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::model::{Service, ServiceSettings};
    use crate::ipvs::packet::Scheduler;

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Address {
            protocol: Protocol::Tcp,
            address: "192.0.2.1".parse().unwrap(),
            port,
        }
    }

    fn entry(port: u16, flags: u32) -> ServiceEntry {
        ServiceEntry {
            service: Service {
                key: key(port),
                settings: ServiceSettings {
                    scheduler: Scheduler::RoundRobin,
                    flags,
                    timeout: 0,
                    netmask: u32::MAX,
                    persistence_engine: None,
                },
            },
            counters: crate::ipvs::packet::stats::Counters::default(),
        }
    }

    #[test]
    fn only_recorded_and_marked_services_are_owned() {
        let record = Record {
            services: [key(80), key(81), key(83)].into(),
        };
        let kernel = [
            entry(80, OWNER_MARK),
            entry(81, 0),
            entry(82, OWNER_MARK),
            entry(84, 0),
        ];
        let ownership = classify(&record, &kernel, &BTreeSet::new());
        assert_eq!(ownership.owned, [key(80)].into());
        assert_eq!(
            ownership.disowned,
            [key(81)].into(),
            "unmarked: edited by someone else"
        );
        assert_eq!(ownership.vanished, [key(83)].into());
        assert!(
            ownership.adopted.is_empty(),
            "marked but unrecorded and unwanted: left alone"
        );
    }

    #[test]
    fn a_marked_service_missing_from_a_lost_record_is_adopted_when_wanted() {
        let kernel = [entry(82, OWNER_MARK), entry(84, 0)];
        let wanted: BTreeSet<ServiceKey> = [key(82), key(84)].into();
        let ownership = classify(&Record::default(), &kernel, &wanted);
        assert_eq!(ownership.adopted, [key(82)].into());
        assert_eq!(
            ownership.ours(),
            [key(82)].into(),
            "an unmarked service is never adopted"
        );
    }

    #[test]
    fn the_record_reads_back_what_it_wrote() {
        let record = Record {
            services: [
                key(80),
                ServiceKey::Address {
                    protocol: Protocol::Sctp,
                    address: "2001:db8::1".parse().unwrap(),
                    port: 5000,
                },
                ServiceKey::FirewallMark {
                    family: AddressFamily::Inet6,
                    mark: 7,
                },
            ]
            .into(),
        };
        assert_eq!(Record::from_json(&record.to_json()).unwrap(), record);
    }
}
