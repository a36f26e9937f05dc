//! The typed request for one `tapir run`: what an executor starts for an attempt, and
//! what `tapir run` itself works from (`commands/run.rs` reads its settings from this
//! value, not from the raw flags). It is turned into `tapir run` arguments
//! ([`RunRequest::argv`]) and read back from the parsed ones ([`RunRequest::from_args`]);
//! the round trip is the identity (tested), so a pipeline attempt gets exactly the
//! settings the request says, through the same parser and checks as a `tapir run` typed
//! by hand, and the two cannot drift apart.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::cli::{Mode, RunArgs, UserChoice};
use crate::record::store;
use crate::resolve::env_input::EnvOverride;
use crate::resolve::plan::PlannedBind;
use crate::resolve::run_options::EngineOptions;
#[cfg(test)]
use crate::resolve::run_options::{GpuRequest, parse_publish};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunRequest {
    pub task_file: PathBuf,
    /// The folder the run folder `task_run-<run_id>` is made in.
    pub runs_dir: PathBuf,
    /// Assigned by the caller, so the run folder is known before the run starts.
    pub run_id: String,
    pub mode: Mode,
    /// `--env NAME=VALUE`, in order.
    pub env: Vec<EnvOverride>,
    /// `--env-file`, in order.
    pub env_files: Vec<PathBuf>,
    /// Where variables of the env files really come from (`--env-source NAME=SOURCE`).
    pub env_sources: Vec<EnvOverride>,
    pub binds: Vec<PlannedBind>,
    pub container_file: Option<PathBuf>,
    pub pull: bool,
    pub user: UserChoice,
    pub network: Option<String>,
    pub entrypoint: Option<String>,
    /// `--shm-size`, `--gpus`, `--publish`, `--engine-arg`.
    pub engine: EngineOptions,
    pub keep: bool,
    pub grace: u32,
    pub timeout: Option<u64>,
    /// The run is cancelled when this process is gone.
    pub watch_parent: Option<u32>,
    /// `--executor k8s`: the run is a Kubernetes Pod, in this kubectl context and
    /// namespace (each `None`: kubectl's default).
    pub kubernetes: Option<KubernetesPlace>,
}

/// Where a Kubernetes run goes (`--context`, `--namespace`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KubernetesPlace {
    pub context: Option<String>,
    pub namespace: Option<String>,
}

impl RunRequest {
    /// The task run folder the run will make.
    pub(crate) fn run_dir(&self) -> PathBuf {
        self.runs_dir
            .join(format!("{}{}", store::RUN_DIR_PREFIX, self.run_id))
    }

