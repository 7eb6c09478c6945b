//! From a node's `VrrpNodeSpec` to the driver's [`DesiredConfig`], instance by instance: each
//! instance is checked with the CRD's own rules (`VrrpInstance::validate`, the rule set the
//! API server and the planner use), its addresses, peers and durations are parsed, and its v2
//! password is read through a lookup. Pure; shared by every config source.
//!
//! One bad instance is rejected alone, with its reason ([`RejectedInstance`]); the others run.
//! A rejected new version of an instance the agent already runs leaves the running version in
//! place (a bad edit or an unreadable Secret never takes a VIP down); a rejected new instance
//! does not start; an instance removed from the spec always stops.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube_vrrp_crds::{
    DurationString, RejectReason, RejectedInstance, SecretKeyRef, VrrpInstance, VrrpNodeSpec,
    VrrpVersion,
};

use crate::check::host_dirs::HostAccess;
use crate::driver::{DesiredConfig, InstanceSpec};
use crate::net::announce::GarpSettings;
use crate::vrrp::packet::Authentication;
use crate::vrrp::{Family, Version};

/// The longest v2 password: the Authentication Data field is 8 bytes.
pub const PASSWORD_MAX: usize = 8;

/// What the configuration source can follow besides the spec itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Cluster mode: the API server is there, so `track.endpoints` can be followed.
    Cluster,
    /// Standalone mode: manifests only; `track.endpoints` is refused.
    Standalone,
}

/// What the agent allows besides the spec's own rules: its mode, and what it may reach on the
/// host (`--script-dir`, `--track-file-dir`). A bare [`Mode`] allows no script and tracked
/// files anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub mode: Mode,
    pub host: HostAccess,
}

impl From<Mode> for Rules {
    fn from(mode: Mode) -> Self {
        Self {
            mode,
            host: HostAccess::default(),
        }
    }
}

/// Why an instance cannot be run as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: RejectReason,
    pub message: String,
}

impl Problem {
    fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// One instance accepted: the spec it came from, the v2 password it read (as stored in the
/// Secret), and what the driver runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub source: VrrpInstance,
    pub password: Option<Vec<u8>>,
    pub spec: InstanceSpec,
}

/// Every instance of a spec, resolved: what runs (sorted by name) and what was rejected.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolution {
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<RejectedInstance>,
    /// The spec's VirtualServers, for the IPVS task (the VRRP units do not read them).
    pub virtual_servers: Vec<kube_vrrp_crds::ResolvedVirtualServer>,
}

impl Resolution {
    /// The accepted instances by name, as `previous` for the next [`resolve`].
    pub fn by_name(&self) -> BTreeMap<String, Accepted> {
        self.accepted
            .iter()
            .map(|a| (a.source.name.clone(), a.clone()))
            .collect()
    }

    /// Whether a Secret problem was met (worth trying again later: the Secret may appear, be
    /// granted, or the API recover).
    pub fn needs_secret_retry(&self) -> bool {
        self.rejected
            .iter()
            .any(|r| r.reason == RejectReason::SecretUnavailable)
    }

    /// The driver's configuration: the accepted instances, the node's addresses, the source's
    /// generation and the rejections.
    pub fn into_config(
        self,
        node_addresses: Vec<IpAddr>,
        generation: Option<i64>,
    ) -> DesiredConfig {
        DesiredConfig {
            instances: self.accepted.into_iter().map(|a| a.spec).collect(),
            node_addresses,
            generation,
            rejected: self.rejected,
            virtual_servers: self.virtual_servers,
        }
    }
}

