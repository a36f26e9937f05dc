//! Execute: start a rendered run, tee its output into the run folder, turn signals into a
//! clean stop, decide the outcome and write the final record.
//!
//! The same code runs in two places: in `tapir run` itself (attached: output is echoed to
//! the terminal) and in the `--detach` supervisor (`tapir supervise`, hidden), which gets
//! everything it needs from the record the parent wrote plus the secret values in its own
//! environment. Keeping one code path is what makes an attached and a detached run of the
//! same task leave identical records.

pub(crate) mod detach;
pub(crate) mod parent_watch;

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::backend::deadline;
use crate::backend::docker::{ContainerState, Docker, EngineFailure};
use crate::error::ExitStatus;
use crate::model::quantity::format_bytes;
use crate::output::{self, Spinner};
use crate::record::logs::{self, LogSink, Stream};
use crate::record::{self, RunRecord, Status, store};

/// Everything needed to start the container and judge its end.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub engine: Engine,
    /// The full command: the engine's binary first.
    pub argv: Vec<String>,
    /// Secret variables, passed in the engine client's environment (never in argv).
    pub secret_env: Vec<(String, String)>,
    /// Output channels: (name, host folder), listed into the record at the end.
    pub outputs: Vec<(String, PathBuf)>,
    pub memory_limit: Option<u64>,
    pub grace_seconds: u32,
    pub keep: bool,
    /// Stop the run after this many seconds from its start (`run --timeout`).
    pub timeout_seconds: Option<u64>,
}

/// How a run is stopped and judged.
#[derive(Debug, Clone)]
pub(crate) enum Engine {
    /// A container on the Docker engine: stopped, inspected and removed through it.
    Docker { docker: Docker, container: String },
    /// `apptainer exec`: a process tree, stopped by signalling its process group and
    /// judged by its exit status. `scratch` (its /tmp, /var/tmp and home) is removed
    /// afterwards unless the run is kept.
    Apptainer { scratch: PathBuf },
}

/// How the outcome is shown while and after the task runs.
pub(crate) struct Attachment {
    /// Echo the task's output to our stdout/stderr (attached runs).
    pub echo: bool,
    /// Cleared as soon as the task prints or the container runs.
    pub spinner: Option<Spinner>,
    /// Treat SIGHUP like Ctrl-C (a closed terminal). A detached supervisor ignores it.
    pub hangup_cancels: bool,
}

