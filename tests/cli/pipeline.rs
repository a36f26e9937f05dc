//! `tapir pipeline validate` and `tapir schema pipeline`.

use std::path::{Path, PathBuf};

use crate::support::{check_snapshot, fixtures, repo_root, run, tapir};

fn pipeline_fixtures(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".pipeline.json"))
        .collect();
    files.sort();
    files
}

/// Every pipeline fixture's report is a reviewed snapshot (`<file>.snap`): the exit code
/// and exactly what `tapir pipeline validate` printed, run in the fixture's folder. A
/// `<name>.conf.json` next to `<name>.pipeline.json` is passed as `--conf`. Valid
/// fixtures must exit 0, invalid ones 1.
#[test]
fn pipeline_fixture_reports_match_their_snapshots() {
    let root = fixtures().join("pipeline");
    let mut failures = Vec::new();
    let mut count = 0;
    for (folder, expected_code) in [("valid", 0), ("invalid", 1)] {
        let dir = root.join(folder);
        for file in pipeline_fixtures(&dir) {
            count += 1;
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let mut args = vec!["pipeline".to_string(), "validate".into(), name.clone()];
            let conf = name.replace(".pipeline.json", ".conf.json");
            if dir.join(&conf).exists() {
                args.extend(["--conf".into(), conf]);
            }
            let out = run(&mut tapir(&dir, &args));
            if out.code != expected_code {
                failures.push(format!(
                    "{folder}/{name}: exit {} (expected {expected_code})\n{}{}",
                    out.code, out.stdout, out.stderr
                ));
            }
            if !out.stderr.is_empty() {
                failures.push(format!(
                    "{folder}/{name}: unexpected stderr: {}",
                    out.stderr
                ));
            }
            let snapshot = format!("exit: {}\n{}", out.code, out.stdout);
            if let Some(diff) = check_snapshot(&file.with_extension("json.snap"), &snapshot) {
                failures.push(diff);
            }
        }
    }
    assert!(
        count >= 11,
        "expected the pipeline fixture set, found {count} files"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_example_pipelines_validate_with_their_plan() {
    let out = run(&mut tapir(
        &repo_root(),
        [
            "pipeline",
            "validate",
            "examples/pipeline/pipeline.json",
            "--conf",
            "examples/pipeline/conf.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for expected in [
        "level 1: get-data\n  level 2: process-data\n  level 3: upload-data\n",
        "in  inputs ← get-data.downloads: <run>/get-data/downloads",
        "env CASE=upper (conf)",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in\n{}",
            out.stdout
        );
    }
    let out = run(&mut tapir(
        &repo_root(),
        [
            "pipeline",
            "validate",
            "examples/pipeline/ccat-pipeline.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for expected in [
        "env WORKFLOW_OUTPUT_DIR=/workflow/output/ (tapir)",
        "manifest.json sub_group_key: \"source=NGC253|line=CO43\"",
        "in  /workflow/input ← examples/pipeline/ccat-raw\n",
        "manifest.json input roles: [{\"pattern\":\"hot_load*.fits\",\"role\":\"calibration\"}] (first match; others: science)",
        "manifest.json environment: {\"influxdb_token\":\"****\",\"influxdb_url\":\"http://127.0.0.1:8086\"}",
    ] {
        assert!(
            out.stdout.contains(expected),
            "{expected:?} in\n{}",
            out.stdout
        );
    }
    // The JSON plan masks the environment's secret too.
    let out = run(&mut tapir(
        &repo_root(),
        [
            "pipeline",
            "validate",
            "--format",
            "json",
            "examples/pipeline/ccat-pipeline.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["plan"]["environment"]["influxdb_token"], "****",
        "{report:#}"
    );
    assert_eq!(
        report["plan"]["input_roles"][0]["role"], "calibration",
        "{report:#}"
    );
    assert!(!out.stdout.contains("example-token-not-for-records"));
}

/// The JSON report: findings per file with positions, and the plan of a valid pipeline.
#[test]
fn json_format_has_findings_and_plan() {
    let dir = fixtures().join("pipeline");
    let out = run(&mut tapir(
        &dir,
        [
            "pipeline",
            "validate",
            "--format",
            "json",
            "valid/fan-out-fan-in.pipeline.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["valid"], true);
    assert_eq!(
        report["plan"]["levels"],
        serde_json::json!([["split"], ["left", "right"], ["join"]])
    );
    let join = &report["plan"]["tasks"][3];
    assert_eq!(join["id"], "join");
    assert_eq!(join["depends_on"][0]["can_fail"], true);
    assert_eq!(join["folders"][0]["from"], "left.out");
    assert_eq!(join["folders"][0]["path"], "left/out");
    assert_eq!(join["execution"]["max_retries"], 2);

    let out = run(&mut tapir(
        &dir,
        [
            "pipeline",
            "validate",
            "--format",
            "json",
            "invalid/cycle.pipeline.json",
        ],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(report["plan"], serde_json::Value::Null);
    let finding = &report["files"][0]["findings"][0];
    assert_eq!(finding["code"], "cycle");
    assert_eq!(
        (finding["line"].as_u64(), finding["column"].as_u64()),
        (Some(5), Some(86))
    );
}

#[test]
fn github_format_annotates_every_file() {
    let dir = fixtures().join("pipeline/invalid");
    let out = run(&mut tapir(
        &dir,
        [
            "pipeline",
            "validate",
            "--format",
            "github",
            "task-files.pipeline.json",
        ],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("::error file=task-files.pipeline.json,line=4,col=31,"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("::error file=../tasks/broken.task.json,line=4,col=3,"),
        "{}",
        out.stdout
    );
}

/// A pipeline or conf file that cannot be read is a usage/IO error (exit 2), like
/// `validate`; a missing *task* file is a finding in the pipeline (exit 1).
#[test]
fn unreadable_pipeline_or_conf_exits_2() {
    let dir = fixtures().join("pipeline/valid");
    let out = run(&mut tapir(
        &dir,
        ["pipeline", "validate", "nowhere.pipeline.json"],
    ));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("nowhere.pipeline.json"),
        "{}",
        out.stderr
    );
    let out = run(&mut tapir(
        &dir,
        [
            "pipeline",
            "validate",
            "ccat-two-steps.pipeline.json",
            "--conf",
            "nowhere.conf.json",
        ],
    ));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("nowhere.conf.json"), "{}", out.stderr);
}

#[test]
fn schema_pipeline_prints_the_bundled_schemas() {
    for (kind, file) in [
        ("pipeline", "schemas/pipeline.schema.json"),
        ("pipeline-conf", "schemas/pipeline-conf.schema.json"),
    ] {
        let out = run(&mut tapir(&repo_root(), ["schema", kind]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let bundled = std::fs::read_to_string(repo_root().join(file)).unwrap();
        assert_eq!(out.stdout, bundled, "{kind}");
    }
}

/// `tapir validate` recognises a pipeline file, named or found in a folder, and checks
/// it as `pipeline validate` does (with the task files it uses), instead of skipping it.
#[test]
fn plain_validate_checks_pipeline_files_as_pipelines() {
    let out = run(&mut tapir(
        &repo_root(),
        ["validate", "examples/pipeline/pipeline.json"],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("valid examples/pipeline/pipeline.json (pipeline)"),
        "{}",
        out.stdout
    );
    let out = run(&mut tapir(
        &fixtures().join("pipeline"),
        ["validate", "invalid"],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("invalid invalid/unknown-keys.pipeline.json (pipeline): 5 errors"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("error[cycle]"), "{}", out.stdout);
}

/// Values of secret-looking variables (`*TOKEN*`, `*PASSWORD*`, …) appear neither in a
/// finding's message nor in the plan, in any format.
#[test]
fn secrets_never_appear_in_findings_or_plan() {
    let dir = fixtures().join("pipeline");
    for format in ["human", "json", "github"] {
        let out = run(&mut tapir(
            &dir,
            [
                "pipeline",
                "validate",
                "--format",
                format,
                "invalid/conf-unknown-task.pipeline.json",
                "--conf",
                "invalid/conf-unknown-task.conf.json",
            ],
        ));
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("SERVICE_TOKEN"),
            "{format}: {}",
            out.stdout
        );
        assert!(!out.stdout.contains("s3cr3t"), "{format}: {}", out.stdout);
        let out = run(&mut tapir(
            &dir,
            [
                "pipeline",
                "validate",
                "--format",
                format,
                "valid/kaapana-three-tasks.pipeline.json",
                "--conf",
                "valid/kaapana-three-tasks.conf.json",
            ],
        ));
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        assert!(!out.stdout.contains("12345"), "{format}: {}", out.stdout);
    }
}

/// `--profile` replaces the file's `profile` (the issue's `--profile ccat`).
#[test]
fn the_profile_flag_replaces_the_files_profile() {
    let root = repo_root();
    let as_kaapana = run(&mut tapir(
        &root,
        [
            "pipeline",
            "validate",
            "examples/pipeline/ccat-pipeline.json",
            "--profile",
            "kaapana",
        ],
    ));
    assert_eq!(as_kaapana.code, 0, "{}", as_kaapana.stderr);
    assert!(
        as_kaapana.stdout.contains("profile kaapana"),
        "{}",
        as_kaapana.stdout
    );
    assert!(
        as_kaapana.stdout.contains("warning[ccat-only]")
            && as_kaapana.stdout.contains("--profile ccat"),
        "{}",
        as_kaapana.stdout
    );

    let as_ccat = run(&mut tapir(
        &root,
        [
            "pipeline",
            "validate",
            "examples/pipeline/pipeline.json",
            "--profile",
            "ccat",
        ],
    ));
    assert_eq!(as_ccat.code, 1, "{}", as_ccat.stderr);
    assert!(
        as_ccat.stdout.contains("error[ccat-iochannel-maps]"),
        "{}",
        as_ccat.stdout
    );

    let bad = run(&mut tapir(
        &root,
        [
            "pipeline",
            "run",
            "examples/pipeline/pipeline.json",
            "--profile",
            "slurm",
        ],
    ));
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

/// `pipeline validate --format github` names files as `validate --format github` does:
/// relative to the workspace, without `./` or `..`, or GitHub attaches nothing.
#[test]
fn github_annotations_name_files_relative_to_the_workspace() {
    let pipeline = fixtures().join("pipeline");
    let out = run(tapir(
        &pipeline.join("invalid"),
        [
            "pipeline",
            "validate",
            "--format",
            "github",
            "./task-files.pipeline.json",
        ],
    )
    .env("GITHUB_WORKSPACE", &pipeline));
    assert_eq!(out.code, 1, "{}", out.stdout);
    let files: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(" file=")?.1.split([',', ':']).next())
        .collect();
    assert!(
        files.contains(&"invalid/task-files.pipeline.json"),
        "{}",
        out.stdout
    );
    assert!(files.contains(&"tasks/broken.task.json"), "{}", out.stdout);
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with("./") && !f.contains("..")),
        "{}",
        out.stdout
    );
}

/// A number the schema's `integer` accepts but tapir cannot hold (beyond 64 bits) is an
/// out-of-range finding at its position, not an internal error without one.
#[test]
fn a_max_exec_time_too_large_is_out_of_range_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.json"),
        concat!(
            "{\"name\": \"p\",\n",
            " \"execution_profile\": {\"max_exec_time\": 99999999999999999999999},\n",
            " \"tasks\": [{\"id\": \"a\", \"task\": \"a.task.json\",\n",
            "   \"execution_profile\": {\"max_exec_time\": 18446744073709551616}}]}\n"
        ),
    )
    .unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["pipeline", "validate", "pipeline.json"],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let report = format!("{}{}", out.stdout, out.stderr);
    assert!(!report.contains("internal"), "{report}");
    assert!(report.contains("pipeline.json:2:41"), "{report}");
    assert!(report.contains("pipeline.json:4:43"), "{report}");
    assert!(report.contains("error[out-of-range]"), "{report}");
}

/// A pipeline `task` path that is not JSON (`"task": "/etc/shadow"`) is reported without
/// echoing any of its content: its first line may be a password hash.
#[test]
fn a_task_path_that_is_not_json_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shadow"),
        "root:$6$s4lt$h4shh4shh4sh:19000:0:99999:7:::\nuser:x:1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.pipeline.json"),
        r#"{"name": "p", "tasks": [{"id": "a", "task": "shadow"}]}"#,
    )
    .unwrap();
    for format in ["human", "json", "github"] {
        let out = run(&mut tapir(
            dir.path(),
            [
                "pipeline",
                "validate",
                "--format",
                format,
                "p.pipeline.json",
            ],
        ));
        assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("not-json"), "{format}: {}", out.stdout);
        assert!(!out.stdout.contains("h4sh"), "{format}: {}", out.stdout);
        assert!(!out.stdout.contains("root:"), "{format}: {}", out.stdout);
    }
}

/// A relative apptainer image path (a sandbox folder beside the task file) resolves
/// against the task file's folder in a pipeline too, as it does for `tapir run`: the plan
/// shows where it is, and the pipeline runs. A `.sif` path that does not exist there is
/// an error before anything starts.
#[test]
fn a_relative_image_path_resolves_against_the_task_file_in_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tasks")).unwrap();
    let made = std::process::Command::new("bash")
        .arg(repo_root().join("tests/apptainer/make-sandbox.sh"))
        .arg(d.join("tasks/sandbox2"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let task = |image: &str| {
        serde_json::json!({
            "name": "t", "image": image,
            "taskTemplate": {"identifier": "t", "description": "x", "inputs": [], "outputs": [],
                "env": [], "command": ["sh", "-c", "echo from-the-sandbox"]}
        })
        .to_string()
    };
    std::fs::write(d.join("tasks/t.task.json"), task("sandbox2")).unwrap();
    std::fs::write(
        d.join("tasks/missing.task.json"),
        task("images/missing.sif"),
    )
    .unwrap();
    std::fs::write(
        d.join("p.pipeline.json"),
        r#"{"name": "p", "tasks": [{"id": "a", "task": "tasks/t.task.json"}]}"#,
    )
    .unwrap();
    std::fs::write(
        d.join("missing.pipeline.json"),
        r#"{"name": "p", "tasks": [{"id": "a", "task": "tasks/missing.task.json"}]}"#,
    )
    .unwrap();

    let out = run(&mut tapir(
        d,
        [
            "pipeline",
            "validate",
            "--format",
            "json",
            "p.pipeline.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let image = report["plan"]["tasks"][0]["image"].as_str().unwrap();
    assert!(
        Path::new(image).is_absolute() && image.ends_with("tasks/sandbox2"),
        "{image}"
    );

    let path = format!(
        "{}:{}",
        repo_root().join("tests/apptainer").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(tapir(
        d,
        ["pipeline", "run", "--mode", "apptainer", "p.pipeline.json"],
    )
    .env("PATH", path));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    let out = run(&mut tapir(
        d,
        ["pipeline", "validate", "missing.pipeline.json"],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("error[image-path]")
            && out.stdout.contains("tasks/missing.task.json:1:"),
        "{}",
        out.stdout
    );
}
