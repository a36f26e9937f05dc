//! `tapir rm RUN...` and `tapir prune`: remove run folders and the containers tapir left
//! behind. The task's output data is never touched: a run whose output folder lies inside
//! its run folder is refused. A pipeline run's managed channel folders hold its tasks'
//! output data: a pipeline run with files in them is refused unless `rm --outputs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backend::docker::{Docker, EngineFailure};
use crate::cli::{PruneArgs, RmArgs, StatusArg};
use crate::error::{Error, ExitStatus, Result};
use crate::output;
use crate::pipeline::record::{PipelineRunRecord, PipelineStatus, RUNS_SUBDIR};
use crate::record::{RunRecord, RunSummary, store};
use crate::resolve::plan::Direction;

use super::ps::{Listed, list};
use super::{Located, locate, pipeline_runs};

/// How long `rm --force` waits for a cancelled run to write its end.
const CANCEL_WAIT: Duration = Duration::from_secs(60);

pub(crate) fn rm(args: &RmArgs) -> Result<ExitStatus> {
    let located = args
        .runs_to_remove
        .iter()
        .map(|query| locate(&args.runs.runs_dir, query))
        .collect::<Result<Vec<_>>>()?;
    let docker = Docker::locate().ok();
    let mut status = ExitStatus::Success;
    for run in located {
        let removed = match run {
            Located::Task(dir) => match pipeline_of(&dir) {
                Some(pipeline) if !args.force => Err(Error::Usage(format!(
                    "not removing {}: it is an attempt of pipeline run {}, whose record links it\n  fix: remove the whole pipeline run (`tapir rm {}`), or this task run alone with `tapir rm --force`",
                    dir.display(),
                    pipeline.display(),
                    pipeline.display()
                ))),
                _ => remove_run(&dir, args.force, docker.as_ref()),
            },
            Located::Pipeline(dir) => {
                remove_pipeline_run(&dir, args.force, args.outputs, docker.as_ref())
            }
        };
        if let Err(e) = removed {
            output::stderr(&format!("error: {e}\n"));
            status = ExitStatus::Failed;
        }
    }
    Ok(status)
}

/// The pipeline run folder a task run folder lies in (`pipeline-run-<id>/runs/`), if any.
fn pipeline_of(task_dir: &Path) -> Option<PathBuf> {
    let runs = task_dir.parent()?;
    let pipeline = runs.parent()?;
    (runs.file_name()? == RUNS_SUBDIR && store::is_pipeline_run_dir(pipeline))
        .then(|| pipeline.to_path_buf())
}

/// Removes one run folder and its container. A running run is refused unless `force`,
/// which cancels it first (through the process supervising it, so its record says
/// `cancelled` before the folder goes). Only tapir's own files are deleted: a folder that
/// holds anything else is left with those, and reported.
fn remove_run(dir: &Path, force: bool, docker: Option<&Docker>) -> Result<()> {
    remove_task_run(dir, force, docker)?;
    output::stderr(&format!(
        "removed {}\n",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    Ok(())
}

/// A run folder that is a symbolic link: tapir deletes nothing through a link, since
/// what it points to (another run, or any folder at all) is not this run's.
fn refuse_link(dir: &Path) -> Result<()> {
    // Without a trailing `/`, which would make the check look through the link.
    let dir: PathBuf = dir.components().collect();
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Usage(format!(
            "not removing {}: it is a symbolic link{}, and tapir deletes nothing through a link\n  fix: remove the link itself with `rm {}`, or give tapir the folder it points to",
            dir.display(),
            std::fs::read_link(&dir)
                .map(|target| format!(" to {}", target.display()))
                .unwrap_or_default(),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// [`remove_run`] without saying so.
fn remove_task_run(dir: &Path, force: bool, docker: Option<&Docker>) -> Result<()> {
    refuse_link(dir)?;
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
        if summary.status.is_active() && !summary.is_lost() {
            if !force {
                return Err(Error::Usage(format!(
                    "run {} is still running\n  fix: wait for it (`tapir wait {}`), or cancel and remove it with `tapir rm --force`",
                    r.id, r.id
                )));
            }
            cancel(dir)?;
        }
        if let (Some(container), Some(docker)) = (&r.container, docker) {
            match docker.remove(container) {
                Ok(()) => {}
                // The run folder needs no engine: it goes, and the container (which
                // keeps its labels, so `docker ps --filter label=tapir.run-id` finds
                // it) is named for later.
                Err(EngineFailure::NoAnswer(why)) => output::stderr(&format!(
                    "warning: engine unreachable: container {container} (if it is still there) was not removed; later: `docker rm --force {container}`
  {why}
"
                )),
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "could not remove container {container}: {e}"
                    )));
                }
            }
        } else if r.container.is_some() && r.mode == "docker" {
            output::stderr(&format!(
                "warning: Docker is not available, so container {} (if it is still there) was not removed\n",
                r.container.as_deref().unwrap_or_default()
            ));
        }
    }
    remove_tapir_files(dir, force)
}

