//! kube-vrrp operator: planning (pure), controllers, status folding.
