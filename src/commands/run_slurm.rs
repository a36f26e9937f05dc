//! `tapir run --executor slurm`: the checked plan becomes one batch job (docs/DESIGN.md
//! decision 19). The run folder is made here with its job script and a `queued` record;
//! the job runs `tapir run --adopt-queued` on its node into that folder; this side then
//! follows the record (and the logs) like `tapir logs --follow`, asking Slurm only while
//! the record is not final, and turns Ctrl-C into `scancel`.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::absolute;
use super::plan_view::command_line;
use crate::cli::{ColorChoice, RunArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::executor::RunRequest;
use crate::executor::slurm::client;
use crate::executor::slurm::job::{self, Seen, Submission};
use crate::executor::slurm::script::{self, JobScript};
use crate::executor::slurm::settings::SlurmSettings;
use crate::output::{self, Printer};
use crate::record::logs::{Cursor, LogReader, Stream};
use crate::record::{RunRecord, RunSummary, Status};
use crate::resolve::plan::RunPlan;

/// The site settings for this run: flags over environment over files.
pub(crate) fn settings(args: &RunArgs) -> Result<SlurmSettings> {
    SlurmSettings::resolve(args.slurm.flags()).map_err(Error::Usage)
}

/// The request the node-side tapir gets: `run`'s own (the same `RunRequest` a local run
/// is made from, so no option is lost on the way), every path absolute (the job runs in
/// the run folder), with the grace cut to Slurm's kill wait.
fn node_request(args: &RunArgs, id: &str, grace: u32) -> RunRequest {
    let mut request = RunRequest::from_args(args);
    request.run_id = id.into();
    request.task_file = absolute(&request.task_file);
    request.runs_dir = absolute(&request.runs_dir);
    request.env_files = request.env_files.iter().map(|f| absolute(f)).collect();
    for bind in &mut request.binds {
        bind.host_path = absolute(&bind.host_path);
    }
    request.container_file = request.container_file.as_deref().map(absolute);
    request.grace = grace;
    request.watch_parent = None;
    request
}

/// The job script of this run and the `sbatch` options given beside it.
pub(crate) fn job_script(
    args: &RunArgs,
    plan: &RunPlan,
    id: &str,
    run_dir: &Path,
    settings: &SlurmSettings,
    kill_wait: Option<u64>,
) -> JobScript {
    let grace = script::node_grace(args.grace, kill_wait);
    let mut argv: Vec<OsString> = node_request(args, id, grace).argv();
    argv.push("--adopt-queued".into());
    JobScript {
        job_name: script::job_name(&plan.task_name, id),
        run_dir: absolute(run_dir),
        partition: settings.partition.clone(),
        account: settings.account.clone(),
        qos: settings.qos.clone(),
        memory_mib: script::memory_mib(plan.limits.memory_bytes),
        cpus: plan.limits.cpu_millis.map(|m| m.div_ceil(1000).max(1)),
        gpus: plan.limits.gpus,
        time_minutes: script::time_minutes(args.timeout, grace),
        tapir: tapir_on_node(settings),
        args: argv,
    }
}

/// The tapir binary the job runs: the site's setting, else this very binary (a shared
/// install, or a single-machine cluster).
pub(crate) fn tapir_on_node(settings: &SlurmSettings) -> PathBuf {
    settings
        .tapir_on_node
        .clone()
        .unwrap_or_else(|| std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tapir")))
}

/// `sbatch` as it is called (for the dry run).
pub(crate) fn sbatch_line(settings: &SlurmSettings, script_path: &Path) -> String {
    let mut words = vec!["sbatch".to_string(), "--parsable".to_string()];
    words.extend(settings.sbatch_args.clone().unwrap_or_default());
    words.push(script_path.display().to_string());
    command_line(words)
}

/// What `run --dry-run --executor slurm` adds: the job script and the `sbatch` call.
pub(crate) fn dry_run(
    args: &RunArgs,
    plan: &RunPlan,
    id: &str,
    run_dir: &Path,
) -> Result<(String, String)> {
    let settings = settings(args)?;
    // A dry run asks Slurm nothing: the grace is computed for Slurm's default KillWait.
    let script = job_script(args, plan, id, run_dir, &settings, None);
    Ok((
        script.render(),
        sbatch_line(&settings, &absolute(run_dir).join(script::SCRIPT_FILE)),
    ))
}

/// Submits the run and, unless `--detach`, follows it to its end.
pub(crate) fn submit_and_follow(
    args: &RunArgs,
    plan: &RunPlan,
    mut record: RunRecord,
    run_dir: &Path,
    color: ColorChoice,
) -> Result<ExitStatus> {
    let p = Printer::for_stderr(color);
    let settings = match settings(args) {
        Ok(s) => s,
        Err(e) => {
            output::stderr(&format!("{} {e}\n", p.red("error:")));
            return Ok(ExitStatus::NotStarted);
        }
    };
    let kill_wait = client::kill_wait_seconds();
    let script = job_script(args, plan, &record.id, run_dir, &settings, kill_wait);
    record.executor = Some(job::slurm_record(
        settings.partition.clone(),
        settings.account.clone(),
        settings.qos.clone(),
    ));
    record.plan = Some(plan.clone());
    record.warnings = plan.warnings.clone();
    record.pid = None;
    let task = plan.task_name.clone();
    let id = record.id.clone();
    // Ctrl-C, SIGTERM, SIGHUP: cancel the job (a second one ends tapir at once).
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, interrupted.clone());
        let _ = signal_hook::flag::register(signal, interrupted.clone());
    }
    let submitted = match job::submit(
        Submission {
            record,
            runs_dir: absolute(&args.runs_dir),
            script,
            sbatch_args: settings.sbatch_args.clone().unwrap_or_default(),
        },
        "",
    ) {
        Ok(submitted) => submitted,
        Err(e) => {
            output::stderr(&format!(
                "{} {e}\ntapir: the task was not submitted\n",
                p.red("error:")
            ));
            return Ok(ExitStatus::NotStarted);
        }
    };
    let dir = submitted.run_dir.clone();
    if args.detach {
        output::stdout(&format!("{id}\n"));
        output::stderr(&format!(
            "tapir: task `{task}` queued as Slurm job {}\n  logs:   tapir logs --follow {id}\n  record: {}\n",
            submitted.job_id,
            dir.display()
        ));
        return Ok(ExitStatus::Success);
    }
    output::stderr(&format!(
        "tapir: task `{task}` queued as Slurm job {}; record: {}\n",
        submitted.job_id,
        dir.display()
    ));
    follow(&dir, &submitted.job_id, &interrupted, p)?;
    let summary = RunSummary::load(&dir).map_err(|e| Error::Record(e.to_string()))?;
    let message = summary.message.clone().unwrap_or_default();
    let duration = summary
        .duration_seconds()
        .map(|s| format!(" after {s:.1}s"))
        .unwrap_or_default();
    let headline = match summary.status {
        Status::Succeeded => p.green(&format!("task `{task}` {message}{duration}")),
        Status::Cancelled => p.yellow(&format!("task `{task}` {message}{duration}")),
        _ => p.red(&format!("task `{task}` ended{duration}: {message}")),
    };
    output::stderr(&format!("tapir: {headline}; record: {}\n", dir.display()));
    Ok(summary.exit_status())
}

