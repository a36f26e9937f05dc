//! `tapir validate` and `tapir schema`.

use std::path::{Path, PathBuf};

use crate::support::{check_snapshot, fixtures, repo_root, run, tapir};

fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("fixture folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every fixture's report is a reviewed snapshot (`<file>.snap`): the exit code and
/// exactly what `tapir validate` printed. Valid fixtures must exit 0, invalid ones 1.
/// Fixtures under `invalid/strict/` hold only warnings and are checked with `--strict`.
#[test]
fn fixture_reports_match_their_snapshots() {
    let root = fixtures();
    let mut failures = Vec::new();
    let mut count = 0;
    for (folder, expected_code) in [("valid", 0), ("invalid", 1)] {
        for file in fixture_files(&root.join(folder)) {
            count += 1;
            let relative = file.strip_prefix(&root).unwrap().to_path_buf();
            let strict = relative.starts_with("invalid/strict");
            let mut args = vec!["validate".to_string()];
            if strict {
                args.push("--strict".into());
            }
            args.push(relative.display().to_string());
            let out = run(&mut tapir(&root, &args));
            if out.code != expected_code {
                failures.push(format!(
                    "{}: exit {} (expected {expected_code})\n{}{}",
                    relative.display(),
                    out.code,
                    out.stdout,
                    out.stderr
                ));
            }
            if !out.stderr.is_empty() {
                failures.push(format!(
                    "{}: unexpected stderr: {}",
                    relative.display(),
                    out.stderr
                ));
            }
            let snapshot = format!("exit: {}\n{}", out.code, out.stdout);
            if let Some(diff) = check_snapshot(&file.with_extension("json.snap"), &snapshot) {
                failures.push(diff);
            }
        }
    }
    assert!(count >= 30, "expected the fixture set, found {count} files");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// No snapshot without its fixture (a renamed fixture must not leave a stale report).
#[test]
fn every_snapshot_has_a_fixture() {
    let orphans: Vec<_> = walk(&fixtures())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "snap") && !p.with_extension("").exists())
        .collect();
    assert!(
        orphans.is_empty(),
        "snapshots without a fixture: {orphans:?}"
    );
}

/// Without `--strict` the warnings-only fixtures are valid (exit 0) and still reported.
#[test]
fn warnings_do_not_fail_without_strict() {
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "invalid/strict/unknown-keys.task.json"],
    ));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("warning[unknown-key]: unknown key `priority`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("keys allowed here: name, value"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_bundled_examples_validate() {
    let out = run(&mut tapir(
        &repo_root(),
        ["validate", "--strict", "examples"],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(
            "checked 7 files: 7 valid, 0 invalid; skipped 3 other JSON files that are neither kind"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn a_folder_is_searched_for_both_kinds_skipping_build_folders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["a/b", "target", ".git", "node_modules/x"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let pc =
        std::fs::read_to_string(fixtures().join("valid/docs-processing-container.json")).unwrap();
    let task = std::fs::read_to_string(fixtures().join("valid/docs-task.json")).unwrap();
    std::fs::write(d.join("a/b/processing-container.json"), &pc).unwrap();
    std::fs::write(d.join("a/run.json"), &task).unwrap(); // kind from content
    std::fs::write(d.join("package.json"), "{\"name\": \"x\"}").unwrap(); // neither: skipped
    std::fs::write(d.join("target/task.json"), "broken").unwrap();
    std::fs::write(d.join(".git/task.json"), "broken").unwrap();
    std::fs::write(d.join("node_modules/x/task.json"), "broken").unwrap();
    let out = run(&mut tapir(d, ["validate", "."]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("valid ./a/b/processing-container.json (processing-container)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("valid ./a/run.json (task)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "checked 2 files: 2 valid, 0 invalid; skipped 1 other JSON file that is neither kind"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn every_problem_is_reported_in_one_pass_across_files() {
    let out = run(&mut tapir(
        &fixtures(),
        [
            "validate",
            "valid/docs-task.json",
            "invalid/duplicate-names.processing-container.json",
            "invalid/quantities.task.json",
        ],
    ));
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("checked 3 files: 1 valid, 2 invalid"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches("error[").count(), 7, "{}", out.stdout);
}

#[test]
fn schema_flag_forces_the_kind() {
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "--schema", "pc", "valid/docs-task.json"],
    ));
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("the file is missing the required key `templates`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("(processing-container)"),
        "{}",
        out.stdout
    );
}

#[test]
fn missing_and_unreadable_paths_exit_2_with_a_message() {
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "valid/docs-task.json", "no/such/file.json"],
    ));
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("error: cannot read no/such/file.json: No such file or directory"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("valid valid/docs-task.json"),
        "the readable file is still checked: {}",
        out.stdout
    );
    // A path through a file cannot be read either (root can read any mode, so not chmod).
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "valid/docs-task.json/x.json"],
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("Not a directory"), "{}", out.stderr);
}