/// Resolves every instance of `spec`. `secret` returns the bytes under a Secret key, or why
/// it cannot. A rejected instance whose name is in `previous` keeps that accepted version
/// (marked `runningPrevious`).
pub fn resolve(
    spec: &VrrpNodeSpec,
    rules: impl Into<Rules>,
    secret: &impl Fn(&SecretKeyRef) -> Result<Vec<u8>, String>,
    previous: &BTreeMap<String, Accepted>,
) -> Resolution {
    let rules = rules.into();
    let mut out = Resolution::default();
    let mut seen = std::collections::BTreeSet::new();
    for instance in &spec.instances {
        let outcome = if seen.insert(instance.name.as_str()) {
            resolve_instance(instance, &rules, secret).and_then(|accepted| {
                tracked_servers_exist(instance, spec)?;
                Ok(accepted)
            })
        } else {
            Err(Problem::new(
                RejectReason::Invalid,
                "another instance of this VrrpNode has the same name",
            ))
        };
        match outcome {
            Ok(accepted) => out.accepted.push(accepted),
            Err(problem) => {
                let kept = previous
                    .get(&instance.name)
                    .filter(|_| !out.accepted.iter().any(|a| a.source.name == instance.name));
                if let Some(kept) = kept {
                    out.accepted.push(kept.clone());
                }
                out.rejected.push(RejectedInstance {
                    name: instance.name.clone(),
                    reason: problem.reason,
                    message: problem.message,
                    running_previous: kept.is_some(),
                });
            }
        }
    }
    out.accepted
        .sort_by(|a, b| a.source.name.cmp(&b.source.name));
    out.rejected.sort_by(|a, b| a.name.cmp(&b.name));
    out.virtual_servers.clone_from(&spec.virtual_servers);
    out
}

/// The InternalIP addresses in a Node's status.
pub fn internal_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|status| status.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|address| address.type_ == "InternalIP")
        .filter_map(|address| address.address.parse().ok())
        .collect()
}

/// Resolves one instance, or says why it cannot run.
pub fn resolve_instance(
    instance: &VrrpInstance,
    rules: &Rules,
    secret: &impl Fn(&SecretKeyRef) -> Result<Vec<u8>, String>,
) -> Result<Accepted, Problem> {
    let violations = instance.validate();
    if !violations.is_empty() {
        let all: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(Problem::new(RejectReason::Invalid, all.join("; ")));
    }
    for (i, script) in instance.track.scripts.iter().enumerate() {
        let program = script.command.first().map_or("", String::as_str);
        rules.host.scripts.admit(program).map_err(|why| {
            Problem::new(
                RejectReason::ScriptNotAllowed,
                format!("track.scripts[{i}] ({}): {why}", script.name),
            )
        })?;
    }
    for (i, file) in instance.track.files.iter().enumerate() {
        rules.host.admit_track_file(&file.path).map_err(|why| {
            Problem::new(
                RejectReason::TrackFileNotAllowed,
                format!("track.files[{i}]: {why}"),
            )
        })?;
    }
    if rules.mode == Mode::Standalone && !instance.track.endpoints.is_empty() {
        return Err(Problem::new(
            RejectReason::Unsupported,
            "track.endpoints follows a Service's EndpointSlices through the Kubernetes API, \
             which standalone mode does not have; remove track.endpoints or run the agent in \
             cluster mode",
        ));
    }
    let spec = parse(instance)?;
    let (authentication, password) = match (&instance.authentication, spec.version) {
        (None, _) | (Some(_), Version::V3) => (Authentication::None, None),
        (Some(auth), Version::V2) => {
            let password = secret(&auth.password_secret_ref)
                .map_err(|message| Problem::new(RejectReason::SecretUnavailable, message))?;
            let used = trim_password(&instance.name, &password);
            let authentication = Authentication::simple_text_password(used).map_err(|error| {
                Problem::new(RejectReason::SecretUnavailable, error.to_string())
            })?;
            (authentication, Some(password))
        }
    };
    Ok(Accepted {
        source: instance.clone(),
        password,
        spec: InstanceSpec {
            authentication,
            ..spec
        },
    })
}

/// Each VirtualServer `instance` tracks must be one of its own on this node (the quorum is
/// computed by the health checks of this node's VirtualServers).
fn tracked_servers_exist(instance: &VrrpInstance, spec: &VrrpNodeSpec) -> Result<(), Problem> {
    for (i, tracked) in instance.track.virtual_servers.iter().enumerate() {
        let found = spec.virtual_servers.iter().find(|s| s.name == tracked.name);
        let message = match found {
            Some(server) if server.virtual_ip == instance.name => continue,
            Some(server) => format!(
                "track.virtualServers[{i}]: VirtualServer {} belongs to VirtualIP {}, not to \
                 this one; an instance tracks the quorum of its own VirtualServers",
                tracked.name, server.virtual_ip
            ),
            None => format!(
                "track.virtualServers[{i}]: no VirtualServer {} of this VirtualIP is deployed \
                 on this node (missing, refused, or naming another VirtualIP)",
                tracked.name
            ),
        };
        return Err(Problem::new(RejectReason::Invalid, message));
    }
    Ok(())
}

