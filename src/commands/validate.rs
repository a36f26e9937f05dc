//! `tapir validate FILE|DIR...`: check Task API files and report every problem at once.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::backend::image_check::{self, ImageCheck};
use crate::cli::{ColorChoice, KindArg, ValidateArgs, ValidateFormat};
use crate::diagnostic::{Diagnostic, Severity};
use crate::error::{Error, ExitStatus, Result};
use crate::output::{self, Printer, plural};
use crate::pipeline::plan::Checked;
use crate::schema::Kind;
use crate::validation::{FileReport, KindRule, check_file};

/// Folders never searched: build output, VCS data, JavaScript dependencies.
const SKIPPED_DIRS: &[&str] = &["target", ".git", "node_modules"];

/// Version of the `--format json` output (README, "JSON output").
pub(crate) const JSON_FORMAT_VERSION: u32 = 1;

/// One input after folders are expanded.
struct Input {
    path: PathBuf,
    /// Found by searching a folder (rather than named by the user): files that turn out
    /// to be neither kind are skipped instead of reported.
    found_in_folder: bool,
}

enum Outcome {
    Checked(Box<FileReport>),
    /// A pipeline file (`{"tasks": [...]}`), checked as `tapir pipeline validate` checks
    /// it: with the task files and processing-container.json files it uses.
    Pipeline(Box<Checked>),
    Unreadable(Error),
    /// An image (`--image`): its embedded file and the image itself.
    Image(Box<ImageCheck>),
    Skipped,
    /// A folder given on the command line that holds no Task API file (exit 2): a
    /// wrong path must not pass as "nothing to complain about".
    NothingFound(PathBuf),
}

pub(crate) fn run(args: &ValidateArgs, color: ColorChoice) -> Result<ExitStatus> {
    let rule = match args.schema {
        Some(KindArg::Pc) => KindRule::Forced(Kind::ProcessingContainer),
        Some(KindArg::Task) => KindRule::Forced(Kind::Task),
        None => KindRule::Detect,
    };
    let (inputs, walk_errors) = expand(&args.paths, rule);
    let mut outcomes = check_all(&inputs, rule, args.skip_unknown);
    for outcome in &mut outcomes {
        if let Outcome::Checked(report) = outcome {
            crate::validation::check_against_sibling(report, args.container_file.as_deref());
            if args.strict {
                report.promote_warnings();
            }
        }
    }
    let empty_folders = folders_without_task_api_files(&args.paths, &inputs, &outcomes);
    outcomes.extend(walk_errors.into_iter().map(Outcome::Unreadable));
    outcomes.extend(empty_folders.into_iter().map(Outcome::NothingFound));
    outcomes.extend(check_images(&args.images, args.strict)?);

    let printer = Printer::for_stdout(color);
    let text = match args.format {
        ValidateFormat::Human => human(&outcomes, printer, args.quiet),
        ValidateFormat::Json => json_report(&outcomes),
        ValidateFormat::Github => github(&outcomes, &output::github_base()),
    };
    output::stdout(&text);
    for outcome in &outcomes {
        let printer = Printer::for_stderr(color);
        match (outcome, args.format) {
            (Outcome::Unreadable(e), ValidateFormat::Human) => {
                output::stderr(&format!("{}: cannot read {e}\n", printer.red("error")));
            }
            (Outcome::NothingFound(folder), ValidateFormat::Human) => {
                output::stderr(&format!(
                    "{}: {}\n  fix: check the path; Task API files are named processing-container.json or *task.json, or hold `templates` / `taskTemplate`\n",
                    printer.red("error"),
                    nothing_found(folder)
                ));
            }
            _ => {}
        }
    }
    Ok(exit_status(&outcomes))
}

/// `--image`: each image checked on the local engine (an engine that fails or does not
/// answer in time ends the command with 125, as for `inspect`).
fn check_images(images: &[String], strict: bool) -> Result<Vec<Outcome>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let mut docker = None;
    let mut outcomes = Vec::new();
    for image in images {
        if image.starts_with(crate::backend::registry::REMOTE_PREFIX) {
            let mut checked = image_check::check_remote(image)?;
            if strict {
                checked.promote_warnings();
            }
            outcomes.push(Outcome::Image(Box::new(checked)));
            continue;
        }
        if docker.is_none() {
            docker = Some(crate::backend::docker::Docker::locate()?);
        }
        let Some(docker) = docker.as_ref() else {
            continue;
        };
        outcomes.push(match image_check::check_local(docker, image)? {
            Some(mut checked) => {
                if strict {
                    checked.promote_warnings();
                }
                Outcome::Image(Box::new(checked))
            }
            None => Outcome::Unreadable(Error::io_with_hint(
                image,
                std::io::Error::new(std::io::ErrorKind::NotFound, "image not present locally"),
                format!("build it, or `docker pull {image}` first (the check never pulls)"),
            )),
        });
    }
    Ok(outcomes)
}

