//! `run --executor k8s` end to end, against the kubectl stand-in on Docker
//! (`tests/k8s/kubectl`, first on PATH): no Kubernetes API server can run here, so these
//! tests check tapir's side of the conversation — the calls, the run folder, the record,
//! cancelling and cleaning up — with the stand-in playing a one-node cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{example_image, interrupt, only_record, repo_root, run, tapir};

/// A folder with the script task, and a `tapir run --executor k8s` in it that finds the
/// stand-in first on PATH and keeps the stand-in's Secrets in the folder.
fn k8s_run(dir: &Path, script: &str) -> Command {
    example_image();
    std::fs::copy(
        repo_root().join("tests/fixtures/k8s/script-task.json"),
        dir.join("task.json"),
    )
    .unwrap();
    let mut cmd = tapir(dir, ["run", "--executor", "k8s", "--runs-dir", "runs"]);
    cmd.env("PATH", stand_in_path())
        .env("TAPIR_KUBECTL_STATE", dir.join("state"))
        .arg("task.json")
        .arg("-e")
        .arg(format!("SCRIPT={script}"));
    cmd
}

fn stand_in_path() -> String {
    format!(
        "{}:{}",
        repo_root().join("tests/k8s").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The stand-in's containers still there for a pod.
fn leftover(pod: &str) -> String {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            "label=tapir-kubectl-standin=1",
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| n.ends_with(pod))
        .collect::<Vec<_>>()
        .join(",")
}

fn pod_of(record: &Value) -> String {
    record["executor"]["object"]
        .as_str()
        .and_then(|o| o.strip_prefix("pod/"))
        .expect("the record names pod/<name>")
        .to_string()
}

/// Every file under `dir`, read as text.
fn all_text(dir: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    text
}

#[test]
fn k8s_run_records_the_pods_end_its_logs_and_outputs_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = k8s_run(
        dir.path(),
        "echo started; echo to-err >&2; echo made > /home/out/f; test -n \"$API_TOKEN\"; exit 3",
    );
    cmd.args(["-e", "API_TOKEN=tok-never-shown-4711"])
        .args(["--namespace", "team-a"]);
    let done = run(&mut cmd);
    assert_eq!(done.code, 3, "{}", done.stderr);
    let (run_dir, record) = only_record(&dir.path().join("runs"));
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 3);
    assert_eq!(record["executor"]["kind"], "k8s");
    assert_eq!(record["executor"]["namespace"], "team-a");
    assert_eq!(record["executor"]["state"], "Terminated: Error");
    let pod = pod_of(&record);
    // Kubernetes gives stdout and stderr as one stream: both land in stdout.log.
    let logs = std::fs::read_to_string(run_dir.join("stdout.log")).unwrap();
    assert!(
        logs.contains("started") && logs.contains("to-err"),
        "{logs}"
    );
    assert!(done.stdout.contains("started"), "{}", done.stdout);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/f")).unwrap(),
        "made\n"
    );
    assert_eq!(record["outputs"][0]["channel"], "out");
    // The secret reached the container (the script checks it) but nothing tapir wrote.
    for (what, text) in [
        ("run folder", all_text(&run_dir)),
        ("stdout", done.stdout.clone()),
        ("stderr", done.stderr.clone()),
    ] {
        assert!(
            !text.contains("tok-never-shown-4711"),
            "secret in the {what}"
        );
    }
    assert!(
        std::fs::read_to_string(run_dir.join("manifests.yaml"))
            .unwrap()
            .contains(&format!("{pod}-env")),
        "the env Secret is named in the kept manifests"
    );
    // Pod and Secrets deleted: no container, nothing left in the stand-in's store.
    assert_eq!(leftover(&pod), "");
    let stored = all_text(&dir.path().join("state"));
    assert!(stored.is_empty(), "the stand-in still holds: {stored}");
}

