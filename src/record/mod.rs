//! The run record: `task_run-<id>/record.json`, versioned JSON that any tool can read
//! (DESIGN.md decisions 1 and 9). Append-only evolution: new fields get defaults, readers
//! ignore unknown fields, and a writer never rewrites a record of a newer version.

pub(crate) mod logs;
pub(crate) mod store;

use crate::error::ExitStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resolve::plan::{Direction, RunPlan};

/// Version of `record.json`. Bump only for changes old readers cannot ignore.
pub(crate) const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// Handed to a scheduler (a Slurm job, a Kubernetes object) that has not started it.
    Queued,
    /// Preparing or running.
    Running,
    Succeeded,
    Failed,
    OomKilled,
    Cancelled,
    /// Stopped because it ran longer than `run --timeout` (a pipeline's `max_exec_time`).
    TimedOut,
    /// tapir or the engine failed before the container ran.
    EngineError,
    /// tapir could not write the run's logs or record (a full disk): the task was stopped,
    /// since output that is not kept is lost for good.
    WriteFailed,
    /// A status this tapir does not know (written by a newer one), or none at all.
    #[serde(other)]
    #[default]
    Unknown,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::OomKilled => "oom-killed",
            Status::Cancelled => "cancelled",
            Status::TimedOut => "timed-out",
            Status::EngineError => "engine-error",
            Status::WriteFailed => "write-failed",
            Status::Unknown => "unknown",
        }
    }

    /// Not ended yet: queued at a scheduler, or preparing or running.
    pub(crate) fn is_active(self) -> bool {
        matches!(self, Status::Queued | Status::Running)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    /// 0 for a record without one.
    #[serde(default)]
    pub format_version: u32,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub tapir_version: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub status: Status,
    /// What went wrong, in words, when something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub task_file: TaskFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    /// The template as resolved (inline, from the image, or from `--container-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// The plan as the engine got it, read back typed. A plan this tapir cannot read (from
    /// a much newer one) is left out rather than making the whole record unreadable.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "readable_plan"
    )]
    pub plan: Option<RunPlan>,
    /// The exact command, secrets passed by name only.
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The process supervising the run (tapir itself, or the `--detach` supervisor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The machine `pid` lives on: on a runs folder shared between machines, only that
    /// machine can tell whether the run is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub created_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub outputs: Vec<OutputChannel>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Where the run executes when not on this machine (`--executor slurm|k8s`): the
    /// scheduler's handle on it. Absent for local runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorRecord>,
}

/// A run's place in an outside scheduler. Every field but `kind` is optional: each
/// executor fills what it has, and a reader shows what is there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExecutorRecord {
    /// `slurm` or `k8s` (as `--executor` spells it).
    pub kind: String,
    /// Slurm's job id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// The node (Slurm) the run landed on, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The kubectl context and namespace (Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object made for the run, as `kind/name` (Kubernetes: `job/…`, `pod/…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The scheduler's own last word on the run (`PENDING`, `RUNNING`, `NODE_FAIL`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Where the scheduler writes the job's own output (Slurm's `--output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

fn readable_plan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RunPlan>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TaskFile {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub reference: String,
    pub id: String,
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutputChannel {
    pub channel: String,
    pub host_path: String,
    pub files: Vec<OutputFile>,
    pub total_bytes: u64,
    /// Set when the listing stopped early (very large outputs).
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutputFile {
    pub path: String,
    pub bytes: u64,
}

/// At most this many files are listed per channel; sizes are still summed over all.
const MAX_LISTED_FILES: usize = 10_000;

/// Lists the files of an output folder with their sizes.
pub(crate) fn list_output(channel: &str, host_path: &std::path::Path) -> OutputChannel {
    let mut files = Vec::new();
    let mut total = 0;
    let mut truncated = false;
    for entry in walkdir::WalkDir::new(host_path)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let bytes = entry.metadata().map_or(0, |m| m.len());
        total += bytes;
        if files.len() < MAX_LISTED_FILES {
            let path = entry
                .path()
                .strip_prefix(host_path)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .into_owned();
            files.push(OutputFile { path, bytes });
        } else {
            truncated = true;
        }
    }
    OutputChannel {
        channel: channel.to_string(),
        host_path: host_path.display().to_string(),
        files,
        total_bytes: total,
        truncated,
    }
}

/// This machine's name (what `record.host` holds).
pub(crate) fn current_host() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    })
    .clone()
}

/// Is the process with this id alive? (Signal 0 checks without sending anything; EPERM
/// means it exists but belongs to someone else.)
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// A process recorded as supervising a run is known to be gone: the record names this
/// machine (or none) and the pid is not alive. On another machine nobody here can tell.
pub(crate) fn supervisor_gone(host: Option<&str>, pid: Option<u32>) -> bool {
    let here = host.is_none_or(|h| h == current_host());
    here && !pid.is_some_and(process_alive)
}

