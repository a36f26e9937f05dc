//! `tapir man [COMMAND]`: print the roff man page tapir(1), or tapir-COMMAND(1), generated
//! from the clap definition (the same text as `--help`).

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, EXIT_CODES, ManArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::output;

pub(crate) fn run(args: &ManArgs) -> Result<ExitStatus> {
    // As clap_mangen::generate_to does: no `help` subcommand, and built, so subcommands
    // carry their full names (tapir-validate) and usage (tapir validate).
    let mut tapir = Cli::command().disable_help_subcommand(true);
    tapir.build();
    if let Some(dir) = &args.dir {
        return write_all(&tapir, dir);
    }
    let page = match &args.command {
        None => &tapir,
        Some(name) => {
            let pages = pages(&tapir);
            let Some((_, command)) = pages
                .iter()
                .find(|(page, c)| page == name || c.get_all_aliases().any(|a| a == name.as_str()))
            else {
                let names: Vec<&str> = pages.iter().map(|(page, _)| page.as_str()).collect();
                let fix = match crate::diagnostic::did_you_mean(name, names.iter().copied()) {
                    Some(close) => format!("did you mean `tapir man {close}`?"),
                    None => "give one of the commands above".to_string(),
                };
                return Err(Error::Usage(format!(
                    "no man page for `{name}`; there is one for each of: {}\n  fix: {fix}",
                    names.join(", ")
                )));
            };
            *command
        }
    };
    output::stdout(&render(page)?);
    Ok(ExitStatus::Success)
}

/// `tapir man --dir DIR`: every page as a file, so `man tapir-run` works after one command
/// (the SEE ALSO of tapir(1) names them all). Says on stderr what it wrote.
fn write_all(tapir: &clap::Command, dir: &Path) -> Result<ExitStatus> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = vec![("tapir.1".to_string(), render(tapir)?)];
    for (name, command) in pages(tapir) {
        written.push((format!("tapir-{name}.1"), render(command)?));
    }
    for (file, text) in &written {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    output::stderr(&format!(
        "wrote {} man pages to {} (tapir.1 and tapir-COMMAND.1)\n",
        written.len(),
        dir.display()
    ));
    Ok(ExitStatus::Success)
}

/// One page as roff text.
fn render(page: &clap::Command) -> Result<String> {
    // The exit codes get a proper EXIT STATUS section instead of clap_mangen's EXTRA text.
    let top_level = page.get_after_help().is_some();
    let mut roff = Vec::new();
    clap_mangen::Man::new(page.clone().after_help(None::<&str>))
        .source(format!("tapir {}", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .map_err(|e| Error::io("<stdout>", e))?;
    let mut text = String::from_utf8_lossy(&roff).into_owned();
    if top_level {
        let at = text.find("\n.SH VERSION").map_or(text.len(), |i| i + 1);
        text.insert_str(at, &exit_status_section());
    }
    Ok(text)
}

/// Every visible command below `tapir` with the name of its page without `tapir-`
/// (`validate`, `pipeline-validate`): the pages a SEE ALSO section names.
fn pages(command: &clap::Command) -> Vec<(String, &clap::Command)> {
    let mut pages = Vec::new();
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        // Built commands carry their full name (tapir-pipeline-validate) for display.
        let display = sub.get_display_name().unwrap_or(sub.get_name());
        let page = display
            .strip_prefix("tapir-")
            .unwrap_or(display)
            .to_string();
        pages.push((page, sub));
        pages.extend(self::pages(sub));
    }
    pages
}

/// `cli::EXIT_CODES` as a man page section.
fn exit_status_section() -> String {
    let mut section = String::from(".SH \"EXIT STATUS\"\n");
    for (code, lines) in EXIT_CODES {
        section.push_str(&format!(
            ".TP\n\\fB{code}\\fR\n{}\n",
            roff_text(&lines.join(" "))
        ));
    }
    section
}

/// Plain text as roff text (no line of ours starts with `.` or `'`).
fn roff_text(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\*(Aq")
}
