//! `tapir show RUN`: a run's record for people (or as JSON).

use serde_json::Value;

use crate::cli::{ColorChoice, PlanFormat, RunViewArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::model::quantity::format_bytes;
use crate::output::{self, Printer};
use crate::record::{RunRecord, store};
use crate::resolve::plan::PlannedUser;

use super::locate_run;
use super::plan_view::{command_line, plan_rows};
use super::ps::{format_duration, local_time};

pub fn run(args: &RunViewArgs, color: ColorChoice) -> Result<ExitStatus> {
    let run_dir = locate_run(&args.runs.runs_dir, &args.run)?;
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
                format_duration(summary.duration_seconds())
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
