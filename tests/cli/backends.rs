//! One table of end-to-end cases, run on both backends: Docker (the real engine) and
//! Apptainer (the stand-in `tests/apptainer/apptainer`, bwrap on a sandbox folder), so
//! the two cannot drift apart. Each case is written once against `Backend`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::support::{
    Run, example_image, interrupt, only_record, repo_root, run, start_until_started, tapir,
};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    Docker,
    Apptainer,
}

impl Backend {
    /// The task's `image` for this backend: the example image, or a sandbox folder made
    /// from the same busybox and processing-container.json.
    fn image(self) -> String {
        match self {
            Backend::Docker => example_image().to_string(),
            Backend::Apptainer => sandbox_image().display().to_string(),
        }
    }

    /// `tapir ARGS --mode …`, with the stand-in first on PATH for apptainer.
    fn tapir(self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = tapir(dir, args);
        match self {
            Backend::Docker => {
                cmd.args(["--mode", "docker"]);
            }
            Backend::Apptainer => {
                let path = format!(
                    "{}:{}",
                    repo_root().join("tests/apptainer").display(),
                    std::env::var("PATH").unwrap_or_default()
                );
                cmd.args(["--mode", "apptainer"]).env("PATH", path);
            }
        }
        cmd
    }

    fn run(self, dir: &Path, args: &[&str]) -> Run {
        run(&mut self.tapir(dir, args))
    }
}

/// The sandbox image, made once per test process.
fn sandbox_image() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = repo_root().join("target/tapir-test-sandbox");
        let out = Command::new("bash")
            .arg(repo_root().join("tests/apptainer/make-sandbox.sh"))
            .arg(&dir)
            .arg(repo_root().join("examples/dummy/processing-container.json"))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "make-sandbox.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .clone()
}

/// A task with an inline template running `script` (only `run` subcommands take --mode,
/// so tasks are always started through `Backend::run`).
fn task(dir: &Path, backend: Backend, script: &str, extra: serde_json::Value) {
    let mut task = json!({
        "name": "case",
        "image": backend.image(),
        "taskTemplate": {
            "identifier": "t", "description": "case", "inputs": [], "outputs": [], "env": [],
            "command": ["sh", "-c", script]
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        if k == "template" {
            for (tk, tv) in v.as_object().unwrap() {
                task["taskTemplate"][tk] = tv.clone();
            }
        } else {
            task[k] = v.clone();
        }
    }
    std::fs::write(dir.join("task.json"), task.to_string()).unwrap();
}

fn env_precedence(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vars.env"), "FROM_FILE=a,b \"q\" $HOME\n").unwrap();
    task(
        dir.path(),
        backend,
        "echo \"A=$A B=$B C=$C\"; echo \"FROM_FILE=$FROM_FILE\"; echo \"LEAK=${TAPIR_LEAK:-none}\"; echo \"SECRET=${#API_TOKEN}\"",
        json!({
            "template": {"env": [{"name": "A", "value": "template"}, {"name": "B", "value": "template"}, {"name": "C", "value": "template"}]},
            "env": [{"name": "B", "value": "task"}, {"name": "C", "value": "task"}, {"name": "API_TOKEN", "value": "s3cret"}]
        }),
    );
    let out = run(backend
        .tapir(
            dir.path(),
            &[
                "run",
                "task.json",
                "--env",
                "C=cli",
                "--env-file",
                "vars.env",
            ],
        )
        .env("TAPIR_LEAK", "host")
        .env("APPTAINERENV_TAPIR_LEAK", "host"));
    assert_eq!(out.code, 0, "{backend:?}: {}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout, "A=template B=task C=cli\nFROM_FILE=a,b \"q\" $HOME\nLEAK=none\nSECRET=6\n",
        "{backend:?}"
    );
    let (run_dir, _) = only_record(dir.path());
    let on_disk: String = std::fs::read_dir(&run_dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect();
    assert!(
        !on_disk.contains("s3cret"),
        "{backend:?}: a secret reached the run folder"
    );
}

fn read_only_input_and_owned_outputs(backend: Backend) {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.txt"), "data").unwrap();
    task(
        dir.path(),
        backend,
        "cat /in/a.txt > /out/copy.txt; if touch /in/new 2>/dev/null; then echo WROTE; exit 3; fi; echo read-only",
        json!({
            "template": {"inputs": [{"name": "in", "mounted_path": "/in"}], "outputs": [{"name": "out", "mounted_path": "/out"}]},
            "inputs": [{"name": "in", "volume_source": {"host_path": "in"}}],
            "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}]
        }),
    );
    let out = backend.run(dir.path(), &["run", "task.json"]);
    assert_eq!(out.code, 0, "{backend:?}: {}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "read-only\n", "{backend:?}");
    let copy = dir.path().join("out/copy.txt");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "data");
    let me = std::fs::metadata("/proc/self").unwrap();
    let meta = std::fs::metadata(&copy).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (me.uid(), me.gid()),
        "{backend:?}"
    );
    let (_, record) = only_record(dir.path());
    assert_eq!(
        record["outputs"][0]["files"][0]["path"], "copy.txt",
        "{backend:?}"
    );
}

fn exit_code_and_logs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        backend,
        "echo out; echo err >&2; exit 7",
        json!({}),
    );
    let out = backend.run(dir.path(), &["run", "task.json"]);
    assert_eq!(out.code, 7, "{backend:?}: {}", out.stderr);
    let (run_dir, record) = only_record(dir.path());
    assert_eq!(record["status"], "failed", "{backend:?}");
    assert_eq!(record["exit_code"], 7, "{backend:?}");
    let logs = run(&mut tapir(
        dir.path(),
        ["logs", &run_dir.display().to_string()],
    ));
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("out\n", "err\n"),
        "{backend:?}"
    );
    let ps = run(&mut tapir(dir.path(), ["ps", "--format", "json"]));
    let list: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(
        list["runs"][0]["mode"],
        format!("{backend:?}").to_lowercase()
    );
}