/// Runs the job to its end and writes the final record. Returns how `tapir run` ends:
/// with the container's own code, cancelled (130), or not started (125).
pub(crate) fn run_to_end(
    job: &Job,
    run_dir: &Path,
    record: &mut RunRecord,
    attach: Attachment,
) -> ExitStatus {
    let sink = match LogSink::create(run_dir) {
        Ok(sink) => Arc::new(sink),
        Err(e) => return give_up(record, run_dir, format!("cannot capture the output: {e}")),
    };
    let Some((program, args)) = job.argv.split_first() else {
        return give_up(record, run_dir, "the rendered command is empty".into());
    };
    // Signals are handled from before the spawn on: a Ctrl-C at any moment stops the
    // run instead of killing tapir and leaving the container behind.
    let cancel = Arc::new(CancelState::default());
    let signal_thread = match CancelOnSignal::install(job, &cancel, attach.hangup_cancels) {
        Ok(thread) => Some(thread),
        Err(e) => {
            record
                .warnings
                .push(format!("Ctrl-C will not stop the container cleanly: {e}"));
            None
        }
    };
    // From here to the handler's close, a lost parent cancels like a signal would.
    let parent_watch = signal_thread.as_ref().map(|_| parent_watch::arm());
    // The engine client runs in its own process group: a Ctrl-C on the terminal reaches
    // only tapir, which then stops the run itself (`docker stop`: SIGTERM through
    // `--init`, SIGKILL after the grace period; for apptainer SIGTERM to apptainer, which
    // forwards it, and SIGKILL to the process group) instead of leaving it running.
    let mut command = Command::new(program);
    command.args(args);
    if let Engine::Apptainer { .. } = job.engine {
        // Only the plan's own variables and binds reach the container.
        crate::backend::apptainer::remove_host_settings(&mut command);
    }
    let spawned = command
        .envs(job.secret_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            cancel.client_done.store(true, Ordering::SeqCst);
            drop(parent_watch);
            if let Some(thread) = signal_thread {
                thread.close();
            }
            return give_up(record, run_dir, format!("cannot run {program}: {e}"));
        }
    };
    cancel.child_pid.store(child.id(), Ordering::SeqCst);
    if let Some(seconds) = job.timeout_seconds {
        stop_after(job, &cancel, seconds);
    }
    if let Engine::Docker { docker, container } = &job.engine {
        watch_start(
            attach.spinner.clone(),
            docker.clone(),
            container.clone(),
            cancel.clone(),
        );
    }

    let pumps: Vec<_> = [
        (child.stdout.take().map(boxed), Stream::Stdout),
        (child.stderr.take().map(boxed), Stream::Stderr),
    ]
    .into_iter()
    .filter_map(|(source, stream)| source.map(|s| (s, stream)))
    .map(|(source, stream)| {
        let sink = sink.clone();
        let echo = attach.echo;
        let spinner = attach.spinner.clone();
        let (engine, cancel, grace) = (job.engine.clone(), cancel.clone(), job.grace_seconds);
        // Output that is not kept is lost for good: the first write that fails stops the
        // task (like a cancel), instead of letting it run on unrecorded.
        let stop_on_failure = move |e: &std::io::Error| {
            if cancel.write_failed.swap(true, Ordering::SeqCst) {
                return;
            }
            output::stderr(&format!(
                "\ntapir: cannot write {e}; stopping the task (up to {grace}s)\n"
            ));
            std::thread::spawn(move || stop(&engine, &cancel, grace));
        };
        std::thread::spawn(move || {
            let mut terminal: Option<Box<dyn Write>> = echo.then(|| match stream {
                Stream::Stdout => Box::new(ClearFirst::new(std::io::stdout(), spinner)) as _,
                Stream::Stderr => Box::new(ClearFirst::new(std::io::stderr(), spinner)) as _,
            });
            logs::pump(
                source,
                stream,
                &sink,
                terminal.as_mut().map(|t| t.as_mut() as &mut dyn Write),
                stop_on_failure,
            )
        })
    })
    .collect();
    let client_status = child.wait();
    cancel.client_done.store(true, Ordering::SeqCst);
    // The first write error that cost output: the run fails with it, naming the file. A
    // pump also returns a failed read of the engine's pipe, which is only a warning (as
    // always): nothing was refused by the disk.
    let stopped_for_write = cancel.write_failed.load(Ordering::SeqCst);
    let mut write_error: Option<String> = None;
    for pump in pumps {
        match pump.join() {
            Ok(Err(e)) if stopped_for_write => {
                write_error.get_or_insert_with(|| format!("could not write {e}"));
            }
            Ok(Err(e)) => record.warnings.push(format!("output capture failed: {e}")),
            _ => {}
        }
    }
    if let Err(e) = sink.finish()
        && write_error.is_none()
    {
        write_error = Some(format!("could not sync {e} to disk"));
    }
    if let Some(spinner) = &attach.spinner {
        spinner.clear();
    }
    record.ended_at = Some(jiff::Timestamp::now());
    let was_cancelled = cancel.cancelled.load(Ordering::SeqCst) && !stopped_for_write;
    let timed_out = cancel.timed_out.load(Ordering::SeqCst) && !was_cancelled;
    let stalled = cancel
        .engine_stalled
        .lock()
        .ok()
        .and_then(|m| m.clone())
        .filter(|_| !was_cancelled);
    let outcome = match &job.engine {
        Engine::Docker { docker, container } => docker_outcome(
            docker,
            container,
            &client_status,
            was_cancelled,
            job.memory_limit,
        ),
        Engine::Apptainer { .. } => process_outcome(&client_status, was_cancelled),
    };
    let outcome = match job.timeout_seconds {
        _ if stalled.is_some() => Outcome {
            status: Status::EngineError,
            ends: ExitStatus::NotStarted,
            message: stalled.unwrap_or_default(),
            exit_code: None,
        },
        Some(seconds) if timed_out => Outcome {
            status: Status::TimedOut,
            ends: ExitStatus::TimedOut,
            message: format!("timed out after {seconds}s (--timeout); the task was stopped"),
            exit_code: outcome.exit_code,
        },
        _ => outcome,
    };
    let unstopped = cancel.engine_unstopped.lock().ok().and_then(|m| m.clone());
    let outcome = match (&job.engine, unstopped) {
        (Engine::Docker { container, .. }, Some(why)) if was_cancelled => Outcome {
            message: format!(
                "cancelled by a signal, but the engine did not answer `docker stop`: container {container} may still be running (`tapir rm {}` removes it once the engine answers)\n  {why}",
                run_dir.display()
            ),
            ..outcome
        },
        _ => outcome,
    };
    let outcome = Outcome {
        message: match gpu_hint(job, run_dir, &outcome) {
            Some(hint) => format!("{}\n  {hint}", outcome.message),
            None => outcome.message,
        },
        ..outcome
    };
    let outcome = match write_error {
        Some(error) => Outcome {
            status: Status::WriteFailed,
            ends: ExitStatus::NotStarted,
            message: if stopped_for_write {
                format!("{error}; the task was stopped, and its output after that is not kept")
            } else {
                format!("{error}; the task had ended ({})", outcome.message)
            },
            exit_code: outcome.exit_code,
        },
        None => outcome,
    };
    if !job.keep {
        match &job.engine {
            Engine::Docker { docker, container } => {
                if let Err(e) = docker.remove(container) {
                    record
                        .warnings
                        .push(format!("could not remove container {container}: {e}"));
                }
            }
            Engine::Apptainer { scratch } => {
                if let Err(e) = std::fs::remove_dir_all(scratch)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    record.warnings.push(format!(
                        "could not remove the scratch folder {}: {e}",
                        scratch.display()
                    ));
                }
            }
        }
    }
    drop(parent_watch);
    if let Some(thread) = signal_thread {
        thread.close();
    }
    let Outcome {
        status,
        ends,
        message,
        exit_code,
    } = outcome;
    record.exit_code = exit_code;
    record.status = status;
    record.message = Some(message);
    record.outputs = job
        .outputs
        .iter()
        .map(|(channel, path)| record::list_output(channel, path))
        .collect();
    let ends = finish_record(run_dir, record, ends);
    store::release_space(run_dir);
    ends
}

