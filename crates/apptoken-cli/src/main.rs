//! `apptoken`: app-only tokens for daemons, from the command line.
//!
//! A thin layer over the `apptoken` and `apptoken-emulator` libraries. Exit
//! codes are documented in `--help` and in `docs/CLI.md`.

mod api;
mod cert;
mod cli;
mod commands;
mod exec;
mod failure;
mod local;
mod run;
mod settings;
mod tenants;
mod whoami;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, LogFormat};
pub(crate) use crate::failure::{Failure, exit};

/// Logging to standard error, for every command: the filter of
/// `--log-level`, else of `$APPTOKEN_LOG`, else `default` (`warn` for the
/// one-shot commands, `info` for `run`); JSON lines with `json`.
pub(crate) fn init_logging(level: Option<&str>, default: &str, json: bool) {
    let from_env = std::env::var("APPTOKEN_LOG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(level, from_env.as_deref(), default))
        .with_writer(std::io::stderr);
    // Set up once per process; a second call would keep the first, not panic.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `level` (`--log-level`, whatever it holds: invalid directives are
/// dropped), else `from_env` if it parses, else `default`.
fn log_filter(
    level: Option<&str>,
    from_env: Option<&str>,
    default: &str,
) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    match level {
        Some(level) => EnvFilter::new(level),
        None => from_env
            .and_then(|v| EnvFilter::try_new(v).ok())
            .unwrap_or_else(|| EnvFilter::new(default)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` sets up logging itself, once its configuration's log_format is known.
    if !matches!(cli.command, cli::Command::Run(_)) {
        init_logging(
            cli.log_level.as_deref(),
            "warn",
            matches!(cli.log_format, LogFormat::Json),
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `exec`'s program ended with this code: it said what it had to.
        Err(f) if f.error.downcast_ref::<exec::ChildExited>().is_some() => ExitCode::from(f.code),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_filter_is_the_flag_then_apptoken_log_then_the_default() {
        let f = |level, env, default| log_filter(level, env, default).to_string();
        assert_eq!(f(Some("debug"), Some("trace"), "warn"), "debug");
        assert_eq!(f(None, Some("apptoken=trace"), "warn"), "apptoken=trace");
        assert_eq!(f(None, None, "warn"), "warn");
        assert_eq!(f(None, None, "info"), "info");
        // An $APPTOKEN_LOG that does not parse falls back to the default.
        assert_eq!(f(None, Some("apptoken=loud"), "info"), "info");
    }
}
