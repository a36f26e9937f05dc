//! The Task API data model: typed values read from checked documents, with both dialects
//! (DESIGN.md decision 2) normalised into one shape. Reading happens only after the
//! schema check passed, so shapes are known; what remains is meaning.

pub(crate) mod base64;
pub(crate) mod complexity;
pub(crate) mod quantity;
pub(crate) mod registry;
pub(crate) mod secret;
pub(crate) mod target;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use target::SizeMode;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProcessingContainer {
    pub name: String,
    pub description: String,
    pub templates: Vec<Template>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Template {
    pub identifier: String,
    pub description: String,
    pub inputs: Vec<Mount>,
    pub outputs: Vec<Mount>,
    pub env: Vec<TemplateEnv>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// A channel as a template declares it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Mount {
    pub name: String,
    pub mounted_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_rule: Option<ScaleRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TemplateEnv {
    pub name: String,
    pub value: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<EnvType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub adjustable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An inline template's default rendered from a secret-looking variable: a secret
    /// whatever this variable's name (see `EnvVar::rendered_from_secret`).
    #[serde(skip)]
    pub rendered_from_secret: bool,
}

impl TemplateEnv {
    /// Is its default a secret (by its name, or by what it was rendered from)?
    pub(crate) fn is_secret(&self) -> bool {
        secret::is_secret_name(&self.name) || self.rendered_from_secret
    }

    /// The template's rules (`adjustable`, `type`, `choices`) that `value`, set over this
    /// declaration, breaks. The one checker for `run --env`, task files, pipelines and
    /// conf files: each caller words the message with its own context (who set the value,
    /// where), the rule and its fix are here. A secret's value gets no "did you mean".
    pub(crate) fn breaches(&self, value: &str, secret: bool) -> Vec<EnvBreach> {
        let mut breaches = Vec::new();
        if !self.adjustable {
            breaches.push(EnvBreach::NotAdjustable);
        }
        if let Some(kind) = self.value_type.filter(|k| !k.accepts(value)) {
            breaches.push(EnvBreach::WrongType(kind));
        }
        if let Some(choices) = self
            .choices
            .as_ref()
            .filter(|c| !c.is_empty() && !c.iter().any(|c| c == value))
        {
            let suggestion = if secret {
                None
            } else {
                crate::diagnostic::did_you_mean(value, choices.iter().map(String::as_str))
                    .map(str::to_string)
            };
            breaches.push(EnvBreach::NotAChoice { suggestion });
        }
        breaches
    }
}

/// A rule of a template's env declaration that a value breaks (see
/// [`TemplateEnv::breaches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvBreach {
    /// `adjustable: false`, and the value overrides the default.
    NotAdjustable,
    /// The value is not of the declared `type`.
    WrongType(EnvType),
    /// The value is not one of the `choices`; the nearest one, when not a secret.
    NotAChoice { suggestion: Option<String> },
}

impl EnvBreach {
    /// The finding code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            EnvBreach::NotAdjustable => "not-adjustable",
            EnvBreach::WrongType(_) => "env-type",
            EnvBreach::NotAChoice { .. } => "env-choice",
        }
    }

    /// How to mend it.
    pub(crate) fn fix(&self, declared: &TemplateEnv) -> String {
        match self {
            EnvBreach::NotAdjustable => {
                "remove the override, or make the variable adjustable in the template".into()
            }
            EnvBreach::WrongType(EnvType::Int) => "use a whole number, e.g. \"5\"".into(),
            EnvBreach::WrongType(EnvType::Boolean) => "use \"true\" or \"false\"".into(),
            EnvBreach::WrongType(EnvType::String) => "give a string".into(),
            EnvBreach::NotAChoice { suggestion } => {
                let allowed = declared
                    .choices
                    .iter()
                    .flatten()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                match suggestion {
                    Some(s) => format!("did you mean \"{s}\"? allowed: {allowed}"),
                    None => format!("use one of {allowed}"),
                }
            }
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EnvType {
    Boolean,
    String,
    Int,
}

impl EnvType {
    pub(crate) fn label(self) -> &'static str {
        match self {
            EnvType::Boolean => "boolean",
            EnvType::String => "string",
            EnvType::Int => "int",
        }
    }

    pub(crate) fn accepts(self, value: &str) -> bool {
        match self {
            EnvType::Int => value.trim().parse::<i64>().is_ok(),
            EnvType::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
            EnvType::String => true,
        }
    }
}

/// A scale rule in either dialect: `complexity` (documented) or `scale_factor` (current).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScaleRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complexity: Option<String>,
    #[serde(
        default,
        deserialize_with = "whole_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub scale_factor: Option<i64>,
    #[serde(rename = "type")]
    pub kind: ScaleKind,
    pub mode: ScaleMode,
    #[serde(default)]
    pub target_dir: String,
    #[serde(default = "default_regex")]
    pub target_regex: String,
    #[serde(default = "default_glob")]
    pub target_glob: String,
}

