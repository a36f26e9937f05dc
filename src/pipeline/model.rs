//! The pipeline file and the `--conf` file as typed values (docs/DESIGN.md decision 10).
//! Read only after the schema check passed, so shapes are known; what remains is meaning,
//! which `plan.rs` checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `pipeline.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pipeline {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub profile: Profile,
    /// Profile `ccat`: the raw-data folder mounted read-only at `/workflow/input`
    /// (relative to the pipeline file's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Profile `ccat`: every step's manifest `sub_group_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_group_key: Option<String>,
    /// Variables for every task, under each task's own `env` (Tapis' pipeline `env`;
    /// Kaapana injects its platform variables into every task the same way).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Profile `ccat`: the `role` of raw input files by pattern, first match first;
    /// a file no pattern matches is `science`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_roles: Vec<InputRole>,
    /// Profile `ccat`: every step's manifest `environment` (the contract's connection
    /// details for optional services). Secret-looking names are masked wherever tapir
    /// writes or prints them; only the container's own manifest has the values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub execution_profile: ExecutionProfile,
    /// Tapis' submission parameters: values given at `pipeline run --param NAME=VALUE`,
    /// read by a task's `env` through `value_from: {params: NAME}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Param>,
    /// Where to copy the results of a run when it ends (Tapis' archive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveConf>,
    /// Remove the managed output folders when the whole run succeeded (after the
    /// archive, if any, is complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_succeeded: Option<bool>,
    /// Images built with `docker build` before any task starts (Tapis' `image_build`
    /// tasks); a task names one with `image_from`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<BuildStep>,
    /// `tapir run`'s per-run options for every task (a task's own override these, field
    /// by field).
    #[serde(default)]
    pub run_options: RunOptions,
    pub tasks: Vec<PipelineTask>,
}

/// The folder layout of a pipeline run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Profile {
    /// One tapir-managed folder per task and output channel, `<run>/<task_id>/<channel>`
    /// (as Kaapana's KaapanaTaskOperator).
    #[default]
    Kaapana,
    /// The CCAT container contract: `/workflow/{input,workspace,output,config,logs}`.
    Ccat,
}

impl Profile {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Profile::Kaapana => "kaapana",
            Profile::Ccat => "ccat",
        }
    }
}

/// Profile `ccat`: raw input files matching `pattern` have `role` in the manifest.
/// A pattern without `/` matches a file's name in any folder; one with `/` matches its
/// path under the input folder (`*` stays within a folder, `**` crosses folders).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InputRole {
    pub pattern: String,
    pub role: String,
}

/// One task of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PipelineTask {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub task: TaskRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_file: Option<String>,
    #[serde(default)]
    pub depends_on: Vec<TaskDependency>,
    #[serde(default)]
    pub iochannel_maps: Vec<IoMapping>,
    /// A literal value, or Tapis' `value_from` (see [`EnvEntry`]).
    #[serde(default)]
    pub env: BTreeMap<String, EnvEntry>,
    #[serde(default)]
    pub execution_profile: ExecutionProfile,
    #[serde(default)]
    pub run_options: RunOptions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_config: Option<Value>,
    /// The id of a `builds` entry whose image this task runs in (instead of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_from: Option<String>,
}

/// One entry of a pipeline task's `env`: a literal value, or where the value comes from
/// (Tapis' `value_from`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum EnvEntry {
    Literal(String),
    From { value_from: ValueFrom },
}

impl EnvEntry {
    /// The literal value, `None` for a `value_from`.
    pub(crate) fn literal(&self) -> Option<&str> {
        match self {
            EnvEntry::Literal(value) => Some(value),
            EnvEntry::From { .. } => None,
        }
    }
}

/// Tapis' ValueFrom object: exactly one of its keys (the schema says so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ValueFrom {
    /// A variable of the pipeline's `env`.
    Env(String),
    /// A run-time parameter (`pipeline run --param`), declared in `params`.
    Params(String),
    /// A value an upstream task wrote to its `$TAPIR_OUTPUTS_FILE`.
    TaskOutput(TaskOutputRef),
}

/// Tapis' TaskOutput object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskOutputRef {
    pub task_id: String,
    pub output_id: String,
}

/// One `builds` entry: `docker build -f <context>/<dockerfile> -t <tag> <context>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BuildStep {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The build context folder, relative to the pipeline file's folder.
    pub context: String,
    /// Relative to the context; default `Dockerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    pub tag: String,
    /// Seconds the build may take; default 30 × the engine deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exec_time: Option<u64>,
}

