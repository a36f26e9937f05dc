//! `tapir rm RUN...` and `tapir prune`: remove run folders and the containers tapir left
//! behind. The task's output data is never touched: a run whose output folder lies inside
//! its run folder is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::docker::Docker;
use crate::cli::{PruneArgs, RmArgs, StatusArg};
use crate::error::{Error, Result, exit};
use crate::output;
use crate::record::{RunRecord, RunSummary, store};
use crate::resolve::plan::Direction;

use super::locate_run;
use super::ps::{Listed, list};

/// How long `rm --force` waits for a cancelled run to write its end.
const CANCEL_WAIT: Duration = Duration::from_secs(60);

pub fn rm(args: &RmArgs) -> Result<u8> {
    let dirs = args
        .runs_to_remove
        .iter()
        .map(|query| locate_run(&args.runs.runs_dir, query))
        .collect::<Result<Vec<_>>>()?;
    let docker = Docker::locate().ok();
    let mut code = exit::OK;
    for dir in dirs {
        if let Err(e) = remove_run(&dir, args.force, docker.as_ref()) {
            output::stderr(&format!("error: {e}\n"));
            code = exit::INVALID;
        }
    }
    Ok(code)
}

/// Removes one run folder and its container. A running run is refused unless `force`,
/// which cancels it first (through the process supervising it, so its record says
/// `cancelled` before the folder goes). Only tapir's own files are deleted: a folder that
/// holds anything else is left with those, and reported.
fn remove_run(dir: &Path, force: bool, docker: Option<&Docker>) -> Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.starts_with(store::RUN_DIR_PREFIX) {
        return Err(Error::Usage(format!(
            "not removing {}: it is not a run folder (task_run-<id>)",
            dir.display()
        )));
    }
    let record = match RunRecord::load(dir) {
        Ok(record) => Some(record),
        // No record yet (a run still preparing) or a damaged one: only on request.
        Err(e) if !force => {
            return Err(Error::Usage(format!(
                "not removing {}: {e}\n  fix: `tapir rm --force` removes it anyway",
                dir.display()
            )));
        }
        Err(_) => None,
    };
    if let Some(r) = &record {
        if let Some(inside) = outputs_inside(r, dir) {
            return Err(Error::Usage(format!(
                "not removing {}: the output folder {} is inside it, and tapir never deletes output data\n  fix: move the output data elsewhere first",
                dir.display(),
                inside.display()
            )));
        }
        let summary = RunSummary::load_settled(dir).unwrap_or_else(|_| r.summary());
        if summary.status == crate::record::Status::Running && !summary.is_lost() {
            if !force {
                return Err(Error::Usage(format!(
                    "run {} is still running\n  fix: wait for it (`tapir wait {}`), or cancel and remove it with `tapir rm --force`",
                    r.id, r.id
                )));
            }
            cancel(dir)?;
        }
        if let (Some(container), Some(docker)) = (&r.container, docker) {
            docker.remove(container).map_err(|e| {
                Error::Usage(format!("could not remove container {container}: {e}"))
            })?;
        } else if r.container.is_some() && r.mode == "docker" {
            output::stderr(&format!(
                "warning: Docker is not available, so container {} (if it is still there) was not removed\n",
                r.container.as_deref().unwrap_or_default()
            ));
        }
    }
    remove_tapir_files(dir)?;
    output::stderr(&format!("removed {name}\n"));
    Ok(())
}

/// Deletes the files and folders tapir writes into a run folder, then the folder. Anything
/// else in it stays, and the error says what.
fn remove_tapir_files(dir: &Path) -> Result<()> {
    const FILES: [&str; 5] = [
        store::RECORD_FILE,
        crate::record::logs::STDOUT_FILE,
        crate::record::logs::STDERR_FILE,
        crate::record::logs::INDEX_FILE,
        crate::execute::detach::SUPERVISOR_LOG,
    ];
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let ours_file = FILES.contains(&name.as_str())
            || (name.starts_with(".record.json.") && name.ends_with(".tmp"));
        if ours_file {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        } else if name == crate::backend::apptainer::SCRATCH_DIR {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    std::fs::remove_dir(dir).map_err(|e| {
        let left: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if left.is_empty() {
            Error::io(dir, e)
        } else {
            Error::Usage(format!(
                "removed tapir's files from {}, but left the folder: it also holds {} (not written by tapir)",
                dir.display(),
                left.join(", ")
            ))
        }
    })
}

/// Asks the process supervising a run to cancel it (SIGTERM: it stops the container and
/// writes `cancelled`), and waits for that. The pid is read again on every poll: during
/// the hand-over of `run --detach` it changes from the parent's to the supervisor's.
fn cancel(dir: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + CANCEL_WAIT;
    let mut signalled = None;
    while std::time::Instant::now() < deadline {
        let Ok(summary) = RunSummary::load_settled(dir) else {
            return Ok(());
        };
        if summary.is_over() {
            return Ok(());
        }
        if let Some(pid) = summary.pid
            && signalled != Some(pid)
            && let Ok(raw) = i32::try_from(pid)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGTERM,
            );
            signalled = Some(pid);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Usage(format!(
        "run {} did not stop within {}s; nothing was removed",
        dir.display(),
        CANCEL_WAIT.as_secs()
    )))
}

