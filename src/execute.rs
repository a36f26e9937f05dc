//! Execute: start a rendered run, tee its output into the run folder, turn signals into a
//! clean stop, decide the outcome and write the final record.
//!
//! The same code runs in two places: in `tapir run` itself (attached: output is echoed to
//! the terminal) and in the `--detach` supervisor (`tapir supervise`, hidden), which gets
//! everything it needs from the record the parent wrote plus the secret values in its own
//! environment. Keeping one code path is what makes an attached and a detached run of the
//! same task leave identical records.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::backend::docker::Docker;
use crate::error::exit;
use crate::model::quantity::format_bytes;
use crate::output::{self, Spinner};
use crate::record::logs::{self, LogSink, Stream};
use crate::record::{self, RunRecord, Status, store};

/// Everything needed to start the container and judge its end.
#[derive(Debug, Clone)]
pub struct Job {
    pub docker: Docker,
    /// The full command: the docker binary first.
    pub argv: Vec<String>,
    /// Secret variables, passed to the docker client's environment (never in argv).
    pub secret_env: Vec<(String, String)>,
    pub container: String,
    /// Output channels: (name, host folder), listed into the record at the end.
    pub outputs: Vec<(String, PathBuf)>,
    pub memory_limit: Option<u64>,
    pub grace_seconds: u32,
    pub keep: bool,
}

/// How the outcome is shown while and after the task runs.
pub struct Attachment {
    /// Echo the task's output to our stdout/stderr (attached runs).
    pub echo: bool,
    /// Cleared as soon as the task prints or the container runs.
    pub spinner: Option<Spinner>,
    /// Treat SIGHUP like Ctrl-C (a closed terminal). A detached supervisor ignores it.
    pub hangup_cancels: bool,
}

/// Runs the job to its end and writes the final record. Returns the exit code `tapir run`
/// should give: the container's own code, 130 when cancelled, 125 when it never ran.
pub fn run_to_end(job: &Job, run_dir: &Path, record: &mut RunRecord, attach: Attachment) -> u8 {
    let sink = match LogSink::create(run_dir) {
        Ok(sink) => Arc::new(sink),
        Err(e) => return give_up(record, run_dir, format!("cannot capture the output: {e}")),
    };
    let Some((program, args)) = job.argv.split_first() else {
        return give_up(record, run_dir, "the rendered command is empty".into());
    };
    // The docker client runs in its own process group: a Ctrl-C on the terminal reaches
    // only tapir, which then stops the container itself (`docker stop`: SIGTERM through
    // `--init`, SIGKILL after the grace period) instead of leaving it running.
    let mut child = match Command::new(program)
        .args(args)
        .envs(job.secret_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return give_up(record, run_dir, format!("cannot run {program}: {e}")),
    };

    let cancelled = Arc::new(AtomicBool::new(false));
    let signal_thread = match CancelOnSignal::install(job, &cancelled, attach.hangup_cancels) {
        Ok(thread) => Some(thread),
        Err(e) => {
            record
                .warnings
                .push(format!("Ctrl-C will not stop the container cleanly: {e}"));
            None
        }
    };
    if let Some(spinner) = &attach.spinner {
        clear_when_running(spinner.clone(), job.docker.clone(), job.container.clone());
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
            )
        })
    })
    .collect();
    let client_status = child.wait();
    let mut capture_errors = Vec::new();
    for pump in pumps {
        if let Ok(Err(e)) = pump.join() {
            capture_errors.push(format!("output capture failed: {e}"));
        }
    }
    if let Err(e) = sink.finish() {
        capture_errors.push(format!("the logs could not be synced to disk: {e}"));
    }
    if let Some(spinner) = &attach.spinner {
        spinner.clear();
    }

    let state = job.docker.container(&job.container);
    let client_code = client_status
        .as_ref()
        .ok()
        .and_then(std::process::ExitStatus::code);
    record.ended_at = Some(jiff::Timestamp::now());
    let was_cancelled = cancelled.load(Ordering::SeqCst);
    let (status, code, message) = match (&state, client_code) {
        _ if was_cancelled => (
            Status::Cancelled,
            exit::CANCELLED,
            "cancelled by a signal; the container was stopped".to_string(),
        ),
        (Some(s), _) if s.oom_killed => (
            Status::OomKilled,
            u8::try_from(s.exit_code).unwrap_or(137),
            format!(
                "killed: out of memory (limit {})",
                job.memory_limit.map_or("none".to_string(), format_bytes)
            ),
        ),
        (Some(s), _) if s.started => match u8::try_from(s.exit_code) {
            Ok(0) => (Status::Succeeded, 0, "succeeded".to_string()),
            Ok(code) => (
                Status::Failed,
                code,
                format!(
                    "the task exited with code {code}{}",
                    match code {
                        // What shells and the init process use for exec failures.
                        126 => " (the command is not executable in the image?)",
                        127 => " (the command was not found in the image?)",
                        _ => "",
                    }
                ),
            ),
            Err(_) => (
                Status::Failed,
                1,
                format!("the task exited with code {}", s.exit_code),
            ),
        },
        (state, code) => (
            Status::EngineError,
            exit::NOT_STARTED,
            format!(
                "the engine could not start the container{}",
                state
                    .as_ref()
                    .filter(|s| !s.error.is_empty())
                    .map(|s| format!(": {}", s.error))
                    .or(code.map(|c| format!(
                        " (docker exited with {c}; its message is in stderr.log)"
                    )))
                    .unwrap_or_default()
            ),
        ),
    };
    if !job.keep
        && let Err(e) = job.docker.remove(&job.container)
    {
        record
            .warnings
            .push(format!("could not remove container {}: {e}", job.container));
    }
    if let Some(thread) = signal_thread {
        thread.close();
    }

    record.status = status;
    record.exit_code = state.as_ref().filter(|s| s.started).map(|s| s.exit_code);
    record.message = Some(message);
    record.warnings.extend(capture_errors);
    record.outputs = job
        .outputs
        .iter()
        .map(|(channel, path)| record::list_output(channel, path))
        .collect();
    write_record(run_dir, record);
    code
}