#[test]
fn k8s_run_succeeds_with_exit_0_and_keep_leaves_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let done = run(k8s_run(dir.path(), "echo fine").arg("--keep"));
    assert_eq!(done.code, 0, "{}", done.stderr);
    let (_, record) = only_record(&dir.path().join("runs"));
    assert_eq!(record["status"], "succeeded");
    assert!(record["started_at"].is_string() && record["ended_at"].is_string());
    let pod = pod_of(&record);
    assert_ne!(leftover(&pod), "", "--keep keeps the pod");
    let removed = Command::new(repo_root().join("tests/k8s/kubectl"))
        .env("TAPIR_KUBECTL_STATE", dir.path().join("state"))
        .args([
            "delete",
            &format!("pod/{pod}"),
            &format!("secret/{pod}-env"),
        ])
        .args(["--ignore-not-found"])
        .output()
        .unwrap();
    assert!(removed.status.success());
    assert_eq!(leftover(&pod), "");
}

#[test]
fn k8s_run_over_its_memory_limit_is_oom_killed() {
    let dir = tempfile::tempdir().unwrap();
    let done = run(&mut k8s_run(
        dir.path(),
        "echo started; x=a; while true; do x=$x$x; done",
    ));
    assert_eq!(done.code, 137, "{}", done.stderr);
    let (_, record) = only_record(&dir.path().join("runs"));
    assert_eq!(record["status"], "oom-killed");
    assert_eq!(record["executor"]["state"], "Terminated: OOMKilled");
    assert_eq!(leftover(&pod_of(&record)), "");
}

#[test]
fn k8s_run_past_its_timeout_is_timed_out_by_the_pods_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let done = run(k8s_run(dir.path(), "echo started; sleep 60").args(["--timeout", "2"]));
    assert_eq!(done.code, 124, "{}", done.stderr);
    assert!(started.elapsed() < Duration::from_secs(40));
    let (run_dir, record) = only_record(&dir.path().join("runs"));
    assert_eq!(record["status"], "timed-out");
    assert_eq!(record["executor"]["state"], "Failed: DeadlineExceeded");
    assert!(
        std::fs::read_to_string(run_dir.join("stdout.log"))
            .unwrap()
            .contains("started")
    );
    let manifests = std::fs::read_to_string(run_dir.join("manifests.yaml")).unwrap();
    assert!(
        manifests.contains("activeDeadlineSeconds: 2"),
        "{manifests}"
    );
    assert_eq!(leftover(&pod_of(&record)), "");
}

#[test]
fn k8s_run_cancelled_with_ctrl_c_deletes_the_pod_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = k8s_run(dir.path(), "echo started; sleep 120");
    let child = crate::support::start_until_started(&mut cmd);
    interrupt(&child);
    let started = Instant::now();
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(40));
    let (_, record) = only_record(&dir.path().join("runs"));
    assert_eq!(record["status"], "cancelled");
    assert_eq!(record["executor"]["state"], "Deleted");
    assert_eq!(leftover(&pod_of(&record)), "");
    assert!(all_text(&dir.path().join("state")).is_empty());
}

