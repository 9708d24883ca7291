//! The subcommands.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use apptoken::{
    Authority, Certificate, ClientSecret, ConfidentialClient, Credential, TokenRequest,
};
use apptoken_emulator::{Config as EmulatorConfig, Emulator};
use base64::Engine;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::Failure;
use crate::api::{self, ApiOutcome, ApiRequest};
use crate::cli::{CallArgs, Cli, Command, ConsentArgs, EmulatorArgs, JwtCommand, TokenArgs};
use crate::exit;
use crate::settings;

pub(crate) async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Token(args) => token(args).await,
        Command::Call(args) => call(args).await,
        Command::Emulator(args) => emulator(args).await,
        Command::ConsentUrl(args) => consent_url(args),
        Command::Demo => demo().await,
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
) -> Result<(ConfidentialClient, apptoken::ClientConfig), Failure> {
    let cfg = settings::client_config(config)?;
    Ok((cfg.build_client()?, cfg))
}

async fn token(args: TokenArgs) -> Result<(), Failure> {
    let (client, _) = build_client(args.config.as_deref())?;
    let mut req = TokenRequest::new([&args.scope]).force_refresh(args.force_refresh);
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
        apptoken::Error::Configuration(
            "no client id: set client_id in the configuration or AZURE_CLIENT_ID".into(),
        )
    })?;
    let cloud = match cfg.authority_host.as_deref() {
        Some(h) => apptoken::CloudInstance::parse(h)?,
        None => apptoken::CloudInstance::AzurePublic,
    };
    if let Some(r) = &args.redirect_uri {
        url::Url::parse(r).map_err(|e| {
            apptoken::Error::Configuration(format!("--redirect-uri '{r}' is not a URL: {e}"))
        })?;
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
    let scope = args
        .scope
        .clone()
        .unwrap_or_else(|| api::default_scope(&url));
    let (client, cfg) = build_client(args.config.as_deref())?;
    let mut token = TokenRequest::new([&scope]);
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

fn bail_failure<T>(code: u8, message: &str) -> Result<T, Failure> {
    Err(Failure {
        code,
        error: anyhow::anyhow!("{message}"),
    })
}

fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("apptoken/emulator");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".local/state/apptoken/emulator");
    }
    PathBuf::from(".apptoken-emulator")
}

async fn emulator(args: EmulatorArgs) -> Result<(), Failure> {
    if let Some(crate::cli::EmulatorCommand::Generate(g)) = args.command {
        return crate::tenants::generate(g);
    }
    // Refused before anything is generated or written (Emulator::start checks again).
    Emulator::check_listen(args.listen, args.allow_remote).map_err(|e| Failure {
        code: exit::CONFIG,
        error: e.into(),
    })?;
    let state_dir = args.state_dir.unwrap_or_else(default_state_dir);
    std::fs::create_dir_all(&state_dir).with_context(|| {
        format!(
            "cannot create the state directory '{}'",
            state_dir.display()
        )
    })?;
    let config = match &args.config {
        Some(path) => EmulatorConfig::from_file(path)
            .map_err(|e| Failure {
                code: exit::CONFIG,
                error: e.into(),
            })?
            .with_state_dir(&state_dir),
        None => EmulatorConfig::embedded(&state_dir).map_err(|e| Failure {
            code: exit::CONFIG,
            error: e.into(),
        })?,
    };
    let config = if args.tls {
        config.with_tls(true)
    } else {
        config
    };
    let config = config.with_allow_remote(args.allow_remote);
    let running = Emulator::start(config, args.listen)
        .await
        .map_err(|e| Failure {
            code: exit::FAILURE,
            error: e.into(),
        })?;
    let info = running.info().clone();
    println!("apptoken emulator listening on {}", running.base_url());
    println!(
        "  tenant        {} ({})",
        info.tenant_id, info.tenant_domain
    );
    for t in &info.other_tenants {
        println!("  tenant        {} ({})", t.tenant_id, t.domain);
    }
    println!("  client id     {}", info.client_id);
    if let Some(s) = &info.client_secret {
        println!("  client secret {s}");
    }
    if let Some(p) = &info.certificate_path {
        println!("  certificate   {}", p.display());
    }
    if let Some(p) = &info.private_key_path {
        println!("  private key   {}", p.display());
    }
    if let Some(p) = &info.pfx_path {
        println!("  pfx           {}", p.display());
    }
    println!(
        "  sample API    {}/users  (scope {})",
        info.sample_api, info.sample_scope
    );
    println!("  state         {}", state_dir.display());
    if let Some(ca) = &info.ca_certificate_path {
        println!("  TLS CA        {}", ca.display());
        println!(
            "                trust it per program: SSL_CERT_FILE (OpenSSL, curl), REQUESTS_CA_BUNDLE (Python),"
        );
        println!(
            "                NODE_EXTRA_CA_CERTS (Node.js); apptoken reads APPTOKEN_CA_FILE from the env file"
        );
    }
    if let Some(ca) = &info.ca_certificate_path {
        println!("  TLS CA        {}", ca.display());
        println!(
            "                trust it per program: SSL_CERT_FILE (OpenSSL, curl), REQUESTS_CA_BUNDLE (Python requests),"
        );
        println!(
            "                NODE_EXTRA_CA_CERTS (Node.js); apptoken reads APPTOKEN_CA_FILE from the env file"
        );
    }
    println!();
    println!(
        "Try:  source {}/env && apptoken token --scope \"$APPTOKEN_SAMPLE_SCOPE\"",
        state_dir.display()
    );
    println!("Stop with Ctrl-C or SIGTERM.");
    wait_for_shutdown_signal().await?;
    eprintln!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    Ok(())
}