/// Writes the final record. When it cannot be written the run fails (125), whatever the
/// task did: a run that leaves a wrong record (`running`, or an older state) must not look
/// like a success. The record in memory says so, for the caller's last line.
fn finish_record(run_dir: &Path, record: &mut RunRecord, ends: ExitStatus) -> ExitStatus {
    match try_write_record(run_dir, record) {
        Ok(()) => ends,
        Err(e) => {
            output::stderr(&format!("error: {e}\n"));
            record.status = Status::WriteFailed;
            record.message = Some(format!(
                "{}; and the record could not be written: {}",
                record.message.as_deref().unwrap_or("ended"),
                e.message
            ));
            ExitStatus::NotStarted
        }
    }
}

fn boxed(source: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(source)
}

/// Records a failure to start and gives 125.
fn give_up(record: &mut RunRecord, run_dir: &Path, message: String) -> ExitStatus {
    output::stderr(&format!("error: {message}\n"));
    record.status = Status::EngineError;
    record.message = Some(message);
    record.ended_at = Some(jiff::Timestamp::now());
    write_record(run_dir, record);
    store::release_space(run_dir);
    ExitStatus::NotStarted
}

/// Writes the record, reporting (not failing on) an error: the run already happened, and
/// its logs are on disk whatever becomes of the record.
pub(crate) fn write_record(run_dir: &Path, record: &RunRecord) {
    if let Err(e) = try_write_record(run_dir, record) {
        output::stderr(&format!("error: {e}\n"));
    }
}

/// Writes the record; the error names the record file and the reason.
pub(crate) fn try_write_record(
    run_dir: &Path,
    record: &RunRecord,
) -> Result<(), store::RecordError> {
    store::write_record_atomic(run_dir, &record.to_value())
}

