//! The CEL rules (`x-kubernetes-validations`) the API server enforces, and the schemars
//! transforms that put them into the generated schemas.
//!
//! Every rule here has a twin in a `validate()` (see `validation.rs`); tests check both.
//!
//! The API server refuses a CRD whose rules' estimated cost is too high, and the estimate of
//! `duration()` over a computed string is unbounded: durations are compared as nanoseconds
//! (`int(duration(...))`), never re-parsed from strings built in the rule.

use kube::core::Rule;
use schemars::Schema;

/// One CEL rule with the message shown when it fails and the field it points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CelRule {
    /// The CEL expression; `self` is the object the rule is attached to.
    pub rule: &'static str,
    /// What the user reads when the rule fails.
    pub message: &'static str,
    /// The relative JSON path reported with the failure (e.g. `.addresses`), if any.
    pub field_path: Option<&'static str>,
}

/// `version` is 2. The default (3) applies when the field is absent.
macro_rules! is_v2 {
    () => {
        "(has(self.version) && self.version == 2)"
    };
}

/// VRRPv2 carries the interval in whole seconds (RFC 3768): on a VirtualIP and a pool's `vrrp`.
const V2_ADVERT_INTERVAL: CelRule = CelRule {
    rule: concat!(
        "!",
        is_v2!(),
        " || !has(self.advertInterval) || ",
        "(duration(self.advertInterval) >= duration('1s') && ",
        "duration(self.advertInterval) <= duration('255s') && ",
        "int(duration(self.advertInterval)) % 1000000000 == 0)"
    ),
    message: "with version 2, advertInterval must be whole seconds from 1s to 255s",
    field_path: Some(".advertInterval"),
};

/// VRRPv3 carries it in centiseconds, 12 bits (RFC 5798): on a VirtualIP and a pool's `vrrp`.
const V3_ADVERT_INTERVAL: CelRule = CelRule {
    rule: concat!(
        is_v2!(),
        " || !has(self.advertInterval) || ",
        "(duration(self.advertInterval) >= duration('10ms') && ",
        "duration(self.advertInterval) <= duration('40950ms') && ",
        "int(duration(self.advertInterval)) % 10000000 == 0)"
    ),
    message: "with version 3, advertInterval must be a multiple of 10ms from 10ms to 40.95s",
    field_path: Some(".advertInterval"),
};

/// Rules on `VirtualIP.spec`.
pub const VIRTUAL_IP_SPEC: &[CelRule] = &[
    CelRule {
        rule: "self.addresses.all(a, isCIDR(a))",
        message: "every address must be a CIDR with a prefix length, e.g. 10.0.0.50/24 or 2001:db8::50/64",
        field_path: Some(".addresses"),
    },
    CelRule {
        rule: "self.addresses.size() == 0 || !isCIDR(self.addresses[0]) || \
               self.addresses.all(a, !isCIDR(a) || \
               cidr(a).ip().family() == cidr(self.addresses[0]).ip().family())",
        message: "addresses must all be IPv4 or all be IPv6; use a second VirtualIP for the other family",
        field_path: Some(".addresses"),
    },
    V2_ADVERT_INTERVAL,
    V3_ADVERT_INTERVAL,
    CelRule {
        rule: concat!("!has(self.authentication) || ", is_v2!()),
        message: "authentication exists only in VRRPv2; set version: 2 or remove authentication",
        field_path: Some(".authentication"),
    },
];

/// Rules on `VirtualIP.spec` about its virtual router (kept apart from
/// [`VIRTUAL_IP_SPEC`], the rules a VirtualIP shares with every instance planned from it).
pub const VIRTUAL_ROUTER: &[CelRule] = &[CelRule {
    rule: "!has(self.virtualRouter) || \
           self.virtualRouter.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
    message: "virtualRouter must be a name of lower-case letters, digits, '-' and '.', starting \
              and ending with a letter or digit",
    field_path: Some(".virtualRouter"),
}];