fn template_from_the_image(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("task.json"),
        json!({
            "name": "from image", "image": backend.image(), "taskTemplate": "upstream",
            "outputs": [{"name": "channel1", "volume_source": {"host_path": "c1"}}, {"name": "channel2", "volume_source": {"host_path": "c2"}}],
            "env": [{"name": "TIME_SLEEP", "value": "0"}, {"name": "DUMMY", "value": "same on both"}]
        })
        .to_string(),
    )
    .unwrap();
    let out = backend.run(dir.path(), &["run", "task.json"]);
    assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("c2/item-1/dummy.txt")).unwrap(),
        "same on both\n",
        "{backend:?}"
    );
}

fn cancel_leaves_nothing_running(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // A number no other test sleeps for, to find stray processes by.
    let marker = match backend {
        Backend::Docker => "3117",
        Backend::Apptainer => "3118",
    };
    task(
        dir.path(),
        backend,
        &format!("echo started; sleep {marker}"),
        json!({}),
    );
    let mut child =
        start_until_started(&mut backend.tapir(dir.path(), &["run", "task.json", "--grace", "2"]));
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130), "{backend:?}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "cancelled", "{backend:?}");
    let stray: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&format!("sleep {marker}")))
        .collect();
    assert!(stray.is_empty(), "{backend:?}: still running: {stray:?}");
    if let Backend::Docker = backend {
        let id = record["id"].as_str().unwrap();
        assert_eq!(
            crate::support::leftover_containers(&format!("tapir.run-id={id}")),
            ""
        );
    }
}

fn timeout_stops_the_task(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // A number no other test sleeps for (one per backend: they run in parallel).
    let marker = match backend {
        Backend::Docker => "3119",
        Backend::Apptainer => "3120",
    };
    task(
        dir.path(),
        backend,
        &format!("echo started; sleep {marker}"),
        json!({}),
    );
    let out = backend.run(
        dir.path(),
        &["run", "task.json", "--timeout", "1", "--grace", "1"],
    );
    assert_eq!(out.code, 124, "{backend:?}: {}", out.stderr);
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "timed-out", "{backend:?}");
    let stray = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains(&format!("sleep {marker}")));
    assert!(!stray, "{backend:?}: the task still runs");
}