/// A GPU task Docker could not start because it has no GPU runtime: Docker's own words
/// (`could not select device driver "" with capabilities: [[gpu]]`) do not say what to
/// do, so the outcome does.
fn gpu_hint(job: &Job, run_dir: &Path, outcome: &Outcome) -> Option<String> {
    let asked_for_gpu =
        matches!(job.engine, Engine::Docker { .. }) && job.argv.iter().any(|a| a == "--gpus");
    if !asked_for_gpu || outcome.status != Status::EngineError {
        return None;
    }
    let stderr = std::fs::read_to_string(run_dir.join(logs::STDERR_FILE)).unwrap_or_default();
    stderr.contains("could not select device driver").then(|| {
        "the task asks for a GPU, and Docker has no NVIDIA runtime here\n  fix: install the NVIDIA Container Toolkit and register it with Docker (`sudo nvidia-ctk runtime configure --runtime=docker`, then restart Docker); `tapir doctor` checks it".to_string()
    })
}

/// How a run ended: its status, how tapir ends, the message, and the task's own exit
/// code for the record (none when it never ran).
struct Outcome {
    status: Status,
    ends: ExitStatus,
    message: String,
    exit_code: Option<i64>,
}

/// Exit 137 is SIGKILL. Under a memory limit, and when tapir did not kill the container
/// itself, that is the kernel's OOM killer — but Docker on cgroup v2 often fails to flag
/// it (`State.OOMKilled` stays false, or turns true a moment later). So the state is read
/// again for a short while, and a kill it never confirms is still reported as OOM, saying
/// it was inferred.
const SIGKILL_EXIT: i64 = 137;
const OOM_FLAG_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

fn docker_outcome(
    docker: &Docker,
    container: &str,
    client_status: &std::io::Result<std::process::ExitStatus>,
    cancelled: bool,
    memory_limit: Option<u64>,
) -> Outcome {
    let mut state = docker.container(container);
    let unconfirmed_kill = |state: &Option<ContainerState>| {
        state.as_ref().is_some_and(|s| {
            !cancelled
                && memory_limit.is_some()
                && s.started
                && !s.oom_killed
                && s.exit_code == SIGKILL_EXIT
        })
    };
    let waited_since = std::time::Instant::now();
    while unconfirmed_kill(&state) && waited_since.elapsed() < OOM_FLAG_WAIT {
        std::thread::sleep(std::time::Duration::from_millis(100));
        state = docker.container(container);
    }
    let client_code = client_status
        .as_ref()
        .ok()
        .and_then(std::process::ExitStatus::code);
    classify_docker_end(state.as_ref(), client_code, cancelled, memory_limit)
}

/// How a Docker run ended, from the container's final state (`None`: it is gone or the
/// engine did not answer) and the `docker run` client's own exit code.
fn classify_docker_end(
    state: Option<&ContainerState>,
    client_code: Option<i32>,
    cancelled: bool,
    memory_limit: Option<u64>,
) -> Outcome {
    let exit_code = state.filter(|s| s.started).map(|s| s.exit_code);
    let limit = || memory_limit.map_or("none".to_string(), format_bytes);
    let (status, ends, message) = match state {
        _ if cancelled => (
            Status::Cancelled,
            ExitStatus::Cancelled,
            "cancelled by a signal; the container was stopped".to_string(),
        ),
        Some(s) if s.oom_killed => (
            Status::OomKilled,
            // An OOM kill is a failure even if the main process still exited 0.
            ExitStatus::Task(
                u8::try_from(s.exit_code)
                    .ok()
                    .filter(|c| *c != 0)
                    .unwrap_or(137),
            ),
            format!("killed: out of memory (limit {})", limit()),
        ),
        Some(s) if s.started && s.exit_code == SIGKILL_EXIT && memory_limit.is_some() => (
            Status::OomKilled,
            ExitStatus::Task(137),
            format!(
                "killed: out of memory (limit {}) — inferred from exit 137 (SIGKILL) under \
                 a memory limit; the engine did not flag it",
                limit()
            ),
        ),
        Some(s) if s.started => exit_status(s.exit_code),
        state => (
            Status::EngineError,
            ExitStatus::NotStarted,
            format!(
                "the engine could not start the container{}",
                state
                    .filter(|s| !s.error.is_empty())
                    .map(|s| format!(": {}", s.error))
                    .or(client_code.map(|c| format!(
                        " (docker exited with {c}; its message is in stderr.log)"
                    )))
                    .unwrap_or_default()
            ),
        ),
    };
    Outcome {
        status,
        ends,
        message,
        exit_code,
    }
}

