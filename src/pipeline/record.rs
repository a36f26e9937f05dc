//! The pipeline run record: `pipeline-run-<id>/record.json` (docs/DESIGN.md decision 10).
//!
//! A pipeline run folder holds this record, the managed channel folders
//! `<task_id>/<channel>/`, and under `runs/` the derived task files
//! (`runs/<task_id>.task.json`, what each attempt ran) and one task run folder per attempt
//! (`runs/task_run-<id>/`, an ordinary run record: `tapir show` reads it). Evolution
//! follows the task record's rules: new fields get defaults, readers ignore unknown
//! fields and tolerate unknown statuses, `format_version` changes only for changes old
//! readers cannot ignore. Paths inside the folder are relative to it, so the folder can
//! move.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::pipeline::ccat::Product;
use crate::pipeline::model::{Execution, Profile};
use crate::record::{self, store};

/// Version of the pipeline run `record.json`.
pub(crate) const FORMAT_VERSION: u32 = 1;

// The run-folder layout is the record layer's (`ps`, `rm` and run lookup know both kinds
// of run folder); the pipeline uses it.
pub(crate) use crate::record::store::{
    PIPELINE_RUN_DIR_PREFIX, PIPELINE_RUNS_SUBDIR as RUNS_SUBDIR,
};

/// What `record.json` of a pipeline run folder says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PipelineRunRecord {
    pub format_version: u32,
    /// Always `pipeline-run`: tells a pipeline record from a task run record.
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub tapir_version: String,
    /// The pipeline's `name`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub profile: Profile,
    /// `docker` or `apptainer`.
    #[serde(default)]
    pub mode: String,
    /// The parallelism used (`--jobs`) by the latest invocation.
    #[serde(default)]
    pub jobs: usize,
    /// The pipeline file (absolute path) and its sha256: `--resume` refuses a changed file.
    #[serde(default)]
    pub pipeline_file: record::TaskFile,
    /// The `--conf` file of the latest invocation, if any (it may change on `--resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conf_file: Option<record::TaskFile>,
    #[serde(default)]
    pub status: PipelineStatus,
    /// How it ended, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The exit code `tapir pipeline run` gave (README, "Exit codes").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
    /// The process running the pipeline, while it runs, and its machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub created_at: jiff::Timestamp,
    /// When each `--resume` started, oldest first.
    #[serde(default)]
    pub resumed_at: Vec<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<jiff::Timestamp>,
    /// In plan order (by level, then file order).
    #[serde(default)]
    pub tasks: Vec<PipelineTaskRecord>,
}

fn kind() -> String {
    "pipeline-run".to_string()
}

/// How the pipeline as a whole stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PipelineStatus {
    Running,
    /// Every task succeeded.
    Succeeded,
    /// At least one task failed, timed out or was skipped (also when a `can_fail`
    /// dependency let its downstream tasks run).
    Failed,
    /// Stopped by Ctrl-C or SIGTERM.
    Cancelled,
    #[serde(other)]
    #[default]
    Unknown,
}

impl PipelineStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

/// One task of the pipeline run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PipelineTaskRecord {
    pub id: String,
    /// 1-based, as in `pipeline validate`.
    #[serde(default)]
    pub level: usize,
    #[serde(default)]
    pub status: TaskStatus,
    /// Status `skipped`: whether the task skipped itself (its `skip_exit_code`) or was
    /// not run because of a dependency. Absent in records older than the field: those
    /// skips were all `failed-dependency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_by: Option<SkipCause>,
    /// Why it ended so (the last attempt's message, or why it was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The task file as the pipeline names it (absolute), or `inline`.
    #[serde(default)]
    pub source_task: String,
    /// The task file each attempt ran, relative to the pipeline run folder.
    #[serde(default)]
    pub task_file: String,
    /// Ids of the tasks it waits for.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Its managed folders (relative to the pipeline run folder) and outside ones.
    #[serde(default)]
    pub folders: Vec<TaskFolder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    /// Every attempt, oldest first, across `--resume`s.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Profile `ccat`: the data products the step left once it succeeded (the final
    /// step's /workflow/output, another step's /workflow/workspace/<step>), with their
    /// sidecar metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<Product>,
    /// What tapir noticed about them (a sidecar that is not valid JSON, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// How one task of a pipeline run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TaskStatus {
    /// Not started yet.
    #[default]
    Pending,
    Running,
    Succeeded,
    /// Its last attempt failed (the task's code, out of memory, or not started).
    Failed,
    /// Its last attempt ran past `max_exec_time`.
    TimedOut,
    /// Not run: a dependency without `can_fail` did not succeed.
    Skipped,
    /// Stopped, or never started, because the pipeline was cancelled.
    Cancelled,
    #[serde(other)]
    Unknown,
}

impl TaskStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed-out",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

/// Why a task is `skipped`. As in Airflow (Kaapana's engine), a skip travels down: a task
/// whose dependency was skipped (without `can_fail`) is skipped too, and neither counts
/// as a failure of the pipeline; only a skip that a failure caused does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SkipCause {
    /// The task exited with its `skip_exit_code` ("nothing to do"; Kaapana: 126).
    ExitCode,
    /// A dependency (without `can_fail`) was skipped, by its exit code or transitively.
    SkippedDependency,
    /// A dependency (without `can_fail`) failed, timed out, was cancelled, or was skipped
    /// because of a failure.
    FailedDependency,
}

