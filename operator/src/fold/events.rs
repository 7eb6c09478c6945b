//! The Events a status change calls for, found by comparing the previous VirtualIP status
//! with the new one: who is MASTER, and whether a split brain began or ended.

use kube_vrrp_crds::VirtualIpStatus;

use super::conditions::join_names;
use super::is_split_brain;

/// Event severity, as `kubectl describe` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventSeverity {
    /// Something worth knowing.
    Normal,
    /// Something is wrong.
    Warning,
}

impl EventSeverity {
    /// The Event `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// The Event `reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// The single MASTER changed (to another node, or to none).
    MasterChanged,
    /// More than one node reports MASTER.
    SplitBrain,
    /// A split brain ended.
    SplitBrainResolved,
    /// VirtualServer: a real server failed its health check on the MASTER.
    RealServerDown,
    /// VirtualServer: a failing real server passes its health check again on the MASTER.
    RealServerUp,
    /// VirtualServer: more real servers changed than the Event budget allows; one summary.
    RealServersChanged,
    /// VirtualServer: the healthy weight fell below the quorum (keepalived's quorum-down
    /// script).
    QuorumLost,
    /// VirtualServer: the quorum is reached again (keepalived's quorum-up script).
    QuorumRegained,
}

impl EventReason {
    /// The name written to `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MasterChanged => "MasterChanged",
            Self::SplitBrain => "SplitBrain",
            Self::SplitBrainResolved => "SplitBrainResolved",
            Self::RealServerDown => "RealServerDown",
            Self::RealServerUp => "RealServerUp",
            Self::RealServersChanged => "RealServersChanged",
            Self::QuorumLost => "QuorumLost",
            Self::QuorumRegained => "QuorumRegained",
        }
    }

    /// The severity of Events with this reason.
    pub fn severity(self) -> EventSeverity {
        match self {
            Self::MasterChanged
            | Self::SplitBrainResolved
            | Self::RealServerUp
            | Self::RealServersChanged
            | Self::QuorumRegained => EventSeverity::Normal,
            Self::SplitBrain | Self::RealServerDown | Self::QuorumLost => EventSeverity::Warning,
        }
    }
}

/// One Event to publish on the VirtualIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldEvent {
    /// Why.
    pub reason: EventReason,
    /// What happened, for `kubectl describe vip`.
    pub note: String,
}

impl FoldEvent {
    /// Normal or Warning.
    pub fn severity(&self) -> EventSeverity {
        self.reason.severity()
    }
}

/// The API server refuses an Event whose note is longer than this many bytes (422).
pub const NOTE_LIMIT: usize = 1024;

/// `note` cut to [`NOTE_LIMIT`] bytes on a character boundary, ending in "…" when cut (a
/// VirtualIP with many IPv6 addresses names more than fits).
pub fn bounded_note(note: &str) -> String {
    const MARK: &str = "…";
    if note.len() <= NOTE_LIMIT {
        return note.to_owned();
    }
    let mut end = NOTE_LIMIT - MARK.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &note[..end])
}

/// The Events for the change from `previous` to `new` of VirtualIP `name`.
pub(crate) fn diff(
    name: &str,
    previous: Option<&VirtualIpStatus>,
    new: &VirtualIpStatus,
    addresses: &[String],
) -> Vec<FoldEvent> {
    let mut out = Vec::new();
    let was_split = previous.is_some_and(is_split_brain);
    let is_split = is_split_brain(new);
    let vrid = new
        .virtual_router_id
        .map_or_else(String::new, |v| format!(" (VRID {v})"));
    let addresses = addresses.join(", ");
    let masters: Vec<String> = new
        .nodes
        .iter()
        .filter(|n| n.state == kube_vrrp_crds::State::Master)
        .map(|n| n.name.clone())
        .collect();

    if is_split && !was_split {
        out.push(FoldEvent {
            reason: EventReason::SplitBrain,
            note: format!(
                "{} {} claim {addresses}{vrid} as MASTER; they cannot hear each other's \
                 adverts: check the network between them",
                join_names(&masters),
                if masters.len() == 2 { "both" } else { "all" },
            ),
        });
    }
    if was_split && !is_split {
        let note = match &new.master {
            Some(m) => format!("split brain over: {m} is the only MASTER of VirtualIP {name}"),
            None => format!("split brain over: no node reports MASTER of VirtualIP {name}"),
        };
        out.push(FoldEvent {
            reason: EventReason::SplitBrainResolved,
            note,
        });
    }

    let before = previous.and_then(|p| p.master.as_deref());
    let after = new.master.as_deref();
    if !is_split && before != after {
        let note = match (before, after) {
            (Some(a), Some(b)) => {
                Some(format!("MASTER of {addresses}{vrid} moved from {a} to {b}"))
            }
            (None, Some(b)) => Some(format!("{b} became MASTER of {addresses}{vrid}")),
            (Some(a), None) => Some(format!(
                "{a} is no longer MASTER; no node holds {addresses}{vrid}"
            )),
            (None, None) => None,
        };
        if let Some(note) = note {
            out.push(FoldEvent {
                reason: EventReason::MasterChanged,
                note,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_note_is_kept_whole() {
        assert_eq!(bounded_note("n1 became MASTER"), "n1 became MASTER");
        let exact = "x".repeat(NOTE_LIMIT);
        assert_eq!(bounded_note(&exact), exact);
    }

    #[test]
    fn a_note_naming_sixty_four_ipv6_addresses_is_cut_on_a_character_boundary() {
        let addresses: Vec<String> = (0..64)
            .map(|i| format!("2001:db8:ffff:ffff:ffff:ffff:ffff:{i:04x}"))
            .collect();
        let note = format!("n1 became MASTER of {} (VRID 51) ✓", addresses.join(", "));
        assert!(note.len() > NOTE_LIMIT);
        let cut = bounded_note(&note);
        assert!(cut.len() <= NOTE_LIMIT, "{} bytes", cut.len());
        assert!(cut.ends_with('…'));
        assert!(note.starts_with(cut.trim_end_matches('…')));
        // A multi-byte character straddling the limit is dropped whole, not split.
        let wide = "é".repeat(NOTE_LIMIT);
        let cut = bounded_note(&wide);
        assert!(cut.len() <= NOTE_LIMIT && cut.ends_with('…'));
    }
}
