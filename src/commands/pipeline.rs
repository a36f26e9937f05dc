//! `tapir pipeline validate PIPELINE.json [--conf CONF.json]`: check a pipeline, every
//! task file it refers to and the conf file, report every problem at once, and print the
//! planned order and folders of a valid pipeline. `pipeline run` is in `pipeline_run.rs`.

use std::fmt::Write as _;

use serde_json::json;

use crate::cli::{
    ColorChoice, PipelineArgs, PipelineCommand, PipelineValidateArgs, ProfileArg, ValidateFormat,
};
use crate::diagnostic::{Diagnostic, Severity};
use crate::error::{ExitStatus, Result};
use crate::output::{self, Printer, plural};
use crate::pipeline::model::{Execution, RetryPolicy};
use crate::pipeline::plan::{
    self, Checked, FolderDirection, PipelinePlan, PlannedRunOptions, PlannedTask,
};

/// Version of the `--format json` output.
pub(crate) const JSON_FORMAT_VERSION: u32 = 1;

pub(crate) fn run(args: &PipelineArgs, color: ColorChoice) -> Result<ExitStatus> {
    match &args.command {
        PipelineCommand::Validate(args) => validate(args, color),
        PipelineCommand::Run(args) => super::pipeline_run::run(args, color),
        PipelineCommand::Export(args) => super::pipeline_export::export(args, color),
        PipelineCommand::Import(args) => super::pipeline_export::import(args, color),
    }
}

