//! The Docker engine: queries about images and containers (through the API socket when
//! possible, the CLI otherwise) and the argv of `docker run` for a `RunPlan`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::deadline::{self, CallError};
use super::engine_api::{self, Response};
use crate::error::Error;
use crate::model::quantity::format_bytes;
use crate::resolve::plan::{
    EnvSource, EnvValue, HOME_FOR_INVOKER, PlannedEnv, PlannedUser, RunPlan,
};
use crate::resolve::run_options::GpuRequest;

/// What tapir needs to know about a local image.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ImageInfo {
    pub id: String,
    pub repo_digests: Vec<String>,
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub env: Vec<String>,
    pub created: String,
    pub size_bytes: u64,
    pub os: String,
    pub architecture: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl ImageInfo {
    fn from_inspect(v: &Value) -> Self {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let config = &v["Config"];
        Self {
            id: v["Id"].as_str().unwrap_or_default().to_string(),
            repo_digests: strings(&v["RepoDigests"]),
            user: config["User"].as_str().unwrap_or_default().to_string(),
            entrypoint: strings(&config["Entrypoint"]),
            cmd: strings(&config["Cmd"]),
            working_dir: config["WorkingDir"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            env: strings(&config["Env"]),
            created: v["Created"].as_str().unwrap_or_default().to_string(),
            size_bytes: v["Size"].as_u64().unwrap_or_default(),
            os: v["Os"].as_str().unwrap_or_default().to_string(),
            architecture: v["Architecture"].as_str().unwrap_or_default().to_string(),
            labels: config["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A container's state after it ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerState {
    pub exit_code: i64,
    pub oom_killed: bool,
    pub started: bool,
    pub error: String,
}

/// The local Docker engine.
#[derive(Debug, Clone)]
pub(crate) struct Docker {
    /// The `docker` binary (`TAPIR_DOCKER` overrides PATH).
    pub binary: PathBuf,
    /// The API socket, when queries can go straight to it.
    socket: Option<PathBuf>,
    /// Set once a call has gone unanswered past its deadline: later calls give up at
    /// once with the same words, so that a silent engine costs one deadline, not one per
    /// call (a run asks it several things on its way to the record).
    silent: Arc<AtomicBool>,
}

/// A call the engine did not answer in time, or could not be made.
#[derive(Debug, Clone)]
pub(crate) enum EngineFailure {
    /// No answer within the deadline (the message names the engine, the call, the
    /// deadline and `TAPIR_ENGINE_TIMEOUT`).
    NoAnswer(String),
    /// Any other failure, in words.
    Other(String),
}

impl std::fmt::Display for EngineFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoAnswer(message) | Self::Other(message) => f.write_str(message),
        }
    }
}

impl From<EngineFailure> for Error {
    fn from(failure: EngineFailure) -> Self {
        Error::not_started(failure.to_string())
    }
}

impl Docker {
    /// Finds the engine. With `TAPIR_DOCKER` set, everything goes through that binary
    /// (so a stand-in sees every call).
    pub(crate) fn locate() -> Result<Self, Error> {
        if let Some(path) = std::env::var_os("TAPIR_DOCKER") {
            return Ok(Self {
                binary: PathBuf::from(path),
                socket: None,
                silent: Arc::default(),
            });
        }
        let binary = which::which("docker").map_err(|_| {
            Error::not_started("the `docker` command was not found on PATH\n  fix: install Docker, or set TAPIR_DOCKER to the docker binary")
        })?;
        Ok(Self {
            binary,
            socket: engine_api::local_socket(),
            silent: Arc::default(),
        })
    }

    pub(crate) fn command(&self) -> Command {
        Command::new(&self.binary)
    }

    /// The engine as messages name it: its socket, or the client and its DOCKER_HOST.
    pub(crate) fn engine_name(&self) -> String {
        match (&self.socket, std::env::var("DOCKER_HOST")) {
            (Some(socket), _) => format!("the Docker engine at unix://{}", socket.display()),
            (None, Ok(host)) if !host.is_empty() => format!(
                "the Docker engine at {host} (through {})",
                self.binary.display()
            ),
            (None, _) => format!("the Docker engine (through {})", self.binary.display()),
        }
    }

    /// The message for a call that went unanswered; later calls fail at once.
    pub(crate) fn no_answer(&self, what: &str, limit: Duration) -> EngineFailure {
        self.silent.store(true, Ordering::SeqCst);
        EngineFailure::NoAnswer(deadline::no_answer(&self.engine_name(), what, limit))
    }

    /// Has a call gone unanswered (so every later one gives up at once)?
    pub(crate) fn went_silent(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }

    /// `Err` at once when the engine already left a call unanswered.
    fn still_silent(&self, what: &str) -> Result<(), EngineFailure> {
        if self.silent.load(Ordering::SeqCst) {
            return Err(self.no_answer(what, deadline::limit()));
        }
        Ok(())
    }

    /// One request on the API socket within the deadline. `Ok(None)` when there is no
    /// socket or it cannot be reached (the CLI then tries, and explains in its words).
    fn api(&self, method: &str, path: &str, what: &str) -> Result<Option<Response>, EngineFailure> {
        let Some(socket) = &self.socket else {
            return Ok(None);
        };
        self.still_silent(what)?;
        let limit = deadline::limit();
        match engine_api::request(socket, method, path, limit) {
            Ok(response) => Ok(Some(response)),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(self.no_answer(what, limit)),
            Err(_) => Ok(None),
        }
    }

    /// A request with headers or a body on the API socket within `limit`; `Ok(None)`
    /// when there is no socket or it cannot be reached.
    pub(crate) fn api_send(
        &self,
        request: engine_api::Request,
        what: &str,
        limit: Duration,
    ) -> Result<Option<Response>, EngineFailure> {
        let Some(socket) = &self.socket else {
            return Ok(None);
        };
        self.still_silent(what)?;
        match engine_api::send(socket, request, limit) {
            Ok(response) => Ok(Some(response)),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(self.no_answer(what, limit)),
            Err(_) => Ok(None),
        }
    }

    /// Is the engine's API socket reachable directly (else everything goes through the CLI)?
    pub(crate) fn has_socket(&self) -> bool {
        self.socket.is_some()
    }

    /// Runs the `docker` client with `args` within `limit`, output collected.
    pub(crate) fn cli(&self, args: &[&str], limit: Duration) -> Result<Output, EngineFailure> {
        let what = format!("`docker {}`", args.join(" "));
        self.still_silent(&what)?;
        match deadline::output(self.command().args(args), limit) {
            Ok(output) => Ok(output),
            Err(CallError::TimedOut(limit)) => Err(self.no_answer(&what, limit)),
            Err(CallError::Spawn(e)) => Err(EngineFailure::Other(self.spawn_message(&e))),
        }
    }

    /// Inspects a local image; `Ok(None)` when it is not present.
    pub(crate) fn image(&self, reference: &str) -> Result<Option<ImageInfo>, Error> {
        let path = format!("/images/{}/json", engine_api::encode(reference));
        if let Some(response) = self.api("GET", &path, &format!("inspecting image {reference}"))? {
            return match response.status {
                200 => {
                    let v: Value = serde_json::from_slice(&response.body).map_err(|e| {
                        Error::not_started(format!(
                            "the engine's answer about image {reference} is not JSON: {e}"
                        ))
                    })?;
                    Ok(Some(ImageInfo::from_inspect(&v)))
                }
                404 => Ok(None),
                status => Err(engine_error(
                    &format!("inspecting image {reference}"),
                    status,
                    &response.body,
                )),
            };
        }
        let output = self.cli(
            &["image", "inspect", "--format", "{{json .}}", reference],
            deadline::limit(),
        )?;
        if output.status.success() {
            let v: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
                Error::not_started(format!(
                    "`docker image inspect {reference}` did not print JSON: {e}"
                ))
            })?;
            return Ok(Some(ImageInfo::from_inspect(&v)));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such image") || stderr.contains("No such object") {
            Ok(None)
        } else {
            Err(cli_error(
                &format!("docker image inspect {reference}"),
                &stderr,
            ))
        }
    }

    /// Pulls an image, its progress on the terminal, within [`deadline::PULL_FACTOR`]
    /// deadlines (a download may rightly take minutes).
    pub(crate) fn pull(&self, reference: &str) -> Result<bool, EngineFailure> {
        let what = format!("`docker pull {reference}`");
        self.still_silent(&what)?;
        let limit = deadline::limit() * deadline::PULL_FACTOR;
        match deadline::status(
            self.command()
                .args(["pull", reference])
                .stdin(Stdio::null()),
            limit,
        ) {
            Ok(output) => Ok(output.status.success()),
            Err(CallError::TimedOut(limit)) => Err(self.no_answer(&what, limit)),
            Err(CallError::Spawn(e)) => Err(EngineFailure::Other(self.spawn_message(&e))),
        }
    }

    /// The state of a container (by name or id); `None` when it does not exist or the
    /// engine did not say.
    pub(crate) fn container(&self, name: &str) -> Option<ContainerState> {
        self.container_state(name).ok().flatten()
    }

    /// The state of a container: `Ok(None)` when it does not exist, `Err` when the
    /// engine did not answer in time.
    pub(crate) fn container_state(
        &self,
        name: &str,
    ) -> Result<Option<ContainerState>, EngineFailure> {
        let path = format!("/containers/{}/json", engine_api::encode(name));
        let what = format!("inspecting container {name}");
        let v: Value = match self.api("GET", &path, &what)? {
            Some(response) if response.status == 200 => {
                match serde_json::from_slice(&response.body) {
                    Ok(v) => v,
                    Err(_) => return Ok(None),
                }
            }
            Some(_) => return Ok(None),
            None => {
                let output = self.cli(
                    &["container", "inspect", "--format", "{{json .}}", name],
                    deadline::limit(),
                )?;
                if !output.status.success() {
                    return Ok(None);
                }
                match serde_json::from_slice(&output.stdout) {
                    Ok(v) => v,
                    Err(_) => return Ok(None),
                }
            }
        };
        let state = &v["State"];
        Ok(Some(ContainerState {
            exit_code: state["ExitCode"].as_i64().unwrap_or(-1),
            oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
            started: state["StartedAt"]
                .as_str()
                .is_some_and(|s| !s.starts_with("0001-")),
            error: state["Error"].as_str().unwrap_or_default().to_string(),
        }))
    }

    /// Removes a container (forcibly, so a running one is killed first).
    pub(crate) fn remove(&self, name: &str) -> Result<(), EngineFailure> {
        let path = format!("/containers/{}?force=true", engine_api::encode(name));
        if let Some(response) = self.api("DELETE", &path, &format!("removing container {name}"))? {
            return match response.status {
                204 | 404 => Ok(()),
                status => Err(EngineFailure::Other(format!(
                    "the engine answered {status}: {}",
                    String::from_utf8_lossy(&response.body).trim()
                ))),
            };
        }
        let output = self.cli(&["rm", "--force", name], deadline::limit())?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() || stderr.contains("No such container") {
            Ok(())
        } else {
            Err(EngineFailure::Other(stderr.trim().to_string()))
        }
    }

    /// Stops a container: SIGTERM (through `--init`), then SIGKILL after `grace_seconds`;
    /// the client gets the grace period on top of the deadline.
    /// `Err` only when the engine did not answer in time (a container that is already
    /// gone, or any other refusal, leaves nothing for the caller to do).
    pub(crate) fn stop(&self, name: &str, grace_seconds: u32) -> Result<(), EngineFailure> {
        let limit = deadline::limit() + Duration::from_secs(grace_seconds.into());
        match self.cli(&["stop", "--time", &grace_seconds.to_string(), name], limit) {
            Err(failure @ EngineFailure::NoAnswer(_)) => Err(failure),
            _ => Ok(()),
        }
    }

    /// Reads one file out of an image without running it: create a container (never
    /// started), copy the file out as a tar stream, remove the container. Works for
    /// images without a shell. `Ok(None)` when the file is not in the image.
    pub(crate) fn read_file_from_image(
        &self,
        image: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let created = self.cli(
            &[
                "create",
                "--label",
                "tapir.helper=read-file",
                image,
                "tapir-never-started",
            ],
            deadline::limit(),
        )?;
        if !created.status.success() {
            return Err(cli_error(
                &format!("docker create {image}"),
                &String::from_utf8_lossy(&created.stderr),
            ));
        }
        let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
        // -L: an image may link /processing-container.json to its real place;
        // without it docker sends the link, not the file.
        let copied = self.cli(
            &["cp", "-L", &format!("{id}:{path}"), "-"],
            deadline::limit(),
        );
        let _ = self.remove(&id);
        let copied = copied?;
        if !copied.status.success() {
            let stderr = String::from_utf8_lossy(&copied.stderr);
            if stderr.contains("Could not find") || stderr.contains("No such") {
                return Ok(None);
            }
            return Err(cli_error(
                &format!("docker cp {path} from {image}"),
                &stderr,
            ));
        }
        first_tar_member(&copied.stdout).map(Some).ok_or_else(|| {
            Error::not_started(format!(
                "`docker cp` of {path} from {image} did not return a file"
            ))
        })
    }

    fn spawn_message(&self, e: &std::io::Error) -> String {
        format!(
            "cannot run {}: {e}\n  fix: check that Docker is installed (or TAPIR_DOCKER points at it)",
            self.binary.display()
        )
    }

    /// The engine's `/info` (daemon facts: security options, cgroup version, runtimes),
    /// or why there is none: no answer in time, or another failure.
    pub(crate) fn info(&self) -> Result<Value, EngineFailure> {
        let unreadable = || EngineFailure::Other("the daemon's answer is not JSON".into());
        if let Some(response) = self.api("GET", "/info", "GET /info")? {
            if response.status != 200 {
                return Err(EngineFailure::Other(format!(
                    "the daemon answered {}",
                    response.status
                )));
            }
            return serde_json::from_slice(&response.body).map_err(|_| unreadable());
        }
        let output = self.cli(&["info", "--format", "{{json .}}"], deadline::limit())?;
        if !output.status.success() {
            return Err(EngineFailure::Other(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|_| unreadable())
    }

    /// The client's version (`docker --version`: the client alone, so it answers even
    /// when the daemon does not).
    pub(crate) fn client_version(&self) -> Option<String> {
        let output = deadline::output(self.command().arg("--version"), deadline::limit()).ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        // "Docker version 27.3.1, build ce12230"
        let version = text
            .trim()
            .strip_prefix("Docker version ")
            .unwrap_or(text.trim())
            .split(',')
            .next()
            .unwrap_or_default()
            .to_string();
        (output.status.success() && !version.is_empty()).then_some(version)
    }

    /// The containers tapir started (label `tapir.run-id`), running or not.
    pub(crate) fn tapir_containers(&self) -> Result<Vec<LabelledContainer>, EngineFailure> {
        let filter = format!(r#"{{"label":["{RUN_ID_LABEL}"]}}"#);
        let path = format!(
            "/containers/json?all=1&filters={}",
            engine_api::encode(&filter)
        );
        let listed: Value = match self.api("GET", &path, "listing tapir's containers")? {
            Some(response) => {
                if response.status != 200 {
                    return Err(EngineFailure::Other(
                        engine_error("listing containers", response.status, &response.body)
                            .to_string(),
                    ));
                }
                serde_json::from_slice(&response.body).map_err(|e| {
                    EngineFailure::Other(format!("the engine's container list is not JSON: {e}"))
                })?
            }
            None => {
                let output = self.cli(
                    &[
                        "ps",
                        "--all",
                        "--no-trunc",
                        "--filter",
                        &format!("label={RUN_ID_LABEL}"),
                        "--format",
                        "{{json .}}",
                    ],
                    deadline::limit(),
                )?;
                if !output.status.success() {
                    return Err(EngineFailure::Other(
                        cli_error("docker ps", &String::from_utf8_lossy(&output.stderr))
                            .to_string(),
                    ));
                }
                // One JSON object per line, with `Names` and a `Labels` string `k=v,k=v`.
                Value::Array(
                    String::from_utf8_lossy(&output.stdout)
                        .lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                        .map(|v| {
                            let labels: serde_json::Map<String, Value> = v["Labels"]
                                .as_str()
                                .unwrap_or_default()
                                .split(',')
                                .filter_map(|kv| kv.split_once('='))
                                .map(|(k, v)| (k.to_string(), Value::from(v)))
                                .collect();
                            serde_json::json!({
                                "Names": [format!("/{}", v["Names"].as_str().unwrap_or_default())],
                                "Labels": labels,
                                "State": v["State"],
                            })
                        })
                        .collect(),
                )
            }
        };
        Ok(listed
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| LabelledContainer {
                        name: c["Names"][0]
                            .as_str()
                            .unwrap_or_default()
                            .trim_start_matches('/')
                            .to_string(),
                        run_id: c["Labels"][RUN_ID_LABEL]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        run_dir: c["Labels"][RUN_DIR_LABEL].as_str().map(PathBuf::from),
                        running: c["State"].as_str() == Some("running"),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// The label holding the run id on every container tapir starts.
pub(crate) const RUN_ID_LABEL: &str = "tapir.run-id";
/// The label holding the absolute run folder, so any later command can find the record.
pub(crate) const RUN_DIR_LABEL: &str = "tapir.run-dir";

/// A container started by tapir, as listed by the engine.
#[derive(Debug, Clone)]
pub(crate) struct LabelledContainer {
    pub name: String,
    pub run_id: String,
    pub run_dir: Option<PathBuf>,
    pub running: bool,
}

/// `docker run` for a plan: the arguments after the binary, and the secret variables,
/// which are passed as `-e NAME` with their value in docker's own environment so that they
/// never appear in an argv, a process list or a record.
#[derive(Debug, Clone)]
pub(crate) struct RenderedRun {
    pub argv: Vec<String>,
    pub secret_env: Vec<(String, String)>,
}

pub(crate) fn container_name(run_id: &str) -> String {
    format!("tapir-{run_id}")
}

/// `run_dir` goes into a label (with the id), so that a container whose tapir was killed
/// can be traced back to its record by later commands.
/// Docker refuses memory limits below 6 MB; a computed limit under it is raised.
pub(crate) const DOCKER_MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// The rules only Docker needs, applied to a resolved plan before it is rendered and
/// recorded (so records and `show` say what Docker was given); returns the warnings.
/// - A task run as the invoking user gets `HOME=/tmp` unless something set HOME: that
///   user's HOME in the image may not exist or not be writable. (Apptainer gives each run
///   its own home instead.)
/// - A memory limit under Docker's minimum is raised to it.
pub(crate) fn adapt_plan(plan: &mut RunPlan) -> Vec<String> {
    let mut warnings = Vec::new();
    if let PlannedUser::Invoker { .. } = plan.user
        && !plan.env.iter().any(|e| e.name == "HOME")
    {
        plan.env.push(PlannedEnv {
            name: "HOME".into(),
            value: EnvValue {
                text: "/tmp".into(),
                secret: false,
            },
            source: EnvSource::Tapir(HOME_FOR_INVOKER),
        });
    }
    let limits = &mut plan.limits;
    if let Some(m) = limits.memory_bytes.filter(|m| *m < DOCKER_MIN_MEMORY) {
        warnings.push(format!(
            "the memory limit {} is below Docker's minimum of 6 MiB; raised to 6 MiB",
            format_bytes(m)
        ));
        limits.memory_bytes = Some(DOCKER_MIN_MEMORY);
        limits.memory_reason = Some(format!(
            "{} (raised to Docker's minimum)",
            limits.memory_reason.clone().unwrap_or_default()
        ));
    }
    warnings
}

/// The arguments of `docker run` for a plan (after `adapt_plan`).
pub(crate) fn run_argv(plan: &RunPlan, run_id: &str, run_dir: &Path) -> RenderedRun {
    let mut argv: Vec<String> = vec!["run".into(), "--name".into(), container_name(run_id)];
    // `--init` gives the task a PID 1 that forwards signals, so `docker stop` works even
    // for shells and programs without signal handlers.
    argv.extend(
        [
            "--init",
            "--security-opt",
            "no-new-privileges",
            "--pull",
            "never",
        ]
        .map(String::from),
    );
    argv.push("--label".into());
    argv.push(format!("{RUN_ID_LABEL}={run_id}"));
    argv.push("--label".into());
    argv.push(format!("{RUN_DIR_LABEL}={}", run_dir.display()));
    for (key, value) in &plan.labels {
        argv.push("--label".into());
        argv.push(format!("{key}={value}"));
    }
    if let PlannedUser::Invoker { uid, gid } = plan.user {
        argv.push("--user".into());
        argv.push(format!("{uid}:{gid}"));
    }
    if let Some(network) = &plan.network {
        argv.push("--network".into());
        argv.push(network.clone());
    }
    if let Some(memory) = plan.limits.memory_bytes {
        // Swap equal to the limit: the limit is the memory the task gets, no more.
        argv.extend([
            "--memory".into(),
            memory.to_string(),
            "--memory-swap".into(),
            memory.to_string(),
        ]);
    }
    if let Some(reservation) = plan.limits.memory_reservation_bytes {
        argv.extend(["--memory-reservation".into(), reservation.to_string()]);
    }
    if let Some(millis) = plan.limits.cpu_millis {
        argv.extend([
            "--cpus".into(),
            format!("{}.{:03}", millis / 1000, millis % 1000),
        ]);
    }
    match plan.gpu_request() {
        None => {}
        // Docker reads `--gpus` as CSV: a list of devices must be quoted to keep its comma.
        Some(GpuRequest::Devices(devices)) => {
            argv.extend(["--gpus".into(), format!("\"device={}\"", devices.join(","))]);
        }
        Some(gpus) => argv.extend(["--gpus".into(), gpus.to_string()]),
    }
    if let Some(bytes) = plan.engine.shm_size_bytes {
        argv.extend(["--shm-size".into(), bytes.to_string()]);
    }
    for port in &plan.engine.ports {
        argv.extend(["--publish".into(), port.docker_spec()]);
    }
    let channel_mounts = plan
        .mounts
        .iter()
        .map(|m| (&m.host_path, &m.container_path, m.read_only));
    let bind_mounts = plan
        .binds
        .iter()
        .map(|b| (&b.host_path, &b.container_path, b.read_only));
    for (host, container, read_only) in channel_mounts.chain(bind_mounts) {
        argv.push("--mount".into());
        let mut spec = format!("type=bind,source={},target={container}", host.display());
        if read_only {
            spec.push_str(",readonly");
        }
        argv.push(spec);
    }
    let mut secret_env = Vec::new();
    for var in &plan.env {
        argv.push("-e".into());
        if var.value.secret {
            argv.push(var.name.clone());
            secret_env.push((var.name.clone(), var.value.text.clone()));
        } else {
            argv.push(format!("{}={}", var.name, var.value.text));
        }
    }
    if let Some(entrypoint) = &plan.entrypoint {
        argv.extend(["--entrypoint".into(), entrypoint.clone()]);
    }
    // Last before the image, verbatim (refused ones were stopped by `engine_args::check`).
    argv.extend(plan.engine.engine_args.iter().cloned());
    argv.push(plan.image.clone());
    if let Some(command) = &plan.command {
        argv.extend(command.iter().cloned());
    }
    RenderedRun { argv, secret_env }
}

pub(crate) fn engine_error(what: &str, status: u16, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    Error::not_started(format!(
        "the Docker engine failed while {what} ({status}): {message}"
    ))
}

pub(crate) fn cli_error(what: &str, stderr: &str) -> Error {
    let stderr = stderr.trim();
    if stderr.contains("Cannot connect to the Docker daemon")
        || stderr.contains("Is the docker daemon running")
    {
        return Error::not_started(format!(
            "the Docker engine does not answer ({stderr})\n  fix: start Docker (`sudo systemctl start docker`), or check DOCKER_HOST"
        ));
    }
    Error::not_started(format!("`{what}` failed: {stderr}"))
}

/// The content of the first regular file in a tar stream (what `docker cp … -` writes).
fn first_tar_member(tar: &[u8]) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.header().entry_type().is_file() {
            let size = entry.size();
            let mut content = Vec::with_capacity(size.try_into().unwrap_or(0));
            std::io::Read::read_to_end(&mut entry, &mut content).ok()?;
            // A cut stream reads short without an error: never take half a file.
            return (content.len() as u64 == size).then_some(content);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_tar_member;

    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            if kind.is_symlink() {
                header.set_link_name("opt/real.json").unwrap();
            }
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn the_first_regular_file_is_returned() {
        let tar = archive(&[("processing-container.json", tar::EntryType::Regular, b"{}")]);
        assert_eq!(first_tar_member(&tar).as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn long_names_and_links_before_the_file_are_skipped() {
        // A name over 100 bytes makes GNU tar write a `L` long-name entry first.
        let long = format!("{}/processing-container.json", "d".repeat(120));
        let tar = archive(&[
            ("link.json", tar::EntryType::Symlink, b""),
            (&long, tar::EntryType::Regular, b"{\"name\": \"x\"}"),
        ]);
        assert_eq!(
            first_tar_member(&tar).as_deref(),
            Some(&b"{\"name\": \"x\"}"[..])
        );
    }

    #[test]
    fn a_stream_without_a_file_or_a_truncated_one_gives_none() {
        let link = archive(&[("link.json", tar::EntryType::Symlink, b"")]);
        assert_eq!(first_tar_member(&link), None);
        let mut cut = archive(&[("a.json", tar::EntryType::Regular, &[b'x'; 2000])]);
        cut.truncate(1024);
        assert_eq!(first_tar_member(&cut), None);
        assert_eq!(first_tar_member(b"not a tar stream at all"), None);
    }
}
