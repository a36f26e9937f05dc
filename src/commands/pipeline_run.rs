//! `tapir pipeline run PIPELINE.json`: check the whole pipeline, then run its tasks in
//! dependency order, independent ones in parallel (`--jobs`), each attempt as a child
//! `tapir run` of its derived task file, into one pipeline run folder whose record links
//! the task runs (docs/DESIGN.md decision 10).
//!
//! Each attempt is a separate process of this same binary: it goes through exactly the
//! path of `tapir run` (resolve, execute, record), gets its own task run record, and
//! handles its own signals (a SIGTERM stops its container and records `cancelled`). This
//! module only schedules, forwards signals, and keeps the pipeline record.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::absolute;
use super::pipeline::{human as findings_text, human_findings};
use crate::cli::{ColorChoice, Mode, PipelineRunArgs, ProfileArg};
use crate::error::{Error, ExitStatus, Result};
use crate::output::{self, Printer, TaskProgress};
use crate::pipeline::model::Profile;
use crate::pipeline::plan::{self, FolderDirection, PipelinePlan, PlannedTask};
use crate::pipeline::record::{
    self as precord, Attempt, PIPELINE_RUN_DIR_PREFIX, PipelineRunRecord, PipelineStatus,
    PipelineTaskRecord, RUNS_SUBDIR, SkipCause, TaskFolder, TaskStatus,
};
use crate::pipeline::{ccat, derive};
use crate::record::{self, RunRecord, Status, TaskFile, store};

pub(crate) fn run(args: &PipelineRunArgs, color: ColorChoice) -> Result<ExitStatus> {
    let err = Printer::for_stderr(color);
    // Everything is checked before anything is created.
    let checked = plan::check(
        &args.pipeline,
        args.conf.as_deref(),
        args.profile.map(ProfileArg::profile),
    )?;
    let Some(plan) = checked.plan.as_ref().filter(|_| checked.is_valid()) else {
        output::stderr(&findings_text(&checked, err));
        output::stderr("tapir: the pipeline is invalid; nothing was started\n");
        return Ok(ExitStatus::NotStarted);
    };
    // Warnings do not stop the run, but are said first (as `tapir run` does).
    output::stderr(&human_findings(&checked, &err));
    let stdin_env: BTreeMap<String, String> = plan
        .tasks
        .iter()
        .map(|task| (task.id.clone(), derive::stdin_env_file(task)))
        .collect();
    let pipeline_sha = sha256_of(&args.pipeline)?;
    let conf_file = match &args.conf {
        Some(path) => Some(TaskFile {
            path: absolute(path).display().to_string(),
            sha256: Some(sha256_of(path)?),
        }),
        None => None,
    };
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |n| n as usize,
    );
    let (run_dir, mut record, adopted) = match &args.resume {
        Some(resume) => resume_record(resume, &args.runs_dir, &pipeline_sha)?,
        None => {
            let (dir, record) = new_record(args, &pipeline_sha)?;
            (dir, record, Vec::new())
        }
    };
    // The folder layout is fixed by the first run: `--profile` cannot change it later.
    if args.resume.is_some() && record.profile != plan.profile {
        return Err(Error::Usage(format!(
            "--resume {}: that run used profile `{}`, this invocation asks for `{}`; the folders of the two layouts do not mix\n  fix: resume with --profile {}",
            run_dir.display(),
            record.profile.label(),
            plan.profile.label(),
            record.profile.label()
        )));
    }
    record.name = plan.name.clone();
    record.profile = plan.profile;
    record.mode = args.mode.name().into();
    record.jobs = jobs;
    record.conf_file = conf_file;
    record.status = PipelineStatus::Running;
    record.message = None;
    record.exit_code = None;
    record.ended_at = None;
    record.pid = Some(std::process::id());
    record.host = Some(record::current_host());
    merge_plan(&mut record, plan);
    if args.resume.is_some() {
        prepare_folders(plan, &run_dir)?;
        write(&run_dir, &record);
    } else {
        open_new_run_dir(args, plan, &run_dir, &record)?;
    }
    output::stderr(&format!(
        "tapir: pipeline `{}`: {} in {} (up to {jobs} at a time); record: {}\n",
        plan.name,
        output::plural(plan.tasks.len(), "task"),
        output::plural(plan.levels.len(), "level"),
        run_dir.display()
    ));

    let scheduler = Scheduler {
        args,
        plan,
        run_dir: &run_dir,
        stdin_env,
        shared: Arc::new(Shared::new(jobs)),
        adopted,
    };
    let status = scheduler.run(&mut record);
    Ok(status)
}

