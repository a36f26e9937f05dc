//! Tapis pipeline features on the real Docker engine (seed 003): `value_from` with
//! `--param` and upstream task outputs.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::pipeline_run::{only_pipeline_run, record};
use crate::support::{example_image, files_under, run, tapir};

/// An inline task running `script` under `sh -c` on the example image, with the given
/// template env declarations.
fn task(script: &str, env: Value) -> Value {
    json!({
        "name": "tapis test task",
        "image": example_image(),
        "taskTemplate": {
            "identifier": "t", "description": "test", "inputs": [], "outputs": [],
            "env": env, "command": ["sh", "-c", script]
        }
    })
}

fn write_pipeline(dir: &Path, pipeline: &Value) {
    std::fs::write(
        dir.join("pipeline.json"),
        serde_json::to_string_pretty(pipeline).unwrap(),
    )
    .unwrap();
}

/// `tapir pipeline run pipeline.json` in `dir`, without a network, runs under `dir/runs`.
fn pipeline_run(dir: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec![
        "pipeline",
        "run",
        "pipeline.json",
        "--network",
        "none",
        "--runs-dir",
        "runs",
        "--grace",
        "1",
    ];
    args.extend_from_slice(extra);
    run(&mut tapir(dir, &args))
}

/// The task run folder of task `id`'s last attempt.
fn last_task_run(run_dir: &Path, record: &Value, id: &str) -> PathBuf {
    let task = record["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("task {id} in {record:#}"));
    let attempt = task["attempts"].as_array().unwrap().last().unwrap();
    run_dir.join(attempt["run_dir"].as_str().unwrap())
}

/// Every file under `dir` whose text contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(needle)))
        .collect()
}

#[test]
fn value_from_takes_params_the_pipeline_env_and_an_upstream_tasks_output() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "values",
        "params": {
            "GREETING": {"default": "hi"},
            "RUN_TOKEN": {"required": true},
            "LABEL": {"description": "optional, no default"}
        },
        "env": {"SITE": "lab-3"},
        "tasks": [
            {"id": "count",
             "task": task("echo \"COUNT=3\" >> \"$TAPIR_OUTPUTS_FILE\"; echo \"SAID=$SAY\" >> \"$TAPIR_OUTPUTS_FILE\"; echo COUNT=4 >> \"$TAPIR_OUTPUTS_FILE\"",
                          json!([{"name": "SAY", "value": "?"}])),
             "env": {"SAY": {"value_from": {"params": "GREETING"}}}},
            // No depends_on: reading `count`'s output makes it run after `count`.
            {"id": "report",
             "task": task("echo \"n=$N said=$SAID where=$WHERE token=${#API_TOKEN} label=$LABEL\"",
                          json!([{"name": "LABEL", "value": "task-default"}])),
             "env": {
                 "N": {"value_from": {"task_output": {"task_id": "count", "output_id": "COUNT"}}},
                 "SAID": {"value_from": {"task_output": {"task_id": "count", "output_id": "SAID"}}},
                 "WHERE": {"value_from": {"env": "SITE"}},
                 "API_TOKEN": {"value_from": {"params": "RUN_TOKEN"}},
                 "LABEL": {"value_from": {"params": "LABEL"}}
             }}
        ]
    });
    write_pipeline(dir.path(), &pipeline);
    // `--param NAME` alone takes the value from the environment: the secret stays out
    // of the process list.
    let mut command = tapir(
        dir.path(),
        [
            "pipeline",
            "run",
            "pipeline.json",
            "--network",
            "none",
            "--runs-dir",
            "runs",
            "--param",
            "GREETING=hello",
            "--param",
            "RUN_TOKEN",
        ],
    );
    command.env("RUN_TOKEN", "s3cret-param-value");
    let out = run(&mut command);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let record = record(&run_dir);
    let report = last_task_run(&run_dir, &record, "report");
    assert_eq!(
        std::fs::read_to_string(report.join("stdout.log")).unwrap(),
        // The last COUNT written wins; an optional parameter not given sets nothing.
        "n=4 said=hello where=lab-3 token=18 label=task-default\n"
    );
    // Each value's source is in the task run's record, never the secret.
    let task_record = std::fs::read_to_string(report.join("record.json")).unwrap();
    for source in [
        "task count output COUNT",
        "pipeline env SITE",
        "param RUN_TOKEN",
    ] {
        assert!(task_record.contains(source), "{source} in {task_record}");
    }
    assert_eq!(
        files_containing(dir.path(), "s3cret-param-value"),
        Vec::<PathBuf>::new()
    );
    assert!(!out.stderr.contains("s3cret-param-value"), "{}", out.stderr);
    // The run's parameters are in its record, a secret one masked.
    assert_eq!(
        record["params"],
        json!({"GREETING": "hello", "RUN_TOKEN": "****"}),
        "{record:#}"
    );
    // The dependency the value implies is in the record.
    let report_entry = record["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "report")
        .unwrap();
    assert_eq!(
        report_entry["depends_on"],
        json!(["count"]),
        "{report_entry:#}"
    );
}

