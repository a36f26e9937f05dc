//! `tapir doctor`: which engines are here and what will work with them, in plain words.
//! Exit 0 only when the chosen mode can run tasks.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use crate::backend::apptainer::{self, Apptainer, ApptainerConf};
use crate::backend::deadline::{self, TIMEOUT_ENV};
use crate::backend::docker::{Docker, EngineFailure};
use crate::cli::{ColorChoice, DoctorArgs, PlanFormat};
use crate::error::{ExitStatus, Result};
use crate::output::{self, Printer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Ok,
    /// Works, with a limitation worth knowing.
    Note,
    /// The mode cannot run tasks.
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    area: &'static str,
    verdict: Verdict,
    detail: String,
}

/// The words of a check whose engine did not answer within the deadline.
const NO_ANSWER: &str = "did not answer within";

fn check(area: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        area,
        verdict,
        detail: detail.into(),
    }
}

pub(crate) fn run(args: &DoctorArgs, color: ColorChoice) -> Result<ExitStatus> {
    let mut checks = vec![host_checks()];
    checks.extend(docker_checks());
    checks.extend(apptainer_checks(args.deep.as_deref()));
    let chosen = args.mode.name();
    let can_run = !checks
        .iter()
        .any(|c| c.area.starts_with(chosen) && c.verdict == Verdict::Fail);
    // What the other engine lacks does not stop this mode: say it, without alarm.
    for c in &mut checks {
        if c.verdict == Verdict::Fail && !c.area.starts_with(chosen) {
            c.verdict = Verdict::Note;
        }
    }

    match args.format {
        PlanFormat::Json => {
            let value = serde_json::json!({"mode": chosen, "can_run": can_run, "checks": checks});
            output::stdout_json(&value);
        }
        PlanFormat::Human => {
            let p = Printer::for_stdout(color);
            let mut out = String::new();
            for c in &checks {
                let mark = match c.verdict {
                    Verdict::Ok => p.green("ok  "),
                    Verdict::Note => p.yellow("note"),
                    Verdict::Fail => p.red("FAIL"),
                };
                out.push_str(&format!("{mark} {:<18} {}\n", c.area, c.detail));
            }
            out.push_str(&if can_run {
                p.green(&format!("\n--mode {chosen} can run tasks here.\n"))
            } else {
                p.red(&format!(
                    "\n--mode {chosen} cannot run tasks here (see FAIL above).\n"
                ))
            });
            output::stdout(&out);
        }
    }
    // An engine that did not answer in time ends like every other command it stalls:
    // 125, as `run` would.
    let engine_silent = checks.iter().any(|c| {
        c.area.starts_with(chosen) && c.verdict == Verdict::Fail && c.detail.contains(NO_ANSWER)
    });
    Ok(if can_run {
        ExitStatus::Success
    } else if engine_silent {
        ExitStatus::NotStarted
    } else {
        ExitStatus::Failed
    })
}

fn host_checks() -> Check {
    if apptainer::cgroups_v2() {
        check(
            "host cgroups",
            Verdict::Ok,
            "cgroups v2 (limits can be enforced)",
        )
    } else {
        check(
            "host cgroups",
            Verdict::Note,
            "cgroups v1: Docker enforces limits; Apptainer only for root",
        )
    }
}

