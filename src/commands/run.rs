//! `tapir run TASK.JSON`: resolve the task into a plan, run it on the engine with its
//! output streamed and kept, and leave a record — also when something fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::absolute;
use super::plan_view::{command_line, plan_rows};
use crate::backend::docker::{self, Docker, RenderedRun};
use crate::backend::{Backend, FoundImage, apptainer, engine_args, lookup};
use crate::cli::{ColorChoice, PlanFormat, RunArgs, UserChoice};
use crate::error::{Error, ExitStatus, Result};
use crate::execute::detach::{self, Detached};
use crate::execute::{self, Attachment, Engine, Job};
use crate::executor::ExecutorKind;
use crate::executor::RunRequest;
use crate::executor::slurm::job as slurm_job;
use crate::executor::slurm::script as slurm_script;
use crate::model::{Template, TemplateRef};
use crate::output::{self, Printer, Spinner};
use crate::record::{self, ImageRecord, RunRecord, RunSummary, Status, store};
use crate::resolve::env_input::EnvFile;
use crate::resolve::host::HostFacts;
use crate::resolve::plan::{self, Direction, EnvSource, Options, Override, PlannedUser, RunPlan};
use crate::resolve::task_file::{self, LoadError, LoadedTask};

/// The label naming the Slurm job on a container a job's node-side tapir starts.
pub(crate) const SLURM_JOB_LABEL: &str = "tapir.slurm-job-id";

/// Everything needed to start the container.
struct Prepared {
    loaded: LoadedTask,
    template: Template,
    image: FoundImage,
    plan: RunPlan,
}

