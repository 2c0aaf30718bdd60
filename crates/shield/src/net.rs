//! Who is asking: CIDR lists and the client IP behind trusted proxies.
//!
//! X-Forwarded-For is client input. It is believed only when the TCP peer
//! is a configured trusted proxy, and then read from the right: each hop
//! appends the address it saw, so the rightmost address that is not one of
//! our proxies is the client. Anything left of it could be forged.

use serde::Deserialize;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`; a bare
/// address means just that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<IpAddr>().map(|ip| Cidr(ipnet::IpNet::from(ip))).map_err(|_| format!("not an address or CIDR: {s:?}"))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether any block in `list` holds `ip`.
pub fn listed(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// IPv4 clients reached over an IPv6 socket appear as `::ffff:a.b.c.d`;
/// lists and limits must see the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client's address: the peer itself, or, when the peer is a trusted
/// proxy, the rightmost X-Forwarded-For address that is not a trusted proxy.
/// `forwarded_for` holds every X-Forwarded-For header value in order.
pub fn client_ip<'a>(peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    if !listed(trusted, peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = forwarded_for.flat_map(|v| v.split(',')).filter_map(parse_hop).collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !listed(trusted, hop) {
            break;
        }
    }
    client
}

/// One X-Forwarded-For entry; ports and brackets are tolerated. An entry
/// that is not an address is skipped: only a client can have written it,
/// and it sits left of the hop our proxy appended.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = s.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    s.trim_start_matches('[').split(']').next().and_then(|h| h.parse().ok()).map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.1.1.1"), ["1.2.3.4"].into_iter(), &trusted), ip("1.2.3.4"));
    }

    #[test]
    fn a_forged_leftmost_entry_does_not_win() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // The client sent "X-Forwarded-For: 6.6.6.6"; our balancer appended
        // the address it saw, and a second internal hop appended its own.
        let headers = ["6.6.6.6, 198.51.100.7, 10.0.0.2"];
        assert_eq!(client_ip(ip("10.0.0.3"), headers.into_iter(), &trusted), ip("198.51.100.7"));
        // Several headers count as one list, in order.
        let split = ["6.6.6.6", "198.51.100.7", "10.0.0.2"];
        assert_eq!(client_ip(ip("10.0.0.3"), split.into_iter(), &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn garbage_and_ports_and_mapped_addresses() {
        let trusted = cidrs(&["127.0.0.1"]);
        assert_eq!(client_ip(ip("127.0.0.1"), ["198.51.100.7:4711"].into_iter(), &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("127.0.0.1"), ["[2001:db8::1]:80"].into_iter(), &trusted), ip("2001:db8::1"));
        assert_eq!(client_ip(ip("127.0.0.1"), ["<script>"].into_iter(), &trusted), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("::ffff:127.0.0.1"), ["192.0.2.1"].into_iter(), &trusted), ip("192.0.2.1"));
        assert!(cidrs(&["192.168.1.77/24"])[0].contains(ip("192.168.1.1")));
        assert!("300.1.1.1/8".parse::<Cidr>().is_err());
    }
}
