//! `tapir run TASK.JSON`: resolve the task into a plan, run it on the engine with its
//! output streamed and kept, and leave a record — also when something fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::backend::apptainer::{self, Apptainer, Capabilities, ImageFacts, ImageRef};
use crate::backend::docker::{self, Docker, ImageInfo, RenderedRun};
use crate::cli::{ColorChoice, Mode, PlanFormat, RunArgs, UserChoice};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::error::{Error, Result, exit};
use crate::execute::{self, Attachment, Engine, Job};
use crate::model::{self, ProcessingContainer, Template, TemplateRef};
use crate::output::{self, Printer, Spinner};
use crate::record::{self, ImageRecord, RunRecord, RunSummary, Status, TaskFile, store};
use crate::resolve::host::HostFacts;
use crate::resolve::plan::{
    self, Direction, EnvSource, Options, Override, PlannedUser, Problem, RunPlan,
};
use crate::resolve::task_file::{self, LoadError, LoadedTask};
use crate::schema::Kind;
use crate::source::Source;
use crate::validation::{FileReport, KindRule, check_file, check_source};

/// Why a run could not start: what to show, and the one-line message for the record.
enum Failure {
    /// Findings in a file (the task, or a processing-container.json).
    Report(Box<FileReport>, String),
    /// Problems found while resolving, with the task document for positions.
    Problems(Vec<Problem>, Box<LoadedTask>),
    Message(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Message(e)
    }
}

/// Everything needed to start the container.
struct Prepared {
    loaded: LoadedTask,
    template: Template,
    image: ImageInfo,
    /// How apptainer takes the image (apptainer mode only).
    image_ref: Option<ImageRef>,
    plan: RunPlan,
}

/// The engine a run uses, located once.
enum Backend {
    Docker(Docker),
    Apptainer {
        apptainer: Apptainer,
        /// The local Docker engine, when there is one: images it holds are run from it
        /// (`docker-daemon:`), and their metadata comes from it.
        docker: Option<Docker>,
        caps: Capabilities,
        /// Not installed (a dry run only): the command is shown for the newest apptainer.
        assumed: bool,
    },
}

/// The warning of a dry run without apptainer.
const APPTAINER_ASSUMED: &str = "apptainer not found; showing the command for the newest apptainer (every flag tapir knows, e.g. --no-eval and the memory/CPU limits)";

impl Backend {
    /// A dry run needs no apptainer: it shows the command for the newest one.
    fn locate(mode: Mode, dry_run: bool) -> Result<Self> {
        Ok(match mode {
            Mode::Docker => Backend::Docker(Docker::locate()?),
            Mode::Apptainer => {
                let (apptainer, caps, assumed) = match Apptainer::locate() {
                    Ok(apptainer) => {
                        let caps = apptainer.capabilities();
                        (apptainer, caps, false)
                    }
                    Err(_) if dry_run => (
                        Apptainer {
                            binary: PathBuf::from("apptainer"),
                        },
                        Capabilities::newest(),
                        true,
                    ),
                    Err(e) => return Err(e),
                };
                Backend::Apptainer {
                    apptainer,
                    docker: Docker::locate().ok(),
                    caps,
                    assumed,
                }
            }
        })
    }

    fn program(&self) -> &Path {
        match self {
            Backend::Docker(docker) => &docker.binary,
            Backend::Apptainer { apptainer, .. } => &apptainer.binary,
        }
    }

    fn mode(&self) -> &'static str {
        match self {
            Backend::Docker(_) => "docker",
            Backend::Apptainer { .. } => "apptainer",
        }
    }
}

