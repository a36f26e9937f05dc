//! Tapis' `value_from` (docs/DESIGN.md decision 10): a pipeline task's variable whose
//! value comes from the pipeline's `env`, a run-time parameter (`pipeline run --param`),
//! or a small value an upstream task wrote to its outputs file. The first two are known
//! when the pipeline is planned; an upstream's value is read when the task that needs it
//! starts, from the file the upstream was given as `$TAPIR_OUTPUTS_FILE`.
//!
//! The outputs file has the env-file format (one `NAME=VALUE` a line, `#` comments; a
//! shell writes it with `echo "COUNT=3" >> "$TAPIR_OUTPUTS_FILE"`); a name written twice
//! keeps its last value, so a task may update what it said.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::model::secret::{MASK, is_secret_name};
use crate::pipeline::record::RUNS_SUBDIR;

/// The variable that tells a task where to write its values.
pub(crate) const OUTPUTS_FILE_VAR: &str = "TAPIR_OUTPUTS_FILE";
/// The folder, inside the container, that holds the outputs file.
pub(crate) const OUTPUTS_MOUNT: &str = "/tapir/outputs";
/// The outputs file's name in that folder (and on the host).
pub(crate) const OUTPUTS_FILE_NAME: &str = "values.env";
/// A task's values are for small things (a count, a path, an id): a larger file is
/// refused rather than read into every downstream's environment.
pub(crate) const OUTPUTS_FILE_LIMIT: u64 = 64 * 1024;

/// One `value_from` variable of a task, as planned.
/// Not serialized: it holds the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FromValue {
    /// The task's variable.
    pub name: String,
    pub source: ValueSource,
    /// The value must not be shown: the variable's name or the source's looks secret.
    pub secret: bool,
}

/// Where a `value_from` variable's value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueSource {
    /// The pipeline's `env` variable `name`.
    Env { name: String, value: String },
    /// The run-time parameter `name` (`defaulted`: its declared default).
    Param {
        name: String,
        value: String,
        defaulted: bool,
    },
    /// What task `task_id` wrote as `output_id` (read when this task starts).
    TaskOutput { task_id: String, output_id: String },
}

impl ValueSource {
    /// For records and plans: where the value comes from, never the value.
    pub(crate) fn describe(&self) -> String {
        match self {
            ValueSource::Env { name, .. } => format!("pipeline env {name}"),
            ValueSource::Param {
                name,
                defaulted: false,
                ..
            } => format!("param {name}"),
            ValueSource::Param { name, .. } => format!("param {name} (its default)"),
            ValueSource::TaskOutput { task_id, output_id } => {
                format!("task {task_id} output {output_id}")
            }
        }
    }

    /// The value when the plan knows it.
    pub(crate) fn known(&self) -> Option<&str> {
        match self {
            ValueSource::Env { value, .. } | ValueSource::Param { value, .. } => Some(value),
            ValueSource::TaskOutput { .. } => None,
        }
    }
}

impl FromValue {
    /// The value as a plan shows it: masked when secret, a placeholder until known.
    pub(crate) fn shown(&self) -> String {
        match self.source.known() {
            Some(_) if self.secret => MASK.to_string(),
            Some(value) => value.to_string(),
            None => "<when it starts>".to_string(),
        }
    }
}

/// Whether a value from `source_name` may land in variable `name`: a secret-looking
/// source's value in a plain-looking variable would be recorded and printed in clear
/// by the task's run (which masks by the variable's name).
pub(crate) fn secret_into_plain(source_name: &str, name: &str) -> bool {
    is_secret_name(source_name) && !is_secret_name(name)
}

/// The host folder given to task `task_id` for its outputs file, in the pipeline run
/// folder: `runs/<task id>.outputs` (next to its derived task file and log).
pub(crate) fn outputs_dir(run_dir: &Path, task_id: &str) -> PathBuf {
    run_dir.join(RUNS_SUBDIR).join(format!("{task_id}.outputs"))
}

/// The in-container path of the outputs file (the value of `$TAPIR_OUTPUTS_FILE`).
pub(crate) fn outputs_file_in_container() -> String {
    format!("{OUTPUTS_MOUNT}/{OUTPUTS_FILE_NAME}")
}