#[test]
fn a_value_the_upstream_did_not_write_fails_the_reader_with_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "missing-value",
        "tasks": [
            {"id": "quiet", "task": task("echo OTHER=1 >> \"$TAPIR_OUTPUTS_FILE\"", json!([]))},
            {"id": "reader", "task": task("echo never", json!([])),
             "env": {"N": {"value_from": {"task_output": {"task_id": "quiet", "output_id": "COUNT"}}}}}
        ]
    });
    write_pipeline(dir.path(), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("did not write it to its $TAPIR_OUTPUTS_FILE"),
        "{}",
        out.stderr
    );
    let record = record(&only_pipeline_run(dir.path()));
    let reader = record["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "reader")
        .unwrap();
    assert_eq!(reader["status"], "failed", "{reader:#}");
    assert!(
        reader["attempts"].as_array().is_none_or(Vec::is_empty),
        "it never started: {reader:#}"
    );
}

#[test]
fn pipeline_run_help_names_the_tapis_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tapir(dir.path(), ["pipeline", "run", "--help"]));
    assert_eq!(out.code, 0);
    for flag in [
        "--param <NAME=VALUE>",
        "--archive <DIR>",
        "--clean-succeeded",
    ] {
        assert!(out.stdout.contains(flag), "{flag}: {}", out.stdout);
    }
}

#[test]
fn params_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "params",
        "params": {"API_TOKEN": {"required": true}, "LEVEL": {"default": "1"}},
        "tasks": [{"id": "a", "task": task("true", json!([])),
                   "env": {"API_TOKEN": {"value_from": {"params": "API_TOKEN"}}}}]
    });
    write_pipeline(dir.path(), &pipeline);
    // A required parameter missing: its declaration is named.
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error[missing-param]: parameter `API_TOKEN` is required and has no value"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("pipeline.json:4:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("pass `--param API_TOKEN=VALUE`"),
        "{}",
        out.stderr
    );
    // An undeclared one (a typo) is not silently unused.
    let out = pipeline_run(
        dir.path(),
        &["--param", "API_TOKEN=abc", "--param", "LEVLE=2"],
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error[unknown-param]: --param LEVLE: the pipeline declares no parameter"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `--param LEVEL=…`?"),
        "{}",
        out.stderr
    );
    // A value an env line cannot carry, without echoing it.
    let out = pipeline_run(dir.path(), &["--param", "API_TOKEN=two\nlines-secret"]);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("error[env-line-break]"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("lines-secret"), "{}", out.stderr);
    assert!(!dir.path().join("runs").exists(), "nothing was created");
    // `pipeline validate --param` checks them the same way; without, the defaults show.
    let out = run(&mut tapir(
        dir.path(),
        [
            "pipeline",
            "validate",
            "pipeline.json",
            "--param",
            "LEVLE=2",
        ],
    ));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("error[unknown-param]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("error[missing-param]"),
        "{}",
        out.stdout
    );
    let out = run(&mut tapir(
        dir.path(),
        ["pipeline", "validate", "pipeline.json"],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("env API_TOKEN=**** (value_from: param API_TOKEN)"),
        "{}",
        out.stdout
    );
}

/// An inline task with output channels `(name, mounted path)`.
fn task_with_outputs(script: &str, outputs: &[(&str, &str)]) -> Value {
    let mut task = task(script, json!([]));
    task["taskTemplate"]["outputs"] = outputs
        .iter()
        .map(|(name, path)| json!({"name": name, "mounted_path": path}))
        .collect();
    task
}