pub fn run(args: &RunArgs, color: ColorChoice) -> Result<u8> {
    let err = Printer::for_stderr(color);
    let id = store::new_run_id();
    let mut record = RunRecord {
        format_version: record::FORMAT_VERSION,
        id: id.clone(),
        tapir_version: env!("CARGO_PKG_VERSION").to_string(),
        mode: match args.mode {
            Mode::Docker => "docker".into(),
            Mode::Apptainer => "apptainer".into(),
        },
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
            return Ok(not_started(
                Failure::Message(e),
                &mut record,
                run_dir.as_deref(),
                err,
            ));
        }
    };
    let prepared = prepare(args, &backend, &mut record, spinner.as_ref());
    clear_if_printing(spinner.as_ref(), &prepared);
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(failure) => return Ok(not_started(failure, &mut record, run_dir.as_deref(), err)),
    };
    for warning in prepared.loaded.warnings.iter() {
        output::stderr(&err.diagnostic(
            &args.task.display().to_string(),
            Some(&prepared.loaded.document.source),
            warning,
        ));
    }
    let mut prepared = prepared;
    let (rendered, backend_warnings) =
        render(&backend, &mut prepared, &id, &absolute(&run_dir_path));
    prepared.plan.warnings.extend(backend_warnings);
    // The plan as the engine got it (with the backend's own rules applied).
    record.plan = serde_json::to_value(&prepared.plan).ok();
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
        return Ok(exit::OK);
    }
    let Some(run_dir) = run_dir else {
        return Ok(exit::OK);
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

/// The engine's command line for the plan, and the warnings of what the engine cannot do.
fn render(
    backend: &Backend,
    prepared: &mut Prepared,
    id: &str,
    run_dir: &Path,
) -> (RenderedRun, Vec<String>) {
    match (backend, &prepared.image_ref) {
        (Backend::Apptainer { caps, assumed, .. }, Some(image_ref)) => {
            let facts = ImageFacts {
                entrypoint: prepared.image.entrypoint.clone(),
                working_dir: prepared.image.working_dir.clone(),
            };
            let (rendered, mut warnings) = apptainer::exec_argv(
                &prepared.plan,
                image_ref,
                &facts,
                &run_dir.join(SCRATCH_DIR),
                *caps,
            );
            if *assumed {
                warnings.insert(0, APPTAINER_ASSUMED.to_string());
            }
            (rendered, warnings)
        }
        _ => {
            let warnings = docker::adapt_plan(&mut prepared.plan);
            (docker::run_argv(&prepared.plan, id, run_dir), warnings)
        }
    }
}

/// The spinner must be gone before anything is printed: failures and warnings.
fn clear_if_printing(spinner: Option<&Spinner>, prepared: &std::result::Result<Prepared, Failure>) {
    let prints = match prepared {
        Ok(p) => !p.loaded.warnings.is_empty() || !p.plan.warnings.is_empty(),
        Err(_) => true,
    };
    if prints {
        clear(spinner);
    }
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
) -> std::result::Result<Prepared, Failure> {
    let lookup = |name: &str| std::env::var(name).ok();
    let loaded = match task_file::load(&args.task, &lookup) {
        Ok(loaded) => loaded,
        Err(LoadError::Unreadable(e)) => return Err(Failure::Message(e)),
        Err(LoadError::Invalid(report)) => {
            let message = format!("{} is not a valid task", args.task.display());
            return Err(Failure::Report(report, message));
        }
    };
    record.task_file.sha256 = Some(loaded.sha256.clone());
    record.task_name = Some(loaded.task.name.clone());

    let task_dir = absolute(&args.task)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (image, image_ref) = match backend {
        Backend::Docker(docker) => (docker_image(args, docker, &loaded.task.image)?, None),
        Backend::Apptainer { docker, .. } => {
            let (image, image_ref) =
                apptainer_image(args, docker.as_ref(), &loaded.task.image, &task_dir)?;
            (image, Some(image_ref))
        }
    };
    record.image = Some(ImageRecord {
        reference: loaded.task.image.clone(),
        id: image.id.clone(),
        repo_digests: image.repo_digests.clone(),
    });

    if let (Some(spinner), TemplateRef::Identifier(identifier)) = (spinner, &loaded.task.template) {
        spinner.set_message(&format!("reading the template `{identifier}`"));
    }
    let read_image_file = || -> Result<Option<Vec<u8>>> {
        match (backend, &image_ref) {
            (Backend::Docker(docker), _)
            | (
                Backend::Apptainer {
                    docker: Some(docker),
                    ..
                },
                Some(ImageRef::DockerDaemon(_)),
            ) => processing_container_bytes(docker, &loaded.task.image, &image),
            (Backend::Apptainer { apptainer, .. }, Some(image_ref)) => {
                apptainer.read_file(image_ref, "/processing-container.json")
            }
            (Backend::Apptainer { .. }, None) => Ok(None),
        }
    };
    let (template, source) = template_for(args, &read_image_file, &loaded)?;
    record.template = serde_json::to_value(&template)
        .ok()
        .map(mask_template_secrets);

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
    };
    let host = HostFacts::gather(&loaded.task, &template, &task_dir);
    match plan::resolve(&loaded.task, &template, &source, &task_dir, &options, &host) {
        Ok(plan) => Ok(Prepared {
            loaded,
            template,
            image,
            image_ref,
            plan,
        }),
        Err(problems) => Err(Failure::Problems(problems, Box::new(loaded))),
    }
}

