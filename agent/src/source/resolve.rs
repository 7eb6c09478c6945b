//! From a node's `VrrpNodeSpec` to the driver's [`DesiredConfig`]: parse addresses, peers and
//! durations, read v2 passwords through a lookup. Pure; shared by every config source.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube_vrrp_crds::{DurationString, SecretKeyRef, VrrpInstance, VrrpNodeSpec, VrrpVersion};

use crate::driver::{DesiredConfig, InstanceSpec};
use crate::net::announce::GarpSettings;
use crate::vrrp::packet::Authentication;
use crate::vrrp::{Family, Version};

/// The longest v2 password: the Authentication Data field is 8 bytes.
pub const PASSWORD_MAX: usize = 8;

/// One field of one instance that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProblem {
    pub instance: String,
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for InstanceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "instance {}: {}: {}",
            self.instance, self.field, self.message
        )
    }
}

/// Resolves every instance of `spec`. `secret` returns the bytes under a Secret key. Any
/// problem rejects the whole configuration (the caller keeps the last good one), and every
/// problem is listed.
pub fn desired_config<'a>(
    spec: &VrrpNodeSpec,
    node_addresses: Vec<IpAddr>,
    secret: impl Fn(&SecretKeyRef) -> Option<&'a [u8]>,
) -> Result<DesiredConfig, Vec<InstanceProblem>> {
    let mut instances = Vec::with_capacity(spec.instances.len());
    let mut problems = Vec::new();
    for instance in &spec.instances {
        match resolve_instance(instance, &secret) {
            Ok(resolved) => instances.push(resolved),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if problems.is_empty() {
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(DesiredConfig {
            instances,
            node_addresses,
        })
    } else {
        Err(problems)
    }
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

fn resolve_instance<'a>(
    instance: &VrrpInstance,
    secret: &impl Fn(&SecretKeyRef) -> Option<&'a [u8]>,
) -> Result<InstanceSpec, Vec<InstanceProblem>> {
    let mut problems = Vec::new();
    let mut problem = |field: &'static str, message: String| {
        problems.push(InstanceProblem {
            instance: instance.name.clone(),
            field,
            message,
        });
    };
    let mut duration = |field: &'static str, value: &DurationString| match value.parse() {
        Ok(duration) => duration,
        Err(error) => {
            problem(field, format!("{:?}: {error}", value.as_str()));
            std::time::Duration::ZERO
        }
    };
    let advert_interval = duration("advertInterval", &instance.advert_interval);
    let preempt_delay = duration("preemptDelay", &instance.preempt_delay);
    let garp = GarpSettings {
        delay: duration("garp.delay", &instance.garp.delay),
        repeat: instance.garp.repeat,
        refresh: duration("garp.refresh", &instance.garp.refresh),
        ..GarpSettings::default()
    };
    let mut addresses = Vec::with_capacity(instance.addresses.len());
    for text in &instance.addresses {
        match text.parse::<IpNet>() {
            Ok(address) => addresses.push(address),
            Err(error) => problem("addresses", format!("{text:?}: {error}")),
        }
    }
    if addresses.is_empty() {
        problem("addresses", "no virtual address".into());
    }
    let families: Vec<Family> = addresses.iter().map(|a| Family::of(a.addr())).collect();
    if families.windows(2).any(|pair| pair[0] != pair[1]) {
        problem("addresses", "IPv4 and IPv6 mixed in one instance".into());
    }
    let version = match instance.version {
        VrrpVersion::V2 => Version::V2,
        VrrpVersion::V3 => Version::V3,
    };
    if version == Version::V2 && families.contains(&Family::Ipv6) {
        problem("version", "VRRP v2 carries IPv4 only".into());
    }
    let mut unicast_peers = Vec::with_capacity(instance.unicast_peers.len());
    for text in &instance.unicast_peers {
        match text.parse::<IpAddr>() {
            Ok(peer) => unicast_peers.push(peer),
            Err(error) => problem("unicastPeers", format!("{text:?}: {error}")),
        }
    }
    let authentication = match (&instance.authentication, version) {
        (None, _) | (Some(_), Version::V3) => Authentication::None,
        (Some(auth), Version::V2) => {
            let key = &auth.password_secret_ref;
            if let Some(password) = secret(key) {
                let password = trim_password(&instance.name, password);
                Authentication::simple_text_password(password).unwrap_or(Authentication::None)
            } else {
                problem(
                    "authentication",
                    format!(
                        "Secret {}/{} has no key {:?}",
                        key.namespace, key.name, key.key
                    ),
                );
                Authentication::None
            }
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
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
        authentication,
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

    use kube_vrrp_crds::{AuthType, Garp, Track};

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

    fn spec(instances: Vec<VrrpInstance>) -> VrrpNodeSpec {
        VrrpNodeSpec {
            instances,
            virtual_servers: Vec::new(),
        }
    }

    #[test]
    fn a_v3_instance_resolves_with_parsed_addresses_and_timers() {
        let config = desired_config(&spec(vec![instance("web")]), Vec::new(), |_| None).unwrap();
        let web = &config.instances[0];
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
    fn a_v2_password_is_read_from_the_secret() {
        let mut web = instance("web");
        web.version = VrrpVersion::V2;
        web.advert_interval = DurationString::new("1s");
        web.authentication = Some(kube_vrrp_crds::Authentication {
            auth_type: AuthType::Pass,
            password_secret_ref: SecretKeyRef {
                namespace: "kube-vrrp".into(),
                name: "vrrp-auth".into(),
                key: "password".into(),
            },
        });
        let config = desired_config(&spec(vec![web.clone()]), Vec::new(), |key| {
            (key.name == "vrrp-auth" && key.key == "password").then_some(b"s3cret".as_slice())
        })
        .unwrap();
        assert_eq!(
            config.instances[0].authentication,
            Authentication::simple_text_password(b"s3cret").unwrap()
        );
        let missing = desired_config(&spec(vec![web]), Vec::new(), |_| None).unwrap_err();
        assert_eq!(missing[0].field, "authentication");
    }

    #[test]
    fn a_password_longer_than_8_bytes_is_cut_like_keepalived() {
        assert_eq!(trim_password("web", b"0123456789"), b"01234567");
    }

    #[test]
    fn every_bad_field_is_reported_and_the_whole_config_rejected() {
        let mut bad = instance("bad");
        bad.addresses = vec!["not-an-address".into()];
        bad.advert_interval = DurationString::new("soon");
        let problems =
            desired_config(&spec(vec![instance("good"), bad]), Vec::new(), |_| None).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert!(
            fields.contains(&"addresses") && fields.contains(&"advertInterval"),
            "{problems:?}"
        );
        assert!(problems.iter().all(|p| p.instance == "bad"));
    }

    #[test]
    fn mixed_families_are_rejected() {
        let mut mixed = instance("mixed");
        mixed.addresses = vec!["10.0.0.50/24".into(), "2001:db8::50/64".into()];
        let problems = desired_config(&spec(vec![mixed]), Vec::new(), |_| None).unwrap_err();
        assert_eq!(problems[0].field, "addresses");
    }
}
