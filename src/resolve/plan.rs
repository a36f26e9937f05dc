//! Resolve: a task, its template, the command line and the host facts → a `RunPlan`, pure
//! data from which each backend renders its argv. A pure function: no engine, no
//! filesystem, no environment (what it needs of the host is gathered before, in
//! `resolve::host`), and nothing engine-specific (Docker's rules are applied by the Docker
//! backend).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diagnostic::did_you_mean;
use crate::model::quantity::{self, format_bytes};
use crate::model::target::SizingError;
use crate::model::{
    Binding, EnvBreach, GPU_KEYS, Mount, ScaleKind, ScaleRule, Task, Template,
    normalize_container_path,
};
use crate::resolve::host::{HostFacts, PathFact};
use crate::resolve::run_options::{EngineOptions, GpuRequest};

/// The plan of a run. It is recorded (`record.json`'s `plan`) and read back typed by the
/// commands that look at runs; every field has a default, so records of older versions,
/// which lack some, stay readable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunPlan {
    #[serde(default)]
    pub task_name: String,
    #[serde(default)]
    pub template: String,
    /// Where the template came from: `inline`, `image` or `file:<path>`.
    #[serde(default)]
    pub template_source: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub mounts: Vec<PlannedMount>,
    /// `--bind` mounts, beyond the template's channels (left out of records without any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<PlannedBind>,
    #[serde(default)]
    pub env: Vec<PlannedEnv>,
    /// `None`: the image's own CMD.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub command_source: CommandSource,
    #[serde(default)]
    pub entrypoint: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub user: PlannedUser,
    #[serde(default)]
    pub network: Option<String>,
    /// `--shm-size`, `--gpus`, `--publish`, `--engine-arg` (left out of records without
    /// any).
    #[serde(default, skip_serializing_if = "EngineOptions::is_empty")]
    pub engine: EngineOptions,
    /// Things the user should know before the run starts (unbound channels, raised limits).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl RunPlan {
    /// The GPUs the run gets: `--gpus` wins over the task's `resources.limits` count.
    pub(crate) fn gpu_request(&self) -> Option<GpuRequest> {
        self.engine
            .gpus
            .clone()
            .or_else(|| self.limits.gpus.map(GpuRequest::Count))
    }
}

/// Where the command comes from (the task's `command` wins over the template's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CommandSource {
    Task,
    Template,
    /// No command: the image's own CMD runs.
    #[default]
    Image,
}

impl std::fmt::Display for CommandSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CommandSource::Task => "task",
            CommandSource::Template => "template",
            CommandSource::Image => "image",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlannedMount {
    pub channel: String,
    pub direction: Direction,
    pub host_path: PathBuf,
    pub container_path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A `--bind HOST:CONTAINER[:ro|rw]` mount: not a channel of the template, so it is no
/// input or output of the task (`outputs` does not list it, `rm` never looks at it). A
/// read-only one must exist; tapir creates a missing read-write one, as for outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlannedBind {
    pub host_path: PathBuf,
    pub container_path: String,
    #[serde(default)]
    pub read_only: bool,
}

impl PlannedBind {
    /// How messages name it: `--bind HOST:CONTAINER` as the host path resolved.
    pub(crate) fn label(&self) -> String {
        format!(
            "--bind {}:{}",
            self.host_path.display(),
            self.container_path
        )
    }
}

/// The usage line of `--bind`, repeated in its errors.
const BIND_USAGE: &str = "expected HOST:CONTAINER[:ro|rw]";

/// Reads a `--bind` value. HOST is relative to `cwd` (the invoker's current folder, as
/// for any path on the command line) and `~/` starts at `home`, as in a task file. The
/// mode is `ro` unless `:rw` is given: a read-only bind must exist, so a mistyped
/// reference folder is an error instead of an empty folder created by tapir. The error
/// is a message with its fix.
pub(crate) fn parse_bind(
    text: &str,
    cwd: &Path,
    home: Option<&Path>,
) -> Result<PlannedBind, String> {
    let usage = |why: &str| {
        format!(
            "--bind `{text}`: {why}\n  fix: {BIND_USAGE}, e.g. --bind ./reference:/reference:ro"
        )
    };
    let (rest, read_only) = if let Some(rest) = text.strip_suffix(":ro") {
        (rest, true)
    } else if let Some(rest) = text.strip_suffix(":rw") {
        (rest, false)
    } else {
        (text, true)
    };
    // The container path is after the last `:`, so a host path may hold colons.
    let Some((host, container)) = rest.rsplit_once(':') else {
        return Err(usage("no `:` between the host and the container path"));
    };
    if host.is_empty() {
        return Err(usage("the host path is empty"));
    }
    if !container.starts_with('/') {
        if host.contains(':') {
            // `data:/ref:rx`: a mode that is neither `ro` nor `rw`.
            return Err(usage(&format!("`{container}` is not a mode (ro or rw)")));
        }
        return Err(format!(
            "--bind `{text}`: the container path `{container}` is not absolute\n  fix: write it from the container's root, e.g. /{container}"
        ));
    }
    let container_path = normalize_container_path(container);
    if container_path == "/" {
        return Err(format!(
            "--bind `{text}`: the container path cannot be `/` (it would hide the image)\n  fix: bind a folder below it, e.g. /data"
        ));
    }
    for part in [host, container] {
        if part.contains(',') || part.contains('\n') || part.contains('\0') {
            return Err(format!(
                "--bind `{text}`: `{part}` contains a comma or a line break, which a Docker mount cannot express\n  fix: rename the folder"
            ));
        }
    }
    let host_path = host_path(host, cwd, home)
        .map_err(|(message, fix)| format!("--bind `{text}`: {message}\n  fix: {fix}"))?;
    Ok(PlannedBind {
        host_path,
        container_path,
        read_only,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    Input,
    Output,
}

impl Direction {
    /// The serialised name (as in records).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlannedEnv {
    pub name: String,
    #[serde(serialize_with = "masked", deserialize_with = "recorded_value")]
    pub value: EnvValue,
    #[serde(default = "unknown_source")]
    pub source: EnvSource,
}

fn unknown_source() -> EnvSource {
    EnvSource::Other(String::new())
}

/// Where an env value came from. Records keep it as the words people read
/// (`--env`, `--env-file vars.env:3`, `task`, `template default`, `tapir (…)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvSource {
    /// `--env NAME=VALUE` or `--env NAME`.
    CommandLine,
    /// A line of an `--env-file` (the path as given).
    EnvFile { path: String, line: usize },
    /// The task's `env`.
    Task,
    /// The template's default value.
    Template,
    /// Set by tapir itself, for the reason given (e.g. HOME for a run as the invoker).
    Tapir(&'static str),
    /// Named by the caller (`pipeline run`: the conf file, the pipeline's env) for a value
    /// that reached the run through an env file on standard input.
    Caller(String),
    /// A source this tapir does not know (a record written by another version).
    Other(String),
}

/// Why tapir sets HOME when a task runs as the invoking user.
pub(crate) const HOME_FOR_INVOKER: &str = "runs as the invoking user";

impl std::fmt::Display for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvSource::CommandLine => f.write_str("--env"),
            EnvSource::EnvFile { path, line } => write!(f, "--env-file {path}:{line}"),
            EnvSource::Task => f.write_str("task"),
            EnvSource::Template => f.write_str("template default"),
            EnvSource::Tapir(why) => write!(f, "tapir ({why})"),
            EnvSource::Caller(text) | EnvSource::Other(text) => f.write_str(text),
        }
    }
}