/// The image in the local Docker engine (pulled only with `--pull`).
fn docker_image(
    args: &RunArgs,
    docker: &Docker,
    reference: &str,
) -> std::result::Result<ImageInfo, Failure> {
    Ok(match docker.image(reference)? {
        Some(image) => image,
        None if args.pull => {
            let status = docker
                .command()
                .args(["pull", reference])
                .stdin(Stdio::null())
                .status()
                .map_err(|e| Error::not_started(format!("cannot run docker pull: {e}")))?;
            match (status.success(), docker.image(reference)?) {
                (true, Some(image)) => image,
                _ => {
                    return Err(
                        Error::not_started(format!("could not pull image {}", reference)).into(),
                    );
                }
            }
        }
        None => {
            return Err(Error::not_started(format!(
                "image {} is not present locally (tapir never pulls unless asked)\n  fix: build it (`docker build -t {} .`), or pass --pull",
                reference, reference
            ))
            .into());
        }
    })
}

/// The image as apptainer takes it, with what is known about it: a sandbox folder or a
/// SIF file (hashed, for the record), an image of the local Docker engine (inspected
/// there), or a registry reference (only with `--pull`: apptainer would download it).
fn apptainer_image(
    args: &RunArgs,
    docker: Option<&Docker>,
    reference: &str,
    task_dir: &Path,
) -> std::result::Result<(ImageInfo, ImageRef), Failure> {
    let in_docker = |r: &str| docker.and_then(|d| d.image(r).ok().flatten());
    // A plain reference is looked up in Docker while classifying it; keep what was found.
    let mut found = None;
    let image_ref = ImageRef::parse(reference, task_dir, |r| {
        found = in_docker(r);
        found.is_some()
    });
    let info = match &image_ref {
        ImageRef::DockerDaemon(r) => found.or_else(|| in_docker(r)).ok_or_else(|| {
            Error::not_started(format!(
                "image {r} is not in the local Docker engine (docker-daemon: needs it there)\n  fix: build or load it into Docker, or give a sandbox folder or .sif file as the task's image"
            ))
        })?,
        ImageRef::Sandbox(dir) => ImageInfo {
            id: format!("sandbox:{}", dir.display()),
            ..ImageInfo::default()
        },
        ImageRef::Sif(path) => {
            let id = sha256_file(path).map_err(|e| {
                Error::not_started(format!(
                    "image {}: {e}\n  fix: give an existing .sif file or sandbox folder (relative paths are taken from the task file's folder)",
                    path.display()
                ))
            })?;
            ImageInfo {
                id: format!("sha256:{id}"),
                ..ImageInfo::default()
            }
        }
        ImageRef::Docker(_) | ImageRef::Oras(_) if !args.pull => {
            return Err(Error::not_started(format!(
                "image {reference} is not local (not a sandbox folder, not a .sif file, not in the Docker engine); apptainer would download it\n  fix: pass --pull to allow that, or build the image locally"
            ))
            .into());
        }
        ImageRef::Docker(_) | ImageRef::Oras(_) => ImageInfo {
            id: image_ref.argument(),
            ..ImageInfo::default()
        },
    };
    Ok((info, image_ref))
}