/// An entry of `VirtualIPPool.spec.addresses` that is a range: two IP addresses joined by `-`.
macro_rules! is_range {
    ($a:literal) => {
        concat!(
            "(",
            $a,
            ".split('-').size() == 2 && isIP(",
            $a,
            ".split('-')[0]) && isIP(",
            $a,
            ".split('-')[1]))"
        )
    };
}

/// Rules on `VirtualIPPool.spec`. One rule of `VirtualIpPoolSpec::validate` has no twin here:
/// a range must start at its lower address, and CEL cannot order IP addresses; the operator
/// refuses such a pool (condition Ready=False, reason Invalid).
pub const VIRTUAL_IP_POOL_SPEC: &[CelRule] = &[
    CelRule {
        rule: concat!("self.addresses.all(a, isCIDR(a) || ", is_range!("a"), ")"),
        message: "every address block must be a CIDR (192.168.10.0/24) or a range of two \
                  addresses (192.168.10.100-192.168.10.150)",
        field_path: Some(".addresses"),
    },
    CelRule {
        rule: "self.addresses.all(a, !isCIDR(a) || cidr(a) == cidr(a).masked())",
        message: "a CIDR must name a network, not an address inside it: write \
                  192.168.10.0/24, or 192.168.10.5/32 for one address",
        field_path: Some(".addresses"),
    },
    CelRule {
        rule: concat!(
            "self.addresses.all(a, !",
            is_range!("a"),
            " || ip(a.split('-')[0]).family() == ip(a.split('-')[1]).family())"
        ),
        message: "a range is of one family: both ends IPv4 or both IPv6",
        field_path: Some(".addresses"),
    },
    CelRule {
        rule: "!(has(self.vrrp) && has(self.vrrp.version) && self.vrrp.version == 2) || \
               self.addresses.all(a, !a.contains(':'))",
        message: "VRRPv2 carries IPv4 addresses only, and the pool has IPv6 blocks; use \
                  version 3, or a second pool for IPv6",
        field_path: Some(".vrrp.version"),
    },
];

/// Rules on `VirtualIPPool.spec.vrrp`.
pub const POOL_VRRP: &[CelRule] = &[V2_ADVERT_INTERVAL, V3_ADVERT_INTERVAL];

/// Rules on each `VirtualIP.spec.priorities[]` entry.
pub const PRIORITY_RULE: &[CelRule] = &[CelRule {
    rule: "has(self.nodeName) != has(self.nodeSelector)",
    message: "each priorities entry needs exactly one of nodeName or nodeSelector",
    field_path: None,
}];

/// Rules on each requirement (`matchExpressions[]`) of every label selector in the CRDs,
/// added by `crd_yaml` together with the operator enum and the list bounds.
pub const LABEL_SELECTOR_REQUIREMENT: &[CelRule] = &[CelRule {
    rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && self.values.size() > 0) : \
           (!has(self.values) || self.values.size() == 0)",
    message: "operators In and NotIn need at least one value (without one the selector matches \
              no node); Exists and DoesNotExist take none",
    field_path: Some(".values"),
}];

