//! Tenant checks (issue #17): a dry run of the token request for every
//! tenant the jobs list, with the identity provider's answer, so that a
//! multi-tenant app can see, before a job runs, in which of its customers'
//! tenants it can get a token now (consented, not revoked, not disabled).
//!
//! [`check_tenants`] makes one fresh token request per distinct (API
//! scopes, tenant) pair, bounded in concurrency, and reports one
//! [`TenantCheck`] per job and tenant, in the configuration's order.
//! Nothing here keeps, logs or reports a token, a secret or an assertion:
//! of a token only its `roles` claim and its expiry are read.
//!
//! Why over 500 lines: about 430 are code, the rest its unit tests (roles
//! decoding, hints, error mapping, the JSON fields), kept beside the code.

use std::collections::{HashMap, HashSet};

use apptoken::{ConfidentialClient, TokenRequest};
use base64::Engine as _;
use futures::stream::{self, StreamExt};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::debug;

use crate::config::{DaemonConfig, JobConfig};
use crate::error::Error;

/// The longest `message` kept from an answer (characters): a description's
/// first line is short at Entra; a hostile server's is cut here.
const MAX_MESSAGE: usize = 1024;

const NOT_CONSENTED: &str = "the app is not consented in this tenant: send the tenant's admin the URL of `apptoken consent-url --tenant TENANT`";
const NO_SUCH_TENANT: &str = "no such tenant: check the name";
const DISABLED: &str = "the app is disabled in this tenant";
const TENANT_REFUSES: &str = "this tenant refuses the app (its policy, a disabled service principal, or a single-tenant app): the tenant's admin has to act; the daemon backs off on it";
const NO_API_PRINCIPAL: &str = "the API's service principal is missing in this tenant";
const BAD_CREDENTIAL: &str =
    "the credential is wrong (the same for every tenant): fix the app's secret or certificate";

/// One tenant of one job, checked: whether the app got a token there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantCheck {
    /// The job whose `tenants` list names the tenant.
    pub job: String,
    /// The job's API (a key of `[apis]`): its scopes were requested.
    pub api: String,
    /// The tenant, as the job lists it.
    pub tenant: String,
    /// What the identity provider answered.
    pub outcome: CheckOutcome,
}

/// What one dry-run token request gave.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckOutcome {
    /// A token was issued (and dropped: it is never kept or shown).
    Ok {
        /// The token's `roles` claim (the application permissions granted
        /// in that tenant), read without verifying the token, for display
        /// only; empty when the token is not a JWT or has no roles.
        roles: Vec<String>,
        /// When the token would have expired.
        expires_on: OffsetDateTime,
    },
    /// The identity provider refused the request.
    Refused {
        /// The HTTP status of the answer.
        status: u16,
        /// The OAuth `error` (`invalid_client`, `invalid_request`, …; empty
        /// when the answer was not an OAuth error document).
        error: String,
        /// The AADSTS codes (`"AADSTS7000229"`).
        codes: Vec<String>,
        /// The first line of `error_description` (or of a body that was not
        /// an OAuth error document).
        message: String,
        /// Entra's `trace_id`.
        trace_id: Option<String>,
        /// The `correlation_id` (the `client-request-id` sent).
        correlation_id: Option<String>,
    },
    /// The identity provider could not be reached (DNS, connection, TLS,
    /// timeout).
    Unreachable {
        /// What went wrong.
        message: String,
    },
    /// Anything else: an unusable answer, a tenant name the client refuses
    /// before sending anything, a credential that does not load.
    Other {
        /// What went wrong.
        message: String,
    },
}