/// The sha256 of a file, read in 64 KiB pieces (SIF images are large).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Template env defaults with secret-looking names are masked before they are recorded
/// (an inline template may carry one rendered from `{{ env.X }}`).
fn mask_template_secrets(mut template: serde_json::Value) -> serde_json::Value {
    if let Some(env) = template.get_mut("env").and_then(|e| e.as_array_mut()) {
        for var in env {
            let secret = var["name"].as_str().is_some_and(plan::is_secret_name);
            if secret && var.get("value").is_some() {
                var["value"] = serde_json::Value::from(plan::MASK);
            }
        }
    }
    template
}

/// The template: inline in the task, from `--container-file`, or from the image's
/// `/processing-container.json` (read once per image id, then cached).
fn template_for(
    args: &RunArgs,
    read_image_file: &dyn Fn() -> Result<Option<Vec<u8>>>,
    loaded: &LoadedTask,
) -> std::result::Result<(Template, String), Failure> {
    let identifier = match &loaded.task.template {
        TemplateRef::Inline(template) => return Ok(((**template).clone(), "inline".to_string())),
        TemplateRef::Identifier(identifier) => identifier,
    };
    let (container, source) = match &args.container_file {
        Some(path) => {
            let report = check_file(path, KindRule::Forced(Kind::ProcessingContainer))?;
            (
                read_container(report, &path.display().to_string())?,
                format!("file:{}", path.display()),
            )
        }
        None => (
            container_from_image(read_image_file, &loaded.task.image)?,
            "image".to_string(),
        ),
    };
    let identifiers: Vec<String> = container
        .templates
        .iter()
        .map(|t| t.identifier.clone())
        .collect();
    match container
        .templates
        .into_iter()
        .find(|t| t.identifier == *identifier)
    {
        Some(template) => Ok((template, source)),
        None => Err(Failure::Problems(
            vec![Problem {
                message: format!(
                    "template `{identifier}` is not in {}",
                    if source == "image" {
                        format!(
                            "the image's /processing-container.json ({})",
                            loaded.task.image
                        )
                    } else {
                        source.clone()
                    }
                ),
                fix: match did_you_mean(identifier, identifiers.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`? templates: {}", identifiers.join(", ")),
                    None => format!("templates there: {}", identifiers.join(", ")),
                },
                pointer: Some("/taskTemplate".into()),
            }],
            Box::new(LoadedTask {
                task: loaded.task.clone(),
                document: loaded.document.clone(),
                sha256: loaded.sha256.clone(),
                warnings: Vec::new(),
            }),
        )),
    }
}

fn read_container(
    report: FileReport,
    name: &str,
) -> std::result::Result<ProcessingContainer, Failure> {
    if !report.is_valid() {
        return Err(Failure::Report(
            Box::new(report),
            format!("{name} is not a valid processing-container.json"),
        ));
    }
    let value = report
        .document
        .as_ref()
        .map(|d| d.value.clone())
        .unwrap_or_default();
    model::from_value(&value, "processing-container.json")
        .map_err(|m| Failure::Message(Error::not_started(m)))
}

fn container_from_image(
    read_image_file: &dyn Fn() -> Result<Option<Vec<u8>>>,
    reference: &str,
) -> std::result::Result<ProcessingContainer, Failure> {
    let bytes = read_image_file()?.ok_or_else(|| {
        Error::not_started(format!(
            "image {reference} has no /processing-container.json, so template identifiers cannot be looked up in it\n  fix: give the template inline in the task (`\"taskTemplate\": {{…}}`), or pass --container-file PATH"
        ))
    })?;
    let name = format!("{reference}:/processing-container.json");
    let source = crate::source::decode(Path::new(&name), bytes)
        .map_err(|_| Error::not_started(format!("{name} is not UTF-8 text")))?;
    read_container(
        check_source(
            Source::new(&name, source.text),
            KindRule::Forced(Kind::ProcessingContainer),
        ),
        &name,
    )
}

/// The image's `/processing-container.json`, read without running the image and cached
/// per image id (ids are content hashes, so a cached copy never goes stale). `Ok(None)`
/// when the image has none.
pub fn processing_container_bytes(
    docker: &Docker,
    reference: &str,
    image: &ImageInfo,
) -> Result<Option<Vec<u8>>> {
    let cache = cache_dir().map(|d| {
        d.join("processing-container")
            .join(format!("{}.json", image.id.trim_start_matches("sha256:")))
    });
    if let Some(bytes) = cache.as_ref().and_then(|p| std::fs::read(p).ok()) {
        return Ok(Some(bytes));
    }
    let bytes = docker.read_file_from_image(reference, "/processing-container.json")?;
    if let (Some(path), Some(bytes)) = (&cache, &bytes) {
        write_cache(path, bytes);
    }
    Ok(bytes)
}

/// `$XDG_CACHE_HOME/tapir` or `~/.cache/tapir`.
fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|d| d.join("tapir"))
}

