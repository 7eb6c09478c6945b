//! Reads what `ipvsadm -Ln` (and `-Ln --stats --exact`) prints, the administrator's view the
//! guest lab checks against. Pure.

/// One service line and its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedService {
    /// `TCP`, `UDP`, `SCTP` or `FWM`.
    pub protocol: String,
    /// `192.0.2.1:80`, `[2001:db8::1]:80`, or the mark.
    pub address: String,
    pub scheduler: String,
    /// The rest of the line: scheduler flags, `persistent N`, `mask M`, `ops`.
    pub flags: String,
    pub real_servers: Vec<ListedRealServer>,
}

/// One `->` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRealServer {
    pub address: String,
    /// `Masq`, `Route`, `Tunnel`, `Local`.
    pub forward: String,
    pub weight: u32,
    pub active: u32,
    pub inactive: u32,
}

impl ListedService {
    /// `TCP 192.0.2.1:80`.
    pub fn key(&self) -> String {
        format!("{} {}", self.protocol, self.address)
    }

    /// The real server at `address` (`198.51.100.11:8080`).
    pub fn real_server(&self, address: &str) -> Option<&ListedRealServer> {
        self.real_servers.iter().find(|r| r.address == address)
    }
}

/// Parses `ipvsadm -Ln`.
pub fn parse_list(text: &str) -> Vec<ListedService> {
    let mut out: Vec<ListedService> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("-> ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let (Some(service), [address, forward, weight, active, inactive]) =
                (out.last_mut(), words.as_slice())
                && let (Ok(weight), Ok(active), Ok(inactive)) =
                    (weight.parse(), active.parse(), inactive.parse())
            {
                service.real_servers.push(ListedRealServer {
                    address: (*address).to_owned(),
                    forward: (*forward).to_owned(),
                    weight,
                    active,
                    inactive,
                });
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [protocol, address, scheduler, flags @ ..] = words.as_slice()
            && matches!(*protocol, "TCP" | "UDP" | "SCTP" | "FWM")
        {
            out.push(ListedService {
                protocol: (*protocol).to_owned(),
                address: (*address).to_owned(),
                scheduler: (*scheduler).to_owned(),
                flags: flags.join(" "),
                real_servers: Vec::new(),
            });
        }
    }
    out
}

/// Counters of one service or real server from `ipvsadm -Ln --stats --exact`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
}

/// Parses `ipvsadm -Ln --stats --exact`: service key (`TCP 192.0.2.1:80`) → its counters.
pub fn parse_stats(text: &str) -> Vec<(String, Stats)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [protocol, address, conns, in_packets, out_packets, ..] = words.as_slice()
            && matches!(*protocol, "TCP" | "UDP" | "SCTP" | "FWM")
            && let (Ok(conns), Ok(in_packets), Ok(out_packets)) =
                (conns.parse(), in_packets.parse(), out_packets.parse())
        {
            out.push((
                format!("{protocol} {address}"),
                Stats {
                    conns,
                    in_packets,
                    out_packets,
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.0.2.1:80 rr
  -> 198.51.100.1:8080            Masq    3      0          1
  -> 198.51.100.2:80              Route   1      2          0
TCP  192.0.2.2:80 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0
FWM  7 wlc
";

    #[test]
    fn services_flags_and_real_servers_are_read_from_the_listing() {
        let list = parse_list(LIST);
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].key(), "TCP 192.0.2.1:80");
        assert_eq!(list[0].scheduler, "rr");
        let route = list[0].real_server("198.51.100.2:80").unwrap();
        assert_eq!(
            (route.forward.as_str(), route.weight, route.active),
            ("Route", 1, 2)
        );
        assert_eq!(
            list[1].flags,
            "(sh-fallback,sh-port) persistent 300 mask 255.255.255.0"
        );
        assert_eq!(list[2].key(), "FWM 7");
    }

    #[test]
    fn stats_lines_of_services_are_read_and_real_server_lines_skipped() {
        let text = "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  192.0.2.1:80                        12       60       48     3600     2880
  -> 198.51.100.1:8080                    4       20       16     1200      960
";
        let stats = parse_stats(text);
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].0, "TCP 192.0.2.1:80");
        assert_eq!(stats[0].1.conns, 12);
    }
}