/// `scale_factor` as the reference reads a pydantic `int`: `2`, and also `2.0` or `1e1`
/// (JSON Schema's `integer` accepts those too); `1.5` is refused by the schema first.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let raw: Option<Value> = Option::deserialize(d)?;
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_whole_number(&value).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("scale_factor {value} is not a whole number"))
        }),
    }
}

/// A JSON number that is a whole number in `i64` range, however it is written (`2`,
/// `2.0`, `1e1`).
pub(crate) fn as_whole_number(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
            .map(|f| f as i64)
    })
}

fn default_regex() -> String {
    ".*".into()
}

fn default_glob() -> String {
    "*".into()
}

impl ScaleRule {
    /// The size → requirement function, whichever dialect gave it.
    pub(crate) fn function(&self) -> complexity::Complexity {
        match (&self.complexity, self.scale_factor) {
            (Some(text), _) => complexity::parse(text).unwrap_or(complexity::Complexity {
                coefficient: 0.0,
                exponent: 1,
            }),
            (None, Some(factor)) => complexity::from_scale_factor(factor),
            (None, None) => complexity::from_scale_factor(0),
        }
    }

    /// The rule as people write it: `2 × n` or `1.5 × n^2`.
    pub(crate) fn describe(&self) -> String {
        match (&self.complexity, self.scale_factor) {
            (Some(text), _) => format!("complexity {text}"),
            (None, Some(f)) => format!("scale_factor {f}"),
            (None, None) => "no factor".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScaleKind {
    Limit,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ScaleMode {
    Sum,
    MaxFileSize,
    MaxItemSum,
}

impl From<ScaleMode> for SizeMode {
    fn from(mode: ScaleMode) -> Self {
        match mode {
            ScaleMode::Sum => SizeMode::Sum,
            ScaleMode::MaxFileSize => SizeMode::MaxFileSize,
            ScaleMode::MaxItemSum => SizeMode::MaxItemSum,
        }
    }
}

/// Resource name → quantity text, as written (numbers become their text).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Resources {
    #[serde(
        default,
        deserialize_with = "quantities",
        skip_serializing_if = "Option::is_none"
    )]
    pub limits: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "quantities",
        skip_serializing_if = "Option::is_none"
    )]
    pub requests: Option<BTreeMap<String, String>>,
}

fn quantities<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    Ok(raw.map(|m| {
        m.into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect()
    }))
}

/// `task.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Task {
    pub name: String,
    pub image: String,
    #[serde(rename = "taskTemplate")]
    pub template: TemplateRef,
    #[serde(default)]
    pub inputs: Vec<Binding>,
    #[serde(default)]
    pub outputs: Vec<Binding>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub config: Config,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum TemplateRef {
    Identifier(String),
    Inline(Box<Template>),
}

/// A task's binding of a channel to a host folder; `input` (documented) and
/// `volume_source` (current Kaapana) are the same field.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Binding {
    pub name: String,
    #[serde(alias = "input")]
    pub volume_source: HostPath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_rule: Option<ScaleRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostPath {
    pub host_path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnvVar {
    pub name: String,
    pub value: String,
    /// The value was rendered from a secret-looking variable (`{{ env.DB_PASSWORD }}`):
    /// it is a secret whatever this variable's name. Set by `task_file::load`.
    #[serde(skip)]
    pub rendered_from_secret: bool,
}

/// The parts of `config` a local run uses. The k8s-only keys (registry credentials among
/// them) are deliberately not kept, so they cannot reach a record; `run --pull` reads the
/// credentials into `model::registry::RegistryCredentials` instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Config {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Resource names that ask for GPUs.
pub(crate) const GPU_KEYS: &[&str] = &["nvidia.com/gpu", "gpu", "amd.com/gpu"];

/// `/home//data/` → `/home/data`, so two spellings of one folder are seen as one.
pub(crate) fn normalize_container_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Reads a checked document as `T`; a failure here means the schema and the model
/// disagree, which is a tapir bug worth a clear report.
///
/// Members whose value is `null` are dropped first: the schema admits `null` only where
/// the reference's model is `Optional` (and its own dumps write `null` there), and
/// `null` there means the same as an absent key.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    value: &Value,
    what: &str,
) -> Result<T, String> {
    let mut value = value.clone();
    drop_null_members(&mut value);
    T::deserialize(&value).map_err(|e| {
        format!("internal: the checked {what} could not be read ({e}); please report this")
    })
}

