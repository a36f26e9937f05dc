//! `--executor slurm` end to end on the real single-node cluster tests/setup/slurm.sh
//! starts (tests/prepare.sh runs it; these tests fail, not skip, without it): each
//! attempt a batch job whose node-side tapir writes the run folder the submitter made.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    example_image, interrupt, leftover_containers, only_record, repo_root, run, tapir,
};

/// The test cluster's slurm.conf (the tests' clients find the cluster through it).
pub(crate) fn slurm_conf() -> PathBuf {
    let root = std::env::var_os("TAPIR_SLURM_ROOT")
        .map_or_else(|| PathBuf::from("/tmp/tapir-slurm"), PathBuf::from);
    let conf = root.join("slurm.conf");
    assert!(
        conf.is_file(),
        "no test Slurm cluster at {}: start it with tests/setup/slurm.sh (tests/prepare.sh does)",
        conf.display()
    );
    conf
}

/// `tapir ARGS` talking to the test cluster.
pub(crate) fn slurm_tapir(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = tapir(dir, args);
    cmd.env("SLURM_CONF", slurm_conf());
    cmd
}

/// A Slurm client command on the test cluster; its stdout.
pub(crate) fn slurm_cli(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .expect("the Slurm clients are installed (tests/setup/slurm.sh)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The state Slurm gives job `id` (`squeue -t all`).
fn job_state(id: &str) -> String {
    slurm_cli("squeue", &["-h", "-t", "all", "-j", id, "-o", "%T"])
}

/// A task file `task.json` in `dir` running `script` with busybox sh in the example image.
fn task(dir: &Path, script: &str, extra: Value) {
    let mut task = json!({
        "name": "hello",
        "image": example_image(),
        "taskTemplate": {"identifier": "t", "description": "slurm case", "inputs": [], "outputs": [], "env": [],
                         "command": ["sh", "-c", script]}
    });
    if let (Some(task), Some(extra)) = (task.as_object_mut(), extra.as_object()) {
        task.extend(extra.clone());
    }
    std::fs::write(dir.join("task.json"), task.to_string()).unwrap();
}

fn job_id(record: &Value) -> String {
    record["executor"]["job_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits (at most 60 s) until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn record_of(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("record.json")).unwrap_or_default())
        .unwrap_or(Value::Null)
}

#[test]
fn slurm_run_gives_the_tasks_exit_code_and_records_its_job() {
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        "echo hello from the job; echo to stderr >&2; exit 3",
        json!({}),
    );
    let out = run(&mut slurm_tapir(
        dir.path(),
        &["run", "task.json", "--executor", "slurm"],
    ));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("hello from the job"), "{out:?}");
    assert!(out.stderr.contains("queued as Slurm job"), "{out:?}");
    let (run_dir, record) = only_record(dir.path());
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 3);
    let id = job_id(&record);
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "{record}"
    );
    assert_eq!(record["executor"]["kind"], "slurm");
    assert_eq!(record["executor"]["node"], slurm_cli("hostname", &["-s"]));
    // Slurm ran it (the job's end is its own: the node-side tapir's exit code; `run`
    // returns on the record, the job may still be completing).
    eventually("the job to end FAILED", || job_state(&id) == "FAILED");
    let script = run_dir.join("job.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    let run_id = record["id"].as_str().unwrap();
    assert!(
        text.contains(&format!("#SBATCH --job-name=tapir-hello-{run_id}\n")),
        "{text}"
    );
    assert!(text.contains("--adopt-queued"), "{text}");
    assert_eq!(
        std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(run_dir.join(format!("slurm-{id}.out")).is_file());

    let ps = run(&mut slurm_tapir(dir.path(), &["ps"]));
    assert!(
        ps.stdout.contains(run_id) && ps.stdout.contains("failed"),
        "{ps:?}"
    );
    let logs = run(&mut slurm_tapir(dir.path(), &["logs", run_id]));
    assert!(
        logs.stdout.contains("hello from the job") && logs.stderr.contains("to stderr"),
        "{logs:?}"
    );
    let show = run(&mut slurm_tapir(dir.path(), &["show", run_id]));
    assert!(
        show.stdout
            .contains(&format!("executor   slurm job {id} on ")),
        "{show:?}"
    );
    let wait = run(&mut slurm_tapir(dir.path(), &["wait", run_id]));
    assert_eq!(wait.code, 3, "{wait:?}");
    let rm = run(&mut slurm_tapir(dir.path(), &["rm", run_id]));
    assert_eq!(rm.code, 0, "{rm:?}");
    assert!(!run_dir.exists());
}

#[test]
fn slurm_dry_run_shows_the_job_script_and_the_sbatch_call_from_every_settings_level() {
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        "true",
        json!({"resources": {"limits": {"memory": "64Mi", "cpu": "1500m"}}}),
    );
    let settings = dir.path().join("slurm.json");
    std::fs::write(
        &settings,
        r#"{"partition": "from-file", "account": "ccat", "qos": "from-file"}"#,
    )
    .unwrap();
    let out = run(slurm_tapir(
        dir.path(),
        &[
            "run",
            "task.json",
            "--executor",
            "slurm",
            "--dry-run",
            "--timeout",
            "30",
            "--qos",
            "from-flag",
            "--sbatch-arg=--exclusive",
        ],
    )
    .env("TAPIR_SLURM_CONFIG", &settings)
    .env("TAPIR_SLURM_PARTITION", "other"));
    assert_eq!(out.code, 0, "{out:?}");
    for line in [
        "#SBATCH --partition=other\n",
        "#SBATCH --account=ccat\n",
        "#SBATCH --qos=from-flag\n",
        "#SBATCH --mem=164M\n",
        "#SBATCH --cpus-per-task=2\n",
        "#SBATCH --time=2\n",
        "#SBATCH --no-requeue\n",
        "# sbatch --parsable --exclusive ",
        "  --adopt-queued\n",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?} in {}",
            out.stdout
        );
    }
    // Nothing was submitted or made.
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("task_run-"))
    );

    std::fs::write(&settings, "{\n  \"partiton\": \"x\"\n}").unwrap();
    let bad = run(slurm_tapir(
        dir.path(),
        &["run", "task.json", "--executor", "slurm", "--dry-run"],
    )
    .env("TAPIR_SLURM_CONFIG", &settings));
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("slurm.json:2:") && bad.stderr.contains("partiton"),
        "{bad:?}"
    );
}

