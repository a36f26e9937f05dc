//! The Slurm executor of `pipeline run --executor slurm`: behind the same [`Executor`]
//! trait as the local one, each attempt is submitted as one batch job when the scheduler
//! starts it (its dependencies are done: no `afterok` chains, which stay pending for ever
//! when a dependency fails), and one watcher thread follows all of them — records first,
//! then one `squeue` for every job whose record is not final, backing off.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use super::job::{self, Submission};
use super::script::{self, JobScript};
use super::settings::SlurmSettings;
use crate::executor::{
    AttemptRequest, Event, Executor, Reattached, link_task_run, unsettled_status,
};
use crate::pipeline::record::Attempt;
use crate::record::{RunRecord, Status, store};

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// An attempt in Slurm's hands.
struct Watched {
    task: usize,
    number: u32,
    run_dir: PathBuf,
    job_id: String,
    started_at: jiff::Timestamp,
}

pub(crate) struct SlurmExecutor {
    settings: SlurmSettings,
    kill_wait: Option<u64>,
    /// Submitted attempts not yet reported ended, by task.
    watched: Arc<Mutex<BTreeMap<usize, Watched>>>,
    cancelled: Arc<AtomicBool>,
    /// Jobs `cancel` asked Slurm to cancel: `finish` waits until they left the queue.
    cancelled_jobs: Vec<String>,
    /// Set by `finish`: the watcher stops once nothing is watched.
    finishing: Arc<AtomicBool>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl SlurmExecutor {
    pub(crate) fn new(
        pipeline_dir: &Path,
        settings: SlurmSettings,
        events: mpsc::Sender<Event>,
    ) -> Self {
        let watched: Arc<Mutex<BTreeMap<usize, Watched>>> = Arc::default();
        let cancelled = Arc::new(AtomicBool::new(false));
        let finishing = Arc::new(AtomicBool::new(false));
        let watcher = {
            let watched = watched.clone();
            let cancelled = cancelled.clone();
            let finishing = finishing.clone();
            let pipeline_dir = pipeline_dir.to_path_buf();
            std::thread::spawn(move || {
                watch(&watched, &cancelled, &finishing, &pipeline_dir, &events)
            })
        };
        Self {
            settings,
            kill_wait: super::client::kill_wait_seconds(),
            watched,
            cancelled,
            cancelled_jobs: Vec::new(),
            finishing,
            watcher: Some(watcher),
        }
    }
}

/// Memory, CPUs and GPUs the task file's limits ask for (the task's and an inline
/// template's; a template only the image knows is not read here).
fn task_limits(task_file: &Path) -> (Option<u64>, Option<u64>, Option<u64>) {
    let Ok(loaded) = crate::resolve::task_file::load(task_file) else {
        return (None, None, None);
    };
    let mut limits = BTreeMap::new();
    if let crate::model::TemplateRef::Inline(template) = &loaded.task.template
        && let Some(values) = template.resources.as_ref().and_then(|r| r.limits.as_ref())
    {
        limits.extend(values.clone());
    }
    if let Some(values) = loaded
        .task
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
    {
        limits.extend(values.clone());
    }
    let memory = limits
        .get("memory")
        .and_then(|t| crate::model::quantity::parse_bytes(t).ok());
    let cpus = limits
        .get("cpu")
        .and_then(|t| crate::model::quantity::parse_cpu_millis(t).ok())
        .map(|m| m.div_ceil(1000).max(1));
    let gpus = crate::model::GPU_KEYS
        .iter()
        .find_map(|k| limits.get(*k))
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|n| *n > 0);
    (memory, cpus, gpus)
}

/// The record of a run handed to Slurm, before its node-side tapir has it.
pub(crate) fn queued_record(id: &str, task_file: &Path, mode: &str) -> RunRecord {
    RunRecord::new(id, mode, Status::Queued, task_file.display().to_string())
}

