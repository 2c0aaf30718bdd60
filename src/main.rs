//! The `storefort` binary: parses the command line and runs a subcommand.
//! Everything else lives in the workspace crates.

mod acme;
mod admin_cmd;
mod config;
mod keyfile;
mod keys_cmd;
mod ledger_cmd;
mod proxy_cmd;
mod serve;
mod tls;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "storefort", version, about = "A secure-by-default online store engine")]
struct Cli {
    /// Configuration file (default: ./storefort.toml when it exists).
    #[arg(long, global = true, env = "STOREFORT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Default)]
struct CommonFlags {
    /// Directory for the SQLite database and the server key.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `postgres://…` to run on PostgreSQL instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// `human` (default) or `json`.
    #[arg(long)]
    log_format: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the store.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Seed a demo catalog when the store has no products.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        common: CommonFlags,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Protect another store: a reverse proxy with the shield (firewall,
    /// rate limits, load shedding) in front. Settings from `[shield]`.
    Proxy {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// The store to protect, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        upstream: String,
        #[arg(long)]
        log_format: Option<String>,
    },
    /// The web application firewall.
    Shield {
        #[command(subcommand)]
        command: ShieldCommand,
    },
    /// The keys that protect personal data.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The tamper-evident ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Run a witness that keeps the checkpoints a store sends
    /// (`[ledger] witness_url`), on a machine the store cannot write to.
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
    /// Customer receipts.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Print the public key that verifies checkpoints and receipts.
    Key {
        #[command(flatten)]
        common: CommonFlags,
    },
    /// Verify the whole ledger, its checkpoints, its witness and every order
    /// and variant row. Exits non-zero naming the first bad entry.
    Verify {
        #[command(flatten)]
        common: CommonFlags,
    },
    /// Replace the signing key; the old key signs the hand-over.
    RotateKey {
        #[command(flatten)]
        common: CommonFlags,
    },
}

#[derive(Subcommand)]
enum WitnessCommand {
    /// Serve: POST / takes a checkpoint (with a consistency proof), GET /
    /// answers the newest one kept.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// Where the checkpoints are kept.
        #[arg(long, default_value = "./storefort-witness")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Verify a receipt offline, without the store's database.
    Verify {
        /// The receipt JSON (from GET /api/v1/orders/{id}/receipt).
        file: PathBuf,
        /// The store's ledger key (`storefort ledger key`, or
        /// /.well-known/storefort/ledger-key), or a file holding it.
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration (file, environment, flags) and name any bad key.
    Check {
        #[arg(long)]
        listen: Option<String>,
        #[command(flatten)]
        common: CommonFlags,
    },
}

#[derive(Subcommand)]
enum ShieldCommand {
    /// Replay a corpus of requests (the OWASP CRS regression tests as JSON
    /// lines, ../shared/corpus/crs-regression.jsonl) through the detectors
    /// and print the detection and false-block rates per rule family.
    Eval {
        file: PathBuf,
        /// Paranoia level, 1 to 4.
        #[arg(long, default_value_t = 1)]
        paranoia: u8,
        /// Also list, for this family, the attack stages let through and
        /// the benign stages blocked.
        #[arg(long)]
        misses: Option<u16>,
        /// Print what the detectors found in one stage (by id, e.g. 932140-12).
        #[arg(long)]
        explain: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Replace the master key: every data key is re-wrapped under a new one
    /// (data is not re-encrypted), then the old key is deleted. Safe while
    /// the store serves, and safe to re-run after an interruption.
    Rotate {
        #[command(flatten)]
        common: CommonFlags,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a staff account (the first owner, for one). The password is
    /// read from standard input; two-factor setup follows at first sign-in.
    Create {
        #[arg(long)]
        email: String,
        /// owner, admin, staff or support.
        #[arg(long, default_value = "owner")]
        role: String,
        /// Read the password from standard input (required).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        common: CommonFlags,
    },
    /// Create an API token for an account and print it once.
    Token {
        #[arg(long)]
        email: String,
        /// A permission such as read_orders or edit_catalog; repeat for more.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Days until it expires.
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value = "cli")]
        name: String,
        #[command(flatten)]
        common: CommonFlags,
    },
}

fn overrides(listen: Option<String>, common: CommonFlags) -> config::Overrides {
    config::Overrides {
        listen,
        data_dir: common.data_dir,
        database_url: common.database_url,
        log_format: common.log_format,
    }
}

fn load(cli_config: Option<&std::path::Path>, flags: &config::Overrides) -> Result<config::Config> {
    config::load(cli_config, std::env::vars(), flags)
}

fn main() {
    // Errors are for people: the message and its causes, no backtrace.
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve { listen, demo, common } => {
            let cfg = load(cli.config.as_deref(), &overrides(listen, common))?;
            runtime.block_on(serve::serve(cfg, demo))
        }
        Command::Config { command: ConfigCommand::Check { listen, common } } => {
            let cfg = load(cli.config.as_deref(), &overrides(listen, common))?;
            cfg.settings()?;
            println!("configuration is valid");
            Ok(())
        }
        Command::Ledger { command: LedgerCommand::Key { common } } => {
            let cfg = load(cli.config.as_deref(), &overrides(None, common))?;
            runtime.block_on(ledger_cmd::key(cfg))
        }
        Command::Ledger { command: LedgerCommand::Verify { common } } => {
            let cfg = load(cli.config.as_deref(), &overrides(None, common))?;
            runtime.block_on(ledger_cmd::verify(cfg))
        }
        Command::Ledger { command: LedgerCommand::RotateKey { common } } => {
            let cfg = load(cli.config.as_deref(), &overrides(None, common))?;
            runtime.block_on(ledger_cmd::rotate_key(cfg))
        }
        Command::Witness { command: WitnessCommand::Serve { listen, dir } } => {
            runtime.block_on(serve::witness(&listen, dir))
        }
        Command::Proxy { listen, upstream, log_format } => {
            let flags = overrides(None, CommonFlags { log_format, ..CommonFlags::default() });
            let cfg = load(cli.config.as_deref(), &flags)?;
            runtime.block_on(proxy_cmd::proxy(cfg, &listen, &upstream))
        }
        Command::Receipt { command: ReceiptCommand::Verify { file, key } } => ledger_cmd::verify_receipt(&file, &key),
        Command::Shield { command: ShieldCommand::Eval { file, paranoia, misses, explain } } => {
            anyhow::ensure!((1..=4).contains(&paranoia), "--paranoia must be 1 to 4");
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            if let Some(id) = explain {
                for f in storefort_shield::eval::explain(&text, &id).map_err(|e| anyhow::anyhow!(e))? {
                    println!("{} PL{} {} at {}: {}", f.family, f.paranoia, f.check, f.location.label(), f.fragment);
                }
                return Ok(());
            }
            let report = storefort_shield::eval::replay(&text, paranoia, storefort_shield::score::DEFAULT_THRESHOLD)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("paranoia level {paranoia}, anomaly threshold {}\n", storefort_shield::score::DEFAULT_THRESHOLD);
            print!("{}", report.table());
            if let Some(family) = misses {
                let (missed, blocked) = report.misses.get(&family).cloned().unwrap_or_default();
                println!("\nfamily {family}: attacks let through: {}", missed.join(" "));
                println!("family {family}: benign stages blocked: {}", blocked.join(" "));
            }
            Ok(())
        }
        Command::Keys { command: KeysCommand::Rotate { common } } => {
            let cfg = load(cli.config.as_deref(), &overrides(None, common))?;
            runtime.block_on(keys_cmd::rotate(cfg))
        }
        Command::Admin { command: AdminCommand::Create { email, role, password_stdin, common } } => {
            let cfg = load(cli.config.as_deref(), &overrides(None, common))?;
            runtime.block_on(admin_cmd::create(cfg, &email, &role, password_stdin))
        }
        Command::Admin { command: AdminCommand::Token { email, scopes, days, name, common } } => {
            let cfg = load(cli.config.as_deref(), &overrides(None, common))?;
            runtime.block_on(admin_cmd::token(cfg, &email, &scopes, days, &name))
        }
    }
}