fn docker_checks() -> Vec<Check> {
    let docker = match Docker::locate() {
        Ok(docker) => docker,
        Err(_) => {
            return vec![check(
                "docker",
                Verdict::Fail,
                "the `docker` command is not on PATH (install Docker, or set TAPIR_DOCKER)",
            )];
        }
    };
    let mut checks = vec![check(
        "docker client",
        Verdict::Ok,
        format!(
            "{} (version {})",
            docker.binary.display(),
            docker.client_version().unwrap_or_else(|| "unknown".into())
        ),
    )];
    let info = match docker.info() {
        Ok(info) => info,
        // Connected, then nothing: a hung daemon, not a stopped one.
        Err(EngineFailure::NoAnswer(message)) => {
            checks.push(check(
                "docker daemon",
                Verdict::Fail,
                format!(
                    "{}; if it is only slow, raise {TIMEOUT_ENV} (now {} s)",
                    message.lines().next().unwrap_or_default(),
                    deadline::seconds()
                ),
            ));
            return checks;
        }
        Err(EngineFailure::Other(_)) => {
            checks.push(check(
                "docker daemon",
                Verdict::Fail,
                "the daemon does not answer (start it: `sudo systemctl start docker`; check DOCKER_HOST and your access to its socket)",
            ));
            return checks;
        }
    };
    checks.push(check(
        "docker daemon",
        Verdict::Ok,
        format!(
            "answers: Docker Engine {} on {}",
            info["ServerVersion"].as_str().unwrap_or("?"),
            info["OperatingSystem"].as_str().unwrap_or("?")
        ),
    ));
    let rootless = info["SecurityOptions"].as_array().is_some_and(|o| {
        o.iter()
            .any(|v| v.as_str().is_some_and(|s| s.contains("rootless")))
    });
    checks.push(check(
        "docker mode",
        Verdict::Ok,
        if rootless {
            "rootless: outputs written as your uid map to you"
        } else {
            "rootful: tapir runs containers as you (--user UID:GID), so outputs are yours"
        },
    ));
    let nvidia = info["Runtimes"]
        .as_object()
        .is_some_and(|r| r.contains_key("nvidia"))
        || which::which("nvidia-container-runtime").is_ok();
    checks.push(if nvidia {
        check(
            "docker gpu",
            Verdict::Ok,
            "an NVIDIA runtime is installed: GPU tasks can run",
        )
    } else {
        check(
            "docker gpu",
            Verdict::Note,
            "no NVIDIA runtime: tasks that request a GPU will fail to start",
        )
    });
    checks
}

/// What the test stand-in (`tests/apptainer/apptainer`) cannot show about a real
/// Apptainer, so that `doctor` never passes it off as one.
const STAND_IN_LIMITS: &str = "this is tapir's test stand-in (bash + bwrap, tests/apptainer/), not Apptainer: it runs sandbox folders and Docker images it copies into a folder, accepts but does not enforce memory/CPU limits, models GPUs as device files and has no registry, SIF, overlay or setuid support; what passes here says little about a real installation (run `tapir doctor --mode apptainer --deep IMAGE` there)";

fn apptainer_checks(deep_image: Option<&str>) -> Vec<Check> {
    let apptainer = match Apptainer::locate() {
        Ok(apptainer) => apptainer,
        Err(_) => {
            return vec![check(
                "apptainer",
                Verdict::Fail,
                "the `apptainer` command is not on PATH (install Apptainer, or set TAPIR_APPTAINER; to try apptainer mode on a machine without it, put tapir's stand-in first: PATH=$PWD/tests/apptainer:$PATH)",
            )];
        }
    };
    let Some(version) = apptainer.version() else {
        return vec![check(
            "apptainer",
            Verdict::Fail,
            format!(
                "{} does not run (`--version` failed)",
                apptainer.binary.display()
            ),
        )];
    };
    let mut checks = vec![check(
        "apptainer",
        Verdict::Ok,
        format!("{} ({version})", apptainer.binary.display()),
    )];
    if version.contains("tapir-standin") {
        checks.push(check("apptainer stand-in", Verdict::Note, STAND_IN_LIMITS));
    }
    let conf = ApptainerConf::of(&apptainer.binary);
    checks.push(match &conf.path {
        Some(path) => check(
            "apptainer config",
            Verdict::Ok,
            format!("{} read", path.display()),
        ),
        None => check(
            "apptainer config",
            Verdict::Note,
            "no apptainer.conf found next to the installation or in /etc/apptainer: its defaults are assumed",
        ),
    });
    checks.push(install_mode(
        setuid_starter(&apptainer.binary),
        conf.flag("allow setuid"),
        user_namespaces(),
    ));
    if conf.flag("user bind control") == Some(false) {
        checks.push(check(
            "apptainer binds",
            Verdict::Fail,
            "apptainer.conf says `user bind control = no`: apptainer ignores --bind, --mount and --workdir with only a warning, so tasks would not see their inputs, outputs or scratch folder",
        ));
    }
    let caps = apptainer.capabilities();
    checks.push(match &caps.limits_blocked {
        None => check(
            "apptainer limits",
            Verdict::Ok,
            format!(
                "--memory/--cpus are passed (--cpus at most {}, the CPUs tapir may use here)",
                caps.usable_cpus
            ),
        ),
        Some(reason) => check(
            "apptainer limits",
            Verdict::Note,
            format!("memory and CPU limits are left out, and runs warn about it: {reason}"),
        ),
    });
    let nvccli = conf.flag("use nvidia-container-cli") == Some(true);
    checks.push(match (caps.gpu, which::which("nvidia-smi").is_ok()) {
        (apptainer::GpuKind::Amd, _) => check(
            "apptainer gpu",
            Verdict::Ok,
            "/dev/kfd found: GPU tasks get --rocm and the scheduler's ROCR_VISIBLE_DEVICES",
        ),
        (_, true) if nvccli => check(
            "apptainer gpu",
            Verdict::Ok,
            "nvidia-container-cli in use: tapir sets NVIDIA_VISIBLE_DEVICES (the scheduler's GPUs) so that --nv exposes them",
        ),
        (_, true) => check(
            "apptainer gpu",
            Verdict::Ok,
            "nvidia-smi found: GPU tasks get --nv and the scheduler's CUDA_VISIBLE_DEVICES (--nv itself binds every GPU of the node)",
        ),
        (_, false) => check(
            "apptainer gpu",
            Verdict::Note,
            "no nvidia-smi and no /dev/kfd: tasks that request a GPU run without one",
        ),
    });
    if let Some(image) = deep_image {
        checks.extend(site_checks(&apptainer, image));
    }
    checks
}

