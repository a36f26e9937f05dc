//! `tapir ps` (alias `list`): the runs in the runs folder, newest first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::backend::docker::Docker;
use crate::cli::{ColorChoice, PlanFormat, PsArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::output::{self, Printer};
use crate::record::{RunSummary, store};

/// One line of `ps`: a readable record, or the reason it is not.
pub enum Listed {
    Run(Box<RunSummary>),
    Unreadable { id: String, why: String },
}

/// Every run folder in `runs_dir`, newest first, with its record (or why it has none).
pub fn list(runs_dir: &Path) -> Result<Vec<(PathBuf, Listed)>> {
    let dirs = store::list_runs(runs_dir).map_err(|e| Error::io(runs_dir, e))?;
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let listed = match RunSummary::load_settled(&dir) {
                Ok(record) => Listed::Run(Box::new(record)),
                Err(e) => Listed::Unreadable {
                    id: store::run_id_of(&dir).unwrap_or_default().to_string(),
                    why: e.to_string(),
                },
            };
            (dir, listed)
        })
        .collect())
}

/// The version of the `ps --format json` document: fields may be added, and existing ones
/// keep their meaning while it stays 1.
pub const PS_FORMAT_VERSION: u32 = 1;

pub fn run(args: &PsArgs, color: ColorChoice) -> Result<ExitStatus> {
    let mut runs = list(&args.runs.runs_dir)?;
    if let Some(n) = args.last {
        runs.truncate(n);
    }
    // Containers are only asked about when a run might have left one: a lost run.
    let lost_any = runs
        .iter()
        .any(|(_, l)| matches!(l, Listed::Run(r) if r.is_lost()));
    let containers: HashMap<String, bool> = if lost_any {
        Docker::locate()
            .and_then(|d| d.tapir_containers())
            .map(|list| list.into_iter().map(|c| (c.run_id, c.running)).collect())
            .unwrap_or_default()
    } else {
        HashMap::new()
    };

    match args.format {
        PlanFormat::Json => {
            let list: Vec<serde_json::Value> = runs
                .iter()
                .map(|(dir, listed)| match listed {
                    Listed::Run(r) => json!({
                        "id": r.id,
                        "dir": dir,
                        "task_name": r.task_name,
                        "template": r.plan.template,
                        "image": r.image.as_ref().map(|i| &i.reference),
                        "mode": r.mode,
                        "status": r.status_label(),
                        "exit_code": r.exit_code,
                        "created_at": r.created_at,
                        "started_at": r.started_at,
                        "ended_at": r.ended_at,
                        "duration_seconds": r.duration_seconds(),
                        "container_left": containers.get(&r.id).filter(|_| r.is_lost()).map(|running| if *running { "running" } else { "stopped" }),
                    }),
                    Listed::Unreadable { id, why } => json!({
                        "id": id, "dir": dir, "status": "unreadable", "error": why,
                    }),
                })
                .collect();
            output::stdout_json(&json!({"format_version": PS_FORMAT_VERSION, "runs": list}));
        }
        PlanFormat::Human => {
            let p = Printer::for_stdout(color);
            output::stdout(&table(&runs, &containers, p));
            let err = Printer::for_stderr(color);
            for (_, listed) in &runs {
                if let Listed::Unreadable { why, .. } = listed {
                    output::stderr(&format!("{} {why}\n", err.yellow("warning:")));
                }
            }
            for (dir, listed) in &runs {
                if let Listed::Run(r) = listed
                    && r.is_lost()
                    && let Some(running) = containers.get(&r.id)
                {
                    output::stderr(&format!(
                        "{} run {} is lost and its container is still there{}\n  fix: tapir rm {}\n",
                        err.yellow("warning:"),
                        r.id,
                        if *running { " (running)" } else { "" },
                        dir.display()
                    ));
                }
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn table(runs: &[(PathBuf, Listed)], containers: &HashMap<String, bool>, p: Printer) -> String {
    let header = [
        "ID", "TASK", "TEMPLATE", "IMAGE", "MODE", "STATUS", "EXIT", "STARTED", "DURATION",
    ];
    let rows: Vec<[String; 9]> = runs
        .iter()
        .map(|(_, listed)| match listed {
            Listed::Run(r) => [
                r.id.clone(),
                r.task_name.clone().unwrap_or_else(|| "-".into()),
                r.plan.template.clone().unwrap_or_else(|| "-".into()),
                r.image.as_ref().map_or("-".into(), |i| i.reference.clone()),
                if r.mode.is_empty() {
                    "-".into()
                } else {
                    r.mode.clone()
                },
                match (r.status_label(), containers.get(&r.id)) {
                    ("lost", Some(_)) => "lost (container left)".into(),
                    (label, _) => label.to_string(),
                },
                r.exit_code.map_or("-".into(), |c| c.to_string()),
                local_time(r.started_at.unwrap_or(r.created_at)),
                format_duration(r.duration_seconds()),
            ],
            Listed::Unreadable { id, .. } => [
                id.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "unreadable".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ],
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
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
    for row in &rows {
        let text = line(row);
        out.push_str(&match row[5].as_str() {
            "succeeded" => text,
            "running" => p.green(text.trim_end()) + "\n",
            _ => p.red(text.trim_end()) + "\n",
        });
    }
    if rows.is_empty() {
        out.push_str("(no runs here; `tapir run TASK.JSON` makes one, or use --runs-dir)\n");
    }
    out
}

/// `2026-11-21 14:17:09` in the local time zone (UTC if it is unknown).
pub fn local_time(t: jiff::Timestamp) -> String {
    static ZONE: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();
    let zone =
        ZONE.get_or_init(|| jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC));
    t.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `0.4s`, `12s`, `3m05s`, `2h07m`.
pub fn format_duration(seconds: f64) -> String {
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

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0.42), "0.4s");
        assert_eq!(format_duration(12.9), "12s");
        assert_eq!(format_duration(185.0), "3m05s");
        assert_eq!(format_duration(7620.0), "2h07m");
    }
}
