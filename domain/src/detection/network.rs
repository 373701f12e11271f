//! Which network an address belongs to, coarsely: without a geolocation
//! database, two public addresses in different /16 (IPv4) or /48 (IPv6)
//! prefixes count as distant, and the hospital's private ranges count as one
//! place.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A coarse network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Network {
    /// Loopback, private, link-local or unique-local: inside the hospital.
    Internal,
    /// A public IPv4 /16.
    V4([u8; 2]),
    /// A public IPv6 /48.
    V6([u16; 3]),
}

impl Network {
    /// The network of `address`.
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) if v4.is_private() || v4.is_loopback() || v4.is_link_local() => Self::Internal,
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                Self::V4([a, b])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None if v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local() => Self::Internal,
                None => {
                    let [a, b, c, ..] = v6.segments();
                    Self::V6([a, b, c])
                }
            },
        }
    }

    /// Whether sessions in `self` and `other` at once suggest two people: two
    /// different networks, at least one of them outside the hospital.
    pub fn distant_from(self, other: Self) -> bool {
        self != other && !(self == Self::Internal && other == Self::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        Network::of(text.parse().unwrap())
    }

    #[test]
    fn private_ranges_are_one_place_and_public_prefixes_differ() {
        assert_eq!(net("10.1.2.3"), Network::Internal);
        assert_eq!(net("192.168.0.7"), Network::Internal);
        assert_eq!(net("::1"), Network::Internal);
        assert_eq!(net("::ffff:10.0.0.1"), Network::Internal);
        assert!(!net("10.0.0.1").distant_from(net("172.16.5.5")));
        assert!(!net("198.51.100.7").distant_from(net("198.51.3.9")));
        assert!(net("198.51.100.7").distant_from(net("203.0.113.9")));
        assert!(net("10.0.0.1").distant_from(net("203.0.113.9")));
        assert!(net("2001:db8:1::1").distant_from(net("2001:db8:2::1")));
    }
}
