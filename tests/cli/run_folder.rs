//! The run folder's own rules: a full disk fails the run visibly, files are private,
//! nothing is read or deleted through a symbolic link, git ignores run folders, and `ps`
//! reports what `run` reported.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::run::inline_task;
use crate::support::{leftover_containers, only_record, run, tapir};

/// A small file system that really runs out of space (ENOSPC from the kernel), unmounted
/// when dropped.
///
/// Why a tmpfs: a full disk must be a real one. A test-only switch that caps the bytes
/// tapir writes would test the switch, not the kernel's failures on every write path
/// (creating a file, appending a chunk, the temporary record, the rename); `/dev/full`
/// only stands in for one open file (the unit test in `record/logs.rs` uses it), not for a
/// folder whose files tapir creates by name. Mounting needs root: CI runs as root on the
/// project's machines, and where the mount is impossible the test fails, never skips
/// (a skipped test is a test that cannot fail).
struct SmallDisk {
    _holder: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let holder = tempfile::tempdir().unwrap();
        let path = holder.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tapir-test-full-disk")
            .arg(&path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs at {} for a full-disk test (it needs root, as CI \
             runs; the test fails rather than skips): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            _holder: holder,
            path,
        }
    }

    /// Fills the file system to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        let mut step = block.as_slice();
        loop {
            match filler.write(step) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) && step.len() > 1 => {
                    step = &step[..step.len() / 2];
                }
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Runs `tapir run task.json --runs-dir RUNS` in `dir` with output to files (the task may
/// print megabytes), failing the test if it has not ended within `limit`.
fn run_with_limit(dir: &Path, runs: &Path, limit: Duration) -> (i32, String, Duration) {
    let stdout = std::fs::File::create(dir.join("tapir.stdout")).unwrap();
    let stderr = std::fs::File::create(dir.join("tapir.stderr")).unwrap();
    let started = Instant::now();
    let mut child = tapir(dir, ["run", "task.json", "--runs-dir"])
        .arg(runs)
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("tapir starts");
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tapir run did not end within {limit:?}: the task was not stopped; stderr: {}",
                std::fs::read_to_string(dir.join("tapir.stderr")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(dir.join("tapir.stderr")).unwrap();
    (code, stderr, started.elapsed())
}

#[test]
fn a_disk_that_fills_mid_run_stops_the_task_and_fails_naming_the_file() {
    let disk = SmallDisk::mount("1m");
    let dir = tempfile::tempdir().unwrap();
    // 4 MB of output into a 1 MiB disk, then a task that would run for five minutes.
    inline_task(
        dir.path(),
        "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 4000000; sleep 300",
        json!({}),
    );
    let runs = disk.path.join("runs");
    let (code, stderr, took) = run_with_limit(dir.path(), &runs, Duration::from_secs(90));
    assert_eq!(code, 125, "{stderr}");
    assert!(
        stderr.contains("cannot write ") && stderr.contains("/stdout.log: No space left on device"),
        "names the file: {stderr}"
    );
    assert!(
        took < Duration::from_secs(60),
        "stopped, not left to run: {took:?}"
    );
    assert!(!stderr.contains("succeeded"), "{stderr}");
    // The time comes before the message, which ends in a clause of its own.
    assert!(
        stderr.contains("ended after ") && !stderr.contains("is not kept after"),
        "{stderr}"
    );
    // The space set aside at the start is what lets the final record be written.
    let (run_dir, record) = only_record(&runs);
    assert_eq!(record["status"], "write-failed", "{record:#}");
    let message = record["message"].as_str().unwrap();
    assert!(
        message.contains("stdout.log: No space left on device")
            && message.contains("the task was stopped"),
        "{message}"
    );
    assert!(!run_dir.join(".tapir-reserve").exists());
    let id = record["id"].as_str().unwrap();
    assert_eq!(leftover_containers(&format!("tapir.run-id={id}")), "");
    // `wait` and `ps` agree with `run`.
    let waited = run(tapir(dir.path(), ["wait", "--runs-dir"]).arg(&runs).arg(id));
    assert_eq!(waited.code, 125, "{}", waited.stderr);
}

#[test]
fn a_runs_folder_already_full_refuses_the_run_and_leaves_no_folder() {
    let disk = SmallDisk::mount("512k");
    let runs = disk.path.join("runs");
    std::fs::create_dir(&runs).unwrap();
    disk.fill();
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "touch /out/started",
        json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/out"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}]
        }),
    );
    let (code, stderr, _) = run_with_limit(dir.path(), &runs, Duration::from_secs(60));
    assert_eq!(code, 125, "{stderr}");
    assert!(
        stderr.contains("cannot write ") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(stderr.contains("the run was not started"), "{stderr}");
    assert!(
        !dir.path().join("out/started").exists(),
        "no container may start"
    );
    let left: Vec<_> = std::fs::read_dir(&runs).unwrap().flatten().collect();
    assert!(left.is_empty(), "no run folder is left: {left:?}");
}

