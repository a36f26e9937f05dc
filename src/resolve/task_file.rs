//! Loading a task file for a run: check it, render its `{{ env.NAME }}` templating with the
//! process environment (DESIGN.md decision 4), and read it as a `Task`.

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, Severity, pointer_join};
use crate::error::{Error, Findings};
use crate::model::{self, Task};
use crate::resolve::plan::Problem;
use crate::schema::Kind;
use crate::source::Document;
use crate::source::template::Template;
use crate::validation::{FileReport, KindRule, check_file};

/// A task ready to resolve.
#[derive(Debug)]
pub(crate) struct LoadedTask {
    pub task: Task,
    pub document: Document,
    pub sha256: String,
    /// Warnings from the checks (shown, not fatal).
    pub warnings: Vec<Diagnostic>,
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

pub(crate) fn load(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedTask, LoadError> {
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
    render(&mut value, "", &document, lookup, &mut errors);
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
    for (index, var) in task.env.iter_mut().enumerate() {
        var.rendered_from_secret = reads_a_secret(&document.value, &format!("/env/{index}/value"));
    }
    if let model::TemplateRef::Inline(template) = &mut task.template {
        for (index, var) in template.env.iter_mut().enumerate() {
            var.rendered_from_secret =
                reads_a_secret(&document.value, &format!("/taskTemplate/env/{index}/value"));
        }
    }
    let sha256 = format!("{:x}", Sha256::digest(document.source.text.as_bytes()));
    Ok(LoadedTask {
        task,
        document,
        sha256,
        warnings,
    })
}

/// Does the string at `pointer` (as written, before rendering) read a secret-looking
/// variable?
fn reads_a_secret(value: &Value, pointer: &str) -> bool {
    let Some(Ok(Some(template))) = value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(Template::parse)
    else {
        return false;
    };
    template
        .variables()
        .iter()
        .any(|(name, _, _)| crate::resolve::plan::is_secret_name(name))
}

fn render(
    value: &mut Value,
    pointer: &str,
    document: &Document,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<Diagnostic>,
) {
    match value {
        Value::String(s) => {
            let Ok(Some(template)) = Template::parse(s) else {
                return;
            };
            match template.render(lookup) {
                Ok(rendered) => *s = rendered,
                Err(_)
                    if UNUSED_LOCALLY.iter().any(|p| pointer.starts_with(p))
                        && !pointer.starts_with("/config/labels") => {}
                Err(e) => errors.push(
                    Diagnostic::error(
                        "undefined-variable",
                        format!(
                            "{} (needed by {})",
                            e.message,
                            crate::diagnostic::json_path(pointer)
                        ),
                    )
                    .at_pointer(pointer)
                    .at(document.string_position(pointer, e.span.clone()))
                    .with_fix(e.fix),
                ),
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                render(item, &pointer_join(pointer, i), document, lookup, errors);
            }
        }
        Value::Object(members) => {
            for (key, item) in members.iter_mut() {
                render(item, &pointer_join(pointer, key), document, lookup, errors);
            }
        }
        _ => {}
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
