//! `tapir pipeline run` on the real Docker engine, with inline tasks on the busybox example
//! image (`--network none`: no task needs a network).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{example_image, interrupt, leftover_containers, repo_root, run, tapir};

/// An inline task: `script` under `sh -c`, with the given channels (`(name, mounted
/// path)`) and template env declarations.
fn task(script: &str, inputs: &[(&str, &str)], outputs: &[(&str, &str)], env: Value) -> Value {
    let channels = |list: &[(&str, &str)]| -> Vec<Value> {
        list.iter()
            .map(|(name, path)| json!({"name": name, "mounted_path": path}))
            .collect()
    };
    json!({
        "name": "pipeline test task",
        "image": example_image(),
        "taskTemplate": {
            "identifier": "t",
            "description": "test",
            "inputs": channels(inputs),
            "outputs": channels(outputs),
            "env": env,
            "command": ["sh", "-c", script]
        }
    })
}

fn write_json(path: &Path, value: &Value) -> PathBuf {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    path.to_path_buf()
}

/// `tapir pipeline run pipeline.json` in `dir`, without a network, its runs under
/// `dir/runs`, with `extra` arguments.
fn pipeline_command(dir: &Path, extra: &[&str]) -> std::process::Command {
    let mut args = vec![
        "pipeline",
        "run",
        "pipeline.json",
        "--network",
        "none",
        "--runs-dir",
        "runs",
    ];
    args.extend_from_slice(extra);
    tapir(dir, &args)
}

fn pipeline_run(dir: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["--grace", "1"];
    args.extend_from_slice(extra);
    run(&mut pipeline_command(dir, &args))
}

/// The `stdout.log` of every task run under `dir/runs` whose task printed `started`.
fn started_task_logs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("runs"))
        .into_iter()
        .flatten()
        .flat_map(|e| walk(&e.unwrap().path().join("runs")))
        .filter(|p| p.ends_with("stdout.log"))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("started")))
        .collect()
}

/// The one pipeline run folder under `dir/runs`.
fn only_pipeline_run(dir: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .expect("runs folder")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pipeline-run-")
        })
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// The pipeline record as a reader sees it: `record.json`, with the entries of
/// `journal.jsonl` numbered after its `journal_seq` applied (each a task's new state).
fn record(run_dir: &Path) -> Value {
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("record.json")).unwrap())
            .unwrap();
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap_or_default();
    let mut seq = record["journal_seq"].as_u64().unwrap_or(0);
    for line in journal.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            break;
        };
        if entry["seq"].as_u64().unwrap_or(0) <= seq {
            continue;
        }
        seq = entry["seq"].as_u64().unwrap_or(0);
        let tasks = record["tasks"].as_array_mut().unwrap();
        if let Some(task) = tasks.iter_mut().find(|t| t["id"] == entry["task"]["id"]) {
            *task = entry["task"].clone();
        }
    }
    record
}

