//! Loading a task file for a run: check it, render its Jinja templating with the process
//! environment (DESIGN.md decision 4), and read it as a `Task`.

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, Severity, pointer_join};
use crate::error::{Error, Findings};
use crate::model::{self, Task};
use crate::resolve::plan::Problem;
use crate::schema::Kind;
use crate::source::Document;
use crate::source::template::{self, Variables};
use crate::validation::{FileReport, KindRule, check_file};

/// A task ready to resolve.
#[derive(Debug)]
pub(crate) struct LoadedTask {
    pub task: Task,
    pub document: Document,
    pub sha256: String,
    /// Warnings from the checks (shown, not fatal).
    pub warnings: Vec<Diagnostic>,
    /// `config` as rendered (`Null` when absent): its Kubernetes keys, which `Task`
    /// leaves out, are read from here for a manifest (`k8s::config`).
    pub config: Value,
    /// Pointers of `config` strings left unrendered because a variable is not set (a
    /// local run does not need them; a Kubernetes manifest does).
    pub unrendered_config: Vec<String>,
    /// `config.registryUsername`/`registryPassword` (rendered), for `run --pull`.
    pub registry: crate::model::registry::RegistryCredentials,
}

/// Why a task cannot be loaded: the report to show (exit 125).
#[derive(Debug)]
pub(crate) enum LoadError {
    Unreadable(Error),
    Invalid(Box<FileReport>),
}

/// `config` keys a local run does not use: their templating is rendered leniently, so a
/// k8s task file runs locally without setting the k8s-only variables.
const UNUSED_LOCALLY: &[&str] = &["/config"];

/// Loads the task file at `path`, with tapir's own environment as the templates' `env`
/// (the same one `tapir validate` renders a whole-text file with).
pub(crate) fn load(path: &Path) -> Result<LoadedTask, LoadError> {
    let variables = Variables::from_process();
    let mut report =
        check_file(path, KindRule::Forced(Kind::Task)).map_err(LoadError::Unreadable)?;
    if !report.is_valid() {
        return Err(LoadError::Invalid(Box::new(report)));
    }
    let Some(document) = report.document.take() else {
        return Err(LoadError::Invalid(Box::new(report)));
    };
    let mut value = document.value.clone();
    let mut errors = Vec::new();
    let mut unrendered_config = Vec::new();
    // Which strings read which variables, by pointer: a value built from a secret is one.
    let mut reads: Vec<(String, Vec<String>)> = Vec::new();
    let whole_text = template::needs_whole_text(&document.source.text);
    if !whole_text {
        let mut renderer = PerString {
            document: &document,
            variables: &variables,
            errors: &mut errors,
            reads: &mut reads,
            unrendered: &mut unrendered_config,
        };
        renderer.render(&mut value, "");
    }
    let warnings: Vec<Diagnostic> = report
        .diagnostics
        .drain(..)
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    if !errors.is_empty() {
        report.diagnostics = errors;
        report.document = Some(document);
        return Err(LoadError::Invalid(Box::new(report)));
    }
    let mut task: Task = match model::from_value(&value, "task") {
        Ok(task) => task,
        Err(message) => {
            report.diagnostics = vec![Diagnostic::error("internal", message)];
            report.document = Some(document);
            return Err(LoadError::Invalid(Box::new(report)));
        }
    };
    let secrets = SecretReads {
        document: &document,
        variables: &variables,
        per_string: &reads,
        whole_text,
    };
    for (index, var) in task.env.iter_mut().enumerate() {
        var.rendered_from_secret = secrets.reads_a_secret(&format!("/env/{index}/value"));
    }
    if let model::TemplateRef::Inline(template) = &mut task.template {
        for (index, var) in template.env.iter_mut().enumerate() {
            var.rendered_from_secret =
                secrets.reads_a_secret(&format!("/taskTemplate/env/{index}/value"));
        }
    }
    let sha256 = format!("{:x}", Sha256::digest(document.source.text.as_bytes()));
    let config = value.get("config").cloned().unwrap_or(Value::Null);
    let registry = crate::model::registry::RegistryCredentials::from_config(&value["config"]);
    Ok(LoadedTask {
        task,
        document,
        sha256,
        warnings,
        config,
        unrendered_config,
        registry,
    })
}

/// The env values of a task file rendered whole (DESIGN.md decision 4) that came from a
/// secret-looking variable, as JSON Pointers (`/env/0/value`, and in an inline template
/// `/taskTemplate/env/0/value`). Empty for a file rendered per string: its values are
/// still templates until `run` renders them.
pub(crate) fn whole_text_secret_values(document: &Document) -> Vec<String> {
    if !template::needs_whole_text(&document.source.text) {
        return Vec::new();
    }
    let variables = Variables::from_process();
    let secrets = SecretReads {
        document,
        variables: &variables,
        per_string: &[],
        whole_text: true,
    };
    ["/env", "/taskTemplate/env"]
        .iter()
        .flat_map(|list| {
            let count = document
                .value
                .pointer(list)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            (0..count).map(move |i| format!("{list}/{i}/value"))
        })
        .filter(|pointer| secrets.reads_a_secret(pointer))
        .collect()
}

