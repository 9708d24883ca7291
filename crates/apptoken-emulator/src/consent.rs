//! `GET/POST /{tenant}/adminconsent`: Entra's admin consent endpoint, as a
//! small HTML page (no JavaScript) with Approve and Deny buttons.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::config::{App, Tenant};
use crate::error_shape::{RequestContext, format_timestamp};
use crate::params::Params;
use crate::server::AppState;
use crate::tenant::{TenantRef, resolve_tenant};

/// A parameter that is there and not empty.
fn get<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.first(name).filter(|v| !v.is_empty())
}

/// Escapes text for HTML element content and attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(status: StatusCode, title: &str, body: &str, ctx: &RequestContext) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{body}\n</body></html>\n",
        esc(title)
    );
    let mut response = (status, page).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    ctx.decorate(headers);
    response
}

/// An error page: never a redirect to an unchecked URL.
fn error_page(status: StatusCode, code: u32, message: &str, ctx: &RequestContext) -> Response {
    let body = format!(
        "<h1>Sorry, but we're having trouble signing you in.</h1>\n<p id=\"error\">AADSTS{code}: {}</p>\n<p>Trace ID: {}<br>Correlation ID: {}<br>Timestamp: {}</p>",
        esc(message),
        esc(&ctx.trace_id),
        esc(&ctx.correlation_id),
        format_timestamp(ctx.now)
    );
    html(status, "Sign in to your account", &body, ctx)
}

/// A checked request: the tenant (None for `common`), the app, the reply URL.
struct Checked<'a> {
    tenant: Option<&'a Tenant>,
    app: &'a App,
    redirect_uri: String,
}

fn check<'a>(
    st: &'a AppState,
    segment: &str,
    params: &Params,
    ctx: &RequestContext,
) -> Result<Checked<'a>, Box<Response>> {
    let tenant = match resolve_tenant(&st.config, segment, false) {
        Ok(TenantRef::Known(t)) => Some(t),
        Ok(TenantRef::Multi) => None,
        Err(e) => {
            return Err(Box::new(error_page(
                StatusCode::BAD_REQUEST,
                e.code,
                &e.message,
                ctx,
            )));
        }
    };
    let client_id = get(params, "client_id").unwrap_or_default();
    let directory = tenant.map_or(segment, |t| t.display_name.as_str());
    let app = st
        .config
        .app(client_id.trim())
        .filter(|a| a.multi_tenant || tenant.is_none_or(|t| t.id == a.home_tenant))
        .ok_or_else(|| {
            let e = crate::error_shape::AadError::unknown_client(client_id, directory);
            Box::new(error_page(StatusCode::BAD_REQUEST, e.code, &e.message, ctx))
        })?;
    let redirect_uri = get(params, "redirect_uri").unwrap_or_default();
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.",
                app.client_id
            ),
            ctx,
        )));
    }
    Ok(Checked {
        tenant,
        app,
        redirect_uri: redirect_uri.to_string(),
    })
}

/// `GET /{tenant}/adminconsent?client_id=…&redirect_uri=…[&state=…]`.
pub(crate) async fn page(
    State(st): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let segment = tenant.map(|p| p.0).unwrap_or_default();
    let params = Params::of_query(&uri);
    let checked = match check(&st, &segment, &params, &ctx) {
        Ok(c) => c,
        Err(page) => return *page,
    };
    let app = checked.app;
    let mut roles = String::new();
    for (resource, values) in &app.required_roles {
        let name = st
            .config
            .resource_by_app_id(resource)
            .map_or(resource.as_str(), |r| r.scope_prefix());
        for v in values {
            roles.push_str(&format!("<li>{} ({})</li>\n", esc(v), esc(name)));
        }
    }
    if roles.is_empty() {
        roles.push_str("<li>Sign in and read nothing else (no application permission)</li>\n");
    }
    let tenant_field = match checked.tenant {
        Some(t) => format!(
            "<p>Organization: {} ({})</p>\n<input type=\"hidden\" name=\"tenant\" value=\"{}\">",
            esc(&t.display_name),
            esc(&t.id),
            esc(&t.id)
        ),
        None => {
            let options: String = st
                .config
                .tenants
                .iter()
                .map(|t| {
                    format!(
                        "<option value=\"{}\">{}</option>",
                        esc(&t.id),
                        esc(&t.display_name)
                    )
                })
                .collect();
            format!(
                "<p><label>Organization: <select name=\"tenant\">{options}</select></label></p>"
            )
        }
    };
    let state = get(&params, "state")
        .map(|s| {
            format!(
                "<input type=\"hidden\" name=\"state\" value=\"{}\">",
                esc(s)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<h1>Permissions requested</h1>\n<p>{} ({})</p>\n<p>This app would like to:</p>\n<ul>\n{roles}</ul>\n\
         <form method=\"post\" action=\"/{}/adminconsent\">\n{tenant_field}\n\
         <input type=\"hidden\" name=\"client_id\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"redirect_uri\" value=\"{}\">\n{state}\n\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Accept</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Cancel</button>\n</form>",
        esc(&app.display_name),
        esc(&app.client_id),
        esc(&segment),
        esc(&app.client_id),
        esc(&checked.redirect_uri),
    );
    html(StatusCode::OK, "Permissions requested", &body, &ctx)
}

fn redirect(to: url::Url) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to.as_str()) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// `POST /{tenant}/adminconsent`: the Accept / Cancel buttons.
pub(crate) async fn decide(
    State(st): State<Arc<AppState>>,
    tenant: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let ctx = RequestContext::new(&headers, uri.query(), st.clock.now());
    let segment = tenant.map(|p| p.0).unwrap_or_default();
    let params = Params::parse(&body);
    let checked = match check(&st, &segment, &params, &ctx) {
        Ok(c) => c,
        Err(page) => return *page,
    };
    let Ok(mut target) = url::Url::parse(&checked.redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            50011,
            "Invalid redirect URI.",
            &ctx,
        );
    };
    let state = get(&params, "state").map(str::to_string);
    match get(&params, "decision") {
        Some("approve") => {
            let tenant = checked
                .tenant
                .map(|t| t.id.clone())
                .or_else(|| get(&params, "tenant").map(str::to_string))
                .unwrap_or_default();
            let tid = match st
                .runtime
                .consent(&st.config, &tenant, &checked.app.client_id)
            {
                Ok((tid, _)) => tid,
                Err(m) => return error_page(StatusCode::BAD_REQUEST, 90002, &m, &ctx),
            };
            {
                let mut q = target.query_pairs_mut();
                q.append_pair("admin_consent", "True");
                q.append_pair("tenant", &tid);
                if let Some(s) = &state {
                    q.append_pair("state", s);
                }
            }
            redirect(target)
        }
        Some("deny") => {
            let description = format!(
                "AADSTS65004: User declined to consent to access the app.\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
                ctx.trace_id,
                ctx.correlation_id,
                format_timestamp(ctx.now)
            );
            {
                let mut q = target.query_pairs_mut();
                q.append_pair("error", "access_denied");
                q.append_pair("error_description", &description);
                q.append_pair("error_subcode", "cancel");
                if let Some(s) = &state {
                    q.append_pair("state", s);
                }
            }
            redirect(target)
        }
        _ => error_page(
            StatusCode::BAD_REQUEST,
            900144,
            "The request body must contain the following parameter: 'decision'.",
            &ctx,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_attribute_breakers() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