impl Executor for SlurmExecutor {
    fn start(&mut self, request: AttemptRequest) -> Result<(), String> {
        let mut run = request.run.clone();
        let run_dir = absolute(&run.run_dir());
        // Slurm's job replaces the watch on this process: the job outlives a killed
        // pipeline tapir, and `--resume` re-attaches to it.
        run.watch_parent = None;
        run.grace = script::node_grace(run.grace, self.kill_wait);
        // The private values travel in a 0600 file the node-side tapir removes once
        // read, not on a standard input a batch job does not have.
        for file in &mut run.env_files {
            if file == Path::new("/dev/stdin") {
                *file = run_dir.join(job::PRIVATE_ENV_FILE);
            }
        }
        let mut args: Vec<OsString> = run.argv();
        args.push("--adopt-queued".into());
        let (memory, cpus, gpus) = task_limits(&run.task_file);
        let task_name = run
            .task_file
            .file_stem()
            .map(|s| s.to_string_lossy().trim_end_matches(".task").to_string())
            .unwrap_or_default();
        let script = JobScript {
            job_name: script::job_name(&task_name, &run.run_id),
            run_dir: run_dir.clone(),
            partition: self.settings.partition.clone(),
            account: self.settings.account.clone(),
            qos: self.settings.qos.clone(),
            memory_mib: script::memory_mib(memory),
            cpus,
            gpus,
            time_minutes: script::time_minutes(run.timeout, run.grace),
            tapir: self.settings.tapir_on_node.clone().unwrap_or_else(|| {
                std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tapir"))
            }),
            args,
        };
        let mut record = queued_record(&run.run_id, &run.task_file, run.mode.name());
        record.executor = Some(job::slurm_record(
            self.settings.partition.clone(),
            self.settings.account.clone(),
            self.settings.qos.clone(),
        ));
        let submitted = job::submit(
            Submission {
                record,
                runs_dir: absolute(&run.runs_dir),
                script,
                sbatch_args: self.settings.sbatch_args.clone().unwrap_or_default(),
            },
            &request.private_env,
        )?;
        // The task's log says where the attempt went (the job's own output is in its
        // run folder).
        if let Ok(mut log) = store::run_file_options()
            .create(true)
            .append(true)
            .open(&request.log)
        {
            use std::io::Write as _;
            let _ = writeln!(
                log,
                "tapir: attempt {} is Slurm job {} (output {})",
                request.number,
                submitted.job_id,
                script::job_output(&submitted.run_dir, &submitted.job_id).display()
            );
        }
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                request.task,
                Watched {
                    task: request.task,
                    number: request.number,
                    run_dir: submitted.run_dir,
                    job_id: submitted.job_id,
                    started_at: jiff::Timestamp::now(),
                },
            );
        Ok(())
    }

    fn cancel(&mut self, task: usize) {
        self.cancelled.store(true, Ordering::SeqCst);
        let job = self
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&task)
            .map(|w| w.job_id.clone());
        if let Some(job) = job {
            // The node-side tapir gets SIGTERM, stops its container and records the
            // end; the watcher reports it once the record is final.
            let _ = super::client::scancel(&job);
            self.cancelled_jobs.push(job);
        }
    }

    fn reattach(&self, run_dir: &Path) -> Option<Reattached> {
        reattach(run_dir)
    }

    fn finish(&mut self) {
        self.finishing.store(true, Ordering::SeqCst);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        wait_until_gone(&self.cancelled_jobs);
    }
}

impl Drop for SlurmExecutor {
    fn drop(&mut self) {
        // An executor dropped without `finish` (made only to re-attach) ends its watcher.
        self.finishing.store(true, Ordering::SeqCst);
    }
}

/// Waits (bounded by the deadline and a minute) until the cancelled `jobs` have left the
/// queue: a cancelled pipeline ends when its jobs are gone, not merely their records.
fn wait_until_gone(jobs: &[String]) {
    if jobs.is_empty() {
        return;
    }
    let ids: Vec<&str> = jobs.iter().map(String::as_str).collect();
    let limit = crate::backend::deadline::limit() + Duration::from_secs(60);
    let start = std::time::Instant::now();
    let mut poll = job::FIRST_POLL;
    while start.elapsed() < limit {
        if let super::client::QueueAnswer::Known(states) = super::client::squeue(&ids)
            && states.values().all(super::client::JobState::is_final)
        {
            return;
        }
        std::thread::sleep(poll);
        poll = job::next_poll(poll);
    }
}

