//! Apptainer: the same `RunPlan` as Docker, rendered as `apptainer exec` (DESIGN.md
//! decision 6), plus the few things tapir needs to ask an apptainer installation.
//!
//! What makes a run behave like the Docker one:
//! - `--containall`: a clean environment, own PID and IPC namespaces, no automatic binds
//!   of home, cwd or /tmp; `--workdir` inside the run folder gives the run its own /tmp,
//!   /var/tmp and home on disk;
//! - every variable is set explicitly (`--env`, or `APPTAINERENV_NAME` in apptainer's own
//!   environment for secrets and for values `--env` cannot carry), and the host's
//!   `APPTAINER_*`/`SINGULARITY*` settings are removed from that environment, so nothing
//!   passes through from the host;
//! - inputs are bound read-only, outputs read-write, at the same container paths;
//! - the template command replaces CMD and keeps ENTRYPOINT (when the image's entrypoint
//!   is known), without a command the image's runscript (ENTRYPOINT + CMD) runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::backend::deadline::{self, CallError};
use crate::backend::docker::RenderedRun;
use crate::error::Error;
use crate::resolve::plan::{Direction, EnvSource, PlannedUser, RunPlan};

/// A run's scratch space inside its run folder (apptainer's `--workdir`: its /tmp,
/// /var/tmp and home).
pub(crate) const SCRATCH_DIR: &str = "scratch";

/// The apptainer installation.
#[derive(Debug, Clone)]
pub(crate) struct Apptainer {
    pub binary: PathBuf,
}

/// What the installed apptainer can do, probed once per run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// `--memory`/`--cpus` exist and cgroups v2 is mounted.
    pub limits: bool,
    /// `--no-eval` exists (apptainer ≥ 1.1).
    pub no_eval: bool,
}

impl Capabilities {
    /// What the newest apptainer can do: every flag tapir knows (for a dry run where no
    /// apptainer is installed).
    pub(crate) fn newest() -> Self {
        Self {
            limits: true,
            no_eval: true,
        }
    }
}

impl Apptainer {
    /// `TAPIR_APPTAINER`, else `apptainer` on PATH.
    pub(crate) fn locate() -> Result<Self, Error> {
        if let Some(path) = std::env::var_os("TAPIR_APPTAINER") {
            return Ok(Self {
                binary: PathBuf::from(path),
            });
        }
        which::which("apptainer")
            .map(|binary| Self { binary })
            .map_err(|_| {
                Error::not_started(
                    "the `apptainer` command was not found on PATH\n  fix: install Apptainer, set TAPIR_APPTAINER to its binary, or use --mode docker",
                )
            })
    }

    /// A command for the apptainer binary with the host's apptainer settings removed
    /// (they would otherwise add binds or variables behind the plan's back).
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        scrub_host_settings(&mut command);
        command
    }

    /// `apptainer --version`, e.g. `apptainer version 1.3.4`.
    pub(crate) fn version(&self) -> Option<String> {
        let out = deadline::output(self.command().arg("--version"), deadline::limit()).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Reads `exec --help` for the flags that vary between versions.
    pub(crate) fn capabilities(&self) -> Capabilities {
        let help = deadline::output(self.command().args(["exec", "--help"]), deadline::limit())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        Capabilities {
            limits: help.contains("--memory") && help.contains("--cpus") && cgroups_v2(),
            no_eval: help.contains("--no-eval"),
        }
    }

    /// Reads one file from an image: straight from a sandbox folder, else by running
    /// `cat` in a contained instance. `Ok(None)` when the file is not there.
    pub(crate) fn read_file(&self, image: &ImageRef, path: &str) -> Result<Option<Vec<u8>>, Error> {
        if let ImageRef::Sandbox(dir) = image {
            let file = dir.join(path.trim_start_matches('/'));
            return match std::fs::read(&file) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::not_started(format!(
                    "cannot read {}: {e}",
                    file.display()
                ))),
            };
        }
        // A registry image is downloaded and converted first: that gets pull time.
        let limit = match image {
            ImageRef::Docker(_) | ImageRef::Oras(_) => deadline::limit() * deadline::PULL_FACTOR,
            _ => deadline::limit(),
        };
        let out = deadline::output(
            self.command()
                .args(["exec", "--containall", &image.argument(), "cat", path]),
            limit,
        )
        .map_err(|e| match e {
            CallError::TimedOut(limit) => Error::not_started(deadline::no_answer(
                &format!("apptainer ({})", self.binary.display()),
                &format!("reading {path} from {}", image.argument()),
                limit,
            )),
            CallError::Spawn(e) => {
                Error::not_started(format!("cannot run {}: {e}", self.binary.display()))
            }
        })?;
        if out.status.success() {
            return Ok(Some(out.stdout));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such file") {
            Ok(None)
        } else {
            Err(Error::not_started(format!(
                "reading {path} from {} with apptainer failed: {}",
                image.argument(),
                stderr.trim()
            )))
        }
    }
}

