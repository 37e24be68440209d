//! The command line: parses arguments, runs one command, and maps its result to an exit code.
//! Errors are printed once, with their context, never as a stack trace.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

use crate::app::Application;
use crate::config::{self, Config, Credentials, Env, Mode};
use crate::host::node_ip;
use crate::keys::{self, Access, Origin};
use crate::livekit::{binary as livekit_binary, embedded};
use crate::logging;

#[derive(Parser)]
#[command(
    name = "bedrud",
    version,
    about = "Control plane for a self-hosted LiveKit video-meeting service",
    long_about = "Control plane for a self-hosted LiveKit video-meeting service.\n\n\
bedrud keeps accounts and rooms, issues the signed tokens that let a browser into a meeting, \
moderates (kick, mute, permissions) and keeps its state true from LiveKit's webhooks. By \
default it also runs and supervises livekit-server itself (embedded mode): it resolves the node \
IP, writes LiveKit's config, starts it, restarts it when it dies and stops it cleanly. Installed \
from the package, it runs as the systemd unit bedrud.service, as the bedrud user, with its \
configuration in /etc/bedrud/config.yaml."
)]
struct Cli {
    /// Config file (default: $BEDRUD_CONFIG, else /etc/bedrud/config.yaml, else development defaults)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the systemd unit's ExecStart)
    Serve,
    /// Work with bedrud's own configuration
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with the LiveKit server bedrud runs
    Livekit {
        #[command(subcommand)]
        command: LivekitCommand,
    },
    /// Check this installation against the troubleshooting tables; exit 1 on any FAIL
    Doctor {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Manage accounts
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Secrets this host generates for itself
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions { shell: clap_complete::Shell },
    /// Write the man pages into a folder (used when building the packages)
    #[command(hide = true)]
    GenerateMan { dir: PathBuf },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Generate the LiveKit API key pair and the token-signing secret in the data folder, unless
    /// the configuration sets them. Runs at package install; running it again changes nothing.
    /// Never prints a secret.
    Init,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an admin account (or make an existing account admin). The password is read from
    /// standard input, never from the command line.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration; lists every problem and exits non-zero if there are any
    Check,
}

#[derive(Subcommand)]
enum LivekitCommand {
    /// Print the LiveKit YAML that embedded mode would run with
    Config {
        /// Show the API secret instead of a mask
        #[arg(long)]
        show_secrets: bool,
    },
    /// Restart the running bedrud's LiveKit now, even with meetings live (they reconnect),
    /// applying a restart a reload left pending. Signs a one-minute request as an existing admin
    /// account, so it needs read access to bedrud's data folder (run as root or bedrud).
    Restart,
    /// Print the `webhook:` block to paste into an external LiveKit's YAML for this bedrud
    /// (reads the API key; never generates one)
    WebhookConfig,
    /// Mint a LiveKit join token for testing a client (publish everything, no admin rights;
    /// reads the API key pair, never generates one: see `bedrud secrets init`)
    Token {
        #[arg(long)]
        room: String,
        #[arg(long)]
        identity: String,
        /// Lifetime, e.g. "10m"
        #[arg(long, default_value = "10m")]
        ttl: String,
    },
}

/// The command-line definition, for the man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bedrud: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let env = Env::from_process();
    match cli.command {
        Command::Serve => serve(load(cli.config, &env)?),
        Command::Config {
            command: ConfigCommand::Check,
        } => Ok(check(cli.config, &env)),
        Command::Livekit {
            command: LivekitCommand::Config { show_secrets },
        } => livekit_config(load(cli.config, &env)?, show_secrets),
        Command::Livekit {
            command: LivekitCommand::WebhookConfig,
        } => webhook_config(load(cli.config, &env)?),
        Command::Livekit {
            command: LivekitCommand::Restart,
        } => livekit_restart(load(cli.config, &env)?),
        Command::Livekit {
            command:
                LivekitCommand::Token {
                    room,
                    identity,
                    ttl,
                },
        } => livekit_token(load(cli.config, &env)?, &room, &identity, &ttl),
        Command::Doctor { json } => doctor(load(cli.config, &env)?, json),
        Command::User {
            command: UserCommand::CreateAdmin { email, name },
        } => create_admin(load(cli.config, &env)?, &email, &name),
        Command::Secrets {
            command: SecretsCommand::Init,
        } => secrets_init(load(cli.config, &env)?),
        Command::Completions { shell } => {
            crate::manual::completions(Cli::command(), shell, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateMan { dir } => {
            for page in crate::manual::write_man_pages(Cli::command(), &dir)? {
                println!("{}", page.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn secrets_init(config: Config) -> anyhow::Result<ExitCode> {
    for (what, origin) in keys::init(&config)? {
        let line = match origin {
            Some(Origin::Configured) => format!("set in {}", config.source),
            Some(Origin::Generated(p)) => format!("generated in {}", p.display()),
            Some(Origin::Stored(p)) => format!("kept (already in {})", p.display()),
            Some(Origin::StaticLiveKitConfig(_)) | None => {
                "not needed (LiveKit brings its own keys)".into()
            }
        };
        println!("{what}: {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The LiveKit API key pair for a read-only command: never generated here.
fn credentials(config: &Config) -> anyhow::Result<Credentials> {
    Ok(keys::livekit_credentials(config, Access::ReadOnly)?.0)
}

fn load(path: Option<PathBuf>, env: &Env) -> anyhow::Result<Config> {
    let source = config::locate(path.as_deref(), env)?;
    Ok(config::load(&source, env)?)
}

fn check(path: Option<PathBuf>, env: &Env) -> ExitCode {
    match load(path, env) {
        Ok(c) => {
            let mode = match c.livekit.mode {
                Mode::Embedded(_) => "embedded LiveKit",
                Mode::External => "external LiveKit",
            };
            println!("{}: OK ({mode})", c.source);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bedrud: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(config: Config) -> anyhow::Result<ExitCode> {
    logging::init(&config.log_level);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %config.source, "bedrud starting");
    runtime()?.block_on(async {
        let app = Application::build(config).await?;
        app.run(shutdown_signal()?).await
    })?;
    tracing::info!("bedrud stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (systemd stop) or SIGINT (Ctrl-C). SIGHUP (reload) is the
/// application's: `Application::build` catches it.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Prints the LiveKit YAML for this config. Read-only: it generates no keys and starts nothing.
fn livekit_config(config: Config, show_secrets: bool) -> anyhow::Result<ExitCode> {
    let Some(e) = config.embedded() else {
        anyhow::bail!(
            "livekit.external is true: bedrud runs no LiveKit, so there is no generated config"
        );
    };
    if let Some(path) = &e.static_config {
        println!(
            "# static LiveKit config {} (livekit.configPath / LIVEKIT_CONFIG_PATH), used as it is",
            path.display()
        );
        print!("{}", embedded::render_static(path, show_secrets)?);
        return Ok(ExitCode::SUCCESS);
    }
    let version = match livekit_binary::locate(e.binary_path.as_deref()) {
        Ok(bin) => runtime()?
            .block_on(livekit_binary::probe_version(&bin))
            .ok(),
        Err(err) => {
            eprintln!("warning: {err}");
            None
        }
    };
    let credentials = match keys::livekit_credentials(&config, Access::ReadOnly) {
        Ok((c, _)) => c,
        Err(keys::KeysError::Missing { .. }) => embedded::placeholder_credentials(&config),
        Err(e) => return Err(e.into()),
    };
    let node = node_ip::resolve(e.node_ip, &config.server.host, &node_ip::System);
    // Recording's Redis: the embedded one's port and password exist once bedrud has started.
    let redis = match crate::egress::livekit_redis(&config) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("warning: no redis: block shown: {err}");
            None
        }
    };
    let generated = embedded::generate(
        &config,
        e,
        &credentials,
        &node,
        config.server.port,
        version,
        redis.as_ref(),
    );
    for w in &generated.warnings {
        eprintln!("warning: {w}");
    }
    let version = version.map_or("unknown".into(), |v| v.to_string());
    println!(
        "# generated for livekit-server {version}; node_ip from {}",
        node.rule
    );
    print!("{}", generated.yaml.render(show_secrets));
    Ok(ExitCode::SUCCESS)
}

/// Reads the password from standard input (one line), so it never appears in `ps` or history.
fn read_password() -> anyhow::Result<String> {
    use std::io::BufRead;
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("password for the admin account: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn create_admin(config: Config, email: &str, name: &str) -> anyhow::Result<ExitCode> {
    let password = read_password()?;
    crate::http::validate_account(email, &password, name).map_err(|e| anyhow::anyhow!("{e}"))?;
    runtime()?.block_on(async {
        let store = crate::app::open_store(&config).await?;
        let outcome = match store.user_by_email(email).await? {
            Some(existing) => {
                store
                    .set_role(&existing.id, crate::store::Role::Admin)
                    .await?;
                format!("{} is now an admin (password unchanged)", existing.email)
            }
            None => {
                let hash =
                    crate::auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
                let u = store
                    .create_user(email, name, &hash, crate::store::Role::Admin)
                    .await?;
                format!("admin account {} created", u.email)
            }
        };
        store.close().await;
        println!("{outcome}");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn livekit_token(
    config: Config,
    room: &str,
    identity: &str,
    ttl: &str,
) -> anyhow::Result<ExitCode> {
    let ttl = humantime::parse_duration(ttl).context("--ttl")?;
    let credentials = credentials(&config)?;
    let grants = livekit_api::access_token::VideoGrants {
        room_join: true,
        room: room.to_string(),
        // Embedded LiveKit creates no room on its own (`room.auto_create: false`): a token for
        // testing a client may create its room, as a bedrud join would.
        room_create: true,
        can_publish: Some(true),
        can_subscribe: Some(true),
        can_publish_data: Some(true),
        can_update_own_metadata: Some(false),
        ..Default::default()
    };
    let token = livekit_api::access_token::AccessToken::with_api_key(
        &credentials.api_key,
        credentials.api_secret.expose(),
    )
    .with_identity(identity)
    .with_name(identity)
    .with_ttl(ttl)
    .with_grants(grants)
    .to_jwt()?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Asks the running daemon, through its admin API on this host, to restart LiveKit now.
fn livekit_restart(config: Config) -> anyhow::Result<ExitCode> {
    crate::install_tls_provider();
    let (jwt_secret, _) = keys::jwt_secret(&config, Access::ReadOnly)
        .context("cannot read the token-signing secret (run as root or as the bedrud user)")?;
    let s = &config.server;
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    let host = match s.bind_address {
        a if a.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
        a => a.to_string(),
    };
    let url = format!("{scheme}://{host}:{}/api/admin/livekit/restart", s.port);
    runtime()?.block_on(async {
        let store = crate::app::open_store(&config).await?;
        let admins = store.list_users().await;
        store.close().await;
        let admin = admins?
            .into_iter()
            .find(|u| u.role == crate::store::Role::Admin)
            .context("no admin account to act as: create one with `bedrud user create-admin`")?;
        let minute = std::time::Duration::from_secs(60);
        let token = crate::auth::Auth::new(&jwt_secret, minute, minute).issue_access(&admin);
        // This host's own API: its certificate names server.host, not the loopback address.
        let client = crate::livekit::external::client(true)?;
        let resp = client
            .post(&url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach the running bedrud at {url}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            let why = body["error"].as_str().unwrap_or("no reason given");
            anyhow::bail!("bedrud answered {status}: {why}");
        }
        let applied: Vec<&str> = body["applied"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        match applied.is_empty() {
            true => println!("LiveKit is restarting (nothing was pending)"),
            false => println!("LiveKit is restarting to apply: {}", applied.join(", ")),
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The block an administrator pastes into LiveKit's own YAML (external mode) so that LiveKit
/// signs its webhooks with our key and sends them to our endpoint.
fn webhook_config(config: Config) -> anyhow::Result<ExitCode> {
    let credentials = credentials(&config)?;
    let s = &config.server;
    let (scheme, default_port) = if s.tls.is_some() {
        ("https", 443)
    } else {
        ("http", 80)
    };
    let host = if s.host.is_empty() {
        eprintln!("warning: server.host is empty; replace <bedrud-host> with the name LiveKit can reach bedrud at");
        "<bedrud-host>".to_string()
    } else {
        s.host.clone()
    };
    let port = if s.port == default_port || s.port == 0 {
        String::new()
    } else {
        format!(":{}", s.port)
    };
    println!("# Add to LiveKit's config (livekit.yaml), then restart livekit-server.");
    println!("# LiveKit signs each webhook with this key's secret; bedrud verifies it.");
    println!("webhook:");
    println!("  api_key: {}", credentials.api_key);
    println!("  urls:");
    println!("    - {scheme}://{host}{port}/api/livekit/webhook");
    Ok(ExitCode::SUCCESS)
}

fn doctor(config: Config, json: bool) -> anyhow::Result<ExitCode> {
    crate::install_tls_provider();
    let livekit_config_env = std::env::var_os("LIVEKIT_CONFIG").is_some_and(|v| !v.is_empty());
    let findings = runtime()?.block_on(crate::doctor::run(&config, livekit_config_env));
    if json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        print!("{}", crate::doctor::render(&findings));
    }
    let failed = findings
        .iter()
        .any(|f| f.level == crate::doctor::Level::Fail);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
