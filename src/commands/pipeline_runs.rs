//! What the inspection commands (`ps`, `show`, `logs`, `outputs`, `wait`, `rm`) need of a
//! pipeline run folder (src/pipeline/record.rs): its status as a reader sees it (`lost`
//! when its process is gone), its exit status, and which task run holds a task's attempt.

use std::path::{Path, PathBuf};

use crate::error::{Error, ExitStatus};
use crate::output;
use crate::pipeline::record::{
    Attempt, PipelineRunRecord, PipelineStatus, PipelineTaskRecord, RUNS_SUBDIR, TaskStatus,
};
use crate::record::{self, store};

/// Reads the record; a run that looks lost is read once more, since its process may have
/// written the end and exited between the read and the pid check.
pub(crate) fn load_settled(dir: &Path) -> Result<PipelineRunRecord, store::RecordError> {
    let first = PipelineRunRecord::load(dir)?;
    if is_lost(&first) {
        PipelineRunRecord::load(dir)
    } else {
        Ok(first)
    }
}

/// Like [`load_settled`], as a command's error.
pub(crate) fn load(dir: &Path) -> crate::error::Result<PipelineRunRecord> {
    load_settled(dir).map_err(|e| Error::Record(e.to_string()))
}

/// Recorded as running on this machine, but its process is gone: nothing will write
/// its end.
pub(crate) fn is_lost(r: &PipelineRunRecord) -> bool {
    r.status == PipelineStatus::Running && record::supervisor_gone(r.host.as_deref(), r.pid)
}

/// The status to show: the recorded one, or `lost`.
pub(crate) fn status_label(r: &PipelineRunRecord) -> &'static str {
    if is_lost(r) {
        "lost"
    } else {
        r.status.as_str()
    }
}

/// Has it ended (or can it never end, being lost)?
pub(crate) fn is_over(r: &PipelineRunRecord) -> bool {
    r.status != PipelineStatus::Running || is_lost(r)
}

/// How `tapir pipeline run` ended: the exit code it recorded; 1 for a lost run, or an
/// ended one without a code.
pub(crate) fn exit_status(r: &PipelineRunRecord) -> ExitStatus {
    if is_lost(r) {
        return ExitStatus::Failed;
    }
    match (r.exit_code, r.status) {
        (Some(0), _) => ExitStatus::Success,
        (Some(code), _) => ExitStatus::Task(code),
        (None, PipelineStatus::Succeeded) => ExitStatus::Success,
        (None, PipelineStatus::Cancelled) => ExitStatus::Cancelled,
        (None, _) => ExitStatus::Failed,
    }
}

/// Seconds from creation to end, or to now while it runs; `None` when unknown (no
/// creation time, or lost: its end was never written).
pub(crate) fn duration_seconds(r: &PipelineRunRecord) -> Option<f64> {
    if r.created_at == jiff::Timestamp::UNIX_EPOCH {
        return None;
    }
    let end = match r.ended_at {
        Some(end) => end,
        None if is_lost(r) => return None,
        None => jiff::Timestamp::now(),
    };
    Some((end.as_millisecond() - r.created_at.as_millisecond()).max(0) as f64 / 1000.0)
}

/// How many tasks have each status, in a fixed order, statuses without tasks left out.
pub(crate) fn task_counts(r: &PipelineRunRecord) -> Vec<(&'static str, usize)> {
    [
        TaskStatus::Succeeded,
        TaskStatus::Running,
        TaskStatus::Pending,
        TaskStatus::Failed,
        TaskStatus::TimedOut,
        TaskStatus::Skipped,
        TaskStatus::Cancelled,
        TaskStatus::Unknown,
    ]
    .into_iter()
    .map(|s| (s.as_str(), r.tasks.iter().filter(|t| t.status == s).count()))
    .filter(|(_, n)| *n > 0)
    .collect()
}