impl CheckOutcome {
    /// Whether a token was issued.
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckOutcome::Ok { .. })
    }

    /// What to do about the usual tenant-level refusals (not consented, no
    /// such tenant, disabled, no service principal for the API) and a wrong
    /// credential; `TENANT` in the text stands for the tenant
    /// ([`TenantCheck::to_json`] puts the tenant in its place).
    pub fn hint(&self) -> Option<&'static str> {
        let CheckOutcome::Refused { error, codes, .. } = self else {
            return None;
        };
        codes
            .iter()
            .find_map(|c| hint_for_code(c.strip_prefix("AADSTS").unwrap_or(c)))
            .or_else(|| (error == "invalid_tenant").then_some(NO_SUCH_TENANT))
    }

    fn kind(&self) -> &'static str {
        match self {
            CheckOutcome::Ok { .. } => "ok",
            CheckOutcome::Refused { .. } => "refused",
            CheckOutcome::Unreachable { .. } => "unreachable",
            CheckOutcome::Other { .. } => "other",
        }
    }
}

fn hint_for_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "7000229" | "65001" | "700016" => NOT_CONSENTED,
        // 900023: a tenant name that is neither a GUID nor a domain name.
        "90002" | "900023" => NO_SUCH_TENANT,
        "7000112" => DISABLED,
        "500011" => NO_API_PRINCIPAL,
        "7000215" | "7000222" | "700027" => BAD_CREDENTIAL,
        // The other refusals the daemon backs off on (crate::backoff): the
        // tenant's answer, which retrying will not change.
        c if c
            .parse::<i64>()
            .is_ok_and(|c| crate::backoff::REFUSAL_CODES.contains(&c)) =>
        {
            TENANT_REFUSES
        }
        _ => return None,
    })
}

impl TenantCheck {
    /// Whether a token was issued.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The outcome's hint ([`CheckOutcome::hint`]).
    pub fn hint(&self) -> Option<&'static str> {
        self.outcome.hint()
    }

    /// The check as one JSON object with stable field names, every one of
    /// them always present (`null` when it does not apply): `job`, `api`,
    /// `tenant`, `ok` (bool), `outcome` (`ok`, `refused`, `unreachable`,
    /// `other`), `status`, `error`, `codes` (array), `message`, `trace_id`,
    /// `correlation_id`, `roles` (array), `expires_on` (RFC 3339), `hint`
    /// (with the tenant in place of `TENANT`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "job": self.job,
            "api": self.api,
            "tenant": self.tenant,
            "ok": self.outcome.is_ok(),
            "outcome": self.outcome.kind(),
            "status": null,
            "error": null,
            "codes": null,
            "message": null,
            "trace_id": null,
            "correlation_id": null,
            "roles": null,
            "expires_on": null,
            "hint": self.hint().map(|h| h.replace("TENANT", &self.tenant)),
        });
        let fields = match &self.outcome {
            CheckOutcome::Ok { roles, expires_on } => json!({
                "roles": roles,
                "expires_on": rfc3339(*expires_on),
            }),
            CheckOutcome::Refused {
                status,
                error,
                codes,
                message,
                trace_id,
                correlation_id,
            } => json!({
                "status": status,
                "error": error,
                "codes": codes,
                "message": message,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
            }),
            CheckOutcome::Unreachable { message } | CheckOutcome::Other { message } => {
                json!({ "message": message })
            }
        };
        if let (Value::Object(v), Value::Object(fields)) = (&mut v, fields) {
            v.extend(fields);
        }
        v
    }
}