#[test]
fn archive_copies_the_chosen_results_and_clean_succeeded_removes_the_run_folders() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "archived",
        "archive": {"path": "kept", "include": ["*/results"]},
        "tasks": [
            {"id": "make",
             "task": task_with_outputs(
                 "mkdir -p /results/deep && echo r > /results/deep/r.txt && echo s > /scratch/s.txt && ln -s /etc/passwd /results/link",
                 &[("results", "/results"), ("scratch", "/scratch")])},
            {"id": "use", "depends_on": [{"id": "make"}],
             "task": task_with_outputs("echo u > /results/u.txt", &[("results", "/results")])}
        ]
    });
    write_pipeline(dir.path(), &pipeline);
    let out = pipeline_run(dir.path(), &["--clean-succeeded"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let name = run_dir.file_name().unwrap().to_string_lossy().into_owned();
    let archived = dir.path().join("kept").join(&name);
    assert_eq!(
        std::fs::read_to_string(archived.join("make/results/deep/r.txt")).unwrap(),
        "r\n"
    );
    assert_eq!(
        std::fs::read_to_string(archived.join("use/results/u.txt")).unwrap(),
        "u\n"
    );
    assert!(!archived.join("make/scratch").exists(), "not included");
    assert!(
        archived
            .join("make/results/link")
            .symlink_metadata()
            .is_err(),
        "a link is not copied"
    );
    assert!(
        out.stderr
            .contains("not archived (a link or a special file): make/results/link"),
        "{}",
        out.stderr
    );
    // Cleaned after the archive: the output folders are gone, records and logs stay.
    assert!(!run_dir.join("make/results").exists());
    assert!(!run_dir.join("make/scratch").exists());
    let record = self::record(&run_dir);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["archives"][0]["status"], "archived", "{record:#}");
    assert_eq!(record["archives"][0]["files"], 2);
    assert_eq!(record["cleaned"].as_array().unwrap().len(), 3, "{record:#}");
    assert!(
        last_task_run(&run_dir, &record, "use")
            .join("record.json")
            .exists()
    );
    // `tapir show` says where the results went and what was cleaned.
    let show = run(&mut tapir(dir.path(), ["show", run_dir.to_str().unwrap()]));
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout
            .contains(&format!("{}: archived (2 files", archived.display())),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("make/results"), "{}", show.stdout);

    // An archive that cannot be made fails the run and cleans nothing.
    let blocked = tempfile::tempdir().unwrap();
    std::fs::write(
        blocked.path().join("kept"),
        "a file where the folder should be",
    )
    .unwrap();
    std::fs::write(
        blocked.path().join("pipeline.json"),
        std::fs::read(dir.path().join("pipeline.json")).unwrap(),
    )
    .unwrap();
    let out = pipeline_run(blocked.path(), &["--clean-succeeded"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("the archive failed"), "{}", out.stderr);
    let run_dir = only_pipeline_run(blocked.path());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("use/results/u.txt")).unwrap(),
        "u\n",
        "nothing was cleaned"
    );
    let blocked_record = self::record(&run_dir);
    assert_eq!(blocked_record["status"], "failed");
    assert_eq!(blocked_record["archives"][0]["status"], "failed");
    assert!(
        blocked_record.get("cleaned").is_none(),
        "{blocked_record:#}"
    );
}

#[test]
fn a_failed_run_is_archived_but_never_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "half",
        "tasks": [
            {"id": "good", "task": task_with_outputs("echo g > /out/g.txt", &[("out", "/out")])},
            {"id": "bad", "task": task_with_outputs("echo b > /out/b.txt; exit 3", &[("out", "/out")])}
        ]
    });
    write_pipeline(dir.path(), &pipeline);
    let out = pipeline_run(dir.path(), &["--archive", "elsewhere", "--clean-succeeded"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let archived = dir
        .path()
        .join("elsewhere")
        .join(run_dir.file_name().unwrap());
    assert!(archived.join("good/out/g.txt").exists());
    assert!(
        !archived.join("bad").exists(),
        "a failed task's outputs are not results"
    );
    // `--resume` needs the outputs of the tasks that succeeded.
    assert!(run_dir.join("good/out/g.txt").exists());
    assert!(run_dir.join("bad/out/b.txt").exists());
}

/// Removes a test image when the test ends, however it ends.
struct RemoveImage(&'static str);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "-f", self.0])
            .output();
    }
}