impl EnvSource {
    /// The source for its words in a record (the inverse of `Display`).
    pub(crate) fn parse(text: &str) -> Self {
        match text {
            "--env" => EnvSource::CommandLine,
            "task" => EnvSource::Task,
            "template default" => EnvSource::Template,
            _ if text == EnvSource::Tapir(HOME_FOR_INVOKER).to_string() => {
                EnvSource::Tapir(HOME_FOR_INVOKER)
            }
            _ => text
                .strip_prefix("--env-file ")
                .and_then(|rest| rest.rsplit_once(':'))
                .and_then(|(path, line)| {
                    Some(EnvSource::EnvFile {
                        path: path.to_string(),
                        line: line.parse().ok()?,
                    })
                })
                .unwrap_or_else(|| EnvSource::Other(text.to_string())),
        }
    }

    /// How messages say who set a value: "the task", "--env".
    fn who(&self) -> String {
        match self {
            EnvSource::Task => "the task".into(),
            other => other.to_string(),
        }
    }
}

impl Serialize for EnvSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EnvSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|text| EnvSource::parse(&text))
    }
}

/// An env value that knows whether it is a secret: secrets serialise as `****`, so they
/// cannot reach a record, a dry-run print or a log.
#[derive(Debug, Clone)]
pub(crate) struct EnvValue {
    pub text: String,
    pub secret: bool,
}

pub(crate) use crate::model::secret::{MASK, is_secret_name};

fn masked<S: serde::Serializer>(value: &EnvValue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value.shown())
}

/// A value read back from a record: a secret's is the mask, and stays marked secret.
fn recorded_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<EnvValue, D::Error> {
    let text = String::deserialize(d)?;
    Ok(EnvValue {
        secret: text == MASK,
        text,
    })
}

impl EnvValue {
    /// The value as records and prints show it: `****` for a secret.
    pub(crate) fn shown(&self) -> &str {
        if self.secret { MASK } else { &self.text }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Limits {
    pub memory_bytes: Option<u64>,
    /// Why the memory limit is what it is, in words.
    pub memory_reason: Option<String>,
    pub memory_reservation_bytes: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub gpus: Option<u64>,
    pub scale_rules: Vec<ScaleOutcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScaleOutcome {
    pub channel: String,
    pub rule: String,
    pub kind: ScaleKind,
    pub measured_bytes: u64,
    pub files: u64,
    pub requirement_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum PlannedUser {
    /// Run as the invoking user, so outputs belong to them.
    Invoker { uid: u32, gid: u32 },
    /// Keep the image's own `USER` (also what a record without a user is read as).
    #[default]
    Image,
}

/// One `--env` / `--env-file` value, with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub name: String,
    pub value: String,
    pub source: EnvSource,
}

/// What the command line adds to a task.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub overrides: Vec<Override>,
    pub user: PlannedUser,
    pub network: Option<String>,
    pub entrypoint: Option<String>,
    /// `--bind` mounts, already read (`parse_bind`).
    pub binds: Vec<PlannedBind>,
    /// `--shm-size`, `--gpus`, `--publish`, `--engine-arg`.
    pub engine: EngineOptions,
}

/// A reason the task cannot run, with the task-file place it concerns.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub message: String,
    pub fix: String,
    /// JSON Pointer into the task file, when the problem is there.
    pub pointer: Option<String>,
}

impl Problem {
    fn new(message: impl Into<String>, fix: impl Into<String>, pointer: Option<String>) -> Self {
        Self {
            message: message.into(),
            fix: fix.into(),
            pointer,
        }
    }
}

/// Builds the plan. `task_dir` is the task file's folder (relative host paths resolve
/// against it); `host` is what was found on the host for this task
/// (`HostFacts::gather`). All problems are returned together.
pub(crate) fn resolve(
    task: &Task,
    template: &Template,
    template_source: &str,
    task_dir: &Path,
    options: &Options,
    host: &HostFacts,
) -> Result<RunPlan, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let mut mounts = Vec::new();
    let mut scale_inputs: Vec<(String, ScaleRule)> = Vec::new();
    for (direction, declared, bound, list) in [
        (Direction::Input, &template.inputs, &task.inputs, "inputs"),
        (
            Direction::Output,
            &template.outputs,
            &task.outputs,
            "outputs",
        ),
    ] {
        channels(
            direction,
            declared,
            bound,
            list,
            task_dir,
            host,
            &mut mounts,
            &mut scale_inputs,
            &mut problems,
            &mut warnings,
        );
    }
    check_overlaps(&mounts, &mut problems);
    check_binds(&options.binds, &mounts, host, &mut problems);

    let env = merge_env(task, template, options, &mut problems, &mut warnings);
    let limits = limits(
        task,
        template,
        &scale_inputs,
        host,
        &mut problems,
        &mut warnings,
    );