/// Rules on `VirtualServer.spec`.
pub const VIRTUAL_SERVER_SPEC: &[CelRule] = &[
    CelRule {
        rule: "(has(self.realServers) && self.realServers.size() > 0) || has(self.backendRef)",
        message: "a VirtualServer needs realServers, a backendRef, or both",
        field_path: None,
    },
    CelRule {
        rule: "!has(self.persistenceTimeout) || \
               int(duration(self.persistenceTimeout)) % 1000000000 == 0",
        message: "persistenceTimeout must be whole seconds, e.g. 300s",
        field_path: Some(".persistenceTimeout"),
    },
    CelRule {
        rule: "!has(self.schedulerFlags) || self.schedulerFlags.size() == 0 || \
               (has(self.scheduler) && (self.scheduler == 'sh' || self.scheduler == 'mh'))",
        message: "schedulerFlags apply to the sh and mh schedulers only",
        field_path: Some(".schedulerFlags"),
    },
    CelRule {
        rule: "!has(self.persistenceGranularity) || has(self.persistenceTimeout)",
        message: "persistenceGranularity needs persistenceTimeout",
        field_path: Some(".persistenceGranularity"),
    },
    CelRule {
        rule: "!has(self.tunnel) || (has(self.forwarding) && self.forwarding == 'TUN')",
        message: "tunnel applies to forwarding: TUN only",
        field_path: Some(".tunnel"),
    },
    CelRule {
        rule: "!has(self.healthCheck) || !has(self.healthCheck.sourceAddress) || \
               !isIP(self.healthCheck.sourceAddress) || !has(self.realServers) || \
               self.realServers.all(r, !isIP(r.address) || \
               ip(r.address).family() == ip(self.healthCheck.sourceAddress).family())",
        message: "every real server must be of healthCheck.sourceAddress's family: checks \
                  connect from that address",
        field_path: Some(".healthCheck.sourceAddress"),
    },
];

/// Rules on `VirtualServer.spec.tunnel`.
pub const TUNNEL: &[CelRule] = &[
    CelRule {
        rule: "(has(self.type) && self.type == 'GUE') == has(self.port)",
        message: "port is required for GUE tunnels and refused for others",
        field_path: Some(".port"),
    },
    CelRule {
        rule: "!has(self.checksum) || self.checksum != 'RemoteChecksum' || \
               (has(self.type) && self.type == 'GUE')",
        message: "RemoteChecksum is a GUE option",
        field_path: Some(".checksum"),
    },
    CelRule {
        rule: "!has(self.checksum) || self.checksum != 'Checksum' || \
               (has(self.type) && self.type != 'IPIP')",
        message: "IPIP has no checksum option",
        field_path: Some(".checksum"),
    },
];

/// Rules on a real server or backend reference with connection thresholds.
pub const THRESHOLDS: &[CelRule] = &[CelRule {
    rule: "!has(self.lowerThreshold) || \
           (has(self.upperThreshold) && self.lowerThreshold < self.upperThreshold)",
    message: "lowerThreshold needs an upperThreshold above it",
    field_path: Some(".lowerThreshold"),
}];

/// Rules on a real server or sorry server (`address` must be an IP).
pub const SERVER_ADDRESS: &[CelRule] = &[CelRule {
    rule: "isIP(self.address)",
    message: "address must be an IP address, e.g. 10.0.0.10 or 2001:db8::10",
    field_path: Some(".address"),
}];

/// Rules on `VirtualServer.spec.healthCheck`.
pub const HEALTH_CHECK: &[CelRule] = &[
    CelRule {
        rule: "[has(self.tcp), has(self.http), has(self.script)].filter(x, x).size() == 1",
        message: "healthCheck needs exactly one of tcp, http or script",
        field_path: None,
    },
    CelRule {
        rule: "!has(self.sourceAddress) || isIP(self.sourceAddress)",
        message: "sourceAddress must be an IP address of this node",
        field_path: Some(".sourceAddress"),
    },
    CelRule {
        rule: "!has(self.sourceAddress) || !has(self.script)",
        message: "a script check does not connect: sourceAddress applies to tcp and http checks only",
        field_path: Some(".sourceAddress"),
    },
    CelRule {
        rule: "!has(self.interval) || duration(self.interval) > duration('0s')",
        message: "interval must be more than 0",
        field_path: Some(".interval"),
    },
    CelRule {
        rule: "!has(self.timeout) || duration(self.timeout) > duration('0s')",
        message: "timeout must be more than 0",
        field_path: Some(".timeout"),
    },
];

