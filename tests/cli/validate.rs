//! `tapir validate` and `tapir schema`.

use std::path::{Path, PathBuf};

use crate::support::{check_snapshot, files_under, fixtures, repo_root, run, tapir};

fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(!files.is_empty(), "no fixtures under {}", dir.display());
    files.sort();
    files
}

/// Every fixture's report is a reviewed snapshot (`<file>.snap`): the exit code and
/// exactly what `tapir validate` printed. Valid fixtures must exit 0, invalid ones 1.
/// Fixtures under `invalid/strict/` hold only warnings and are checked with `--strict`.
#[test]
fn fixture_reports_match_their_snapshots() {
    let root = fixtures();
    let mut failures = Vec::new();
    let mut count = 0;
    for (folder, folder_code) in [("valid", 0), ("invalid", 1)] {
        for file in fixture_files(&root.join(folder)) {
            count += 1;
            let relative = file.strip_prefix(&root).unwrap().to_path_buf();
            // A container-repository fixture (`invalid/<repo>/processing-container.json`
            // with `tasks/*.json`) holds a valid template that its invalid tasks break.
            let expected_code = if relative.components().count() == 3
                && file.ends_with("processing-container.json")
            {
                0
            } else {
                folder_code
            };
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
    let orphans: Vec<_> = files_under(&fixtures())
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
            "checked 9 files: 9 valid, 0 invalid; skipped 1 other JSON file that is neither kind"
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

/// The file of every annotation printed by `--format github`.
fn annotated_files(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" file=")?.1.split([',', ':']).next())
        .collect()
}

#[test]
fn github_paths_are_relative_to_the_workspace_without_a_leading_dot() {
    // GitHub only attaches an annotation to a file named relative to the checkout.
    let out = run(tapir(
        &fixtures(),
        [
            "validate",
            "--format",
            "github",
            "./invalid/misspelt-key.task.json",
        ],
    )
    .env("GITHUB_WORKSPACE", repo_root()));
    assert_eq!(out.code, 1, "{}", out.stdout);
    let files = annotated_files(&out.stdout);
    assert!(!files.is_empty(), "{}", out.stdout);
    assert!(
        files
            .iter()
            .all(|f| *f == "tests/fixtures/invalid/misspelt-key.task.json"),
        "{}",
        out.stdout
    );

    // An absolute path, and a folder searched from `.`, the same way.
    let absolute = fixtures().join("invalid/misspelt-key.task.json");
    let out = run(tapir(&repo_root(), ["validate", "--format", "github"])
        .arg(&absolute)
        .env("GITHUB_WORKSPACE", repo_root()));
    assert!(
        annotated_files(&out.stdout)
            .iter()
            .all(|f| *f == "tests/fixtures/invalid/misspelt-key.task.json"),
        "{}",
        out.stdout
    );
    let out = run(tapir(
        &fixtures().join("invalid"),
        ["validate", "--format", "github", "."],
    )
    .env("GITHUB_WORKSPACE", fixtures()));
    let files = annotated_files(&out.stdout);
    assert!(
        files.contains(&"invalid/misspelt-key.task.json"),
        "{}",
        out.stdout
    );
    assert!(
        files.iter().all(|f| f.starts_with("invalid/")),
        "{}",
        out.stdout
    );
}

/// The annotation for a folder with no Task API file names it like a file is named.
#[test]
fn github_names_an_empty_folder_relative_to_the_workspace_too() {
    let workspace = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(workspace.path().join("repo/empty")).unwrap();
    let out = run(tapir(
        &workspace.path().join("repo"),
        ["validate", "--format", "github", "./empty"],
    )
    .env("GITHUB_WORKSPACE", workspace.path()));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        annotated_files(&out.stdout),
        ["repo/empty"],
        "{}",
        out.stdout
    );
}

