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