impl RunRecord {
    /// A new run's first record: its id, engine, status and task file, on this machine,
    /// created now; everything the run learns later is empty.
    pub(crate) fn new(id: &str, mode: &str, status: Status, task_file: String) -> Self {
        RunRecord {
            format_version: FORMAT_VERSION,
            id: id.to_string(),
            tapir_version: env!("CARGO_PKG_VERSION").to_string(),
            mode: mode.to_string(),
            status,
            message: None,
            task_file: TaskFile {
                path: task_file,
                sha256: None,
            },
            task_name: None,
            template: None,
            plan: None,
            argv: Vec::new(),
            image: None,
            container: None,
            pid: None,
            host: Some(current_host()),
            created_at: jiff::Timestamp::now(),
            started_at: None,
            ended_at: None,
            exit_code: None,
            outputs: Vec::new(),
            warnings: Vec::new(),
            executor: None,
        }
    }

    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads `run_dir/record.json`. Records of older versions read with defaults for what
    /// they lack, newer ones with their unknown fields ignored; the error names the file.
    pub(crate) fn load(run_dir: &std::path::Path) -> Result<Self, store::RecordError> {
        let value = store::read_record(run_dir)?;
        let mut record: RunRecord = serde_json::from_value(value).map_err(|e| {
            store::RecordError::new(format!(
                "{} is not a run record tapir can read: {e}",
                run_dir.join(store::RECORD_FILE).display()
            ))
        })?;
        if record.id.is_empty() {
            record.id = store::run_id_of(run_dir).unwrap_or_default().to_string();
        }
        Ok(record)
    }

    /// The recorded plan's mounts in one direction, as (channel, host folder).
    pub(crate) fn planned_mounts(&self, direction: Direction) -> Vec<(String, std::path::PathBuf)> {
        self.plan
            .iter()
            .flat_map(|p| &p.mounts)
            .filter(|m| m.direction == direction)
            .map(|m| (m.channel.clone(), m.host_path.clone()))
            .collect()
    }

    /// The part of the record that says how the run stands.
    pub(crate) fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            mode: self.mode.clone(),
            status: self.status,
            message: self.message.clone(),
            task_name: self.task_name.clone(),
            plan: PlanSummary {
                template: self.plan.as_ref().map(|p| p.template.clone()),
            },
            image: self.image.as_ref().map(|i| ImageSummary {
                reference: i.reference.clone(),
            }),
            pid: self.pid,
            host: self.host.clone(),
            created_at: self.created_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
            exit_code: self.exit_code,
            executor: self.executor.clone(),
        }
    }
}