fn validate(args: &PipelineValidateArgs, color: ColorChoice) -> Result<ExitStatus> {
    // With `--param`, the parameters are checked as for a run.
    let checked = plan::check_with_params(
        &args.pipeline,
        args.conf.as_deref(),
        args.profile.map(ProfileArg::profile),
        (!args.param.is_empty()).then_some(args.param.as_slice()),
    )?;
    let text = match args.format {
        ValidateFormat::Human => human(&checked, Printer::for_stdout(color)),
        ValidateFormat::Json => json_report(&checked),
        ValidateFormat::Github => github(&checked),
    };
    output::stdout(&text);
    Ok(if checked.is_valid() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

pub(super) fn human(checked: &Checked, p: Printer) -> String {
    let mut out = human_findings(checked, &p);
    let pipeline = checked.pipeline.display();
    let (errors, warnings) = (
        checked.count(Severity::Error),
        checked.count(Severity::Warning),
    );
    if errors > 0 {
        let mut counts = plural(errors, "error");
        if warnings > 0 {
            let _ = write!(counts, ", {}", plural(warnings, "warning"));
        }
        let _ = writeln!(
            out,
            "{} {pipeline} (pipeline): {counts}; nothing would run",
            p.red("invalid")
        );
        return out;
    }
    let note = if warnings > 0 {
        format!(", {}", plural(warnings, "warning"))
    } else {
        String::new()
    };
    let _ = writeln!(out, "{} {pipeline} (pipeline{note})", p.green("valid"));
    if let Some(plan) = &checked.plan {
        human_plan(&mut out, plan, &p);
    }
    out
}

/// Every finding of every file, each with its excerpt.
pub(super) fn human_findings(checked: &Checked, p: &Printer) -> String {
    let mut out = String::new();
    for file in &checked.files {
        let name = file.path.display().to_string();
        let (shown, more) = crate::diagnostic::summarise(&file.diagnostics);
        for d in shown {
            out.push_str(&p.diagnostic(&name, file.source.as_ref(), d));
            out.push('\n');
        }
        for (code, count) in more {
            out.push_str(&format!(
                "{}\n\n",
                crate::diagnostic::more_findings(code, count)
            ));
        }
    }
    out
}

fn human_plan(out: &mut String, plan: &PipelinePlan, p: &Printer) {
    let _ = writeln!(
        out,
        "\n{} `{}`: {}, {}, profile {}",
        p.bold("plan"),
        plan.name,
        plural(plan.tasks.len(), "task"),
        plural(plan.levels.len(), "level"),
        plan.profile.label(),
    );
    for (i, level) in plan.levels.iter().enumerate() {
        let _ = writeln!(out, "  level {}: {}", i + 1, level.join(", "));
    }
    if let Some(archive) = &plan.archive {
        let include = if archive.include.is_empty() {
            "every output folder".to_string()
        } else {
            archive.include.join(", ")
        };
        let _ = writeln!(
            out,
            "  archive: {}/<pipeline run>/ ({include}, of the tasks that succeeded)",
            archive.path.display()
        );
    }
    for build in &plan.builds {
        let _ = writeln!(
            out,
            "  build {}: docker build {} (file {}) → {}, before any task",
            build.id,
            build.context.display(),
            build.dockerfile.display(),
            build.tag
        );
    }
    if plan.clean_succeeded {
        let _ = writeln!(
            out,
            "  clean_succeeded: the output folders are removed when every task succeeded"
        );
    }
    if let Some(key) = plan.sub_group_key.as_deref().filter(|k| !k.is_empty()) {
        let _ = writeln!(out, "  manifest.json sub_group_key: {key:?}");
    }
    if !plan.input_roles.is_empty() {
        // As the schema spells them; every other file is `science`.
        let roles = serde_json::to_string(&plan.input_roles).unwrap_or_default();
        let _ = writeln!(
            out,
            "  manifest.json input roles: {roles} (first match; others: science)"
        );
    }
    if !plan.environment.is_empty() {
        // Serialized masked: secrets show as ****.
        let environment = serde_json::to_string(&plan.environment).unwrap_or_default();
        let _ = writeln!(out, "  manifest.json environment: {environment}");
    }
    for task in &plan.tasks {
        human_task(out, task, p);
    }
    let _ = writeln!(
        out,
        "\n<run> is the pipeline run folder; tapir creates the folders under it."
    );
}

fn human_task(out: &mut String, task: &PlannedTask, p: &Printer) {
    let template_source = task
        .template_source
        .as_deref()
        .unwrap_or("the image's /processing-container.json");
    let _ = writeln!(
        out,
        "\n  {} (level {}): {}, image {}, template `{}` ({template_source})",
        p.bold(&task.id),
        task.level,
        task.task,
        task.image,
        task.template
    );
    if let Some(build) = &task.image_from {
        let _ = writeln!(out, "    image built by `{build}` (image_from)");
    }
    if !task.conf_overrides.is_empty() {
        let _ = writeln!(
            out,
            "    conf replaces the task's {}",
            task.conf_overrides.join(", ")
        );
    }
    for dep in &task.depends_on {
        let can_fail = if dep.can_fail {
            "; runs even if it fails"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    after {} ({}{can_fail})",
            dep.id,
            dep.via.join(", ")
        );
    }
    for folder in &task.folders {
        let (label, arrow) = match folder.direction {
            FolderDirection::Input => ("in ", "←"),
            FolderDirection::Output => ("out", "→"),
        };
        let path = if folder.managed {
            format!("<run>/{}", folder.path)
        } else {
            folder.path.clone()
        };
        let mut line = match (&folder.from, &folder.mounted_path) {
            (Some(from), _) => format!("    {label} {} {arrow} {from}: {path}", folder.channel),
            (None, Some(mounted)) => format!("    {label} {mounted} {arrow} {path}"),
            (None, None) => format!("    {label} {} {arrow} {path}", folder.channel),
        };
        if let Some(replaced) = &folder.replaces {
            let _ = write!(line, " (instead of the task file's {replaced})");
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(dir) = &task.workflow_output_dir {
        let _ = writeln!(out, "    env WORKFLOW_OUTPUT_DIR={dir} (tapir)");
    }
    if let Some(config) = &task.step_config {
        let _ = writeln!(out, "    manifest.json config: {config}");
    }
    for env in &task.env {
        match &env.from {
            Some(from) => {
                let _ = writeln!(
                    out,
                    "    env {}={} ({}: {from})",
                    env.name, env.value, env.source
                );
            }
            None => {
                let _ = writeln!(out, "    env {}={} ({})", env.name, env.value, env.source);
            }
        }
    }
    let _ = writeln!(out, "    {}", describe_execution(&task.execution));
    if let Some(options) = describe_run_options(&task.run_options) {
        let _ = writeln!(out, "    run options: {options}");
    }
    for bind in &task.run_options.binds {
        let _ = writeln!(
            out,
            "    bind {} ← {} ({}, {})",
            bind.bind.container_path,
            bind.bind.host_path.display(),
            if bind.bind.read_only { "ro" } else { "rw" },
            bind.source
        );
    }
}

/// The `run_options` that differ from `tapir run`'s defaults, as `run` flags (`None`:
/// all defaults). Binds are listed on their own lines.
fn describe_run_options(options: &PlannedRunOptions) -> Option<String> {
    let defaults = PlannedRunOptions::default();
    let mut parts: Vec<String> = Vec::new();
    if options.pull {
        parts.push("--pull".into());
    }
    if options.user != defaults.user {
        parts.push(format!("--user {}", options.user.label()));
    }
    if options.keep {
        parts.push("--keep".into());
    }
    if let Some(entrypoint) = &options.entrypoint {
        parts.push(format!("--entrypoint {entrypoint}"));
    }
    if let Some(network) = &options.network {
        parts.push(format!("--network {network}"));
    }
    if options.grace != defaults.grace {
        parts.push(format!("--grace {}", options.grace));
    }
    if let Some(bytes) = options.shm_size_bytes {
        parts.push(format!("--shm-size {bytes}"));
    }
    if let Some(gpus) = &options.gpus {
        parts.push(format!("--gpus {gpus}"));
    }
    for arg in &options.engine_args {
        parts.push(format!("--engine-arg {arg}"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn describe_execution(e: &Execution) -> String {
    let mut parts = vec![if e.max_retries == 0 {
        "no retries".to_string()
    } else {
        let waits = match e.retry_policy {
            RetryPolicy::Fixed => format!("each after {}s", e.retry_backoff_seconds),
            RetryPolicy::ExponentialBackoff => {
                format!("first after {}s, then doubling", e.retry_backoff_seconds)
            }
        };
        let cleaned = if e.clean_outputs_before_retry {
            ", outputs emptied first"
        } else {
            ""
        };
        format!(
            "up to {} ({waits}{cleaned})",
            plural(e.max_retries as usize, "retry")
        )
    }];
    parts.push(match e.max_exec_time {
        Some(s) => format!("{s}s per attempt"),
        None => "no time limit".to_string(),
    });
    if let Some(code) = e.skip_exit_code {
        parts.push(format!("exit {code} = skipped"));
    }
    parts.join("; ")
}

fn json_report(checked: &Checked) -> String {
    let files: Vec<_> = checked
        .files
        .iter()
        .map(|f| {
            json!({
                "file": f.path.display().to_string(),
                "valid": f.diagnostics.iter().all(|d| d.severity != Severity::Error),
                "findings": f.diagnostics.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let report = json!({
        "format_version": JSON_FORMAT_VERSION,
        "pipeline": checked.pipeline.display().to_string(),
        "valid": checked.is_valid(),
        "files": files,
        "summary": {
            "errors": checked.count(Severity::Error),
            "warnings": checked.count(Severity::Warning),
        },
        "plan": checked.plan,
    });
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
    text.push('\n');
    text
}

pub(super) fn github(checked: &Checked) -> String {
    let base = output::github_base();
    let mut out = String::new();
    for file in &checked.files {
        let name = output::github_path(&file.path, &base);
        let (shown, more) = crate::diagnostic::summarise(&file.diagnostics);
        for d in shown {
            out.push_str(&output::github_annotation(&name, d));
            out.push('\n');
        }
        for (code, count) in more {
            let d = Diagnostic::warning(code, crate::diagnostic::more_findings(code, count));
            out.push_str(&output::github_annotation(&name, &d));
            out.push('\n');
        }
    }
    out
}
