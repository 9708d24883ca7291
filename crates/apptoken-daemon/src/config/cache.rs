//! The `[cache]` table: the second-level token store (Redis for a fleet,
//! or a file on one machine), its key, its CA and its timeout;
//! `APPTOKEN_REDIS_URL` and `APPTOKEN_REDIS_CA_FILE` fill what it leaves out.
//!
//! Pure but for the preflight of its files (password file permissions, CA
//! file, store file directory, key files), made through
//! [`Preflight`](super::preflight::Preflight). Invariants: the Redis URL is
//! never echoed (it may carry a password); redis and file exclude each
//! other; a Redis store needs a key file (the same on every instance), and a
//! CA needs `rediss://`; `timeout` is a duration string between 1ms and 60s
//! (the renamed `timeout_ms` is a problem naming the new key).

use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use url::Url;

use super::raw::RawCache;
use super::{CacheSettings, Checker, Inputs, RedisUrl, key_path_for};
use apptoken::parse_duration;

/// Checks `[cache]`; `APPTOKEN_REDIS_URL` fills `redis`.
pub(super) fn check(
    ck: &mut Checker<'_>,
    raw: Option<Spanned<RawCache>>,
    inputs: &Inputs<'_>,
) -> CacheSettings {
    let env = inputs.env;
    let span = raw.as_ref().map(|r| r.span());
    let raw = raw.map(Spanned::into_inner).unwrap_or_default();
    let mut out = CacheSettings {
        timeout: Duration::from_millis(250),
        ..CacheSettings::default()
    };
    let path = |ck: &mut Checker<'_>, v: &Option<Spanned<String>>, field: &str| {
        let v = v.as_ref()?;
        match inputs.expand(v.get_ref()) {
            Ok(s) => Some(inputs.resolve(&s)),
            Err(m) => {
                ck.at(Some(v.span()), format!("cache.{field}"), m);
                None
            }
        }
    };
    if let Some(t) = &raw.timeout {
        match parse_duration(t.get_ref()) {
            Ok(d) if d >= Duration::from_millis(1) && d <= Duration::from_secs(60) => {
                out.timeout = d
            }
            Ok(_) => ck.at(
                Some(t.span()),
                "cache.timeout",
                "must be between 1ms and 60s",
            ),
            Err(m) => ck.at(Some(t.span()), "cache.timeout", m),
        }
    }
    if let Some(old) = &raw.timeout_ms {
        ck.at(
            Some(old.span()),
            "cache.timeout_ms",
            "renamed: use timeout = \"250ms\" (a duration)",
        );
    }
    let (redis, redis_span) = match &raw.redis {
        Some(r) => (Some(r.get_ref().trim().to_string()), Some(r.span())),
        None => (
            env("APPTOKEN_REDIS_URL")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
            span.clone(),
        ),
    };
    let field = if raw.redis.is_some() {
        "cache.redis"
    } else {
        "environment.APPTOKEN_REDIS_URL"
    };
    if let Some(url) = redis {
        // Never echo the URL: it may carry a password.
        match Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "redis" | "rediss" | "redis+unix" | "unix") => {
                match apptoken_redis::RedisStore::new(&url) {
                    Ok(_) => out.redis = Some(RedisUrl(url)),
                    Err(e) => ck.at(redis_span.clone(), field, e.report().to_string()),
                }
            }
            Ok(_) => ck.at(
                redis_span.clone(),
                field,
                "must be a redis://, rediss:// or redis+unix:// URL",
            ),
            Err(e) => ck.at(
                redis_span.clone(),
                field,
                format!("is not a URL ({e}); e.g. \"rediss://redis.internal:6380/0\""),
            ),
        }
    }
    if let Some(p) = path(ck, &raw.redis_password_file, "redis_password_file") {
        let span = raw.redis_password_file.as_ref().map(|v| v.span());
        if raw.redis.is_none() && out.redis.is_none() {
            ck.at(
                span.clone(),
                "cache.redis_password_file",
                "there is no redis URL to use it with",
            );
        }
        match inputs.files.secret_file(&p, "Redis password") {
            Ok(()) => out.redis_password_file = Some(p),
            Err(m) => ck.at(span, "cache.redis_password_file", m),
        }
    }
    let ca = match &raw.redis_ca_file {
        Some(v) => path(ck, &raw.redis_ca_file, "redis_ca_file")
            .map(|p| (p, Some(v.span()), "cache.redis_ca_file")),
        None => env("APPTOKEN_REDIS_CA_FILE")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| {
                (
                    inputs.resolve(&v),
                    span.clone(),
                    "environment.APPTOKEN_REDIS_CA_FILE",
                )
            }),
    };
    if let Some((p, ca_span, field)) = ca {
        match out
            .redis
            .as_ref()
            .map(|u| u.0.trim_start().starts_with("rediss://"))
        {
            None if raw.redis.is_none() && out.redis.is_none() => {
                ck.at(ca_span, field, "there is no redis URL to use it with")
            }
            Some(false) => ck.at(
                ca_span,
                field,
                "a CA for Redis needs a rediss:// URL (TLS); redis:// is not encrypted",
            ),
            // read_ca_file refuses a file without a certificate.
            _ => match inputs.files.ca_file(&p) {
                Ok(_) => out.redis_ca_file = Some(p),
                Err(m) => ck.at(ca_span, field, m),
            },
        }
    }
    if let Some(p) = path(ck, &raw.file, "file") {
        let span = raw.file.as_ref().map(|v| v.span());
        if let Err(m) = inputs.files.file_place(&p) {
            ck.at(span.clone(), "cache.file", m);
        }
        if raw.redis.is_some() || out.redis.is_some() {
            ck.at(
                span,
                "cache.file",
                "give either redis (a fleet) or file (one machine), not both",
            );
        }
        out.file = Some(p);
    }
    let key_span = raw.key_file.as_ref().map(|v| v.span());
    let key_file = path(ck, &raw.key_file, "key_file").or_else(|| {
        let default =
            Path::new(&env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty())?).join("cache-key");
        inputs.files.exists(&default).then_some(default)
    });
    match &key_file {
        Some(k) => {
            if let Err(m) = inputs.files.store_key(k) {
                ck.at(key_span.or(span.clone()), "cache.key_file", m);
            }
        }
        None if out.redis.is_some() => ck.at(
            span.clone().or(redis_span),
            "cache.key_file",
            "required with redis: the key that seals tokens in the shared store (32 random bytes, e.g. `openssl rand -base64 32 > cache.key; chmod 600 cache.key`), the same on every instance; or LoadCredential=cache-key",
        ),
        None => {
            if let Some(f) = &out.file {
                let k = key_path_for(f);
                if inputs.files.exists(&k)
                    && let Err(m) = inputs.files.store_key(&k)
                {
                    ck.at(span.clone(), "cache.file", m);
                }
            }
        }
    }
    out.key_file = key_file;
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;

    #[test]
    fn a_redis_ca_file_needs_rediss_and_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = dir.path().join("cache.key");
        // 32 bytes, base64, readable by the owner only.
        std::fs::write(&key, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let with = |url: &str, ca: &Path| {
            format!(
                "{GOOD}\n[cache]\nredis = \"{url}\"\nredis_ca_file = \"{}\"\nkey_file = \"{}\"\n",
                ca.display(),
                key.display()
            )
        };
        let c = check(&with("rediss://redis.internal:6380/0", &ca)).unwrap();
        assert_eq!(c.cache.redis_ca_file.as_deref(), Some(ca.as_path()));

        let p = check(&with("redis://redis.internal:6379/0", &ca)).unwrap_err();
        assert!(
            p.iter()
                .any(|p| p.to_string().contains("cache.redis_ca_file")
                    && p.to_string().contains("rediss://")),
            "{p:?}"
        );
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let p = check(&with("rediss://redis.internal:6380/0", &not_pem)).unwrap_err();
        assert!(
            p.iter()
                .any(|p| p.to_string().contains("no PEM certificate")),
            "{p:?}"
        );
        let p = check(&with(
            "rediss://redis.internal:6380/0",
            &dir.path().join("missing.pem"),
        ))
        .unwrap_err();
        assert!(
            p.iter().any(|p| p.to_string().contains("cannot read")),
            "{p:?}"
        );
        // A device or a FIFO is refused, never read without end (found by
        // the daemon_config fuzz target: /dev/zero exhausted memory).
        let p = check(&with(
            "rediss://redis.internal:6380/0",
            Path::new("/dev/zero"),
        ))
        .unwrap_err();
        assert!(
            p.iter()
                .any(|p| p.to_string().contains("not a regular file")),
            "{p:?}"
        );
        let p = check(&GOOD.replace(
            "client_id = \"cid\"",
            "client_id = \"cid\"\nca_file = \"/dev/zero\"",
        ));
        let shown = format!("{p:?}");
        assert!(shown.contains("not a regular file"), "{shown}");
    }

    #[cfg(unix)]
    #[test]
    fn the_redis_password_file_is_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("redis.password");
        std::fs::write(&pw, "s3cr3t\n").unwrap();
        let key = dir.path().join("cache.key");
        std::fs::write(&key, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "{GOOD}\n[cache]\nredis = \"rediss://redis.internal:6380/0\"\nredis_password_file = \"{}\"\nkey_file = \"{}\"\n",
            pw.display(),
            key.display()
        );
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = check(&text).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(c.cache.redis_password_file.as_deref(), Some(pw.as_path()));
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
        let p = only_problem(
            &check(&text).unwrap_err(),
            "cache.redis_password_file",
            place(&text, &format!("\"{}\"", pw.display())),
            "can be read by other users",
        );
        // Which file, what is wrong (its mode), what to do; never the password.
        let shown = p.to_string();
        for part in [
            "the Redis password file",
            pw.to_str().unwrap(),
            "0640",
            "chmod 600",
        ] {
            assert!(shown.contains(part), "{part:?} not in {shown}");
        }
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn the_timeout_is_a_duration_and_timeout_ms_names_it() {
        let dir = workspace("");
        let cache = |line: &str| {
            format!(
                "{}\n[cache]\nfile = \"data/tokens.json\"\n{line}\n",
                with_job("")
            )
        };
        let c = check_in(dir.path(), &cache("")).unwrap();
        assert_eq!(c.cache.timeout, Duration::from_millis(250));
        let c = check_in(dir.path(), &cache("timeout = \"1500ms\"")).unwrap();
        assert_eq!(c.cache.timeout, Duration::from_millis(1500));
        for (value, fragment) in [
            ("\"0ms\"", "must be between 1ms and 60s"),
            ("\"61s\"", "must be between 1ms and 60s"),
            ("\"soon\"", "is not a duration"),
        ] {
            let text = cache(&format!("timeout = {value}"));
            only_problem(
                &check_in(dir.path(), &text).unwrap_err(),
                "cache.timeout",
                place(&text, value),
                fragment,
            );
        }
        let text = cache("timeout_ms = 250");
        only_problem(
            &check_in(dir.path(), &text).unwrap_err(),
            "cache.timeout_ms",
            place(&text, "250\n"),
            "renamed: use timeout = \"250ms\"",
        );
    }
}
