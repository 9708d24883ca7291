//! Lenient parsing of compact JWTs: what Entra accepts, Entra's way.
//!
//! Invariants: nothing here verifies a signature or a claim's value (the
//! callers do, in Entra's order); parsing never panics on any input (the
//! fuzz target `emulator_jwt` drives it).

use serde_json::{Map, Value};

use crate::crypto::b64_lenient;

/// A compact JWS split into its parts. Nothing here is verified.
#[derive(Debug, Clone)]
pub(crate) struct Jwt<'a> {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) signature: Vec<u8>,
}

impl<'a> Jwt<'a> {
    /// Splits and decodes a compact JWT; `None` when it is not three base64
    /// segments whose first two are JSON objects.
    pub(crate) fn parse(token: &'a str) -> Option<Jwt<'a>> {
        let token = token.trim();
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || h.is_empty() || p.is_empty() {
            return None;
        }
        let header = object(&b64_lenient(h)?)?;
        let claims = object(&b64_lenient(p)?)?;
        let signature = if s.is_empty() {
            Vec::new()
        } else {
            b64_lenient(s)?
        };
        Some(Jwt {
            header,
            claims,
            signing_input: &token[..h.len() + 1 + p.len()],
            signature,
        })
    }

    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim: `Ok(None)` when absent, `Err` when present but
    /// not a date.
    pub(crate) fn claim_date(&self, name: &str) -> Result<Option<i64>, ()> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => numeric_date(v).map(Some).ok_or(()),
        }
    }
}

fn object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Seconds since the epoch from an integer, a fractional number, or a string
/// of digits (optionally with a fraction) — all of which Entra accepts.
pub(crate) fn numeric_date(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f.floor() as i64)
        }),
        Value::String(s) => {
            let s = s.trim();
            let (int, frac) = s.split_once('.').unwrap_or((s, ""));
            let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
            if int.is_empty() || int.len() > 15 || !digits(int) || !digits(frac) {
                return None;
            }
            int.parse().ok()
        }
        _ => None,
    }
}

/// The audience values: a string, or an array of strings.
pub(crate) fn audiences(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::b64url;
    use serde_json::json;

    fn token(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes()),
            b64url(b"sig")
        )
    }

    #[test]
    fn dates_accept_integers_fractions_and_digit_strings() {
        assert_eq!(numeric_date(&json!(1700000000)), Some(1_700_000_000));
        assert_eq!(numeric_date(&json!(1700000000.75)), Some(1_700_000_000));
        assert_eq!(numeric_date(&json!("1700000000")), Some(1_700_000_000));
        assert_eq!(numeric_date(&json!("1700000000.5")), Some(1_700_000_000));
        assert_eq!(numeric_date(&json!("soon")), None);
        assert_eq!(numeric_date(&json!("")), None);
        assert_eq!(numeric_date(&json!("-5")), None);
        assert_eq!(numeric_date(&json!(true)), None);
        assert_eq!(numeric_date(&json!(f64::MAX)), None);
    }

    #[test]
    fn missing_nbf_is_none_and_bad_exp_is_an_error() {
        let t = token(
            &json!({"alg": "RS256"}),
            &json!({"exp": "1700000000", "iat": 1.5}),
        );
        let jwt = Jwt::parse(&t).expect("parses");
        assert_eq!(jwt.claim_date("nbf"), Ok(None));
        assert_eq!(jwt.claim_date("exp"), Ok(Some(1_700_000_000)));
        assert_eq!(jwt.claim_date("iat"), Ok(Some(1)));
        let t = token(&json!({"alg": "RS256"}), &json!({"exp": {"x": 1}}));
        assert_eq!(Jwt::parse(&t).expect("parses").claim_date("exp"), Err(()));
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "e30.e30.e30.e30",
            "e30",
            "W10.e30.",
            "\u{1F600}.e30.x",
        ] {
            assert!(Jwt::parse(bad).is_none(), "{bad:?}");
        }
        // `{}`.`{}`. with an empty signature parses (alg checks come later).
        let jwt = Jwt::parse("e30.e30.").expect("empty signature");
        assert!(jwt.signature.is_empty());
        assert_eq!(jwt.signing_input, "e30.e30");
    }

    #[test]
    fn x5t_in_any_base64_form_decodes_to_the_same_bytes() {
        let digest = crate::crypto::sha1(b"certificate");
        let forms = [
            crate::crypto::b64url(&digest),
            crate::crypto::b64std(&digest),
            crate::crypto::b64std(&digest)
                .trim_end_matches('=')
                .to_string(),
        ];
        for f in forms {
            let t = token(&json!({"alg": "PS256", "x5t": f}), &json!({}));
            let jwt = Jwt::parse(&t).expect("parses");
            assert_eq!(
                b64_lenient(jwt.header_str("x5t").expect("x5t")),
                Some(digest.clone())
            );
        }
    }

    #[test]
    fn audiences_accept_string_or_array() {
        assert_eq!(audiences(Some(&json!("a"))), Some(vec!["a".to_string()]));
        assert_eq!(
            audiences(Some(&json!(["a", "b"]))).map(|v| v.len()),
            Some(2)
        );
        assert_eq!(audiences(Some(&json!(3))), None);
        assert_eq!(audiences(None), None);
    }
}