/// Parses what validation has checked into the driver's types (a v2 instance must also carry
/// IPv4: adverts of v2 have no room for IPv6).
fn parse(instance: &VrrpInstance) -> Result<InstanceSpec, Problem> {
    let invalid = |message: String| Problem::new(RejectReason::Invalid, message);
    let duration = |field: &str, value: &DurationString| {
        value
            .parse()
            .map_err(|error| invalid(format!("{field}: {:?}: {error}", value.as_str())))
    };
    let advert_interval = duration("advertInterval", &instance.advert_interval)?;
    let preempt_delay = duration("preemptDelay", &instance.preempt_delay)?;
    let garp = GarpSettings {
        delay: duration("garp.delay", &instance.garp.delay)?,
        repeat: instance.garp.repeat,
        refresh: duration("garp.refresh", &instance.garp.refresh)?,
        ..GarpSettings::default()
    };
    let addresses = instance
        .addresses
        .iter()
        .map(|text| {
            text.parse::<IpNet>()
                .map_err(|error| invalid(format!("addresses: {text:?}: {error}")))
        })
        .collect::<Result<Vec<IpNet>, Problem>>()?;
    let version = match instance.version {
        VrrpVersion::V2 => Version::V2,
        VrrpVersion::V3 => Version::V3,
    };
    if version == Version::V2
        && addresses
            .iter()
            .any(|a| Family::of(a.addr()) == Family::Ipv6)
    {
        return Err(invalid(
            "version: VRRPv2 carries IPv4 addresses only; use version 3 for IPv6".to_owned(),
        ));
    }
    let unicast_peers = instance
        .unicast_peers
        .iter()
        .map(|text| {
            text.parse::<IpAddr>()
                .map_err(|error| invalid(format!("unicastPeers: {text:?}: {error}")))
        })
        .collect::<Result<Vec<IpAddr>, Problem>>()?;
    Ok(InstanceSpec {
        name: instance.name.clone(),
        interface: instance.interface.clone(),
        vrid: instance.virtual_router_id,
        version,
        addresses,
        priority: instance.priority,
        advert_interval,
        preempt: instance.preempt,
        preempt_delay,
        accept_mode: instance.accept_mode,
        unicast_peers,
        authentication: Authentication::None,
        garp,
        sync_group: instance.sync_group.clone(),
        use_virtual_mac: instance.use_virtual_mac,
        track: instance.track.clone(),
    })
}

