//! `tapir run TASK.JSON`: resolve the task into a plan, run it on the engine with its
//! output streamed and kept, and leave a record — also when something fails.

use std::path::{Path, PathBuf};

use super::absolute;
use super::plan_view::{command_line, plan_rows};
use crate::backend::docker::{self, Docker, RenderedRun};
use crate::backend::{Backend, FoundImage, apptainer, lookup};
use crate::cli::{ColorChoice, PlanFormat, RunArgs, UserChoice};
use crate::error::{Error, ExitStatus, Result};
use crate::execute::detach::{self, Detached};
use crate::execute::{self, Attachment, Engine, Job};
use crate::model::{Template, TemplateRef};
use crate::output::{self, Printer, Spinner};
use crate::record::{self, ImageRecord, RunRecord, RunSummary, Status, TaskFile, store};
use crate::resolve::host::HostFacts;
use crate::resolve::plan::{self, Direction, EnvSource, Options, Override, PlannedUser, RunPlan};
use crate::resolve::task_file::{self, LoadError, LoadedTask};

/// Everything needed to start the container.
struct Prepared {
    loaded: LoadedTask,
    template: Template,
    image: FoundImage,
    plan: RunPlan,
}

pub(crate) fn run(args: &RunArgs, color: ColorChoice) -> Result<ExitStatus> {
    let err = Printer::for_stderr(color);
    let id = store::new_run_id();
    let mut record = RunRecord {
        format_version: record::FORMAT_VERSION,
        id: id.clone(),
        tapir_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: args.mode.name().into(),
        status: Status::Running,
        message: None,
        task_file: TaskFile {
            path: absolute(&args.task).display().to_string(),
            sha256: None,
        },
        task_name: None,
        template: None,
        plan: None,
        argv: Vec::new(),
        image: None,
        container: None,
        pid: Some(std::process::id()),
        host: Some(record::current_host()),
        created_at: jiff::Timestamp::now(),
        started_at: None,
        ended_at: None,
        exit_code: None,
        outputs: Vec::new(),
        warnings: Vec::new(),
    };
    // The run folder comes first, so that every failure after this point leaves a record.
    let run_dir = if args.dry_run {
        None
    } else {
        let dir = store::create_run_dir(&args.runs_dir, &id).map_err(|e| {
            Error::io_with_hint(
                &args.runs_dir,
                e,
                "choose a writable folder with --runs-dir or TAPIR_RUNS_DIR",
            )
        })?;
        Some(dir)
    };

    // The folder the run has, or would have (dry run): its path is part of the argv.
    let run_dir_path = run_dir
        .clone()
        .unwrap_or_else(|| absolute(&args.runs_dir).join(format!("{}{id}", store::RUN_DIR_PREFIX)));

    let spinner = if args.dry_run {
        None
    } else {
        Spinner::start("preparing the run")
    };
    let backend = match Backend::locate(args.mode, args.dry_run) {
        Ok(backend) => backend,
        Err(e) => {
            clear(spinner.as_ref());
            return Ok(not_started(e, &mut record, run_dir.as_deref(), err));
        }
    };
    let mut prepared = match prepare(args, &backend, &mut record, spinner.as_ref()) {
        Ok(prepared) => prepared,
        Err(e) => {
            clear(spinner.as_ref());
            return Ok(not_started(e, &mut record, run_dir.as_deref(), err));
        }
    };
    let (rendered, backend_warnings) = backend.render(
        &mut prepared.plan,
        &prepared.image,
        &id,
        &absolute(&run_dir_path),
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
            &args.task.display().to_string(),
            Some(&prepared.loaded.document.source),
            warning,
        ));
    }
    for warning in &prepared.plan.warnings {
        output::stderr(&format!("{} {warning}\n", err.yellow("warning:")));
    }
    if args.dry_run {
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
        return Ok(ExitStatus::Success);
    }
    let Some(run_dir) = run_dir else {
        return Ok(ExitStatus::Success);
    };
    if let Backend::Docker(docker) = &backend {
        warn_about_orphans(docker, err);
    }
    execute(
        args,
        &backend,
        prepared,
        rendered,
        &run_dir,
        record,
        (err, spinner),
    )
}

