//! `tapir show RUN [TASK]`: a run's record for people (or as JSON): a task run's, a
//! pipeline run's (task by task), or the latest task run of one task of a pipeline run.

use serde_json::Value;

use crate::cli::{ColorChoice, PlanFormat, RunViewArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::model::quantity::format_bytes;
use crate::output::{self, Printer};
use crate::pipeline::record::PipelineRunRecord;
use crate::record::{RunRecord, store};
use crate::resolve::plan::PlannedUser;

use super::pipeline_runs;
use super::plan_view::{command_line, plan_rows};
use super::ps::{format_duration, local_time};
use super::{Located, locate};

pub(crate) fn run(args: &RunViewArgs, color: ColorChoice) -> Result<ExitStatus> {
    let run_dir = match locate(&args.runs.runs_dir, &args.run)? {
        Located::Task(dir) if args.task.is_some() => {
            return Err(pipeline_runs::not_a_pipeline(&dir));
        }
        Located::Task(dir) => dir,
        Located::Pipeline(dir) => match &args.task {
            None => return show_pipeline(&dir, args.format, color),
            Some(task_id) => pipeline_runs::latest_task_run(
                &dir,
                task_id,
                "show",
                &args.run,
                "shows the pipeline run",
            )?,
        },
    };
    // A Slurm job that ended without its record is settled first (one `squeue`).
    crate::executor::slurm::job::look(std::slice::from_ref(&run_dir));
    // A Kubernetes run nobody follows is asked about (one `kubectl get`).
    super::k8s_submit::look(&run_dir);
    let record = RunRecord::load(&run_dir).map_err(|e| Error::Record(e.to_string()))?;
    if args.format == PlanFormat::Json {
        // The record as written, plus what only a reader can know.
        let mut value = store::read_record(&run_dir).map_err(|e| Error::Record(e.to_string()))?;
        value["observed_status"] = Value::from(record.summary().status_label());
        value["dir"] = Value::from(run_dir.display().to_string());
        output::stdout_json(&value);
        return Ok(ExitStatus::Success);
    }
    output::stdout(&render(&record, &run_dir, Printer::for_stdout(color)));
    Ok(ExitStatus::Success)
}

fn render(r: &RunRecord, run_dir: &std::path::Path, p: Printer) -> String {
    let mut out = String::new();
    let mut row = |label: &str, text: String| {
        out.push_str(&format!("{} {text}\n", p.bold(&format!("{label:<10}"))));
    };
    row("run", format!("{} ({})", r.id, run_dir.display()));
    let summary = r.summary();
    let status = summary.status_label();
    let status_text = output::status_with_message(
        status,
        &r.exit_code
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default(),
        r.message.as_deref(),
    );
    row(
        "status",
        match status {
            "succeeded" => p.green(&status_text),
            "running" => status_text,
            _ => p.red(&status_text),
        },
    );
    row(
        "task",
        format!(
            "{} ({}{})",
            r.task_name.as_deref().unwrap_or("-"),
            r.task_file.path,
            r.task_file
                .sha256
                .as_ref()
                .map(|h| format!(", sha256 {}", h.get(..12).unwrap_or(h)))
                .unwrap_or_default()
        ),
    );
    if let Some(plan) = &r.plan {
        row(
            "template",
            format!("{} (from {})", plan.template, plan.template_source),
        );
    }
    if let Some(image) = &r.image {
        row("image", format!("{} ({})", image.reference, image.id));
        for digest in &image.repo_digests {
            row("", format!("digest {digest}"));
        }
    }
    if let Some(executor) = &r.executor {
        let mut text = executor.kind.clone();
        if let Some(job) = &executor.job_id {
            text.push_str(&format!(" job {job}"));
        }
        if let Some(node) = &executor.node {
            text.push_str(&format!(" on {node}"));
        }
        let place: Vec<String> = [
            ("partition", &executor.partition),
            ("account", &executor.account),
            ("qos", &executor.qos),
            ("state", &executor.state),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} {v}")))
        .collect();
        if !place.is_empty() {
            text.push_str(&format!(" ({})", place.join(", ")));
        }
        row("executor", text);
        if let Some(output) = &executor.output {
            row("", format!("job output {output}"));
        }
    }
    row(
        "mode",
        if r.mode.is_empty() {
            "-".into()
        } else {
            r.mode.clone()
        },
    );
    if let Some(plan) = &r.plan {
        row(
            "user",
            match plan.user {
                PlannedUser::Invoker { uid, gid } => format!("{uid}:{gid} (the invoking user)"),
                PlannedUser::Image => "the image's user".into(),
            },
        );
        for (label, text) in plan_rows(plan) {
            row(label, text);
        }
    }
    if !r.argv.is_empty() {
        row("argv", command_line(&r.argv));
    }
    row("created", local_time(r.created_at));
    if let Some(t) = r.started_at {
        row("started", local_time(t));
    }
    if let Some(t) = r.ended_at {
        row(
            "ended",
            format!(
                "{} (ran {})",
                local_time(t),
                summary
                    .duration_seconds()
                    .map_or_else(|| "?".to_string(), format_duration)
            ),
        );
    }
    for (i, o) in r.outputs.iter().enumerate() {
        row(
            if i == 0 { "outputs" } else { "" },
            format!(
                "{}: {}, {} in {}",
                o.channel,
                output::plural(o.files.len(), "file"),
                format_bytes(o.total_bytes),
                o.host_path
            ),
        );
    }
    for (i, w) in r.warnings.iter().enumerate() {
        row(if i == 0 { "warnings" } else { "" }, w.clone());
    }
    out
}

/// A pipeline run's record: as written (`--format json`, plus `observed_status` and
/// `dir`), or for people: the pipeline, then every task with its attempts.
fn show_pipeline(
    dir: &std::path::Path,
    format: PlanFormat,
    color: ColorChoice,
) -> Result<ExitStatus> {
    let record = pipeline_runs::load(dir)?;
    if format == PlanFormat::Json {
        let mut value = crate::pipeline::record::PipelineRunRecord::read_value(dir)
            .map_err(|e| Error::Record(e.to_string()))?;
        value["observed_status"] = Value::from(pipeline_runs::status_label(&record));
        value["dir"] = Value::from(dir.display().to_string());
        output::stdout_json(&value);
        return Ok(ExitStatus::Success);
    }
    output::stdout(&render_pipeline(&record, dir, Printer::for_stdout(color)));
    Ok(ExitStatus::Success)
}

/// A message of several lines (an error with its fix, as a refused attempt has) indented
/// to stay under its row's text instead of starting at the left edge.
fn under_the_row(text: &str) -> String {
    text.replace('\n', "\n             ")
}

fn render_pipeline(r: &PipelineRunRecord, dir: &std::path::Path, p: Printer) -> String {
    let mut out = String::new();
    let mut row = |label: &str, text: String| {
        out.push_str(&format!("{} {text}\n", p.bold(&format!("{label:<10}"))));
    };
    let colored = |status: &str, text: String| match status {
        "succeeded" => p.green(&text),
        "running" | "pending" => text,
        _ => p.red(&text),
    };
    row("run", format!("{} ({})", r.id, dir.display()));
    let status = pipeline_runs::status_label(r);
    row(
        "status",
        colored(
            status,
            output::status_with_message(
                status,
                &r.exit_code
                    .map(|c| format!(", exit code {c}"))
                    .unwrap_or_default(),
                r.message.as_deref(),
            ),
        ),
    );
    let file = |f: &crate::record::TaskFile| {
        format!(
            "{}{}",
            f.path,
            f.sha256
                .as_ref()
                .map(|h| format!(", sha256 {}", h.get(..12).unwrap_or(h)))
                .unwrap_or_default()
        )
    };
    row(
        "pipeline",
        format!("{} ({})", r.name, file(&r.pipeline_file)),
    );
    if let Some(conf) = &r.conf_file {
        row("conf", file(conf));
    }
    row(
        "mode",
        format!(
            "{}, profile {}, up to {} at a time",
            if r.mode.is_empty() { "-" } else { &r.mode },
            serde_json::to_value(r.profile)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            output::plural(r.jobs, "task")
        ),
    );
    if r.status == crate::pipeline::record::PipelineStatus::Running
        && let Some(pid) = r.pid
    {
        row(
            "pid",
            format!("{pid} on {}", r.host.as_deref().unwrap_or("this machine")),
        );
    }
    row("created", local_time(r.created_at));
    for t in &r.resumed_at {
        row("resumed", local_time(*t));
    }
    if let Some(t) = r.ended_at {
        row(
            "ended",
            format!(
                "{} (ran {})",
                local_time(t),
                pipeline_runs::duration_seconds(r).map_or_else(|| "?".to_string(), format_duration)
            ),
        );
    }
    // Tapis-style image builds, run before the tasks (src/pipeline/build.rs).
    for build in &r.builds {
        let mut text = format!("{} → {}: {}", build.id, build.tag, build.status);
        if let Some(message) = &build.message {
            text.push_str(&format!(" — {message}"));
        }
        if let Some(dir) = &build.run_dir {
            text.push_str(&format!(" ({dir})"));
        }
        row("build", colored(&build.status, under_the_row(&text)));
    }
    row("tasks", pipeline_runs::ok_count(r));
    for task in &r.tasks {
        let status = task.status.as_str();
        row(
            "task",
            colored(
                status,
                under_the_row(&format!(
                    "{}: {}",
                    task.id,
                    output::status_with_message(
                        status,
                        &format!(" (level {})", task.level),
                        task.message.as_deref(),
                    )
                )),
            ),
        );
        if !task.source_task.is_empty() {
            row("", format!("  from {}", task.source_task));
        }
        row(
            "",
            format!(
                "  depends on: {}",
                if task.depends_on.is_empty() {
                    "-".to_string()
                } else {
                    task.depends_on.join(", ")
                }
            ),
        );
        for f in &task.folders {
            row(
                "",
                format!(
                    "  {} {}: {}{}",
                    f.direction,
                    f.channel,
                    f.path,
                    if f.managed { " (managed)" } else { "" }
                ),
            );
        }
        if task.attempts.is_empty() {
            row("", "  no attempts".into());
        }
        for a in &task.attempts {
            let mut text = format!("  attempt {}: {}", a.number, a.status.as_str());
            if let Some(code) = a.exit_code {
                text.push_str(&format!(", exit code {code}"));
            }
            match (&a.run_id, &a.run_dir) {
                (Some(id), Some(d)) => text.push_str(&format!(", task run {id} ({d})")),
                (Some(id), None) => text.push_str(&format!(", task run {id}")),
                _ if a.ended_at.is_none() => {
                    text.push_str(" (its task run is linked when it ends)")
                }
                // Refused by `tapir run` before anything started: no task run exists.
                _ => {
                    if let Some(code) = a.tapir_exit_code {
                        text.push_str(&format!(", did not start (tapir run exited {code})"));
                    }
                }
            }
            if let Some(m) = a.message.as_deref().filter(|m| *m != a.status.as_str()) {
                text.push_str(&format!(" — {m}"));
            }
            row("", under_the_row(&text));
        }
        // Profile `ccat`: what the step left, as the platform would register it.
        for product in &task.products {
            let mut text = format!(
                "  product {}: {} {} ({})",
                product.data_product_id,
                product.product_type.as_str(),
                product.path,
                format_bytes(product.size_bytes)
            );
            if let Some(metadata) = &product.metadata {
                text.push_str(&format!(", metadata {metadata}"));
            }
            row("", text);
        }
        for warning in &task.warnings {
            row("", format!("  warning: {warning}"));
        }
    }
    // Where the results were copied, and what was cleaned (src/pipeline/archive.rs).
    for archive in &r.archives {
        let status = if archive.status == "archived" {
            "succeeded"
        } else {
            "failed"
        };
        let text = match &archive.message {
            Some(message) => format!("{}: {} — {message}", archive.path, archive.status),
            None => format!(
                "{}: {} ({}, {})",
                archive.path,
                archive.status,
                output::plural(archive.files as usize, "file"),
                format_bytes(archive.bytes)
            ),
        };
        row("archive", colored(status, under_the_row(&text)));
    }
    if !r.cleaned.is_empty() {
        row("cleaned", r.cleaned.join(", "));
    }
    out
}
