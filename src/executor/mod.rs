//! Executors: where a pipeline's attempts run (docs/DESIGN.md decision 10). The scheduler
//! (src/pipeline/schedule.rs) decides what starts; its driver hands each attempt to an
//! [`Executor`] as a typed [`RunRequest`] with its run id and task run folder assigned
//! beforehand, and hears of its end as an [`Event`]. The end is always read from the task
//! run's own record, so an executor that runs the attempt elsewhere (a Slurm job, a
//! Kubernetes pod: both run `tapir run` there, into the same folder) reports it the same
//! way, and a `--resume` can re-attach to an attempt an earlier invocation started.
//!
//! `local` is the only executor today: each attempt is a child `tapir run` of this binary.

pub(crate) mod kind;
pub(crate) mod local;
pub(crate) mod request;
pub(crate) mod slurm;

use std::path::{Path, PathBuf};

pub(crate) use kind::ExecutorKind;
pub(crate) use request::RunRequest;

use crate::pipeline::record::Attempt;
use crate::record::{RunRecord, Status};

/// One attempt to start.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRequest {
    /// The task's index in the plan (what the scheduler calls it).
    pub task: usize,
    /// 1-based, across `--resume`s.
    pub number: u32,
    /// The `tapir run` to make: its run id and runs folder fix the task run's folder.
    pub run: RunRequest,
    /// `NAME=VALUE` lines the run reads as an env file without them touching the disk
    /// (secrets from the pipeline and the conf file).
    pub private_env: String,
    /// Where the run's own messages go (appended: one log for all of a task's attempts).
    pub log: PathBuf,
}

impl AttemptRequest {
    /// The task run folder the attempt will have.
    pub(crate) fn run_dir(&self) -> PathBuf {
        self.run.run_dir()
    }
}

/// What an executor tells its driver.
#[derive(Debug)]
pub(crate) enum Event {
    /// An attempt ended; `attempt` is complete (linked to its task run when it made one).
    Ended { task: usize, attempt: Box<Attempt> },
    /// SIGINT/SIGTERM/SIGHUP reached the pipeline: cancel (again: stop harder).
    Interrupted,
}

/// Where attempts run. Ends travel as [`Event::Ended`] on the channel the executor was
/// made with, so the driver waits for ends, retry timers and signals in one place.
pub(crate) trait Executor {
    /// Starts the attempt. `Err`: it could not be started at all (in words); no end will
    /// be reported.
    fn start(&mut self, request: AttemptRequest) -> Result<(), String>;

    /// Asks task `task`'s running attempt to stop (cancelled, its record written); asked
    /// again, to stop at once.
    fn cancel(&mut self, task: usize);

    /// An attempt an earlier invocation started and did not see end (its pipeline tapir
    /// was killed): its end, read from its task run folder `run_dir`, or `None` while it
    /// still runs.
    fn reattach(&self, run_dir: &Path) -> Option<Reattached>;

    /// Waits for the executor's own helpers (the threads watching attempts) to end.
    fn finish(&mut self);
}

/// What became of an attempt found again on `--resume`.
#[derive(Debug)]
pub(crate) enum Reattached {
    /// Its task run's record, ended.
    Ended(Box<RunRecord>),
    /// It made no task run folder (killed before it got so far).
    NoRun,
}

/// Fills `attempt` from the record `run` of the task run it made in `dir`.
pub(crate) fn link_task_run(
    attempt: &mut Attempt,
    dir: &Path,
    run: RunRecord,
    pipeline_dir: &Path,
) {
    attempt.run_dir = Some(
        dir.strip_prefix(pipeline_dir)
            .unwrap_or(dir)
            .display()
            .to_string(),
    );
    attempt.run_id = Some(run.id);
    attempt.status = run.status;
    attempt.exit_code = run.exit_code;
    attempt.message = run.message;
    attempt.argv = run.argv;
    attempt.image = run.image;
}

/// The end of an attempt whose run did not settle its own record: cancelled when the
/// pipeline asked it to stop, else an engine error.
pub(crate) fn unsettled_status(cancelled: bool) -> Status {
    if cancelled {
        Status::Cancelled
    } else {
        Status::EngineError
    }
}
