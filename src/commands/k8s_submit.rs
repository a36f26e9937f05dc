//! `run --executor k8s` without `--dry-run`: the checked manifests go to the cluster
//! through `kubectl` (DESIGN.md decision 18, "Submission"). The run has a folder and a
//! record like every other run; the record's `executor` object names the context, the
//! namespace and `pod/<name>`, and its status follows the Pod: `queued` while Pending,
//! `running`, then the end read from the container's state.
//!
//! Every kubectl call but `logs --follow` has a deadline (`TAPIR_ENGINE_TIMEOUT`); the
//! follower is killed a bounded time after the Pod has ended. Secrets reach kubectl only
//! on its standard input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::backend::deadline::{self, CallError};
use crate::cli::RunArgs;
use crate::error::{ExitStatus, Result};
use crate::k8s::Manifests;
use crate::k8s::kubectl::{self, KubectlCall, PodState, Target};
use crate::output::{self, Printer};
use crate::record::logs::{self, LogSink, Stream};
use crate::record::{self, ExecutorRecord, RunRecord, Status, store};
use crate::resolve::plan::{Direction, RunPlan};

/// The client tapir runs, found on PATH (tests put the Docker stand-in first).
const KUBECTL: &str = "kubectl";
/// How often the Pod's state is asked while it runs.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Failed state queries in a row after which tapir gives up on the cluster.
const MAX_FAILED_QUERIES: u32 = 3;
/// The masked manifests kept in the run folder (Secrets as `****`).
pub(crate) const MANIFEST_FILE: &str = "manifests.yaml";

/// What the submission needs besides the manifests.
pub(crate) struct Submission<'a> {
    pub args: &'a RunArgs,
    pub id: &'a str,
    pub manifests: &'a Manifests,
    pub plan: RunPlan,
    pub warnings: Vec<String>,
    pub target: Target,
}

/// How one kubectl call went.
enum Answer {
    Ok(String),
    /// kubectl ran and refused; its standard error.
    Refused(String),
    /// kubectl could not be started, or did not answer in time.
    Silent(String),
}

/// Runs one bounded kubectl call; the standard input (the manifests) goes through a
/// pipe, never a file or the argv.
fn ask(call: &KubectlCall) -> Answer {
    let limit = call.deadline.unwrap_or_else(deadline::limit);
    let mut command = Command::new(KUBECTL);
    command
        .args(&call.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let writer = match call.stdin() {
        Some(text) => match std::io::pipe() {
            Ok((reader, mut writer)) => {
                command.stdin(Stdio::from(reader));
                let text = text.to_string();
                // Written on a helper thread: manifests larger than the pipe's buffer
                // must not block tapir before kubectl reads them.
                Some(std::thread::spawn(move || {
                    let _ = writer.write_all(text.as_bytes());
                }))
            }
            Err(e) => return Answer::Silent(format!("cannot make a pipe for kubectl: {e}")),
        },
        None => {
            command.stdin(Stdio::null());
            None
        }
    };
    let result = deadline::status(&mut command, limit);
    // The command (holding the pipe's read end) is dropped here, so a writer blocked on
    // a kubectl that never read ends with a broken pipe.
    drop(command);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let verb = call
        .args
        .iter()
        .find(|a| !a.starts_with("--") && !a.contains('='))
        .map(String::as_str);
    let what = call.shown();
    match result {
        Ok(out) if out.status.success() => {
            Answer::Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stderr)
                .trim()
                .lines()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n");
            Answer::Refused(if said.is_empty() {
                format!("kubectl ended with {} and said nothing", out.status)
            } else {
                said
            })
        }
        Err(CallError::Spawn(e)) => Answer::Silent(format!(
            "cannot start kubectl ({e})\n  fix: install kubectl and make sure it is on PATH, with a context for your cluster (`kubectl config current-context`)"
        )),
        Err(CallError::TimedOut(limit)) => Answer::Silent(format!(
            "kubectl did not answer within {} s ({what}{})\n  fix: check that the cluster answers (`kubectl{} cluster-info`); if it is only slow, give it longer with {}=<seconds> (now {} s)",
            limit.as_secs(),
            verb.map(|v| format!("; {v}")).unwrap_or_default(),
            call.args
                .iter()
                .position(|a| a == "--context")
                .and_then(|i| call.args.get(i + 1))
                .map(|c| format!(" --context {c}"))
                .unwrap_or_default(),
            deadline::TIMEOUT_ENV,
            deadline::seconds()
        )),
    }
}

