//! Claims challenges (continuous access evaluation).

use base64::Engine;

/// Reads a claims challenge from a resource's `WWW-Authenticate` header:
/// `Bearer …, error="insufficient_claims", claims="<base64 JSON>"`.
/// Returns the decoded claims JSON, to pass to
/// [`crate::TokenRequest::claims`]; `None` when the header is not a claims
/// challenge.
///
/// ```
/// let header = r#"Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZX19fQ==""#;
/// assert_eq!(
///     apptoken::claims_challenge(header).as_deref(),
///     Some(r#"{"access_token":{"nbf":{"essential":true}}}"#)
/// );
/// assert_eq!(apptoken::claims_challenge(r#"Bearer error="invalid_token""#), None);
/// ```
pub fn claims_challenge(www_authenticate: &str) -> Option<String> {
    let params = auth_params(www_authenticate);
    let error = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("error"))?;
    if error.1 != "insufficient_claims" {
        return None;
    }
    let claims = params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("claims"))?;
    let raw = claims.1.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
        })
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .filter(|v| v.is_object())
        .map(|_| text)
}

/// The `name="value"` (or `name=token`) parameters of a challenge.
fn auth_params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let rest = header.trim();
    // Skip the scheme.
    let mut rest = match rest.split_once(char::is_whitespace) {
        Some((scheme, r)) if !scheme.contains('=') => r,
        _ => rest,
    };
    loop {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().to_string();
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((name, value));
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn challenges() {
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#);
        let h = format!(
            r#"Bearer realm="", authorization_uri="https://l/t/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="{b64}""#
        );
        assert!(claims_challenge(&h).unwrap().contains("essential"));
        assert_eq!(claims_challenge("Bearer"), None);
        assert_eq!(
            claims_challenge(r#"Bearer error="insufficient_claims", claims="!!!""#),
            None
        );
        assert_eq!(
            claims_challenge(r#"Bearer error="insufficient_claims""#),
            None
        );
        let not_object = base64::engine::general_purpose::STANDARD.encode("[1]");
        assert_eq!(
            claims_challenge(&format!(
                r#"Bearer error="insufficient_claims", claims="{not_object}""#
            )),
            None
        );
    }

    proptest! {
        #[test]
        fn never_panics(h in "\\PC{0,200}") {
            let _ = claims_challenge(&h);
        }
    }
}
