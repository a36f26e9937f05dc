//! Apptainer: the same `RunPlan` as Docker, rendered as `apptainer exec`/`run` (DESIGN.md
//! decision 6), plus the few things tapir needs to ask an apptainer installation.
//!
//! What makes a run behave like the Docker one:
//! - `--containall`: a clean environment, own PID and IPC namespaces, no automatic binds
//!   of home, cwd or /tmp; `--workdir` inside the run folder gives the run its own /tmp,
//!   /var/tmp and home on disk;
//! - every variable is set explicitly (`--env`, or `APPTAINERENV_NAME` in apptainer's own
//!   environment for secrets and for values `--env` cannot carry); of the host's
//!   `APPTAINER_*`/`SINGULARITY_*` settings only those that act as flags or inject
//!   variables are removed (`is_removed_host_setting`), so a site's cache, temp folder and
//!   registry logins still work. Apptainer itself still passes `TERM` and the `*_proxy`
//!   variables and sets `LANG=C` (README);
//! - inputs are bound read-only, outputs read-write, at the same container paths;
//! - the template command replaces CMD and keeps ENTRYPOINT: with `exec ENTRYPOINT CMD…`
//!   when the entrypoint is known (images from Docker, or none in the runscript), else
//!   with `run IMAGE CMD…`, whose runscript is ENTRYPOINT + arguments for images
//!   converted from OCI;
//! - memory/CPU limits only where apptainer can apply them (it stops with a fatal error
//!   otherwise), `--cpus` capped to the CPUs this process may use;
//! - GPUs: `--nv`/`--rocm` plus the scheduler's GPU selection, which `--containall` would
//!   otherwise drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::backend::deadline::{self, CallError};
use crate::backend::docker::RenderedRun;
use crate::error::Error;
use crate::resolve::plan::{Direction, EnvSource, PlannedUser, RunPlan};
use crate::resolve::run_options::GpuRequest;

/// A run's scratch space inside its run folder (apptainer's `--workdir`: its /tmp,
/// /var/tmp and home).
pub(crate) const SCRATCH_DIR: &str = "scratch";

/// How long reading one file out of an image may take (a SIF may be unpacked first).
const READ_FILE_DEADLINE: Duration = Duration::from_secs(300);
/// How long converting or pulling an image into a SIF may take (large images).
const BUILD_DEADLINE: Duration = Duration::from_secs(3600);

/// The host's GPU-selection variables (set by schedulers such as Slurm): forwarded into
/// the container, since `--containall` would drop them and expose every GPU.
pub(crate) const GPU_SELECTION_VARIABLES: &[&str] = &[
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
];

/// The apptainer installation.
#[derive(Debug, Clone)]
pub(crate) struct Apptainer {
    pub binary: PathBuf,
}

/// Which GPUs the host has, for `--nv` or `--rocm`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum GpuKind {
    #[default]
    Nvidia,
    Amd,
}

/// What the installed apptainer can do here, probed once per run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// Why memory/CPU limits cannot be applied here; `None` when they can.
    pub limits_blocked: Option<String>,
    /// The CPUs this process may use: apptainer refuses a larger `--cpus`.
    pub usable_cpus: u32,
    /// `--no-eval` exists (apptainer ≥ 1.1).
    pub no_eval: bool,
    pub gpu: GpuKind,
    /// The host's GPU-selection variables that are set (`GPU_SELECTION_VARIABLES`).
    pub gpu_selection: BTreeMap<String, String>,
}

impl Capabilities {
    /// What the newest apptainer can do: every flag tapir knows (for a dry run where no
    /// apptainer is installed), on this host's CPUs and GPU selection.
    pub(crate) fn newest() -> Self {
        Self {
            limits_blocked: None,
            usable_cpus: usable_cpus(),
            no_eval: true,
            gpu: host_gpu_kind(),
            gpu_selection: host_gpu_selection(),
        }
    }
}

/// What apptainer looks at before it applies cgroup limits (`CanUseCgroups` in its
/// `internal/pkg/cgroups/util.go`): root may always; anyone else needs cgroups v2,
/// systemd, `systemd cgroups = yes`, a user D-Bus session and a writable
/// `XDG_RUNTIME_DIR`. Otherwise apptainer stops with a fatal error instead of running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CgroupHost {
    pub root: bool,
    pub cgroups_v2: bool,
    pub systemd_running: bool,
    pub systemd_cgroups_in_conf: bool,
    pub user_dbus_session: bool,
    pub writable_runtime_dir: bool,
}

impl CgroupHost {
    pub(crate) fn gather(conf: &ApptainerConf) -> Self {
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
        Self {
            root: nix::unistd::geteuid().is_root(),
            cgroups_v2: cgroups_v2(),
            systemd_running: Path::new("/run/systemd/system").is_dir(),
            systemd_cgroups_in_conf: conf.flag("systemd cgroups").unwrap_or(true),
            user_dbus_session: std::env::var("DBUS_SESSION_BUS_ADDRESS")
                .is_ok_and(|a| a.starts_with("unix:")),
            writable_runtime_dir: runtime_dir.is_some_and(|d| {
                nix::unistd::access(Path::new(&d), nix::unistd::AccessFlags::W_OK).is_ok()
            }),
        }
    }
}

/// Why apptainer would refuse memory/CPU limits here (`None`: it applies them).
pub(crate) fn limits_blocker(has_limit_flags: bool, host: &CgroupHost) -> Option<String> {
    if !has_limit_flags {
        return Some("this apptainer has no --memory/--cpus (they came with apptainer 1.1)".into());
    }
    if host.root {
        return None;
    }
    let missing = if !host.cgroups_v2 {
        "this host has cgroups v1, where only root can set limits"
    } else if !host.systemd_running {
        "systemd is not running here (no /run/systemd/system)"
    } else if !host.systemd_cgroups_in_conf {
        "apptainer.conf says `systemd cgroups = no`"
    } else if !host.user_dbus_session {
        "there is no user D-Bus session (DBUS_SESSION_BUS_ADDRESS=unix:…), as usual in batch jobs"
    } else if !host.writable_runtime_dir {
        "XDG_RUNTIME_DIR is not set or not writable"
    } else {
        return None;
    };
    Some(format!(
        "{missing}; without root apptainer would stop with a fatal error instead of running"
    ))
}

