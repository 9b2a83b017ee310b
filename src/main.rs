//! The `channel-bridge` command: parses the CLI and hands over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use channel_bridge::adapters::AdapterConfig;
use channel_bridge::adapters::signature::WebhookKey;
use channel_bridge::cli;
use channel_bridge::config::{self, Config, DEFAULT_CONFIG};
use channel_bridge::telemetry::{self, LogFormat};

/// Where the config is looked for when neither --config nor CHANNEL_BRIDGE_CONFIG is given.
const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

#[derive(Parser)]
#[command(
    version,
    about = "Connects messaging apps to a help desk as a custom channel",
    after_help = "Any config key can be overridden from the environment as \
        CHANNEL_BRIDGE__SECTION__KEY (e.g. CHANNEL_BRIDGE__SERVER__LISTEN=0.0.0.0:8080)."
)]
struct Cli {
    /// Config file (default: config/default.toml, else the built-in default config); any
    /// key can be overridden as CHANNEL_BRIDGE__SECTION__KEY.
    #[arg(long, global = true, env = "CHANNEL_BRIDGE_CONFIG")]
    config: Option<PathBuf>,

    /// Serve on a non-loopback address although the config holds the published dev
    /// tokens or demo secret (for a demo only).
    #[arg(long, global = true, env = "CHANNEL_BRIDGE_ALLOW_DEV_CREDENTIALS")]
    allow_dev_credentials: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    #[command(after_help = "Logs: RUST_LOG sets the level (default info); \
        CHANNEL_BRIDGE_LOG_FORMAT=json writes JSON lines.")]
    Serve,
    /// Validate a config file and print every error; exit 1 if there are any.
    CheckConfig,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Inspect and redrive deliveries on a running daemon (through its API).
    Deliveries {
        #[command(subcommand)]
        action: DeliveriesAction,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a new random webhook secret (`whsec_<base64>`) for a generic channel.
    GenSecret,
    /// Print the `sha256 = "…"` line of an `[[api.tokens]]` entry for an API token.
    HashToken {
        /// The token (default: read from standard input, where one trailing newline, as
        /// `echo` adds, is dropped; anything else counts as part of the token).
        token: Option<String>,
    },
    /// Print Standard Webhooks headers for a body, signed with a generic channel's secret,
    /// in the form `curl -H @file` reads.
    #[command(after_help = "The signature covers the exact bytes: post them with \
        `curl --data-binary` (plain `-d` strips newlines and breaks it), or use \
        `channel-bridge send`, which signs and posts in one step.")]
    Sign {
        /// The generic channel whose secret signs.
        #[arg(long, default_value = "demo")]
        channel: String,
        /// The body to sign (default: read from standard input, byte for byte).
        #[arg(long)]
        body: Option<String>,
    },
    /// Sign a body with a generic channel's secret and POST it to that channel's webhook;
    /// print the status and the response; exit 1 unless the daemon answers 2xx.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["body", "body_file"])))]
    Send {
        /// The generic channel to post to (its secret signs).
        #[arg(long, default_value = "demo")]
        channel: String,
        /// The body to send.
        #[arg(long)]
        body: Option<String>,
        /// A file holding the body, sent byte for byte (`-` reads standard input).
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// Base URL of the daemon (default: from the config's server.listen).
        #[arg(long)]
        url: Option<String>,
    },
    /// Exit 0 if the daemon at --url answers /healthz (for container health checks).
    Healthcheck {
        /// Base URL (default: from the config's server.listen).
        #[arg(long)]
        url: Option<String>,
    },
    /// Set up HubSpot custom-channel mode (docs/hubspot-guide.md); reads the [hubspot]
    /// section of the same config the daemon reads.
    Hubspot {
        #[command(subcommand)]
        action: HubspotAction,
    },
    /// Print the version and exit (needs no config).
    Version,
}

#[derive(Subcommand)]
enum HubspotAction {
    /// Create the app's custom channel, or update the existing one (matched by
    /// [hubspot].channel_id, else by name): never a second. Prints the channel_id line.
    #[command(after_help = "Needs hubspot.developer_api_key and server.public_url. \
        Capabilities come from the linked channels (before any is linked: every channel \
        that could be); run it again after linking to narrow them.")]
    Register {
        /// The channel's name in HubSpot (also how an existing channel is found).
        #[arg(long, default_value = channel_bridge::hubspot::setup::DEFAULT_CHANNEL_NAME)]
        name: String,
        /// Shown under the channel in HubSpot's connect flow.
        #[arg(long, default_value = channel_bridge::hubspot::setup::DEFAULT_DESCRIPTION)]
        description: String,
        /// A logo shown in HubSpot's connect flow (default: keep the channel's).
        #[arg(long)]
        logo_url: Option<String>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create the HubSpot channel account a channel publishes into (once: an account the
    /// channel's link names, or one with this name on this inbox, is reused). Prints the
    /// `hubspot = { channel_account_id = "…" }` line for the channel's section.
    #[command(
        after_help = "Needs hubspot.channel_id (from `hubspot register`) and the         portal's token (access_token, or client_id + refresh_token)."
    )]
    Connect {
        /// Our channel ([channels.<id>]).
        #[arg(long)]
        channel: String,
        /// The HubSpot inbox (or help desk) id its conversations land in.
        #[arg(long)]
        inbox: String,
        /// The channel account's name in HubSpot.
        #[arg(long)]
        name: String,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what is linked (each channel's account as HubSpot reports it), whether the
    /// token works, and the publish queue and dead letters per channel; exit 1 when
    /// something needs attention.
    #[command(
        after_help = "Reads the outbox from the database read-only (beside a         running daemon too): it needs the config's storage, not an API token."
    )]
    Status {
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeliveriesAction {
    /// List deliveries (dead letters by default).
    List {
        /// Which deliveries: `dead` (given up) or `pending` (queued or waiting to retry).
        #[arg(long, default_value = "dead")]
        state: String,
    },
    /// Send a dead-lettered delivery again from the start, or a pending one now.
    Retry {
        /// The delivery's id (as `deliveries list` prints it).
        id: String,
    },
}

/// The daemon's API; global so these options go before or after the action.
#[derive(clap::Args)]
struct ApiArgs {
    /// Base URL of the daemon (default: from the config's server.listen).
    #[arg(long, global = true)]
    url: Option<String>,
    /// An admin API token (required).
    #[arg(
        long,
        global = true,
        env = "CHANNEL_BRIDGE_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Serve);
    match &command {
        Command::Version => {
            println!("channel-bridge {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
        Command::GenSecret => {
            println!("{}", cli::gen_secret()?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::HashToken { token } => {
            let token = match token {
                Some(token) => token.clone(),
                None => std::io::read_to_string(std::io::stdin())
                    .context("cannot read the token from standard input")?,
            };
            let token = cli::trim_one_newline(&token);
            anyhow::ensure!(!token.is_empty(), "the token is empty");
            println!("{}", cli::token_hash_line(token));
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    // With --url the probe needs no config: a config file that was edited into an invalid
    // state (which the running daemon refused) must not make a healthy container unhealthy.
    if let Command::Healthcheck { url: Some(url) } = &command {
        return Ok(healthcheck(url).await);
    }
    if let Command::CheckConfig = command {
        return Ok(match load(cli.config.as_deref()) {
            Ok((config, source)) => {
                for warning in channel_bridge::config::warnings(&config) {
                    eprintln!("warning: {warning}");
                }
                println!("{source}: OK ({} channels)", config.channels.len());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        });
    }
    if let Some(path) = cli.config.as_deref().filter(|p| !p.exists()) {
        // A container started without its config mounted: say what to provide.
        anyhow::bail!(
            "no config file at {} (named by --config or CHANNEL_BRIDGE_CONFIG). Provide one there with your own API tokens ([[api.tokens]]: name, role, sha256) and channels ([channels.<id>]); config/default.toml documents every key.",
            path.display()
        );
    }
    let (config, source) =
        load(cli.config.as_deref()).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    match command {
        Command::Serve => serve(config, source, cli.allow_dev_credentials).await,
        Command::Migrate => {
            let store = channel_bridge::store::open(&config.storage).await?;
            store.close().await;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Deliveries { action, api } => deliveries(&config, action, api).await,
        Command::Sign { channel, body } => sign(&config, &channel, body),
        Command::Send {
            channel,
            body,
            body_file,
            url,
        } => {
            let key = generic_key(&config, &channel)?;
            let body = match (body, body_file) {
                (Some(body), _) => body.into_bytes(),
                (None, Some(path)) if path.as_os_str() == "-" => read_stdin()?,
                (None, Some(path)) => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, None) => anyhow::bail!("give the body with --body or --body-file"),
            };
            let base = url.unwrap_or_else(|| base_url(&config));
            let answer = cli::send(&base, &channel, &key, body).await?;
            println!("{}", answer.status);
            println!("{}", answer.body);
            Ok(if answer.status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Healthcheck { url } => {
            Ok(healthcheck(&url.unwrap_or_else(|| base_url(&config))).await)
        }
        Command::Hubspot { action } => hubspot(&config, action).await,
        Command::CheckConfig
        | Command::Version
        | Command::GenSecret
        | Command::HashToken { .. } => {
            unreachable!("handled above")
        }
    }
}

/// Where a config came from: a file (which can be reloaded) or the built-in default.
enum Source {
    File(PathBuf),
    BuiltIn,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::BuiltIn => f.write_str("built-in default config"),
        }
    }
}

/// Loads the config from the given path, the default path, or the built-in default.
fn load(path: Option<&Path>) -> Result<(Config, Source), config::ConfigErrors> {
    match path {
        Some(path) => Ok((config::load_file(path)?, Source::File(path.to_owned()))),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            let path = PathBuf::from(DEFAULT_CONFIG_PATH);
            Ok((config::load_file(&path)?, Source::File(path)))
        }
        None => Ok((
            config::load_str(DEFAULT_CONFIG, std::env::vars())?,
            Source::BuiltIn,
        )),
    }
}

async fn serve(
    config: Config,
    source: Source,
    allow_dev_credentials: bool,
) -> anyhow::Result<ExitCode> {
    telemetry::init_logging(LogFormat::from_env());
    if let Source::BuiltIn = source {
        let cwd = std::env::current_dir().unwrap_or_default();
        tracing::warn!(
            "NO CONFIG FILE: neither --config nor CHANNEL_BRIDGE_CONFIG was given and {} does not exist; running the BUILT-IN DEFAULT CONFIG, whose API tokens and demo secret are published (dev only).",
            cwd.join(DEFAULT_CONFIG_PATH).display()
        );
    }
    let published = config::published_credentials(&config);
    let listen = config.server.listen;
    if !published.is_empty() && !listen.ip().is_loopback() {
        if !allow_dev_credentials {
            anyhow::bail!(
                "refusing to listen on {listen} (not a loopback address) with published dev credentials in {source}: {}. Replace them with your own, or pass --allow-dev-credentials (CHANNEL_BRIDGE_ALLOW_DEV_CREDENTIALS=true) for a demo.",
                published.join(", ")
            );
        }
        tracing::warn!(
            "PUBLISHED DEV CREDENTIALS on {listen} (--allow-dev-credentials): {}. Anyone who read the README can use them.",
            published.join(", ")
        );
    }
    tracing::info!(config = %source, channels = config.channels.len(), "Starting channel-bridge {}.", env!("CARGO_PKG_VERSION"));
    let mut app = channel_bridge::App::build(config).await?;
    if let Source::File(path) = source {
        app = app.reload_from(path);
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(channel_bridge::signals::drain_on_signal(shutdown.clone()));
    app.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 if `{base}/healthz` answers 2xx within 3 seconds.
async fn healthcheck(base: &str) -> ExitCode {
    let ok = reqwest::Client::new()
        .get(format!("{}/healthz", base.trim_end_matches('/')))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn base_url(config: &Config) -> String {
    let listen = config.server.listen;
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        listen.ip().to_string()
    };
    format!("http://{host}:{}", listen.port())
}

async fn deliveries(
    config: &Config,
    action: DeliveriesAction,
    api: ApiArgs,
) -> anyhow::Result<ExitCode> {
    let base = api.url.unwrap_or_else(|| base_url(config));
    let token = api
        .token
        .context("an admin API token is required: --token or CHANNEL_BRIDGE_TOKEN")?;
    let client = reqwest::Client::new();
    let request = match &action {
        DeliveriesAction::List { state } => {
            client.get(format!("{base}/api/v1/deliveries?state={state}&limit=200"))
        }
        DeliveriesAction::Retry { id } => {
            client.post(format!("{base}/api/v1/deliveries/{id}/retry"))
        }
    };
    let response = request
        .bearer_auth(&token)
        .send()
        .await
        .with_context(|| format!("cannot reach the daemon at {base}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The signing key of a generic channel; other kinds sign their own way.
fn generic_key(config: &Config, channel: &str) -> anyhow::Result<WebhookKey> {
    let adapter = config
        .channel(channel)
        .map(|c| &c.adapter)
        .with_context(|| format!("no channel {channel:?} in the config"))?;
    let AdapterConfig::Generic(generic) = adapter else {
        anyhow::bail!(
            "channel {channel:?} is not a generic channel: only generic channels take \
             Standard Webhooks signatures"
        );
    };
    WebhookKey::parse(generic.secret.expose()).map_err(|e| anyhow::anyhow!("{e}"))
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
        .context("cannot read the body from standard input")?;
    Ok(bytes)
}

fn sign(config: &Config, channel: &str, body: Option<String>) -> anyhow::Result<ExitCode> {
    let key = generic_key(config, channel)?;
    let body = match body {
        Some(body) => body.into_bytes(),
        None => read_stdin()?,
    };
    println!("content-type: application/json");
    for (name, value) in cli::signed_headers(&key, &body) {
        println!("{name}: {value}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `channel-bridge hubspot …`: the outcome on stdout (text or JSON), errors on stderr.
async fn hubspot(config: &Config, action: HubspotAction) -> anyhow::Result<ExitCode> {
    use channel_bridge::hubspot::setup;
    match action {
        HubspotAction::Register {
            name,
            description,
            logo_url,
            json,
        } => {
            let options = setup::RegisterOptions {
                name,
                description,
                logo_url,
            };
            let registered = setup::register(config, &options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&registered)?);
            } else {
                print!("{}", registered.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        HubspotAction::Connect {
            channel,
            inbox,
            name,
            json,
        } => {
            let options = setup::ConnectOptions {
                channel,
                inbox_id: inbox,
                name,
            };
            let connected = setup::connect(config, &options).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&connected)?);
            } else {
                print!("{}", connected.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        HubspotAction::Status { json } => {
            let status = setup::status(config).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.text());
            }
            Ok(if status.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