/// A process run (apptainer): its exit status is the task's.
fn process_outcome(
    client_status: &std::io::Result<std::process::ExitStatus>,
    cancelled: bool,
) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    let code = match client_status {
        Ok(s) => s.code().or_else(|| s.signal().map(|n| 128 + n)),
        Err(_) => None,
    };
    let (status, ends, message) = match code {
        _ if cancelled => (
            Status::Cancelled,
            ExitStatus::Cancelled,
            "cancelled by a signal; the task was stopped".to_string(),
        ),
        None => (
            Status::EngineError,
            ExitStatus::NotStarted,
            "the engine process could not be waited for".to_string(),
        ),
        Some(255) => (
            Status::Failed,
            ExitStatus::Task(255),
            "the task exited with code 255 (apptainer's own failures also give 255: see stderr.log)".to_string(),
        ),
        Some(code) => exit_status(i64::from(code)),
    };
    Outcome {
        status,
        ends,
        message,
        exit_code: code.map(i64::from),
    }
}

/// Status, exit code and words for a task that ran and exited with `code`.
fn exit_status(code: i64) -> (Status, ExitStatus, String) {
    match u8::try_from(code) {
        Ok(0) => (
            Status::Succeeded,
            ExitStatus::Success,
            "succeeded".to_string(),
        ),
        Ok(code) => (
            Status::Failed,
            ExitStatus::Task(code),
            format!(
                "the task exited with code {code}{}",
                match code {
                    // What shells and init processes use for exec failures.
                    126 => " (the command is not executable in the image?)",
                    127 => " (the command was not found in the image?)",
                    _ => "",
                }
            ),
        ),
        Err(_) => (
            Status::Failed,
            ExitStatus::Task(1),
            format!("the task exited with code {code}"),
        ),
    }
}

/// Shared between the waiting thread and the signal thread.
#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    /// The engine client's pid (= its process group), 0 until spawned.
    child_pid: AtomicU32,
    /// The engine client has exited: nothing is left to stop.
    client_done: AtomicBool,
    /// `--timeout` expired and the run was stopped because of it.
    timed_out: AtomicBool,
    /// Writing the output failed and the run was stopped because of it.
    write_failed: AtomicBool,
    /// The engine has created the container (so `docker stop` can reach it).
    container_seen: AtomicBool,
    /// Why the run was given up before its container started: the engine did not start
    /// it within the deadline (the words for the record).
    engine_stalled: std::sync::Mutex<Option<String>>,
    /// Why a cancel could not stop the container: the engine did not answer `docker stop`.
    engine_unstopped: std::sync::Mutex<Option<String>>,
}

