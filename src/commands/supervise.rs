//! `tapir supervise RUN_DIR` (hidden): the background half of `tapir run --detach`.
//!
//! The parent wrote the record (plan, argv, container name) and passed the secret values
//! in this process's environment. The supervisor leaves the terminal's session, so closing
//! the terminal does not end it, then runs the job exactly like an attached run, without
//! echo, and writes the final record.

use crate::backend::docker::Docker;
use crate::cli::SuperviseArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::execute::{self, Attachment, Engine, Job};
use crate::record::RunRecord;
use crate::resolve::plan::Direction;

pub(crate) fn run(args: &SuperviseArgs) -> Result<ExitStatus> {
    // A new session: no controlling terminal, so its hang-up and Ctrl-C never reach us.
    // (Fails only if we already lead a process group, which the parent avoids.)
    let _ = nix::unistd::setsid();
    let invalid = |why: String| Error::Record(format!("{}: {why}", args.run_dir.display()));
    let mut record = RunRecord::load(&args.run_dir).map_err(|e| invalid(e.to_string()))?;
    let plan = record
        .plan
        .clone()
        .ok_or_else(|| invalid("the record has no plan tapir can read".into()))?;
    // Secrets were masked in the record and handed over in our environment instead.
    let secret_env: Vec<(String, String)> = if record.mode == "apptainer" {
        std::env::vars()
            .filter(|(name, _)| {
                name.starts_with("APPTAINERENV_") || name == "NVIDIA_VISIBLE_DEVICES"
            })
            .collect()
    } else {
        plan.env
            .iter()
            .filter(|e| e.value.secret)
            .filter_map(|e| std::env::var(&e.name).ok().map(|v| (e.name.clone(), v)))
            .collect()
    };
    let engine = if record.mode == "apptainer" {
        Engine::Apptainer {
            scratch: args.run_dir.join(crate::backend::apptainer::SCRATCH_DIR),
        }
    } else {
        Engine::Docker {
            docker: Docker::locate()?,
            container: record
                .container
                .clone()
                .ok_or_else(|| invalid("the record names no container".into()))?,
        }
    };
    let job = Job {
        engine,
        argv: record.argv.clone(),
        secret_env,
        outputs: record.planned_mounts(Direction::Output),
        memory_limit: plan.limits.memory_bytes,
        grace_seconds: args.grace,
        keep: args.keep,
        timeout_seconds: args.timeout,
    };
    record.pid = Some(std::process::id());
    execute::write_record(&args.run_dir, &record);
    let ends = execute::run_to_end(
        &job,
        &args.run_dir,
        &mut record,
        Attachment {
            echo: false,
            spinner: None,
            hangup_cancels: false,
        },
    );
    Ok(ends)
}
