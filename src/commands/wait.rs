//! `tapir wait RUN...`: returns when every run has ended, with the exit code of the first
//! run (in the order given) that did not succeed, or 0.

use std::time::Duration;

use crate::cli::WaitArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::output;
use crate::record::RunSummary;

use super::locate_run;

const POLL: Duration = Duration::from_millis(100);

pub fn run(args: &WaitArgs) -> Result<ExitStatus> {
    // Every name is checked before waiting starts: a typo should not wait for the others.
    let dirs = args
        .runs_to_wait
        .iter()
        .map(|query| locate_run(&args.runs.runs_dir, query))
        .collect::<Result<Vec<_>>>()?;
    let mut ended: Vec<Option<RunSummary>> = vec![None; dirs.len()];
    while ended.iter().any(Option::is_none) {
        for (dir, slot) in dirs.iter().zip(ended.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let record = RunSummary::load_settled(dir).map_err(|e| Error::Record(e.to_string()))?;
            if record.is_over() {
                output::stderr(&format!(
                    "{}: {}\n",
                    record.id,
                    output::status_with_message(
                        record.status_label(),
                        "",
                        record.message.as_deref()
                    )
                ));
                *slot = Some(record);
            }
        }
        if ended.iter().any(Option::is_none) {
            std::thread::sleep(POLL);
        }
    }
    Ok(ended
        .iter()
        .flatten()
        .map(RunSummary::exit_status)
        .find(|status| !status.is_success())
        .unwrap_or(ExitStatus::Success))
}
