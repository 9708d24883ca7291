//! The subcommands: dispatch, and the token and API commands (`token`,
//! `call`, `consent-url`, `jwt decode`). `emulator` and `demo` are in
//! `local.rs`, `run` and `config check` in `run.rs`, `cert` in `cert.rs`,
//! `tenants` in `tenants.rs`, `whoami` in `whoami.rs`.

use std::io::Read;

use anyhow::{Context, bail};
use apptoken::{Authority, ConfidentialClient, TokenRequest};
use base64::Engine;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::Failure;
use crate::api::{self, ApiOutcome, ApiRequest};
use crate::cli::{CallArgs, Cli, Command, ConsentArgs, JwtCommand, TargetArgs, TokenArgs};
use crate::exit;
use crate::settings;

pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Token(args) => token(args).await,
        Command::Call(args) => call(args).await,
        Command::Whoami(args) => crate::whoami::whoami(args).await,
        Command::Exec(args) => crate::exec::exec(args).await,
        Command::Emulator(args) => crate::local::emulator(args).await,
        Command::ConsentUrl(args) => consent_url(args),
        Command::Demo => crate::local::demo().await,
        Command::Jwt {
            command: JwtCommand::Decode { token },
        } => jwt_decode(&token),
        Command::Run(args) => crate::run::run(args, cli.log_level, cli.log_format).await,
        Command::Config {
            command: crate::cli::ConfigCommand::Check { file },
        } => crate::run::config_check(&file),
        Command::Cert {
            command: crate::cli::CertCommand::New(args),
        } => crate::cert::new(args),
        Command::Cert {
            command: crate::cli::CertCommand::Show(args),
        } => crate::cert::show(args),
        Command::Tenants {
            command: crate::cli::TenantsCommand::Check(args),
        } => crate::tenants::check(args).await,
        Command::Tenants {
            command: crate::cli::TenantsCommand::Add(args),
        } => crate::tenants::edit(args, true),
        Command::Tenants {
            command: crate::cli::TenantsCommand::Remove(args),
        } => crate::tenants::edit(args, false),
    }
}

fn build_client(
    config: Option<&std::path::Path>,
    target: &TargetArgs,
) -> Result<(ConfidentialClient, apptoken::ClientConfig), Failure> {
    let mut cfg = settings::client_config(config)?;
    if let Some(issuer) = &target.issuer {
        cfg.issuer = Some(issuer.clone());
    }
    if let Some(issuer) = &cfg.issuer {
        tracing::debug!(issuer = %issuer, "a generic OpenID provider: the Entra settings and the managed identity are not used");
    }
    Ok((cfg.build_client()?, cfg))
}

/// `--resource` and `--audience` on a token request.
fn with_target(mut req: TokenRequest, target: &TargetArgs) -> TokenRequest {
    for r in &target.resources {
        req = req.resource(r);
    }
    if let Some(a) = &target.audience {
        req = req.audience(a);
    }
    req
}

async fn token(args: TokenArgs) -> Result<(), Failure> {
    let (client, cfg) = build_client(args.config.as_deref(), &args.provider)?;
    if args.scopes.is_empty() && cfg.issuer.is_none() {
        return Err(Failure {
            code: exit::USAGE,
            error: anyhow::anyhow!(
                "--scope is required: for Entra ID, the resource's application ID URI followed by \
                 /.default (https://graph.microsoft.com/.default); a generic provider (--issuer) \
                 may be asked for its default scopes"
            ),
        });
    }
    let mut req = with_target(TokenRequest::new(&args.scopes), &args.provider)
        .force_refresh(args.force_refresh);
    if let Some(t) = &args.tenant {
        req = req.tenant(t);
    }
    let token = client.acquire_token_with(req).await?;
    if args.raw {
        println!("{}", token.secret());
    } else {
        let out = json!({
            "access_token": token.secret(),
            "token_type": token.token_type(),
            "expires_on": token.expires_on().format(&Rfc3339).context("formatting the expiry")?,
            "tenant": token.tenant(),
            "scopes": token.scopes(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("printing the token")?
        );
    }
    Ok(())
}

fn consent_url(args: ConsentArgs) -> Result<(), Failure> {
    let cfg = settings::client_config(args.config.as_deref())?;
    let client_id = cfg.client_id.as_deref().ok_or_else(|| {
        Failure::config("no client id: set client_id in the configuration or AZURE_CLIENT_ID")
    })?;
    let cloud = match cfg.authority_host.as_deref() {
        Some(h) => apptoken::CloudInstance::parse(h)?,
        None => apptoken::CloudInstance::AzurePublic,
    };
    if let Some(r) = &args.redirect_uri {
        url::Url::parse(r)
            .map_err(|e| Failure::config(format!("--redirect-uri '{r}' is not a URL: {e}")))?;
    }
    let authority = Authority::entra(cloud, &args.tenant)?;
    println!(
        "{}",
        authority.admin_consent_url(client_id, args.redirect_uri.as_deref())
    );
    Ok(())
}

fn read_data(data: &str) -> anyhow::Result<Value> {
    let text = match data.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the request body from standard input")?;
            s
        }
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the request body file '{path}'"))?,
        None => data.to_string(),
    };
    serde_json::from_str(&text).context("the request body (--data) is not valid JSON")
}