#[test]
fn a_runs_folder_already_full_refuses_a_pipeline_run_with_125_and_leaves_no_folder() {
    let disk = SmallDisk::mount("512k");
    let runs = disk.path.join("runs");
    std::fs::create_dir(&runs).unwrap();
    disk.fill();
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "touch /out/started", json!({}));
    std::fs::write(
        dir.path().join("pipeline.json"),
        json!({"name": "full", "tasks": [{"id": "only", "task": "task.json"}]}).to_string(),
    )
    .unwrap();
    let out = run(tapir(
        dir.path(),
        ["pipeline", "run", "pipeline.json", "--runs-dir"],
    )
    .arg(&runs));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot write ") && out.stderr.contains("No space left on device"),
        "names the file: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the pipeline was not started"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("task only: started"), "{}", out.stderr);
    let left: Vec<_> = std::fs::read_dir(&runs).unwrap().flatten().collect();
    assert!(left.is_empty(), "no pipeline run folder is left: {left:?}");
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Runs git in `dir`, which must succeed, and returns what it printed.
fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn run_folder_files_are_private_and_ignored_by_git() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| git_in(dir.path(), args);
    git(&["init", "-q"]);
    inline_task(
        dir.path(),
        "echo a secret-looking line; echo oops >&2",
        json!({}),
    );
    git(&["add", "task.json"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "task",
    ]);
    // The default runs folder is the current one: the repository.
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (run_dir, _) = only_record(dir.path());
    for name in [
        "record.json",
        "stdout.log",
        "stderr.log",
        "output.idx",
        ".gitignore",
    ] {
        assert_eq!(mode_of(&run_dir.join(name)), 0o600, "{name}");
    }
    assert!(!run_dir.join(".tapir-reserve").exists());
    assert_eq!(git(&["status", "--porcelain"]), "", "git status is clean");
}

#[test]
fn pipeline_run_files_are_private_and_ignored_by_git() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo hello", json!({}));
    std::fs::write(
        dir.path().join("pipeline.json"),
        json!({"name": "p", "tasks": [{"id": "only", "task": "task.json"}]}).to_string(),
    )
    .unwrap();
    let out = run(&mut tapir(dir.path(), ["pipeline", "run", "pipeline.json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let pipeline_dir = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("pipeline-run-")
        })
        .expect("a pipeline run folder");
    assert_eq!(mode_of(&pipeline_dir.join(".gitignore")), 0o600);
    assert_eq!(mode_of(&pipeline_dir.join("record.json")), 0o600);
    assert_eq!(mode_of(&pipeline_dir.join("runs/only.task.json")), 0o600);
    assert_eq!(mode_of(&pipeline_dir.join("runs/only.tapir.log")), 0o600);
}

/// A finished run folder made by hand at `dir` (no engine needed), with its logs.
fn fake_run(dir: &Path, status: &str, exit_code: Option<i64>) {
    std::fs::create_dir_all(dir).unwrap();
    let id = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("task_run-")
        .to_string();
    let mut record = json!({
        "format_version": 1, "id": id, "mode": "docker", "status": status,
        "created_at": "2026-01-02T03:04:05Z", "started_at": "2026-01-02T03:04:05Z",
        "ended_at": "2026-01-02T03:04:15Z", "pid": 1, "host": "elsewhere.example"
    });
    if let Some(code) = exit_code {
        record["exit_code"] = json!(code);
    }
    std::fs::write(dir.join("record.json"), record.to_string()).unwrap();
    for log in ["stdout.log", "stderr.log", "output.idx"] {
        std::fs::write(dir.join(log), "").unwrap();
    }
}

