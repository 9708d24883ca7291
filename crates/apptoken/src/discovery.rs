//! OpenID Connect discovery: where the token endpoint is.

use crate::authority::is_loopback;
use crate::error::{Error, Result};
use crate::http::Http;

/// What this client reads from an OpenID discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) token_endpoint: String,
    pub(crate) issuer: Option<String>,
}

pub(crate) async fn fetch(
    http: &Http,
    discovery_url: &str,
    client_request_id: &str,
) -> Result<Metadata> {
    let resp = http.get(discovery_url, client_request_id).await?;
    if !(200..300).contains(&resp.status) {
        return Err(resp.into_server_error());
    }
    parse(&resp.body, &resp.url, resp.status)
}

pub(crate) fn parse(body: &[u8], url: &str, status: u16) -> Result<Metadata> {
    let invalid = |message: String| Error::InvalidResponse {
        url: url.to_string(),
        status,
        message,
    };
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the OpenID discovery document is not JSON ({e})")))?;
    let token_endpoint = doc
        .get("token_endpoint")
        .and_then(|v| v.as_str())
        .ok_or_else(|| invalid("the OpenID discovery document has no token_endpoint".into()))?;
    let parsed = url::Url::parse(token_endpoint).map_err(|e| {
        invalid(format!(
            "the discovery document's token_endpoint is not a URL ({e})"
        ))
    })?;
    let secure = parsed.scheme() == "https" || (parsed.scheme() == "http" && is_loopback(&parsed));
    if !secure {
        return Err(invalid(format!(
            "the discovery document's token_endpoint '{token_endpoint}' is not https"
        )));
    }
    Ok(Metadata {
        token_endpoint: token_endpoint.to_string(),
        issuer: doc
            .get("issuer")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_token_endpoint() {
        let m = parse(
            br#"{"token_endpoint":"https://l/t/oauth2/v2.0/token","issuer":"https://l/t/v2.0"}"#,
            "u",
            200,
        )
        .unwrap();
        assert_eq!(m.token_endpoint, "https://l/t/oauth2/v2.0/token");
        assert!(parse(br#"{"token_endpoint":"http://evil/t"}"#, "u", 200).is_err());
        assert!(parse(br#"{"token_endpoint":"http://127.0.0.1:9/t"}"#, "u", 200).is_ok());
        assert!(
            parse(br#"{"issuer":"x"}"#, "u", 200)
                .unwrap_err()
                .to_string()
                .contains("no token_endpoint")
        );
        assert!(
            parse(b"<html>", "u", 200)
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(parse(br#"{"token_endpoint":42}"#, "u", 200).is_err());
    }
}