/// Removes the host's `APPTAINER*`/`SINGULARITY*` variables from a command's environment:
/// they would add binds and variables behind the plan's back.
pub(crate) fn scrub_host_settings(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("APPTAINER") || text.starts_with("SINGULARITY") {
            command.env_remove(&name);
        }
    }
}

/// cgroups v2 (the unified hierarchy), which apptainer needs to apply limits.
pub(crate) fn cgroups_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// An image as apptainer takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImageRef {
    /// A sandbox folder.
    Sandbox(PathBuf),
    /// A SIF file.
    Sif(PathBuf),
    /// `docker://REF`: pulled from a registry by apptainer.
    Docker(String),
    /// `docker-daemon:REF`: taken from the local Docker engine.
    DockerDaemon(String),
    /// `oras://REF`.
    Oras(String),
}

impl ImageRef {
    /// Interprets a task's `image`. Explicit schemes are kept; an existing folder is a
    /// sandbox and an existing file (or `*.sif`) a SIF, relative to `base`; any other
    /// reference is taken from the local Docker engine when it has it (`local_in_docker`),
    /// else from a registry.
    pub(crate) fn parse(
        reference: &str,
        base: &Path,
        local_in_docker: impl FnOnce(&str) -> bool,
    ) -> Self {
        if let Some(rest) = reference.strip_prefix("docker://") {
            return ImageRef::Docker(rest.to_string());
        }
        if let Some(rest) = reference.strip_prefix("docker-daemon:") {
            return ImageRef::DockerDaemon(rest.trim_start_matches("//").to_string());
        }
        if reference.starts_with("oras://") {
            return ImageRef::Oras(reference.to_string());
        }
        let path = base.join(reference);
        if path.is_dir() {
            return ImageRef::Sandbox(path);
        }
        if path.is_file() || reference.ends_with(".sif") {
            return ImageRef::Sif(path);
        }
        if local_in_docker(reference) {
            ImageRef::DockerDaemon(reference.to_string())
        } else {
            ImageRef::Docker(reference.to_string())
        }
    }

    /// The argument apptainer takes.
    pub(crate) fn argument(&self) -> String {
        match self {
            ImageRef::Sandbox(p) | ImageRef::Sif(p) => p.display().to_string(),
            ImageRef::Docker(r) => format!("docker://{r}"),
            ImageRef::DockerDaemon(r) => format!("docker-daemon:{r}"),
            ImageRef::Oras(r) => r.clone(),
        }
    }
}

/// The image facts the rendering needs (known for images in the Docker engine).
#[derive(Debug, Clone, Default)]
pub(crate) struct ImageFacts {
    pub entrypoint: Vec<String>,
    pub working_dir: String,
}