#[test]
fn a_build_step_makes_the_image_the_next_task_runs_in() {
    const TAG: &str = "tapir-test/pipeline-built:dev";
    let _cleanup = RemoveImage(TAG);
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("image");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nCOPY marker.txt /marker.txt\n", example_image()),
    )
    .unwrap();
    std::fs::write(context.join("marker.txt"), "built by the pipeline\n").unwrap();
    let pipeline = json!({
        "name": "build-then-run",
        "builds": [{"id": "tool", "context": "image", "tag": TAG}],
        "tasks": [{"id": "use", "image_from": "tool", "task": task("cat /marker.txt", json!([]))}]
    });
    write_pipeline(dir.path(), &pipeline);
    // `--pull` pulls only missing images: the built one is there.
    let out = pipeline_run(dir.path(), &["--pull"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("build tool: started"), "{}", out.stderr);
    assert!(
        out.stderr.contains("build tool: succeeded"),
        "{}",
        out.stderr
    );
    let run_dir = only_pipeline_run(dir.path());
    let record = record(&run_dir);
    let use_run = last_task_run(&run_dir, &record, "use");
    assert_eq!(
        std::fs::read_to_string(use_run.join("stdout.log")).unwrap(),
        "built by the pipeline\n"
    );
    // The build is recorded with its image id, and has a run folder like any run.
    let build = &record["builds"][0];
    assert_eq!(build["status"], "succeeded", "{record:#}");
    let image_id = build["image_id"].as_str().unwrap();
    assert!(image_id.starts_with("sha256:"), "{build:#}");
    let task_run_record: Value =
        serde_json::from_str(&std::fs::read_to_string(use_run.join("record.json")).unwrap())
            .unwrap();
    assert_eq!(task_run_record["image"]["id"], image_id);
    let build_dir = run_dir.join(build["run_dir"].as_str().unwrap());
    let build_record: Value =
        serde_json::from_str(&std::fs::read_to_string(build_dir.join("record.json")).unwrap())
            .unwrap();
    assert_eq!(build_record["status"], "succeeded");
    assert_eq!(build_record["argv"][0], "docker");
    assert!(build_dir.join("stderr.log").exists() && build_dir.join("stdout.log").exists());
    let show = run(&mut tapir(dir.path(), ["show", run_dir.to_str().unwrap()]));
    assert!(
        show.stdout.contains(&format!("tool → {TAG}: succeeded")),
        "{}",
        show.stdout
    );
    // `tapir logs` reads a build's folder like a task run's.
    let logs = run(&mut tapir(
        dir.path(),
        ["logs", build_dir.to_str().unwrap()],
    ));
    assert_eq!(logs.code, 0, "{}{}", logs.stdout, logs.stderr);

    // A broken build: no task starts, the pipeline fails, the log says why.
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nCOPY missing-file.txt /x\n", example_image()),
    )
    .unwrap();
    let again = tempfile::tempdir().unwrap();
    std::fs::rename(&context, again.path().join("image")).unwrap();
    write_pipeline(again.path(), &pipeline);
    let out = pipeline_run(again.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("build tool: failed"), "{}", out.stderr);
    let run_dir = only_pipeline_run(again.path());
    let record = self::record(&run_dir);
    assert_eq!(record["status"], "failed");
    let use_task = &record["tasks"][0];
    assert_eq!(use_task["status"], "skipped", "{record:#}");
    assert_eq!(use_task["message"], "not started: build `tool` failed");
    let build_dir = run_dir.join(record["builds"][0]["run_dir"].as_str().unwrap());
    let build_log = std::fs::read_to_string(build_dir.join("stderr.log")).unwrap()
        + &std::fs::read_to_string(build_dir.join("stdout.log")).unwrap();
    assert!(build_log.contains("missing-file.txt"), "{build_log}");
}