/// Echoes the run's output while it runs, until its record is final: the record is read
/// often (a file), Slurm asked backing off (one `squeue`); a failing `squeue` is said
/// once and waited through.
fn follow(dir: &Path, job_id: &str, interrupted: &AtomicBool, p: Printer) -> Result<()> {
    let mut reader: Option<LogReader> = None;
    let mut cursor = Cursor::default();
    let mut poll = job::FIRST_POLL;
    let mut next_ask = Instant::now() + poll;
    let mut said_unknown = false;
    let mut said_pending = false;
    let mut echo = |stream: Stream, _: u64, bytes: &[u8]| -> std::io::Result<()> {
        match stream {
            Stream::Stdout => std::io::stdout().write_all(bytes),
            Stream::Stderr => std::io::stderr().write_all(bytes),
        }
    };
    loop {
        let summary = RunSummary::load(dir).map_err(|e| Error::Record(e.to_string()))?;
        if reader.is_none() && dir.join(crate::record::logs::INDEX_FILE).exists() {
            reader = LogReader::open(dir).ok();
        }
        if let Some(reader) = &reader {
            let _ = reader.replay_indexed(&mut cursor, None, &mut echo);
        }
        if !summary.status.is_active() {
            if let Some(reader) = &reader {
                let _ = reader.replay_rest(&mut cursor, None, &mut echo);
            }
            return Ok(());
        }
        if interrupted.load(Ordering::SeqCst) {
            output::stderr(&format!(
                "\ntapir: cancelling Slurm job {job_id} (Ctrl-C again ends tapir at once; the job is cancelled anyway)\n"
            ));
            if let Err(e) = job::cancel_and_wait(dir, job_id) {
                output::stderr(&format!("{} {e}\n", p.red("error:")));
                return Ok(());
            }
            interrupted.store(false, Ordering::SeqCst);
            continue;
        }
        if Instant::now() >= next_ask {
            match job::look(&[dir.to_path_buf()]).remove(dir) {
                Some(Seen::Unknown(e)) if !said_unknown => {
                    said_unknown = true;
                    output::stderr(&format!(
                        "{} cannot ask Slurm about job {job_id}, still waiting for its record: {e}\n",
                        p.yellow("warning:")
                    ));
                }
                Some(Seen::Active(state))
                    if state.is_pending() && state.reason != "None" && !said_pending =>
                {
                    said_pending = true;
                    output::stderr(&format!(
                        "tapir: job {job_id} is pending ({})\n",
                        state.reason
                    ));
                }
                _ => {}
            }
            poll = job::next_poll(poll);
            next_ask = Instant::now() + poll;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