#[test]
fn rm_and_prune_never_delete_through_a_symlinked_run_folder() {
    let runs = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("task_run-01target");
    fake_run(&target, "failed", Some(3));
    let link = runs.path().join("task_run-01linked");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let out = run(&mut tapir(runs.path(), ["rm", "task_run-01linked"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("is a symbolic link") && out.stderr.contains("deletes nothing"),
        "{}",
        out.stderr
    );
    let out = run(&mut tapir(
        runs.path(),
        ["rm", "--force", "task_run-01linked/"],
    ));
    assert_eq!(
        out.code, 1,
        "a trailing slash does not get through: {}",
        out.stderr
    );
    let out = run(&mut tapir(runs.path(), ["prune", "--status", "failed"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("skipped"), "{}", out.stderr);
    for name in ["record.json", "stdout.log", "stderr.log", "output.idx"] {
        assert!(target.join(name).exists(), "{name} survived");
    }
    assert!(link.exists());
}

#[test]
fn a_record_that_is_a_folder_is_removed_only_with_force() {
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().join("task_run-01folder");
    std::fs::create_dir_all(dir.join("record.json/inner")).unwrap();
    std::fs::write(dir.join("stdout.log"), "").unwrap();
    let out = run(&mut tapir(runs.path(), ["rm", "task_run-01folder"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("not a plain file"), "{}", out.stderr);
    assert!(dir.exists());
    let out = run(&mut tapir(
        runs.path(),
        ["rm", "--force", "task_run-01folder"],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!dir.exists());
}

#[test]
fn a_symlinked_record_is_never_read() {
    let runs = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("not-a-record.json");
    std::fs::write(&secret, r#"{"format_version": 1, "note": "outside file"}"#).unwrap();
    let dir = runs.path().join("task_run-01linkrec");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("record.json")).unwrap();

    let out = run(&mut tapir(
        runs.path(),
        ["show", "--format", "json", "task_run-01linkrec"],
    ));
    assert_ne!(out.code, 0);
    assert!(!out.stdout.contains("outside file"), "{}", out.stdout);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);

    let out = run(&mut tapir(runs.path(), ["ps"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("unreadable"), "{}", out.stdout);
    assert!(!out.stdout.contains("1970"), "{}", out.stdout);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
}

#[test]
fn a_symlinked_run_folder_is_never_read() {
    // The folder itself is the link: `record.json` inside it is a plain file, so only a
    // check of the folder keeps `show` and `logs` from showing another place's files as
    // this run's (as `rm` refuses to delete through it).
    let runs = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("task_run-01target");
    fake_run(&target, "failed", Some(3));
    std::fs::write(target.join("stdout.log"), "outside log\n").unwrap();
    std::os::unix::fs::symlink(&target, runs.path().join("task_run-01linked")).unwrap();

    let out = run(&mut tapir(
        runs.path(),
        ["show", "--format", "json", "task_run-01linked"],
    ));
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(!out.stdout.contains("elsewhere.example"), "{}", out.stdout);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);

    let out = run(&mut tapir(runs.path(), ["logs", "task_run-01linked"]));
    assert!(!out.stdout.contains("outside log"), "{}", out.stdout);

    let out = run(&mut tapir(runs.path(), ["ps"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("unreadable"), "{}", out.stdout);
}

#[test]
fn ps_shows_the_exit_codes_run_gave_and_no_growing_duration_for_lost_runs() {
    let runs = tempfile::tempdir().unwrap();
    fake_run(&runs.path().join("task_run-01a"), "cancelled", Some(143));
    fake_run(&runs.path().join("task_run-01b"), "timed-out", Some(143));
    fake_run(&runs.path().join("task_run-01c"), "failed", Some(3));
    // Lost: says running, its supervisor (on this machine, pid beyond the kernel's limit)
    // is gone, and no end was written.
    let lost = runs.path().join("task_run-01d");
    std::fs::create_dir(&lost).unwrap();
    std::fs::write(
        lost.join("record.json"),
        json!({"format_version": 1, "id": "01d", "status": "running",
               "created_at": "2026-01-02T03:04:05Z", "pid": 4_294_967_294u32})
        .to_string(),
    )
    .unwrap();
    let out = run(&mut tapir(runs.path(), ["ps", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let entry = |id: &str| {
        listed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("01a")["tapir_exit_code"], 130);
    assert_eq!(entry("01a")["exit_code"], 143, "the container's own stays");
    assert_eq!(entry("01b")["tapir_exit_code"], 124);
    assert_eq!(entry("01c")["tapir_exit_code"], 3);
    assert_eq!(entry("01d")["status"], "lost");
    assert_eq!(entry("01d")["duration_seconds"], serde_json::Value::Null);

    let table = run(&mut tapir(runs.path(), ["ps"])).stdout;
    let line = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} in {table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    // ID TASK TEMPLATE IMAGE MODE STATUS EXIT STARTED(2 words) DURATION
    assert_eq!(line("01a")[6], "130", "{table}");
    assert_eq!(line("01b")[6], "124", "{table}");
    assert_eq!(line("01d")[5], "lost", "{table}");
    assert_eq!(line("01d").last(), Some(&"-"), "{table}");
}

/// Runs that tapir refuses before it asks the engine to start the container — a task it
/// cannot read, an image that is not there, an input that is missing, an unknown channel
/// or template, a refused env value, an engine it cannot reach, an output folder it cannot
/// make, attached or `--detach` — say why and exit 125, and leave nothing in the folder:
/// it stays `git status`-clean, ignored files included.
#[test]
fn a_run_refused_before_it_starts_leaves_no_folder_and_git_status_clean() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| git_in(dir.path(), args);
    git(&["init", "-q"]);
    let tasks: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "image.json",
            json!({"name": "x", "image": "tapir-test/absent:none", "taskTemplate": {
                "identifier": "t", "description": "d", "inputs": [], "outputs": [], "env": []}}),
            "image tapir-test/absent:none is not present locally",
        ),
        (
            "input.json",
            json!({"name": "x", "image": crate::support::example_image(), "taskTemplate": {
                "identifier": "t", "description": "d", "outputs": [], "env": [],
                "inputs": [{"name": "in", "mounted_path": "/in"}]},
                "inputs": [{"name": "in", "volume_source": {"host_path": "no-such-folder"}}]}),
            "no-such-folder cannot be used: it does not exist",
        ),
        (
            "channel.json",
            json!({"name": "x", "image": crate::support::example_image(), "taskTemplate": {
                "identifier": "t", "description": "d", "inputs": [], "outputs": [], "env": []},
                "outputs": [{"name": "reslts", "volume_source": {"host_path": "out"}}]}),
            "reslts",
        ),
        (
            "template.json",
            json!({"name": "x", "image": crate::support::example_image(), "taskTemplate": "upstrem"}),
            "template `upstrem` is not in the image's /processing-container.json",
        ),
        (
            "env.json",
            json!({"name": "x", "image": crate::support::example_image(), "taskTemplate": {
                "identifier": "t", "description": "d", "inputs": [], "outputs": [],
                "env": [{"name": "MODE", "value": "fast", "type": "string", "choices": ["fast", "slow"]}]},
                "env": [{"name": "MODE", "value": "medium"}]}),
            "medium",
        ),
        // Refused after its folder was made (an output folder that cannot be created):
        // the folder is removed again.
        (
            "output.json",
            json!({"name": "x", "image": crate::support::example_image(), "taskTemplate": {
                "identifier": "t", "description": "d", "inputs": [], "env": [],
                "outputs": [{"name": "out", "mounted_path": "/out"}]},
                "outputs": [{"name": "out", "volume_source": {"host_path": "a-file/out"}}]}),
            "cannot create output folder",
        ),
    ];
    std::fs::write(dir.path().join("a-file"), "not a folder").unwrap();
    for (file, task, _) in &tasks {
        std::fs::write(dir.path().join(file), task.to_string()).unwrap();
    }
    std::fs::write(dir.path().join("invalid.json"), "{\"name\": ").unwrap();
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "tasks",
    ]);
    let expected_entries = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = expected_entries(dir.path());
    let mut cases: Vec<(Vec<&str>, &str)> = tasks
        .iter()
        .map(|(file, _, words)| (vec!["run", "--network", "none", file], *words))
        .collect();
    cases.push((
        vec!["run", "invalid.json"],
        "invalid.json is not a valid task",
    ));
    cases.push((
        vec!["run", "--detach", "--network", "none", "image.json"],
        "image tapir-test/absent:none is not present locally",
    ));
    cases.push((
        vec!["run", "--detach", "--network", "none", "input.json"],
        "no-such-folder cannot be used: it does not exist",
    ));
    for (args, words) in &cases {
        let out = run(&mut tapir(dir.path(), args));
        assert_eq!(out.code, 125, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("record:"),
            "{args:?}: no record is named: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "", "{args:?}: no run id");
        assert_eq!(expected_entries(dir.path()), before, "{args:?}");
    }
    // An engine tapir cannot reach while it checks the image.
    let out = run(
        tapir(dir.path(), ["run", "--network", "none", "image.json"])
            .env("DOCKER_HOST", "unix:///nonexistent/tapir-test.sock"),
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert_eq!(expected_entries(dir.path()), before, "engine down");
    assert_eq!(
        git(&["status", "--porcelain", "--ignored"]),
        "",
        "git status is clean, ignored files included"
    );
    assert!(!dir.path().join("out").exists(), "no output folder either");
}
