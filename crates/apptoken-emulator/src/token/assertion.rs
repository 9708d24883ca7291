//! Client assertions (`client_assertion`, a JWT signed with a registered
//! certificate's key): algorithm, key lookup by thumbprint or `x5c`,
//! signature, issuer and subject, audience and lifetime, each answered
//! with Entra's code in Entra's order. Federated credentials (an external
//! issuer's token) branch off to `federation`.
//!
//! Invariants: no check reads the network (an external issuer's keys are
//! fetched before, by `federation::prefetch`); time comparisons saturate,
//! so no `i64` claim wraps around.

use serde_json::Value;
use time::OffsetDateTime;

use crate::config::{App, Tenant};
use crate::crypto::{self, CertKey, RsaAlg, b64_lenient};
use crate::error_shape::AadError;
use crate::jwt::{self, Jwt};
use crate::server::AppState;

/// Clock skew tolerated on assertion `exp`/`nbf` (.NET's default, 5 minutes).
pub(crate) const CLOCK_SKEW_SECS: i64 = 300;

/// The token endpoint URLs an assertion's `aud` may name.
fn accepted_audiences(
    st: &AppState,
    tenant: &Tenant,
    segment: &str,
    host: Option<&str>,
) -> Vec<String> {
    let mut hosts = vec![st.base_url.clone()];
    if let Some(h) = host {
        hosts.push(format!("http://{h}"));
        hosts.push(format!("https://{h}"));
    }
    let mut names = vec![tenant.id.clone(), segment.to_string()];
    names.extend(tenant.domains.iter().cloned());
    let mut out = Vec::new();
    for h in &hosts {
        for n in &names {
            out.push(format!("{h}/{n}/oauth2/v2.0/token"));
            out.push(format!("{h}/{n}/oauth2/token"));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn check_assertion(
    st: &AppState,
    now: OffsetDateTime,
    app: &App,
    tenant: &Tenant,
    segment: &str,
    host: Option<&str>,
    assertion: &str,
    federated: Option<&crate::federation::Fetched>,
) -> Result<(), AadError> {
    let jwt = Jwt::parse(assertion).ok_or_else(AadError::malformed_jwt)?;

    // Workload identity federation: an external issuer's token (its `iss`
    // is a URL; an app's own assertion has the client id there).
    if let Some(iss) = jwt.claim_str("iss")
        && !iss.eq_ignore_ascii_case(&app.client_id)
        && iss.contains("://")
        && !app.federated_credentials.is_empty()
    {
        return crate::federation::check(st, now, app, &jwt, federated);
    }

    // Algorithm.
    let alg = match jwt.header_str("alg") {
        Some("RS256") => RsaAlg::Rs256,
        Some("PS256") => RsaAlg::Ps256,
        Some(a) if a.starts_with("ES") || a.starts_with("PS") || a.starts_with("RS") => {
            return Err(AadError::unsupported_asymmetric_alg());
        }
        Some(other) => return Err(AadError::unsupported_alg(other)),
        None => return Err(AadError::malformed_jwt()),
    };

    // Key: x5t#S256, else x5t, else the x5c leaf.
    let x5c_leaf = match jwt.header.get("x5c") {
        None => None,
        Some(Value::Array(chain)) => {
            let leaf = chain
                .first()
                .and_then(Value::as_str)
                // MSAL Python sends the PEM body with its line breaks
                // (`extract_certs`); Entra (.NET's base64) ignores whitespace.
                .map(|s| s.split_ascii_whitespace().collect::<String>())
                .and_then(|s| b64_lenient(&s))
                .ok_or_else(AadError::malformed_jwt)?;
            Some(leaf)
        }
        Some(_) => return Err(AadError::malformed_jwt()),
    };
    let (thumbprint, sha256) = if let Some(t) = jwt.header_str("x5t#S256") {
        (b64_lenient(t).ok_or_else(AadError::malformed_jwt)?, true)
    } else if let Some(t) = jwt.header_str("x5t") {
        (b64_lenient(t).ok_or_else(AadError::malformed_jwt)?, false)
    } else if let Some(leaf) = &x5c_leaf {
        (crypto::sha1(leaf), false)
    } else {
        return Err(AadError::key_not_found("", &app.client_id));
    };
    let hex_thumbprint = hex::encode_upper(&thumbprint);
    let registered = app
        .certificates
        .iter()
        .find(|c| {
            if sha256 {
                c.cert.sha256 == thumbprint
            } else {
                c.cert.sha1 == thumbprint
            }
        })
        .ok_or_else(|| AadError::key_not_found(&hex_thumbprint, &app.client_id))?;
    if let Some(leaf) = &x5c_leaf
        && *leaf != registered.cert.der
    {
        return Err(AadError::key_not_found(
            &hex::encode_upper(crypto::sha1(leaf)),
            &app.client_id,
        ));
    }
    let cert = &registered.cert;
    let public_key = match &cert.key {
        CertKey::Rsa(public_key) => public_key,
        CertKey::Other(oid) => {
            tracing::debug!(%oid, "registered certificate has a non-RSA key");
            return Err(AadError::key_does_not_fit_alg());
        }
    };
    if cert.not_after < now || cert.not_before > now {
        return Err(AadError::key_expired(
            &hex_thumbprint,
            cert.not_before,
            cert.not_after,
        ));
    }
    if !public_key.verify(alg, jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err(AadError::bad_signature(
            &hex_thumbprint,
            cert.not_before,
            cert.not_after,
        ));
    }

    // Issuer and subject.
    let iss = jwt.claim_str("iss").ok_or_else(AadError::malformed_jwt)?;
    let sub = jwt.claim_str("sub").ok_or_else(AadError::malformed_jwt)?;
    if iss != sub {
        return Err(AadError::subject_mismatch());
    }
    if !iss.eq_ignore_ascii_case(&app.client_id) {
        return Err(AadError::issuer_not_client());
    }

    // Audience.
    let auds = jwt::audiences(jwt.claims.get("aud")).ok_or_else(AadError::malformed_jwt)?;
    if auds.len() > 1 {
        return Err(AadError::too_many_audiences(auds.len()));
    }
    let accepted = accepted_audiences(st, tenant, segment, host);
    let aud = auds
        .first()
        .map(|a| a.trim_end_matches('/'))
        .unwrap_or_default();
    if !accepted.iter().any(|a| a.eq_ignore_ascii_case(aud)) {
        return Err(AadError::audience_mismatch());
    }

    // Lifetime: exp required; nbf and iat optional; no upper bound.
    let exp = jwt
        .claim_date("exp")
        .map_err(|()| AadError::malformed_jwt())?
        .ok_or_else(AadError::malformed_jwt)?;
    let nbf = jwt
        .claim_date("nbf")
        .map_err(|()| AadError::malformed_jwt())?;
    jwt.claim_date("iat")
        .map_err(|()| AadError::malformed_jwt())?;
    check_time_range(now, exp, nbf)
}

/// An assertion's `exp`/`nbf` against `now`, with [`CLOCK_SKEW_SECS`] each
/// way; no upper bound on the lifetime. Any `i64` is compared exactly
/// (saturating: `exp` near `i64::MAX` is far future, `nbf` near `i64::MIN`
/// far past, never wrapped around).
pub(crate) fn check_time_range(
    now: OffsetDateTime,
    exp: i64,
    nbf: Option<i64>,
) -> Result<(), AadError> {
    let now_secs = now.unix_timestamp();
    let expired = exp.saturating_add(CLOCK_SKEW_SECS) <= now_secs;
    let early = nbf.is_some_and(|n| n.saturating_sub(CLOCK_SKEW_SECS) > now_secs);
    if expired || early {
        return Err(AadError::assertion_time_range(
            now,
            nbf.map(date_of),
            date_of(exp),
        ));
    }
    Ok(())
}

/// A NumericDate as a date for messages, the way .NET's `EpochTime.DateTime`
/// reads it: 0 and before is the Unix epoch, beyond the last second of year
/// 9999 is that second.
pub(crate) fn date_of(secs: i64) -> OffsetDateTime {
    if secs <= 0 {
        return OffsetDateTime::UNIX_EPOCH;
    }
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .filter(|t| *t <= crate::clock::LATEST)
        .unwrap_or(crate::clock::LATEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_range_checks_saturate_at_the_ends_of_i64() {
        let now = time::macros::datetime!(2030-01-01 00:00:00 UTC);
        let t = now.unix_timestamp();
        let code = |exp, nbf| check_time_range(now, exp, nbf).map_err(|e| e.code);
        assert_eq!(code(i64::MAX, None), Ok(()));
        assert_eq!(code(i64::MAX - 1, Some(i64::MIN)), Ok(()));
        assert_eq!(code(t - 299, Some(t + 300)), Ok(()));
        assert_eq!(code(t - 300, None), Err(700024));
        assert_eq!(code(t + 60, Some(t + 301)), Err(700024));
        assert_eq!(code(i64::MIN, None), Err(700024));
        assert_eq!(code(i64::MAX, Some(i64::MAX)), Err(700024));
        assert_eq!(date_of(i64::MIN), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(date_of(-1), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(date_of(t), now);
        assert_eq!(date_of(253_402_300_799), crate::clock::LATEST);
        assert_eq!(date_of(253_402_300_800), crate::clock::LATEST);
        assert_eq!(date_of(i64::MAX), crate::clock::LATEST);
    }
}
