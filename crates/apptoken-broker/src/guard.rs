//! The checks a request passes before anything else: the `Host` is a
//! loopback name (a DNS-rebinding page in a browser sends its own host),
//! no `X-Forwarded-For` or `Forwarded` header (a request relayed by a proxy
//! or an SSRF-prone service on the host, as IMDS refuses them), and the
//! identity header, compared in constant time.

use axum::http::HeaderMap;

/// Why a request was refused by a guard: the status and the message.
pub(crate) type Refusal = (u16, String);

/// The header every request carries (App Service's).
pub(crate) const IDENTITY_HEADER: &str = "x-identity-header";

/// All guards, in order.
pub(crate) fn check(headers: &HeaderMap, secret: &[u8]) -> Result<(), Refusal> {
    for name in ["x-forwarded-for", "forwarded"] {
        if headers.contains_key(name) {
            return Err((
                400,
                format!(
                    "the request carries {name}: it was relayed by a proxy, and this endpoint \
                     answers only processes on this host"
                ),
            ));
        }
    }
    match headers.get("host").map(|h| h.to_str()) {
        Some(Ok(host)) if is_loopback_host(host) => {}
        Some(_) => {
            return Err((
                400,
                "the Host header is not a loopback address (127.0.0.1, localhost or [::1])".into(),
            ));
        }
        None => return Err((400, "the request has no Host header".into())),
    }
    match headers.get(IDENTITY_HEADER) {
        None => Err((
            401,
            "the X-IDENTITY-HEADER header is missing: send the value of IDENTITY_HEADER".into(),
        )),
        Some(v)
            if aws_lc_rs::constant_time::verify_slices_are_equal(v.as_bytes(), secret).is_ok() =>
        {
            Ok(())
        }
        Some(_) => Err((
            401,
            "the X-IDENTITY-HEADER header is not this endpoint's IDENTITY_HEADER".into(),
        )),
    }
}

/// `127.0.0.1`, any `127.x.y.z`, `localhost`, `[::1]`, each with or
/// without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((addr, port)) if port.is_empty() || is_port(port) => addr,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn is_port(s: &str) -> bool {
    s.strip_prefix(':')
        .unwrap_or(s)
        .parse::<u16>()
        .is_ok_and(|p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn loopback_hosts_only() {
        for ok in [
            "127.0.0.1:41000",
            "127.0.0.1",
            "127.1.2.3:80",
            "localhost:41000",
            "LOCALHOST",
            "[::1]:41000",
            "[::1]",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:41000",
            "127.0.0.1.evil.example",
            "localhost.evil.example:1",
            "10.0.0.1:41000",
            "[::2]:41000",
            "[::1]x",
            "127.0.0.1:notaport",
            "127.0.0.1:0",
            "",
            "[::1",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any Host value: no panic, and what is accepted names a loopback
        /// address or localhost, whatever port follows.
        #[test]
        fn any_host_is_judged_without_panicking(host in "\\PC{0,40}") {
            if is_loopback_host(&host) {
                let h = host.trim();
                let name = match h.strip_prefix('[') {
                    Some(rest) => rest.split(']').next().unwrap_or_default(),
                    None => h.rsplit_once(':').map_or(h, |(n, _)| n),
                };
                proptest::prop_assert!(
                    name.eq_ignore_ascii_case("localhost")
                        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
                    "{host:?}"
                );
            }
        }

        #[test]
        fn loopback_with_any_port_is_accepted(a in 0u8..=255, b in 0u8..=255, port in 1u16..) {
            let v4 = format!("127.{a}.{b}.1:{port}");
            let v6 = format!("[::1]:{port}");
            let name = format!("localhost:{port}");
            proptest::prop_assert!(is_loopback_host(&v4));
            proptest::prop_assert!(is_loopback_host(&v6));
            proptest::prop_assert!(is_loopback_host(&name));
        }
    }

    #[test]
    fn every_guard_refuses_with_its_reason() {
        let secret = b"s3cret";
        let host = ("host", "127.0.0.1:4000");
        assert!(check(&headers(&[host, (IDENTITY_HEADER, "s3cret")]), secret).is_ok());
        let e = check(&headers(&[host]), secret).unwrap_err();
        assert_eq!(e.0, 401);
        assert!(e.1.contains("missing"));
        let e = check(&headers(&[host, (IDENTITY_HEADER, "s3cret2")]), secret).unwrap_err();
        assert_eq!(e.0, 401);
        assert!(!e.1.contains("s3cret"), "the secret is never quoted");
        let e = check(&headers(&[host, (IDENTITY_HEADER, "")]), secret).unwrap_err();
        assert_eq!(e.0, 401);
        let e = check(
            &headers(&[
                host,
                (IDENTITY_HEADER, "s3cret"),
                ("x-forwarded-for", "10.0.0.9"),
            ]),
            secret,
        )
        .unwrap_err();
        assert_eq!(e.0, 400);
        assert!(e.1.contains("x-forwarded-for"));
        let e = check(
            &headers(&[host, (IDENTITY_HEADER, "s3cret"), ("forwarded", "for=1")]),
            secret,
        )
        .unwrap_err();
        assert!(e.1.contains("forwarded"));
        let e = check(
            &headers(&[("host", "evil.example"), (IDENTITY_HEADER, "s3cret")]),
            secret,
        )
        .unwrap_err();
        assert_eq!(e.0, 400);
        assert!(e.1.contains("Host"));
        let e = check(&headers(&[(IDENTITY_HEADER, "s3cret")]), secret).unwrap_err();
        assert!(e.1.contains("no Host"));
    }
}
