//! The Slurm commands tapir calls (`sbatch`, `squeue`, `scancel`, `scontrol`), each with
//! the engine deadline (`backend/deadline.rs`), and the parsing of what they print. The
//! parsing is pure and unit-tested on captured outputs; a command that fails or does not
//! answer is an error in words, never a guess: a failing `squeue` means "unknown", and the
//! caller must not take it for "done".

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use crate::backend::deadline::{self, CallError};

/// A job's state as `squeue -o %T` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobState {
    pub state: String,
    /// The node it runs or ran on (empty while pending).
    pub node: String,
    /// Why it waits or ended (`Resources`, `NonZeroExitCode`, `None`).
    pub reason: String,
}

impl JobState {
    /// Has the job ended, with every process of it gone? (`COMPLETING` has not: its
    /// processes are still being stopped.)
    pub(crate) fn is_final(&self) -> bool {
        is_final_state(&self.state)
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.state == "PENDING"
    }
}

/// Slurm's terminal job states (`squeue --help`, JOB STATE CODES).
pub(crate) fn is_final_state(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "PREEMPTED"
            | "REVOKED"
            | "SPECIAL_EXIT"
    )
}

/// What one batched `squeue` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueueAnswer {
    /// The jobs Slurm still knows, by id; a job asked about and missing here is gone
    /// from the controller (ended longer than `MinJobAge` ago, or never existed).
    Known(BTreeMap<String, JobState>),
    /// `squeue` failed or did not answer: nothing is known.
    Unknown(String),
}

/// The `squeue` output format tapir asks for: id, state, node, reason.
pub(crate) const SQUEUE_FORMAT: &str = "%i|%T|%N|%r";

/// Parses `squeue -h -o SQUEUE_FORMAT` output.
pub(crate) fn parse_squeue(stdout: &str) -> BTreeMap<String, JobState> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().splitn(4, '|');
            let id = fields.next()?.trim();
            let state = fields.next()?.trim();
            if id.is_empty() || state.is_empty() {
                return None;
            }
            Some((
                id.to_string(),
                JobState {
                    // `CANCELLED by 0` in some versions' long form: the first word.
                    state: state.split_whitespace().next().unwrap_or(state).to_string(),
                    node: fields.next().unwrap_or("").trim().to_string(),
                    reason: fields.next().unwrap_or("").trim().to_string(),
                },
            ))
        })
        .collect()
}

/// The job id `sbatch --parsable` printed: `ID` or `ID;CLUSTER`.
pub(crate) fn parse_sbatch(stdout: &str) -> Option<String> {
    let first = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = first.split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// `Key=Value` pairs of `scontrol show job ID` or `scontrol show config`, keys as written.
/// Values run to the next space (scontrol's own layout), except for config lines
/// `Key = Value`.
pub(crate) fn parse_key_values(stdout: &str) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    for line in stdout.lines() {
        if let Some((key, value)) = line.split_once(" = ") {
            // `scontrol show config`: one `Key   = value` per line.
            pairs.insert(key.trim().to_string(), value.trim().to_string());
            continue;
        }
        for field in line.split_whitespace() {
            if let Some((key, value)) = field.split_once('=') {
                pairs.insert(key.to_string(), value.to_string());
            }
        }
    }
    pairs
}

/// Seconds from `scontrol show config`'s `KillWait = 5 sec`.
pub(crate) fn parse_kill_wait(config: &BTreeMap<String, String>) -> Option<u64> {
    config
        .get("KillWait")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How the Slurm commands are found: by name on `PATH` (a test puts a wrapper first).
fn command(program: &str) -> Command {
    Command::new(program)
}

/// Runs a Slurm client command with the deadline; its stdout, or the error in words.
fn call(program: &str, args: &[OsString]) -> Result<String, String> {
    let limit = deadline::limit();
    let mut cmd = command(program);
    cmd.args(args);
    match deadline::output(&mut cmd, limit) {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "`{program}` failed ({}): {}",
                out.status
                    .code()
                    .map_or("killed".to_string(), |c| format!("exit {c}")),
                one_line(&stderr)
            ))
        }
        Err(CallError::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "`{program}` was not found on PATH\n  fix: run tapir where the Slurm client commands are installed, or choose `--executor local`"
        )),
        Err(CallError::Spawn(e)) => Err(format!("cannot run `{program}`: {e}")),
        Err(CallError::TimedOut(limit)) => Err(slow(program, limit)),
    }
}

fn slow(program: &str, limit: Duration) -> String {
    format!(
        "`{program}` did not answer within {} s (the Slurm controller may be down or overloaded)\n  fix: check the cluster with `sinfo`; if it is only slow, give it longer with {}=<seconds>",
        limit.as_secs(),
        deadline::TIMEOUT_ENV
    )
}

