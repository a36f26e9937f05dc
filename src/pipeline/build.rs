//! Image builds of a pipeline (docs/DESIGN.md decision 10; Tapis' `image_build` tasks):
//! each `builds` entry is `docker build` of a context folder, run before any task starts,
//! in file order. A build gets a task run folder like any run (`runs/task_run-<id>/`:
//! `record.json`, `stdout.log`, `stderr.log`), so `tapir show` and `tapir logs` read it;
//! its deadline is the entry's `max_exec_time`, or [`BUILD_FACTOR`] engine deadlines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::deadline;
use crate::pipeline::model::BuildStep;
use crate::record::{ImageRecord, RunRecord, Status, store};

/// A build may take this many engine deadlines (`TAPIR_ENGINE_TIMEOUT`, 60 s by default:
/// 30 minutes) unless its `max_exec_time` says otherwise.
pub(crate) const BUILD_FACTOR: u32 = 30;

/// One build as planned: paths resolved against the pipeline file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PlannedBuild {
    pub id: String,
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_exec_time: Option<u64>,
}

impl PlannedBuild {
    pub(crate) fn new(step: &BuildStep, base_dir: &Path) -> Self {
        let context = base_dir.join(&step.context);
        let dockerfile = context.join(step.dockerfile.as_deref().unwrap_or("Dockerfile"));
        Self {
            id: step.id.clone(),
            context,
            dockerfile,
            tag: step.tag.clone(),
            max_exec_time: step.max_exec_time,
        }
    }

    fn limit(&self) -> Duration {
        self.max_exec_time
            .map_or_else(|| deadline::limit() * BUILD_FACTOR, Duration::from_secs)
    }

