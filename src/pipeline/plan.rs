//! Planning a pipeline, purely: load the pipeline file, every task it refers to and the
//! `--conf` file; check ids, dependencies, cycles, channels and env; and, when nothing is
//! wrong, produce the order of the tasks (levels) and the folders tapir will manage for
//! each of them. No engine is asked and nothing is written; the filesystem is only read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;
use serde_json::Value;

use crate::backend::{Mode, engine_args};
use crate::diagnostic::{Diagnostic, Severity, did_you_mean, pointer_join};
use crate::error::Error;
use crate::model::{self, EnvBreach, ProcessingContainer, Task, Template, TemplateRef};
use crate::pipeline::graph::{Edge, find_cycles, levels};
use crate::pipeline::model::{
    Conf, ConfVar, EnvEntry, Execution, ExecutionDefaults, Pipeline, Profile, RunOptions, RunUser,
    TaskForm, TaskRef, ValueFrom,
};
use crate::pipeline::record::{JOURNAL_FILE, RUNS_SUBDIR};
use crate::pipeline::values::{FromValue, ValueSource};
use crate::record::store::RECORD_FILE;
use crate::resolve::env_input::EnvOverride;
use crate::resolve::plan::PlannedBind;
use crate::resolve::run_options::{GpuRequest, parse_gpus, parse_shm_size};
use crate::schema::{self, Kind};
use crate::source::{self, Document, LoadFailure, Source, SpanTree};
use crate::validation::{FileReport, KindRule, check_file};

/// Task ids that would collide with the pipeline run folder's own entries.
const RESERVED_TASK_IDS: &[&str] = &[RUNS_SUBDIR, RECORD_FILE, JOURNAL_FILE];

/// The Task fields Kaapana's `task_form` may replace that tapir does not: the pipeline
/// defines the channels, the template and the configuration.
const TASK_FIELDS_NOT_REPLACED: &[&str] = &[
    "name",
    "taskTemplate",
    "api_version",
    "inputs",
    "outputs",
    "config",
];

/// The variable tapir sets for every step of a `ccat` pipeline (CCAT container contract).
pub(crate) const WORKFLOW_OUTPUT_DIR: &str = "WORKFLOW_OUTPUT_DIR";

/// Findings about one file (the pipeline, a task file, a processing-container.json, the
/// conf file), in the order they were found.
#[derive(Debug)]
pub(crate) struct FileFindings {
    pub path: PathBuf,
    /// The text, for source snippets.
    pub source: Option<Source>,
    pub diagnostics: Vec<Diagnostic>,
}

/// What checking a pipeline found: every file's findings, and the plan when valid.
#[derive(Debug)]
pub(crate) struct Checked {
    pub pipeline: PathBuf,
    pub files: Vec<FileFindings>,
    pub plan: Option<PipelinePlan>,
}

impl Checked {
    pub(crate) fn count(&self, severity: Severity) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.diagnostics)
            .filter(|d| d.severity == severity)
            .count()
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.count(Severity::Error) == 0
    }
}

/// The pipeline as it will run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PipelinePlan {
    pub name: String,
    pub profile: Profile,
    /// Whose defaults fill the execution profiles: Kaapana's operator's when the
    /// pipeline asks for `profile: kaapana` by name (file or `--profile`), else tapir's.
    pub execution_defaults: ExecutionDefaults,
    /// Profile `ccat`: the manifests' `sub_group_key` (empty when the pipeline has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_group_key: Option<String>,
    /// Profile `ccat`: the manifests' roles of raw files by pattern.
    #[serde(skip_serializing_if = "crate::pipeline::ccat::InputRoles::is_empty")]
    pub input_roles: crate::pipeline::ccat::InputRoles,
    /// Profile `ccat`: the manifests' `environment` (serialized masked).
    #[serde(skip_serializing_if = "crate::pipeline::ccat::Environment::is_empty")]
    pub environment: crate::pipeline::ccat::Environment,
    /// Where the results are copied when the run ends (the file's `archive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<crate::pipeline::archive::PlannedArchive>,
    /// Remove the managed output folders when the whole run succeeded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clean_succeeded: bool,
    /// The run's parameters: given, else defaulted (secret-looking names masked); only
    /// when checked for a run (`--param`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Images built before any task starts, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<crate::pipeline::build::PlannedBuild>,
    /// Task ids by level: every task of a level depends only on tasks of earlier levels,
    /// so the tasks of one level can run in parallel.
    pub levels: Vec<Vec<String>>,
    /// In the order of `levels`.
    pub tasks: Vec<PlannedTask>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlannedTask {
    pub id: String,
    /// 1-based.
    pub level: usize,
    /// The task file, or `inline`.
    pub task: String,
    pub image: String,
    pub template: String,
    /// Where the channels were read from: `inline`, `file:<path>`, or `None` when only
    /// the image's /processing-container.json knows them.
    pub template_source: Option<String>,
    /// The task fields the conf file's `task_form` entry replaces (`image`, `command`,
    /// `resources`), as Kaapana's operator lets it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conf_overrides: Vec<&'static str>,
    pub depends_on: Vec<PlannedDependency>,
    pub folders: Vec<PlannedFolder>,
    /// Overrides from the pipeline and the conf file, highest precedence last applied.
    pub env: Vec<PlannedEnv>,
    pub execution: Execution,
    /// `tapir run`'s options for the task's attempts, from the pipeline file (shown only
    /// when one differs from `run`'s default).
    #[serde(skip_serializing_if = "PlannedRunOptions::is_default")]
    pub run_options: PlannedRunOptions,
    /// Profile `ccat`: the container's `$WORKFLOW_OUTPUT_DIR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_output_dir: Option<String>,
    /// Profile `ccat`: the `config` of the step's manifest.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_config: Option<Value>,
    /// The `builds` entry whose image the task runs in (`image` is its tag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_from: Option<String>,
    /// A later task reads values this task writes to `$TAPIR_OUTPUTS_FILE`
    /// (`value_from: {task_output: …}`): tapir gives it that file.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publishes_values: bool,
    /// What running the task needs beyond what `validate` shows (values unmasked).
    #[serde(skip)]
    pub runnable: RunnableTask,
}

/// A task's `run_options` with the pipeline's under them and `tapir run`'s defaults under
/// both. `pipeline run` flags are applied over these when an attempt starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PlannedRunOptions {
    pub pull: bool,
    pub user: RunUser,
    pub keep: bool,
    /// The pipeline's binds, then the task's (one at the same container path replacing
    /// the pipeline's), host paths resolved against the pipeline file's folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<PlannedRunBind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub grace: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<GpuRequest>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub engine_args: Vec<String>,
}

/// `tapir run --grace`'s default.
pub(crate) const DEFAULT_GRACE_SECONDS: u32 = 10;

impl Default for PlannedRunOptions {
    fn default() -> Self {
        Self {
            pull: false,
            user: RunUser::Invoker,
            keep: false,
            binds: Vec::new(),
            entrypoint: None,
            network: None,
            grace: DEFAULT_GRACE_SECONDS,
            shm_size_bytes: None,
            gpus: None,
            engine_args: Vec::new(),
        }
    }
}

impl PlannedRunOptions {
    pub(crate) fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// `task`'s options over `pipeline`'s, field by field; binds resolved against
    /// `base_dir` (only valid ones: the check reports the others).
    fn effective(task: &RunOptions, pipeline: &RunOptions, base_dir: &Path) -> Self {
        let defaults = Self::default();
        let mut binds: Vec<PlannedRunBind> = Vec::new();
        for (list, source) in [(&pipeline.bind, "pipeline"), (&task.bind, "task")] {
            for text in list.iter().flatten() {
                let Ok(bind) = parse_file_bind(text, base_dir) else {
                    continue;
                };
                binds.retain(|b| b.bind.container_path != bind.container_path);
                binds.push(PlannedRunBind { bind, source });
            }
        }
        Self {
            pull: task.pull.or(pipeline.pull).unwrap_or(defaults.pull),
            user: task.user.or(pipeline.user).unwrap_or(defaults.user),
            keep: task.keep.or(pipeline.keep).unwrap_or(defaults.keep),
            binds,
            entrypoint: task
                .entrypoint
                .clone()
                .or_else(|| pipeline.entrypoint.clone()),
            network: task.network.clone().or_else(|| pipeline.network.clone()),
            grace: task.grace.or(pipeline.grace).unwrap_or(defaults.grace),
            // Only values that read well: the check reports the others.
            shm_size_bytes: task
                .shm_size
                .as_ref()
                .or(pipeline.shm_size.as_ref())
                .and_then(|text| parse_shm_size(text).ok()),
            gpus: task
                .gpus
                .as_ref()
                .or(pipeline.gpus.as_ref())
                .and_then(|text| parse_gpus(text).ok()),
            engine_args: task
                .engine_args
                .clone()
                .or_else(|| pipeline.engine_args.clone())
                .unwrap_or_default(),
        }
    }
}

/// One `run_options.bind` entry, resolved, with the level that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PlannedRunBind {
    #[serde(flatten)]
    pub bind: PlannedBind,
    /// `pipeline` (the pipeline's `run_options`) or `task` (the task's).
    pub source: &'static str,
}

/// A `run_options.bind` entry as `run --bind` reads it, HOST relative to `base_dir` (the
/// pipeline file's folder). `Err` is (message, fix).
fn parse_file_bind(text: &str, base_dir: &Path) -> Result<PlannedBind, (String, String)> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    crate::resolve::plan::parse_bind(text, base_dir, home.as_deref()).map_err(|e| {
        // `parse_bind` words its errors for the command line.
        let (message, fix) = e.split_once("\n  fix: ").unwrap_or((&e, ""));
        (
            message.replacen("--bind ", "bind ", 1),
            fix.replace("--bind ", ""),
        )
    })
}

