//! `GET /arc/metadata/identity/oauth2/token`: the Azure Arc agent's
//! managed-identity endpoint (`IDENTITY_ENDPOINT` on an Arc machine). The
//! first request is answered 401 with `WWW-Authenticate: Basic
//! realm=<key file>`; the agent has just written a fresh random key there
//! (mode 0600, `.key`, 64 bytes); the retry with `Authorization: Basic
//! <file contents>` gets the token in IMDS's shape. System-assigned only.
//!
//! Invariants: a key is valid only if this emulator wrote it; keys are
//! compared in constant time; a missing or wrong key gets a new challenge;
//! every answer is counted under `arc`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::imds::{check_api_version, error_response, has_metadata_header};
use super::{MiError, Source, count, issue, select};
use crate::params::Params;
use crate::server::AppState;

pub(crate) const PATH: &str = "/arc/metadata/identity/oauth2/token";
/// MSAL and azure-identity send 2019-11-01; the docs name 2020-06-01.
const API_VERSIONS: [&str; 2] = ["2019-11-01", "2020-06-01"];
/// Any of these names a user-assigned identity, which Arc does not have.
const USER_ID_PARAMS: [&str; 5] = [
    "client_id",
    "object_id",
    "msi_res_id",
    "mi_res_id",
    "principal_id",
];

/// The keys written so far.
#[derive(Debug, Default)]
pub(crate) struct ArcKeys(Mutex<Vec<String>>);

impl AppState {
    /// The directory the Arc challenge writes key files into.
    pub(crate) fn arc_key_dir(&self) -> PathBuf {
        arc_key_dir(&self.config)
    }
}

/// The configured key directory, else `{state_dir}/arc-tokens`, else a
/// directory under the system's temporary directory.
pub(crate) fn arc_key_dir(config: &crate::config::Config) -> PathBuf {
    config
        .arc_key_dir
        .clone()
        .or_else(|| config.state_dir.as_ref().map(|d| d.join("arc-tokens")))
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("apptoken-emulator-arc-{}", std::process::id()))
        })
}

fn challenge(st: &AppState) -> Result<Response, MiError> {
    let dir = st.arc_key_dir();
    let failed = |e: String| {
        tracing::error!(error = %e, "writing the Arc key file");
        MiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The agent could not write its key file.",
        )
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed(e.to_string()))?;
    }
    let key = hex::encode(crate::crypto::random_bytes(32));
    let path = dir.join(format!("{}.key", uuid::Uuid::new_v4()));
    crate::embedded::write_private(&path, key.as_bytes()).map_err(|e| failed(e.to_string()))?;
    st.arc_keys
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(key);
    let mut response = error_response(&MiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authentication required: retry with 'Authorization: Basic <contents of the file named in WWW-Authenticate>'.",
    ));
    let value = HeaderValue::from_str(&format!("Basic realm={}", path.display()))
        .map_err(|e| failed(e.to_string()))?;
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, value);
    Ok(response)
}

fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("basic")
        .then(|| rest.trim().to_string())
}

fn known_key(st: &AppState, presented: &str) -> bool {
    st.arc_keys
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|k| verify_slices_are_equal(k.as_bytes(), presented.as_bytes()).is_ok())
}

/// The handler.
pub(crate) async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = Params::of_query(&uri);
    let _slot = st.mi_limits.admit(st.clock.now(), false);
    let result = async {
        if !has_metadata_header(&headers) {
            return Err(MiError::bad_request("Required metadata header not specified"));
        }
        check_api_version(&query, &API_VERSIONS)?;
        if let Some(name) = USER_ID_PARAMS.iter().find(|n| query.first(n).is_some()) {
            return Err(MiError::bad_request(format!(
                "Azure Arc supports only the system-assigned identity; '{name}' names a user-assigned one."
            )));
        }
        match presented_key(&headers) {
            Some(key) if known_key(&st, &key) => {}
            _ => return Ok(Err(challenge(&st)?)),
        }
        st.mi_limits.pass_hold().await;
        let identity = select(&st.config, &query, &[])?;
        issue(&st, identity, query.first("resource")).map(Ok)
    }
    .await;
    match result {
        Ok(Ok(issued)) => {
            count(&st, Source::Arc, &issued.client_id, StatusCode::OK);
            axum::Json(issued.imds_body()).into_response()
        }
        Ok(Err(challenge)) => {
            count(&st, Source::Arc, "", StatusCode::UNAUTHORIZED);
            challenge
        }
        Err(e) => {
            count(&st, Source::Arc, "", e.status);
            error_response(&e)
        }
    }
}