/// A kubectl that never answers: tapir gives up after TAPIR_ENGINE_TIMEOUT with words
/// that say what did not answer, records the run as not started, and exits 125.
#[test]
fn k8s_run_against_a_kubectl_that_never_answers_fails_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let stub = dir.path().join("bin");
    std::fs::create_dir(&stub).unwrap();
    let kubectl = stub.join("kubectl");
    std::fs::write(&kubectl, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(
        &kubectl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = k8s_run(dir.path(), "true");
    cmd.env(
        "PATH",
        format!("{}:{}", stub.display(), std::env::var("PATH").unwrap()),
    )
    .env("TAPIR_ENGINE_TIMEOUT", "2");
    let started = Instant::now();
    let done = run(&mut cmd);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(done.code, 125, "{}", done.stderr);
    assert!(
        done.stderr.contains("kubectl did not answer within 2 s"),
        "{}",
        done.stderr
    );
    let (_, record) = only_record(&dir.path().join("runs"));
    assert_eq!(record["status"], "engine-error");
}

#[test]
fn the_kubectl_stand_in_refuses_what_it_does_not_implement() {
    let out = Command::new(repo_root().join("tests/k8s/kubectl"))
        .args(["apply", "-f", "pod.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("verb `apply` is not implemented"), "{said}");
}

/// `--detach` returns once the Pod is created; `wait` asks the cluster (nobody follows the
/// Pod) and settles the run: its end, its logs fetched into the run folder, its objects
/// deleted. `ps` then shows the end.
#[test]
fn k8s_detached_run_is_settled_by_wait_and_shown_by_ps_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = k8s_run(dir.path(), "echo started; sleep 2; echo done; exit 4");
    let done = run(cmd.arg("--detach"));
    assert_eq!(done.code, 0, "{}", done.stderr);
    let id = done.stdout.trim().to_string();
    let (_, record) = only_record(&dir.path().join("runs"));
    assert!(
        ["queued", "running"].contains(&record["status"].as_str().unwrap()),
        "{record}"
    );
    assert!(
        record.get("pid").is_none(),
        "no tapir follows a detached pod"
    );
    let pod = pod_of(&record);
    let tapir_here = |args: &[&str]| {
        let mut cmd = tapir(dir.path(), args);
        cmd.args(["--runs-dir", "runs"])
            .env("PATH", stand_in_path())
            .env("TAPIR_KUBECTL_STATE", dir.path().join("state"));
        cmd
    };
    let waited = run(&mut tapir_here(&["wait", &id]));
    assert_eq!(waited.code, 4, "{}", waited.stderr);
    let (_, record) = only_record(&dir.path().join("runs"));
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 4);
    let logs = run(&mut tapir_here(&["logs", &id]));
    assert_eq!(logs.stdout, "started\ndone\n", "{}", logs.stderr);
    let ps = run(&mut tapir_here(&["ps"]));
    assert!(ps.stdout.contains("failed"), "{}", ps.stdout);
    assert_eq!(leftover(&pod), "");
    assert!(all_text(&dir.path().join("state")).is_empty());
}

/// `rm --force` of a detached run deletes its Pod and Secrets through kubectl, then the
/// run folder.
#[test]
fn k8s_rm_force_of_a_detached_run_deletes_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = k8s_run(dir.path(), "echo started; exec sleep 120");
    let done = run(cmd.args(["--detach", "--grace", "1"]));
    assert_eq!(done.code, 0, "{}", done.stderr);
    let id = done.stdout.trim().to_string();
    let (run_dir, record) = only_record(&dir.path().join("runs"));
    let pod = pod_of(&record);
    assert_ne!(leftover(&pod), "");
    let mut rm = tapir(dir.path(), ["rm", "--force", "--runs-dir", "runs", &id]);
    rm.env("PATH", stand_in_path())
        .env("TAPIR_KUBECTL_STATE", dir.path().join("state"));
    let removed = run(&mut rm);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(!run_dir.exists());
    assert_eq!(leftover(&pod), "");
    assert!(all_text(&dir.path().join("state")).is_empty());
}

