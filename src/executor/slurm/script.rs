//! The job script of one attempt, rendered purely from what the plan and the site
//! settings say (golden-tested in tests/fixtures/slurm/). Its header asks Slurm for what
//! the plan needs; its body checks what the node can see and then `exec`s the node-side
//! `tapir run` into the run folder made beforehand, so Slurm's signals reach tapir itself
//! (it stops its container and records the end) and the node writes the same logs and
//! record as a local run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Everything a job script says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobScript {
    /// `tapir-<task name>-<run id>`: `squeue` shows what runs.
    pub job_name: String,
    /// The run folder: the job's working folder, and where its output goes.
    pub run_dir: PathBuf,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// `--mem` in MiB: the task's memory limit plus room for the node-side tapir.
    pub memory_mib: Option<u64>,
    pub cpus: Option<u64>,
    pub gpus: Option<u64>,
    /// `--time` in minutes: a backstop behind tapir's own timeout.
    pub time_minutes: Option<u64>,
    /// The tapir binary on the node.
    pub tapir: PathBuf,
    /// Its arguments (`run … --adopt-queued`).
    pub args: Vec<OsString>,
}

/// The file the job's own stdout and stderr go to, in the run folder (`%j`: the job id).
pub(crate) const JOB_OUTPUT_PATTERN: &str = "slurm-%j.out";
/// The job script's name in the run folder.
pub(crate) const SCRIPT_FILE: &str = "job.sh";
/// The exit code of a job script that found no tapir on the node.
pub(crate) const NO_TAPIR_EXIT: i32 = 127;
/// The exit code of a job script that could not see its run folder.
pub(crate) const NO_FOLDER_EXIT: i32 = 66;

/// The job output file of job `id` in `run_dir`.
pub(crate) fn job_output(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join(JOB_OUTPUT_PATTERN.replace("%j", id))
}

/// Is `name` a job output file ([`JOB_OUTPUT_PATTERN`] with a job id)?
pub(crate) fn is_job_output(name: &str) -> bool {
    name.strip_prefix("slurm-")
        .and_then(|rest| rest.strip_suffix(".out"))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Bytes an `#SBATCH` line cannot carry: Slurm splits its options at white space and
/// quotes, and expands `%` in file names (`%j`).
pub(crate) fn header_safe(path: &Path) -> Result<(), String> {
    let text = path.to_str().ok_or_else(|| {
        format!(
            "the run folder {} is not valid UTF-8, which an #SBATCH line cannot carry",
            path.display()
        )
    })?;
    match text
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '%' | '\\' | '#'))
    {
        Some(c) => Err(format!(
            "the run folder {} contains {c:?}, which an #SBATCH line cannot carry\n  fix: choose a runs folder without white space, quotes, `%`, `\\` or `#` (--runs-dir)",
            path.display()
        )),
        None => Ok(()),
    }
}

/// A job name made of the task name and the run id, reduced to what every shell and
/// `squeue` column shows plainly.
pub(crate) fn job_name(task_name: &str, run_id: &str) -> String {
    let task: String = task_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("tapir-{task}-{run_id}")
}

/// The `--time` backstop in minutes for a run tapir itself stops after `timeout` seconds
/// with `grace` seconds to stop the container: tapir's own timeout must always come first
/// (it records `timed-out`), and Slurm enforces `--time` late anyway (measured: a minute
/// or more after it), so one minute of margin.
pub(crate) fn time_minutes(timeout: Option<u64>, grace: u32) -> Option<u64> {
    let seconds = timeout? + u64::from(grace) + 60;
    Some(seconds.div_ceil(60))
}

/// MiB for `--mem`: the task's limit plus what the node-side tapir and the engine's client
/// use (Slurm counts every process of the job).
pub(crate) fn memory_mib(limit_bytes: Option<u64>) -> Option<u64> {
    const TAPIR_ROOM_MIB: u64 = 100;
    Some(limit_bytes?.div_ceil(1024 * 1024) + TAPIR_ROOM_MIB)
}

/// The Slurm default for `KillWait` (seconds), when the cluster's cannot be read.
const DEFAULT_KILL_WAIT: u64 = 30;

/// The node-side grace: shorter than Slurm's `KillWait`, so tapir has stopped the
/// container and written the record before Slurm's SIGKILL.
pub(crate) fn node_grace(requested: u32, kill_wait: Option<u64>) -> u32 {
    let kill_wait = kill_wait.unwrap_or(DEFAULT_KILL_WAIT);
    let room = kill_wait.saturating_sub(2).max(1);
    requested.min(u32::try_from(room).unwrap_or(u32::MAX))
}

