//! The VRRP instance states (RFC 5798 §6.4) and the condition types reported in statuses.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The state of one VRRP instance on one node (RFC 5798 §6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum State {
    /// Waiting for a startup event (RFC 5798 "Initialize").
    Initialize,
    /// Watching the MASTER's adverts, ready to take over.
    Backup,
    /// Owning the virtual addresses and sending adverts.
    Master,
    /// A tracker failed hard (interface down, weightless check failed): not taking part.
    Fault,
}

impl State {
    /// Every state, in RFC order.
    pub const ALL: [State; 4] = [
        State::Initialize,
        State::Backup,
        State::Master,
        State::Fault,
    ];

    /// The name used in status fields, logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "Initialize",
            State::Backup => "Backup",
            State::Master => "Master",
            State::Fault => "Fault",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Condition types (`status.conditions[].type`) used by kube-vrrp.
pub mod condition {
    /// VirtualIP: exactly one node is MASTER and it holds the addresses.
    pub const READY: &str = "Ready";
    /// VirtualIP: more than one node reports MASTER for this VIP.
    pub const SPLIT_BRAIN: &str = "SplitBrain";
    /// VirtualIP: its VRID or an address clashes with another VirtualIP.
    pub const CONFLICT: &str = "Conflict";
    /// VirtualIP / VirtualServer: working, but some nodes or real servers are not healthy.
    pub const DEGRADED: &str = "Degraded";
    /// VrrpNode: the node's kernel can program IPVS.
    pub const IPVS_AVAILABLE: &str = "IPVSAvailable";
    /// VirtualServer: at least quorum real servers are healthy, as programmed by the MASTER.
    pub const AVAILABLE: &str = "Available";
    /// VirtualServer: the MASTER of its VirtualIP reports every service of it programmed.
    pub const PROGRAMMED: &str = "Programmed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_serialises_as_its_as_str_name() {
        for state in State::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            let back: State = serde_json::from_str(&json).unwrap();
            assert_eq!(back, state);
        }
    }
}
