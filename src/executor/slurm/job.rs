//! One attempt as one Slurm batch job: submitted into a run folder whose record says
//! `queued`, then watched through its record first and Slurm second. The record decides
//! the outcome: Slurm is asked (one `squeue` for all jobs) only while the record is not
//! final, and a job that left the queue without its node-side tapir writing the end is
//! settled here, in words, with the job's state and its output file — never as success.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::client::{self, JobState, QueueAnswer};
use super::script::{self, JobScript};
use crate::record::{ExecutorRecord, RunRecord, Status, store};

/// The env file a job reads its private values from (0600; the node-side tapir removes it
/// once read).
pub(crate) const PRIVATE_ENV_FILE: &str = "job.env";

/// What to submit.
pub(crate) struct Submission {
    /// The record to write as `queued` (its id names the folder).
    pub record: RunRecord,
    pub runs_dir: PathBuf,
    pub script: JobScript,
    /// Extra `sbatch` options (site settings).
    pub sbatch_args: Vec<String>,
}

/// A submitted job.
#[derive(Debug, Clone)]
pub(crate) struct Submitted {
    pub run_dir: PathBuf,
    pub job_id: String,
}

/// Makes the run folder with its job script and `queued` record, and submits the job.
/// `Err`: nothing was submitted, and the folder is gone again (a refused run leaves no
/// folder, as a local one does).
pub(crate) fn submit(mut submission: Submission, private_env: &str) -> Result<Submitted, String> {
    let run_dir = submission.script.run_dir.clone();
    script::header_safe(&run_dir)?;
    let dir = store::create_run_dir(&submission.runs_dir, &submission.record.id).map_err(|e| {
        format!(
            "cannot create the run folder in {}: {e}\n  fix: choose a writable folder shared with the nodes with --runs-dir or TAPIR_RUNS_DIR",
            submission.runs_dir.display()
        )
    })?;
    let discard = |e: String| {
        let _ = std::fs::remove_file(dir.join(script::SCRIPT_FILE));
        let _ = std::fs::remove_file(dir.join(PRIVATE_ENV_FILE));
        store::discard_new_run_dir(&dir);
        e
    };
    let script_path = dir.join(script::SCRIPT_FILE);
    let written = store::ignore_in_git(&dir)
        .and_then(|()| store::write_run_file(&script_path, submission.script.render().as_bytes()))
        .and_then(|()| {
            if private_env.is_empty() {
                Ok(())
            } else {
                store::write_run_file(&dir.join(PRIVATE_ENV_FILE), private_env.as_bytes())
            }
        })
        .map_err(|e| format!("cannot write into the run folder {}: {e}", dir.display()));
    written.map_err(discard)?;
    submission.record.status = Status::Queued;
    write(&dir, &submission.record).map_err(discard)?;
    let job_id = client::sbatch(&submission.sbatch_args, &script_path)
        .map_err(|e| discard(format!("Slurm did not take the job: {e}")))?;
    // The one write of the record after the submission: the node-side tapir waits for
    // the job id to be in it before it takes the record over (`adopt_queued`).
    let executor = submission
        .record
        .executor
        .get_or_insert_with(|| slurm_record(None, None, None));
    executor.job_id = Some(job_id.clone());
    executor.state = Some("PENDING".into());
    executor.output = Some(script::job_output(&dir, &job_id).display().to_string());
    if let Err(e) = write(&dir, &submission.record) {
        // Without its id in the record nothing could find the job again: cancel it.
        let _ = client::scancel(&job_id);
        return Err(discard(format!("{e}; the job ({job_id}) was cancelled")));
    }
    Ok(Submitted {
        run_dir: dir,
        job_id,
    })
}

/// The executor object of a Slurm run.
pub(crate) fn slurm_record(
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
) -> ExecutorRecord {
    ExecutorRecord {
        kind: crate::executor::ExecutorKind::Slurm.name().into(),
        partition,
        account,
        qos,
        ..ExecutorRecord::default()
    }
}