/// Checks, for every job with a non-empty `tenants` list (or only the job
/// named `job`), whether the app can get a token in each of its tenants
/// now: one fresh token request (the cache is skipped) per distinct (API
/// scopes, tenant) pair, at most `concurrency` at once (0 counts as 1).
///
/// The results come in the configuration's order: jobs as listed, each
/// job's tenants as listed (a tenant listed twice in one job, in any case,
/// once). A job sharing its API's scopes and a tenant with an earlier job
/// shares that request's outcome.
///
/// Errors: `job` names no job (the message names the jobs there are), or
/// names a job without a `tenants` list; the client cannot be built from
/// `[identity]`. A tenant's refusal is not an error: it is that tenant's
/// [`CheckOutcome`].
pub async fn check_tenants(
    config: &DaemonConfig,
    job: Option<&str>,
    concurrency: usize,
) -> Result<Vec<TenantCheck>, Error> {
    let jobs: Vec<&JobConfig> = match job {
        None => config
            .jobs
            .iter()
            .filter(|j| !j.tenants.is_empty())
            .collect(),
        Some(name) => {
            let j = config
                .jobs
                .iter()
                .find(|j| j.name == name)
                .ok_or_else(|| unknown_job(config, name))?;
            if j.tenants.is_empty() {
                return Err(Error::Other(format!(
                    "job '{name}' has no tenants list: it runs in the identity's tenant only; give a job with `tenants`"
                )));
            }
            vec![j]
        }
    };

    // Each row is a job's tenant; `requests` holds the distinct (scopes,
    // tenant) pairs, each row the index of its own.
    struct Row<'a> {
        job: &'a JobConfig,
        tenant: &'a str,
        request: Result<usize, String>,
    }
    let mut rows = Vec::new();
    let mut requests: Vec<(&[String], &str)> = Vec::new();
    let mut index: HashMap<(&[String], String), usize> = HashMap::new();
    for j in jobs {
        let scopes = config.apis.get(&j.api).map(|a| a.scopes.as_slice());
        let mut seen = HashSet::new();
        for tenant in &j.tenants {
            let folded = tenant.trim().to_ascii_lowercase();
            if !seen.insert(folded.clone()) {
                continue;
            }
            let request = match scopes {
                Some(scopes) => Ok(*index.entry((scopes, folded)).or_insert_with(|| {
                    requests.push((scopes, tenant.as_str()));
                    requests.len() - 1
                })),
                None => Err(format!("no API named '{}'", j.api)),
            };
            rows.push(Row {
                job: j,
                tenant,
                request,
            });
        }
    }

    let outcomes: Vec<CheckOutcome> = if requests.is_empty() {
        Vec::new()
    } else {
        // A client of its own, as the daemon builds it but without the
        // shared store (Redis, file): a dry run must ask the identity
        // provider, not read a cached token, and needs no token kept. Its
        // cache starts empty and every request forces a refresh anyway.
        let client = config.identity.client_builder()?.build()?;
        let client = &client;
        // Owned items: a stream over borrowed ones makes the future !Send
        // (the closure's lifetimes become higher-ranked).
        let owned: Vec<(Vec<String>, String)> = requests
            .into_iter()
            .map(|(scopes, tenant)| (scopes.to_vec(), tenant.to_string()))
            .collect();
        stream::iter(owned)
            .map(|(scopes, tenant)| async move { check_one(client, &scopes, &tenant).await })
            .buffered(concurrency.max(1))
            .collect()
            .await
    };

    Ok(rows
        .into_iter()
        .map(|r| TenantCheck {
            job: r.job.name.clone(),
            api: r.job.api.clone(),
            tenant: r.tenant.to_string(),
            outcome: match r.request {
                Ok(i) => outcomes
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| CheckOutcome::Other {
                        message: "the check did not run".into(),
                    }),
                Err(message) => CheckOutcome::Other { message },
            },
        })
        .collect())
}

fn unknown_job(config: &DaemonConfig, name: &str) -> Error {
    if config.jobs.is_empty() {
        return Error::Other(format!(
            "no job named '{name}': {} has no jobs",
            config.path.display()
        ));
    }
    let names: Vec<String> = config
        .jobs
        .iter()
        .map(|j| match j.tenants.len() {
            0 => format!("'{}' (no tenants)", j.name),
            1 => format!("'{}' (1 tenant)", j.name),
            n => format!("'{}' ({n} tenants)", j.name),
        })
        .collect();
    Error::Other(format!(
        "no job named '{name}'; the jobs are: {}",
        names.join(", ")
    ))
}