/// Best effort: a cache that cannot be written only costs time on the next run.
fn write_cache(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(mut file) = tempfile::NamedTempFile::new_in(dir)
        && file.write_all(bytes).is_ok()
    {
        let _ = file.persist(path);
    }
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

/// Reports a failure before the container ran, records it, and gives exit 125.
fn not_started(failure: Failure, record: &mut RunRecord, run_dir: Option<&Path>, p: Printer) -> u8 {
    let message = match failure {
        Failure::Report(report, message) => {
            let file = report.path.display().to_string();
            for d in &report.diagnostics {
                output::stderr(&p.diagnostic(&file, report.source(), d));
            }
            message
        }
        Failure::Problems(problems, loaded) => {
            let file = loaded.document.source.path.display().to_string();
            for problem in &problems {
                let mut d = Diagnostic::error("cannot-run", problem.message.clone())
                    .with_fix(problem.fix.clone());
                if let Some(pointer) = &problem.pointer {
                    d = d
                        .at_pointer(pointer.clone())
                        .at(loaded.document.value_position(pointer));
                }
                output::stderr(&p.diagnostic(&file, Some(&loaded.document.source), &d));
            }
            problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        }
        Failure::Message(e) => {
            output::stderr(&format!("{} {e}\n", p.red("error:")));
            e.to_string()
        }
    };
    record.status = Status::EngineError;
    record.message = Some(message);
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
    exit::NOT_STARTED
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Quotes a word for a POSIX shell when it needs it, so printed commands can be pasted.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn command_line(program: &Path, rendered: &RenderedRun) -> String {
    std::iter::once(program.display().to_string())
        .chain(rendered.argv.iter().cloned())
        .map(|w| shell_quote(&w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The version of the `run --dry-run --format json` document: fields may be added, and
/// existing ones keep their meaning while it stays 1.
pub const DRY_RUN_FORMAT_VERSION: u32 = 1;

fn dry_run_json(prepared: &Prepared, program: &Path, rendered: &RenderedRun) -> String {
    let value = serde_json::json!({
        "format_version": DRY_RUN_FORMAT_VERSION,
        "plan": prepared.plan,
        "image": {"reference": prepared.plan.image, "id": prepared.image.id, "repo_digests": prepared.image.repo_digests},
        "argv": std::iter::once(program.display().to_string()).chain(rendered.argv.iter().cloned()).collect::<Vec<_>>(),
        "environment": rendered.secret_env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        "template": prepared.template,
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
        format!("{} ({})", plan.image, prepared.image.id),
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
                if prepared.image.user.is_empty() {
                    "root"
                } else {
                    &prepared.image.user
                }
            ),
        },
    );
    let plan_value = serde_json::to_value(plan).unwrap_or_default();
    for (label, text) in super::show::plan_rows(&plan_value) {
        row(&mut out, label, text);
    }
    row(
        &mut out,
        "command",
        match &plan.command {
            Some(c) => format!(
                "{}  (from the {})",
                c.iter()
                    .map(|w| shell_quote(w))
                    .collect::<Vec<_>>()
                    .join(" "),
                plan.command_source
            ),
            None => format!("the image's CMD: {:?}", prepared.image.cmd),
        },
    );
    row(&mut out, "argv", command_line(program, rendered));
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
) -> Result<u8> {
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
            let failure = Failure::Message(Error::not_started(format!(
                "cannot create output folder {} for channel `{channel}`: {e}",
                path.display(),
            )));
            return Ok(not_started(failure, &mut record, Some(run_dir), p));
        }
    }
    let engine = match backend {
        Backend::Docker(docker) => Engine::Docker {
            docker: docker.clone(),
            container: docker::container_name(&record.id),
        },
        Backend::Apptainer { .. } => {
            let scratch = run_dir.join(SCRATCH_DIR);
            if let Err(e) = std::fs::create_dir_all(&scratch) {
                clear(spinner.as_ref());
                let failure = Failure::Message(Error::not_started(format!(
                    "cannot create the scratch folder {}: {e}",
                    scratch.display()
                )));
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
        return detach(&job, run_dir, &record, &prepared.plan.task_name, p);
    }
    let code = execute::run_to_end(
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
    Ok(code)
}

/// Hands the job to a background `tapir supervise` and returns once the container has
/// started (like `docker run --detach`), or with 125 if it could not start.
///
/// The supervisor reads everything but the secrets from the record just written; secret
/// values travel in its environment, which only the same user (and root) can read, and
/// never touch the disk.
fn detach(job: &Job, run_dir: &Path, record: &RunRecord, task: &str, p: Printer) -> Result<u8> {
    let fail = |message: String| {
        let mut record = record.clone();
        let failure = Failure::Message(Error::not_started(message));
        Ok(not_started(failure, &mut record, Some(run_dir), p))
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            return fail(format!(
                "cannot find tapir's own executable for the supervisor: {e}"
            ));
        }
    };
    let log_path = run_dir.join(SUPERVISOR_LOG);
    let log = match std::fs::File::create(&log_path) {
        Ok(file) => file,
        Err(e) => return fail(format!("cannot create {}: {e}", log_path.display())),
    };
    let mut command = Command::new(exe);
    command
        .arg("supervise")
        .arg(run_dir)
        .args(["--grace", &job.grace_seconds.to_string()])
        .envs(job.secret_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if job.keep {
        command.arg("--keep");
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return fail(format!("cannot start the supervisor: {e}")),
    };
    // Wait until the container has started or the supervisor has ended (a task that
    // fails to start, or one so short it is already over).
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let ended = RunRecord::load(run_dir).ok();
            return Ok(match ended {
                Some(r) if r.status == Status::EngineError => {
                    output::stderr(&format!(
                        "{} {}\ntapir: the task did not start; record: {}\n",
                        p.red("error:"),
                        r.message.unwrap_or_default(),
                        run_dir.display()
                    ));
                    exit::NOT_STARTED
                }
                Some(r) if r.status != Status::Running => {
                    let ended = format!(
                        ", and it has already ended: {}",
                        r.message.unwrap_or_default()
                    );
                    announce_detached(record, run_dir, task, &ended);
                    exit::OK
                }
                // The supervisor died before it could record anything (a crash, a kill,
                // an engine it could not reach): this run will never start.
                _ => {
                    let mut record = record.clone();
                    let failure = Failure::Message(Error::not_started(format!(
                        "the background supervisor ended without running the task; its messages are in {}",
                        log_path.display()
                    )));
                    not_started(failure, &mut record, Some(run_dir), p)
                }
            });
        }
        let started = match &job.engine {
            Engine::Docker { docker, container } => {
                docker.container(container).is_some_and(|s| s.started)
            }
            // A process has started once the supervisor has recorded its pid.
            Engine::Apptainer { .. } => {
                RunSummary::load(run_dir).is_ok_and(|r| r.pid != record.pid)
            }
        };
        if started {
            announce_detached(record, run_dir, task, "");
            return Ok(exit::OK);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The background supervisor's own diagnostics (its stderr), inside the run folder.
pub const SUPERVISOR_LOG: &str = "supervisor.log";

/// A run's scratch space inside its run folder (apptainer's /tmp, /var/tmp and home).
pub const SCRATCH_DIR: &str = "scratch";

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
