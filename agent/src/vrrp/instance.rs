//! The per-instance VRRP state machine (RFC 5798 §6), driven by events and a caller-supplied clock.