/// Ctrl-C: the task gets one SIGTERM (Docker through its init; apptainer forwards the
/// one tapir sends it), not one from the process group and more forwarded on top.
fn cancel_sends_one_sigterm(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        backend,
        // Counts the SIGTERMs of the second after the first one, then ends cleanly.
        "n=0; trap 'n=$((n+1)); echo term $n' TERM; echo started; while [ $n = 0 ]; do sleep 0.1; done; i=0; while [ $i -lt 10 ]; do sleep 0.1; i=$((i+1)); done; echo done",
        json!({}),
    );
    let mut child =
        start_until_started(&mut backend.tapir(dir.path(), &["run", "task.json", "--grace", "10"]));
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130), "{backend:?}");
    let (run_dir, _) = only_record(dir.path());
    let stdout = std::fs::read_to_string(run_dir.join("stdout.log")).unwrap();
    assert_eq!(stdout, "started\nterm 1\ndone\n", "{backend:?}");
}

/// `--network none`: only the loopback device, on both backends.
fn network_none_leaves_only_loopback(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        backend,
        "sed -n '3,$ s/^ *\\([^:]*\\):.*/\\1/p' /proc/net/dev",
        json!({}),
    );
    let out = backend.run(dir.path(), &["run", "task.json", "--network", "none"]);
    assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
    assert_eq!(out.stdout, "lo\n", "{backend:?}");
    assert!(
        !out.stderr.contains("not passed"),
        "{backend:?}: {}",
        out.stderr
    );
}

/// A two-task pipeline whose data flows through a mapped channel, run in this mode.
fn pipeline_passes_data_between_tasks(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let task = |script: &str, inputs: serde_json::Value, outputs: serde_json::Value| {
        json!({"name": "step", "image": backend.image(), "taskTemplate": {
            "identifier": "t", "description": "step", "inputs": inputs, "outputs": outputs,
            "env": [], "command": ["sh", "-c", script]}})
    };
    let pipeline = json!({"name": "two", "tasks": [
        {"id": "write", "task": task("echo data > /out/f", json!([]), json!([{"name": "out", "mounted_path": "/out"}]))},
        {"id": "read", "task": task("cat /in/f > /out/g", json!([{"name": "in", "mounted_path": "/in"}]), json!([{"name": "out", "mounted_path": "/out"}])),
         "iochannel_maps": [{"upstream_task": "write", "upstream_output_channel": "out", "input_channel": "in"}]}
    ]});
    std::fs::write(dir.path().join("pipeline.json"), pipeline.to_string()).unwrap();
    let out = backend.run(
        dir.path(),
        &["pipeline", "run", "pipeline.json", "--runs-dir", "runs"],
    );
    assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
    let run_dir = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(run_dir.join("read/out/g")).unwrap(),
        "data\n",
        "{backend:?}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("record.json")).unwrap())
            .unwrap();
    assert_eq!(record["mode"], format!("{backend:?}").to_lowercase());
}

/// A one-step `ccat` pipeline (its /workflow folders reach the container as `run --bind`):
/// the step reads its manifest and the raw input, cannot write the read-only config, and
/// writes a science product with a sidecar.
fn ccat_step_gets_its_workflow_folders(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("raw")).unwrap();
    std::fs::write(dir.path().join("raw/scan.fits"), "raw").unwrap();
    let script = "set -eu\nif touch /workflow/config/x 2>/dev/null; then exit 9; fi\nmkdir -p \"$WORKFLOW_OUTPUT_DIR/science\"\ncat /workflow/config/manifest.json > \"$WORKFLOW_OUTPUT_DIR/science/manifest-seen.json\"\ncat /workflow/input/scan.fits > \"$WORKFLOW_OUTPUT_DIR/science/copy.fits\"\necho '{\"ok\": true}' > \"$WORKFLOW_OUTPUT_DIR/science/copy.fits.metadata.json\"\n";
    let pipeline = json!({"name": "one", "profile": "ccat", "input": "raw", "tasks": [
        {"id": "reduce", "step_config": {"order": 1}, "task": {"name": "reduce", "image": backend.image(), "taskTemplate": {
            "identifier": "t", "description": "step", "inputs": [], "outputs": [],
            "env": [], "command": ["sh", "-c", script]}}}
    ]});
    std::fs::write(dir.path().join("pipeline.json"), pipeline.to_string()).unwrap();
    let out = backend.run(
        dir.path(),
        &["pipeline", "run", "pipeline.json", "--runs-dir", "runs"],
    );
    assert_eq!(out.code, 0, "{backend:?}: {}", out.stderr);
    let run_dir = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let seen: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("output/science/manifest-seen.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(seen["step_name"], "reduce", "{backend:?}");
    assert_eq!(seen["config"], json!({"order": 1}), "{backend:?}");
    assert_eq!(
        seen["input_files"],
        json!([{"path": "/workflow/input/scan.fits", "role": "science"}]),
        "{backend:?}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("record.json")).unwrap())
            .unwrap();
    let products = &record["tasks"][0]["products"];
    assert_eq!(
        products[0]["path"], "/workflow/output/science/copy.fits",
        "{backend:?}: {record:#}"
    );
    assert_eq!(products[0]["metadata"], json!({"ok": true}), "{backend:?}");
    assert_eq!(
        products[1]["path"], "/workflow/output/science/manifest-seen.json",
        "{backend:?}"
    );
}

/// Every case, on both backends.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn docker() {
                    super::$case(super::Backend::Docker);
                }
                #[test]
                fn apptainer() {
                    super::$case(super::Backend::Apptainer);
                }
            }
        )*
    };
}

