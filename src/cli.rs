//! Command-line types only (clap derive). No logic lives here: `commands/` turns these raw
//! values into validated ones once, and the rest of the program never sees them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::executor::ExecutorKind;
use crate::record::store;
use crate::resolve::env_input::{self, EnvFile, EnvOverride};
use crate::resolve::plan::{self, PlannedBind};
use crate::resolve::run_options::{self, EngineOptions, GpuRequest, PublishedPort};

/// The README's "Exit codes" table, short: each code and its meaning, in lines as `--help`
/// shows them (`tapir man` joins them). tests/cli/help.rs checks every code is here.
pub(crate) const EXIT_CODES: &[(&str, &[&str])] = &[
    (
        "0",
        &[
            "success (validate: every file is valid; run --detach: the task started;",
            "session: it answered and was ended with Ctrl-C)",
        ],
    ),
    (
        "1",
        &[
            "validate, inspect: a file is invalid; wait, logs --follow: the run is lost;",
            "rm, prune: a run could not be removed; doctor: the mode cannot run tasks;",
            "pipeline run: a task failed, timed out or was skipped",
        ],
    ),
    (
        "2",
        &["usage error, a path that cannot be read, no such run or an unreadable record"],
    ),
    (
        "N",
        &["run: the task's own exit code; wait, logs --follow: the code run gave"],
    ),
    (
        "124",
        &[
            "run --timeout: the task ran too long and was stopped;",
            "session: it did not answer HTTP within --wait seconds",
        ],
    ),
    (
        "125",
        &[
            "run: failed before the task ran (invalid task, image missing, engine down),",
            "or its logs or record could not be written (disk full; the task was stopped);",
            "pipeline run: the pipeline is invalid (nothing started);",
            "run, inspect, doctor, images, validate --image: the engine (or registry) did",
            "not answer within TAPIR_ENGINE_TIMEOUT",
            "seconds (default 60; every engine call has this deadline);",
            "run --executor k8s: kubectl refused the objects or did not answer, or the",
            "Pod vanished or cannot start",
        ],
    ),
    (
        "130",
        &["run, pipeline run: cancelled by Ctrl-C or SIGTERM"],
    ),
];

/// `EXIT_CODES` for the end of `tapir --help`.
fn exit_codes_help() -> String {
    let mut text = String::from("Exit codes:");
    for (code, lines) in EXIT_CODES {
        for (i, line) in lines.iter().enumerate() {
            let code = if i == 0 { code } else { "" };
            text.push_str(&format!("\n  {code:<5}{line}"));
        }
    }
    text
}

