//! The `edgebot` command line: parses arguments, calls the library, reports errors as
//! one line on stderr with a non-zero exit.

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use edgebot::config::{self, Config, Loaded};
use edgebot::engine::router::Router;
use edgebot::store::Store;
use edgebot::store::records::{AdminRole, UserRecord};
use edgebot::transport::console::{Console, LocalUser};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`, the same in v2 and
/// v3), which `libmimalloc-sys` does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once rather than 10 ms later: mimalloc purges
/// only from inside a later allocation, and a bot waiting for messages makes none, so the
/// activations of the last embedding batch (tens of MB) stayed resident while it was idle.
fn purge_freed_memory_at_once() {
    // SAFETY: sets a process-wide option before any thread is started; mimalloc reads
    // options atomically and accepts any value for this one.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// `edgebot --version`: the version, the commit and the features it was built with.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("EDGEBOT_GIT_COMMIT"),
    ", features: ",
    env!("EDGEBOT_FEATURES"),
    ", ",
    env!("EDGEBOT_TARGET"),
    ", ",
    env!("EDGEBOT_PROFILE"),
    ")"
);

#[derive(Parser)]
#[command(name = "edgebot", version = VERSION, about = "A Telegram bot in one binary")]
struct Cli {
    /// The configuration file [default: ./edgebot.toml; optional unless given here]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Where the store lives [env: EDGEBOT_DATA_DIR; default: ./data]
    #[arg(long, global = true, value_name = "PATH")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Talk to the bot at the terminal as a local user (reads stdin, one message a line)
    Chat(ChatArgs),
    /// Write a commented example configuration
    Init {
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Validate the configuration and print the effective settings, secrets redacted
    Check,
    /// Look at the user registry
    #[command(subcommand)]
    Users(UsersCommand),
    /// Look after the store file
    #[command(subcommand)]
    Db(DbCommand),
    /// Accounts of the admin panel and API (run while `serve` is stopped: the store file
    /// is locked while the bot runs)
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Run against Telegram: webhook when a webhook URL is set, else long polling
    Serve,
    /// Feed recorded updates (JSON lines) through the bot against the built-in fake
    /// Bot API and print the API calls it makes as JSON lines
    Replay { file: PathBuf },
    /// Run the fake Bot API server, to test a bot (this one or yours) without Telegram;
    /// its control API (push updates, read calls, inject faults) is under /_fake/
    FakeApi {
        /// Where to listen; port 0 picks a free one (the start-up line names it)
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// Tokens that authenticate (comma-separated or repeated); any token if none
        #[arg(long = "token", value_name = "TOKEN", value_delimiter = ',')]
        tokens: Vec<String>,
        /// Chats whose user blocked the bot: sends there get 403 (comma-separated)
        #[arg(
            long,
            value_name = "CHAT_ID",
            value_delimiter = ',',
            allow_negative_numbers = true
        )]
        blocked: Vec<i64>,
    },
    /// Run the fake LLM server (OpenAI-compatible and Anthropic wire formats, streaming
    /// included), to try and test conversations offline; its control API (read requests,
    /// queue answers, inject faults) is under /_fake/
    FakeLlm {
        /// Where to listen; port 0 picks a free one (the start-up line names it)
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: std::net::SocketAddr,
        /// The key requests must carry (`Authorization: Bearer KEY`, `x-api-key: KEY`);
        /// any key, or none, if not given
        #[arg(long, value_name = "KEY")]
        api_key: Option<String>,
        /// An answer to give, in order, before echoing `You said: <text>` (repeatable)
        #[arg(long = "answer", value_name = "TEXT")]
        answers: Vec<String>,
        /// Write streamed events in pieces cut at random byte offsets
        #[arg(long)]
        split_chunks: bool,
        /// Seeds the cuts of --split-chunks
        #[arg(long, default_value_t = 0, value_name = "N")]
        seed: u64,
        /// The pause between two events of a stream
        #[arg(long, default_value_t = 0, value_name = "N")]
        chunk_delay_ms: u64,
    },
    /// Run the models over lines of stdin, one JSON result per line
    Analyze,
    /// Build and check the models
    #[command(subcommand)]
    Model(edgebot::tools::cli::ModelCommand),
    /// Exit 0 when a running instance answers its health check, 1 otherwise
    Health {
        /// Check readiness (store, Telegram, models) instead of liveness
        #[arg(long)]
        ready: bool,
    },
}

#[derive(Args)]
struct ChatArgs {
    /// Your first name as the bot sees it
    #[arg(long, default_value = "Local")]
    name: String,
    /// Your Telegram user id as the bot sees it
    #[arg(long, default_value_t = 1)]
    user_id: i64,
    /// Your language code, e.g. en, ru
    #[arg(long, default_value = "en")]
    lang: String,
    /// Your @username, without the @
    #[arg(long)]
    username: Option<String>,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// One line per user
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Start after this user id
        #[arg(long)]
        after: Option<i64>,
    },
    /// Everything about one user, as JSON
    Show { id: i64 },
    /// All users as JSON lines
    Export,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account
    Add {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: AdminRole,
        /// Read the password from the first line of stdin instead of a prompt
        #[arg(long)]
        password_stdin: bool,
    },
    /// One line per account
    List,
    /// Delete an account and end its sessions
    Remove { name: String },
    /// Set a new password (ends the account's sessions and tokens)
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Turn the TOTP second factor on (prints the secret once) or off
    Totp {
        name: String,
        #[arg(long)]
        off: bool,
    },
}

fn parse_role(name: &str) -> Result<AdminRole, String> {
    AdminRole::parse(name).ok_or_else(|| format!("`{name}`: one of viewer, editor, owner"))
}

#[derive(Subcommand)]
enum DbCommand {
    /// Sizes and counts of the store
    Stats,
    /// Write a consistent copy of the store to a new file
    Backup { path: PathBuf },
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgebot: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, without repeating a cause its parent quoted.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line.replace('\n', " ")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("edgebot.toml"));
    if let Command::Init { force } = cli.command {
        return init(&config_path, force);
    }
    let mut loaded = Config::load(&config_path, cli.config.is_some())?;
    if let Some(dir) = &cli.data_dir {
        loaded.config.storage.data_dir.clone_from(dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Init { .. } => unreachable!("handled before loading the config"),
            Command::Check => check(&loaded),
            Command::Chat(args) => chat(&loaded.config, args).await,
            Command::Users(command) => users(&loaded.config, command),
            Command::Db(command) => db(&loaded.config, command),
            Command::Admin(command) => admin(&loaded.config, command).await,
            Command::Serve => serve(&loaded.config).await,
            Command::Analyze => analyze(&loaded.config),
            Command::Model(command) => Ok(edgebot::tools::cli::run(command)?),
            Command::Replay { file } => replay(&loaded.config, &file).await,
            Command::FakeApi {
                listen,
                tokens,
                blocked,
            } => fake_api(listen, tokens, blocked).await,
            Command::FakeLlm {
                listen,
                api_key,
                answers,
                split_chunks,
                seed,
                chunk_delay_ms,
            } => {
                let config = edgebot::fake::llm::FakeLlmConfig {
                    api_key,
                    answers,
                    split_chunks,
                    seed,
                    chunk_delay: std::time::Duration::from_millis(chunk_delay_ms),
                    ..edgebot::fake::llm::FakeLlmConfig::default()
                };
                fake_llm(listen, config).await
            }
            Command::Health { ready } => {
                let timeout = std::time::Duration::from_secs(3);
                Ok(edgebot::http::probe::probe(loaded.config.admin.listen, ready, timeout).await?)
            }
        }
    })
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let logging = edgebot::telemetry::logging::init(None)?;
    let (trigger, shutdown) = edgebot::shutdown::channel();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        trigger.fire();
    });
    let served = edgebot::app::serve::serve(config, shutdown).await;
    // Flushes the traces still queued for export before the process ends.
    if let Err(e) = logging.shutdown() {
        eprintln!("edgebot: traces not flushed: {e}");
    }
    Ok(served?)
}

/// SIGINT or SIGTERM, whichever comes first.
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `edgebot analyze`: one JSON object per line of stdin, in batches for speed.
fn analyze(config: &Config) -> anyhow::Result<()> {
    use std::io::BufRead;
    let models = edgebot::ml::Models::load(config.models.dir.as_deref())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut lines = std::io::stdin().lock().lines();
    loop {
        let batch: Vec<String> = lines.by_ref().take(256).collect::<Result<_, _>>()?;
        if batch.is_empty() {
            break;
        }
        let texts: Vec<&str> = batch.iter().map(String::as_str).collect();
        for (text, analysis) in texts.iter().zip(models.analyze_batch(&texts)) {
            let line = serde_json::json!({
                "text": text,
                "spam": analysis.spam,
                "sentiment": analysis.sentiment,
            });
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn replay(config: &Config, file: &Path) -> anyhow::Result<()> {
    let input = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut out = std::io::stdout().lock();
    let summary =
        edgebot::app::replay::replay(config, std::io::BufReader::new(input), &mut out).await?;
    eprintln!(
        "replayed {} updates ({} unparsable): {} API calls",
        summary.updates, summary.unparsable, summary.calls
    );
    Ok(())
}

async fn fake_api(
    listen: std::net::SocketAddr,
    tokens: Vec<String>,
    blocked: Vec<i64>,
) -> anyhow::Result<()> {
    use edgebot::fake::botapi::{FakeBotApi, FakeConfig};
    let config = FakeConfig {
        valid_tokens: tokens,
        blocked_chats: blocked,
        ..FakeConfig::default()
    };
    let api = FakeBotApi::bind(listen, config)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let base = api.base_url();
    // One line a script can wait for and read the port from (with --listen ...:0).
    println!(
        "fake Bot API listening on {base} (bots call {base}/bot<TOKEN>/<method>); control API at {base}/_fake/; Ctrl-C stops it"
    );
    api.run_until(wait_for_signal()).await;
    Ok(())
}

async fn fake_llm(
    listen: std::net::SocketAddr,
    config: edgebot::fake::llm::FakeLlmConfig,
) -> anyhow::Result<()> {
    let llm = edgebot::fake::llm::FakeLlm::bind(listen, config)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let (base, url) = (llm.base_url(), llm.url());
    // One line a script can wait for and read the port from (with --listen ...:0).
    println!(
        "fake LLM listening on {url}: base_url {base} for kind \"openai\" (POST {base}/chat/completions) and kind \"anthropic\" (POST {base}/messages; Anthropic SDKs take {url}); control API at {url}/_fake/; Ctrl-C stops it"
    );
    llm.run_until(wait_for_signal()).await;
    Ok(())
}

fn init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", path.display());
    }
    std::fs::write(path, config::EXAMPLE).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn check(loaded: &Loaded) -> anyhow::Result<()> {
    Router::from_config(&loaded.config)?;
    match &loaded.file {
        Some(file) => println!("# {}: valid", file.display()),
        None => println!("# no config file: built-in defaults and the environment"),
    }
    print!("{}", loaded.config.to_redacted_toml());
    Ok(())
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open_with_cache(
        &config.storage.data_dir,
        config.storage.cache_bytes(),
    )?)
}

async fn chat(config: &Config, args: ChatArgs) -> anyhow::Result<()> {
    let store = open_store(config)?;
    // A scripted session types faster than any person: the inbound limit, meant for
    // Telegram users, would only get in its way here.
    let mut config = config.clone();
    config.limits.inbound.enabled = false;
    let metrics = std::sync::Arc::new(edgebot::telemetry::metrics::Metrics::new());
    let ml = edgebot::engine::ml::load_if_enabled(&config, &store, metrics.clone()).await?;
    let engine = edgebot::app::runtime::engine(&config, store, None, ml, metrics)?;
    let user = LocalUser {
        id: args.user_id,
        first_name: args.name,
        username: args.username,
        language_code: Some(args.lang),
    };
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut console = Console::new(&engine, user, interactive);
    let mut stdout = std::io::stdout().lock();
    console.run(stdin.lock(), &mut stdout).await?;
    if interactive {
        writeln!(stdout, "bye")?;
    }
    Ok(())
}

fn users(config: &Config, command: UsersCommand) -> anyhow::Result<()> {
    let store = open_store(config)?;
    let mut out = std::io::stdout().lock();
    match command {
        UsersCommand::List { limit, after } => {
            let users = store.users(after, limit)?;
            writeln!(
                out,
                "{:>14}  {:<20} {:<20} {:>8}  status",
                "id", "username", "name", "messages"
            )?;
            for u in users {
                writeln!(
                    out,
                    "{:>14}  {:<20} {:<20} {:>8}  {}",
                    u.id,
                    u.username
                        .as_deref()
                        .map(|n| format!("@{n}"))
                        .unwrap_or_default(),
                    u.first_name,
                    u.message_count,
                    export(&u)["status"].as_str().unwrap_or_default()
                )?;
            }
        }
        UsersCommand::Show { id } => match store.user(id)? {
            Some(user) => writeln!(out, "{}", serde_json::to_string_pretty(&export(&user))?)?,
            None => bail!("no user with id {id}"),
        },
        UsersCommand::Export => {
            let mut after = None;
            loop {
                let page = store.users(after, 1000)?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for user in &page {
                    serde_json::to_writer(&mut out, &export(user))?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    Ok(())
}

/// A user with the Bot API's field names where they exist, and ours for the rest.
fn export(user: &UserRecord) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "language_code": user.language_code,
        "message_count": user.message_count,
        "first_seen": user.first_seen,
        "last_seen": user.last_seen,
        "status": user.status,
        "role": user.role,
        "referrer": user.referrer,
        "referrals": user.referrals,
    })
}

/// A new password: the first line of stdin, or typed twice at a prompt that does not
/// echo it.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("password: ").context("reading the password")?;
    let again = rpassword::prompt_password("again: ").context("reading the password")?;
    anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
    Ok(first)
}

async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    use edgebot::auth::{self, Actor};
    let store = open_store(config)?;
    let actor = Actor::cli();
    match command {
        AdminCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            auth::add_account(&store, &name, role, password, &actor).await?;
            println!("account {name} added (role {})", role.name());
        }
        AdminCommand::List => {
            for account in auth::list_accounts(&store).await? {
                println!(
                    "{:<32} {:<7} totp={:<3} created {}",
                    account.name,
                    account.role.name(),
                    if account.totp { "on" } else { "off" },
                    edgebot::calendar::civil_date(account.created.get().div_euclid(86_400)),
                );
            }
        }
        AdminCommand::Remove { name } => {
            auth::remove_account(&store, &name, &actor).await?;
            println!("account {name} removed");
        }
        AdminCommand::Passwd {
            name,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            auth::change_password(&store, &name, password, &actor).await?;
            println!("password of {name} changed; its sessions and tokens ended");
        }
        AdminCommand::Totp { name, off } => {
            match auth::set_totp(&store, &name, !off, &actor).await? {
                Some(secret) => {
                    println!("TOTP on for {name}; add it to an authenticator app (shown once):");
                    println!("  secret  {}", auth::totp::base32(&secret));
                    println!("  url     {}", auth::totp::url(&name, &secret));
                }
                None => println!("TOTP off for {name}"),
            }
        }
    }
    Ok(())
}

fn db(config: &Config, command: DbCommand) -> anyhow::Result<()> {
    let store = open_store(config)?;
    match command {
        DbCommand::Stats => {
            let stats = store.stats()?;
            println!("file            {}", stats.path.display());
            println!("size            {} bytes", stats.file_bytes);
            println!("schema version  {}", stats.schema_version);
            println!("users           {}", stats.users);
            println!("sessions        {}", stats.sessions);
            println!("inbox           {} (received, not finished)", stats.inbox);
            println!(
                "processed       {} (update ids remembered)",
                stats.processed
            );
            println!("outbox          {} (committed, not sent)", stats.outbox);
            println!("events          {}", stats.events);
            println!("malformed       {} (kept for inspection)", stats.malformed);
            println!("embeddings      {} (cached FAQ vectors)", stats.embeddings);
            println!("accounts        {} (admin panel and API)", stats.accounts);
            println!("panel sessions  {}", stats.panel_sessions);
            println!("audit           {} (admin actions)", stats.audit);
            println!(
                "dialogs         {} (LLM conversations: the current one per chat and topic)",
                stats.dialogs
            );
            println!("turns           {} (their messages)", stats.turns);
            println!(
                "personalities   {} (users' choices)",
                stats.personality_choices
            );
            println!(
                "usage           {} per user and day or month, {} per provider and day",
                stats.user_usage, stats.provider_usage
            );
        }
        DbCommand::Backup { path } => {
            store.backup(&path)?;
            println!("wrote a consistent copy to {}", path.display());
        }
    }
    Ok(())
}