#[test]
fn github_paths_without_a_workspace_are_relative_to_the_current_folder() {
    let out = run(&mut tapir(
        &fixtures(),
        [
            "validate",
            "--format",
            "github",
            "./invalid/misspelt-key.task.json",
        ],
    ));
    let files = annotated_files(&out.stdout);
    assert!(!files.is_empty(), "{}", out.stdout);
    assert!(
        files.iter().all(|f| *f == "invalid/misspelt-key.task.json"),
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

/// A task in a container repository (`tasks/*.json` beside `processing-container.json`)
/// is checked against the template it names, without any image; positions are in the
/// task file and the note points at the template in the sibling file.
#[test]
fn container_repo_tasks_are_checked_against_the_sibling_template() {
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "--format", "json", "invalid/container-repo"],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let findings: Vec<&serde_json::Value> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["file"].as_str().unwrap().ends_with("typos-task.json"))
        .flat_map(|f| f["findings"].as_array().unwrap())
        .collect();
    let codes: Vec<&str> = findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "unbound-channel",
            "unknown-channel",
            "unknown-env",
            "env-type",
            "not-adjustable",
            "env-choice"
        ],
        "{findings:#?}"
    );
    let env = findings
        .iter()
        .find(|f| f["code"] == "unknown-env")
        .unwrap();
    assert_eq!(
        (env["line"].as_u64(), env["column"].as_u64()),
        (Some(8), Some(14))
    );
    assert_eq!(env["severity"], "warning");
    assert_eq!(env["fix"], "did you mean `MODE`?");
    let not_adjustable = findings
        .iter()
        .find(|f| f["code"] == "not-adjustable")
        .unwrap();
    assert_eq!(
        not_adjustable["related"]["file"],
        "invalid/container-repo/processing-container.json"
    );
    assert_eq!(not_adjustable["related"]["line"], 13);

    let human = run(&mut tapir(
        &fixtures(),
        [
            "validate",
            "invalid/container-repo/tasks/unknown-template-task.json",
        ],
    ));
    assert_eq!(human.code, 1, "{}", human.stdout);
    assert!(
        human.stdout.contains("error[unknown-template]")
            && human.stdout.contains("fix: did you mean `process`?")
            && human.stdout.contains(
                "note: its templates: invalid/container-repo/processing-container.json:4:3"
            ),
        "{}",
        human.stdout
    );
}

/// Without a processing-container.json beside it, a template identifier is only known
/// to the image: no finding. One in the task's own folder counts as a sibling too.
#[test]
fn a_template_identifier_without_a_sibling_is_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let task =
        std::fs::read_to_string(fixtures().join("invalid/container-repo/tasks/typos-task.json"))
            .unwrap();
    std::fs::write(dir.path().join("task.json"), &task).unwrap();
    let out = run(&mut tapir(dir.path(), ["validate", "task.json"]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    std::fs::copy(
        fixtures().join("invalid/container-repo/processing-container.json"),
        dir.path().join("processing-container.json"),
    )
    .unwrap();
    let out = run(&mut tapir(dir.path(), ["validate", "task.json"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("error[not-adjustable]")
            && out
                .stdout
                .contains("note: declared here: processing-container.json:13:9"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_folder_without_task_api_files_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/package.json"), "{\"name\": \"x\"}").unwrap();
    let out = run(&mut tapir(dir.path(), ["validate", "conf"]));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("no processing-container.json or task.json files found under conf"),
        "{}",
        out.stderr
    );
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["validate", "--format", "json", "empty"],
    ));
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stdout.contains("files found under empty"),
        "{}",
        out.stdout
    );
}

/// Pre-commit hooks pass every staged JSON file by name; `--skip-unknown` skips the
/// ones that are neither kind, as a folder search does.
#[test]
fn skip_unknown_skips_named_files_of_neither_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".vscode")).unwrap();
    std::fs::write(
        dir.path().join(".vscode/settings.json"),
        "{\"editor.tabSize\": 2}",
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("valid/docs-task.json"),
        dir.path().join("task.json"),
    )
    .unwrap();
    let args = ["validate", ".vscode/settings.json", "task.json"];
    let out = run(&mut tapir(dir.path(), args));
    assert_eq!(
        out.code, 1,
        "without the flag it is reported: {}",
        out.stdout
    );
    assert!(out.stdout.contains("error[unknown-kind]"), "{}", out.stdout);
    let out = run(&mut tapir(
        dir.path(),
        [
            "validate",
            "--skip-unknown",
            ".vscode/settings.json",
            "task.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "checked 1 file: 1 valid, 0 invalid; skipped 1 other JSON file that is neither kind"
        ),
        "{}",
        out.stdout
    );
}