/// The task as running it needs it: the task file's content, where its relative paths
/// resolve, and the override values (secrets unmasked: never serialized).
#[derive(Debug, Clone)]
pub(crate) struct RunnableTask {
    /// The task as written (its `{{ env.X }}` templating not rendered: `run` renders it),
    /// with the conf file's `image`, `command` and `resources` in place of its own.
    pub task: Task,
    /// The task file's own relative host paths resolve against this folder.
    pub base_dir: PathBuf,
    /// The pipeline task's `container_file`, resolved (as `run --container-file`).
    pub container_file: Option<PathBuf>,
    /// The pipeline's `env` with the pipeline task's `env` over it, then the conf file's
    /// `task_form` variables (which win over both).
    pub pipeline_env: Vec<(String, String)>,
    pub conf_env: Vec<(String, String)>,
    /// The template when tapir knows it without the image (inline, or from a
    /// processing-container.json file): what `pipeline export` puts into a derived image.
    pub template: Option<Template>,
    /// The task's `value_from` variables (none of which `pipeline_env` has): they travel
    /// on the attempt's standard input, after the upstream values are read.
    pub value_from: Vec<FromValue>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlannedDependency {
    pub id: String,
    pub can_fail: bool,
    /// `depends_on`, `iochannel_maps`, or both.
    pub via: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlannedFolder {
    /// The channel, or the CCAT folder (`workspace`, `output`, …).
    pub channel: String,
    pub direction: FolderDirection,
    /// `true`: `path` is relative to the pipeline run folder and tapir creates it.
    pub managed: bool,
    pub path: String,
    /// For a mapped input: `task.channel` it comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The task file's own binding that the pipeline replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Profile `ccat`: the path inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FolderDirection {
    Input,
    Output,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlannedEnv {
    pub name: String,
    /// Masked (`***`) when the name looks like a secret.
    pub value: String,
    /// `pipeline-wide` (the pipeline's `env`), `pipeline` (the task's `env` in the
    /// pipeline file), `conf` (task_form) or `value_from`.
    pub source: &'static str,
    /// For `value_from`: what the value comes from (`param NAME`, `pipeline env NAME`,
    /// `task ID output NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A task as loaded for checking.
struct LoadedTask {
    task: Task,
    /// The task file, or `None` for an inline task.
    file: Option<PathBuf>,
    /// Relative host paths of the task's own bindings resolve against this folder.
    base_dir: PathBuf,
    /// The template, when tapir can read it without the image.
    template: Option<(Template, String)>,
}

impl LoadedTask {
    fn template_name(&self) -> String {
        match &self.task.template {
            TemplateRef::Identifier(id) => id.clone(),
            TemplateRef::Inline(t) => t.identifier.clone(),
        }
    }

    /// Declared channel names when the template is known, else the task's bound ones
    /// (`false`: not authoritative).
    fn channels(&self, inputs: bool) -> (Vec<String>, bool) {
        match &self.template {
            Some((t, _)) => {
                let list = if inputs { &t.inputs } else { &t.outputs };
                (list.iter().map(|m| m.name.clone()).collect(), true)
            }
            None => {
                let list = if inputs {
                    &self.task.inputs
                } else {
                    &self.task.outputs
                };
                (list.iter().map(|b| b.name.clone()).collect(), false)
            }
        }
    }
}

/// Checks a pipeline (and its conf file). `profile`, when given (`--profile`), replaces
/// the file's `profile`. `Err` only when the pipeline file or the conf file cannot be read
/// at all (exit 2).
pub(crate) fn check(
    pipeline_path: &Path,
    conf_path: Option<&Path>,
    profile: Option<Profile>,
) -> Result<Checked, Error> {
    check_with_params(pipeline_path, conf_path, profile, None)
}

/// [`check`], for a run given `params` (`pipeline run --param`): each must be declared,
/// every `required` one given (or defaulted), and the values fit where they arrive.
/// `None`: no run (`validate`): parameters show their defaults.
pub(crate) fn check_with_params(
    pipeline_path: &Path,
    conf_path: Option<&Path>,
    profile: Option<Profile>,
    params: Option<&[EnvOverride]>,
) -> Result<Checked, Error> {
    let mut checked = Checked {
        pipeline: pipeline_path.to_path_buf(),
        files: Vec::new(),
        plan: None,
    };
    let Some((document, pipeline_index)) =
        load_checked(pipeline_path, &mut checked.files, schema::check_pipeline)?
    else {
        return Ok(checked);
    };
    let mut pipeline: Pipeline = match model::from_value(&document.value, "pipeline") {
        Ok(p) => p,
        Err(message) => {
            checked.files[pipeline_index]
                .diagnostics
                .push(Diagnostic::error("internal", message));
            return Ok(checked);
        }
    };
    // Kaapana's operator behaviour is what a pipeline asks for by naming the profile; a
    // pipeline that names none keeps tapir's defaults (and the same folder layout).
    let named = match profile {
        Some(profile) => Some(profile),
        None => document
            .value
            .get("profile")
            .and_then(|p| serde_json::from_value(p.clone()).ok()),
    };
    let execution_defaults = match named {
        Some(Profile::Kaapana) => ExecutionDefaults::Kaapana,
        _ => ExecutionDefaults::Tapir,
    };
    if let Some(profile) = profile {
        pipeline.profile = profile;
    }
    let conf = match conf_path {
        None => None,
        Some(path) => match load_checked(path, &mut checked.files, schema::check_pipeline_conf)? {
            None => return Ok(checked),
            Some((doc, index)) => match model::from_value::<Conf>(&doc.value, "conf file") {
                Ok(conf) => Some((doc, index, conf)),
                Err(message) => {
                    checked.files[index]
                        .diagnostics
                        .push(Diagnostic::error("internal", message));
                    return Ok(checked);
                }
            },
        },
    };
    let mut planner = Planner {
        document: &document,
        pipeline: &pipeline,
        base_dir: pipeline_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        files: std::mem::take(&mut checked.files),
        pipeline_file: pipeline_index,
        ids: BTreeMap::new(),
        loaded: Vec::new(),
        edges: Vec::new(),
        execution_defaults,
        task_files: HashMap::new(),
        containers: HashMap::new(),
        reported: HashSet::new(),
        params,
    };
    planner.load_tasks();
    planner.check_ids();
    planner.collect_edges();
    let order = match planner.check_cycles() {
        true => Some(levels(pipeline.tasks.len(), &planner.edges)),
        false => None,
    };
    planner.check_mappings();
    planner.check_run_options();
    planner.check_env(conf.as_ref().map(|(d, i, c)| (d, *i, c)));
    planner.check_params();
    planner.check_value_from();
    planner.check_archive();
    planner.check_builds();
    if pipeline.profile == Profile::Ccat {
        planner.check_ccat(conf.as_ref().map(|(_, _, c)| c));
    } else {
        planner.check_kaapana();
    }
    for file in &mut planner.files {
        sort_by_position(&mut file.diagnostics);
    }
    let valid = planner
        .files
        .iter()
        .flat_map(|f| &f.diagnostics)
        .all(|d| d.severity != Severity::Error);
    let plan = match (valid, order) {
        (true, Some(levels)) => planner.plan(&levels, conf.as_ref().map(|(_, _, c)| c)),
        _ => None,
    };
    checked.files = planner.files;
    checked.plan = plan;
    Ok(checked)
}

/// Reads, parses and schema-checks a file, adding its findings to `files`. `Ok(None)`
/// when it is not a document that later checks can read (its findings say why).
fn load_checked(
    path: &Path,
    files: &mut Vec<FileFindings>,
    schema_check: impl Fn(&Document) -> Vec<Diagnostic>,
) -> Result<Option<(Document, usize)>, Error> {
    let index = files.len();
    let source = match source::read_text(path) {
        Ok(source) => source,
        Err(LoadFailure::Io(e)) => return Err(e),
        Err(LoadFailure::Content(d)) => {
            files.push(FileFindings {
                path: path.to_path_buf(),
                source: None,
                diagnostics: vec![*d],
            });
            return Ok(None);
        }
    };
    let (document, mut diagnostics) = match source::parse(source) {
        Ok(parsed) => parsed,
        Err((source, d)) => {
            files.push(FileFindings {
                path: path.to_path_buf(),
                source: Some(source),
                diagnostics: vec![*d],
            });
            return Ok(None);
        }
    };
    if !document.value.is_object() {
        diagnostics.push(
            Diagnostic::error("not-an-object", "the file must hold a JSON object")
                .at(document.value_position(""))
                .with_fix("wrap the content in `{ … }`"),
        );
    } else {
        diagnostics.extend(schema_check(&document));
    }
    sort_by_position(&mut diagnostics);
    let usable = diagnostics.iter().all(|d| d.severity != Severity::Error);
    files.push(FileFindings {
        path: path.to_path_buf(),
        source: Some(document.source.clone()),
        diagnostics,
    });
    Ok(usable.then_some((document, index)))
}

struct Planner<'a> {
    document: &'a Document,
    pipeline: &'a Pipeline,
    base_dir: PathBuf,
    files: Vec<FileFindings>,
    /// Index of the pipeline file in `files`.
    pipeline_file: usize,
    /// Task id → index of its first definition.
    ids: BTreeMap<&'a str, usize>,
    /// Per task: `None` when it could not be loaded (its findings say why).
    loaded: Vec<Option<LoadedTask>>,
    edges: Vec<Edge>,
    execution_defaults: ExecutionDefaults,
    /// Each task file is read and checked once, however many tasks run it (its
    /// findings once, too): `None` when it is unusable.
    task_files: HashMap<PathBuf, Option<(Task, usize)>>,
    /// Each processing-container.json likewise: `None` when it is unusable.
    containers: HashMap<PathBuf, Option<Rc<ProcessingContainer>>>,
    /// (findings file, what) already reported there: a task file run by many tasks
    /// gets each of its findings once.
    reported: HashSet<(usize, String)>,
    /// `pipeline run --param` values; `None` when not running.
    params: Option<&'a [EnvOverride]>,
}

impl<'a> Planner<'a> {
    fn report(&mut self, d: Diagnostic) {
        self.files[self.pipeline_file].diagnostics.push(d);
    }

    /// An error about the pipeline file at the value of `pointer`.
    fn error_at(&mut self, code: &'static str, pointer: &str, message: String, fix: String) {
        let at = self.document.value_position(pointer);
        self.report(
            Diagnostic::error(code, message)
                .at_pointer(pointer)
                .at(at)
                .with_fix(fix),
        );
    }

    fn warning_at(&mut self, code: &'static str, pointer: &str, message: String, fix: String) {
        let at = self.document.value_position(pointer);
        self.report(
            Diagnostic::warning(code, message)
                .at_pointer(pointer)
                .at(at)
                .with_fix(fix),
        );
    }

    fn task_ids(&self) -> Vec<&'a str> {
        self.pipeline.tasks.iter().map(|t| t.id.as_str()).collect()
    }

    fn load_tasks(&mut self) {
        for index in 0..self.pipeline.tasks.len() {
            let loaded = self.load_task(index);
            self.loaded.push(loaded);
        }
    }

    fn load_task(&mut self, index: usize) -> Option<LoadedTask> {
        let entry = &self.pipeline.tasks[index];
        let task_pointer = format!("/tasks/{index}/task");
        let (task, file, base_dir, findings_at) = match &entry.task {
            TaskRef::File(relative) => {
                let path = self.base_dir.join(relative);
                if !path.is_file() {
                    let why = if path.exists() {
                        "is not a file"
                    } else {
                        "does not exist"
                    };
                    let resolved = if path == Path::new(relative) {
                        String::new()
                    } else {
                        format!(" ({})", path.display())
                    };
                    self.error_at(
                        "task-file",
                        &task_pointer,
                        format!("task file `{relative}` {why}{resolved}"),
                        format!(
                            "paths are relative to the pipeline file's folder ({}); give a task.json, or the task inline",
                            display_dir(&self.base_dir)
                        ),
                    );
                    return None;
                }
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                if let Some(cached) = self.task_files.get(&path) {
                    let (task, at) = cached.clone()?;
                    (task, Some(path), base, at)
                } else {
                    let report = match check_file(&path, KindRule::Forced(Kind::Task)) {
                        Ok(report) => report,
                        Err(e) => {
                            self.error_at(
                                "task-file",
                                &task_pointer,
                                format!("cannot read task file: {e}"),
                                "check the path and its permissions".into(),
                            );
                            return None;
                        }
                    };
                    let (task, findings) = read_report(report)?;
                    self.files.push(findings);
                    let at = self.files.len() - 1;
                    self.task_files
                        .insert(path.clone(), task.clone().map(|t| (t, at)));
                    (task?, Some(path), base, at)
                }
            }
            TaskRef::Inline(value) => {
                let sub = sub_document(self.document, &task_pointer, value);
                let mut found: Vec<Diagnostic> = crate::checks::check(&sub, Kind::Task)
                    .into_iter()
                    .filter(|d| !is_bound_by_pipeline(d))
                    .map(|mut d| {
                        d.pointer = format!("{task_pointer}{}", d.pointer);
                        d
                    })
                    .collect();
                let failed = found.iter().any(|d| d.severity == Severity::Error);
                self.files[self.pipeline_file]
                    .diagnostics
                    .append(&mut found);
                if failed {
                    return None;
                }
                let task: Task = match model::from_value(value, "inline task") {
                    Ok(task) => task,
                    Err(message) => {
                        self.report(Diagnostic::error("internal", message));
                        return None;
                    }
                };
                (task, None, self.base_dir.clone(), self.pipeline_file)
            }
        };
        let mut task = task;
        match local_image_path(&base_dir, &task.image) {
            Ok(Some(path)) => task.image = path,
            Ok(None) => {}
            Err(path) => {
                let message = format!(
                    "image `{}` is a path, and nothing is there ({path})",
                    task.image
                );
                let fix = "relative image paths are taken from the task file's folder, as `tapir run` takes them; build the image there or fix the path";
                let d = Diagnostic::error("image-path", message).with_fix(fix);
                match &file {
                    Some(_) => {
                        if self
                            .reported
                            .insert((findings_at, format!("image {}", task.image)))
                        {
                            let position = self.files[findings_at]
                                .source
                                .as_ref()
                                .and_then(|s| parse_position(s, "/image"));
                            self.files[findings_at]
                                .diagnostics
                                .push(d.at_pointer("/image").at(position));
                        }
                    }
                    None => {
                        let pointer = format!("/tasks/{index}/task/image");
                        let position = self.document.value_position(&pointer);
                        self.report(d.at_pointer(pointer).at(position));
                    }
                }
                return None;
            }
        }
        let template = self.template_of(index, &task, file.as_deref(), findings_at)?;
        Some(LoadedTask {
            task,
            file,
            base_dir,
            template,
        })
    }

    /// The task's template when it is known without the image: inline, from the task's
    /// `container_file`, or from a processing-container.json next to the task file.
    /// `None` (outer): the template cannot be used (an error was reported).
    fn template_of(
        &mut self,
        index: usize,
        task: &Task,
        task_file: Option<&Path>,
        findings_at: usize,
    ) -> Option<Option<(Template, String)>> {
        let identifier = match &task.template {
            TemplateRef::Inline(t) => return Some(Some(((**t).clone(), "inline".into()))),
            TemplateRef::Identifier(identifier) => identifier.clone(),
        };
        let entry = &self.pipeline.tasks[index];
        let (path, explicit) = match &entry.container_file {
            Some(relative) => (self.base_dir.join(relative), true),
            None => {
                // Found as `tapir validate` finds it: beside the task file, or above its
                // `tasks/` folder; beside the pipeline file for an inline task.
                let sibling = match task_file {
                    Some(file) => crate::validation::sibling_container(file),
                    None => Some(self.base_dir.join("processing-container.json"))
                        .filter(|p| p.is_file()),
                };
                let Some(sibling) = sibling else {
                    return Some(None);
                };
                (sibling, false)
            }
        };
        let pointer = format!("/tasks/{index}/container_file");
        if explicit && !path.is_file() {
            self.error_at(
                "container-file",
                &pointer,
                format!("container file {} does not exist", path.display()),
                format!(
                    "paths are relative to the pipeline file's folder ({})",
                    display_dir(&self.base_dir)
                ),
            );
            return None;
        }
        let container = self.load_container(&path, &pointer)?;
        let label = format!("file:{}", path.display());
        let identifiers: Vec<&str> = container
            .templates
            .iter()
            .map(|t| t.identifier.as_str())
            .collect();
        if let Some(t) = container
            .templates
            .iter()
            .find(|t| t.identifier == identifier)
        {
            return Some(Some((t.clone(), label)));
        }
        let fix = match did_you_mean(&identifier, identifiers.iter().copied()) {
            Some(s) => format!(
                "did you mean `{s}`? templates there: {}",
                identifiers.join(", ")
            ),
            None => format!("templates there: {}", identifiers.join(", ")),
        };
        let message = format!("template `{identifier}` is not in {}", path.display());
        // The template identifier sits in the task file (or the inline task).
        let (doc_pointer, position) = match task_file {
            Some(_) => {
                let position = self.files[findings_at]
                    .source
                    .as_ref()
                    .and_then(|s| parse_position(s, "/taskTemplate"));
                ("/taskTemplate".to_string(), position)
            }
            None => {
                let pointer = format!("/tasks/{index}/task/taskTemplate");
                let position = self.document.value_position(&pointer);
                (pointer, position)
            }
        };
        let d = if explicit {
            Diagnostic::error("unknown-template", message).with_fix(fix)
        } else {
            Diagnostic::warning(
                "unknown-template",
                format!("{message} (next to the task file); its channels cannot be checked without the image"),
            )
            .with_fix(format!("{fix}; or set the task's `container_file` in the pipeline"))
        };
        // A task file run by many tasks gets its finding once.
        if task_file.is_none() || self.reported.insert((findings_at, identifier)) {
            self.files[findings_at]
                .diagnostics
                .push(d.at_pointer(doc_pointer).at(position));
        }
        if explicit { None } else { Some(None) }
    }

    /// A processing-container.json, read and checked once however many tasks use it
    /// (its findings once too). `None` when it is unusable (its findings say why).
    fn load_container(&mut self, path: &Path, pointer: &str) -> Option<Rc<ProcessingContainer>> {
        if let Some(cached) = self.containers.get(path) {
            return cached.clone();
        }
        let loaded = self.read_container(path, pointer);
        self.containers.insert(path.to_path_buf(), loaded.clone());
        loaded
    }

    fn read_container(&mut self, path: &Path, pointer: &str) -> Option<Rc<ProcessingContainer>> {
        let report = match check_file(path, KindRule::Forced(Kind::ProcessingContainer)) {
            Ok(report) => report,
            Err(e) => {
                self.error_at(
                    "container-file",
                    pointer,
                    format!("cannot read {e}"),
                    "check the path and its permissions".into(),
                );
                return None;
            }
        };
        let valid = report.is_valid();
        let value = report.document.as_ref().map(|d| d.value.clone());
        if !report.diagnostics.is_empty() {
            self.files.push(FileFindings {
                path: report.path.clone(),
                source: report.source().cloned(),
                diagnostics: report.diagnostics,
            });
        }
        if !valid {
            return None;
        }
        match model::from_value(&value.unwrap_or_default(), "processing-container.json") {
            Ok(c) => Some(Rc::new(c)),
            Err(message) => {
                self.report(Diagnostic::error("internal", message));
                None
            }
        }
    }

    fn check_ids(&mut self) {
        for (index, task) in self.pipeline.tasks.iter().enumerate() {
            if RESERVED_TASK_IDS.contains(&task.id.as_str()) {
                let pointer = format!("/tasks/{index}/id");
                let at = self.document.value_position(&pointer);
                self.files[self.pipeline_file].diagnostics.push(
                    Diagnostic::error(
                        "reserved-task-id",
                        format!(
                            "task id `{}` is reserved: a pipeline run folder holds `{RUNS_SUBDIR}/`, `{RECORD_FILE}` and `{JOURNAL_FILE}` next to the tasks' folders",
                            task.id
                        ),
                    )
                    .at_pointer(pointer)
                    .at(at)
                    .with_fix("rename the task"),
                );
            }
            match self.ids.get(task.id.as_str()) {
                Some(&first) => {
                    let pointer = format!("/tasks/{index}/id");
                    let related = self.document.value_position(&format!("/tasks/{first}/id"));
                    let at = self.document.value_position(&pointer);
                    self.files[self.pipeline_file].diagnostics.push(
                        Diagnostic::error(
                            "duplicate-task-id",
                            format!(
                                "task id `{}` is used twice; ids must be unique in a pipeline",
                                task.id
                            ),
                        )
                        .at_pointer(pointer)
                        .at(at)
                        .with_related("first used here", related)
                        .with_fix("rename one of the two (ids name the tasks' folders and runs)"),
                    );
                }
                None => {
                    self.ids.insert(task.id.as_str(), index);
                }
            }
        }
    }

    /// A reference to a task id: its index, or an error with a "did you mean".
    fn resolve_id(&mut self, id: &str, pointer: &str, what: &str) -> Option<usize> {
        if let Some(&index) = self.ids.get(id) {
            return Some(index);
        }
        let ids = self.task_ids();
        let fix = match did_you_mean(id, ids.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("task ids in this pipeline: {}", id_list(&ids)),
        };
        self.error_at(
            "unknown-task",
            pointer,
            format!("{what} `{id}` is not a task of this pipeline"),
            fix,
        );
        None
    }

    fn collect_edges(&mut self) {
        let pipeline = self.pipeline;
        for (index, task) in pipeline.tasks.iter().enumerate() {
            for (k, dep) in task.depends_on.iter().enumerate() {
                let pointer = format!("/tasks/{index}/depends_on/{k}/id");
                if let Some(upstream) = self.resolve_id(&dep.id, &pointer, "depends_on") {
                    self.edges.push(Edge {
                        task: index,
                        upstream,
                        pointer,
                        can_fail: dep.can_fail,
                        via: "depends_on",
                    });
                }
            }
            for (k, mapping) in task.iochannel_maps.iter().enumerate() {
                let pointer = format!("/tasks/{index}/iochannel_maps/{k}/upstream_task");
                if let Some(upstream) =
                    self.resolve_id(&mapping.upstream_task, &pointer, "upstream_task")
                {
                    self.edges.push(Edge {
                        task: index,
                        upstream,
                        pointer,
                        can_fail: false,
                        via: "iochannel_maps",
                    });
                }
            }
            // A value read from a task is a dependency on it, as a mapped channel is.
            for (name, entry) in &task.env {
                let EnvEntry::From {
                    value_from: ValueFrom::TaskOutput(output),
                } = entry
                else {
                    continue;
                };
                let pointer = format!(
                    "{}/value_from/task_output/task_id",
                    pointer_join(&format!("/tasks/{index}/env"), name)
                );
                if let Some(upstream) = self.resolve_id(&output.task_id, &pointer, "task_output") {
                    self.edges.push(Edge {
                        task: index,
                        upstream,
                        pointer,
                        can_fail: false,
                        via: "value_from",
                    });
                }
            }
        }
    }

    /// Reports every cycle at the edge that closes it. `true` when there is none.
    fn check_cycles(&mut self) -> bool {
        let cycles = find_cycles(self.pipeline.tasks.len(), &self.edges);
        for (path, edge) in &cycles {
            let edge = &self.edges[*edge];
            let names: Vec<&str> = path
                .iter()
                .map(|&i| self.pipeline.tasks[i].id.as_str())
                .collect();
            let (message, fix) = if path.len() == 2 {
                (
                    format!("task `{}` depends on itself", names[0]),
                    "remove this dependency".to_string(),
                )
            } else {
                (
                    format!(
                        "the tasks wait for each other in a cycle: {} (each runs after the one before it)",
                        names.join(" → ")
                    ),
                    format!(
                        "remove one of these dependencies, e.g. this one (`{}` runs after `{}`)",
                        self.pipeline.tasks[edge.task].id, self.pipeline.tasks[edge.upstream].id
                    ),
                )
            };
            let pointer = edge.pointer.clone();
            self.error_at("cycle", &pointer, message, fix);
        }
        cycles.is_empty()
    }

    fn check_mappings(&mut self) {
        let pipeline = self.pipeline;
        for (index, task) in pipeline.tasks.iter().enumerate() {
            let mut mapped: BTreeMap<&str, usize> = BTreeMap::new();
            for (k, mapping) in task.iochannel_maps.iter().enumerate() {
                let base = format!("/tasks/{index}/iochannel_maps/{k}");
                if let Some(&first) = mapped.get(mapping.input_channel.as_str()) {
                    let pointer = format!("{base}/input_channel");
                    let related = self.document.value_position(&format!(
                        "/tasks/{index}/iochannel_maps/{first}/input_channel"
                    ));
                    let at = self.document.value_position(&pointer);
                    self.report(
                        Diagnostic::error(
                            "duplicate-mapping",
                            format!(
                                "input channel `{}` of task `{}` is mapped twice; a channel is mounted from one upstream output",
                                mapping.input_channel, task.id
                            ),
                        )
                        .at_pointer(pointer)
                        .at(at)
                        .with_related("first mapped here", related)
                        .with_fix("map each upstream output to its own input channel"),
                    );
                } else {
                    mapped.insert(mapping.input_channel.as_str(), k);
                }
                if let Some(&upstream) = self.ids.get(mapping.upstream_task.as_str()) {
                    self.check_channel(
                        upstream,
                        false,
                        &mapping.upstream_output_channel,
                        &format!("{base}/upstream_output_channel"),
                    );
                }
                self.check_channel(
                    index,
                    true,
                    &mapping.input_channel,
                    &format!("{base}/input_channel"),
                );
            }
        }
    }

    /// Is `channel` an input (or output) of task `index`? An error with a "did you mean"
    /// when the template is known; a warning when only the image could tell.
    fn check_channel(&mut self, index: usize, input: bool, channel: &str, pointer: &str) {
        let Some(loaded) = &self.loaded[index] else {
            return;
        };
        let id = &self.pipeline.tasks[index].id;
        let kind = if input { "input" } else { "output" };
        let (names, authoritative) = loaded.channels(input);
        if names.iter().any(|n| n == channel) {
            return;
        }
        let suggestion = did_you_mean(channel, names.iter().map(String::as_str));
        let list = if names.is_empty() {
            format!("it has no {kind} channels")
        } else {
            format!("its {kind}s: {}", names.join(", "))
        };
        let fix = match suggestion {
            Some(s) => format!("did you mean `{s}`? {list}"),
            None => list,
        };
        let template = loaded.template_name();
        if authoritative {
            let source = loaded
                .template
                .as_ref()
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            self.error_at(
                "unknown-channel",
                pointer,
                format!(
                    "task `{id}` has no {kind} channel `{channel}` (template `{template}`, {source})"
                ),
                fix,
            );
        } else {
            self.warning_at(
                "unchecked-channel",
                pointer,
                format!(
                    "cannot check that task `{id}` has the {kind} channel `{channel}` without the image: template `{template}` is only in the image's /processing-container.json, and the task file does not bind `{channel}`"
                ),
                format!("{fix} (bound in the task file); set the task's `container_file` to check it here"),
            );
        }
    }

    /// `run_options.bind` entries, on the pipeline and on each task: each reads as `run
    /// --bind` reads it (HOST relative to the pipeline file's folder), a read-only one
    /// exists, and none shares or nests in another's container path or a channel's of
    /// the task's template. A task's bind at exactly a pipeline bind's container path
    /// replaces it.
    fn check_run_options(&mut self) {
        let pipeline = self.pipeline;
        self.check_engine_options("/run_options", &pipeline.run_options);
        for (index, task) in pipeline.tasks.iter().enumerate() {
            self.check_engine_options(&format!("/tasks/{index}/run_options"), &task.run_options);
        }
        let pipeline_binds = self.checked_binds("/run_options/bind", &pipeline.run_options);
        for (index, task) in pipeline.tasks.iter().enumerate() {
            let task_binds = self.checked_binds(
                &format!("/tasks/{index}/run_options/bind"),
                &task.run_options,
            );
            let inside = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
            let nested_in = |a: &str, b: &str| inside(a, b) || inside(b, a);
            // The pipeline's binds this task keeps, and the task's own.
            let inherited: Vec<&(String, PlannedBind)> = pipeline_binds
                .iter()
                .filter(|(_, p)| {
                    !task_binds
                        .iter()
                        .any(|(_, t)| t.container_path == p.container_path)
                })
                .collect();
            let mut problems: Vec<(String, String, String)> = Vec::new();
            for (pointer, bind) in &task_binds {
                if let Some((_, other)) = inherited
                    .iter()
                    .find(|(_, p)| nested_in(&p.container_path, &bind.container_path))
                {
                    problems.push((
                        pointer.clone(),
                        format!(
                            "bind `{}` of task `{}` and the pipeline's bind at `{}` overlap inside the container",
                            bind.container_path, task.id, other.container_path
                        ),
                        "give each bind its own container path, none inside another (a task's bind at exactly the pipeline's container path replaces it)".into(),
                    ));
                }
            }
            let mounts: Vec<(String, String)> = match self.loaded[index]
                .as_ref()
                .and_then(|l| l.template.as_ref())
            {
                Some((template, _)) => template
                    .inputs
                    .iter()
                    .chain(&template.outputs)
                    .map(|m| (format!("channel `{}`", m.name), m.mounted_path.clone()))
                    .collect(),
                None => Vec::new(),
            };
            let workflow = (pipeline.profile == Profile::Ccat)
                .then(|| ("the CCAT folders".to_string(), "/workflow".to_string()));
            for (pointer, bind) in inherited
                .iter()
                .map(|(p, b)| (p, b))
                .chain(task_binds.iter().map(|(p, b)| (p, b)))
            {
                if let Some((what, path)) = mounts
                    .iter()
                    .chain(workflow.iter())
                    .find(|(_, path)| nested_in(path, &bind.container_path))
                {
                    problems.push((
                        pointer.clone(),
                        format!(
                            "bind `{}` and {what} ({path}) of task `{}` overlap inside the container",
                            bind.container_path, task.id
                        ),
                        "bind it at a container path outside the task's channels".into(),
                    ));
                }
            }
            for (pointer, message, fix) in problems {
                self.error_at("bind-overlap", &pointer, message, fix);
            }
        }
    }

    /// `shm_size` and `gpus` read as `run --shm-size` and `--gpus` read them, and no
    /// `engine_args` entry is one `run --engine-arg` refuses — for either engine, since
    /// the same pipeline file runs with `--mode docker` and `--mode apptainer` (on a
    /// laptop and on an HPC node) and a refusal found only there would come mid-run.
    fn check_engine_options(&mut self, base: &str, options: &RunOptions) {
        let split = |e: &str| {
            let (message, fix) = e.split_once("\n  fix: ").unwrap_or((e, ""));
            (message.to_string(), fix.to_string())
        };
        if let Some(Err(e)) = options.shm_size.as_deref().map(parse_shm_size) {
            let (message, fix) = split(&e);
            self.error_at(
                "bad-run-option",
                &format!("{base}/shm_size"),
                format!("`shm_size`: {message}"),
                fix,
            );
        }
        if let Some(Err(e)) = options.gpus.as_deref().map(parse_gpus) {
            let (message, fix) = split(&e);
            self.error_at(
                "bad-run-option",
                &format!("{base}/gpus"),
                format!("`gpus`: {message}"),
                fix,
            );
        }
        if let Some(args) = &options.engine_args {
            // The first refused entry, found as the shortest refused prefix (a flag's
            // value is its own entry, and `--label` is judged with the one after it).
            let refusal = (1..=args.len()).find_map(|end| {
                [Mode::Docker, Mode::Apptainer]
                    .into_iter()
                    .find_map(|mode| engine_args::check(mode, &args[..end]).err())
                    .map(|e| (end - 1, e))
            });
            if let Some((index, e)) = refusal {
                let (message, fix) = split(&e);
                self.error_at(
                    "bad-run-option",
                    &format!("{base}/engine_args/{index}"),
                    message.replacen("--engine-arg ", "engine_args entry ", 1),
                    fix,
                );
            }
        }
    }

    /// The binds of one `run_options` that read well, with their pointers; errors for
    /// the others, a read-only one that does not exist, and two in the same list whose
    /// container paths overlap.
    fn checked_binds(
        &mut self,
        list_pointer: &str,
        options: &RunOptions,
    ) -> Vec<(String, PlannedBind)> {
        let mut good: Vec<(String, PlannedBind)> = Vec::new();
        for (k, text) in options.bind.iter().flatten().enumerate() {
            let pointer = format!("{list_pointer}/{k}");
            let bind = match parse_file_bind(text, &self.base_dir) {
                Ok(bind) => bind,
                Err((message, fix)) => {
                    self.error_at("bad-bind", &pointer, message, fix);
                    continue;
                }
            };
            if bind.read_only && std::fs::metadata(&bind.host_path).is_err() {
                self.error_at(
                    "bind-missing",
                    &pointer,
                    format!(
                        "bind `{text}`: {} does not exist, and a read-only bind must",
                        bind.host_path.display()
                    ),
                    format!(
                        "create it, fix the path (relative to the pipeline file's folder, {}), or add `:rw` to have tapir create it",
                        display_dir(&self.base_dir)
                    ),
                );
                continue;
            }
            let inside = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
            if let Some((_, other)) = good.iter().find(|(_, b)| {
                inside(&b.container_path, &bind.container_path)
                    || inside(&bind.container_path, &b.container_path)
            }) {
                let message = format!(
                    "bind `{text}` and the bind at `{}` overlap inside the container",
                    other.container_path
                );
                self.error_at(
                    "bind-overlap",
                    &pointer,
                    message,
                    "give each bind its own container path, none inside another".into(),
                );
                continue;
            }
            good.push((pointer, bind));
        }
        good
    }

    /// Env overrides from the pipeline and the conf file: ids exist, values respect the
    /// template's `adjustable`, `type` and `choices`.
    fn check_env(&mut self, conf: Option<(&Document, usize, &Conf)>) {
        let pipeline = self.pipeline;
        for (index, task) in pipeline.tasks.iter().enumerate() {
            for (name, value) in task.env.iter().filter_map(|(n, e)| Some((n, e.literal()?))) {
                let pointer = pointer_join(&format!("/tasks/{index}/env"), name);
                let at = self.document.value_position(&pointer);
                if let Some(d) = secret_with_a_line_break(name, value) {
                    self.report(d.at_pointer(pointer.clone()).at(at.clone()));
                }
                if let Some(d) = self.env_fits(index, name, value) {
                    self.report(d.at_pointer(pointer).at(at));
                }
            }
        }
        for (name, value) in &pipeline.env {
            let pointer = pointer_join("/env", name);
            if let Some(d) = secret_with_a_line_break(name, value) {
                let at = self.document.value_position(&pointer);
                self.report(d.at_pointer(pointer).at(at));
            }
        }
        // The pipeline's `env` reaches every task that does not set the variable itself
        // (its `env`, or the conf file): each such value must fit that task's template.
        // A variable some template does not declare is normal here (it is for all).
        for (name, value) in &pipeline.env {
            let pointer = pointer_join("/env", name);
            let at = self.document.value_position(&pointer);
            for (index, task) in pipeline.tasks.iter().enumerate() {
                let in_conf = conf
                    .and_then(|(_, _, c)| c.task_form.get(&task.id))
                    .is_some_and(|form| form.variables().iter().any(|v| v.name == *name));
                if task.env.contains_key(name) || in_conf {
                    continue;
                }
                if let Some(d) = self
                    .env_fits(index, name, value)
                    .filter(|d| d.severity == Severity::Error)
                {
                    self.report(d.at_pointer(pointer.clone()).at(at.clone()));
                }
            }
        }
        let Some((document, file, conf)) = conf else {
            return;
        };
        for (id, form) in &conf.task_form {
            let task_pointer = pointer_join("/task_form", id);
            let Some(&index) = self.ids.get(id.as_str()) else {
                let ids = self.task_ids();
                let fix = match did_you_mean(id, ids.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("task ids in the pipeline: {}", id_list(&ids)),
                };
                self.files[file].diagnostics.push(
                    Diagnostic::error(
                        "unknown-task",
                        format!("task_form names `{id}`, which is not a task of the pipeline; its variables would be silently unused"),
                    )
                    .at_pointer(task_pointer.clone())
                    .at(document.key_position(&task_pointer))
                    .with_fix(fix),
                );
                continue;
            };
            // Kaapana's operator would let these keys replace the task's fields; read as
            // variables they would silently do something else.
            for field in form
                .vars
                .keys()
                .filter(|k| TASK_FIELDS_NOT_REPLACED.contains(&k.as_str()))
            {
                let pointer = pointer_join(&task_pointer, field);
                self.files[file].diagnostics.push(
                    Diagnostic::error(
                        "task-form-field",
                        format!("`{field}` is a task field, which Kaapana's task_form may replace; tapir replaces only `image`, `command` and `resources` (and merges `env`), and will not read it as a variable either"),
                    )
                    .at_pointer(pointer.clone())
                    .at(document.key_position(&pointer))
                    .with_fix(format!("set `{field}` in the task file or the pipeline; for a variable named `{field}`, use the `env` list: {{\"name\": \"{field}\", \"value\": …}}")),
                );
            }
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for ConfVar {
                name,
                value,
                pointer,
            } in form.variables()
            {
                let pointer = format!("{task_pointer}{pointer}");
                if let Some(first) = seen.get(&name) {
                    let first_at = document.value_position(first).map_or(String::new(), |p| {
                        format!(" (first at {}:{})", p.line, p.column)
                    });
                    self.files[file].diagnostics.push(
                        Diagnostic::error(
                            "duplicate-env",
                            format!("task_form sets `{name}` twice for task `{id}`{first_at}; which one would win is not obvious"),
                        )
                        .at_pointer(pointer.clone())
                        .at(document.value_position(&pointer))
                        .with_fix("keep one of them (a flat `\"NAME\": \"value\"` or an `env` list entry)"),
                    );
                    continue;
                }
                seen.insert(name.clone(), pointer.clone());
                // `pipeline run` hands conf values to `tapir run` as an env file (so that
                // secrets stay out of files and argv), one `NAME=VALUE` a line: what such
                // a line cannot carry is refused here, before anything starts.
                if let Some((code, message, fix)) = unfit_for_an_env_line(&name, &value) {
                    self.files[file].diagnostics.push(
                        Diagnostic::error(code, message)
                            .at_pointer(pointer.clone())
                            .at(document.value_position(&pointer))
                            .with_fix(fix),
                    );
                    continue;
                }
                if let Some(d) = self.env_fits(index, &name, &value) {
                    self.files[file].diagnostics.push(
                        d.at_pointer(pointer.clone())
                            .at(document.value_position(&pointer)),
                    );
                }
            }
            if form.resources.is_some() {
                let pointer = pointer_join(&task_pointer, "resources");
                let findings = conf_resource_findings(document, &pointer);
                self.files[file].diagnostics.extend(findings);
            }
        }
    }

    fn env_fits(&self, index: usize, name: &str, value: &str) -> Option<Diagnostic> {
        let (template, source) = self.loaded[index].as_ref()?.template.as_ref()?;
        let Some(declared) = template.env.iter().find(|e| e.name == name) else {
            let names = template.env.iter().map(|e| e.name.as_str());
            return did_you_mean(name, names).map(|s| {
                Diagnostic::warning(
                    "undeclared-env",
                    format!(
                        "template `{}` declares no variable `{name}`",
                        template.identifier
                    ),
                )
                .with_fix(format!("did you mean `{s}`?"))
            });
        };
        let id = &self.pipeline.tasks[index].id;
        // A secret's value never reaches a message.
        let shown = if crate::resolve::plan::is_secret_name(name) {
            crate::resolve::plan::MASK
        } else {
            value
        };
        // A value still to be rendered (`{{ … }}`) is typed only when the task runs.
        let breach = declared
            .breaches(value, shown != value)
            .into_iter()
            .find(|b| !(matches!(b, EnvBreach::WrongType(_)) && value.contains("{{")))?;
        let message = match &breach {
            EnvBreach::NotAdjustable => format!(
                "`{name}` is declared `adjustable: false` by template `{}` ({source}); task `{id}` cannot override it",
                template.identifier
            ),
            EnvBreach::WrongType(kind) => format!(
                "`{name}` is declared as {} by template `{}`, but this value is \"{shown}\"",
                kind.label(),
                template.identifier
            ),
            EnvBreach::NotAChoice { .. } => format!(
                "\"{shown}\" is not one of the choices of `{name}` (template `{}`)",
                template.identifier
            ),
        };
        Some(Diagnostic::error(breach.code(), message).with_fix(breach.fix(declared)))
    }

    /// Profile `kaapana`: `step_config` means nothing; an input channel with no data.
    fn check_kaapana(&mut self) {
        let pipeline = self.pipeline;
        for (key, present) in [
            ("input", pipeline.input.is_some()),
            ("sub_group_key", pipeline.sub_group_key.is_some()),
            ("input_roles", !pipeline.input_roles.is_empty()),
            ("environment", !pipeline.environment.is_empty()),
        ] {
            if present {
                self.warning_at(
                    "ccat-only",
                    &format!("/{key}"),
                    format!("`{key}` is used by the `ccat` profile only; this pipeline ignores it"),
                    "remove it, or set `\"profile\": \"ccat\"` (or pass --profile ccat)".into(),
                );
            }
        }
        for (index, task) in pipeline.tasks.iter().enumerate() {
            if task.step_config.is_some() {
                self.warning_at(
                    "ccat-only",
                    &format!("/tasks/{index}/step_config"),
                    "`step_config` is used by the `ccat` profile only; this pipeline ignores it"
                        .into(),
                    "remove it, or set `\"profile\": \"ccat\"` (or pass --profile ccat)".into(),
                );
            }
            let Some(loaded) = &self.loaded[index] else {
                continue;
            };
            let (inputs, authoritative) = loaded.channels(true);
            if !authoritative {
                continue;
            }
            let unbound: Vec<String> = inputs
                .into_iter()
                .filter(|channel| {
                    !task
                        .iochannel_maps
                        .iter()
                        .any(|m| m.input_channel == *channel)
                        && !loaded.task.inputs.iter().any(|b| b.name == *channel)
                })
                .collect();
            for channel in unbound {
                {
                    self.warning_at(
                        "unbound-channel",
                        &format!("/tasks/{index}/iochannel_maps"),
                        format!("input channel `{channel}` of task `{}` gets no data: no iochannel_maps entry maps it and its task file does not bind it", task.id),
                        format!("add `{{\"upstream_task\": …, \"upstream_output_channel\": …, \"input_channel\": \"{channel}\"}}`, or bind it in the task file"),
                    );
                }
            }
        }
    }

    /// Profile `ccat`: steps share `/workflow/workspace`, so IOMappings do not apply; one
    /// final step writes `/workflow/output`; tapir alone sets `WORKFLOW_OUTPUT_DIR`.
    fn check_ccat(&mut self, conf: Option<&Conf>) {
        let pipeline = self.pipeline;
        if let Some(raw) = &pipeline.input {
            let problem = match self.raw_input() {
                Err((message, fix)) => Some((message, fix)),
                Ok(path) => match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_dir() => None,
                    Ok(_) => Some((
                        format!(
                            "the pipeline's input `{raw}` ({}) is not a folder",
                            path.display()
                        ),
                        "point `input` at the folder of raw data".into(),
                    )),
                    Err(e) => Some((
                        format!(
                            "the pipeline's input `{raw}` ({}) cannot be used: {}",
                            path.display(),
                            if e.kind() == std::io::ErrorKind::NotFound {
                                "it does not exist".to_string()
                            } else {
                                e.to_string()
                            }
                        ),
                        format!(
                            "create it, or fix `input` (relative paths are relative to the pipeline file's folder, {})",
                            display_dir(&self.base_dir)
                        ),
                    )),
                },
            };
            if let Some((message, fix)) = problem {
                self.error_at("ccat-input", "/input", message, fix);
            }
        }
        for (index, task) in pipeline.tasks.iter().enumerate() {
            if !task.iochannel_maps.is_empty() {
                self.error_at(
                    "ccat-iochannel-maps",
                    &format!("/tasks/{index}/iochannel_maps"),
                    format!("step `{}` has iochannel_maps, but in the `ccat` profile steps share /workflow/workspace/ and read an upstream step's results from /workflow/workspace/<step>/", task.id),
                    "replace the mappings with `depends_on` entries for the upstream steps".into(),
                );
            }
            let in_task_file = self.loaded[index]
                .as_ref()
                .is_some_and(|l| l.task.env.iter().any(|e| e.name == WORKFLOW_OUTPUT_DIR));
            let in_conf = conf.is_some_and(|c| {
                c.task_form.get(&task.id).is_some_and(|form| {
                    form.variables()
                        .iter()
                        .any(|v| v.name == WORKFLOW_OUTPUT_DIR)
                })
            });
            let pipeline_wide = pipeline.env.contains_key(WORKFLOW_OUTPUT_DIR);
            if task.env.contains_key(WORKFLOW_OUTPUT_DIR)
                || pipeline_wide
                || in_task_file
                || in_conf
            {
                let pointer = if task.env.contains_key(WORKFLOW_OUTPUT_DIR) {
                    pointer_join(&format!("/tasks/{index}/env"), WORKFLOW_OUTPUT_DIR)
                } else if pipeline_wide {
                    pointer_join("/env", WORKFLOW_OUTPUT_DIR)
                } else {
                    format!("/tasks/{index}/id")
                };
                self.error_at(
                    "reserved-env",
                    &pointer,
                    format!("step `{}` sets {WORKFLOW_OUTPUT_DIR}, which tapir sets for every step of a `ccat` pipeline (/workflow/workspace/<step>/, or /workflow/output/ for the final step)", task.id),
                    format!("remove {WORKFLOW_OUTPUT_DIR} from the pipeline, the task file and the conf file"),
                );
            }
        }
        let upstreams: HashSet<usize> = self.edges.iter().map(|e| e.upstream).collect();
        let finals: Vec<&str> = (0..pipeline.tasks.len())
            .filter(|i| !upstreams.contains(i))
            .map(|i| pipeline.tasks[i].id.as_str())
            .collect();
        if let Err((index, reason)) =
            crate::pipeline::ccat::InputRoles::compile(&pipeline.input_roles)
        {
            self.error_at(
                "ccat-input-role",
                &format!("/input_roles/{index}/pattern"),
                format!(
                    "`{}` is not a valid file pattern: {reason}",
                    pipeline.input_roles[index].pattern
                ),
                "use `*` (within a folder), `**` (across folders), `?`, `[abc]` or `{a,b}`; a pattern without `/` matches a file's name".into(),
            );
        }
        if finals.len() > 1 {
            self.error_at(
                "ccat-final-step",
                "/tasks",
                format!(
                    "a `ccat` pipeline has one final step (it writes /workflow/output/), but nothing runs after {}",
                    finals.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                ),
                "add `depends_on` so that one step runs after all the others".into(),
            );
        }
    }

    /// Profile `ccat`: the pipeline's `input` as a host path (`~/` expanded, relative to
    /// the pipeline file's folder); `Err` is (message, fix).
    fn raw_input(&self) -> Result<PathBuf, (String, String)> {
        let raw = self.pipeline.input.as_deref().unwrap_or_default();
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        crate::resolve::plan::host_path(raw, &self.base_dir, home.as_deref())
            .map_err(|(message, fix)| (format!("the pipeline's `input`: {message}"), fix))
    }

    fn plan(&self, levels: &[usize], conf: Option<&Conf>) -> Option<PipelinePlan> {
        let pipeline = self.pipeline;
        let depth = levels.iter().copied().max().map_or(0, |m| m + 1);
        let mut by_level: Vec<Vec<String>> = vec![Vec::new(); depth];
        let mut order: Vec<usize> = (0..pipeline.tasks.len()).collect();
        order.sort_by_key(|&i| (levels[i], i));
        for &i in &order {
            by_level[levels[i]].push(pipeline.tasks[i].id.clone());
        }
        let final_step = if pipeline.profile == Profile::Ccat {
            order.last().copied()
        } else {
            None
        };
        // Each task's edges, found once (a scan of all edges per task was quadratic).
        let mut edges_of: Vec<Vec<&Edge>> = vec![Vec::new(); pipeline.tasks.len()];
        for edge in &self.edges {
            edges_of[edge.task].push(edge);
        }
        // The tasks whose output values another task reads, found once (asking every
        // task about every other was quadratic).
        let read_outputs: HashSet<&str> = pipeline
            .tasks
            .iter()
            .flat_map(|t| t.env.values())
            .filter_map(|e| match e {
                EnvEntry::From {
                    value_from: ValueFrom::TaskOutput(o),
                } => Some(o.task_id.as_str()),
                _ => None,
            })
            .collect();
        let tasks = order
            .iter()
            .map(|&i| {
                let publishes_values = read_outputs.contains(pipeline.tasks[i].id.as_str());
                let is_final = final_step == Some(i);
                self.plan_task(
                    i,
                    levels[i] + 1,
                    conf,
                    is_final,
                    &edges_of[i],
                    publishes_values,
                )
            })
            .collect::<Option<Vec<_>>>()?;
        Some(PipelinePlan {
            name: pipeline.name.clone(),
            profile: pipeline.profile,
            execution_defaults: self.execution_defaults,
            sub_group_key: (pipeline.profile == Profile::Ccat)
                .then(|| pipeline.sub_group_key.clone().unwrap_or_default()),
            // Checked in `check_ccat`; a kaapana pipeline ignores both (with a warning).
            input_roles: match pipeline.profile {
                Profile::Ccat => crate::pipeline::ccat::InputRoles::compile(&pipeline.input_roles)
                    .unwrap_or_default(),
                Profile::Kaapana => crate::pipeline::ccat::InputRoles::default(),
            },
            environment: match pipeline.profile {
                Profile::Ccat => {
                    crate::pipeline::ccat::Environment::new(pipeline.environment.clone())
                }
                Profile::Kaapana => crate::pipeline::ccat::Environment::default(),
            },
            archive: pipeline
                .archive
                .as_ref()
                .map(|a| crate::pipeline::archive::PlannedArchive {
                    path: self.base_dir.join(&a.path),
                    include: a.include.clone(),
                }),
            clean_succeeded: pipeline.clean_succeeded.unwrap_or(false),
            params: self.masked_params(),
            builds: pipeline
                .builds
                .iter()
                .map(|b| crate::pipeline::build::PlannedBuild::new(b, &self.base_dir))
                .collect(),
            levels: by_level,
            tasks,
        })
    }

    fn plan_task(
        &self,
        index: usize,
        level: usize,
        conf: Option<&Conf>,
        is_final: bool,
        edges: &[&Edge],
        publishes_values: bool,
    ) -> Option<PlannedTask> {
        let entry = &self.pipeline.tasks[index];
        // Every task of a valid pipeline is loaded; `None` only if that ever broke.
        let loaded = self.loaded[index].as_ref()?;
        let mut depends_on: Vec<PlannedDependency> = Vec::new();
        for edge in edges {
            let id = self.pipeline.tasks[edge.upstream].id.clone();
            match depends_on.iter_mut().find(|d| d.id == id) {
                Some(d) => {
                    d.can_fail |= edge.can_fail;
                    if !d.via.contains(&edge.via) {
                        d.via.push(edge.via);
                    }
                }
                None => depends_on.push(PlannedDependency {
                    id,
                    can_fail: edge.can_fail,
                    via: vec![edge.via],
                }),
            }
        }
        let mut folders = Vec::new();
        let mut workflow_output_dir = None;
        let binding = |list: &[model::Binding], channel: &str| {
            list.iter()
                .find(|b| b.name == channel)
                .map(|b| display_path(&loaded.base_dir.join(&b.volume_source.host_path)))
        };
        match self.pipeline.profile {
            Profile::Kaapana => {
                let (inputs, _) = loaded.channels(true);
                for mapping in &entry.iochannel_maps {
                    folders.push(PlannedFolder {
                        channel: mapping.input_channel.clone(),
                        direction: FolderDirection::Input,
                        managed: true,
                        path: format!(
                            "{}/{}",
                            mapping.upstream_task, mapping.upstream_output_channel
                        ),
                        from: Some(format!(
                            "{}.{}",
                            mapping.upstream_task, mapping.upstream_output_channel
                        )),
                        replaces: binding(&loaded.task.inputs, &mapping.input_channel),
                        mounted_path: None,
                    });
                }
                for channel in inputs {
                    if entry
                        .iochannel_maps
                        .iter()
                        .any(|m| m.input_channel == channel)
                    {
                        continue;
                    }
                    if let Some(path) = binding(&loaded.task.inputs, &channel) {
                        folders.push(PlannedFolder {
                            channel,
                            direction: FolderDirection::Input,
                            managed: false,
                            path,
                            from: None,
                            replaces: None,
                            mounted_path: None,
                        });
                    }
                }
                let (outputs, _) = loaded.channels(false);
                for channel in outputs {
                    folders.push(PlannedFolder {
                        path: format!("{}/{channel}", entry.id),
                        replaces: binding(&loaded.task.outputs, &channel),
                        channel,
                        direction: FolderDirection::Output,
                        managed: true,
                        from: None,
                        mounted_path: None,
                    });
                }
            }
            Profile::Ccat => {
                let ccat = |name: &str, direction, path: String, mounted: &str| PlannedFolder {
                    channel: name.to_string(),
                    direction,
                    managed: true,
                    path,
                    from: None,
                    replaces: None,
                    mounted_path: Some(mounted.to_string()),
                };
                // The pipeline's raw data, or an empty managed folder without it.
                let mut input = ccat(
                    "input",
                    FolderDirection::Input,
                    "input".into(),
                    crate::pipeline::ccat::INPUT,
                );
                if self.pipeline.input.is_some() {
                    input.managed = false;
                    input.path = display_path(&self.raw_input().ok()?);
                }
                folders.push(input);
                folders.push(ccat(
                    "config",
                    FolderDirection::Input,
                    format!("config/{}", entry.id),
                    crate::pipeline::ccat::CONFIG,
                ));
                folders.push(ccat(
                    "workspace",
                    FolderDirection::Output,
                    "workspace".into(),
                    crate::pipeline::ccat::WORKSPACE,
                ));
                // Only the final step writes the pipeline's products (CCAT contract).
                if is_final {
                    folders.push(ccat(
                        "output",
                        FolderDirection::Output,
                        "output".into(),
                        crate::pipeline::ccat::OUTPUT,
                    ));
                }
                folders.push(ccat(
                    "logs",
                    FolderDirection::Output,
                    format!("logs/{}", entry.id),
                    crate::pipeline::ccat::LOGS,
                ));
                workflow_output_dir = Some(if is_final {
                    format!("{}/", crate::pipeline::ccat::OUTPUT)
                } else {
                    format!("{}/{}/", crate::pipeline::ccat::WORKSPACE, entry.id)
                });
            }
        }
        let mut env: Vec<PlannedEnv> = Vec::new();
        let form: Option<&TaskForm> = conf.and_then(|c| c.task_form.get(&entry.id));
        let conf_vars: Vec<ConfVar> = form.map(TaskForm::variables).unwrap_or_default();
        let mut push = |name: &str, value: &str, source: &'static str, from: Option<String>| {
            let value = if crate::resolve::plan::is_secret_name(name) {
                crate::resolve::plan::MASK.to_string()
            } else {
                value.to_string()
            };
            env.retain(|e| e.name != name);
            env.push(PlannedEnv {
                name: name.to_string(),
                value,
                source,
                from,
            });
        };
        // Lowest first: each level replaces what the one below set.
        for (name, value) in &self.pipeline.env {
            push(name, value, "pipeline-wide", None);
        }
        let value_from = self.value_from_of(index);
        for (name, value) in &entry.env {
            if let Some(value) = value.literal() {
                push(name, value, "pipeline", None);
            } else if let Some(from) = value_from.iter().find(|v| v.name == *name) {
                push(
                    name,
                    &from.shown(),
                    "value_from",
                    Some(from.source.describe()),
                );
            } else if let EnvEntry::From {
                value_from: ValueFrom::Params(param),
            } = value
                && self.params.is_none()
            {
                // `validate`: a parameter without a default is given only at the run.
                push(
                    name,
                    "<--param>",
                    "value_from",
                    Some(format!("param {param}")),
                );
            }
        }
        for var in &conf_vars {
            push(&var.name, &var.value, "conf", None);
        }
        env.sort_by(|a, b| a.name.cmp(&b.name));
        let mut pipeline_env: BTreeMap<String, String> = self.pipeline.env.clone();
        for (name, value) in &entry.env {
            if let Some(value) = value.literal() {
                pipeline_env.insert(name.clone(), value.to_string());
            } else if value_from.iter().any(|v| v.name == *name) {
                pipeline_env.remove(name);
            }
        }
        // The conf file's value wins over a `value_from` one, as over any other.
        let value_from: Vec<FromValue> = value_from
            .into_iter()
            .filter(|v| !conf_vars.iter().any(|c| c.name == v.name))
            .collect();
        // Kaapana's task_form replaces these Task fields wholesale; the template's
        // resources still merge under the task's, key by key, as for any task.
        let mut task = loaded.task.clone();
        // A built image replaces the task's own; the conf file's `image` still wins
        // (Kaapana's task_form replaces the field whatever it was).
        if let Some(build) = entry
            .image_from
            .as_ref()
            .and_then(|id| self.pipeline.builds.iter().find(|b| b.id == *id))
        {
            task.image = build.tag.clone();
        }
        if let Some(form) = form {
            if let Some(image) = &form.image {
                task.image = image.clone();
            }
            if let Some(command) = &form.command {
                task.command = Some(command.clone());
            }
            if let Some(resources) = &form.resources {
                task.resources = Some(resources.clone());
            }
        }
        Some(PlannedTask {
            id: entry.id.clone(),
            level,
            task: loaded
                .file
                .as_ref()
                .map_or_else(|| "inline".to_string(), |p| display_path(p)),
            image: task.image.clone(),
            template: loaded.template_name(),
            template_source: loaded.template.as_ref().map(|(_, s)| s.clone()),
            conf_overrides: form.map(TaskForm::overridden_fields).unwrap_or_default(),
            depends_on,
            folders,
            env,
            execution: entry
                .execution_profile
                .effective(&self.pipeline.execution_profile, self.execution_defaults),
            run_options: PlannedRunOptions::effective(
                &entry.run_options,
                &self.pipeline.run_options,
                &self.base_dir,
            ),
            workflow_output_dir,
            step_config: entry.step_config.clone(),
            image_from: entry.image_from.clone(),
            publishes_values,
            runnable: RunnableTask {
                task,
                base_dir: loaded.base_dir.clone(),
                container_file: entry
                    .container_file
                    .as_ref()
                    .map(|relative| self.base_dir.join(relative)),
                pipeline_env: pipeline_env.into_iter().collect(),
                conf_env: conf_vars.into_iter().map(|v| (v.name, v.value)).collect(),
                template: loaded.template.as_ref().map(|(t, _)| t.clone()),
                value_from,
            },
        })
    }
}

