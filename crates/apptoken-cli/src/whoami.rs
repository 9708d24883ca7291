//! `apptoken whoami`: which credential the settings choose and why each
//! earlier step of the chain was passed over, then the identity the token
//! says the client acts as (app id, object id, tenant, roles, expiry, from
//! its claims, unverified) — never the token itself.

use anyhow::Context;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::Failure;
use crate::cli::WhoamiArgs;
use crate::settings;

pub(crate) async fn whoami(args: WhoamiArgs) -> Result<(), Failure> {
    let cfg = settings::client_config(args.config.as_deref())?;
    let choice = cfg.choose_credential()?;
    let steps: Vec<Value> = choice
        .steps
        .iter()
        .map(|s| json!({"credential": s.credential.name(), "chosen": s.chosen, "reason": s.reason}))
        .collect();
    if !args.json {
        if let Some(issuer) = &cfg.issuer {
            println!(
                "issuer: {issuer} (a generic OpenID provider: no Entra settings, no managed identity)"
            );
        }
        println!("credential: {}", choice.credential);
        for s in &choice.steps {
            println!("  {s}");
        }
    }
    // The chain is printed before the token is asked for: when it fails,
    // what was tried is already on the screen (and the error names it too).
    let client = cfg.build_client()?;
    let token = client.acquire_token(&[&args.scope]).await?;
    let claims = crate::commands::decode_jwt(token.secret())
        .map(|(_, c)| c)
        .ok();
    let expires_on = token
        .expires_on()
        .format(&Rfc3339)
        .context("formatting the expiry")?;
    let identity = claims.as_ref().map(identity_of);
    if args.json {
        let out = json!({
            "credential": choice.credential.name(),
            "issuer": cfg.issuer,
            "chain": steps,
            "scope": args.scope,
            "identity": identity.clone().unwrap_or(Value::Null),
            "opaque_token": claims.is_none(),
            "expires_on": expires_on,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("printing")?
        );
        return Ok(());
    }
    println!("token for {} (claims not verified):", args.scope);
    match identity {
        None => println!("  opaque token: not a JWT, so it says nothing of who holds it"),
        Some(id) => {
            for (label, key) in [
                ("app id", "app_id"),
                ("object id", "object_id"),
                ("tenant", "tenant"),
                ("identity type", "identity_type"),
                ("managed identity", "managed_identity_resource_id"),
            ] {
                if let Some(v) = id.get(key).and_then(Value::as_str) {
                    println!("  {label}: {v}");
                }
            }
            let roles: Vec<&str> = id
                .get("roles")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            println!(
                "  roles: {}",
                if roles.is_empty() {
                    "none".to_string()
                } else {
                    roles.join(", ")
                }
            );
        }
    }
    println!("  expires: {expires_on}");
    Ok(())
}

/// What the claims say of who holds the token (Entra's names: `appid` or
/// `azp`, `oid`, `tid`, `idtyp`, `xms_mirid`, `roles`).
fn identity_of(claims: &Value) -> Value {
    let s = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    json!({
        "app_id": s("appid").or_else(|| s("azp")),
        "object_id": s("oid"),
        "tenant": s("tid"),
        "identity_type": s("idtyp"),
        "managed_identity_resource_id": s("xms_mirid"),
        "roles": claims.get("roles").cloned().unwrap_or(json!([])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_comes_from_entras_claim_names() {
        let id = identity_of(&json!({
            "azp": "app", "oid": "o", "tid": "t", "idtyp": "app",
            "xms_mirid": "/subscriptions/s/x", "roles": ["Read"]
        }));
        assert_eq!(id["app_id"], "app");
        assert_eq!(id["object_id"], "o");
        assert_eq!(id["managed_identity_resource_id"], "/subscriptions/s/x");
        assert_eq!(id["roles"], json!(["Read"]));
        let id = identity_of(&json!({"appid": "v1-app"}));
        assert_eq!(id["app_id"], "v1-app");
        assert_eq!(id["roles"], json!([]));
    }
}