/// `3/4 ok`: succeeded tasks of all.
pub(crate) fn ok_count(r: &PipelineRunRecord) -> String {
    let ok = r
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Succeeded)
        .count();
    format!("{ok}/{} ok", r.tasks.len())
}

/// `a, b, c`.
pub(crate) fn task_ids(r: &PipelineRunRecord) -> String {
    r.tasks
        .iter()
        .map(|t| t.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The task `task_id` of the pipeline run; `query` is how the user named the run, for the
/// fix (`command` the subcommand). A misspelt id gets the closest one.
pub(crate) fn find_task<'a>(
    r: &'a PipelineRunRecord,
    task_id: &str,
    command: &str,
    query: &str,
) -> crate::error::Result<&'a PipelineTaskRecord> {
    if let Some(task) = r.task(task_id) {
        return Ok(task);
    }
    let fix = match crate::diagnostic::did_you_mean(task_id, r.tasks.iter().map(|t| t.id.as_str()))
    {
        Some(close) => format!("did you mean `{close}`? (`tapir {command} {query} {close}`)"),
        None => "give one of its task ids (`tapir show` lists them)".into(),
    };
    Err(Error::Usage(format!(
        "pipeline run {} has no task `{task_id}` (its tasks: {})\n  fix: {fix}",
        r.id,
        task_ids(r)
    )))
}

/// The usage error for a pipeline run given without the TASK a command needs.
pub(crate) fn task_needed(r: &PipelineRunRecord, dir: &Path, command: &str, query: &str) -> Error {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| query.to_string());
    let first = r.tasks.first().map_or("TASK", |t| t.id.as_str());
    Error::Usage(format!(
        "{name} is a pipeline run: name one of its tasks ({})\n  fix: tapir {command} {query} {first}",
        task_ids(r)
    ))
}

/// The usage error for a TASK given with a task run.
pub(crate) fn not_a_pipeline(dir: &Path) -> Error {
    Error::Usage(format!(
        "{} is a task run: a task id is only for pipeline runs\n  fix: leave out the task id",
        dir.display()
    ))
}

/// Where an attempt of a task is, or why there is none.
pub(crate) enum AttemptRun {
    /// Its task run folder.
    Found(PathBuf),
    /// The task has not (yet) made a task run: why, in words.
    NotYet(String),
}

/// The task run folder of attempt `number` of `task` (the latest when `None`), as the
/// record links it. Asking for an attempt that does not exist is a usage error.
pub(crate) fn attempt_run(
    dir: &Path,
    task: &PipelineTaskRecord,
    number: Option<u32>,
) -> crate::error::Result<AttemptRun> {
    let chosen: Option<&Attempt> = match number {
        Some(n) => Some(task.attempts.iter().find(|a| a.number == n).ok_or_else(|| {
            let numbers: Vec<String> = task.attempts.iter().map(|a| a.number.to_string()).collect();
            Error::Usage(format!(
                "task {} has no attempt {n} (it has {})\n  fix: leave out --attempt for the latest",
                task.id,
                if numbers.is_empty() {
                    "none".to_string()
                } else {
                    numbers.join(", ")
                }
            ))
        })?),
        None => task.attempts.last(),
    };
    let linked = chosen.and_then(|a| {
        a.run_dir.as_ref().map(|d| dir.join(d)).or_else(|| {
            a.run_id.as_ref().map(|id| {
                dir.join(RUNS_SUBDIR)
                    .join(format!("{}{id}", store::RUN_DIR_PREFIX))
            })
        })
    });
    // An attempt's run id and folder are assigned before it starts; the folder exists
    // once its `tapir run` is past its checks.
    if let Some(run_dir) = linked {
        if run_dir.join(store::RECORD_FILE).is_file() {
            return Ok(AttemptRun::Found(run_dir));
        }
        if let Some(a) = chosen.filter(|a| a.status == record::Status::Running) {
            return Ok(AttemptRun::NotYet(format!(
                "attempt {} of task {} is starting: its task run {} has no record yet",
                a.number,
                task.id,
                run_dir.display()
            )));
        }
    }
    let why = match chosen {
        Some(a) => format!(
            "attempt {} of task {} has no task run ({})",
            a.number,
            task.id,
            output::status_with_message(a.status.as_str(), "", a.message.as_deref())
        ),
        None => format!(
            "task {} has not run ({})",
            task.id,
            output::status_with_message(task.status.as_str(), "", task.message.as_deref())
        ),
    };
    Ok(AttemptRun::NotYet(why))
}

