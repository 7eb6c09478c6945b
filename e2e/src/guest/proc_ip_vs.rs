//! Reads `/proc/net/ip_vs`, the kernel's own listing of IPVS services and destinations (hex
//! addresses and ports), into pools: service → destination → weight. The guest lab's change
//! watcher reads it every few milliseconds, far cheaper than running `ipvsadm`. Pure.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Every service's destinations and their weights, by `"TCP 192.0.2.100:80"` and
/// `"198.51.100.11:8080"`.
pub type Pools = BTreeMap<String, BTreeMap<String, u32>>;

/// `C0000264:0050` or `[2001:0db8:0000:...:0001]:0050` as a socket address.
fn address(text: &str) -> Option<SocketAddr> {
    let (host, port) = text.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?)
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(host, 16).ok()?))
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses the text of `/proc/net/ip_vs`.
pub fn parse(text: &str) -> Pools {
    let mut pools = Pools::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["->", dest, _forward, weight, ..] => {
                if let (Some(service), Some(dest), Ok(weight)) =
                    (&current, address(dest), weight.parse::<u32>())
                {
                    pools
                        .entry(service.clone())
                        .or_default()
                        .insert(dest.to_string(), weight);
                }
            }
            [proto @ ("TCP" | "UDP" | "SCTP"), addr, ..] => {
                current = address(addr).map(|a| format!("{proto} {a}"));
                if let Some(service) = &current {
                    pools.entry(service.clone()).or_default();
                }
            }
            _ => {}
        }
    }
    pools
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_destinations_read_as_dotted_addresses_with_weights() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0000264:0050 rr
  -> C633640D:1F90      Masq    1      0          0
  -> C633640B:1F90      Masq    0      2          1
UDP  C0000264:0035 wrr
TCP  [2001:0db8:0000:0000:0000:0000:0000:0001]:01BB rr
  -> [2001:0db8:0001:0000:0000:0000:0000:0007]:1F90      Masq    3      0          0
";
        let pools = parse(text);
        assert_eq!(
            pools["TCP 192.0.2.100:80"],
            BTreeMap::from([
                ("198.51.100.11:8080".to_owned(), 0),
                ("198.51.100.13:8080".to_owned(), 1)
            ])
        );
        assert!(pools["UDP 192.0.2.100:53"].is_empty());
        assert_eq!(pools["TCP [2001:db8::1]:443"]["[2001:db8:1::7]:8080"], 3);
    }
}