/// The CPUs this process may use: its affinity mask (which Go's `runtime.NumCPU`, and so
/// apptainer's `--cpus` check, counts), or fewer under a cgroup CPU quota.
pub(crate) fn usable_cpus() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|n| u32::try_from(n.get()).ok())
        .unwrap_or(1)
}

/// AMD when the host has the ROCm device and no NVIDIA one.
fn host_gpu_kind() -> GpuKind {
    if Path::new("/dev/kfd").exists() && !Path::new("/dev/nvidiactl").exists() {
        GpuKind::Amd
    } else {
        GpuKind::Nvidia
    }
}

fn host_gpu_selection() -> BTreeMap<String, String> {
    GPU_SELECTION_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect()
}

/// `apptainer.conf`, as far as tapir reads it (`key = value` lines, `#` comments).
#[derive(Debug, Clone, Default)]
pub(crate) struct ApptainerConf {
    pub path: Option<PathBuf>,
    entries: BTreeMap<String, String>,
}

impl ApptainerConf {
    /// The configuration of the installation `binary` belongs to: `<prefix>/etc/apptainer/`
    /// (a prefix of `/usr` keeps it in `/etc/apptainer/`). Empty when none is found.
    pub(crate) fn of(binary: &Path) -> Self {
        let prefix = std::fs::canonicalize(binary)
            .ok()
            .and_then(|b| b.parent()?.parent().map(Path::to_path_buf));
        let mut candidates = Vec::new();
        if let Some(prefix) = prefix {
            candidates.push(prefix.join("etc/apptainer/apptainer.conf"));
        }
        candidates.push(PathBuf::from("/etc/apptainer/apptainer.conf"));
        candidates
            .into_iter()
            .find_map(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                Some(Self::parse(&text, Some(path)))
            })
            .unwrap_or_default()
    }

    pub(crate) fn parse(text: &str, path: Option<PathBuf>) -> Self {
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Self { path, entries }
    }

    pub(crate) fn value(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// A `yes`/`no` setting.
    pub(crate) fn flag(&self, key: &str) -> Option<bool> {
        match self.value(key)?.to_ascii_lowercase().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        }
    }
}

/// Runs a command to its end, with its output, or kills it after `limit` (through the
/// one deadline runner, so a Ctrl-C while it waits kills it too).
pub(crate) fn output_within(command: &mut Command, limit: Duration) -> std::io::Result<Output> {
    deadline::output(command, limit).map_err(|e| match e {
        CallError::TimedOut(limit) => std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", limit.as_secs()),
        ),
        CallError::Spawn(e) => e,
    })
}