#[derive(Debug, Parser)]
#[command(
    name = "tapir",
    version,
    about = "Validate and run Task API processing containers locally (Docker or Apptainer)",
    long_about = None,
    propagate_version = true,
    max_term_width = 100,
    after_help = exit_codes_help()
)]
pub(crate) struct Cli {
    /// When to use colour: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check processing-container.json and task.json files against the Task API.
    Validate(ValidateArgs),
    /// Print a bundled JSON Schema (for editors and other tools).
    Schema(SchemaArgs),
    /// Pipelines of tasks joined by IOMappings: check them, run them, export them to
    /// Kaapana, import Kaapana DAGs.
    Pipeline(PipelineArgs),
    /// Run a task.json in a container, stream its output and record the run.
    Run(RunArgs),
    /// Start an image (or task) that serves a web UI, on 127.0.0.1 only; print its URL
    /// once it answers HTTP; Ctrl-C ends it. Logs and record as for any run.
    Session(SessionArgs),
    /// Create a new container repository that validates, builds and runs as it is.
    Init(InitArgs),
    /// Write a new file from what an image or processing-container.json declares.
    New(NewArgs),
    /// Show what a run wrote (stdout and stderr interleaved as they arrived).
    Logs(LogsArgs),
    /// List runs, newest first.
    #[command(visible_alias = "list")]
    Ps(PsArgs),
    /// Show a run's record: plan, argv, env and where each value came from, timings and
    /// exit status.
    Show(RunViewArgs),
    /// List a run's output files and check the Task API's data-structure convention.
    Outputs(RunViewArgs),
    /// Wait for runs to end; exit with the first failing run's exit code.
    Wait(WaitArgs),
    /// Remove run folders and their leftover containers (never the task's output data).
    Rm(RmArgs),
    /// Remove finished runs by age and status (never the task's output data).
    Prune(PruneArgs),
    /// Show an image's /processing-container.json (validated) and its metadata.
    #[command(visible_alias = "processing-container")]
    Inspect(InspectArgs),
    /// List and search the Task API images (those with a /processing-container.json):
    /// their templates and descriptions.
    Images(ImagesArgs),
    /// Check which engines work here, and what will and will not work with them.
    Doctor(DoctorArgs),
    /// Print a shell completion script.
    ///
    /// For example `tapir completions bash > ~/.local/share/bash-completion/completions/tapir`,
    /// `tapir completions zsh > ~/.zfunc/_tapir`,
    /// `tapir completions fish > ~/.config/fish/completions/tapir.fish`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): tapir(1), or tapir-COMMAND(1) for one command.
    ///
    /// For example `tapir man > ~/.local/share/man/man1/tapir.1` (then `man tapir`), or
    /// `tapir man validate | man -l -`.
    Man(ManArgs),
    /// Write a task's Kubernetes manifests to files, for applying with your own tools.
    Export(ExportArgs),
    /// Internal: the background process of `run --detach` (captures the logs and writes
    /// the final record). Not for direct use.
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(subcommand)]
    pub target: ExportTarget,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExportTarget {
    /// The Pod Kaapana's task runner would create for the task (as `run --executor k8s
    /// --dry-run` prints it), or one per task of a pipeline, and a README naming the
    /// Secrets to create first and the order to apply them in.
    K8s(ExportK8sArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExportK8sArgs {
    /// The task file, or a pipeline file (one Pod per task).
    #[arg(value_name = "TASK.JSON|PIPELINE.JSON", value_parser = ExistingFileParser)]
    pub task: PathBuf,

    /// A pipeline's conf file (`task_form` values), as `pipeline run --conf`.
    #[arg(long, value_name = "CONF.JSON")]
    pub conf: Option<PathBuf>,

    /// A pipeline's folders (its channels between tasks) on the node: the hostPath under
    /// which each task's managed folders are (default: `data/` in the --output folder).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The folder to write into (created if missing; files of an earlier export of the
    /// same task are replaced).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// `human` writes YAML, `json` JSON.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,

    /// Read the template from this processing-container.json instead of the image.
    #[arg(long, value_name = "PATH", value_parser = ExistingFileParser)]
    pub container_file: Option<PathBuf>,

    /// Set a variable, above the task's and the template's values (repeatable). `--env
    /// NAME` takes the value from tapir's own environment.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = EnvOverrideParser)]
    pub env: Vec<EnvOverride>,
}

#[derive(Debug, Args)]
pub(crate) struct SuperviseArgs {
    /// The run folder whose record.json (written by `tapir run --detach`) says what to run.
    #[arg(value_name = "DIR")]
    pub run_dir: PathBuf,
    /// Seconds a cancelled task gets to stop before it is killed (from `run --grace`).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub grace: u32,
    /// Keep the container after it ends (from `run --keep`).
    #[arg(long)]
    pub keep: bool,
    /// Stop the task after this many seconds (from `run --timeout`).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The task file.
    #[arg(value_name = "TASK.JSON", value_parser = ExistingFileParser)]
    pub task: PathBuf,

    /// The engine to run the container with.
    #[arg(long, value_enum, default_value_t = Mode::Docker)]
    pub mode: Mode,

    /// Where the task runs: `local` (this machine), `slurm` (a batch job whose node runs
    /// the engine given by --mode) or `k8s` (a Kubernetes object, through kubectl).
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,

    /// `--executor k8s`: the kubectl context to use (default: kubectl's current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// `--executor k8s`: the namespace, over the task's `config.namespace` (default: the
    /// context's).
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,

    /// Set a variable, above the task's and the template's values (repeatable). `--env
    /// NAME` takes the value from tapir's own environment.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = EnvOverrideParser)]
    pub env: Vec<EnvOverride>,

    /// Read variables from a file: one NAME=VALUE or `export NAME=VALUE` per line, no
    /// spaces around `=`, the value taken literally (no quotes, no shell expansion); `#`
    /// starts a comment line. --env wins over it.
    #[arg(long, value_name = "FILE", value_parser = EnvFileParser)]
    pub env_file: Vec<EnvFile>,

    /// HOST:CONTAINER[:ro|rw]: bind a host path into the container beyond the template's
    /// channels (repeatable), e.g. a reference dataset. HOST is relative to the current
    /// folder (`~/` is your home); CONTAINER must be absolute. `ro` (the default) needs
    /// HOST to exist; for `rw` tapir creates a missing folder.
    #[arg(long, value_name = "HOST:CONTAINER", value_parser = BindParser)]
    pub bind: Vec<PlannedBind>,

    /// Use this processing-container.json instead of the one in the image (to iterate
    /// without rebuilding it).
    #[arg(long, value_name = "PATH", value_parser = ExistingFileParser)]
    pub container_file: Option<PathBuf>,

    /// Pull the image when it is not present locally (never pulled otherwise).
    #[arg(long)]
    pub pull: bool,

    /// Print the plan and the exact command, and start nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Output of --dry-run: human or json.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human, requires = "dry_run")]
    pub format: PlanFormat,

    /// Where run folders (task_run-<id>/) are written.
    #[arg(long, env = "TAPIR_RUNS_DIR", value_name = "DIR", default_value = ".")]
    pub runs_dir: PathBuf,

    /// Who runs the task: `invoker` (your uid:gid, so outputs are yours) or `image`
    /// (the image's own USER).
    #[arg(long, value_enum, default_value_t = UserChoice::Invoker)]
    pub user: UserChoice,

    /// Docker network (default: the engine's default, as on the platform).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,

    /// Replace the image's ENTRYPOINT.
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Keep the container after it ends (it is removed once its logs are safe otherwise).
    #[arg(long)]
    pub keep: bool,

    /// Seconds a cancelled task gets to stop before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub grace: u32,

    /// Stop the task when it has run this many seconds (as on a cancel, with --grace);
    /// the record says `timed-out` and tapir exits with 124.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,

    /// Start the task in the background and return once it runs; the run id is printed
    /// on stdout. A supervisor process keeps capturing the logs and writes the final
    /// status (see `tapir logs --follow`, `tapir wait`).
    #[arg(short, long, conflicts_with = "dry_run")]
    pub detach: bool,

    /// Internal (`pipeline run` gives it to each attempt): the pid of the process that
    /// started this run; when it is gone, the run is cancelled (container stopped,
    /// record `cancelled`) instead of outliving it (src/execute/parent_watch.rs).
    #[arg(long, value_name = "PID", hide = true, conflicts_with = "detach")]
    pub watch_parent: Option<u32>,

    /// Internal (`pipeline run` gives it to each attempt): the run's id, assigned by the
    /// caller, so the run folder `task_run-<ID>` is known before the run starts.
    #[arg(long, value_name = "ID", hide = true, value_parser = RunIdParser)]
    pub run_id: Option<String>,

    /// Internal (`pipeline run` gives it): NAME=SOURCE names where a variable of an
    /// `--env-file` really comes from (the conf file, the pipeline's env), for the
    /// record, when the file is only the way it travels (standard input).
    #[arg(long, value_name = "NAME=SOURCE", hide = true, value_parser = EnvOverrideParser)]
    pub env_source: Vec<EnvOverride>,

    #[command(flatten)]
    pub slurm: Box<SlurmArgs>,

    /// Internal (a Slurm job script gives it): take over the run folder the submitter
    /// made for --run-id, whose record says `queued`, instead of making a new one.
    #[arg(long, hide = true, requires = "run_id", conflicts_with_all = ["detach", "dry_run"])]
    pub adopt_queued: bool,
}

/// Site settings of `--executor slurm` (src/executor/slurm/settings.rs): each overrides
/// the `TAPIR_SLURM_*` variable and the settings files.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct SlurmArgs {
    /// With --executor slurm: the partition to submit to (else TAPIR_SLURM_PARTITION, the
    /// settings files, or the cluster's default).
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// With --executor slurm: the account the job is charged to.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// With --executor slurm: the quality of service.
    #[arg(long, value_name = "NAME")]
    pub qos: Option<String>,
    /// With --executor slurm: one more `sbatch` option, e.g. `--sbatch-arg=--constraint=a`
    /// (repeatable; replaces TAPIR_SLURM_SBATCH_ARGS and the files' `sbatch_args`).
    #[arg(long = "sbatch-arg", value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// With --executor slurm: the path of tapir on the nodes (default: this binary's).
    #[arg(long, value_name = "PATH")]
    pub tapir_on_node: Option<PathBuf>,
}

impl SlurmArgs {
    /// The flags as the highest level of the site settings.
    pub(crate) fn flags(&self) -> crate::executor::slurm::settings::SlurmSettings {
        crate::executor::slurm::settings::SlurmSettings {
            partition: self.partition.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            sbatch_args: (!self.sbatch_args.is_empty()).then(|| self.sbatch_args.clone()),
            tapir_on_node: self.tapir_on_node.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct SessionArgs {
    /// A task file (TASK.JSON), or a local image whose own CMD (or, with --canfar, its
    /// /skaha/startup.sh) serves the UI.
    #[arg(value_name = "IMAGE|TASK.JSON")]
    pub target: String,

    /// The port the UI listens on inside the container (CANFAR's contributed sessions:
    /// 5000, the default).
    #[arg(long, value_name = "PORT", default_value_t = 5000, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// The port on 127.0.0.1 to publish it on (default: a free one).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub host_port: Option<u16>,

    /// The path asked for to see whether the UI answers (any HTTP answer counts).
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub path: String,

    /// Seconds to wait, once the container is started, for the first HTTP answer; after
    /// them the session is stopped, its last log lines are shown and tapir exits with 124.
    #[arg(long = "wait", value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub wait_seconds: u64,

    /// Check the image as a CANFAR "contributed" session: port 5000, started as
    /// `/skaha/startup.sh SESSION_ID` (IMAGE only), run as your uid rather than root;
    /// says what CANFAR would need that the image lacks.
    #[arg(long)]
    pub canfar: bool,

    /// The session id given to /skaha/startup.sh (default: the run id).
    #[arg(long, value_name = "ID", requires = "canfar")]
    pub session_id: Option<String>,

    /// Set a variable in the container (repeatable), as `run --env`.
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE", value_parser = EnvOverrideParser)]
    pub env: Vec<EnvOverride>,

    /// Who runs it: `invoker` (your uid:gid, as CANFAR runs sessions as the user) or
    /// `image` (the image's own USER).
    #[arg(long, value_enum, default_value_t = UserChoice::Invoker)]
    pub user: UserChoice,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Where run folders (task_run-<id>/) are written.
    #[arg(long, env = "TAPIR_RUNS_DIR", value_name = "DIR", default_value = ".")]
    pub runs_dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The folder to create the repository in (made if missing; existing files are
    /// never overwritten).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The base image of the Dockerfile (it needs /bin/sh).
    #[arg(long = "from", value_name = "IMAGE", default_value = crate::commands::scaffold::DEFAULT_BASE)]
    pub base: String,

    /// The image name (default: the folder's name, made a valid image name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    #[command(subcommand)]
    pub what: NewCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NewCommand {
    /// Write a task.json for a template: every channel bound to a folder beside it,
    /// every adjustable env entry at its default. Descriptions are printed as notes on
    /// stderr (task.json has no place for them).
    Task(NewTaskArgs),
}

#[derive(Debug, Args)]
pub(crate) struct NewTaskArgs {
    /// A local image with /processing-container.json, or a processing-container.json.
    #[arg(value_name = "IMAGE|PC.JSON")]
    pub source: String,

    /// The template's identifier.
    #[arg(value_name = "TEMPLATE")]
    pub template: String,

    /// Write the task here (never over an existing file) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The task's image, for a PC.JSON source (default: its `name`, tag `latest`).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
}

/// The engine options no task file carries (`run`, `session`); see
/// `resolve::run_options`.
#[derive(Debug, Clone, Args)]
pub(crate) struct EngineArgs {
    /// Size of the container's /dev/shm, e.g. `2Gi` (PyTorch data loaders, browsers).
    /// Docker only: apptainer has no such setting.
    #[arg(long, value_name = "SIZE", value_parser = run_options::parse_shm_size, help_heading = "Engine options")]
    pub shm_size: Option<u64>,

    /// GPUs for the task: `all`, a number (`2`) or devices (`device=0,1`, indexes or
    /// UUIDs). Wins over the task's `resources.limits` GPU count. Docker: `--gpus`;
    /// apptainer: `--nv`/`--rocm` with CUDA_VISIBLE_DEVICES (ROCR_…) and
    /// NVIDIA_VISIBLE_DEVICES set to the devices.
    #[arg(long, value_name = "GPUS", value_parser = run_options::parse_gpus, help_heading = "Engine options")]
    pub gpus: Option<GpuRequest>,

    /// [[ADDRESS:]HOST_PORT:]CONTAINER_PORT[/udp]: publish a container port (repeatable).
    /// Bound to 127.0.0.1 unless ADDRESS is written (`0.0.0.0:8080:80` opens it to the
    /// network); without HOST_PORT the engine picks a free one. Under apptainer the
    /// container shares the host's network: nothing is mapped.
    #[arg(short = 'p', long = "publish", value_name = "PORT", value_parser = run_options::parse_publish, help_heading = "Engine options")]
    pub publish: Vec<PublishedPort>,

    /// Pass ARG to the engine verbatim, before the image (repeatable; one word each:
    /// `--engine-arg=--cap-add=SYS_PTRACE`). Refused: flags that break how tapir runs
    /// the container (`--rm`, `-d`, `--name`, `-t`, …) and those tapir has an option for
    /// (`--env`, `-v`, `--user`, `--gpus`, …).
    #[arg(
        long = "engine-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        help_heading = "Engine options"
    )]
    pub engine_arg: Vec<String>,
}

impl EngineArgs {
    /// The typed options the plan carries.
    pub(crate) fn options(&self) -> EngineOptions {
        EngineOptions {
            shm_size_bytes: self.shm_size,
            gpus: self.gpus.clone(),
            ports: self.publish.clone(),
            engine_args: self.engine_arg.clone(),
        }
    }
}

/// Where run folders are; shared by every command that reads them.
#[derive(Debug, Args)]
pub(crate) struct RunsDirArg {
    /// The folder holding the run folders (task_run-<id>/).
    #[arg(long, env = "TAPIR_RUNS_DIR", value_name = "DIR", default_value = ".")]
    pub runs_dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The run: its folder, its folder name task_run-<id> or pipeline-run-<id>, or a
    /// unique id prefix.
    pub run: String,
    /// For a pipeline run: the task whose logs to show (its latest attempt).
    #[arg(value_name = "TASK")]
    pub task: Option<String>,
    /// With TASK: this attempt (1, 2, …) instead of the latest.
    #[arg(long, value_name = "N", requires = "task")]
    pub attempt: Option<u32>,
    /// Keep printing while the run goes on; exit with its exit code when it ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,
    /// Prefix each line with the time it was captured (UTC, RFC 3339).
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only the task's standard output.
    #[arg(long, conflicts_with = "stderr")]
    pub stdout: bool,
    /// Only the task's standard error.
    #[arg(long)]
    pub stderr: bool,
    #[command(flatten)]
    pub runs: RunsDirArg,
}

#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// human (a table) or json.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
    /// Show at most N runs (the newest).
    #[arg(short = 'n', long, value_name = "N")]
    pub last: Option<usize>,
    /// Also list the task runs inside pipeline runs, under their pipeline run.
    #[arg(short, long)]
    pub all: bool,
    /// Print only the run folder names, one a line (reads no record; shell completions
    /// use it).
    #[arg(short, long, conflicts_with_all = ["format", "all"])]
    pub quiet: bool,
    #[command(flatten)]
    pub runs: RunsDirArg,
}

/// One run, shown for people or as JSON (`show`, `outputs`).
#[derive(Debug, Args)]
pub(crate) struct RunViewArgs {
    /// The run: its folder, its folder name task_run-<id> or pipeline-run-<id>, or a
    /// unique id prefix.
    pub run: String,
    /// For a pipeline run: one of its tasks (its latest attempt's task run).
    #[arg(value_name = "TASK")]
    pub task: Option<String>,
    /// human or json.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
    #[command(flatten)]
    pub runs: RunsDirArg,
}

#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// The runs to wait for (folder, folder name or unique id prefix each).
    #[arg(required = true, value_name = "RUN")]
    pub runs_to_wait: Vec<String>,
    #[command(flatten)]
    pub runs: RunsDirArg,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// The runs to remove (folder, folder name or unique id prefix each).
    #[arg(required = true, value_name = "RUN")]
    pub runs_to_remove: Vec<String>,
    /// Also remove runs that are still running (they are cancelled first), and run
    /// folders whose record is missing or damaged.
    #[arg(short, long)]
    pub force: bool,
    /// Pipeline runs: also delete the channel folders tapir manages inside them, with
    /// the data the tasks wrote (without it, a pipeline run holding data is refused).
    #[arg(long)]
    pub outputs: bool,
    #[command(flatten)]
    pub runs: RunsDirArg,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Only runs that ended longer ago than this: 30m, 12h, 7d, 2w, "1d 12h".
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub older_than: Option<std::time::Duration>,
    /// Only runs with these statuses (repeatable or comma-separated; default: every
    /// finished run, but not `lost` or `unreadable` ones).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub status: Vec<StatusArg>,
    /// List what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub runs: RunsDirArg,
}

/// A run status as `prune --status` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusArg {
    Succeeded,
    Failed,
    OomKilled,
    Cancelled,
    TimedOut,
    EngineError,
    /// tapir could not write the run's logs or record.
    WriteFailed,
    /// Recorded as running, but nothing supervises it any more.
    Lost,
    /// The record cannot be read.
    Unreadable,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The mode to check: the exit code is 0 only when it can run tasks.
    #[arg(long, value_enum, default_value_t = Mode::Docker)]
    pub mode: Mode,
    /// human or json.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
    /// Also run the checks that need a real Apptainer (tests/apptainer/site-checks.sh)
    /// with IMAGE (a SIF, sandbox folder or docker-daemon:REF:TAG with a shell).
    #[arg(long, value_name = "IMAGE")]
    pub deep: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The command whose page to print (default: tapir's own page, which lists them).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
    /// Write every page (tapir.1, tapir-run.1, tapir-pipeline-validate.1, …) into DIR
    /// instead of printing one, e.g. `--dir ~/.local/share/man/man1`.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// A local image (never pulled), or `docker://HOST/REPOSITORY:TAG` to read it from
    /// its registry without pulling it (manifest, config and the layers down to
    /// /processing-container.json).
    pub image: String,
    /// human or json.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
}

#[derive(Debug, Args)]
pub(crate) struct ImagesArgs {
    /// Show only images whose references, title, description, label values or
    /// templates (identifier, description) hold every one of these words (any case).
    #[arg(value_name = "KEYWORD")]
    pub keywords: Vec<String>,
    /// label=KEY (the label is set) or label=KEY=VALUE (to that value); repeatable,
    /// all must match.
    #[arg(long = "filter", value_name = "label=KEY[=VALUE]", value_parser = LabelFilterParser)]
    pub filters: Vec<crate::backend::catalog::LabelFilter>,
    /// human or json.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    pub format: PlanFormat,
    /// List a registry's Task API images instead of the local ones, through its
    /// catalogue (`/v2/_catalog`): HOST[:PORT] or a URL (plain http only for loopback).
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
}

/// `--filter label=KEY[=VALUE]`.
#[derive(Debug, Clone, Copy)]
struct LabelFilterParser;

impl clap::builder::TypedValueParser for LabelFilterParser {
    type Value = crate::backend::catalog::LabelFilter;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        crate::backend::catalog::LabelFilter::parse(&value.to_string_lossy())
            .map_err(|message| usage_error(cmd, message))
    }
}

// The engine is the backend's notion; `--mode` only names it.
pub(crate) use crate::backend::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PlanFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UserChoice {
    Invoker,
    Image,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Files or folders to check. Folders are searched recursively for both kinds
    /// (skipping target/, .git/ and node_modules/).
    #[arg(required_unless_present = "images", value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,

    /// Check a local image as a platform would (repeatable): its embedded
    /// /processing-container.json and whether it fits the image (programs present and
    /// runnable by any uid, no mount over a file), the OCI catalogue labels (with the
    /// LABEL lines to add), a non-root user, no secrets in ENV. The image is never run.
    /// `docker://HOST/REPOSITORY:TAG` reads it from its registry instead (every layer's
    /// file list is streamed; nothing is stored or pulled into the engine).
    #[arg(long = "image", value_name = "IMAGE")]
    pub images: Vec<String>,

    /// Treat every file as this kind instead of detecting it.
    #[arg(long, value_enum, value_name = "KIND")]
    pub schema: Option<KindArg>,

    /// Turn warnings (such as unknown keys) into errors.
    #[arg(long)]
    pub strict: bool,

    /// Output format: human (with source snippets), json (stable list of findings) or
    /// github (workflow annotations).
    #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
    pub format: ValidateFormat,

    /// Print only problems, not the line per valid file.
    #[arg(short, long)]
    pub quiet: bool,

    /// Skip files named on the command line that are neither kind (e.g. the
    /// .vscode/settings.json a pre-commit hook passes) instead of reporting them.
    #[arg(long)]
    pub skip_unknown: bool,

    /// Check tasks that name their template against this processing-container.json
    /// (as `run --container-file`), instead of one found beside each task file (in its
    /// folder or its files/ folder, or above a tasks/ folder).
    #[arg(long, value_name = "PATH", value_parser = ExistingFileParser)]
    pub container_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SchemaArgs {
    /// Which schema: pc (processing-container.json), task (task.json), pipeline
    /// (pipeline.json) or pipeline-conf (a pipeline's --conf file).
    #[arg(value_enum, value_name = "KIND")]
    pub kind: SchemaKind,
}

/// The two kinds of Task API file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KindArg {
    /// processing-container.json
    #[value(name = "pc", alias = "processing-container")]
    Pc,
    /// task.json
    Task,
}

/// The bundled schemas `tapir schema` prints: the two Task API kinds and the pipeline files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemaKind {
    /// processing-container.json
    #[value(name = "pc", alias = "processing-container")]
    Pc,
    /// task.json
    Task,
    /// pipeline.json (`tapir pipeline validate`)
    Pipeline,
    /// a pipeline's --conf file (`conf.task_form`)
    PipelineConf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ValidateFormat {
    Human,
    Json,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--env`: a validated `EnvOverride`, or a usage error that never shows the value.
#[derive(Debug, Clone, Copy)]
struct EnvOverrideParser;

impl clap::builder::TypedValueParser for EnvOverrideParser {
    type Value = EnvOverride;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<EnvOverride, clap::Error> {
        let text = value
            .to_str()
            .ok_or_else(|| usage_error(cmd, "--env: the argument is not UTF-8 text".into()))?;
        env_input::parse_env_arg(text, |name| std::env::var(name).ok())
            .map_err(|message| usage_error(cmd, message))
    }
}

/// `--env-file`: the file read and checked (errors name its line and column).
#[derive(Debug, Clone, Copy)]
struct EnvFileParser;

impl clap::builder::TypedValueParser for EnvFileParser {
    type Value = EnvFile;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<EnvFile, clap::Error> {
        env_input::read_env_file(std::path::Path::new(value))
            .map_err(|message| usage_error(cmd, message))
    }
}

/// `--bind`: a `PlannedBind` with its host path made absolute, or a usage error.
#[derive(Debug, Clone, Copy)]
struct BindParser;

impl clap::builder::TypedValueParser for BindParser {
    type Value = PlannedBind;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<PlannedBind, clap::Error> {
        let text = value
            .to_str()
            .ok_or_else(|| usage_error(cmd, "--bind: the argument is not UTF-8 text".into()))?;
        let cwd = std::env::current_dir().map_err(|e| {
            usage_error(
                cmd,
                format!("--bind: the current folder cannot be read: {e}"),
            )
        })?;
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        plan::parse_bind(text, &cwd, home.as_deref()).map_err(|message| usage_error(cmd, message))
    }
}

/// A run id given by a caller: one safe folder-name component.
#[derive(Debug, Clone, Copy)]
struct RunIdParser;

impl clap::builder::TypedValueParser for RunIdParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        match value.to_str().filter(|id| store::is_valid_run_id(id)) {
            Some(id) => Ok(id.to_string()),
            None => Err(usage_error(
                cmd,
                format!(
                    "--run-id {}: not a run id\n  fix: letters, digits, `-`, `_` and `.` only, not starting with `.`",
                    value.to_string_lossy()
                ),
            )),
        }
    }
}

/// `run`'s files: a path that is not there (or is a folder) is a usage error (exit 2)
/// before any run folder exists, not a failed run with a record of a typo.
#[derive(Debug, Clone, Copy)]
struct ExistingFileParser;

impl clap::builder::TypedValueParser for ExistingFileParser {
    type Value = PathBuf;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<PathBuf, clap::Error> {
        let path = PathBuf::from(value);
        let problem = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => "is a folder, not a file".to_string(),
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file".to_string(),
            Err(e) => format!("cannot read it: {e}"),
        };
        Err(usage_error(
            cmd,
            format!(
                "{}: {problem}\n  fix: check the path (relative paths start at the current folder)",
                path.display()
            ),
        ))
    }
}

fn usage_error(cmd: &clap::Command, message: String) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
    .with_cmd(cmd)
}

#[derive(Debug, Args)]
pub(crate) struct PipelineArgs {
    #[command(subcommand)]
    pub command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PipelineCommand {
    /// Check a pipeline file, its task files and a conf file; print the planned order.
    Validate(PipelineValidateArgs),
    /// Run a pipeline: every task through `tapir run`, independent ones in parallel, into
    /// one pipeline run folder (pipeline-run-<id>/) with a record linking the task runs.
    ///
    /// Exit codes: 0 every task succeeded; 1 a task failed, timed out or was skipped (also
    /// when `can_fail` let the others run); 125 the pipeline is invalid (nothing started);
    /// 130 cancelled by Ctrl-C or SIGTERM; 2 usage error or a refused --resume.
    Run(PipelineRunArgs),
    /// Write a pipeline as another platform's workflow: `--to kaapana` writes a Kaapana
    /// workflow chart (KaapanaTaskOperator DAG, workflow.json, derived processing images,
    /// trigger conf), after checking what Kaapana would run differently.
    ///
    /// Exit codes: 0 written (warnings are shown); 1 the pipeline is invalid or cannot be
    /// expressed on the platform (nothing written); 2 usage error, unreadable input, or an
    /// output folder that is not empty and not an earlier export (see --force).
    Export(PipelineExportArgs),
    /// Read another platform's workflow as a pipeline: `--from kaapana` reads a DAG file
    /// made of KaapanaTaskOperator, IOMapping and `>>`.
    ///
    /// Exit codes: 0 written; 1 the DAG uses something tapir does not read (nothing
    /// written); 2 usage error or unreadable input.
    Import(PipelineImportArgs),
}

/// The platforms `pipeline export` and `pipeline import` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum WorkflowPlatform {
    /// Kaapana's "workflow v2": a Helm chart with a KaapanaTaskOperator DAG.
    Kaapana,
}

#[derive(Debug, Args)]
pub(crate) struct PipelineExportArgs {
    /// The pipeline file.
    #[arg(value_name = "PIPELINE.JSON")]
    pub pipeline: PathBuf,

    /// The platform to write for.
    #[arg(long, value_enum, value_name = "PLATFORM")]
    pub to: WorkflowPlatform,

    /// User input for a run, as for `pipeline run`: written as the platform's trigger
    /// conf (Kaapana: trigger-conf.json with `task_form.<id>.env` lists).
    #[arg(long, value_name = "CONF.JSON")]
    pub conf: Option<PathBuf>,

    /// The folder to write (created; an earlier export there is replaced).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// Replace the output folder even when it holds files no export of tapir wrote.
    #[arg(long)]
    pub force: bool,

    /// Output format of the findings: human, json, or github (workflow annotations).
    #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
    pub format: ValidateFormat,
}

#[derive(Debug, Args)]
pub(crate) struct PipelineImportArgs {
    /// The workflow file (Kaapana: the DAG's .py file).
    #[arg(value_name = "DAG.PY")]
    pub dag: PathBuf,

    /// The platform the file comes from.
    #[arg(long, value_enum, value_name = "PLATFORM")]
    pub from: WorkflowPlatform,

    /// Where to write the pipeline (default: standard output). An existing file is
    /// replaced only with --force.
    #[arg(short, long, value_name = "PIPELINE.JSON")]
    pub output: Option<PathBuf>,

    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,

    /// The registry for `{DEFAULT_REGISTRY}` in the DAG's image names.
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    pub registry: String,

    /// The tag for `{KAAPANA_BUILD_VERSION}` in the DAG's image names.
    #[arg(long, value_name = "TAG", default_value = "latest")]
    pub build_version: String,

    /// The pipeline name when the DAG's id is the workflow-api's `{{ dag_id }}`
    /// (default: the pipeline a DAG exported by tapir names in its header, else the
    /// file name without `.py`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PipelineRunArgs {
    /// The pipeline file.
    #[arg(value_name = "PIPELINE.JSON")]
    pub pipeline: PathBuf,

    /// User input, as Kaapana's `conf`: {"task_form": {"<task id>": {"VAR": "value"}}}.
    #[arg(long, value_name = "CONF.JSON")]
    pub conf: Option<PathBuf>,

    /// The folder layout, instead of the pipeline file's `profile`: `kaapana` (a folder
    /// per task and channel) or `ccat` (the CCAT container contract's /workflow/).
    #[arg(long, value_enum, value_name = "PROFILE")]
    pub profile: Option<ProfileArg>,

    /// How many tasks run at the same time (default: the number of cores).
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,

    /// The engine every task runs with.
    #[arg(long, value_enum, default_value_t = Mode::Docker)]
    pub mode: Mode,

    /// Where every task runs: `local`, `slurm` (a batch job per attempt) or `k8s` (a
    /// Kubernetes object per attempt); as `run --executor`.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    pub executor: ExecutorKind,

    /// `--executor k8s`: the kubectl context every task's Pod goes to (default: kubectl's
    /// current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// `--executor k8s`: the namespace of every task's Pod (default: the context's).
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,

    #[command(flatten)]
    pub slurm: Box<SlurmArgs>,

    /// Where the pipeline run folder (pipeline-run-<id>/) is created.
    #[arg(long, env = "TAPIR_RUNS_DIR", value_name = "DIR", default_value = ".")]
    pub runs_dir: PathBuf,

    /// Docker network for every task, over the pipeline file's `run_options.network`
    /// (default: the file's, else the engine's default).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,

    /// Continue this pipeline run folder: run again only the tasks that did not succeed
    /// (failed, timed out, skipped, cancelled or never started). The pipeline file must
    /// be unchanged; the conf file may differ.
    #[arg(long, value_name = "PIPELINE-RUN")]
    pub resume: Option<PathBuf>,

    /// Seconds a cancelled task gets to stop before it is killed, for every task (default:
    /// the pipeline file's `run_options.grace`, else 10).
    #[arg(long, value_name = "SECONDS")]
    pub grace: Option<u32>,

    /// Pull a task's image when it is not present locally (as `run --pull`), for every
    /// task, whatever the pipeline file's `run_options.pull` says.
    #[arg(long)]
    pub pull: bool,

    /// Who runs every task: `invoker` (your uid:gid) or `image` (as `run --user`), over
    /// the pipeline file's `run_options.user` (default: the file's, else invoker).
    #[arg(long, value_enum)]
    pub user: Option<UserChoice>,

    /// HOST:CONTAINER[:ro|rw]: bind a host path into every task's container (repeatable;
    /// as `run --bind`, HOST relative to the current folder); it replaces a
    /// `run_options.bind` of the pipeline file at the same container path.
    #[arg(long, value_name = "HOST:CONTAINER", value_parser = BindParser)]
    pub bind: Vec<PlannedBind>,

    /// Keep every task's container after it ends (as `run --keep`), whatever the
    /// pipeline file's `run_options.keep` says.
    #[arg(long)]
    pub keep: bool,

    /// NAME=VALUE: a run-time parameter the pipeline declares in `params` (repeatable;
    /// Tapis' submission params). Read by a task's `env` through
    /// `{"value_from": {"params": "NAME"}}`; never shown when its name looks secret.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = EnvOverrideParser)]
    pub param: Vec<EnvOverride>,

    /// Copy the results of the tasks that succeeded to DIR/<pipeline run folder name>/
    /// when the run ends (replaces the pipeline file's `archive.path`; its `include`
    /// still applies). Every file is verified; nothing is overwritten.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,

    /// When the whole run succeeded, remove its managed output folders at the end (after
    /// a complete archive, if one is asked for). Records and logs stay.
    #[arg(long)]
    pub clean_succeeded: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PipelineValidateArgs {
    /// The pipeline file.
    #[arg(value_name = "PIPELINE.JSON")]
    pub pipeline: PathBuf,

    /// User input for a run, as Kaapana's `conf`: {"task_form": {"<task id>": {"VAR": "value"}}}.
    #[arg(long, value_name = "CONF.JSON")]
    pub conf: Option<PathBuf>,

    /// The folder layout, instead of the pipeline file's `profile`: `kaapana` (a folder
    /// per task and channel) or `ccat` (the CCAT container contract's /workflow/).
    #[arg(long, value_enum, value_name = "PROFILE")]
    pub profile: Option<ProfileArg>,

    /// Output format: human (findings with source snippets, then the plan), json, or
    /// github (workflow annotations).
    #[arg(long, value_enum, default_value_t = ValidateFormat::Human)]
    pub format: ValidateFormat,

    /// NAME=VALUE: check the pipeline's parameters as `pipeline run --param` would
    /// (undeclared ones, required ones missing, values against the templates); without
    /// any, parameters show their defaults.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = EnvOverrideParser)]
    pub param: Vec<EnvOverride>,
}

/// `--profile` of `pipeline run` and `pipeline validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProfileArg {
    Kaapana,
    Ccat,
}

impl ProfileArg {
    pub(crate) fn profile(self) -> crate::pipeline::model::Profile {
        match self {
            ProfileArg::Kaapana => crate::pipeline::model::Profile::Kaapana,
            ProfileArg::Ccat => crate::pipeline::model::Profile::Ccat,
        }
    }
}

/// `--older-than`: any duration jiff's friendly format reads (`90s`, `30m`, `12h`, `7d`,
/// `2w`, `1d 12h`, `7 days`) or ISO 8601 (`P7D`), with days as 24 hours. Months and years
/// are refused: their length depends on the calendar, and a prune must be predictable.
pub(crate) fn parse_age(text: &str) -> std::result::Result<std::time::Duration, String> {
    let fix = "write a duration such as 90s, 30m, 12h, 7d, 2w or \"1d 12h\"";
    let span: jiff::Span = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a duration ({e})\n  fix: {fix}"))?;
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(format!(
            "{text:?} uses months or years, whose length varies\n  fix: {fix}"
        ));
    }
    if span.is_negative() {
        return Err(format!("{text:?} is negative\n  fix: {fix}"));
    }
    let relative = jiff::SpanRelativeTo::days_are_24_hours();
    let duration = span
        .to_duration(relative)
        .map_err(|e| format!("{text:?} is out of range ({e})\n  fix: {fix}"))?;
    std::time::Duration::try_from(duration).map_err(|e| format!("{text:?}: {e}\n  fix: {fix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_a_number_and_a_unit() {
        assert_eq!(parse_age("90s"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(std::time::Duration::from_secs(1800)));
        assert_eq!(
            parse_age("7d"),
            Ok(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            parse_age("2w"),
            Ok(std::time::Duration::from_secs(14 * 86_400))
        );
        assert_eq!(
            parse_age("1d 12h"),
            Ok(std::time::Duration::from_secs(36 * 3600))
        );
        assert_eq!(
            parse_age("7 days"),
            Ok(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            parse_age("P2D"),
            Ok(std::time::Duration::from_secs(2 * 86_400))
        );
        for bad in ["", "7", "d", "-1d", "1mo", "2y", "1.5x"] {
            let err = parse_age(bad).err().unwrap_or_default();
            assert!(err.contains("fix:"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_mode_is_named_as_its_flag_value() {
        for mode in [Mode::Docker, Mode::Apptainer] {
            let flag = mode.to_possible_value().expect("a visible value");
            assert_eq!(mode.name(), flag.get_name());
        }
    }
}