async fn call(args: CallArgs) -> Result<(), Failure> {
    let (method, url) = match args.target.as_slice() {
        [url] => ("GET".to_string(), url.clone()),
        [method, url] => (method.to_ascii_uppercase(), url.clone()),
        _ => bail_failure(exit::FAILURE, "give [METHOD] URL")?,
    };
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| anyhow::anyhow!("'{method}' is not an HTTP method"))?;
    let url = url::Url::parse(&url).with_context(|| format!("'{url}' is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        bail_failure(exit::CONFIG, &format!("'{url}' is not an http(s) URL"))?;
    }
    let body = args.data.as_deref().map(read_data).transpose()?;
    let headers = api::parse_headers(&args.headers)?;
    let (client, cfg) = build_client(args.config.as_deref(), &args.provider)?;
    // Entra ID's default is the API's origin + /.default; a generic
    // provider's, its own default scopes.
    let scopes: Vec<String> = match (&args.scope, &cfg.issuer) {
        (Some(s), _) => vec![s.clone()],
        (None, Some(_)) => Vec::new(),
        (None, None) => vec![api::default_scope(&url)],
    };
    let mut token = with_target(TokenRequest::new(&scopes), &args.provider);
    if let Some(t) = &args.tenant {
        token = token.tenant(t);
    }
    let req = ApiRequest {
        method,
        url,
        body,
        headers,
        token,
    };
    let http = api::http_client(cfg.ca_file.as_deref())?;
    match api::call(&http, &client, &req, args.all_pages, args.max_pages).await? {
        ApiOutcome::Ok { body, .. } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&body).context("printing the answer")?
            );
            Ok(())
        }
        ApiOutcome::Failed { status, body } => {
            eprintln!("HTTP {status}");
            eprintln!("{body}");
            Err(Failure {
                code: exit::API,
                error: anyhow::anyhow!("the API answered {status}"),
            })
        }
    }
}

pub(crate) fn bail_failure<T>(code: u8, message: &str) -> Result<T, Failure> {
    Err(Failure {
        code,
        error: anyhow::anyhow!("{message}"),
    })
}

/// Decodes a JWT's claims without verifying it (for the demo's summary).
pub(crate) fn claims_of(token: &str) -> Value {
    decode_jwt(token).map(|(_, c)| c).unwrap_or(Value::Null)
}

pub(crate) fn decode_jwt(token: &str) -> anyhow::Result<(Value, Value)> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 {
        bail!(
            "not a JWT: expected three dot-separated parts, found {}",
            parts.len()
        );
    }
    let part = |i: usize, name: &str| -> anyhow::Result<Value> {
        let raw = parts[i].trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .with_context(|| format!("the JWT's {name} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("the JWT's {name} is not JSON"))
    };
    Ok((part(0, "header")?, part(1, "claims")?))
}

fn jwt_decode(token: &str) -> Result<(), Failure> {
    let token = if token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the token from standard input")?;
        s
    } else {
        token.to_string()
    };
    let (header, claims) = decode_jwt(&token).map_err(|e| Failure {
        code: exit::FAILURE,
        error: e,
    })?;
    eprintln!("note: the signature was NOT verified; do not trust these claims");
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({ "header": header, "claims": claims }))
            .context("printing")?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_decoding() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let t = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"RS256"}"#),
            enc(r#"{"roles":["A"]}"#)
        );
        let (h, c) = decode_jwt(&t).unwrap();
        assert_eq!(h["alg"], "RS256");
        assert_eq!(c["roles"][0], "A");
        assert!(decode_jwt("a.b").unwrap_err().to_string().contains("three"));
        assert!(
            decode_jwt("!!.b.c")
                .unwrap_err()
                .to_string()
                .contains("base64url")
        );
        assert!(
            decode_jwt(&format!("{}.{}.c", enc("x"), enc("{}")))
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
