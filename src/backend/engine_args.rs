//! `--engine-arg`: the escape hatch for engine flags tapir has no option for, passed
//! verbatim before the image. Two kinds are refused (DESIGN.md decision 13, "Engine
//! options beyond the task"):
//! - flags that break how tapir runs a container: it names, streams, stops and removes
//!   the container itself (`--rm`, `--detach`, `--name`, `--tty`, `--attach`, …);
//! - flags tapir has a typed option for (user, network, env, mounts, ports, GPUs, limits):
//!   through the option the value is checked, shown in the plan and kept in the record in
//!   its own field (an `--env` value through the hatch would put a secret in the argv).

use super::Mode;

/// A refused flag: its spellings, and what to use instead.
struct Refused {
    long: &'static [&'static str],
    short: Option<char>,
    instead: &'static str,
}

const fn refused(
    long: &'static [&'static str],
    short: Option<char>,
    instead: &'static str,
) -> Refused {
    Refused {
        long,
        short,
        instead,
    }
}

const DOCKER: &[Refused] = &[
    refused(
        &["--rm"],
        None,
        "tapir removes the container itself once its logs are safe; --keep keeps it",
    ),
    refused(&["--detach"], Some('d'), "use `tapir run --detach`"),
    refused(
        &["--name"],
        None,
        "tapir names the container after the run id, to find it again",
    ),
    refused(
        &["--tty"],
        Some('t'),
        "a terminal would merge stdout and stderr in the logs",
    ),
    refused(
        &["--interactive"],
        Some('i'),
        "tapir gives the task no standard input",
    ),
    refused(
        &["--attach"],
        Some('a'),
        "tapir attaches to both output streams itself",
    ),
    refused(&["--pull"], None, "use `tapir run --pull`"),
    refused(
        &["--cidfile"],
        None,
        "the container is known by its name, in the record",
    ),
    refused(&["--user"], Some('u'), "use `--user`"),
    refused(&["--network", "--net"], None, "use `--network`"),
    refused(&["--entrypoint"], None, "use `--entrypoint`"),
    refused(
        &["--env", "--env-file"],
        Some('e'),
        "use `--env` or `--env-file`",
    ),
    refused(
        &["--volume", "--mount", "--volumes-from"],
        Some('v'),
        "use `--bind`",
    ),
    refused(
        &["--publish", "--publish-all"],
        Some('p'),
        "use `--publish`",
    ),
    refused(&["--gpus"], None, "use `--gpus`"),
    refused(&["--shm-size"], None, "use `--shm-size`"),
    refused(
        &[
            "--memory",
            "--memory-swap",
            "--memory-reservation",
            "--cpus",
        ],
        Some('m'),
        "set `resources.limits` in the task",
    ),
];

const APPTAINER: &[Refused] = &[
    refused(&["--bind", "--mount"], Some('B'), "use `--bind`"),
    refused(
        &["--env", "--env-file", "--cleanenv"],
        Some('e'),
        "use `--env` or `--env-file`",
    ),
    refused(&["--nv", "--rocm", "--nvccli"], None, "use `--gpus`"),
    refused(&["--net", "--network"], None, "use `--network`"),
    refused(
        &["--workdir", "--containall", "--contain"],
        Some('W'),
        "tapir gives each run its own scratch folder inside the run folder",
    ),
    refused(
        &["--pwd"],
        None,
        "the task starts in the image's WORKDIR, as under Docker",
    ),
    refused(
        &[
            "--memory",
            "--memory-swap",
            "--memory-reservation",
            "--cpus",
        ],
        None,
        "set `resources.limits` in the task",
    ),
];

/// Why `args` cannot go to `mode`'s engine, if one cannot: the first refused argument,
/// why, and what to use instead.
pub(crate) fn check(mode: Mode, args: &[String]) -> Result<(), String> {
    let table = match mode {
        Mode::Docker => DOCKER,
        Mode::Apptainer => APPTAINER,
    };
    if mode == Mode::Docker {
        tapir_labels(args)?;
    }
    for arg in args {
        if let Some(entry) = table.iter().find(|entry| matches(entry, arg)) {
            return Err(format!(
                "--engine-arg {} is refused for {}: {}\n  fix: {}",
                shown(entry, arg),
                mode.name(),
                if entry.instead.starts_with("use") || entry.instead.starts_with("set") {
                    "tapir has an option for it, which it checks and records"
                } else {
                    "it would break how tapir runs the container"
                },
                entry.instead
            ));
        }
    }
    Ok(())
}