#[test]
fn slurm_run_times_out_as_a_local_one_does() {
    let dir = tempfile::tempdir().unwrap();
    task(dir.path(), "sleep 30", json!({}));
    let out = run(&mut slurm_tapir(
        dir.path(),
        &["run", "task.json", "--executor", "slurm", "--timeout", "1"],
    ));
    assert_eq!(out.code, 124, "{out:?}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "timed-out");
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn ctrl_c_cancels_the_slurm_job_and_waits_until_it_left_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    task(dir.path(), "echo started; sleep 60", json!({}));
    let mut child = slurm_tapir(dir.path(), &["run", "task.json", "--executor", "slurm"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the task to run", || {
        std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with("task_run-")
                && std::fs::read_to_string(e.path().join("stdout.log"))
                    .is_ok_and(|s| s.contains("started"))
        })
    });
    interrupt(&child);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelling Slurm job"), "{stderr}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(job_state(&job_id(&record)), "CANCELLED");
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
    let _ = child.kill();
}

#[test]
fn a_container_over_its_memory_limit_in_a_slurm_job_is_oom_killed() {
    // Docker enforces the limit itself (the container is not the job's child, so Slurm
    // could not); the node-side tapir records it.
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        "exec dd if=/dev/zero of=/dev/null bs=300M count=1",
        json!({"resources": {"limits": {"memory": "50Mi"}}}),
    );
    let out = run(&mut slurm_tapir(
        dir.path(),
        &["run", "task.json", "--executor", "slurm"],
    ));
    assert_eq!(out.code, 137, "{out:?}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "oom-killed", "{record}");
}

