//! What one real server's check runs, built from the VirtualServer's `healthCheck`: a TCP
//! connect, an HTTP(S) GET or a script, with the timers of [`CheckTimers`]. Building refuses
//! a check that cannot run here (a script outside the allowed directories, a CA bundle
//! without a certificate), with the reason, so the VirtualServer is refused alone.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kube_vrrp_crds::{HealthCheck, ResolvedRealServer, ResolvedVirtualServer};

use super::attempt::{Plain, run_alone};
use super::command::{ADDRESS_VARIABLE, CommandProbe, PORT_VARIABLE};
use super::http::{HttpProbe, host_header};
use super::machine::CheckTimers;
use super::outcome::Outcome;
use super::tcp::{Connect, TcpProbe};
use super::tls::{TlsClient, Trust, client_config, server_name};
use crate::check::host_dirs::HostDirs;

/// What one attempt runs.
#[derive(Debug, Clone)]
pub enum HealthProbe {
    Tcp(TcpProbe),
    Http(HttpProbe),
    Command(CommandProbe),
}

impl HealthProbe {
    /// One attempt, at most `timeout` long.
    pub async fn attempt(&self, timeout: Duration) -> Outcome {
        self.attempt_reading_into(timeout, &mut Vec::new()).await
    }

    /// One attempt, at most `timeout` long, reading an answer into `buffer`: a check that keeps
    /// its buffer from one attempt to the next allocates none for reading.
    pub async fn attempt_reading_into(&self, timeout: Duration, buffer: &mut Vec<u8>) -> Outcome {
        match self {
            Self::Tcp(probe) => run_alone(Plain::Tcp(probe), timeout, buffer).await,
            Self::Http(probe) if probe.tls.is_none() => {
                run_alone(Plain::Http(probe), timeout, buffer).await
            }
            Self::Http(probe) => probe.attempt(timeout, buffer).await,
            Self::Command(probe) => probe.attempt(timeout).await,
        }
    }

    /// The `kind` label of the duration histogram.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tcp(_) => "tcp",
            Self::Http(probe) if probe.tls.is_some() => "https",
            Self::Http(_) => "http",
            Self::Command(_) => "script",
        }
    }
}

/// The checks of one VirtualServer's real servers, ready to run.
#[derive(Debug, Clone)]
pub struct Checks {
    pub timers: CheckTimers,
    /// One probe per real server, in the order of `real_servers`, keyed by address and port.
    pub probes: Vec<((IpAddr, u16), Arc<HealthProbe>)>,
}

/// The timers of `check`; a duration that does not parse (validation refuses those) is an
/// error.
pub fn timers(check: &HealthCheck) -> Result<CheckTimers, String> {
    let parse = |field: &str, value: &kube_vrrp_crds::DurationString| {
        value
            .parse()
            .map_err(|e| format!("healthCheck.{field}: {e}"))
    };
    Ok(CheckTimers {
        interval: parse("interval", &check.interval)?,
        timeout: parse("timeout", &check.timeout)?,
        attempts: check.retries.max(1),
        retry_delay: parse("delayBeforeRetry", &check.delay_before_retry)?,
        rise: check.rise,
        fall: check.fall,
    })
}

/// The checks of `server` (`None` without a `healthCheck`), or why they cannot run here.
pub fn checks(server: &ResolvedVirtualServer, dirs: &HostDirs) -> Result<Option<Checks>, String> {
    let Some(check) = &server.health_check else {
        return Ok(None);
    };
    let timers = timers(check)?;
    let source = match &check.source_address {
        Some(text) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| format!("healthCheck.sourceAddress {text:?} is not an IP address"))?,
        ),
        None => None,
    };
    let tls = match &check.http {
        Some(http) if http.https => {
            let trust = match (&http.ca_bundle, http.verify_certificate) {
                (_, false) => Trust::Any,
                (Some(bundle), true) => Trust::Bundle(bundle.clone()),
                (None, true) => Trust::System,
            };
            Some((
                client_config(&trust).map_err(|e| format!("healthCheck.http: {e}"))?,
                http.verify_certificate,
            ))
        }
        _ => None,
    };
    if let Some(script) = &check.script {
        let program = script.command.first().map_or("", String::as_str);
        dirs.admit(program)
            .map_err(|why| format!("healthCheck.script: {why}"))?;
    }
    let mut probes = Vec::with_capacity(server.real_servers.len());
    for rs in &server.real_servers {
        let address: IpAddr = rs
            .address
            .parse()
            .map_err(|_| format!("real server {:?} is not an IP address", rs.address))?;
        let probe = probe(check, rs, address, source, tls.as_ref(), dirs)?;
        probes.push(((address, rs.port), Arc::new(probe)));
    }
    Ok(Some(Checks { timers, probes }))
}

fn probe(
    check: &HealthCheck,
    rs: &ResolvedRealServer,
    address: IpAddr,
    source: Option<IpAddr>,
    tls: Option<&(Arc<rustls::ClientConfig>, bool)>,
    dirs: &HostDirs,
) -> Result<HealthProbe, String> {
    if let Some(tcp) = &check.tcp {
        return Ok(HealthProbe::Tcp(TcpProbe {
            connect: Connect {
                target: SocketAddr::new(address, tcp.port.unwrap_or(rs.port)),
                source,
            },
        }));
    }
    if let Some(http) = &check.http {
        let port = http.port.unwrap_or(rs.port);
        let host = http.host.clone().unwrap_or_else(|| address.to_string());
        let tls = match tls {
            Some((config, verified)) => {
                let name = server_name(http.host.as_deref(), address)
                    .map_err(|e| format!("healthCheck.http.host: {e}"))?;
                Some(TlsClient::new(Arc::clone(config), name, *verified))
            }
            None => None,
        };
        let digest =
            match &http.body_digest {
                Some(text) => {
                    let bytes = hex::decode(text)
                        .map_err(|_| format!("healthCheck.http.bodyDigest {text:?} is not hex"))?;
                    Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                        format!("healthCheck.http.bodyDigest {text:?} is not 32 bytes")
                    })?)
                }
                None => None,
            };
        return Ok(HealthProbe::Http(HttpProbe::new(
            Connect {
                target: SocketAddr::new(address, port),
                source,
            },
            tls,
            &http.path,
            &host_header(&host, port, http.https),
            http.expected_status.clone(),
            digest,
            u64::from(http.max_body_bytes),
        )?));
    }
    if let Some(script) = &check.script {
        return Ok(HealthProbe::Command(CommandProbe {
            argv: script.command.clone(),
            env: vec![
                (ADDRESS_VARIABLE, address.to_string()),
                (PORT_VARIABLE, rs.port.to_string()),
            ],
            dirs: dirs.clone(),
        }));
    }
    Err("healthCheck needs one of tcp, http or script".to_owned())
}