/// Quotes one word for a POSIX shell.
pub(crate) fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@".contains(&b))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl JobScript {
    /// The script's text.
    pub(crate) fn render(&self) -> String {
        let dir = self.run_dir.display().to_string();
        let mut s = String::from("#!/bin/sh\n");
        s.push_str("# One attempt of a tapir run as a Slurm batch job, written by tapir.\n");
        let mut header = |option: &str, value: &str| {
            s.push_str(&format!("#SBATCH --{option}={value}\n"));
        };
        header("job-name", &self.job_name);
        header("chdir", &dir);
        header("output", &format!("{dir}/{JOB_OUTPUT_PATTERN}"));
        header("error", &format!("{dir}/{JOB_OUTPUT_PATTERN}"));
        // One job is one attempt: the record is final once written, a requeue would
        // run into the same folder again.
        s.push_str("#SBATCH --no-requeue\n");
        let mut header = |option: &str, value: Option<String>| {
            if let Some(value) = value {
                s.push_str(&format!("#SBATCH --{option}={value}\n"));
            }
        };
        header("partition", self.partition.clone());
        header("account", self.account.clone());
        header("qos", self.qos.clone());
        header("ntasks", Some("1".into()));
        header("cpus-per-task", self.cpus.map(|c| c.to_string()));
        header("mem", self.memory_mib.map(|m| format!("{m}M")));
        header("gres", self.gpus.map(|g| format!("gpu:{g}")));
        header("time", self.time_minutes.map(|m| m.to_string()));
        let tapir = shell_word(&self.tapir.display().to_string());
        let quoted_dir = shell_word(&dir);
        let tapir_text = shell_word(&self.tapir.display().to_string());
        s.push_str(&format!(
            "\n\
             # The run folder must be on a file system this node sees.\n\
             if [ ! -d {quoted_dir} ]; then\n\
             \x20 printf 'tapir: the run folder %s is not visible on %s; it must be on a file system shared with the nodes\\n' {quoted_dir} \"$(hostname)\" >&2\n\
             \x20 exit {NO_FOLDER_EXIT}\n\
             fi\n\
             if ! command -v {tapir} >/dev/null 2>&1; then\n\
             \x20 printf 'tapir: %s is not an executable on %s; set the path of tapir on the nodes with --tapir-on-node or TAPIR_SLURM_TAPIR\\n' {tapir_text} \"$(hostname)\" >&2\n\
             \x20 exit {NO_TAPIR_EXIT}\n\
             fi\n\
             # exec: Slurm's SIGTERM (scancel, time limit) reaches tapir, which stops the\n\
             # container within its grace period and records the end.\n\
             exec {tapir}"
        ));
        for arg in &self.args {
            s.push_str(" \\\n  ");
            s.push_str(&shell_word(&arg.to_string_lossy()));
        }
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares with a golden file; `TAPIR_BLESS=1` rewrites it.
    fn golden(name: &str, actual: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/slurm")
            .join(name);
        if std::env::var_os("TAPIR_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).expect("mkdir");
            std::fs::write(&path, actual).expect("bless");
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            actual,
            expected,
            "{} differs (TAPIR_BLESS=1 rewrites it)",
            path.display()
        );
    }

    fn minimal() -> JobScript {
        JobScript {
            job_name: job_name("hello", "01jq7"),
            run_dir: PathBuf::from("/shared/runs/task_run-01jq7"),
            partition: None,
            account: None,
            qos: None,
            memory_mib: None,
            cpus: None,
            gpus: None,
            time_minutes: None,
            tapir: PathBuf::from("/opt/tapir/bin/tapir"),
            args: [
                "run",
                "/shared/task.json",
                "--runs-dir",
                "/shared/runs",
                "--run-id",
                "01jq7",
                "--adopt-queued",
            ]
            .into_iter()
            .map(OsString::from)
            .collect(),
        }
    }

    #[test]
    fn a_minimal_job_script_matches_its_golden_file() {
        golden("job-minimal.sh", &minimal().render());
    }

    #[test]
    fn a_job_script_with_every_setting_matches_its_golden_file() {
        let mut full = minimal();
        full.job_name = job_name("train model", "01jq8");
        full.partition = Some("gpu".into());
        full.account = Some("ccat".into());
        full.qos = Some("long".into());
        full.memory_mib = memory_mib(Some(2 * 1024 * 1024 * 1024));
        full.cpus = Some(4);
        full.gpus = Some(1);
        full.time_minutes = time_minutes(Some(3600), 3);
        full.tapir = PathBuf::from("/opt/tapir dir/tapir");
        full.args.push(OsString::from("--env"));
        full.args.push(OsString::from("GREETING=it's here"));
        golden("job-full.sh", &full.render());
    }

    #[test]
    fn words_are_quoted_only_when_they_must_be() {
        assert_eq!(shell_word("run"), "run");
        assert_eq!(shell_word("/a/b.json"), "/a/b.json");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
    }

    #[test]
    fn the_time_backstop_comes_after_tapirs_own_timeout() {
        assert_eq!(time_minutes(None, 10), None);
        assert_eq!(time_minutes(Some(1), 3), Some(2));
        assert_eq!(time_minutes(Some(3600), 10), Some(62));
        assert_eq!(memory_mib(None), None);
        assert_eq!(memory_mib(Some(50 * 1024 * 1024)), Some(150));
    }

    #[test]
    fn the_node_side_grace_ends_before_slurms_kill_wait() {
        assert_eq!(node_grace(10, Some(5)), 3);
        assert_eq!(node_grace(10, None), 10);
        assert_eq!(node_grace(2, Some(30)), 2);
        assert_eq!(node_grace(10, Some(1)), 1);
    }

    #[test]
    fn job_names_say_which_run_they_are() {
        assert_eq!(job_name("hello world", "01abc"), "tapir-hello_world-01abc");
        assert_eq!(job_name("a/b;c", "x"), "tapir-a_b_c-x");
    }

    #[test]
    fn a_header_refuses_folders_it_cannot_carry() {
        assert!(header_safe(Path::new("/scratch/runs/task_run-1")).is_ok());
        for bad in ["/a b/c", "/a%j", "/a\"b", "/a#b"] {
            let e = header_safe(Path::new(bad)).err().unwrap_or_default();
            assert!(e.contains("fix: choose a runs folder"), "{bad}: {e}");
        }
    }
}