/// Stops the run `seconds` after now, as a cancel would (grace period, then kill), unless
/// it has ended or was cancelled by then.
fn stop_after(job: &Job, state: &Arc<CancelState>, seconds: u64) {
    let (engine, state, grace) = (job.engine.clone(), state.clone(), job.grace_seconds);
    // A limit past what the clock can represent (`--timeout 18446744073709551615`) is
    // no limit at all.
    let Some(deadline) =
        std::time::Instant::now().checked_add(std::time::Duration::from_secs(seconds))
    else {
        return;
    };
    std::thread::spawn(move || {
        while std::time::Instant::now() < deadline {
            if state.client_done.load(Ordering::SeqCst) || state.cancelled.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if state.client_done.load(Ordering::SeqCst) || state.cancelled.load(Ordering::SeqCst) {
            return;
        }
        state.timed_out.store(true, Ordering::SeqCst);
        output::stderr(&format!(
            "\ntapir: the task ran for {seconds}s (--timeout): stopping it (up to {grace}s)\n"
        ));
        stop(&engine, &state, grace);
    });
}

/// The thread that turns SIGINT/SIGTERM (and SIGHUP when asked) into stopping the run:
/// the first signal stops it with the grace period, a second one kills it at once.
struct CancelOnSignal {
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl CancelOnSignal {
    fn install(job: &Job, state: &Arc<CancelState>, hangup_cancels: bool) -> std::io::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        // Registering SIGHUP without acting on it is how a detached supervisor ignores it
        // (its default action would end the process and lose the final record).
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let handle = signals.handle();
        let (engine, state, grace) = (job.engine.clone(), state.clone(), job.grace_seconds);
        let thread = std::thread::spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                if signal == SIGHUP && !hangup_cancels {
                    continue;
                }
                state.cancelled.store(true, Ordering::SeqCst);
                seen += 1;
                if seen == 1 {
                    output::stderr(&format!(
                        "\ntapir: stopping the task (up to {grace}s; press Ctrl-C again to kill it now)\n"
                    ));
                    let (engine, state) = (engine.clone(), state.clone());
                    std::thread::spawn(move || stop(&engine, &state, grace));
                } else {
                    kill_now(&engine, &state);
                }
            }
        });
        Ok(Self { handle, thread })
    }

    fn close(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// Stops a run gracefully. The container (or process) may not exist yet when the signal
/// comes early: wait for it for the grace period, unless the client has already given
/// up; a `docker run` client whose container has not appeared by then is killed (the
/// final removal takes the container if the engine creates it after all).
fn stop(engine: &Engine, state: &CancelState, grace: u32) {
    let tick = std::time::Duration::from_millis(50);
    match engine {
        Engine::Docker { docker, container } => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(grace.into());
            loop {
                if state.client_done.load(Ordering::SeqCst) {
                    return;
                }
                if state.container_seen.load(Ordering::SeqCst) {
                    // An engine that does not answer cannot stop the container, and the
                    // client would wait on it for as long as the task runs: end the
                    // client, and let the record say the container may live on.
                    if let Err(EngineFailure::NoAnswer(why)) = docker.stop(container, grace) {
                        if let Ok(mut unstopped) = state.engine_unstopped.lock() {
                            *unstopped = Some(why);
                        }
                        kill_client(state);
                    }
                    return;
                }
                if std::time::Instant::now() >= deadline {
                    kill_client(state);
                    return;
                }
                std::thread::sleep(tick);
            }
        }
        Engine::Apptainer { .. } => {
            let Some(group) = wait_for_pid(state, tick) else {
                return;
            };
            // SIGTERM to apptainer alone: it forwards it to the task. Sent to the whole
            // group it would reach the task two or three times (directly, and forwarded
            // by apptainer's starter and by its init), which some programs take as "quit
            // now". The SIGKILL after the grace period goes to the whole group.
            if let Ok(raw) = i32::try_from(group) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(raw),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(grace.into());
            while std::time::Instant::now() < deadline {
                if state.client_done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(tick);
            }
            signal_group(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn kill_now(engine: &Engine, state: &CancelState) {
    match engine {
        Engine::Docker { docker, container } => {
            let removed = docker.remove(container);
            // Killed at once, as asked: a client whose container is gone ends by itself,
            // one whose engine did not answer the removal never would.
            if !state.container_seen.load(Ordering::SeqCst) || removed.is_err() {
                kill_client(state);
            }
        }
        Engine::Apptainer { .. } => {
            let group = state.child_pid.load(Ordering::SeqCst);
            if group != 0 {
                signal_group(group, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Kills the engine client's process group (a `docker run` still waiting on the engine).
fn kill_client(state: &CancelState) {
    let group = state.child_pid.load(Ordering::SeqCst);
    if group != 0 && !state.client_done.load(Ordering::SeqCst) {
        signal_group(group, nix::sys::signal::Signal::SIGKILL);
    }
}

fn wait_for_pid(state: &CancelState, tick: std::time::Duration) -> Option<u32> {
    loop {
        let pid = state.child_pid.load(Ordering::SeqCst);
        if pid != 0 {
            return Some(pid);
        }
        if state.client_done.load(Ordering::SeqCst) {
            return None;
        }
        std::thread::sleep(tick);
    }
}

/// Signals a whole process group: apptainer and everything it started.
fn signal_group(group: u32, signal: nix::sys::signal::Signal) {
    if let Ok(raw) = i32::try_from(group) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), signal);
    }
}

/// Polls the engine until the container has started (then clears the spinner: from
/// then on, silence means the task is working, not the engine), noting when it exists.
/// A container that has not started within the engine deadline of the client's start —
/// the engine does not answer, or answers but never starts it — is given up: the
/// `docker run` client is killed and the run ends as not started (125), in words that
/// name the deadline and its override.
fn watch_start(
    spinner: Option<Spinner>,
    docker: Docker,
    container: String,
    state: Arc<CancelState>,
) {
    let limit = deadline::limit();
    let since = std::time::Instant::now();
    std::thread::spawn(move || {
        if let Some(spinner) = spinner.as_ref().filter(|s| !s.is_cleared()) {
            spinner.set_message("starting the container");
        }
        loop {
            // A cancel does not end the watch: `stop` waits for the container to exist
            // before it sends `docker stop`, and learns that from here.
            if state.client_done.load(Ordering::SeqCst) {
                return;
            }
            let asked = docker.container_state(&container);
            if let Ok(Some(found)) = &asked {
                state.container_seen.store(true, Ordering::SeqCst);
                if found.started {
                    if let Some(spinner) = &spinner {
                        spinner.clear();
                    }
                    return;
                }
            }
            if since.elapsed() >= limit
                && !state.client_done.load(Ordering::SeqCst)
                && !state.cancelled.load(Ordering::SeqCst)
            {
                let why = match asked {
                    Err(EngineFailure::NoAnswer(why)) => why,
                    _ => format!(
                        "{} did not start the container within {} s (`docker run` was still waiting for it)\n  fix: {}",
                        docker.engine_name(),
                        limit.as_secs(),
                        deadline::fix()
                    ),
                };
                if let Ok(mut stalled) = state.engine_stalled.lock() {
                    *stalled = Some(why);
                }
                if let Some(spinner) = &spinner {
                    spinner.clear();
                }
                kill_client(&state);
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
}

/// A terminal writer that clears the spinner before the first byte it writes, so the
/// task's output never mixes with the spinner line.
struct ClearFirst<W> {
    inner: W,
    spinner: Option<Spinner>,
}

impl<W> ClearFirst<W> {
    fn new(inner: W, spinner: Option<Spinner>) -> Self {
        Self { inner, spinner }
    }
}

impl<W: Write> Write for ClearFirst<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(spinner) = self.spinner.take() {
            spinner.clear();
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(exit_code: i64, oom_killed: bool) -> ContainerState {
        ContainerState {
            exit_code,
            oom_killed,
            started: true,
            ..ContainerState::default()
        }
    }

    const LIMIT: Option<u64> = Some(8 * 1024 * 1024);

    #[test]
    fn an_oom_flag_is_an_oom_kill_in_words() {
        let o = classify_docker_end(Some(&ended(137, true)), Some(137), false, LIMIT);
        assert_eq!(o.status, Status::OomKilled);
        assert_eq!(o.ends, ExitStatus::Task(137));
        assert_eq!(o.message, "killed: out of memory (limit 8Mi)");
    }

    /// Docker on cgroup v2 may never set OOMKilled: a SIGKILL under a limit that tapir
    /// did not send is still an OOM kill, said to be inferred.
    #[test]
    fn an_unflagged_sigkill_under_a_memory_limit_is_an_inferred_oom_kill() {
        let o = classify_docker_end(Some(&ended(137, false)), Some(137), false, LIMIT);
        assert_eq!(o.status, Status::OomKilled);
        assert_eq!(o.ends, ExitStatus::Task(137));
        assert!(
            o.message.starts_with("killed: out of memory (limit 8Mi)"),
            "{}",
            o.message
        );
        assert!(o.message.contains("inferred"), "{}", o.message);
    }

    #[test]
    fn a_sigkill_without_a_limit_or_after_a_cancel_is_not_an_oom_kill() {
        let o = classify_docker_end(Some(&ended(137, false)), Some(137), false, None);
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.ends, ExitStatus::Task(137));
        let o = classify_docker_end(Some(&ended(137, false)), Some(137), true, LIMIT);
        assert_eq!(o.status, Status::Cancelled);
        assert_eq!(o.ends, ExitStatus::Cancelled);
    }

    #[test]
    fn a_container_that_never_started_is_an_engine_error() {
        let o = classify_docker_end(None, Some(125), false, LIMIT);
        assert_eq!(o.status, Status::EngineError);
        assert_eq!(o.ends, ExitStatus::NotStarted);
        assert!(
            o.message.contains("docker exited with 125"),
            "{}",
            o.message
        );
        let o = classify_docker_end(Some(&ended(0, false)), Some(0), false, LIMIT);
        assert_eq!((o.status, o.ends), (Status::Succeeded, ExitStatus::Success));
    }
}
