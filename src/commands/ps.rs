//! `tapir ps` (alias `list`): the runs in the runs folder, newest first: task runs and
//! pipeline runs; with `--all`, each pipeline run's task runs under it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::backend::docker::Docker;
use crate::cli::{ColorChoice, PlanFormat, PsArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::output::{self, Printer};
use crate::pipeline::record::PipelineRunRecord;
use crate::record::{RunSummary, store};

use super::pipeline_runs;

/// One line of `ps`: a readable record, or the reason it is not.
pub(crate) enum Listed {
    Run(Box<RunSummary>),
    Pipeline(Box<PipelineRunRecord>),
    Unreadable { id: String, why: String },
}

/// Every run folder in `runs_dir` (task runs and pipeline runs, not the task runs inside
/// pipeline runs), newest first, with its record (or why it has none); only the newest
/// `last` when given (folder names sort by age, so only their records are read).
pub(crate) fn list(runs_dir: &Path, last: Option<usize>) -> Result<Vec<(PathBuf, Listed)>> {
    Ok(read_all_listed(newest_run_dirs(runs_dir, last)?))
}

/// The run folders of `runs_dir`, newest first, at most `last` of them.
fn newest_run_dirs(runs_dir: &Path, last: Option<usize>) -> Result<Vec<PathBuf>> {
    let mut dirs = store::list_all_runs(runs_dir).map_err(|e| Error::io(runs_dir, e))?;
    if let Some(n) = last {
        dirs.truncate(n);
    }
    Ok(dirs)
}

/// Each folder's record (or why it has none), in the folders' order. Over thousands of
/// runs, parsing the records is most of `ps`'s time, so they are read on a few threads,
/// each taking a contiguous share; a thread that cannot be started leaves its share to
/// this one.
fn read_all_listed(dirs: Vec<PathBuf>) -> Vec<(PathBuf, Listed)> {
    // Below this many runs per thread, starting threads costs more than it saves.
    const RUNS_PER_THREAD: usize = 250;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 8)
        .min(dirs.len().div_ceil(RUNS_PER_THREAD));
    if threads <= 1 {
        return dirs.into_iter().map(|dir| read_listed(dir, true)).collect();
    }
    let read_share = |share: &[PathBuf]| -> Vec<(PathBuf, Listed)> {
        share
            .iter()
            .map(|dir| read_listed(dir.clone(), true))
            .collect()
    };
    std::thread::scope(|scope| {
        let shares: Vec<_> = dirs
            .chunks(dirs.len().div_ceil(threads))
            .map(|share| {
                let started = std::thread::Builder::new()
                    .name("ps-read".into())
                    .spawn_scoped(scope, move || read_share(share));
                (share, started.ok())
            })
            .collect();
        shares
            .into_iter()
            .flat_map(|(share, thread)| match thread.map(|t| t.join()) {
                Some(Ok(listed)) => listed,
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => read_share(share),
            })
            .collect()
    })
}

fn read_listed(dir: PathBuf, pipelines: bool) -> (PathBuf, Listed) {
    let unreadable = |why: String| Listed::Unreadable {
        id: store::any_run_id_of(&dir).unwrap_or_default().to_string(),
        why,
    };
    let listed = if pipelines && store::is_pipeline_run_dir(&dir) {
        match pipeline_runs::load_settled(&dir) {
            Ok(record) => Listed::Pipeline(Box::new(record)),
            Err(e) => unreadable(e.to_string()),
        }
    } else {
        // Only a Kubernetes run not yet final needs kubectl (and then a second read):
        // the record is read once for every other run (`ps` over 10,000 runs).
        let unsettled_k8s = |r: &RunSummary| {
            r.status.is_active() && r.executor.as_ref().is_some_and(|e| e.kind == "k8s")
        };
        match RunSummary::load_settled(&dir) {
            Ok(record) if unsettled_k8s(&record) => {
                super::k8s_submit::look(&dir);
                match RunSummary::load_settled(&dir) {
                    Ok(record) => Listed::Run(Box::new(record)),
                    Err(e) => unreadable(e.to_string()),
                }
            }
            Ok(record) => Listed::Run(Box::new(record)),
            Err(e) => unreadable(e.to_string()),
        }
    };
    (dir, listed)
}

