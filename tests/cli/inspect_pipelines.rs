//! `ps`, `show`, `logs`, `outputs`, `wait` and `rm` on pipeline runs. `tapir pipeline run`
//! is not needed: the pipeline run folder is written here by hand in the record format of
//! src/pipeline/record.rs, around real task runs made by `tapir run`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::run::inline_task;
use crate::support::{run, tapir};

/// A finished pipeline run `pipeline-run-01pipe…` in `runs_dir`, of pipeline `demo`:
/// task `a` succeeded (wrote `a/out/item/result.txt`), task `b` failed twice (exit 3,
/// attempts printing `first try` and `second try`), task `c` was skipped. Returns the
/// folder and the ids of the task runs (a, b#1, b#2).
fn finished_pipeline(runs_dir: &Path) -> (PathBuf, [String; 3]) {
    let dir = runs_dir.join("pipeline-run-01pipe000000000000000");
    let runs = dir.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::create_dir_all(dir.join("a/out")).unwrap();
    std::fs::create_dir_all(dir.join("b/out")).unwrap();
    std::fs::create_dir_all(dir.join("c/out")).unwrap();
    let a = task_run(
        &dir,
        "a",
        "echo hello from a; echo warning from a >&2; mkdir -p /out/item; echo data > /out/item/result.txt",
        &dir.join("a/out"),
    );
    let b1 = task_run(&dir, "b", "echo first try; exit 3", &dir.join("b/out"));
    let b2 = task_run(&dir, "b", "echo second try; exit 3", &dir.join("b/out"));
    let attempt = |number: u32, id: &str, status: &str, code: i64| {
        json!({
            "number": number, "run_id": id, "run_dir": format!("runs/task_run-{id}"),
            "status": status, "exit_code": code, "tapir_exit_code": code,
            "started_at": "2026-11-21T10:00:01Z", "ended_at": "2026-11-21T10:00:02Z"
        })
    };
    let folders = |task: &str, input: Option<&str>| {
        let mut list = vec![
            json!({"channel": "out", "direction": "output", "managed": true, "path": format!("{task}/out")}),
        ];
        if let Some(from) = input {
            list.push(json!({"channel": "in", "direction": "input", "managed": true, "path": format!("{from}/out")}));
        }
        list
    };
    let record = json!({
        "format_version": 1,
        "kind": "pipeline-run",
        "id": "01pipe000000000000000",
        "tapir_version": "0.1.0",
        "name": "demo",
        "profile": "kaapana",
        "mode": "docker",
        "jobs": 2,
        "pipeline_file": {"path": "/data/demo/pipeline.json", "sha256": "0123456789abcdef0123456789abcdef"},
        "status": "failed",
        "message": "1 succeeded, 1 failed, 1 skipped",
        "exit_code": 1,
        "created_at": "2026-11-21T10:00:00Z",
        "ended_at": "2026-11-21T10:00:07Z",
        "tasks": [
            {"id": "a", "level": 1, "status": "succeeded", "source_task": "inline",
             "task_file": "runs/a.task.json", "depends_on": [], "folders": folders("a", None),
             "attempts": [attempt(1, &a, "succeeded", 0)]},
            {"id": "b", "level": 2, "status": "failed", "message": "exited with code 3",
             "source_task": "/data/demo/b.task.json", "task_file": "runs/b.task.json",
             "depends_on": ["a"], "folders": folders("b", Some("a")),
             "attempts": [attempt(1, &b1, "failed", 3), attempt(2, &b2, "failed", 3)]},
            {"id": "c", "level": 3, "status": "skipped", "message": "b failed",
             "source_task": "inline", "task_file": "runs/c.task.json", "depends_on": ["b"],
             "folders": folders("c", Some("b")), "attempts": []}
        ]
    });
    std::fs::write(
        dir.join("record.json"),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
    (dir, [a, b1, b2])
}

/// Runs `script` as task `task_id` of the pipeline run `dir` (its derived task file
/// `runs/<task_id>.task.json`, its run under `runs/`, output to `out`), as `pipeline run`
/// does; returns the task run's id.
fn task_run(dir: &Path, task_id: &str, script: &str, out: &Path) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let task = inline_task(
        scratch.path(),
        script,
        json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/out"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": out.display().to_string()}}]
        }),
    );
    let derived = dir.join("runs").join(format!("{task_id}.task.json"));
    std::fs::copy(task, &derived).unwrap();
    let before = task_runs(&dir.join("runs"));
    let done = run(&mut tapir(
        dir,
        [
            "run",
            "--network",
            "none",
            "--runs-dir",
            "runs",
            &format!("runs/{task_id}.task.json"),
        ],
    ));
    assert!(done.code < 125, "{}", done.stderr);
    let made: Vec<String> = task_runs(&dir.join("runs"))
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    made[0].clone()
}