fn write(dir: &Path, record: &RunRecord) -> Result<(), String> {
    store::write_record_atomic(dir, &record.to_value())
        .map_err(|e| format!("cannot write the record in {}: {e}", dir.display()))
}

/// The Slurm job of a run whose record is not final: its id.
pub(crate) fn pending_job(
    record_status: Status,
    executor: Option<&ExecutorRecord>,
) -> Option<String> {
    let executor = executor?;
    (record_status.is_active() && executor.kind == crate::executor::ExecutorKind::Slurm.name())
        .then(|| executor.job_id.clone())
        .flatten()
}

/// What Slurm said of one run's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Queued or running (its state as Slurm says it).
    Active(JobState),
    /// The job left the queue and its record is final (written by the node, or settled
    /// here now).
    Ended,
    /// `squeue` failed: nothing is known (never taken for "done").
    Unknown(String),
}

/// Looks at the jobs of the runs in `run_dirs` whose records are not final, with one
/// `squeue`; settles the records of jobs that ended without writing their end. Runs that
/// are not Slurm runs or already final are left out of the answer.
pub(crate) fn look(run_dirs: &[PathBuf]) -> BTreeMap<PathBuf, Seen> {
    let mut waiting: Vec<(PathBuf, String)> = Vec::new();
    for dir in run_dirs {
        if let Ok(record) = crate::record::RunSummary::load(dir)
            && let Some(job) = pending_job(record.status, record.executor.as_ref())
        {
            waiting.push((dir.clone(), job));
        }
    }
    let mut seen = BTreeMap::new();
    if waiting.is_empty() {
        return seen;
    }
    let ids: Vec<&str> = waiting.iter().map(|(_, id)| id.as_str()).collect();
    match client::squeue(&ids) {
        QueueAnswer::Unknown(e) => {
            for (dir, _) in waiting {
                seen.insert(dir, Seen::Unknown(e.clone()));
            }
        }
        QueueAnswer::Known(jobs) => {
            for (dir, id) in waiting {
                let state = jobs.get(&id);
                let answer = match state {
                    Some(state) if !state.is_final() => Seen::Active(state.clone()),
                    _ => match settle(&dir, &id, state) {
                        Ok(()) => Seen::Ended,
                        Err(e) => Seen::Unknown(e),
                    },
                };
                seen.insert(dir, answer);
            }
        }
    }
    seen
}

/// The job `job_id` of the run in `dir` has left the queue (`state`: its last state, or
/// `None` when Slurm has forgotten it). Its record is read once more — the node-side
/// tapir writes the end before it exits — and, when still not final, is settled from
/// what Slurm and the job's output file say.
pub(crate) fn settle(dir: &Path, job_id: &str, state: Option<&JobState>) -> Result<(), String> {
    let mut record = RunRecord::load(dir).map_err(|e| e.to_string())?;
    if !record.status.is_active() {
        return Ok(());
    }
    let details = client::show_job(job_id);
    let state_name = state
        .map(|s| s.state.clone())
        .or_else(|| details.as_ref().and_then(|d| d.get("JobState").cloned()));
    let exit_code = details.as_ref().and_then(|d| d.get("ExitCode").cloned());
    let reason = state
        .map(|s| s.reason.clone())
        .or_else(|| details.as_ref().and_then(|d| d.get("Reason").cloned()))
        .filter(|r| !r.is_empty() && r != "None");
    let output = script::job_output(dir, job_id);
    let tail = read_tail(&output);
    let was_queued = record.status == Status::Queued;
    // Without cgroups Slurm's memory kill ends the job FAILED, and only slurmstepd's
    // words in the output file say why.
    let memory_kill = tail
        .as_deref()
        .is_some_and(|t| t.contains("Exceeded job memory limit"));
    record.status = match state_name.as_deref() {
        Some("OUT_OF_MEMORY") => Status::OomKilled,
        _ if memory_kill => Status::OomKilled,
        Some("TIMEOUT" | "DEADLINE") => Status::TimedOut,
        Some("CANCELLED") => Status::Cancelled,
        _ => Status::EngineError,
    };
    record.message = Some(vanished_message(
        job_id,
        state_name.as_deref(),
        exit_code.as_deref(),
        reason.as_deref(),
        was_queued,
        &output,
        tail.as_deref(),
    ));
    record.ended_at = Some(jiff::Timestamp::now());
    if let Some(executor) = record.executor.as_mut() {
        executor.state = state_name.or(Some("GONE".into()));
        if let Some(node) = state.map(|s| s.node.clone()).filter(|n| !n.is_empty()) {
            executor.node = Some(node);
        }
    }
    write(dir, &record)
}