/// Decodes a JWT's claims without verifying it (for the demo's summary).
fn claims_of(token: &str) -> Value {
    decode_jwt(token).map(|(_, c)| c).unwrap_or(Value::Null)
}

fn decode_jwt(token: &str) -> anyhow::Result<(Value, Value)> {
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

async fn demo() -> Result<(), Failure> {
    let state_dir = std::env::temp_dir().join(format!("apptoken-demo-{}", std::process::id()));
    let result = demo_in(&state_dir).await;
    let _ = std::fs::remove_dir_all(&state_dir);
    result
}

async fn demo_in(state_dir: &std::path::Path) -> Result<(), Failure> {
    std::fs::create_dir_all(state_dir).context("cannot create a temporary directory")?;
    let config = EmulatorConfig::embedded(state_dir)?;
    let running = Emulator::start(config, "127.0.0.1:0".parse().context("address")?).await?;
    let info = running.info().clone();
    println!(
        "apptoken demo: an Entra ID emulator is running at {}",
        running.base_url()
    );
    println!();

    let authority = Authority::from_host(&info.authority_host, &info.tenant_id)?;
    let secret = info
        .client_secret
        .clone()
        .context("the embedded app has no secret")?;
    let secret_client = ConfidentialClient::builder()
        .authority(authority.clone())
        .client_id(&info.client_id)
        .credential(Credential::secret(ClientSecret::new(secret)))
        .build()?;
    let t1 = secret_client.acquire_token(&[&info.sample_scope]).await?;
    let minutes = (t1.expires_on() - time::OffsetDateTime::now_utc()).whole_minutes();
    println!(
        "1. client secret  -> token for {} (valid {minutes} min)",
        info.sample_scope
    );

    let cert_path = info
        .certificate_path
        .clone()
        .context("the embedded app has no certificate")?;
    let key_path = info
        .private_key_path
        .clone()
        .context("the embedded app has no private key")?;
    let cert_pem =
        std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem =
        std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let certificate = Certificate::from_pem_parts(&cert_pem, &key_pem, None)?;
    let thumbprint = certificate.thumbprint_sha1_hex();
    let cert_client = ConfidentialClient::builder()
        .authority(authority.clone())
        .client_id(&info.client_id)
        .credential(Credential::certificate(certificate))
        .build()?;
    let t2 = cert_client.acquire_token(&[&info.sample_scope]).await?;
    println!(
        "2. certificate    -> token through a PS256 client assertion (certificate {thumbprint})"
    );

    let claims = claims_of(t2.secret());
    let roles: Vec<String> = claims
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "   authenticated as app {} (azp) in tenant {} (tid), roles: {}",
        claims.get("azp").and_then(|v| v.as_str()).unwrap_or("?"),
        claims.get("tid").and_then(|v| v.as_str()).unwrap_or("?"),
        if roles.is_empty() {
            "none".to_string()
        } else {
            roles.join(", ")
        }
    );

    let http = api::http_client(None)?;
    let mut tenants = vec![(info.tenant_domain.clone(), None::<String>)];
    tenants.extend(
        info.other_tenants
            .iter()
            .map(|t| (t.domain.clone(), Some(t.tenant_id.clone()))),
    );
    for (step, (name, tenant)) in (3..).zip(tenants) {
        let mut token = TokenRequest::new([&info.sample_scope]);
        if let Some(t) = &tenant {
            token = token.tenant(t);
        }
        let req = ApiRequest {
            method: reqwest::Method::GET,
            url: url::Url::parse(&format!("{}/users?$top=10", info.sample_api))
                .context("sample API URL")?,
            body: None,
            headers: Default::default(),
            token,
        };
        match api::call(&http, &cert_client, &req, true, 100).await? {
            ApiOutcome::Ok { body, pages } => {
                let n = body
                    .get("value")
                    .and_then(|v| v.as_array())
                    .map_or(0, |a| a.len());
                println!(
                    "{step}. GET /v1.0/users -> read {n} users of {name} in {pages} pages (following @odata.nextLink)"
                );
            }
            ApiOutcome::Failed { status, body } => {
                return Err(Failure {
                    code: exit::API,
                    error: anyhow::anyhow!("the sample API answered {status}: {body}"),
                });
            }
        }
    }

    // Once more: served from the cache, no request.
    let again = cert_client.acquire_token(&[&info.sample_scope]).await?;
    if !again.is_same_token(&t2) {
        return bail_failure(
            exit::FAILURE,
            "the second acquisition did not come from the cache",
        );
    }
    let stats = running.stats();
    println!();
    println!(
        "token requests the emulator received: {} (one per credential and tenant; every other call was served from the cache)",
        stats.token_requests_for(&info.client_id)
    );
    crate::run::demo_daemon(&info, state_dir).await?;
    running.shutdown().await;
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
