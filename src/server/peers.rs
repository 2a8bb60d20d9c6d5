//! Open connections per client address, for `max_connections_per_peer`: without it one
//! client (or one attacker) could take every slot of `max_connections` and lock everyone out.
//!
//! An IPv6 client is counted by its /64: a single host is routinely given a whole /64
//! (RFC 7934 §6, RFC 8273), so counting single addresses would let one host open connections
//! from 2^64 of them. An IPv4 client, and an IPv4 client seen on a dual-stack socket
//! (`::ffff:192.0.2.7`), is counted by its address.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use dashmap::DashMap;

/// The prefix length an IPv6 client is counted by.
const IPV6_PEER_PREFIX: u32 = 64;

/// Connection counts by client address, shared by one listener's accept loop and the
/// connections it admitted.
#[derive(Clone, Default)]
pub struct PeerConnections(Arc<DashMap<IpAddr, usize>>);

impl PeerConnections {
    /// Counts a new connection from `ip`, unless that address already holds `limit`.
    pub fn try_open(&self, ip: IpAddr, limit: usize) -> Option<PeerSlot> {
        let key = peer_key(ip);
        let mut open = self.0.entry(key).or_insert(0);
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(PeerSlot {
            peers: self.0.clone(),
            key,
        })
    }
}

/// One counted connection, released when dropped.
pub struct PeerSlot {
    peers: Arc<DashMap<IpAddr, usize>>,
    key: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Some(mut open) = self.peers.get_mut(&self.key) {
            *open -= 1;
        }
        // An address with no connection left takes no memory; checked again under the
        // shard's write lock, as a connection from it may have been counted meanwhile.
        self.peers.remove_if(&self.key, |_, open| *open == 0);
    }
}

/// The address a client is counted by: IPv4 as is, IPv6 by its /64.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_PEER_PREFIX);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_address_holds_at_most_the_limit() {
        let peers = PeerConnections::default();
        let a = peers.try_open(ip("192.0.2.1"), 2).unwrap();
        let _b = peers.try_open(ip("192.0.2.1"), 2).unwrap();
        assert!(peers.try_open(ip("192.0.2.1"), 2).is_none());
        // The same client over a dual-stack socket is the same peer.
        assert!(peers.try_open(ip("::ffff:192.0.2.1"), 2).is_none());
        let _other = peers.try_open(ip("192.0.2.2"), 2).unwrap();
        drop(a);
        assert!(peers.try_open(ip("192.0.2.1"), 2).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let peers = PeerConnections::default();
        let _a = peers.try_open(ip("2001:db8:1:2::1"), 1).unwrap();
        assert!(peers.try_open(ip("2001:db8:1:2:ffff::9"), 1).is_none());
        assert!(peers.try_open(ip("2001:db8:1:3::1"), 1).is_some());
    }

    #[test]
    fn addresses_without_connections_are_forgotten() {
        let peers = PeerConnections::default();
        let slots: Vec<_> = (0..10u8)
            .map(|i| peers.try_open(IpAddr::from([10, 0, 0, i]), 1).unwrap())
            .collect();
        assert_eq!(peers.0.len(), 10);
        drop(slots);
        assert!(peers.0.is_empty());
    }
}