fn drop_null_members(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|_, v| !v.is_null());
            members.values_mut().for_each(drop_null_members);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_members),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_override_of_a_declared_variable() {
        let declared: TemplateEnv = serde_json::from_value(serde_json::json!({
            "name": "MODE", "value": "fast", "type": "string",
            "choices": ["fast", "slow"], "adjustable": false
        }))
        .unwrap();
        assert_eq!(
            declared.breaches("fsat", false),
            vec![
                EnvBreach::NotAdjustable,
                EnvBreach::NotAChoice {
                    suggestion: Some("fast".into())
                }
            ]
        );
        // A secret's value is not compared with the choices in a message.
        assert_eq!(
            declared.breaches("fsat", true)[1],
            EnvBreach::NotAChoice { suggestion: None }
        );
        assert_eq!(
            EnvBreach::NotAChoice { suggestion: None }.fix(&declared),
            "use one of \"fast\", \"slow\""
        );
        let count: TemplateEnv =
            serde_json::from_value(serde_json::json!({"name": "N", "value": "1", "type": "int"}))
                .unwrap();
        assert_eq!(count.breaches(" 7 ", false), vec![]);
        assert_eq!(
            count.breaches("seven", false),
            vec![EnvBreach::WrongType(EnvType::Int)]
        );
        assert_eq!(EnvBreach::WrongType(EnvType::Int).code(), "env-type");
    }

    use crate::schema::Kind;
    use crate::validation::{KindRule, check_source};

    /// What `tapir run` does with a task file: the checks must pass, then the model
    /// must read the checked value.
    fn checked_then_read<T: serde::de::DeserializeOwned>(kind: Kind, text: &str) -> T {
        let report = check_source(
            crate::source::Source::new("t.json", text.to_owned()),
            KindRule::Forced(kind),
        );
        assert!(
            report.is_valid(),
            "validate refused it: {:?}",
            report.diagnostics
        );
        let value = &report.document.as_ref().expect("parsed").value;
        match from_value(value, "file") {
            Ok(model) => model,
            Err(message) => panic!("validate accepted it but the model did not: {message}"),
        }
    }

    fn task_with_scale_factor(factor: &str) -> String {
        format!(
            r#"{{"name": "t", "image": "i:1", "taskTemplate": {{"identifier": "x", "description": "",
            "inputs": [{{"name": "in", "mounted_path": "/in",
                "scale_rule": {{"scale_factor": {factor}, "type": "limit", "mode": "sum"}}}}],
            "outputs": [], "env": []}},
            "inputs": [{{"name": "in", "volume_source": {{"host_path": "/data"}}}}]}}"#
        )
    }

    fn inline_scale_factor(task: &Task) -> Option<i64> {
        match &task.template {
            TemplateRef::Inline(t) => t.inputs[0].scale_rule.as_ref().and_then(|r| r.scale_factor),
            TemplateRef::Identifier(_) => None,
        }
    }

    #[test]
    fn whole_number_floats_are_scale_factors() {
        for (written, factor) in [("2", 2), ("2.0", 2), ("1e1", 10), ("-3.0", -3)] {
            let task: Task = checked_then_read(Kind::Task, &task_with_scale_factor(written));
            assert_eq!(inline_scale_factor(&task), Some(factor), "{written}");
        }
    }

    #[test]
    fn fractional_scale_factor_is_refused_by_validate() {
        let report = check_source(
            crate::source::Source::new("t.json", task_with_scale_factor("1.5")),
            KindRule::Forced(Kind::Task),
        );
        assert!(
            report.diagnostics.iter().any(|d| d.code == "type"),
            "{:?}",
            report.diagnostics
        );
    }

    /// The shape of the reference's `processing-container IMAGE` dump: every Optional
    /// field written as `null`.
    #[test]
    fn null_optional_fields_read_as_absent() {
        let task: Task = checked_then_read(
            Kind::Task,
            r#"{"name": "t", "image": "i:1", "command": null, "resources": null, "config": null,
            "env": null,
            "taskTemplate": {"identifier": "x", "description": "d", "command": null,
                "resources": {"limits": {"memory": null}, "requests": null},
                "inputs": [{"name": "in", "mounted_path": "/in", "description": null,
                    "scale_rule": {"scale_factor": 2, "type": "limit", "mode": "sum",
                        "complexity": null, "target_dir": null, "target_regex": null,
                        "target_glob": null}}],
                "outputs": [{"name": "out", "mounted_path": "/out", "scale_rule": null}],
                "env": [{"name": "MODE", "value": "a", "choices": null, "description": null,
                    "type": null, "adjustable": null}]},
            "inputs": [{"name": "in", "volume_source": {"host_path": "/data"}, "scale_rule": null}],
            "outputs": [{"name": "out", "input": null, "volume_source": {"host_path": "/o"}}]}"#,
        );
        assert!(task.command.is_none() && task.resources.is_none() && task.env.is_empty());
        assert!(task.config.labels.is_empty());
        let TemplateRef::Inline(template) = &task.template else {
            panic!("inline template expected");
        };
        let rule = template.inputs[0].scale_rule.as_ref().expect("scale rule");
        assert_eq!(
            (
                rule.target_dir.as_str(),
                rule.target_regex.as_str(),
                rule.target_glob.as_str()
            ),
            ("", ".*", "*")
        );
        assert!(template.outputs[0].scale_rule.is_none());
        assert!(template.env[0].adjustable && template.env[0].choices.is_none());
        let limits = template.resources.as_ref().and_then(|r| r.limits.as_ref());
        assert_eq!(limits.map(BTreeMap::len), Some(0));

        let container: ProcessingContainer = checked_then_read(
            Kind::ProcessingContainer,
            r#"{"name": "c", "description": "d", "templates": [{"identifier": "x",
                "description": "d", "command": null, "resources": null, "inputs": [],
                "outputs": [], "env": []}]}"#,
        );
        assert!(container.templates[0].command.is_none());
    }
}
