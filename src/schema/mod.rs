//! The bundled JSON Schemas (`schemas/`, draft 2020-12) and the translation of schema
//! errors into findings with positions and plain fixes.
//!
//! All jsonschema calls stay in this module: the crate is 0.x and changes its API often.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::diagnostic::{Diagnostic, did_you_mean, pointer_join};
use crate::source::Document;

pub(crate) const PC_SCHEMA: &str = include_str!("../../schemas/processing-container.schema.json");
pub(crate) const TASK_SCHEMA: &str = include_str!("../../schemas/task.schema.json");
/// A pipeline file (`tapir pipeline validate`); embeds the task schema for inline tasks.
pub(crate) const PIPELINE_SCHEMA: &str = include_str!("../../schemas/pipeline.schema.json");
/// A pipeline run's `--conf` file (Kaapana's `conf.task_form`).
pub(crate) const PIPELINE_CONF_SCHEMA: &str =
    include_str!("../../schemas/pipeline-conf.schema.json");

/// The two kinds of Task API file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) enum Kind {
    #[serde(rename = "processing-container")]
    ProcessingContainer,
    #[serde(rename = "task")]
    Task,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::ProcessingContainer => "processing-container",
            Kind::Task => "task",
        }
    }

    pub(crate) fn schema_text(self) -> &'static str {
        match self {
            Kind::ProcessingContainer => PC_SCHEMA,
            Kind::Task => TASK_SCHEMA,
        }
    }

    fn bundle(self) -> &'static Bundle {
        static PC: LazyLock<Bundle> = LazyLock::new(|| Bundle::new(PC_SCHEMA));
        static TASK: LazyLock<Bundle> = LazyLock::new(|| Bundle::new(TASK_SCHEMA));
        match self {
            Kind::ProcessingContainer => &PC,
            Kind::Task => &TASK,
        }
    }

    /// The kind a file name says: `processing-container.json`, or a name ending in
    /// `task.json` (`task.json`, `upstream-task.json`, `my.task.json`).
    pub(crate) fn from_file_name(name: &str) -> Option<Kind> {
        let name = name.to_ascii_lowercase();
        if name.ends_with("processing-container.json") {
            Some(Kind::ProcessingContainer)
        } else if name.ends_with("task.json") {
            Some(Kind::Task)
        } else {
            None
        }
    }

    /// The kind the content says: `templates` → processing-container, `taskTemplate` →
    /// task; a near miss of either key (a typo) counts too.
    pub(crate) fn from_content(value: &Value) -> Option<Kind> {
        let object = value.as_object()?;
        let has = |key: &str| {
            object.contains_key(key) || object.keys().any(|k| did_you_mean(k, [key]).is_some())
        };
        match (has("templates"), has("taskTemplate")) {
            (true, false) => Some(Kind::ProcessingContainer),
            (false, true) => Some(Kind::Task),
            _ => None,
        }
    }
}

struct Bundle {
    schema: Value,
    validator: Validator,
    /// Schema locations (`#/…` fragments) of objects in tapir's own formats (a pipeline,
    /// its conf file): an unknown key there is an error, because nothing else reads the
    /// file and a misspelt key (`max_retires`) would silently change what runs. In the
    /// Task API's own objects it stays a warning: the platform ignores unknown keys.
    own_format: fn(&str) -> bool,
}

/// Task API objects are embedded in a pipeline as `$defs/Task` and the task schema's
/// `$defs`; every other object of the pipeline schema is tapir's own.
fn is_pipeline_own_object(fragment: &str) -> bool {
    static TASK_DEFS: LazyLock<Vec<String>> = LazyLock::new(|| {
        let task: Value = serde_json::from_str(TASK_SCHEMA).expect("bundled schema is valid JSON");
        let mut defs: Vec<String> = task["$defs"]
            .as_object()
            .map(|d| d.keys().map(|k| format!("/$defs/{k}")).collect())
            .unwrap_or_default();
        defs.push("/$defs/Task".into());
        defs
    });
    !TASK_DEFS
        .iter()
        .any(|def| fragment == def || fragment.starts_with(&format!("{def}/")))
}

impl Bundle {
    fn new(text: &str) -> Self {
        Self::with_own_format(text, |_| false)
    }