fn image_is_valid(check: &ImageCheck) -> bool {
    check.all_findings().all(|d| d.severity != Severity::Error)
}

fn nothing_found(folder: &Path) -> String {
    format!(
        "no processing-container.json or task.json files found under {}",
        display(folder)
    )
}

/// The folders among `paths` none of whose files turned out to be a Task API file.
fn folders_without_task_api_files(
    paths: &[PathBuf],
    inputs: &[Input],
    outcomes: &[Outcome],
) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|folder| folder.is_dir())
        .filter(|folder| {
            !inputs.iter().zip(outcomes).any(|(input, outcome)| {
                input.path.starts_with(folder) && !matches!(outcome, Outcome::Skipped)
            })
        })
        .cloned()
        .collect()
}

fn exit_status(outcomes: &[Outcome]) -> ExitStatus {
    if outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Unreadable(_) | Outcome::NothingFound(_)))
    {
        ExitStatus::Usage
    } else if outcomes.iter().any(|o| match o {
        Outcome::Checked(r) => !r.is_valid(),
        Outcome::Pipeline(c) => !c.is_valid(),
        Outcome::Image(c) => !image_is_valid(c),
        _ => false,
    }) {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    }
}

/// Files as given, and folders searched recursively for `*.json`.
fn expand(paths: &[PathBuf], rule: KindRule) -> (Vec<Input>, Vec<Error>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if !path.is_dir() {
            inputs.push(Input {
                path: path.clone(),
                found_in_folder: false,
            });
            continue;
        }
        let walker = walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir()
                    && e.depth() > 0
                    && SKIPPED_DIRS.iter().any(|s| e.file_name() == *s))
            });
        for entry in walker {
            match entry {
                Ok(entry) if entry.file_type().is_file() && is_json(entry.path()) => {
                    // With `--schema`, every JSON file in the folder is of that kind.
                    let found_in_folder = matches!(rule, KindRule::Detect);
                    inputs.push(Input {
                        path: entry.into_path(),
                        found_in_folder,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    let at = e.path().unwrap_or(path).to_path_buf();
                    errors.push(Error::io(
                        at,
                        e.into_io_error()
                            .unwrap_or_else(|| std::io::Error::other("folder loop")),
                    ));
                }
            }
        }
    }
    (inputs, errors)
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Checks every input, on all cores when there are many, keeping their order.
/// `skip_unknown`: files named on the command line that are neither kind are skipped too.
fn check_all(inputs: &[Input], rule: KindRule, skip_unknown: bool) -> Vec<Outcome> {
    let check = |input: &Input| match check_file(&input.path, rule) {
        Err(e) => Outcome::Unreadable(e),
        Ok(report) if report.kind.is_none() && is_pipeline(&report) => {
            match crate::pipeline::plan::check(&input.path, None, None) {
                Ok(checked) => Outcome::Pipeline(Box::new(checked)),
                Err(e) => Outcome::Unreadable(e),
            }
        }
        Ok(report) if (input.found_in_folder || skip_unknown) && report.kind.is_none() => {
            Outcome::Skipped
        }
        Ok(report) => Outcome::Checked(Box::new(report)),
    };
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    if inputs.len() < 16 || workers == 1 {
        return inputs.iter().map(check).collect();
    }
    let chunk = inputs.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A file of neither Task API kind that holds a pipeline's `tasks` list.
fn is_pipeline(report: &FileReport) -> bool {
    report.document.as_ref().is_some_and(|d| {
        d.value
            .get("tasks")
            .is_some_and(serde_json::Value::is_array)
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

struct Totals {
    checked: usize,
    valid: usize,
    errors: usize,
    warnings: usize,
    skipped: usize,
    unreadable: usize,
}

fn totals(outcomes: &[Outcome]) -> Totals {
    let mut t = Totals {
        checked: 0,
        valid: 0,
        errors: 0,
        warnings: 0,
        skipped: 0,
        unreadable: 0,
    };
    for outcome in outcomes {
        match outcome {
            Outcome::Checked(r) => {
                t.checked += 1;
                t.valid += usize::from(r.is_valid());
                t.errors += r.count(Severity::Error);
                t.warnings += r.count(Severity::Warning);
            }
            Outcome::Pipeline(c) => {
                t.checked += 1;
                t.valid += usize::from(c.is_valid());
                t.errors += c.count(Severity::Error);
                t.warnings += c.count(Severity::Warning);
            }
            Outcome::Image(c) => {
                t.checked += 1;
                t.valid += usize::from(image_is_valid(c));
                t.errors += c
                    .all_findings()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                t.warnings += c
                    .all_findings()
                    .filter(|d| d.severity == Severity::Warning)
                    .count();
            }
            Outcome::Skipped => t.skipped += 1,
            Outcome::Unreadable(_) => t.unreadable += 1,
            Outcome::NothingFound(_) => {}
        }
    }
    t
}

fn human(outcomes: &[Outcome], p: Printer, quiet: bool) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        if let Outcome::Pipeline(checked) = outcome {
            out.push_str(&super::pipeline::human_findings(checked, &p));
            let file = display(&checked.pipeline);
            let (errors, warnings) = (
                checked.count(Severity::Error),
                checked.count(Severity::Warning),
            );
            if errors > 0 {
                out.push_str(&format!(
                    "{} {file} (pipeline): {}\n",
                    p.red("invalid"),
                    counts(errors, warnings)
                ));
            } else if !quiet || warnings > 0 {
                out.push_str(&format!(
                    "{} {file} (pipeline{})\n",
                    p.green("valid"),
                    warning_note(warnings)
                ));
            }
            continue;
        }
        if let Outcome::Image(check) = outcome {
            out.push_str(&human_image(check, &p, quiet));
            continue;
        }
        let Outcome::Checked(report) = outcome else {
            continue;
        };
        let file = display(&report.path);
        let (shown, more) = crate::diagnostic::summarise(&report.diagnostics);
        for d in shown {
            if quiet && d.severity == Severity::Note {
                continue; // not a problem
            }
            out.push_str(&p.diagnostic(&file, report.source(), d));
            out.push('\n');
        }
        for (code, count) in more {
            out.push_str(&format!(
                "{}\n\n",
                crate::diagnostic::more_findings(code, count)
            ));
        }
        let kind = report.kind.map_or("unknown kind", Kind::label);
        let (errors, warnings) = (
            report.count(Severity::Error),
            report.count(Severity::Warning),
        );
        if errors > 0 {
            out.push_str(&format!(
                "{} {file} ({kind}): {}\n",
                p.red("invalid"),
                counts(errors, warnings)
            ));
        } else if !quiet || warnings > 0 {
            out.push_str(&format!(
                "{} {file} ({kind}{})\n",
                p.green("valid"),
                warning_note(warnings)
            ));
        }
    }
    let t = totals(outcomes);
    if t.checked + t.unreadable > 1 || t.skipped > 0 {
        let mut line = format!(
            "\nchecked {}: {} valid, {} invalid",
            plural(t.checked, "file"),
            t.valid,
            t.checked - t.valid
        );
        if t.errors + t.warnings > 0 {
            line.push_str(&format!(
                " ({}, {})",
                plural(t.errors, "error"),
                plural(t.warnings, "warning")
            ));
        }
        if t.unreadable > 0 {
            line.push_str(&format!("; {} could not be read", t.unreadable));
        }
        if t.skipped > 0 {
            line.push_str(&format!(
                "; skipped {} that {} neither kind",
                plural(t.skipped, "other JSON file"),
                if t.skipped == 1 { "is" } else { "are" }
            ));
        }
        out.push_str(&line);
        out.push('\n');
    }
    if t.checked == 0
        && t.unreadable == 0
        && !outcomes
            .iter()
            .any(|o| matches!(o, Outcome::NothingFound(_)))
    {
        out.push_str("no processing-container.json or task.json files found\n");
    }
    out
}

/// One image's findings (the embedded file's with snippets), the LABEL lines to add,
/// and its verdict line.
fn human_image(check: &ImageCheck, p: &Printer, quiet: bool) -> String {
    let mut out = String::new();
    if let Some(report) = &check.embedded {
        let name = image_check::embedded_name(&check.reference);
        for d in &report.diagnostics {
            if quiet && d.severity == Severity::Note {
                continue;
            }
            out.push_str(&p.diagnostic(&name, report.source(), d));
            out.push('\n');
        }
    }
    for d in &check.findings {
        out.push_str(&p.diagnostic(&check.reference, None, d));
        out.push('\n');
    }
    if !check.label_lines.is_empty() {
        out.push_str("the catalogue labels to add to the Dockerfile (fill in the <…>):\n");
        for line in &check.label_lines {
            out.push_str(&format!("    {line}\n"));
        }
        out.push('\n');
    }
    let errors = check
        .all_findings()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = check
        .all_findings()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    if errors > 0 {
        out.push_str(&format!(
            "{} {} (image): {}\n",
            p.red("invalid"),
            check.reference,
            counts(errors, warnings)
        ));
    } else if !quiet || warnings > 0 {
        out.push_str(&format!(
            "{} {} (image{})\n",
            p.green("valid"),
            check.reference,
            warning_note(warnings)
        ));
    }
    out
}

/// "2 errors, 1 warning" / "2 errors".
fn counts(errors: usize, warnings: usize) -> String {
    if warnings > 0 {
        format!(
            "{}, {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    } else {
        plural(errors, "error")
    }
}

/// ", 1 warning" / "".
fn warning_note(warnings: usize) -> String {
    if warnings > 0 {
        format!(", {}", plural(warnings, "warning"))
    } else {
        String::new()
    }
}

fn json_report(outcomes: &[Outcome]) -> String {
    let mut files = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Checked(report) => {
                let findings: Vec<_> = report.diagnostics.iter().map(Diagnostic::to_json).collect();
                files.push(json!({
                    "file": display(&report.path),
                    "kind": report.kind,
                    "valid": report.is_valid(),
                    "findings": findings,
                }));
            }
            Outcome::Pipeline(checked) => {
                // The pipeline file first, then each file it uses that has findings.
                for (i, file) in checked.files.iter().enumerate() {
                    files.push(json!({
                        "file": display(&file.path),
                        "kind": if i == 0 { Some("pipeline") } else { None },
                        "valid": file.diagnostics.iter().all(|d| d.severity != Severity::Error),
                        "findings": file.diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
                    }));
                }
            }
            Outcome::Image(check) => {
                files.push(json!({
                    "file": check.reference,
                    "kind": "image",
                    "image_id": check.info.id,
                    "valid": image_is_valid(check),
                    "findings": check.findings.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
                    "label_lines": check.label_lines,
                }));
                if let Some(report) = &check.embedded {
                    files.push(json!({
                        "file": image_check::embedded_name(&check.reference),
                        "kind": report.kind,
                        "valid": report.is_valid(),
                        "findings": report.diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
                    }));
                }
            }
            Outcome::Unreadable(e) => {
                let file = match e {
                    Error::Io { path, .. } => display(path),
                    _ => String::new(),
                };
                files.push(json!({"file": file, "kind": null, "valid": false, "error": e.to_string(), "findings": []}));
            }
            Outcome::NothingFound(folder) => {
                files.push(json!({"file": display(folder), "kind": null, "valid": false, "error": nothing_found(folder), "findings": []}));
            }
            Outcome::Skipped => {}
        }
    }
    let t = totals(outcomes);
    let report = json!({
        "format_version": JSON_FORMAT_VERSION,
        "files": files,
        "summary": {
            "files": t.checked,
            "valid": t.valid,
            "invalid": t.checked - t.valid,
            "unreadable": t.unreadable,
            "skipped": t.skipped,
            "errors": t.errors,
            "warnings": t.warnings,
        },
    });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}

fn github(outcomes: &[Outcome], base: &Path) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Checked(report) => {
                let file = output::github_path(&report.path, base);
                let (shown, more) = crate::diagnostic::summarise(&report.diagnostics);
                for d in shown {
                    out.push_str(&output::github_annotation(&file, d));
                    out.push('\n');
                }
                for (code, count) in more {
                    let d =
                        Diagnostic::warning(code, crate::diagnostic::more_findings(code, count));
                    out.push_str(&output::github_annotation(&file, &d));
                    out.push('\n');
                }
            }
            Outcome::Pipeline(checked) => {
                out.push_str(&super::pipeline::github(checked));
            }
            Outcome::Image(check) => {
                let name = image_check::embedded_name(&check.reference);
                let embedded = check.embedded.iter().flat_map(|r| &r.diagnostics);
                for (file, d) in embedded
                    .map(|d| (name.as_str(), d))
                    .chain(check.findings.iter().map(|d| (check.reference.as_str(), d)))
                {
                    out.push_str(&output::github_annotation(file, d));
                    out.push('\n');
                }
            }
            Outcome::Unreadable(e) => {
                let d = crate::diagnostic::Diagnostic::error("io", format!("cannot read {e}"));
                let file = match e {
                    Error::Io { path, .. } => output::github_path(path, base),
                    _ => String::new(),
                };
                out.push_str(&output::github_annotation(&file, &d));
                out.push('\n');
            }
            Outcome::NothingFound(folder) => {
                let d = Diagnostic::error("nothing-found", nothing_found(folder));
                out.push_str(&output::github_annotation(
                    &output::github_path(folder, base),
                    &d,
                ));
                out.push('\n');
            }
            Outcome::Skipped => {}
        }
    }
    out
}
