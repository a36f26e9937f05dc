//! Resolve: a task, its template and the command line → a `RunPlan`, pure data from which
//! each backend renders its argv. No engine is needed and nothing is written; the
//! filesystem is only read (input folders must exist; scale rules measure them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checks::{GPU_KEYS, normalize_container_path};
use crate::diagnostic::did_you_mean;
use crate::model::quantity::{self, format_bytes};
use crate::model::{Binding, Mount, ScaleKind, ScaleRule, Task, Template};
use crate::resolve::sizing::{self, Target};

/// Docker refuses memory limits below 6 MB; a computed limit under it is raised.
pub const DOCKER_MIN_MEMORY: u64 = 6 * 1024 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct RunPlan {
    pub task_name: String,
    pub template: String,
    /// Where the template came from: `inline`, `image` or `file:<path>`.
    pub template_source: String,
    pub image: String,
    pub mounts: Vec<PlannedMount>,
    pub env: Vec<PlannedEnv>,
    /// `None`: the image's own CMD.
    pub command: Option<Vec<String>>,
    pub command_source: &'static str,
    pub entrypoint: Option<String>,
    pub limits: Limits,
    pub labels: BTreeMap<String, String>,
    pub user: PlannedUser,
    pub network: Option<String>,
    /// Things the user should know before the run starts (unbound channels, raised limits).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedMount {
    pub channel: String,
    pub direction: Direction,
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Input,
    Output,
}

impl Direction {
    /// The serialised name (as in records).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedEnv {
    pub name: String,
    #[serde(serialize_with = "masked")]
    pub value: EnvValue,
    pub source: String,
}

/// An env value that knows whether it is a secret: secrets serialise as `****`, so they
/// cannot reach a record, a dry-run print or a log.
#[derive(Debug, Clone)]
pub struct EnvValue {
    pub text: String,
    pub secret: bool,
}

/// What a secret value looks like in records and prints.
pub const MASK: &str = "****";

fn masked<S: serde::Serializer>(value: &EnvValue, s: S) -> Result<S::Ok, S::Error> {
    if value.secret {
        s.serialize_str(MASK)
    } else {
        s.serialize_str(&value.text)
    }
}

/// Names whose values are secrets (registry passwords, tokens, keys).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|s| upper.contains(s))
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// Why the memory limit is what it is, in words.
    pub memory_reason: Option<String>,
    pub memory_reservation_bytes: Option<u64>,
    pub cpu_millis: Option<u64>,
    pub gpus: Option<u64>,
    pub scale_rules: Vec<ScaleOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleOutcome {
    pub channel: String,
    pub rule: String,
    pub kind: &'static str,
    pub measured_bytes: u64,
    pub files: u64,
    pub requirement_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PlannedUser {
    /// Run as the invoking user, so outputs belong to them.
    Invoker { uid: u32, gid: u32 },
    /// Keep the image's own `USER`.
    Image,
}

/// One `--env` / `--env-file` value, with where it came from.
#[derive(Debug, Clone)]
pub struct Override {
    pub name: String,
    pub value: String,
    pub source: String,
}

/// What the command line adds to a task.
#[derive(Debug, Clone)]
pub struct Options {
    pub overrides: Vec<Override>,
    pub user: PlannedUser,
    pub network: Option<String>,
    pub entrypoint: Option<String>,
    /// The invoker's $HOME: a host path `~/…` starts there.
    pub home: Option<PathBuf>,
}

/// A reason the task cannot run, with the task-file place it concerns.
#[derive(Debug, Clone)]
pub struct Problem {
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
/// against it). All problems are returned together.
pub fn resolve(
    task: &Task,
    template: &Template,
    template_source: &str,
    task_dir: &Path,
    options: &Options,
) -> Result<RunPlan, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    let mut mounts = Vec::new();
    let mut scale_inputs: Vec<(String, PathBuf, ScaleRule)> = Vec::new();
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
            options.home.as_deref(),
            &mut mounts,
            &mut scale_inputs,
            &mut problems,
            &mut warnings,
        );
    }
    check_overlaps(&mounts, &mut problems);

    let env = merge_env(task, template, options, &mut problems, &mut warnings);
    let limits = limits(task, template, &scale_inputs, &mut problems, &mut warnings);

    let (command, command_source) = match (&task.command, &template.command) {
        (Some(c), _) => (Some(c.clone()), "task"),
        (None, Some(c)) => (Some(c.clone()), "template"),
        (None, None) => (None, "image"),
    };

    let mut labels = task.config.labels.clone();
    labels.insert("tapir.task".into(), task.name.clone());
    labels.insert("tapir.template".into(), template.identifier.clone());

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RunPlan {
        task_name: task.name.clone(),
        template: template.identifier.clone(),
        template_source: template_source.to_string(),
        image: task.image.clone(),
        mounts,
        env,
        command,
        command_source,
        entrypoint: options.entrypoint.clone(),
        limits,
        labels,
        user: options.user,
        network: options.network.clone(),
        warnings,
    })
}