fn boxed(source: impl Read + Send + 'static) -> Box<dyn Read + Send> {
    Box::new(source)
}

/// Records a failure to start and gives 125.
fn give_up(record: &mut RunRecord, run_dir: &Path, message: String) -> u8 {
    output::stderr(&format!("error: {message}\n"));
    record.status = Status::EngineError;
    record.message = Some(message);
    record.ended_at = Some(jiff::Timestamp::now());
    write_record(run_dir, record);
    exit::NOT_STARTED
}

/// Writes the record, reporting (not failing on) an error: the run already happened, and
/// its logs are on disk whatever becomes of the record.
pub fn write_record(run_dir: &Path, record: &RunRecord) {
    if let Err(e) = store::write_record_atomic(run_dir, &record.to_value()) {
        output::stderr(&format!(
            "error: could not write the record in {}: {e}\n",
            run_dir.display()
        ));
    }
}

/// The thread that turns SIGINT/SIGTERM (and SIGHUP when asked) into stopping the
/// container: the first signal stops it with the grace period, a second one removes it
/// at once.
struct CancelOnSignal {
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl CancelOnSignal {
    fn install(
        job: &Job,
        cancelled: &Arc<AtomicBool>,
        hangup_cancels: bool,
    ) -> std::io::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        // Registering SIGHUP without acting on it is how a detached supervisor ignores it
        // (its default action would end the process and lose the final record).
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let handle = signals.handle();
        let (docker, container, cancelled, grace) = (
            job.docker.clone(),
            job.container.clone(),
            cancelled.clone(),
            job.grace_seconds,
        );
        let seen = AtomicU32::new(0);
        let thread = std::thread::spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP && !hangup_cancels {
                    continue;
                }
                cancelled.store(true, Ordering::SeqCst);
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    output::stderr(&format!(
                        "\ntapir: stopping the task (up to {grace}s; press Ctrl-C again to kill it now)\n"
                    ));
                    let docker = docker.clone();
                    let container = container.clone();
                    std::thread::spawn(move || docker.stop(&container, grace));
                } else {
                    let _ = docker.remove(&container);
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

/// Polls the engine until the container has started, then clears the spinner: from then
/// on, silence means the task is working, not the engine.
fn clear_when_running(spinner: Spinner, docker: Docker, container: String) {
    std::thread::spawn(move || {
        spinner.set_message("starting the container");
        while !spinner.is_cleared() {
            if docker.container(&container).is_some_and(|s| s.started) {
                spinner.clear();
                break;
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