fn one_line(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        "it printed nothing".to_string()
    } else {
        text.lines().collect::<Vec<_>>().join("; ")
    }
}

/// Submits the job script `script` with extra `sbatch` options `extra` (they come before
/// the script, so they override its `#SBATCH` lines); the job id.
pub(crate) fn sbatch(extra: &[String], script: &std::path::Path) -> Result<String, String> {
    let mut args: Vec<OsString> = vec!["--parsable".into()];
    args.extend(extra.iter().map(OsString::from));
    args.push(script.as_os_str().to_owned());
    let stdout = call("sbatch", &args)?;
    parse_sbatch(&stdout)
        .ok_or_else(|| format!("`sbatch` printed no job id: {}", one_line(&stdout)))
}

/// One `squeue` for all of `ids` (any state, so recently ended jobs are seen too).
pub(crate) fn squeue(ids: &[&str]) -> QueueAnswer {
    if ids.is_empty() {
        return QueueAnswer::Known(BTreeMap::new());
    }
    let args: Vec<OsString> = vec![
        "--noheader".into(),
        "--states=all".into(),
        format!("--jobs={}", ids.join(",")).into(),
        format!("--format={SQUEUE_FORMAT}").into(),
    ];
    match call("squeue", &args) {
        Ok(stdout) => QueueAnswer::Known(parse_squeue(&stdout)),
        // A single id the controller no longer knows is an error of squeue's; with
        // several, unknown ones are left out. Both mean: not in the queue.
        Err(e) if e.contains("Invalid job id specified") => QueueAnswer::Known(BTreeMap::new()),
        Err(e) => QueueAnswer::Unknown(e),
    }
}

/// Asks Slurm to cancel the job (SIGTERM to its processes, SIGKILL `KillWait` later).
pub(crate) fn scancel(id: &str) -> Result<(), String> {
    call("scancel", &[OsString::from(id)]).map(|_| ())
}

/// `scontrol show job ID`, parsed; `None` once the controller has forgotten the job.
pub(crate) fn show_job(id: &str) -> Option<BTreeMap<String, String>> {
    let stdout = call("scontrol", &["show".into(), "job".into(), id.into()]).ok()?;
    Some(parse_key_values(&stdout))
}

/// The cluster's `KillWait` in seconds (`None` when it cannot be read).
pub(crate) fn kill_wait_seconds() -> Option<u64> {
    let stdout = call("scontrol", &["show".into(), "config".into()]).ok()?;
    parse_kill_wait(&parse_key_values(&stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_become_states_by_job_id() {
        // Captured from `squeue -h -t all -j 1,2,99999 -o '%i|%T|%N|%r'` (Slurm 22.05).
        let captured = "2|FAILED|vm|NonZeroExitCode\n1|RUNNING|vm|None\n7|PENDING||Resources\n";
        let jobs = parse_squeue(captured);
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs["2"].state, "FAILED");
        assert!(jobs["2"].is_final());
        assert!(!jobs["1"].is_final());
        assert_eq!(jobs["1"].node, "vm");
        assert!(jobs["7"].is_pending());
        assert_eq!(jobs["7"].reason, "Resources");
        assert!(parse_squeue("").is_empty());
        assert!(parse_squeue("garbage\n|\n").is_empty());
    }

    #[test]
    fn completing_is_not_final_and_cancelled_is() {
        let jobs = parse_squeue(
            "1|COMPLETING|vm|None\n3|CANCELLED|vm|None\n4|OUT_OF_MEMORY|vm|OutOfMemory\n",
        );
        assert!(!jobs["1"].is_final());
        assert!(jobs["3"].is_final());
        assert!(jobs["4"].is_final());
    }

    #[test]
    fn sbatch_parsable_output_gives_the_job_id() {
        assert_eq!(parse_sbatch("42\n").as_deref(), Some("42"));
        assert_eq!(parse_sbatch("42;cluster\n").as_deref(), Some("42"));
        assert_eq!(parse_sbatch("Submitted batch job 42\n"), None);
        assert_eq!(parse_sbatch(""), None);
    }

    #[test]
    fn scontrol_output_is_read_as_key_value_pairs() {
        let job = "JobId=2 JobName=wrap\n   JobState=FAILED Reason=NonZeroExitCode Dependency=(null)\n   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0\n   StdOut=/tmp/sl-2.out\n";
        let pairs = parse_key_values(job);
        assert_eq!(pairs["JobState"], "FAILED");
        assert_eq!(pairs["ExitCode"], "3:0");
        assert_eq!(pairs["StdOut"], "/tmp/sl-2.out");
        let config = "Configuration data as of 2026-12-06T05:08:03\nKillWait                = 5 sec\nMinJobAge               = 600 sec\n";
        assert_eq!(parse_kill_wait(&parse_key_values(config)), Some(5));
        assert_eq!(parse_kill_wait(&BTreeMap::new()), None);
    }
}
