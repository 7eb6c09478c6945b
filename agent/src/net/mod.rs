//! The agent's kernel edges: raw VRRP sockets, VIP addresses, GARP/NA, link events.
