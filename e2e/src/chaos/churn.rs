//! Random valid edits of a manifests directory for the churn run. The edits create, change and
//! delete VirtualIPs of their own (`churn-N.yaml`: VRIDs, addresses and names no other instance
//! uses), write and remove a Node that no VirtualIP selects (`node-x1.yaml`), and rewrite the
//! file of the untouched instances byte for byte; never a change to what the untouched
//! instances mean. [`Churn::cleanup`] gives the edits that bring the directory back.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::Rng;
use crate::InstanceSpec;
use crate::addressing::{self, Family};
use crate::agent;
use crate::error::LabError;

/// How many churn VirtualIPs can exist at once.
pub const SLOTS: u8 = 8;
/// VRID of slot 0; slot N uses this plus N.
const FIRST_VRID: u8 = 200;
/// `addressing::vip` index of slot 0 (192.168.77.150, fd00:77::b4): clear of the lab's VIPs.
const FIRST_VIP_INDEX: u8 = 100;
/// The advert intervals an edit picks from.
const INTERVALS_MS: [u64; 4] = [100, 200, 500, 1000];
/// The file holding the untouched instances (and the lab's Nodes), as `Agent::start` writes it.
pub const UNTOUCHED_FILE: &str = "lab.yaml";
const EXTRA_NODE_FILE: &str = "node-x1.yaml";

/// One edit of the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Write `file` with `text` (staged elsewhere and renamed into place).
    Write { file: String, text: String },
    /// Remove `file`.
    Remove { file: String },
    /// Rewrite `file` with the bytes it has.
    Rewrite { file: String },
}

impl Edit {
    /// A short word for the run's tally.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Write { file, .. } if file == EXTRA_NODE_FILE => "node written",
            Self::Remove { file } if file == EXTRA_NODE_FILE => "node removed",
            Self::Write { .. } => "VirtualIP written",
            Self::Remove { .. } => "VirtualIP removed",
            Self::Rewrite { .. } => "untouched file rewritten as is",
        }
    }

    /// Applies the edit to every directory in `dirs`, staging whole files in `staging`.
    pub fn apply(&self, dirs: &[&Path], staging: &Path) -> Result<(), LabError> {
        for dir in dirs {
            match self {
                Self::Write { file, text } => replace(dir, file, text.as_bytes(), staging)?,
                Self::Remove { file } => {
                    let path = dir.join(file);
                    std::fs::remove_file(&path)
                        .map_err(LabError::io(format!("remove {}", path.display())))?;
                }
                Self::Rewrite { file } => {
                    let path = dir.join(file);
                    let bytes = std::fs::read(&path)
                        .map_err(LabError::io(format!("read {}", path.display())))?;
                    replace(dir, file, &bytes, staging)?;
                }
            }
        }
        Ok(())
    }
}

fn replace(dir: &Path, file: &str, bytes: &[u8], staging: &Path) -> Result<(), LabError> {
    let staged = staging.join(format!("staged-{file}"));
    std::fs::write(&staged, bytes).map_err(LabError::io(format!("write {}", staged.display())))?;
    let path = dir.join(file);
    std::fs::rename(&staged, &path).map_err(LabError::io(format!("rename to {}", path.display())))
}

/// One churn VirtualIP's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChurnVip {
    family: Family,
    priorities: Vec<u8>,
    interval_ms: u64,
    preempt: bool,
}

/// The generator: which churn VirtualIPs exist and whether the extra Node does.
#[derive(Debug)]
pub struct Churn {
    nodes: usize,
    slots: Vec<Option<ChurnVip>>,
    extra_node: bool,
}

impl Churn {
    /// A generator for a lab of `nodes` nodes, starting from a directory with no churn files.
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            slots: vec![None; usize::from(SLOTS)],
            extra_node: false,
        }
    }

    /// The next random edit.
    pub fn next(&mut self, rng: &mut Rng) -> Edit {
        match rng.below(10) {
            0 => Edit::Rewrite {
                file: UNTOUCHED_FILE.into(),
            },
            1 => {
                self.extra_node = !self.extra_node;
                if self.extra_node {
                    Edit::Write {
                        file: EXTRA_NODE_FILE.into(),
                        text: extra_node_yaml(rng.below(1000)),
                    }
                } else {
                    Edit::Remove {
                        file: EXTRA_NODE_FILE.into(),
                    }
                }
            }
            _ => {
                let slot = rng.index(self.slots.len());
                let file = slot_file(slot);
                let fresh = self.slots[slot].is_none();
                if !fresh && rng.chance(30) {
                    self.slots[slot] = None;
                    return Edit::Remove { file };
                }
                let vip = match self.slots[slot].take() {
                    Some(old) => mutate(old, rng, self.nodes),
                    None => self.random_vip(rng),
                };
                let text = vip_yaml(slot, &vip, self.nodes);
                self.slots[slot] = Some(vip);
                Edit::Write { file, text }
            }
        }
    }

    /// The edits that remove every churn file that exists now.
    pub fn cleanup(&mut self) -> Vec<Edit> {
        let mut edits: Vec<Edit> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, vip)| {
                vip.take().map(|_| Edit::Remove {
                    file: slot_file(slot),
                })
            })
            .collect();
        if std::mem::take(&mut self.extra_node) {
            edits.push(Edit::Remove {
                file: EXTRA_NODE_FILE.into(),
            });
        }
        edits
    }

    /// How many churn VirtualIPs exist now.
    pub fn live(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    fn random_vip(&self, rng: &mut Rng) -> ChurnVip {
        ChurnVip {
            family: if rng.chance(30) {
                Family::V6
            } else {
                Family::V4
            },
            priorities: random_priorities(rng, self.nodes),
            interval_ms: INTERVALS_MS[rng.index(INTERVALS_MS.len())],
            preempt: rng.chance(80),
        }
    }
}

