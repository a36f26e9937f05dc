//! The README's two commands are what a newcomer runs first: they must work on a fresh
//! machine (Rust, Docker, apt-get; maybe no sudo), and CI must run the same test command.

use std::os::unix::fs::PermissionsExt;

use crate::support::repo_root;

/// The command under the README comment that starts with `# {number}.`, in the first
/// `sh` block.
fn readme_command(number: u32) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README.md starts with a ```sh block of commands");
    let marker = format!("# {number}.");
    let mut lines = block.lines().skip_while(|l| !l.starts_with(&marker));
    assert!(
        lines.next().is_some(),
        "README.md's first sh block has no `{marker}` comment"
    );
    lines
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or_else(|| panic!("README.md: no command under `{marker}`"))
        .trim()
        .to_string()
}

fn ci_script() -> String {
    std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run")
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let test_command = readme_command(2);
    let ci = ci_script();
    // Last, so that its exit status is CI's (`set -e` ignores a failure in `a && b`).
    let last_command = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'));
    assert_eq!(
        last_command,
        Some(test_command.as_str()),
        ".ci/run does not end with the README's test command:\n{ci}"
    );
    // The packages are installed by the prepare script the README command runs, not
    // by a second copy of that logic in CI.
    assert!(
        !ci.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains("apt-get")),
        ".ci/run installs packages itself instead of through the README's command:\n{ci}"
    );
}

#[test]
fn the_readme_commands_prepare_the_machine_without_sudo() {
    for number in [1, 2] {
        let command = readme_command(number);
        assert!(
            command.starts_with("tests/prepare.sh && "),
            "README command {number} does not start with tests/prepare.sh: {command}"
        );
        assert!(
            !command.split_whitespace().any(|w| w == "sudo"),
            "README command {number} uses sudo (a fresh machine may have none): {command}"
        );
    }
    let prepare = repo_root().join("tests/prepare.sh");
    let mode = std::fs::metadata(&prepare)
        .expect("tests/prepare.sh exists")
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "tests/prepare.sh is not executable (mode {mode:o})"
    );
}

#[test]
fn the_example_command_writes_its_runs_under_target() {
    let command = readme_command(1);
    let runs: Vec<&str> = command
        .split("&&")
        .map(str::trim)
        .filter(|step| step.contains(" -- run "))
        .collect();
    assert!(!runs.is_empty(), "README command 1 runs no task: {command}");
    for step in runs {
        assert!(
            step.contains(" --runs-dir target/"),
            "README command 1 leaves its run folder in the repo root: `{step}`"
        );
    }
}

#[test]
fn every_tapir_variable_ci_sets_is_read_somewhere() {
    let ci = ci_script();
    let names = exported_tapir_variables(&ci);
    for name in names {
        let used = walkdir::WalkDir::new(repo_root().join("src"))
            .into_iter()
            .chain(walkdir::WalkDir::new(repo_root().join("tests")))
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter(|e| !e.path().ends_with("readme.rs"))
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|text| text.contains(&name)));
        assert!(used, ".ci/run sets {name}, which nothing reads");
    }
}

/// The `TAPIR_*` names .ci/run exports.
fn exported_tapir_variables(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|assignment| assignment.split('=').next())
        .filter(|name| name.starts_with("TAPIR_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_pre_commit_hook_validates_the_task_api_files() {
    let hooks = std::fs::read_to_string(repo_root().join(".pre-commit-hooks.yaml"))
        .expect(".pre-commit-hooks.yaml at the repo root");
    let field = |key: &str| {
        hooks
            .lines()
            .find_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
            .unwrap_or_else(|| panic!(".pre-commit-hooks.yaml has no `{key}`"))
            .trim()
            .trim_matches('\'')
            .to_string()
    };
    assert_eq!(field("id:"), "tapir-validate");
    assert_eq!(field("entry:"), "tapir validate");
    assert_eq!(field("language:"), "rust");
    // pre-commit matches `files` (a Python regex; this one is also valid for the regex
    // crate) with re.search against paths relative to the repository root.
    let files = regex::Regex::new(&field("files:")).expect("`files` is a regex");
    for path in [
        "processing-container.json",
        "containers/seg/processing-container.json",
        "task.json",
        "examples/upstream-task.json",
        "tasks/nightly.json",
        "pipeline/tasks/nightly.json",
    ] {
        assert!(files.is_match(path), "the hook skips {path}");
    }
    for path in [
        "package.json",
        "tasks/notes.md",
        "tasks/old/nightly.json",
        "processing-container.json.bak",
        "my-processing-container.json",
    ] {
        assert!(!files.is_match(path), "the hook checks {path}");
    }
}

/// When a package is missing, tests/prepare.sh has apt wait for the dpkg lock (bounded)
/// instead of failing at once when another apt or dpkg holds it, and says so. Run with a
/// PATH where `bwrap` is missing and `apt-get` is a stand-in that records its arguments and
/// "installs" bwrap.
#[test]
fn prepare_waits_for_the_dpkg_lock_when_it_installs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    for system in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let Ok(entries) = std::fs::read_dir(system) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let link = bin.join(&name);
            if name == "bwrap"
                || name == "apt-get"
                || name == "sudo"
                || name == "python3"
                || link.exists()
            {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), link).expect("symlink");
        }
    }
    // tests/setup/python3.sh finds python3 with Jinja2 (a stand-in): only prepare.sh's
    // own packages are missing.
    let python = bin.join("python3");
    std::fs::write(&python, "#!/bin/sh\nexit 0\n").expect("python3 stand-in");
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let log = dir.path().join("apt-get.log");
    let apt_get = bin.join("apt-get");
    std::fs::write(
        &apt_get,
        format!(
            "#!/bin/bash\necho \"$*\" >> '{log}'\n\
             if [[ \" $* \" == *' install '* ]]; then printf '#!/bin/sh\\n' > '{bwrap}'; chmod +x '{bwrap}'; fi\n",
            log = log.display(),
            bwrap = bin.join("bwrap").display(),
        ),
    )
    .expect("apt-get stand-in");
    std::fs::set_permissions(
        &apt_get,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let out = std::process::Command::new(bin.join("bash"))
        .arg(repo_root().join("tests/prepare.sh"))
        .env_clear()
        .env("PATH", &bin)
        .envs(std::env::var_os("DOCKER_HOST").map(|v| ("DOCKER_HOST", v)))
        .output()
        .expect("prepare.sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    // As root the script calls apt-get itself; otherwise there is no sudo in this PATH and
    // it must say what to install instead.
    if nix::unistd::Uid::effective().is_root() {
        assert!(out.status.success(), "{stderr}");
        let calls: Vec<&str> = calls.lines().collect();
        assert_eq!(calls.len(), 2, "update, then install: {calls:?}");
        for call in &calls {
            assert!(
                call.contains("-o DPkg::Lock::Timeout=300"),
                "apt-get waits for the lock: {call}"
            );
        }
        assert!(
            calls[1].contains("install") && calls[1].contains("bubblewrap"),
            "{calls:?}"
        );
        assert!(
            stderr.contains("waiting up to 300s for the dpkg lock"),
            "{stderr}"
        );
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("apt-get install -y bubblewrap"), "{stderr}");
    }
}
