//! How a plan is shown to people, by `show` (from a record) and `run --dry-run` (before
//! anything runs): rows for mounts, env and limits, and commands quoted for a shell.

use crate::model::quantity::format_bytes;
use crate::resolve::plan::RunPlan;

/// Quotes a word for a POSIX shell when it needs it, so printed commands can be pasted.
pub(crate) fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A command line, quoted so it can be pasted into a shell.
pub(crate) fn command_line<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    words
        .into_iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rows describing a plan's mounts, env (with the source of each value; secrets as
/// `****`) and limits: shared by `show` and `run --dry-run`.
pub(crate) fn plan_rows(plan: &RunPlan) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    for (i, m) in plan.mounts.iter().enumerate() {
        rows.push((
            if i == 0 { "mounts" } else { "" },
            format!(
                "{} → {}  ({}: {}{})",
                m.host_path.display(),
                m.container_path,
                m.channel,
                m.direction.as_str(),
                if m.read_only {
                    ", read-only"
                } else {
                    ", read-write"
                }
            ),
        ));
    }
    for (i, b) in plan.binds.iter().enumerate() {
        rows.push((
            if i == 0 { "binds" } else { "" },
            format!(
                "{} → {}  (--bind, {})",
                b.host_path.display(),
                b.container_path,
                if b.read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            ),
        ));
    }
    for (i, e) in plan.env.iter().enumerate() {
        rows.push((
            if i == 0 { "env" } else { "" },
            format!("{}={}  ({})", e.name, e.value.shown(), e.source),
        ));
    }
    let limits = &plan.limits;
    let mut limit_text = Vec::new();
    if let Some(m) = limits.memory_bytes {
        limit_text.push(format!(
            "memory {} ({})",
            format_bytes(m),
            limits.memory_reason.as_deref().unwrap_or("")
        ));
    }
    if let Some(m) = limits.memory_reservation_bytes {
        limit_text.push(format!("memory reservation {}", format_bytes(m)));
    }
    if let Some(c) = limits.cpu_millis {
        limit_text.push(format!("cpus {}.{:03}", c / 1000, c % 1000));
    }
    match (&plan.engine.gpus, limits.gpus) {
        (Some(g), _) => limit_text.push(format!("gpus {g} (--gpus)")),
        (None, Some(g)) => limit_text.push(format!("gpus {g}")),
        (None, None) => {}
    }
    if let Some(bytes) = plan.engine.shm_size_bytes {
        limit_text.push(format!("/dev/shm {} (--shm-size)", format_bytes(bytes)));
    }
    rows.push((
        "limits",
        if limit_text.is_empty() {
            "none".into()
        } else {
            limit_text.join("; ")
        },
    ));
    for (i, port) in plan.engine.ports.iter().enumerate() {
        rows.push((
            if i == 0 { "ports" } else { "" },
            format!(
                "{}  (container port {}/{} on {})",
                port.docker_spec(),
                port.container_port,
                port.protocol,
                port.host_address()
            ),
        ));
    }
    if !plan.engine.engine_args.is_empty() {
        rows.push((
            "engine",
            format!(
                "{}  (--engine-arg, verbatim)",
                command_line(plan.engine.engine_args.iter().cloned())
            ),
        ));
    }
    rows
}
