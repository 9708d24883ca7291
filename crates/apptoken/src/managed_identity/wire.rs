//! The wire formats of the managed-identity endpoints: each kind's request
//! (path, query, headers) and the answers they give — every number may be
//! a JSON string (IMDS's and App Service's are), `token_type` may be
//! missing, and errors come in IMDS's (`error`, `error_description`) or App
//! Service's (`statusCode`, `message`) shape.

use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::{Endpoint, ManagedIdentityId};
use crate::error::{ConfigError, ConfigErrorKind, Error, Result, ServerError};
use crate::http::Response;
use crate::source::TokenResponse;

/// IMDS's `api-version` for tokens (the one every client sends).
pub(crate) const IMDS_API_VERSION: &str = "2018-02-01";
/// App Service's.
pub(crate) const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// Azure Arc's.
pub(crate) const ARC_API_VERSION: &str = "2020-06-01";

/// The resource a managed-identity endpoint is asked for: the scope
/// without `/.default` (a trailing `/` before it is kept, as Entra reads
/// `https://x//.default` as resource `https://x/`).
pub(crate) fn resource_of(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

/// The URL (with its query) of a token request to `endpoint`.
pub(crate) fn token_url(
    endpoint: &Endpoint,
    id: &ManagedIdentityId,
    resource: &str,
) -> Result<String> {
    let mut url = url::Url::parse(endpoint.url()).map_err(|e| {
        ConfigError::new(
            ConfigErrorKind::Invalid,
            "the managed-identity endpoint is not a URL",
        )
        .with_setting("managed_identity")
        .with_source(e)
    })?;
    let (version, id_param) = match endpoint {
        Endpoint::Imds { .. } => (
            IMDS_API_VERSION,
            match id {
                ManagedIdentityId::SystemAssigned => None,
                ManagedIdentityId::ClientId(v) => Some(("client_id", v)),
                ManagedIdentityId::ObjectId(v) => Some(("object_id", v)),
                ManagedIdentityId::ResourceId(v) => Some(("msi_res_id", v)),
            },
        ),
        Endpoint::AppService { .. } => (
            APP_SERVICE_API_VERSION,
            match id {
                ManagedIdentityId::SystemAssigned => None,
                ManagedIdentityId::ClientId(v) => Some(("client_id", v)),
                ManagedIdentityId::ObjectId(v) => Some(("principal_id", v)),
                ManagedIdentityId::ResourceId(v) => Some(("mi_res_id", v)),
            },
        ),
        Endpoint::Arc { .. } => {
            if *id != ManagedIdentityId::SystemAssigned {
                return Err(ConfigError::new(
                    ConfigErrorKind::Unsupported,
                    format!(
                        "an Azure Arc server has only its system-assigned identity; {id} cannot be used there"
                    ),
                )
                .with_setting("managed_identity")
                .into());
            }
            (ARC_API_VERSION, None)
        }
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", version);
        q.append_pair("resource", resource);
        if let Some((name, value)) = id_param {
            q.append_pair(name, value.trim());
        }
    }
    Ok(url.into())
}

/// A string or a number (IMDS sends every number as a string).
#[derive(Deserialize)]
#[serde(untagged)]
enum Num {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Num {
    /// Whole non-negative seconds; `None` when it is not one.
    fn seconds(&self) -> Option<u64> {
        match self {
            Num::Int(n) => Some(*n),
            Num::Float(f) if f.is_finite() && *f >= 0.0 => Some(if *f >= u64::MAX as f64 {
                u64::MAX
            } else {
                *f as u64
            }),
            Num::Float(_) => None,
            Num::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    expires_in: Option<Num>,
    expires_on: Option<Num>,
    refresh_in: Option<Num>,
    token_type: Option<String>,
}

/// A success answer: the token and its lifetime. `expires_on` (absolute)
/// wins over `expires_in` when both are there, as the Azure SDKs read it.
pub(crate) fn parse_token(
    response: &Response,
    source: &str,
    now: OffsetDateTime,
) -> Result<TokenResponse> {
    let bad = |message: String| Error::InvalidResponse {
        url: response.url.clone(),
        status: response.status,
        message: format!("{source}: {message}"),
    };
    let body = &response.body;
    let answer: Answer = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.is_object() => serde_json::from_value(v)
            .map_err(|_| bad("the answer's fields have the wrong types".into()))?,
        Ok(_) => return Err(bad("the answer is not a JSON object".into())),
        Err(_) if looks_like_html(body) => {
            return Err(bad(
                "the answer is HTML, not JSON (a proxy or captive portal in the way?)".into(),
            ));
        }
        Err(_) => return Err(bad("the answer is not JSON".into())),
    };
    let token = answer
        .access_token
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| bad("the answer holds no access_token".into()))?;
    let expires_in = match (answer.expires_on.as_ref(), answer.expires_in.as_ref()) {
        (Some(on), _) => {
            let on = on
                .seconds()
                .ok_or_else(|| bad("expires_on is not a number of Unix seconds".into()))?;
            let left = i128::from(on) - i128::from(now.unix_timestamp());
            if left <= 0 {
                return Err(bad("the token it gave has already expired".into()));
            }
            Duration::from_secs(u64::try_from(left).unwrap_or(u64::MAX))
        }
        (None, Some(n)) => Duration::from_secs(
            n.seconds()
                .ok_or_else(|| bad("expires_in is not a number of seconds".into()))?,
        ),
        (None, None) => {
            return Err(bad(
                "the answer says neither expires_on nor expires_in".into()
            ));
        }
    };
    let token_type = match answer.token_type.as_deref().map(str::trim) {
        None | Some("") => "Bearer".to_string(),
        Some(t) if t.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
        Some(t) if t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && t.len() <= 32 => {
            t.to_string()
        }
        Some(_) => return Err(bad("token_type is not a token type".into())),
    };
    let mut response = TokenResponse::new(token, expires_in);
    response.token_type = token_type;
    if let Some(r) = answer.refresh_in.as_ref().and_then(Num::seconds) {
        response.refresh_in = Some(Duration::from_secs(r));
    }
    Ok(response)
}

fn looks_like_html(body: &[u8]) -> bool {
    let start: Vec<u8> = body
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(1)
        .copied()
        .collect();
    // `<!doctype html>`, `<html>`, or any markup: JSON never starts with `<`.
    start.first() == Some(&b'<')
}

/// A refusal: IMDS's JSON (`error`, `error_description`) is Entra's
/// shape; App Service's (`statusCode`, `message`) is mapped onto it.
pub(crate) fn into_error(response: Response, source: &str) -> Error {
    #[derive(Deserialize)]
    struct AppServiceError {
        #[serde(rename = "statusCode")]
        status_code: Option<Num>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_slice::<AppServiceError>(&response.body)
        && let Some(message) = e.message.filter(|_| e.status_code.is_some())
    {
        let mut err = ServerError::new(response.status, String::new());
        err.error_description = Some(format!("{source}: {}", clean(&message)));
        err.url = response.url;
        err.retry_after = response.retry_after;
        return Error::IdentityProvider(Box::new(err));
    }
    match response.into_server_error() {
        Error::IdentityProvider(mut e) => {
            let d = e.error_description.take();
            e.error_description = Some(match d {
                Some(d) => format!("{source}: {d}"),
                None => format!("{source} refused the request"),
            });
            Error::IdentityProvider(e)
        }
        other => other,
    }
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            url: "http://127.0.0.1:1/metadata/identity/oauth2/token".into(),
            retry_after: None,
            www_authenticate: None,
            body: body.as_bytes().to_vec(),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
    }

    #[test]
    fn urls_name_the_identity_as_each_endpoint_expects() {
        let imds = Endpoint::Imds {
            url: "http://127.0.0.1:9/metadata/identity/oauth2/token".into(),
        };
        let app = Endpoint::AppService {
            url: "http://127.0.0.1:9/msi/token".into(),
            header: "h".to_string().into(),
        };
        let arc = Endpoint::Arc {
            url: "http://127.0.0.1:9/arc".into(),
        };
        let res = resource_of("https://vault.azure.net/.default");
        assert_eq!(res, "https://vault.azure.net");
        assert_eq!(resource_of("https://x//.default"), "https://x/");
        let url = token_url(&imds, &ManagedIdentityId::SystemAssigned, res).unwrap();
        assert_eq!(
            url,
            "http://127.0.0.1:9/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
        );
        for (id, imds_param, app_param) in [
            (
                ManagedIdentityId::ClientId("c".into()),
                "client_id=c",
                "client_id=c",
            ),
            (
                ManagedIdentityId::ObjectId("o".into()),
                "object_id=o",
                "principal_id=o",
            ),
            (
                ManagedIdentityId::ResourceId("/subscriptions/s".into()),
                "msi_res_id=%2Fsubscriptions%2Fs",
                "mi_res_id=%2Fsubscriptions%2Fs",
            ),
        ] {
            assert!(
                token_url(&imds, &id, res).unwrap().ends_with(imds_param),
                "{id}"
            );
            let u = token_url(&app, &id, res).unwrap();
            assert!(
                u.contains("api-version=2019-08-01") && u.ends_with(app_param),
                "{u}"
            );
            assert!(
                token_url(&arc, &id, res).is_err(),
                "Arc has no user-assigned identities"
            );
        }
        let u = token_url(&arc, &ManagedIdentityId::SystemAssigned, res).unwrap();
        assert!(u.contains("api-version=2020-06-01"), "{u}");
    }

    #[test]
    fn answers_with_strings_or_numbers_parse_the_same() {
        for body in [
            r#"{"access_token":"t","expires_in":"86399","expires_on":"1767311999","resource":"r","token_type":"Bearer"}"#,
            r#"{"access_token":"t","expires_on":1767311999,"token_type":"Bearer"}"#,
            r#"{"access_token":"t","expires_in":86399}"#,
            r#"{"access_token":"t","expires_in":86399.0,"token_type":"bearer"}"#,
        ] {
            let t = parse_token(&response(200, body), "IMDS", now()).unwrap();
            assert_eq!(t.expires_in, Duration::from_secs(86399), "{body}");
            assert_eq!(t.token_type, "Bearer");
            assert_eq!(t.secret(), "t");
        }
    }

    #[test]
    fn bad_answers_get_clear_errors_naming_the_source_and_never_the_token() {
        for (body, want) in [
            ("<html><body>Sign in to the Wi-Fi</body></html>", "HTML"),
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"expires_in":"60"}"#, "no access_token"),
            (r#"{"access_token":"secret-token"}"#, "neither expires_on"),
            (
                r#"{"access_token":"secret-token","expires_on":"soon"}"#,
                "expires_on is not",
            ),
            (
                r#"{"access_token":"secret-token","expires_on":"1"}"#,
                "already expired",
            ),
            (
                r#"{"access_token":"secret-token","expires_in":"-5"}"#,
                "expires_in is not",
            ),
            (
                r#"{"access_token":"secret-token","expires_in":60,"token_type":"a b"}"#,
                "token_type",
            ),
            (
                r#"{"access_token":["secret-token"],"expires_in":60}"#,
                "wrong types",
            ),
        ] {
            let e = parse_token(&response(200, body), "IMDS", now()).unwrap_err();
            let shown = e.to_string();
            assert!(
                shown.contains(want) && shown.contains("IMDS"),
                "{body}: {shown}"
            );
            assert!(!shown.contains("secret-token"), "{shown}");
            assert!(matches!(e, Error::InvalidResponse { .. }));
        }
    }

    #[test]
    fn refusals_in_either_shape_keep_the_status_and_message() {
        let e = into_error(
            response(
                400,
                r#"{"error":"invalid_request","error_description":"Identity not found"}"#,
            ),
            "IMDS",
        );
        let s = e.server_error().unwrap();
        assert_eq!((s.status, s.error.as_str()), (400, "invalid_request"));
        assert!(
            s.error_description
                .as_deref()
                .unwrap()
                .contains("Identity not found")
        );
        let e = into_error(
            response(401, r#"{"statusCode":401,"message":"No identity header"}"#),
            "App Service",
        );
        let s = e.server_error().unwrap();
        assert_eq!(s.status, 401);
        assert!(
            s.error_description
                .as_deref()
                .unwrap()
                .contains("No identity header"),
            "{e}"
        );
        let e = into_error(response(502, "<html>Bad gateway</html>"), "IMDS");
        assert_eq!(e.status(), Some(502));
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..256), status in 100u16..600) {
            let _ = parse_token(&response(status, &String::from_utf8_lossy(&body)), "IMDS", now());
            let _ = into_error(response(status, &String::from_utf8_lossy(&body)), "IMDS");
        }
    }
}