pub(crate) fn run(args: &RunArgs, color: ColorChoice) -> Result<ExitStatus> {
    if args.executor == crate::executor::ExecutorKind::K8s {
        return super::k8s::run(args, color);
    }
    if args.context.is_some() || args.namespace.is_some() {
        return Err(Error::Usage(
            "--context and --namespace are for --executor k8s\n  fix: add --executor k8s, or leave them out".into(),
        ));
    }
    let err = Printer::for_stderr(color);
    // The run's settings, as one typed value: the same a pipeline attempt is made from.
    let request = RunRequest::from_args(args);
    // Started first, so that a parent lost while the run is prepared is noticed too.
    if let Some(parent) = request.watch_parent {
        execute::parent_watch::watch(parent);
    }
    let id = request.run_id.clone();
    let mut record = RunRecord::new(
        &id,
        request.mode.name(),
        Status::Running,
        absolute(&request.task_file).display().to_string(),
    );
    record.pid = Some(std::process::id());
    // Where the run folder will be. It is made only once the run is about to start
    // (`open_run_dir`): a run refused by the checks before that leaves nothing behind
    // (docs/DESIGN.md decision 9). Its path is part of the argv, so it is known now.
    let run_dir = request.run_dir();
    // A Slurm job's node side takes over the folder its submitter made (decision 19).
    let adopting = args.adopt_queued;
    if adopting {
        let job_id = std::env::var("SLURM_JOB_ID").ok();
        // The job's private values were read with the arguments: off the disk now.
        let _ = std::fs::remove_file(run_dir.join(slurm_job::PRIVATE_ENV_FILE));
        match slurm_job::adopt_queued(&run_dir, job_id.as_deref()) {
            Ok(queued) => {
                record.created_at = queued.created_at;
                let mut executor = queued.executor.unwrap_or_default();
                executor.node = Some(record::current_host());
                // Slurm's own word on the job is the submitter's to record (`job::look`).
                executor.state = None;
                if executor.job_id.is_none() {
                    executor.job_id = job_id;
                }
                record.executor = Some(executor);
            }
            Err(e) => {
                output::stderr(&format!("{} {e}\n", err.red("error:")));
                return Ok(ExitStatus::NotStarted);
            }
        }
    }

    let spinner = if args.dry_run {
        None
    } else {
        Spinner::start("preparing the run")
    };
    // A cancel while preparing is recorded (exit 130 with a record, not an abrupt end), so
    // it makes the folder then; a dry run has none.
    let cancel = CancelWhilePreparing::install(
        &record,
        (!args.dry_run).then_some((request.runs_dir.as_path(), id.as_str())),
        adopting,
        spinner.clone(),
    );
    // Checked before the engine is asked anything: the answer does not depend on it.
    if let Err(message) = engine_args::check(request.mode, &request.engine.engine_args) {
        disarm(cancel);
        clear(spinner.as_ref());
        return Ok(refused(&Error::not_started(message), err));
    }
    let backend = match Backend::locate(request.mode, args.dry_run) {
        Ok(backend) => backend,
        Err(e) => {
            disarm(cancel);
            clear(spinner.as_ref());
            return Ok(refused_or_recorded(
                &e,
                adopting,
                &mut record,
                &run_dir,
                err,
            ));
        }
    };
    let mut prepared = match prepare(
        &request,
        &args.env_file,
        &backend,
        &mut record,
        spinner.as_ref(),
    ) {
        Ok(prepared) => prepared,
        Err(e) => {
            disarm(cancel);
            clear(spinner.as_ref());
            return Ok(refused_or_recorded(
                &e,
                adopting,
                &mut record,
                &run_dir,
                err,
            ));
        }
    };
    if adopting && let Some(job) = record.executor.as_ref().and_then(|e| e.job_id.clone()) {
        // A container of a Slurm job names its job: a site's epilog finds it by this
        // label (Docker containers are not children of the job).
        prepared.plan.labels.insert(SLURM_JOB_LABEL.into(), job);
    }
    let (rendered, backend_warnings) = backend.render(
        &mut prepared.plan,
        &prepared.image,
        &id,
        &absolute(&run_dir),
    );
    prepared.plan.warnings.extend(backend_warnings);
    // The plan as the engine got it (with the backend's own rules applied).
    record.plan = Some(prepared.plan.clone());
    // The spinner must be gone before anything is printed.
    if !prepared.loaded.warnings.is_empty() || !prepared.plan.warnings.is_empty() {
        clear(spinner.as_ref());
    }
    for warning in prepared.loaded.warnings.iter() {
        output::stderr(&err.diagnostic(
            &request.task_file.display().to_string(),
            Some(&prepared.loaded.document.source),
            warning,
        ));
    }
    for warning in &prepared.plan.warnings {
        output::stderr(&format!("{} {warning}\n", err.yellow("warning:")));
    }
    if args.dry_run {
        disarm(cancel);
        let text = match args.format {
            PlanFormat::Json => dry_run_json(&prepared, backend.program(), &rendered),
            PlanFormat::Human => dry_run_human(
                &prepared,
                backend.program(),
                &rendered,
                Printer::for_stdout(color),
            ),
        };
        output::stdout(&text);
        if args.executor == ExecutorKind::Slurm {
            let (script, sbatch) = super::run_slurm::dry_run(args, &prepared.plan, &id, &run_dir)?;
            output::stdout(&format!(
                "\n# the job script ({}), submitted with:\n# {sbatch}\n{script}",
                absolute(&run_dir).join(slurm_script::SCRIPT_FILE).display()
            ));
        }
        return Ok(ExitStatus::Success);
    }
    if args.executor == ExecutorKind::Slurm && !adopting {
        disarm(cancel);
        clear(spinner.as_ref());
        return super::run_slurm::submit_and_follow(args, &prepared.plan, record, &run_dir, color);
    }
    // A run whose id its caller assigned is a pipeline's attempt (or a Slurm job's node
    // side): its runs folder is the pipeline run's own `runs/`, whose attempts the
    // pipeline settles itself (and whose children stop with it, --watch-parent), so
    // listing every tapir container of the engine there would cost an engine call per
    // attempt and could name nothing new.
    if let Backend::Docker(docker) = &backend
        && args.run_id.is_none()
    {
        warn_about_orphans(docker, &request.runs_dir, err);
    }
    // From here on `execute` handles signals itself (it stops the container).
    disarm(cancel);
    execute(
        &request,
        (args.detach, adopting),
        &backend,
        prepared,
        rendered,
        &run_dir,
        record,
        (err, spinner),
    )
}

