//! The listen rule: the emulator listens on loopback unless the caller
//! allows more (`Config::with_allow_remote`), and warns when it does.
//!
//! Invariants: the rule is applied before anything is bound; IPv4-mapped
//! IPv6 loopback (`::ffff:127.x.y.z`) counts as loopback, `0.0.0.0` and
//! `::` do not.

use std::net::{IpAddr, SocketAddr};

use crate::Error;

/// Where a listen address exposes the emulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exposure {
    /// 127.0.0.0/8, `::1` (or `::ffff:127.x.y.z`): this machine only.
    Loopback,
    /// Anything else, `0.0.0.0` and `::` included: allowed, with a warning.
    Remote,
}

/// Whether `listen` is loopback.
pub(crate) fn exposure(listen: SocketAddr) -> Exposure {
    let loopback = match listen.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    if loopback {
        Exposure::Loopback
    } else {
        Exposure::Remote
    }
}

/// The rule `start` applies before binding: a non-loopback address needs
/// `allow_remote`.
pub(crate) fn listen_policy(listen: SocketAddr, allow_remote: bool) -> Result<Exposure, Error> {
    match exposure(listen) {
        Exposure::Remote if !allow_remote => Err(Error::RemoteListen { addr: listen }),
        e => Ok(e),
    }
}

/// The warning logged when the emulator listens beyond loopback.
pub(crate) fn remote_warning(listen: SocketAddr) -> String {
    format!(
        "the emulator listens on {listen}, which is not a loopback address: its admin API \
         /_emulator/* (faults, clock, token lifetimes, consent, key rotation, revocation, stats) \
         is unauthenticated, and anyone who can reach this port can change it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Emulator;

    #[test]
    fn only_loopback_listens_without_allow_remote() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
        for loopback in [
            "127.0.0.1:0",
            "127.0.0.1:8400",
            "127.255.255.254:1",
            "[::1]:0",
            "[::ffff:127.0.0.1]:0",
        ] {
            assert_eq!(
                listen_policy(addr(loopback), false).ok(),
                Some(Exposure::Loopback),
                "{loopback}"
            );
            assert_eq!(
                listen_policy(addr(loopback), true).ok(),
                Some(Exposure::Loopback),
                "{loopback}"
            );
        }
        for remote in [
            "0.0.0.0:0",
            "0.0.0.0:8400",
            "[::]:0",
            "192.168.1.10:8400",
            "10.0.0.1:0",
            "128.0.0.1:0",
            "[fe80::1]:0",
            "[::ffff:10.0.0.1]:0",
            "[::ffff:0.0.0.0]:0",
        ] {
            let refused = listen_policy(addr(remote), false).expect_err(remote);
            assert!(
                matches!(refused, Error::RemoteListen { addr: a } if a == addr(remote)),
                "{remote}: {refused:?}"
            );
            let message = refused.to_string();
            for part in ["not a loopback address", "/_emulator/*", "--allow-remote"] {
                assert!(message.contains(part), "{remote}: {message}");
            }
            // The allowed case is decided here, never by binding the address.
            assert_eq!(
                listen_policy(addr(remote), true).ok(),
                Some(Exposure::Remote),
                "{remote}"
            );
            assert!(
                Emulator::check_listen(addr(remote), true).is_ok(),
                "{remote}"
            );
            let warning = remote_warning(addr(remote));
            for part in ["/_emulator/*", "unauthenticated", "anyone who can reach"] {
                assert!(warning.contains(part), "{warning}");
            }
        }
    }
}