/// The pipeline file's `archive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArchiveConf {
    /// Relative to the pipeline file's folder.
    pub path: String,
    /// `task/channel` globs; empty or absent: every managed output folder.
    #[serde(default)]
    pub include: Vec<String>,
}

/// A declared run-time parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Param {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Used when `--param` does not give the parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `pipeline run` refuses to start without it (a default satisfies it).
    #[serde(default)]
    pub required: bool,
}

/// A task file (path relative to the pipeline file's folder) or a whole task object.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum TaskRef {
    File(String),
    Inline(Value),
}

/// Tapis' TaskDependency: run after `id`; with `can_fail`, also when `id` failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskDependency {
    pub id: String,
    #[serde(default)]
    pub can_fail: bool,
}

/// Kaapana's IOMapping, with the upstream operator named by its task id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IoMapping {
    pub upstream_task: String,
    pub upstream_output_channel: String,
    pub input_channel: String,
}

/// Tapis' execution profile: every field unset inherits the pipeline's, then the defaults
/// (tapir's, or Kaapana's operator's under an explicit `profile: kaapana`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ExecutionProfile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_exec_time: Option<u64>,
    /// The exit code that means "nothing to do": the task is `skipped`, not failed, and
    /// not retried (Kaapana: 126). 0 = none (a success is never a skip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_exit_code: Option<u8>,
    /// Empty the task's output folders before each retry (Kaapana's operator deletes them
    /// before every attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_outputs_before_retry: Option<bool>,
}

/// The options of `tapir run` that make sense per task, as a pipeline file gives them (on
/// the pipeline and on a task; every field a task leaves unset inherits the pipeline's,
/// then `tapir run`'s default). `timeout` is the execution profile's `max_exec_time`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RunOptions {
    /// Pull the image when it is not present locally (`run --pull`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<bool>,
    /// Who runs the container (`run --user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RunUser>,
    /// Keep the container after it ends (`run --keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<bool>,
    /// `HOST:CONTAINER[:ro|rw]` (`run --bind`), HOST relative to the pipeline file's
    /// folder. A task's binds add to the pipeline's; one at the same container path
    /// replaces the pipeline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<Vec<String>>,
    /// Replace the image's ENTRYPOINT (`run --entrypoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// Docker network (`run --network`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Seconds a cancelled task gets to stop before it is killed (`run --grace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<u32>,
    /// Size of the container's /dev/shm, a quantity such as `2Gi` (`run --shm-size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
    /// Which GPUs: `all`, a count, or `device=0,1` (`run --gpus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<String>,
    /// Engine flags passed verbatim (`run --engine-arg`, each entry one argument). A
    /// task's list replaces the pipeline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_args: Option<Vec<String>>,
}

/// `run_options.user`: as `tapir run --user`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunUser {
    /// The invoking user's uid:gid, so outputs are theirs.
    #[default]
    Invoker,
    /// The image's own USER.
    Image,
}

impl RunUser {
    pub(crate) fn label(self) -> &'static str {
        match self {
            RunUser::Invoker => "invoker",
            RunUser::Image => "image",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RetryPolicy {
    /// Wait `retry_backoff_seconds` before every retry (Airflow's default, Kaapana's).
    Fixed,
    /// Wait `retry_backoff_seconds` × 2^(k-1) before retry k (Tapis).
    ExponentialBackoff,
}

/// Kaapana's exit code for "skipped" (`KaapanaTaskOperator`: `AirflowSkipException`).
pub(crate) const KAAPANA_SKIP_EXIT_CODE: u8 = 126;

/// Whose defaults fill the fields no execution profile sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExecutionDefaults {
    /// No retries, exponential backoff from 10 s, outputs kept for a retry, no skip code.
    Tapir,
    /// `profile: kaapana` asked for by name: Kaapana's `KaapanaTaskOperator` (constant
    /// 10 s `retry_delay`, output folders wiped before each attempt, exit 126 = skipped).
    Kaapana,
}

impl ExecutionDefaults {
    pub(crate) fn profile(self) -> ExecutionProfile {
        let kaapana = self == ExecutionDefaults::Kaapana;
        ExecutionProfile {
            max_retries: Some(0),
            retry_policy: Some(if kaapana {
                RetryPolicy::Fixed
            } else {
                RetryPolicy::ExponentialBackoff
            }),
            retry_backoff_seconds: Some(10),
            max_exec_time: None,
            skip_exit_code: Some(if kaapana { KAAPANA_SKIP_EXIT_CODE } else { 0 }),
            clean_outputs_before_retry: Some(kaapana),
        }
    }
}

/// A task's execution profile with everything inherited and defaulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Execution {
    pub max_retries: u32,
    pub retry_policy: RetryPolicy,
    pub retry_backoff_seconds: u64,
    /// `None`: no limit.
    pub max_exec_time: Option<u64>,
    /// `None`: no exit code skips the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_exit_code: Option<u8>,
    #[serde(default)]
    pub clean_outputs_before_retry: bool,
}

