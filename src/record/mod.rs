//! The run record: `task_run-<id>/record.json`, versioned JSON that any tool can read
//! (DESIGN.md decisions 1 and 9). Append-only evolution: new fields get defaults, readers
//! ignore unknown fields, and a writer never rewrites a record of a newer version.

pub mod logs;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of `record.json`. Bump only for changes old readers cannot ignore.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Preparing or running.
    Running,
    Succeeded,
    Failed,
    OomKilled,
    Cancelled,
    /// tapir or the engine failed before the container ran.
    EngineError,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub format_version: u32,
    pub id: String,
    pub tapir_version: String,
    pub mode: String,
    pub status: Status,
    /// What went wrong, in words, when something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub task_file: TaskFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    /// The template as resolved (inline, from the image, or from `--container-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskFile {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    pub reference: String,
    pub id: String,
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputChannel {
    pub channel: String,
    pub host_path: String,
    pub files: Vec<OutputFile>,
    pub total_bytes: u64,
    /// Set when the listing stopped early (very large outputs).
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputFile {
    pub path: String,
    pub bytes: u64,
}

/// At most this many files are listed per channel; sizes are still summed over all.
const MAX_LISTED_FILES: usize = 10_000;

/// Lists the files of an output folder with their sizes.
pub fn list_output(channel: &str, host_path: &std::path::Path) -> OutputChannel {
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

/// Is the process with this id alive? (Signal 0 checks without sending anything; EPERM
/// means it exists but belongs to someone else.)
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

impl RunRecord {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
