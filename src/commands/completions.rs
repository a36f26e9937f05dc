//! `tapir completions SHELL`: print a completion script generated from the clap definition,
//! so it always matches the installed binary.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{ExitStatus, Result};
use crate::output;

pub(crate) fn run(args: &CompletionsArgs) -> Result<ExitStatus> {
    let mut command = without_hidden_subcommands(Cli::command());
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "tapir", &mut script);
    output::stdout(&String::from_utf8_lossy(&script));
    Ok(ExitStatus::Success)
}

/// `tapir` as users see it: clap_complete also offers hidden subcommands, and the internal
/// `supervise` must not be. clap cannot remove a subcommand, so the top level is rebuilt
/// from its parts (its own arguments, texts and settings as `cli::Cli` sets them).
fn without_hidden_subcommands(full: clap::Command) -> clap::Command {
    let visible = full
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect::<Vec<_>>();
    clap::Command::new("tapir")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .about(full.get_about().cloned().unwrap_or_default())
        .args(full.get_arguments().cloned())
        .subcommand_required(full.is_subcommand_required_set())
        .subcommands(visible)
}