/// `apptainer exec` (or `run`) for a plan: the arguments after the binary, the variables
/// to put in apptainer's own environment (`APPTAINERENV_*`: secrets, and values `--env`
/// cannot carry), and the warnings for what apptainer cannot do here.
pub(crate) fn exec_argv(
    plan: &RunPlan,
    image: &ImageRef,
    facts: &ImageFacts,
    workdir: &Path,
    caps: Capabilities,
) -> (RenderedRun, Vec<String>) {
    let mut warnings = Vec::new();
    // Without a command (and without --entrypoint), the image's runscript is what Docker
    // would run: ENTRYPOINT + CMD.
    let use_runscript = plan.command.is_none() && plan.entrypoint.is_none();
    let mut argv: Vec<String> = vec![if use_runscript { "run" } else { "exec" }.into()];
    argv.push("--containall".into());
    if caps.no_eval {
        argv.push("--no-eval".into());
    }
    argv.extend(["--workdir".into(), workdir.display().to_string()]);
    let pwd = if facts.working_dir.is_empty() {
        "/"
    } else {
        &facts.working_dir
    };
    argv.extend(["--pwd".into(), pwd.to_string()]);
    if plan.limits.gpus.is_some() {
        argv.push("--nv".into());
    }
    let channel_mounts = plan.mounts.iter().map(|m| {
        (
            &m.host_path,
            &m.container_path,
            m.direction == Direction::Input,
        )
    });
    let bind_mounts = plan
        .binds
        .iter()
        .map(|b| (&b.host_path, &b.container_path, b.read_only));
    for (host, container, read_only) in channel_mounts.chain(bind_mounts) {
        let host = host.display().to_string();
        if host.contains(':') || container.contains(':') {
            // `--bind` splits on `:`; `--mount` takes key=value fields.
            let mut spec = format!("type=bind,src={host},dst={container}");
            if read_only {
                spec.push_str(",ro");
            }
            argv.extend(["--mount".into(), spec]);
        } else {
            let mode = if read_only { "ro" } else { "rw" };
            argv.extend(["--bind".into(), format!("{host}:{container}:{mode}")]);
        }
    }
    let mut via_environment = Vec::new();
    for var in &plan.env {
        if var.name == "HOME" {
            // Apptainer refuses to set HOME through the environment; with --containall
            // the run gets its own empty home anyway.
            if let EnvSource::Tapir(_) = var.source {
                continue;
            }
            warnings.push(format!(
                "HOME ({}) is not set under apptainer, which gives each run its own home",
                var.source
            ));
            continue;
        }
        // `--env` is parsed as a comma-separated list of NAME=VALUE pairs with quoting:
        // such values, and secrets, travel in apptainer's environment instead.
        let awkward = var.value.text.contains([',', '"', '=', '\n', '\r', '\'']);
        if var.value.secret || awkward {
            via_environment.push((format!("APPTAINERENV_{}", var.name), var.value.text.clone()));
        } else {
            argv.extend(["--env".into(), format!("{}={}", var.name, var.value.text)]);
        }
    }
    let limits = &plan.limits;
    let any_limit = limits.memory_bytes.is_some()
        || limits.cpu_millis.is_some()
        || limits.memory_reservation_bytes.is_some();
    if any_limit && caps.limits {
        if let Some(memory) = limits.memory_bytes {
            argv.extend([
                "--memory".into(),
                memory.to_string(),
                "--memory-swap".into(),
                memory.to_string(),
            ]);
        }
        if let Some(reservation) = limits.memory_reservation_bytes {
            argv.extend(["--memory-reservation".into(), reservation.to_string()]);
        }
        if let Some(millis) = limits.cpu_millis {
            argv.extend([
                "--cpus".into(),
                format!("{}.{:03}", millis / 1000, millis % 1000),
            ]);
        }
    } else if any_limit {
        warnings.push(
            "memory and CPU limits are NOT enforced: this apptainer cannot apply them (it needs --memory/--cpus support and cgroups v2)".into(),
        );
    }
    if plan.user == PlannedUser::Image {
        warnings.push("--user image has no effect: apptainer always runs as you".into());
    }
    if let Some(network) = &plan.network {
        warnings.push(format!(
            "--network {network} is not passed: apptainer uses the host network"
        ));
    }
    argv.push(image.argument());
    if !use_runscript {
        match &plan.entrypoint {
            Some(entrypoint) => argv.push(entrypoint.clone()),
            None => argv.extend(facts.entrypoint.iter().cloned()),
        }
        argv.extend(plan.command.iter().flatten().cloned());
    }
    (
        RenderedRun {
            argv,
            secret_env: via_environment,
        },
        warnings,
    )
}