/// Fills a new pipeline run folder before any task starts: git's ignore file, the task
/// folders and the first record. A runs folder that cannot take them (a full disk) refuses
/// the pipeline, as `tapir run` refuses a task: exit 125, and the folder, which holds only
/// what was just written, is removed again.
fn open_new_run_dir(
    args: &PipelineRunArgs,
    plan: &PipelinePlan,
    run_dir: &Path,
    record: &PipelineRunRecord,
) -> Result<()> {
    let opened = store::ignore_in_git(run_dir)
        .map_err(|e| format!("cannot write {e}"))
        .and_then(|()| prepare_folders(plan, run_dir).map_err(|e| format!("cannot write {e}")))
        .and_then(|()| record.write(run_dir).map_err(|e| e.to_string()));
    opened.map_err(|e| {
        let _ = std::fs::remove_dir_all(run_dir);
        Error::not_started(format!(
            "{e}\n  the pipeline was not started, and no run folder was kept; free some space \
             in {} or choose another folder with --runs-dir",
            args.runs_dir.display()
        ))
    })
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

fn new_record(args: &PipelineRunArgs, pipeline_sha: &str) -> Result<(PathBuf, PipelineRunRecord)> {
    let id = store::new_run_id();
    let hint = "choose a writable folder with --runs-dir or TAPIR_RUNS_DIR";
    std::fs::create_dir_all(&args.runs_dir)
        .map_err(|e| Error::io_with_hint(&args.runs_dir, e, hint))?;
    let dir = absolute(&args.runs_dir).join(format!("{PIPELINE_RUN_DIR_PREFIX}{id}"));
    std::fs::create_dir(&dir).map_err(|e| Error::io_with_hint(&dir, e, hint))?;
    let record = PipelineRunRecord {
        format_version: precord::FORMAT_VERSION,
        kind: "pipeline-run".into(),
        id,
        tapir_version: env!("CARGO_PKG_VERSION").to_string(),
        name: String::new(),
        profile: Profile::Kaapana,
        mode: String::new(),
        jobs: 0,
        pipeline_file: TaskFile {
            path: absolute(&args.pipeline).display().to_string(),
            sha256: Some(pipeline_sha.to_string()),
        },
        conf_file: None,
        status: PipelineStatus::Running,
        message: None,
        exit_code: None,
        pid: None,
        host: None,
        created_at: jiff::Timestamp::now(),
        resumed_at: Vec::new(),
        ended_at: None,
        tasks: Vec::new(),
    };
    Ok((dir, record))
}

/// The record of the pipeline run to continue: `resume` is its folder, or its folder name
/// or id under `--runs-dir`. Refused when the pipeline file changed or it still runs.
fn resume_record(
    resume: &Path,
    runs_dir: &Path,
    pipeline_sha: &str,
) -> Result<(PathBuf, PipelineRunRecord, Vec<String>)> {
    let candidates = [
        resume.to_path_buf(),
        runs_dir.join(resume),
        runs_dir.join(format!("{PIPELINE_RUN_DIR_PREFIX}{}", resume.display())),
    ];
    let Some(dir) = candidates
        .iter()
        .find(|d| d.join(store::RECORD_FILE).is_file())
    else {
        return Err(Error::Record(format!(
            "--resume {}: no pipeline run folder there (looked for {} and under --runs-dir {})\n  fix: give the pipeline-run-<id> folder that `pipeline run` printed",
            resume.display(),
            resume.join(store::RECORD_FILE).display(),
            runs_dir.display()
        )));
    };
    let dir = absolute(dir);
    let mut record = PipelineRunRecord::load(&dir).map_err(|e| Error::Record(e.to_string()))?;
    if record.pipeline_file.sha256.as_deref() != Some(pipeline_sha) {
        return Err(Error::Usage(format!(
            "--resume {}: the pipeline file changed since that run (it ran {}); resuming would mix two pipelines\n  fix: run it anew, without --resume",
            dir.display(),
            record.pipeline_file.path
        )));
    }
    let same_host = record.host.as_deref() == Some(record::current_host().as_str());
    if record.status == PipelineStatus::Running
        && same_host
        && record.pid.is_some_and(record::process_alive)
    {
        return Err(Error::Usage(format!(
            "--resume {}: that pipeline run is still running (pid {})\n  fix: wait for it to end, or stop it with Ctrl-C",
            dir.display(),
            record.pid.unwrap_or_default()
        )));
    }
    // A pipeline tapir that was killed leaves its tasks running to their end (each is its
    // own `tapir run`): running them again alongside would mix their outputs.
    let task_runs = store::list_runs(&dir.join(RUNS_SUBDIR)).unwrap_or_default();
    if let Some(still) = task_runs.iter().find(|run| {
        record::RunSummary::load(run).is_ok_and(|r| r.status == Status::Running && !r.is_lost())
    }) {
        return Err(Error::Usage(format!(
            "--resume {}: its task run {} is still running\n  fix: wait for it to end (tapir wait --runs-dir {} {}), or stop it",
            dir.display(),
            still.display(),
            dir.join(RUNS_SUBDIR).display(),
            store::run_id_of(still).unwrap_or_default()
        )));
    }
    let adopted = settle_orphaned_attempts(&mut record, &dir);
    record.resumed_at.push(jiff::Timestamp::now());
    Ok((dir, record, adopted))
}

/// The plan's tasks into the record, keeping what a resumed run already has: succeeded
/// tasks stay succeeded, every other task is pending again with its attempts kept.
fn merge_plan(record: &mut PipelineRunRecord, plan: &PipelinePlan) {
    let mut old: BTreeMap<String, PipelineTaskRecord> =
        record.tasks.drain(..).map(|t| (t.id.clone(), t)).collect();
    for task in &plan.tasks {
        let previous = old.remove(&task.id);
        // A succeeded step keeps its products; one that runs again collects them anew.
        // A task that skipped itself said it had nothing to do: that is final, as a
        // success is.
        let (status, message, attempts, products, warnings, skipped_by) = match previous {
            Some(p)
                if p.status == TaskStatus::Succeeded
                    || p.skipped_by == Some(SkipCause::ExitCode) =>
            {
                (
                    p.status,
                    p.message,
                    p.attempts,
                    p.products,
                    p.warnings,
                    p.skipped_by,
                )
            }
            Some(p) => (
                TaskStatus::Pending,
                None,
                p.attempts,
                Vec::new(),
                Vec::new(),
                None,
            ),
            None => (
                TaskStatus::Pending,
                None,
                Vec::new(),
                Vec::new(),
                Vec::new(),
                None,
            ),
        };
        record.tasks.push(PipelineTaskRecord {
            id: task.id.clone(),
            level: task.level,
            status,
            skipped_by,
            message,
            source_task: if task.task == "inline" {
                task.task.clone()
            } else {
                absolute(Path::new(&task.task)).display().to_string()
            },
            task_file: derived_task_file(&task.id),
            depends_on: task.depends_on.iter().map(|d| d.id.clone()).collect(),
            folders: task
                .folders
                .iter()
                .map(|f| TaskFolder {
                    channel: f.channel.clone(),
                    direction: match f.direction {
                        FolderDirection::Input => "input".into(),
                        FolderDirection::Output => "output".into(),
                    },
                    managed: f.managed,
                    path: f.path.clone(),
                })
                .collect(),
            execution: Some(task.execution),
            attempts,
            products,
            warnings,
        });
    }
}

/// `runs/<task id>.task.json`, relative to the pipeline run folder.
fn derived_task_file(task_id: &str) -> String {
    format!("{RUNS_SUBDIR}/{task_id}.task.json")
}

/// Creates every managed folder (owned by the invoker: Docker would create a missing
/// bind source as root) and writes the derived task files.
fn prepare_folders(plan: &PipelinePlan, run_dir: &Path) -> Result<()> {
    let runs = run_dir.join(RUNS_SUBDIR);
    std::fs::create_dir_all(&runs).map_err(|e| Error::io(&runs, e))?;
    for task in &plan.tasks {
        for folder in task.folders.iter().filter(|f| f.managed) {
            let path = run_dir.join(&folder.path);
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        // Profile `ccat`: containers write into $WORKFLOW_OUTPUT_DIR without creating it.
        if let Some(dir) = &task.workflow_output_dir {
            let (path, _) = ccat::step_output_on_host(&task.id, dir, run_dir);
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        let derived = derive::derived_task(task, run_dir);
        let path = run_dir.join(derived_task_file(&task.id));
        let mut text = serde_json::to_string_pretty(&derived).unwrap_or_default();
        text.push('\n');
        store::write_run_file(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

fn write(run_dir: &Path, record: &PipelineRunRecord) {
    if let Err(e) = record.write(run_dir) {
        output::stderr(&format!(
            "error: could not write the pipeline record in {}: {e}\n",
            run_dir.display()
        ));
    }
}

/// Shared between the scheduler, the attempt threads and the signal thread.
struct Shared {
    /// Set by the first SIGINT/SIGTERM/SIGHUP; under the `children` lock.
    cancelled: AtomicBool,
    /// Running `tapir run` children by task id: the signal thread forwards to them.
    children: Mutex<BTreeMap<String, u32>>,
    /// Free places of `--jobs`. A task takes one to start and gives it back when it ends,
    /// and also for the wait before a retry (a waiting task does not run).
    free_slots: Mutex<usize>,
    slot_freed: Condvar,
}

impl Shared {
    fn new(jobs: usize) -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            children: Mutex::new(BTreeMap::new()),
            free_slots: Mutex::new(jobs),
            slot_freed: Condvar::new(),
        }
    }

    /// Takes a free place if there is one (the scheduler, to start a task).
    fn try_take_slot(&self) -> bool {
        let mut free = self
            .free_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let taken = *free > 0;
        if taken {
            *free -= 1;
        }
        taken
    }

    /// Waits for a free place and takes it (a task, to retry); `false` when the pipeline
    /// is cancelled first.
    fn take_slot_unless_cancelled(&self) -> bool {
        let mut free = self
            .free_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.is_cancelled() {
                return false;
            }
            if *free > 0 {
                *free -= 1;
                return true;
            }
            free = self
                .slot_freed
                .wait_timeout(free, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn give_slot(&self) {
        *self
            .free_slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        self.slot_freed.notify_one();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Cancels the pipeline and passes SIGTERM to every running child (a second signal
    /// passes a second SIGTERM, which makes `tapir run` kill its container at once).
    fn cancel(&self) {
        let children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        self.cancelled.store(true, Ordering::SeqCst);
        for pid in children.values() {
            if let Ok(raw) = i32::try_from(*pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(raw),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    }
}

/// What the attempt threads tell the scheduler.
enum Event {
    Started {
        task: usize,
        number: u32,
        /// 0 for the first attempt of this invocation.
        retry: u32,
        started_at: jiff::Timestamp,
    },
    Ended {
        task: usize,
        /// Boxed: with its argv and image it outweighs the other events.
        attempt: Box<Attempt>,
    },
    Retrying {
        task: usize,
        retry: u32,
        of: u32,
        delay: u64,
    },
    /// The task's last attempt ended: its final status.
    Done {
        task: usize,
        status: TaskStatus,
        /// Cancelled without an attempt ending by it: when (`before it started`, …).
        cancelled_when: Option<&'static str>,
    },
}

struct Scheduler<'a> {
    args: &'a PipelineRunArgs,
    plan: &'a PipelinePlan,
    run_dir: &'a Path,
    stdin_env: BTreeMap<String, String>,
    shared: Arc<Shared>,
    /// Tasks `--resume` adopted (their orphaned attempt succeeded): said once, and a
    /// CCAT step's products and logs are collected as after any success.
    adopted: Vec<String>,
}

impl Scheduler<'_> {
    fn run(self, record: &mut PipelineRunRecord) -> ExitStatus {
        let signals = SignalForwarder::install(&self.shared);
        let mut progress = TaskProgress::start();
        for id in &self.adopted {
            let Some(i) = record.tasks.iter().position(|t| &t.id == id) else {
                continue;
            };
            progress.event(
                id,
                "succeeded (adopted: its task run ended after the pipeline tapir was killed)",
            );
            let logs_warning = record.tasks[i]
                .attempts
                .last()
                .and_then(|attempt| self.capture_logs(i, attempt));
            for warning in self
                .collect_products(i, record)
                .into_iter()
                .chain(logs_warning)
            {
                progress.event(id, &format!("warning: {warning}"));
                if !record.tasks[i].warnings.contains(&warning) {
                    record.tasks[i].warnings.push(warning);
                }
            }
        }
        let (events, inbox) = mpsc::channel::<Event>();
        let index: BTreeMap<&str, usize> = self
            .plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        let mut running = 0usize;
        let mut threads = Vec::new();
        // Profile `ccat`: the private folders holding the manifests with secrets, by
        // task, removed when the task ends.
        let mut private_configs: BTreeMap<usize, tempfile::TempDir> = BTreeMap::new();
        // Attempts per task before this invocation (a resumed run counts on).
        let mut known_runs = record.linked_run_ids();
        // Something changed since the record was last written.
        let mut changed = true;
        loop {
            let cancelled = self.shared.is_cancelled();
            // Settle what can be settled, start what may start.
            for i in 0..self.plan.tasks.len() {
                if record.tasks[i].status != TaskStatus::Pending {
                    continue;
                }
                if cancelled {
                    changed = true;
                    record.tasks[i].status = TaskStatus::Cancelled;
                    record.tasks[i].message =
                        Some("not started: the pipeline was cancelled".into());
                    progress.event(&record.tasks[i].id, "cancelled (not started)");
                    continue;
                }
                match self.readiness(i, record, &index) {
                    Readiness::Waiting => {}
                    Readiness::Blocked(reason, cause) => {
                        changed = true;
                        record.tasks[i].status = TaskStatus::Skipped;
                        record.tasks[i].skipped_by = Some(cause);
                        progress.event(&record.tasks[i].id, &format!("skipped ({reason})"));
                        record.tasks[i].message = Some(format!("not run: {reason}"));
                    }
                    Readiness::Ready if self.shared.try_take_slot() => {
                        changed = true;
                        let private_config = match self.write_manifest(i, record) {
                            Ok(private) => private,
                            Err(message) => {
                                self.shared.give_slot();
                                progress.event(&record.tasks[i].id, &format!("failed ({message})"));
                                record.tasks[i].status = TaskStatus::Failed;
                                record.tasks[i].message = Some(message);
                                continue;
                            }
                        };
                        record.tasks[i].status = TaskStatus::Running;
                        record.tasks[i].message = None;
                        record.tasks[i].skipped_by = None;
                        running += 1;
                        let first_number = record.tasks[i].attempts.len() as u32 + 1;
                        threads.push(self.spawn_task(
                            i,
                            first_number,
                            &known_runs,
                            private_config.as_ref().map(tempfile::TempDir::path),
                            events.clone(),
                        ));
                        if let Some(dir) = private_config {
                            private_configs.insert(i, dir);
                        }
                    }
                    Readiness::Ready => {}
                }
            }
            if changed {
                write(self.run_dir, record);
                changed = false;
            }
            if running == 0 {
                break;
            }
            let event = match inbox.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => {
                    changed = true;
                    event
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match event {
                Event::Started {
                    task,
                    number,
                    retry,
                    started_at,
                } => {
                    let id = record.tasks[task].id.clone();
                    let of = self.plan.tasks[task].execution.max_retries;
                    let what = if retry == 0 {
                        "started".to_string()
                    } else {
                        format!("started (retry {retry}/{of})")
                    };
                    progress.event(&id, &what);
                    progress.running(&id, "running");
                    record.tasks[task].attempts.push(Attempt::started(
                        number,
                        started_at,
                        Status::Running,
                    ));
                }
                Event::Ended { task, attempt } => {
                    if let Some(run_id) = &attempt.run_id {
                        known_runs.insert(run_id.clone());
                    }
                    if let Some(warning) = self.capture_logs(task, &attempt) {
                        progress.event(&record.tasks[task].id, &format!("warning: {warning}"));
                        record.tasks[task].warnings.push(warning);
                    }
                    let entry = &mut record.tasks[task];
                    match entry
                        .attempts
                        .iter_mut()
                        .find(|a| a.number == attempt.number)
                    {
                        Some(slot) => *slot = *attempt,
                        None => entry.attempts.push(*attempt),
                    }
                }
                Event::Retrying {
                    task,
                    retry,
                    of,
                    delay,
                } => {
                    let id = record.tasks[task].id.clone();
                    let last = record.tasks[task].attempts.last();
                    let why = last.map(describe_attempt).unwrap_or_default();
                    progress.event(&id, &format!("{why}; retry {retry}/{of} in {delay}s"));
                    progress.running(&id, &format!("waiting {delay}s to retry"));
                }
                Event::Done {
                    task,
                    status,
                    cancelled_when,
                } => {
                    running -= 1;
                    // Its attempts are over: the private manifest goes.
                    private_configs.remove(&task);
                    let entry = &mut record.tasks[task];
                    entry.status = status;
                    let last = entry.attempts.last();
                    let skipped_itself = (status == TaskStatus::Skipped).then(|| {
                        format!(
                            "exit {}: its skip_exit_code",
                            last.and_then(|a| a.exit_code).unwrap_or_default()
                        )
                    });
                    entry.skipped_by = skipped_itself.as_ref().map(|_| SkipCause::ExitCode);
                    // Not the last attempt's words when it did not end by the cancel
                    // (it failed before, or belongs to an earlier `--resume`d run).
                    entry.message = match (cancelled_when, &skipped_itself) {
                        (Some(when), _) => Some(format!("cancelled {when}")),
                        (None, Some(why)) => Some(format!("skipped itself ({why})")),
                        (None, None) => last.and_then(|a| a.message.clone()),
                    };
                    let line = match (status, last, cancelled_when) {
                        (TaskStatus::Succeeded, _, _) => "succeeded".to_string(),
                        (TaskStatus::Skipped, _, None) => {
                            format!("skipped ({})", skipped_itself.unwrap_or_default())
                        }
                        (_, _, Some(when)) => format!("cancelled ({when})"),
                        (_, Some(a), None) => describe_attempt(a),
                        (s, None, None) => s.as_str().to_string(),
                    };
                    let id = entry.id.clone();
                    progress.done(&id);
                    progress.event(&id, &line);
                    if status == TaskStatus::Succeeded {
                        for warning in self.collect_products(task, record) {
                            progress.event(&id, &format!("warning: {warning}"));
                        }
                    }
                }
            }
        }
        for thread in threads {
            let _ = thread.join();
        }
        progress.finish();
        signals.close();
        self.finish(record)
    }

    /// Whether task `i` can start now.
    fn readiness(
        &self,
        i: usize,
        record: &PipelineRunRecord,
        index: &BTreeMap<&str, usize>,
    ) -> Readiness {
        // The first failure-caused block wins over skips: it is what makes this task's
        // skip a failure of the pipeline.
        let mut blocked: Option<(String, SkipCause)> = None;
        for dep in &self.plan.tasks[i].depends_on {
            let Some(&d) = index.get(dep.id.as_str()) else {
                continue;
            };
            let dependency = &record.tasks[d];
            match dependency.status {
                TaskStatus::Pending | TaskStatus::Running => return Readiness::Waiting,
                TaskStatus::Succeeded => {}
                // `can_fail`: the dependant runs whatever became of the dependency.
                _ if dep.can_fail => {}
                other => {
                    let cause = if dependency.ended_well() {
                        SkipCause::SkippedDependency
                    } else {
                        SkipCause::FailedDependency
                    };
                    let reason = format!("dependency {} {}", dep.id, describe_status(other));
                    let replace = match &blocked {
                        None => true,
                        Some((_, held)) => {
                            *held == SkipCause::SkippedDependency
                                && cause == SkipCause::FailedDependency
                        }
                    };
                    if replace {
                        blocked = Some((reason, cause));
                    }
                }
            }
        }
        match blocked {
            Some((reason, cause)) => Readiness::Blocked(reason, cause),
            None => Readiness::Ready,
        }
    }

    /// Profile `ccat`: writes step `i`'s `/workflow/config/manifest.json` before it starts
    /// (its upstream steps have ended, so their products are known). `Err` in words.
    ///
    /// The manifest in the run folder has the secrets of `environment` masked, as every
    /// file tapir keeps. The container must get the values, so when there are secrets its
    /// manifest is written to a private folder (mode 0700, under `$XDG_RUNTIME_DIR` when
    /// set, a per-user tmpfs, else the temp folder), which is mounted as /workflow/config
    /// instead and removed when the step's attempts are over. Returns that folder.
    fn write_manifest(
        &self,
        i: usize,
        record: &PipelineRunRecord,
    ) -> std::result::Result<Option<tempfile::TempDir>, String> {
        let task = &self.plan.tasks[i];
        if task.workflow_output_dir.is_none() {
            return Ok(None);
        }
        let folder = |name: &str| {
            task.folders
                .iter()
                .find(|f| f.channel == name)
                .map(|f| ccat::folder_on_host(f, self.run_dir))
        };
        let input_files = match folder("input") {
            Some(dir) => ccat::list_files(&dir)
                .map_err(|e| format!("cannot list the raw input {}: {e}", dir.display()))?,
            None => Vec::new(),
        };
        let upstream: Vec<&ccat::Product> = task
            .depends_on
            .iter()
            .filter_map(|d| record.task(&d.id))
            .flat_map(|t| &t.products)
            .collect();
        let context = ccat::ManifestContext {
            run_id: ccat::manifest_run_id(record.created_at),
            step_name: &task.id,
            sub_group_key: self.plan.sub_group_key.as_deref().unwrap_or_default(),
            config: task.step_config.as_ref(),
            roles: &self.plan.input_roles,
            environment: &self.plan.environment,
        };
        let write = |dir: &Path, reader: ccat::Reader| {
            let manifest = ccat::manifest(&context, &input_files, &upstream, reader);
            let path = dir.join(ccat::MANIFEST_FILE);
            let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
            text.push('\n');
            std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        let Some(config) = folder("config") else {
            return Err("the step has no config folder (internal)".into());
        };
        write(&config, ccat::Reader::RunFolder)?;
        if !self.plan.environment.has_secrets() {
            return Ok(None);
        }
        let private = private_folder()?;
        write(private.path(), ccat::Reader::Container)?;
        Ok(Some(private))
    }

    /// Profile `ccat`: the container logs of task `i`'s ended `attempt` into the step's
    /// logs folder (the contract's /workflow/logs/); a warning in words when that fails.
    fn capture_logs(&self, i: usize, attempt: &Attempt) -> Option<String> {
        let task = &self.plan.tasks[i];
        task.workflow_output_dir.as_ref()?;
        let logs = task
            .folders
            .iter()
            .find(|f| f.mounted_path.as_deref() == Some(ccat::LOGS))?;
        let task_run = self.run_dir.join(attempt.run_dir.as_deref()?);
        let logs_dir = ccat::folder_on_host(logs, self.run_dir);
        ccat::capture_logs(&task_run, &logs_dir).err().map(|e| {
            format!(
                "the logs of attempt {} could not be put in {}: {e}",
                attempt.number,
                logs_dir.display()
            )
        })
    }

    /// Profile `ccat`: the products succeeded step `i` left, numbered on from the run's
    /// last product, into its record; returns the warnings about them.
    fn collect_products(&self, i: usize, record: &mut PipelineRunRecord) -> Vec<String> {
        let task = &self.plan.tasks[i];
        let Some(output_dir) = &task.workflow_output_dir else {
            return Vec::new();
        };
        let (dir, collected) = ccat::step_output_on_host(&task.id, output_dir, self.run_dir);
        let next_id = record
            .tasks
            .iter()
            .flat_map(|t| &t.products)
            .map(|p| p.data_product_id)
            .max()
            .unwrap_or(0)
            + 1;
        let (products, warnings) = match ccat::scan(&dir) {
            Ok(files) => ccat::products(&task.id, collected, &files, next_id),
            Err(e) => (
                Vec::new(),
                vec![format!(
                    "cannot read the products in {}: {e}",
                    dir.display()
                )],
            ),
        };
        record.tasks[i].products = products;
        record.tasks[i].warnings = warnings.clone();
        warnings
    }

    /// Starts the thread that runs task `i`'s attempts, retries included.
    fn spawn_task(
        &self,
        i: usize,
        first_number: u32,
        known_runs: &BTreeSet<String>,
        private_config: Option<&Path>,
        events: mpsc::Sender<Event>,
    ) -> std::thread::JoinHandle<()> {
        let task = self.plan.tasks[i].clone();
        let attempt_runner = AttemptRunner {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tapir")),
            task_file: self.run_dir.join(derived_task_file(&task.id)),
            runs_dir: self.run_dir.join(RUNS_SUBDIR),
            run_dir: self.run_dir.to_path_buf(),
            mode: self.args.mode,
            network: self.args.network.clone(),
            grace: self.args.grace,
            stdin_env: self.stdin_env.get(&task.id).cloned().unwrap_or_default(),
            ccat_args: ccat::step_run_args(
                &task.folders,
                task.workflow_output_dir.as_deref(),
                self.run_dir,
                private_config,
            ),
            known_runs: known_runs.clone(),
        };
        let shared = self.shared.clone();
        std::thread::spawn(move || {
            let (status, cancelled_when) =
                attempt_runner.run_all(i, &task, first_number, &shared, &events);
            let _ = events.send(Event::Done {
                task: i,
                status,
                cancelled_when,
            });
        })
    }

    /// The final record, the summary line, and the exit status.
    fn finish(&self, record: &mut PipelineRunRecord) -> ExitStatus {
        let count = |s: TaskStatus| record.tasks.iter().filter(|t| t.status == s).count();
        let cancelled = self.shared.is_cancelled();
        // A task that skipped itself (and what was skipped after it) did all it had to.
        let all_succeeded = record.tasks.iter().all(PipelineTaskRecord::ended_well);
        let (status, exit) = if cancelled {
            (PipelineStatus::Cancelled, ExitStatus::Cancelled)
        } else if all_succeeded {
            (PipelineStatus::Succeeded, ExitStatus::Success)
        } else {
            (PipelineStatus::Failed, ExitStatus::Failed)
        };
        let parts: Vec<String> = [
            TaskStatus::Succeeded,
            TaskStatus::Failed,
            TaskStatus::TimedOut,
            TaskStatus::Skipped,
            TaskStatus::Cancelled,
        ]
        .into_iter()
        .filter(|s| count(*s) > 0)
        .map(|s| format!("{} {}", count(s), s.as_str()))
        .collect();
        let message = parts.join(", ");
        record.status = status;
        record.message = Some(message.clone());
        record.exit_code = Some(exit.code());
        record.ended_at = Some(jiff::Timestamp::now());
        write(self.run_dir, record);
        output::stderr(&format!(
            "tapir: pipeline `{}` {}: {message}; record: {}\n",
            record.name,
            status.as_str(),
            self.run_dir.display()
        ));
        exit
    }
}

enum Readiness {
    Waiting,
    Ready,
    /// Skipped without running: why, in words, and the cause for the record.
    Blocked(String, SkipCause),
}

fn describe_status(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Failed => "failed",
        TaskStatus::TimedOut => "timed out",
        TaskStatus::Skipped => "was skipped",
        TaskStatus::Cancelled => "was cancelled",
        _ => "did not succeed",
    }
}

/// One line for an ended attempt: `failed (exit 3)`, `timed-out`, `cancelled`, …
fn describe_attempt(attempt: &Attempt) -> String {
    match attempt.status {
        Status::Failed | Status::OomKilled => match attempt.exit_code {
            Some(code) => format!("{} (exit {code})", attempt.status.as_str()),
            None => attempt.status.as_str().to_string(),
        },
        Status::EngineError => format!(
            "failed (did not start: {})",
            attempt
                .message
                .as_deref()
                .and_then(|m| m.lines().next())
                .unwrap_or("see its record")
        ),
        other => other.as_str().to_string(),
    }
}

/// Runs one task's attempts as child `tapir run`s.
struct AttemptRunner {
    program: PathBuf,
    task_file: PathBuf,
    runs_dir: PathBuf,
    run_dir: PathBuf,
    mode: Mode,
    network: Option<String>,
    grace: u32,
    /// `NAME=VALUE` lines, handed over on the child's stdin (`--env-file /dev/stdin`).
    stdin_env: String,
    /// Profile `ccat`: the step's /workflow folders as `--bind`, and its
    /// `--env WORKFLOW_OUTPUT_DIR=…` (empty otherwise).
    ccat_args: Vec<String>,
    known_runs: BTreeSet<String>,
}

impl AttemptRunner {
    /// Every attempt of the task, in the `--jobs` place the scheduler took for it; the
    /// place is given back when the task ends.
    fn run_all(
        self,
        i: usize,
        task: &PlannedTask,
        first_number: u32,
        shared: &Shared,
        events: &mpsc::Sender<Event>,
    ) -> (TaskStatus, Option<&'static str>) {
        let mut holds_slot = true;
        let end = self.run_attempts(i, task, first_number, shared, events, &mut holds_slot);
        if holds_slot {
            shared.give_slot();
        }
        end
    }

    fn run_attempts(
        mut self,
        i: usize,
        task: &PlannedTask,
        first_number: u32,
        shared: &Shared,
        events: &mpsc::Sender<Event>,
        holds_slot: &mut bool,
    ) -> (TaskStatus, Option<&'static str>) {
        let execution = task.execution;
        for retry in 0..=execution.max_retries {
            let number = first_number + retry;
            if retry > 0 {
                let delay = execution.backoff_before_retry(retry);
                // Given back before the scheduler hears of the wait, so it can use it.
                shared.give_slot();
                *holds_slot = false;
                let _ = events.send(Event::Retrying {
                    task: i,
                    retry,
                    of: execution.max_retries,
                    delay,
                });
                let until = Instant::now() + Duration::from_secs(delay);
                while Instant::now() < until && !shared.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                if !shared.take_slot_unless_cancelled() {
                    return (TaskStatus::Cancelled, Some("while waiting to retry"));
                }
                *holds_slot = true;
            }
            if shared.is_cancelled() {
                let when = if retry > 0 {
                    "while waiting to retry"
                } else {
                    "before it started"
                };
                return (TaskStatus::Cancelled, Some(when));
            }
            let started_at = jiff::Timestamp::now();
            let _ = events.send(Event::Started {
                task: i,
                number,
                retry,
                started_at,
            });
            let attempt = self.attempt(task, number, started_at, shared);
            let status = attempt.status;
            let skipped = status == Status::Failed && execution.skips(attempt.exit_code);
            let _ = events.send(Event::Ended {
                task: i,
                attempt: Box::new(attempt),
            });
            // The attempt's own end wins; a cancel only stops what would follow it.
            let last = retry == execution.max_retries;
            match status {
                Status::Succeeded => return (TaskStatus::Succeeded, None),
                // "Nothing to do" is an answer, not a failure: no retry (Kaapana's operator
                // raises AirflowSkipException, which Airflow does not retry).
                _ if skipped => return (TaskStatus::Skipped, None),
                Status::Cancelled => return (TaskStatus::Cancelled, None),
                Status::TimedOut if last => return (TaskStatus::TimedOut, None),
                _ if last => return (TaskStatus::Failed, None),
                _ if shared.is_cancelled() => {
                    return (TaskStatus::Cancelled, Some("instead of retrying"));
                }
                _ => {}
            }
        }
        (TaskStatus::Failed, None)
    }

    /// One `tapir run` of the derived task file, to its end.
    fn attempt(
        &mut self,
        task: &PlannedTask,
        number: u32,
        started_at: jiff::Timestamp,
        shared: &Shared,
    ) -> Attempt {
        let mut attempt = Attempt::started(number, started_at, Status::EngineError);
        // Kaapana's operator deletes a task's output folders before each attempt; the
        // first attempt of a task finds them empty anyway (a `--resume`d one does not).
        if number > 1
            && task.execution.clean_outputs_before_retry
            && let Err(message) = clean_outputs(task, &self.run_dir)
        {
            attempt.message = Some(message);
            attempt.ended_at = Some(jiff::Timestamp::now());
            return attempt;
        }
        let log_path = self.runs_dir.join(format!("{}.tapir.log", task.id));
        let log = store::run_file_options()
            .create(true)
            .append(true)
            .open(&log_path);
        // Where this attempt's messages begin in the task's log (attempts append to it).
        let log_start = log
            .as_ref()
            .ok()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len());
        let mut command = Command::new(&self.program);
        command
            .arg("run")
            .arg(&self.task_file)
            .arg("--runs-dir")
            .arg(&self.runs_dir)
            .args(["--mode", self.mode.name()])
            .args(["--grace", &self.grace.to_string()])
            // The child stops its container if this process dies without passing a
            // cancel on (SIGKILL): src/execute/parent_watch.rs.
            .args(["--watch-parent", &std::process::id().to_string()])
            .arg("--color=never");
        if let Some(network) = &self.network {
            command.args(["--network", network]);
        }
        if let Some(file) = &task.runnable.container_file {
            command.arg("--container-file").arg(absolute(file));
        }
        if let Some(seconds) = task.execution.max_exec_time {
            command.args(["--timeout", &seconds.to_string()]);
        }
        if !self.stdin_env.is_empty() {
            command.args(["--env-file", "/dev/stdin"]);
        }
        command.args(&self.ccat_args);
        // Each run gets a fresh id (a test's fixed id would collide), and its own process
        // group: a Ctrl-C on the terminal reaches only us, and we pass it on once.
        command
            .env_remove(store::RUN_ID_OVERRIDE_ENV)
            .env_remove("TAPIR_RUNS_DIR")
            .stdin(if self.stdin_env.is_empty() {
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
        let spawned = {
            let mut children = shared
                .children
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if shared.is_cancelled() {
                attempt.status = Status::Cancelled;
                attempt.message = Some("not started: the pipeline was cancelled".into());
                attempt.ended_at = Some(jiff::Timestamp::now());
                return attempt;
            }
            let spawned = command.spawn();
            if let Ok(child) = &spawned {
                children.insert(task.id.clone(), child.id());
            }
            spawned
        };
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                attempt.message = Some(format!("cannot run {}: {e}", self.program.display()));
                attempt.ended_at = Some(jiff::Timestamp::now());
                return attempt;
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(self.stdin_env.as_bytes());
        }
        let exit = child.wait();
        shared
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&task.id);
        attempt.ended_at = Some(jiff::Timestamp::now());
        attempt.tapir_exit_code = exit.ok().and_then(|s| s.code());
        match unlinked_task_run(&self.runs_dir, &self.task_file, &self.known_runs) {
            Some((dir, run)) => {
                self.known_runs.insert(run.id.clone());
                link_task_run(&mut attempt, &dir, run, &self.run_dir);
                if attempt.status == Status::Running {
                    // The child ended without settling its record (killed early).
                    attempt.status = if shared.is_cancelled() {
                        Status::Cancelled
                    } else {
                        Status::EngineError
                    };
                }
            }
            None => {
                attempt.status = if shared.is_cancelled() {
                    Status::Cancelled
                } else {
                    Status::EngineError
                };
                // `tapir run` refused it before anything started (it then makes no run
                // folder): its error, in its own words, is the attempt's message.
                let refusal = log_start.and_then(|start| refusal_in_log(&log_path, start));
                attempt.message = Some(match refusal {
                    Some(message) if attempt.tapir_exit_code == Some(125) => message,
                    _ => format!(
                        "tapir run ended ({}) before it made a run folder; see {}",
                        attempt
                            .tapir_exit_code
                            .map_or("killed".to_string(), |c| format!("exit {c}")),
                        log_path.display()
                    ),
                });
            }
        }
        attempt
    }
}

/// Empties the task's own managed output folders (profile `kaapana`'s channel folders;
/// a `ccat` step's folders are shared or are its logs, and are left alone). The folders
/// stay: they are bind sources. Entries are removed without following symbolic links.
fn clean_outputs(task: &PlannedTask, run_dir: &Path) -> std::result::Result<(), String> {
    let outputs = task.folders.iter().filter(|f| {
        f.managed && f.direction == FolderDirection::Output && f.mounted_path.is_none()
    });
    for folder in outputs {
        let dir = run_dir.join(&folder.path);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(format!(
                    "cannot empty {} before the retry: {e}",
                    dir.display()
                ));
            }
        };
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot empty {} before the retry: {e}", dir.display()))?
                .path();
            let is_dir = path.symlink_metadata().is_ok_and(|m| m.is_dir());
            let removed = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| {
                format!(
                    "cannot remove {} before the retry (clean_outputs_before_retry): {e}",
                    path.display()
                )
            })?;
        }
    }
    Ok(())
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

/// The task run an attempt made: the newest run folder of `task_file` in `runs_dir` that
/// no attempt is linked to yet.
fn unlinked_task_run(
    runs_dir: &Path,
    task_file: &Path,
    known_runs: &BTreeSet<String>,
) -> Option<(PathBuf, RunRecord)> {
    let wanted = task_file.display().to_string();
    store::list_runs(runs_dir)
        .ok()?
        .into_iter()
        .filter(|dir| store::run_id_of(dir).is_some_and(|id| !known_runs.contains(id)))
        .filter_map(|dir| RunRecord::load(&dir).ok().map(|r| (dir, r)))
        .filter(|(_, r)| r.task_file.path == wanted)
        .max_by(|(_, a), (_, b)| a.created_at.cmp(&b.created_at))
}

/// A new private folder for a manifest with secrets (see `Scheduler::write_manifest`).
fn private_folder() -> std::result::Result<tempfile::TempDir, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("tapir-manifest-")
        .tempdir_in(&base)
        .map_err(|e| format!("cannot create a private folder in {}: {e}", base.display()))?;
    // Before anything is written into it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make {} private: {e}", dir.path().display()))?;
    Ok(dir)
}

/// Fills `attempt` from the record of the task run `dir` it made.
fn link_task_run(attempt: &mut Attempt, dir: &Path, run: RunRecord, pipeline_run_dir: &Path) {
    attempt.run_dir = Some(
        dir.strip_prefix(pipeline_run_dir)
            .unwrap_or(dir)
            .display()
            .to_string(),
    );
    attempt.run_id = Some(run.id);
    attempt.status = run.status;
    attempt.exit_code = run.exit_code;
    attempt.message = run.message;
    attempt.argv = run.argv;
    attempt.image = run.image;
}

/// A resumed record's attempts still `running`: their pipeline tapir was killed while
/// they ran, and their task runs have ended since (cancelled by their parent watch, or
/// finished just before). Each is linked to the task run it made, with its final status,
/// or says that it left none. A task whose orphaned attempt succeeded is adopted: the
/// task succeeded, so `--resume` does not run it again. Returns the adopted tasks' ids.
fn settle_orphaned_attempts(record: &mut PipelineRunRecord, run_dir: &Path) -> Vec<String> {
    let runs_dir = run_dir.join(RUNS_SUBDIR);
    let mut known_runs = record.linked_run_ids();
    let mut adopted = Vec::new();
    for task in &mut record.tasks {
        let task_file = run_dir.join(derived_task_file(&task.id));
        for attempt in task
            .attempts
            .iter_mut()
            .filter(|a| a.status == Status::Running && a.run_id.is_none())
        {
            match unlinked_task_run(&runs_dir, &task_file, &known_runs) {
                Some((dir, run)) => {
                    known_runs.insert(run.id.clone());
                    attempt.ended_at = run.ended_at.or(Some(jiff::Timestamp::now()));
                    link_task_run(attempt, &dir, run, run_dir);
                    if attempt.status == Status::Running {
                        // Not running (checked before): killed before it settled.
                        attempt.status = Status::EngineError;
                        attempt.message = Some("its task run is lost (killed)".into());
                    }
                }
                None => {
                    attempt.status = Status::EngineError;
                    attempt.message =
                        Some("the pipeline run ended before this attempt made a task run".into());
                    attempt.ended_at = Some(jiff::Timestamp::now());
                }
            }
        }
        // Only the last attempt can be the orphan that succeeded (an earlier one ended
        // in this record, and a success ends a task's attempts).
        if task.status != TaskStatus::Succeeded
            && task
                .attempts
                .last()
                .is_some_and(|a| a.status == Status::Succeeded)
        {
            task.status = TaskStatus::Succeeded;
            task.message = Some(
                "succeeded (its task run ended after the pipeline tapir was killed; adopted on --resume)"
                    .into(),
            );
            adopted.push(task.id.clone());
        }
    }
    adopted
}

/// Forwards SIGINT/SIGTERM/SIGHUP to the running children (as SIGTERM) and cancels the
/// pipeline, like `tapir run` does for its one container (src/execute.rs).
struct SignalForwarder {
    handle: Option<signal_hook::iterator::Handle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalForwarder {
    fn install(shared: &Arc<Shared>) -> Self {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            output::stderr("warning: Ctrl-C will not stop the pipeline's tasks cleanly\n");
            return Self {
                handle: None,
                thread: None,
            };
        };
        let handle = signals.handle();
        let shared = shared.clone();
        let thread = std::thread::spawn(move || {
            for _ in signals.forever() {
                if !shared.is_cancelled() {
                    output::stderr(
                        "\ntapir: cancelling the pipeline: stopping the running tasks (Ctrl-C again kills them now)\n",
                    );
                }
                shared.cancel();
            }
        });
        Self {
            handle: Some(handle),
            thread: Some(thread),
        }
    }

    fn close(self) {
        if let Some(handle) = self.handle {
            handle.close();
        }
        if let Some(thread) = self.thread {
            let _ = thread.join();
        }
    }
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
