//! Checking one file end to end: read → parse → detect its kind → schema → checks
//! beyond the schema. `tapir validate` runs it on every file it is given; `tapir run`
//! runs it on the task file before anything else.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Severity};
use crate::error::Error;
use crate::schema::{self, Kind};
use crate::source::{self, Document, LoadFailure};

/// What checking one file found.
#[derive(Debug)]
pub(crate) struct FileReport {
    pub path: PathBuf,
    pub kind: Option<Kind>,
    pub document: Option<Document>,
    /// The text, when it could be read but not parsed (for snippets of syntax errors).
    pub unparsed: Option<source::Source>,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    pub(crate) fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.count(Severity::Error) == 0
    }

    /// `--strict`: every warning becomes an error.
    pub(crate) fn promote_warnings(&mut self) {
        for d in &mut self.diagnostics {
            if d.severity == Severity::Warning {
                d.severity = Severity::Error;
            }
        }
    }

    /// The text of the file, when it could be read.
    pub(crate) fn source(&self) -> Option<&source::Source> {
        self.document
            .as_ref()
            .map(|d| &d.source)
            .or(self.unparsed.as_ref())
    }
}

/// How the kind of a file is decided.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KindRule {
    /// `--schema`: this kind, whatever the file says.
    Forced(Kind),
    /// From the file name, then from the content.
    Detect,
}

/// Checks one file. `Err` only when the path cannot be read at all (exit 2).
pub(crate) fn check_file(path: &Path, rule: KindRule) -> Result<FileReport, Error> {
    let source = match source::read_text(path) {
        Ok(source) => source,
        Err(LoadFailure::Io(e)) => return Err(e),
        Err(LoadFailure::Content(d)) => return Ok(failed(path, rule, None, *d)),
    };
    Ok(check_source(source, rule))
}

/// Checks a text already in memory (a file, or `/processing-container.json` of an image).
pub(crate) fn check_source(source: source::Source, rule: KindRule) -> FileReport {
    let path = source.path.clone();
    let bom = source.had_bom.then(|| {
        Diagnostic::warning(
            "bom",
            "the file starts with a UTF-8 byte-order mark; JSON parsers such as Python's `json.load` refuse it",
        )
        .at(Some(source.position(0..1)))
        .with_fix("save the file as UTF-8 without BOM")
    });
    let parsed = if is_templated_task(&path, rule, &source.text) {
        source::parse_templated(source, &source::template::Variables::from_process())
    } else {
        source::parse(source)
    };
    let (document, mut diagnostics) = match parsed {
        Ok(parsed) => parsed,
        Err((source, d)) => return failed(&path, rule, Some(source), *d),
    };
    diagnostics.extend(bom);
    if !document.value.is_object() {
        let found = match &document.value {
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::Bool(_) => "a boolean",
            _ => "null",
        };
        let position = document.value_position("");
        return failed(
            &path,
            rule,
            Some(document.source),
            Diagnostic::error("not-an-object", format!("the file holds {found}; a Task API file is a JSON object"))
                .at(position)
                .with_fix("wrap the content in `{ … }`; a processing-container.json has `templates`, a task.json has `taskTemplate`"),
        );
    }
    let kind = match rule {
        KindRule::Forced(kind) => kind,
        KindRule::Detect => {
            let by_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Kind::from_file_name);
            match by_name.or_else(|| Kind::from_content(&document.value)) {
                Some(kind) => kind,
                None => {
                    let fix = if document.value.get("tasks").is_some() {
                        "this looks like a pipeline: check it with `tapir pipeline validate FILE`"
                    } else {
                        "name the file processing-container.json or *task.json, or pass `--schema pc` or `--schema task`"
                    };
                    return FileReport {
                        path,
                        kind: None,
                        document: Some(document),
                        unparsed: None,
                        diagnostics: vec![Diagnostic::error(
                            "unknown-kind",
                            "cannot tell whether this is a processing-container.json or a task.json (it has neither `templates` nor `taskTemplate`)",
                        )
                        .with_fix(fix)],
                    };
                }
            }
        }
    };
    diagnostics.extend(schema::check(&document, kind));
    diagnostics.extend(crate::checks::check(&document, kind));
    sort_by_position(&mut diagnostics);
    FileReport {
        path,
        kind: Some(kind),
        document: Some(document),
        unparsed: None,
        diagnostics,
    }
}

/// A task file with template syntax outside its JSON strings is rendered whole before it
/// is parsed (DESIGN.md decision 4), with tapir's environment as `env`, as the reference
/// does for `validate` and `run` alike. A processing-container.json is never rendered
/// (tapir does not template it at all; the one in an image is not even in the reference).
fn is_templated_task(path: &Path, rule: KindRule, text: &str) -> bool {
    let may_be_task = match rule {
        KindRule::Forced(kind) => kind == Kind::Task,
        KindRule::Detect => {
            path.file_name()
                .and_then(|n| n.to_str())
                .and_then(Kind::from_file_name)
                != Some(Kind::ProcessingContainer)
        }
    };
    may_be_task && source::template::needs_whole_text(text)
}