/// Docker labels under `tapir.` are how tapir finds its containers again (run id, run
/// folder): one set through the hatch would win over tapir's and hide or misname a run.
/// Other labels pass; a label file cannot be looked into, so it is refused.
fn tapir_labels(args: &[String]) -> Result<(), String> {
    let fix = "set labels in the task's `config.labels` (tapir adds its own `tapir.` ones)";
    for (i, arg) in args.iter().enumerate() {
        if arg == "--label-file" || arg.starts_with("--label-file=") {
            return Err(format!(
                "--engine-arg --label-file is refused for docker: tapir cannot see whether it sets its own `tapir.` labels\n  fix: {fix}"
            ));
        }
        let value = match arg.as_str() {
            "--label" | "-l" => args.get(i + 1).map(String::as_str),
            _ => arg
                .strip_prefix("--label=")
                .or_else(|| arg.strip_prefix("-l=").or_else(|| arg.strip_prefix("-l"))),
        };
        if value.is_some_and(|v| v.starts_with("tapir.")) {
            return Err(format!(
                "--engine-arg --label tapir.… is refused for docker: tapir's own labels find its containers again\n  fix: {fix}"
            ));
        }
    }
    Ok(())
}

/// The refused flag without any value written into the argument (it may be a secret:
/// `--env=TOKEN=…`).
fn shown(entry: &Refused, arg: &str) -> String {
    match arg.split_once('=') {
        Some((flag, _)) if arg.starts_with("--") => format!("{flag}=…"),
        _ if arg.starts_with("--") => arg.to_string(),
        _ => match entry.short {
            Some(short) if arg.len() > 2 => format!("-{short} (in a group of short flags)"),
            _ => arg.chars().take(2).collect(),
        },
    }
}

/// `--flag`, `--flag=value`, or a cluster of short flags holding the short one (`-it`).
fn matches(entry: &Refused, arg: &str) -> bool {
    if let Some(long) = arg.strip_prefix("--") {
        let name = long.split_once('=').map_or(long, |(name, _)| name);
        return entry.long.iter().any(|l| l[2..] == *name);
    }
    match (arg.strip_prefix('-'), entry.short) {
        (Some(cluster), Some(short)) => {
            // A negative number (`-500`, the value of the previous flag) holds no flag.
            // In `-wfoo` tapir cannot tell flags from a value: any letter counts, so a
            // rare false refusal asks for the long spelling rather than letting one by.
            let letters: String = cluster
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            letters.contains(short)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_that_break_the_run_or_bypass_options_are_refused() {
        let error = check(Mode::Docker, &args(&["--env=TOKEN=s3cret"])).expect_err("env");
        assert!(
            error.starts_with("--engine-arg --env=… is refused"),
            "{error}"
        );
        let error = check(Mode::Docker, &args(&["-eTOKEN=s3cret"])).expect_err("env");
        assert!(!error.contains("s3cret"), "{error}");
        for refused in [
            "--rm",
            "-d",
            "--detach",
            "--name=x",
            "-it",
            "-t",
            "--env=A=1",
            "-eA=1",
            "-v",
            "--volume",
            "--publish",
            "-p",
            "--gpus=all",
            "--user",
            "--memory=1g",
            "--net=host",
        ] {
            let error = check(Mode::Docker, &args(&[refused])).expect_err(refused);
            assert!(error.contains("fix:"), "{error}");
        }
        for allowed in [
            "--cap-add=SYS_PTRACE",
            "--device",
            "/dev/fuse",
            "--ulimit",
            "nofile=1024:2048",
            "--oom-score-adj",
            "-500",
            "--workdir",
            "-w",
            "--hostname=x",
            "--add-host=a:127.0.0.1",
        ] {
            assert_eq!(check(Mode::Docker, &args(&[allowed])), Ok(()), "{allowed}");
        }
        for labels in [
            &["--label", "tapir.run-id=x"][..],
            &["--label=tapir.task=x"],
            &["-ltapir.run-dir=/"],
            &["--label-file", "labels"],
        ] {
            let error = check(Mode::Docker, &args(labels)).expect_err("a tapir label");
            assert!(error.contains("config.labels"), "{error}");
        }
        assert_eq!(
            check(Mode::Docker, &args(&["--label", "team=astro", "-l", "x=1"])),
            Ok(())
        );
        assert!(check(Mode::Apptainer, &args(&["--nv"])).is_err());
        assert!(check(Mode::Apptainer, &args(&["-B", "/a:/b"])).is_err());
        assert_eq!(check(Mode::Apptainer, &args(&["--fakeroot"])), Ok(()));
        assert_eq!(check(Mode::Apptainer, &args(&["--rm"])), Ok(()));
    }
}
