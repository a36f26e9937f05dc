//! tapir — Task API Runner. See docs/DESIGN.md for the flow of data:
//! source → checks → model → resolve (RunPlan) → render (argv) → execute → record.

pub(crate) mod backend;
pub(crate) mod checks;
pub(crate) mod cli;
pub(crate) mod commands;
pub(crate) mod diagnostic;
pub(crate) mod error;
pub(crate) mod execute;
pub(crate) mod executor;
pub(crate) mod k8s;
pub(crate) mod model;
pub(crate) mod output;
pub(crate) mod pipeline;
pub(crate) mod record;
pub(crate) mod resolve;
pub(crate) mod schema;
pub(crate) mod source;
pub(crate) mod validation;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::output::Printer;

/// Parses the arguments, runs the command and returns its documented exit code.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" to clap but succeed (exit 0).
            let _ = e.print();
            let status = if e.use_stderr() {
                error::ExitStatus::Usage
            } else {
                error::ExitStatus::Success
            };
            return ExitCode::from(status.code());
        }
    };
    let color = cli.color;
    if let Err(message) = backend::deadline::check_env() {
        let p = Printer::for_stderr(color);
        output::stderr(&format!("{} {message}\n", p.red("error:")));
        return ExitCode::from(error::ExitStatus::Usage.code());
    }
    let result = match &cli.command {
        Command::Validate(args) => commands::validate::run(args, color),
        Command::Schema(args) => commands::schema::run(args),
        Command::Pipeline(args) => commands::pipeline::run(args, color),
        Command::Run(args) => commands::run::run(args, color),
        Command::Session(args) => commands::session::run(args, color),
        Command::Init(args) => commands::scaffold::init(args),
        Command::New(args) => commands::scaffold::new(args),
        Command::Logs(args) => commands::logs::run(args),
        Command::Ps(args) => commands::ps::run(args, color),
        Command::Show(args) => commands::show::run(args, color),
        Command::Outputs(args) => commands::outputs::run(args, color),
        Command::Wait(args) => commands::wait::run(args),
        Command::Rm(args) => commands::rm::rm(args),
        Command::Prune(args) => commands::rm::prune(args),
        Command::Inspect(args) => commands::inspect::run(args, color),
        Command::Images(args) => commands::images::run(args, color),
        Command::Doctor(args) => commands::doctor::run(args, color),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::man::run(args),
        Command::Supervise(args) => commands::supervise::run(args),
        Command::Export(args) => match &args.target {
            cli::ExportTarget::K8s(args) => commands::k8s::export(args, color),
        },
    };
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(e) => {
            let p = Printer::for_stderr(color);
            output::stderr(&format!("{} {e}\n", p.red("error:")));
            ExitCode::from(e.exit_status().code())
        }
    }
}