/// A dry run of a task with an inline template, which needs the image only as a name.
fn dry_run(dir: &std::path::Path, extra: serde_json::Value) -> crate::support::Run {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::write(dir.join("in/a.txt"), vec![b'x'; 1000]).unwrap();
    crate::run::inline_task(dir, "true", extra);
    run(&mut tapir(
        dir,
        ["run", "--dry-run", "--format", "json", "task.json"],
    ))
}

/// What validate accepts, run accepts: `"scale_factor": 2.0` (pydantic's int takes it).
#[test]
fn run_dry_run_accepts_a_whole_number_float_scale_factor() {
    let dir = tempfile::tempdir().unwrap();
    let out = dry_run(
        dir.path(),
        serde_json::json!({
            "template": {
                "inputs": [{"name": "in", "mounted_path": "/in",
                    "scale_rule": {"scale_factor": 2.0, "type": "limit", "mode": "sum"}}],
            },
            "inputs": [{"name": "in", "volume_source": {"host_path": "./in"}}],
        }),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("internal"), "{}", out.stderr);
}

/// `null` optional fields (as the reference's own dumps write them), a `B` memory
/// suffix and a look-ahead in target_regex reach a dry-run plan.
#[test]
fn run_dry_run_accepts_nulls_bytes_suffix_and_look_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let out = dry_run(
        dir.path(),
        serde_json::json!({
            "template": {
                "inputs": [{"name": "in", "mounted_path": "/in", "description": null,
                    "scale_rule": {"scale_factor": 2, "type": "limit", "mode": "sum",
                        "target_dir": null, "target_regex": "(?!b).*", "target_glob": null}}],
                "resources": {"limits": {"memory": "100000000B"}, "requests": null},
            },
            "inputs": [{"name": "in", "volume_source": {"host_path": "./in"}, "scale_rule": null}],
            "env": null,
            "command": null,
            "config": null,
        }),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        plan.to_string().contains("100000000"),
        "memory limit in the plan: {plan:#}"
    );
}

/// A number the schema calls an integer but tapir cannot hold (`1e30`) is refused by
/// `validate` at its place, not passed as valid and then an "internal" error in `run`.
#[test]
fn an_integer_too_large_to_use_is_out_of_range_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let template = r#"{"identifier": "t", "description": "d", "env": [], "outputs": [],
        "inputs": [{"name": "in", "mounted_path": "/in"}], "command": ["true"]}"#;
    let task = format!(
        r#"{{"name": "x", "image": "i", "taskTemplate": {template},
"inputs": [{{"name": "in", "volume_source": {{"host_path": "."}},
  "scale_rule": {{"scale_factor": 1e30, "type": "limit", "mode": "sum"}}}}]}}"#
    );
    std::fs::write(dir.path().join("huge.task.json"), task).unwrap();
    let container = format!(r#"{{"templates": [{template}]}}"#).replace(
        r#""mounted_path": "/in"}"#,
        r#""mounted_path": "/in", "scale_rule": {"scale_factor": -1e30, "type": "limit", "mode": "sum"}}"#,
    );
    std::fs::write(dir.path().join("processing-container.json"), container).unwrap();
    for (file, at) in [
        ("huge.task.json", "huge.task.json:4:34"),
        ("processing-container.json", "processing-container.json:2:"),
    ] {
        let out = run(&mut tapir(dir.path(), ["validate", file]));
        assert_eq!(out.code, 1, "{file}: {}", out.stdout);
        assert!(
            out.stdout.contains("error[out-of-range]") && out.stdout.contains(at),
            "{file}: {}",
            out.stdout
        );
    }
}