/// Containers left behind by a tapir that was killed (its record says running, but the
/// process that supervised it is gone): say so, and how to remove them.
fn warn_about_orphans(docker: &Docker, p: Printer) {
    let Ok(containers) = docker.tapir_containers() else {
        return;
    };
    for orphan in containers.iter().filter(|c| is_orphan(c)) {
        let fix = match &orphan.run_dir {
            Some(dir) if dir.exists() => format!("tapir rm {}", dir.display()),
            _ => format!("docker rm --force {}", orphan.name),
        };
        output::stderr(&format!(
            "{} container {} was left behind by a tapir that was killed{}\n  fix: {fix}\n",
            p.yellow("warning:"),
            orphan.name,
            if orphan.running {
                " and is still running"
            } else {
                ""
            },
        ));
    }
}

/// A labelled container whose run is not supervised by a live process.
fn is_orphan(container: &docker::LabelledContainer) -> bool {
    let Some(dir) = &container.run_dir else {
        return false;
    };
    match RunSummary::load_settled(dir) {
        // The run folder is gone: nobody will ever clean the container up.
        Err(_) => !dir.exists(),
        // A finished run may keep its container on purpose (`--keep`): only a lost one
        // is an orphan.
        Ok(r) => r.is_lost(),
    }
}

/// The pre-start pipeline: task → image → template → plan.
fn prepare(
    args: &RunArgs,
    backend: &Backend,
    record: &mut RunRecord,
    spinner: Option<&Spinner>,
) -> Result<Prepared> {
    let lookup = |name: &str| std::env::var(name).ok();
    let loaded = match task_file::load(&args.task, &lookup) {
        Ok(loaded) => loaded,
        Err(LoadError::Unreadable(e)) => return Err(e),
        Err(LoadError::Invalid(report)) => {
            let message = format!("{} is not a valid task", args.task.display());
            return Err(task_file::report_error(&report, message));
        }
    };
    record.task_file.sha256 = Some(loaded.sha256.clone());
    record.task_name = Some(loaded.task.name.clone());

    let task_dir = absolute(&args.task)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let image = backend.find_image(&loaded.task.image, args.pull, &task_dir)?;
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
        lookup::template_for(&loaded, args.container_file.as_deref(), &read_image_file)?;
    record.template = serde_json::to_value(&template)
        .ok()
        .map(|value| mask_template_secrets(value, &template));

    let options = Options {
        overrides: overrides(args),
        user: match args.user {
            UserChoice::Invoker => PlannedUser::Invoker {
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
            },
            UserChoice::Image => PlannedUser::Image,
        },
        network: args.network.clone(),
        entrypoint: args.entrypoint.clone(),
        binds: args.bind.clone(),
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
/// checked while the arguments were parsed).
fn overrides(args: &RunArgs) -> Vec<Override> {
    let from_files = args.env_file.iter().flat_map(|file| {
        file.entries.iter().map(|entry| Override {
            name: entry.var.name.clone(),
            value: entry.var.value.clone(),
            source: EnvSource::EnvFile {
                path: file.path.display().to_string(),
                line: entry.line,
            },
        })
    });
    let from_flags = args.env.iter().map(|var| Override {
        name: var.name.clone(),
        value: var.value.clone(),
        source: EnvSource::CommandLine,
    });
    from_files.chain(from_flags).collect()
}

/// Reports a failure before the container ran (with the findings it has, shown at their
/// places in their file), records it, and gives exit 125.
fn not_started(
    error: Error,
    record: &mut RunRecord,
    run_dir: Option<&Path>,
    p: Printer,
) -> ExitStatus {
    match &error {
        Error::NotStartedFindings { findings, .. } => {
            for d in &findings.diagnostics {
                output::stderr(&p.diagnostic(&findings.file, findings.source.as_ref(), d));
            }
        }
        e => output::stderr(&format!("{} {e}\n", p.red("error:"))),
    }
    record.status = Status::EngineError;
    record.message = Some(error.to_string());
    record.ended_at = Some(jiff::Timestamp::now());
    if let Some(dir) = run_dir {
        match store::write_record_atomic(dir, &record.to_value()) {
            Ok(()) => output::stderr(&format!(
                "tapir: the task did not start; record: {}\n",
                dir.display()
            )),
            Err(e) => output::stderr(&format!(
                "{} could not write the record: {e}\n",
                p.red("error:")
            )),
        }
    }
    ExitStatus::NotStarted
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

/// Creates the outputs, completes the record, and runs the container: attached (output
/// echoed, Ctrl-C stops it) or, with `--detach`, under a background supervisor.
fn execute(
    args: &RunArgs,
    backend: &Backend,
    prepared: Prepared,
    rendered: RenderedRun,
    run_dir: &Path,
    mut record: RunRecord,
    (p, spinner): (Printer, Option<Spinner>),
) -> Result<ExitStatus> {
    // Outputs are created by tapir, owned by the invoking user, before the container runs
    // (Docker would create missing bind sources as root).
    let outputs: Vec<(String, PathBuf)> = prepared
        .plan
        .mounts
        .iter()
        .filter(|m| m.direction == Direction::Output)
        .map(|m| (m.channel.clone(), m.host_path.clone()))
        .collect();
    for (channel, path) in &outputs {
        if let Err(e) = std::fs::create_dir_all(path) {
            clear(spinner.as_ref());
            let failure = Error::not_started(format!(
                "cannot create output folder {} for channel `{channel}`: {e}",
                path.display(),
            ));
            return Ok(not_started(failure, &mut record, Some(run_dir), p));
        }
    }
    // A missing read-write `--bind` folder is created the same way; read-only ones were
    // checked to exist.
    for bind in prepared.plan.binds.iter().filter(|b| !b.read_only) {
        if bind.host_path.exists() {
            continue;
        }
        if let Err(e) = std::fs::create_dir_all(&bind.host_path) {
            clear(spinner.as_ref());
            let failure = Error::not_started(format!(
                "cannot create the folder {} for {}: {e}",
                bind.host_path.display(),
                bind.label(),
            ));
            return Ok(not_started(failure, &mut record, Some(run_dir), p));
        }
    }
    let engine = match backend {
        Backend::Docker(docker) => Engine::Docker {
            docker: docker.clone(),
            container: docker::container_name(&record.id),
        },
        Backend::Apptainer { .. } => {
            let scratch = run_dir.join(apptainer::SCRATCH_DIR);
            if let Err(e) = std::fs::create_dir_all(&scratch) {
                clear(spinner.as_ref());
                let failure = Error::not_started(format!(
                    "cannot create the scratch folder {}: {e}",
                    scratch.display()
                ));
                return Ok(not_started(failure, &mut record, Some(run_dir), p));
            }
            Engine::Apptainer { scratch }
        }
    };
    let job = Job {
        engine,
        argv: std::iter::once(backend.program().display().to_string())
            .chain(rendered.argv)
            .collect(),
        secret_env: rendered.secret_env,
        outputs,
        memory_limit: prepared.plan.limits.memory_bytes,
        grace_seconds: args.grace,
        keep: args.keep,
        timeout_seconds: args.timeout,
    };
    record.argv = job.argv.clone();
    record.mode = backend.mode().into();
    if let Engine::Docker { container, .. } = &job.engine {
        record.container = Some(container.clone());
    }
    record.warnings = prepared.plan.warnings.clone();
    record.started_at = Some(jiff::Timestamp::now());
    execute::write_record(run_dir, &record);

    if args.detach {
        clear(spinner.as_ref());
        return Ok(detach(&job, run_dir, &record, &prepared.plan.task_name, p));
    }
    let ends = execute::run_to_end(
        &job,
        run_dir,
        &mut record,
        Attachment {
            echo: true,
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
    let task = &prepared.plan.task_name;
    let headline = match record.status {
        Status::Succeeded => p.green(&format!("task `{task}` {message}")),
        Status::Cancelled => p.yellow(&format!("task `{task}` {message}")),
        _ => p.red(&format!("task `{task}`: {message}")),
    };
    output::stderr(&format!(
        "tapir: {headline} after {duration:.1}s; record: {}\n",
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
        Detached::Failed(e) => not_started(e, &mut record.clone(), Some(run_dir), p),
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