/// Where `exec --help` of `binary` is cached under `cache_dir`: named by a hash of the
/// binary's identity (see [`Apptainer::exec_help`]). `None` when the binary cannot be
/// looked at.
fn help_cache_path(binary: &Path, cache_dir: &Path) -> Option<PathBuf> {
    use sha2::{Digest as _, Sha256};
    use std::os::unix::fs::MetadataExt as _;
    let resolved = std::fs::canonicalize(binary).ok()?;
    let meta = std::fs::metadata(&resolved).ok()?;
    let identity = format!(
        "{}\0{}\0{}\0{}\0{}.{}\0{}.{}",
        resolved.display(),
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    let digest = Sha256::digest(identity.as_bytes());
    let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Some(cache_dir.join("apptainer-help").join(format!("{name}.txt")))
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

    /// A command for the apptainer binary without the host settings that would change
    /// the run behind the plan's back (`remove_host_settings`).
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        remove_host_settings(&mut command);
        command
    }

    /// `apptainer --version`, e.g. `apptainer version 1.3.4`.
    pub(crate) fn version(&self) -> Option<String> {
        let out = deadline::output(self.command().arg("--version"), deadline::limit()).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Reads `exec --help` for the flags that vary between versions, and the host for
    /// what apptainer checks before it applies limits.
    pub(crate) fn capabilities(&self) -> Capabilities {
        let help = self.exec_help();
        let has_limit_flags = help.contains("--memory") && help.contains("--cpus");
        let host = CgroupHost::gather(&ApptainerConf::of(&self.binary));
        Capabilities {
            limits_blocked: limits_blocker(has_limit_flags, &host),
            no_eval: help.contains("--no-eval"),
            ..Capabilities::newest()
        }
    }

    /// `apptainer exec --help`, from tapir's cache when this very binary answered before.
    /// Every run needs it, and asking costs a process per run (the stand-in's bash alone
    /// costs ~5 ms of CPU, a pipeline pays it per attempt). The cache is keyed by the
    /// binary's identity (path, device, inode, size, modification and change times), so
    /// an apptainer installed or upgraded in its place is asked again; only a successful
    /// answer is kept.
    fn exec_help(&self) -> String {
        self.exec_help_cached_in(super::lookup::cache_dir().as_deref())
    }

    /// [`Apptainer::exec_help`] with its cache under `cache_dir` (none: always asked).
    fn exec_help_cached_in(&self, cache_dir: Option<&Path>) -> String {
        let cached = cache_dir.and_then(|dir| help_cache_path(&self.binary, dir));
        if let Some(help) = cached
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
        {
            return help;
        }
        match deadline::output(self.command().args(["exec", "--help"]), deadline::limit()) {
            Ok(out) if out.status.success() && !out.stdout.is_empty() => {
                if let Some(path) = &cached {
                    super::lookup::write_cache(path, &out.stdout);
                }
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(_) => String::new(),
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

    /// The image's runscript: read from a sandbox folder, else `apptainer inspect
    /// --runscript`. `None` when it cannot be read.
    pub(crate) fn runscript(&self, image: &ImageRef) -> Option<String> {
        if let ImageRef::Sandbox(dir) = image {
            return std::fs::read_to_string(dir.join(".singularity.d/runscript")).ok();
        }
        let out = output_within(
            self.command()
                .args(["inspect", "--runscript", &image.argument()]),
            READ_FILE_DEADLINE,
        )
        .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Makes `target` (a SIF) from `source` once: `apptainer build` for `docker-daemon:`,
    /// `apptainer pull` for registry images. Written beside the target and renamed, so a
    /// cancelled conversion never leaves a half SIF under the cached name, and two runs
    /// converting at once both end with a whole one.
    pub(crate) fn make_sif(
        &self,
        target: &Path,
        source: &str,
        extra_env: &[(String, String)],
    ) -> Result<(), Error> {
        let dir = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::not_started(format!(
                "cannot create the SIF cache {}: {e}",
                dir.display()
            ))
        })?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = dir.join(format!(".{}.{name}", std::process::id()));
        let verb = if source.starts_with("docker-daemon:") {
            "build"
        } else {
            "pull"
        };
        let mut command = self.command();
        command
            .args(["-q", verb])
            .arg(&partial)
            .arg(source)
            .envs(extra_env.iter().map(|(k, v)| (k, v)));
        let out = output_within(&mut command, BUILD_DEADLINE).map_err(|e| {
            let _ = remove_any(&partial);
            Error::not_started(format!(
                "apptainer {verb} {source} into {} failed: {e}\n  fix: check that `apptainer {verb}` works here (`tapir doctor --mode apptainer`); a large image needs time and free space in APPTAINER_TMPDIR (else TMPDIR or /tmp)",
                target.display()
            ))
        })?;
        if !out.status.success() {
            let _ = remove_any(&partial);
            return Err(Error::not_started(format!(
                "apptainer {verb} {} {source} failed (exit {}): {}\n  fix: see the message above; the conversion needs free space in APPTAINER_TMPDIR (else TMPDIR or /tmp)",
                target.display(),
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        if std::fs::rename(&partial, target).is_err() {
            // Another run finished the same conversion first: keep its copy.
            let _ = remove_any(&partial);
            if !target.exists() {
                return Err(Error::not_started(format!(
                    "cannot move the new SIF to {}",
                    target.display()
                )));
            }
        }
        Ok(())
    }
}

/// Removes a file, or a folder (the stand-in's "SIF" is one).
fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// The parts of `APPTAINER_<NAME>`/`SINGULARITY_<NAME>` that apptainer reads as action
/// flags (binds, mounts, env files, home, working and scratch folders, containment,
/// namespaces, network, GPUs, limits, privileges, overlays): each would change the run
/// behind the plan's back. A name is removed when it starts with one of these. Everything
/// else stays, above all `CACHEDIR`, `TMPDIR`, `DISABLE_CACHE`, `DOCKER_*` (registry
/// logins, `DOCKER_HOST`), `AUTHFILE`, `CONFIGDIR`, `NOHTTPS`, `LIBRARY`, `KEYSERVER`.
const FLAG_SETTINGS: &[&str] = &[
    "ADD_CAPS",
    "ALLOW_SETUID",
    "APPLY_CGROUPS",
    "BIND",
    "BLKIO",
    "BOOT",
    "CDI",
    "CLEANENV",
    "COMPAT",
    "CONTAIN",
    "CPU",
    "CWD",
    "DEVICE",
    "DNS",
    "DROP_CAPS",
    "ENV",
    "FAKEROOT",
    "HOME",
    "HOSTNAME",
    "IGNORE_",
    "IPC",
    "KEEP_PRIVS",
    "MEMORY",
    "MOUNT",
    "NET",
    "NO_EVAL",
    "NO_HOME",
    "NO_INIT",
    "NO_MOUNT",
    "NO_NV",
    "NO_PRIVS",
    "NO_ROCM",
    "NO_UMASK",
    "NV",
    "OOM_KILL",
    "OVERLAY",
    "PID",
    "PWD",
    "ROCM",
    "SCRATCH",
    "SECURITY",
    "TARGET_",
    "UNSHARE",
    "USERNS",
    "UTS",
    "WORKDIR",
    "WRITABLE",
];

/// Whether tapir removes this host variable from apptainer's environment: container
/// variables (`APPTAINERENV_*`, `SINGULARITYENV_*`) and settings that act as flags.
pub(crate) fn is_removed_host_setting(name: &str) -> bool {
    if name.starts_with("APPTAINERENV_") || name.starts_with("SINGULARITYENV_") {
        return true;
    }
    let Some(setting) = name
        .strip_prefix("APPTAINER_")
        .or_else(|| name.strip_prefix("SINGULARITY_"))
    else {
        return false;
    };
    FLAG_SETTINGS.iter().any(|flag| setting.starts_with(flag))
}

/// Removes the host settings apptainer would read as flags or container variables
/// (`is_removed_host_setting`) from a command's environment; keeps the rest.
pub(crate) fn remove_host_settings(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if is_removed_host_setting(&name.to_string_lossy()) {
            command.env_remove(&name);
        }
    }
}

/// cgroups v2 (the unified hierarchy), which apptainer needs for limits without root.
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
    /// A SIF tapir made once from `source` (a `docker-daemon:` image, keyed by its image
    /// id; or a registry image, keyed by its reference) and runs instead of it.
    Cached { sif: PathBuf, source: String },
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

    /// An image of the local Docker engine (as it is, or converted): its ENTRYPOINT and
    /// WORKDIR are known from Docker.
    pub(crate) fn is_docker_image(&self) -> bool {
        match self {
            ImageRef::DockerDaemon(_) => true,
            ImageRef::Cached { source, .. } => source.starts_with("docker-daemon:"),
            _ => false,
        }
    }

    /// The argument apptainer takes.
    pub(crate) fn argument(&self) -> String {
        match self {
            ImageRef::Sandbox(p) | ImageRef::Sif(p) | ImageRef::Cached { sif: p, .. } => {
                p.display().to_string()
            }
            ImageRef::Docker(r) => format!("docker://{r}"),
            ImageRef::DockerDaemon(r) => format!("docker-daemon:{r}"),
            ImageRef::Oras(r) => r.clone(),
        }
    }
}

/// A `docker-daemon:` reference apptainer accepts: it refuses one with neither a tag nor
/// a digest (where Docker assumes `:latest`). `image_id` is what Docker found for it: a
/// reference that is a prefix of the id is an id, and is given whole.
pub(crate) fn daemon_reference(reference: &str, image_id: &str) -> String {
    let hex = image_id.trim_start_matches("sha256:");
    let given = reference.trim_start_matches("sha256:");
    if !given.is_empty() && given.len() >= 12 && hex.starts_with(given) {
        return format!("sha256:{hex}");
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// The image facts the rendering needs: from Docker for its images, else from the
/// image's runscript (`runscript_facts`). `None`: not known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageFacts {
    /// The ENTRYPOINT, to put before the command (empty: none).
    pub entrypoint: Option<Vec<String>>,
    /// The WORKDIR (empty: none, start in `/`).
    pub working_dir: Option<String>,
}

/// What an image's runscript tells: apptainer writes `OCI_ENTRYPOINT='…'` into the
/// runscript of an image converted from OCI. An empty one means no ENTRYPOINT (the
/// command can be `exec`uted as it is); a set one is applied by `run` (unknown here);
/// its WORKDIR is not recorded. A runscript without it comes from a definition file:
/// there is no ENTRYPOINT or WORKDIR to keep. `None`: the runscript could not be read.
pub(crate) fn runscript_facts(runscript: Option<&str>) -> ImageFacts {
    let Some(runscript) = runscript else {
        return ImageFacts::default();
    };
    let oci_entrypoint = runscript
        .lines()
        .find_map(|line| line.trim().strip_prefix("OCI_ENTRYPOINT="));
    match oci_entrypoint {
        Some(value) if matches!(value.trim(), "" | "''" | "\"\"") => ImageFacts {
            entrypoint: Some(Vec::new()),
            working_dir: None,
        },
        Some(_) => ImageFacts::default(),
        None => ImageFacts {
            entrypoint: Some(Vec::new()),
            working_dir: Some(String::new()),
        },
    }
}

/// Whether `--bind SRC:DST:MODE` would deliver this path unchanged: apptainer's bind
/// parser splits on `:` and also on `^`, trims blanks around each part and takes `\` as
/// an escape. Other paths go through `--mount`.
fn bind_keeps(path: &str) -> bool {
    !path.contains([':', '^', '\\']) && path.trim() == path
}

/// One field of `--mount`'s CSV record, quoted when it holds `"` or `,`.
fn csv_field(field: String) -> String {
    if field.contains(['"', ',', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

/// A value as apptainer < 1.1 delivers it: without `--no-eval` it writes
/// `export NAME="value"` into a shell script, escaping only `"`, so `$`, `` ` `` and `\`
/// would be evaluated. Escaping them keeps the value literal.
fn shell_escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `apptainer exec` (or `run`) for a plan: the arguments after the binary, the variables
/// to put in apptainer's own environment (`APPTAINERENV_*`: secrets, values `--env`
/// cannot carry and the host's GPU selection; `NVIDIA_VISIBLE_DEVICES` for
/// nvidia-container-cli sites), and the warnings for what apptainer cannot do here.
pub(crate) fn exec_argv(
    plan: &RunPlan,
    image: &ImageRef,
    facts: &ImageFacts,
    workdir: &Path,
    caps: &Capabilities,
) -> (RenderedRun, Vec<String>) {
    let mut warnings = Vec::new();
    // Apptainer has no --entrypoint: `exec` runs exactly what it is given, so it keeps the
    // image's ENTRYPOINT only when tapir knows it and puts it first. Otherwise `run`: the
    // runscript of an image converted from OCI is ENTRYPOINT + (arguments, else CMD),
    // which is Docker's rule. Without a command, `run` gives ENTRYPOINT + CMD.
    let use_runscript =
        plan.entrypoint.is_none() && (plan.command.is_none() || facts.entrypoint.is_none());
    let mut argv: Vec<String> = vec![if use_runscript { "run" } else { "exec" }.into()];
    argv.push("--containall".into());
    if caps.no_eval {
        argv.push("--no-eval".into());
    }
    argv.extend(["--workdir".into(), workdir.display().to_string()]);
    let pwd = facts
        .working_dir
        .as_deref()
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    argv.extend(["--pwd".into(), pwd.to_string()]);
    if facts.working_dir.is_none() {
        warnings.push(format!(
            "the image's WORKDIR is not known for {}: the task starts in / (Docker would start it in the image's WORKDIR)",
            image.argument()
        ));
    }
    let mut via_environment = Vec::new();
    if let Some(gpus) = plan.gpu_request() {
        gpu_flags(
            plan,
            &gpus,
            caps,
            &mut argv,
            &mut via_environment,
            &mut warnings,
        );
    }
    if let Some(network) = &plan.network {
        if network == "none" {
            // Allowed without privileges (the only network that is).
            argv.extend(["--net".into(), "--network".into(), "none".into()]);
        } else {
            warnings.push(format!(
                "--network {network} is not passed: apptainer gives users without privileges only `none`, so the task uses the host network"
            ));
        }
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
        if bind_keeps(&host) && bind_keeps(container) {
            let mode = if read_only { "ro" } else { "rw" };
            argv.extend(["--bind".into(), format!("{host}:{container}:{mode}")]);
        } else {
            // `--mount` is one CSV record of key=value fields: nothing else is special.
            let mut fields = vec![
                "type=bind".to_string(),
                csv_field(format!("src={host}")),
                csv_field(format!("dst={container}")),
            ];
            if read_only {
                fields.push("ro".into());
            }
            argv.extend(["--mount".into(), fields.join(",")]);
        }
    }
    let mut escaped_any = false;
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
        let value = if caps.no_eval {
            var.value.text.clone()
        } else {
            let escaped = shell_escaped(&var.value.text);
            escaped_any |= escaped != var.value.text;
            escaped
        };
        // `--env` is parsed as a comma-separated list of NAME=VALUE pairs with quoting:
        // such values, and secrets, travel in apptainer's environment instead.
        let awkward = value.contains([',', '"', '=', '\n', '\r', '\'']);
        if var.value.secret || awkward {
            via_environment.push((format!("APPTAINERENV_{}", var.name), value));
        } else {
            argv.extend(["--env".into(), format!("{}={value}", var.name)]);
        }
    }
    if escaped_any {
        warnings.push(
            "this apptainer has no --no-eval (it came with 1.1): `$`, `` ` `` and `\\` in variable values were escaped so that its shell keeps them literal".into(),
        );
    }
    limit_flags(plan, caps, &mut argv, &mut warnings);
    engine_option_warnings(plan, &mut warnings);
    // Last before the image, verbatim (refused ones were stopped by `engine_args::check`).
    argv.extend(plan.engine.engine_args.iter().cloned());
    if plan.user == PlannedUser::Image {
        warnings.push("--user image has no effect: apptainer always runs as you".into());
    }
    argv.push(image.argument());
    if use_runscript {
        argv.extend(plan.command.iter().flatten().cloned());
    } else {
        match &plan.entrypoint {
            Some(entrypoint) => argv.push(entrypoint.clone()),
            None => argv.extend(facts.entrypoint.iter().flatten().cloned()),
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

/// `--nv` or `--rocm`, and the GPU selection: under `--containall` apptainer drops the
/// host's `CUDA_VISIBLE_DEVICES` (the scheduler's choice) while `--nv` binds every GPU, and
/// with nvidia-container-cli it exposes only what `NVIDIA_VISIBLE_DEVICES` in its own
/// environment names (nothing when it is unset).
/// `--gpus all` keeps the scheduler's selection (all the GPUs this job was given) and
/// otherwise exposes every GPU; `--gpus device=…` replaces the selection with its own.
fn gpu_flags(
    plan: &RunPlan,
    gpus: &GpuRequest,
    caps: &Capabilities,
    argv: &mut Vec<String>,
    via_environment: &mut Vec<(String, String)>,
    warnings: &mut Vec<String>,
) {
    let set_by_task = |name: &str| plan.env.iter().any(|v| v.name == name);
    argv.push(match caps.gpu {
        GpuKind::Nvidia => "--nv".into(),
        GpuKind::Amd => "--rocm".into(),
    });
    let selection_variable = match caps.gpu {
        GpuKind::Nvidia => "CUDA_VISIBLE_DEVICES",
        GpuKind::Amd => "ROCR_VISIBLE_DEVICES",
    };
    if let GpuRequest::Devices(devices) = gpus {
        let devices = devices.join(",");
        for (name, value) in &caps.gpu_selection {
            if name == selection_variable || name == "NVIDIA_VISIBLE_DEVICES" {
                warnings.push(format!(
                    "--gpus device={devices} replaces the host's GPU selection {name}={value}"
                ));
            } else if !set_by_task(name) {
                via_environment.push((format!("APPTAINERENV_{name}"), value.clone()));
            }
        }
        if !set_by_task(selection_variable) {
            via_environment.push((
                format!("APPTAINERENV_{selection_variable}"),
                devices.clone(),
            ));
        }
        if caps.gpu == GpuKind::Nvidia {
            via_environment.push(("NVIDIA_VISIBLE_DEVICES".into(), devices));
        }
        return;
    }
    for (name, value) in &caps.gpu_selection {
        if !set_by_task(name) {
            via_environment.push((format!("APPTAINERENV_{name}"), value.clone()));
        }
    }
    let count = match gpus {
        GpuRequest::Count(count) => *count,
        _ => {
            // All: what the scheduler gave, else every GPU (`--nv` binds them all).
            if caps.gpu == GpuKind::Nvidia {
                let selected = caps
                    .gpu_selection
                    .get("NVIDIA_VISIBLE_DEVICES")
                    .or_else(|| caps.gpu_selection.get("CUDA_VISIBLE_DEVICES"))
                    .cloned()
                    .unwrap_or_else(|| "all".into());
                via_environment.push(("NVIDIA_VISIBLE_DEVICES".into(), selected));
            }
            return;
        }
    };
    let first = (0..count)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let selected = caps
        .gpu_selection
        .get("NVIDIA_VISIBLE_DEVICES")
        .or_else(|| caps.gpu_selection.get("CUDA_VISIBLE_DEVICES"))
        .or_else(|| caps.gpu_selection.get(selection_variable))
        .cloned();
    let selected = match selected {
        Some(selected) => selected,
        None => {
            if !set_by_task(selection_variable) {
                via_environment.push((format!("APPTAINERENV_{selection_variable}"), first.clone()));
            }
            warnings.push(format!(
                "{count} GPU(s) requested and no GPU selection from a scheduler ({selection_variable} is not set): the task is given GPU(s) {first}, whatever else uses them"
            ));
            first
        }
    };
    if caps.gpu == GpuKind::Nvidia {
        via_environment.push(("NVIDIA_VISIBLE_DEVICES".into(), selected));
    }
}

/// What apptainer cannot do of `--shm-size` and `--publish`: it has no shm setting, and
/// without a network namespace the container's ports are the host's own.
fn engine_option_warnings(plan: &RunPlan, warnings: &mut Vec<String>) {
    if let Some(bytes) = plan.engine.shm_size_bytes {
        warnings.push(format!(
            "--shm-size {} is not applied: apptainer has no such setting (the container uses the host's /dev/shm)",
            crate::model::quantity::format_bytes(bytes)
        ));
    }
    for port in &plan.engine.ports {
        let mapped = port
            .host_port
            .is_some_and(|host| host != port.container_port);
        warnings.push(format!(
            "--publish {port}: apptainer shares the host's network, so the task's port {} is the host's own, on the addresses the program listens on{}",
            port.container_port,
            if mapped {
                " (it cannot be mapped to another host port)"
            } else {
                ""
            }
        ));
    }
}

/// `--memory`, `--memory-swap`, `--memory-reservation`, `--cpus` where apptainer can apply
/// them (it stops with a fatal error where it cannot); a warning where it cannot.
fn limit_flags(
    plan: &RunPlan,
    caps: &Capabilities,
    argv: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let limits = &plan.limits;
    let any_limit = limits.memory_bytes.is_some()
        || limits.cpu_millis.is_some()
        || limits.memory_reservation_bytes.is_some();
    if !any_limit {
        return;
    }
    if let Some(reason) = &caps.limits_blocked {
        warnings.push(format!(
            "memory and CPU limits are NOT enforced: {reason}; the task runs without them"
        ));
        return;
    }
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
    if let Some(asked) = limits.cpu_millis {
        // Apptainer refuses --cpus outside [0.01, the CPUs this process may use].
        let most = u64::from(caps.usable_cpus.max(1)) * 1000;
        let millis = asked.clamp(10, most);
        if millis != asked {
            warnings.push(format!(
                "the CPU limit {}.{:03} is outside what apptainer accepts here (0.010 to {}, the CPUs this process may use): {}.{:03} is passed",
                asked / 1000,
                asked % 1000,
                caps.usable_cpus.max(1),
                millis / 1000,
                millis % 1000
            ));
        }
        argv.extend([
            "--cpus".into(),
            format!("{}.{:03}", millis / 1000, millis % 1000),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::plan::{CommandSource, EnvValue, Limits, PlannedEnv};

    /// A fake apptainer that prints `help` for `exec --help` and counts its calls.
    fn counting_apptainer(dir: &Path, help: &str) -> (Apptainer, PathBuf) {
        use std::os::unix::fs::PermissionsExt as _;
        let calls = dir.join("calls");
        let binary = dir.join("apptainer");
        std::fs::write(
            &binary,
            format!(
                "#!/bin/sh\necho x >> '{}'\n[ \"$1 $2\" = 'exec --help' ] && printf '%s\\n' '{help}'\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        (Apptainer { binary }, calls)
    }

    fn calls(path: &Path) -> usize {
        std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
    }

    #[test]
    fn exec_help_is_asked_once_per_binary_and_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let (apptainer, counted) = counting_apptainer(dir.path(), "--memory --cpus --no-eval");
        let first = apptainer.exec_help_cached_in(Some(&cache));
        assert!(first.contains("--no-eval"), "{first:?}");
        assert_eq!(apptainer.exec_help_cached_in(Some(&cache)), first);
        assert_eq!(calls(&counted), 1, "the second answer came from the cache");
        // No cache folder: asked every time.
        apptainer.exec_help_cached_in(None);
        assert_eq!(calls(&counted), 2);
        // The binary replaced (another version): asked again, its own answer.
        std::fs::remove_file(&apptainer.binary).unwrap();
        let (apptainer, counted) = counting_apptainer(dir.path(), "--memory");
        std::fs::remove_file(&counted).unwrap();
        let second = apptainer.exec_help_cached_in(Some(&cache));
        assert!(!second.contains("--no-eval"), "{second:?}");
        assert_eq!(calls(&counted), 1);
    }

    #[test]
    fn a_failed_exec_help_is_not_cached() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let binary = dir.path().join("apptainer");
        std::fs::write(&binary, "#!/bin/sh\necho partial; exit 3\n").unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        let apptainer = Apptainer { binary };
        apptainer.exec_help_cached_in(Some(&cache));
        assert!(
            !cache.join("apptainer-help").exists()
                || std::fs::read_dir(cache.join("apptainer-help"))
                    .unwrap()
                    .next()
                    .is_none()
        );
    }

    fn plan() -> RunPlan {
        RunPlan {
            task_name: "t".into(),
            template: "t".into(),
            template_source: "inline".into(),
            image: "tool.sif".into(),
            mounts: Vec::new(),
            binds: Vec::new(),
            env: Vec::new(),
            command: Some(vec!["sh".into(), "-c".into(), "echo hi".into()]),
            command_source: CommandSource::Template,
            entrypoint: None,
            limits: Limits::default(),
            labels: BTreeMap::new(),
            user: PlannedUser::Invoker {
                uid: 1000,
                gid: 1000,
            },
            network: None,
            engine: Default::default(),
            warnings: Vec::new(),
        }
    }

    fn var(name: &str, value: &str) -> PlannedEnv {
        PlannedEnv {
            name: name.into(),
            value: EnvValue {
                text: value.into(),
                secret: false,
            },
            source: EnvSource::Task,
        }
    }

    fn caps() -> Capabilities {
        Capabilities {
            usable_cpus: 2,
            no_eval: true,
            ..Capabilities::default()
        }
    }

    /// Facts of a definition-file image: no ENTRYPOINT, no WORKDIR.
    fn plain() -> ImageFacts {
        runscript_facts(Some("#!/bin/sh\nexec /bin/sh \"$@\"\n"))
    }

    fn render(plan: &RunPlan, image: &ImageRef, caps: &Capabilities) -> (RenderedRun, Vec<String>) {
        exec_argv(plan, image, &plain(), Path::new("/scratch"), caps)
    }

    fn environment(rendered: &RenderedRun) -> BTreeMap<&str, &str> {
        rendered
            .secret_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn an_unknown_entrypoint_is_kept_by_running_the_runscript_with_the_command() {
        let sif = ImageRef::Sif("/images/tool.sif".into());
        let oci = runscript_facts(Some(
            "#!/bin/sh\nOCI_ENTRYPOINT='\"/bin/echo\" \"entry\"'\nOCI_CMD='\"sh\"'\n",
        ));
        assert_eq!(oci, ImageFacts::default());
        let (rendered, warnings) = exec_argv(&plan(), &sif, &oci, Path::new("/scratch"), &caps());
        assert_eq!(rendered.argv[0], "run", "{:?}", rendered.argv);
        assert!(
            rendered.argv.ends_with(&[
                "/images/tool.sif".into(),
                "sh".into(),
                "-c".into(),
                "echo hi".into()
            ]),
            "{:?}",
            rendered.argv
        );
        assert!(
            warnings.iter().any(|w| w.contains("WORKDIR is not known")),
            "{warnings:?}"
        );
        // An --entrypoint given by the user is run with exec, as before.
        let mut with_entrypoint = plan();
        with_entrypoint.entrypoint = Some("/bin/other".into());
        let (rendered, _) = exec_argv(&with_entrypoint, &sif, &oci, Path::new("/scratch"), &caps());
        assert_eq!(rendered.argv[0], "exec");
        let image_at = rendered.argv.iter().position(|w| w == "/images/tool.sif");
        assert_eq!(rendered.argv[image_at.unwrap() + 1], "/bin/other");
    }

    #[test]
    fn the_runscript_says_whether_there_is_an_entrypoint() {
        // OCI image without ENTRYPOINT: exec the command; its WORKDIR is not known.
        let no_entrypoint =
            runscript_facts(Some("#!/bin/sh\nOCI_ENTRYPOINT=''\nOCI_CMD='\"sh\"'\n"));
        assert_eq!(no_entrypoint.entrypoint, Some(Vec::new()));
        assert_eq!(no_entrypoint.working_dir, None);
        let (rendered, warnings) = exec_argv(
            &plan(),
            &ImageRef::Sif("/i.sif".into()),
            &no_entrypoint,
            Path::new("/scratch"),
            &caps(),
        );
        assert_eq!(rendered.argv[0], "exec");
        assert!(warnings[0].contains("WORKDIR is not known"), "{warnings:?}");
        // A definition-file image: exec, no warning.
        let (rendered, warnings) = render(&plan(), &ImageRef::Sif("/i.sif".into()), &caps());
        assert_eq!(rendered.argv[0], "exec");
        assert!(warnings.is_empty(), "{warnings:?}");
        // Unreadable: run, and the WORKDIR warning.
        assert_eq!(runscript_facts(None), ImageFacts::default());
    }

    #[test]
    fn network_none_is_passed_as_net_network_none() {
        let mut none = plan();
        none.network = Some("none".into());
        let (rendered, warnings) = render(&none, &ImageRef::Sandbox("/img".into()), &caps());
        let at = rendered
            .argv
            .iter()
            .position(|w| w == "--net")
            .expect("--net");
        assert_eq!(rendered.argv[at + 1..at + 3], ["--network", "none"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut host = plan();
        host.network = Some("host".into());
        let (rendered, warnings) = render(&host, &ImageRef::Sandbox("/img".into()), &caps());
        assert!(!rendered.argv.contains(&"--net".to_string()));
        assert!(
            warnings[0].contains("--network host is not passed"),
            "{warnings:?}"
        );
    }

    #[test]
    fn without_no_eval_shell_characters_are_escaped() {
        let mut values = plan();
        values.env = vec![var("CMD", "$(id) `id` end\\"), var("PLAIN", "a b")];
        let old = Capabilities {
            no_eval: false,
            ..caps()
        };
        let (rendered, warnings) = render(&values, &ImageRef::Sandbox("/img".into()), &old);
        assert!(
            rendered
                .argv
                .contains(&"CMD=\\$(id) \\`id\\` end\\\\".to_string()),
            "{:?}",
            rendered.argv
        );
        assert!(rendered.argv.contains(&"PLAIN=a b".to_string()));
        assert!(
            warnings.iter().any(|w| w.contains("no --no-eval")),
            "{warnings:?}"
        );
        // With --no-eval the value goes as it is.
        let (rendered, warnings) = render(&values, &ImageRef::Sandbox("/img".into()), &caps());
        assert!(rendered.argv.contains(&"CMD=$(id) `id` end\\".to_string()));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn limits_are_left_out_with_the_reason_where_apptainer_would_refuse_them() {
        let mut limited = plan();
        limited.limits.memory_bytes = Some(64 << 20);
        limited.limits.cpu_millis = Some(500);
        let blocked = Capabilities {
            limits_blocked: Some("there is no user D-Bus session".into()),
            ..caps()
        };
        let (rendered, warnings) = render(&limited, &ImageRef::Sandbox("/img".into()), &blocked);
        assert!(
            !rendered
                .argv
                .iter()
                .any(|w| w == "--memory" || w == "--cpus")
        );
        assert_eq!(
            warnings,
            [
                "memory and CPU limits are NOT enforced: there is no user D-Bus session; the task runs without them"
            ]
        );
    }

    #[test]
    fn cpus_are_capped_to_what_apptainer_accepts() {
        let mut limited = plan();
        limited.limits.cpu_millis = Some(8000);
        let (rendered, warnings) = render(&limited, &ImageRef::Sandbox("/img".into()), &caps());
        let at = rendered
            .argv
            .iter()
            .position(|w| w == "--cpus")
            .expect("--cpus");
        assert_eq!(rendered.argv[at + 1], "2.000");
        assert!(warnings[0].contains("8.000 is outside"), "{warnings:?}");
        limited.limits.cpu_millis = Some(1);
        let (rendered, _) = render(&limited, &ImageRef::Sandbox("/img".into()), &caps());
        assert!(rendered.argv.contains(&"0.010".to_string()));
    }

    #[test]
    fn cgroup_limits_need_root_or_what_apptainer_checks() {
        let batch_job = CgroupHost {
            root: false,
            cgroups_v2: true,
            systemd_running: true,
            systemd_cgroups_in_conf: true,
            user_dbus_session: false,
            writable_runtime_dir: false,
        };
        assert!(limits_blocker(true, &batch_job).unwrap().contains("D-Bus"));
        let desktop = CgroupHost {
            user_dbus_session: true,
            writable_runtime_dir: true,
            ..batch_job
        };
        assert_eq!(limits_blocker(true, &desktop), None);
        let v1_root = CgroupHost {
            root: true,
            cgroups_v2: false,
            systemd_running: false,
            ..batch_job
        };
        assert_eq!(
            limits_blocker(true, &v1_root),
            None,
            "root can use cgroups v1"
        );
        let v1_user = CgroupHost {
            root: false,
            ..v1_root
        };
        assert!(
            limits_blocker(true, &v1_user)
                .unwrap()
                .contains("cgroups v1")
        );
        let conf_off = CgroupHost {
            systemd_cgroups_in_conf: false,
            ..desktop
        };
        assert!(
            limits_blocker(true, &conf_off)
                .unwrap()
                .contains("systemd cgroups = no")
        );
        assert!(
            limits_blocker(false, &v1_root)
                .unwrap()
                .contains("no --memory")
        );
    }

    #[test]
    fn the_scheduler_gpu_selection_is_forwarded() {
        let mut gpu = plan();
        gpu.limits.gpus = Some(1);
        let scheduled = Capabilities {
            gpu_selection: BTreeMap::from([("CUDA_VISIBLE_DEVICES".into(), "3".into())]),
            ..caps()
        };
        let (rendered, warnings) = render(&gpu, &ImageRef::Sandbox("/img".into()), &scheduled);
        assert!(rendered.argv.contains(&"--nv".to_string()));
        let env = environment(&rendered);
        assert_eq!(env.get("APPTAINERENV_CUDA_VISIBLE_DEVICES"), Some(&"3"));
        assert_eq!(env.get("NVIDIA_VISIBLE_DEVICES"), Some(&"3"));
        assert!(warnings.is_empty(), "{warnings:?}");

        // No scheduler: the first N GPUs, said aloud.
        gpu.limits.gpus = Some(2);
        let (rendered, warnings) = render(&gpu, &ImageRef::Sandbox("/img".into()), &caps());
        let env = environment(&rendered);
        assert_eq!(env.get("APPTAINERENV_CUDA_VISIBLE_DEVICES"), Some(&"0,1"));
        assert_eq!(env.get("NVIDIA_VISIBLE_DEVICES"), Some(&"0,1"));
        assert!(warnings[0].contains("no GPU selection"), "{warnings:?}");

        // AMD: --rocm and ROCR_VISIBLE_DEVICES.
        let amd = Capabilities {
            gpu: GpuKind::Amd,
            gpu_selection: BTreeMap::from([("ROCR_VISIBLE_DEVICES".into(), "1".into())]),
            ..caps()
        };
        let (rendered, _) = render(&gpu, &ImageRef::Sandbox("/img".into()), &amd);
        assert!(rendered.argv.contains(&"--rocm".to_string()));
        let env = environment(&rendered);
        assert_eq!(env.get("APPTAINERENV_ROCR_VISIBLE_DEVICES"), Some(&"1"));
        assert_eq!(env.get("NVIDIA_VISIBLE_DEVICES"), None);

        // `--gpus device=…` replaces the scheduler's selection, and says so.
        gpu.engine.gpus = Some(GpuRequest::Devices(vec!["1".into(), "2".into()]));
        let (rendered, warnings) = render(&gpu, &ImageRef::Sandbox("/img".into()), &scheduled);
        let env = environment(&rendered);
        assert_eq!(env.get("APPTAINERENV_CUDA_VISIBLE_DEVICES"), Some(&"1,2"));
        assert_eq!(env.get("NVIDIA_VISIBLE_DEVICES"), Some(&"1,2"));
        assert!(warnings[0].contains("replaces the host's GPU selection CUDA_VISIBLE_DEVICES=3"));

        // `--gpus all`: the scheduler's selection when there is one, else every GPU.
        gpu.engine.gpus = Some(GpuRequest::All);
        let (rendered, warnings) = render(&gpu, &ImageRef::Sandbox("/img".into()), &scheduled);
        let env = environment(&rendered);
        assert_eq!(env.get("APPTAINERENV_CUDA_VISIBLE_DEVICES"), Some(&"3"));
        assert_eq!(env.get("NVIDIA_VISIBLE_DEVICES"), Some(&"3"));
        assert!(warnings.is_empty(), "{warnings:?}");
        let (rendered, _) = render(&gpu, &ImageRef::Sandbox("/img".into()), &caps());
        let env = environment(&rendered);
        assert_eq!(env.get("APPTAINERENV_CUDA_VISIBLE_DEVICES"), None);
        assert_eq!(env.get("NVIDIA_VISIBLE_DEVICES"), Some(&"all"));
    }

    #[test]
    fn only_host_settings_that_act_as_flags_are_removed() {
        for removed in [
            "APPTAINER_BIND",
            "APPTAINER_BINDPATH",
            "SINGULARITY_BIND",
            "APPTAINERENV_FOO",
            "SINGULARITYENV_FOO",
            "APPTAINER_ENV_FILE",
            "APPTAINER_NV",
            "APPTAINER_NVCCLI",
            "APPTAINER_MEMORY",
            "APPTAINER_CPUS",
            "APPTAINER_WRITABLE_TMPFS",
            "APPTAINER_NETWORK",
            "APPTAINER_CONTAINALL",
            "APPTAINER_CLEANENV",
            "APPTAINER_HOME",
            "APPTAINER_NO_EVAL",
            "APPTAINER_TARGET_PWD",
        ] {
            assert!(is_removed_host_setting(removed), "{removed}");
        }
        for kept in [
            "APPTAINER_CACHEDIR",
            "APPTAINER_TMPDIR",
            "SINGULARITY_CACHEDIR",
            "APPTAINER_DISABLE_CACHE",
            "APPTAINER_DOCKER_USERNAME",
            "APPTAINER_DOCKER_PASSWORD",
            "APPTAINER_DOCKER_HOST",
            "APPTAINER_AUTHFILE",
            "APPTAINER_CONFIGDIR",
            "APPTAINER_NOHTTPS",
            "PATH",
        ] {
            assert!(!is_removed_host_setting(kept), "{kept}");
        }
    }

    #[test]
    fn docker_daemon_references_get_a_tag_or_the_whole_id() {
        let id = "sha256:843cd3ded925aaaabbbbccccddddeeeeffff00001111222233334444555566";
        assert_eq!(daemon_reference("tool", id), "tool:latest");
        assert_eq!(
            daemon_reference("localhost:5000/tool", id),
            "localhost:5000/tool:latest"
        );
        assert_eq!(daemon_reference("tool:1.0", id), "tool:1.0");
        assert_eq!(daemon_reference("tool@sha256:abc", id), "tool@sha256:abc");
        assert_eq!(daemon_reference("843cd3ded925", id), id);
    }

    #[test]
    fn apptainer_conf_settings_are_read() {
        let conf = ApptainerConf::parse(
            "# allow setuid = yes\nallow setuid = no\n  user bind control = NO\nsystemd cgroups=yes\n",
            None,
        );
        assert_eq!(conf.flag("allow setuid"), Some(false));
        assert_eq!(conf.flag("user bind control"), Some(false));
        assert_eq!(conf.flag("systemd cgroups"), Some(true));
        assert_eq!(conf.flag("use nvidia-container-cli"), None);
    }
}