#[test]
fn a_100_mb_file_is_refused_quickly_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("task.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(100 * 1024 * 1024).unwrap();
    let out = run(&mut tapir(dir.path(), ["validate", "task.json"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("error[too-large]: file is 100.0 MiB"),
        "{}",
        out.stdout
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&mut tapir(&fixtures(), ["validate"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("required"), "{}", out.stderr);
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "--schema", "pipeline", "x.json"],
    ));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("possible values: pc, task"),
        "{}",
        out.stderr
    );
}

#[test]
fn json_format_is_a_stable_list_of_findings() {
    let out = run(&mut tapir(
        &fixtures(),
        [
            "validate",
            "--format",
            "json",
            "invalid/misspelt-key.task.json",
            "valid/docs-task.json",
        ],
    ));
    assert_eq!(out.code, 1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON output");
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["summary"]["files"], 2);
    assert_eq!(report["summary"]["invalid"], 1);
    let first = &report["files"][0]["findings"][0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["code"], "misspelt-key");
    assert_eq!(first["line"], 4);
    assert_eq!(first["column"], 3);
    assert_eq!(first["pointer"], "/taskTempalte");
    assert_eq!(first["fix"], "rename `taskTempalte` to `taskTemplate`");
    assert_eq!(report["files"][1]["valid"], true);
}

#[test]
fn github_format_gives_workflow_annotations() {
    let out = run(&mut tapir(
        &fixtures(),
        [
            "validate",
            "--format",
            "github",
            "invalid/misspelt-key.task.json",
        ],
    ));
    assert_eq!(out.code, 1);
    let first = out.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("::error file=invalid/misspelt-key.task.json,line=4,col=3,title=tapir misspelt-key::`taskTemplate` is required but missing"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("::warning file=invalid/misspelt-key.task.json,line=5,col=3"),
        "{}",
        out.stdout
    );
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "invalid/misspelt-key.task.json"],
    ));
    assert!(!out.stdout.contains('\x1b'), "no colour into a pipe");
    let out = run(&mut tapir(
        &fixtures(),
        [
            "--color",
            "always",
            "validate",
            "invalid/misspelt-key.task.json",
        ],
    ));
    assert!(
        out.stdout.contains("\x1b[1;31merror[misspelt-key]"),
        "{}",
        out.stdout
    );
}

#[test]
fn secrets_never_appear_in_reports() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("task.json"),
        r#"{"name": "x", "image": "y", "taskTemplate": "z", "config": {"type": "k8s", "registryPassword": "hunter2", "registryUsername": 5}}"#,
    )
    .unwrap();
    for format in ["human", "json", "github"] {
        let out = run(&mut tapir(
            dir.path(),
            ["validate", "--format", format, "task.json"],
        ));
        assert_eq!(out.code, 1, "{format}");
        assert!(
            out.stdout.contains("literal-secret"),
            "{format}: {}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"),
            "{format}: {}",
            out.stdout
        );
    }
}

#[test]
fn schema_command_prints_the_bundled_schemas() {
    for (kind, title) in [("pc", "processing-container.json"), ("task", "task.json")] {
        let out = run(&mut tapir(&fixtures(), ["schema", kind]));
        assert_eq!(out.code, 0);
        let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(schema["title"], title);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}