/// The last lines of a job's output file (at most 2 KiB); `None` when there is none.
fn read_tail(path: &Path) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(2048)))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n    ");
    Some(tail)
}

/// Why a job ended without its record: what Slurm says, and what the job printed.
pub(crate) fn vanished_message(
    job_id: &str,
    state: Option<&str>,
    exit_code: Option<&str>,
    reason: Option<&str>,
    was_queued: bool,
    output: &Path,
    output_tail: Option<&str>,
) -> String {
    let mut words = match state {
        Some(state) => {
            let mut said = format!("Slurm job {job_id} ended ({state}");
            if let Some(code) = exit_code.filter(|c| *c != "0:0") {
                said.push_str(&format!(", exit code {code}"));
            }
            if let Some(reason) = reason {
                said.push_str(&format!(", reason {reason}"));
            }
            said.push(')');
            said
        }
        None => format!("Slurm no longer knows job {job_id}"),
    };
    words.push_str(if was_queued {
        " before tapir started on the node"
    } else {
        " without tapir recording the end on the node"
    });
    match state {
        Some("CANCELLED") => words.push_str(" (cancelled by scancel or an administrator)"),
        Some("OUT_OF_MEMORY") => words.push_str(" (Slurm's memory limit, --mem, was exceeded)"),
        Some("TIMEOUT") => words.push_str(" (Slurm's time limit, --time, was reached)"),
        Some("NODE_FAIL") => words.push_str(" (the node failed)"),
        _ => {}
    }
    match output_tail {
        Some(tail) if !tail.is_empty() => words.push_str(&format!(
            "; its output {} ends with:\n    {tail}",
            output.display()
        )),
        Some(_) => words.push_str(&format!("; its output {} is empty", output.display())),
        None => words.push_str(&format!(
            "; it left no output file {}: the node could not write into the run folder — it must be on a file system the nodes share (choose --runs-dir there)",
            output.display()
        )),
    }
    words
}

/// Polls Slurm no more often than this at first, backing off to [`MAX_POLL`].
pub(crate) const FIRST_POLL: Duration = Duration::from_millis(250);
pub(crate) const MAX_POLL: Duration = Duration::from_secs(5);

/// The next wait of a backing-off poll.
pub(crate) fn next_poll(previous: Duration) -> Duration {
    (previous * 3 / 2).min(MAX_POLL)
}

/// Cancels the job and waits (bounded: `KillWait` plus the deadline) until it has left
/// the queue, so its node-side tapir has stopped the container and written the end.
/// Then settles the record if the job left none (cancelled while queued).
pub(crate) fn cancel_and_wait(dir: &Path, job_id: &str) -> Result<(), String> {
    client::scancel(job_id)?;
    let limit = crate::backend::deadline::limit() + Duration::from_secs(60);
    let start = std::time::Instant::now();
    let mut poll = FIRST_POLL;
    loop {
        match client::squeue(&[job_id]) {
            QueueAnswer::Known(jobs) => match jobs.get(job_id) {
                Some(state) if !state.is_final() => {}
                state => return settle(dir, job_id, state),
            },
            QueueAnswer::Unknown(e) if start.elapsed() > limit => return Err(e),
            QueueAnswer::Unknown(_) => {}
        }
        if start.elapsed() > limit {
            return Err(format!(
                "Slurm job {job_id} was cancelled but is still in the queue after {} s",
                limit.as_secs()
            ));
        }
        std::thread::sleep(poll);
        poll = next_poll(poll);
    }
}

