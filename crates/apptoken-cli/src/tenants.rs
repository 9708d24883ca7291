//! `apptoken tenants check` (a dry run of the token request for every
//! tenant a daemon configuration lists), `tenants add|remove` (onboarding
//! and offboarding: a job's tenants file edited atomically) and `apptoken
//! emulator generate` (an emulator of many customer tenants, to try an
//! ISV's job locally).

use std::io::Write;

use apptoken_daemon::{CheckOutcome, DaemonConfig};

use crate::cli::{GenerateArgs, TenantsCheckArgs, TenantsEditArgs};
use crate::{Failure, exit};

pub(crate) async fn check(args: TenantsCheckArgs) -> Result<(), Failure> {
    let config = match DaemonConfig::load(&args.config, &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(apptoken_daemon::Error::Config(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            return Err(Failure {
                code: exit::CONFIG,
                error: anyhow::anyhow!("{}: {} problems", args.config.display(), problems.len()),
            });
        }
        Err(e) => return Err(crate::run::failure(e)),
    };
    let results =
        apptoken_daemon::check_tenants(&config, args.job.as_deref(), usize::from(args.concurrency))
            .await
            .map_err(|e| Failure {
                code: exit::CONFIG,
                error: e.into(),
            })?;
    if results.is_empty() {
        return Err(Failure {
            code: exit::CONFIG,
            error: anyhow::anyhow!(
                "{}: no job lists tenants (tenants = [...] or tenants_file)",
                args.config.display()
            ),
        });
    }
    let mut out = std::io::stdout().lock();
    let width = results
        .iter()
        .map(|r| r.tenant.len())
        .max()
        .unwrap_or(6)
        .max(6);
    if !args.json {
        let _ = writeln!(out, "{:<width$}  {:<6}  DETAIL", "TENANT", "RESULT");
    }
    for r in &results {
        if args.json {
            let _ = writeln!(out, "{}", r.to_json());
            continue;
        }
        let (result, detail) = match &r.outcome {
            CheckOutcome::Ok { roles, .. } => (
                "ok",
                if roles.is_empty() {
                    "token issued; no roles granted (the API may answer 403)".to_string()
                } else {
                    format!("roles: {}", roles.join(", "))
                },
            ),
            CheckOutcome::Refused {
                status,
                error,
                codes,
                message,
                ..
            } => (
                "REFUSED",
                format!("HTTP {status} {error} {}: {message}", codes.join(",")),
            ),
            CheckOutcome::Unreachable { message } => ("DOWN", message.clone()),
            CheckOutcome::Other { message } => ("ERROR", message.clone()),
            _ => ("ERROR", "unknown outcome".to_string()),
        };
        let _ = writeln!(out, "{:<width$}  {result:<6}  {detail}", r.tenant);
        if let Some(h) = r.hint() {
            let _ = writeln!(out, "{:<width$}          -> {h}", "");
        }
    }
    let bad = results.iter().filter(|r| !r.outcome.is_ok()).count();
    if bad == 0 {
        eprintln!("{} tenants: a token in each", results.len());
        Ok(())
    } else {
        Err(Failure {
            code: exit::PARTIAL,
            error: anyhow::anyhow!("{bad} of {} tenants cannot get a token now", results.len()),
        })
    }
}

pub(crate) fn edit(args: TenantsEditArgs, add: bool) -> Result<(), Failure> {
    let file = apptoken_daemon::tenants_file_of(&args.config, args.job.as_deref(), &|k| {
        std::env::var(k).ok()
    })
    .map_err(|e| Failure {
        code: exit::CONFIG,
        error: e.into(),
    })?;
    let result = if add {
        apptoken_daemon::add_tenants(&file, &args.tenants)
    } else {
        apptoken_daemon::remove_tenants(&file, &args.tenants)
    };
    let change = result.map_err(|e| Failure {
        code: exit::CONFIG,
        error: e.into(),
    })?;
    for t in &change.changed {
        if add {
            println!(
                "added {t}: send its admin the URL of `apptoken consent-url --tenant {t}`, then check with `apptoken tenants check`"
            );
        } else {
            println!("removed {t}");
        }
    }
    for t in &change.unchanged {
        println!("{t}: {}", if add { "already listed" } else { "not listed" });
    }
    println!(
        "{}: {} tenants; a running daemon uses the list at its next poll (credential_poll)",
        file.display(),
        change.total
    );
    Ok(())
}

pub(crate) fn generate(args: GenerateArgs) -> Result<(), Failure> {
    use apptoken_emulator::generate::{IsvOptions, write_isv};
    let mut without = Vec::new();
    for n in &args.without_consent {
        match n.checked_sub(1) {
            Some(i) if *n <= args.tenants => without.push(i),
            _ => {
                return Err(Failure {
                    code: exit::CONFIG,
                    error: anyhow::anyhow!(
                        "--without-consent {n}: customer tenants are numbered 1 to {}",
                        args.tenants
                    ),
                });
            }
        }
    }
    let mut options = IsvOptions::new(args.tenants)
        .users_per_tenant(args.users_per_tenant)
        .without_consent(without);
    if let Some(l) = args.token_lifetime {
        options = options.token_lifetime_secs(l);
    }
    let files = write_isv(&args.out, &options).map_err(|e| Failure {
        code: exit::CONFIG,
        error: e.into(),
    })?;
    let c = &files.config;
    println!("wrote {}", files.config_path.display());
    println!(
        "  {} customer tenants ({} without consent), {} users each",
        c.tenants.len(),
        c.without_consent.len(),
        c.users_per_tenant
    );
    println!("  home tenant   {} ({})", c.home_tenant, c.home_domain);
    println!("  client id     {}", c.client_id);
    println!("  scope         {}", c.scope);
    println!(
        "  secret        {}{}",
        files.secret_path.display(),
        if files.secret_reused { " (kept)" } else { "" }
    );
    println!("  tenant list   {}", files.tenants_path.display());
    println!(
        "run it: apptoken emulator --config {} --listen 127.0.0.1:8400",
        files.config_path.display()
    );
    Ok(())
}