/// Containers left behind by a tapir that was killed: say so, and how to remove them.
/// Only containers tapir can prove are its own and abandoned are named — their record,
/// in the runs folder being used, says the run is lost — and the fix is always
/// `tapir rm`: a labelled container elsewhere may be someone else's healthy run.
fn warn_about_orphans(docker: &Docker, runs_dir: &Path, p: Printer) {
    let Ok(containers) = docker.tapir_containers() else {
        return;
    };
    let Ok(runs_dir) = std::fs::canonicalize(runs_dir) else {
        return;
    };
    for orphan in containers.iter().filter(|c| is_orphan(c, &runs_dir)) {
        let Some(dir) = &orphan.run_dir else { continue };
        output::stderr(&format!(
            "{} container {} was left behind by a tapir that was killed{} (its record says running, and the process that ran it is gone)\n  fix: tapir rm {}\n",
            p.yellow("warning:"),
            orphan.name,
            if orphan.running {
                " and is still running"
            } else {
                ""
            },
            dir.display()
        ));
    }
}

/// A labelled container whose run folder is in `runs_dir` and whose record there is
/// that run's (same id, same container name) and says it is lost. A finished run may
/// keep its container on purpose (`--keep`): only a lost one is an orphan.
fn is_orphan(container: &docker::LabelledContainer, runs_dir: &Path) -> bool {
    let Some(dir) = &container.run_dir else {
        return false;
    };
    let in_runs_dir = dir
        .parent()
        .and_then(|parent| std::fs::canonicalize(parent).ok())
        .is_some_and(|parent| parent == runs_dir);
    if !in_runs_dir {
        return false;
    }
    match RunSummary::load_settled(dir) {
        Ok(r) => {
            r.id == container.run_id
                && container.name == docker::container_name(&r.id)
                && r.is_lost()
        }
        Err(_) => false,
    }
}

/// Ctrl-C, SIGTERM or a closed terminal (SIGHUP) while the run is being prepared — the
/// engine asked about the image, the template read out of it — ends `run` with 130 and
/// a `cancelled` record, rather than killing tapir with an empty run folder and an engine
/// client still waiting. `execute` installs its own handling before the container
/// starts; [`disarm`] hands over.
struct CancelWhilePreparing {
    /// Set by the signal handler itself: a signal that arrives while disarming is seen.
    signalled: Arc<AtomicBool>,
    flag_ids: Vec<signal_hook::SigId>,
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
    cancel: Arc<dyn Fn() + Send + Sync>,
}

impl CancelWhilePreparing {
    fn install(
        record: &RunRecord,
        runs_dir_and_id: Option<(&Path, &str)>,
        adopting: bool,
        spinner: Option<Spinner>,
    ) -> Option<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let record = record.clone();
        let runs_dir_and_id = runs_dir_and_id.map(|(dir, id)| (dir.to_path_buf(), id.to_string()));
        let cancel: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            crate::backend::deadline::kill_running_clients();
            clear(spinner.as_ref());
            let mut record = record.clone();
            record.status = Status::Cancelled;
            record.message = Some("cancelled by a signal before the task started".to_string());
            record.ended_at = Some(jiff::Timestamp::now());
            // The folder is made here: until the run starts it does not exist (a refused
            // run leaves none), but a cancel is the user's act and is kept.
            let made = runs_dir_and_id.as_ref().and_then(|(runs_dir, id)| {
                if adopting {
                    // A Slurm job's folder exists already (made by its submitter).
                    return Some(runs_dir.join(format!("{}{id}", store::RUN_DIR_PREFIX)));
                }
                let dir = store::create_run_dir(runs_dir, id).ok()?;
                let _ = store::ignore_in_git(&dir);
                Some(dir)
            });
            match &made {
                Some(dir) => {
                    execute::write_record(dir, &record);
                    output::stderr(&format!(
                        "\ntapir: cancelled before the task started; record: {}\n",
                        dir.display()
                    ));
                }
                None => output::stderr("\ntapir: cancelled\n"),
            }
            // The main thread may be blocked on the engine until its deadline: end here.
            // Nothing is left to clean up — no container exists yet, and the engine
            // clients were killed above.
            std::process::exit(i32::from(ExitStatus::Cancelled.code()));
        });
        let signalled = Arc::new(AtomicBool::new(false));
        let flag_ids = [SIGINT, SIGTERM, SIGHUP]
            .into_iter()
            .filter_map(|signal| signal_hook::flag::register(signal, signalled.clone()).ok())
            .collect();
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]).ok()?;
        let handle = signals.handle();
        let on_signal = cancel.clone();
        let thread = std::thread::spawn(move || {
            if signals.forever().next().is_some() {
                on_signal();
            }
        });
        Some(Self {
            signalled,
            flag_ids,
            handle,
            thread,
            cancel,
        })
    }
}