/// What `ps`, `wait` and `logs --follow` need of a record, read without building the plan
/// and the template (most of a record's bytes): `ps` over 1,000 runs reads only this.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RunSummary {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub task_name: Option<String>,
    #[serde(default)]
    pub plan: PlanSummary,
    #[serde(default)]
    pub image: Option<ImageSummary>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub created_at: jiff::Timestamp,
    #[serde(default)]
    pub started_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub ended_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub executor: Option<ExecutorRecord>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PlanSummary {
    #[serde(default)]
    pub template: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ImageSummary {
    #[serde(default)]
    pub reference: String,
}

impl RunSummary {
    /// Reads the summary of `run_dir/record.json`; the error names the file.
    pub(crate) fn load(run_dir: &std::path::Path) -> Result<Self, store::RecordError> {
        let path = run_dir.join(store::RECORD_FILE);
        let bytes = store::read_replaced_run_file(&path).map_err(|_| {
            // Let the full reader explain (missing, unreadable…) in its words.
            store::read_record(run_dir).err().unwrap_or_else(|| {
                store::RecordError::new(format!("cannot read {}", path.display()))
            })
        })?;
        let mut summary: RunSummary = match serde_json::from_slice(&bytes) {
            Ok(summary) => summary,
            // The full reader gives the precise reason (truncated, corrupt, not an object).
            Err(_) => {
                return Err(store::read_record(run_dir).err().unwrap_or_else(|| {
                    store::RecordError::new(format!(
                        "{} is not a run record tapir can read",
                        path.display()
                    ))
                }));
            }
        };
        if summary.id.is_empty() {
            summary.id = store::run_id_of(run_dir).unwrap_or_default().to_string();
        }
        Ok(summary)
    }

    /// Recorded as running, but the process that supervised it is gone: nothing will
    /// ever write its end.
    pub(crate) fn is_lost(&self) -> bool {
        // A run in an outside scheduler (Slurm, Kubernetes) is settled from the
        // scheduler's word, which says more than a gone pid (`executor::slurm::job::look`,
        // `commands::k8s_submit::settle`).
        self.status == Status::Running
            && self
                .executor
                .as_ref()
                .is_none_or(|e| e.kind != "slurm" && e.kind != "k8s")
            && supervisor_gone(self.host.as_deref(), self.pid)
    }

    /// Like [`RunSummary::load`], but a run that looks lost is read once more: its
    /// supervisor may have written the end and exited between the read and the pid check.
    pub(crate) fn load_settled(run_dir: &std::path::Path) -> Result<Self, store::RecordError> {
        let first = Self::load(run_dir)?;
        if first.is_lost() {
            Self::load(run_dir)
        } else {
            Ok(first)
        }
    }

    /// The status to show: the recorded one, or `lost`.
    pub(crate) fn status_label(&self) -> &'static str {
        if self.is_lost() {
            "lost"
        } else {
            self.status.as_str()
        }
    }

    /// Has it ended (or can it never end, being lost)?
    pub(crate) fn is_over(&self) -> bool {
        !self.status.is_active() || self.is_lost()
    }

    /// How `tapir run` ended (or would end) for this run: the task's own code, 125 when
    /// it never ran, 130 when cancelled; 1 for a lost or unknown run.
    pub(crate) fn exit_status(&self) -> ExitStatus {
        let own_code = |fallback: u8| {
            let code = self.exit_code.and_then(|c| u8::try_from(c).ok());
            ExitStatus::Task(code.filter(|c| *c != 0).unwrap_or(fallback))
        };
        match self.status {
            _ if self.is_lost() => ExitStatus::Failed,
            Status::Succeeded => ExitStatus::Success,
            Status::Failed => own_code(1),
            Status::OomKilled => own_code(137),
            Status::Cancelled => ExitStatus::Cancelled,
            Status::TimedOut => ExitStatus::TimedOut,
            Status::EngineError | Status::WriteFailed => ExitStatus::NotStarted,
            Status::Queued | Status::Running | Status::Unknown => ExitStatus::Failed,
        }
    }

    /// When it started (or was created); `None` when the record says neither (a record
    /// without `created_at` reads as the Unix epoch, which is no time a run started).
    pub(crate) fn start_time(&self) -> Option<jiff::Timestamp> {
        self.started_at
            .or(Some(self.created_at))
            .filter(|t| *t != jiff::Timestamp::UNIX_EPOCH)
    }

    /// Seconds from start (or creation) to end, or to now while running. `None` when
    /// it is unknown: the start is not recorded, or the run is lost (its end was never
    /// written, so "until now" would grow for ever).
    pub(crate) fn duration_seconds(&self) -> Option<f64> {
        let start = self.start_time()?;
        let end = match self.ended_at {
            Some(end) => end,
            None if self.is_lost() => return None,
            None => jiff::Timestamp::now(),
        };
        Some((end.as_millisecond() - start.as_millisecond()).max(0) as f64 / 1000.0)
    }

    /// The exit code `tapir run` gave (or `wait` gives) for this run, once it has ended;
    /// a cancelled run is 130 there, whatever its container's own code (143).
    pub(crate) fn tapir_exit_code(&self) -> Option<u8> {
        (!self.status.is_active() && !self.is_lost() && self.status != Status::Unknown)
            .then(|| self.exit_status().code())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ScaleKind;

    fn text_of(r: &RunRecord) -> serde_json::Value {
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn a_queued_run_with_its_scheduler_handle_reads_back_and_is_not_over() {
        let text = json!({
            "format_version": 1, "id": "x", "status": "queued",
            "executor": {"kind": "slurm", "job_id": "42", "partition": "debug"}
        });
        let r: RunRecord = serde_json::from_value(text).unwrap();
        assert_eq!(r.status, Status::Queued);
        let executor = r.executor.as_ref().unwrap();
        assert_eq!(
            (executor.kind.as_str(), executor.job_id.as_deref()),
            ("slurm", Some("42"))
        );
        assert!(r.status.is_active());
        let summary: RunSummary = serde_json::from_value(text_of(&r)).unwrap();
        assert!(!summary.is_over());
        assert_eq!(summary.tapir_exit_code(), None);
        assert_eq!(summary.executor, r.executor);
        let again: RunRecord = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(again.executor, r.executor);
        // A local run's record has no `executor` at all, as before.
        let local: RunRecord = serde_json::from_value(json!({"id": "y"})).unwrap();
        assert!(
            serde_json::to_value(&local)
                .unwrap()
                .get("executor")
                .is_none()
        );
    }

    #[test]
    fn only_a_dead_pid_on_this_machine_counts_as_gone() {
        let me = Some(std::process::id());
        let here = current_host();
        assert!(!supervisor_gone(Some(&here), me));
        assert!(!supervisor_gone(None, me));
        // No pid is ever above the kernel's limit (2^22).
        assert!(supervisor_gone(Some(&here), Some(u32::MAX - 1)));
        assert!(supervisor_gone(None, None));
        assert!(!supervisor_gone(Some("another-machine.example"), None));
    }
    use crate::resolve::plan::{CommandSource, EnvSource, PlannedUser};

    fn load(record: serde_json::Value) -> RunRecord {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(store::RECORD_FILE), record.to_string()).expect("write");
        RunRecord::load(dir.path()).expect("readable")
    }

    /// A plan as tapir 0.1 wrote it, before the plan was read back typed.
    fn recorded_plan() -> serde_json::Value {
        json!({
            "task_name": "n", "template": "t", "template_source": "image", "image": "img:1",
            "mounts": [
                {"channel": "in", "direction": "input", "host_path": "/data/in", "container_path": "/in", "read_only": true},
                {"channel": "out", "direction": "output", "host_path": "/data/out", "container_path": "/out", "read_only": false}
            ],
            "env": [
                {"name": "MODE", "value": "fast", "source": "--env-file vars.env:3"},
                {"name": "API_TOKEN", "value": "****", "source": "task"},
                {"name": "HOME", "value": "/tmp", "source": "tapir (runs as the invoking user)"},
                {"name": "X", "value": "1", "source": "from a newer tapir"}
            ],
            "command": ["sh", "-c", "true"], "command_source": "template", "entrypoint": null,
            "limits": {"memory_bytes": 1048576, "memory_reason": "declared", "memory_reservation_bytes": null,
                       "cpu_millis": 500, "gpus": null,
                       "scale_rules": [{"channel": "in", "rule": "scale_factor 2", "kind": "limit",
                                        "measured_bytes": 10, "files": 1, "requirement_bytes": 20}]},
            "labels": {"tapir.task": "n"}, "user": {"kind": "invoker", "uid": 1000, "gid": 100},
            "network": null, "warnings": ["w"],
            "a_field_from_a_newer_tapir": 1
        })
    }

    #[test]
    fn a_recorded_plan_reads_back_typed() {
        let record = load(json!({"format_version": 1, "id": "x", "plan": recorded_plan()}));
        let plan = record.plan.as_ref().expect("a plan");
        assert_eq!(plan.template_source, "image");
        assert_eq!(plan.command_source, CommandSource::Template);
        assert_eq!(
            plan.user,
            PlannedUser::Invoker {
                uid: 1000,
                gid: 100
            }
        );
        assert_eq!(plan.limits.cpu_millis, Some(500));
        assert_eq!(plan.limits.scale_rules[0].kind, ScaleKind::Limit);
        let sources: Vec<&EnvSource> = plan.env.iter().map(|e| &e.source).collect();
        assert_eq!(
            sources,
            [
                &EnvSource::EnvFile {
                    path: "vars.env".into(),
                    line: 3
                },
                &EnvSource::Task,
                &EnvSource::Tapir(crate::resolve::plan::HOME_FOR_INVOKER),
                &EnvSource::Other("from a newer tapir".into()),
            ]
        );
        assert!(plan.env[1].value.secret, "a masked value stays a secret");
        assert_eq!(
            record.planned_mounts(Direction::Output),
            [("out".to_string(), std::path::PathBuf::from("/data/out"))]
        );
        assert_eq!(record.summary().plan.template.as_deref(), Some("t"));
        // Written again, it says the same (plus nothing new).
        let mut again = recorded_plan();
        again
            .as_object_mut()
            .expect("object")
            .remove("a_field_from_a_newer_tapir");
        assert_eq!(serde_json::to_value(plan).expect("serialises"), again);
    }

    #[test]
    fn old_or_partial_plans_read_with_defaults_and_unreadable_ones_are_left_out() {
        let partial = load(json!({"id": "x", "plan": {"template": "t", "mounts": [
            {"channel": "out", "direction": "output", "host_path": "/o", "container_path": "/o"}]}}));
        let plan = partial.plan.expect("a plan");
        assert_eq!(plan.template, "t");
        assert_eq!(plan.user, PlannedUser::Image);
        assert!(plan.env.is_empty() && plan.limits.memory_bytes.is_none());
        assert!(!plan.mounts[0].read_only);

        let damaged =
            load(json!({"id": "x", "status": "failed", "plan": {"mounts": "not a list"}}));
        assert!(damaged.plan.is_none());
        assert_eq!(damaged.status, Status::Failed);
        assert!(damaged.planned_mounts(Direction::Output).is_empty());
    }
}
