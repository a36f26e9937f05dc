//! `tapir pipeline export --to kaapana` and `tapir pipeline import --from kaapana`
//! (docs/DESIGN.md decision 17). Export: the pipeline is checked as `pipeline validate`
//! checks it, then the pure exporter (`pipeline::export::kaapana`) turns the plan into
//! files and findings, which are shown as `validate` shows its own; the files are written
//! into a temporary folder beside the output and renamed into place, so an export that
//! fails leaves nothing behind, and a finished one is whole.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::{ColorChoice, PipelineExportArgs, PipelineImportArgs, ValidateFormat};
use crate::diagnostic::{Diagnostic, Severity};
use crate::error::{Error, ExitStatus, Result};
use crate::output::{self, Printer, plural};
use crate::pipeline::export::kaapana::{self, ExportInput, MARKER_FILE};
use crate::pipeline::export::kaapana_import::{self, ImportOptions};
use crate::pipeline::model::{Conf, Pipeline, TaskRef};
use crate::pipeline::plan::{self, Checked};
use crate::source;

pub(crate) fn export(args: &PipelineExportArgs, color: ColorChoice) -> Result<ExitStatus> {
    let mut checked = plan::check(&args.pipeline, args.conf.as_deref(), None)?;
    if checked.is_valid()
        && let Some((findings, files)) = export_findings_and_files(args, &checked)?
    {
        if let Some(file) = checked.files.first_mut() {
            file.diagnostics.extend(findings);
            file.diagnostics
                .sort_by_key(|d| d.position.as_ref().map_or(0, |p| p.bytes.start));
        }
        if checked.is_valid() {
            write_export(&args.output, &files, args.force)?;
            report(args, &checked, Some(&files), color);
            return Ok(ExitStatus::Success);
        }
    }
    report(args, &checked, None, color);
    Ok(ExitStatus::Failed)
}

type Files = std::collections::BTreeMap<String, String>;

/// The exporter's findings and files for a valid pipeline (`None`: the pipeline file
/// changed under us and no longer reads).
fn export_findings_and_files(
    args: &PipelineExportArgs,
    checked: &Checked,
) -> Result<Option<(Vec<Diagnostic>, Files)>> {
    let bytes = std::fs::read(&args.pipeline).map_err(|e| Error::io(&args.pipeline, e))?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let Some(document) = read_document(&args.pipeline)? else {
        return Ok(None);
    };
    let Ok(pipeline) = crate::model::from_value::<Pipeline>(&document.value, "pipeline") else {
        return Ok(None);
    };
    // The chart holds the pipeline's own values; the conf's go to the trigger conf.
    let plain;
    let plan = match &args.conf {
        None => checked.plan.as_ref(),
        Some(_) => {
            plain = plan::check(&args.pipeline, None, None)?;
            plain.plan.as_ref()
        }
    };
    let Some(plan) = plan else {
        return Ok(None);
    };
    let conf: Option<Conf> = match &args.conf {
        None => None,
        Some(path) => match read_document(path)? {
            Some(doc) => crate::model::from_value(&doc.value, "conf file").ok(),
            None => None,
        },
    };
    let base = args
        .pipeline
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut findings = Vec::new();
    let mut raw_tasks = Vec::new();
    for (index, task) in pipeline.tasks.iter().enumerate() {
        let raw = match &task.task {
            TaskRef::Inline(value) => value.clone(),
            TaskRef::File(relative) => match read_document(&base.join(relative))? {
                Some(doc) => doc.value,
                None => {
                    // Templating around the JSON (decision 4): only rendering makes it JSON.
                    let pointer = format!("/tasks/{index}/task");
                    findings.push(
                        Diagnostic::error(
                            "export-unrendered-template",
                            format!("task file {relative} is a template as a whole: the export does not render `{{{{ env.NAME }}}}`"),
                        )
                        .at_pointer(pointer.clone())
                        .at(document.value_position(&pointer))
                        .with_fix("write the values themselves into the task file before exporting"),
                    );
                    Value::Null
                }
            },
        };
        raw_tasks.push(raw);
    }
    let source_name = args.pipeline.file_name().map_or_else(
        || "pipeline.json".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let input = ExportInput {
        pipeline: &pipeline,
        document: &document,
        plan,
        conf: conf.as_ref(),
        source_name,
        sha256,
        raw_tasks,
    };
    let export = kaapana::export(&input);
    findings.extend(export.findings);
    Ok(Some((findings, export.files)))
}

fn read_document(path: &Path) -> Result<Option<source::Document>> {
    let source = match source::read_text(path) {
        Ok(source) => source,
        Err(source::LoadFailure::Io(e)) => return Err(e),
        Err(source::LoadFailure::Content(_)) => return Ok(None),
    };
    Ok(source::parse(source).ok().map(|(document, _)| document))
}

fn report(args: &PipelineExportArgs, checked: &Checked, files: Option<&Files>, color: ColorChoice) {
    let text = match args.format {
        ValidateFormat::Human => {
            let p = Printer::for_stdout(color);
            let mut out = super::pipeline::human_findings(checked, &p);
            let pipeline = checked.pipeline.display();
            let (errors, warnings) = (
                checked.count(Severity::Error),
                checked.count(Severity::Warning),
            );
            match files {
                None => {
                    let mut counts = plural(errors, "error");
                    if warnings > 0 {
                        let _ = write!(counts, ", {}", plural(warnings, "warning"));
                    }
                    let _ = writeln!(
                        out,
                        "{} {pipeline}: {counts}; nothing was written",
                        p.red("cannot export")
                    );
                }
                Some(files) => {
                    let note = if warnings > 0 {
                        format!(" ({})", plural(warnings, "warning"))
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        out,
                        "{} {pipeline} to {} as a Kaapana workflow{note}: {}",
                        p.green("exported"),
                        args.output.display(),
                        plural(files.len(), "file")
                    );
                    for name in files.keys() {
                        let _ = writeln!(out, "  {name}");
                    }
                }
            }
            out
        }
        ValidateFormat::Github => super::pipeline::github(checked),
        ValidateFormat::Json => {
            let report = json!({
                "format_version": super::pipeline::JSON_FORMAT_VERSION,
                "pipeline": checked.pipeline.display().to_string(),
                "to": "kaapana",
                "exported": files.is_some(),
                "output": args.output.display().to_string(),
                "written": files.map(|f| f.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
                "files": checked.files.iter().map(|f| json!({
                    "file": f.path.display().to_string(),
                    "findings": f.diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "summary": {
                    "errors": checked.count(Severity::Error),
                    "warnings": checked.count(Severity::Warning),
                },
            });
            let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
            text.push('\n');
            text
        }
    };
    output::stdout(&text);
}

/// Whether `dir` holds an earlier export of tapir: its marker file names tapir.
fn is_earlier_export(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(MARKER_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| {
            v.get("generated_by")
                .and_then(Value::as_str)
                .map(|s| s.starts_with("tapir "))
        })
        .unwrap_or(false)
}

/// Writes `files` under `output` as a whole: into a new folder beside it, then renamed
/// into place (the earlier folder, if any, moved aside first and removed last).
fn write_export(output: &Path, files: &Files, force: bool) -> Result<()> {
    let meta = std::fs::symlink_metadata(output);
    let replaces = match &meta {
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!(
                "{} exists and is not a folder\n  fix: choose another -o folder",
                output.display()
            )));
        }
        Ok(_) => {
            let empty = std::fs::read_dir(output)
                .map_err(|e| Error::io(output, e))?
                .next()
                .is_none();
            if !empty && !force && !is_earlier_export(output) {
                return Err(Error::Usage(format!(
                    "{} is not empty and holds no earlier export (no {MARKER_FILE})\n  fix: choose another -o folder, or pass --force to replace everything in it",
                    output.display()
                )));
            }
            true
        }
        Err(_) => false,
    };
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".tapir-export-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    for (name, text) in files {
        let path = staging.path().join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| Error::io(folder, e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    // The trigger conf holds a run's user input: readable by its owner only.
    let conf = staging.path().join("trigger-conf.json");
    if conf.exists() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&conf, e))?;
    }
    // tempdir makes its folder 0700; an export is for sharing, as `mkdir` would make it.
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(staging.path(), e))?;
    }
    let staged = staging.keep();
    let aside = if replaces {
        let aside = tempfile::Builder::new()
            .prefix(".tapir-export-old-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?
            .keep();
        let old = aside.join("old");
        std::fs::rename(output, &old).map_err(|e| Error::io(output, e))?;
        Some((aside, old))
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&staged, output) {
        // Put the earlier folder back; the new one stays out of the way.
        if let Some((_, old)) = &aside {
            let _ = std::fs::rename(old, output);
        }
        let _ = std::fs::remove_dir_all(&staged);
        return Err(Error::io(output, e));
    }
    if let Some((aside, _)) = aside {
        let _ = std::fs::remove_dir_all(&aside);
    }
    Ok(())
}

