//! kube-vrrp API types (group `kubevrrp.io`, version `v1alpha1`).