#[test]
fn under_apptainer_a_built_image_runs_converted_from_the_docker_engine() {
    const TAG: &str = "tapir-test/pipeline-built-apptainer:dev";
    let _cleanup = RemoveImage(TAG);
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("image");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nCOPY marker.txt /marker.txt\n", example_image()),
    )
    .unwrap();
    std::fs::write(context.join("marker.txt"), "converted\n").unwrap();
    let pipeline = json!({
        "name": "build-then-run-apptainer",
        "builds": [{"id": "tool", "context": "image", "tag": TAG}],
        "tasks": [{"id": "use", "image_from": "tool", "task": task("cat /marker.txt", json!([]))}]
    });
    write_pipeline(dir.path(), &pipeline);
    // The apptainer stand-in (tests/apptainer) first on PATH, as the backend tests do.
    let path = format!(
        "{}:{}",
        crate::support::repo_root()
            .join("tests/apptainer")
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = tapir(
        dir.path(),
        [
            "pipeline",
            "run",
            "pipeline.json",
            "--runs-dir",
            "runs",
            "--mode",
            "apptainer",
        ],
    );
    // tapir's cache is where the SIF converted from the Docker engine is kept.
    command
        .env("PATH", path)
        .env("XDG_CACHE_HOME", dir.path().join("cache"));
    let out = run(&mut command);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let record = record(&run_dir);
    let use_run = last_task_run(&run_dir, &record, "use");
    assert_eq!(
        std::fs::read_to_string(use_run.join("stdout.log")).unwrap(),
        "converted\n"
    );
    // One SIF (a folder, for the stand-in) converted from the built image.
    let converted: Vec<String> =
        std::fs::read_dir(dir.path().join("cache/tapir/apptainer/docker-daemon"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sif"))
            .collect();
    assert_eq!(converted.len(), 1, "{converted:?}");
    assert_eq!(
        converted.len(),
        1,
        "one SIF made from the built image: {converted:?}"
    );
    let derived = std::fs::read_to_string(run_dir.join("runs/use.task.json")).unwrap();
    assert!(
        derived.contains(&format!("\"docker-daemon:{TAG}\"")),
        "{derived}"
    );
}

#[test]
fn a_build_over_its_max_exec_time_is_stopped_and_no_task_starts() {
    const TAG: &str = "tapir-test/pipeline-slow-build:dev";
    let _cleanup = RemoveImage(TAG);
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("image");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nRUN sleep 60\n", example_image()),
    )
    .unwrap();
    let pipeline = json!({
        "name": "slow-build",
        "builds": [{"id": "slow", "context": "image", "tag": TAG, "max_exec_time": 2}],
        "tasks": [{"id": "use", "image_from": "slow", "task": task("true", json!([]))}]
    });
    write_pipeline(dir.path(), &pipeline);
    let started = std::time::Instant::now();
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "stopped at its deadline, not after the sleep"
    );
    assert!(
        out.stderr.contains("build slow: timed-out"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("took longer than 2 s"),
        "{}",
        out.stderr
    );
    let record = record(&only_pipeline_run(dir.path()));
    assert_eq!(record["builds"][0]["status"], "timed-out", "{record:#}");
    assert_eq!(record["tasks"][0]["status"], "skipped");
    assert_eq!(
        record["tasks"][0]["message"],
        "not started: build `slow` timed-out"
    );
}

/// An inline task with one output channel `out` at `/out`.
fn task_with_out(script: &str) -> Value {
    task_with_outputs(script, &[("out", "/out")])
}

#[test]
fn a_retry_starts_with_an_empty_outputs_file() {
    let dir = tempfile::tempdir().unwrap();
    // The first attempt writes a value and fails; the retry writes another.
    let flaky = "if [ -f /out/tried ]; then echo V=second >> \"$TAPIR_OUTPUTS_FILE\"; \
                 else touch /out/tried; echo V=first >> \"$TAPIR_OUTPUTS_FILE\"; \
                 echo STALE=yes >> \"$TAPIR_OUTPUTS_FILE\"; exit 1; fi";
    let pipeline = json!({
        "name": "retry-values",
        "tasks": [
            {"id": "flaky", "task": task_with_out(flaky),
             "execution_profile": {"max_retries": 1, "retry_backoff_seconds": 1}},
            {"id": "reader", "task": task("echo \"v=$V\"", json!([])),
             "env": {"V": {"value_from": {"task_output": {"task_id": "flaky", "output_id": "V"}}}}}
        ]
    });
    write_pipeline(dir.path(), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("runs/flaky.outputs/values.env")).unwrap(),
        "V=second\n",
        "the failed attempt's values are gone"
    );
    let record = self::record(&run_dir);
    let reader = last_task_run(&run_dir, &record, "reader");
    assert_eq!(
        std::fs::read_to_string(reader.join("stdout.log")).unwrap(),
        "v=second\n"
    );
}