/// A detached run whose cluster stops answering: `ps` says so once and shows the run as
/// its record says, in bounded time (one deadline, not one per run).
#[test]
fn k8s_ps_with_a_silent_kubectl_warns_once_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let mut cmd = k8s_run(dir.path(), "exec sleep 120");
        let done = run(cmd.args(["--detach", "--grace", "1"]));
        assert_eq!(done.code, 0, "{}", done.stderr);
    }
    let stub = dir.path().join("bin");
    std::fs::create_dir(&stub).unwrap();
    let kubectl = stub.join("kubectl");
    std::fs::write(&kubectl, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(
        &kubectl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut ps = tapir(dir.path(), ["ps", "--runs-dir", "runs"]);
    ps.env("PATH", format!("{}:{}", stub.display(), stand_in_path()))
        .env("TAPIR_ENGINE_TIMEOUT", "2");
    let started = Instant::now();
    let listed = run(&mut ps);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(
        listed.stderr.matches("cannot ask the cluster").count(),
        1,
        "{}",
        listed.stderr
    );
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
    // Clean up through the stand-in.
    for id in std::fs::read_dir(dir.path().join("runs")).unwrap() {
        let name = id.unwrap().file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_prefix("task_run-") else {
            continue;
        };
        let mut rm = tapir(dir.path(), ["rm", "--force", "--runs-dir", "runs", id]);
        rm.env("PATH", stand_in_path())
            .env("TAPIR_KUBECTL_STATE", dir.path().join("state"));
        assert_eq!(run(&mut rm).code, 0);
    }
}

/// `pipeline run --executor k8s`: each task is submitted as a Pod when its upstream tasks
/// have succeeded (each attempt a `tapir run --executor k8s` child of the pipeline), the
/// data flowing through the pipeline's folders; every task run's record names its Pod,
/// and no Pod is left.
#[test]
fn k8s_pipeline_runs_each_task_as_a_pod_in_dependency_order() {
    example_image();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("examples/pipeline"))
        .arg(&pipeline)
        .status()
        .unwrap();
    assert!(copied.success());
    let mut cmd = tapir(
        &pipeline,
        [
            "pipeline",
            "run",
            "--executor",
            "k8s",
            "--namespace",
            "team-a",
            "pipeline.json",
            "--conf",
            "conf.json",
            "--runs-dir",
            "runs",
        ],
    );
    cmd.env("PATH", stand_in_path())
        .env("TAPIR_KUBECTL_STATE", dir.path().join("state"));
    let done = run(&mut cmd);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let mut records = Vec::new();
    let mut stack = vec![pipeline.join("runs")];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.ends_with("record.json")
                && path
                    .parent()
                    .unwrap()
                    .to_string_lossy()
                    .contains("task_run-")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                records.push(serde_json::from_str::<Value>(&text).unwrap());
            }
        }
    }
    assert_eq!(records.len(), 3, "one task run per task");
    let mut order: Vec<(String, String)> = Vec::new();
    for record in &records {
        assert_eq!(record["status"], "succeeded", "{record}");
        assert_eq!(record["executor"]["kind"], "k8s");
        assert_eq!(record["executor"]["namespace"], "team-a");
        assert_eq!(leftover(&pod_of(record)), "");
        order.push((
            record["started_at"].as_str().unwrap().to_string(),
            record["task_name"].as_str().unwrap().to_string(),
        ));
    }
    // Each level starts after the one before has ended.
    order.sort();
    let names: Vec<&str> = order.iter().map(|(_, n)| n.as_str()).collect();
    assert!(
        names[0].contains("get") && names[1].contains("process") && names[2].contains("upload"),
        "{names:?}"
    );
    assert!(all_text(&dir.path().join("state")).is_empty());
}

/// `pipeline run --executor k8s` does not carry a task's Kubernetes `config` beyond its
/// labels into the Pods; it says so for each such task instead of dropping the keys
/// without a word (`export k8s` keeps them).
#[test]
fn k8s_pipeline_says_which_config_keys_its_pods_do_not_get() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = serde_json::json!({
        "name": "config-said",
        "tasks": [{"id": "a", "task": {
            "name": "a", "image": example_image(),
            "taskTemplate": {"identifier": "t", "description": "d", "inputs": [],
                "outputs": [], "env": [], "command": ["true"]},
            "config": {"namespace": "science", "labels": {"team": "imaging"},
                "annotations": {"owner": "lab-3"}}
        }}]
    });
    std::fs::write(dir.path().join("p.json"), pipeline.to_string()).unwrap();
    let mut cmd = tapir(
        dir.path(),
        [
            "pipeline",
            "run",
            "--executor",
            "k8s",
            "p.json",
            "--runs-dir",
            "runs",
        ],
    );
    cmd.env("PATH", stand_in_path())
        .env("TAPIR_KUBECTL_STATE", dir.path().join("state"));
    let done = run(&mut cmd);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(
        done.stderr
            .contains("task `a`: config `namespace`, `annotations` are not carried into its Pod"),
        "{}",
        done.stderr
    );
    assert!(
        !done.stderr.contains("`labels`"),
        "labels are carried: {}",
        done.stderr
    );
}