/// `--resume` of a pipeline whose attempts were Slurm jobs: an attempt whose job is
/// still queued or running is not submitted again; it is waited for (backing off) and
/// its end adopted, as the local executor adopts a task run that ended meanwhile.
pub(crate) fn reattach(run_dir: &Path) -> Option<Reattached> {
    let mut poll = job::FIRST_POLL;
    let mut said = false;
    loop {
        let Ok(record) = RunRecord::load(run_dir) else {
            return Some(Reattached::NoRun);
        };
        if !record.status.is_active() {
            return Some(Reattached::Ended(Box::new(record)));
        }
        if job::pending_job(record.status, record.executor.as_ref()).is_none() {
            // Not a Slurm job (or one never submitted): as the local executor does.
            return crate::executor::local::reattach(run_dir);
        }
        if !said {
            said = true;
            crate::output::stderr(&format!(
                "tapir: waiting for Slurm job {} of task run {} (started before the pipeline tapir was stopped)\n",
                record
                    .executor
                    .as_ref()
                    .and_then(|e| e.job_id.as_deref())
                    .unwrap_or("?"),
                run_dir.display()
            ));
        }
        job::look(&[run_dir.to_path_buf()]);
        std::thread::sleep(poll);
        poll = job::next_poll(poll);
    }
}

/// The watcher: reports each watched attempt's end once its record is final, asking
/// Slurm (one `squeue` for all) only about jobs whose records are not.
fn watch(
    watched: &Mutex<BTreeMap<usize, Watched>>,
    cancelled: &AtomicBool,
    finishing: &AtomicBool,
    pipeline_dir: &Path,
    events: &mpsc::Sender<Event>,
) {
    const RECORD_LOOK: Duration = Duration::from_millis(100);
    let mut poll = job::FIRST_POLL;
    let mut next_ask = std::time::Instant::now() + poll;
    loop {
        let dirs: Vec<(usize, PathBuf)> = watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|w| (w.task, w.run_dir.clone()))
            .collect();
        if dirs.is_empty() {
            if finishing.load(Ordering::SeqCst) {
                return;
            }
            poll = job::FIRST_POLL;
        }
        let mut ended = Vec::new();
        let mut active = Vec::new();
        for (task, dir) in &dirs {
            match crate::record::RunSummary::load(dir) {
                Ok(summary) if !summary.status.is_active() => ended.push(*task),
                _ => active.push(dir.clone()),
            }
        }
        if !active.is_empty() && std::time::Instant::now() >= next_ask {
            // Settles the records of jobs that left the queue without one.
            let seen = job::look(&active);
            for (task, dir) in &dirs {
                if matches!(seen.get(dir), Some(job::Seen::Ended)) && !ended.contains(task) {
                    ended.push(*task);
                }
            }
            poll = job::next_poll(poll);
            next_ask = std::time::Instant::now() + poll;
        }
        for task in ended {
            let Some(w) = watched
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&task)
            else {
                continue;
            };
            let mut attempt = Attempt::started(w.number, w.started_at, Status::EngineError);
            attempt.ended_at = Some(jiff::Timestamp::now());
            match RunRecord::load(&w.run_dir) {
                Ok(run) => {
                    attempt.tapir_exit_code = run.summary().tapir_exit_code().map(i32::from);
                    link_task_run(&mut attempt, &w.run_dir, run, pipeline_dir);
                    if attempt.status.is_active() {
                        attempt.status = unsettled_status(cancelled.load(Ordering::SeqCst));
                    }
                }
                Err(e) => {
                    attempt.status = unsettled_status(cancelled.load(Ordering::SeqCst));
                    attempt.message = Some(format!(
                        "Slurm job {}: its run folder {} has no readable record: {e}",
                        w.job_id,
                        w.run_dir.display()
                    ));
                }
            }
            let _ = events.send(Event::Ended {
                task,
                attempt: Box::new(attempt),
            });
        }
        std::thread::sleep(RECORD_LOOK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_files_limits_become_the_jobs_request() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("t.task.json");
        std::fs::write(
            &file,
            r#"{"name": "t", "image": "i:1", "resources": {"limits": {"memory": "1Gi", "cpu": "2500m", "nvidia.com/gpu": "1"}},
                "taskTemplate": {"identifier": "t", "description": "d", "inputs": [], "outputs": [], "env": [], "command": ["true"],
                                 "resources": {"limits": {"memory": "2Gi"}}}}"#,
        )
        .expect("write");
        assert_eq!(task_limits(&file), (Some(1 << 30), Some(3), Some(1)));
        assert_eq!(
            task_limits(&dir.path().join("missing.json")),
            (None, None, None)
        );
    }
}