impl ExecutionProfile {
    /// This profile over `pipeline`'s, field by field, over `defaults`.
    pub(crate) fn effective(
        &self,
        pipeline: &ExecutionProfile,
        defaults: ExecutionDefaults,
    ) -> Execution {
        let base = defaults.profile();
        macro_rules! pick {
            ($field:ident) => {
                self.$field.or(pipeline.$field).or(base.$field)
            };
        }
        Execution {
            max_retries: pick!(max_retries).unwrap_or_default(),
            retry_policy: pick!(retry_policy).unwrap_or(RetryPolicy::ExponentialBackoff),
            retry_backoff_seconds: pick!(retry_backoff_seconds).unwrap_or_default(),
            max_exec_time: pick!(max_exec_time),
            skip_exit_code: pick!(skip_exit_code).filter(|&code| code != 0),
            clean_outputs_before_retry: pick!(clean_outputs_before_retry).unwrap_or_default(),
        }
    }
}

impl Execution {
    /// Seconds to wait before retry `attempt` (1 = the first retry): the backoff itself
    /// (`fixed`), or doubled for each retry after the first (`exponential_backoff`).
    pub(crate) fn backoff_before_retry(&self, attempt: u32) -> u64 {
        match self.retry_policy {
            RetryPolicy::Fixed => self.retry_backoff_seconds,
            RetryPolicy::ExponentialBackoff => {
                let doublings = attempt.saturating_sub(1).min(20);
                self.retry_backoff_seconds.saturating_mul(1 << doublings)
            }
        }
    }

    /// Whether an attempt that ended with the task's `exit_code` means "skipped".
    pub(crate) fn skips(&self, exit_code: Option<i64>) -> bool {
        self.skip_exit_code
            .is_some_and(|code| exit_code == Some(i64::from(code)))
    }
}

/// `--conf conf.json`: Kaapana's workflow-trigger `conf`, `task_form.<task id>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Conf {
    pub task_form: BTreeMap<String, TaskForm>,
}

/// One task's entry of `task_form`. Kaapana's operator reads `env` as a list of
/// `{name, value}` and lets every other key replace the Task field of that name; tapir
/// takes `env`, `command`, `resources` and `image` so, and every other key as a variable
/// (`{"VAR": "value"}`, tapir's shorthand, which Kaapana would ignore).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TaskForm {
    #[serde(default)]
    pub env: Vec<ConfEnv>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<crate::model::Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(flatten)]
    pub vars: BTreeMap<String, String>,
}

/// Kaapana's `BaseEnv` in a `task_form` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConfEnv {
    pub name: String,
    pub value: String,
}

/// A conf variable with the JSON pointer of its value (relative to the task's entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfVar {
    pub name: String,
    pub value: String,
    pub pointer: String,
}

impl TaskForm {
    /// Every variable the entry sets, flat ones first, then the `env` list, in file
    /// order of the list (a name set twice is reported by the pipeline check).
    pub(crate) fn variables(&self) -> Vec<ConfVar> {
        let flat = self.vars.iter().map(|(name, value)| ConfVar {
            name: name.clone(),
            value: value.clone(),
            pointer: crate::diagnostic::pointer_join("", name),
        });
        let listed = self.env.iter().enumerate().map(|(n, e)| ConfVar {
            name: e.name.clone(),
            value: e.value.clone(),
            pointer: format!("/env/{n}/value"),
        });
        flat.chain(listed).collect()
    }