/// Removes the preparation's signal handling; a signal that came meanwhile cancels now.
fn disarm(cancel: Option<CancelWhilePreparing>) {
    let Some(cancel) = cancel else { return };
    cancel.handle.close();
    let _ = cancel.thread.join();
    for id in cancel.flag_ids {
        signal_hook::low_level::unregister(id);
    }
    if cancel.signalled.load(Ordering::SeqCst) {
        (cancel.cancel)();
    }
}

/// The pre-start pipeline: task → image → template → plan.
fn prepare(
    request: &RunRequest,
    env_files: &[EnvFile],
    backend: &Backend,
    record: &mut RunRecord,
    spinner: Option<&Spinner>,
) -> Result<Prepared> {
    let loaded = match task_file::load(&request.task_file) {
        Ok(loaded) => loaded,
        Err(LoadError::Unreadable(e)) => return Err(e),
        Err(LoadError::Invalid(report)) => {
            let message = format!("{} is not a valid task", request.task_file.display());
            return Err(task_file::report_error(&report, message));
        }
    };
    record.task_file.sha256 = Some(loaded.sha256.clone());
    record.task_name = Some(loaded.task.name.clone());

    let task_dir = absolute(&request.task_file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let image = backend.find_image(
        &loaded.task.image,
        request.pull,
        &loaded.registry,
        &task_dir,
    )?;
    record.image = Some(ImageRecord {
        reference: loaded.task.image.clone(),
        id: image.info.id.clone(),
        repo_digests: image.info.repo_digests.clone(),
    });

    if let (Some(spinner), TemplateRef::Identifier(identifier)) = (spinner, &loaded.task.template) {
        spinner.set_message(&format!("reading the template `{identifier}`"));
    }
    let read_image_file = || backend.processing_container(&loaded.task.image, &image);
    let (template, source) =
        lookup::template_for(&loaded, request.container_file.as_deref(), &read_image_file)?;
    record.template = serde_json::to_value(&template)
        .ok()
        .map(|value| mask_template_secrets(value, &template));

    let options = Options {
        overrides: overrides(request, env_files),
        user: match request.user {
            UserChoice::Invoker => PlannedUser::Invoker {
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
            },
            UserChoice::Image => PlannedUser::Image,
        },
        network: request.network.clone(),
        entrypoint: request.entrypoint.clone(),
        binds: request.binds.clone(),
        engine: request.engine.clone(),
    };
    let host = HostFacts::gather(&loaded.task, &template, &task_dir).with_binds(&options.binds);
    match plan::resolve(&loaded.task, &template, &source, &task_dir, &options, &host) {
        Ok(plan) => Ok(Prepared {
            loaded,
            template,
            image,
            plan,
        }),
        Err(problems) => Err(task_file::problems_error(&problems, &loaded)),
    }
}

/// Secret template env defaults (by name, or rendered from a secret in an inline
/// template) are masked before they are recorded. `value` is `template` as JSON.
fn mask_template_secrets(mut value: serde_json::Value, template: &Template) -> serde_json::Value {
    if let Some(env) = value.get_mut("env").and_then(|e| e.as_array_mut()) {
        for (var, declared) in env.iter_mut().zip(&template.env) {
            if declared.is_secret() && var.get("value").is_some() {
                var["value"] = serde_json::Value::from(plan::MASK);
            }
        }
    }
    value
}

/// `--env-file` values, then `--env` values (which win), as plan overrides (both were
/// checked while the arguments were parsed; `env_files` are the request's files as read).
pub(super) fn overrides(request: &RunRequest, env_files: &[EnvFile]) -> Vec<Override> {
    let from_files = env_files.iter().flat_map(|file| {
        file.entries.iter().map(|entry| Override {
            name: entry.var.name.clone(),
            value: entry.var.value.clone(),
            source: match request
                .env_sources
                .iter()
                .find(|s| s.name == entry.var.name)
            {
                Some(real) => EnvSource::Caller(real.value.clone()),
                None => EnvSource::EnvFile {
                    path: file.path.display().to_string(),
                    line: entry.line,
                },
            },
        })
    });
    let from_flags = request.env.iter().map(|var| Override {
        name: var.name.clone(),
        value: var.value.clone(),
        source: EnvSource::CommandLine,
    });
    from_files.chain(from_flags).collect()
}

/// Says why tapir refused the run before it started (with the findings it has, shown at
/// their places in their file) and gives exit 125. Nothing was started and no run folder
/// exists: there is nothing to record.
fn refused(error: &Error, p: Printer) -> ExitStatus {
    match error {
        Error::NotStartedFindings { findings, message } => {
            for d in &findings.diagnostics {
                output::stderr(&p.diagnostic(&findings.file, findings.source.as_ref(), d));
            }
            output::stderr(&format!("tapir: {message}; the task did not start\n"));
        }
        e => output::stderr(&format!("{} {e}\n", p.red("error:"))),
    }
    ExitStatus::NotStarted
}

/// A refusal before the start: said, and nothing kept (decision 9) — except for a Slurm
/// job's run, whose folder and `queued` record exist already: its record says why.
fn refused_or_recorded(
    error: &Error,
    adopting: bool,
    record: &mut RunRecord,
    run_dir: &Path,
    p: Printer,
) -> ExitStatus {
    if !adopting {
        return refused(error, p);
    }
    let status = refused(error, p);
    record.status = Status::EngineError;
    record.message = Some(error.to_string());
    record.ended_at = Some(jiff::Timestamp::now());
    if let Err(e) = store::write_record_atomic(run_dir, &record.to_value()) {
        output::stderr(&format!(
            "{} could not write the record: {e}\n",
            p.red("error:")
        ));
    }
    status
}

/// Reports and records a run that was handed over to be started but did not start, and
/// gives exit 125: its folder exists and keeps the record (and the supervisor's log).
fn record_failure(error: &Error, record: &mut RunRecord, run_dir: &Path, p: Printer) -> ExitStatus {
    output::stderr(&format!("{} {error}\n", p.red("error:")));
    record.status = Status::EngineError;
    record.message = Some(error.to_string());
    record.ended_at = Some(jiff::Timestamp::now());
    match store::write_record_atomic(run_dir, &record.to_value()) {
        Ok(()) => output::stderr(&format!(
            "tapir: the task did not start; record: {}\n",
            run_dir.display()
        )),
        Err(e) => output::stderr(&format!(
            "{} could not write the record: {e}\n",
            p.red("error:")
        )),
    }
    store::release_space(run_dir);
    ExitStatus::NotStarted
}

/// Makes the run folder of a run that is about to start, with everything it needs before
/// the engine is asked: git's ignore file, the space set aside for the final record, the
/// output folders, the missing read-write `--bind` folders, Apptainer's scratch folder,
/// and the first record. When any of it fails nothing starts, and the folder is removed
/// again (it holds only what was just written): a refused run leaves no folder.
fn open_run_dir(
    request: &RunRequest,
    adopting: bool,
    plan: &RunPlan,
    job: &Job,
    record: &RunRecord,
) -> Result<PathBuf> {
    if adopting {
        // A Slurm job's folder, made and recorded `queued` by its submitter: it stays,
        // whatever happens, and says why the run did not start.
        let dir = request.run_dir();
        store::reserve_space(&dir)
            .map_err(|e| Error::not_started(format!("cannot write {e}")))
            .and_then(|()| create_folders(plan, job))?;
        execute::try_write_record(&dir, record).map_err(|e| Error::not_started(e.to_string()))?;
        return Ok(dir);
    }
    let dir = store::create_run_dir(&request.runs_dir, &record.id).map_err(|e| {
        Error::io_with_hint(
            &request.runs_dir,
            e,
            "choose a writable folder with --runs-dir or TAPIR_RUNS_DIR",
        )
    })?;
    // A runs folder that cannot take the first files (a full disk) refuses the run.
    let no_room = |e: String| {
        Error::not_started(format!(
            "{e}\n  the run was not started, and no run folder was kept; free some space \
             in {} or choose another folder with --runs-dir",
            request.runs_dir.display()
        ))
    };
    let opened = store::ignore_in_git(&dir)
        .and_then(|()| store::reserve_space(&dir))
        .map_err(|e| no_room(format!("cannot write {e}")))
        .and_then(|()| create_folders(plan, job))
        .and_then(|()| execute::try_write_record(&dir, record).map_err(|e| no_room(e.to_string())));
    match opened {
        Ok(()) => Ok(dir),
        Err(e) => {
            discard_run_dir(&dir);
            Err(e)
        }
    }
}

/// Removes the folder of a run that did not start after all: only what tapir wrote so far
/// (an empty scratch folder, the supervisor's log, the first files), so a folder holding
/// anything else stays.
fn discard_run_dir(dir: &Path) {
    let _ = std::fs::remove_dir(dir.join(apptainer::SCRATCH_DIR));
    let _ = std::fs::remove_file(dir.join(detach::SUPERVISOR_LOG));
    store::discard_new_run_dir(dir);
}

/// The folders the container needs before it starts. Outputs are created by tapir, owned
/// by the invoking user (Docker would create missing bind sources as root); so is a
/// missing read-write `--bind` folder (read-only ones were checked to exist).
fn create_folders(plan: &RunPlan, job: &Job) -> Result<()> {
    for m in plan
        .mounts
        .iter()
        .filter(|m| m.direction == Direction::Output)
    {
        std::fs::create_dir_all(&m.host_path).map_err(|e| {
            Error::not_started(format!(
                "cannot create output folder {} for channel `{}`: {e}",
                m.host_path.display(),
                m.channel,
            ))
        })?;
    }
    for bind in plan.binds.iter().filter(|b| !b.read_only) {
        if bind.host_path.exists() {
            continue;
        }
        std::fs::create_dir_all(&bind.host_path).map_err(|e| {
            Error::not_started(format!(
                "cannot create the folder {} for {}: {e}",
                bind.host_path.display(),
                bind.label(),
            ))
        })?;
    }
    if let Engine::Apptainer { scratch } = &job.engine {
        std::fs::create_dir_all(scratch).map_err(|e| {
            Error::not_started(format!(
                "cannot create the scratch folder {}: {e}",
                scratch.display()
            ))
        })?;
    }
    Ok(())
}

/// The version of the `run --dry-run --format json` document: fields may be added, and
/// existing ones keep their meaning while it stays 1.
pub(crate) const DRY_RUN_FORMAT_VERSION: u32 = 1;

fn dry_run_json(prepared: &Prepared, program: &Path, rendered: &RenderedRun) -> String {
    let value = serde_json::json!({
        "format_version": DRY_RUN_FORMAT_VERSION,
        "plan": prepared.plan,
        "image": {"reference": prepared.plan.image, "id": prepared.image.info.id, "repo_digests": prepared.image.info.repo_digests},
        "argv": std::iter::once(program.display().to_string()).chain(rendered.argv.iter().cloned()).collect::<Vec<_>>(),
        "environment": rendered.secret_env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        // Masked as in the record: a secret default, or one rendered from a secret.
        "template": serde_json::to_value(&prepared.template)
            .ok()
            .map(|value| mask_template_secrets(value, &prepared.template)),
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn dry_run_human(
    prepared: &Prepared,
    program: &Path,
    rendered: &RenderedRun,
    p: Printer,
) -> String {
    let plan = &prepared.plan;
    let mut out = String::new();
    let row = |out: &mut String, label: &str, text: String| {
        out.push_str(&format!("{} {text}\n", p.bold(&format!("{label:<10}"))))
    };
    row(
        &mut out,
        "task",
        format!(
            "{} (template `{}` from {})",
            plan.task_name, plan.template, plan.template_source
        ),
    );
    row(
        &mut out,
        "image",
        format!("{} ({})", plan.image, prepared.image.info.id),
    );
    row(
        &mut out,
        "user",
        match plan.user {
            PlannedUser::Invoker { uid, gid } => {
                format!("{uid}:{gid} (you; outputs belong to you)")
            }
            PlannedUser::Image => format!(
                "the image's user ({})",
                if prepared.image.info.user.is_empty() {
                    "root"
                } else {
                    &prepared.image.info.user
                }
            ),
        },
    );
    for (label, text) in plan_rows(plan) {
        row(&mut out, label, text);
    }
    row(
        &mut out,
        "command",
        match &plan.command {
            Some(c) => format!("{}  (from the {})", command_line(c), plan.command_source),
            None => format!("the image's CMD: {:?}", prepared.image.info.cmd),
        },
    );
    let argv = std::iter::once(program.display().to_string()).chain(rendered.argv.iter().cloned());
    row(&mut out, "argv", command_line(argv));
    if !rendered.secret_env.is_empty() {
        let names: Vec<&str> = rendered
            .secret_env
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        row(
            &mut out,
            "",
            format!(
                "plus in the engine's environment (values not shown): {}",
                names.join(", ")
            ),
        );
    }
    out
}

/// Opens the run folder (with the outputs and the first record), and runs the container:
/// attached (output echoed, Ctrl-C stops it) or, with `--detach`, under a background
/// supervisor.
#[allow(clippy::too_many_arguments)]
fn execute(
    request: &RunRequest,
    (detach_it, adopting): (bool, bool),
    backend: &Backend,
    prepared: Prepared,
    rendered: RenderedRun,
    run_dir: &Path,
    mut record: RunRecord,
    (p, spinner): (Printer, Option<Spinner>),
) -> Result<ExitStatus> {
    let outputs: Vec<(String, PathBuf)> = prepared
        .plan
        .mounts
        .iter()
        .filter(|m| m.direction == Direction::Output)
        .map(|m| (m.channel.clone(), m.host_path.clone()))
        .collect();
    let engine = match backend {
        Backend::Docker(docker) => Engine::Docker {
            docker: docker.clone(),
            container: docker::container_name(&record.id),
        },
        Backend::Apptainer { .. } => Engine::Apptainer {
            scratch: run_dir.join(apptainer::SCRATCH_DIR),
        },
    };
    let job = Job {
        engine,
        argv: std::iter::once(backend.program().display().to_string())
            .chain(rendered.argv)
            .collect(),
        secret_env: rendered.secret_env,
        outputs,
        memory_limit: prepared.plan.limits.memory_bytes,
        grace_seconds: request.grace,
        keep: request.keep,
        timeout_seconds: request.timeout,
    };
    record.argv = job.argv.clone();
    record.mode = backend.mode().into();
    if let Engine::Docker { container, .. } = &job.engine {
        record.container = Some(container.clone());
    }
    record.warnings = prepared.plan.warnings.clone();
    record.started_at = Some(jiff::Timestamp::now());
    let run_dir = match open_run_dir(request, adopting, &prepared.plan, &job, &record) {
        Ok(dir) => dir,
        Err(e) => {
            clear(spinner.as_ref());
            return Ok(refused_or_recorded(&e, adopting, &mut record, run_dir, p));
        }
    };
    let run_dir = run_dir.as_path();

    if detach_it {
        clear(spinner.as_ref());
        // The preparation's handling left these signals ignored (signal-hook keeps its
        // handler installed): while waiting for the background start they end tapir as
        // they would by default; the supervisor carries on on its own.
        let always = Arc::new(AtomicBool::new(true));
        for signal in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            let _ = signal_hook::flag::register_conditional_default(signal, always.clone());
        }
        return Ok(detach(&job, run_dir, &record, &prepared.plan.task_name, p));
    }
    let ends = execute::run_to_end(
        &job,
        run_dir,
        &mut record,
        Attachment {
            // A Slurm job's output file would only hold a second copy of the logs.
            echo: !adopting,
            spinner,
            hangup_cancels: true,
        },
    );
    let duration = record
        .started_at
        .zip(record.ended_at)
        .map(|(a, b)| (b.as_millisecond() - a.as_millisecond()) as f64 / 1000.0)
        .unwrap_or(0.0);
    let message = record.message.clone().unwrap_or_default();
    if record.status == Status::EngineError {
        // As before the start: the engine's words (with their fix) first, then where the
        // record is.
        output::stderr(&format!(
            "{} {message}\ntapir: the task did not start; record: {}\n",
            p.red("error:"),
            run_dir.display()
        ));
        return Ok(ends);
    }
    let task = &prepared.plan.task_name;
    // "succeeded after 1.4s" reads well; a failure's message may end in a clause of its
    // own ("… is not kept"), so there the time comes first.
    let headline = match record.status {
        Status::Succeeded => p.green(&format!("task `{task}` {message} after {duration:.1}s")),
        Status::Cancelled => p.yellow(&format!("task `{task}` {message} after {duration:.1}s")),
        _ => p.red(&format!(
            "task `{task}` ended after {duration:.1}s: {message}"
        )),
    };
    output::stderr(&format!(
        "tapir: {headline}; record: {}\n",
        run_dir.display()
    ));
    Ok(ends)
}

/// Hands the job to a background supervisor (`execute::detach`) and says how it went:
/// exit 0 once the container has started, 125 if it could not start.
fn detach(job: &Job, run_dir: &Path, record: &RunRecord, task: &str, p: Printer) -> ExitStatus {
    match detach::start(job, run_dir, record) {
        Detached::Started => {
            announce_detached(record, run_dir, task, "");
            ExitStatus::Success
        }
        Detached::Ended(message) => {
            let ended = format!(", and it has already ended: {message}");
            announce_detached(record, run_dir, task, &ended);
            ExitStatus::Success
        }
        Detached::RecordedNotStarted(message) => {
            output::stderr(&format!(
                "{} {message}\ntapir: the task did not start; record: {}\n",
                p.red("error:"),
                run_dir.display()
            ));
            ExitStatus::NotStarted
        }
        Detached::NotHandedOver(e) => {
            discard_run_dir(run_dir);
            refused(&e, p)
        }
        Detached::Failed(e) => record_failure(&e, &mut record.clone(), run_dir, p),
    }
}

fn announce_detached(record: &RunRecord, run_dir: &Path, task: &str, ended: &str) {
    output::stdout(&format!("{}\n", record.id));
    output::stderr(&format!(
        "tapir: task `{task}` started in the background{ended}\n  logs:   tapir logs --follow {}\n  record: {}\n",
        record.id,
        run_dir.display()
    ));
}

fn clear(spinner: Option<&Spinner>) {
    if let Some(spinner) = spinner {
        spinner.clear();
    }
}
