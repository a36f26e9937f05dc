//! Checks beyond the schema: what JSON Schema cannot say about a Task API file.
//!
//! They run after the schema check and tolerate values of the wrong type (the schema
//! reports those), so a file with many problems gets them all in one pass.

use std::collections::HashMap;

use serde_json::Value;

use crate::diagnostic::{Diagnostic, did_you_mean, pointer_join};
use crate::model::target as sizing;
use crate::model::{complexity, normalize_container_path, quantity};
use crate::schema::Kind;
use crate::source::Document;
use crate::source::template;

/// Keys of a task `config` that only mean something when `type` is `k8s`.
const K8S_ONLY_KEYS: &[&str] = &[
    "namespace",
    "registryUrl",
    "registryUsername",
    "registryPassword",
    "imagePullSecrets",
    "imagePullPolicy",
    "env_vars",
    "volumes",
    "volume_mounts",
    "annotations",
];

pub(crate) fn check(document: &Document, kind: Kind) -> Vec<Diagnostic> {
    let mut checker = Checker {
        document,
        template_document: document,
        out: Vec::new(),
    };
    match kind {
        Kind::ProcessingContainer => checker.processing_container(),
        Kind::Task => checker.task(),
    }
    checker.nul_characters(&document.value, "");
    checker.out
}

/// A task that names its template by identifier, against that template in another
/// document (the processing-container.json beside it): the same binding and env checks
/// as for an inline template, with the template's places reported in its own file.
pub(crate) fn check_task_against_template(
    task: &Document,
    container: &Document,
    template_pointer: &str,
) -> Vec<Diagnostic> {
    let mut checker = Checker {
        document: task,
        template_document: container,
        out: Vec::new(),
    };
    let Some(template) = container.value.pointer(template_pointer) else {
        return Vec::new();
    };
    for list in ["inputs", "outputs"] {
        let channels = items(&task.value, list, "");
        checker.bindings(template, template_pointer, list, &channels);
    }
    let env = items(&task.value, "env", "");
    checker.env_overrides(template, template_pointer, &env);
    checker.out
}

struct Checker<'a> {
    document: &'a Document,
    /// Where the task's template is: `document` itself (inline) or a sibling file.
    template_document: &'a Document,
    out: Vec<Diagnostic>,
}

/// An item of an array of objects with its pointer.
struct Item<'v> {
    pointer: String,
    value: &'v Value,
}