fn failed(
    path: &Path,
    rule: KindRule,
    unparsed: Option<source::Source>,
    diagnostic: Diagnostic,
) -> FileReport {
    FileReport {
        path: path.to_path_buf(),
        kind: match rule {
            KindRule::Forced(kind) => Some(kind),
            KindRule::Detect => path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Kind::from_file_name),
        },
        document: None,
        unparsed,
        diagnostics: vec![diagnostic],
    }
}

fn sort_by_position(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| d.position.as_ref().map_or((0, 0), |p| (p.line, p.column)));
}

/// The processing-container.json a task file sits beside: in the task's own folder or
/// its `files/` folder (the layout Kaapana's guide shows: `COPY
/// files/processing-container.json /processing-container.json`), or, for a task in a
/// `tasks/` folder (a container repository such as Kaapana's
/// `container_templates/dummy`), in the folder above it or that folder's `files/`.
pub(crate) fn sibling_container(task_path: &Path) -> Option<PathBuf> {
    let folder = task_path.parent()?;
    let mut folders = vec![folder.to_path_buf()];
    if folder.file_name().is_some_and(|n| n == "tasks") {
        folders.push(folder.parent().unwrap_or(Path::new("")).to_path_buf());
    }
    folders
        .iter()
        .flat_map(|f| {
            [
                f.join("processing-container.json"),
                f.join("files").join("processing-container.json"),
            ]
        })
        .find(|c| c.is_file())
}

/// `tapir validate`: a task that names its template by identifier is also checked
/// against that template in `container_file` (`--container-file`) or else in the
/// sibling processing-container.json (no image needed). When neither can be read, a
/// note says that the template was not checked: only the image knows it.
pub(crate) fn check_against_sibling(report: &mut FileReport, container_file: Option<&Path>) {
    let Some(task) = report.document.as_ref() else {
        return;
    };
    if report.kind != Some(Kind::Task) {
        return;
    }
    let Some(identifier) = task.value.get("taskTemplate").and_then(|t| t.as_str()) else {
        return;
    };
    let unchecked = |why: String, fix: &str| {
        Diagnostic::note(
            "unchecked-template",
            format!("template `{identifier}` was not checked: {why}"),
        )
        .at_pointer("/taskTemplate")
        .at(task.value_position("/taskTemplate"))
        .with_fix(fix)
    };
    // Why the template cannot be checked, if it cannot: a note, in one place.
    let container = if crate::source::template::is_templated(identifier) {
        Err(unchecked(
            "its name is templated, so it is known only when the task runs".into(),
            "run `tapir run --dry-run` to check it with the values of the run",
        ))
    } else if let Some(container_path) = container_file
        .map(Path::to_path_buf)
        .or_else(|| sibling_container(&report.path))
    {
        match source::read_text(&container_path).map(source::parse) {
            Ok(Ok((container, _))) => Ok((container_path, container)),
            _ => Err(unchecked(
                format!("{} could not be read as JSON", container_path.display()),
                "validate that file for its own findings",
            )),
        }
    } else {
        Err(unchecked(
            "no processing-container.json beside the task file (nor in files/, nor above a tasks/ folder), so only the image knows it".into(),
            "pass `--container-file PATH` to check the task against its template",
        ))
    };
    let (container_path, container) = match container {
        Ok(found) => found,
        Err(note) => {
            report.diagnostics.push(note);
            sort_by_position(&mut report.diagnostics);
            return;
        }
    };
    let templates = container
        .value
        .get("templates")
        .and_then(|t| t.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    // Like the reference, the first template with the identifier is the one used.
    let found = templates
        .iter()
        .position(|t| t.get("identifier").and_then(|i| i.as_str()) == Some(identifier));
    let new = match found {
        Some(index) => crate::checks::check_task_against_template(
            task,
            &container,
            &format!("/templates/{index}"),
        ),
        None => {
            let names: Vec<&str> = templates
                .iter()
                .filter_map(|t| t.get("identifier").and_then(|i| i.as_str()))
                .collect();
            let fix = match crate::diagnostic::did_you_mean(identifier, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if names.is_empty() => "the processing-container.json has no templates; add one, or give the template inline".to_string(),
                None => format!("use one of: {}", names.join(", ")),
            };
            vec![
                Diagnostic::error(
                    "unknown-template",
                    format!(
                        "{} has no template `{identifier}`",
                        container_path.display()
                    ),
                )
                .at_pointer("/taskTemplate")
                .at(task.value_position("/taskTemplate"))
                .with_fix(fix)
                .with_related_in(
                    "its templates",
                    Some(&container_path),
                    container.key_position("/templates"),
                ),
            ]
        }
    };
    report.diagnostics.extend(new);
    sort_by_position(&mut report.diagnostics);
}
