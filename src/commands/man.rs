//! `tapir man [COMMAND]`: print the roff man page tapir(1), or tapir-COMMAND(1), generated
//! from the clap definition (the same text as `--help`).

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::{Error, Result, exit};
use crate::output;

pub fn run(args: &ManArgs) -> Result<u8> {
    // As clap_mangen::generate_to does: no `help` subcommand, and built, so subcommands
    // carry their full names (tapir-validate) and usage (tapir validate).
    let mut tapir = Cli::command().disable_help_subcommand(true);
    tapir.build();
    let page = match &args.command {
        None => tapir,
        Some(name) => {
            let visible = || tapir.get_subcommands().filter(|c| !c.is_hide_set());
            let Some(command) =
                visible().find(|c| c.get_name() == name || c.get_all_aliases().any(|a| a == name))
            else {
                let names: Vec<&str> = visible().map(|c| c.get_name()).collect();
                return Err(Error::Usage(format!(
                    "no man page for `{name}`; there is one for each of: {}",
                    names.join(", ")
                )));
            };
            command.clone()
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .source(format!("tapir {}", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .map_err(|e| Error::io("<stdout>", e))?;
    output::stdout(&String::from_utf8_lossy(&roff));
    Ok(exit::OK)
}