    /// The arguments of `tapir run` (after `tapir`) that ask for this run.
    pub(crate) fn argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["run".into(), self.task_file.clone().into()];
        let mut pair = |flag: &str, value: OsString| {
            argv.push(flag.into());
            argv.push(value);
        };
        pair("--runs-dir", self.runs_dir.clone().into());
        pair("--run-id", self.run_id.clone().into());
        pair("--mode", self.mode.name().into());
        for var in &self.env {
            pair("--env", format!("{}={}", var.name, var.value).into());
        }
        for file in &self.env_files {
            pair("--env-file", file.clone().into());
        }
        for source in &self.env_sources {
            pair(
                "--env-source",
                format!("{}={}", source.name, source.value).into(),
            );
        }
        for bind in &self.binds {
            let mut text = OsString::from(&bind.host_path);
            text.push(format!(
                ":{}:{}",
                bind.container_path,
                if bind.read_only { "ro" } else { "rw" }
            ));
            pair("--bind", text);
        }
        if let Some(file) = &self.container_file {
            pair("--container-file", file.clone().into());
        }
        let user = match self.user {
            UserChoice::Invoker => "invoker",
            UserChoice::Image => "image",
        };
        pair("--user", user.into());
        if let Some(network) = &self.network {
            pair("--network", network.into());
        }
        if let Some(entrypoint) = &self.entrypoint {
            pair("--entrypoint", entrypoint.into());
        }
        if let Some(bytes) = self.engine.shm_size_bytes {
            pair("--shm-size", bytes.to_string().into());
        }
        if let Some(gpus) = &self.engine.gpus {
            pair("--gpus", gpus.to_string().into());
        }
        for port in &self.engine.ports {
            pair("--publish", port.to_string().into());
        }
        for arg in &self.engine.engine_args {
            // The value may start with `-`: `--engine-arg` takes it all the same.
            pair("--engine-arg", arg.into());
        }
        pair("--grace", self.grace.to_string().into());
        if let Some(seconds) = self.timeout {
            pair("--timeout", seconds.to_string().into());
        }
        if let Some(pid) = self.watch_parent {
            pair("--watch-parent", pid.to_string().into());
        }
        if let Some(place) = &self.kubernetes {
            pair("--executor", "k8s".into());
            if let Some(context) = &place.context {
                pair("--context", context.into());
            }
            if let Some(namespace) = &place.namespace {
                pair("--namespace", namespace.into());
            }
        }
        if self.pull {
            argv.push("--pull".into());
        }
        if self.keep {
            argv.push("--keep".into());
        }
        argv.push("--color=never".into());
        argv
    }

    /// The request parsed `tapir run` arguments make: `tapir run` works from this value
    /// alone (with the `--env-file` contents read while parsing), whether a user typed
    /// it or a pipeline rendered it with [`RunRequest::argv`]. Without `--run-id` the run
    /// gets a new id here.
    pub(crate) fn from_args(args: &RunArgs) -> Self {
        Self {
            task_file: args.task.clone(),
            runs_dir: args.runs_dir.clone(),
            run_id: args.run_id.clone().unwrap_or_else(store::new_run_id),
            mode: args.mode,
            env: args.env.clone(),
            env_files: args.env_file.iter().map(|f| f.path.clone()).collect(),
            env_sources: args.env_source.clone(),
            binds: args.bind.clone(),
            container_file: args.container_file.clone(),
            pull: args.pull,
            user: args.user,
            network: args.network.clone(),
            entrypoint: args.entrypoint.clone(),
            engine: args.engine.options(),
            keep: args.keep,
            grace: args.grace,
            timeout: args.timeout,
            watch_parent: args.watch_parent,
            kubernetes: (args.executor == crate::executor::ExecutorKind::K8s).then(|| {
                KubernetesPlace {
                    context: args.context.clone(),
                    namespace: args.namespace.clone(),
                }
            }),
        }
    }

    /// A request for `task_file` into `runs_dir` with every option at `tapir run`'s
    /// default.
    pub(crate) fn new(task_file: &Path, runs_dir: &Path, run_id: String, mode: Mode) -> Self {
        Self {
            task_file: task_file.to_path_buf(),
            runs_dir: runs_dir.to_path_buf(),
            run_id,
            mode,
            env: Vec::new(),
            env_files: Vec::new(),
            env_sources: Vec::new(),
            binds: Vec::new(),
            container_file: None,
            pull: false,
            user: UserChoice::Invoker,
            network: None,
            entrypoint: None,
            engine: EngineOptions::default(),
            keep: false,
            grace: 10,
            timeout: None,
            watch_parent: None,
            kubernetes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn parsed(request: &RunRequest) -> Option<RunRequest> {
        let mut argv: Vec<OsString> = vec!["tapir".into()];
        argv.extend(request.argv());
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Command::Run(args),
                ..
            }) => Some(RunRequest::from_args(&args)),
            Ok(_) => None,
            Err(e) => panic!("the request's argv does not parse: {e}"),
        }
    }

    #[test]
    fn a_request_survives_argv_and_the_run_parser_unchanged() {
        let dir = tempfile::tempdir().expect("tmp");
        let task = dir.path().join("a task.json");
        let container = dir.path().join("image.sif");
        let env_file = dir.path().join("vars.env");
        std::fs::write(&task, "{}").expect("write");
        std::fs::write(&container, "").expect("write");
        std::fs::write(&env_file, "A=1\n").expect("write");
        let minimal = RunRequest::new(&task, dir.path(), "01abc".into(), Mode::Docker);
        assert_eq!(parsed(&minimal).as_ref(), Some(&minimal));
        let full = RunRequest {
            env: vec![
                EnvOverride {
                    name: "GREETING".into(),
                    value: "a=b, c:d".into(),
                },
                EnvOverride {
                    name: "EMPTY".into(),
                    value: String::new(),
                },
            ],
            env_files: vec![env_file],
            env_sources: vec![EnvOverride {
                name: "API_TOKEN".into(),
                value: "conf /c/conf.json task_form.a".into(),
            }],
            binds: vec![
                PlannedBind {
                    host_path: dir.path().join("host:with colon"),
                    container_path: "/workflow/config".into(),
                    read_only: true,
                },
                PlannedBind {
                    host_path: dir.path().join("out"),
                    container_path: "/workflow/output".into(),
                    read_only: false,
                },
            ],
            container_file: Some(container),
            pull: true,
            user: UserChoice::Image,
            network: Some("none".into()),
            entrypoint: Some("/bin/sh".into()),
            engine: EngineOptions {
                shm_size_bytes: Some(2 << 30),
                gpus: Some(GpuRequest::Devices(vec!["0".into(), "GPU-1f2e".into()])),
                ports: vec![
                    parse_publish("5000").expect("port"),
                    parse_publish("[::1]:8080:5000/udp").expect("port"),
                    parse_publish("0.0.0.0::80").expect("port"),
                ],
                engine_args: vec![
                    "--cap-add=SYS_PTRACE".into(),
                    "--device".into(),
                    "/dev/fuse".into(),
                    "-w".into(),
                    "--engine-arg".into(),
                    "a b,c".into(),
                ],
            },
            keep: true,
            grace: 3,
            timeout: Some(60),
            watch_parent: Some(4242),
            kubernetes: Some(KubernetesPlace {
                context: Some("kind-dev".into()),
                namespace: Some("team-a".into()),
            }),
            ..RunRequest::new(&task, dir.path(), "01abd".into(), Mode::Apptainer)
        };
        assert_eq!(parsed(&full).as_ref(), Some(&full));
        assert_eq!(
            full.run_dir(),
            dir.path().join(format!("{}01abd", store::RUN_DIR_PREFIX))
        );
    }
}
