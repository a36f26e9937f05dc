//! The local executor: each attempt is a child `tapir run` of this same binary, in its
//! own process group (a Ctrl-C on the terminal reaches only the pipeline, which passes
//! it on once), watching this process (`--watch-parent`: a pipeline killed with SIGKILL
//! leaves no container running). The child handles its own signals: a SIGTERM stops its
//! container and records `cancelled`, a second one kills it at once.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use super::{AttemptRequest, Event, Executor, Reattached, link_task_run, unsettled_status};
use crate::pipeline::record::Attempt;
use crate::record::{RunRecord, RunSummary, Status, store};

pub(crate) struct LocalExecutor {
    /// This binary.
    program: PathBuf,
    /// The pipeline run folder: attempts name their task run folder relative to it.
    pipeline_dir: PathBuf,
    events: mpsc::Sender<Event>,
    /// Running children by task: `cancel` signals them.
    children: Arc<Mutex<BTreeMap<usize, u32>>>,
    /// Set by the first `cancel`: a child that ends without settling its record was
    /// stopped, not broken.
    cancelled: Arc<AtomicBool>,
    watchers: Vec<std::thread::JoinHandle<()>>,
}

impl LocalExecutor {
    pub(crate) fn new(pipeline_dir: &Path, events: mpsc::Sender<Event>) -> Self {
        Self {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tapir")),
            pipeline_dir: pipeline_dir.to_path_buf(),
            events,
            children: Arc::new(Mutex::new(BTreeMap::new())),
            cancelled: Arc::new(AtomicBool::new(false)),
            watchers: Vec::new(),
        }
    }
}

impl Executor for LocalExecutor {
    fn start(&mut self, request: AttemptRequest) -> Result<(), String> {
        let log = store::run_file_options()
            .create(true)
            .append(true)
            .open(&request.log);
        // Where this attempt's messages begin in the task's log (attempts append to it).
        let log_start = log
            .as_ref()
            .ok()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len());
        let mut command = Command::new(&self.program);
        command
            .args(request.run.argv())
            // The id is the request's; the runs folder too (never the environment's).
            .env_remove(store::RUN_ID_OVERRIDE_ENV)
            .env_remove("TAPIR_RUNS_DIR")
            .stdin(if request.private_env.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::null())
            .stderr(match log {
                Ok(file) => Stdio::from(file),
                Err(_) => Stdio::null(),
            });
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.task, child.id());
        let children = self.children.clone();
        let cancelled = self.cancelled.clone();
        let events = self.events.clone();
        let pipeline_dir = self.pipeline_dir.clone();
        let started_at = jiff::Timestamp::now();
        self.watchers.push(std::thread::spawn(move || {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(request.private_env.as_bytes());
            }
            let exit = child.wait();
            children
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&request.task);
            let mut attempt = Attempt::started(request.number, started_at, Status::EngineError);
            attempt.ended_at = Some(jiff::Timestamp::now());
            attempt.tapir_exit_code = exit.ok().and_then(|s| s.code());
            let was_cancelled = cancelled.load(Ordering::SeqCst);
            let run_dir = request.run_dir();
            match RunRecord::load(&run_dir) {
                Ok(run) => {
                    link_task_run(&mut attempt, &run_dir, run, &pipeline_dir);
                    if attempt.status == Status::Running {
                        // The child ended without settling its record (killed early).
                        attempt.status = unsettled_status(was_cancelled);
                    }
                }
                Err(_) => {
                    attempt.status = unsettled_status(was_cancelled);
                    // `tapir run` refused it before anything started (it then makes no
                    // run folder): its error, in its own words, is the attempt's message.
                    let refusal = log_start.and_then(|start| refusal_in_log(&request.log, start));
                    attempt.message = Some(match refusal {
                        Some(message) if attempt.tapir_exit_code == Some(125) => message,
                        _ => format!(
                            "tapir run ended ({}) before it made a run folder; see {}",
                            attempt
                                .tapir_exit_code
                                .map_or("killed".to_string(), |c| format!("exit {c}")),
                            request.log.display()
                        ),
                    });
                }
            }
            let _ = events.send(Event::Ended {
                task: request.task,
                attempt: Box::new(attempt),
            });
        }));
        Ok(())
    }

    fn cancel(&mut self, task: usize) {
        self.cancelled.store(true, Ordering::SeqCst);
        let children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(raw) = children.get(&task).and_then(|pid| i32::try_from(*pid).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    fn reattach(&self, run_dir: &Path) -> Option<Reattached> {
        reattach(run_dir)
    }

    fn finish(&mut self) {
        for watcher in self.watchers.drain(..) {
            let _ = watcher.join();
        }
    }
}

/// [`Executor::reattach`] for local attempts: their task run folder is on this machine,
/// and a run that still runs says so in its record (with its process alive).
pub(crate) fn reattach(run_dir: &Path) -> Option<Reattached> {
    if !run_dir.join(store::RECORD_FILE).is_file() {
        return Some(Reattached::NoRun);
    }
    let still_running =
        RunSummary::load(run_dir).is_ok_and(|r| r.status == Status::Running && !r.is_lost());
    if still_running {
        return None;
    }
    match RunRecord::load(run_dir) {
        Ok(run) => Some(Reattached::Ended(Box::new(run))),
        Err(_) => Some(Reattached::NoRun),
    }
}

/// The longest message kept from a refused attempt's log (a task file with many findings
/// could print pages; the log keeps them all).
const MAX_REFUSAL_MESSAGE: usize = 4096;

/// The error `tapir run` printed when it refused an attempt: what it wrote to the task's
/// log from `start` on (see [`refusal_in`]). `None` when it wrote no error.
fn refusal_in_log(log_path: &Path, start: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = store::open_run_file(log_path).ok()?;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_REFUSAL_MESSAGE as u64 * 4)
        .read_to_end(&mut bytes)
        .ok()?;
    let mut message = refusal_in(&String::from_utf8_lossy(&bytes))?;
    if message.len() >= MAX_REFUSAL_MESSAGE {
        message.push_str(&format!("\n  … (the rest is in {})", log_path.display()));
    }
    Some(message)
}

/// The refusal in what `tapir run` printed: from its first `error` line on (warnings
/// before it are not the reason), without the `error: ` prefix, at most
/// [`MAX_REFUSAL_MESSAGE`] bytes. `None` when there is no error line.
fn refusal_in(output: &str) -> Option<String> {
    let from = if output.starts_with("error") {
        0
    } else {
        output.find("\nerror")? + 1
    };
    let error = output[from..].trim_end();
    let error = error.strip_prefix("error: ").unwrap_or(error);
    let mut end = error.len().min(MAX_REFUSAL_MESSAGE);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    Some(error[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_taken_from_the_first_error_line_on() {
        let printed = "warning: channel `x` is not bound\nerror: image a:b is not present locally\n  fix: build it\n";
        assert_eq!(
            refusal_in(printed).as_deref(),
            Some("image a:b is not present locally\n  fix: build it")
        );
        let findings = "error[syntax]: invalid JSON\n --> t.json:1:2\ntapir: t.json is not a valid task; the task did not start\n";
        assert_eq!(refusal_in(findings).as_deref(), Some(findings.trim_end()));
        assert_eq!(refusal_in("warning: only a warning\n"), None);
        assert_eq!(refusal_in(""), None);
        let long = format!("error: {}", "é".repeat(MAX_REFUSAL_MESSAGE));
        let kept = refusal_in(&long).unwrap_or_default();
        assert!(kept.len() <= MAX_REFUSAL_MESSAGE && kept.starts_with('é'));
    }
}