/// One forced token request for `scopes` in `tenant`.
async fn check_one(client: &ConfidentialClient, scopes: &[String], tenant: &str) -> CheckOutcome {
    let request = TokenRequest::new(scopes).tenant(tenant).force_refresh(true);
    let outcome = match client.acquire_token_with(request).await {
        Ok(token) => CheckOutcome::Ok {
            roles: roles_of(token.secret()),
            expires_on: token.expires_on(),
        },
        Err(e) => outcome_of(&e),
    };
    match &outcome {
        CheckOutcome::Ok { roles, .. } => {
            debug!(tenant, scope = %scopes.join(" "), roles = %roles.join(" "), "tenant check: a token was issued");
        }
        CheckOutcome::Refused {
            status,
            codes,
            trace_id,
            correlation_id,
            ..
        } => {
            debug!(tenant, scope = %scopes.join(" "), status, codes = %codes.join(" "), trace_id = trace_id.as_deref(), correlation_id = correlation_id.as_deref(), "tenant check: the identity provider refused");
        }
        CheckOutcome::Unreachable { message } | CheckOutcome::Other { message } => {
            debug!(tenant, scope = %scopes.join(" "), error = %message, "tenant check: no token");
        }
    }
    outcome
}

/// A failed token request as a check's outcome (apptoken's errors never
/// carry a secret, an assertion or a token).
fn outcome_of(e: &apptoken::Error) -> CheckOutcome {
    match e {
        apptoken::Error::IdentityProvider(se) => {
            let first = se
                .error_description
                .as_deref()
                .or(se.body_excerpt.as_deref())
                .and_then(|d| d.lines().next())
                .unwrap_or("")
                .trim();
            CheckOutcome::Refused {
                status: se.status,
                error: se.error.clone(),
                codes: se.aadsts(),
                message: first.chars().take(MAX_MESSAGE).collect(),
                trace_id: se.trace_id.clone(),
                correlation_id: se.correlation_id.clone(),
            }
        }
        apptoken::Error::Transport { .. } => CheckOutcome::Unreachable {
            message: e.report().to_string(),
        },
        other => CheckOutcome::Other {
            message: other.report().to_string(),
        },
    }
}