/// The apptainer stand-in first on PATH.
fn with_apptainer(cmd: &mut Command) -> &mut Command {
    let path = format!(
        "{}:{}",
        repo_root().join("tests/apptainer").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
}

#[test]
fn slurm_kills_an_apptainer_task_over_its_mem_and_the_record_says_oom() {
    // Apptainer's container is a child of the job: Slurm's --mem (limit + 100 MiB for
    // tapir) is enforced by slurmstepd, which kills tapir too; the submitter settles the
    // record from the job's state and its output file.
    let dir = tempfile::tempdir().unwrap();
    let sandbox = dir.path().join("sandbox");
    let made = Command::new("bash")
        .arg(repo_root().join("tests/apptainer/make-sandbox.sh"))
        .arg(&sandbox)
        .arg(repo_root().join("examples/dummy/processing-container.json"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    task(
        dir.path(),
        "dd if=/dev/zero of=/dev/null bs=300M count=200; echo survived",
        json!({"image": sandbox.display().to_string(), "resources": {"limits": {"memory": "50Mi"}}}),
    );
    let out = run(with_apptainer(&mut slurm_tapir(
        dir.path(),
        &[
            "run",
            "task.json",
            "--executor",
            "slurm",
            "--mode",
            "apptainer",
        ],
    )));
    assert_eq!(out.code, 137, "{out:?}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "oom-killed", "{record}");
    let message = record["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Exceeded job memory limit") && message.contains("slurm-"),
        "{message}"
    );
}

#[test]
fn a_job_whose_node_has_no_tapir_is_reported_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    task(dir.path(), "true", json!({}));
    let out = run(&mut slurm_tapir(
        dir.path(),
        &[
            "run",
            "task.json",
            "--executor",
            "slurm",
            "--tapir-on-node",
            "/nowhere/bin/tapir",
        ],
    ));
    assert_eq!(out.code, 125, "{out:?}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "engine-error");
    let message = record["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("before tapir started on the node"),
        "{message}"
    );
    assert!(
        message.contains("/nowhere/bin/tapir is not an executable"),
        "{message}"
    );
    assert!(message.contains("exit code 127"), "{message}");
    assert!(out.stderr.contains(message), "{out:?}");
}

#[test]
fn a_held_job_is_queued_logs_follow_waits_and_an_admin_cancel_is_said_in_words() {
    let dir = tempfile::tempdir().unwrap();
    task(dir.path(), "echo released and ran; exit 4", json!({}));
    let submit = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "task.json",
            "--executor",
            "slurm",
            "--detach",
            "--sbatch-arg=--hold",
        ];
        args.extend_from_slice(extra);
        run(&mut slurm_tapir(dir.path(), &args))
    };
    let first = submit(&[]);
    assert_eq!(first.code, 0, "{first:?}");
    let run_id = first.stdout.trim().to_string();
    let run_dir = dir.path().join(format!("task_run-{run_id}"));
    let record = record_of(&run_dir);
    assert_eq!(record["status"], "queued", "{record}");
    let job = job_id(&record);
    let ps = run(&mut slurm_tapir(dir.path(), &["ps"]));
    assert!(ps.stdout.contains("queued"), "{ps:?}");

    let follower = slurm_tapir(dir.path(), &["logs", "--follow", &run_id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(record_of(&run_dir)["status"], "queued");
    slurm_cli("scontrol", &["release", &job]);
    let followed = follower.wait_with_output().unwrap();
    assert_eq!(followed.status.code(), Some(4), "{followed:?}");
    assert!(String::from_utf8_lossy(&followed.stdout).contains("released and ran"));

    // Cancelled by someone else while it waited: no record from the node, so the
    // submitter's side says what Slurm says.
    let second = submit(&[]);
    let run_id = second.stdout.trim().to_string();
    let job = job_id(&record_of(&dir.path().join(format!("task_run-{run_id}"))));
    slurm_cli("scancel", &[&job]);
    let waited = run(&mut slurm_tapir(dir.path(), &["wait", &run_id]));
    assert_eq!(waited.code, 130, "{waited:?}");
    assert!(
        waited
            .stderr
            .contains(&format!("Slurm job {job} ended (CANCELLED")),
        "{waited:?}"
    );
    assert!(
        waited.stderr.contains("before tapir started on the node"),
        "{waited:?}"
    );
}

/// A folder holding an `squeue` that fails as one does when the controller is down.
fn failing_squeue(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let squeue = bin.join("squeue");
    std::fs::write(&squeue, "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&squeue, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn a_failing_squeue_is_unknown_never_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = failing_squeue(dir.path());
    // Attached: the record decides; squeue failing is said and waited through.
    task(dir.path(), "sleep 1; echo done", json!({}));
    let out = run(
        slurm_tapir(dir.path(), &["run", "task.json", "--executor", "slurm"]).env("PATH", &path),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("cannot ask Slurm about job")
            && out.stderr.contains("Unable to contact"),
        "{out:?}"
    );

    // A job that is gone but cannot be asked about stays as its record says.
    let runs = dir.path().join("held");
    let held = run(&mut slurm_tapir(
        dir.path(),
        &[
            "run",
            "task.json",
            "--executor",
            "slurm",
            "--detach",
            "--sbatch-arg=--hold",
            "--runs-dir",
            "held",
        ],
    ));
    assert_eq!(held.code, 0, "{held:?}");
    let run_id = held.stdout.trim().to_string();
    let run_dir = runs.join(format!("task_run-{run_id}"));
    slurm_cli("scancel", &[&job_id(&record_of(&run_dir))]);
    eventually("the job to leave the queue", || {
        job_state(&job_id(&record_of(&run_dir))) == "CANCELLED"
    });
    let ps = run(slurm_tapir(dir.path(), &["ps", "--runs-dir", "held"]).env("PATH", &path));
    assert!(ps.stdout.contains("queued"), "{ps:?}");
    assert!(ps.stderr.contains("cannot ask Slurm"), "{ps:?}");
    assert_eq!(record_of(&run_dir)["status"], "queued");
    // Once Slurm answers, it is settled.
    let ps = run(&mut slurm_tapir(dir.path(), &["ps", "--runs-dir", "held"]));
    assert!(ps.stdout.contains("cancelled"), "{ps:?}");
}

/// An inline pipeline task running `script` in the example image.
fn pipeline_task(script: &str, inputs: &[(&str, &str)], outputs: &[(&str, &str)]) -> Value {
    let channels = |list: &[(&str, &str)]| -> Vec<Value> {
        list.iter()
            .map(|(name, path)| json!({"name": name, "mounted_path": path}))
            .collect()
    };
    json!({
        "name": "slurm pipeline task",
        "image": example_image(),
        "taskTemplate": {"identifier": "t", "description": "test", "inputs": channels(inputs),
                         "outputs": channels(outputs), "env": [], "command": ["sh", "-c", script]}
    })
}

fn pipeline_command(dir: &Path, pipeline: &Value, extra: &[&str]) -> Command {
    std::fs::write(dir.join("pipeline.json"), pipeline.to_string()).unwrap();
    let mut args = vec![
        "pipeline",
        "run",
        "pipeline.json",
        "--executor",
        "slurm",
        "--network",
        "none",
        "--runs-dir",
        "runs",
    ];
    args.extend_from_slice(extra);
    slurm_tapir(dir, &args)
}

fn the_pipeline_run(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pipeline-run-"))
        })
        .unwrap_or_default()
}

/// The pipeline record with its journal applied (each journal line is a task's new
/// state), as tapir's readers see it.
fn pipeline_record(dir: &Path) -> Value {
    let run = the_pipeline_run(dir);
    let mut record = record_of(&run);
    let journal = std::fs::read_to_string(run.join("journal.jsonl")).unwrap_or_default();
    for line in journal.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(tasks) = record["tasks"].as_array_mut()
            && let Some(task) = tasks.iter_mut().find(|t| t["id"] == entry["task"]["id"])
        {
            *task = entry["task"].clone();
        }
    }
    record
}

fn task_status(record: &Value, id: &str) -> Value {
    record["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_pipeline_on_slurm_keeps_can_fail_retries_and_data_between_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "three on slurm",
        "execution_profile": {"max_retries": 1, "retry_backoff_seconds": 1},
        "tasks": [
            {"id": "bad", "task": pipeline_task("exit 3", &[], &[]), "execution_profile": {"max_retries": 0}},
            {"id": "flaky", "task": pipeline_task("if [ -f /out/marker ]; then echo second > /out/result; else touch /out/marker; exit 5; fi", &[], &[("out", "/out")]),
             "depends_on": [{"id": "bad", "can_fail": true}]},
            {"id": "last", "task": pipeline_task("cat /in/result", &[("in", "/in")], &[]),
             "iochannel_maps": [{"upstream_task": "flaky", "upstream_output_channel": "out", "input_channel": "in"}]}
        ]
    });
    let out = run(&mut pipeline_command(dir.path(), &pipeline, &[]));
    assert_eq!(out.code, 1, "{out:?}");
    let record = pipeline_record(dir.path());
    assert_eq!(
        task_status(&record, "bad")["status"],
        "failed",
        "{record:#}"
    );
    assert_eq!(task_status(&record, "bad")["attempts"][0]["exit_code"], 3);
    let flaky = task_status(&record, "flaky");
    assert_eq!(flaky["status"], "succeeded", "{record:#}");
    assert_eq!(flaky["attempts"][0]["status"], "failed");
    assert_eq!(flaky["attempts"][1]["status"], "succeeded");
    assert_eq!(task_status(&record, "last")["status"], "succeeded");
    // Every attempt was its own Slurm job, named after its task.
    let run_dir = the_pipeline_run(dir.path());
    let last_run = run_dir.join(
        task_status(&record, "last")["attempts"][0]["run_dir"]
            .as_str()
            .unwrap(),
    );
    let task_run = record_of(&last_run);
    assert_eq!(task_run["executor"]["kind"], "slurm");
    let job = job_id(&task_run);
    assert_eq!(
        slurm_cli("squeue", &["-h", "-t", "all", "-j", &job, "-o", "%j"]),
        format!("tapir-last-{}", task_run["id"].as_str().unwrap())
    );
    let logs = run(&mut slurm_tapir(
        dir.path(),
        &[
            "logs",
            "--runs-dir",
            "runs",
            &run_dir.display().to_string(),
            "last",
        ],
    ));
    assert_eq!(logs.stdout, "second\n", "{logs:?}");
}

