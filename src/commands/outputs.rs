//! `tapir outputs RUN [TASK]`: each output channel's files and sizes as they are on disk now,
//! and a check of the Task API's data-structure convention (seeds 001, "Input and output
//! channel data structure convention"): a channel holds one folder per item, and a task
//! that makes one result per input item names its output items like the input items.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::{ColorChoice, PlanFormat, RunViewArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::model::quantity::format_bytes;
use crate::output::{self, Printer, plural};
use crate::pipeline::record::PipelineRunRecord;
use crate::record::{self, OutputChannel, RunRecord};
use crate::resolve::plan::Direction;

use super::pipeline_runs;
use super::{Located, locate};

#[derive(Serialize)]
struct ChannelReport {
    #[serde(flatten)]
    listing: OutputChannel,
    exists: bool,
    items: Vec<String>,
    warnings: Vec<String>,
}

pub(crate) fn run(args: &RunViewArgs, color: ColorChoice) -> Result<ExitStatus> {
    let run_dir = match locate(&args.runs.runs_dir, &args.run)? {
        Located::Task(dir) if args.task.is_some() => {
            return Err(pipeline_runs::not_a_pipeline(&dir));
        }
        Located::Task(dir) => dir,
        Located::Pipeline(dir) => match &args.task {
            None => {
                let record = pipeline_runs::load(&dir)?;
                return pipeline_outputs(&record, &dir, args.format, color);
            }
            Some(task_id) => pipeline_runs::latest_task_run(
                &dir,
                task_id,
                "outputs",
                &args.run,
                "lists every task's folders",
            )?,
        },
    };
    task_run_outputs(&run_dir, args.format, color)
}

#[derive(Serialize)]
struct PipelineChannel {
    #[serde(flatten)]
    listing: OutputChannel,
    managed: bool,
    exists: bool,
}

#[derive(Serialize)]
struct TaskOutputs {
    id: String,
    status: &'static str,
    outputs: Vec<PipelineChannel>,
}

/// Every task's output folders of a pipeline run, as they are on disk now (the item
/// convention is checked per task: `tapir outputs PIPELINE-RUN TASK`).
fn pipeline_outputs(
    record: &PipelineRunRecord,
    dir: &Path,
    format: PlanFormat,
    color: ColorChoice,
) -> Result<ExitStatus> {
    let tasks: Vec<TaskOutputs> = record
        .tasks
        .iter()
        .map(|task| TaskOutputs {
            id: task.id.clone(),
            status: task.status.as_str(),
            outputs: task
                .folders
                .iter()
                .filter(|f| f.direction == "output")
                .map(|f| {
                    let path = if f.managed {
                        dir.join(&f.path)
                    } else {
                        PathBuf::from(&f.path)
                    };
                    PipelineChannel {
                        listing: record::list_output(&f.channel, &path),
                        managed: f.managed,
                        exists: path.is_dir(),
                    }
                })
                .collect(),
        })
        .collect();
    if format == PlanFormat::Json {
        output::stdout_json(&serde_json::json!({"run": record.id, "tasks": tasks}));
        return Ok(ExitStatus::Success);
    }
    let p = Printer::for_stdout(color);
    let mut out = String::new();
    for task in &tasks {
        if task.outputs.is_empty() {
            out.push_str(&format!(
                "{} ({}): no output channels\n",
                p.bold(&task.id),
                task.status
            ));
        }
        for channel in &task.outputs {
            let l = &channel.listing;
            out.push_str(&format!(
                "{} {} ({}, {}{}{})\n",
                p.bold(&format!("{}.{}", task.id, l.channel)),
                l.host_path,
                plural(l.files.len(), "file"),
                format_bytes(l.total_bytes),
                if l.truncated { ", listing cut" } else { "" },
                if channel.exists {
                    ""
                } else {
                    ", does not exist"
                }
            ));
            for file in &l.files {
                out.push_str(&format!(
                    "  {:>10}  {}\n",
                    format_bytes(file.bytes),
                    file.path
                ));
            }
        }
    }
    output::stdout(&out);
    Ok(ExitStatus::Success)
}

