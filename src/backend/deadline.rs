//! Deadlines for every call to an engine: a request on the API socket, a `docker` CLI
//! call. An engine that accepts a connection and never answers would otherwise hang any
//! command forever; with a deadline the command gives up, says what did not answer, and
//! ends with 125 (or, for `ps`/`rm`, carries on and says its view may be stale).
//!
//! One number for all of them, `TAPIR_ENGINE_TIMEOUT` (whole seconds, default
//! [`DEFAULT_SECONDS`]): an environment variable rather than a flag, so that the
//! processes tapir starts itself (a detached supervisor, a pipeline's task runs) obey the
//! same deadline without being told. Calls that legitimately take longer scale it: a
//! `docker stop` adds the grace period, a `docker pull` gets [`PULL_FACTOR`] times it.

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

/// The variable that overrides the deadline.
pub(crate) const TIMEOUT_ENV: &str = "TAPIR_ENGINE_TIMEOUT";
/// A healthy local engine answers in milliseconds; a minute covers a busy one.
pub(crate) const DEFAULT_SECONDS: u64 = 60;
/// `docker pull` downloads: it gets this many deadlines.
pub(crate) const PULL_FACTOR: u32 = 10;
/// More than a day is a mistake, not a deadline.
const MAX_SECONDS: u64 = 86_400;

/// Reads `TAPIR_ENGINE_TIMEOUT`'s value: whole seconds, 1 to 86400.
pub(crate) fn parse_seconds(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(seconds) if (1..=MAX_SECONDS).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "{TIMEOUT_ENV}={text:?} is not a number of seconds from 1 to {MAX_SECONDS}\n  fix: set it to whole seconds (e.g. {TIMEOUT_ENV}=120), or unset it for the default of {DEFAULT_SECONDS}"
        )),
    }
}

/// Checks the variable once at start-up, so that a bad value is a usage error before
/// anything happens, never a silent fallback in the middle of a run.
pub(crate) fn check_env() -> Result<(), String> {
    match std::env::var(TIMEOUT_ENV) {
        Ok(text) => parse_seconds(&text).map(|_| ()),
        Err(std::env::VarError::NotPresent) => Ok(()),
        Err(std::env::VarError::NotUnicode(_)) => Err(parse_seconds("").unwrap_err()),
    }
}

/// The deadline of one engine call, in whole seconds.
pub(crate) fn seconds() -> u64 {
    static SECONDS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SECONDS.get_or_init(|| {
        std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|text| parse_seconds(&text).ok())
            .unwrap_or(DEFAULT_SECONDS)
    })
}

/// The deadline of one engine call.
pub(crate) fn limit() -> Duration {
    Duration::from_secs(seconds())
}

/// The words for an engine that did not answer: what was asked of whom, the deadline,
/// and the two ways on (check the engine, or give it longer).
pub(crate) fn no_answer(engine: &str, what: &str, limit: Duration) -> String {
    let seconds = limit.as_secs();
    format!(
        "{engine} did not answer within {seconds} s ({what})\n  fix: {}",
        fix()
    )
}

/// The two ways on from an engine that did not answer or act in time: check the
/// engine, or give it longer.
pub(crate) fn fix() -> String {
    format!(
        "check that the engine is healthy (`tapir doctor`); if it is only slow, give it longer with {TIMEOUT_ENV}=<seconds> (now {} s)",
        seconds()
    )
}

/// How a bounded command ended.
#[derive(Debug)]
pub(crate) enum CallError {
    /// It could not be started at all.
    Spawn(std::io::Error),
    /// It did not end within the limit, and was killed.
    TimedOut(Duration),
}

/// Engine clients running now, so that a cancelled command can end them rather than
/// leave them waiting on a silent engine after tapir itself has gone.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every engine client started through [`output`] or [`status`] that is still
/// running.
pub(crate) fn kill_running_clients() {
    let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        kill(pid);
    }
}

fn kill(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(raw),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Runs `command` with stdin from `/dev/null` and its stdout and stderr collected, like
/// `Command::output`, but kills it at `limit`.
pub(crate) fn output(command: &mut Command, limit: Duration) -> Result<Output, CallError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run(command, limit)
}

/// Runs `command` with the stdio the caller set (e.g. a pull's progress on the
/// terminal), killing it at `limit`.
pub(crate) fn status(command: &mut Command, limit: Duration) -> Result<Output, CallError> {
    run(command, limit)
}

/// The child is waited for on a helper thread and the caller waits on a channel with a
/// timeout, so a call that ends early costs no polling delay.
fn run(command: &mut Command, limit: Duration) -> Result<Output, CallError> {
    // The client stays in tapir's process group, so a terminal's Ctrl-C ends it along
    // with tapir; a SIGTERM to tapir alone is passed on by `kill_running_clients`.
    let child = command.spawn().map_err(CallError::Spawn)?;
    let pid = child.id();
    if let Ok(mut running) = RUNNING.lock() {
        running.push(pid);
    }
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let result = match ended.recv_timeout(limit) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(CallError::Spawn(e)),
        Err(_) => {
            kill(pid);
            // Reaped by the helper thread; wait briefly so no zombie outlives the call.
            let _ = ended.recv_timeout(Duration::from_secs(1));
            Err(CallError::TimedOut(limit))
        }
    };
    if let Ok(mut running) = RUNNING.lock() {
        running.retain(|p| *p != pid);
    }
    result
}

/// Runs `call` on a helper thread and waits for it at most `limit`. For blocking calls
/// that have no timeout of their own (a unix-socket `connect` to a full backlog); the
/// helper, if it is still blocked, ends with the process.
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(call());
    });
    ended.recv_timeout(limit).ok()
}

/// Sets a socket's read and write timeouts to `limit` (so a helper thread stuck on a
/// silent engine ends too).
pub(crate) fn bound_stream(
    stream: &std::os::unix::net::UnixStream,
    limit: Duration,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))
}

/// A timed-out read or write: Linux reports `SO_RCVTIMEO` as `WouldBlock`.
pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_whole_seconds_from_one_to_a_day() {
        assert_eq!(parse_seconds("2"), Ok(2));
        assert_eq!(parse_seconds(" 120 "), Ok(120));
        assert_eq!(parse_seconds("86400"), Ok(86_400));
        for bad in ["0", "", "soon", "-3", "1.5", "86401"] {
            let err = parse_seconds(bad).unwrap_err();
            assert!(
                err.contains(TIMEOUT_ENV) && err.contains("fix:"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_command_past_its_deadline_is_killed_and_one_within_it_is_not() {
        let started = std::time::Instant::now();
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30");
        match output(&mut sleeper, Duration::from_millis(300)) {
            Err(CallError::TimedOut(limit)) => assert_eq!(limit, Duration::from_millis(300)),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut echo = Command::new("echo");
        echo.arg("hi").stdout(std::process::Stdio::piped());
        let out = output(&mut echo, Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout, b"hi\n");
        assert!(RUNNING.lock().unwrap().is_empty());
    }
}
