//! Entra ID's error shape, its timestamps, and the per-request ids that go
//! into every answer.
//!
//! Invariants: every refusal the emulator answers as Entra is an `AadError`
//! built by one constructor here, so the status, OAuth `error`, AADSTS code
//! and message text of each answer are written in one place (the table in
//! docs/EMULATOR.md); the trace id is fresh per request and the correlation
//! id is the caller's `client-request-id` when it sent a usable one.
//!
//! Why over 500 lines: about 40 constructors, one per Entra answer, each
//! mostly its verbatim message; split by topic they would scatter the one
//! catalogue a reader compares with Entra's error reference.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use time::macros::format_description;

/// `yyyy-MM-dd HH:mm:ssZ`, as in `timestamp` and the description suffix.
pub(crate) fn format_timestamp(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

/// `yyyy-MM-ddTHH:mm:ss.fffffffZ`, as in AADSTS700024's message.
pub(crate) fn format_iso7(t: OffsetDateTime) -> String {
    format!(
        "{}.{:07}Z",
        t.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default(),
        t.nanosecond() / 100
    )
}

/// `MM/dd/yyyy HH:mm:ss`, as in "Found key 'Start=…, End=…'".
pub(crate) fn format_us(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[month]/[day]/[year] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

pub(crate) const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
pub(crate) const MS_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");

/// Ids and time fixed at the start of one request.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub(crate) trace_id: String,
    pub(crate) correlation_id: String,
    /// The caller's `client-request-id`, echoed back when given.
    pub(crate) client_request_id: Option<String>,
    pub(crate) now: OffsetDateTime,
}

impl RequestContext {
    /// Takes `client-request-id` from the header, else from the query string.
    pub(crate) fn new(headers: &HeaderMap, query: Option<&str>, now: OffsetDateTime) -> Self {
        let from_header = headers
            .get(&CLIENT_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let from_query = || {
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "client-request-id")
                .map(|(_, v)| v.into_owned())
        };
        let client_request_id = from_header
            .or_else(from_query)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && s.len() <= 200 && HeaderValue::from_str(s).is_ok());
        RequestContext {
            trace_id: uuid::Uuid::new_v4().to_string(),
            correlation_id: client_request_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            client_request_id,
            now,
        }
    }

    /// Adds `x-ms-request-id` and the echoed `client-request-id`.
    pub(crate) fn decorate(&self, headers: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.trace_id) {
            headers.insert(MS_REQUEST_ID, v);
        }
        if let Some(id) = &self.client_request_id
            && let Ok(v) = HeaderValue::from_str(id)
        {
            headers.insert(CLIENT_REQUEST_ID, v);
        }
    }
}

/// One Entra ID failure: HTTP status, OAuth `error`, AADSTS code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AadError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) code: u32,
    pub(crate) message: String,
}

const FIC_DOCS: &str = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
const CERT_DOCS: &str = "Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .";