pub(crate) fn import(args: &PipelineImportArgs, color: ColorChoice) -> Result<ExitStatus> {
    let source = match source::read_text(&args.dag) {
        Ok(source) => source,
        Err(source::LoadFailure::Io(e)) => return Err(e),
        Err(source::LoadFailure::Content(d)) => {
            let p = Printer::for_stderr(color);
            output::stderr(&p.diagnostic(&args.dag.display().to_string(), None, &d));
            return Ok(ExitStatus::Failed);
        }
    };
    // --name, else the pipeline an exported DAG's header names, else the file's name.
    let fallback_name = args
        .name
        .clone()
        .or_else(|| kaapana_import::exported_name(&source.text))
        .unwrap_or_else(|| {
            args.dag.file_stem().map_or_else(
                || "imported".to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        });
    let options = ImportOptions {
        registry: args.registry.clone(),
        build_version: args.build_version.clone(),
        fallback_name,
    };
    let name = args.dag.display().to_string();
    let p = Printer::for_stderr(color);
    match kaapana_import::import(&source, &options) {
        Err(errors) => {
            let mut out = String::new();
            for d in &errors {
                out.push_str(&p.diagnostic(&name, Some(&source), d));
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "{} {name}: {}; nothing was written",
                p.red("cannot import"),
                plural(errors.len(), "error")
            );
            output::stderr(&out);
            Ok(ExitStatus::Failed)
        }
        Ok((pipeline, warnings)) => {
            let mut out = String::new();
            for d in &warnings {
                out.push_str(&p.diagnostic(&name, Some(&source), d));
                out.push('\n');
            }
            let mut text = serde_json::to_string_pretty(&pipeline).unwrap_or_default();
            text.push('\n');
            match &args.output {
                None => output::stdout(&text),
                Some(path) => {
                    if path.exists() && !args.force {
                        return Err(Error::Usage(format!(
                            "{} exists\n  fix: choose another -o file, or pass --force to replace it",
                            path.display()
                        )));
                    }
                    std::fs::write(path, &text).map_err(|e| Error::io(path, e))?;
                    let tasks = pipeline["tasks"].as_array().map_or(0, Vec::len);
                    let _ = writeln!(
                        out,
                        "{} {name} as {} ({}); check it with `tapir pipeline validate {}`",
                        p.green("imported"),
                        path.display(),
                        plural(tasks, "task"),
                        path.display()
                    );
                }
            }
            output::stderr(&out);
            Ok(ExitStatus::Success)
        }
    }
}
