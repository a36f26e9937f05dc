//! An engine that accepts connections and never answers, or a `docker` client that hangs:
//! every command that asks the engine gives up after the deadline (TAPIR_ENGINE_TIMEOUT),
//! says what did not answer and how to change the deadline. A run refused that way
//! leaves no folder (it never started); one cancelled while waiting leaves a record.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::run::inline_task;
use crate::support::{Run, example_image, fixtures, only_record, tapir};

/// A Docker API socket that accepts every connection and never says a word.
struct SilentEngine {
    dir: tempfile::TempDir,
    /// Connections accepted so far: a client is waiting on this engine once it is above 0.
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SilentEngine {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("docker.sock")).unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            // Held open, never read from or written to.
            let mut held: Vec<UnixStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Self { dir, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns once more than `before` clients have connected: the newest waits for an
    /// answer that never comes.
    fn wait_for_a_client(&self, before: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.accepted() <= before {
            assert!(
                Instant::now() < deadline,
                "no client connected to the engine"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `tapir` pointed at this engine, with a deadline of `seconds`.
    fn tapir(&self, cwd: &Path, args: &[&str], seconds: u32) -> Command {
        let mut cmd = tapir(cwd, args);
        cmd.env(
            "DOCKER_HOST",
            format!("unix://{}", self.dir.path().join("docker.sock").display()),
        )
        .env_remove("TAPIR_DOCKER")
        .env("TAPIR_ENGINE_TIMEOUT", seconds.to_string());
        cmd
    }
}

/// `tapir` with a `docker` stand-in from tests/fixtures/engine.
fn with_client(cwd: &Path, args: &[&str], client: &str, seconds: u32) -> Command {
    let mut cmd = tapir(cwd, args);
    cmd.env("TAPIR_DOCKER", fixtures().join("engine").join(client))
        .env("TAPIR_ENGINE_TIMEOUT", seconds.to_string());
    cmd
}

/// Runs `cmd` to its end, failing the test (and killing it) if it takes longer than
/// `limit`: a hang must be a failure, not a test that never ends.
fn run_within(cmd: &mut Command, limit: Duration) -> (Run, Duration) {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tapir starts");
    let out = wait_within(
        child,
        limit,
        &format!("tapir was still running after {limit:?}: it hangs"),
    );
    (out, started.elapsed())
}

/// Waits for `child`, killed with `hung` as the panic message when it outlasts `limit`.
fn wait_within(child: Child, limit: Duration, hung: &str) -> Run {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(limit) else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("{hung}");
    };
    let output = output.unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Generous for a loaded machine, far below "forever".
const LIMIT: Duration = Duration::from_secs(40);

fn assert_names_the_deadline(out: &Run, seconds: u32) {
    assert!(
        out.stderr
            .contains(&format!("did not answer within {seconds} s")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("TAPIR_ENGINE_TIMEOUT"),
        "the override is named: {}",
        out.stderr
    );
}

#[test]
fn run_against_a_silent_engine_gives_125_and_no_run_folder() {
    let engine = SilentEngine::start();
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let (out, took) = run_within(
        &mut engine.tapir(dir.path(), &["run", "task.json"], 2),
        LIMIT,
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert_names_the_deadline(&out, 2);
    assert!(
        out.stderr.contains("docker.sock"),
        "names the engine: {}",
        out.stderr
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // The engine was asked about the image, never to start the container: the run was
    // refused before it started, and a refused run leaves no folder.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("task_run-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn dry_run_and_inspect_against_a_silent_engine_give_125() {
    let engine = SilentEngine::start();
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    for args in [
        &["run", "--dry-run", "task.json"][..],
        &["inspect", example_image()][..],
        &["validate", "--image", example_image()][..],
        &["images"][..],
    ] {
        let (out, took) = run_within(&mut engine.tapir(dir.path(), args, 2), LIMIT);
        assert_eq!(out.code, 125, "{args:?}: {}", out.stderr);
        assert_names_the_deadline(&out, 2);
        assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
    }
    assert!(
        !std::fs::read_dir(dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("task_run-")),
        "a dry run makes no run folder"
    );
}

#[test]
fn doctor_against_a_silent_engine_or_client_says_so_and_gives_125() {
    let engine = SilentEngine::start();
    let dir = tempfile::tempdir().unwrap();
    let (out, took) = run_within(&mut engine.tapir(dir.path(), &["doctor"], 2), LIMIT);
    assert_eq!(out.code, 125, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("FAIL docker daemon"), "{}", out.stdout);
    assert!(
        out.stdout.contains("did not answer within 2 s"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("TAPIR_ENGINE_TIMEOUT"),
        "{}",
        out.stdout
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");

    // Through the `docker` client (no socket): the same deadline.
    let (out, took) = run_within(
        &mut with_client(dir.path(), &["doctor"], "silent-client", 2),
        LIMIT,
    );
    assert_eq!(out.code, 125, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("did not answer within 2 s"),
        "{}",
        out.stdout
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// A record that says `running`, whose supervisor is gone, with a container name.
fn lost_run(runs: &Path) -> PathBuf {
    let dir = runs.join("task_run-00001m00000000lostrun");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixtures().join("engine/lost-docker-run.record.json"),
        dir.join("record.json"),
    )
    .unwrap();
    dir
}

#[test]
fn ps_and_rm_of_a_running_record_do_not_hang_on_a_silent_engine() {
    let engine = SilentEngine::start();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = lost_run(dir.path());

    let (out, took) = run_within(&mut engine.tapir(dir.path(), &["ps"], 2), LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("00001m00000000lostrun"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("engine unreachable: status may be stale"),
        "{}",
        out.stderr
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");

    let (out, took) = run_within(
        &mut engine.tapir(dir.path(), &["rm", "00001m00000000lostrun"], 2),
        LIMIT,
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("engine unreachable"),
        "the container may still be there, and rm says so: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("tapir-00001m00000000lostrun"),
        "{}",
        out.stderr
    );
    assert!(!run_dir.exists(), "the run folder is removed");
}

/// Waits until `runs` holds a run folder, and returns it.
fn wait_for_run_dir(runs: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(dir) = std::fs::read_dir(runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("task_run-")
            })
        {
            return dir;
        }
        assert!(Instant::now() < deadline, "no run folder appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn end_within(child: Child, limit: Duration) -> Run {
    wait_within(
        child,
        limit,
        &format!("tapir did not end within {limit:?} of the signal"),
    )
}

#[test]
fn ctrl_c_or_sigterm_while_the_engine_is_silent_is_130_with_a_record() {
    let engine = SilentEngine::start();
    for name in ["INT", "TERM"] {
        let dir = tempfile::tempdir().unwrap();
        inline_task(dir.path(), "true", json!({}));
        // A long deadline: the signal, not the deadline, must end it.
        let before = engine.accepted();
        let child = engine
            .tapir(dir.path(), &["run", "task.json"], 300)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The folder is made by the cancel: until the run starts there is none.
        engine.wait_for_a_client(before);
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, name);
        let out = end_within(child, Duration::from_secs(15));
        assert_eq!(out.code, 130, "SIG{name}: {}", out.stderr);
        let run_dir = wait_for_run_dir(dir.path());
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("record.json")).unwrap())
                .unwrap();
        assert_eq!(record["status"], "cancelled", "SIG{name}: {record}");
    }
}

#[test]
fn a_docker_run_client_that_hangs_is_given_up_after_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let (out, took) = run_within(
        &mut with_client(dir.path(), &["run", "task.json"], "docker-stalls-on-run", 3),
        LIMIT,
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("did not start the container within 3 s"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("TAPIR_ENGINE_TIMEOUT"),
        "{}",
        out.stderr
    );
    assert!(took < Duration::from_secs(25), "took {took:?}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "engine-error");
}

#[test]
fn ctrl_c_while_docker_run_hangs_is_130_with_a_record() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let child = with_client(
        dir.path(),
        &["run", "task.json", "--grace", "1"],
        "docker-stalls-on-run",
        300,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let run_dir = wait_for_run_dir(dir.path());
    // Until the record has the argv: `docker run` has been started.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(run_dir.join("record.json"))
        .is_ok_and(|r| r.contains("\"argv\": [\n"))
    {
        assert!(Instant::now() < deadline, "docker run never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "INT");
    let out = end_within(child, Duration::from_secs(15));
    assert_eq!(out.code, 130, "{}", out.stderr);
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("record.json")).unwrap())
            .unwrap();
    assert_eq!(record["status"], "cancelled", "{record}");
}

#[test]
fn a_bad_engine_timeout_is_a_usage_error_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "soon", "-3"] {
        let out =
            crate::support::run(tapir(dir.path(), ["doctor"]).env("TAPIR_ENGINE_TIMEOUT", bad));
        assert_eq!(out.code, 2, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("TAPIR_ENGINE_TIMEOUT"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("fix:"), "{}", out.stderr);
    }
}

/// Creates (does not start) a container `name` labelled as tapir labels a run's.
fn create_labelled_container(name: &str, run_id: &str, run_dir: &str) {
    let created = Command::new("docker")
        .args([
            "create",
            "--name",
            name,
            "--label",
            &format!("tapir.run-id={run_id}"),
            "--label",
            &format!("tapir.run-dir={run_dir}"),
            "--network",
            "none",
            example_image(),
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
}

#[test]
fn a_labelled_container_of_another_runs_folder_is_not_called_orphaned() {
    // Someone else's container, labelled like tapir's, for a run folder we cannot see.
    let name = format!("tapir-test-not-ours-{}", std::process::id());
    create_labelled_container(
        &name,
        "00001m0000000000other",
        "/somewhere/else/task_run-00001m0000000000other",
    );
    // And one whose record is lost but lies in another runs folder.
    let other_runs = tempfile::tempdir().unwrap();
    let lost = lost_run(other_runs.path());
    let name_lost = format!("tapir-test-other-lost-{}", std::process::id());
    create_labelled_container(
        &name_lost,
        "00001m00000000lostrun",
        &lost.display().to_string(),
    );

    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let out = crate::support::run(&mut tapir(dir.path(), ["run", "task.json"]));
    for container in [&name, &name_lost] {
        let _ = Command::new("docker")
            .args(["rm", "--force", container])
            .output();
    }
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains(&name), "{}", out.stderr);
    assert!(!out.stderr.contains(&name_lost), "{}", out.stderr);
    assert!(!out.stderr.contains("docker rm"), "{}", out.stderr);
    assert!(!out.stderr.contains("left behind"), "{}", out.stderr);
}

#[test]
fn a_gpu_task_without_the_nvidia_runtime_points_at_doctor() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({"resources": {"limits": {"nvidia.com/gpu": "1"}}}),
    );
    let out = crate::support::run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(out.stderr.contains("tapir doctor"), "{}", out.stderr);
    assert!(
        out.stderr.contains("NVIDIA Container Toolkit"),
        "{}",
        out.stderr
    );
    let (_, record) = only_record(dir.path());
    assert!(
        record["message"].as_str().unwrap().contains("tapir doctor"),
        "{record}"
    );
}

#[test]
fn an_apptainer_that_never_answers_costs_one_deadline() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    // `apptainer exec --help` (what this apptainer can do) hangs: the dry run goes on
    // without the optional flags after the deadline.
    let mut cmd = tapir(
        dir.path(),
        ["run", "--dry-run", "--mode", "apptainer", "task.json"],
    );
    cmd.env("TAPIR_APPTAINER", fixtures().join("engine/silent-client"))
        .env("TAPIR_ENGINE_TIMEOUT", "2");
    let (out, took) = run_within(&mut cmd, LIMIT);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("exec"), "{}", out.stdout);
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn apptainer_mode_says_the_docker_engine_did_not_answer_about_the_image() {
    // The task's image is looked up in the Docker engine (to convert it to a SIF). A
    // silent engine is not "the image is not local": that would send the user after the
    // image instead of the engine.
    let engine = SilentEngine::start();
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    for args in [
        &["run", "--mode", "apptainer", "task.json"][..],
        &["run", "--dry-run", "--mode", "apptainer", "task.json"][..],
    ] {
        let mut cmd = engine.tapir(dir.path(), args, 2);
        cmd.env(
            "TAPIR_APPTAINER",
            crate::support::repo_root().join("tests/apptainer/apptainer"),
        );
        let (out, took) = run_within(&mut cmd, LIMIT);
        assert_eq!(out.code, 125, "{args:?}: {}", out.stderr);
        assert_names_the_deadline(&out, 2);
        assert!(!out.stderr.contains("is not local"), "{}", out.stderr);
        assert!(took < Duration::from_secs(20), "took {took:?}");
    }
}

#[test]
fn ctrl_c_while_detach_waits_for_a_stalled_start_ends_tapir_and_rm_force_cancels_the_run() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let child = with_client(
        dir.path(),
        &["run", "--detach", "task.json", "--grace", "1"],
        "docker-stalls-on-run",
        300,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let run_dir = wait_for_run_dir(dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "INT");
    // Ended by the signal, as a plain Ctrl-C would end a waiting program.
    let out = end_within(child, Duration::from_secs(10));
    assert_ne!(out.code, 0, "{}", out.stderr);
    // The supervisor still waits on the stalled start; `rm --force` cancels it.
    let (out, _) = run_within(
        &mut with_client(
            dir.path(),
            &["rm", "--force", &run_dir.display().to_string()],
            "docker-stalls-on-run",
            300,
        ),
        LIMIT,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!run_dir.exists());
}

#[test]
fn ctrl_c_when_the_engine_does_not_answer_docker_stop_is_130_and_says_the_container_may_live_on() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo started; sleep 300", json!({}));
    let mut child = crate::support::start_until_started(&mut with_client(
        dir.path(),
        &["run", "task.json", "--grace", "1"],
        "docker-stalls-on-stop",
        2,
    ));
    signal(&child, "INT");
    // Stdout was read up to "started"; the rest is not needed.
    let ended = (0..300).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().unwrap()
    });
    let (_, record) = only_record(dir.path());
    let container = record["container"].as_str().unwrap_or_default().to_string();
    if ended.is_none() {
        let _ = child.kill();
    }
    let _ = Command::new("docker")
        .args(["rm", "--force", &container])
        .output();
    let ended = ended.expect("tapir ended within 30 s of the signal");
    assert_eq!(ended.code(), Some(130));
    assert_eq!(record["status"], "cancelled", "{record}");
    let message = record["message"].as_str().unwrap();
    assert!(message.contains("may still be running"), "{message}");
    assert!(message.contains("TAPIR_ENGINE_TIMEOUT"), "{message}");
}