impl AadError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        AadError {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    fn bad_request(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, message)
    }

    fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
    }

    // --- tenant ------------------------------------------------------------

    pub(crate) fn tenant_not_found(tenant: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. This may happen if there are no active subscriptions for the tenant. Check to make sure you have the correct tenant ID. Check with your subscription administrator."
            ),
        )
    }

    /// The 2023+ wording, answered by the discovery endpoints.
    pub(crate) fn tenant_not_found_discovery(tenant: &str) -> Self {
        Self::bad_request(
            "invalid_tenant",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        )
    }

    pub(crate) fn empty_guid_tenant(tenant: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            90002,
            format!(
                "Requested tenant identifier '{tenant}' is not valid. Tenant identifiers may not be an empty GUID."
            ),
        )
    }

    pub(crate) fn malformed_tenant(tenant: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            900023,
            format!(
                "Specified tenant identifier '{tenant}' is neither a valid DNS name, nor a valid external domain."
            ),
        )
    }

    // --- request -----------------------------------------------------------

    pub(crate) fn missing_parameter(name: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    pub(crate) fn unsupported_grant_type(grant: &str) -> Self {
        Self::bad_request(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        )
    }

    /// Emulator choice (no capture): conflicting or invalid parameters.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::bad_request("invalid_request", 90023, message)
    }

    /// Emulator choice (no capture): a `claims` parameter that is not a JSON object.
    pub(crate) fn malformed_claims() -> Self {
        Self::bad_request(
            "invalid_request",
            90014,
            "The 'claims' parameter is not a valid JSON object. See https://openid.net/specs/openid-connect-core-1_0.html#ClaimsParameter.",
        )
    }

    pub(crate) fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            90023,
            format!("The request body is larger than {limit} bytes."),
        )
    }

    pub(crate) fn get_on_token_endpoint() -> Self {
        Self::bad_request(
            "invalid_request",
            900561,
            "The endpoint only accepts POST, OPTIONS requests. Received a GET request.",
        )
    }

    // --- scope -------------------------------------------------------------

    pub(crate) fn scope_without_default(scope: &str) -> Self {
        Self::bad_request(
            "invalid_scope",
            1002012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    }

    pub(crate) fn several_resources(scope: &str) -> Self {
        Self::bad_request(
            "invalid_scope",
            70011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )
    }

    pub(crate) fn unknown_resource(resource: &str, tenant_name: &str) -> Self {
        Self::bad_request(
            "invalid_resource",
            500011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {tenant_name}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )
    }

    // --- application -------------------------------------------------------

    pub(crate) fn unknown_client(client_id: &str, tenant_name: &str) -> Self {
        Self::bad_request(
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    }

    pub(crate) fn missing_service_principal(client_id: &str, tenant_id: &str) -> Self {
        Self::invalid_client(
            7000229,
            format!(
                "The client application {client_id} is missing service principal in the tenant {tenant_id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
            ),
        )
    }

    pub(crate) fn app_disabled(client_id: &str, display_name: &str) -> Self {
        Self::bad_request(
            "unauthorized_client",
            7000112,
            format!("Application '{client_id}'({display_name}) is disabled."),
        )
    }

    // --- credentials -------------------------------------------------------

    pub(crate) fn no_credential() -> Self {
        Self::invalid_client(
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        )
    }

    pub(crate) fn wrong_secret(client_id: &str) -> Self {
        Self::invalid_client(
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )
    }

    pub(crate) fn expired_secret(client_id: &str) -> Self {
        Self::invalid_client(
            7000222,
            format!(
                "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            ),
        )
    }

    pub(crate) fn malformed_jwt() -> Self {
        Self::invalid_client(50027, "JWT token is invalid or malformed.")
    }

    pub(crate) fn unsupported_asymmetric_alg() -> Self {
        Self::invalid_client(
            700027,
            "Invalid JWT token. Unsupported asymmetric signing algorithm.",
        )
    }

    pub(crate) fn unsupported_alg(alg: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            5002738,
            format!(
                "Invalid JWT token. '{alg}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, PS256'"
            ),
        )
    }

    pub(crate) fn key_does_not_fit_alg() -> Self {
        Self::bad_request(
            "invalid_request",
            5002730,
            "Invalid JWT token. Unsupported key for the signing algorithm.",
        )
    }

    pub(crate) fn key_not_found(thumbprint_hex: &str, client_id: &str) -> Self {
        Self::invalid_client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint_hex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are not using the global cloud.]"
            ),
        )
    }

    pub(crate) fn bad_signature(
        thumbprint_hex: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Self {
        Self::invalid_client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumbprint_hex}', Found key 'Start={}, End={}']",
                format_us(start),
                format_us(end)
            ),
        )
    }

    pub(crate) fn key_expired(
        thumbprint_hex: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Self {
        Self::invalid_client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumbprint_hex}', Found key 'Start={}, End={}']",
                format_us(start),
                format_us(end)
            ),
        )
    }

    pub(crate) fn assertion_time_range(
        now: OffsetDateTime,
        nbf: Option<OffsetDateTime>,
        exp: OffsetDateTime,
    ) -> Self {
        let valid_from =
            nbf.map_or_else(|| "0001-01-01T00:00:00.0000000Z".to_string(), format_iso7);
        Self::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {valid_from}, expiry time of assertion {}. {CERT_DOCS}",
                format_iso7(now),
                format_iso7(exp)
            ),
        )
    }

    // --- workload identity federation ---------------------------------

    pub(crate) fn fic_issuer(iss: &str) -> Self {
        Self::invalid_client(
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. {FIC_DOCS}"
            ),
        )
    }

    pub(crate) fn fic_subject(sub: &str) -> Self {
        Self::invalid_client(
            700213,
            format!(
                "No matching federated identity record found for presented assertion subject '{sub}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. {FIC_DOCS}"
            ),
        )
    }

    /// tsv 9c-case (status unknown: 401 like 700213, **choice**).
    pub(crate) fn fic_subject_case(sub: &str) -> Self {
        Self::invalid_client(
            7002138,
            format!(
                "No matching federated identity record found for presented assertion subject '{sub}'. The subject matches with case-insensitive comparison, but not with case-sensitive comparison. {FIC_DOCS}"
            ),
        )
    }

    /// tsv 9d: code only; status and wording are a **choice**.
    pub(crate) fn fic_audience(aud: &str) -> Self {
        Self::invalid_client(
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{aud}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. {FIC_DOCS}"
            ),
        )
    }

    pub(crate) fn external_oidc_failed() -> Self {
        Self::bad_request(
            "invalid_request",
            90061,
            "Request to External OIDC endpoint failed.",
        )
    }

    /// tsv 9g.
    pub(crate) fn fic_key_not_found(client_id: &str) -> Self {
        Self::invalid_client(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key was not found., Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
            ),
        )
    }

    pub(crate) fn invalid_signature_external() -> Self {
        Self::invalid_client(
            700027,
            "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value.]",
        )
    }

    pub(crate) fn audience_mismatch() -> Self {
        Self::invalid_client(
            50012,
            "Client assertion audience claim does not match Realm issuer.",
        )
    }

    pub(crate) fn too_many_audiences(count: usize) -> Self {
        Self::invalid_client(
            5002741,
            format!(
                "Number of audience values in the provided client credential exceed maximum allowed. {count} audience values provided, maximum allowed is 1."
            ),
        )
    }

    pub(crate) fn subject_mismatch() -> Self {
        Self::invalid_client(
            50048,
            "Subject must match the issuer claim in the client assertion.",
        )
    }

    pub(crate) fn issuer_not_client() -> Self {
        Self::invalid_client(
            700021,
            format!(
                "Client assertion application identifier doesn't match 'client_id' parameter. {CERT_DOCS}"
            ),
        )
    }

    /// The full JSON body and headers, as Entra answers.
    pub(crate) fn into_response(self, ctx: &RequestContext, base_url: &str) -> Response {
        let timestamp = format_timestamp(ctx.now);
        let body = serde_json::json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
                self.code, self.message, ctx.trace_id, ctx.correlation_id, timestamp
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": ctx.trace_id,
            "correlation_id": ctx.correlation_id,
            "error_uri": format!("{base_url}/error?code={}", self.code),
        });
        json_response(self.status, &body, ctx)
    }
}

