//! Calling web APIs with a token, following pages.

use anyhow::{Context, bail};
use apptoken::{ConfidentialClient, TokenRequest};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use url::Url;

/// One API request.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub(crate) method: reqwest::Method,
    pub(crate) url: Url,
    pub(crate) body: Option<Value>,
    pub(crate) headers: HeaderMap,
    pub(crate) token: TokenRequest,
}

/// What the API answered.
#[derive(Debug)]
pub(crate) enum ApiOutcome {
    /// 2xx: the JSON body (all items under `value` when pages were followed), and the page count.
    Ok { body: Value, pages: usize },
    /// Non-2xx: status and body text.
    Failed {
        status: reqwest::StatusCode,
        body: String,
    },
}

/// The client for API calls; `ca_file` adds trusted roots (the emulator's CA).
pub(crate) fn http_client(ca_file: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("apptoken/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca_file {
        let pem = apptoken::read_ca_file(ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("'{}' is not a PEM certificate bundle", ca.display()))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().context("cannot build the HTTP client")
}

/// The default scope for an API URL: its origin followed by `/.default`.
pub(crate) fn default_scope(url: &Url) -> String {
    format!("{}/.default", url.origin().ascii_serialization())
}

/// Parses `Name: value` header arguments.
pub(crate) fn parse_headers(raw: &[String]) -> anyhow::Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for h in raw {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header '{h}' is not of the form 'Name: value'"))?;
        let name = HeaderName::try_from(name.trim())
            .with_context(|| format!("'{}' is not a header name", name.trim()))?;
        if name == reqwest::header::AUTHORIZATION {
            bail!("the Authorization header is set by apptoken from the token; do not pass it");
        }
        let value = HeaderValue::try_from(value.trim())
            .with_context(|| format!("the value of header '{name}' is not valid"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Sends the request; with `all_pages`, follows `@odata.nextLink` and
/// `Link: <…>; rel="next"` on the same origin, up to `max_pages`.
pub(crate) async fn call(
    http: &reqwest::Client,
    client: &ConfidentialClient,
    req: &ApiRequest,
    all_pages: bool,
    max_pages: usize,
) -> anyhow::Result<ApiOutcome> {
    let mut url = req.url.clone();
    let mut items: Vec<Value> = Vec::new();
    let mut pages = 0usize;
    loop {
        let token = client.acquire_token_with(req.token.clone()).await?;
        let mut builder = http
            .request(req.method.clone(), url.clone())
            .headers(req.headers.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        let mut auth = HeaderValue::try_from(token.authorization_header())
            .context("the token cannot be sent in a header")?;
        auth.set_sensitive(true);
        builder = builder.header(reqwest::header::AUTHORIZATION, auth);
        if let Some(body) = &req.body {
            builder = builder.json(body);
        }
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let resp = builder
            .send()
            .await
            .map_err(|e| apptoken_transport(&shown, e))?;
        let status = resp.status();
        let next_link_header = resp
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(apptoken_daemon::link_next);
        let text = resp
            .text()
            .await
            .map_err(|e| apptoken_transport(&shown, e))?;
        pages += 1;
        if !status.is_success() {
            return Ok(ApiOutcome::Failed { status, body: text });
        }
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| {
                format!("{shown} answered {status} with a body that is not JSON")
            })?
        };
        if !all_pages {
            return Ok(ApiOutcome::Ok { body, pages });
        }
        let next = body
            .get("@odata.nextLink")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or(next_link_header);
        match body.get("value") {
            Some(Value::Array(v)) => items.extend(v.iter().cloned()),
            _ if pages == 1 && next.is_none() => return Ok(ApiOutcome::Ok { body, pages }),
            _ => bail!("page {pages} of {shown} has no \"value\" array; cannot merge pages"),
        }
        let Some(next) = next else { break };
        let next_url = url
            .join(&next)
            .with_context(|| format!("the next-page link '{next}' is not a URL"))?;
        if next_url.origin() != req.url.origin() {
            bail!(
                "the next-page link points at another origin ({}); apptoken does not send the token there",
                next_url.origin().ascii_serialization()
            );
        }
        if next_url == url {
            bail!("the next-page link points at the same page again; stopping");
        }
        if pages >= max_pages {
            bail!("stopped after {max_pages} pages (--max-pages); more pages follow");
        }
        url = next_url;
    }
    Ok(ApiOutcome::Ok {
        body: serde_json::json!({ "value": items }),
        pages,
    })
}

fn apptoken_transport(url: &str, e: reqwest::Error) -> anyhow::Error {
    crate::failure::Unreachable::new(url, e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_scopes() {
        let h = parse_headers(&["ConsistencyLevel: eventual".into()]).unwrap();
        assert_eq!(h.get("consistencylevel").unwrap(), "eventual");
        assert!(parse_headers(&["nocolon".into()]).is_err());
        assert!(parse_headers(&["Authorization: Bearer x".into()]).is_err());
        let u = Url::parse("https://graph.microsoft.com/v1.0/users?$top=5").unwrap();
        assert_eq!(default_scope(&u), "https://graph.microsoft.com/.default");
    }
}