/// No argument, variable or path can hold a NUL character: any string with one is an
/// error at the character, in task files and processing-container.json files alike.
#[test]
fn a_nul_character_in_any_string_is_an_error_at_the_character() {
    let dir = tempfile::tempdir().unwrap();
    let template = r#"{"identifier": "t", "description": "d", "inputs": [], "outputs": [],
 "env": [{"name": "MODE", "value": "a\u0000"}], "command": ["sh", "-c", "echo \u0000"]}"#;
    std::fs::write(
        dir.path().join("nul.task.json"),
        format!("{{\"name\": \"x\\u0000\", \"image\": \"i\",\n \"taskTemplate\": {template}}}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("processing-container.json"),
        format!("{{\"templates\": [{template}]}}"),
    )
    .unwrap();
    let out = run(&mut tapir(dir.path(), ["validate", "nul.task.json"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    // The name on line 1; the env value and the command argument on line 3.
    for at in ["nul.task.json:1:10", "nul.task.json:3:"] {
        assert!(
            out.stdout.contains(&format!(" --> {at}")),
            "{at}: {}",
            out.stdout
        );
    }
    assert_eq!(
        out.stdout.matches("error[nul-character]").count(),
        3,
        "{}",
        out.stdout
    );
    let out = run(&mut tapir(
        dir.path(),
        ["validate", "processing-container.json"],
    ));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("error[nul-character]").count(),
        2,
        "{}",
        out.stdout
    );
}

/// Secret values (by `is_secret_name`: `DB_PASSWORD`, `API_KEY`, `registryPassword`, …)
/// appear in no snippet, message or fix of `validate` or `pipeline validate`, in any
/// format, even when a finding sits on their line or on the value itself.
#[test]
fn secret_values_appear_in_no_snippet_or_message() {
    let secrets = ["hunter2", "sk-live-4711", "tok-0815", "pw-1234", "987654"];
    for format in ["human", "json", "github"] {
        let out = run(&mut tapir(
            &fixtures(),
            [
                "validate",
                "--format",
                format,
                "invalid/secret-values.processing-container.json",
            ],
        ));
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        // The findings are there (the non-secret value is shown) …
        assert!(out.stdout.contains("API_KEY"), "{format}: {}", out.stdout);
        assert!(
            out.stdout.contains("\\\"fast\\\"") || out.stdout.contains("\"fast\""),
            "{format}: {}",
            out.stdout
        );
        // … the secrets are not.
        for secret in secrets {
            assert!(
                !out.stdout.contains(secret),
                "{format}: {secret} in {}",
                out.stdout
            );
            assert!(
                !out.stderr.contains(secret),
                "{format}: {secret} in {}",
                out.stderr
            );
        }
        let out = run(&mut tapir(
            &fixtures().join("pipeline/invalid"),
            [
                "pipeline",
                "validate",
                "--format",
                format,
                "secret-lines.pipeline.json",
            ],
        ));
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("max_retires"),
            "{format}: {}",
            out.stdout
        );
        for secret in secrets {
            assert!(
                !out.stdout.contains(secret),
                "{format}: {secret} in {}",
                out.stdout
            );
        }
    }
}

/// `mounted_path: "/"` (and other paths no engine can mount) is refused by `validate` and
/// by the dry run, at its position, instead of failing only in the engine.
#[test]
fn an_unmountable_mounted_path_is_refused_before_the_engine() {
    let out = run(&mut tapir(
        &fixtures(),
        ["validate", "invalid/root-mount.processing-container.json"],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    for (line, column) in [(9, 48), (10, 42), (12, 43)] {
        assert!(
            out.stdout.contains(&format!(
                "invalid/root-mount.processing-container.json:{line}:{column}"
            )),
            "{line}:{column}: {}",
            out.stdout
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dry_run(
        dir.path(),
        serde_json::json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": "./out"}}],
        }),
    );
    assert_eq!(out.code, 125, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("error[unmountable]")
            && out
                .stderr
                .contains("$.taskTemplate.outputs[0].mounted_path"),
        "{}",
        out.stderr
    );
}

/// A one-line task file with `keys` unknown keys (a generated or minified file).
fn many_unknown_keys(dir: &std::path::Path, keys: usize) -> std::path::PathBuf {
    let mut text = String::from(r#"{"name":"x","image":"i","taskTemplate":"t""#);
    for i in 0..keys {
        text.push_str(&format!(r#","unknown{i:05}":0"#));
    }
    text.push('}');
    let path = dir.join(format!("keys{keys}.task.json"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Thousands of findings on one long line: the time grows linearly (four times the keys
/// take about four times as long, where it was sixteen), and past 50 findings of one
/// kind the rest are summarised in one line.
#[test]
fn many_findings_on_one_line_take_linear_time_and_are_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let time = |keys: usize| {
        let path = many_unknown_keys(dir.path(), keys);
        (0..2)
            .map(|_| {
                let started = std::time::Instant::now();
                let out = run(&mut tapir(
                    dir.path(),
                    ["validate".as_ref(), path.as_os_str()],
                ));
                assert_eq!(out.code, 0, "{}", out.stderr);
                assert!(
                    out.stdout.contains(&format!(
                        "… and {} more unknown keys",
                        match keys {
                            5_000 => "4,950",
                            _ => "19,950",
                        }
                    )),
                    "{}",
                    &out.stdout[out.stdout.len().saturating_sub(500)..]
                );
                assert_eq!(out.stdout.matches("warning[unknown-key]").count(), 50);
                started.elapsed()
            })
            .min()
            .unwrap()
    };
    let small = time(5_000);
    let large = time(20_000);
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    assert!(
        ratio < 8.0,
        "4× the findings took {ratio:.1}× as long ({small:?} → {large:?}): not linear"
    );
}

/// The processing-container.json of Kaapana's layout (`files/`, as `COPY
/// files/processing-container.json` in the guide) is found, `--container-file` names one
/// anywhere, and a task whose template could not be read is told so in a note.
#[test]
fn a_task_is_checked_against_files_processing_container_or_container_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("repo/files")).unwrap();
    std::fs::create_dir_all(d.join("elsewhere")).unwrap();
    let pc = std::fs::read_to_string(
        fixtures().join("valid/files-layout/files/processing-container.json"),
    )
    .unwrap();
    std::fs::write(d.join("repo/files/processing-container.json"), &pc).unwrap();
    std::fs::write(d.join("elsewhere/pc.json"), &pc).unwrap();
    let task = r#"{"name": "t", "image": "i", "taskTemplate": "process",
        "inputs": [{"name": "inn", "volume_source": {"host_path": "."}}]}"#;
    std::fs::write(d.join("repo/task.json"), task).unwrap();
    std::fs::write(d.join("elsewhere/task.json"), task).unwrap();

    let out = run(&mut tapir(d, ["validate", "repo/task.json"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("error[unknown-channel]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("did you mean `in`?"), "{}", out.stdout);

    let out = run(&mut tapir(d, ["validate", "elsewhere/task.json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("note[unchecked-template]: template `process` was not checked")
            && out.stdout.contains("--container-file"),
        "{}",
        out.stdout
    );
    // A note is not a problem: --strict does not fail on it.
    let out = run(&mut tapir(
        d,
        ["validate", "--strict", "elsewhere/task.json"],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    let out = run(&mut tapir(
        d,
        [
            "validate",
            "--container-file",
            "elsewhere/pc.json",
            "elsewhere/task.json",
        ],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("error[unknown-channel]"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("unchecked-template"), "{}", out.stdout);
}