/// Rules on `VirtualServer.spec.healthCheck.http`.
pub const HTTP_CHECK: &[CelRule] = &[
    CelRule {
        rule: "!has(self.host) || isIP(self.host) || self.host.matches(\
               '^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$')",
        message: "host must be a host name or an IP address, without a port",
        field_path: Some(".host"),
    },
    CelRule {
        rule: "!has(self.verifyCertificate) || !self.verifyCertificate || \
               (has(self.https) && self.https)",
        message: "verifyCertificate applies to HTTPS: set https: true",
        field_path: Some(".verifyCertificate"),
    },
    CelRule {
        rule: "!has(self.caBundle) || (has(self.verifyCertificate) && self.verifyCertificate)",
        message: "caBundle is used only to verify certificates: set verifyCertificate: true",
        field_path: Some(".caBundle"),
    },
    CelRule {
        // startsWith, not contains: its cost is the prefix's, not the 32 KiB bundle's, which
        // times the VrrpNode's 1,024 virtual servers exceeded the API server's CEL budget.
        rule: "!has(self.caBundle) || self.caBundle.startsWith('-----BEGIN CERTIFICATE-----')",
        message: "caBundle must hold PEM certificates, starting with -----BEGIN CERTIFICATE-----",
        field_path: Some(".caBundle"),
    },
];

/// Rules on a script's `command` (health checks and track scripts).
pub const SCRIPT_COMMAND: &[CelRule] = &[CelRule {
    rule: "self.command.size() == 0 || self.command[0].startsWith('/')",
    message: "command[0] must be the program's absolute path: scripts run only from the \
              directories the agent allows (its --script-dir)",
    field_path: Some(".command"),
}];

/// Every rule set, for tests that check the generated YAML.
pub const ALL: &[&[CelRule]] = &[
    VIRTUAL_IP_SPEC,
    VIRTUAL_ROUTER,
    VIRTUAL_IP_POOL_SPEC,
    POOL_VRRP,
    PRIORITY_RULE,
    LABEL_SELECTOR_REQUIREMENT,
    VIRTUAL_SERVER_SPEC,
    SERVER_ADDRESS,
    HEALTH_CHECK,
    HTTP_CHECK,
    SCRIPT_COMMAND,
    TUNNEL,
    THRESHOLDS,
];

fn apply(schema: &mut Schema, rules: &[CelRule]) {
    for r in rules {
        let mut rule = Rule::new(r.rule).message(r.message);
        if let Some(path) = r.field_path {
            rule = rule.field_path(path);
        }
        // Serialising a `Rule` of plain strings into a JSON object cannot fail.
        let _ = kube::core::validate(schema, rule);
    }
}

pub(crate) fn virtual_ip_spec(schema: &mut Schema) {
    apply(schema, VIRTUAL_IP_SPEC);
    apply(schema, VIRTUAL_ROUTER);
}

pub(crate) fn virtual_ip_pool_spec(schema: &mut Schema) {
    apply(schema, VIRTUAL_IP_POOL_SPEC);
}

pub(crate) fn pool_vrrp(schema: &mut Schema) {
    apply(schema, POOL_VRRP);
}

pub(crate) fn priority_rule(schema: &mut Schema) {
    apply(schema, PRIORITY_RULE);
}

pub(crate) fn virtual_server_spec(schema: &mut Schema) {
    apply(schema, VIRTUAL_SERVER_SPEC);
}

pub(crate) fn server_address(schema: &mut Schema) {
    apply(schema, SERVER_ADDRESS);
}

pub(crate) fn health_check(schema: &mut Schema) {
    apply(schema, HEALTH_CHECK);
}

pub(crate) fn http_check(schema: &mut Schema) {
    apply(schema, HTTP_CHECK);
}

pub(crate) fn script_command(schema: &mut Schema) {
    apply(schema, SCRIPT_COMMAND);
}

pub(crate) fn tunnel(schema: &mut Schema) {
    apply(schema, TUNNEL);
}

pub(crate) fn thresholds(schema: &mut Schema) {
    apply(schema, THRESHOLDS);
}