/// Removes a pipeline run folder: its task runs (by the rules of a task run's `rm`), the
/// derived task files and logs under `runs/`, its managed channel folders, and its record.
/// Everything is checked before anything is deleted: a running pipeline run (or task run
/// in it) is refused unless `force`, which cancels it first through its process; managed
/// folders holding files are output data, deleted only with `outputs`. Files tapir did not
/// write stay, and are reported.
fn remove_pipeline_run(
    dir: &Path,
    force: bool,
    outputs: bool,
    docker: Option<&Docker>,
) -> Result<()> {
    refuse_link(dir)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut record = match PipelineRunRecord::load(dir) {
        Ok(record) => Some(record),
        Err(e) if !force => {
            return Err(Error::Usage(format!(
                "not removing {}: {e}\n  fix: `tapir rm --force` removes tapir's files from it anyway",
                dir.display()
            )));
        }
        Err(_) => None,
    };
    if let Some(r) = &record
        && r.status == PipelineStatus::Running
        && !pipeline_runs::is_lost(r)
    {
        if !force {
            return Err(Error::Usage(format!(
                "pipeline run {} is still running\n  fix: wait for it (`tapir wait {}`), or cancel and remove it with `tapir rm --force`",
                r.id, r.id
            )));
        }
        cancel_pipeline(dir)?;
        record = PipelineRunRecord::load(dir).ok();
    }
    let task_runs = pipeline_runs::task_runs(dir);
    if !force
        && let Some(running) = task_runs.iter().find(|d| {
            RunSummary::load_settled(d).is_ok_and(|r| r.status.is_active() && !r.is_lost())
        })
    {
        return Err(Error::Usage(format!(
            "not removing {name}: its task run {} is still running\n  fix: wait for it, or cancel and remove it with `tapir rm --force`",
            running.display()
        )));
    }
    // Checked before anything is deleted, like everything else.
    refuse_link(&dir.join(RUNS_SUBDIR))?;
    for task_dir in &task_runs {
        refuse_link(task_dir)?;
    }
    let managed = managed_folders(record.as_ref(), dir);
    let with_data: Vec<String> = managed
        .iter()
        .filter_map(|(relative, path)| {
            let listing = crate::record::list_output(relative, path);
            (!listing.files.is_empty()).then(|| {
                format!(
                    "{relative} ({}, {})",
                    output::plural(listing.files.len(), "file"),
                    crate::model::quantity::format_bytes(listing.total_bytes)
                )
            })
        })
        .collect();
    if !with_data.is_empty() && !outputs {
        return Err(Error::Usage(format!(
            "not removing {name}: it holds output data in {}, and tapir never deletes output data unless asked\n  fix: `tapir rm --outputs {name}` deletes it too, or move the data elsewhere first",
            with_data.join(", ")
        )));
    }

    for task_dir in &task_runs {
        remove_task_run(task_dir, force, docker)?;
    }
    let runs = dir.join(RUNS_SUBDIR);
    if let Ok(entries) = std::fs::read_dir(&runs) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_file())
                && (file.ends_with(".task.json") || file.ends_with(".tapir.log"))
            {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            }
        }
        let _ = std::fs::remove_dir(&runs);
    }
    for (_, path) in &managed {
        // Without `outputs`, every managed folder here holds no files.
        if path.is_dir() {
            std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e))?;
        }
    }
    // The task folders (`<task id>/`) that held the channel folders, when now empty.
    for (relative, _) in &managed {
        for parent in Path::new(relative).ancestors().skip(1) {
            if parent.as_os_str().is_empty() {
                break;
            }
            let _ = std::fs::remove_dir(dir.join(parent));
        }
    }
    remove_tapir_files(dir, force)?;
    let mut what = vec![output::plural(task_runs.len(), "task run")];
    if !with_data.is_empty() {
        let folders: Vec<&str> = with_data
            .iter()
            .map(|d| d.split(" (").next().unwrap_or(d))
            .collect();
        what.push(format!("output data in {}", folders.join(", ")));
    }
    output::stderr(&format!("removed {name} ({})\n", what.join(", ")));
    Ok(())
}

/// The managed folders of a pipeline run's tasks, as (path relative to `dir`, path),
/// each once. A path that would leave the folder (absolute, `..`) is never one.
fn managed_folders(record: Option<&PipelineRunRecord>, dir: &Path) -> Vec<(String, PathBuf)> {
    let mut folders: Vec<(String, PathBuf)> = Vec::new();
    for folder in record
        .iter()
        .flat_map(|r| &r.tasks)
        .flat_map(|t| &t.folders)
        .filter(|f| f.managed)
    {
        let inside = !folder.path.is_empty()
            && Path::new(&folder.path)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if inside && !folders.iter().any(|(p, _)| *p == folder.path) {
            folders.push((folder.path.clone(), dir.join(&folder.path)));
        }
    }
    folders
}

