//! Test harness: run `tapir` with a clean environment and look at what it did.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) fn tapir_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tapir"))
}

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures")
}

/// A `tapir` command with nothing from the caller's environment but PATH (and the
/// Docker variables, for engine tests); colour off so output is stable.
pub(crate) fn tapir<I, S>(cwd: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(tapir_bin());
    cmd.env_clear();
    for keep in ["PATH", "DOCKER_HOST", "DOCKER_CONFIG", "TAPIR_DOCKER"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("NO_COLOR", "1").current_dir(cwd).args(args);
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("tapir starts");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Compares `actual` with the snapshot file; `TAPIR_BLESS=1` rewrites it instead.
/// Returns a description of the difference, if any.
pub(crate) fn check_snapshot(path: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("TAPIR_BLESS").is_some() {
        std::fs::write(path, actual).expect("write snapshot");
        return None;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => Some(format!(
            "{} differs:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) => Some(format!(
            "{} is missing (run with TAPIR_BLESS=1 to write it, then review it):\n{actual}",
            path.display()
        )),
    }
}

/// Builds the example image once per test process (offline: scratch + static busybox).
/// Engine tests fail — never skip — when the engine is missing.
pub(crate) fn example_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("examples/build.sh"))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "examples/build.sh failed (is the Docker engine running?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    "tapir-example/dummy:latest"
}

/// Containers tapir left behind for a run id (must be none after every run).
pub(crate) fn leftover_containers(run_label: &str) -> String {
    let out = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={run_label}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The one run folder in `runs`, and its record.
pub(crate) fn only_record(runs: &Path) -> (PathBuf, serde_json::Value) {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .expect("runs dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("task_run-"))
        })
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one run folder in {}: {dirs:?}",
        runs.display()
    );
    let record = serde_json::from_str(
        &std::fs::read_to_string(dirs[0].join("record.json")).expect("record.json"),
    )
    .expect("record is JSON");
    (dirs[0].clone(), record)
}

/// Starts `cmd`, a `tapir run` of a task whose first output is `started\n`, and returns
/// once that line has arrived: the task is then surely running.
pub(crate) fn start_until_started(cmd: &mut Command) -> std::process::Child {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tapir starts");
    let mut first = [0u8; 8];
    std::io::Read::read_exact(child.stdout.as_mut().expect("piped"), &mut first)
        .expect("the task prints");
    assert_eq!(&first, b"started\n");
    child
}

/// Sends SIGINT, as Ctrl-C on a terminal would.
pub(crate) fn interrupt(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Every file below `dir` (not the folders; links as links, never followed). An entry
/// that vanishes while it is read (a run still cleaning up) is passed over, not a panic.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