    /// The `docker build` arguments (after `docker`), paths absolute.
    pub(crate) fn argv(&self) -> Vec<String> {
        vec![
            "build".into(),
            "--tag".into(),
            self.tag.clone(),
            "--file".into(),
            absolute(&self.dockerfile),
            absolute(&self.context),
        ]
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// What became of one build, in the pipeline record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuildRecord {
    pub id: String,
    pub tag: String,
    /// `succeeded`, `failed`, `timed-out`, `cancelled`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The image id the build made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Its task run folder, relative to the pipeline run folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<jiff::Timestamp>,
}

/// Runs `docker build` for `build` into a new task run folder under `runs_dir`, asking
/// `interrupted` every 100 ms whether to stop (Ctrl-C: the build is stopped, `cancelled`).
pub(crate) fn run_build(
    build: &PlannedBuild,
    runs_dir: &Path,
    pipeline_dir: &Path,
    mut interrupted: impl FnMut() -> bool,
) -> BuildRecord {
    let started_at = jiff::Timestamp::now();
    let mut record = BuildRecord {
        id: build.id.clone(),
        tag: build.tag.clone(),
        status: "failed".into(),
        started_at: Some(started_at),
        ..BuildRecord::default()
    };
    let id = store::fresh_run_id();
    let dir = match store::create_run_dir(runs_dir, &id) {
        Ok(dir) => dir,
        Err(e) => {
            record.message = Some(format!(
                "cannot create a run folder in {}: {e}",
                runs_dir.display()
            ));
            record.ended_at = Some(jiff::Timestamp::now());
            return record;
        }
    };
    record.run_dir = Some(
        dir.strip_prefix(pipeline_dir)
            .unwrap_or(&dir)
            .display()
            .to_string(),
    );
    let mut run = RunRecord::new(
        &id,
        "docker-build",
        Status::Running,
        absolute(&build.dockerfile),
    );
    run.task_name = Some(format!("build {}", build.id));
    run.argv = std::iter::once("docker".to_string())
        .chain(build.argv())
        .collect();
    run.created_at = started_at;
    run.started_at = Some(started_at);
    let _ = write(&dir, &run);

    let (status, exit_code, message) = docker_build(build, &dir, &mut interrupted);
    run.status = status;
    run.exit_code = exit_code;
    run.message = message.clone();
    if status == Status::Succeeded {
        match image_id(&build.tag) {
            Ok(image) => {
                record.image_id = Some(image.clone());
                run.image = Some(ImageRecord {
                    reference: build.tag.clone(),
                    id: image,
                    repo_digests: Vec::new(),
                });
            }
            Err(e) => {
                run.status = Status::EngineError;
                run.message = Some(e);
            }
        }
    }
    run.ended_at = Some(jiff::Timestamp::now());
    if let Err(e) = write(&dir, &run) {
        run.warnings.push(e);
    }
    record.status = match run.status {
        Status::Succeeded => "succeeded",
        Status::TimedOut => "timed-out",
        Status::Cancelled => "cancelled",
        _ => "failed",
    }
    .into();
    record.message = run.message;
    record.ended_at = run.ended_at;
    record
}

fn write(dir: &Path, run: &RunRecord) -> Result<(), String> {
    let value = serde_json::to_value(run).map_err(|e| e.to_string())?;
    store::write_record_atomic(dir, &value).map_err(|e| e.to_string())
}

/// `docker build`, its output into `dir`'s `stdout.log` and `stderr.log`, within its
/// deadline: (status, docker's exit code, what went wrong).
fn docker_build(
    build: &PlannedBuild,
    dir: &Path,
    interrupted: &mut impl FnMut() -> bool,
) -> (Status, Option<i64>, Option<String>) {
    let open = |name: &str| {
        store::run_file_options()
            .create(true)
            .append(true)
            .open(dir.join(name))
    };
    let (stdout, stderr) = match (open("stdout.log"), open("stderr.log")) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return (
                Status::EngineError,
                None,
                Some(format!(
                    "cannot create the build's logs in {}: {e}",
                    dir.display()
                )),
            );
        }
    };
    let mut command = Command::new("docker");
    command
        .args(build.argv())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // Without buildx, Docker's BuildKit front end is missing: the classic builder works
    // with local base images and no network alike.
    let buildx = deadline::output(
        Command::new("docker").args(["buildx", "version"]),
        deadline::limit(),
    );
    if !buildx.is_ok_and(|o| o.status.success()) {
        command.env("DOCKER_BUILDKIT", "0");
    }
    // Its own process group: the terminal's Ctrl-C reaches the pipeline, which stops
    // the build itself.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return (
                Status::EngineError,
                None,
                Some(format!(
                    "cannot run docker build: {e} (is Docker installed?)"
                )),
            );
        }
    };
    let limit = build.limit();
    let started = Instant::now();
    let stop = |child: &mut std::process::Child| {
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        let patience = Instant::now();
        while patience.elapsed() < Duration::from_secs(5) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    };
    loop {
        match child.try_wait() {
            Ok(Some(exit)) => {
                let code = exit.code().map(i64::from);
                return if exit.success() {
                    (Status::Succeeded, code, None)
                } else {
                    (
                        Status::Failed,
                        code,
                        Some(format!(
                            "docker build of `{}` failed ({}); see {}",
                            build.tag,
                            code.map_or("killed".to_string(), |c| format!("exit {c}")),
                            dir.join("stderr.log").display()
                        )),
                    )
                };
            }
            Ok(None) => {}
            Err(e) => {
                stop(&mut child);
                return (
                    Status::EngineError,
                    None,
                    Some(format!("docker build: {e}")),
                );
            }
        }
        if interrupted() {
            stop(&mut child);
            return (
                Status::Cancelled,
                None,
                Some("cancelled while building".into()),
            );
        }
        if started.elapsed() >= limit {
            stop(&mut child);
            return (
                Status::TimedOut,
                None,
                Some(format!(
                    "docker build of `{}` took longer than {} s and was stopped; set the build's `max_exec_time` (or TAPIR_ENGINE_TIMEOUT) higher if it needs longer",
                    build.tag,
                    limit.as_secs()
                )),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The id of the image `tag` names, from the engine, within its deadline.
fn image_id(tag: &str) -> Result<String, String> {
    let out = deadline::output(
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", tag]),
        deadline::limit(),
    )
    .map_err(|e| match e {
        deadline::CallError::Spawn(e) => format!("cannot run docker image inspect {tag}: {e}"),
        deadline::CallError::TimedOut(limit) => {
            deadline::no_answer("docker", "image inspect", limit)
        }
    })?;
    if !out.status.success() {
        return Err(format!(
            "docker build reported success, but the engine has no image `{tag}`: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_is_docker_build_with_absolute_paths_and_the_dockerfile_in_the_context() {
        let step = BuildStep {
            id: "img".into(),
            description: None,
            context: "image".into(),
            dockerfile: None,
            tag: "my/tool:dev".into(),
            max_exec_time: None,
        };
        let planned = PlannedBuild::new(&step, Path::new("/p"));
        assert_eq!(
            planned.argv(),
            [
                "build",
                "--tag",
                "my/tool:dev",
                "--file",
                "/p/image/Dockerfile",
                "/p/image"
            ]
        );
        assert_eq!(planned.limit(), deadline::limit() * BUILD_FACTOR);
        let bounded = PlannedBuild {
            max_exec_time: Some(5),
            ..planned
        };
        assert_eq!(bounded.limit(), Duration::from_secs(5));
    }
}
