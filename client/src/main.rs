//! `quiver`: the command-line client for a Quiver server.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use quiver_client::Client;

use cli::output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "quiver",
    version,
    about = "Command-line client for the Quiver feature store"
)]
struct Args {
    /// Server gRPC endpoint.
    #[arg(
        long,
        env = "QUIVER_ENDPOINT",
        default_value = "http://127.0.0.1:7940",
        global = true
    )]
    endpoint: String,
    /// How results are printed.
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, inspect and change feature groups.
    #[command(subcommand, name = "feature-group")]
    FeatureGroup(cli::group::GroupCommand),
    /// Write one record, given as a JSON object of feature -> value.
    Put { group: String, record: String },
    /// Read the latest record of an identifier.
    Get {
        group: String,
        id: String,
        /// Only these features (comma-separated).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Also print when the record expires.
        #[arg(long)]
        expires: bool,
    },
    /// Read many records in one round trip: GROUP=ID1,ID2 [GROUP2=ID3 ...].
    BatchGet {
        #[arg(required = true)]
        lookups: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
    },
    /// Delete a record (soft by default).
    Delete {
        group: String,
        id: String,
        /// The delete's event time (ISO-8601 UTC or epoch seconds).
        #[arg(long)]
        event_time: String,
        /// Remove the record instead of hiding it.
        #[arg(long)]
        hard: bool,
    },
    /// Run a SQL statement over the offline store (tables: each group's history, and
    /// latest."GROUP" for its latest records) and print the result, or write it to a file.
    Sql {
        statement: String,
        /// Write the result here instead of printing it: Parquet for *.parquet, CSV for *.csv.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build training datasets from the offline store.
    #[command(subcommand)]
    Dataset(cli::dataset::DatasetCommand),
    /// Principals, access keys, groups and IAM policies; `simulate` explains a decision.
    #[command(subcommand)]
    Auth(cli::auth::AuthCommand),
    /// Write every row of a CSV or Parquet file, in parallel batches (`quiver ingest GROUP
    /// FILE`); or, `quiver ingest status`, show a stream source's progress.
    Ingest(cli::ingest::IngestArgs),
    /// The lineage graph: `query` walks it from an entity (as a table, JSON, DOT or Mermaid);
    /// `list` and `describe` show entities and associations.
    #[command(subcommand)]
    Lineage(cli::lineage::LineageCommand),
    /// AutoML: `create` builds a model from a group, a query or a file (following it with a
    /// progress bar); `describe`, `list`, `stop`, `report`; `predict` for rows or online records.
    #[command(subcommand)]
    Automl(cli::automl::AutomlCommand),
    /// Data preparation recipes (docs/data-prep.md): `put` stores a recipe file, `preview`
    /// shows the rows after any step, `run` writes the output to a file or a feature group
    /// (following it), `list`, `show`, `diff`, `runs`, `stop`.
    #[command(subcommand)]
    Prep(cli::prep::PrepCommand),
    /// Operating the server: `backup` its store into a directory or S3 (incremental),
    /// `backups` lists them, `restore` one into a new data dir (no server running on it).
    #[command(subcommand)]
    Admin(cli::admin::AdminCommand),
}

/// Output into a pipe that closes (`quiver get ... | head`) ends the CLI quietly, as it ends
/// Unix tools: by SIGPIPE (status 141 in a shell), where Rust's default (the signal ignored)
/// makes `println!` panic with a backtrace. Sockets are unaffected: Rust writes to them with
/// MSG_NOSIGNAL.
#[allow(unsafe_code)]
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: sets a signal's disposition to the default before any thread starts; no
    // handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    end_quietly_on_a_closed_pipe();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cli_main()),
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn cli_main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dispatches to the command family's module under `cli/`.
async fn run(args: Args) -> Result<ExitCode> {
    if let Command::Admin(command @ cli::admin::AdminCommand::Restore { .. }) = args.command {
        return cli::admin::restore(command);
    }
    let client = Client::connect(args.endpoint.clone()).await?;
    let out = args.output;
    match args.command {
        Command::FeatureGroup(command) => cli::group::run(&client, out, command).await?,
        Command::Auth(command) => cli::auth::run(&client, out, command).await?,
        Command::Put { group, record } => cli::records::put(&client, out, group, record).await?,
        Command::Get {
            group,
            id,
            features,
            expires,
        } => return cli::records::get(&client, out, group, id, features, expires).await,
        Command::BatchGet { lookups, features } => {
            cli::records::batch_get(&client, out, lookups, features).await?
        }
        Command::Delete {
            group,
            id,
            event_time,
            hard,
        } => cli::records::delete(&client, out, group, id, event_time, hard).await?,
        Command::Dataset(command) => cli::dataset::run(&client, out, command).await?,
        Command::Sql {
            statement,
            out: file,
        } => cli::sql::run(&client, out, statement, file).await?,
        Command::Ingest(args) => return cli::ingest::run(&client, out, args).await,
        Command::Lineage(command) => cli::lineage::run(&client, out, command).await?,
        Command::Automl(command) => cli::automl::run(&client, out, command).await?,
        Command::Prep(command) => cli::prep::run(&client, out, command).await?,
        Command::Admin(command) => cli::admin::run(&client, out, command).await?,
    }
    Ok(ExitCode::SUCCESS)
}
