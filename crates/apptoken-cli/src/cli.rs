//! The command line, defined once: `--help` is generated from these definitions.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Settings of `token` and `call` come from --config FILE (its [identity] table) and from the environment variables \
Azure Identity uses: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, \
AZURE_CLIENT_CERTIFICATE_PATH, AZURE_CLIENT_CERTIFICATE_PASSWORD, \
AZURE_CLIENT_SEND_CERTIFICATE_CHAIN, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST, \
AZURE_REGIONAL_AUTHORITY_NAME, and APPTOKEN_CA_FILE (extra trusted roots). \
The file wins; the environment fills what it leaves out.

Exit codes: 0 success, 1 other failure, 2 usage error, 3 configuration error, \
4 the identity provider refused the request, 5 a server could not be reached, \
6 the web API answered with an error status, 7 partial (some tenants failed, the others \
were written; tenants check: some tenants cannot get a token), 70 an internal error (a bug).";

/// App-only access tokens for daemons: get them, call web APIs with them, and
/// run a local Entra ID-compatible emulator.
#[derive(Debug, Parser)]
#[command(name = "apptoken", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive). Logs go to stderr
    /// and never contain a secret or a token. Default: warn, or $APPTOKEN_LOG.
    #[arg(long, global = true, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,

    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Get an app-only access token and print it as JSON (or only the token with --raw).
    Token(TokenArgs),
    /// Call a web API with an app-only token and print the JSON answer.
    Call(CallArgs),
    /// Say which credential the settings choose (and why each earlier step of the chain was
    /// skipped), then who the token says the app is: app id, object id, tenant, roles, expiry.
    /// Never prints the token. Exit codes as for `token`.
    Whoami(WhoamiArgs),
    /// Run a program that gets tokens, never the credential: a private endpoint on loopback in the
    /// App Service managed-identity shape every Azure SDK speaks (IDENTITY_ENDPOINT,
    /// IDENTITY_HEADER), backed by apptoken's cache; the credential's variables are removed from
    /// the program's environment. Exits with the program's exit code (128+N after signal N);
    /// SIGINT, SIGTERM and SIGHUP are forwarded. See docs/EXEC.md.
    Exec(ExecArgs),
    /// Run the local Entra ID-compatible identity provider and sample API until Ctrl-C or SIGTERM.
    Emulator(EmulatorArgs),
    /// Print the admin consent URL an ISV sends to a customer's administrator.
    ConsentUrl(ConsentArgs),
    /// Run a demonstration on an embedded emulator: secret and certificate authentication, a paged API call.
    Demo,
    /// Work with JSON Web Tokens.
    Jwt {
        #[command(subcommand)]
        command: JwtCommand,
    },
    /// Run the daemon: the jobs of a configuration file on their schedules (see docs/DAEMON.md).
    Run(RunArgs),
    /// Check a daemon configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Make and inspect client certificates for app registrations.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Work with the customer tenants of a multi-tenant app (an ISV's daemon).
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantsCommand {
    /// A dry run of the token request for every tenant the daemon's jobs list: prints, per
    /// tenant, whether the app can get a token there now (with its roles), or Entra's answer
    /// and what to do. Exit 0 if every tenant answers, 7 if some do not.
    Check(TenantsCheckArgs),
    /// Onboard customers: add tenants to a job's tenants_file (checked; atomically; a running
    /// daemon uses the new list at its next poll). Then send each customer's admin the URL of
    /// `apptoken consent-url --tenant TENANT`.
    Add(TenantsEditArgs),
    /// Offboard customers: remove tenants from a job's tenants_file (their lines; comments stay).
    Remove(TenantsEditArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct TenantsEditArgs {
    /// The daemon's configuration file (TOML).
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// The job whose tenants_file to change (needed when several jobs have different files).
    #[arg(long)]
    pub(crate) job: Option<String>,
    /// Tenant ids or domain names.
    #[arg(required = true, value_name = "TENANT")]
    pub(crate) tenants: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TenantsCheckArgs {
    /// The daemon's configuration file (TOML); its jobs' `tenants` or `tenants_file`.
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Only this job's tenants.
    #[arg(long)]
    pub(crate) job: Option<String>,
    /// Token requests at once (default 8).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) concurrency: u16,
    /// One JSON object per tenant and line instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EmulatorCommand {
    /// Write an emulator configuration for an ISV: one multi-tenant app consented in N customer
    /// tenants with sample users, its client secret, and the tenant list (one per line) for a
    /// daemon job's `tenants_file`. Then: apptoken emulator --config DIR/emulator.toml
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct GenerateArgs {
    /// Customer tenants (1 to 100000).
    #[arg(long)]
    pub(crate) tenants: usize,
    /// Sample users in each customer tenant.
    #[arg(long, default_value_t = 3)]
    pub(crate) users_per_tenant: usize,
    /// Customer tenants (1-based numbers, comma-separated) where the app is not consented: their
    /// token requests answer AADSTS7000229 until consented (POST /_emulator/consent).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub(crate) without_consent: Vec<usize>,
    /// Token lifetime in seconds (60 to 86400; default 3600).
    #[arg(long, value_name = "SECS")]
    pub(crate) token_lifetime: Option<u64>,
    /// The directory to write emulator.toml, client-secret (0600) and tenants.txt to.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The daemon's configuration file (TOML).
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Run every job once and exit: 0 if all succeeded, 7 if partial (some tenants failed or
    /// were skipped, the others were written), 1 if a job failed.
    #[arg(long)]
    pub(crate) once: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check everything the daemon would at start; print every problem with its line; exit 3 if any.
    Check {
        /// The daemon's configuration file (TOML).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Make a self-signed RSA certificate and key (PEM and PFX) for an app registration.
    New(CertNewArgs),
    /// Show a certificate's subject, issuer, validity, thumbprints, and whether a key matches it.
    Show(CertShowArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct CertNewArgs {
    /// The subject, as "CN=name" (other attributes: O=, OU=, C=, ST=, L=, comma-separated).
    #[arg(long)]
    pub(crate) subject: String,
    /// The directory to write cert.pem, key.pem (0600), cert-and-key.pem (0600), cert.pfx
    /// (0600) and, without --pfx-password-file, cert.pfx.password (0600) to.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// Days of validity.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub(crate) days: u32,
    /// RSA key size.
    #[arg(long, default_value_t = 2048, value_parser = parse_key_size)]
    pub(crate) key_size: u32,
    /// A file holding the PFX password (default: a generated one, written to cert.pfx.password).
    #[arg(long, value_name = "FILE")]
    pub(crate) pfx_password_file: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    pub(crate) force: bool,
}

fn parse_key_size(s: &str) -> Result<u32, String> {
    match s {
        "2048" | "3072" | "4096" => s.parse().map_err(|_| "not a number".to_string()),
        _ => Err("use 2048, 3072 or 4096".into()),
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct CertShowArgs {
    /// A PEM (certificate, optionally with its key) or PFX file.
    pub(crate) file: PathBuf,
    /// A PEM private key file to check against the certificate.
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<PathBuf>,
    /// A file holding the PFX (or encrypted key) password.
    #[arg(long, value_name = "F")]
    pub(crate) password_file: Option<PathBuf>,
}

/// What a token is for, beyond its scopes, and which provider issues it.
#[derive(Debug, clap::Args)]
pub(crate) struct TargetArgs {
    /// A generic OpenID Connect provider's issuer URL (Keycloak, Okta, Auth0…): its metadata is
    /// discovered from it, and it wins over the Entra settings and the managed-identity chain.
    /// Default: $APPTOKEN_ISSUER, else the configuration's issuer.
    #[arg(long, value_name = "URL")]
    pub(crate) issuer: Option<String>,
    /// A resource indicator (RFC 8707) to send (repeatable); generic providers only.
    #[arg(long = "resource", value_name = "URI")]
    pub(crate) resources: Vec<String>,
    /// The `audience` parameter (Auth0, Okta); generic providers only.
    #[arg(long, value_name = "AUDIENCE")]
    pub(crate) audience: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// Configuration file (TOML) with an [identity] table.
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The scope: for Entra ID the resource's application ID URI followed by /.default (exactly
    /// one); for a generic provider any of its scopes (repeatable; none: its default).
    #[arg(long = "scope", env = "APPTOKEN_SCOPE")]
    pub(crate) scopes: Vec<String>,
    #[command(flatten)]
    pub(crate) provider: TargetArgs,
    /// Request the token from this tenant instead of the configured one.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Skip the cache and ask the identity provider.
    #[arg(long)]
    pub(crate) force_refresh: bool,
    /// Print only the token.
    #[arg(long)]
    pub(crate) raw: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExecArgs {
    /// Configuration file (TOML) with an [identity] table.
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// A scope whose resource the program may get tokens for (repeatable; the resource's
    /// application ID URI followed by /.default). Each is fetched before the program starts, so a
    /// credential that does not work fails here. Without any, every resource is served.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// The program and its arguments, after `--`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub(crate) command: Vec<std::ffi::OsString>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct WhoamiArgs {
    /// Configuration file (TOML) with an [identity] table.
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The scope of the token to look at (Azure Resource Manager's by default, as `az` uses).
    #[arg(
        long,
        env = "APPTOKEN_SCOPE",
        default_value = "https://management.azure.com/.default"
    )]
    pub(crate) scope: String,
    /// One JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CallArgs {
    /// Configuration file (TOML) with an [identity] table.
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The scope of the token; default: $APPTOKEN_SCOPE, else the URL's origin followed by
    /// /.default (Entra ID), or the provider's default scopes (a generic provider).
    #[arg(long, env = "APPTOKEN_SCOPE")]
    pub(crate) scope: Option<String>,
    #[command(flatten)]
    pub(crate) provider: TargetArgs,
    /// Request the token from this tenant instead of the configured one.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// [METHOD] URL: the method (default GET) and the address.
    #[arg(num_args = 1..=2, required = true, value_names = ["METHOD", "URL"])]
    pub(crate) target: Vec<String>,
    /// Request body: JSON text, or @FILE to read it from a file (@- for standard input).
    #[arg(long, value_name = "JSON|@FILE")]
    pub(crate) data: Option<String>,
    /// Follow @odata.nextLink (and Link: rel="next") and print all items as one {"value": [...]}.
    #[arg(long)]
    pub(crate) all_pages: bool,
    /// Stop after this many pages with --all-pages.
    #[arg(long, default_value_t = 1000)]
    pub(crate) max_pages: usize,
    /// Header to add, as "Name: value" (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ConsentArgs {
    /// Configuration file (TOML) with an [identity] table (for the client id and authority host).
    #[arg(long, env = "APPTOKEN_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The customer's tenant (id or domain name); `organizations` lets any tenant's admin consent.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Where the administrator is sent back to (must be a redirect URI of the app registration).
    #[arg(long)]
    pub(crate) redirect_uri: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct EmulatorArgs {
    #[command(subcommand)]
    pub(crate) command: Option<EmulatorCommand>,
    /// The emulator's configuration (TOML); default: the embedded one, one app in two tenants.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port. Loopback only (127.0.0.0/8, [::1]) unless
    /// --allow-remote is given.
    #[arg(long, default_value = "127.0.0.1:8400")]
    pub(crate) listen: SocketAddr,
    /// Allow a --listen address that is not loopback, such as 0.0.0.0 or [::]. The admin API
    /// (/_emulator/*: faults, clock, token lifetimes, consent, key rotation, revocation, stats) is
    /// unauthenticated: anyone who can reach the port can change how the emulator answers. Without
    /// this flag such an address is refused; with it a warning is logged.
    #[arg(long)]
    pub(crate) allow_remote: bool,
    /// Serve HTTPS with a generated local CA (written to the state directory as ca.pem). The server
    /// certificate is also valid for login.microsoftonline.com and the regional and national-cloud
    /// hosts, so clients can be pointed at the emulator by address alone.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Where to write (and reuse) the generated credentials, `env` and `emulator.json`.
    /// Default: $XDG_STATE_HOME/apptoken/emulator (~/.local/state/apptoken/emulator).
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JwtCommand {
    /// Print a JWT's header and claims. The signature is NOT verified.
    Decode {
        /// The token, or - (default) to read it from standard input.
        #[arg(default_value = "-")]
        token: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// docs/CLI.md documents every command and every long flag of the clap
    /// definitions above: each command (`apptoken` subcommand path) in a
    /// heading as `` `path` `` (a group such as `cert` by its subcommands'
    /// headings, `` `cert new` ``), and each of its flags as `--flag` in its
    /// section (its heading to the next) or on a synopsis line
    /// `apptoken path ...` of a code block. Global flags anywhere.
    #[test]
    fn docs_cli_md_names_every_command_and_flag() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CLI.md"));
        let mut missing = Vec::new();
        let root = Cli::command();
        for arg in root.get_arguments() {
            if let Some(long) = arg.get_long()
                && !mentions_flag(doc, long)
            {
                missing.push(format!("global flag --{long}"));
            }
        }
        for sub in root.get_subcommands() {
            check_command(doc, &[], sub, &mut missing);
        }
        assert!(
            missing.is_empty(),
            "docs/CLI.md does not document (see crates/apptoken-cli/src/cli.rs):\n  {}",
            missing.join("\n  ")
        );
    }

    fn check_command(doc: &str, parent: &[&str], cmd: &clap::Command, missing: &mut Vec<String>) {
        let mut path = parent.to_vec();
        path.push(cmd.get_name());
        let name = path.join(" ");
        let subcommands: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        let headings: Vec<&str> = doc.lines().filter(|l| l.starts_with('#')).collect();
        let exact = format!("`{name}`");
        let group = format!("`{name} ");
        let has_heading = headings.iter().any(|h| h.contains(&exact))
            || (!subcommands.is_empty() && headings.iter().any(|h| h.contains(&group)));
        if !has_heading {
            missing.push(format!("command `{name}` (no heading names it)"));
        }
        // The command's own section and synopsis lines.
        let mut text = String::new();
        let mut inside = false;
        for line in doc.lines() {
            if line.starts_with('#') {
                inside = line.contains(&exact);
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let synopsis = words.first() == Some(&"apptoken")
                && words.len() > path.len()
                && words[1..=path.len()] == path[..]
                && !words
                    .get(path.len() + 1)
                    .is_some_and(|w| subcommands.contains(w));
            if inside || synopsis {
                text.push_str(line);
                text.push('\n');
            }
        }
        for arg in cmd.get_arguments() {
            if arg.is_global_set() {
                continue;
            }
            if let Some(long) = arg.get_long()
                && !["help", "version"].contains(&long)
                && !mentions_flag(&text, long)
            {
                missing.push(format!("flag --{long} of `{name}`"));
            }
        }
        for sub in cmd.get_subcommands() {
            check_command(doc, &path, sub, missing);
        }
    }

    /// `--flag` as a whole word (`--force` is not found in `--force-refresh`).
    fn mentions_flag(text: &str, long: &str) -> bool {
        let flag = format!("--{long}");
        text.match_indices(&flag).any(|(i, _)| {
            !text[i + flag.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    }
}
