//! What tapir says about itself: `--help`, shell completions and the man page.

use crate::support::{repo_root, run, tapir};

/// The visible subcommands, as `tapir --help` lists them.
fn subcommands() -> Vec<String> {
    let names = subcommands_of(&[]);
    assert!(names.len() > 5, "{names:?}");
    names
}

/// The subcommands `tapir COMMAND... --help` lists (none when it lists no `Commands:`).
fn subcommands_of(command: &[&str]) -> Vec<String> {
    let out = run(&mut tapir(
        &repo_root(),
        command.iter().copied().chain(["--help"]),
    ));
    assert_eq!(out.code, 0, "{command:?}: {}", out.stderr);
    let Some(list) = out.stdout.split("Commands:\n").nth(1) else {
        return Vec::new();
    };
    list.lines()
        .take_while(|l| l.starts_with("  "))
        // Continuation lines of a wrapped description are indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn completions_know_the_subcommands_and_flags_for_each_shell() {
    let internal = regex::Regex::new(r"\bsupervise\b").expect("regex");
    // fish names long options without their dashes (`-l format`).
    for (shell, format_flag) in [
        ("bash", "--format"),
        ("zsh", "--format"),
        ("fish", "-l format"),
    ] {
        let out = run(&mut tapir(&repo_root(), ["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for word in subcommands().iter().map(String::as_str).chain([
            format_flag,
            "runs-dir",
            "apptainer",
            "color",
            "version",
        ]) {
            assert!(
                out.stdout.contains(word),
                "{shell} completions lack {word}:\n{}",
                out.stdout
            );
        }
        // The hidden internal command is not offered.
        assert!(
            !internal.is_match(&out.stdout),
            "{shell} completions offer the internal `supervise`"
        );
    }
    let out = run(&mut tapir(&repo_root(), ["completions", "tcsh"]));
    assert_eq!(out.code, 2, "an unknown shell is a usage error");
    assert!(out.stderr.contains("bash"), "{}", out.stderr);
}

#[test]
fn man_prints_a_roff_page_naming_every_subcommand() {
    let out = run(&mut tapir(&repo_root(), ["man"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // clap_mangen defines the apostrophe string (`.ie`/`.el`) before the title.
    let title = out
        .stdout
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap_or_default();
    assert!(title.starts_with(".TH tapir 1 "), "{}", out.stdout);
    for name in subcommands() {
        assert!(
            out.stdout.contains(&format!("\ntapir\\-{name}(1)\n")),
            "the man page does not list `{name}`:\n{}",
            out.stdout
        );
    }
    assert!(
        !out.stdout.contains("supervise"),
        "lists the internal command"
    );

    let exit_status = out
        .stdout
        .split(".SH \"EXIT STATUS\"\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no EXIT STATUS section:\n{}", out.stdout));
    for code in readme_exit_codes() {
        assert!(
            exit_status.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "the man page does not explain exit code {code}"
        );
    }

    // One page per subcommand too.
    let out = run(&mut tapir(&repo_root(), ["man", "validate"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(".TH tapir-validate 1 ")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\\-\\-format"), "{}", out.stdout);
    let out = run(&mut tapir(&repo_root(), ["man", "nosuch"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("validate"),
        "names the pages there are: {}",
        out.stderr
    );
}

/// Every `tapir-X(1)` a page names (its SEE ALSO) is a page `tapir man X` prints,
/// nested commands (`tapir-pipeline-validate(1)`) included.
#[test]
fn every_page_a_man_page_names_can_be_printed() {
    let reference = regex::Regex::new(r"(?m)^tapir\\-([a-z\\-]+)\(1\)$").expect("regex");
    let mut pages = vec![String::new()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(page) = pages.pop() {
        let args: Vec<&str> = std::iter::once("man")
            .chain((!page.is_empty()).then_some(page.as_str()))
            .collect();
        let out = run(&mut tapir(&repo_root(), args));
        assert_eq!(out.code, 0, "tapir man {page}: {}", out.stderr);
        let title = if page.is_empty() {
            "tapir".to_string()
        } else {
            format!("tapir-{page}")
        };
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
            "tapir man {page}:\n{}",
            out.stdout
        );
        for found in reference.captures_iter(&out.stdout) {
            let name = found[1].replace("\\-", "-");
            if seen.insert(name.clone()) {
                pages.push(name);
            }
        }
    }
    assert!(seen.contains("pipeline-validate"), "{seen:?}");
}

/// The codes of the README's "Exit codes" table (`0`, `N`, `125`, … once each).
fn readme_exit_codes() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Exit codes\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has an `Exit codes` section");
    let mut codes: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.contains("| code |"))
        .filter_map(|l| l.split('|').nth(2))
        .flat_map(|cell| cell.split('/').map(|c| c.trim().to_string()))
        .collect();
    codes.sort();
    codes.dedup();
    assert!(codes.len() >= 5, "{section}");
    codes
}

#[test]
fn help_lists_the_exit_codes_of_the_readme() {
    let out = run(&mut tapir(&repo_root(), ["--help"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let section = out
        .stdout
        .split("Exit codes:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("--help has no exit codes:\n{}", out.stdout));
    for code in readme_exit_codes() {
        assert!(
            section
                .lines()
                .any(|l| l.starts_with(&format!("  {code} "))),
            "--help does not explain exit code {code}:\n{section}"
        );
    }
}

#[test]
fn value_names_are_words_not_field_names() {
    // clap derives `<RUNS_TO_WAIT>` from a field name unless told a value name.
    let field_name = regex::Regex::new(r"[<\[][A-Z0-9]*_[A-Z0-9_]*[>\]]").expect("regex");
    let mut commands: Vec<Vec<String>> = vec![vec![]];
    for command in subcommands() {
        // Nested commands (`pipeline validate`) have their own --help.
        for nested in subcommands_of(&[command.as_str()]) {
            commands.push(vec![command.clone(), nested]);
        }
        commands.push(vec![command]);
    }
    assert!(
        commands.iter().any(|c| c.len() == 2),
        "no nested command found: {commands:?}"
    );
    // The internal command has a --help too.
    commands.push(vec!["supervise".to_string()]);
    for command in commands {
        let out = run(&mut tapir(
            &repo_root(),
            command.iter().map(String::as_str).chain(["--help"]),
        ));
        assert_eq!(out.code, 0, "{command:?}: {}", out.stderr);
        let bad: Vec<&str> = field_name
            .find_iter(&out.stdout)
            .map(|m| m.as_str())
            .collect();
        assert!(
            bad.is_empty(),
            "`tapir {} --help` shows {bad:?}:\n{}",
            command.join(" "),
            out.stdout
        );
    }
}

/// An unknown page gets a fix: the closest page for a typo (or `pipeline run` written
/// with a space), else the list.
#[test]
fn man_of_an_unknown_command_says_the_fix() {
    for (asked, fix) in [
        ("valdiate", "fix: did you mean `tapir man validate`?"),
        (
            "pipeline run",
            "fix: did you mean `tapir man pipeline-run`?",
        ),
        ("nosuch", "fix: give one of the commands above"),
    ] {
        let out = run(&mut tapir(&repo_root(), ["man", asked]));
        assert_eq!(out.code, 2, "{asked}: {}", out.stderr);
        assert!(out.stderr.contains(fix), "{asked}: {}", out.stderr);
    }
}

/// The bash script completes run ids (from `tapir ps -q`) where a command takes a run,
/// honours a `--runs-dir` typed on the line, and leaves every other word to clap's script.
#[test]
fn bash_completes_run_ids_where_a_command_takes_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "task_run-20261206-010203-aaaa",
        "pipeline-run-20261206-010204-bbbb",
        "other/task_run-20261206-010205-cccc",
    ] {
        std::fs::create_dir_all(dir.path().join(name)).expect("run folder");
    }
    std::fs::write(dir.path().join("task_run-not-a-folder"), "").expect("file");

    let listed = run(&mut tapir(dir.path(), ["ps", "-q"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(
        listed.stdout, "pipeline-run-20261206-010204-bbbb\ntask_run-20261206-010203-aaaa\n",
        "newest first, folders only"
    );

    let script = run(&mut tapir(dir.path(), ["completions", "bash"]));
    assert_eq!(script.code, 0, "{}", script.stderr);
    let script_file = dir.path().join("tapir.bash");
    std::fs::write(&script_file, &script.stdout).expect("script");
    let complete = |words: &[&str]| -> Vec<String> {
        // COMP_WORDS[0] is the binary under test: the script asks it for the runs. bash
        // calls a completion function with the command, the word and the previous word.
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "source '{}'; COMP_WORDS=('{}' {}); COMP_CWORD={}; \
             _tapir_with_run_ids \"${{COMP_WORDS[0]}}\" \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script_file.display(),
            crate::support::tapir_bin().display(),
            quoted.join(" "),
            words.len(),
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &program])
            .current_dir(dir.path())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{words:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let both = vec![
        "pipeline-run-20261206-010204-bbbb".to_string(),
        "task_run-20261206-010203-aaaa".to_string(),
    ];
    assert_eq!(complete(&["show", ""]), both);
    assert_eq!(complete(&["logs", "task"]), vec![both[1].clone()]);
    assert_eq!(
        complete(&["rm", "--force", "task_run-x", ""]),
        both,
        "rm takes many runs"
    );
    assert_eq!(
        complete(&["show", "--runs-dir", "other", ""]),
        vec!["task_run-20261206-010205-cccc".to_string()]
    );
    assert_eq!(complete(&["show", "--format", ""]), vec!["human", "json"]);
    let task_place = complete(&["logs", "task_run-20261206-010203-aaaa", ""]);
    assert!(
        !task_place.iter().any(|w| w.starts_with("task_run-")),
        "logs' second argument is a task, not a run: {task_place:?}"
    );
    let run_place = complete(&["run", ""]);
    assert!(
        !run_place.iter().any(|w| w.starts_with("task_run-")),
        "`run` takes a task file: {run_place:?}"
    );
}

/// zsh and fish complete run ids too (their shells are not installed here: the glue is
/// checked as text).
#[test]
fn zsh_and_fish_scripts_complete_run_ids() {
    let zsh = run(&mut tapir(&repo_root(), ["completions", "zsh"]));
    assert_eq!(zsh.code, 0, "{}", zsh.stderr);
    assert!(zsh.stdout.contains("_tapir_run_ids() {"), "{}", zsh.stdout);
    let uses = zsh.stdout.matches(":_tapir_run_ids' \\\n").count();
    assert_eq!(
        uses, 5,
        "show, logs, outputs, wait and rm complete runs:\n{}",
        zsh.stdout
    );
    let fish = run(&mut tapir(&repo_root(), ["completions", "fish"]));
    assert_eq!(fish.code, 0, "{}", fish.stderr);
    assert!(
        fish.stdout
            .contains("__fish_tapir_using_subcommand rm\" -f -a \"(tapir ps -q 2>/dev/null)\""),
        "{}",
        fish.stdout
    );
}

/// `tapir man --dir DIR` installs every page, so `man tapir-run` works after the README's
/// install step (before: only tapir.1 could be installed, by redirecting stdout).
#[test]
fn man_dir_writes_every_page_tapir_1_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let man1 = dir.path().join("share/man/man1");
    let out = run(&mut tapir(
        dir.path(),
        [
            std::ffi::OsStr::new("man"),
            "--dir".as_ref(),
            man1.as_os_str(),
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "", "pages go to files");
    let top = std::fs::read_to_string(man1.join("tapir.1")).expect("tapir.1");
    let named = regex::Regex::new(r"(?m)^tapir\\-([a-z\\-]+)\(1\)$").expect("regex");
    let mut count = 1;
    for page in named.captures_iter(&top) {
        let name = page[1].replace("\\-", "-");
        let text = std::fs::read_to_string(man1.join(format!("tapir-{name}.1")))
            .unwrap_or_else(|e| panic!("tapir-{name}.1: {e}"));
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!(".TH tapir-{name} 1 "))),
            "tapir-{name}.1:\n{text}"
        );
        count += 1;
    }
    assert!(
        man1.join("tapir-pipeline-validate.1").is_file(),
        "nested pages too"
    );
    assert!(count > 10, "{top}");
    assert!(
        out.stderr.contains("man pages to"),
        "says what it wrote: {}",
        out.stderr
    );
    let both = run(&mut tapir(dir.path(), ["man", "run", "--dir", "x"]));
    assert_eq!(both.code, 2, "a page and --dir together: {}", both.stderr);
}

/// `show`'s summary ended in "timings, exit", which read as cut off.
#[test]
fn the_show_summary_is_a_whole_sentence() {
    let out = run(&mut tapir(&repo_root(), ["show", "--help"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary = out.stdout.lines().next().unwrap_or_default();
    assert!(summary.ends_with("timings and exit status"), "{summary}");
}