/// Asks the process running a pipeline to cancel it (SIGTERM: it stops its tasks and
/// writes `cancelled`), and waits for that, or for the process to be gone.
fn cancel_pipeline(dir: &Path) -> Result<()> {
    stop_and_wait(dir, "pipeline run", |dir| {
        let record = pipeline_runs::load_settled(dir).ok()?;
        (!pipeline_runs::is_over(&record)).then_some(record.pid)
    })
}

/// Deletes the files and folders tapir writes into a run folder, then the folder. Anything
/// else in it stays, and the error says what. A link among them is removed itself, never
/// what it points to; one of tapir's names that is a folder (a damaged run) goes only with
/// `force`.
fn remove_tapir_files(dir: &Path, force: bool) -> Result<()> {
    const FILES: [&str; 11] = [
        store::RECORD_FILE,
        store::GITIGNORE_FILE,
        store::RESERVE_FILE,
        crate::record::logs::STDOUT_FILE,
        crate::record::logs::STDERR_FILE,
        crate::record::logs::INDEX_FILE,
        crate::execute::detach::SUPERVISOR_LOG,
        crate::executor::slurm::script::SCRIPT_FILE,
        crate::executor::slurm::job::PRIVATE_ENV_FILE,
        super::k8s_submit::HANDLE_FILE,
        super::k8s_submit::MANIFEST_FILE,
    ];
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let ours_file = FILES.contains(&name.as_str())
            || crate::executor::slurm::script::is_job_output(&name)
            || (name.starts_with(".record.json.") && name.ends_with(".tmp"));
        // `file_type` of a directory entry does not follow links.
        let is_folder = entry.file_type().is_ok_and(|t| t.is_dir());
        if ours_file && is_folder {
            if !force {
                return Err(Error::Usage(format!(
                    "not removing {}: {name} is a folder, not the file tapir writes\n  fix: `tapir rm --force` removes it anyway",
                    dir.display()
                )));
            }
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        } else if ours_file {
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
    // A Kubernetes run nobody follows: its Pod is deleted through kubectl.
    if super::k8s_submit::cancel_unfollowed(dir).is_some() {
        return Ok(());
    }
    use crate::executor::slurm::job;
    if let Ok(summary) = RunSummary::load(dir)
        && let Some(job_id) = job::pending_job(summary.status, summary.executor.as_ref())
    {
        // A Slurm job: cancelled through Slurm, waited for until it left the queue.
        return job::cancel_and_wait(dir, &job_id).map_err(Error::Usage);
    }
    stop_and_wait(dir, "run", |dir| {
        let summary = RunSummary::load_settled(dir).ok()?;
        (!summary.is_over()).then_some(summary.pid)
    })
}

/// Sends SIGTERM to the process `running` names (once per pid) until `running` says the
/// run is over or its record is gone (`None`), for at most `CANCEL_WAIT`. `Some(pid)`:
/// still running, supervised by `pid` if known.
fn stop_and_wait(
    dir: &Path,
    what: &str,
    running: impl Fn(&Path) -> Option<Option<u32>>,
) -> Result<()> {
    let deadline = std::time::Instant::now() + CANCEL_WAIT;
    let mut signalled = None;
    while std::time::Instant::now() < deadline {
        let Some(pid) = running(dir) else {
            return Ok(());
        };
        if let Some(pid) = pid
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
        "{what} {} did not stop within {}s; nothing was removed",
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

pub(crate) fn prune(args: &PruneArgs) -> Result<ExitStatus> {
    let older_than = args.older_than;
    let now = jiff::Timestamp::now();
    let docker = Docker::locate().ok();
    let mut removed = 0;
    let mut outcome = ExitStatus::Success;
    for (dir, listed) in list(&args.runs.runs_dir, None)? {
        if refuse_link(&dir).is_err() {
            // Not this run's folder to delete, whatever its record says (and tapir does
            // not read a record through the link: it is `unreadable`). `rm` explains.
            output::stderr(&format!(
                "warning: skipped {}: it is a symbolic link\n",
                dir.display()
            ));
            continue;
        }
        let (status, ended) = match &listed {
            Listed::Run(r) if !r.is_over() => continue,
            // A pipeline run holds its tasks' output data: only `tapir rm` removes it.
            Listed::Pipeline(_) => continue,
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
                outcome = ExitStatus::Failed;
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
    Ok(outcome)
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
        Status::TimedOut => StatusArg::TimedOut,
        Status::EngineError => StatusArg::EngineError,
        Status::WriteFailed => StatusArg::WriteFailed,
        Status::Queued | Status::Running | Status::Unknown => return None,
    })
}

fn modified(dir: &Path) -> Option<jiff::Timestamp> {
    let time = std::fs::metadata(dir).ok()?.modified().ok()?;
    jiff::Timestamp::try_from(time).ok()
}