#[allow(clippy::too_many_arguments)]
fn channels(
    direction: Direction,
    declared: &[Mount],
    bound: &[Binding],
    list: &str,
    task_dir: &Path,
    home: Option<&Path>,
    mounts: &mut Vec<PlannedMount>,
    scale_inputs: &mut Vec<(String, PathBuf, ScaleRule)>,
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
        let raw = match expand_home(&binding.volume_source.host_path, home) {
            Ok(raw) => raw,
            Err((message, fix)) => {
                problems.push(Problem::new(
                    format!("{kind} channel `{}`: {message}", mount.name),
                    fix,
                    Some(pointer),
                ));
                continue;
            }
        };
        let raw = raw.as_path();
        let host = if raw.is_absolute() {
            raw.to_path_buf()
        } else {
            task_dir.join(raw)
        };
        let host = lexical_normalize(&host);
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
            match std::fs::metadata(&host) {
                Ok(meta) if meta.is_dir() || meta.is_file() => {}
                Ok(_) => problems.push(Problem::new(format!("input channel `{}`: {} is neither a folder nor a file", mount.name, host.display()), "point host_path at a folder", Some(pointer.clone()))),
                Err(e) => problems.push(Problem::new(
                    format!("input channel `{}`: {} cannot be used: {}", mount.name, host.display(), io_reason(&e)),
                    if raw.is_relative() { format!("create it, or fix host_path (relative paths are relative to the task file's folder, {})", task_dir.display()) } else { "create it, or fix host_path".to_string() },
                    Some(pointer.clone()),
                )),
            }
            if let Some(rule) = binding
                .scale_rule
                .clone()
                .or_else(|| mount.scale_rule.clone())
            {
                scale_inputs.push((mount.name.clone(), host.clone(), rule));
            }
        } else if host.is_file() {
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

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
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
                secret: is_secret_name(&v.name),
            },
            source: "template default".into(),
        })
        .collect();
    let task_overrides = task.env.iter().enumerate().map(|(i, v)| {
        (
            v.name.clone(),
            v.value.clone(),
            "task".to_string(),
            Some(format!("/env/{i}/value")),
        )
    });
    let cli_overrides = options
        .overrides
        .iter()
        .map(|o| (o.name.clone(), o.value.clone(), o.source.clone(), None));
    let declared: Vec<&str> = template.env.iter().map(|v| v.name.as_str()).collect();
    for (name, value, source, pointer) in task_overrides.chain(cli_overrides) {
        // A name the template does not declare may be a typo; images may also read
        // variables nobody declared, so the value is passed all the same.
        if !declared.is_empty()
            && !declared.contains(&name.as_str())
            && let Some(near) = did_you_mean(&name, declared.iter().copied())
        {
            let by = if source == "task" {
                "the task".to_string()
            } else {
                source.clone()
            };
            warnings.push(format!(
                "`{name}` (set by {by}) is not declared by template `{}`; did you mean `{near}`? (the value is still passed: images may read variables the template does not declare)",
                template.identifier
            ));
        }
        // Messages may reach the terminal and the record: a secret's value never does.
        let shown = if is_secret_name(&name) {
            MASK.to_string()
        } else {
            value.clone()
        };
        if let Some(declared) = template.env.iter().find(|d| d.name == name) {
            if !declared.adjustable {
                problems.push(Problem::new(format!("`{name}` is declared `adjustable: false` by template `{}`; the {source} cannot override it", template.identifier), "remove the override", pointer.clone()));
            }
            if let Some(kind) = declared.value_type.filter(|k| !k.accepts(&value)) {
                problems.push(Problem::new(format!("`{name}` is declared as {} by template `{}`, but the {source} sets \"{shown}\"", kind.label(), template.identifier), "give a value of that type", pointer.clone()));
            }
            if let Some(choices) = declared
                .choices
                .as_ref()
                .filter(|c| !c.is_empty() && !c.contains(&value))
            {
                let suggestion = if is_secret_name(&name) {
                    None
                } else {
                    did_you_mean(&value, choices.iter().map(String::as_str))
                };
                let fix = match suggestion {
                    Some(s) => format!("did you mean \"{s}\"? allowed: {}", choices.join(", ")),
                    None => format!("allowed: {}", choices.join(", ")),
                };
                problems.push(Problem::new(
                    format!(
                        "\"{shown}\" is not one of the choices of `{name}` (set by the {source})"
                    ),
                    fix,
                    pointer.clone(),
                ));
            }
        }
        let planned = PlannedEnv {
            name: name.clone(),
            value: EnvValue {
                secret: is_secret_name(&name),
                text: value,
            },
            source,
        };
        match env.iter_mut().find(|e| e.name == name) {
            Some(existing) => *existing = planned,
            None => env.push(planned),
        }
    }
    if let PlannedUser::Invoker { .. } = options.user {
        // Not the image's user: its HOME may not exist or not be writable.
        if !env.iter().any(|e| e.name == "HOME") {
            env.push(PlannedEnv {
                name: "HOME".into(),
                value: EnvValue {
                    text: "/tmp".into(),
                    secret: false,
                },
                source: "tapir (runs as the invoking user)".into(),
            });
        }
    }
    env
}

fn limits(
    task: &Task,
    template: &Template,
    scale_inputs: &[(String, PathBuf, ScaleRule)],
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
    for (channel, host, rule) in scale_inputs {
        let target = Target {
            dir: &rule.target_dir,
            glob: &rule.target_glob,
            regex: &rule.target_regex,
        };
        match sizing::measure(host, rule.mode.into(), &target) {
            Ok(m) => {
                let requirement = rule.function().apply(m.bytes);
                let kind = match rule.kind {
                    ScaleKind::Limit => "limit",
                    ScaleKind::Request => "request",
                };
                out.scale_rules.push(ScaleOutcome {
                    channel: channel.clone(),
                    rule: rule.describe(),
                    kind,
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
    if let Some(m) = out.memory_bytes.filter(|m| *m < DOCKER_MIN_MEMORY) {
        warnings.push(format!(
            "the memory limit {} is below Docker's minimum of 6 MiB; raised to 6 MiB",
            format_bytes(m)
        ));
        out.memory_bytes = Some(DOCKER_MIN_MEMORY);
        out.memory_reason = Some(format!(
            "{} (raised to Docker's minimum)",
            out.memory_reason.unwrap_or_default()
        ));
    }
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
