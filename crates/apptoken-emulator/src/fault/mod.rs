//! Fault injection: make chosen requests fail, slow down, or lose their
//! connection, so that clients' retry and cache logic can be tested.
//!
//! This module holds the model (the public [`Target`] and [`Fault`] with
//! its builder and presets); `matching` decides which fault fires,
//! `middleware` applies it, `admin` is the `/_emulator/faults` API.
//!
//! Invariants: faults sit in a middleware in front of every endpoint except
//! `/_emulator/*`; the first registered fault (lowest id) that matches and
//! fires decides the request's fate; a `Fault` is plain data, checked when
//! it is built (builder) or parsed (admin API), never when it fires.

use std::time::Duration;

mod admin;
mod matching;
mod middleware;

pub(crate) use admin::{add, clear, list, remove};
pub(crate) use matching::FaultSet;
pub(crate) use middleware::{DropConnection, layer};

const JSON: &str = "application/json; charset=utf-8";

/// Which requests a [`Fault`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// The token endpoint (`/{tenant}/oauth2/v2.0/token`, also `/oauth2/token`).
    Token,
    /// The OpenID configuration documents and instance discovery.
    Discovery,
    /// The JWKS documents (`/{tenant}/discovery/v2.0/keys`).
    Jwks,
    /// The sample API (`/v1.0/…`).
    SampleApi,
    /// The managed-identity endpoints: IMDS, App Service, Azure Arc.
    ManagedIdentity,
    /// Every request whose path starts with this prefix (`/_emulator/` excepted).
    Path(String),
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Token => "token",
            Target::Discovery => "discovery",
            Target::Jwks => "jwks",
            Target::SampleApi => "api",
            Target::ManagedIdentity => "managed_identity",
            Target::Path(_) => "path",
        }
    }
}

/// The body a fault answers with.
#[derive(Debug, Clone, PartialEq)]
enum FaultBody {
    /// Sent as is.
    Text(String),
    /// Entra's JSON error shape, with fresh trace and correlation ids per answer.
    Entra {
        error: &'static str,
        code: u32,
        message: &'static str,
    },
}

/// What to do to matching requests; build with [`Fault::on`] or a preset.
///
/// Without [`status`](Self::status) or [`drop_connection`](Self::drop_connection),
/// a fault with a [`delay`](Self::delay) only delays the request, which is
/// then answered normally; a fault with neither answers `500`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Fault {
    target: Target,
    client_id: Option<String>,
    tenant: Option<String>,
    times: Option<u64>,
    share: Option<f64>,
    status: Option<u16>,
    retry_after: Option<String>,
    body: Option<FaultBody>,
    content_type: Option<String>,
    delay: Option<Duration>,
    drop_connection: bool,
}

impl Fault {
    /// A fault on every request to `target`, until removed.
    pub fn on(target: Target) -> Fault {
        Fault {
            target,
            client_id: None,
            tenant: None,
            times: None,
            share: None,
            status: None,
            retry_after: None,
            body: None,
            content_type: None,
            delay: None,
            drop_connection: false,
        }
    }

    /// Entra's throttling answer: `429`, `Retry-After: 60`, plain-text body
    /// `Too Many Requests`.
    pub fn entra_throttle(target: Target) -> Fault {
        Fault::on(target)
            .status(429)
            .retry_after("60".to_string())
            .body("Too Many Requests".to_string())
            .content_type("text/plain; charset=utf-8".to_string())
    }

    /// A temporarily unavailable service: `503` with Entra's JSON error body
    /// (`temporarily_unavailable`, AADSTS90033, "A transient error has occurred.").
    pub fn unavailable(target: Target) -> Fault {
        let mut fault = Fault::on(target).status(503);
        fault.body = Some(FaultBody::Entra {
            error: "temporarily_unavailable",
            code: 90033,
            message: "A transient error has occurred. Please try again.",
        });
        fault
    }

    /// IMDS throttling: `429`, `Retry-After: 1`, IMDS's JSON error body.
    pub fn imds_throttle(target: Target) -> Fault {
        Fault::on(target)
            .status(429)
            .retry_after("1".to_string())
            .body(
                r#"{"error":"too_many_requests","error_description":"Too many requests: the managed identity endpoint is throttling. Retry with exponential backoff."}"#
                    .to_string(),
            )
            .content_type(JSON.to_string())
    }