/// The task run folder of the latest attempt of task `task_id`, for a command that works
/// on one task run (`command`, with the run named `query`). A task that has no task run
/// yet is a usage error whose fix is `tapir COMMAND QUERY`, which `instead` does.
pub(crate) fn latest_task_run(
    dir: &Path,
    task_id: &str,
    command: &str,
    query: &str,
    instead: &str,
) -> crate::error::Result<PathBuf> {
    let record = load(dir)?;
    let task = find_task(&record, task_id, command, query)?;
    match attempt_run(dir, task, None)? {
        AttemptRun::Found(run_dir) => Ok(run_dir),
        AttemptRun::NotYet(why) => Err(Error::Usage(format!(
            "{why}\n  fix: `tapir {command} {query}` {instead}"
        ))),
    }
}

/// Which task and attempt of the pipeline run made the task run `run_id`.
pub(crate) fn attempt_of<'a>(r: &'a PipelineRunRecord, run_id: &str) -> Option<(&'a str, u32)> {
    r.tasks.iter().find_map(|t| {
        t.attempts
            .iter()
            .find(|a| a.run_id.as_deref() == Some(run_id))
            .map(|a| (t.id.as_str(), a.number))
    })
}

/// The task run folders of the pipeline run, newest first.
pub(crate) fn task_runs(dir: &Path) -> Vec<PathBuf> {
    store::list_runs(&dir.join(RUNS_SUBDIR)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: serde_json::Value) -> PipelineRunRecord {
        serde_json::from_value(value).expect("a record")
    }

    #[test]
    fn the_exit_status_is_the_recorded_code_and_lost_or_missing_codes_fail() {
        let ended = |status: &str, code: Option<u8>| {
            exit_status(&record(serde_json::json!({
                "format_version": 1, "status": status, "exit_code": code
            })))
            .code()
        };
        assert_eq!(ended("succeeded", Some(0)), 0);
        assert_eq!(ended("failed", Some(1)), 1);
        assert_eq!(ended("cancelled", Some(130)), 130);
        assert_eq!(ended("cancelled", None), 130);
        assert_eq!(ended("succeeded", None), 0);
        assert_eq!(ended("later", None), 1);
        // Running, with a process that cannot exist: lost.
        let lost = record(serde_json::json!({
            "format_version": 1, "status": "running", "pid": u32::MAX
        }));
        assert!(is_lost(&lost) && is_over(&lost));
        assert_eq!(status_label(&lost), "lost");
        assert_eq!(exit_status(&lost).code(), 1);
        // Running on another machine: not ours to call lost.
        let elsewhere = record(serde_json::json!({
            "format_version": 1, "status": "running", "pid": u32::MAX, "host": "elsewhere.invalid"
        }));
        assert!(!is_over(&elsewhere));
    }

    #[test]
    fn a_misspelt_task_id_gets_the_closest_one() {
        let r = record(serde_json::json!({
            "format_version": 1, "id": "p1",
            "tasks": [{"id": "segment"}, {"id": "convert"}]
        }));
        let text = find_task(&r, "segmnet", "logs", "p1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            text.contains("has no task `segmnet` (its tasks: segment, convert)")
                && text.contains("did you mean `segment`? (`tapir logs p1 segment`)"),
            "{text}"
        );
        assert!(find_task(&r, "convert", "logs", "p1").is_ok());
        assert_eq!(ok_count(&r), "0/2 ok");
        assert_eq!(task_counts(&r), vec![("pending", 2)]);
    }
}