fn random_priorities(rng: &mut Rng, nodes: usize) -> Vec<u8> {
    (0..nodes)
        .map(|_| u8::try_from(rng.between(1, 254)).unwrap_or(100))
        .collect()
}

/// One field of `vip` changed at random.
fn mutate(mut vip: ChurnVip, rng: &mut Rng, nodes: usize) -> ChurnVip {
    match rng.below(4) {
        0 => vip.priorities = random_priorities(rng, nodes),
        1 => vip.interval_ms = INTERVALS_MS[rng.index(INTERVALS_MS.len())],
        2 => vip.preempt = !vip.preempt,
        _ => {
            vip.family = match vip.family {
                Family::V4 => Family::V6,
                Family::V6 => Family::V4,
            };
        }
    }
    vip
}

/// Every address a churn VirtualIP may hold, in either family.
pub fn addresses() -> Vec<std::net::IpAddr> {
    (0..SLOTS)
        .flat_map(|slot| {
            [Family::V4, Family::V6].map(|f| addressing::vip(f, FIRST_VIP_INDEX + slot).addr())
        })
        .collect()
}

fn slot_file(slot: usize) -> String {
    format!("churn-{slot}.yaml")
}

/// The VirtualIP of `slot`, rendered as the lab renders every VirtualIP.
fn vip_yaml(slot: usize, vip: &ChurnVip, nodes: usize) -> String {
    let index = u8::try_from(slot).unwrap_or(0);
    let mut spec = InstanceSpec::new(
        &format!("churn-{slot}"),
        FIRST_VRID + index,
        vec![addressing::vip(vip.family, FIRST_VIP_INDEX + index)],
    );
    spec.priorities.clone_from(&vip.priorities);
    spec.advert_interval = Duration::from_millis(vip.interval_ms);
    spec.preempt = vip.preempt;
    let docs = agent::manifests(nodes, true, std::slice::from_ref(&spec), Path::new("/"));
    // The first document is the VirtualIP; the Nodes stay in the untouched file.
    serde_saphyr::to_string(&docs[0]).unwrap_or_default()
}

/// A Node that no VirtualIP selects (it lacks the lab label), with a changing label.
fn extra_node_yaml(value: u64) -> String {
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "x1", "labels": {"chaos": value.to_string()}},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.77.240"}]},
    });
    serde_saphyr::to_string(&node).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_edits_touch_only_churn_files_and_cleanup_removes_what_exists() {
        let mut churn = Churn::new(3);
        let mut rng = Rng::new(7);
        let mut existing = std::collections::BTreeSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let edit = churn.next(&mut rng);
            kinds.insert(edit.kind());
            match &edit {
                Edit::Write { file, text } => {
                    assert!(
                        file.starts_with("churn-") || file == EXTRA_NODE_FILE,
                        "{file}"
                    );
                    assert!(!text.is_empty());
                    existing.insert(file.clone());
                }
                Edit::Remove { file } => assert!(existing.remove(file), "{file} removed twice"),
                Edit::Rewrite { file } => assert_eq!(file, UNTOUCHED_FILE),
            }
            assert!(churn.live() <= usize::from(SLOTS));
        }
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        for edit in churn.cleanup() {
            let Edit::Remove { file } = edit else {
                panic!("cleanup only removes");
            };
            assert!(existing.remove(&file), "{file}");
        }
        assert!(existing.is_empty(), "left behind: {existing:?}");
        assert_eq!(churn.live(), 0);
    }

    #[test]
    fn a_churn_virtual_ip_is_valid_and_clear_of_the_labs_own_vrids_and_addresses() {
        let vip = ChurnVip {
            family: Family::V6,
            priorities: vec![10, 20, 30],
            interval_ms: 200,
            preempt: false,
        };
        let yaml = vip_yaml(3, &vip, 3);
        let doc: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(doc["kind"], "VirtualIP");
        assert_eq!(doc["metadata"]["name"], "churn-3");
        assert_eq!(doc["spec"]["virtualRouterID"], 203);
        assert_eq!(doc["spec"]["addresses"][0], "fd00:77::b7/64");
        assert_eq!(doc["spec"]["advertInterval"], "200ms");
        assert_eq!(doc["spec"]["preempt"], false);
        assert_eq!(doc["spec"]["priorities"][2]["priority"], 30);
    }
}