/// The node side of a job: waits (bounded) until the record in `dir` carries the job id
/// the submitter got, and returns it. `Err` in words when the folder is not there (the
/// node does not see it) or the record is not a queued run of this job.
pub(crate) fn adopt_queued(dir: &Path, job_id: Option<&str>) -> Result<RunRecord, String> {
    let host = crate::record::current_host();
    if !dir.join(store::RECORD_FILE).is_file() {
        return Err(format!(
            "the run folder {} is not there on {host}: it must be on a file system shared with the nodes (choose --runs-dir there)",
            dir.display()
        ));
    }
    let start = std::time::Instant::now();
    loop {
        let record = RunRecord::load(dir).map_err(|e| e.to_string())?;
        if record.status != Status::Queued {
            return Err(format!(
                "run {} is {}, not queued: a job runs a queued run only once",
                record.id,
                record.status.as_str()
            ));
        }
        let recorded = record.executor.as_ref().and_then(|e| e.job_id.clone());
        match (recorded.as_deref(), job_id) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "run {} belongs to Slurm job {a}, not to this job {b}",
                    record.id
                ));
            }
            (Some(_), _) => return Ok(record),
            // The submitter writes the id right after `sbatch` answers.
            (None, _) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            (None, _) => return Ok(record),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vanished_job_is_said_with_its_state_and_its_output() {
        let out = Path::new("/runs/task_run-1/slurm-7.out");
        let message = vanished_message(
            "7",
            Some("FAILED"),
            Some("127:0"),
            Some("NonZeroExitCode"),
            true,
            out,
            Some("tapir: /x/tapir is not an executable on vm"),
        );
        assert_eq!(
            message,
            "Slurm job 7 ended (FAILED, exit code 127:0, reason NonZeroExitCode) before tapir started on the node; its output /runs/task_run-1/slurm-7.out ends with:\n    tapir: /x/tapir is not an executable on vm"
        );
        let lost = vanished_message("7", None, None, None, false, out, None);
        assert!(lost.starts_with("Slurm no longer knows job 7 without tapir recording"));
        assert!(lost.contains("left no output file /runs/task_run-1/slurm-7.out"));
        assert!(lost.contains("file system the nodes share"));
        let oom = vanished_message(
            "8",
            Some("OUT_OF_MEMORY"),
            Some("0:125"),
            None,
            false,
            out,
            Some(""),
        );
        assert!(
            oom.contains("--mem, was exceeded") && oom.contains("is empty"),
            "{oom}"
        );
    }

    #[test]
    fn polls_back_off_to_a_ceiling() {
        let mut poll = FIRST_POLL;
        let mut waits = Vec::new();
        for _ in 0..12 {
            waits.push(poll);
            poll = next_poll(poll);
        }
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*waits.last().unwrap_or(&FIRST_POLL), MAX_POLL);
    }

    #[test]
    fn only_active_slurm_runs_with_a_job_are_asked_about() {
        let slurm = ExecutorRecord {
            job_id: Some("3".into()),
            ..slurm_record(None, None, None)
        };
        assert_eq!(
            pending_job(Status::Queued, Some(&slurm)).as_deref(),
            Some("3")
        );
        assert_eq!(
            pending_job(Status::Running, Some(&slurm)).as_deref(),
            Some("3")
        );
        assert_eq!(pending_job(Status::Succeeded, Some(&slurm)), None);
        assert_eq!(pending_job(Status::Running, None), None);
        let k8s = ExecutorRecord {
            kind: "k8s".into(),
            ..slurm.clone()
        };
        assert_eq!(pending_job(Status::Running, Some(&k8s)), None);
    }
}