/// Tapis' `params` and `value_from` (src/pipeline/values.rs).
impl Planner<'_> {
    /// The run's `--param` values against the declared `params`: each is declared, given
    /// once, fits an env-file line; every `required` one has a value.
    fn check_params(&mut self) {
        let declared = &self.pipeline.params;
        for (name, param) in declared {
            let pointer = pointer_join("/params", name);
            if let Some(default) = &param.default
                && let Some((code, message, fix)) = unfit_for_an_env_line(name, default)
            {
                let at = pointer_join(&pointer, "default");
                self.error_at(code, &at, message, fix);
            }
        }
        let Some(given) = self.params else {
            return;
        };
        let where_declared = if self.document.value.get("params").is_some() {
            "/params"
        } else {
            ""
        };
        let mut seen: HashSet<&str> = HashSet::new();
        for param in given {
            let name = param.name.as_str();
            if !declared.contains_key(name) {
                let fix = match did_you_mean(name, declared.keys().map(String::as_str)) {
                    Some(s) => format!("did you mean `--param {s}=…`?"),
                    None if declared.is_empty() => {
                        format!("declare it: `\"params\": {{\"{name}\": {{\"description\": …}}}}`")
                    }
                    None => format!(
                        "parameters of this pipeline: {}",
                        id_list(&declared.keys().map(String::as_str).collect::<Vec<_>>())
                    ),
                };
                self.error_at(
                    "unknown-param",
                    where_declared,
                    format!("--param {name}: the pipeline declares no parameter `{name}`; its value would be silently unused"),
                    fix,
                );
                continue;
            }
            let pointer = pointer_join("/params", name);
            if !seen.insert(name) {
                self.error_at(
                    "duplicate-param",
                    &pointer,
                    format!("--param {name} is given twice; which one would win is not obvious"),
                    "give it once".into(),
                );
                continue;
            }
            if let Some((code, message, fix)) = unfit_for_an_env_line(name, &param.value) {
                self.error_at(code, &pointer, format!("--param {name}: {message}"), fix);
            }
        }
        for (name, param) in declared {
            if param.required && param.default.is_none() && !seen.contains(name.as_str()) {
                let pointer = pointer_join("/params", name);
                let at = self.document.key_position(&pointer);
                self.report(
                    Diagnostic::error(
                        "missing-param",
                        format!("parameter `{name}` is required and has no value"),
                    )
                    .at_pointer(pointer)
                    .at(at)
                    .with_fix(format!(
                        "pass `--param {name}=VALUE` (or give it a `default`)"
                    )),
                );
            }
        }
    }

    /// Every `value_from` of every task's `env`: the pipeline variable or parameter
    /// exists, a secret-looking source does not land in a plain-looking variable, and a
    /// value the plan knows fits the template. (A `task_output`'s task is resolved with
    /// the dependencies, in `collect_edges`.)
    fn check_value_from(&mut self) {
        let pipeline = self.pipeline;
        for (index, task) in pipeline.tasks.iter().enumerate() {
            for (name, entry) in &task.env {
                let EnvEntry::From { value_from } = entry else {
                    continue;
                };
                let entry_pointer = pointer_join(&format!("/tasks/{index}/env"), name);
                let (pointer, source_name, what) = match value_from {
                    ValueFrom::Env(source) => (
                        format!("{entry_pointer}/value_from/env"),
                        source,
                        "pipeline variable",
                    ),
                    ValueFrom::Params(source) => (
                        format!("{entry_pointer}/value_from/params"),
                        source,
                        "parameter",
                    ),
                    ValueFrom::TaskOutput(output) => (
                        format!("{entry_pointer}/value_from/task_output/output_id"),
                        &output.output_id,
                        "output",
                    ),
                };
                let known: Vec<&str> = match value_from {
                    ValueFrom::Env(_) => pipeline.env.keys().map(String::as_str).collect(),
                    ValueFrom::Params(_) => pipeline.params.keys().map(String::as_str).collect(),
                    ValueFrom::TaskOutput(_) => Vec::new(),
                };
                if !matches!(value_from, ValueFrom::TaskOutput(_))
                    && !known.contains(&source_name.as_str())
                {
                    let (code, key) = match value_from {
                        ValueFrom::Env(_) => ("unknown-env", "env"),
                        _ => ("unknown-param", "params"),
                    };
                    let fix = match did_you_mean(source_name, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if known.is_empty() => {
                            format!("declare it in the pipeline's `{key}`")
                        }
                        None => format!("the pipeline's `{key}`: {}", id_list(&known)),
                    };
                    self.error_at(
                        code,
                        &pointer,
                        format!("task `{}` takes `{name}` from {what} `{source_name}`, which the pipeline's `{key}` does not have", task.id),
                        fix,
                    );
                    continue;
                }
                if crate::pipeline::values::secret_into_plain(source_name, name) {
                    self.error_at(
                        "secret-into-plain",
                        &pointer,
                        format!("the secret-looking {what} `{source_name}` would land in `{name}`, whose name does not look secret: the task's run would record and print its value in clear"),
                        format!("name the variable like a secret (e.g. `{name}_TOKEN`, `{name}_PASSWORD`), or take a value that is not secret"),
                    );
                    continue;
                }
            }
            for from in self.value_from_of(index) {
                // A secret source in a plain variable is reported above; its value must
                // not reach a message.
                let Some(value) = from
                    .source
                    .known()
                    .filter(|_| !from.secret || crate::resolve::plan::is_secret_name(&from.name))
                else {
                    continue;
                };
                let pointer = pointer_join(&format!("/tasks/{index}/env"), &from.name);
                if let Some(d) = self.env_fits(index, &from.name, value) {
                    let at = self.document.value_position(&pointer);
                    let d = match &from.source {
                        crate::pipeline::values::ValueSource::Param { name, .. } => Diagnostic {
                            message: format!("{} (from parameter `{name}`)", d.message),
                            ..d
                        },
                        _ => d,
                    };
                    self.report(d.at_pointer(pointer).at(at));
                }
            }
        }
    }

    /// `builds`: ids unique (also against task ids), the context folder and its
    /// Dockerfile there, tags unique; every `image_from` names a build.
    fn check_builds(&mut self) {
        let pipeline = self.pipeline;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
        for (k, build) in pipeline.builds.iter().enumerate() {
            let pointer = format!("/builds/{k}");
            if let Some(first) = seen.insert(&build.id, k) {
                let related = self.document.value_position(&format!("/builds/{first}/id"));
                let at = self.document.value_position(&format!("{pointer}/id"));
                self.report(
                    Diagnostic::error(
                        "duplicate-build-id",
                        format!("build id `{}` is used twice", build.id),
                    )
                    .at_pointer(format!("{pointer}/id"))
                    .at(at)
                    .with_related("first used here", related)
                    .with_fix("rename one of the two"),
                );
            } else if self.ids.contains_key(build.id.as_str()) {
                self.error_at(
                    "duplicate-build-id",
                    &format!("{pointer}/id"),
                    format!("build id `{}` is also a task id; progress lines and records would mix them up", build.id),
                    "rename the build (e.g. `build-…`)".into(),
                );
            }
            if let Some(first) = tags.insert(&build.tag, k) {
                self.error_at(
                    "duplicate-build-tag",
                    &format!("{pointer}/tag"),
                    format!("tag `{}` is built twice (also by `{}`): the second build would replace the first image", build.tag, pipeline.builds[first].id),
                    "give each build its own tag".into(),
                );
            }
            let planned = crate::pipeline::build::PlannedBuild::new(build, &self.base_dir);
            if !planned.context.is_dir() {
                self.error_at(
                    "build-context",
                    &format!("{pointer}/context"),
                    format!(
                        "the build context {} is not a folder",
                        display_path(&planned.context)
                    ),
                    "name a folder, relative to the pipeline file's folder".into(),
                );
            } else if !planned.dockerfile.is_file() {
                let at = if build.dockerfile.is_some() {
                    format!("{pointer}/dockerfile")
                } else {
                    format!("{pointer}/context")
                };
                self.error_at(
                    "build-dockerfile",
                    &at,
                    format!(
                        "there is no Dockerfile at {}",
                        display_path(&planned.dockerfile)
                    ),
                    "add it, or name it with `dockerfile` (relative to the context)".into(),
                );
            }
        }
        let ids: Vec<&str> = pipeline.builds.iter().map(|b| b.id.as_str()).collect();
        for (index, task) in pipeline.tasks.iter().enumerate() {
            let Some(id) = &task.image_from else {
                continue;
            };
            if ids.contains(&id.as_str()) {
                continue;
            }
            let fix = match did_you_mean(id, ids.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if ids.is_empty() => {
                    "add a `builds` entry with this id (`{\"id\", \"context\", \"tag\"}`)"
                        .to_string()
                }
                None => format!("builds in this pipeline: {}", id_list(&ids)),
            };
            self.error_at(
                "unknown-build",
                &format!("/tasks/{index}/image_from"),
                format!("image_from `{id}` is not a build of this pipeline"),
                fix,
            );
        }
    }

    /// The archive's `include` globs compile, and each selects some output folder.
    fn check_archive(&mut self) {
        let Some(archive) = &self.pipeline.archive else {
            return;
        };
        let labels: Vec<String> = self
            .pipeline
            .tasks
            .iter()
            .zip(&self.loaded)
            .flat_map(|(task, loaded)| {
                let channels = match (self.pipeline.profile, loaded) {
                    (Profile::Kaapana, Some(loaded)) => loaded.channels(false).0,
                    (Profile::Ccat, _) => {
                        ["workspace", "output", "logs"].map(String::from).to_vec()
                    }
                    (Profile::Kaapana, None) => Vec::new(),
                };
                channels
                    .into_iter()
                    .map(move |channel| format!("{}/{channel}", task.id))
            })
            .collect();
        for (k, pattern) in archive.include.iter().enumerate() {
            let set = match crate::pipeline::archive::compile(std::slice::from_ref(pattern)) {
                Ok(set) => set,
                Err((_, why)) => {
                    self.error_at(
                        "archive-include",
                        &format!("/archive/include/{k}"),
                        format!("not a valid glob: {why}"),
                        "write `task/channel` with `*` for any part, e.g. `*/results`".into(),
                    );
                    continue;
                }
            };
            if !labels.iter().any(|label| set.is_match(label)) {
                self.warning_at(
                    "archive-include-unmatched",
                    &format!("/archive/include/{k}"),
                    format!("`{pattern}` selects no output folder of this pipeline"),
                    format!(
                        "output folders: {}",
                        labels
                            .iter()
                            .take(8)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
    }

    /// The parameters a run gets (given, else their defaults), masked where secret.
    fn masked_params(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(given) = self.params else {
            return out;
        };
        for (name, param) in &self.pipeline.params {
            let value = given
                .iter()
                .rev()
                .find(|p| p.name == *name)
                .map(|p| p.value.clone())
                .or_else(|| param.default.clone());
            if let Some(value) = value {
                let shown = if crate::resolve::plan::is_secret_name(name) {
                    crate::resolve::plan::MASK.to_string()
                } else {
                    value
                };
                out.insert(name.clone(), shown);
            }
        }
        out
    }

    /// Task `index`'s `value_from` variables with what the plan knows of their values;
    /// a parameter without a value (not given, no default) sets nothing.
    fn value_from_of(&self, index: usize) -> Vec<FromValue> {
        let pipeline = self.pipeline;
        let mut out = Vec::new();
        for (name, entry) in &pipeline.tasks[index].env {
            let EnvEntry::From { value_from } = entry else {
                continue;
            };
            let source = match value_from {
                ValueFrom::Env(source) => match pipeline.env.get(source) {
                    Some(value) => ValueSource::Env {
                        name: source.clone(),
                        value: value.clone(),
                    },
                    None => continue,
                },
                ValueFrom::Params(source) => {
                    let given = self
                        .params
                        .and_then(|params| params.iter().rev().find(|p| p.name == *source));
                    let default = pipeline.params.get(source).and_then(|p| p.default.as_ref());
                    match (given, default) {
                        (Some(given), _) => ValueSource::Param {
                            name: source.clone(),
                            value: given.value.clone(),
                            defaulted: false,
                        },
                        (None, Some(default)) => ValueSource::Param {
                            name: source.clone(),
                            value: default.clone(),
                            defaulted: true,
                        },
                        (None, None) => continue,
                    }
                }
                ValueFrom::TaskOutput(output) => ValueSource::TaskOutput {
                    task_id: output.task_id.clone(),
                    output_id: output.output_id.clone(),
                },
            };
            let source_name = match &source {
                ValueSource::Env { name, .. } | ValueSource::Param { name, .. } => name,
                ValueSource::TaskOutput { output_id, .. } => output_id,
            };
            out.push(FromValue {
                secret: crate::resolve::plan::is_secret_name(name)
                    || crate::resolve::plan::is_secret_name(source_name),
                name: name.clone(),
                source,
            });
        }
        out
    }
}

/// A task's `image` when it is a path on this machine (a sandbox folder or a `.sif`
/// file), made absolute against the task file's folder as `tapir run` resolves it: the
/// derived task file lives in the pipeline run folder, where a relative path would name
/// nothing (or another image). `Ok(None)`: a registry reference or an explicit scheme,
/// kept as written. `Err`: it can only be a path (`.sif`, `./`, `../`, `/`), and nothing
/// is there; the resolved path.
fn local_image_path(base_dir: &Path, image: &str) -> Result<Option<String>, String> {
    if image.contains("://") || image.starts_with("docker-daemon:") || image.contains("{{") {
        return Ok(None);
    }
    let path = base_dir.join(image);
    let absolute = std::path::absolute(&path).unwrap_or(path.clone());
    if path.is_dir() || path.is_file() {
        return Ok(Some(absolute.display().to_string()));
    }
    if image.ends_with(".sif") || image.starts_with(['.', '/']) {
        return Err(absolute.display().to_string());
    }
    Ok(None)
}

/// The task and the findings of a checked task file; the task is `None` when invalid.
fn read_report(report: FileReport) -> Option<(Option<Task>, FileFindings)> {
    let mut diagnostics: Vec<Diagnostic> = report
        .diagnostics
        .iter()
        .filter(|d| !is_bound_by_pipeline(d))
        .cloned()
        .collect();
    if let Some(document) = &report.document {
        diagnostics.extend(secrets_rendered_whole(document));
    }
    let task = match (
        &report.document,
        diagnostics_allow_a_task(&report, &diagnostics),
    ) {
        (Some(d), true) => match model::from_value::<Task>(&d.value, "task") {
            Ok(task) => Some(task),
            Err(message) => {
                diagnostics.push(Diagnostic::error("internal", message));
                None
            }
        },
        _ => None,
    };
    let findings = FileFindings {
        path: report.path.clone(),
        source: report.source().cloned(),
        diagnostics,
    };
    Some((task, findings))
}

fn diagnostics_allow_a_task(report: &FileReport, diagnostics: &[Diagnostic]) -> bool {
    report.is_valid()
        && !diagnostics
            .iter()
            .any(|d| d.code == "secret-in-derived-file")
}

/// A task file rendered whole has its values rendered already, and the derived task file
/// would hold one built from a secret in clear (a file rendered per string keeps the
/// template, which the task's own `run` renders): refused, at the value.
fn secrets_rendered_whole(document: &Document) -> Vec<Diagnostic> {
    crate::resolve::task_file::whole_text_secret_values(document)
        .into_iter()
        .map(|pointer| {
            Diagnostic::error(
                "secret-in-derived-file",
                "this value is rendered from a secret-looking variable in a file rendered whole (Jinja outside its strings); a pipeline would write it in clear into the derived task file",
            )
            .at(document.value_position(&pointer))
            .at_pointer(pointer)
            .with_fix("keep the file's Jinja inside its JSON strings (then the task renders it when it runs), or give the value in the conf file's `task_form`")
        })
        .collect()
}

/// In a pipeline tapir binds the channels (mapped inputs, managed outputs), so a task's
/// own unbound channels are not a problem there; inputs that get no data are reported by
/// the pipeline's own check instead.
fn is_bound_by_pipeline(d: &Diagnostic) -> bool {
    d.code == "unbound-channel" && d.severity == Severity::Warning
}

/// The inline task at `pointer` as a document of its own: same source text (so positions
/// stay those of the pipeline file), its value, and its part of the span tree.
fn sub_document(document: &Document, pointer: &str, value: &Value) -> Document {
    Document {
        source: document.source.clone(),
        value: value.clone(),
        spans: document.spans.find(pointer).cloned().unwrap_or(SpanTree {
            value: 0..0,
            key: None,
            children: source::SpanChildren::Leaf,
        }),
    }
}

/// The position of `pointer`'s value in a source, by parsing it again (task files are
/// small; this only happens for one finding).
fn parse_position(source: &Source, pointer: &str) -> Option<crate::diagnostic::Position> {
    source::parse(source.clone())
        .ok()
        .and_then(|(d, _)| d.value_position(pointer))
}

/// Findings in document order (a stable sort: those at one place keep their order).
fn sort_by_position(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| d.position.as_ref().map_or((0, 0), |p| (p.line, p.column)));
}

/// The task ids for a fix: all of a small pipeline's, the first few of a large one's
/// (every id in every finding of a large file made the report quadratic in its size).
fn id_list(ids: &[&str]) -> String {
    const SHOWN: usize = 10;
    if ids.len() <= SHOWN {
        ids.join(", ")
    } else {
        format!("{}, … ({} in all)", ids[..SHOWN].join(", "), ids.len())
    }
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

fn display_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir.display().to_string()
    }
}

/// A secret-looking value of the pipeline's or a task entry's `env` travels to the task on
/// its standard input, one env-file line a variable, never in the derived task file: one
/// with a line break could only go into that file, in clear, so it is refused.
fn secret_with_a_line_break(name: &str, value: &str) -> Option<Diagnostic> {
    (crate::model::secret::is_secret_name(name) && value.contains(['\n', '\r'])).then(|| {
        Diagnostic::error(
            "env-line-break",
            format!("the secret-looking `{name}` has a line break: it cannot travel to the task on an env-file line, and tapir writes no secret into the derived task file"),
        )
        .with_fix("write the value on one line (a key file's content can be base64 on one line), or keep it in the task file")
    })
}

/// Why a conf value cannot travel to `tapir run` as a line of an env file, if it cannot:
/// the finding's code, message and fix.
fn unfit_for_an_env_line(name: &str, value: &str) -> Option<(&'static str, String, String)> {
    if value.contains(['\n', '\r']) {
        return Some((
            "env-line-break",
            format!(
                "the value of `{name}` has a line break, which a conf value cannot carry to the task"
            ),
            "write the value on one line (or set it in the pipeline's `env` or the task file)"
                .into(),
        ));
    }
    if value.starts_with([' ', '\t']) {
        return Some((
            "env-leading-space",
            format!("the value of `{name}` starts with a space or tab, which a conf value cannot carry to the task"),
            "remove the leading whitespace (or set the value in the pipeline's `env` or the task file)".into(),
        ));
    }
    if value.contains('\0') {
        return Some((
            "nul-character",
            format!(
                "the value of `{name}` has a NUL character, which no environment variable can hold"
            ),
            "remove it".into(),
        ));
    }
    None
}

/// The quantities of a conf file's `task_form.<id>.resources` (at `pointer`), checked as
/// a task file's are (`quantity::resource_problem`).
fn conf_resource_findings(document: &Document, pointer: &str) -> Vec<Diagnostic> {
    let mut findings = Vec::new();
    let Some(resources) = document.value.pointer(pointer) else {
        return findings;
    };
    for section in ["limits", "requests"] {
        let Some(list) = resources.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, value) in list {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue, // the schema reports it
            };
            let problem = crate::model::quantity::resource_problem(name, &text);
            if let Some(e) = problem {
                let at = pointer_join(&pointer_join(pointer, section), name);
                findings.push(
                    Diagnostic::error("quantity", format!("{name}: {}", e.message))
                        .at_pointer(at.clone())
                        .at(document.value_position(&at))
                        .with_fix(e.fix),
                );
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Writes a one-task pipeline and `conf`, and checks them.
    fn check_with(dir: &Path, pipeline_extra: Value, conf: Value) -> Checked {
        let mut pipeline = json!({"name": "p", "tasks": [{"id": "a", "task": {
            "name": "a", "image": "i:1", "taskTemplate": {
                "identifier": "t", "description": "d", "inputs": [], "outputs": [],
                "env": [{"name": "N", "value": "1", "type": "int"},
                        {"name": "W", "value": "template"}],
                "command": ["true"]}}}]});
        if let (Some(p), Some(extra)) = (pipeline.as_object_mut(), pipeline_extra.as_object()) {
            p.extend(extra.clone());
        }
        std::fs::write(dir.join("p.json"), pipeline.to_string()).unwrap();
        // Pretty-printed, so that each entry has its own line.
        std::fs::write(
            dir.join("c.json"),
            serde_json::to_string_pretty(&conf).unwrap(),
        )
        .unwrap();
        check(&dir.join("p.json"), Some(&dir.join("c.json")), None).unwrap()
    }

    fn conf_findings(checked: &Checked) -> Vec<(&'static str, String, usize)> {
        checked.files[1]
            .diagnostics
            .iter()
            .map(|d| {
                (
                    d.code,
                    d.pointer.clone(),
                    d.position.as_ref().map_or(0, |p| p.line),
                )
            })
            .collect()
    }

    #[test]
    fn kaapanas_env_list_is_checked_entry_by_entry_at_its_positions() {
        let dir = tempfile::tempdir().unwrap();
        let checked = check_with(
            dir.path(),
            json!({}),
            json!({"task_form": {"a": {
                "env": [{"name": "N", "value": "many"}, {"name": "W", "value": "x"},
                        {"name": "W", "value": "y"}],
                "resources": {"limits": {"memory": "1GB"}},
                "taskTemplate": "other"
            }}}),
        );
        let findings = conf_findings(&checked);
        let codes: Vec<_> = findings.iter().map(|(c, p, _)| (*c, p.as_str())).collect();
        assert_eq!(
            codes,
            [
                ("env-type", "/task_form/a/env/0/value"),
                ("duplicate-env", "/task_form/a/env/2/value"),
                ("quantity", "/task_form/a/resources/limits/memory"),
                ("task-form-field", "/task_form/a/taskTemplate"),
            ]
        );
        assert!(
            findings.iter().all(|(_, _, line)| *line > 0),
            "{findings:?}"
        );
        assert!(checked.plan.is_none());
    }

    #[test]
    fn the_pipeline_wide_env_is_under_the_tasks_and_the_confs() {
        let dir = tempfile::tempdir().unwrap();
        let checked = check_with(
            dir.path(),
            json!({"env": {"W": "pipeline-wide", "X": "pipeline-wide"}}),
            json!({"task_form": {"a": {"env": [{"name": "X", "value": "conf"}],
                                        "image": "j:2"}}}),
        );
        assert!(checked.is_valid(), "{:?}", checked.files);
        let plan = checked.plan.unwrap();
        assert_eq!(plan.execution_defaults, ExecutionDefaults::Tapir);
        let task = &plan.tasks[0];
        let env: Vec<_> = task
            .env
            .iter()
            .map(|e| (&*e.name, &*e.value, e.source))
            .collect();
        assert_eq!(
            env,
            [
                ("W", "pipeline-wide", "pipeline-wide"),
                ("X", "conf", "conf")
            ]
        );
        assert_eq!(task.image, "j:2");
        assert_eq!(task.runnable.task.image, "j:2");
        assert_eq!(
            task.runnable.pipeline_env,
            [
                ("W".to_string(), "pipeline-wide".to_string()),
                ("X".to_string(), "pipeline-wide".to_string())
            ]
        );
        assert_eq!(task.runnable.conf_env, [("X".into(), "conf".into())]);
    }

    #[test]
    fn a_pipeline_wide_value_is_checked_only_where_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        // `N` must be an int: wrong for `a`, unless the conf replaces it there.
        let wrong = check_with(
            dir.path(),
            json!({"env": {"N": "x"}}),
            json!({"task_form": {}}),
        );
        let d = &wrong.files[0].diagnostics;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].code, d[0].pointer.as_str()), ("env-type", "/env/N"));
        let replaced = check_with(
            dir.path(),
            json!({"env": {"N": "x"}}),
            json!({"task_form": {"a": {"N": "2"}}}),
        );
        assert!(replaced.is_valid(), "{:?}", replaced.files);
    }

    #[test]
    fn naming_profile_kaapana_brings_its_execution_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let named = check_with(
            dir.path(),
            json!({"profile": "kaapana"}),
            json!({"task_form": {}}),
        );
        let plan = named.plan.unwrap();
        assert_eq!(plan.execution_defaults, ExecutionDefaults::Kaapana);
        assert_eq!(plan.tasks[0].execution.skip_exit_code, Some(126));
        let flag = check(&dir.path().join("p.json"), None, Some(Profile::Kaapana)).unwrap();
        assert_eq!(
            flag.plan.unwrap().execution_defaults,
            ExecutionDefaults::Kaapana
        );
        let ccat_over_named = check(&dir.path().join("p.json"), None, Some(Profile::Ccat)).unwrap();
        assert_eq!(
            ccat_over_named.plan.map(|p| p.execution_defaults),
            Some(ExecutionDefaults::Tapir)
        );
    }
}