/// How this installation starts containers: setuid only when the starter is setuid root
/// and `allow setuid` is not `no` (since 1.1 the default install uses user namespaces).
fn install_mode(setuid_starter: bool, allow_setuid: Option<bool>, userns: bool) -> Check {
    match (setuid_starter, allow_setuid != Some(false), userns) {
        (true, true, _) => check(
            "apptainer mode",
            Verdict::Ok,
            "setuid starter in use (allow setuid = yes): keep run folders off root-squashed NFS",
        ),
        (starter, _, true) => check(
            "apptainer mode",
            Verdict::Ok,
            if starter {
                "unprivileged (the setuid starter is installed but `allow setuid = no`): user namespaces are available"
            } else {
                "unprivileged: user namespaces are available"
            },
        ),
        (_, _, false) => check(
            "apptainer mode",
            Verdict::Note,
            "no usable setuid starter and user namespaces look disabled: containers may fail to start",
        ),
    }
}

/// The site checks script (`tests/apptainer/site-checks.sh`), run with `image`: each of
/// its lines (`RESULT\tCHECK\tTEXT`) becomes a check.
fn site_checks(apptainer: &Apptainer, image: &str) -> Vec<Check> {
    const SCRIPT: &str = include_str!("../../tests/apptainer/site-checks.sh");
    let mut command = std::process::Command::new("bash");
    command
        .args(["-c", SCRIPT, "site-checks.sh", image])
        .env("APPTAINER", &apptainer.binary);
    let out = match apptainer::output_within(&mut command, std::time::Duration::from_secs(900)) {
        Ok(out) => out,
        Err(e) => {
            return vec![check(
                "apptainer deep",
                Verdict::Fail,
                format!("the site checks did not finish: {e}"),
            )];
        }
    };
    let mut checks: Vec<Check> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let verdict = match fields.next()? {
                "ok" => Verdict::Ok,
                "note" => Verdict::Note,
                "FAIL" => Verdict::Fail,
                _ => return None,
            };
            let name = fields.next()?;
            Some(check(
                "apptainer deep",
                verdict,
                format!("{name}: {}", fields.next().unwrap_or_default()),
            ))
        })
        .collect();
    if out.status.code() == Some(2) || checks.is_empty() {
        checks.push(check(
            "apptainer deep",
            Verdict::Fail,
            format!(
                "the site checks could not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    checks
}

/// Apptainer's setuid helper, next to the binary's install prefix.
fn setuid_starter(binary: &Path) -> bool {
    let Some(prefix) = std::fs::canonicalize(binary)
        .ok()
        .and_then(|b| b.parent()?.parent().map(Path::to_path_buf))
    else {
        return false;
    };
    std::fs::metadata(prefix.join("libexec/apptainer/bin/starter-suid"))
        .is_ok_and(|m| m.permissions().mode() & 0o4000 != 0)
}

fn user_namespaces() -> bool {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let max = read("/proc/sys/user/max_user_namespaces").is_none_or(|v| v != "0");
    let debian_switch = read("/proc/sys/kernel/unprivileged_userns_clone").is_none_or(|v| v != "0");
    max && debian_switch
}
