//! `tapir pipeline run PIPELINE.json`: check the whole pipeline, then run its tasks in
//! dependency order, independent ones in parallel (`--jobs`), each attempt as a child
//! `tapir run` of its derived task file, into one pipeline run folder whose record links
//! the task runs (docs/DESIGN.md decision 10).
//!
//! Each attempt is a separate process of this same binary: it goes through exactly the
//! path of `tapir run` (resolve, execute, record), gets its own task run record, and
//! handles its own signals (a SIGTERM stops its container and records `cancelled`). This
//! module only schedules, forwards signals, and keeps the pipeline record.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::absolute;
use super::pipeline::{human as findings_text, human_findings};
use crate::backend::lookup::PULL_FIX;
use crate::cli::{ColorChoice, PipelineRunArgs, ProfileArg, UserChoice};
use crate::error::{Error, ExitStatus, Result};
use crate::executor::ExecutorKind;
use crate::executor::local::LocalExecutor;
use crate::executor::slurm::pipeline::SlurmExecutor;
use crate::executor::slurm::settings::SlurmSettings;
use crate::executor::{AttemptRequest, Event, Executor, Reattached, RunRequest, link_task_run};
use crate::output::{self, Printer, TaskProgress};
use crate::pipeline::model::{Profile, RunUser};
use crate::pipeline::plan::{self, FolderDirection, PipelinePlan, PlannedRunOptions, PlannedTask};
use crate::pipeline::record::{
    self as precord, Attempt, Journal, PIPELINE_RUN_DIR_PREFIX, PipelineRunRecord, PipelineStatus,
    PipelineTaskRecord, RUNS_SUBDIR, SkipCause, TaskFolder, TaskStatus,
};
use crate::pipeline::schedule::{Action, Dependency, End, Schedule, TaskSpec, Why};
use crate::pipeline::{archive, ccat, derive, values};
use crate::record::{self, Status, TaskFile, store};
use crate::resolve::env_input::EnvOverride;
use crate::resolve::plan::PlannedBind;

/// A task's Kubernetes `config` beyond its labels does not reach the Pods of `pipeline
/// run --executor k8s` (the derived task file keeps what the model keeps, and a literal
/// registry password must not be copied into the run folder): said for each task, never
/// dropped silently. `tapir export k8s` keeps them all.
fn warn_uncarried_k8s_config(pipeline_file: &std::path::Path, plan: &plan::PipelinePlan) {
    let inline = super::k8s::inline_task_configs(pipeline_file);
    for planned in &plan.tasks {
        let Some(config) = super::k8s::task_config(planned, &inline) else {
            continue;
        };
        let left: Vec<&str> = config
            .as_object()
            .map(|keys| {
                keys.keys()
                    .map(String::as_str)
                    .filter(|k| !matches!(*k, "labels" | "type"))
                    .collect()
            })
            .unwrap_or_default();
        if !left.is_empty() {
            output::stderr(&format!(
                "warning: task `{}`: config {} {} not carried into its Pod by `pipeline run --executor k8s`\n  fix: pass --namespace for the namespace; `tapir export k8s {}` writes Pods with every key\n",
                planned.id,
                left.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if left.len() == 1 { "is" } else { "are" },
                pipeline_file.display()
            ));
        }
    }
}

pub(crate) fn run(args: &PipelineRunArgs, color: ColorChoice) -> Result<ExitStatus> {
    if args.executor != ExecutorKind::K8s && (args.context.is_some() || args.namespace.is_some()) {
        return Err(Error::Usage(
            "--context and --namespace are for --executor k8s\n  fix: add --executor k8s, or leave them out".into(),
        ));
    }
    // The Slurm site settings are read (and a broken file refused) before anything.
    let slurm = match args.executor {
        ExecutorKind::Slurm => {
            Some(SlurmSettings::resolve(args.slurm.flags()).map_err(Error::Usage)?)
        }
        _ => None,
    };
    let err = Printer::for_stderr(color);
    // Everything is checked before anything is created.
    let checked = plan::check_with_params(
        &args.pipeline,
        args.conf.as_deref(),
        args.profile.map(ProfileArg::profile),
        Some(&args.param),
    )?;
    let Some(plan) = checked.plan.as_ref().filter(|_| checked.is_valid()) else {
        output::stderr(&findings_text(&checked, err));
        output::stderr("tapir: the pipeline is invalid; nothing was started\n");
        return Ok(ExitStatus::NotStarted);
    };
    // Warnings do not stop the run, but are said first (as `tapir run` does).
    output::stderr(&human_findings(&checked, &err));
    if args.executor == ExecutorKind::K8s {
        warn_uncarried_k8s_config(&args.pipeline, plan);
    }
    // Apptainer runs a built image from the local Docker engine (converted to a SIF
    // once, like any `docker-daemon:` image).
    let apptainer_plan;
    let plan = if args.mode == crate::cli::Mode::Apptainer && !plan.builds.is_empty() {
        let mut converted = plan.clone();
        for task in converted
            .tasks
            .iter_mut()
            .filter(|t| t.image_from.is_some())
        {
            task.image = format!("docker-daemon:{}", task.image);
            task.runnable.task.image = task.image.clone();
        }
        apptainer_plan = converted;
        &apptainer_plan
    } else {
        plan
    };
    let stdin_env: BTreeMap<String, Vec<derive::StdinVar>> = plan
        .tasks
        .iter()
        .map(|task| (task.id.clone(), derive::stdin_env(task)))
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
        Some(resume) => resume_record(resume, &args.runs_dir, &pipeline_sha, slurm.as_ref())?,
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
    record.params = plan.params.clone();
    record.status = PipelineStatus::Running;
    record.message = None;
    record.exit_code = None;
    record.ended_at = None;
    record.pid = Some(std::process::id());
    record.host = Some(record::current_host());
    merge_plan(&mut record, plan);
    if args.resume.is_some() {
        prepare_folders(plan, &run_dir)?;
    } else {
        // A runs folder that cannot take the first files refuses the pipeline (no folder).
        open_new_run_dir(args, plan, &run_dir, &record)?;
    }
    // The whole record first (on `--resume`: with the old journal folded in).
    let mut journal = Journal::new(&run_dir);
    report_write(&run_dir, journal.compact(&record));
    output::stderr(&format!(
        "tapir: pipeline `{}`: {} in {} (up to {jobs} at a time); record: {}\n",
        plan.name,
        output::plural(plan.tasks.len(), "task"),
        output::plural(plan.levels.len(), "level"),
        run_dir.display()
    ));

    let driver = Driver {
        args,
        plan,
        run_dir: &run_dir,
        jobs,
        stdin_env,
        adopted,
        progress: TaskProgress::start(),
        private_configs: BTreeMap::new(),
        upstream_values: BTreeMap::new(),
        journal,
        slurm,
    };
    let status = driver.run(&mut record);
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
        .and_then(|()| {
            Journal::new(run_dir)
                .compact(record)
                .map_err(|e| e.to_string())
        });
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
        journal_seq: 0,
        archives: Vec::new(),
        params: BTreeMap::new(),
        builds: Vec::new(),
        cleaned: Vec::new(),
    };
    Ok((dir, record))
}

