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
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub execution_profile: ExecutionProfile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_config: Option<Value>,
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

/// Tapis' execution profile: every field unset inherits the pipeline's, then the default.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RetryPolicy {
    ExponentialBackoff,
}

/// What a task gets when neither it nor the pipeline says otherwise.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 0;
pub(crate) const DEFAULT_RETRY_BACKOFF_SECONDS: u64 = 10;

/// A task's execution profile with everything inherited and defaulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Execution {
    pub max_retries: u32,
    pub retry_policy: RetryPolicy,
    pub retry_backoff_seconds: u64,
    /// `None`: no limit.
    pub max_exec_time: Option<u64>,
}

impl ExecutionProfile {
    /// This profile over `pipeline`'s, field by field, over the defaults.
    pub(crate) fn effective(&self, pipeline: &ExecutionProfile) -> Execution {
        Execution {
            max_retries: self
                .max_retries
                .or(pipeline.max_retries)
                .unwrap_or(DEFAULT_MAX_RETRIES),
            retry_policy: self
                .retry_policy
                .or(pipeline.retry_policy)
                .unwrap_or(RetryPolicy::ExponentialBackoff),
            retry_backoff_seconds: self
                .retry_backoff_seconds
                .or(pipeline.retry_backoff_seconds)
                .unwrap_or(DEFAULT_RETRY_BACKOFF_SECONDS),
            max_exec_time: self.max_exec_time.or(pipeline.max_exec_time),
        }
    }
}

impl Execution {
    /// Seconds to wait before retry `attempt` (1 = the first retry): doubled each time.
    pub(crate) fn backoff_before_retry(&self, attempt: u32) -> u64 {
        let doublings = attempt.saturating_sub(1).min(20);
        self.retry_backoff_seconds.saturating_mul(1 << doublings)
    }
}

/// `--conf conf.json`: Kaapana's workflow-trigger `conf`, `task_form.<task id>.<VAR>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Conf {
    pub task_form: BTreeMap<String, BTreeMap<String, String>>,
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
        let e = task.effective(&pipeline);
        assert_eq!(e.max_retries, 3);
        assert_eq!(e.max_exec_time, Some(60));
        assert_eq!(e.retry_backoff_seconds, DEFAULT_RETRY_BACKOFF_SECONDS);
        let none = ExecutionProfile::default().effective(&ExecutionProfile::default());
        assert_eq!(none.max_retries, 0);
        assert_eq!(none.max_exec_time, None);
    }

    #[test]
    fn backoff_doubles_per_retry() {
        let e = ExecutionProfile {
            retry_backoff_seconds: Some(5),
            ..Default::default()
        }
        .effective(&ExecutionProfile::default());
        assert_eq!(
            [1, 2, 3, 4].map(|k| e.backoff_before_retry(k)),
            [5, 10, 20, 40]
        );
    }
}