#[test]
fn ctrl_c_cancels_a_pipelines_slurm_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({"name": "long", "tasks": [
        {"id": "a", "task": pipeline_task("echo started; sleep 120", &[], &[])},
        {"id": "b", "task": pipeline_task("echo started; sleep 120", &[], &[])}
    ]});
    let mut child = pipeline_command(dir.path(), &pipeline, &["--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("both tasks to run", || {
        let record = pipeline_record(dir.path());
        ["a", "b"].iter().all(|id| {
            task_status(&record, id)["attempts"][0]["run_dir"]
                .as_str()
                .is_some_and(|d| {
                    std::fs::read_to_string(the_pipeline_run(dir.path()).join(d).join("stdout.log"))
                        .is_ok_and(|s| s.contains("started"))
                })
        })
    });
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let record = pipeline_record(dir.path());
    for id in ["a", "b"] {
        let attempt = &task_status(&record, id)["attempts"][0];
        assert_eq!(attempt["status"], "cancelled", "{record:#}");
        let task_run =
            record_of(&the_pipeline_run(dir.path()).join(attempt["run_dir"].as_str().unwrap()));
        assert_eq!(job_state(&job_id(&task_run)), "CANCELLED");
        assert_eq!(
            leftover_containers(&format!(
                "tapir.run-id={}",
                task_run["id"].as_str().unwrap()
            )),
            ""
        );
    }
}

