//! The digest of a `VrrpNode` spec, written beside it as an annotation when the operator
//! applies it. The reflector then keeps VrrpNodes without their spec (by far their largest
//! part: one resolved instance per VirtualIP on the node) and a pass compares digests, not
//! specs.

use kube_vrrp_crds::VrrpNodeSpec;

/// The annotation holding the digest of the spec the operator applied.
pub const SPEC_DIGEST_ANNOTATION: &str = "kubevrrp.io/spec-digest";

/// FNV-1a (64 bits) of the spec's JSON, in hex. The JSON of a spec is deterministic (fields
/// in declaration order, lists in plan order); a different operator build that serialises
/// differently only costs one extra apply per node.
pub fn spec_digest(spec: &VrrpNodeSpec) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    let hash = bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use kube_vrrp_crds::VrrpNodeSpec;

    use super::*;

    #[test]
    fn equal_specs_have_equal_digests_and_a_change_changes_it() {
        let a = VrrpNodeSpec::default();
        assert_eq!(spec_digest(&a), spec_digest(&a.clone()));
        assert_eq!(spec_digest(&a).len(), 16);
        let b: VrrpNodeSpec = serde_json::from_value(serde_json::json!({"instances": [{
            "name": "web", "virtualRouterID": 51, "version": 3, "addresses": ["10.0.0.50/24"],
            "priority": 100, "advertInterval": "1s", "preempt": true, "preemptDelay": "0s",
        }]}))
        .unwrap();
        let mut c = b.clone();
        c.instances[0].priority = 101;
        assert_ne!(spec_digest(&a), spec_digest(&b));
        assert_ne!(spec_digest(&b), spec_digest(&c));
    }
}