    /// IMDS being updated: `410` with IMDS's JSON error body (clients retry
    /// every 10 s for up to 70 s).
    pub fn imds_updating(target: Target) -> Fault {
        Fault::on(target)
            .status(410)
            .body(
                r#"{"error":"service_unavailable","error_description":"IMDS is being updated. Retry in 10 seconds."}"#
                    .to_string(),
            )
            .content_type(JSON.to_string())
    }

    /// A managed-identity success answer with numbers where every real
    /// endpoint sends strings (`expires_in`, `expires_on`, …): `200`.
    pub fn mi_numbers(target: Target) -> Fault {
        Fault::on(target)
            .status(200)
            .body(
                r#"{"access_token":"eyJhbGciOiJub25lIn0.e30.","refresh_token":"","expires_in":86399,"expires_on":4102444800,"ext_expires_in":86399,"not_before":4102358400,"resource":"api://apptoken-sample-api","token_type":"Bearer"}"#
                    .to_string(),
            )
            .content_type(JSON.to_string())
    }

    /// A `200` JSON answer without `access_token` (nor `token_type`).
    pub fn mi_no_token(target: Target) -> Fault {
        Fault::on(target)
            .status(200)
            .body(
                r#"{"expires_on":"4102444800","resource":"api://apptoken-sample-api"}"#.to_string(),
            )
            .content_type(JSON.to_string())
    }

    /// A captive proxy's HTML login page, answered `200`.
    pub fn html_page(target: Target) -> Fault {
        Fault::on(target)
            .status(200)
            .body(
                "<!DOCTYPE html><html><head><title>Sign in to the network</title></head><body><form action=\"/login\"><input name=\"user\"></form></body></html>"
                    .to_string(),
            )
            .content_type("text/html; charset=utf-8".to_string())
    }

    /// Only token requests made with this client id (form field or Basic
    /// user name, case-insensitive). Other requests never match.
    #[must_use]
    pub fn client_id(mut self, client_id: &str) -> Fault {
        self.client_id = Some(client_id.to_string());
        self
    }

    /// Only requests whose tenant path segment is this tenant (id or domain,
    /// case-insensitive; `common` matches only `common`).
    #[must_use]
    pub fn tenant(mut self, tenant: &str) -> Fault {
        self.tenant = Some(tenant.to_string());
        self
    }

    /// Applies to the next `n` requests it fires on, then removes itself.
    #[must_use]
    pub fn times(mut self, n: u64) -> Fault {
        self.times = Some(n);
        self
    }

    /// Applies to this fraction of matching requests, deterministically: with
    /// `0.5` the 2nd, 4th, … matching request; with `1/3` every third one.
    /// Clamped to `0.0..=1.0`; NaN counts as `1.0`.
    #[must_use]
    pub fn share(mut self, share: f64) -> Fault {
        self.share = Some(if share.is_nan() {
            1.0
        } else {
            share.clamp(0.0, 1.0)
        });
        self
    }

    /// Answers with this HTTP status (an invalid status answers 500).
    #[must_use]
    pub fn status(mut self, status: u16) -> Fault {
        self.status = Some(status);
        self
    }

    /// Adds a `Retry-After` header (seconds or an HTTP date) to the answer.
    #[must_use]
    pub fn retry_after(mut self, value: String) -> Fault {
        self.retry_after = Some(value);
        self
    }

    /// The answer's body (default: empty).
    #[must_use]
    pub fn body(mut self, body: String) -> Fault {
        self.body = Some(FaultBody::Text(body));
        self
    }

    /// The answer's `Content-Type` (default: none).
    #[must_use]
    pub fn content_type(mut self, content_type: String) -> Fault {
        self.content_type = Some(content_type);
        self
    }

    /// Waits this long before answering (or before dropping the connection).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Fault {
        self.delay = Some(delay);
        self
    }

    /// Closes the connection without any HTTP answer.
    #[must_use]
    pub fn drop_connection(mut self) -> Fault {
        self.drop_connection = true;
        self
    }
}