impl PipelineTaskRecord {
    /// Whether the task ended in a way that does not make the pipeline fail: it succeeded,
    /// or it (or a dependency, transitively) skipped itself.
    pub(crate) fn ended_well(&self) -> bool {
        match self.status {
            TaskStatus::Succeeded => true,
            TaskStatus::Skipped => matches!(
                self.skipped_by,
                Some(SkipCause::ExitCode | SkipCause::SkippedDependency)
            ),
            _ => false,
        }
    }
}

/// A folder of a task in the pipeline run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskFolder {
    pub channel: String,
    /// `input` or `output`.
    pub direction: String,
    /// `true`: `path` is relative to the pipeline run folder, which tapir manages.
    pub managed: bool,
    pub path: String,
}

/// One attempt of a task: one `tapir run`, with its own task run folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Attempt {
    /// 1-based, counted across `--resume`s.
    pub number: u32,
    /// The task run's id and folder (relative to the pipeline run folder), once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<String>,
    /// The task run's own status (`succeeded`, `failed`, `timed-out`, `engine-error`, …).
    #[serde(default)]
    pub status: record::Status,
    /// The task's exit code, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// What `tapir run` exited with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tapir_exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The exact engine command of the task run (from its record), for reproducing it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// The image it ran: reference, id and repo digests (from its record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<record::ImageRecord>,
    pub started_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<jiff::Timestamp>,
}

impl Attempt {
    /// An attempt that began at `started_at` and has no task run linked yet.
    pub(crate) fn started(
        number: u32,
        started_at: jiff::Timestamp,
        status: record::Status,
    ) -> Self {
        Self {
            number,
            run_id: None,
            run_dir: None,
            status,
            exit_code: None,
            tapir_exit_code: None,
            message: None,
            argv: Vec::new(),
            image: None,
            started_at,
            ended_at: None,
        }
    }
}

impl PipelineRunRecord {
    pub(crate) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads `dir/record.json`; the error names the file.
    pub(crate) fn load(dir: &Path) -> Result<Self, store::RecordError> {
        let value = store::read_record(dir)?;
        let mut record: Self = serde_json::from_value(value).map_err(|e| {
            store::RecordError::new(format!(
                "{} is not a pipeline run record tapir can read: {e}",
                dir.join(store::RECORD_FILE).display()
            ))
        })?;
        if record.kind != "pipeline-run" {
            return Err(store::RecordError::new(format!(
                "{} is not a pipeline run record (kind `{}`)",
                dir.join(store::RECORD_FILE).display(),
                record.kind
            ))
            .with_fix("give a pipeline-run-<id> folder"));
        }
        if record.id.is_empty() {
            record.id = pipeline_run_id_of(dir).unwrap_or_default().to_string();
        }
        Ok(record)
    }

    /// Writes it atomically, like a task run record.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), store::RecordError> {
        store::write_record_atomic(dir, &self.to_value())
    }

    pub(crate) fn task(&self, id: &str) -> Option<&PipelineTaskRecord> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// The id in a `pipeline-run-<id>` folder name.
pub(crate) fn pipeline_run_id_of(dir: &Path) -> Option<&str> {
    dir.file_name()?
        .to_str()?
        .strip_prefix(PIPELINE_RUN_DIR_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_kebab_case_and_unknown_ones_are_tolerated() {
        assert_eq!(
            serde_json::to_value(TaskStatus::TimedOut).unwrap(),
            serde_json::json!("timed-out")
        );
        let read: TaskStatus = serde_json::from_value(serde_json::json!("paused")).unwrap();
        assert_eq!(read, TaskStatus::Unknown);
        let read: PipelineStatus = serde_json::from_value(serde_json::json!("later")).unwrap();
        assert_eq!(read, PipelineStatus::Unknown);
    }

    #[test]
    fn a_minimal_record_reads_with_defaults() {
        let record: PipelineRunRecord = serde_json::from_value(serde_json::json!({
            "format_version": 1,
            "tasks": [{"id": "a", "attempts": [{"number": 1, "started_at": "2026-01-01T00:00:00Z"}]}]
        }))
        .unwrap();
        assert_eq!(record.kind, "pipeline-run");
        assert_eq!(record.tasks[0].status, TaskStatus::Pending);
        assert_eq!(record.tasks[0].attempts[0].status, record::Status::Unknown);
        assert_eq!(record.tasks[0].skipped_by, None);
    }

    #[test]
    fn only_skips_that_no_failure_caused_end_well() {
        let task = |status: &str, by: Option<&str>| -> PipelineTaskRecord {
            serde_json::from_value(serde_json::json!({
                "id": "t", "status": status, "skipped_by": by
            }))
            .unwrap()
        };
        assert!(task("succeeded", None).ended_well());
        assert!(task("skipped", Some("exit-code")).ended_well());
        assert!(task("skipped", Some("skipped-dependency")).ended_well());
        assert!(!task("skipped", Some("failed-dependency")).ended_well());
        // A record from before `skipped_by`: its skips came from failures.
        assert!(!task("skipped", None).ended_well());
        assert!(!task("failed", None).ended_well());
    }
}