/// A JSON answer with Entra's headers (`no-store`, request ids).
pub(crate) fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    ctx: &RequestContext,
) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    ctx.decorate(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn timestamps_have_entra_formats() {
        let t = datetime!(2024-04-11 14:41:07.7766577 UTC);
        assert_eq!(format_timestamp(t), "2024-04-11 14:41:07Z");
        assert_eq!(format_iso7(t), "2024-04-11T14:41:07.7766577Z");
        assert_eq!(
            format_iso7(datetime!(2024-04-11 09:05:03 UTC)),
            "2024-04-11T09:05:03.0000000Z"
        );
        assert_eq!(format_us(t), "04/11/2024 14:41:07");
    }

    #[test]
    fn client_request_id_comes_from_header_then_query() {
        let now = datetime!(2024-01-01 00:00:00 UTC);
        let mut headers = HeaderMap::new();
        let ctx = RequestContext::new(&headers, Some("client-request-id=abc&x=1"), now);
        assert_eq!(ctx.correlation_id, "abc");
        headers.insert(CLIENT_REQUEST_ID, HeaderValue::from_static("from-header"));
        let ctx = RequestContext::new(&headers, Some("client-request-id=abc"), now);
        assert_eq!(ctx.correlation_id, "from-header");
        let ctx = RequestContext::new(&HeaderMap::new(), None, now);
        assert!(uuid::Uuid::parse_str(&ctx.correlation_id).is_ok());
        assert!(ctx.client_request_id.is_none());
    }

    #[tokio::test]
    async fn error_body_has_every_field_in_entra_shape() {
        let now = datetime!(2024-04-11 14:41:07 UTC);
        let mut headers = HeaderMap::new();
        headers.insert(CLIENT_REQUEST_ID, HeaderValue::from_static("corr-1"));
        let ctx = RequestContext::new(&headers, None, now);
        let response = AadError::wrong_secret("app-1").into_response(&ctx, "http://127.0.0.1:1");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[&MS_REQUEST_ID], ctx.trace_id.as_str());
        assert_eq!(response.headers()[&CLIENT_REQUEST_ID], "corr-1");
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["error"], "invalid_client");
        assert_eq!(v["error_codes"], serde_json::json!([7000215]));
        assert_eq!(v["timestamp"], "2024-04-11 14:41:07Z");
        assert_eq!(v["trace_id"], ctx.trace_id.as_str());
        assert_eq!(v["correlation_id"], "corr-1");
        assert_eq!(v["error_uri"], "http://127.0.0.1:1/error?code=7000215");
        let d = v["error_description"].as_str().expect("string");
        assert!(
            d.starts_with("AADSTS7000215: Invalid client secret provided."),
            "{d}"
        );
        assert!(d.ends_with(&format!(
            "app 'app-1'.\r\nTrace ID: {}\r\nCorrelation ID: corr-1\r\nTimestamp: 2024-04-11 14:41:07Z",
            ctx.trace_id
        )), "{d}");
    }
}