fn items<'v>(parent: &'v Value, key: &str, parent_pointer: &str) -> Vec<Item<'v>> {
    let pointer = pointer_join(parent_pointer, key);
    parent
        .get(key)
        .and_then(Value::as_array)
        .map(|array| {
            array
                .iter()
                .enumerate()
                .map(|(i, value)| Item {
                    pointer: pointer_join(&pointer, i),
                    value,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

impl Checker<'_> {
    /// The template's file, when it is not the checked file.
    fn template_file(&self) -> Option<&std::path::Path> {
        (!std::ptr::eq(self.template_document, self.document))
            .then_some(self.template_document.source.path.as_path())
    }

    /// Points a finding at a place in the template (`related`), in whichever file.
    fn related_in_template(
        &self,
        d: Diagnostic,
        label: &str,
        template_pointer: Option<&str>,
    ) -> Diagnostic {
        let position = template_pointer.and_then(|p| self.template_document.value_position(p));
        d.with_related_in(label, self.template_file(), position)
    }

    fn error_at_value(&mut self, code: &'static str, pointer: &str, message: String, fix: String) {
        self.out.push(
            Diagnostic::error(code, message)
                .at_pointer(pointer)
                .at(self.document.value_position(pointer))
                .with_fix(fix),
        );
    }

    fn warning_at_value(
        &mut self,
        code: &'static str,
        pointer: &str,
        message: String,
        fix: String,
    ) {
        self.out.push(
            Diagnostic::warning(code, message)
                .at_pointer(pointer)
                .at(self.document.value_position(pointer))
                .with_fix(fix),
        );
    }

    /// Reports every repeated value of `key` among `items` (e.g. two templates with one
    /// identifier), pointing at the repeat and at the first one.
    fn duplicates(&mut self, code: &'static str, what: &str, items: &[Item<'_>], key: &str) {
        let mut first: HashMap<&str, String> = HashMap::new();
        for item in items {
            let Some(name) = str_field(item.value, key) else {
                continue;
            };
            let pointer = pointer_join(&item.pointer, key);
            match first.get(name) {
                Some(first_pointer) => {
                    let related = self.document.value_position(first_pointer);
                    self.out.push(
                        Diagnostic::error(code, format!("{what} `{name}` is defined twice"))
                            .at_pointer(pointer.clone())
                            .at(self.document.value_position(&pointer))
                            .with_related("first defined here", related)
                            .with_fix(format!(
                                "rename or remove one of the two; each {what} must be unique"
                            )),
                    );
                }
                None => {
                    first.insert(name, pointer);
                }
            }
        }
    }

    fn processing_container(&mut self) {
        let root = &self.document.value;
        let templates = items(root, "templates", "");
        self.duplicates(
            "duplicate-identifier",
            "template identifier",
            &templates,
            "identifier",
        );
        for template in &templates {
            self.template(template.value, &template.pointer);
        }
    }

    fn task(&mut self) {
        let root = &self.document.value;
        self.templating(root, "");
        let template = root.get("taskTemplate").filter(|t| t.is_object());
        if let Some(template) = template {
            self.template(template, "/taskTemplate");
        }
        for list in ["inputs", "outputs"] {
            let channels = items(root, list, "");
            self.duplicates("duplicate-channel", "channel", &channels, "name");
            for channel in &channels {
                if let Some(rule) = channel.value.get("scale_rule").filter(|r| !r.is_null()) {
                    self.scale_rule(
                        rule,
                        &pointer_join(&channel.pointer, "scale_rule"),
                        list == "outputs",
                    );
                }
            }
            if let Some(template) = template {
                self.bindings(template, "/taskTemplate", list, &channels);
            }
        }
        let env = items(root, "env", "");
        self.duplicates("duplicate-env", "variable", &env, "name");
        if let Some(template) = template {
            self.env_overrides(template, "/taskTemplate", &env);
        }
        if let Some(resources) = root.get("resources") {
            self.resources(resources, "/resources");
        }
        if let Some(config) = root.get("config").and_then(Value::as_object) {
            let is_k8s = config.get("type").and_then(Value::as_str) == Some("k8s");
            for key in config
                .keys()
                .filter(|k| K8S_ONLY_KEYS.contains(&k.as_str()))
            {
                if !is_k8s {
                    let pointer = pointer_join("/config", key);
                    self.out.push(
                        Diagnostic::warning(
                            "k8s-only",
                            format!(
                                "`config.{key}` applies only to k8s configs; it is ignored here{}",
                                if ["registryUrl", "registryUsername", "registryPassword"]
                                    .contains(&key.as_str())
                                {
                                    " by the platform (`tapir run --pull` still logs in with it)"
                                } else {
                                    ""
                                }
                            ),
                        )
                        .at_pointer(pointer.clone())
                        .at(self.document.key_position(&pointer))
                        .with_fix("add `\"type\": \"k8s\"` to the config, or remove the key"),
                    );
                }
            }
            if let Some(password) = config.get("registryPassword").and_then(Value::as_str)
                && !password.is_empty()
                && !password.contains("{{")
            {
                let pointer = "/config/registryPassword";
                self.out.push(
                        Diagnostic::warning("literal-secret", "`registryPassword` is written in the file; it will end up wherever the file goes")
                            .at_pointer(pointer)
                            .at(self.document.key_position(pointer))
                            .with_fix("read it from the environment: \"{{ env.REGISTRY_PASSWORD }}\""),
                    );
            }
        }
    }

    /// Checks one task template (in a processing-container.json or inline in a task).
    fn template(&mut self, template: &Value, pointer: &str) {
        let inputs = items(template, "inputs", pointer);
        let outputs = items(template, "outputs", pointer);
        self.duplicates("duplicate-channel", "input channel", &inputs, "name");
        self.duplicates("duplicate-channel", "output channel", &outputs, "name");

        let mut mounted: HashMap<String, String> = HashMap::new();
        for (channel, is_output) in inputs
            .iter()
            .map(|c| (c, false))
            .chain(outputs.iter().map(|c| (c, true)))
        {
            if let Some(rule) = channel.value.get("scale_rule").filter(|r| !r.is_null()) {
                self.scale_rule(
                    rule,
                    &pointer_join(&channel.pointer, "scale_rule"),
                    is_output,
                );
            }
            let Some(path) = str_field(channel.value, "mounted_path") else {
                continue;
            };
            let path_pointer = pointer_join(&channel.pointer, "mounted_path");
            if path.is_empty() {
                continue; // the schema reports it
            }
            if !path.starts_with('/') {
                self.error_at_value(
                    "relative-mount",
                    &path_pointer,
                    format!(
                        "mounted_path `{path}` is not absolute: it is a path inside the container"
                    ),
                    format!(
                        "write it from the container's root, e.g. `/{}`",
                        path.trim_start_matches("./")
                    ),
                );
                continue;
            }
            let normal = normalize_container_path(path);
            if let Some((message, fix)) = unmountable(path, &normal) {
                self.error_at_value("unmountable", &path_pointer, message, fix);
                continue;
            }
            if let Some(first) = mounted.get(&normal) {
                let related = self.document.value_position(first);
                self.out.push(
                    Diagnostic::error(
                        "same-mount",
                        format!("two channels are mounted on `{normal}`"),
                    )
                    .at_pointer(path_pointer.clone())
                    .at(self.document.value_position(&path_pointer))
                    .with_related("the other channel's mounted_path", related)
                    .with_fix("give each channel its own mounted_path"),
                );
            } else {
                mounted.insert(normal, path_pointer);
            }
        }

        let env = items(template, "env", pointer);
        self.duplicates("duplicate-env", "variable", &env, "name");
        for var in &env {
            if let Some(value) = str_field(var.value, "value") {
                self.env_value_fits(var.value, value, &pointer_join(&var.pointer, "value"), None);
            }
        }
        if let Some(resources) = template.get("resources") {
            self.resources(resources, &pointer_join(pointer, "resources"));
        }
    }

    /// Does `value` respect the `type` and `choices` of the template variable `declared`?
    /// `overridden_at` is the template's value pointer when `value` comes from a task.
    fn env_value_fits(
        &mut self,
        declared: &Value,
        value: &str,
        pointer: &str,
        overridden_at: Option<&str>,
    ) {
        let name = str_field(declared, "name").unwrap_or("?");
        // A secret's value never reaches a message (the snippet masks it too).
        let shown = if crate::model::secret::is_secret_name(name) {
            crate::resolve::plan::MASK
        } else {
            value
        };
        // A value still to be rendered (`{{ … }}`) is checked only when the task runs; a
        // declaration the schema refuses has no rules to apply (its findings say why).
        if value.contains("{{") {
            return;
        }
        let Ok(rules) = serde_json::from_value::<crate::model::TemplateEnv>(declared.clone())
        else {
            return;
        };
        for breach in rules.breaches(value, shown != value) {
            let (message, related) = match &breach {
                // An override's `adjustable: false` is `env_overrides`' finding.
                crate::model::EnvBreach::NotAdjustable => continue,
                crate::model::EnvBreach::WrongType(kind) => (
                    format!(
                        "`{name}` is declared as {}, but its value is \"{shown}\"",
                        kind.label()
                    ),
                    "declared here",
                ),
                crate::model::EnvBreach::NotAChoice { .. } => (
                    format!("\"{shown}\" is not one of the choices of `{name}`"),
                    "choices declared here",
                ),
            };
            let d = Diagnostic::error(breach.code(), message)
                .at_pointer(pointer)
                .at(self.document.value_position(pointer))
                .with_fix(breach.fix(&rules));
            let d = self.related_in_template(d, related, overridden_at);
            self.out.push(d);
        }
    }

    /// Task env against its template: names the template does not declare (when it
    /// declares any), `adjustable: false`, `type`, `choices`.
    fn env_overrides(&mut self, template: &Value, template_pointer: &str, task_env: &[Item<'_>]) {
        let declared = items(template, "env", template_pointer);
        let declared_names: Vec<&str> = declared
            .iter()
            .filter_map(|d| str_field(d.value, "name"))
            .collect();
        for var in task_env {
            let (Some(name), Some(value)) =
                (str_field(var.value, "name"), str_field(var.value, "value"))
            else {
                continue;
            };
            let Some(decl) = declared
                .iter()
                .find(|d| str_field(d.value, "name") == Some(name))
            else {
                if !declared_names.is_empty() {
                    self.undeclared_env(name, &var.pointer, template_pointer, &declared_names);
                }
                continue;
            };
            let value_pointer = pointer_join(&var.pointer, "value");
            if decl.value.get("adjustable") == Some(&Value::Bool(false)) {
                let d = Diagnostic::error(
                    "not-adjustable",
                    format!("`{name}` is declared `adjustable: false`; a task cannot override it"),
                )
                .at_pointer(value_pointer.clone())
                .at(self.document.value_position(&value_pointer))
                .with_fix("remove this override, or make the variable adjustable in the template");
                let d = self.related_in_template(d, "declared here", Some(&decl.pointer));
                self.out.push(d);
            }
            self.env_value_fits(decl.value, value, &value_pointer, Some(&decl.pointer));
        }
    }

    /// A task variable its template does not declare: passed on as is, which is fine
    /// for extra settings but usually a misspelling when a declared name is close.
    fn undeclared_env(
        &mut self,
        name: &str,
        var_pointer: &str,
        template_pointer: &str,
        declared: &[&str],
    ) {
        let pointer = pointer_join(var_pointer, "name");
        let fix = match did_you_mean(name, declared.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "the template declares: {}; remove the variable if it is not used",
                declared.join(", ")
            ),
        };
        let d = Diagnostic::warning(
            "unknown-env",
            format!(
                "the template declares no variable `{name}`; it is passed to the container as is"
            ),
        )
        .at_pointer(pointer.clone())
        .at(self.document.value_position(&pointer))
        .with_fix(fix);
        let env_pointer = pointer_join(template_pointer, "env");
        let d = self.related_in_template(d, "the template's env", Some(&env_pointer));
        self.out.push(d);
    }

    /// Task channels against the template: unknown names are errors (with a "did you
    /// mean"), unbound template channels are warnings.
    fn bindings(
        &mut self,
        template: &Value,
        template_pointer: &str,
        list: &str,
        channels: &[Item<'_>],
    ) {
        let declared: Vec<&str> = template
            .get(list)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|c| str_field(c, "name")).collect())
            .unwrap_or_default();
        let kind = if list == "inputs" { "input" } else { "output" };
        for channel in channels {
            let Some(name) = str_field(channel.value, "name") else {
                continue;
            };
            if !declared.contains(&name) {
                let pointer = pointer_join(&channel.pointer, "name");
                let fix = match did_you_mean(name, declared.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if declared.is_empty() => {
                        format!("the template declares no {kind} channels")
                    }
                    None => format!(
                        "the template's {kind} channels are: {}",
                        declared.join(", ")
                    ),
                };
                let d = Diagnostic::error(
                    "unknown-channel",
                    format!("the template has no {kind} channel `{name}`"),
                )
                .at_pointer(pointer.clone())
                .at(self.document.value_position(&pointer))
                .with_fix(fix);
                let declared_at = pointer_join(template_pointer, list);
                let d = self.related_in_template(
                    d,
                    &format!("the template's {kind} channels"),
                    Some(&declared_at),
                );
                self.out.push(d);
            }
        }
        for name in declared {
            if !channels
                .iter()
                .any(|c| str_field(c.value, "name") == Some(name))
            {
                let pointer = format!("/{list}");
                let position = self
                    .document
                    .key_position(&pointer)
                    .or_else(|| self.document.value_position(""));
                self.out.push(
                    Diagnostic::warning("unbound-channel", format!("{kind} channel `{name}` of the template is not bound: it will not be mounted"))
                        .at_pointer(pointer)
                        .at(position)
                        .with_fix(format!("add {{\"name\": \"{name}\", \"volume_source\": {{\"host_path\": \"…\"}}}} to `{list}`")),
                );
            }
        }
    }

    fn scale_rule(&mut self, rule: &Value, pointer: &str, on_output: bool) {
        if on_output {
            self.warning_at_value(
                "output-scale-rule",
                pointer,
                "scale rules are computed from input data; on an output channel this one is ignored".into(),
                "move it to an input channel, or remove it".into(),
            );
        }
        // A complexity that does not parse breaks the schema's pattern, which reports it.
        if let Some(text) = str_field(rule, "complexity")
            && complexity::parse(text).is_ok_and(|c| c.coefficient <= 0.0)
        {
            self.warning_at_value(
                "scale-not-positive",
                &pointer_join(pointer, "complexity"),
                format!("complexity \"{text}\" never asks for any memory"),
                "use a positive coefficient".into(),
            );
        }
        if let Some(factor) = rule
            .get("scale_factor")
            .and_then(crate::model::as_whole_number)
            && factor <= 0
        {
            self.warning_at_value(
                "scale-not-positive",
                &pointer_join(pointer, "scale_factor"),
                format!("scale_factor {factor} never asks for any memory"),
                "use a positive whole number".into(),
            );
        }
        let target = sizing::Target {
            dir: "",
            glob: str_field(rule, "target_glob").unwrap_or("*"),
            regex: str_field(rule, "target_regex").unwrap_or(".*"),
        };
        if let Err(e) = sizing::validate_target(&target) {
            let key = if e.message.starts_with("target_glob") {
                "target_glob"
            } else {
                "target_regex"
            };
            self.error_at_value(
                "scale-target",
                &pointer_join(pointer, key),
                e.message,
                e.fix,
            );
        }
        if let Some(dir) = str_field(rule, "target_dir")
            && (dir.starts_with('/') || dir.split('/').any(|c| c == ".."))
        {
            self.error_at_value(
                "scale-target",
                &pointer_join(pointer, "target_dir"),
                format!("target_dir `{dir}` leaves the channel folder"),
                "give a folder inside the channel, relative to it, e.g. \"series\"".into(),
            );
        }
    }

    fn resources(&mut self, resources: &Value, pointer: &str) {
        let mut memory = HashMap::new();
        for section in ["limits", "requests"] {
            let Some(list) = resources.get(section).and_then(Value::as_object) else {
                continue;
            };
            for (name, value) in list {
                let value_pointer = pointer_join(&pointer_join(pointer, section), name);
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue, // the schema reports it
                };
                if text.contains("{{") {
                    continue;
                }
                let problem = quantity::resource_problem(name, &text);
                if name == "memory"
                    && let Ok(bytes) = quantity::parse_bytes(&text)
                {
                    memory.insert(section, bytes);
                }
                if let Some(e) = problem {
                    self.error_at_value(
                        "quantity",
                        &value_pointer,
                        format!("{name}: {}", e.message),
                        e.fix,
                    );
                }
            }
        }
        if let (Some(request), Some(limit)) = (memory.get("requests"), memory.get("limits"))
            && request > limit
        {
            self.warning_at_value(
                "request-over-limit",
                &format!("{pointer}/requests/memory"),
                format!(
                    "the memory request ({}) is larger than the limit ({})",
                    quantity::format_bytes(*request),
                    quantity::format_bytes(*limit)
                ),
                "a request is what the task needs at least; make it at most the limit".into(),
            );
        }
    }

    /// Every string ends up in an argument, a variable, a label or a path, none of which
    /// can hold a NUL character: the engine could not even be started with one.
    fn nul_characters(&mut self, value: &Value, pointer: &str) {
        for (pointer, s) in strings(value, pointer) {
            if let Some(at) = s.find('\0') {
                let position = self.document.string_position(&pointer, at..at + 1);
                self.out.push(
                    Diagnostic::error(
                        "nul-character",
                        "this string holds a NUL character (`\\u0000`), which no command-line argument, environment variable or path can hold",
                    )
                    .at_pointer(pointer)
                    .at(position)
                    .with_fix("remove it"),
                );
            }
        }
    }

    /// Templating syntax in every string of a task file (DESIGN.md decision 4). A file
    /// rendered whole was checked by its rendering; its strings are final.
    fn templating(&mut self, value: &Value, pointer: &str) {
        // An inline task of a pipeline (a value with a key) is scoped to its own text:
        // scanning the whole pipeline file per task made a large pipeline quadratic.
        let text = &self.document.source.text;
        let scope = match &self.document.spans.key {
            Some(_) => text.get(self.document.spans.value.clone()).unwrap_or(text),
            None => text,
        };
        if template::needs_whole_text(scope) {
            return;
        }
        for (pointer, s) in strings(value, pointer) {
            if !template::is_templated(s) {
                continue;
            }
            if let Err(e) = template::check(s) {
                let position = self.document.string_position(&pointer, e.span.clone());
                self.out.push(
                    Diagnostic::error("template", format!("templating: {}", e.message))
                        .at_pointer(pointer)
                        .at(position)
                        .with_fix(e.fix),
                );
            }
        }
    }
}