/// Which rendered values came from a secret-looking variable.
struct SecretReads<'a> {
    document: &'a Document,
    variables: &'a Variables,
    per_string: &'a [(String, Vec<String>)],
    whole_text: bool,
}

impl SecretReads<'_> {
    /// Does the value at `pointer` come from a secret-looking variable? Rendered per
    /// string, the variables that string read are known exactly. Rendered whole, a value
    /// is secret when the file's text that produced it names a secret-looking variable, or
    /// when it holds the value of one that is set (a `{% set %}` elsewhere may have
    /// carried it there): masking one value too many is harmless, one too few is not.
    fn reads_a_secret(&self, pointer: &str) -> bool {
        if !self.whole_text {
            return self
                .per_string
                .iter()
                .filter(|(p, _)| p == pointer)
                .flat_map(|(_, names)| names)
                .any(|name| crate::model::secret::is_secret_name(name));
        }
        let Some(rendered) = self.document.value.pointer(pointer).and_then(Value::as_str) else {
            return false;
        };
        let produced_by = self
            .document
            .spans
            .find(pointer)
            .and_then(|node| self.document.source.text.get(node.value.clone()))
            .unwrap_or_default();
        self.variables
            .names()
            .filter(|name| crate::model::secret::is_secret_name(name))
            .any(|name| {
                produced_by.contains(name)
                    || self
                        .variables
                        .get(name)
                        .is_some_and(|secret| !secret.is_empty() && rendered.contains(secret))
            })
    }
}

/// Renders every string of a document on its own (a file whose template syntax is all
/// inside strings).
struct PerString<'a> {
    document: &'a Document,
    variables: &'a Variables,
    errors: &'a mut Vec<Diagnostic>,
    reads: &'a mut Vec<(String, Vec<String>)>,
    /// Config strings left as written because a variable is not set.
    unrendered: &'a mut Vec<String>,
}

impl PerString<'_> {
    fn render(&mut self, value: &mut Value, pointer: &str) {
        match value {
            Value::String(s) => {
                if !template::is_templated(s) {
                    return;
                }
                match template::render(s, self.variables) {
                    Ok(rendered) => {
                        *s = rendered.text;
                        self.reads.push((pointer.to_string(), rendered.reads));
                    }
                    Err(e)
                        if e.undefined.is_some()
                            && UNUSED_LOCALLY.iter().any(|p| pointer.starts_with(p))
                            && !pointer.starts_with("/config/labels") =>
                    {
                        self.unrendered.push(pointer.to_string());
                    }
                    Err(e) => self.errors.push(
                        Diagnostic::error(
                            if e.undefined.is_some() {
                                "undefined-variable"
                            } else {
                                "template"
                            },
                            format!(
                                "{} (needed by {})",
                                e.message,
                                crate::diagnostic::json_path(pointer)
                            ),
                        )
                        .at_pointer(pointer)
                        .at(self.document.string_position(pointer, e.span.clone()))
                        .with_fix(e.fix),
                    ),
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.render(item, &pointer_join(pointer, i));
                }
            }
            Value::Object(members) => {
                for (key, item) in members.iter_mut() {
                    self.render(item, &pointer_join(pointer, key));
                }
            }
            _ => {}
        }
    }
}

/// A report whose errors stop a run, as the error that shows them (exit 125).
pub(crate) fn report_error(report: &FileReport, message: String) -> Error {
    Error::NotStartedFindings {
        message,
        findings: Box::new(Findings {
            file: report.path.display().to_string(),
            source: report.source().cloned(),
            diagnostics: report.diagnostics.clone(),
        }),
    }
}

/// Problems found while resolving a loaded task, as the error that shows them at their
/// places in the task file (exit 125); the record's message joins them.
pub(crate) fn problems_error(problems: &[Problem], loaded: &LoadedTask) -> Error {
    let document = &loaded.document;
    let diagnostics = problems
        .iter()
        .map(|problem| {
            let d = Diagnostic::error("cannot-run", problem.message.clone())
                .with_fix(problem.fix.clone());
            match &problem.pointer {
                Some(pointer) => d
                    .at_pointer(pointer.clone())
                    .at(document.value_position(pointer)),
                None => d,
            }
        })
        .collect();
    Error::NotStartedFindings {
        message: problems
            .iter()
            .map(|p| p.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        findings: Box::new(Findings {
            file: document.source.path.display().to_string(),
            source: Some(document.source.clone()),
            diagnostics,
        }),
    }
}
