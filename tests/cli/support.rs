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