/// Why no engine can mount a channel on the absolute container path `path` (`normal`
/// once `.`, `..` and repeated slashes are resolved), if none can: the message and the
/// fix. Docker refuses a bind mount on `/`, and runc one inside `/proc`; both backends'
/// mount options (`--mount type=bind,…`, apptainer's comma-separated `--bind`) split a
/// path at `,`.
fn unmountable(path: &str, normal: &str) -> Option<(String, String)> {
    let own_folder = "mount the channel on a folder of its own, e.g. `/data/<channel>`";
    if normal == "/" {
        let resolved = if path == "/" {
            String::new()
        } else {
            " (once resolved)".to_string()
        };
        return Some((
            format!(
                "mounted_path `{path}` is the container's root{resolved}: no engine can mount a folder over it"
            ),
            own_folder.into(),
        ));
    }
    if normal == "/proc" || normal.starts_with("/proc/") {
        return Some((
            format!(
                "mounted_path `{path}` is inside /proc, where the container runtime refuses mounts"
            ),
            own_folder.into(),
        ));
    }
    if path.contains(',') {
        return Some((
            format!(
                "mounted_path `{path}` holds a comma, which the engines' mount options read as a separator"
            ),
            "rename the folder without `,`".into(),
        ));
    }
    None
}

/// Every string in `value` with its JSON Pointer (below `pointer`), in document order.
fn strings<'v>(value: &'v Value, pointer: &str) -> Vec<(String, &'v str)> {
    let mut out = Vec::new();
    let mut pending = vec![(pointer.to_string(), value)];
    while let Some((pointer, value)) = pending.pop() {
        match value {
            Value::String(s) => out.push((pointer, s.as_str())),
            // Reversed onto the stack, so that they come off in order.
            Value::Array(a) => pending.extend(
                a.iter()
                    .enumerate()
                    .rev()
                    .map(|(i, v)| (pointer_join(&pointer, i), v)),
            ),
            Value::Object(o) => {
                pending.extend(o.iter().rev().map(|(k, v)| (pointer_join(&pointer, k), v)))
            }
            _ => {}
        }
    }
    out
}