    fn with_own_format(text: &str, own_format: fn(&str) -> bool) -> Self {
        // The schemas are part of the binary and checked by unit tests, so a failure here
        // is a build defect, not a user error.
        let schema: Value = serde_json::from_str(text).expect("bundled schema is valid JSON");
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&schema)
            .expect("bundled schema compiles");
        Self {
            schema,
            validator,
            own_format,
        }
    }

    /// The object schema at a `#/…` fragment of this bundle.
    fn at(&self, fragment: &str) -> Option<&Value> {
        self.schema.pointer(fragment)
    }
}

/// Checks a document against the bundled schema of `kind`.
pub(crate) fn check(document: &Document, kind: Kind) -> Vec<Diagnostic> {
    check_against(document, kind.bundle())
}

/// Checks a pipeline file against the bundled pipeline schema.
pub(crate) fn check_pipeline(document: &Document) -> Vec<Diagnostic> {
    static PIPELINE: LazyLock<Bundle> =
        LazyLock::new(|| Bundle::with_own_format(PIPELINE_SCHEMA, is_pipeline_own_object));
    check_against(document, &PIPELINE)
}

/// Checks a pipeline `--conf` file against its bundled schema.
pub(crate) fn check_pipeline_conf(document: &Document) -> Vec<Diagnostic> {
    static CONF: LazyLock<Bundle> =
        LazyLock::new(|| Bundle::with_own_format(PIPELINE_CONF_SCHEMA, |_| true));
    check_against(document, &CONF)
}

fn check_against(document: &Document, bundle: &Bundle) -> Vec<Diagnostic> {
    let mut errors: Vec<ValidationError<'_>> =
        bundle.validator.iter_errors(&document.value).collect();
    // Report in document order; errors at the same place keep the schema's order.
    errors.sort_by_key(|e| {
        document
            .spans
            .find(e.instance_path().as_str())
            .map_or(usize::MAX, |n| n.value.start)
    });
    let mut translator = Translator {
        document,
        bundle,
        out: Vec::new(),
    };
    translator.translate_all(&errors);
    translator.out
}

struct Translator<'a> {
    document: &'a Document,
    bundle: &'a Bundle,
    out: Vec<Diagnostic>,
}