on_both_backends!(
    env_precedence,
    read_only_input_and_owned_outputs,
    exit_code_and_logs,
    template_from_the_image,
    cancel_leaves_nothing_running,
    cancel_sends_one_sigterm,
    network_none_leaves_only_loopback,
    timeout_stops_the_task,
    pipeline_passes_data_between_tasks,
    ccat_step_gets_its_workflow_folders,
);

#[test]
fn doctor_says_what_works_for_each_mode() {
    let dir = tempfile::tempdir().unwrap();
    let docker = run(&mut tapir(dir.path(), ["doctor"]));
    assert_eq!(docker.code, 0, "{}", docker.stdout);
    assert!(
        docker.stdout.contains("docker daemon      answers"),
        "{}",
        docker.stdout
    );
    assert!(
        docker.stdout.contains("--mode docker can run tasks here"),
        "{}",
        docker.stdout
    );

    // PATH without the stand-in: apptainer is missing, which only matters for its mode.
    let missing = run(&mut tapir(dir.path(), ["doctor", "--mode", "apptainer"]));
    assert_eq!(missing.code, 1, "{}", missing.stdout);
    assert!(
        missing.stdout.contains("FAIL apptainer"),
        "{}",
        missing.stdout
    );

    let standin = run(&mut Backend::Apptainer.tapir(dir.path(), &["doctor", "--format", "json"]));
    assert_eq!(standin.code, 0, "{}", standin.stdout);
    let report: serde_json::Value = serde_json::from_str(&standin.stdout).unwrap();
    assert_eq!(report["mode"], "apptainer");
    let detail = |area: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["area"] == area)
            .map(|c| {
                (
                    c["verdict"].as_str().unwrap().to_string(),
                    c["detail"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    assert!(detail("apptainer").1.contains("1.3.4-tapir-standin"));
    // The stand-in is never passed off as Apptainer: doctor says what it cannot show.
    let (verdict, stand_in) = detail("apptainer stand-in");
    assert_eq!(verdict, "note");
    assert!(
        stand_in.contains("not Apptainer")
            && stand_in.contains("does not enforce memory/CPU limits"),
        "{stand_in}"
    );
    // As root apptainer applies limits (the stand-in accepts the flags).
    assert_eq!(detail("apptainer limits").0, "ok");
    assert!(
        missing.stdout.contains("tests/apptainer"),
        "{}",
        missing.stdout
    );

    // A docker binary that fails: the daemon check fails, and so does docker mode.
    let broken = run(tapir(dir.path(), ["doctor"]).env("TAPIR_DOCKER", "/bin/false"));
    assert_eq!(broken.code, 1, "{}", broken.stdout);
    assert!(
        broken.stdout.contains("FAIL docker daemon"),
        "{}",
        broken.stdout
    );
}

/// A folder `uid` may use (tempdirs are private to their creator).
fn open_to_everyone(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn apptainer_limits_are_passed_where_apptainer_applies_them_and_capped_to_the_cpus() {
    // These tests run as root, for whom apptainer applies limits (cgroups v1 or v2).
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        Backend::Apptainer,
        "echo ran",
        json!({"resources": {"limits": {"memory": "64Mi", "cpu": "512"}}}),
    );
    let out = Backend::Apptainer.run(dir.path(), &["run", "task.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "ran\n");
    assert!(
        out.stderr
            .contains("the CPU limit 512.000 is outside what apptainer accepts here"),
        "{}",
        out.stderr
    );
    let (_, record) = only_record(dir.path());
    let argv: Vec<&str> = record["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(argv.contains(&"--memory"), "{argv:?}");
    let cpus = argv[argv.iter().position(|a| *a == "--cpus").unwrap() + 1];
    let usable = std::thread::available_parallelism().unwrap().get();
    assert_eq!(cpus, format!("{usable}.000"), "{argv:?}");
}

#[test]
fn apptainer_without_root_runs_without_limits_and_says_why() {
    // As an ordinary user in a batch job (no systemd user session, no D-Bus), apptainer
    // would stop with a fatal error if tapir passed --memory/--cpus: tapir leaves them out,
    // says so, and the task runs.
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    open_to_everyone(dir.path());
    task(
        dir.path(),
        Backend::Apptainer,
        "echo ran",
        json!({"resources": {"limits": {"memory": "64Mi", "cpu": "1"}}}),
    );
    let mut cmd = Backend::Apptainer.tapir(dir.path(), &["run", "task.json"]);
    cmd.env("HOME", dir.path()).uid(65534).gid(65534);
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "ran\n");
    assert!(
        out.stderr.contains("limits are NOT enforced")
            && out
                .stderr
                .contains("without root apptainer would stop with a fatal error"),
        "{}",
        out.stderr
    );
    let (_, record) = only_record(dir.path());
    assert!(
        record["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("NOT enforced")),
        "{record}"
    );
    assert!(
        !record["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--memory")
    );
}

/// A sandbox image whose runscript is that of an OCI image with
/// `ENTRYPOINT ["/bin/echo", "entry"]` (with apptainer's `OCI_ENTRYPOINT` record): the
/// arguments of `apptainer run` follow it.
/// A task.json in `dir` running `command` in `image` (the template inline).
fn image_task(dir: &Path, image: &str, command: serde_json::Value) {
    std::fs::write(
        dir.join("task.json"),
        json!({
            "name": "case", "image": image,
            "taskTemplate": {"identifier": "t", "description": "case", "inputs": [], "outputs": [], "env": [],
                             "command": command}
        })
        .to_string(),
    )
    .unwrap();
}

fn sandbox_with_entrypoint(dir: &Path) -> PathBuf {
    let image = dir.join("entry-image");
    let out = Command::new("bash")
        .arg(repo_root().join("tests/apptainer/make-sandbox.sh"))
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        image.join(".singularity.d/runscript"),
        "#!/bin/sh\nOCI_ENTRYPOINT='\"/bin/echo\" \"entry\"'\nOCI_CMD=''\nexec /bin/echo entry \"$@\"\n",
    )
    .unwrap();
    image
}

#[test]
fn apptainer_keeps_an_entrypoint_it_cannot_read_by_running_the_runscript() {
    let dir = tempfile::tempdir().unwrap();
    let image = sandbox_with_entrypoint(dir.path());
    image_task(
        dir.path(),
        &image.display().to_string(),
        json!(["say", "hi"]),
    );
    let out = Backend::Apptainer.run(dir.path(), &["run", "task.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout, "entry say hi\n",
        "Docker would run ENTRYPOINT + command"
    );
    let (_, record) = only_record(dir.path());
    assert_eq!(record["argv"][1], "run", "{record}");
    assert!(
        out.stderr.contains("WORKDIR is not known"),
        "{}",
        out.stderr
    );
}

#[test]
fn apptainer_runs_a_docker_image_from_a_sif_converted_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Untagged, as Docker users write it: apptainer itself would refuse it.
    let reference = example_image().trim_end_matches(":latest");
    image_task(dir.path(), reference, json!(["sh", "-c", "echo from-sif"]));
    let runs = |runs_dir: &str| {
        let mut cmd =
            Backend::Apptainer.tapir(dir.path(), &["run", "task.json", "--runs-dir", runs_dir]);
        cmd.env("XDG_CACHE_HOME", &cache);
        run(&mut cmd)
    };
    let first = runs("first");
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout, "from-sif\n");
    let converted: Vec<PathBuf> = std::fs::read_dir(cache.join("tapir/apptainer/docker-daemon"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(converted.len(), 1, "{converted:?}");
    let (_, record) = only_record(&dir.path().join("first"));
    let id = record["image"]["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert_eq!(
        converted[0].file_name().unwrap().to_string_lossy(),
        format!("{id}.sif")
    );
    assert!(
        record["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == Some(&*converted[0].display().to_string())),
        "{record}"
    );
    // The second run reuses the SIF: the stand-in's conversion leaves a marker naming
    // the tagged reference; it stays untouched.
    let marker = converted[0].join(".tapir-standin-sif");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        format!("docker-daemon:{reference}:latest\n")
    );
    let before = std::fs::metadata(&marker).unwrap().modified().unwrap();
    let second = runs("second");
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        std::fs::metadata(&marker).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn apptainer_runs_a_registry_image_pulled_before_without_the_registry() {
    // On a compute node without network: the SIF pulled once (on a login node, with
    // --pull) is used without --pull and without asking the registry, which apptainer
    // itself would do on every run. Here the cached SIF is made by the stand-in's build.
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let reference = "docker://registry.invalid/tool:1";
    let sum = Command::new("sh")
        .args(["-c", "printf %s \"$1\" | sha256sum", "sh", reference])
        .output()
        .unwrap();
    let key = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let pulled = cache.join(format!("tapir/apptainer/pulled/{key}.sif"));
    std::fs::create_dir_all(pulled.parent().unwrap()).unwrap();
    let built = Command::new(repo_root().join("tests/apptainer/apptainer"))
        .arg("build")
        .arg(&pulled)
        .arg(format!("docker-daemon:{}", example_image()))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    image_task(dir.path(), reference, json!(["sh", "-c", "echo offline"]));
    let mut cmd = Backend::Apptainer.tapir(dir.path(), &["run", "task.json"]);
    cmd.env("XDG_CACHE_HOME", &cache);
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "offline\n");
    // Not pulled before: --pull is still needed.
    let mut cmd = Backend::Apptainer.tapir(dir.path(), &["run", "task.json"]);
    cmd.env("XDG_CACHE_HOME", dir.path().join("empty-cache"));
    let out = run(&mut cmd);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(out.stderr.contains("pass --pull"), "{}", out.stderr);
}

#[test]
fn apptainer_reaches_docker_through_the_current_docker_context() {
    // Apptainer reads DOCKER_HOST, never docker contexts: tapir passes the context's
    // endpoint on when it converts an image of the Docker engine.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docker-config");
    let socket = dir.path().join("engine.sock");
    std::os::unix::fs::symlink("/var/run/docker.sock", &socket).unwrap();
    let endpoint = format!("unix://{}", socket.display());
    let made = Command::new("docker")
        .env("DOCKER_CONFIG", &config)
        .args([
            "context",
            "create",
            "tapir-test",
            "--docker",
            &format!("host={endpoint}"),
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let used = Command::new("docker")
        .env("DOCKER_CONFIG", &config)
        .args(["context", "use", "tapir-test"])
        .output()
        .unwrap();
    assert!(
        used.status.success(),
        "{}",
        String::from_utf8_lossy(&used.stderr)
    );
    image_task(dir.path(), example_image(), json!(["true"]));
    let cache = dir.path().join("cache");
    let mut cmd = Backend::Apptainer.tapir(dir.path(), &["run", "task.json"]);
    cmd.env("XDG_CACHE_HOME", &cache)
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_HOST");
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let converted = std::fs::read_dir(cache.join("tapir/apptainer/docker-daemon"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(converted.join(".tapir-standin-engine")).unwrap(),
        format!("{endpoint}\n")
    );
}

#[test]
fn apptainer_keeps_the_sites_tmpdir_and_cache_settings() {
    // APPTAINER_TMPDIR is where apptainer converts images: tapir must pass it on (the
    // stand-in's conversion fails on a missing folder, as apptainer's would).
    let dir = tempfile::tempdir().unwrap();
    image_task(dir.path(), example_image(), json!(["true"]));
    let mut cmd = Backend::Apptainer.tapir(dir.path(), &["run", "task.json"]);
    cmd.env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("APPTAINER_TMPDIR", "/nonexistent/site-tmp")
        .env("APPTAINER_BIND", "/etc:/host-etc");
    let out = run(&mut cmd);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/site-tmp"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("APPTAINER_BIND"),
        "removed: {}",
        out.stderr
    );
}

#[test]
fn apptainer_forwards_the_scheduler_gpu_selection() {
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        Backend::Apptainer,
        "echo $(ls /dev/nvidia*) cuda=$CUDA_VISIBLE_DEVICES",
        json!({"resources": {"limits": {"nvidia.com/gpu": "1"}}}),
    );
    let gpu_run = |nvccli: bool| {
        let mut cmd = Backend::Apptainer.tapir(dir.path(), &["run", "task.json"]);
        cmd.env("TAPIR_STANDIN_HOST_GPUS", "3")
            .env("CUDA_VISIBLE_DEVICES", "2");
        if nvccli {
            cmd.env("TAPIR_STANDIN_NVCCLI", "1");
        }
        run(&mut cmd)
    };
    // --nv binds every GPU; the scheduler's choice reaches the task.
    let legacy = gpu_run(false);
    assert_eq!(legacy.code, 0, "{}", legacy.stderr);
    assert_eq!(
        legacy.stdout,
        "/dev/nvidia0 /dev/nvidia1 /dev/nvidia2 cuda=2\n"
    );
    // nvidia-container-cli exposes only the chosen GPU (none without NVIDIA_VISIBLE_DEVICES).
    let nvccli = gpu_run(true);
    assert_eq!(nvccli.code, 0, "{}", nvccli.stderr);
    assert_eq!(nvccli.stdout, "/dev/nvidia2 cuda=2\n");
}

#[test]
fn doctor_deep_runs_the_site_checks_and_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let image = sandbox_image();
    let out = run(&mut Backend::Apptainer.tapir(
        dir.path(),
        &[
            "doctor",
            "--format",
            "json",
            "--deep",
            &image.display().to_string(),
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let deep: Vec<(String, String)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["area"] == "apptainer deep")
        .map(|c| {
            (
                c["verdict"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, verdict) in [
        ("runs at all", "ok"),
        ("--no-eval", "ok"),
        ("limits here", "ok"),
        ("--cpus above the usable CPUs", "ok"),
        ("docker-daemon: untagged", "ok"),
        ("paths with ^", "ok"),
        ("--workdir", "ok"),
        ("--network none", "ok"),
        ("passed-through variables", "note"),
        ("SIGTERM forwarding", "ok"),
        ("runscript", "ok"),
    ] {
        assert!(
            deep.iter()
                .any(|(v, d)| v == verdict && d.starts_with(&format!("{name}: "))),
            "{name} should be {verdict}: {deep:#?}"
        );
    }
    // A missing image is a failure of the checks, not of doctor.
    let missing =
        run(&mut Backend::Apptainer.tapir(dir.path(), &["doctor", "--deep", "/nonexistent/image"]));
    assert_eq!(missing.code, 1, "{}", missing.stdout);
    assert!(
        missing.stdout.contains("FAIL apptainer deep"),
        "{}",
        missing.stdout
    );
}

#[test]
fn apptainer_detach_and_follow_work_like_docker() {
    let dir = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        Backend::Apptainer,
        "echo one; sleep 0.3; echo two; exit 6",
        json!({"env": [{"name": "MY_SECRET", "value": "hidden"}]}),
    );
    let out = Backend::Apptainer.run(dir.path(), &["run", "--detach", "task.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.stdout.trim().to_string();
    let follow = run(&mut tapir(dir.path(), ["logs", "--follow", &id]));
    assert_eq!(follow.code, 6, "{}", follow.stderr);
    assert_eq!(follow.stdout, "one\ntwo\n");
    let (run_dir, record) = only_record(dir.path());
    assert_eq!(record["status"], "failed");
    assert!(
        !run_dir.join("scratch").exists(),
        "the scratch folder is removed"
    );
}

#[test]
fn apptainer_dry_run_works_without_apptainer_and_assumes_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    task(
        dir.path(),
        Backend::Apptainer,
        "true",
        json!({"resources": {"limits": {"memory": "64Mi", "cpu": "1"}}}),
    );
    let out = run(tapir(
        dir.path(),
        [
            "run",
            "--dry-run",
            "--format",
            "json",
            "--mode",
            "apptainer",
            "task.json",
        ],
    )
    .env("PATH", empty_path.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("apptainer not found; showing the command for the newest apptainer"),
        "{}",
        out.stderr
    );
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let argv: Vec<&str> = plan["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], "apptainer", "{argv:?}");
    for flag in ["--no-eval", "--memory", "--cpus"] {
        assert!(argv.contains(&flag), "{flag}: {argv:?}");
    }
    assert!(
        !out.stderr.contains("NOT enforced"),
        "the newest apptainer enforces limits: {}",
        out.stderr
    );
}
