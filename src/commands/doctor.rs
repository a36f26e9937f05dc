//! `tapir doctor`: which engines are here and what will work with them, in plain words.
//! Exit 0 only when the chosen mode can run tasks.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use crate::backend::apptainer::{self, Apptainer};
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
    checks.extend(apptainer_checks());
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
            "cgroups v1: Docker enforces limits; Apptainer cannot",
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

fn apptainer_checks() -> Vec<Check> {
    let apptainer = match Apptainer::locate() {
        Ok(apptainer) => apptainer,
        Err(_) => {
            return vec![check(
                "apptainer",
                Verdict::Fail,
                "the `apptainer` command is not on PATH (install Apptainer, or set TAPIR_APPTAINER)",
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
    let caps = apptainer.capabilities();
    let setuid = setuid_starter(&apptainer.binary);
    let userns = user_namespaces();
    checks.push(match (setuid, userns) {
        (true, _) => check("apptainer mode", Verdict::Ok, "setuid installation"),
        (false, true) => check(
            "apptainer mode",
            Verdict::Ok,
            "unprivileged: user namespaces are available",
        ),
        (false, false) => check(
            "apptainer mode",
            Verdict::Note,
            "no setuid starter found and user namespaces look disabled: containers may fail to start",
        ),
    });
    checks.push(if caps.limits {
        check("apptainer limits", Verdict::Ok, "--memory/--cpus are passed")
    } else {
        check(
            "apptainer limits",
            Verdict::Note,
            "memory and CPU limits cannot be enforced (needs apptainer with --memory/--cpus and cgroups v2); runs warn about it",
        )
    });
    checks.push(if which::which("nvidia-smi").is_ok() {
        check(
            "apptainer gpu",
            Verdict::Ok,
            "nvidia-smi found: --nv can bind the GPU",
        )
    } else {
        check(
            "apptainer gpu",
            Verdict::Note,
            "no nvidia-smi: tasks that request a GPU cannot use one",
        )
    });
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