/// Slurm runs whose records are not final: one `squeue` for all of them; those whose job
/// ended without a final record are settled and read again. A failing `squeue` is said,
/// and their rows stay as their records say.
fn ask_slurm(runs: &mut [(PathBuf, Listed)]) {
    use crate::executor::slurm::job::{self, Seen};
    let asking: Vec<PathBuf> = runs
        .iter()
        .filter(|(_, listed)| {
            matches!(listed, Listed::Run(r) if job::pending_job(r.status, r.executor.as_ref()).is_some())
        })
        .map(|(dir, _)| dir.clone())
        .collect();
    if asking.is_empty() {
        return;
    }
    let seen = job::look(&asking);
    if let Some(Seen::Unknown(why)) = seen.values().find(|s| matches!(s, Seen::Unknown(_))) {
        crate::output::stderr(&format!(
            "warning: cannot ask Slurm about the queued and running Slurm runs; they are shown as their records say: {why}\n"
        ));
    }
    for (dir, listed) in runs.iter_mut() {
        if matches!(seen.get(dir), Some(Seen::Ended)) {
            *listed = read_listed(dir.clone(), false).1;
        }
    }
}

/// `ps --quiet`: the folder names alone, newest first. No record is read, so it is as fast
/// as listing the folder, and a broken record cannot hide a run from completion.
fn print_names(args: &PsArgs) -> Result<ExitStatus> {
    let mut names = String::new();
    for dir in newest_run_dirs(&args.runs.runs_dir, args.last)? {
        if let Some(name) = dir.file_name() {
            names.push_str(&name.to_string_lossy());
            names.push('\n');
        }
    }
    output::stdout(&names);
    Ok(ExitStatus::Success)
}

/// A line of the listing: a run, and for a task run inside a pipeline run (`--all`), which
/// pipeline run, task and attempt it belongs to.
struct Row {
    dir: PathBuf,
    listed: Listed,
    inside: Option<Inside>,
}

struct Inside {
    pipeline_run: String,
    task: Option<(String, u32)>,
}

/// The version of the `ps --format json` document: fields may be added, and existing ones
/// keep their meaning while it stays 1.
pub(crate) const PS_FORMAT_VERSION: u32 = 1;