/// `run --executor k8s`: creates the Secrets and the Pod, follows the Pod to its end (or
/// returns at once with `--detach`), and deletes what it created unless `--keep`.
pub(crate) fn submit(sub: Submission<'_>, p: Printer) -> Result<ExitStatus> {
    let args = sub.args;
    let manifests = sub.manifests;
    let pod = manifests.pod_name().to_string();
    let secrets: Vec<String> = manifests.secrets.iter().map(|s| s.name.clone()).collect();
    let limit = deadline::limit();
    for warning in &sub.warnings {
        output::stderr(&format!("{} {warning}\n", p.yellow("warning:")));
    }
    let run_dir = store::create_run_dir(&args.runs_dir, sub.id).map_err(|e| {
        crate::error::Error::io_with_hint(
            &args.runs_dir,
            e,
            "choose a writable folder with --runs-dir or TAPIR_RUNS_DIR",
        )
    })?;
    let _ = store::ignore_in_git(&run_dir);
    let mut record = RunRecord::new(
        sub.id,
        "k8s",
        Status::Queued,
        super::absolute(&args.task).display().to_string(),
    );
    record.task_name = Some(sub.plan.task_name.clone());
    record.plan = Some(sub.plan.clone());
    // The create call, without its standard input (the manifests, Secrets included).
    record.argv = std::iter::once(KUBECTL.to_string())
        .chain(kubectl::create(&sub.target, manifests, limit).args)
        .collect();
    // A detached run has no follower: later commands ask the cluster instead.
    record.pid = (!args.detach).then(std::process::id);
    record.warnings = sub.warnings.clone();
    record.executor = Some(ExecutorRecord {
        kind: "k8s".into(),
        context: sub.target.context.clone(),
        namespace: sub.target.namespace.clone(),
        object: Some(format!("pod/{pod}")),
        state: Some("Creating".into()),
        ..Default::default()
    });
    let manifest_text = crate::k8s::render_masked(manifests, crate::k8s::ManifestFormat::Yaml);
    let _ = store::write_run_file(&run_dir.join(MANIFEST_FILE), manifest_text.as_bytes());
    crate::execute::write_record(&run_dir, &record);
    write_handle(
        &run_dir,
        &Handle {
            pod: pod.clone(),
            secrets: secrets.clone(),
            keep: args.keep,
            grace: args.grace,
        },
    );

    let cancelled = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register(signal, cancelled.clone());
    }
    // A run a pipeline started stops (deleting its Pod) when the pipeline is gone: the
    // watcher raises SIGTERM, which the flag above turns into a cancel.
    let _armed = args.watch_parent.map(|parent| {
        crate::execute::parent_watch::watch(parent);
        crate::execute::parent_watch::arm()
    });

    let remove = |record: &mut RunRecord| {
        if args.keep {
            return;
        }
        let call = kubectl::delete(&sub.target, &pod, &secrets, args.grace, limit);
        if let Answer::Refused(why) | Answer::Silent(why) = ask(&call) {
            let note = format!(
                "could not delete pod/{pod} and its Secrets: {why}\n  fix: delete them yourself: {}",
                call.shown()
            );
            output::stderr(&format!("{} {note}\n", p.yellow("warning:")));
            record.warnings.push(note);
        }
    };

    match ask(&kubectl::create(&sub.target, manifests, limit)) {
        Answer::Ok(_) => {}
        Answer::Refused(why) | Answer::Silent(why) => {
            // A create that timed out may still have made some objects.
            remove(&mut record);
            return Ok(not_started(
                &mut record,
                &run_dir,
                &format!("kubectl could not create pod/{pod}: {why}"),
                p,
            ));
        }
    }
    set_state(&mut record, "Pending");
    crate::execute::write_record(&run_dir, &record);
    if args.detach {
        output::stderr(&format!(
            "tapir: created pod/{pod}; follow it with `tapir logs -f {id}`, wait for it with `tapir wait {id}`\n",
            id = sub.id
        ));
        output::stdout(&format!("{}\n", sub.id));
        return Ok(ExitStatus::Success);
    }
    output::stderr(&format!(
        "tapir: created pod/{pod}{}; record: {}\n",
        sub.target
            .namespace
            .as_deref()
            .map(|n| format!(" in namespace {n}"))
            .unwrap_or_default(),
        run_dir.display()
    ));
    let sink = match LogSink::create(&run_dir) {
        Ok(sink) => Arc::new(sink),
        Err(e) => {
            remove(&mut record);
            return Ok(not_started(
                &mut record,
                &run_dir,
                &format!("cannot write the run's logs: {e}"),
                p,
            ));
        }
    };
    let ending = follow(&sub.target, &pod, &sink, &cancelled, &mut record, &run_dir);
    let _ = sink.finish();
    match ending {
        Ending::Cancelled => {
            let how = CancelArgs { grace: args.grace };
            return Ok(cancel_pod(
                &sub.target,
                &pod,
                &secrets,
                how,
                &mut record,
                &run_dir,
                p,
            ));
        }
        Ending::Ended(status, exit_code, message) => {
            record.status = status;
            record.exit_code = exit_code;
            record.message = message;
        }
        Ending::NoCluster(why) => {
            record.status = Status::EngineError;
            record.message = Some(why);
        }
    }
    remove(&mut record);
    record.ended_at = Some(jiff::Timestamp::now());
    record.outputs = sub
        .plan
        .mounts
        .iter()
        .filter(|m| m.direction == Direction::Output)
        .map(|m| record::list_output(&m.channel, &m.host_path))
        .collect();
    crate::execute::write_record(&run_dir, &record);
    announce(&record, &pod, &run_dir, p);
    Ok(record.summary().exit_status())
}