/// The record of the pipeline run to continue: `resume` is its folder, or its folder name
/// or id under `--runs-dir`. Refused when the pipeline file changed or it still runs.
fn resume_record(
    resume: &Path,
    runs_dir: &Path,
    pipeline_sha: &str,
    slurm: Option<&SlurmSettings>,
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
    // (A Slurm job is not this machine's: `reattach` waits for it instead.)
    if let Some(still) = task_runs.iter().find(|run| {
        record::RunSummary::load(run)
            .is_ok_and(|r| r.status == Status::Running && r.executor.is_none() && !r.is_lost())
    }) {
        return Err(Error::Usage(format!(
            "--resume {}: its task run {} is still running\n  fix: wait for it to end (tapir wait --runs-dir {} {}), or stop it",
            dir.display(),
            still.display(),
            dir.join(RUNS_SUBDIR).display(),
            store::run_id_of(still).unwrap_or_default()
        )));
    }
    // Attempts are re-attached by the executor they ran on (`--executor`): a Slurm job
    // still queued or running is waited for, not submitted again.
    let executor: Box<dyn Executor> = match slurm {
        Some(settings) => Box::new(SlurmExecutor::new(
            &dir,
            settings.clone(),
            mpsc::channel().0,
        )),
        None => Box::new(LocalExecutor::new(&dir, mpsc::channel().0)),
    };
    let adopted = settle_orphaned_attempts(&mut record, &dir, executor.as_ref()).map_err(|still| {
        Error::Usage(format!(
            "--resume {}: its task run {} is still running\n  fix: wait for it to end (tapir wait --runs-dir {} {}), or stop it",
            dir.display(),
            still.display(),
            dir.join(RUNS_SUBDIR).display(),
            store::run_id_of(&still).unwrap_or_default()
        ))
    })?;
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

/// `tapir run`'s options for an attempt: the pipeline file's `run_options` (the task's
/// over the pipeline's, merged in the plan), with the flags given to `pipeline run` over
/// them — they are what the user asked for this invocation (docs/DESIGN.md decision 10).
/// `--pull` and `--keep` can only turn an option on; a `--bind` replaces the file's bind
/// at the same container path, and the others add to them.
fn apply_run_options(run: &mut RunRequest, options: &PlannedRunOptions, args: &PipelineRunArgs) {
    run.network = args.network.clone().or_else(|| options.network.clone());
    run.grace = args.grace.unwrap_or(options.grace);
    run.pull = args.pull || options.pull;
    run.user = args.user.unwrap_or(match options.user {
        RunUser::Invoker => UserChoice::Invoker,
        RunUser::Image => UserChoice::Image,
    });
    run.keep = args.keep || options.keep;
    run.entrypoint = options.entrypoint.clone();
    run.engine.shm_size_bytes = options.shm_size_bytes;
    run.engine.gpus = options.gpus.clone();
    run.engine.engine_args = options.engine_args.clone();
    run.binds.extend(
        options
            .binds
            .iter()
            .map(|b| PlannedBind {
                host_path: absolute(&b.bind.host_path),
                ..b.bind.clone()
            })
            .filter(|b| {
                !args
                    .bind
                    .iter()
                    .any(|given| given.container_path == b.container_path)
            }),
    );
    run.binds.extend(args.bind.iter().cloned());
}

/// A task run's message as the pipeline's user must read it: `run`'s fix "pass --pull"
/// names the pipeline file's key and the `pipeline run` flag instead.
fn in_pipeline_words(message: &str, task_id: &str) -> String {
    message.replace(
        PULL_FIX,
        &format!(
            "set `\"run_options\": {{\"pull\": true}}` on task `{task_id}` (or on the whole pipeline) in the pipeline file, or pass `pipeline run --pull`"
        ),
    )
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

fn report_write(run_dir: &Path, written: std::result::Result<(), store::RecordError>) {
    if let Err(e) = written {
        output::stderr(&format!(
            "error: could not write the pipeline record in {}: {e}\n",
            run_dir.display()
        ));
    }
}

/// Carries out the scheduler's actions (src/pipeline/schedule.rs) through an executor,
/// and keeps the pipeline record and the progress lines.
struct Driver<'a> {
    args: &'a PipelineRunArgs,
    plan: &'a PipelinePlan,
    run_dir: &'a Path,
    jobs: usize,
    /// Per task: `NAME=VALUE` lines of its secret and conf values, handed to each
    /// attempt without touching the disk.
    stdin_env: BTreeMap<String, Vec<derive::StdinVar>>,
    /// Tasks `--resume` adopted (their orphaned attempt succeeded): said once, and a
    /// CCAT step's products and logs are collected as after any success.
    adopted: Vec<String>,
    progress: TaskProgress,
    /// Profile `ccat`: the private folders holding the manifests with secrets, by task,
    /// removed when the task ends.
    private_configs: BTreeMap<usize, tempfile::TempDir>,
    /// Keeps the pipeline record at a cost per event that does not grow with the tasks.
    journal: Journal,
    /// `--executor slurm`: the site settings (`None`: attempts run locally).
    slurm: Option<SlurmSettings>,
    /// Per task: its `value_from` values read from upstream outputs files when it first
    /// started (name, value, where from), handed to each attempt on standard input.
    upstream_values: BTreeMap<usize, Vec<(String, String, String)>>,
}

impl Driver<'_> {
    fn run(mut self, record: &mut PipelineRunRecord) -> ExitStatus {
        let (events, inbox) = mpsc::channel::<Event>();
        let signals = SignalForwarder::install(events.clone());
        let mut executor: Box<dyn Executor> = match &self.slurm {
            Some(settings) => Box::new(SlurmExecutor::new(self.run_dir, settings.clone(), events)),
            None => Box::new(LocalExecutor::new(self.run_dir, events)),
        };
        if let Some(refused) = self.run_builds(record, &inbox) {
            executor.finish();
            self.progress.finish();
            signals.close();
            return self.finish(record, refused);
        }
        self.settle_adopted(record);
        // Tasks whose record changed since the journal was last written.
        let mut changed: BTreeSet<usize> = self
            .adopted
            .iter()
            .filter_map(|id| record.tasks.iter().position(|t| &t.id == id))
            .collect();
        let mut schedule = Schedule::new(self.task_specs(record), self.jobs);
        let mut actions: VecDeque<Action> = schedule.begin().into();
        // When each task waiting to retry may start again.
        let mut retry_timers: BTreeSet<(Instant, usize)> = BTreeSet::new();
        loop {
            while let Some(action) = actions.pop_front() {
                match action {
                    Action::Start {
                        task,
                        number,
                        retry,
                    } => {
                        changed.insert(task);
                        let more = self.start(
                            task,
                            number,
                            retry,
                            record,
                            executor.as_mut(),
                            &mut schedule,
                        );
                        actions.extend(more);
                    }
                    Action::RetryLater {
                        task,
                        retry,
                        of,
                        delay,
                    } => {
                        let id = &self.plan.tasks[task].id;
                        let why = record.tasks[task]
                            .attempts
                            .last()
                            .map(describe_attempt)
                            .unwrap_or_default();
                        self.progress
                            .event(id, &format!("{why}; retry {retry}/{of} in {delay}s"));
                        self.progress
                            .running(id, &format!("waiting {delay}s to retry"));
                        retry_timers.insert((Instant::now() + Duration::from_secs(delay), task));
                    }
                    Action::Stop { task } => executor.cancel(task),
                    Action::Settled { task, end } => {
                        changed.insert(task);
                        self.settled(task, end, record);
                    }
                }
            }
            if !changed.is_empty() {
                let appended = self.journal.append(record, std::mem::take(&mut changed));
                report_write(self.run_dir, appended);
            }
            if schedule.is_over() {
                break;
            }
            let now = Instant::now();
            let wait = retry_timers
                .first()
                .map_or(Duration::from_secs(3600), |(due, _)| {
                    due.saturating_duration_since(now)
                });
            match inbox.recv_timeout(wait) {
                Ok(Event::Ended { task, attempt }) => {
                    changed.insert(task);
                    actions.extend(self.ended(task, *attempt, record, &mut schedule));
                }
                Ok(Event::Interrupted) => actions.extend(schedule.cancel()),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            while let Some(&(due, task)) = retry_timers.first()
                && due <= now
            {
                retry_timers.pop_first();
                actions.extend(schedule.retry_due(task));
            }
        }
        executor.finish();
        self.progress.finish();
        signals.close();
        self.finish(record, schedule.is_cancelled())
    }

    /// What the scheduler needs of each task, in plan order (the record's order).
    fn task_specs(&self, record: &PipelineRunRecord) -> Vec<TaskSpec> {
        let index: BTreeMap<&str, usize> = self
            .plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        self.plan
            .tasks
            .iter()
            .zip(&record.tasks)
            .map(|(task, kept)| TaskSpec {
                id: task.id.clone(),
                depends_on: task
                    .depends_on
                    .iter()
                    .filter_map(|d| {
                        index.get(d.id.as_str()).map(|&i| Dependency {
                            task: i,
                            can_fail: d.can_fail,
                        })
                    })
                    .collect(),
                execution: task.execution,
                // A succeeded task, or one that skipped itself ("nothing to do"), is not
                // run again by `--resume` (see `merge_plan`).
                kept: (kept.status != TaskStatus::Pending)
                    .then_some((kept.status, kept.skipped_by)),
                attempts_before: kept.attempts.len() as u32,
            })
            .collect()
    }

    /// Says the tasks `--resume` adopted, and collects a CCAT step's products and logs.
    fn settle_adopted(&mut self, record: &mut PipelineRunRecord) {
        for id in &self.adopted {
            let Some(i) = record.tasks.iter().position(|t| &t.id == id) else {
                continue;
            };
            self.progress.event(
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
                self.progress.event(id, &format!("warning: {warning}"));
                if !record.tasks[i].warnings.contains(&warning) {
                    record.tasks[i].warnings.push(warning);
                }
            }
        }
    }

    /// Starts attempt `number` of task `task` (`retry` 0: its first in this invocation).
    /// Returns what the scheduler answers when it could not start.
    fn start(
        &mut self,
        task: usize,
        number: u32,
        retry: u32,
        record: &mut PipelineRunRecord,
        executor: &mut dyn Executor,
        schedule: &mut Schedule,
    ) -> Vec<Action> {
        let planned = &self.plan.tasks[task];
        if retry == 0 {
            match self.write_manifest(task, record) {
                Ok(Some(private)) => {
                    self.private_configs.insert(task, private);
                }
                Ok(None) => {}
                Err(message) => return schedule.refused(task, message),
            }
            match self.read_upstream_values(task) {
                Ok(values) => {
                    self.upstream_values.insert(task, values);
                }
                Err(message) => return schedule.refused(task, message),
            }
        }
        let entry = &mut record.tasks[task];
        entry.status = TaskStatus::Running;
        entry.message = None;
        entry.skipped_by = None;
        let what = if retry == 0 {
            "started".to_string()
        } else {
            format!("started (retry {retry}/{})", planned.execution.max_retries)
        };
        self.progress.event(&planned.id, &what);
        self.progress.running(&planned.id, "running");
        let started_at = jiff::Timestamp::now();
        let request = self.request(task, number);
        let mut attempt = Attempt::started(number, started_at, Status::Running);
        let run_dir = request.run_dir();
        attempt.run_id = Some(request.run.run_id.clone());
        attempt.run_dir = Some(
            run_dir
                .strip_prefix(self.run_dir)
                .unwrap_or(&run_dir)
                .display()
                .to_string(),
        );
        record.tasks[task].attempts.push(attempt);
        // Kaapana's operator deletes a task's output folders before each attempt; the
        // first attempt of a task finds them empty anyway (a `--resume`d one does not).
        let cleaned = if number > 1 && planned.execution.clean_outputs_before_retry {
            clean_outputs(planned, self.run_dir)
        } else {
            Ok(())
        };
        // What an earlier attempt wrote for later tasks is not this attempt's word.
        let cleaned = cleaned.and_then(|()| {
            if planned.publishes_values {
                values::reset_outputs(self.run_dir, &planned.id).map(|_| ())
            } else {
                Ok(())
            }
        });
        let not_started = match cleaned {
            Ok(()) => executor.start(request).err(),
            Err(message) => Some(message),
        };
        match not_started {
            None => Vec::new(),
            Some(message) => {
                let mut attempt = Attempt::started(number, started_at, Status::EngineError);
                attempt.message = Some(message);
                attempt.ended_at = Some(jiff::Timestamp::now());
                self.ended(task, attempt, record, schedule)
            }
        }
    }

    /// The `tapir run` attempt `number` of task `task` is, with its run id assigned now.
    fn request(&self, task: usize, number: u32) -> AttemptRequest {
        let planned = &self.plan.tasks[task];
        let runs_dir = self.run_dir.join(RUNS_SUBDIR);
        let mut run = RunRequest::new(
            &self.run_dir.join(derived_task_file(&planned.id)),
            &runs_dir,
            store::fresh_run_id(),
            self.args.mode,
        );
        run.timeout = planned.execution.max_exec_time;
        // `--executor k8s`: each attempt is a `tapir run --executor k8s` child on this
        // machine that creates, follows and deletes its Pod (the local executor runs it).
        if self.args.executor == ExecutorKind::K8s {
            run.kubernetes = Some(crate::executor::request::KubernetesPlace {
                context: self.args.context.clone(),
                namespace: self.args.namespace.clone(),
            });
        }
        run.container_file = planned.runnable.container_file.as_deref().map(absolute);
        // The child stops its container if this process dies without passing a cancel
        // on (SIGKILL): src/execute/parent_watch.rs.
        run.watch_parent = Some(std::process::id());
        let mut private_env = String::new();
        let from_values = &planned.runnable.value_from;
        for var in self
            .stdin_env
            .get(&planned.id)
            .into_iter()
            .flatten()
            .filter(|var| !from_values.iter().any(|v| v.name == var.name))
        {
            private_env.push_str(&format!("{}={}\n", var.name, var.value));
            // The file on stdin is only how the value travels: the record names where
            // it comes from.
            let source = match var.origin {
                derive::StdinOrigin::Task => "task".to_string(),
                derive::StdinOrigin::Pipeline => "pipeline env".to_string(),
                derive::StdinOrigin::Conf => format!(
                    "conf {} task_form.{}",
                    self.args
                        .conf
                        .as_deref()
                        .map(absolute)
                        .unwrap_or_default()
                        .display(),
                    planned.id
                ),
            };
            run.env_sources.push(EnvOverride {
                name: var.name.clone(),
                value: source,
            });
        }
        // `value_from`: the plan's values, then what upstream tasks wrote.
        let known = from_values.iter().filter_map(|v| {
            v.source
                .known()
                .map(|value| (v.name.clone(), value.to_string(), v.source.describe()))
        });
        let read = self
            .upstream_values
            .get(&task)
            .into_iter()
            .flatten()
            .cloned();
        for (name, value, source) in known.chain(read) {
            private_env.push_str(&format!("{name}={value}\n"));
            run.env_sources.push(EnvOverride {
                name,
                value: source,
            });
        }
        if !private_env.is_empty() {
            run.env_files.push(PathBuf::from("/dev/stdin"));
        }
        // Profile `ccat`: the step's /workflow folders and its WORKFLOW_OUTPUT_DIR.
        let (binds, env) = ccat::step_run_options(
            &planned.folders,
            planned.workflow_output_dir.as_deref(),
            self.run_dir,
            self.private_configs.get(&task).map(tempfile::TempDir::path),
        );
        run.binds = binds;
        apply_run_options(&mut run, &planned.run_options, self.args);
        run.env = env;
        if planned.publishes_values {
            run.binds.push(PlannedBind {
                host_path: absolute(&values::outputs_dir(self.run_dir, &planned.id)),
                container_path: values::OUTPUTS_MOUNT.to_string(),
                read_only: false,
            });
            run.env.push(EnvOverride {
                name: values::OUTPUTS_FILE_VAR.to_string(),
                value: values::outputs_file_in_container(),
            });
        }
        AttemptRequest {
            task,
            number,
            run,
            private_env,
            log: runs_dir.join(format!("{}.tapir.log", planned.id)),
        }
    }

    /// The values task `task` takes from upstream tasks' outputs files (`value_from:
    /// {task_output: …}`), with where each comes from. `Err`: an upstream did not
    /// succeed, did not write the value, or wrote a file tapir will not read.
    fn read_upstream_values(
        &self,
        task: usize,
    ) -> std::result::Result<Vec<(String, String, String)>, String> {
        let planned = &self.plan.tasks[task];
        let mut values = Vec::new();
        let mut files: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
        for from in &planned.runnable.value_from {
            let values::ValueSource::TaskOutput { task_id, output_id } = &from.source else {
                continue;
            };
            if !files.contains_key(task_id.as_str()) {
                files.insert(task_id, values::read_outputs(self.run_dir, task_id)?);
            }
            let Some(value) = files.get(task_id.as_str()).and_then(|f| f.get(output_id)) else {
                return Err(format!(
                    "`{}` takes `{output_id}` from task `{task_id}`, which did not write it to its $TAPIR_OUTPUTS_FILE (write `{output_id}=VALUE` lines there: `echo \"{output_id}=…\" >> \"$TAPIR_OUTPUTS_FILE\"`)",
                    from.name
                ));
            };
            values.push((from.name.clone(), value.clone(), from.source.describe()));
        }
        Ok(values)
    }

    /// Task `task`'s attempt ended: into the record, and to the scheduler.
    fn ended(
        &mut self,
        task: usize,
        attempt: Attempt,
        record: &mut PipelineRunRecord,
        schedule: &mut Schedule,
    ) -> Vec<Action> {
        let mut attempt = attempt;
        if let Some(message) = attempt.message.as_mut() {
            *message = in_pipeline_words(message, &self.plan.tasks[task].id);
        }
        if let Some(warning) = self.capture_logs(task, &attempt) {
            self.progress
                .event(&record.tasks[task].id, &format!("warning: {warning}"));
            record.tasks[task].warnings.push(warning);
        }
        let (status, exit_code) = (attempt.status, attempt.exit_code);
        let entry = &mut record.tasks[task];
        match entry
            .attempts
            .iter_mut()
            .find(|a| a.number == attempt.number)
        {
            Some(slot) => *slot = attempt,
            None => entry.attempts.push(attempt),
        }
        schedule.attempt_ended(task, status, exit_code)
    }

    /// Task `task` ended for good: its status, message and progress line.
    fn settled(&mut self, task: usize, end: End, record: &mut PipelineRunRecord) {
        // Its attempts are over: the private manifest goes.
        self.private_configs.remove(&task);
        let entry = &mut record.tasks[task];
        let id = entry.id.clone();
        entry.status = end.status;
        entry.skipped_by = end.skipped_by;
        let last = entry.attempts.last();
        let (message, line) = match end.why {
            Why::Dependency(reason) => {
                (format!("not run: {reason}"), format!("skipped ({reason})"))
            }
            Why::NotStarted => (
                "not started: the pipeline was cancelled".to_string(),
                "cancelled (not started)".to_string(),
            ),
            Why::Refused(message) => (message.clone(), format!("failed ({message})")),
            Why::SkipExitCode(code) => (
                format!("skipped itself (exit {code}: its skip_exit_code)"),
                format!("skipped (exit {code}: its skip_exit_code)"),
            ),
            // Not the last attempt's words: it did not end by the cancel (it failed
            // before, or belongs to an earlier `--resume`d run).
            Why::Cancelled(when) => (format!("cancelled {when}"), format!("cancelled ({when})")),
            Why::LastAttempt => {
                let line = match (end.status, last) {
                    (TaskStatus::Succeeded, _) => "succeeded".to_string(),
                    (_, Some(a)) => describe_attempt(a),
                    (s, None) => s.as_str().to_string(),
                };
                let message = last.and_then(|a| a.message.clone());
                entry.message = message;
                self.progress.done(&id);
                self.progress.event(&id, &line);
                if end.status == TaskStatus::Succeeded {
                    for warning in self.collect_products(task, record) {
                        self.progress.event(&id, &format!("warning: {warning}"));
                    }
                }
                return;
            }
        };
        entry.message = Some(message);
        self.progress.done(&id);
        self.progress.event(&id, &line);
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

    /// The final record, the summary line, and the exit status.
    fn finish(&mut self, record: &mut PipelineRunRecord, cancelled: bool) -> ExitStatus {
        // A task that skipped itself (and what was skipped after it) did all it had to.
        let all_succeeded = record.tasks.iter().all(PipelineTaskRecord::ended_well);
        let (mut status, mut exit) = if cancelled {
            (PipelineStatus::Cancelled, ExitStatus::Cancelled)
        } else if all_succeeded {
            (PipelineStatus::Succeeded, ExitStatus::Success)
        } else {
            (PipelineStatus::Failed, ExitStatus::Failed)
        };
        // A cancelled run keeps everything where it is: it is not over.
        let kept = if cancelled {
            Ok(())
        } else {
            self.archive_and_clean(record, all_succeeded)
        };
        if let Err(message) = &kept {
            output::stderr(&format!("error: {message}\n"));
            // The results are not where they were asked to be: the run did not do its
            // job. `--resume` archives again (into a new folder).
            status = PipelineStatus::Failed;
            exit = ExitStatus::Failed;
        }
        let count = |s: TaskStatus| record.tasks.iter().filter(|t| t.status == s).count();
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
        let mut message = parts.join(", ");
        if kept.is_err() {
            message.push_str("; the archive failed");
        }
        record.status = status;
        record.message = Some(message.clone());
        record.exit_code = Some(exit.code());
        record.ended_at = Some(jiff::Timestamp::now());
        report_write(self.run_dir, self.journal.compact(record));
        output::stderr(&format!(
            "tapir: pipeline `{}` {}: {message}; record: {}\n",
            record.name,
            status.as_str(),
            self.run_dir.display()
        ));
        exit
    }
}

impl Driver<'_> {
    /// Builds the pipeline's images, in file order, before any task starts. `None`: all
    /// built. `Some(cancelled)`: a build did not succeed (or Ctrl-C came), so no task
    /// starts; the tasks still to run are recorded skipped (or cancelled) with why.
    fn run_builds(
        &mut self,
        record: &mut PipelineRunRecord,
        inbox: &mpsc::Receiver<Event>,
    ) -> Option<bool> {
        let mut interrupted = false;
        for build in &self.plan.builds {
            output::stderr(&format!("build {}: started ({})\n", build.id, build.tag));
            let made = crate::pipeline::build::run_build(
                build,
                &self.run_dir.join(RUNS_SUBDIR),
                self.run_dir,
                || {
                    while let Ok(event) = inbox.try_recv() {
                        if matches!(event, Event::Interrupted) {
                            interrupted = true;
                        }
                    }
                    interrupted
                },
            );
            let line = match &made.message {
                Some(message) => format!("build {}: {} — {message}\n", build.id, made.status),
                None => format!("build {}: {}\n", build.id, made.status),
            };
            output::stderr(&line);
            let ok = made.status == "succeeded";
            let why = format!("not started: build `{}` {}", build.id, made.status);
            record.builds.push(made);
            if !ok {
                let cancelled = interrupted;
                for task in record
                    .tasks
                    .iter_mut()
                    .filter(|t| t.status == TaskStatus::Pending)
                {
                    if cancelled {
                        task.status = TaskStatus::Cancelled;
                    } else {
                        task.status = TaskStatus::Skipped;
                        task.skipped_by = Some(SkipCause::FailedDependency);
                    }
                    task.message = Some(why.clone());
                }
                return Some(cancelled);
            }
        }
        None
    }

    /// Archives the results of the tasks that succeeded (the file's `archive` or
    /// `--archive`), then, when the whole run succeeded and `clean_succeeded` is asked
    /// for, removes the managed output folders — never after a failed archive.
    /// `Err`: what failed (the record says it too).
    fn archive_and_clean(
        &mut self,
        record: &mut PipelineRunRecord,
        all_succeeded: bool,
    ) -> std::result::Result<(), String> {
        let planned = match (&self.args.archive, &self.plan.archive) {
            (Some(dir), planned) => Some(archive::PlannedArchive {
                path: absolute(dir),
                include: planned
                    .as_ref()
                    .map(|a| a.include.clone())
                    .unwrap_or_default(),
            }),
            (None, planned) => planned.as_ref().map(|a| archive::PlannedArchive {
                path: absolute(&a.path),
                include: a.include.clone(),
            }),
        };
        let outputs = |only_succeeded: bool| -> Vec<archive::OutputFolder> {
            self.plan
                .tasks
                .iter()
                .zip(&record.tasks)
                .filter(|(_, kept)| !only_succeeded || kept.status == TaskStatus::Succeeded)
                .flat_map(|(task, _)| {
                    task.folders
                        .iter()
                        .filter(|f| f.managed && f.direction == FolderDirection::Output)
                        .map(|f| archive::OutputFolder {
                            label: format!("{}/{}", task.id, f.channel),
                            path: f.path.clone(),
                        })
                })
                .collect()
        };
        if let Some(planned) = &planned {
            let base = self
                .run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Each invocation archives into its own folder: a resumed run's second
            // archive must not touch the first.
            let name = match record.resumed_at.len() {
                0 => base,
                n => format!("{base}.resume-{n}"),
            };
            let made = archive::archive(self.run_dir, &name, planned, &outputs(true));
            let line = match &made.message {
                None => format!(
                    "tapir: archived {} ({} in {}) to {}\n",
                    output::plural(made.folders.len(), "folder"),
                    output::plural(made.files as usize, "file"),
                    crate::model::quantity::format_bytes(made.bytes),
                    made.path
                ),
                Some(message) => format!("tapir: the archive failed: {message}\n"),
            };
            output::stderr(&line);
            for entry in &made.not_copied {
                output::stderr(&format!(
                    "warning: not archived (a link or a special file): {entry}\n"
                ));
            }
            let failed = made.message.clone();
            record.archives.push(made);
            if let Some(message) = failed {
                return Err(format!(
                    "the archive failed ({message}); nothing was cleaned"
                ));
            }
        }
        let clean = self.args.clean_succeeded || self.plan.clean_succeeded;
        if clean && all_succeeded {
            let mut paths: Vec<String> = outputs(false).into_iter().map(|f| f.path).collect();
            paths.dedup();
            let (removed, problems) = archive::clean(self.run_dir, &paths);
            output::stderr(&format!(
                "tapir: removed {} of the succeeded run (--clean-succeeded)\n",
                output::plural(removed.len(), "output folder")
            ));
            record.cleaned.extend(removed);
            if !problems.is_empty() {
                return Err(format!("cleaning: {}", problems.join("; ")));
            }
        }
        Ok(())
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

/// A resumed record's attempts still `running`: their pipeline tapir was killed while
/// they ran, and their task runs have ended since (cancelled by their parent watch, or
/// finished just before). Each is re-attached to the task run it was assigned (its run
/// id was recorded before it started) with its final status, or says that it left none.
/// A task whose orphaned attempt succeeded is adopted: the task succeeded, so `--resume`
/// does not run it again. Returns the adopted tasks' ids; `Err`: the run folder of an
/// attempt that still runs.
fn settle_orphaned_attempts(
    record: &mut PipelineRunRecord,
    run_dir: &Path,
    executor: &dyn Executor,
) -> std::result::Result<Vec<String>, PathBuf> {
    let mut adopted = Vec::new();
    for task in &mut record.tasks {
        for attempt in task
            .attempts
            .iter_mut()
            .filter(|a| a.status == Status::Running)
        {
            let task_run = attempt.run_dir.as_ref().map(|d| run_dir.join(d));
            let reattached = match &task_run {
                Some(dir) => executor.reattach(dir).ok_or_else(|| dir.clone())?,
                // Recorded by a tapir that linked task runs only once they ended.
                None => Reattached::NoRun,
            };
            match (reattached, task_run.as_deref()) {
                (Reattached::Ended(run), Some(dir)) => {
                    attempt.ended_at = run.ended_at.or(Some(jiff::Timestamp::now()));
                    link_task_run(attempt, dir, *run, run_dir);
                    if attempt.status == Status::Running {
                        // Not running (checked): killed before it settled.
                        attempt.status = Status::EngineError;
                        attempt.message = Some("its task run is lost (killed)".into());
                    }
                }
                _ => {
                    attempt.run_id = None;
                    attempt.run_dir = None;
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
    Ok(adopted)
}

/// Turns SIGINT/SIGTERM/SIGHUP into [`Event::Interrupted`]: the driver cancels the
/// pipeline, and the executor passes a SIGTERM to each running attempt (a second signal
/// passes a second one, which makes `tapir run` kill its container at once), like
/// `tapir run` does for its one container (src/execute.rs).
struct SignalForwarder {
    handle: Option<signal_hook::iterator::Handle>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalForwarder {
    fn install(events: mpsc::Sender<Event>) -> Self {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            output::stderr("warning: Ctrl-C will not stop the pipeline's tasks cleanly\n");
            return Self {
                handle: None,
                thread: None,
            };
        };
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            let mut first = true;
            for _ in signals.forever() {
                if first {
                    output::stderr(
                        "\ntapir: cancelling the pipeline: stopping the running tasks (Ctrl-C again kills them now)\n",
                    );
                    first = false;
                }
                let _ = events.send(Event::Interrupted);
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
    use crate::cli::{Cli, Command, Mode, PipelineCommand};
    use crate::pipeline::plan::PlannedRunBind;
    use clap::Parser as _;

    fn pipeline_run_args(flags: &[&str]) -> PipelineRunArgs {
        let mut argv = vec!["tapir", "pipeline", "run", "p.json"];
        argv.extend_from_slice(flags);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Pipeline(p) => match p.command {
                PipelineCommand::Run(args) => args,
                _ => unreachable!("a run was parsed"),
            },
            _ => unreachable!("a pipeline command was parsed"),
        }
    }

    fn bind(host: &str, container: &str, read_only: bool) -> PlannedBind {
        PlannedBind {
            host_path: PathBuf::from(host),
            container_path: container.into(),
            read_only,
        }
    }

    #[test]
    fn pipeline_run_flags_win_over_the_files_run_options() {
        let from_file = PlannedRunOptions {
            pull: true,
            user: RunUser::Image,
            keep: true,
            binds: vec![
                PlannedRunBind {
                    bind: bind("/ref", "/reference", true),
                    source: "pipeline",
                },
                PlannedRunBind {
                    bind: bind("/scratch", "/scratch", false),
                    source: "task",
                },
            ],
            entrypoint: Some("/bin/busybox".into()),
            network: Some("none".into()),
            grace: 3,
            shm_size_bytes: Some(1 << 30),
            gpus: Some(crate::resolve::run_options::GpuRequest::Count(2)),
            engine_args: vec!["--cap-drop".into(), "ALL".into()],
        };
        let fresh = || {
            RunRequest::new(
                Path::new("/t.json"),
                Path::new("/r"),
                "01a".into(),
                Mode::Docker,
            )
        };

        // No flags: the file's options, as they are.
        let mut run = fresh();
        apply_run_options(&mut run, &from_file, &pipeline_run_args(&[]));
        assert!(run.pull && run.keep);
        assert_eq!(run.user, UserChoice::Image);
        assert_eq!(run.network.as_deref(), Some("none"));
        assert_eq!(run.entrypoint.as_deref(), Some("/bin/busybox"));
        assert_eq!(run.grace, 3);
        assert_eq!(run.engine.shm_size_bytes, Some(1 << 30));
        assert_eq!(run.engine.gpus, from_file.gpus);
        assert_eq!(run.engine.engine_args, ["--cap-drop", "ALL"]);
        assert_eq!(
            run.binds,
            vec![
                bind("/ref", "/reference", true),
                bind("/scratch", "/scratch", false)
            ]
        );

        // Flags given: theirs; a --bind at a file bind's container path replaces it.
        let mut run = fresh();
        let args = pipeline_run_args(&[
            "--user",
            "invoker",
            "--network",
            "bridge",
            "--grace",
            "0",
            "--bind",
            "/other:/reference",
            "--bind",
            "/extra:/extra:rw",
        ]);
        apply_run_options(&mut run, &from_file, &args);
        assert_eq!(run.user, UserChoice::Invoker);
        assert_eq!(run.network.as_deref(), Some("bridge"));
        assert_eq!(run.grace, 0);
        assert!(run.pull && run.keep, "a flag not given leaves the file's");
        assert_eq!(
            run.binds,
            vec![
                bind("/scratch", "/scratch", false),
                bind("/other", "/reference", true),
                bind("/extra", "/extra", false)
            ]
        );

        // Nothing in the file, nothing given: `tapir run`'s defaults.
        let mut run = fresh();
        apply_run_options(
            &mut run,
            &PlannedRunOptions::default(),
            &pipeline_run_args(&[]),
        );
        let defaults = fresh();
        assert_eq!(run, defaults);
        // --pull and --keep turn the options on for every task.
        let mut run = fresh();
        let args = pipeline_run_args(&["--pull", "--keep"]);
        apply_run_options(&mut run, &PlannedRunOptions::default(), &args);
        assert!(run.pull && run.keep);
    }

    #[test]
    fn a_missing_images_fix_names_the_pipeline_key_and_flag() {
        let message = format!(
            "image a:b is not present locally (tapir never pulls unless asked)\n  fix: build it (`docker build -t a:b .`), or {PULL_FIX}"
        );
        let words = in_pipeline_words(&message, "convert");
        assert!(!words.contains(PULL_FIX), "{words}");
        assert!(
            words.ends_with(
                "or set `\"run_options\": {\"pull\": true}` on task `convert` (or on the whole pipeline) in the pipeline file, or pass `pipeline run --pull`"
            ),
            "{words}"
        );
        assert_eq!(in_pipeline_words("exit 3", "convert"), "exit 3");
    }
}
