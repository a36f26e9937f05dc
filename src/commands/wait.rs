//! `tapir wait RUN...`: returns when every run (task run or pipeline run) has ended, with
//! the exit code of the first run (in the order given) that did not succeed, or 0.

use std::path::Path;
use std::time::Duration;

use crate::cli::WaitArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::output;
use crate::record::RunSummary;

use super::{Located, locate, pipeline_runs};

const POLL: Duration = Duration::from_millis(100);

pub(crate) fn run(args: &WaitArgs) -> Result<ExitStatus> {
    // Every name is checked before waiting starts: a typo should not wait for the others.
    let located = args
        .runs_to_wait
        .iter()
        .map(|query| locate(&args.runs.runs_dir, query))
        .collect::<Result<Vec<_>>>()?;
    let mut ended: Vec<Option<ExitStatus>> = vec![None; located.len()];
    // Slurm is asked (one `squeue` for all) backing off, not at every look at a record.
    let mut slurm_poll = crate::executor::slurm::job::FIRST_POLL;
    let mut next_slurm_ask = std::time::Instant::now();
    while ended.iter().any(Option::is_none) {
        if std::time::Instant::now() >= next_slurm_ask {
            let waiting: Vec<std::path::PathBuf> = located
                .iter()
                .zip(&ended)
                .filter_map(|(run, end)| match (run, end) {
                    (Located::Task(dir), None) => Some(dir.clone()),
                    _ => None,
                })
                .collect();
            crate::executor::slurm::job::look(&waiting);
            slurm_poll = crate::executor::slurm::job::next_poll(slurm_poll);
            next_slurm_ask = std::time::Instant::now() + slurm_poll;
        }
        for (run, slot) in located.iter().zip(ended.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let end = match run {
                Located::Task(dir) => task_end(dir)?,
                Located::Pipeline(dir) => pipeline_end(dir)?,
            };
            if let Some((id, status_text, status)) = end {
                output::stderr(&format!("{id}: {status_text}\n"));
                *slot = Some(status);
            }
        }
        if ended.iter().any(Option::is_none) {
            std::thread::sleep(POLL);
        }
    }
    Ok(ended
        .into_iter()
        .flatten()
        .find(|status| !status.is_success())
        .unwrap_or(ExitStatus::Success))
}

/// A run's id, how it ended and its exit status, once it has ended.
type End = Option<(String, String, ExitStatus)>;

fn task_end(dir: &Path) -> Result<End> {
    // A Kubernetes run nobody follows is asked about (bounded, at most every 2 s).
    super::k8s_submit::look(dir);
    let record = RunSummary::load_settled(dir).map_err(|e| Error::Record(e.to_string()))?;
    if !record.is_over() {
        return Ok(None);
    }
    let text = output::status_with_message(record.status_label(), "", record.message.as_deref());
    Ok(Some((record.id.clone(), text, record.exit_status())))
}

/// A pipeline run has ended when its record no longer says running, or its process is
/// gone (lost); its exit status is the code `pipeline run` recorded.
fn pipeline_end(dir: &Path) -> Result<End> {
    let record = pipeline_runs::load(dir)?;
    if !pipeline_runs::is_over(&record) {
        return Ok(None);
    }
    let label = pipeline_runs::status_label(&record);
    let message = if label == "lost" {
        Some("its record says running, but its process is gone")
    } else {
        record.message.as_deref()
    };
    let text = output::status_with_message(label, "", message);
    Ok(Some((
        record.id.clone(),
        text,
        pipeline_runs::exit_status(&record),
    )))
}
