//! Command-line types only (clap derive). No logic lives here: `commands/` turns these raw
//! values into validated ones once, and the rest of the program never sees them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tapir",
    version,
    about = "Validate and run Task API processing containers locally (Docker or Apptainer)",
    long_about = None,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// When to use colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check processing-container.json and task.json files against the Task API.
    Validate(ValidateArgs),
    /// Print a bundled JSON Schema (for editors and other tools).
    Schema(SchemaArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or folders to check. Folders are searched recursively for both kinds
    /// (skipping target/, .git/ and node_modules/).
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,

    /// Treat every file as this kind instead of detecting it.
    #[arg(long, value_enum, value_name = "KIND")]
    pub schema: Option<KindArg>,

    /// Turn warnings (such as unknown keys) into errors.
    #[arg(long)]
    pub strict: bool,

    /// Output format: human (with source snippets), json (stable list of findings) or
    /// github (workflow annotations).
    #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
    pub format: ValidateFormat,

    /// Print only problems, not the line per valid file.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema: pc (processing-container.json) or task (task.json).
    #[arg(value_enum, value_name = "KIND")]
    pub kind: KindArg,
}

/// The two kinds of Task API file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// processing-container.json
    #[value(name = "pc", alias = "processing-container")]
    Pc,
    /// task.json
    Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValidateFormat {
    Human,
    Json,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}