/// keepalived cuts a longer password to 8 bytes; so do we, to stay compatible, and say so.
fn trim_password<'p>(instance: &str, password: &'p [u8]) -> &'p [u8] {
    if password.len() > PASSWORD_MAX {
        tracing::warn!(%instance, length = password.len(), "v2 password longer than 8 bytes; only the first 8 are used, as keepalived does");
        &password[..PASSWORD_MAX]
    } else {
        password
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kube_vrrp_crds::{AuthType, Garp, ServiceRef, Track, TrackEndpoints};

    use super::*;

    fn instance(name: &str) -> VrrpInstance {
        VrrpInstance {
            name: name.into(),
            interface: None,
            virtual_router_id: 51,
            version: VrrpVersion::V3,
            addresses: vec!["10.0.0.50/24".into()],
            priority: 150,
            advert_interval: DurationString::new("100ms"),
            preempt: true,
            preempt_delay: DurationString::new("0s"),
            accept_mode: false,
            unicast_peers: Vec::new(),
            authentication: None,
            garp: Garp::default(),
            sync_group: None,
            use_virtual_mac: false,
            track: Track::default(),
        }
    }

    fn v2_with_password(name: &str) -> VrrpInstance {
        let mut legacy = instance(name);
        legacy.version = VrrpVersion::V2;
        legacy.advert_interval = DurationString::new("1s");
        legacy.authentication = Some(kube_vrrp_crds::Authentication {
            auth_type: AuthType::Pass,
            password_secret_ref: SecretKeyRef {
                namespace: "kube-vrrp".into(),
                name: "vrrp-auth".into(),
                key: "password".into(),
            },
        });
        legacy
    }

    fn spec(instances: Vec<VrrpInstance>) -> VrrpNodeSpec {
        VrrpNodeSpec {
            instances,
            virtual_servers: Vec::new(),
        }
    }

    fn no_secret(_: &SecretKeyRef) -> Result<Vec<u8>, String> {
        Err("Secret kube-vrrp/vrrp-auth not found".into())
    }

    fn names(resolution: &Resolution) -> Vec<&str> {
        resolution
            .accepted
            .iter()
            .map(|a| a.spec.name.as_str())
            .collect()
    }

    #[test]
    fn a_v3_instance_resolves_with_parsed_addresses_and_timers() {
        let r = resolve(
            &spec(vec![instance("web")]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        let web = &r.accepted[0].spec;
        assert_eq!(
            web.addresses,
            vec!["10.0.0.50/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(web.advert_interval, Duration::from_millis(100));
        assert_eq!(web.version, Version::V3);
        assert_eq!(web.garp.delay, Duration::from_secs(5));
        assert_eq!(web.garp.repeat, 5);
        assert_eq!(web.authentication, Authentication::None);
    }

    #[test]
    fn a_v2_password_is_read_from_the_secret_and_kept_as_read() {
        let r = resolve(
            &spec(vec![v2_with_password("legacy")]),
            Mode::Cluster,
            &|key: &SecretKeyRef| {
                assert_eq!(
                    (key.name.as_str(), key.key.as_str()),
                    ("vrrp-auth", "password")
                );
                Ok(b"s3cret".to_vec())
            },
            &BTreeMap::new(),
        );
        let legacy = &r.accepted[0];
        assert_eq!(
            legacy.spec.authentication,
            Authentication::simple_text_password(b"s3cret").unwrap()
        );
        assert_eq!(legacy.password.as_deref(), Some(b"s3cret".as_slice()));
    }

    #[test]
    fn a_missing_secret_rejects_only_its_instance() {
        let r = resolve(
            &spec(vec![instance("web"), v2_with_password("legacy")]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        assert_eq!(names(&r), ["web"]);
        assert_eq!(
            r.rejected,
            [RejectedInstance {
                name: "legacy".into(),
                reason: RejectReason::SecretUnavailable,
                message: "Secret kube-vrrp/vrrp-auth not found".into(),
                running_previous: false,
            }]
        );
        assert!(r.needs_secret_retry());
    }

    #[test]
    fn a_rejected_new_version_keeps_the_running_one() {
        let before = resolve(
            &spec(vec![instance("web"), instance("db")]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        let mut bad = instance("web");
        bad.advert_interval = DurationString::new("15ms");
        let mut db = instance("db");
        db.priority = 200;
        let after = resolve(
            &spec(vec![bad, db]),
            Mode::Cluster,
            &no_secret,
            &before.by_name(),
        );
        assert_eq!(names(&after), ["db", "web"]);
        assert_eq!(
            after.accepted[0].spec.priority, 200,
            "db follows the change"
        );
        assert_eq!(
            after.accepted[1], before.accepted[1],
            "web runs its previous version"
        );
        assert_eq!(after.rejected.len(), 1);
        assert_eq!(after.rejected[0].reason, RejectReason::Invalid);
        assert!(after.rejected[0].running_previous);
        assert!(
            after.rejected[0].message.contains("advertInterval"),
            "{}",
            after.rejected[0].message
        );
        assert!(!after.needs_secret_retry(), "an invalid spec stays invalid");
    }

    #[test]
    fn a_removed_instance_leaves_even_when_another_is_rejected() {
        let before = resolve(
            &spec(vec![instance("web"), instance("db")]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        let after = resolve(
            &spec(vec![v2_with_password("legacy")]),
            Mode::Cluster,
            &no_secret,
            &before.by_name(),
        );
        assert!(after.accepted.is_empty(), "web and db were removed");
        assert_eq!(after.rejected[0].name, "legacy");
    }

    #[test]
    fn an_impossible_timer_is_rejected_with_the_crd_rule() {
        let mut legacy = instance("legacy");
        legacy.version = VrrpVersion::V2;
        legacy.advert_interval = DurationString::new("1500ms");
        let r = resolve(
            &spec(vec![legacy]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        assert!(r.accepted.is_empty());
        assert_eq!(r.rejected[0].reason, RejectReason::Invalid);
        assert!(
            r.rejected[0]
                .message
                .starts_with("advertInterval: 1500ms is not a whole number"),
            "{}",
            r.rejected[0].message
        );
    }

    #[test]
    fn endpoint_trackers_are_refused_in_standalone_mode_and_kept_in_cluster_mode() {
        let mut tracked = instance("web");
        tracked.track.endpoints = vec![TrackEndpoints {
            service: ServiceRef {
                namespace: "shop".into(),
                name: "frontend".into(),
            },
            weight: Some(-30),
        }];
        let standalone = resolve(
            &spec(vec![tracked.clone()]),
            Mode::Standalone,
            &no_secret,
            &BTreeMap::new(),
        );
        assert!(standalone.accepted.is_empty());
        assert_eq!(standalone.rejected[0].reason, RejectReason::Unsupported);
        let cluster = resolve(
            &spec(vec![tracked]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        assert_eq!(cluster.accepted[0].spec.track.endpoints.len(), 1);
    }

    #[test]
    fn a_v2_instance_with_ipv6_addresses_is_rejected() {
        let mut legacy = instance("legacy");
        legacy.version = VrrpVersion::V2;
        legacy.advert_interval = DurationString::new("1s");
        legacy.addresses = vec!["2001:db8::50/64".into()];
        let r = resolve(
            &spec(vec![legacy]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        assert_eq!(r.rejected[0].reason, RejectReason::Invalid);
    }

    #[test]
    fn a_duplicate_name_is_rejected_and_the_first_runs() {
        let mut second = instance("web");
        second.virtual_router_id = 52;
        let r = resolve(
            &spec(vec![instance("web"), second]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        assert_eq!(names(&r), ["web"]);
        assert_eq!(r.accepted[0].spec.vrid, 51);
        assert_eq!(r.rejected[0].reason, RejectReason::Invalid);
        assert!(!r.rejected[0].running_previous);
    }

    #[test]
    fn a_password_longer_than_8_bytes_is_cut_like_keepalived() {
        assert_eq!(trim_password("web", b"0123456789"), b"01234567");
    }

    #[test]
    fn the_config_carries_the_generation_and_the_rejections() {
        let r = resolve(
            &spec(vec![instance("web"), v2_with_password("legacy")]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        let config = r.into_config(vec!["192.0.2.1".parse().unwrap()], Some(7));
        assert_eq!(config.generation, Some(7));
        assert_eq!(config.instances.len(), 1);
        assert_eq!(config.rejected[0].name, "legacy");
    }

    fn with_script(name: &str, program: &str) -> VrrpInstance {
        let mut vip = instance(name);
        vip.track.scripts = vec![kube_vrrp_crds::TrackScript {
            name: "chk".into(),
            command: vec![program.into(), "-q".into()],
            interval: DurationString::new("1s"),
            timeout: DurationString::new("1s"),
            rise: 1,
            fall: 1,
            weight: None,
        }];
        vip
    }

    fn with_file(name: &str, path: &str) -> VrrpInstance {
        let mut vip = instance(name);
        vip.track.files = vec![kube_vrrp_crds::TrackFile {
            path: path.into(),
            weight: None,
        }];
        vip
    }

    #[test]
    fn a_tracked_file_outside_the_mounted_directory_rejects_its_instance_alone() {
        let rules = Rules {
            mode: Mode::Cluster,
            host: HostAccess {
                track_files: Some(crate::check::host_dirs::HostDirs::track_files([
                    std::path::PathBuf::from("/etc/kube-vrrp/track"),
                ])),
                ..HostAccess::default()
            },
        };
        let r = resolve(
            &spec(vec![
                with_file("inside", "/etc/kube-vrrp/track/maintenance"),
                with_file("outside", "/etc/maintenance"),
            ]),
            rules,
            &no_secret,
            &BTreeMap::new(),
        );
        assert_eq!(names(&r), ["inside"]);
        let rejected = &r.rejected[0];
        assert_eq!(
            (rejected.name.as_str(), rejected.reason),
            ("outside", RejectReason::TrackFileNotAllowed)
        );
        assert!(
            rejected.message.contains("track.files[0]")
                && rejected.message.contains("/etc/kube-vrrp/track"),
            "{}",
            rejected.message
        );
        // Without --track-file-dir (an agent on the host), any absolute path is read.
        let anywhere = resolve(
            &spec(vec![with_file("outside", "/etc/maintenance")]),
            Mode::Standalone,
            &no_secret,
            &BTreeMap::new(),
        );
        assert_eq!(names(&anywhere), ["outside"]);
    }

    #[test]
    fn a_track_script_outside_the_allowed_directories_rejects_its_instance_alone() {
        let rules = Rules {
            mode: Mode::Cluster,
            host: HostAccess {
                scripts: crate::check::host_dirs::HostDirs::scripts([std::path::PathBuf::from(
                    "/etc/kube-vrrp/scripts",
                )]),
                track_files: None,
            },
        };
        let r = resolve(
            &spec(vec![
                with_script("inside", "/etc/kube-vrrp/scripts/chk"),
                with_script("outside", "/usr/local/bin/chk"),
            ]),
            rules,
            &no_secret,
            &BTreeMap::new(),
        );
        assert_eq!(names(&r), ["inside"]);
        assert_eq!(r.rejected.len(), 1);
        let rejected = &r.rejected[0];
        assert_eq!(
            (rejected.name.as_str(), rejected.reason),
            ("outside", RejectReason::ScriptNotAllowed)
        );
        assert!(
            rejected.message.contains("track.scripts[0] (chk)")
                && rejected.message.contains("/etc/kube-vrrp/scripts"),
            "{}",
            rejected.message
        );
        let none_allowed = resolve(
            &spec(vec![with_script("inside", "/etc/kube-vrrp/scripts/chk")]),
            Mode::Cluster,
            &no_secret,
            &BTreeMap::new(),
        );
        assert!(none_allowed.rejected[0].message.contains("--script-dir"));
    }

    #[test]
    fn a_tracked_virtual_server_must_be_one_of_the_instances_own_on_this_node() {
        let server = |name: &str, vip: &str| -> kube_vrrp_crds::ResolvedVirtualServer {
            serde_json::from_value(serde_json::json!({
                "name": name, "virtualIP": vip, "addresses": ["10.0.0.50"], "port": 80,
                "protocol": "TCP", "scheduler": "wlc", "forwarding": "NAT", "realServers": []
            }))
            .unwrap()
        };
        let tracking = |name: &str, tracked: &str| {
            let mut vip = instance(name);
            vip.track.virtual_servers = vec![kube_vrrp_crds::TrackVirtualServer {
                name: tracked.into(),
                weight: Some(-50),
            }];
            vip
        };
        let mut other = tracking("other", "web-80");
        other.virtual_router_id = 52;
        other.addresses = vec!["10.0.0.60/24".into()];
        let mut missing = tracking("missing", "nowhere");
        missing.virtual_router_id = 53;
        missing.addresses = vec!["10.0.0.70/24".into()];
        let node = VrrpNodeSpec {
            instances: vec![tracking("web", "web-80"), other, missing],
            virtual_servers: vec![server("web-80", "web")],
        };
        let r = resolve(&node, Mode::Cluster, &no_secret, &BTreeMap::new());
        assert_eq!(names(&r), ["web"]);
        let reasons: Vec<(&str, RejectReason, bool)> = r
            .rejected
            .iter()
            .map(|x| {
                (
                    x.name.as_str(),
                    x.reason,
                    x.message.contains("track.virtualServers[0]"),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            [
                ("missing", RejectReason::Invalid, true),
                ("other", RejectReason::Invalid, true)
            ]
        );
    }
}
