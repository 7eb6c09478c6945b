//! VRRP advertisement codec (RFC 3768 v2, RFC 5798 v3; IPv4 and IPv6).