    /// The names of the Task fields this entry replaces.
    pub(crate) fn overridden_fields(&self) -> Vec<&'static str> {
        [
            ("image", self.image.is_some()),
            ("command", self.command.is_some()),
            ("resources", self.resources.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_profile_overrides_the_pipeline_field_by_field() {
        let pipeline = ExecutionProfile {
            max_retries: Some(3),
            max_exec_time: Some(600),
            ..Default::default()
        };
        let task = ExecutionProfile {
            max_exec_time: Some(60),
            ..Default::default()
        };
        let e = task.effective(&pipeline, ExecutionDefaults::Tapir);
        assert_eq!(e.max_retries, 3);
        assert_eq!(e.max_exec_time, Some(60));
        assert_eq!(e.retry_backoff_seconds, 10);
        let none = ExecutionProfile::default()
            .effective(&ExecutionProfile::default(), ExecutionDefaults::Tapir);
        assert_eq!(none.max_retries, 0);
        assert_eq!(none.max_exec_time, None);
    }

    #[test]
    fn backoff_doubles_per_retry() {
        let e = ExecutionProfile {
            retry_backoff_seconds: Some(5),
            ..Default::default()
        }
        .effective(&ExecutionProfile::default(), ExecutionDefaults::Tapir);
        assert_eq!(
            [1, 2, 3, 4].map(|k| e.backoff_before_retry(k)),
            [5, 10, 20, 40]
        );
        let huge = Execution {
            retry_backoff_seconds: 86_400,
            ..e
        };
        assert_eq!(
            huge.backoff_before_retry(100),
            86_400 << 20,
            "capped, no overflow"
        );
    }

    #[test]
    fn fixed_backoff_waits_the_same_before_every_retry() {
        let e = ExecutionProfile {
            retry_policy: Some(RetryPolicy::Fixed),
            retry_backoff_seconds: Some(5),
            ..Default::default()
        }
        .effective(&ExecutionProfile::default(), ExecutionDefaults::Tapir);
        assert_eq!([1, 2, 3, 4].map(|k| e.backoff_before_retry(k)), [5; 4]);
    }

    #[test]
    fn profile_kaapana_defaults_are_the_operators_and_fields_still_override_them() {
        let kaapana = ExecutionProfile::default()
            .effective(&ExecutionProfile::default(), ExecutionDefaults::Kaapana);
        assert_eq!(
            kaapana,
            Execution {
                max_retries: 0,
                retry_policy: RetryPolicy::Fixed,
                retry_backoff_seconds: 10,
                max_exec_time: None,
                skip_exit_code: Some(126),
                clean_outputs_before_retry: true,
            }
        );
        assert!(kaapana.skips(Some(126)) && !kaapana.skips(Some(1)) && !kaapana.skips(None));
        let tapir = ExecutionProfile::default()
            .effective(&ExecutionProfile::default(), ExecutionDefaults::Tapir);
        assert_eq!(tapir.skip_exit_code, None);
        assert!(!tapir.clean_outputs_before_retry && !tapir.skips(Some(126)));
        assert_eq!(tapir.retry_policy, RetryPolicy::ExponentialBackoff);
        // A task's own field wins over the Kaapana default; 0 turns skipping off.
        let task = ExecutionProfile {
            skip_exit_code: Some(0),
            clean_outputs_before_retry: Some(false),
            ..Default::default()
        };
        let pipeline = ExecutionProfile {
            retry_policy: Some(RetryPolicy::ExponentialBackoff),
            ..Default::default()
        };
        let mixed = task.effective(&pipeline, ExecutionDefaults::Kaapana);
        assert_eq!(mixed.skip_exit_code, None);
        assert!(!mixed.clean_outputs_before_retry);
        assert_eq!(mixed.retry_policy, RetryPolicy::ExponentialBackoff);
    }

    #[test]
    fn an_old_record_without_the_new_fields_reads() {
        let e: Execution = serde_json::from_value(serde_json::json!({
            "max_retries": 1, "retry_policy": "exponential_backoff",
            "retry_backoff_seconds": 10, "max_exec_time": null
        }))
        .unwrap();
        assert_eq!(e.skip_exit_code, None);
        assert!(!e.clean_outputs_before_retry);
    }

    #[test]
    fn a_task_form_entry_takes_both_shapes() {
        let form: TaskForm = serde_json::from_value(serde_json::json!({
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "FLAT": "3",
            "image": "i:2",
            "command": ["run"]
        }))
        .unwrap();
        let vars: Vec<(String, String, String)> = form
            .variables()
            .into_iter()
            .map(|v| (v.name, v.value, v.pointer))
            .collect();
        assert_eq!(
            vars,
            [
                ("FLAT".into(), "3".into(), "/FLAT".into()),
                ("A".into(), "1".into(), "/env/0/value".into()),
                ("B".into(), "2".into(), "/env/1/value".into()),
            ]
        );
        assert_eq!(form.overridden_fields(), ["image", "command"]);
    }
}
