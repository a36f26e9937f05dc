//! `tapir completions SHELL`: print a completion script generated from the clap definition,
//! so it always matches the installed binary. For bash, zsh and fish the script also
//! completes run ids where a command takes a run (`tapir logs <TAB>`), from `tapir ps -q`.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{ExitStatus, Result};
use crate::output;

pub(crate) fn run(args: &CompletionsArgs) -> Result<ExitStatus> {
    let mut command = without_hidden_subcommands(Cli::command());
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "tapir", &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    let run_args = RunArgs::of(&command);
    let script = match args.shell {
        Shell::Bash => script + &run_args.bash(&command),
        Shell::Zsh => run_args.zsh(&script),
        Shell::Fish => script + &run_args.fish(),
        // Elvish and PowerShell keep clap's static script: commands and flags only.
        _ => script,
    };
    output::stdout(&script);
    Ok(ExitStatus::Success)
}

/// The commands whose positional arguments name runs, read from the clap definition so that
/// a new command taking `RUN` completes run ids without touching this file.
struct RunArgs {
    /// (command, whether every positional is a run (`wait`, `rm`) or only the first).
    commands: Vec<(String, bool)>,
    /// Options of those commands that take a value: the word after one is not a run.
    value_options: Vec<String>,
}

impl RunArgs {
    fn of(tapir: &clap::Command) -> RunArgs {
        let mut commands = Vec::new();
        let mut value_options = Vec::new();
        for sub in tapir.get_subcommands() {
            let Some(first) = sub.get_positionals().next() else {
                continue;
            };
            let names_runs = first
                .get_value_names()
                .is_some_and(|names| names.iter().any(|n| n.as_str() == "RUN"));
            if !names_runs {
                continue;
            }
            let many = first.get_num_args().is_some_and(|n| n.max_values() > 1);
            commands.push((sub.get_name().to_string(), many));
            for arg in sub.get_opts() {
                value_options.extend(arg.get_long().map(|l| format!("--{l}")));
                value_options.extend(arg.get_short().map(|s| format!("-{s}")));
            }
        }
        value_options.sort();
        value_options.dedup();
        RunArgs {
            commands,
            value_options,
        }
    }

    fn names(&self, separator: &str) -> String {
        let names: Vec<&str> = self.commands.iter().map(|(n, _)| n.as_str()).collect();
        names.join(separator)
    }

    /// A wrapper around clap's `_tapir`: at a run's place it offers `tapir ps -q` (with the
    /// `--runs-dir` typed on the line), everywhere else it leaves the word to `_tapir`.
    fn bash(&self, tapir: &clap::Command) -> String {
        let other_commands: Vec<&str> = tapir
            .get_subcommands()
            .map(clap::Command::get_name)
            .filter(|name| !self.commands.iter().any(|(n, _)| n == name))
            .collect();
        let many: Vec<&str> = self
            .commands
            .iter()
            .filter(|(_, many)| *many)
            .map(|(n, _)| n.as_str())
            .collect();
        format!(
            r#"
# Run ids where a command takes a run (from `tapir ps -q`).
_tapir_with_run_ids() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local i word sub="" dir="" positionals=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        if [[ -z $sub ]]; then
            case $word in
                {runs}) sub=$word ;;
                {others}) break ;;
            esac
            continue
        fi
        case $word in
            --runs-dir) dir=${{COMP_WORDS[i+1]}} ;;
            --runs-dir=*) dir=${{word#--runs-dir=}} ;;
        esac
        case $word in
            -*) ;;
            *) case ${{COMP_WORDS[i-1]}} in {values}) ;; *) positionals=$((positionals + 1)) ;; esac ;;
        esac
    done
    if [[ -n $sub && $cur != -* ]]; then
        case $prev in {values}) ;; *)
            case $sub in {many}) positionals=0 ;; esac
            if ((positionals == 0)); then
                COMPREPLY=($(compgen -W "$("${{COMP_WORDS[0]}}" ps -q ${{dir:+--runs-dir "$dir"}} 2>/dev/null)" -- "$cur"))
                return 0
            fi
        ;; esac
    fi
    _tapir "$@"
}}
if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _tapir_with_run_ids -o nosort -o bashdefault -o default tapir
else
    complete -F _tapir_with_run_ids -o bashdefault -o default tapir
fi
"#,
            runs = self.names("|"),
            others = other_commands.join("|"),
            values = self.value_options.join("|"),
            many = if many.is_empty() {
                "''".to_string()
            } else {
                many.join("|")
            },
        )
    }

    /// clap's zsh script completes a run with `_default` (file names); the run arguments get
    /// `_tapir_run_ids` instead, defined before the script registers itself.
    fn zsh(&self, script: &str) -> String {
        let mut out = String::with_capacity(script.len() + 512);
        for line in script.split_inclusive('\n') {
            let is_run_spec = line.starts_with("':run -- ")
                || line.starts_with("'*::runs_to_wait -- ")
                || line.starts_with("'*::runs_to_remove -- ");
            match line.strip_suffix(":_default' \\\n").filter(|_| is_run_spec) {
                Some(spec) => out.push_str(&format!("{spec}:_tapir_run_ids' \\\n")),
                None => {
                    if line.starts_with("if [ \"$funcstack[1]\" = \"_tapir\" ]") {
                        out.push_str(ZSH_RUN_IDS);
                    }
                    out.push_str(line);
                }
            }
        }
        out
    }

    fn fish(&self) -> String {
        let conditions: Vec<String> = self
            .commands
            .iter()
            .map(|(n, _)| format!("__fish_tapir_using_subcommand {n}"))
            .collect();
        format!(
            "\n# Run ids where a command takes a run (from `tapir ps -q`).\n\
             complete -c tapir -n \"{}\" -f -a \"(tapir ps -q 2>/dev/null)\"\n",
            conditions.join("; or ")
        )
    }
}

const ZSH_RUN_IDS: &str = r#"(( $+functions[_tapir_run_ids] )) ||
_tapir_run_ids() {
    local -a runs
    local dir=${opt_args[--runs-dir]}
    runs=(${(f)"$(${words[1]} ps -q ${dir:+--runs-dir "$dir"} 2>/dev/null)"})
    _describe -t runs 'run' runs
}

"#;

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