fn task_runs(runs: &Path) -> Vec<String> {
    std::fs::read_dir(runs)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("task_run-")
                .map(str::to_owned)
        })
        .collect()
}

/// A pipeline record in `runs_dir` that says `running`, with `pid` as its process.
fn running_pipeline(runs_dir: &Path, id: &str, pid: u32) -> PathBuf {
    let dir = runs_dir.join(format!("pipeline-run-{id}"));
    std::fs::create_dir_all(dir.join("runs")).unwrap();
    std::fs::create_dir_all(dir.join("a/out")).unwrap();
    let record = json!({
        "format_version": 1, "kind": "pipeline-run", "id": id, "name": "slow",
        "mode": "docker", "status": "running", "pid": pid,
        "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "created_at": "2026-11-21T11:00:00Z",
        "tasks": [{"id": "a", "level": 1, "status": "pending", "task_file": "runs/a.task.json",
                   "folders": [{"channel": "out", "direction": "output", "managed": true, "path": "a/out"}]}]
    });
    std::fs::write(dir.join("record.json"), record.to_string()).unwrap();
    dir
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn ps_lists_pipeline_runs_among_task_runs_and_their_task_runs_only_with_all() {
    let dir = tempfile::tempdir().unwrap();
    let (_, [a, b1, b2]) = finished_pipeline(dir.path());
    // A task run of its own (ids sort by age: the fixture's id is the newer one).
    inline_task(dir.path(), "true", json!({}));
    let own = run(&mut tapir(
        dir.path(),
        ["run", "--network", "none", "task.json"],
    ));
    assert_eq!(own.code, 0, "{}", own.stderr);

    let out = run(&mut tapir(dir.path(), ["ps"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(
        rows.len(),
        2,
        "nested task runs are not listed: {}",
        out.stdout
    );
    assert!(
        rows[0].starts_with("01pipe000000000000000")
            && rows[0].contains("pipeline demo (1/3 ok)")
            && rows[0].contains("failed")
            && rows[0].contains("7.0s"),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains("test task"), "newest first: {}", rows[1]);

    let all = run(&mut tapir(dir.path(), ["ps", "--all"]));
    let rows: Vec<&str> = all.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{}", all.stdout);
    assert!(rows[4].contains("test task"), "{}", rows[4]);
    for (row, (id, label)) in rows[1..4]
        .iter()
        .zip([(&b2, "b #2"), (&b1, "b #1"), (&a, "a #1")])
    {
        assert!(
            row.starts_with(&format!("  {id}")) && row.contains(label),
            "{label}: {row}"
        );
    }

    let listed = json_of(&run(&mut tapir(dir.path(), ["ps", "--format", "json"])).stdout);
    assert_eq!(listed["format_version"], 1);
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["kind"], "task-run");
    assert_eq!(runs[0]["kind"], "pipeline-run");
    assert_eq!(runs[0]["id"], "01pipe000000000000000");
    assert_eq!(runs[0]["name"], "demo");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["exit_code"], 1);
    assert_eq!(runs[0]["tasks_total"], 3);
    assert_eq!(
        runs[0]["task_counts"],
        json!({"succeeded": 1, "failed": 1, "skipped": 1})
    );
    assert_eq!(runs[0]["duration_seconds"], 7.0);

    let listed = json_of(&run(&mut tapir(dir.path(), ["ps", "--all", "--format", "json"])).stdout);
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[3]["id"], a.as_str());
    assert_eq!(runs[3]["kind"], "task-run");
    assert_eq!(runs[3]["pipeline_run"], "01pipe000000000000000");
    assert_eq!(runs[3]["pipeline_task"], "a");
    assert_eq!(runs[3]["attempt"], 1);
    assert!(runs[4]["pipeline_run"].is_null());
}

#[test]
fn show_prints_a_pipeline_run_task_by_task_and_its_record_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, [a, _, b2]) = finished_pipeline(dir.path());
    let out = run(&mut tapir(dir.path(), ["show", "01pipe"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = &out.stdout;
    for expected in [
        "pipeline-run-01pipe000000000000000",
        "failed, exit code 1 — 1 succeeded, 1 failed, 1 skipped",
        "demo (/data/demo/pipeline.json, sha256 0123456789ab)",
        "a: succeeded (level 1)",
        &format!("attempt 1: succeeded, exit code 0, task run {a} (runs/task_run-{a})"),
        "b: failed (level 2) — exited with code 3",
        "depends on: a",
        &format!("attempt 2: failed, exit code 3, task run {b2}"),
        "output out: b/out (managed)",
        "input in: a/out (managed)",
        "c: skipped (level 3) — b failed",
        "no attempts",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let shown = json_of(
        &run(&mut tapir(
            dir.path(),
            [
                "show",
                "--format",
                "json",
                "pipeline-run-01pipe000000000000000",
            ],
        ))
        .stdout,
    );
    assert_eq!(shown["kind"], "pipeline-run");
    assert_eq!(shown["tasks"][1]["attempts"][1]["run_id"], b2.as_str());
    assert_eq!(shown["observed_status"], "failed");
    assert_eq!(shown["dir"], pipeline.display().to_string());

    // A task of the pipeline: its latest attempt's task run record.
    let task = run(&mut tapir(dir.path(), ["show", "01pipe", "b"]));
    assert_eq!(task.code, 0, "{}", task.stderr);
    assert!(
        task.stdout.contains(&format!("run        {b2}")),
        "{}",
        task.stdout
    );
    assert!(task.stdout.contains("exit code 3"), "{}", task.stdout);
}

#[test]
fn logs_of_a_pipeline_task_replay_its_latest_or_a_chosen_attempt() {
    let dir = tempfile::tempdir().unwrap();
    finished_pipeline(dir.path());
    let latest = run(&mut tapir(dir.path(), ["logs", "01pipe", "b"]));
    assert_eq!(latest.code, 0, "{}", latest.stderr);
    assert_eq!(latest.stdout, "second try\n");
    let first = run(&mut tapir(
        dir.path(),
        ["logs", "01pipe", "b", "--attempt", "1"],
    ));
    assert_eq!(first.stdout, "first try\n", "{}", first.stderr);
    let a = run(&mut tapir(dir.path(), ["logs", "--stderr", "01pipe", "a"]));
    assert_eq!(
        (a.stdout.as_str(), a.stderr.as_str()),
        ("", "warning from a\n")
    );
    let tail = run(&mut tapir(
        dir.path(),
        ["logs", "-n", "1", "-t", "--stderr", "01pipe", "a"],
    ));
    assert!(
        tail.stderr.ends_with("Z warning from a\n") && tail.stdout.is_empty(),
        "{tail:?}"
    );

    let missing = run(&mut tapir(dir.path(), ["logs", "01pipe"]));
    assert_eq!(missing.code, 2);
    assert!(
        missing
            .stderr
            .contains("is a pipeline run: name one of its tasks (a, b, c)")
            && missing.stderr.contains("fix: tapir logs 01pipe a"),
        "{}",
        missing.stderr
    );
    let typo = run(&mut tapir(dir.path(), ["logs", "01pipe", "bb"]));
    assert_eq!(typo.code, 2);
    assert!(
        typo.stderr
            .contains("pipeline run 01pipe000000000000000 has no task `bb` (its tasks: a, b, c)")
            && typo.stderr.contains("did you mean `b`?"),
        "{}",
        typo.stderr
    );
    let skipped = run(&mut tapir(dir.path(), ["logs", "01pipe", "c"]));
    assert_eq!(skipped.code, 2);
    assert!(
        skipped
            .stderr
            .contains("task c has not run (skipped — b failed)"),
        "{}",
        skipped.stderr
    );
    let no_attempt = run(&mut tapir(
        dir.path(),
        ["logs", "01pipe", "b", "--attempt", "3"],
    ));
    assert_eq!(no_attempt.code, 2);
    assert!(
        no_attempt
            .stderr
            .contains("task b has no attempt 3 (it has 1, 2)"),
        "{}",
        no_attempt.stderr
    );
}

#[test]
fn a_task_id_or_attempt_on_a_task_run_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo hi", json!({}));
    let done = run(&mut tapir(
        dir.path(),
        ["run", "--network", "none", "task.json"],
    ));
    assert_eq!(done.code, 0, "{}", done.stderr);
    let name = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("task_run-"))
        .unwrap();
    let out = run(&mut tapir(dir.path(), ["logs", &name, "a"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("is a task run: a task id is only for pipeline runs"),
        "{}",
        out.stderr
    );
    let plain = run(&mut tapir(dir.path(), ["logs", &name]));
    assert_eq!(plain.stdout, "hi\n");
}

#[test]
fn outputs_of_a_pipeline_run_list_each_tasks_channels() {
    let dir = tempfile::tempdir().unwrap();
    finished_pipeline(dir.path());
    let out = run(&mut tapir(dir.path(), ["outputs", "01pipe"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("a.out"), "{}", out.stdout);
    assert!(out.stdout.contains("item/result.txt"), "{}", out.stdout);
    assert!(out.stdout.contains("b.out"), "{}", out.stdout);
    let listed = json_of(
        &run(&mut tapir(
            dir.path(),
            ["outputs", "--format", "json", "01pipe"],
        ))
        .stdout,
    );
    assert_eq!(listed["run"], "01pipe000000000000000");
    assert_eq!(listed["tasks"][0]["id"], "a");
    assert_eq!(
        listed["tasks"][0]["outputs"][0]["files"][0]["path"],
        "item/result.txt"
    );
    // One task: its latest task run's outputs, with the convention checks.
    let one = run(&mut tapir(dir.path(), ["outputs", "01pipe", "a"]));
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert!(one.stdout.contains("item/result.txt"), "{}", one.stdout);
}

#[test]
fn wait_on_a_pipeline_run_returns_its_recorded_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    finished_pipeline(dir.path());
    let done = run(&mut tapir(
        dir.path(),
        ["wait", "pipeline-run-01pipe000000000000000"],
    ));
    assert_eq!(done.code, 1, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("01pipe000000000000000: failed — 1 succeeded, 1 failed, 1 skipped"),
        "{}",
        done.stderr
    );

    // Running: wait returns once the record says how it ended.
    let mut holder = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pipeline = running_pipeline(dir.path(), "01run0000000000000000", holder.id());
    let mut waiter = tapir(dir.path(), ["wait", "01run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "wait returned while it runs"
    );
    let mut record = json_of(&std::fs::read_to_string(pipeline.join("record.json")).unwrap());
    record["status"] = json!("cancelled");
    record["exit_code"] = json!(130);
    std::fs::write(pipeline.join("record.json"), record.to_string()).unwrap();
    assert_eq!(waiter.wait().unwrap().code(), Some(130));

    // Lost: its process is gone without writing the end.
    let lost = running_pipeline(dir.path(), "01lost000000000000000", holder.id());
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = run(&mut tapir(dir.path(), ["wait", "01lost"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("01lost000000000000000: lost"),
        "{}",
        out.stderr
    );
    let ps = run(&mut tapir(dir.path(), ["ps"]));
    assert!(
        ps.stdout
            .lines()
            .any(|l| l.starts_with("01lost") && l.contains("lost")),
        "{}",
        ps.stdout
    );
    assert!(lost.exists());
}

#[test]
fn rm_of_a_pipeline_run_keeps_output_data_unless_asked_and_cancels_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, [a, ..]) = finished_pipeline(dir.path());
    std::fs::write(dir.path().join("pipeline.json"), "{}").unwrap();

    // One attempt alone would leave the pipeline record linking a missing run.
    let attempt = run(&mut tapir(dir.path(), ["rm", &a]));
    assert_eq!(attempt.code, 1, "{}", attempt.stderr);
    assert!(
        attempt.stderr.contains("it is an attempt of pipeline run")
            && attempt.stderr.contains("tapir rm --force"),
        "{}",
        attempt.stderr
    );
    assert!(pipeline.join("runs").join(format!("task_run-{a}")).exists());

    let pruned = run(&mut tapir(dir.path(), ["prune"]));
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    assert!(
        pipeline.join("record.json").exists(),
        "prune leaves pipeline runs alone"
    );

    let refused = run(&mut tapir(dir.path(), ["rm", "01pipe"]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("holds output data in a/out (1 file, 5B)")
            && refused.stderr.contains("tapir rm --outputs"),
        "{}",
        refused.stderr
    );
    assert!(pipeline.join("record.json").exists(), "nothing removed");
    assert!(pipeline.join("runs").exists());

    let removed = run(&mut tapir(dir.path(), ["rm", "--outputs", "01pipe"]));
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(!pipeline.exists(), "{}", removed.stderr);
    assert!(
        removed.stderr.contains(
            "removed pipeline-run-01pipe000000000000000 (3 task runs, output data in a/out)"
        ),
        "{}",
        removed.stderr
    );
    assert!(dir.path().join("pipeline.json").exists());

    // Only tapir's files: anything else stays, and is named.
    let (pipeline, _) = finished_pipeline(dir.path());
    std::fs::remove_dir_all(pipeline.join("a/out/item")).unwrap();
    std::fs::write(pipeline.join("notes.txt"), "mine").unwrap();
    let out = run(&mut tapir(dir.path(), ["rm", "01pipe"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("it also holds notes.txt"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(pipeline.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!pipeline.join("runs").exists() && !pipeline.join("a").exists());

    // Running: refused; --force stops its process and then removes it.
    let mut holder = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let running = running_pipeline(dir.path(), "01run0000000000000000", holder.id());
    let refused = run(&mut tapir(dir.path(), ["rm", "01run"]));
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("pipeline run 01run0000000000000000 is still running"),
        "{}",
        refused.stderr
    );
    assert!(running.exists());
    let reaper = std::thread::spawn(move || holder.wait().unwrap());
    let forced = run(&mut tapir(dir.path(), ["rm", "--force", "01run"]));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(!running.exists());
    assert!(
        !reaper.join().unwrap().success(),
        "the pipeline's process got SIGTERM"
    );
}

#[test]
fn logs_follow_waits_for_a_pending_task_and_for_the_task_run_its_attempt_was_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pipeline = running_pipeline(dir.path(), "01run0000000000000000", holder.id());
    let not_yet = run(&mut tapir(dir.path(), ["logs", "01run", "a"]));
    assert_eq!(not_yet.code, 2);
    assert!(
        not_yet.stderr.contains("task a has not run (pending)")
            && not_yet
                .stderr
                .contains("`--follow` waits for the task to start"),
        "{}",
        not_yet.stderr
    );
    let follower = tapir(dir.path(), ["logs", "--follow", "01run", "a"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // The attempt starts: its run id and folder are recorded before the folder exists.
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(pipeline.join("record.json")).unwrap())
            .unwrap();
    record["tasks"][0]["status"] = json!("running");
    record["tasks"][0]["attempts"] = json!([{
        "number": 1, "run_id": "01assigned", "run_dir": "runs/task_run-01assigned",
        "status": "running", "started_at": "2026-11-21T11:00:01Z"
    }]);
    std::fs::write(pipeline.join("record.json"), record.to_string()).unwrap();
    let starting = run(&mut tapir(dir.path(), ["logs", "01run", "a"]));
    assert_eq!(starting.code, 2, "{}", starting.stderr);
    assert!(
        starting
            .stderr
            .contains("attempt 1 of task a is starting: its task run"),
        "{}",
        starting.stderr
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let scratch = tempfile::tempdir().unwrap();
    let task = inline_task(
        scratch.path(),
        "echo followed; exit 4",
        json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/out"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": pipeline.join("a/out").display().to_string()}}]
        }),
    );
    std::fs::copy(task, pipeline.join("runs/a.task.json")).unwrap();
    let done = run(&mut tapir(
        &pipeline,
        [
            "run",
            "--network",
            "none",
            "--runs-dir",
            "runs",
            "--run-id",
            "01assigned",
            "runs/a.task.json",
        ],
    ));
    assert_eq!(done.code, 4, "{}", done.stderr);
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&followed.stdout),
        "followed\n",
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    assert_eq!(followed.status.code(), Some(4), "the task run's exit code");
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// `show` and `outputs` of a task that has not run yet: exit 2, why, and the command
/// that works on the pipeline run as a whole.
#[test]
fn show_and_outputs_of_a_task_that_has_not_run_say_so_and_what_works_instead() {
    let dir = tempfile::tempdir().unwrap();
    running_pipeline(dir.path(), "00pend", std::process::id());
    for (command, instead) in [
        ("show", "shows the pipeline run"),
        ("outputs", "lists every task's folders"),
    ] {
        let out = run(&mut tapir(dir.path(), [command, "00pend", "a"]));
        assert_eq!(out.code, 2, "{command}: {}", out.stderr);
        assert!(
            out.stderr.contains("task a has not run (pending)"),
            "{command}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .contains(&format!("fix: `tapir {command} 00pend` {instead}")),
            "{command}: {}",
            out.stderr
        );
    }
}