impl Translator<'_> {
    fn translate_all(&mut self, errors: &[ValidationError<'_>]) {
        // A misspelt required key shows up twice: the key is missing, and an unknown key
        // sits next to it. Report it once, as a misspelling, at the misspelt key.
        let mut misspelt: Vec<(String, String)> = Vec::new();
        for error in errors {
            if let ValidationErrorKind::AdditionalProperties { unexpected } = error.kind() {
                let parent = error.instance_path().as_str();
                for missing in errors.iter().filter_map(|e| match e.kind() {
                    ValidationErrorKind::Required { property }
                        if e.instance_path().as_str() == parent =>
                    {
                        property.as_str()
                    }
                    _ => None,
                }) {
                    if let Some(typo) = unexpected
                        .iter()
                        .find(|u| did_you_mean(u, [missing]).is_some())
                    {
                        misspelt.push((pointer_join(parent, typo), missing.to_string()));
                    }
                }
            }
        }
        for (pointer, intended) in &misspelt {
            let typo = pointer.rsplit('/').next().unwrap_or_default();
            self.out.push(
                Diagnostic::error(
                    "misspelt-key",
                    format!("`{intended}` is required but missing; `{typo}` looks like a misspelling of it"),
                )
                .at_pointer(pointer.clone())
                .at(self.document.key_position(pointer))
                .with_fix(format!("rename `{typo}` to `{intended}`")),
            );
        }
        for error in errors {
            self.translate(error, &misspelt);
        }
    }

    fn translate(&mut self, error: &ValidationError<'_>, misspelt: &[(String, String)]) {
        let pointer = error.instance_path().as_str().to_string();
        let here = self.document.value_position(&pointer);
        let field = pointer.rsplit('/').next().filter(|_| !pointer.is_empty());
        let push = |this: &mut Self, d: Diagnostic| this.out.push(d.at_pointer(pointer.clone()));
        match error.kind() {
            ValidationErrorKind::Required { property } => {
                let property = property.as_str().unwrap_or_default();
                if misspelt.iter().any(|(p, missing)| {
                    missing == property
                        && p.rsplit_once('/').map(|(parent, _)| parent) == Some(&pointer)
                }) {
                    return;
                }
                let what = describe_object(&pointer);
                push(
                    self,
                    Diagnostic::error(
                        "missing-key",
                        format!("{what} is missing the required key `{property}`"),
                    )
                    .at(here)
                    .with_fix(format!("add `\"{property}\": …` to this object")),
                );
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let fragment = self.object_fragment(error);
                let own = (self.bundle.own_format)(&fragment);
                let known = self.known_properties(&fragment);
                for key in unexpected {
                    let member = pointer_join(&pointer, key);
                    if misspelt.iter().any(|(p, _)| *p == member) {
                        continue;
                    }
                    // A key of an object one level down written one level too high
                    // (`max_retries` beside `execution_profile` instead of in it).
                    let suggestion = did_you_mean(key, known.iter().map(String::as_str))
                        .map(str::to_string)
                        .or_else(|| {
                            let nested = self.nested_properties(&fragment);
                            let child = did_you_mean(key, nested.iter().map(|(_, c)| c.as_str()))?;
                            nested
                                .iter()
                                .find(|(_, c)| c == child)
                                .map(|(parent, c)| format!("{parent}.{c}"))
                        });
                    let message = match (&suggestion, own) {
                        (Some(s), _) => format!("unknown key `{key}`: did you mean `{s}`?"),
                        (None, true) => {
                            format!("unknown key `{key}`: tapir's pipeline format has no such key")
                        }
                        (None, false) => format!("unknown key `{key}`: the platform ignores it"),
                    };
                    let d = if own {
                        Diagnostic::error("unknown-key", message)
                    } else {
                        Diagnostic::warning("unknown-key", message)
                    };
                    let mut d = d
                        .at_pointer(member.clone())
                        .at(self.document.key_position(&member));
                    d = match suggestion {
                        Some(s) if s.contains('.') => {
                            let (parent, child) = s.split_once('.').unwrap_or_default();
                            d.with_fix(format!(
                                "move it into `{parent}`: \"{parent}\": {{\"{child}\": …}}"
                            ))
                        }
                        Some(s) => d.with_fix(format!("rename it to `{s}`")),
                        None if known.is_empty() => d.with_fix("remove it"),
                        None => d.with_fix(format!(
                            "remove it; keys allowed here: {}",
                            known.join(", ")
                        )),
                    };
                    self.out.push(d);
                }
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => article(&t.to_string()),
                    // `null` is allowed in optional fields as "absent" (the reference
                    // writes it); naming it in the message would only distract.
                    TypeKind::Multiple(ts) => {
                        let names: Vec<String> = (*ts)
                            .into_iter()
                            .map(|t| t.to_string())
                            .filter(|t| t != "null")
                            .map(|t| article(&t))
                            .collect();
                        names.join(" or ")
                    }
                };
                // A secret's value is described, never shown.
                let secret = self.document.is_secret(&pointer);
                let found = match error.instance().as_ref() {
                    Value::Bool(_) if secret => "a boolean".to_string(),
                    Value::Number(_) if secret => "a number".to_string(),
                    other => value_kind(other),
                };
                let mut d = Diagnostic::error(
                    "type",
                    format!("{} must be {expected}, not {found}", name_of(field)),
                )
                .at(here);
                d = match (expected.as_str(), error.instance().as_ref()) {
                    ("a string", Value::Number(_) | Value::Bool(_)) if secret => {
                        d.with_fix("write it in double quotes, as a string")
                    }
                    ("a string", Value::Number(n)) => {
                        d.with_fix(format!("write it as a string: \"{n}\""))
                    }
                    ("a string", Value::Bool(b)) => {
                        d.with_fix(format!("write it as a string: \"{b}\""))
                    }
                    ("an integer", Value::String(s)) if s.parse::<i64>().is_ok() => {
                        d.with_fix(format!("write it without quotes: {s}"))
                    }
                    ("an array", Value::Null) => d.with_fix("use [] for none, or remove the key"),
                    _ => d.with_fix(format!("replace it with {expected}")),
                };
                push(self, d);
            }
            ValidationErrorKind::Enum { options } => {
                let options: Vec<&str> = options
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let got = error.instance();
                let got_text = if self.document.is_secret(&pointer) {
                    "\"****\"".to_string()
                } else {
                    got.as_str()
                        .map_or_else(|| got.to_string(), |s| format!("\"{s}\""))
                };
                let list = options
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut d = Diagnostic::error(
                    "enum",
                    format!(
                        "{} is {got_text}, which is not one of {list}",
                        name_of(field)
                    ),
                )
                .at(here);
                d = match got
                    .as_str()
                    .and_then(|s| did_you_mean(s, options.iter().copied()))
                {
                    Some(s) => d.with_fix(format!("did you mean `{s}`?")),
                    None => d.with_fix(format!("use one of {list}")),
                };
                push(self, d);
            }
            ValidationErrorKind::Constant { expected_value } => {
                let d = Diagnostic::error(
                    "const",
                    format!(
                        "{} must be {expected_value}, not {}",
                        name_of(field),
                        error.instance()
                    ),
                )
                .at(here)
                .with_fix(match field {
                    Some("api_version") => {
                        "tapir knows Task API version 1 only: set `\"api_version\": 1`".to_string()
                    }
                    _ => format!("set it to {expected_value}"),
                });
                push(self, d);
            }
            ValidationErrorKind::Pattern { pattern } => {
                let d = match field {
                    Some("complexity") => Diagnostic::error(
                        "complexity",
                        format!("complexity {} is not an expression in n", error.instance()),
                    )
                    .with_fix(
                        "write coefficient × n to a power, e.g. \"2*n\", \"0.5*n**1\" or \"n**2\"",
                    ),
                    Some("id") => Diagnostic::error(
                        "task-id",
                        format!(
                            "task id {} cannot name a folder of the pipeline run",
                            error.instance()
                        ),
                    )
                    .with_fix(
                        "start with a letter or digit; then use letters, digits, `.`, `_` and `-`",
                    ),
                    Some("name") => {
                        let name = error.instance().as_str().unwrap_or_default();
                        Diagnostic::error(
                            "env-name",
                            format!(
                                "variable name \"{name}\" is not a valid environment variable name"
                            ),
                        )
                        .with_fix(format!(
                            "use letters, digits and `_`, not starting with a digit, e.g. `{}`",
                            env_name_like(name)
                        ))
                    }
                    _ => Diagnostic::error(
                        "pattern",
                        format!("{} does not match `{pattern}`", name_of(field)),
                    ),
                };
                push(self, d.at(here));
            }
            ValidationErrorKind::MinLength { .. } => {
                push(
                    self,
                    Diagnostic::error(
                        "empty-string",
                        format!("{} must not be empty", name_of(field)),
                    )
                    .at(here)
                    .with_fix("give it a value, or remove the key if it is optional"),
                );
            }
            ValidationErrorKind::MinItems { limit } => {
                let fix = match field {
                    Some("tasks") => {
                        "add a task: {\"id\": \"…\", \"task\": \"task.json\"}".to_string()
                    }
                    _ => format!("give at least {limit}, or remove the key if it is optional"),
                };
                push(
                    self,
                    Diagnostic::error(
                        "empty-list",
                        format!("{} must not be empty", name_of(field)),
                    )
                    .at(here)
                    .with_fix(fix),
                );
            }
            ValidationErrorKind::Minimum { limit } | ValidationErrorKind::Maximum { limit } => {
                let below = matches!(error.kind(), ValidationErrorKind::Minimum { .. });
                let bound = if below { "at least" } else { "at most" };
                push(
                    self,
                    Diagnostic::error(
                        "out-of-range",
                        format!(
                            "{} is {}; it must be {bound} {limit}",
                            name_of(field),
                            error.instance()
                        ),
                    )
                    .at(here)
                    .with_fix(format!("use a number {bound} {limit}")),
                );
            }
            ValidationErrorKind::PropertyNames { error: inner } => {
                // `propertyNames` constrains variable names in `env` maps: report the key.
                let name = inner.instance().as_str().unwrap_or_default().to_string();
                let member = pointer_join(&pointer, &name);
                let problem = if name.is_empty() {
                    "is empty".to_string()
                } else {
                    "contains `=` or a NUL character".to_string()
                };
                // One finding per name, whichever of its keywords failed first.
                if self
                    .out
                    .iter()
                    .any(|d| d.code == "env-name" && d.pointer == member)
                {
                    return;
                }
                self.out.push(
                    Diagnostic::error(
                        "env-name",
                        format!("variable name {} {problem}", Value::from(name.clone())),
                    )
                    .at_pointer(member.clone())
                    .at(self.document.key_position(&member))
                    .with_fix("use letters, digits and `_`"),
                );
            }
            ValidationErrorKind::Not { schema } => {
                // The schemas use `not: {required: [a, b]}` for the two spellings of one field.
                let keys: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let member = keys
                    .get(1)
                    .map(|k| pointer_join(&pointer, k))
                    .unwrap_or_else(|| pointer.clone());
                let (current, documented) = dialect_pair(&keys);
                let mut d = Diagnostic::error(
                    "both-dialects",
                    format!(
                        "{} uses both `{}` and `{}`, two spellings of the same field",
                        describe_object(&pointer),
                        keys.first().unwrap_or(&""),
                        keys.get(1).unwrap_or(&"")
                    ),
                )
                .at(self.document.key_position(&member))
                .with_related(
                    format!("`{}` is here", keys.first().unwrap_or(&"")),
                    keys.first()
                        .and_then(|k| self.document.key_position(&pointer_join(&pointer, k))),
                );
                d = d.with_fix(format!("keep one: `{current}` (current Kaapana) or `{documented}` (documented Task API)"));
                self.out.push(d.at_pointer(member));
            }
            ValidationErrorKind::AnyOf { context } => {
                // `anyOf: [{required: [a]}, {required: [b]}]`: one of two spellings is needed.
                // A spelling given as `null` counts as absent (the branch's `not null`).
                let keys: Vec<String> = context
                    .iter()
                    .filter_map(|branch| {
                        branch.iter().find_map(|e| match e.kind() {
                            ValidationErrorKind::Required { property } => {
                                property.as_str().map(str::to_owned)
                            }
                            ValidationErrorKind::Not { .. } if e.instance().is_null() => e
                                .instance_path()
                                .as_str()
                                .rsplit('/')
                                .next()
                                .map(str::to_owned),
                            _ => None,
                        })
                    })
                    .collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                if keys.len() == context.len() && !keys.is_empty() {
                    let (current, documented) = dialect_pair(&keys);
                    push(
                        self,
                        Diagnostic::error(
                            "missing-key",
                            format!("{} needs `{current}` (current Kaapana) or `{documented}` (documented Task API)", describe_object(&pointer)),
                        )
                        .at(here)
                        .with_fix(match current {
                            "volume_source" => "add `\"volume_source\": {\"host_path\": \"…\"}`".to_string(),
                            "scale_factor" => "add `\"scale_factor\": 1` (or `\"complexity\": \"1*n\"`)".to_string(),
                            other => format!("add `{other}`"),
                        }),
                    );
                } else {
                    for branch in context.iter().flatten() {
                        self.translate(branch, misspelt);
                    }
                }
            }
            // A pipeline task's `value_from` (Tapis' ValueFrom) names exactly one source.
            ValidationErrorKind::MinProperties { .. }
            | ValidationErrorKind::MaxProperties { .. }
                if field == Some("value_from") =>
            {
                push(
                    self,
                    Diagnostic::error(
                        "value-from-source",
                        "`value_from` must name exactly one source: `env`, `params` or `task_output`",
                    )
                    .at(here)
                    .with_fix("keep one, e.g. `{\"params\": \"NAME\"}`"),
                );
            }
            _ => {
                push(
                    self,
                    Diagnostic::error("schema", error.to_string()).at(here),
                );
            }
        }
    }

    /// The schema location (`#/…` fragment) of the object an error is about.
    fn object_fragment(&self, error: &ValidationError<'_>) -> String {
        let Some(location) = error.absolute_keyword_location() else {
            return String::new();
        };
        let fragment = location
            .fragment()
            .map(|f| f.as_str().to_string())
            .unwrap_or_default();
        let fragment = percent_decode(&fragment);
        fragment
            .strip_suffix("/additionalProperties")
            .unwrap_or(&fragment)
            .to_string()
    }

    /// The property names the schema allows in the object at `fragment`.
    fn known_properties(&self, fragment: &str) -> Vec<String> {
        self.bundle
            .at(fragment)
            .and_then(|schema| schema["properties"].as_object())
            .map(|props| {
                props
                    .keys()
                    .filter(|k| !k.starts_with('$'))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (parent, child) for the properties of the object-valued properties (by `$ref`)
    /// of the object at `fragment`.
    fn nested_properties(&self, fragment: &str) -> Vec<(String, String)> {
        let Some(props) = self
            .bundle
            .at(fragment)
            .and_then(|schema| schema["properties"].as_object())
        else {
            return Vec::new();
        };
        props
            .iter()
            .filter_map(|(name, schema)| {
                let target = schema["$ref"].as_str()?.strip_prefix('#')?;
                Some((name, self.known_properties(target)))
            })
            .flat_map(|(name, children)| children.into_iter().map(move |c| (name.clone(), c)))
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 3 <= bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A valid variable name close to `name`: `MY VAR` → `MY_VAR`, `1X` → `_1X`.
fn env_name_like(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// Orders a pair of spellings as (current Kaapana, documented Task API).
fn dialect_pair<'k>(keys: &[&'k str]) -> (&'k str, &'k str) {
    let a = keys.first().copied().unwrap_or_default();
    let b = keys.get(1).copied().unwrap_or_default();
    match a {
        "input" | "complexity" => (b, a),
        _ => (a, b),
    }
}

fn name_of(field: Option<&str>) -> String {
    match field {
        Some(f) if f.parse::<usize>().is_ok() => format!("item {f}"),
        Some(f) => format!("`{f}`"),
        None => "the top-level value".to_string(),
    }
}

/// A readable name for the object at a pointer: "inputs[0]", "the file".
fn describe_object(pointer: &str) -> String {
    if pointer.is_empty() {
        "the file".to_string()
    } else {
        format!(
            "`{}`",
            crate::diagnostic::json_path(pointer).trim_start_matches("$.")
        )
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "array" | "integer" | "object" => format!("an {type_name}"),
        "null" => "null".to_string(),
        other => format!("a {other}"),
    }
}

fn value_kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_schemas_are_valid_draft_2020_12() {
        for text in [
            PC_SCHEMA,
            TASK_SCHEMA,
            PIPELINE_SCHEMA,
            PIPELINE_CONF_SCHEMA,
        ] {
            let schema: Value = serde_json::from_str(text).unwrap();
            assert!(jsonschema::meta::is_valid(&schema));
        }
    }

    #[test]
    fn shared_definitions_are_identical_in_both_schemas() {
        let pc: Value = serde_json::from_str(PC_SCHEMA).unwrap();
        let task: Value = serde_json::from_str(TASK_SCHEMA).unwrap();
        for (name, def) in pc["$defs"].as_object().unwrap() {
            assert_eq!(
                &task["$defs"][name], def,
                "$defs/{name} differs between the schemas"
            );
        }
    }

    /// A conf file's `resources` override is checked as a task file's `resources`.
    #[test]
    fn the_conf_schema_shares_the_task_schemas_resources() {
        let task: Value = serde_json::from_str(TASK_SCHEMA).unwrap();
        let conf: Value = serde_json::from_str(PIPELINE_CONF_SCHEMA).unwrap();
        for name in ["Resources", "ResourceList"] {
            assert_eq!(conf["$defs"][name], task["$defs"][name], "$defs/{name}");
        }
    }

    /// An inline task in a pipeline is checked by the same rules as a task.json: the
    /// pipeline schema carries the task schema (its root as `$defs/Task`, and its `$defs`).
    #[test]
    fn the_pipeline_schema_embeds_the_task_schema_unchanged() {
        let task: Value = serde_json::from_str(TASK_SCHEMA).unwrap();
        let pipeline: Value = serde_json::from_str(PIPELINE_SCHEMA).unwrap();
        for (name, def) in task["$defs"].as_object().unwrap() {
            assert_eq!(
                &pipeline["$defs"][name], def,
                "$defs/{name} differs between task and pipeline schemas"
            );
        }
        let mut root = task.as_object().unwrap().clone();
        let mut embedded = pipeline["$defs"]["Task"].as_object().unwrap().clone();
        for key in ["$schema", "$id", "$defs", "title"] {
            root.remove(key);
            embedded.remove(key);
        }
        assert_eq!(
            root, embedded,
            "$defs/Task differs from the task schema's root"
        );
    }

    #[test]
    fn kind_detection() {
        assert_eq!(
            Kind::from_file_name("processing-container.json"),
            Some(Kind::ProcessingContainer)
        );
        assert_eq!(Kind::from_file_name("upstream-task.json"), Some(Kind::Task));
        assert_eq!(Kind::from_file_name("package.json"), None);
        let v: Value = serde_json::json!({"taskTempalte": "x"});
        assert_eq!(Kind::from_content(&v), Some(Kind::Task));
        let v: Value = serde_json::json!({"templates": []});
        assert_eq!(Kind::from_content(&v), Some(Kind::ProcessingContainer));
        assert_eq!(Kind::from_content(&serde_json::json!({"a": 1})), None);
    }
}