#[test]
fn resume_reattaches_to_a_slurm_job_the_killed_pipeline_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({"name": "resumable", "tasks": [
        {"id": "first", "task": pipeline_task("echo started; sleep 10; echo made > /out/file", &[], &[("out", "/out")])},
        {"id": "second", "task": pipeline_task("cat /in/file", &[("in", "/in")], &[]),
         "iochannel_maps": [{"upstream_task": "first", "upstream_output_channel": "out", "input_channel": "in"}]}
    ]});
    let mut child = pipeline_command(dir.path(), &pipeline, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually("the first task to run", || {
        task_status(&pipeline_record(dir.path()), "first")["attempts"][0]["run_dir"]
            .as_str()
            .is_some_and(|d| {
                std::fs::read_to_string(the_pipeline_run(dir.path()).join(d).join("stdout.log"))
                    .is_ok_and(|s| s.contains("started"))
            })
    });
    // Killed outright: the job is Slurm's and runs on.
    child.kill().unwrap();
    child.wait().unwrap();
    let run_dir = the_pipeline_run(dir.path());
    let first = task_status(&pipeline_record(dir.path()), "first")["attempts"][0].clone();
    let task_run = run_dir.join(first["run_dir"].as_str().unwrap());
    assert_eq!(record_of(&task_run)["status"], "running");
    let resumed = run(&mut pipeline_command(
        dir.path(),
        &pipeline,
        &["--resume", &run_dir.display().to_string()],
    ));
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert!(
        resumed.stderr.contains("waiting for Slurm job"),
        "{resumed:?}"
    );
    let record = pipeline_record(dir.path());
    let attempts = task_status(&record, "first")["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Not submitted again: its one attempt, adopted.
    assert_eq!(attempts.len(), 1, "{record:#}");
    assert_eq!(attempts[0]["status"], "succeeded");
    assert_eq!(task_status(&record, "second")["status"], "succeeded");
    let logs = run(&mut slurm_tapir(
        dir.path(),
        &[
            "logs",
            "--runs-dir",
            "runs",
            &run_dir.display().to_string(),
            "second",
        ],
    ));
    assert_eq!(logs.stdout, "made\n", "{logs:?}");
}

#[test]
fn conf_values_reach_a_slurm_task_and_leave_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut task = pipeline_task(
        "echo ${#API_TOKEN} > /out/token-length",
        &[],
        &[("out", "/out")],
    );
    task["taskTemplate"]["env"] =
        json!([{"name": "API_TOKEN", "value": "none", "type": "string", "adjustable": true}]);
    let pipeline = json!({"name": "secret", "tasks": [{"id": "a", "task": task}]});
    std::fs::write(
        dir.path().join("conf.json"),
        json!({"task_form": {"a": {"API_TOKEN": "s3cret-value"}}}).to_string(),
    )
    .unwrap();
    let out = run(&mut pipeline_command(
        dir.path(),
        &pipeline,
        &["--conf", "conf.json"],
    ));
    assert_eq!(out.code, 0, "{out:?}");
    let run_dir = the_pipeline_run(dir.path());
    assert_eq!(
        std::fs::read_to_string(run_dir.join("a/out/token-length")).unwrap(),
        "12\n"
    );
    // The value travelled in the task run's job.env, which the node-side tapir removed;
    // no file of the run holds it.
    let attempt = &task_status(&pipeline_record(dir.path()), "a")["attempts"][0];
    let task_run = run_dir.join(attempt["run_dir"].as_str().unwrap());
    assert!(!task_run.join("job.env").exists());
    for entry in walk(&run_dir) {
        let text = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&text).contains("s3cret-value"),
            "{} holds the secret",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