fn task_run_outputs(run_dir: &Path, format: PlanFormat, color: ColorChoice) -> Result<ExitStatus> {
    let run_dir = run_dir.to_path_buf();
    let record = RunRecord::load(&run_dir).map_err(|e| Error::Record(e.to_string()))?;
    let inputs = record.planned_mounts(Direction::Input);
    let outputs = record.planned_mounts(Direction::Output);
    // The input items: folders at the top of every input channel that has any.
    let input_items: BTreeSet<String> = inputs
        .iter()
        .flat_map(|(_, path)| item_folders(path))
        .collect();
    let reports: Vec<ChannelReport> = outputs
        .iter()
        .map(|(channel, path)| check_channel(channel, path, &input_items, &inputs))
        .collect();

    if format == PlanFormat::Json {
        let value = serde_json::json!({"run": record.id, "outputs": reports});
        output::stdout_json(&value);
        return Ok(ExitStatus::Success);
    }
    let p = Printer::for_stdout(color);
    let mut out = String::new();
    if reports.is_empty() {
        out.push_str(&format!("run {} has no output channels\n", record.id));
    }
    for report in &reports {
        let l = &report.listing;
        out.push_str(&format!(
            "{} {} ({}, {}{})\n",
            p.bold(&l.channel),
            l.host_path,
            plural(l.files.len(), "file"),
            format_bytes(l.total_bytes),
            if l.truncated { ", listing cut" } else { "" }
        ));
        for file in &l.files {
            out.push_str(&format!(
                "  {:>10}  {}\n",
                format_bytes(file.bytes),
                file.path
            ));
        }
        for warning in &report.warnings {
            out.push_str(&format!("  {} {warning}\n", p.yellow("warning:")));
        }
    }
    output::stdout(&out);
    Ok(ExitStatus::Success)
}

fn check_channel(
    channel: &str,
    path: &Path,
    input_items: &BTreeSet<String>,
    inputs: &[(String, PathBuf)],
) -> ChannelReport {
    let exists = path.is_dir();
    let listing = record::list_output(channel, path);
    let mut warnings = Vec::new();
    if !exists {
        warnings.push(format!(
            "{} does not exist any more (removed after the run?)",
            path.display()
        ));
        return ChannelReport {
            listing,
            exists,
            items: Vec::new(),
            warnings,
        };
    }
    let items = item_folders(path);
    let loose: Vec<String> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if items.is_empty() && loose.is_empty() {
        warnings.push("the channel is empty: no items".into());
    }
    if !loose.is_empty() {
        warnings.push(format!(
            "{} at the top of the channel ({}): the convention is one folder per item, with the results inside",
            plural(loose.len(), "file"),
            preview(&loose)
        ));
    }
    let empty: Vec<String> = items
        .iter()
        .filter(|item| std::fs::read_dir(path.join(item)).is_ok_and(|mut d| d.next().is_none()))
        .cloned()
        .collect();
    if !empty.is_empty() {
        warnings.push(format!(
            "{} without results: {}",
            plural(empty.len(), "empty item folder"),
            preview(&empty)
        ));
    }
    if !input_items.is_empty() && !items.is_empty() {
        let names: Vec<&str> = inputs.iter().map(|(c, _)| c.as_str()).collect();
        let unknown: Vec<String> = items
            .iter()
            .filter(|i| !input_items.contains(*i))
            .cloned()
            .collect();
        let missing: Vec<String> = input_items
            .iter()
            .filter(|i| !items.contains(i))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            warnings.push(format!(
                "{} not among the input items of {}: {} (a task with one result per input item should reuse the input item names)",
                plural(unknown.len(), "item"),
                names.join(", "),
                preview(&unknown)
            ));
        }
        if !missing.is_empty() && unknown.len() < items.len() {
            warnings.push(format!(
                "no result for {} of the input: {}",
                plural(missing.len(), "item"),
                preview(&missing)
            ));
        }
    }
    ChannelReport {
        listing,
        exists,
        items,
        warnings,
    }
}

/// The folders directly inside `path`, sorted.
fn item_folders(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// At most five names, then "and N more".
fn preview(names: &[String]) -> String {
    let mut text = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}