    let (command, command_source) = match (&task.command, &template.command) {
        (Some(c), _) => (Some(c.clone()), CommandSource::Task),
        (None, Some(c)) => (Some(c.clone()), CommandSource::Template),
        (None, None) => (None, CommandSource::Image),
    };

    let mut labels = task.config.labels.clone();
    labels.insert("tapir.task".into(), task.name.clone());
    labels.insert("tapir.template".into(), template.identifier.clone());

    engine_option_findings(options, &mut problems, &mut warnings);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RunPlan {
        task_name: task.name.clone(),
        template: template.identifier.clone(),
        template_source: template_source.to_string(),
        image: task.image.clone(),
        mounts,
        binds: options.binds.clone(),
        env,
        command,
        command_source,
        entrypoint: options.entrypoint.clone(),
        limits,
        labels,
        user: options.user,
        network: options.network.clone(),
        engine: options.engine.clone(),
        warnings,
    })
}

/// What the engine options of the command line cannot do together, and what the user
/// should know about them.
fn engine_option_findings(
    options: &Options,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) {
    let engine = &options.engine;
    if !engine.ports.is_empty() && options.network.as_deref() == Some("none") {
        problems.push(Problem::new(
            "--publish needs a network, and --network none gives the container none",
            "leave out --network none, or --publish",
            None,
        ));
    }
    for port in &engine.ports {
        if !port.host_address().is_loopback() {
            warnings.push(format!(
                "port {} is published on {}, which other machines may reach (without an address tapir binds to 127.0.0.1 only)",
                port.container_port,
                port.host_address()
            ));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn channels(
    direction: Direction,
    declared: &[Mount],
    bound: &[Binding],
    list: &str,
    task_dir: &Path,
    host: &HostFacts,
    mounts: &mut Vec<PlannedMount>,
    scale_inputs: &mut Vec<(String, ScaleRule)>,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) {
    let kind = if direction == Direction::Input {
        "input"
    } else {
        "output"
    };
    let names: Vec<&str> = declared.iter().map(|m| m.name.as_str()).collect();
    for (i, binding) in bound.iter().enumerate() {
        if !names.contains(&binding.name.as_str()) {
            let fix = match did_you_mean(&binding.name, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if names.is_empty() => {
                    format!("the template declares no {kind} channels; remove this binding")
                }
                None => format!("the template's {kind} channels are: {}", names.join(", ")),
            };
            problems.push(Problem::new(
                format!("the template has no {kind} channel `{}`", binding.name),
                fix,
                Some(format!("/{list}/{i}/name")),
            ));
        }
    }
    for mount in declared {
        let Some((index, binding)) = bound.iter().enumerate().find(|(_, b)| b.name == mount.name)
        else {
            warnings.push(format!(
                "{kind} channel `{}` ({}) is not bound in the task: it is not mounted",
                mount.name, mount.mounted_path
            ));
            continue;
        };
        let pointer = format!("/{list}/{index}/volume_source/host_path");
        let raw = &binding.volume_source.host_path;
        let host_path = match host_path(raw, task_dir, host.home.as_deref()) {
            Ok(path) => path,
            Err((message, fix)) => {
                problems.push(Problem::new(
                    format!("{kind} channel `{}`: {message}", mount.name),
                    fix,
                    Some(pointer),
                ));
                continue;
            }
        };
        let fact = host.paths.get(&host_path).cloned().unwrap_or_else(|| {
            PathFact::Unusable("it was not looked at (internal: missing host fact)".into())
        });
        let host = host_path;
        for (what, text) in [
            ("host path", host.to_string_lossy().into_owned()),
            ("mounted_path", mount.mounted_path.clone()),
        ] {
            if text.contains(',') || text.contains('\n') || text.contains('\0') {
                problems.push(Problem::new(
                    format!("{kind} channel `{}`: the {what} `{text}` contains a comma or a line break, which a Docker mount cannot express", mount.name),
                    "rename the folder",
                    Some(pointer.clone()),
                ));
            }
        }
        if direction == Direction::Input {
            match &fact {
                PathFact::Folder | PathFact::File => {}
                PathFact::Other => problems.push(Problem::new(format!("input channel `{}`: {} is neither a folder nor a file", mount.name, host.display()), "point host_path at a folder", Some(pointer.clone()))),
                PathFact::Unusable(reason) => problems.push(Problem::new(
                    format!("input channel `{}`: {} cannot be used: {reason}", mount.name, host.display()),
                    if Path::new(raw).is_relative() && !raw.starts_with('~') { format!("create it, or fix host_path (relative paths are relative to the task file's folder, {})", task_dir.display()) } else { "create it, or fix host_path".to_string() },
                    Some(pointer.clone()),
                )),
            }
            if let Some(rule) = scale_rule(binding, mount) {
                scale_inputs.push((mount.name.clone(), rule.clone()));
            }
        } else if fact == PathFact::File {
            problems.push(Problem::new(
                format!(
                    "output channel `{}`: {} is a file, not a folder",
                    mount.name,
                    host.display()
                ),
                "point host_path at a folder (tapir creates it)",
                Some(pointer.clone()),
            ));
        }
        mounts.push(PlannedMount {
            channel: mount.name.clone(),
            direction,
            host_path: host,
            container_path: normalize_container_path(&mount.mounted_path),
            read_only: direction == Direction::Input,
        });
    }
}

/// The host folder a task binds: `~/…` from `home`, relative paths from `task_dir`,
/// `.`/`..` resolved without touching the filesystem. The error is (message, fix).
pub(crate) fn host_path(
    raw: &str,
    task_dir: &Path,
    home: Option<&Path>,
) -> Result<PathBuf, (String, String)> {
    let expanded = expand_home(raw, home)?;
    Ok(lexical_normalize(&if expanded.is_absolute() {
        expanded
    } else {
        task_dir.join(expanded)
    }))
}

/// The scale rule of an input: the task's binding's, else the template's.
pub(crate) fn scale_rule<'a>(binding: &'a Binding, mount: &'a Mount) -> Option<&'a ScaleRule> {
    binding.scale_rule.as_ref().or(mount.scale_rule.as_ref())
}

/// `~` and `~/…` start at the invoker's home, as in a shell (without this a folder named
/// `~` would be created). `~user/…` is refused: tapir does not look up other users.
fn expand_home(host_path: &str, home: Option<&Path>) -> Result<PathBuf, (String, String)> {
    let Some(rest) = host_path.strip_prefix('~') else {
        return Ok(PathBuf::from(host_path));
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err((
            format!(
                "the host path `{host_path}`: only `~/` (your own home) is expanded, not `~user/`"
            ),
            "write the full path (e.g. /home/user/…), or a path relative to the task file's folder"
                .into(),
        ));
    }
    match home {
        Some(home) => Ok(home.join(rest.trim_start_matches('/'))),
        None => Err((
            format!("the host path `{host_path}` starts with `~`, but HOME is not set"),
            "set HOME, or write the full path".into(),
        )),
    }
}

/// `a/./b/../c` → `a/c` without touching the filesystem (symlinks are kept as written).
fn lexical_normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Two mounts on one container path, or one inside another, or an output sharing a host
/// folder with an input, cannot be expressed safely: refuse them.
fn check_overlaps(mounts: &[PlannedMount], problems: &mut Vec<Problem>) {
    for (i, a) in mounts.iter().enumerate() {
        for b in &mounts[i + 1..] {
            let inside = |x: &str, y: &str| y == "/" || x == y || x.starts_with(&format!("{y}/"));
            if inside(&a.container_path, &b.container_path)
                || inside(&b.container_path, &a.container_path)
            {
                problems.push(Problem::new(
                    format!(
                        "channels `{}` ({}) and `{}` ({}) overlap inside the container",
                        a.channel, a.container_path, b.channel, b.container_path
                    ),
                    "give each channel its own mounted_path, none inside another",
                    None,
                ));
            }
            let same_host = a.host_path == b.host_path;
            let nested_host =
                a.host_path.starts_with(&b.host_path) || b.host_path.starts_with(&a.host_path);
            if (same_host || nested_host) && a.direction != b.direction {
                problems.push(Problem::new(
                    format!(
                        "input and output overlap on the host: `{}` ({}) and `{}` ({})",
                        a.channel,
                        a.host_path.display(),
                        b.channel,
                        b.host_path.display()
                    ),
                    "a task must not write into its own input: give the output its own folder",
                    None,
                ));
            }
        }
    }
}

/// `--bind` mounts get the checks channels get: a read-only one must exist, a read-write
/// one must not be a file (tapir creates it), none may share or nest in another's
/// container path, and none may write into a folder that is mounted read-only elsewhere
/// (or be read from a folder that is written).
fn check_binds(
    binds: &[PlannedBind],
    mounts: &[PlannedMount],
    host: &HostFacts,
    problems: &mut Vec<Problem>,
) {
    let fix_paths = "give each --bind its own container path, none inside another or a channel's";
    for bind in binds {
        let fact = host.paths.get(&bind.host_path).cloned().unwrap_or_else(|| {
            PathFact::Unusable("it was not looked at (internal: missing host fact)".into())
        });
        match (&fact, bind.read_only) {
            (PathFact::Folder | PathFact::File, _) | (PathFact::Unusable(_), false) => {}
            (PathFact::Other, _) => problems.push(Problem::new(
                format!("{}: {} is neither a folder nor a file", bind.label(), bind.host_path.display()),
                "bind a folder or a file",
                None,
            )),
            (PathFact::Unusable(reason), true) => problems.push(Problem::new(
                format!("{}: {} cannot be used: {reason}", bind.label(), bind.host_path.display()),
                "create it, fix the path (relative to the current folder), or add `:rw` to have tapir create it",
                None,
            )),
        }
    }
    let inside = |x: &str, y: &str| x == y || x.starts_with(&format!("{y}/"));
    let nested = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    for (i, bind) in binds.iter().enumerate() {
        for other in &binds[i + 1..] {
            if inside(&bind.container_path, &other.container_path)
                || inside(&other.container_path, &bind.container_path)
            {
                problems.push(Problem::new(
                    format!(
                        "{} and {} overlap inside the container",
                        bind.label(),
                        other.label()
                    ),
                    fix_paths,
                    None,
                ));
            }
            if bind.read_only != other.read_only && nested(&bind.host_path, &other.host_path) {
                problems.push(Problem::new(
                    format!("{} and {} overlap on the host, one read-only and one read-write", bind.label(), other.label()),
                    "a task must not write into a folder it is given read-only: bind separate folders",
                    None,
                ));
            }
        }
        for mount in mounts {
            if inside(&bind.container_path, &mount.container_path)
                || inside(&mount.container_path, &bind.container_path)
            {
                problems.push(Problem::new(
                    format!(
                        "{} and channel `{}` ({}) overlap inside the container",
                        bind.label(),
                        mount.channel,
                        mount.container_path
                    ),
                    fix_paths,
                    None,
                ));
            }
            let bind_writes = !bind.read_only;
            let mount_writes = mount.direction == Direction::Output;
            if bind_writes != mount_writes && nested(&bind.host_path, &mount.host_path) {
                let fix = if bind_writes {
                    "a task must not write into its own input: bind another folder"
                } else {
                    "a task must not read from a folder it writes as an output: bind another folder"
                };
                problems.push(Problem::new(
                    format!(
                        "{} and channel `{}` ({}) overlap on the host",
                        bind.label(),
                        mount.channel,
                        mount.host_path.display()
                    ),
                    fix,
                    None,
                ));
            }
        }
    }
}

/// Env by precedence (DESIGN.md decision 3): command line > task > template defaults; the
/// image's own ENV stays for names not set. `type`, `choices` and `adjustable` are enforced.
fn merge_env(
    task: &Task,
    template: &Template,
    options: &Options,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Vec<PlannedEnv> {
    let mut env: Vec<PlannedEnv> = template
        .env
        .iter()
        .map(|v| PlannedEnv {
            name: v.name.clone(),
            value: EnvValue {
                text: v.value.clone(),
                secret: v.is_secret(),
            },
            source: EnvSource::Template,
        })
        .collect();
    let task_overrides = task.env.iter().enumerate().map(|(i, v)| {
        (
            v.name.clone(),
            v.value.clone(),
            EnvSource::Task,
            Some(format!("/env/{i}/value")),
            is_secret_name(&v.name) || v.rendered_from_secret,
        )
    });
    let cli_overrides = options.overrides.iter().map(|o| {
        let secret = is_secret_name(&o.name);
        (
            o.name.clone(),
            o.value.clone(),
            o.source.clone(),
            None,
            secret,
        )
    });
    let declared: Vec<&str> = template.env.iter().map(|v| v.name.as_str()).collect();
    for (name, value, source, pointer, secret) in task_overrides.chain(cli_overrides) {
        // A name the template does not declare may be a typo; images may also read
        // variables nobody declared, so the value is passed all the same.
        if !declared.is_empty()
            && !declared.contains(&name.as_str())
            && let Some(near) = did_you_mean(&name, declared.iter().copied())
        {
            warnings.push(format!(
                "`{name}` (set by {}) is not declared by template `{}`; did you mean `{near}`? (the value is still passed: images may read variables the template does not declare)",
                source.who(),
                template.identifier
            ));
        }
        // Messages may reach the terminal and the record: a secret's value never does.
        let shown = if secret {
            MASK.to_string()
        } else {
            value.clone()
        };
        if let Some(declared) = template.env.iter().find(|d| d.name == name) {
            for breach in declared.breaches(&value, secret) {
                let message = match &breach {
                    EnvBreach::NotAdjustable => format!(
                        "`{name}` is declared `adjustable: false` by template `{}`; the {source} cannot override it",
                        template.identifier
                    ),
                    EnvBreach::WrongType(kind) => format!(
                        "`{name}` is declared as {} by template `{}`, but the {source} sets \"{shown}\"",
                        kind.label(),
                        template.identifier
                    ),
                    EnvBreach::NotAChoice { .. } => format!(
                        "\"{shown}\" is not one of the choices of `{name}` (set by the {source})"
                    ),
                };
                problems.push(Problem::new(message, breach.fix(declared), pointer.clone()));
            }
        }
        let planned = PlannedEnv {
            name: name.clone(),
            value: EnvValue {
                secret,
                text: value,
            },
            source,
        };
        match env.iter_mut().find(|e| e.name == name) {
            Some(existing) => *existing = planned,
            None => env.push(planned),
        }
    }
    env
}

fn limits(
    task: &Task,
    template: &Template,
    scale_inputs: &[(String, ScaleRule)],
    host: &HostFacts,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) -> Limits {
    // Task resources override template resources key by key (the reference replaced the
    // whole object, so `"resources": {}` silently dropped the template's limits).
    let merged = |section: fn(&crate::model::Resources) -> Option<&BTreeMap<String, String>>| {
        let mut out = BTreeMap::new();
        for resources in [template.resources.as_ref(), task.resources.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(values) = section(resources) {
                out.extend(values.clone());
            }
        }
        out
    };
    let limits_in = merged(|r| r.limits.as_ref());
    let requests_in = merged(|r| r.requests.as_ref());
    let mut out = Limits::default();
    let bytes = |map: &BTreeMap<String, String>, key: &str, problems: &mut Vec<Problem>| {
        map.get(key).and_then(|t| match quantity::parse_bytes(t) {
            Ok(b) => Some(b),
            Err(e) => {
                problems.push(Problem::new(
                    format!("resources: {key}: {}", e.message),
                    e.fix,
                    None,
                ));
                None
            }
        })
    };
    let explicit_limit = bytes(&limits_in, "memory", problems);
    let explicit_request = bytes(&requests_in, "memory", problems);
    out.cpu_millis = limits_in
        .get("cpu")
        .and_then(|t| match quantity::parse_cpu_millis(t) {
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(Problem::new(
                    format!("resources: cpu: {}", e.message),
                    e.fix,
                    None,
                ));
                None
            }
        });
    out.gpus = GPU_KEYS
        .iter()
        .find_map(|k| limits_in.get(*k))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|n| *n > 0);

    let mut rule_limit = None::<(u64, String)>;
    let mut rule_request = None::<u64>;
    for (channel, rule) in scale_inputs {
        let measured = host.measurements.get(channel).cloned().unwrap_or_else(|| {
            Err(SizingError {
                message: "the input was not measured (internal: missing host fact)".into(),
                fix: "please report this".into(),
            })
        });
        match measured {
            Ok(m) => {
                let requirement = rule.function().apply(m.bytes);
                out.scale_rules.push(ScaleOutcome {
                    channel: channel.clone(),
                    rule: rule.describe(),
                    kind: rule.kind,
                    measured_bytes: m.bytes,
                    files: m.files,
                    requirement_bytes: requirement,
                });
                match rule.kind {
                    ScaleKind::Limit
                        if rule_limit.as_ref().is_none_or(|(b, _)| requirement > *b) =>
                    {
                        rule_limit = Some((
                            requirement,
                            format!(
                                "scale rule of input `{channel}` ({}: {} measured → {})",
                                rule.describe(),
                                format_bytes(m.bytes),
                                format_bytes(requirement)
                            ),
                        ));
                    }
                    ScaleKind::Request => {
                        rule_request = Some(rule_request.unwrap_or(0).max(requirement))
                    }
                    ScaleKind::Limit => {}
                }
            }
            Err(e) => problems.push(Problem::new(
                format!("scale rule of input `{channel}`: {}", e.message),
                e.fix,
                None,
            )),
        }
    }
    let (memory, reason) = match (explicit_limit, rule_limit) {
        (Some(l), Some((r, why))) if r > l => (
            Some(r),
            Some(format!("{why}, above the declared {}", format_bytes(l))),
        ),
        (Some(l), _) => (
            Some(l),
            Some("declared in resources.limits.memory".to_string()),
        ),
        (None, Some((r, why))) => (Some(r), Some(why)),
        (None, None) => (None, None),
    };
    out.memory_bytes = memory.filter(|m| *m > 0);
    out.memory_reason = reason;
    let reservation = explicit_request.into_iter().chain(rule_request).max();
    out.memory_reservation_bytes =
        reservation.filter(|r| *r > 0 && out.memory_bytes.is_none_or(|m| *r <= m));
    if let (Some(r), Some(m)) = (reservation, out.memory_bytes)
        && r > m
    {
        warnings.push(format!(
            "the memory request {} is above the limit {}; no reservation is set",
            format_bytes(r),
            format_bytes(m)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    //! One table: task + template + command line + host facts → the plan's env (with
    //! sources), mounts, limits, problems and warnings. No filesystem is touched.

    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use serde_json::{Value, json};

    use super::*;
    use crate::model::target::SizingError;
    use crate::resolve::host::{HostFacts, PathFact};
    use crate::resolve::sizing::Measurement;

    const MI: u64 = 1024 * 1024;

    /// `base` with the keys of `extra` replaced.
    fn merged(mut base: Value, extra: Value) -> Value {
        for (k, v) in extra.as_object().expect("an object") {
            base[k] = v.clone();
        }
        base
    }

    struct Case {
        name: &'static str,
        template: Value,
        task: Value,
        overrides: Vec<(&'static str, &'static str, EnvSource)>,
        /// `--bind` mounts: (host path, container path, read-only)
        binds: Vec<(&'static str, &'static str, bool)>,
        host: HostFacts,
        /// (name, value as recorded, source as recorded)
        env: Vec<(&'static str, &'static str, &'static str)>,
        /// (channel, host path, container path, read-only)
        mounts: Vec<(&'static str, &'static str, &'static str, bool)>,
        /// (memory, reservation, cpu millis)
        limits: (Option<u64>, Option<u64>, Option<u64>),
        /// Each expected problem's words; empty: the plan resolves.
        problems: Vec<&'static str>,
        warnings: Vec<&'static str>,
    }

    impl Default for Case {
        fn default() -> Self {
            Case {
                name: "",
                template: json!({}),
                task: json!({}),
                overrides: Vec::new(),
                binds: Vec::new(),
                host: HostFacts::default(),
                env: Vec::new(),
                mounts: Vec::new(),
                limits: (None, None, None),
                problems: Vec::new(),
                warnings: Vec::new(),
            }
        }
    }

    fn facts(paths: &[(&str, PathFact)], home: Option<&str>) -> HostFacts {
        HostFacts {
            home: home.map(PathBuf::from),
            paths: paths
                .iter()
                .map(|(p, f)| (PathBuf::from(p), f.clone()))
                .collect(),
            measurements: BTreeMap::new(),
        }
    }

    fn env_file(line: usize) -> EnvSource {
        EnvSource::EnvFile {
            path: "vars.env".into(),
            line,
        }
    }

    fn cases() -> Vec<Case> {
        let channel = |name: &str, path: &str| json!([{"name": name, "mounted_path": path}]);
        let bind =
            |name: &str, host: &str| json!([{"name": name, "volume_source": {"host_path": host}}]);
        let mut measured = facts(&[("/tasks/data", PathFact::Folder)], None);
        measured.measurements.insert(
            "in".into(),
            Ok(Measurement {
                bytes: 200 * MI,
                files: 3,
            }),
        );
        let mut unmeasurable = facts(&[("/tasks/data", PathFact::Folder)], None);
        unmeasurable.measurements.insert(
            "in".into(),
            Err(SizingError {
                message: "cannot read /tasks/data/x".into(),
                fix: "fix its permissions".into(),
            }),
        );
        let scaled_input = json!([{"name": "in", "mounted_path": "/in",
            "scale_rule": {"type": "limit", "mode": "sum", "scale_factor": 2}}]);
        vec![
            Case {
                name: "env precedence: command line > env file > task > template",
                template: json!({"env": [
                    {"name": "A", "value": "template"}, {"name": "B", "value": "template"},
                    {"name": "C", "value": "template"}, {"name": "D", "value": "template"}]}),
                task: json!({"env": [{"name": "B", "value": "task"}, {"name": "C", "value": "task"}, {"name": "D", "value": "task"}]}),
                overrides: vec![
                    ("D", "file", env_file(1)),
                    ("C", "file", env_file(2)),
                    ("C", "cli", EnvSource::CommandLine),
                ],
                env: vec![
                    ("A", "template", "template default"),
                    ("B", "task", "task"),
                    ("C", "cli", "--env"),
                    ("D", "file", "--env-file vars.env:1"),
                ],
                ..Case::default()
            },
            Case {
                name: "secrets are masked in the plan and in messages",
                template: json!({"env": [{"name": "API_TOKEN", "value": "", "type": "int"}]}),
                task: json!({"env": [{"name": "API_TOKEN", "value": "s3cret"}]}),
                problems: vec![
                    "`API_TOKEN` is declared as int by template `t`, but the task sets \"****\"",
                ],
                ..Case::default()
            },
            Case {
                name: "adjustable: false is enforced for the command line",
                template: json!({"env": [{"name": "FIXED", "value": "a", "adjustable": false}]}),
                overrides: vec![("FIXED", "b", EnvSource::CommandLine)],
                problems: vec![
                    "`FIXED` is declared `adjustable: false` by template `t`; the --env cannot override it",
                ],
                ..Case::default()
            },
            Case {
                name: "choices with did-you-mean",
                template: json!({"env": [{"name": "MODE", "value": "fast", "choices": ["fast", "slow"]}]}),
                overrides: vec![("MODE", "fsat", env_file(4))],
                problems: vec![
                    "\"fsat\" is not one of the choices of `MODE` (set by the --env-file vars.env:4)",
                ],
                ..Case::default()
            },
            Case {
                name: "a misspelt name is passed, with a warning",
                template: json!({"env": [{"name": "MODE", "value": "fast"}]}),
                task: json!({"env": [{"name": "MDOE", "value": "slow"}]}),
                env: vec![
                    ("MODE", "fast", "template default"),
                    ("MDOE", "slow", "task"),
                ],
                warnings: vec![
                    "`MDOE` (set by the task) is not declared by template `t`; did you mean `MODE`?",
                ],
                ..Case::default()
            },
            Case {
                name: "no HOME is added: that is the Docker backend's rule",
                task: json!({"env": []}),
                ..Case::default()
            },
            Case {
                name: "relative and ~/ host paths",
                template: json!({"inputs": channel("in", "/in"), "outputs": channel("out", "/out/")}),
                task: json!({"inputs": bind("in", "./data/../data"), "outputs": bind("out", "~/results")}),
                host: facts(
                    &[
                        ("/tasks/data", PathFact::Folder),
                        (
                            "/home/me/results",
                            PathFact::Unusable("it does not exist".into()),
                        ),
                    ],
                    Some("/home/me"),
                ),
                mounts: vec![
                    ("in", "/tasks/data", "/in", true),
                    ("out", "/home/me/results", "/out", false),
                ],
                ..Case::default()
            },
            Case {
                name: "binds: a read-only one that exists, a read-write one tapir creates",
                template: json!({"inputs": channel("in", "/in")}),
                task: json!({"inputs": bind("in", "data")}),
                binds: vec![
                    ("/ref", "/reference", true),
                    ("/scratch", "/scratch", false),
                ],
                host: facts(
                    &[
                        ("/tasks/data", PathFact::Folder),
                        ("/ref", PathFact::Folder),
                        ("/scratch", PathFact::Unusable("it does not exist".into())),
                    ],
                    None,
                ),
                mounts: vec![("in", "/tasks/data", "/in", true)],
                ..Case::default()
            },
            Case {
                name: "binds: missing, on a channel's path, on each other, writing into an input",
                template: json!({"inputs": channel("in", "/in")}),
                task: json!({"inputs": bind("in", "data")}),
                binds: vec![
                    ("/missing", "/m", true),
                    ("/ref", "/in/ref", true),
                    ("/ref", "/a", true),
                    ("/ref", "/a/b", true),
                    ("/tasks/data/tmp", "/tmp-out", false),
                ],
                host: facts(
                    &[
                        ("/tasks/data", PathFact::Folder),
                        ("/ref", PathFact::Folder),
                        ("/missing", PathFact::Unusable("it does not exist".into())),
                        (
                            "/tasks/data/tmp",
                            PathFact::Unusable("it does not exist".into()),
                        ),
                    ],
                    None,
                ),
                problems: vec![
                    "--bind /missing:/m: /missing cannot be used: it does not exist",
                    "--bind /ref:/in/ref and channel `in` (/in) overlap inside the container",
                    "--bind /ref:/a and --bind /ref:/a/b overlap inside the container",
                    "--bind /tasks/data/tmp:/tmp-out and channel `in` (/tasks/data) overlap on the host",
                ],
                ..Case::default()
            },
            Case {
                name: "a missing input",
                template: json!({"inputs": channel("in", "/in")}),
                task: json!({"inputs": bind("in", "data")}),
                host: facts(
                    &[(
                        "/tasks/data",
                        PathFact::Unusable("it does not exist".into()),
                    )],
                    None,
                ),
                problems: vec!["input channel `in`: /tasks/data cannot be used: it does not exist"],
                ..Case::default()
            },
            Case {
                name: "an output that is a file",
                template: json!({"outputs": channel("out", "/out")}),
                task: json!({"outputs": bind("out", "/data/out")}),
                host: facts(&[("/data/out", PathFact::File)], None),
                problems: vec!["output channel `out`: /data/out is a file, not a folder"],
                ..Case::default()
            },
            Case {
                name: "~user/ is refused, ~ without HOME too",
                template: json!({"outputs": [{"name": "a", "mounted_path": "/a"}, {"name": "b", "mounted_path": "/b"}]}),
                task: json!({"outputs": [
                    {"name": "a", "volume_source": {"host_path": "~alice/x"}},
                    {"name": "b", "volume_source": {"host_path": "~/x"}}]}),
                problems: vec![
                    "output channel `a`: the host path `~alice/x`: only `~/` (your own home) is expanded",
                    "output channel `b`: the host path `~/x` starts with `~`, but HOME is not set",
                ],
                ..Case::default()
            },
            Case {
                name: "unknown and unbound channels",
                template: json!({"inputs": channel("images", "/in"), "outputs": channel("out", "/out")}),
                task: json!({"inputs": bind("imgaes", "data")}),
                problems: vec!["the template has no input channel `imgaes`"],
                warnings: vec!["output channel `out` (/out) is not bound in the task"],
                ..Case::default()
            },
            Case {
                name: "overlapping channels",
                template: json!({"outputs": [{"name": "a", "mounted_path": "/out"}, {"name": "b", "mounted_path": "/out/b"}]}),
                task: json!({"outputs": [
                    {"name": "a", "volume_source": {"host_path": "/x/a"}},
                    {"name": "b", "volume_source": {"host_path": "/x/b"}}]}),
                host: facts(
                    &[("/x/a", PathFact::Folder), ("/x/b", PathFact::Folder)],
                    None,
                ),
                problems: vec!["channels `a` (/out) and `b` (/out/b) overlap inside the container"],
                ..Case::default()
            },
            Case {
                name: "task resources override the template's key by key",
                template: json!({"resources": {"limits": {"memory": "100Mi", "cpu": "2"}}}),
                task: json!({"resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "50Mi"}}}),
                limits: (Some(100 * MI), Some(50 * MI), Some(500)),
                ..Case::default()
            },
            Case {
                name: "a scale rule raises the declared limit",
                template: json!({"inputs": scaled_input.clone(), "resources": {"limits": {"memory": "100Mi"}}}),
                task: json!({"inputs": bind("in", "data")}),
                host: measured,
                mounts: vec![("in", "/tasks/data", "/in", true)],
                limits: (Some(400 * MI), None, None),
                ..Case::default()
            },
            Case {
                name: "a scale rule that cannot measure",
                template: json!({"inputs": scaled_input}),
                task: json!({"inputs": bind("in", "data")}),
                host: unmeasurable,
                problems: vec!["scale rule of input `in`: cannot read /tasks/data/x"],
                ..Case::default()
            },
            Case {
                name: "a tiny limit is kept: raising it is the Docker backend's rule",
                template: json!({"resources": {"limits": {"memory": "1Mi"}}}),
                limits: (Some(MI), None, None),
                ..Case::default()
            },
            Case {
                name: "a request above the limit sets no reservation",
                template: json!({"resources": {"limits": {"memory": "10Mi"}, "requests": {"memory": "20Mi"}}}),
                limits: (Some(10 * MI), None, None),
                warnings: vec![
                    "the memory request 20Mi is above the limit 10Mi; no reservation is set",
                ],
                ..Case::default()
            },
        ]
    }

    #[test]
    fn resolve_cases() {
        for case in cases() {
            let template: Template = serde_json::from_value(merged(
                json!({"identifier": "t", "description": "d", "inputs": [], "outputs": [], "env": [], "command": ["true"]}),
                case.template,
            ))
            .unwrap_or_else(|e| panic!("{}: template: {e}", case.name));
            let task: Task = serde_json::from_value(merged(
                json!({"name": "n", "image": "img", "taskTemplate": "t"}),
                case.task,
            ))
            .unwrap_or_else(|e| panic!("{}: task: {e}", case.name));
            let options = Options {
                overrides: case
                    .overrides
                    .iter()
                    .map(|(name, value, source)| Override {
                        name: name.to_string(),
                        value: value.to_string(),
                        source: source.clone(),
                    })
                    .collect(),
                user: PlannedUser::Invoker { uid: 1, gid: 1 },
                network: None,
                entrypoint: None,
                binds: case
                    .binds
                    .iter()
                    .map(|(host, container, read_only)| PlannedBind {
                        host_path: PathBuf::from(host),
                        container_path: container.to_string(),
                        read_only: *read_only,
                    })
                    .collect(),
                engine: EngineOptions::default(),
            };
            let result = resolve(
                &task,
                &template,
                "inline",
                Path::new("/tasks"),
                &options,
                &case.host,
            );
            let plan = match result {
                Err(problems) => {
                    let got: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
                    assert_eq!(got.len(), case.problems.len(), "{}: {got:#?}", case.name);
                    for (got, want) in got.iter().zip(&case.problems) {
                        assert!(got.contains(want), "{}: {got:?} lacks {want:?}", case.name);
                        assert!(
                            !got.contains("s3cret"),
                            "{}: a secret in {got:?}",
                            case.name
                        );
                    }
                    continue;
                }
                Ok(plan) => plan,
            };
            assert!(
                case.problems.is_empty(),
                "{}: expected problems {:?}",
                case.name,
                case.problems
            );
            let recorded = serde_json::to_value(&plan).expect("serialises");
            let env: Vec<(String, String, String)> = recorded["env"]
                .as_array()
                .expect("env")
                .iter()
                .map(|e| {
                    (
                        e["name"].to_string(),
                        e["value"].to_string(),
                        e["source"].to_string(),
                    )
                })
                .collect();
            let want: Vec<(String, String, String)> = case
                .env
                .iter()
                .map(|(n, v, s)| {
                    (
                        json!(n).to_string(),
                        json!(v).to_string(),
                        json!(s).to_string(),
                    )
                })
                .collect();
            assert_eq!(env, want, "{}", case.name);
            let mounts: Vec<(&str, String, &str, bool)> = plan
                .mounts
                .iter()
                .map(|m| {
                    (
                        m.channel.as_str(),
                        m.host_path.display().to_string(),
                        m.container_path.as_str(),
                        m.read_only,
                    )
                })
                .collect();
            let want: Vec<(&str, String, &str, bool)> = case
                .mounts
                .iter()
                .map(|(c, h, p, ro)| (*c, h.to_string(), *p, *ro))
                .collect();
            assert_eq!(mounts, want, "{}", case.name);
            assert_eq!(
                plan.binds, options.binds,
                "{}: binds are planned",
                case.name
            );
            assert_eq!(
                (
                    plan.limits.memory_bytes,
                    plan.limits.memory_reservation_bytes,
                    plan.limits.cpu_millis
                ),
                case.limits,
                "{}",
                case.name
            );
            assert_eq!(
                plan.warnings.len(),
                case.warnings.len(),
                "{}: {:#?}",
                case.name,
                plan.warnings
            );
            for (got, want) in plan.warnings.iter().zip(&case.warnings) {
                assert!(got.contains(want), "{}: {got:?} lacks {want:?}", case.name);
            }
        }
    }

    #[test]
    fn bind_values_are_read_with_their_mode_relative_to_the_current_folder() {
        let cwd = Path::new("/work/here");
        let home = Some(Path::new("/home/me"));
        let bind = |host: &str, container: &str, read_only| PlannedBind {
            host_path: PathBuf::from(host),
            container_path: container.into(),
            read_only,
        };
        for (text, want) in [
            ("ref:/ref", bind("/work/here/ref", "/ref", true)),
            ("ref:/ref:ro", bind("/work/here/ref", "/ref", true)),
            ("../out:/out/:rw", bind("/work/out", "/out", false)),
            ("~/cache:/cache:rw", bind("/home/me/cache", "/cache", false)),
            (
                "/data/2026-11-21T10:00:/in",
                bind("/data/2026-11-21T10:00", "/in", true),
            ),
        ] {
            assert_eq!(parse_bind(text, cwd, home), Ok(want), "{text}");
        }
        for (text, words) in [
            ("ref", "no `:` between the host and the container path"),
            (":/ref", "the host path is empty"),
            ("ref:in", "the container path `in` is not absolute"),
            ("ref:/in:rx", "`rx` is not a mode (ro or rw)"),
            ("ref:/", "cannot be `/`"),
            ("ref://", "cannot be `/`"),
            ("a,b:/in", "contains a comma"),
            ("~bob/x:/in", "only `~/` (your own home) is expanded"),
        ] {
            let error = parse_bind(text, cwd, home).unwrap_err();
            assert!(error.contains(words), "{text}: {error}");
            assert!(error.contains("fix:"), "{text}: {error}");
        }
        assert!(
            parse_bind("~/x:/in", cwd, None)
                .unwrap_err()
                .contains("HOME is not set")
        );
    }

    #[test]
    fn env_sources_read_back_from_their_recorded_words() {
        for source in [
            EnvSource::CommandLine,
            env_file(12),
            EnvSource::EnvFile {
                path: "a:b/c d.env".into(),
                line: 3,
            },
            EnvSource::Task,
            EnvSource::Template,
            EnvSource::Tapir(HOME_FOR_INVOKER),
            EnvSource::Other("the image".into()),
        ] {
            assert_eq!(EnvSource::parse(&source.to_string()), source);
        }
    }
}
