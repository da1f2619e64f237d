//! Command-line interface. One file per command; each returns an exit status.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem in its input (an
//! invalid bundle, an envelope that does not verify); 2 the command could not run
//! (bad arguments, unreadable file, bad config).

/// `println!` for command output: see [`out`] (a reader that stops reading ends the
/// command quietly).
macro_rules! println {
    () => {
        $crate::cli::out::print(format_args!(""), true)
    };
    ($($t:tt)*) => {
        $crate::cli::out::print(format_args!($($t)*), true)
    };
}

/// `print!` for command output: see [`out`].
macro_rules! print {
    ($($t:tt)*) => {
        $crate::cli::out::print(format_args!($($t)*), false)
    };
}

mod client;
mod demo_cmd;
mod export_cmd;
mod gen_cmd;
mod keys_cmd;
mod lookup_cmd;
mod out;
mod push_cmd;
mod rebuild_cmd;
mod retract_cmd;
mod roster_cmd;
mod serve_cmd;
mod status_cmd;
mod store_cmd;
mod validate_cmd;
mod verify_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Synergia: a federation node for signed STIX 2.1 threat-intelligence sharing.
#[derive(Debug, Parser)]
#[command(name = "synergia", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "SYNERGIA_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node: TAXII 2.1, node API and federation over mutual TLS.
    Serve(serve_cmd::Args),
    /// Start a five-member federation on loopback and show its consolidated view.
    Demo(demo_cmd::Args),
    /// Publish a STIX bundle to a node.
    Push(push_cmd::Args),
    /// Peer sync status table of a node.
    Status(status_cmd::Args),
    /// Consolidated feed (STIX bundle or CSV of observables) to stdout or a file.
    Export(export_cmd::Args),
    /// Who reported these observables, with provenance.
    Lookup(lookup_cmd::Args),
    /// Generate deterministic synthetic indicator bundles (demos, tests, benchmarks).
    Gen(gen_cmd::Args),
    /// Create and manage federation keys: CA, node certificates, signing keys, roster.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Check STIX 2.1 bundles offline: every error with the object id and a JSON pointer.
    Validate(validate_cmd::Args),
    /// Verify a signed envelope offline against a roster.
    Verify(verify_cmd::Args),
    /// Rebuild every index from the evidence log (node stopped).
    Rebuild(rebuild_cmd::Args),
    /// Take back envelopes or objects this member published, on every node.
    Retract(retract_cmd::Args),
    /// Store operations: move an embedded node into PostgreSQL (node stopped).
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// The membership log: start one from a roster, propose and approve changes,
    /// verify, list, show the roster at any entry.
    #[command(subcommand)]
    Roster(roster_cmd::RosterCommand),
}

/// Exit status: the command found a problem in its input.
pub const EXIT_INVALID: u8 = 1;

/// The runtime a maintenance command runs its database statements on (two workers:
/// the store's statements block on a multi-threaded runtime only).
fn database_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
/// Exit status: the command could not run.
pub const EXIT_ERROR: u8 = 2;

fn init_logging(format: LogFormat, default: &str) {
    // A bare level (`SYNERGIA_LOG=debug`) is the node's own: the libraries it uses
    // (TLS, HTTP) stay at warn, or their lines drown ours. Directives
    // (`debug,hyper=debug`) are taken as written.
    let filter = match std::env::var("SYNERGIA_LOG") {
        Ok(v) if !v.contains(['=', ',']) && !v.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(format!("warn,synergia={}", v.trim()))
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
        }
        Ok(v) => tracing_subscriber::EnvFilter::try_new(v)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        Err(_) => tracing_subscriber::EnvFilter::new(format!("warn,synergia={default}")),
    };
    // Colour codes only on a terminal: in a log file they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Parses arguments, runs the command, reports errors.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The node logs at info; one-shot commands only warn unless SYNERGIA_LOG says so.
    let default = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    init_logging(cli.log_format, default);
    let result = match cli.command {
        Command::Serve(a) => serve_cmd::run(a),
        Command::Demo(a) => demo_cmd::run(a),
        Command::Push(a) => push_cmd::run(a),
        Command::Status(a) => status_cmd::run(a),
        Command::Export(a) => export_cmd::run(a),
        Command::Lookup(a) => lookup_cmd::run(a),
        Command::Gen(a) => gen_cmd::run(a),
        Command::Keys(c) => keys_cmd::run(c),
        Command::Validate(a) => validate_cmd::run(a),
        Command::Verify(a) => verify_cmd::run(a),
        Command::Rebuild(a) => rebuild_cmd::run(a),
        Command::Retract(a) => retract_cmd::run(a),
        Command::Store(c) => store_cmd::run(c),
        Command::Roster(c) => roster_cmd::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