pub(crate) fn run(args: &PsArgs, color: ColorChoice) -> Result<ExitStatus> {
    if args.quiet {
        return print_names(args);
    }
    let mut runs = list(&args.runs.runs_dir, args.last)?;
    ask_slurm(&mut runs);
    let mut rows = Vec::new();
    for (dir, listed) in runs {
        // The task runs of a pipeline run go under it, and only with --all: they are its
        // parts, and `tapir logs PIPELINE-RUN TASK` reaches them.
        let nested: Vec<Row> = match &listed {
            Listed::Pipeline(p) if args.all => pipeline_runs::task_runs(&dir)
                .into_iter()
                .map(|task_dir| {
                    let task = store::run_id_of(&task_dir)
                        .and_then(|id| pipeline_runs::attempt_of(p, id))
                        .map(|(task, n)| (task.to_string(), n));
                    let (dir, listed) = read_listed(task_dir, false);
                    Row {
                        dir,
                        listed,
                        inside: Some(Inside {
                            pipeline_run: p.id.clone(),
                            task,
                        }),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        rows.push(Row {
            dir,
            listed,
            inside: None,
        });
        rows.extend(nested);
    }
    // Containers are only asked about when a run might have left one: a lost run.
    let lost_any = rows
        .iter()
        .any(|row| matches!(&row.listed, Listed::Run(r) if r.is_lost()));
    // The engine is asked within its deadline; when it does not answer, the listing is
    // still made from the run folders alone, and says what it could not check.
    let mut engine_unreachable = None;
    let docker = if lost_any {
        Docker::locate().ok()
    } else {
        None
    };
    let containers: HashMap<String, bool> = match docker.map(|d| d.tapir_containers()) {
        Some(Ok(list)) => list.into_iter().map(|c| (c.run_id, c.running)).collect(),
        Some(Err(e)) => {
            engine_unreachable = Some(e.to_string());
            HashMap::new()
        }
        None => HashMap::new(),
    };
    if let Some(why) = &engine_unreachable {
        output::stderr(&format!(
            "{} engine unreachable: status may be stale (whether lost runs left a container is unknown)
  {why}
",
            Printer::for_stderr(color).yellow("warning:")
        ));
    }

    match args.format {
        PlanFormat::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| json_entry(row, &containers))
                .collect();
            output::stdout_json(&json!({"format_version": PS_FORMAT_VERSION, "runs": list}));
        }
        PlanFormat::Human => {
            let p = Printer::for_stdout(color);
            output::stdout(&table(&rows, &containers, p));
            let err = Printer::for_stderr(color);
            for row in &rows {
                if let Listed::Unreadable { why, .. } = &row.listed {
                    output::stderr(&format!("{} {why}\n", err.yellow("warning:")));
                }
            }
            for row in &rows {
                if let Listed::Run(r) = &row.listed
                    && r.is_lost()
                    && let Some(running) = containers.get(&r.id)
                {
                    output::stderr(&format!(
                        "{} run {} is lost and its container is still there{}\n  fix: tapir rm {}\n",
                        err.yellow("warning:"),
                        r.id,
                        if *running { " (running)" } else { "" },
                        row.dir.display()
                    ));
                }
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn json_entry(row: &Row, containers: &HashMap<String, bool>) -> serde_json::Value {
    let dir = &row.dir;
    let mut entry = match &row.listed {
        Listed::Run(r) => json!({
            "kind": "task-run",
            "id": r.id,
            "dir": dir,
            "task_name": r.task_name,
            "template": r.plan.template,
            "image": r.image.as_ref().map(|i| &i.reference),
            "mode": r.mode,
            "status": r.status_label(),
            "exit_code": r.exit_code,
            "tapir_exit_code": r.tapir_exit_code(),
            "created_at": Some(r.created_at).filter(|t| *t != jiff::Timestamp::UNIX_EPOCH),
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "duration_seconds": r.duration_seconds(),
            "container_left": containers.get(&r.id).filter(|_| r.is_lost()).map(|running| if *running { "running" } else { "stopped" }),
            "executor": r.executor,
        }),
        Listed::Pipeline(r) => json!({
            "kind": "pipeline-run",
            "id": r.id,
            "dir": dir,
            "name": r.name,
            "pipeline_file": r.pipeline_file.path,
            "mode": r.mode,
            "status": pipeline_runs::status_label(r),
            "exit_code": r.exit_code,
            "created_at": r.created_at,
            "ended_at": r.ended_at,
            "duration_seconds": pipeline_runs::duration_seconds(r),
            "tasks_total": r.tasks.len(),
            "task_counts": pipeline_runs::task_counts(r)
                .into_iter()
                .map(|(status, n)| (status.to_string(), serde_json::Value::from(n)))
                .collect::<serde_json::Map<_, _>>(),
        }),
        Listed::Unreadable { id, why } => json!({
            "kind": if store::is_pipeline_run_dir(dir) { "pipeline-run" } else { "task-run" },
            "id": id, "dir": dir, "status": "unreadable", "error": why,
        }),
    };
    if let Some(inside) = &row.inside {
        entry["pipeline_run"] = json!(inside.pipeline_run);
        entry["pipeline_task"] = json!(inside.task.as_ref().map(|(t, _)| t));
        entry["attempt"] = json!(inside.task.as_ref().map(|(_, n)| n));
    }
    entry
}

fn table(rows: &[Row], containers: &HashMap<String, bool>, p: Printer) -> String {
    let header = [
        "ID", "TASK", "TEMPLATE", "IMAGE", "MODE", "STATUS", "EXIT", "STARTED", "DURATION",
    ];
    let dash = || "-".to_string();
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|row| {
            let mut cells = match &row.listed {
                Listed::Run(r) => [
                    r.id.clone(),
                    r.task_name.clone().unwrap_or_else(dash),
                    r.plan.template.clone().unwrap_or_else(dash),
                    r.image.as_ref().map_or_else(dash, |i| i.reference.clone()),
                    if r.mode.is_empty() {
                        dash()
                    } else {
                        r.mode.clone()
                    },
                    match (r.status_label(), containers.get(&r.id)) {
                        ("lost", Some(_)) => "lost (container left)".into(),
                        (label, _) => label.to_string(),
                    },
                    // What `run` and `wait` gave (130 for a cancel, not the
                    // container's 143), as `ps` is where one looks them up again.
                    r.tapir_exit_code().map_or_else(dash, |c| c.to_string()),
                    r.start_time().map_or_else(dash, local_time),
                    r.duration_seconds().map_or_else(dash, format_duration),
                ],
                Listed::Pipeline(r) => [
                    r.id.clone(),
                    format!("pipeline {} ({})", r.name, pipeline_runs::ok_count(r)),
                    dash(),
                    dash(),
                    if r.mode.is_empty() {
                        dash()
                    } else {
                        r.mode.clone()
                    },
                    pipeline_runs::status_label(r).to_string(),
                    r.exit_code.map_or_else(dash, |c| c.to_string()),
                    Some(r.created_at)
                        .filter(|t| *t != jiff::Timestamp::UNIX_EPOCH)
                        .map_or_else(dash, local_time),
                    pipeline_runs::duration_seconds(r).map_or_else(dash, format_duration),
                ],
                Listed::Unreadable { id, .. } => [
                    id.clone(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    "unreadable".into(),
                    dash(),
                    dash(),
                    dash(),
                ],
            };
            if let Some(inside) = &row.inside {
                cells[0] = format!("  {}", cells[0]);
                if let Some((task, attempt)) = &inside.task {
                    cells[1] = format!("{task} #{attempt} ({})", cells[1]);
                }
            }
            cells
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = p.bold(line(&header.map(String::from)).trim_end()) + "\n";
    for row in &cells {
        let text = line(row);
        out.push_str(&match row[5].as_str() {
            "succeeded" => text,
            "running" => p.green(text.trim_end()) + "\n",
            _ => p.red(text.trim_end()) + "\n",
        });
    }
    if cells.is_empty() {
        out.push_str("(no runs here; `tapir run TASK.JSON` makes one, or use --runs-dir)\n");
    }
    out
}

/// `2026-11-21 14:17:09` in the local time zone (UTC if it is unknown).
pub(crate) fn local_time(t: jiff::Timestamp) -> String {
    static ZONE: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    let zone =
        ZONE.get_or_init(|| jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC));
    t.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `0.4s`, `12s`, `3m05s`, `2h07m`.
pub(crate) fn format_duration(seconds: f64) -> String {
    let whole = seconds as u64;
    match whole {
        0..=9 => format!("{seconds:.1}s"),
        10..=59 => format!("{whole}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records are read on several threads; the listing keeps the folders' order (newest
    /// first), and each entry is its own folder's record, or why that one is unreadable.
    #[test]
    fn list_reads_every_record_in_the_order_of_the_folders() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let runs = 1_000;
        for i in 0..runs {
            let id = format!("00001m7z{i:05}aaaaaaaa");
            let dir = store::create_run_dir(tmp.path(), &id).expect("run folder");
            let record = if i % 97 == 0 {
                "{ truncated".to_string()
            } else {
                json!({"format_version": 1, "id": id, "status": "succeeded",
                       "task_name": format!("task {i}")})
                .to_string()
            };
            std::fs::write(dir.join(store::RECORD_FILE), record).expect("record");
        }
        let listed = list(tmp.path(), None).expect("list");
        assert_eq!(listed.len(), runs);
        for (n, (dir, entry)) in listed.iter().enumerate() {
            let i = runs - 1 - n;
            let id = format!("00001m7z{i:05}aaaaaaaa");
            assert_eq!(store::run_id_of(dir), Some(id.as_str()));
            match entry {
                Listed::Run(r) if i % 97 != 0 => {
                    assert_eq!(r.task_name.as_deref(), Some(format!("task {i}").as_str()));
                }
                Listed::Unreadable {
                    id: unreadable,
                    why,
                } if i % 97 == 0 => {
                    assert_eq!(unreadable, &id);
                    assert!(why.contains(&id), "{why}");
                }
                _ => panic!("run {i}: unexpected entry"),
            }
        }
        let newest = list(tmp.path(), Some(3)).expect("list -n 3");
        let ids: Vec<_> = newest
            .iter()
            .filter_map(|(d, _)| store::run_id_of(d))
            .collect();
        assert_eq!(
            ids,
            [
                "00001m7z00999aaaaaaaa",
                "00001m7z00998aaaaaaaa",
                "00001m7z00997aaaaaaaa"
            ]
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0.42), "0.4s");
        assert_eq!(format_duration(12.9), "12s");
        assert_eq!(format_duration(185.0), "3m05s");
        assert_eq!(format_duration(7620.0), "2h07m");
    }
}