/// The `roles` claim of a JWT's payload, decoded without verifying
/// anything (for display only); empty for anything that is not a JWS in
/// compact form with a JSON object payload.
fn roles_of(token: &str) -> Vec<String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Vec::new();
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return Vec::new();
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(claims)) => match claims.get("roles") {
            Some(Value::Array(roles)) => roles
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn roles_are_read_from_the_payload_without_verifying() {
        assert_eq!(
            roles_of(&jwt(
                r#"{"aud":"api://x","roles":["Users.Read.All","Groups.Read.All"]}"#
            )),
            ["Users.Read.All", "Groups.Read.All"]
        );
        // Padded base64url, and '-'/'_' characters (a payload byte 0xfb/0xff).
        let payload = r#"{"roles":["a"],"n":"~~~???"}"#;
        let padded = format!("e30.{}.c2ln", URL_SAFE.encode(payload));
        assert!(URL_SAFE.encode(payload).contains(['-', '_', '=']));
        assert_eq!(roles_of(&padded), ["a"]);
        // Entries that are not strings are skipped.
        assert_eq!(roles_of(&jwt(r#"{"roles":["a",1,null,"b"]}"#)), ["a", "b"]);
    }

    #[test]
    fn anything_but_a_jwt_with_roles_gives_no_roles() {
        for token in [
            String::new(),
            "opaque-token".into(),
            "a.b".into(),
            "a.b.c.d.e".into(), // a JWE
            jwt(r#"{"aud":"api://x"}"#),
            jwt(r#"{"roles":"Users.Read.All"}"#),
            jwt(r#"["roles"]"#),
            jwt("not json"),
            format!("e30.{}.c2ln", STANDARD.encode([0xfb, 0xff])), // not base64url
            "e30.!!!.c2ln".into(),
        ] {
            assert!(roles_of(&token).is_empty(), "{token}");
        }
    }

    fn refused(error: &str, codes: &[&str]) -> CheckOutcome {
        CheckOutcome::Refused {
            status: 400,
            error: error.into(),
            codes: codes.iter().map(|c| c.to_string()).collect(),
            message: String::new(),
            trace_id: None,
            correlation_id: None,
        }
    }

    #[test]
    fn tenant_level_refusals_have_hints() {
        // Every code the daemon backs off on has a hint.
        for code in crate::backoff::REFUSAL_CODES {
            assert!(
                hint_for_code(&code.to_string()).is_some(),
                "AADSTS{code} has no hint"
            );
        }
        for (codes, error, want) in [
            (&["AADSTS7000229"][..], "invalid_client", NOT_CONSENTED),
            (&["AADSTS65001"], "invalid_grant", NOT_CONSENTED),
            (&["AADSTS700016"], "unauthorized_client", NOT_CONSENTED),
            (&["AADSTS90002"], "invalid_request", NO_SUCH_TENANT),
            (&[], "invalid_tenant", NO_SUCH_TENANT),
            (&["AADSTS7000112"], "unauthorized_client", DISABLED),
            (&["AADSTS500011"], "invalid_resource", NO_API_PRINCIPAL),
            (&["AADSTS7000215"], "invalid_client", BAD_CREDENTIAL),
            (&["AADSTS7000222"], "invalid_client", BAD_CREDENTIAL),
            (&["AADSTS700027"], "invalid_client", BAD_CREDENTIAL),
            // The first code with a hint decides.
            (&["AADSTS1", "AADSTS7000112"], "x", DISABLED),
        ] {
            assert_eq!(refused(error, codes).hint(), Some(want), "{codes:?}");
        }
        assert!(NOT_CONSENTED.contains("apptoken consent-url --tenant TENANT"));
        for o in [
            refused("invalid_request", &["AADSTS900144"]),
            refused("temporarily_unavailable", &["AADSTS90033"]),
            refused("", &[]),
            // Not a prefix match: 7000229 is not 70002.
            refused("invalid_client", &["AADSTS70002"]),
            CheckOutcome::Unreachable {
                message: "AADSTS7000229".into(),
            },
            CheckOutcome::Other {
                message: "AADSTS90002".into(),
            },
            CheckOutcome::Ok {
                roles: vec![],
                expires_on: OffsetDateTime::UNIX_EPOCH,
            },
        ] {
            assert_eq!(o.hint(), None, "{o:?}");
        }
    }

    #[test]
    fn identity_provider_errors_become_refusals_with_entras_fields() {
        let mut se = apptoken::ServerError::new(401, "invalid_client");
        se.error_codes = vec![7000229];
        se.error_description = Some(
            "AADSTS7000229: The client application is missing service principal in the tenant.\r\nTrace ID: t1\r\nCorrelation ID: c1\r\nTimestamp: 2025-01-01 00:00:00Z".into(),
        );
        se.trace_id = Some("t1".into());
        se.correlation_id = Some("c1".into());
        let o = outcome_of(&apptoken::Error::IdentityProvider(Box::new(se)));
        assert_eq!(
            o,
            CheckOutcome::Refused {
                status: 401,
                error: "invalid_client".into(),
                codes: vec!["AADSTS7000229".into()],
                message: "AADSTS7000229: The client application is missing service principal in the tenant.".into(),
                trace_id: Some("t1".into()),
                correlation_id: Some("c1".into()),
            }
        );
        let check = TenantCheck {
            job: "users".into(),
            api: "graph".into(),
            tenant: "fabrikam.example".into(),
            outcome: o,
        };
        let v = check.to_json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["outcome"], "refused");
        assert_eq!(v["status"], 401);
        assert_eq!(v["codes"], json!(["AADSTS7000229"]));
        assert_eq!(v["trace_id"], "t1");
        assert_eq!(v["roles"], Value::Null);
        assert_eq!(
            v["hint"],
            "the app is not consented in this tenant: send the tenant's admin the URL of `apptoken consent-url --tenant fabrikam.example`"
        );

        // A body that was not an OAuth document: its first line.
        let mut se = apptoken::ServerError::new(429, "");
        se.body_excerpt = Some("Too Many Requests\nmore".into());
        let o = outcome_of(&apptoken::Error::IdentityProvider(Box::new(se)));
        assert!(
            matches!(&o, CheckOutcome::Refused { message, codes, .. } if message == "Too Many Requests" && codes.is_empty()),
            "{o:?}"
        );
        // The cause (here the socket's error) is in the message: the
        // report, not only the top-level text.
        let o = outcome_of(&apptoken::Error::transport(
            "https://login.example/t/oauth2/v2.0/token",
            "the connection failed",
            false,
            Some(std::sync::Arc::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))),
        ));
        assert!(
            matches!(&o, CheckOutcome::Unreachable { message } if message.contains("connection refused")),
            "{o:?}"
        );
        let o = outcome_of(
            &apptoken::AuthorityError::new(apptoken::AuthorityErrorKind::Tenant, "bad tenant")
                .into(),
        );
        assert!(matches!(o, CheckOutcome::Other { .. }), "{o:?}");
    }

    #[test]
    fn json_fields_are_stable() {
        let check = TenantCheck {
            job: "users".into(),
            api: "graph".into(),
            tenant: "contoso.example".into(),
            outcome: CheckOutcome::Ok {
                roles: vec!["Users.Read.All".into()],
                expires_on: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            },
        };
        let v = check.to_json();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "api",
                "codes",
                "correlation_id",
                "error",
                "expires_on",
                "hint",
                "job",
                "message",
                "ok",
                "outcome",
                "roles",
                "status",
                "tenant",
                "trace_id"
            ]
        );
        assert_eq!(v["ok"], true);
        assert_eq!(v["roles"], json!(["Users.Read.All"]));
        assert_eq!(v["expires_on"], "2023-11-14T22:13:20Z");
        assert_eq!(v["hint"], Value::Null);
        assert_eq!(v["status"], Value::Null);
        let other = TenantCheck {
            outcome: CheckOutcome::Unreachable {
                message: "could not reach".into(),
            },
            ..check
        };
        let w = other.to_json();
        assert_eq!(w.as_object().unwrap().len(), keys.len());
        assert_eq!(w["outcome"], "unreachable");
        assert_eq!(w["message"], "could not reach");
        assert_eq!(w["expires_on"], Value::Null);
    }

    fn config(jobs: &str) -> DaemonConfig {
        let text = format!(
            "[identity]\nauthority_host = \"http://127.0.0.1:9\"\ntenant_id = \"contoso.example\"\nclient_id = \"cid\"\n\n[apis.sample]\nbase_url = \"http://127.0.0.1:9/v1.0\"\nscopes = [\"api://sample/.default\"]\n\n{jobs}"
        );
        DaemonConfig::from_toml_str(&text, &std::env::temp_dir().join("daemon.toml"), &|k| {
            (k == "AZURE_CLIENT_SECRET").then(|| "s".into())
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn an_unknown_job_names_the_jobs_there_are() {
        let c = config(
            "[[jobs]]\nname = \"users\"\napi = \"sample\"\npath = \"users\"\nevery = \"1h\"\ntenants = [\"a.example\", \"b.example\"]\n\n[[jobs]]\nname = \"me\"\napi = \"sample\"\npath = \"me\"\nevery = \"1h\"\n",
        );
        let e = check_tenants(&c, Some("groups"), 4).await.unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("'groups'")
                && m.contains("'users' (2 tenants)")
                && m.contains("'me' (no tenants)"),
            "{m}"
        );
        let e = check_tenants(&c, Some("me"), 4).await.unwrap_err();
        assert!(e.to_string().contains("no tenants list"), "{e}");
        let e = check_tenants(&config(""), Some("users"), 4)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("has no jobs"), "{e}");
        // No job with tenants: nothing to check, nothing sent.
        let c =
            config("[[jobs]]\nname = \"me\"\napi = \"sample\"\npath = \"me\"\nevery = \"1h\"\n");
        assert!(check_tenants(&c, None, 4).await.unwrap().is_empty());
    }

    #[test]
    fn the_check_can_run_on_any_task() {
        fn send<T: Send>(_: &T) {}
        let c = config("");
        send(&check_tenants(&c, None, 1));
    }
}
