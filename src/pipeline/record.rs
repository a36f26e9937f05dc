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
    /// The last entry of `journal.jsonl` this record holds: readers apply only the
    /// entries after it (see [`Journal`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub journal_seq: u64,
    /// Every archive made at the end of this run (one per invocation that asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archives: Vec<crate::pipeline::archive::ArchiveRecord>,
    /// The `--param` values of the latest invocation, and the defaults it used; a
    /// secret-looking name's value is masked.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub params: std::collections::BTreeMap<String, String>,
    /// The image builds of each invocation, in order (`builds` in the pipeline file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<crate::pipeline::build::BuildRecord>,
    /// The managed output folders removed by `--clean-succeeded` (relative).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleaned: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
        self.status.ends_well(self.skipped_by)
    }
}

impl TaskStatus {
    /// Whether a task that ended with this status (and `skipped_by`) does not make the
    /// pipeline fail: it succeeded, or it (or a dependency, transitively) skipped itself.
    pub(crate) fn ends_well(self, skipped_by: Option<SkipCause>) -> bool {
        match self {
            TaskStatus::Succeeded => true,
            TaskStatus::Skipped => matches!(
                skipped_by,
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

    /// Reads `dir/record.json` and applies the journal's newer entries to it; the error
    /// names the file.
    pub(crate) fn load(dir: &Path) -> Result<Self, store::RecordError> {
        let mut record = Self::load_compacted(dir)?;
        record.apply_journal(dir);
        Ok(record)
    }

    /// Replaces each task the journal has a newer state of. A line that does not parse
    /// ends the reading: it can only be the last, cut short by a kill during its write.
    fn apply_journal(&mut self, dir: &Path) {
        let Ok(text) = store::read_run_file(&dir.join(JOURNAL_FILE)) else {
            return;
        };
        let index: std::collections::HashMap<String, usize> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        for line in String::from_utf8_lossy(&text).lines() {
            let Ok(entry) = serde_json::from_str::<JournalEntry>(line) else {
                break;
            };
            if entry.seq <= self.journal_seq {
                continue;
            }
            self.journal_seq = entry.seq;
            match index.get(&entry.task.id) {
                Some(&i) => self.tasks[i] = entry.task,
                None => self.tasks.push(entry.task),
            }
        }
    }

    /// `dir/record.json` as written, with the journal's newer entries applied — as JSON
    /// values, so fields this tapir does not know (a newer one wrote them) are kept, in
    /// the record and in the journal's task states alike. What `show --format json`
    /// prints: the record alone would miss every change since the last rewrite.
    pub(crate) fn read_value(dir: &Path) -> Result<serde_json::Value, store::RecordError> {
        let mut value = store::read_record(dir)?;
        let Ok(text) = store::read_run_file(&dir.join(JOURNAL_FILE)) else {
            return Ok(value);
        };
        let mut seq = value["journal_seq"].as_u64().unwrap_or(0);
        for line in String::from_utf8_lossy(&text).lines() {
            // As in `apply_journal`: a line that does not parse can only be the last.
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                break;
            };
            let (Some(entry_seq), Some(task)) = (entry["seq"].as_u64(), entry.get("task")) else {
                break;
            };
            if entry_seq <= seq {
                continue;
            }
            seq = entry_seq;
            let Some(tasks) = value["tasks"].as_array_mut() else {
                break;
            };
            match tasks.iter_mut().find(|t| t["id"] == task["id"]) {
                Some(slot) => *slot = task.clone(),
                None => tasks.push(task.clone()),
            }
        }
        value["journal_seq"] = serde_json::Value::from(seq);
        Ok(value)
    }

    /// Reads `dir/record.json` alone.
    fn load_compacted(dir: &Path) -> Result<Self, store::RecordError> {
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

    pub(crate) fn task(&self, id: &str) -> Option<&PipelineTaskRecord> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// The pipeline record's journal, beside `record.json`.
pub(crate) const JOURNAL_FILE: &str = "journal.jsonl";

/// One line of the journal: a task's whole new state.
#[derive(Debug, Serialize, Deserialize)]
struct JournalEntry {
    seq: u64,
    task: PipelineTaskRecord,
}

/// The smallest journal that is folded into `record.json`: below it, rewriting the
/// record would cost more than reading the lines.
const MIN_COMPACTION_BYTES: u64 = 64 * 1024;

/// How a running pipeline keeps its record, at a cost per event that does not grow with
/// the number of tasks: each change appends the changed tasks to `journal.jsonl` (one
/// JSON line each, numbered, synced to disk before the next event); once the journal is
/// as large as the record, the record is rewritten atomically with every entry folded in
/// (`journal_seq` names the last) and the journal is emptied. Rewriting after appends of
/// the record's own size keeps the rewrites' share per event constant.
///
/// Crash safety: after a kill -9 the record is whole (atomic rename) and the journal
/// holds every synced line; [`PipelineRunRecord::load`] applies the lines numbered after
/// `journal_seq`, so a kill between the rewrite and the emptying applies nothing twice,
/// and a line cut short is ignored (its event was not synced, so nothing relied on it).
pub(crate) struct Journal {
    dir: std::path::PathBuf,
    file: Option<std::fs::File>,
    /// Bytes appended since the last compaction.
    appended: u64,
    /// When to compact next.
    compact_at: u64,
}

impl Journal {
    /// The journal of the pipeline run folder `dir`; [`Journal::compact`] starts it.
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            file: None,
            appended: 0,
            compact_at: MIN_COMPACTION_BYTES,
        }
    }

    /// Appends the new state of `record`'s tasks `changed` (indexes), and compacts when
    /// the journal has grown as large as the record.
    pub(crate) fn append(
        &mut self,
        record: &mut PipelineRunRecord,
        changed: impl IntoIterator<Item = usize>,
    ) -> Result<(), store::RecordError> {
        use std::io::Write as _;
        let path = self.dir.join(JOURNAL_FILE);
        let mut lines = Vec::new();
        for i in changed {
            let Some(task) = record.tasks.get(i) else {
                continue;
            };
            record.journal_seq += 1;
            let entry = serde_json::json!({"seq": record.journal_seq, "task": task});
            lines.extend_from_slice(entry.to_string().as_bytes());
            lines.push(b'\n');
        }
        if lines.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                store::run_file_options()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| store::RecordError::io("open", &path, &e))?,
            ),
        };
        file.write_all(&lines)
            .and_then(|()| file.sync_data())
            .map_err(|e| store::RecordError::io("write", &path, &e))?;
        self.appended += lines.len() as u64;
        if self.appended >= self.compact_at {
            self.compact(record)?;
        }
        Ok(())
    }

    /// Rewrites the record with every entry in it, then empties the journal.
    pub(crate) fn compact(&mut self, record: &PipelineRunRecord) -> Result<(), store::RecordError> {
        let value = record.to_value();
        let size = value.to_string().len() as u64;
        store::write_record_atomic(&self.dir, &value)?;
        let path = self.dir.join(JOURNAL_FILE);
        let emptied = match &self.file {
            Some(file) => file.set_len(0).and_then(|()| file.sync_data()),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        };
        emptied.map_err(|e| store::RecordError::io("empty", &path, &e))?;
        self.appended = 0;
        self.compact_at = size.max(MIN_COMPACTION_BYTES);
        Ok(())
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

    fn three_tasks() -> PipelineRunRecord {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "kind": "pipeline-run", "id": "j",
            "tasks": [{"id": "a"}, {"id": "b"}, {"id": "c"}]
        }))
        .unwrap()
    }

    fn on_disk(dir: &Path) -> PipelineRunRecord {
        serde_json::from_value(store::read_record(dir).unwrap()).unwrap()
    }

    #[test]
    fn the_journal_carries_changes_without_rewriting_the_record_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = three_tasks();
        let mut journal = Journal::new(dir.path());
        journal.compact(&record).unwrap();
        record.tasks[1].status = TaskStatus::Running;
        journal.append(&mut record, [1]).unwrap();
        record.tasks[1].status = TaskStatus::Succeeded;
        record.tasks[2].status = TaskStatus::Running;
        journal.append(&mut record, [1, 2]).unwrap();
        // record.json was not rewritten: the events are in the journal only.
        assert_eq!(on_disk(dir.path()).tasks[1].status, TaskStatus::Pending);
        let read = PipelineRunRecord::load(dir.path()).unwrap();
        let statuses: Vec<TaskStatus> = read.tasks.iter().map(|t| t.status).collect();
        assert_eq!(
            statuses,
            [
                TaskStatus::Pending,
                TaskStatus::Succeeded,
                TaskStatus::Running
            ]
        );
        assert_eq!(read.journal_seq, 3);
        // A kill -9 in the middle of a line: the line is ignored, the rest is kept.
        let path = dir.path().join(JOURNAL_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"seq\": 4, \"task\": {\"id\": \"c\", \"sta");
        std::fs::write(&path, text).unwrap();
        let read = PipelineRunRecord::load(dir.path()).unwrap();
        assert_eq!(read.tasks[2].status, TaskStatus::Running);
        assert_eq!(read.journal_seq, 3);
    }

    #[test]
    fn the_record_as_json_has_the_journal_applied_and_keeps_fields_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = three_tasks();
        let mut journal = Journal::new(dir.path());
        journal.compact(&record).unwrap();
        record.tasks[0].status = TaskStatus::Succeeded;
        journal.append(&mut record, [0]).unwrap();
        // A newer tapir's field, in the record and in a journal line.
        let mut raw = store::read_record(dir.path()).unwrap();
        raw["from_the_future"] = serde_json::json!(1);
        std::fs::write(dir.path().join(store::RECORD_FILE), raw.to_string()).unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"seq\": 9, \"task\": {\"id\": \"d\", \"new_field\": true}}\n");
        text.push_str("{\"seq\": 10, \"task\": {\"id\": \"b\", \"sta");
        std::fs::write(&path, text).unwrap();

        let value = PipelineRunRecord::read_value(dir.path()).unwrap();
        assert_eq!(value["tasks"][0]["status"], "succeeded", "{value}");
        assert_eq!(
            value["tasks"][1]["status"], "pending",
            "a torn line is ignored"
        );
        assert_eq!(value["tasks"][3]["new_field"], true);
        assert_eq!(value["from_the_future"], 1);
        assert_eq!(value["journal_seq"], 9);
    }

    #[test]
    fn a_compaction_folds_the_journal_in_and_a_kill_before_emptying_it_applies_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = three_tasks();
        let mut journal = Journal::new(dir.path());
        journal.compact(&record).unwrap();
        record.tasks[0].status = TaskStatus::Running;
        journal.append(&mut record, [0]).unwrap();
        let stale_journal = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        record.tasks[0].status = TaskStatus::Failed;
        journal.compact(&record).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap(),
            b"",
            "emptied"
        );
        assert_eq!(on_disk(dir.path()).journal_seq, 1);
        // As if killed after the record's rewrite and before the journal was emptied:
        // its entry is already in the record, and older than the record's own state.
        std::fs::write(dir.path().join(JOURNAL_FILE), stale_journal).unwrap();
        let read = PipelineRunRecord::load(dir.path()).unwrap();
        assert_eq!(read.tasks[0].status, TaskStatus::Failed);
    }

    #[test]
    fn the_journal_is_compacted_once_it_is_as_large_as_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = three_tasks();
        let mut journal = Journal::new(dir.path());
        journal.compact(&record).unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut journal_len = 0;
        let mut appends = 0;
        while on_disk(dir.path()).journal_seq == 0 {
            // Not compacted yet: the journal is below the threshold.
            assert!(journal_len < MIN_COMPACTION_BYTES, "{journal_len}");
            journal.append(&mut record, [0]).unwrap();
            appends += 1;
            journal_len = std::fs::metadata(&path).map_or(0, |m| m.len());
        }
        assert_eq!(on_disk(dir.path()).journal_seq, appends, "all folded in");
        assert_eq!(journal_len, 0, "emptied");
        assert!(appends > 100, "{appends}: many events per rewrite");
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