/// An output folder of the run that lies inside the run folder, if any.
fn outputs_inside(r: &RunRecord, dir: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    r.planned_mounts(Direction::Output)
        .into_iter()
        .map(|(_, path)| path)
        .find(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .starts_with(&dir)
        })
}

pub fn prune(args: &PruneArgs) -> Result<u8> {
    let older_than = args
        .older_than
        .as_deref()
        .map(parse_age)
        .transpose()
        .map_err(Error::Usage)?;
    let now = jiff::Timestamp::now();
    let docker = Docker::locate().ok();
    let mut removed = 0;
    let mut code = exit::OK;
    for (dir, listed) in list(&args.runs.runs_dir)? {
        let (status, ended) = match &listed {
            Listed::Run(r) if !r.is_over() => continue,
            Listed::Run(r) => (
                status_arg(r),
                r.ended_at.or(r.started_at).unwrap_or(r.created_at),
            ),
            Listed::Unreadable { .. } => {
                (Some(StatusArg::Unreadable), modified(&dir).unwrap_or(now))
            }
        };
        let Some(status) = status else { continue };
        // Unreadable folders may be runs still preparing, and a lost run may still have
        // a working container: both go only when asked for.
        let selected = if args.status.is_empty() {
            !matches!(status, StatusArg::Unreadable | StatusArg::Lost)
        } else {
            args.status.contains(&status)
        };
        let old_enough = older_than.is_none_or(|age| {
            now.as_millisecond() - ended.as_millisecond() >= age.as_millis() as i64
        });
        let fresh = now.as_millisecond() - ended.as_millisecond() < 60_000;
        if !selected || !old_enough || (status == StatusArg::Unreadable && fresh) {
            continue;
        }
        if args.dry_run {
            output::stdout(&format!("would remove {}\n", dir.display()));
            removed += 1;
            continue;
        }
        // Asked-for unreadable folders are removed like `rm --force` would.
        match remove_run(&dir, status == StatusArg::Unreadable, docker.as_ref()) {
            Ok(()) => removed += 1,
            Err(e) => {
                output::stderr(&format!("error: {e}\n"));
                code = exit::INVALID;
            }
        }
    }
    output::stderr(&format!(
        "{} {removed} run folder{}\n",
        if args.dry_run {
            "would remove"
        } else {
            "removed"
        },
        if removed == 1 { "" } else { "s" }
    ));
    Ok(code)
}

fn status_arg(r: &RunSummary) -> Option<StatusArg> {
    use crate::record::Status;
    if r.is_lost() {
        return Some(StatusArg::Lost);
    }
    Some(match r.status {
        Status::Succeeded => StatusArg::Succeeded,
        Status::Failed => StatusArg::Failed,
        Status::OomKilled => StatusArg::OomKilled,
        Status::Cancelled => StatusArg::Cancelled,
        Status::EngineError => StatusArg::EngineError,
        Status::Running | Status::Unknown => return None,
    })
}

fn modified(dir: &Path) -> Option<jiff::Timestamp> {
    let time = std::fs::metadata(dir).ok()?.modified().ok()?;
    jiff::Timestamp::try_from(time).ok()
}

/// `90s`, `30m`, `12h`, `7d`, `2w` (a number and one unit).
fn parse_age(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 => Ok(Duration::from_secs(n.saturating_mul(seconds))),
        _ => Err(format!(
            "--older-than {text:?} is not a duration\n  fix: write a number and a unit: 90s, 30m, 12h, 7d or 2w"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_a_number_and_a_unit() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "7", "d", "7 days", "-1d", "1.5h"] {
            let err = parse_age(bad).err().unwrap_or_default();
            assert!(err.contains("fix:"), "{bad:?}: {err}");
        }
    }
}
