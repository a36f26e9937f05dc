//! `run --detach`: the job is handed to a background `tapir supervise`, which runs it with
//! the same code as an attached run (`execute::run_to_end`) and writes the final record.
//!
//! The supervisor reads everything but the secrets from the record just written; secret
//! values travel in its environment, which only the same user (and root) can read, and
//! never touch the disk.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{Engine, Job};
use crate::error::Error;
use crate::record::{RunRecord, RunSummary, Status};

/// The background supervisor's own diagnostics (its stderr), inside the run folder.
pub(crate) const SUPERVISOR_LOG: &str = "supervisor.log";

/// How handing a job to the supervisor went.
#[derive(Debug)]
pub(crate) enum Detached {
    /// The container (or the process) has started; the supervisor carries on.
    Started,
    /// It started and has already ended (the record's message).
    Ended(String),
    /// The supervisor recorded that the task could not start (the record's message).
    RecordedNotStarted(String),
    /// The supervisor could not be started: the engine was not asked to start anything,
    /// and the caller removes the run folder it had opened (a refused run leaves none).
    NotHandedOver(Error),
    /// The supervisor ended without recording anything: the run never started (as far as
    /// anyone can tell), and the caller records why.
    Failed(Error),
}

/// Starts the supervisor for `job` (whose record is in `run_dir`) and returns once the
/// container has started or the supervisor has ended, like `docker run --detach`.
pub(crate) fn start(job: &Job, run_dir: &Path, record: &RunRecord) -> Detached {
    let fail = |message: String| Detached::NotHandedOver(Error::not_started(message));
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return fail(format!(
                "cannot find tapir's own executable for the supervisor: {e}"
            ));
        }
    };
    let log_path = run_dir.join(SUPERVISOR_LOG);
    let log = match crate::record::store::run_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&log_path)
    {
        Ok(file) => file,
        Err(e) => return fail(format!("cannot create {}: {e}", log_path.display())),
    };
    let mut command = Command::new(exe);
    command
        .arg("supervise")
        .arg(run_dir)
        .args(["--grace", &job.grace_seconds.to_string()])
        .envs(job.secret_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if job.keep {
        command.arg("--keep");
    }
    if let Some(seconds) = job.timeout_seconds {
        command.args(["--timeout", &seconds.to_string()]);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return fail(format!("cannot start the supervisor: {e}")),
    };
    // Wait until the container has started or the supervisor has ended (a task that
    // fails to start, or one so short it is already over).
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return match RunRecord::load(run_dir).ok() {
                Some(r) if r.status == Status::EngineError => {
                    Detached::RecordedNotStarted(r.message.unwrap_or_default())
                }
                Some(r) if r.status != Status::Running => {
                    Detached::Ended(r.message.unwrap_or_default())
                }
                // The supervisor died before it could record anything (a crash, a kill,
                // an engine it could not reach): this run will never start.
                _ => Detached::Failed(Error::not_started(format!(
                    "the background supervisor ended without running the task; its messages are in {}",
                    log_path.display()
                ))),
            };
        }
        let started = match &job.engine {
            Engine::Docker { docker, container } => {
                docker.container(container).is_some_and(|s| s.started)
            }
            // A process has started once the supervisor has recorded its pid.
            Engine::Apptainer { .. } => {
                RunSummary::load(run_dir).is_ok_and(|r| r.pid != record.pid)
            }
        };
        if started {
            return Detached::Started;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