/// Empties task `task_id`'s outputs folder before an attempt, so that a retry does not
/// pass on what a failed attempt wrote: the old file is removed (a link is removed, not
/// followed) and the folder is created if missing.
pub(crate) fn reset_outputs(run_dir: &Path, task_id: &str) -> Result<PathBuf, String> {
    let dir = outputs_dir(run_dir, task_id);
    if dir
        .symlink_metadata()
        .is_ok_and(|m| !m.file_type().is_dir())
    {
        return Err(format!(
            "{} is not a folder (a link or a file): tapir will not write through it",
            dir.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join(OUTPUTS_FILE_NAME);
    match std::fs::remove_file(&file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
    }
    Ok(dir)
}

/// The values task `task_id` wrote, by name (the last of a name written twice). A missing
/// file is no values. `Err`: the file cannot be trusted (a link, too large, not an
/// env file), with what to fix in the task.
pub(crate) fn read_outputs(
    run_dir: &Path,
    task_id: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = outputs_dir(run_dir, task_id).join(OUTPUTS_FILE_NAME);
    // The container wrote this folder: a link in it could point at any file of the host.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => {
            return Err(format!(
                "cannot read task `{task_id}`'s outputs file {} ({e}); it must be a regular file, not a link",
                path.display()
            ));
        }
    };
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!(
            "task `{task_id}`'s outputs file {} is not a regular file",
            path.display()
        ));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(OUTPUTS_FILE_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > OUTPUTS_FILE_LIMIT {
        return Err(format!(
            "task `{task_id}`'s outputs file {} is larger than {} KiB; it is for small values (a count, a path, an id)",
            path.display(),
            OUTPUTS_FILE_LIMIT / 1024
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "task `{task_id}`'s outputs file {} is not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to() + 1
        )
    })?;
    let entries = crate::resolve::env_input::parse_env_text(&text).map_err(|e| {
        format!(
            "task `{task_id}`'s outputs file {}:{}:{}: {} (fix: {}; the file holds NAME=VALUE lines)",
            path.display(),
            e.line,
            e.column,
            e.message,
            e.fix
        )
    })?;
    Ok(entries
        .into_iter()
        .map(|entry| (entry.var.name, entry.var.value))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_env_lines_and_the_last_of_a_name_wins() {
        let dir = tempfile::tempdir().unwrap();
        let folder = reset_outputs(dir.path(), "a").unwrap();
        assert!(
            read_outputs(dir.path(), "a").unwrap().is_empty(),
            "no file: no values"
        );
        std::fs::write(
            folder.join(OUTPUTS_FILE_NAME),
            "# counted\nCOUNT=3\nPATH_OUT=/x y\nCOUNT=4\n",
        )
        .unwrap();
        let values = read_outputs(dir.path(), "a").unwrap();
        assert_eq!(values.get("COUNT").map(String::as_str), Some("4"));
        assert_eq!(values.get("PATH_OUT").map(String::as_str), Some("/x y"));
        // The next attempt starts without them.
        reset_outputs(dir.path(), "a").unwrap();
        assert!(read_outputs(dir.path(), "a").unwrap().is_empty());
    }

    #[test]
    fn a_link_a_large_file_or_a_bad_line_is_refused_with_where() {
        let dir = tempfile::tempdir().unwrap();
        let folder = reset_outputs(dir.path(), "a").unwrap();
        let secret = dir.path().join("host-secret");
        std::fs::write(&secret, "KEY=hunter2\n").unwrap();
        std::os::unix::fs::symlink(&secret, folder.join(OUTPUTS_FILE_NAME)).unwrap();
        let e = read_outputs(dir.path(), "a").unwrap_err();
        assert!(e.contains("not a link") && !e.contains("hunter2"), "{e}");
        reset_outputs(dir.path(), "a").unwrap();
        assert!(secret.exists(), "the link was removed, not its target");
        let big = format!("X={}\n", "y".repeat(OUTPUTS_FILE_LIMIT as usize));
        std::fs::write(folder.join(OUTPUTS_FILE_NAME), big).unwrap();
        assert!(
            read_outputs(dir.path(), "a")
                .unwrap_err()
                .contains("larger than 64 KiB")
        );
        std::fs::write(folder.join(OUTPUTS_FILE_NAME), "OK=1\nno equals\n").unwrap();
        let e = read_outputs(dir.path(), "a").unwrap_err();
        assert!(e.contains("values.env:2:10: no `=`"), "{e}");
    }

    #[test]
    fn sources_are_described_without_their_values() {
        let secret = FromValue {
            name: "API_TOKEN".into(),
            source: ValueSource::Param {
                name: "TOKEN".into(),
                value: "s3cret".into(),
                defaulted: false,
            },
            secret: true,
        };
        assert_eq!(secret.shown(), MASK);
        assert_eq!(secret.source.describe(), "param TOKEN");
        assert!(secret_into_plain("API_TOKEN", "AUTH"));
        assert!(!secret_into_plain("API_TOKEN", "MY_TOKEN"));
        assert!(!secret_into_plain("COUNT", "N"));
    }
}