/// Sets the Kubernetes state word in the record's `executor` object.
fn set_state(record: &mut RunRecord, state: &str) {
    if let Some(executor) = record.executor.as_mut() {
        executor.state = Some(state.to_string());
    }
}

/// How following a Pod ended.
enum Ending {
    /// The Pod ended: the run's status, the container's exit code, a message.
    Ended(Status, Option<i64>, Option<String>),
    /// A signal asked tapir to stop.
    Cancelled,
    /// The cluster stopped answering, or the Pod went away.
    NoCluster(String),
}

/// Asks for the Pod's state until it ends, recording each change, and streams its logs
/// into the run folder once it runs.
fn follow(
    target: &Target,
    pod: &str,
    sink: &Arc<LogSink>,
    cancelled: &AtomicBool,
    record: &mut RunRecord,
    run_dir: &Path,
) -> Ending {
    let limit = deadline::limit();
    let mut follower: Option<Follower> = None;
    let mut failures = 0;
    let mut last_state = String::new();
    let ending = loop {
        if cancelled.load(Ordering::SeqCst) {
            break Ending::Cancelled;
        }
        let state = match ask(&kubectl::status(target, pod, limit)) {
            Answer::Ok(json) => match serde_json::from_str(&json) {
                Ok(value) => {
                    failures = 0;
                    kubectl::pod_state(&value)
                }
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_FAILED_QUERIES {
                        break Ending::NoCluster(format!(
                            "kubectl's answer about pod/{pod} is not JSON: {e}"
                        ));
                    }
                    sleep_unless(cancelled, POLL_EVERY);
                    continue;
                }
            },
            Answer::Refused(why) if is_not_found(&why) => {
                break Ending::NoCluster(format!(
                    "pod/{pod} is gone: it was deleted outside tapir ({why})"
                ));
            }
            Answer::Refused(why) | Answer::Silent(why) => {
                failures += 1;
                if failures >= MAX_FAILED_QUERIES || cancelled.load(Ordering::SeqCst) {
                    break Ending::NoCluster(format!(
                        "tapir lost track of pod/{pod} ({MAX_FAILED_QUERIES} state queries failed): {why}"
                    ));
                }
                sleep_unless(cancelled, POLL_EVERY);
                continue;
            }
        };
        let word = state_word(&state);
        if word != last_state {
            set_state(record, &word);
            if matches!(state, PodState::Running | PodState::Ended { .. })
                && record.status == Status::Queued
            {
                record.status = Status::Running;
                record.started_at = Some(jiff::Timestamp::now());
            }
            crate::execute::write_record(run_dir, record);
            last_state = word;
        }
        if follower.is_none() && matches!(state, PodState::Running | PodState::Ended { .. }) {
            follower = Follower::start(target, pod, sink.clone());
        }
        if let Some((status, exit_code, message)) = ending_of(&state, pod) {
            break Ending::Ended(status, exit_code, message);
        }
        sleep_unless(cancelled, POLL_EVERY);
    };
    if let Some(follower) = follower {
        // The logs end with the container; a follower that hangs is stopped.
        let bound = if matches!(ending, Ending::Ended(..)) {
            limit
        } else {
            Duration::ZERO
        };
        follower.finish(bound);
    }
    ending
}