fn task_record<'a>(record: &'a Value, id: &str) -> &'a Value {
    record["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("task {id} in {record:#}"))
}

fn statuses(record: &Value) -> Vec<(String, String)> {
    record["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_no_containers_left(record: &Value) {
    for task in record["tasks"].as_array().unwrap() {
        for attempt in task["attempts"].as_array().unwrap() {
            if let Some(id) = attempt["run_id"].as_str() {
                assert_eq!(leftover_containers(&format!("tapir.run-id={id}")), "");
            }
        }
    }
}

#[test]
fn fan_out_fan_in_passes_data_through_the_mapped_channels() {
    let dir = tempfile::tempdir().unwrap();
    let env = json!([
        {"name": "GREETING", "value": "hi", "type": "string", "adjustable": true},
        {"name": "API_TOKEN", "value": "none", "type": "string", "adjustable": true}
    ]);
    let map = |up: &str, input: &str| json!({"upstream_task": up, "upstream_output_channel": "out", "input_channel": input});
    let pipeline = json!({
        "name": "diamond",
        "tasks": [
            {"id": "a", "task": task("echo \"$GREETING\" > /out/a.txt; echo ${#API_TOKEN} > /out/token-length", &[], &[("out", "/out")], env)},
            {"id": "b", "task": task("cat /in/a.txt > /out/b.txt; echo \"$WHO\" >> /out/b.txt", &[("in", "/in")], &[("out", "/out")], json!([{"name": "WHO", "value": "?", "type": "string"}])),
             "env": {"WHO": "b"}, "iochannel_maps": [map("a", "in")]},
            {"id": "c", "task": task("cat /in/a.txt > /out/c.txt; echo c >> /out/c.txt", &[("in", "/in")], &[("out", "/out")], json!([])),
             "iochannel_maps": [map("a", "in")]},
            {"id": "d", "task": task("cat /fromb/b.txt /fromc/c.txt > /out/d.txt", &[("fromb", "/fromb"), ("fromc", "/fromc")], &[("out", "/out")], json!([])),
             "iochannel_maps": [map("b", "fromb"), map("c", "fromc")]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    write_json(
        &dir.path().join("conf.json"),
        &json!({"task_form": {"a": {"GREETING": "hello", "API_TOKEN": "s3cret-value"}}}),
    );
    let out = pipeline_run(dir.path(), &["--conf", "conf.json", "--jobs", "2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("d/out/d.txt")).unwrap(),
        "hello\nb\nhello\nc\n"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("a/out/token-length")).unwrap(),
        "12\n"
    );
    let record = record(&run_dir);
    assert_eq!(record["kind"], "pipeline-run");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["exit_code"], 0);
    for (id, status) in statuses(&record) {
        assert_eq!(status, "succeeded", "{id}");
        let attempts = task_record(&record, &id)["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1);
        let task_run = run_dir.join(attempts[0]["run_dir"].as_str().unwrap());
        let task_record: Value =
            serde_json::from_str(&std::fs::read_to_string(task_run.join("record.json")).unwrap())
                .unwrap();
        assert_eq!(task_record["status"], "succeeded");
    }
    // b and c ran after a, d after both.
    let started = |id: &str| {
        task_record(&record, id)["attempts"][0]["started_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ended = |id: &str| {
        task_record(&record, id)["attempts"][0]["ended_at"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(ended("a") <= started("b") && ended("a") <= started("c"));
    assert!(ended("b") <= started("d") && ended("c") <= started("d"));
    assert!(out.stderr.contains("task d: succeeded"), "{}", out.stderr);
    // The conf's secret reached the task but no file of the pipeline run.
    let leaked: Vec<_> = walk(&run_dir)
        .into_iter()
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("s3cret-value")))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert!(!out.stderr.contains("s3cret-value"), "{}", out.stderr);
    assert!(!out.stdout.contains("s3cret-value"), "{}", out.stdout);
    assert_no_containers_left(&record);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn can_fail_lets_the_dependant_run_and_a_failure_skips_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "failing",
        "tasks": [
            {"id": "bad", "task": task("exit 3", &[], &[], json!([]))},
            {"id": "tolerant", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "bad", "can_fail": true}]},
            {"id": "strict", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "bad"}]},
            {"id": "after-strict", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "strict"}]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 1);
    let status = |id: &str| {
        task_record(&record, id)["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status("bad"), "failed");
    assert_eq!(task_record(&record, "bad")["attempts"][0]["exit_code"], 3);
    assert_eq!(status("tolerant"), "succeeded");
    assert_eq!(status("strict"), "skipped");
    assert_eq!(status("after-strict"), "skipped");
    assert_eq!(
        task_record(&record, "strict")["message"],
        "not run: dependency bad failed"
    );
    assert_eq!(
        task_record(&record, "after-strict")["message"],
        "not run: dependency strict was skipped"
    );
    assert!(
        task_record(&record, "strict")["attempts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        out.stderr.contains("task bad: failed (exit 3)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("task strict: skipped (dependency bad failed)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_failed_attempt_is_retried_after_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "flaky",
        "execution_profile": {"max_retries": 2, "retry_backoff_seconds": 1},
        "tasks": [
            {"id": "flaky", "task": task("if [ -f /out/marker ]; then echo second; else touch /out/marker; exit 5; fi", &[], &[("out", "/out")], json!([]))}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    let flaky = task_record(&record, "flaky");
    assert_eq!(flaky["status"], "succeeded");
    let attempts = flaky["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{flaky:#}");
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["exit_code"], 5);
    assert_eq!(attempts[1]["status"], "succeeded");
    assert_eq!(attempts[1]["number"], 2);
    assert_ne!(attempts[0]["run_id"], attempts[1]["run_id"]);
    assert!(
        out.stderr
            .contains("task flaky: failed (exit 5); retry 1/2 in 1s"),
        "{}",
        out.stderr
    );
}

#[test]
fn max_exec_time_stops_the_task_as_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "slow",
        "tasks": [
            {"id": "slow", "task": task("sleep 300", &[], &[], json!([])), "execution_profile": {"max_exec_time": 1}},
            {"id": "next", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "slow"}]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let started = Instant::now();
    let out = pipeline_run(dir.path(), &[]);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    let slow = task_record(&record, "slow");
    assert_eq!(slow["status"], "timed-out");
    assert_eq!(slow["attempts"][0]["status"], "timed-out");
    assert_eq!(slow["attempts"][0]["tapir_exit_code"], 124);
    assert_eq!(task_record(&record, "next")["status"], "skipped");
    assert!(
        out.stderr.contains("task slow: timed-out"),
        "{}",
        out.stderr
    );
    assert_no_containers_left(&record);
}

/// `run`'s per-run options reach every task's `tapir run`: `--bind` a host folder,
/// `--user image` (no `--user` for the engine), `--keep` the container.
#[test]
fn run_options_given_to_the_pipeline_reach_every_task() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("reference")).unwrap();
    std::fs::write(dir.path().join("reference/hello"), "from the host\n").unwrap();
    let pipeline = json!({
        "name": "options",
        "tasks": [{"id": "a", "task": task("cat /reference/hello", &[], &[], json!([]))}]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(
        dir.path(),
        &[
            "--bind",
            "reference:/reference",
            "--user",
            "image",
            "--keep",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    let attempt = &task_record(&record, "a")["attempts"][0];
    let argv: Vec<&str> = attempt["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!argv.contains(&"--user"), "{argv:?}");
    let run_dir = only_pipeline_run(dir.path()).join(attempt["run_dir"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("stdout.log")).unwrap(),
        "from the host\n"
    );
    let label = format!("tapir.run-id={}", attempt["run_id"].as_str().unwrap());
    let kept = leftover_containers(&label);
    assert!(!kept.is_empty(), "--keep kept the container");
    let removed = std::process::Command::new("docker")
        .args(["rm", "-f", kept.trim()])
        .output()
        .unwrap();
    assert!(removed.status.success());
}

/// The attempt's engine argv (from its task run's record, copied into the attempt).
fn attempt_argv(record: &Value, id: &str) -> Vec<String> {
    task_record(record, id)["attempts"][0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

fn has_pair(argv: &[String], flag: &str, value: &str) -> bool {
    argv.windows(2).any(|w| w[0] == flag && w[1] == value)
}

/// `run_options` in the pipeline file reach each task's `tapir run`: the pipeline's for
/// every task (a bind relative to the pipeline file's folder, wherever tapir is started;
/// the network), a task's own over them (`user`, `entrypoint`, `keep`); flags given to
/// `pipeline run` win over both.
#[test]
fn run_options_in_the_pipeline_file_reach_each_task_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("reference")).unwrap();
    std::fs::write(project.join("reference/hello"), "from the host\n").unwrap();
    let pipeline = json!({
        "name": "file-options",
        "run_options": {"network": "none", "bind": ["reference:/reference"], "shm_size": "64Mi"},
        "tasks": [
            {
                "id": "plain",
                "task": task("cat /reference/hello; df -k /dev/shm | tail -n 1; hostname", &[], &[], json!([])),
                "run_options": {"engine_args": ["--hostname", "from-the-file"]}
            },
            {
                "id": "own",
                "task": task("cat /reference/hello; echo own", &[], &[], json!([])),
                "run_options": {"user": "image", "entrypoint": "/bin/busybox", "keep": true}
            }
        ]
    });
    write_json(&project.join("pipeline.json"), &pipeline);
    // Started from the parent folder: the bind is relative to the pipeline file.
    let started = |extra: &[&str]| {
        let mut args = vec![
            "pipeline",
            "run",
            "project/pipeline.json",
            "--runs-dir",
            "runs",
        ];
        args.extend_from_slice(extra);
        run(&mut tapir(dir.path(), &args))
    };
    let out = started(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let first = record(&run_dir);
    for id in ["plain", "own"] {
        let attempt = &task_record(&first, id)["attempts"][0];
        let stdout = std::fs::read_to_string(
            run_dir
                .join(attempt["run_dir"].as_str().unwrap())
                .join("stdout.log"),
        )
        .unwrap();
        assert!(stdout.starts_with("from the host\n"), "{id}: {stdout:?}");
        assert!(
            has_pair(&attempt_argv(&first, id), "--network", "none"),
            "{id}"
        );
    }
    let plain = attempt_argv(&first, "plain");
    let own = attempt_argv(&first, "own");
    // The engine options: the pipeline's shm size for both, the task's engine argument.
    for argv in [&plain, &own] {
        assert!(has_pair(argv, "--shm-size", "67108864"), "{argv:?}");
    }
    let plain_attempt = &task_record(&first, "plain")["attempts"][0];
    let plain_out = std::fs::read_to_string(
        run_dir
            .join(plain_attempt["run_dir"].as_str().unwrap())
            .join("stdout.log"),
    )
    .unwrap();
    assert!(
        plain_out.contains(" 65536 ") && plain_out.ends_with("from-the-file\n"),
        "a 64 MiB /dev/shm and the hostname from engine_args: {plain_out:?}"
    );
    assert!(!own.iter().any(|a| a == "from-the-file"), "{own:?}");
    assert!(plain.iter().any(|a| a == "--user"), "{plain:?}");
    assert!(!own.iter().any(|a| a == "--user"), "user image: {own:?}");
    assert!(has_pair(&own, "--entrypoint", "/bin/busybox"), "{own:?}");
    assert!(!plain.iter().any(|a| a == "--entrypoint"), "{plain:?}");
    let own_id = task_record(&first, "own")["attempts"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = leftover_containers(&format!("tapir.run-id={own_id}"));
    assert!(!kept.is_empty(), "keep: true kept the container");
    let removed = std::process::Command::new("docker")
        .args(["rm", "-f", kept.trim()])
        .output()
        .unwrap();
    assert!(removed.status.success());
    let plain_id = task_record(&first, "plain")["attempts"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(leftover_containers(&format!("tapir.run-id={plain_id}")), "");

    // Flags win: --user invoker for every task, --network over the file's.
    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    std::fs::create_dir_all(dir.path().join("other")).unwrap();
    std::fs::write(dir.path().join("other/hello"), "from the flag\n").unwrap();
    let out = started(&[
        "--user",
        "invoker",
        "--network",
        "none",
        "--bind",
        "other:/reference",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let second = record(&run_dir);
    let own = attempt_argv(&second, "own");
    assert!(own.iter().any(|a| a == "--user"), "{own:?}");
    let attempt = &task_record(&second, "plain")["attempts"][0];
    let second_out = std::fs::read_to_string(
        run_dir
            .join(attempt["run_dir"].as_str().unwrap())
            .join("stdout.log"),
    )
    .unwrap();
    assert!(
        second_out.starts_with("from the flag\n"),
        "a --bind at the same container path replaces the file's: {second_out:?}"
    );
    let own_id = task_record(&second, "own")["attempts"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = leftover_containers(&format!("tapir.run-id={own_id}"));
    if !kept.is_empty() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", kept.trim()])
            .output();
    }
}

#[test]
fn ctrl_c_stops_every_running_task_and_records_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let sleeper = || task("echo started; sleep 300", &[], &[], json!([]));
    let pipeline = json!({
        "name": "sleepers",
        "tasks": [
            {"id": "one", "task": sleeper()},
            {"id": "two", "task": sleeper()},
            {"id": "after", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "one"}, {"id": "two"}]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let mut child = pipeline_command(dir.path(), &["--grace", "2", "--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until both tasks print: their containers run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if started_task_logs(dir.path()).len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the tasks did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopping = Instant::now();
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(stopping.elapsed() < Duration::from_secs(60));
    let record = record(&only_pipeline_run(dir.path()));
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["exit_code"], 130);
    for id in ["one", "two"] {
        let task = task_record(&record, id);
        assert_eq!(task["status"], "cancelled", "{task:#}");
        assert_eq!(task["attempts"][0]["status"], "cancelled", "{task:#}");
    }
    let after = task_record(&record, "after");
    assert_eq!(after["status"], "cancelled");
    assert!(after["attempts"].as_array().unwrap().is_empty());
    assert_no_containers_left(&record);
}

#[test]
fn resume_reruns_only_the_tasks_that_did_not_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let mode_env = json!([{"name": "MODE", "value": "bad", "type": "string", "adjustable": true}]);
    let pipeline = json!({
        "name": "resumable",
        "tasks": [
            {"id": "first", "task": task("echo once >> /out/runs.txt", &[], &[("out", "/out")], json!([]))},
            {"id": "flaky", "task": task("[ \"$MODE\" = good ] || exit 4", &[], &[], mode_env)},
            {"id": "last", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "first"}, {"id": "flaky"}]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    write_json(
        &dir.path().join("bad.json"),
        &json!({"task_form": {"flaky": {"MODE": "bad"}}}),
    );
    write_json(
        &dir.path().join("good.json"),
        &json!({"task_form": {"flaky": {"MODE": "good"}}}),
    );
    let out = pipeline_run(dir.path(), &["--conf", "bad.json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let before = record(&run_dir);
    assert_eq!(task_record(&before, "last")["status"], "skipped");

    let resume = run_dir.display().to_string();
    let out = pipeline_run(dir.path(), &["--conf", "good.json", "--resume", &resume]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        only_pipeline_run(dir.path()),
        run_dir,
        "the same folder is continued"
    );
    let after = record(&run_dir);
    assert_eq!(after["status"], "succeeded");
    assert_eq!(after["resumed_at"].as_array().unwrap().len(), 1);
    let attempts = |id: &str| {
        task_record(&after, id)["attempts"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(attempts("first"), 1, "a succeeded task is not run again");
    assert_eq!(attempts("flaky"), 2);
    assert_eq!(task_record(&after, "flaky")["attempts"][1]["number"], 2);
    assert_eq!(attempts("last"), 1);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("first/out/runs.txt")).unwrap(),
        "once\n",
        "its output is kept"
    );
    assert!(!out.stderr.contains("task first:"), "{}", out.stderr);

    // Another folder layout than the first run's is refused, and nothing runs.
    let out = pipeline_run(
        dir.path(),
        &[
            "--conf",
            "good.json",
            "--resume",
            &resume,
            "--profile",
            "ccat",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("used profile `kaapana`"),
        "{}",
        out.stderr
    );
    assert_eq!(record(&run_dir)["resumed_at"].as_array().unwrap().len(), 1);

    // A changed pipeline file is refused, and nothing runs.
    let mut changed = pipeline.clone();
    changed["name"] = json!("changed");
    write_json(&dir.path().join("pipeline.json"), &changed);
    let out = pipeline_run(dir.path(), &["--conf", "good.json", "--resume", &resume]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("the pipeline file changed"),
        "{}",
        out.stderr
    );
    assert_eq!(record(&run_dir)["resumed_at"].as_array().unwrap().len(), 1);
}

#[test]
fn an_invalid_pipeline_starts_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "cyclic",
        "tasks": [
            {"id": "a", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "b"}]},
            {"id": "b", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "a"}]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(out.stderr.contains("pipeline.json:"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was started"), "{}", out.stderr);
    assert!(!dir.path().join("runs").exists());

    let out = pipeline_run(dir.path(), &["--jobs", "0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = pipeline_run(dir.path(), &["--resume", "nowhere"]);
    assert_eq!(
        out.code, 125,
        "an invalid pipeline is reported first: {}",
        out.stderr
    );
    assert!(!dir.path().join("runs").exists());

    // A task id that would collide with the run folder's own `runs/`.
    let reserved = json!({"name": "reserved", "tasks": [{"id": "runs", "task": task("true", &[], &[], json!([]))}]});
    write_json(&dir.path().join("pipeline.json"), &reserved);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error[reserved-task-id]: task id `runs` is reserved"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("pipeline.json:"), "{}", out.stderr);
    assert!(!dir.path().join("runs").exists());
    // … or with the record's journal.
    let reserved = json!({"name": "reserved", "tasks": [{"id": "journal.jsonl", "task": task("true", &[], &[], json!([]))}]});
    write_json(&dir.path().join("pipeline.json"), &reserved);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error[reserved-task-id]: task id `journal.jsonl` is reserved"),
        "{}",
        out.stderr
    );

    // A conf value a task's environment cannot take.
    let fine = json!({"name": "fine", "tasks": [{"id": "a", "task": task("true", &[], &[], json!([{"name": "X", "value": "", "type": "string"}]))}]});
    write_json(&dir.path().join("pipeline.json"), &fine);
    write_json(
        &dir.path().join("conf.json"),
        &json!({"task_form": {"a": {"X": "two\nlines"}}}),
    );
    let out = pipeline_run(dir.path(), &["--conf", "conf.json"]);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("error[env-line-break]"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("conf.json:"), "{}", out.stderr);
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn the_readme_example_pipeline_runs() {
    example_image();
    let dir = tempfile::tempdir().unwrap();
    let examples = repo_root().join("examples/pipeline");
    let out = run(&mut tapir(
        &repo_root(),
        [
            "pipeline",
            "run",
            "examples/pipeline/pipeline.json",
            "--conf",
            "examples/pipeline/conf.json",
            "--network",
            "none",
            "--runs-dir",
            dir.path().to_str().unwrap(),
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(examples.join("pipeline.json").is_file());
    let run_dir = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pipeline-run-")
        })
        .expect("a pipeline run folder");
    let result =
        std::fs::read_to_string(run_dir.join("process-data/outputs/item-1/result.txt")).unwrap();
    assert_eq!(result, "ITEM-1 FROM HTTPS://EXAMPLE.ORG/DATASET\n");
}

#[test]
fn help_documents_the_exit_codes_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tapir(dir.path(), ["pipeline", "run", "--help"]));
    assert_eq!(out.code, 0);
    for text in [
        "125 the pipeline is invalid",
        "130 cancelled",
        "--jobs",
        "--resume",
        "--conf",
    ] {
        assert!(out.stdout.contains(text), "{text}: {}", out.stdout);
    }
    let out = run(&mut tapir(dir.path(), ["run", "--help"]));
    assert!(out.stdout.contains("--timeout <SECONDS>"), "{}", out.stdout);
}

#[test]
fn resume_finds_the_run_by_name_and_refuses_one_still_running() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline =
        json!({"name": "one", "tasks": [{"id": "a", "task": task("true", &[], &[], json!([]))}]});
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    assert_eq!(pipeline_run(dir.path(), &[]).code, 0);
    let run_dir = only_pipeline_run(dir.path());
    let name = run_dir.file_name().unwrap().to_str().unwrap().to_string();
    let id = name.strip_prefix("pipeline-run-").unwrap().to_string();
    // Nothing left to do: it ends at once, and the succeeded task is not run again.
    for query in [&name, &id] {
        let out = pipeline_run(dir.path(), &["--resume", query]);
        assert_eq!(out.code, 0, "{query}: {}", out.stderr);
        assert!(!out.stderr.contains("task a:"), "{}", out.stderr);
    }
    assert_eq!(
        task_record(&record(&run_dir), "a")["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A record that says running, supervised by a live process on this machine.
    let mut running = record(&run_dir);
    running["status"] = json!("running");
    running["pid"] = json!(std::process::id());
    running["host"] = json!(
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
    write_json(&run_dir.join("record.json"), &running);
    let out = pipeline_run(dir.path(), &["--resume", &name]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is still running"), "{}", out.stderr);

    // A task run that still runs (its pipeline tapir was killed, the task was not).
    running["status"] = json!("failed");
    write_json(&run_dir.join("record.json"), &running);
    let task_run = run_dir.join(
        task_record(&running, "a")["attempts"][0]["run_dir"]
            .as_str()
            .unwrap(),
    );
    let mut task_run_record = record(&task_run);
    task_run_record["status"] = json!("running");
    task_run_record["pid"] = json!(std::process::id());
    task_run_record["host"] = running["host"].clone();
    write_json(&task_run.join("record.json"), &task_run_record);
    let out = pipeline_run(dir.path(), &["--resume", &name]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("its task run") && out.stderr.contains("is still running"),
        "{}",
        out.stderr
    );

    let out = pipeline_run(dir.path(), &["--resume", "pipeline-run-nope"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no pipeline run folder there"),
        "{}",
        out.stderr
    );
}

/// The CCAT example (examples/pipeline/ccat-pipeline.json): calibrate reads the raw scans
/// from /workflow/input and writes /workflow/workspace/calibrate/; baseline, the final
/// step, reads those and writes /workflow/output/science/ with sidecars. The record
/// lists the products with their metadata, each attempt's argv and image. The manifest
/// has the contract's integer `run_id`, roles by the pipeline's `input_roles`, and its
/// `environment`, whose secret the container reads while no file tapir keeps has it;
/// each step's container logs are in its /workflow/logs/.
#[test]
fn the_ccat_example_reduction_runs_end_to_end_with_products_in_the_record() {
    example_image();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tapir(
        &repo_root(),
        [
            "pipeline",
            "run",
            "examples/pipeline/ccat-pipeline.json",
            "--network",
            "none",
            "--runs-dir",
            dir.path().to_str().unwrap(),
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pipeline-run-")
        })
        .expect("a pipeline run folder");
    let record = record(&run_dir);
    assert_eq!(record["status"], "succeeded", "{record:#}");
    // The contract's run_id is an integer: the run's creation time in microseconds.
    let run_id = record["created_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_microsecond();

    // calibrate's results are intermediates, numbered first.
    let calibrate = task_record(&record, "calibrate");
    let intermediates: Vec<(u64, &str, &str)> = calibrate["products"]
        .as_array()
        .unwrap_or_else(|| panic!("products of calibrate in {calibrate:#}"))
        .iter()
        .map(|p| {
            (
                p["data_product_id"].as_u64().unwrap(),
                p["path"].as_str().unwrap(),
                p["product_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        intermediates,
        [
            (
                1,
                "/workflow/workspace/calibrate/scan001_cal.hdf5",
                "INTERMEDIATE"
            ),
            (
                2,
                "/workflow/workspace/calibrate/scan002_cal.hdf5",
                "INTERMEDIATE"
            ),
        ]
    );

    // baseline's manifest names the raw files and calibrate's products by id.
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("config/baseline/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest,
        json!({
            "run_id": run_id,
            "step_name": "baseline",
            "sub_group_key": "source=NGC253|line=CO43",
            "input_files": [
                {"path": "/workflow/input/hot_load.fits", "role": "calibration"},
                {"path": "/workflow/input/scan001.fits", "role": "science"},
                {"path": "/workflow/input/scan002.fits", "role": "science"}
            ],
            "input_products": [
                {"path": "/workflow/workspace/calibrate/scan001_cal.hdf5", "data_product_id": 1},
                {"path": "/workflow/workspace/calibrate/scan002_cal.hdf5", "data_product_id": 2}
            ],
            "config": {"baseline_order": 3},
            "environment": {"influxdb_token": "****", "influxdb_url": "http://127.0.0.1:8086"}
        })
    );
    assert!(manifest["run_id"].is_u64(), "{manifest:#}");

    // The container's logs, where the contract has them (/workflow/logs/ is
    // <run>/logs/<step>/): calibrate saw its roles and the real token in its manifest.
    let calibrate_log = std::fs::read_to_string(run_dir.join("logs/calibrate/stdout.log")).unwrap();
    assert_eq!(
        calibrate_log,
        "calibrate: hot load from the manifest: /workflow/input/hot_load.fits\ncalibrate: an influxdb token of 29 characters\ncalibrate: wrote 2 file(s)\n"
    );
    assert!(run_dir.join("logs/calibrate/stderr.log").is_file());
    assert!(run_dir.join("logs/baseline/stdout.log").is_file());
    let leaked: Vec<_> = walk(&run_dir)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(p).is_ok_and(|t| t.contains("example-token-not-for-records"))
        })
        .collect();
    assert!(leaked.is_empty(), "the secret is in {leaked:?}");
    assert!(
        !out.stderr.contains("example-token-not-for-records"),
        "{}",
        out.stderr
    );

    // The final products, typed by subfolder, with the sidecar's metadata.
    let baseline = task_record(&record, "baseline");
    let science = &baseline["products"][0];
    assert_eq!(science["data_product_id"], 3, "{baseline:#}");
    assert_eq!(
        science["path"],
        "/workflow/output/science/scan001_base.hdf5"
    );
    assert_eq!(science["product_type"], "SCIENCE");
    assert_eq!(science["metadata"], json!({"baseline_order": 3}));
    let raw = std::fs::read(repo_root().join("examples/pipeline/ccat-raw/scan001.fits")).unwrap();
    assert_eq!(science["size_bytes"], raw.len() as u64);
    assert_eq!(science["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        baseline["products"].as_array().unwrap().len(),
        2,
        "sidecars are no products: {baseline:#}"
    );

    // Reproducibility: the exact argv and the image of each attempt.
    for step in [calibrate, baseline] {
        let attempt = &step["attempts"][0];
        let argv: Vec<&str> = attempt["argv"]
            .as_array()
            .unwrap_or_else(|| panic!("argv in {attempt:#}"))
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            argv.iter()
                .any(|a| a.ends_with("target=/workflow/input,readonly"))
                && argv
                    .iter()
                    .any(|a| a.ends_with("target=/workflow/config,readonly"))
                && argv
                    .iter()
                    .any(|a| a.ends_with("target=/workflow/workspace")),
            "{argv:?}"
        );
        assert!(
            attempt["image"]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("sha256:")),
            "{attempt:#}"
        );
    }
    // With a secret in `environment`, the container's manifest came from a private
    // folder outside the run folder, gone once the step ended.
    let config_bind = calibrate["attempts"][0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.ends_with("target=/workflow/config,readonly"))
        .unwrap();
    let source = config_bind
        .split(',')
        .find_map(|part| part.strip_prefix("source="))
        .unwrap();
    assert!(!Path::new(source).starts_with(&run_dir), "{config_bind}");
    assert!(!Path::new(source).exists(), "{config_bind}");
    let baseline_argv = baseline["attempts"][0]["argv"].to_string();
    assert!(
        baseline_argv.contains("WORKFLOW_OUTPUT_DIR=/workflow/output/")
            && baseline_argv.contains("target=/workflow/output\""),
        "{baseline_argv}"
    );
    assert!(
        !calibrate["attempts"][0]["argv"]
            .to_string()
            .contains("target=/workflow/output"),
        "only the final step gets /workflow/output"
    );
    // `show` lists the products for people too, with their sidecar metadata.
    let shown = run(&mut tapir(
        &repo_root(),
        ["show", run_dir.to_str().unwrap()],
    ));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .contains("product 3: SCIENCE /workflow/output/science/scan001_base.hdf5")
            && shown.stdout.contains(r#"metadata {"baseline_order":3}"#)
            && shown.stdout.contains("product 1: INTERMEDIATE"),
        "{}",
        shown.stdout
    );
    assert_no_containers_left(&record);
}

/// A final CCAT step's outputs are typed by subfolder; a sidecar that is not JSON is a
/// warning (on stderr and in the record) naming it and its position, and the product
/// stays. A step without `input` gets an empty /workflow/input.
#[test]
fn ccat_products_are_typed_by_subfolder_and_a_broken_sidecar_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let script = "set -eu\ntest -z \"$(ls /workflow/input)\"\ncd \"$WORKFLOW_OUTPUT_DIR\"\nmkdir qa plots logs misc\necho 1 > qa/noise.json\necho 2 > plots/p.png\necho 3 > logs/run.log\necho 4 > misc/x.bin\necho 5 > top.fits\nprintf '{\\n  \"rms\": ,\\n}' > top.fits.metadata.json\n";
    write_json(
        &dir.path().join("pipeline.json"),
        &json!({
            "name": "ccat-types",
            "profile": "ccat",
            "tasks": [{"id": "only", "task": task(script, &[], &[], json!([]))}]
        }),
    );
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "warning: step `only`: /workflow/output/top.fits.metadata.json:2:10: the metadata sidecar is not valid JSON"
        ),
        "{}",
        out.stderr
    );
    let record = record(&only_pipeline_run(dir.path()));
    let only = task_record(&record, "only");
    let types: Vec<(&str, &str)> = only["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["relative_path"].as_str().unwrap(),
                p["product_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("logs/run.log", "LOG"),
            ("misc/x.bin", "SCIENCE"),
            ("plots/p.png", "PLOT"),
            ("qa/noise.json", "QA_METRIC"),
            ("top.fits", "SCIENCE"),
        ]
    );
    assert!(only["products"][4].get("metadata").is_none(), "{only:#}");
    assert!(
        only["warnings"][0]
            .as_str()
            .unwrap()
            .contains("top.fits.metadata.json:2:10"),
        "{only:#}"
    );
}

/// Ctrl-C while a task waits to be retried ends the wait at once; the task is recorded and
/// reported as cancelled (not as the failure of its last attempt).
#[test]
fn ctrl_c_during_a_retry_backoff_cancels_the_task_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "backoff",
        "execution_profile": {"max_retries": 3, "retry_backoff_seconds": 600},
        "tasks": [{"id": "flaky", "task": task("exit 3", &[], &[], json!([]))}]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let stderr_path = dir.path().join("stderr.txt");
    let mut child = pipeline_command(dir.path(), &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&stderr_path)
        .unwrap()
        .contains("retry 1/3 in 600s")
    {
        assert!(Instant::now() < deadline, "the first attempt did not fail");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopping = Instant::now();
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(stopping.elapsed() < Duration::from_secs(10));
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let record = record(&only_pipeline_run(dir.path()));
    let flaky = task_record(&record, "flaky");
    assert_eq!(flaky["status"], "cancelled", "{flaky:#}");
    assert_eq!(flaky["attempts"].as_array().unwrap().len(), 1, "{flaky:#}");
    assert_eq!(flaky["attempts"][0]["status"], "failed", "{flaky:#}");
    let message = flaky["message"].as_str().unwrap_or_default();
    assert_eq!(message, "cancelled while waiting to retry", "{flaky:#}");
    assert!(
        stderr.contains("task flaky: cancelled (while waiting to retry)"),
        "{stderr}"
    );
}

/// The task run of the attempt `dir`'s one pipeline run is making, once it has printed
/// `started` (its container then surely runs), and the pipeline's record.
fn wait_for_started_task_run(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(log) = started_task_logs(dir).pop() {
            return log.parent().unwrap().to_path_buf();
        }
        assert!(Instant::now() < deadline, "the task did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most `bound`) until the task run record in `task_run` is no longer
/// `running`, and returns it.
fn wait_until_settled(task_run: &Path, bound: Duration) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let now = record(task_run);
        if now["status"] != "running" {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the task run did not end within {bound:?}: {now:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// A pipeline tapir killed outright (SIGKILL: no chance to pass a cancel on) does not
/// leave its tasks running: each attempt's `tapir run` notices its parent is gone, stops
/// its container and records `cancelled`. `--resume` links the attempt the killed
/// pipeline left `running` to that task run and runs the task again.
#[test]
fn a_killed_pipeline_leaves_no_task_running_and_resume_settles_its_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "killed",
        "tasks": [{"id": "slow", "task": task("echo started; sleep 300", &[], &[], json!([]))}]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let mut child = pipeline_command(dir.path(), &["--grace", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let task_run = wait_for_started_task_run(dir.path());
    let run_id = task_run
        .file_name()
        .unwrap()
        .to_string_lossy()
        .strip_prefix("task_run-")
        .unwrap()
        .to_string();
    signal(child.id(), "-KILL");
    child.wait().unwrap();
    let killed_at = Instant::now();
    // Noticed within 100 ms, stopped with --grace 1: well inside the bound.
    let settled = wait_until_settled(&task_run, Duration::from_secs(20));
    assert_eq!(settled["status"], "cancelled", "{settled:#}");
    let label = format!("tapir.run-id={run_id}");
    while !leftover_containers(&label).is_empty() {
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "container left: {}",
            leftover_containers(&label)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let run_dir = only_pipeline_run(dir.path());
    assert_eq!(
        task_record(&record(&run_dir), "slow")["attempts"][0]["status"],
        "running"
    );

    // The resumed run links the orphaned attempt and runs the task again (it was
    // cancelled, not done); a Ctrl-C then ends the second attempt.
    let resume = run_dir.display().to_string();
    let mut resumed = pipeline_command(dir.path(), &["--grace", "1", "--resume", &resume])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while started_task_logs(dir.path()).len() < 2 {
        assert!(Instant::now() < deadline, "the task did not start again");
        std::thread::sleep(Duration::from_millis(100));
    }
    interrupt(&resumed);
    assert_eq!(resumed.wait().unwrap().code(), Some(130));
    let after = record(&run_dir);
    let attempts = task_record(&after, "slow")["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{after:#}");
    assert_eq!(attempts[0]["status"], "cancelled", "{after:#}");
    assert_eq!(attempts[0]["run_id"], run_id.as_str(), "{after:#}");
    assert!(attempts[0]["ended_at"].is_string(), "{after:#}");
    assert_ne!(attempts[1]["run_id"], attempts[0]["run_id"], "{after:#}");
    assert_no_containers_left(&after);
}

/// A task run that succeeded after its pipeline tapir was killed (here: the pipeline is
/// stopped with SIGSTOP while the task runs, so it cannot record the success, then
/// killed) is adopted by `--resume`: the task counts as succeeded and is not run again;
/// the task after it runs. Being a CCAT step, its products and logs are collected as
/// after any success, and the next step's manifest names them.
#[test]
fn resume_adopts_an_attempt_that_succeeded_after_its_pipeline_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let first = "echo started; sleep 2; echo data > \"$WORKFLOW_OUTPUT_DIR/cal.hdf5\"";
    let second = "cp /workflow/workspace/first/cal.hdf5 \"$WORKFLOW_OUTPUT_DIR/\"";
    let pipeline = json!({
        "name": "adopt",
        "profile": "ccat",
        "tasks": [
            {"id": "first", "task": task(first, &[], &[], json!([]))},
            {"id": "second", "task": task(second, &[], &[], json!([])), "depends_on": [{"id": "first"}]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let mut child = pipeline_command(dir.path(), &["--grace", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let task_run = wait_for_started_task_run(dir.path());
    signal(child.id(), "-STOP");
    let settled = wait_until_settled(&task_run, Duration::from_secs(60));
    assert_eq!(settled["status"], "succeeded", "{settled:#}");
    signal(child.id(), "-KILL");
    child.wait().unwrap();
    let run_dir = only_pipeline_run(dir.path());
    assert_eq!(task_record(&record(&run_dir), "first")["status"], "running");

    let resume = run_dir.display().to_string();
    let out = pipeline_run(dir.path(), &["--resume", &resume]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("task first: succeeded (adopted"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("task first: started"),
        "{}",
        out.stderr
    );
    let after = record(&run_dir);
    let first = task_record(&after, "first");
    assert_eq!(first["status"], "succeeded", "{first:#}");
    let attempts = first["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "not run again: {first:#}");
    assert_eq!(attempts[0]["status"], "succeeded", "{first:#}");
    assert_eq!(
        format!("task_run-{}", attempts[0]["run_id"].as_str().unwrap()),
        task_run.file_name().unwrap().to_string_lossy(),
    );
    assert_eq!(task_record(&after, "second")["status"], "succeeded");
    assert_eq!(after["status"], "succeeded");
    assert_eq!(started_task_logs(dir.path()).len(), 1);
    // Collected on adoption: the product, numbered first, and the container logs.
    let product = &first["products"][0];
    assert_eq!(product["data_product_id"], 1, "{first:#}");
    assert_eq!(product["path"], "/workflow/workspace/first/cal.hdf5");
    assert_eq!(
        std::fs::read_to_string(run_dir.join("logs/first/stdout.log")).unwrap(),
        "started\n"
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("config/second/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["input_products"],
        json!([{"path": "/workflow/workspace/first/cal.hdf5", "data_product_id": 1}])
    );
    assert_eq!(
        task_record(&after, "second")["products"][0]["data_product_id"],
        2
    );
}

/// The check's warnings (here a conf variable the template does not declare) are printed
/// before the pipeline runs, as `tapir run` prints a task file's: not dropped silently.
#[test]
fn warnings_of_the_check_are_printed_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let case_env =
        json!([{"name": "CASE", "value": "lower", "type": "string", "adjustable": true}]);
    let pipeline = json!({
        "name": "warned",
        "tasks": [{"id": "a", "task": task("true", &[], &[], case_env)}]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    std::fs::write(
        dir.path().join("conf.json"),
        "{\"task_form\": {\"a\": {\"CAS\": \"upper\"}}}\n",
    )
    .unwrap();
    let out = pipeline_run(dir.path(), &["--conf", "conf.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("warning[undeclared-env]"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("conf.json:1:29"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `CASE`?"),
        "{}",
        out.stderr
    );
    let warning_at = out.stderr.find("warning[undeclared-env]").unwrap();
    let started_at = out.stderr.find("task a: started").unwrap();
    assert!(warning_at < started_at, "{}", out.stderr);
}

/// `--jobs` counts running tasks: a task waiting to be retried gives its place to an
/// independent one instead of holding it through the backoff.
#[test]
fn a_task_waiting_to_retry_lets_another_task_run() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "waiting",
        "tasks": [
            {"id": "flaky", "task": task("exit 3", &[], &[], json!([])),
             "execution_profile": {"max_retries": 1, "retry_backoff_seconds": 4}},
            {"id": "other", "task": task("true", &[], &[], json!([]))}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &["--jobs", "1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    let flaky = task_record(&record, "flaky")["attempts"]
        .as_array()
        .unwrap();
    assert_eq!(flaky.len(), 2, "{record:#}");
    let other = &task_record(&record, "other")["attempts"][0];
    assert_eq!(other["status"], "succeeded", "{record:#}");
    let time = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    // `other` ran in flaky's backoff, between its two attempts, never beside one.
    assert!(
        time(&flaky[0]["ended_at"]) <= time(&other["started_at"]),
        "{record:#}"
    );
    assert!(
        time(&other["ended_at"]) <= time(&flaky[1]["started_at"]),
        "{record:#}"
    );
}

/// A secret-looking variable set by the pipeline file's `env` or by the task's own `env`
/// reaches the task, yet lands in no file of the pipeline run (the derived task file
/// included): like the conf's values, it travels on the child's standard input.
#[test]
fn secrets_of_the_pipeline_and_task_env_stay_out_of_the_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let env = json!([
        {"name": "API_TOKEN", "value": "", "type": "string", "adjustable": true},
        {"name": "DB_PASSWORD", "value": "", "type": "string", "adjustable": true}
    ]);
    let mut inline = task(
        "echo \"$API_TOKEN $DB_PASSWORD\" | wc -c > /out/lengths",
        &[],
        &[("out", "/out")],
        env,
    );
    inline["env"] = json!([
        {"name": "API_TOKEN", "value": "from-the-task-file"},
        {"name": "DB_PASSWORD", "value": "pw-of-the-task-file"}
    ]);
    let pipeline = json!({
        "name": "secrets",
        "tasks": [{"id": "a", "env": {"API_TOKEN": "tok-of-the-pipeline"}, "task": inline}]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    // "tok-of-the-pipeline pw-of-the-task-file\n": the pipeline's value won.
    assert_eq!(
        std::fs::read_to_string(run_dir.join("a/out/lengths"))
            .unwrap()
            .trim(),
        "40"
    );
    for secret in ["tok-of-the-pipeline", "pw-of-the-task-file"] {
        let leaked: Vec<_> = walk(&run_dir)
            .into_iter()
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(secret)))
            .collect();
        assert!(leaked.is_empty(), "{secret}: {leaked:?}");
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
    }
}

/// The conf file in the shape Kaapana's workflow service sends (`task_form.<task>.env` a
/// list of `{name, value}`, plus `command`, `image` and `resources` overriding the task's
/// own), next to a flat entry, and the pipeline-wide `env`, each at its level:
/// conf > `tasks[].env` > pipeline `env` > task file `env` > template default.
#[test]
fn kaapana_conf_shape_and_pipeline_env_reach_the_task_in_their_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let declared = |name: &str| json!({"name": name, "value": "template", "adjustable": true});
    let mut inline = task(
        "echo never > /out/env",
        &[],
        &[("out", "/out")],
        json!(["P", "F", "T", "C", "L", "D"].map(declared)),
    );
    inline["env"] = json!([
        {"name": "F", "value": "task-file"}, {"name": "T", "value": "task-file"},
        {"name": "C", "value": "task-file"}
    ]);
    // The conf's image replaces one that does not exist.
    inline["image"] = json!("tapir-test/not-there:1");
    let pipeline = json!({
        "name": "precedence",
        "env": {"P": "pipeline", "F": "pipeline", "T": "pipeline", "C": "pipeline", "L": "pipeline"},
        "tasks": [
            {"id": "a", "env": {"T": "task-entry", "C": "task-entry"}, "task": inline},
            {"id": "b", "task": task("echo \"$P $D\" > /out/env", &[], &[("out", "/out")],
                json!([{"name": "D", "value": "template"}]))}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    write_json(
        &dir.path().join("conf.json"),
        &json!({"task_form": {
            "a": {
                "env": [{"name": "L", "value": "conf-list"}],
                "C": "conf-flat",
                "command": ["sh", "-c", "echo \"$P $F $T $C $L $D\" > /out/env"],
                "image": example_image(),
                "resources": {"limits": {"memory": "64Mi"}}
            }
        }}),
    );
    let out = pipeline_run(dir.path(), &["--conf", "conf.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("a/out/env")).unwrap(),
        "pipeline pipeline task-entry conf-flat conf-list template\n"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("b/out/env")).unwrap(),
        "pipeline template\n"
    );
    let record = record(&run_dir);
    let argv = task_record(&record, "a")["attempts"][0]["argv"].to_string();
    assert!(argv.contains("\"--memory\",\"67108864\""), "{argv}");
    // The task run's record names where the conf's values come from, not the standard
    // input they travelled on.
    let task_run = run_dir.join(
        task_record(&record, "a")["attempts"][0]["run_dir"]
            .as_str()
            .unwrap(),
    );
    let task_run_record: Value =
        serde_json::from_str(&std::fs::read_to_string(task_run.join("record.json")).unwrap())
            .unwrap();
    let conf = dir.path().canonicalize().unwrap().join("conf.json");
    for name in ["C", "L"] {
        let entry = task_run_record["plan"]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap();
        assert_eq!(
            entry["source"],
            format!("conf {} task_form.a", conf.display()),
            "{entry}"
        );
    }
}

/// Exit 126 is Kaapana's "skipped": under `profile: kaapana` (or `--profile kaapana`) the
/// task is `skipped` by its own exit code, not retried, its plain dependants are skipped
/// too (Airflow's default trigger rule) while a `can_fail` dependant runs, and the pipeline
/// succeeds. Without a profile 126 is a failure, as any other code.
#[test]
fn exit_126_skips_the_task_under_profile_kaapana() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "skipping",
        "execution_profile": {"max_retries": 2, "retry_backoff_seconds": 0},
        "tasks": [
            {"id": "nothing-to-do", "task": task("exit 126", &[], &[("out", "/out")], json!([]))},
            {"id": "after", "depends_on": [{"id": "nothing-to-do"}],
             "task": task("true", &[], &[], json!([]))},
            {"id": "after-after", "depends_on": [{"id": "after"}],
             "task": task("true", &[], &[], json!([]))},
            {"id": "anyway", "depends_on": [{"id": "nothing-to-do", "can_fail": true}],
             "task": task("true", &[], &[], json!([]))}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &["--profile", "kaapana"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first = record(&only_pipeline_run(dir.path()));
    assert_eq!(first["status"], "succeeded");
    let skipped = task_record(&first, "nothing-to-do");
    assert_eq!(skipped["status"], "skipped", "{skipped:#}");
    assert_eq!(skipped["skipped_by"], "exit-code");
    assert_eq!(skipped["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(skipped["execution"]["skip_exit_code"], 126);
    for id in ["after", "after-after"] {
        let t = task_record(&first, id);
        assert_eq!(t["status"], "skipped");
        assert_eq!(t["skipped_by"], "skipped-dependency", "{t:#}");
    }
    assert_eq!(task_record(&first, "anyway")["status"], "succeeded");
    assert!(
        out.stderr
            .contains("task nothing-to-do: skipped (exit 126: its skip_exit_code)"),
        "{}",
        out.stderr
    );

    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    let failed = task_record(&record, "nothing-to-do");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 3);
    let after = task_record(&record, "after");
    assert_eq!(after["skipped_by"], "failed-dependency", "{after:#}");
}

/// `clean_outputs_before_retry` empties the task's output folders before a retry (as
/// Kaapana's operator does before each attempt); without it a retry finds the failed
/// attempt's files. `retry_policy: fixed` waits the same before every retry.
#[test]
fn outputs_are_cleaned_before_a_retry_and_fixed_backoff_does_not_double() {
    let dir = tempfile::tempdir().unwrap();
    // Exit 7 when the previous attempt's file is still there, else leave it and exit 5.
    let script = "if [ -e /out/partial ]; then exit 7; fi; touch /out/partial; exit 5";
    let pipeline = json!({
        "name": "cleaning",
        "tasks": [
            {"id": "cleaned", "task": task(script, &[], &[("out", "/out")], json!([])),
             "execution_profile": {"max_retries": 2, "retry_policy": "fixed",
                                   "retry_backoff_seconds": 1, "clean_outputs_before_retry": true}},
            {"id": "kept", "task": task(script, &[], &[("out", "/out")], json!([])),
             "execution_profile": {"max_retries": 1, "retry_backoff_seconds": 0}}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    let codes = |id: &str| -> Vec<i64> {
        task_record(&record, id)["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["exit_code"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(codes("cleaned"), [5, 5, 5]);
    assert_eq!(codes("kept"), [5, 7]);
    for line in [
        "task cleaned: failed (exit 5); retry 1/2 in 1s",
        "task cleaned: failed (exit 5); retry 2/2 in 1s",
    ] {
        assert!(out.stderr.contains(line), "{line}: {}", out.stderr);
    }
}

/// `profile: kaapana` written in the file brings Kaapana's operator defaults: outputs
/// wiped before each retry, exit 126 skips; a field set explicitly still wins.
#[test]
fn profile_kaapana_in_the_file_cleans_outputs_before_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let script = "if [ -e /out/partial ]; then exit 7; fi; touch /out/partial; exit 5";
    let pipeline = json!({
        "name": "kaapana-defaults",
        "profile": "kaapana",
        "execution_profile": {"max_retries": 1, "retry_backoff_seconds": 0},
        "tasks": [{"id": "a", "task": task(script, &[], &[("out", "/out")], json!([]))}]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record = record(&only_pipeline_run(dir.path()));
    let a = task_record(&record, "a");
    let codes: Vec<_> = a["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["exit_code"].clone())
        .collect();
    assert_eq!(codes, [json!(5), json!(5)], "{a:#}");
    assert_eq!(a["execution"]["retry_policy"], "fixed");
    assert_eq!(a["execution"]["clean_outputs_before_retry"], true);
}

/// A skip that a failure caused wins over one a self-skip caused (the dependant's skip is
/// then a failure of the pipeline), and `--resume` keeps a task that skipped itself, as it
/// keeps a succeeded one, while it re-runs the failed task.
#[test]
fn a_failure_outweighs_a_self_skip_and_resume_keeps_the_self_skip() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "mixed",
        "profile": "kaapana",
        "tasks": [
            {"id": "skips", "task": task("exit 126", &[], &[], json!([]))},
            {"id": "fails", "task": task("exit 3", &[], &[], json!([]))},
            {"id": "both", "depends_on": [{"id": "skips"}, {"id": "fails"}],
             "task": task("true", &[], &[], json!([]))}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run_dir = only_pipeline_run(dir.path());
    let first = record(&run_dir);
    assert_eq!(task_record(&first, "skips")["skipped_by"], "exit-code");
    let both = task_record(&first, "both");
    assert_eq!(both["skipped_by"], "failed-dependency", "{both:#}");
    assert_eq!(both["message"], "not run: dependency fails failed");

    let out = pipeline_run(dir.path(), &["--resume", run_dir.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let second = record(&run_dir);
    let skips = task_record(&second, "skips");
    assert_eq!(skips["status"], "skipped");
    assert_eq!(skips["skipped_by"], "exit-code");
    assert_eq!(skips["attempts"].as_array().unwrap().len(), 1, "not re-run");
    assert_eq!(
        task_record(&second, "fails")["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// An attempt that `tapir run` refused before the engine was asked (here: its image is
/// not there) has no task run folder; the pipeline record still says what happened —
/// failed, exit 125, tapir's message — and `show` and `logs` say it in words.
#[test]
fn an_attempt_refused_before_it_started_is_recorded_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut absent = task("true", &[], &[("out", "/out")], json!([]));
    absent["image"] = json!("tapir-test/absent:none");
    let pipeline = json!({
        "name": "refused",
        "tasks": [
            {"id": "convert", "task": absent},
            {"id": "after", "task": task("true", &[], &[], json!([])), "depends_on": [{"id": "convert"}]}
        ]
    });
    write_json(&dir.path().join("pipeline.json"), &pipeline);
    let out = pipeline_run(dir.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let missing = "image tapir-test/absent:none is not present locally";
    assert!(
        out.stderr
            .contains(&format!("task convert: failed (did not start: {missing}")),
        "{}",
        out.stderr
    );
    let run_dir = only_pipeline_run(dir.path());
    let record = record(&run_dir);
    let convert = task_record(&record, "convert");
    assert_eq!(convert["status"], "failed");
    let attempt = &convert["attempts"][0];
    assert_eq!(attempt["status"], "engine-error", "{attempt:#}");
    assert_eq!(attempt["tapir_exit_code"], 125, "{attempt:#}");
    assert!(attempt["run_id"].is_null(), "{attempt:#}");
    let message = attempt["message"].as_str().unwrap();
    assert!(message.starts_with(missing), "{message}");
    assert!(message.contains("fix:"), "the whole message: {message}");
    // In a pipeline the fix names the pipeline's key and flag, not `run --pull`.
    assert!(
        message.contains("`\"run_options\": {\"pull\": true}` on task `convert`")
            && message.contains("`pipeline run --pull`")
            && !message.contains("pass --pull"),
        "{message}"
    );
    assert_eq!(task_record(&record, "after")["status"], "skipped");
    let task_runs: Vec<_> = std::fs::read_dir(run_dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("task_run-"))
        .collect();
    assert!(task_runs.is_empty(), "{task_runs:?}");
    assert!(
        std::fs::read_to_string(run_dir.join("runs/convert.tapir.log"))
            .unwrap()
            .contains(missing),
        "tapir's own messages are kept"
    );

    let id = record["id"].as_str().unwrap();
    let show = run(&mut tapir(dir.path(), ["show", "--runs-dir", "runs", id]));
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains(&format!(
            "attempt 1: engine-error, did not start (tapir run exited 125) — {missing}"
        )),
        "{}",
        show.stdout
    );
    let logs = run(&mut tapir(
        dir.path(),
        ["logs", "--runs-dir", "runs", id, "convert"],
    ));
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert_eq!(logs.stdout, "");
    assert!(
        logs.stderr.contains(&format!(
            "attempt 1 of task convert did not start, so it has no logs: {missing}"
        )) && logs.stderr.contains("runs/convert.tapir.log"),
        "{}",
        logs.stderr
    );
}