/// A waiting reason that Kubernetes retries for ever but that needs a person.
fn is_stuck(reason: &str) -> bool {
    matches!(
        reason,
        "InvalidImageName" | "CreateContainerConfigError" | "ErrImageNeverPull"
    )
}

/// Sleeps `span`, waking early for a cancel.
fn sleep_unless(cancelled: &AtomicBool, span: Duration) {
    let until = Instant::now() + span;
    while Instant::now() < until && !cancelled.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kubectl logs --follow` into the run folder's stdout.log (Kubernetes gives stdout and
/// stderr as one stream), echoed to the terminal.
struct Follower {
    pid: u32,
    done: std::sync::mpsc::Receiver<()>,
}

impl Follower {
    fn start(target: &Target, pod: &str, sink: Arc<LogSink>) -> Option<Self> {
        let limit = deadline::limit();
        let call = kubectl::logs(target, pod, true, limit, limit);
        let mut child = Command::new(KUBECTL)
            .args(&call.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let pid = child.id();
        let stdout = child.stdout.take()?;
        let (tell, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut echo = std::io::stdout();
            let _ = logs::pump(stdout, Stream::Stdout, &sink, Some(&mut echo), |_| {});
            let _ = child.wait();
            let _ = tell.send(());
        });
        Some(Follower { pid, done })
    }

    /// Waits up to `bound` for the logs to end, then stops the client.
    fn finish(self, bound: Duration) {
        if self.done.recv_timeout(bound).is_err() {
            if let Ok(raw) = i32::try_from(self.pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(raw),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = self.done.recv_timeout(Duration::from_secs(2));
        }
    }
}

/// Ctrl-C: the Pod (and its Secrets) are deleted, and tapir waits, bounded, until the Pod
/// is gone, so that nothing of the run goes on after `cancelled` is recorded.
fn cancel_pod(
    target: &Target,
    pod: &str,
    secrets: &[String],
    args: CancelArgs,
    record: &mut RunRecord,
    run_dir: &Path,
    p: Printer,
) -> ExitStatus {
    output::stderr("\ntapir: cancelling: deleting the pod\n");
    let limit = deadline::limit();
    let call = kubectl::delete(target, pod, secrets, args.grace, limit);
    let mut message = "cancelled by a signal; the pod was deleted".to_string();
    match ask(&call) {
        Answer::Ok(_) => {
            let until = Instant::now() + limit + Duration::from_secs(u64::from(args.grace));
            let mut gone = false;
            while Instant::now() < until {
                if let Answer::Refused(why) = ask(&kubectl::status(target, pod, limit))
                    && is_not_found(&why)
                {
                    gone = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            if !gone {
                message = format!(
                    "cancelled by a signal; pod/{pod} was asked to go but was still there after {} s",
                    (limit + Duration::from_secs(u64::from(args.grace))).as_secs()
                );
            }
        }
        Answer::Refused(why) | Answer::Silent(why) => {
            message = format!(
                "cancelled by a signal, but pod/{pod} could not be deleted: {why}\n  fix: {}",
                call.shown()
            );
            output::stderr(&format!("{} {message}\n", p.red("error:")));
        }
    }
    record.status = Status::Cancelled;
    set_state(record, "Deleted");
    record.message = Some(message);
    record.ended_at = Some(jiff::Timestamp::now());
    crate::execute::write_record(run_dir, record);
    output::stderr(&format!(
        "tapir: cancelled; record: {}\n",
        run_dir.display()
    ));
    ExitStatus::Cancelled
}

/// Records a run whose objects could not be created (exit 125).
fn not_started(record: &mut RunRecord, run_dir: &Path, why: &str, p: Printer) -> ExitStatus {
    output::stderr(&format!("{} {why}\n", p.red("error:")));
    record.status = Status::EngineError;
    record.message = Some(why.to_string());
    record.ended_at = Some(jiff::Timestamp::now());
    crate::execute::write_record(run_dir, record);
    output::stderr(&format!(
        "tapir: the task did not start; record: {}\n",
        run_dir.display()
    ));
    ExitStatus::NotStarted
}

/// The last line of a run: how the Pod ended.
fn announce(record: &RunRecord, pod: &str, run_dir: &Path, p: Printer) {
    let line = match record.status {
        Status::Succeeded => p.green(&format!("pod/{pod} succeeded")),
        Status::EngineError => p.red(&format!(
            "pod/{pod}: {}",
            record.message.as_deref().unwrap_or("engine error")
        )),
        status => p.red(&format!(
            "pod/{pod} {}{}{}",
            status.as_str(),
            record
                .exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default(),
            record
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
    };
    output::stderr(&format!("{line}; record: {}\n", run_dir.display()));
}

/// What a later tapir (`ps`, `show`, `wait`, `logs`, `rm`) needs to finish a run nobody
/// follows (`--detach`, or a follower that was killed): kept beside the record, 0600.
#[derive(serde::Serialize, serde::Deserialize)]
struct Handle {
    pod: String,
    secrets: Vec<String>,
    keep: bool,
    grace: u32,
}

/// The run folder file that holds the [`Handle`].
pub(crate) const HANDLE_FILE: &str = "k8s.json";
/// A run nobody follows is asked about at most this often per run by one tapir.
const SETTLE_EVERY: Duration = Duration::from_secs(2);
/// After a failed question, one tapir asks about no run for this long.
const QUIET_AFTER_FAILURE: Duration = Duration::from_secs(30);

fn write_handle(run_dir: &Path, handle: &Handle) {
    let text = serde_json::to_string_pretty(handle).unwrap_or_default();
    let _ = store::write_run_file(&run_dir.join(HANDLE_FILE), text.as_bytes());
}

fn read_handle(run_dir: &Path) -> Option<Handle> {
    let bytes = store::read_run_file(&run_dir.join(HANDLE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A Kubernetes run whose record is not final and that no living tapir follows: its
/// record, target and handle.
fn unfollowed(run_dir: &Path) -> Option<(RunRecord, Target, Handle)> {
    let record = RunRecord::load(run_dir).ok()?;
    let executor = record.executor.as_ref()?;
    let followed =
        record.pid.is_some() && !record::supervisor_gone(record.host.as_deref(), record.pid);
    if executor.kind != "k8s" || !record.status.is_active() || followed {
        return None;
    }
    let target = Target {
        context: executor.context.clone(),
        namespace: executor.namespace.clone(),
    };
    let handle = read_handle(run_dir)?;
    Some((record, target, handle))
}

/// For `ps`, `show`, `wait`, `logs` and `rm`: a Kubernetes run that nobody follows is
/// brought up to date from the Pod's state (one `kubectl get`, at most every
/// [`SETTLE_EVERY`]); a Pod that has ended gets its logs fetched into the run folder, its
/// objects deleted (unless `--keep`) and a final record. Returns a warning when the
/// cluster could not be asked.
pub(crate) fn settle(run_dir: &Path) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static ASKED: Mutex<Option<HashMap<PathBuf, Instant>>> = Mutex::new(None);
    // Once kubectl failed, this command does not ask again for a while: `ps` over many
    // runs must not wait a deadline for each of them (`wait` asks again later).
    static QUIET_UNTIL: Mutex<Option<Instant>> = Mutex::new(None);
    if QUIET_UNTIL
        .lock()
        .ok()
        .and_then(|until| *until)
        .is_some_and(|until| Instant::now() < until)
    {
        return None;
    }
    let (mut record, target, handle) = unfollowed(run_dir)?;
    {
        let mut asked = ASKED.lock().ok()?;
        let asked = asked.get_or_insert_with(HashMap::new);
        if asked
            .get(run_dir)
            .is_some_and(|at| at.elapsed() < SETTLE_EVERY)
        {
            return None;
        }
        asked.insert(run_dir.to_path_buf(), Instant::now());
    }
    let limit = deadline::limit();
    let state = match ask(&kubectl::status(&target, &handle.pod, limit)) {
        Answer::Ok(json) => match serde_json::from_str(&json) {
            Ok(value) => kubectl::pod_state(&value),
            Err(e) => return Some(format!("kubectl's answer is not JSON: {e}")),
        },
        Answer::Refused(why) if is_not_found(&why) => {
            record.status = Status::Failed;
            record.message = Some(format!(
                "pod/{} is gone: it was deleted outside tapir before its end was recorded",
                handle.pod
            ));
            record.ended_at = Some(jiff::Timestamp::now());
            crate::execute::write_record(run_dir, &record);
            return None;
        }
        Answer::Refused(why) | Answer::Silent(why) => {
            if let Ok(mut until) = QUIET_UNTIL.lock() {
                *until = Some(Instant::now() + QUIET_AFTER_FAILURE);
            }
            return Some(format!(
                "cannot ask the cluster about run {}; it is shown as its record says: {why}",
                record.id
            ));
        }
    };
    set_state(&mut record, &state_word(&state));
    if matches!(state, PodState::Running | PodState::Ended { .. })
        && record.status == Status::Queued
    {
        record.status = Status::Running;
        record.started_at = Some(jiff::Timestamp::now());
    }
    if let Some((status, exit_code, message)) = ending_of(&state, &handle.pod) {
        if let Ok(sink) = LogSink::create(run_dir) {
            fetch_logs(&target, &handle.pod, &sink);
            let _ = sink.finish();
        }
        if !handle.keep {
            let call = kubectl::delete(&target, &handle.pod, &handle.secrets, handle.grace, limit);
            if let Answer::Refused(why) | Answer::Silent(why) = ask(&call) {
                record.warnings.push(format!(
                    "could not delete pod/{} and its Secrets: {why}",
                    handle.pod
                ));
            }
        }
        record.status = status;
        record.exit_code = exit_code;
        record.message = message;
        record.ended_at = Some(jiff::Timestamp::now());
        if let Some(plan) = &record.plan {
            record.outputs = plan
                .mounts
                .iter()
                .filter(|m| m.direction == Direction::Output)
                .map(|m| record::list_output(&m.channel, &m.host_path))
                .collect();
        }
    }
    crate::execute::write_record(run_dir, &record);
    None
}

/// `rm` of a Kubernetes run nobody follows: the Pod and its Secrets are deleted, tapir
/// waits (bounded) until the Pod is gone, and the record says `cancelled`. `None`: not
/// such a run (a following tapir is signalled instead).
pub(crate) fn cancel_unfollowed(run_dir: &Path) -> Option<ExitStatus> {
    let p = Printer::new(crate::cli::ColorChoice::Never, false);
    let (mut record, target, handle) = unfollowed(run_dir)?;
    let grace = handle.grace;
    let how = CancelArgs { grace };
    Some(cancel_pod(
        &target,
        &handle.pod,
        &handle.secrets,
        how,
        &mut record,
        run_dir,
        p,
    ))
}

/// What a cancel needs from the run's settings.
struct CancelArgs {
    grace: u32,
}

/// The whole output of an ended Pod's container (one bounded `kubectl logs`).
fn fetch_logs(target: &Target, pod: &str, sink: &LogSink) {
    let limit = deadline::limit();
    if let Answer::Ok(text) = ask(&kubectl::logs(target, pod, false, limit, limit)) {
        let _ = logs::pump(text.as_bytes(), Stream::Stdout, sink, None, |_| {});
    }
}

fn is_not_found(why: &str) -> bool {
    why.contains("NotFound") || why.contains("not found")
}

/// The record's word for a Pod state.
fn state_word(state: &PodState) -> String {
    match state {
        PodState::Pending(Some(reason)) => format!("Pending: {reason}"),
        PodState::Pending(None) => "Pending".to_string(),
        PodState::Running => "Running".to_string(),
        PodState::Ended { reason, .. } => {
            format!("Terminated: {}", reason.as_deref().unwrap_or("-"))
        }
        PodState::Lost(reason) => format!("Failed: {reason}"),
    }
}

/// How the run ends in this state, if it does: status, exit code, message.
fn ending_of(state: &PodState, pod: &str) -> Option<(Status, Option<i64>, Option<String>)> {
    match state {
        PodState::Ended { exit_code, reason } => {
            let status = match (exit_code, reason.as_deref()) {
                (_, Some("OOMKilled")) => Status::OomKilled,
                (0, _) => Status::Succeeded,
                _ => Status::Failed,
            };
            let message = (status == Status::OomKilled).then(|| {
                "the container went over its memory limit (Kubernetes: OOMKilled)".to_string()
            });
            Some((status, Some(i64::from(*exit_code)), message))
        }
        PodState::Lost(reason) if reason.contains("DeadlineExceeded") => Some((
            Status::TimedOut,
            None,
            Some(format!(
                "the pod ran longer than its activeDeadlineSeconds ({reason})"
            )),
        )),
        PodState::Lost(reason) => Some((
            Status::Failed,
            None,
            Some(format!("the pod failed: {reason}")),
        )),
        PodState::Pending(Some(reason)) if is_stuck(reason) => Some((
            Status::EngineError,
            None,
            Some(format!(
                "pod/{pod} cannot start: {reason}\n  fix: see `kubectl describe pod/{pod}`"
            )),
        )),
        _ => None,
    }
}

/// [`settle`] for the commands that read records: a warning is said once per command.
pub(crate) fn look(run_dir: &Path) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Some(warning) = settle(run_dir)
        && !WARNED.swap(true, Ordering::SeqCst)
    {
        output::stderr(&format!("warning: {warning}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(code: i32, reason: &str) -> PodState {
        PodState::Ended {
            exit_code: code,
            reason: Some(reason.to_string()),
        }
    }

    /// Each Pod state maps to the run's end as README's table says; a state that is not
    /// an end (Pending, Running, a pull that Kubernetes retries) is none.
    #[test]
    fn pod_states_end_runs_as_the_readme_says() {
        let cases = [
            (ended(0, "Completed"), Some((Status::Succeeded, Some(0)))),
            (ended(3, "Error"), Some((Status::Failed, Some(3)))),
            (
                ended(137, "OOMKilled"),
                Some((Status::OomKilled, Some(137))),
            ),
            (
                PodState::Lost("DeadlineExceeded".into()),
                Some((Status::TimedOut, None)),
            ),
            (
                PodState::Lost("Evicted".into()),
                Some((Status::Failed, None)),
            ),
            (
                PodState::Pending(Some("InvalidImageName".into())),
                Some((Status::EngineError, None)),
            ),
            (PodState::Pending(Some("ImagePullBackOff".into())), None),
            (PodState::Pending(None), None),
            (PodState::Running, None),
        ];
        for (state, expected) in cases {
            let got = ending_of(&state, "p").map(|(status, code, _)| (status, code));
            assert_eq!(got, expected, "{state:?}");
        }
        assert_eq!(
            state_word(&ended(137, "OOMKilled")),
            "Terminated: OOMKilled"
        );
        assert_eq!(
            state_word(&PodState::Pending(Some("ContainerCreating".into()))),
            "Pending: ContainerCreating"
        );
    }
}
