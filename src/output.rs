//! The one place that writes to the terminal. Everything else returns values; this module
//! decides colour, renders findings (human, JSON, GitHub annotations) and masks secrets.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::cli::ColorChoice;
use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::source::Source;

/// How to print: with or without colour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    pub color: bool,
}

impl Printer {
    /// `auto` means colour on a terminal unless `NO_COLOR` is set (https://no-color.org).
    pub(crate) fn new(choice: ColorChoice, stream_is_terminal: bool) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        Self { color }
    }

    pub(crate) fn for_stdout(choice: ColorChoice) -> Self {
        Self::new(choice, std::io::stdout().is_terminal())
    }

    pub(crate) fn for_stderr(choice: ColorChoice) -> Self {
        Self::new(choice, std::io::stderr().is_terminal())
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub(crate) fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub(crate) fn red(&self, text: &str) -> String {
        self.paint("1;31", text)
    }
    pub(crate) fn yellow(&self, text: &str) -> String {
        self.paint("1;33", text)
    }
    pub(crate) fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub(crate) fn blue(&self, text: &str) -> String {
        self.paint("1;34", text)
    }
    pub(crate) fn cyan(&self, text: &str) -> String {
        self.paint("36", text)
    }

    /// A finding for people: headline, `file:line:col`, the source line with a caret under
    /// the place, the JSON path, the fix and any related place.
    pub(crate) fn diagnostic(&self, file: &str, source: Option<&Source>, d: &Diagnostic) -> String {
        let mut out = String::new();
        let label = match d.severity {
            Severity::Error => self.red(&format!("error[{}]", d.code)),
            Severity::Warning => self.yellow(&format!("warning[{}]", d.code)),
            Severity::Note => self.cyan(&format!("note[{}]", d.code)),
        };
        let _ = writeln!(out, "{label}{} {}", self.bold(":"), self.bold(&d.message));
        let location = d.position.as_ref().map_or_else(
            || file.to_string(),
            |p| format!("{file}:{}:{}", p.line, p.column),
        );
        let gutter_width = d.position.as_ref().map_or(1, |p| p.line.to_string().len());
        let pad = " ".repeat(gutter_width);
        let _ = writeln!(out, "{pad}{} {location}", self.blue("-->"));
        if let (Some(source), Some(position)) = (source, &d.position) {
            let _ = writeln!(out, "{pad} {}", self.blue("|"));
            self.snippet(&mut out, source, position, &pad, d.severity);
            let _ = writeln!(out, "{pad} {}", self.blue("|"));
        }
        if !d.pointer.is_empty() {
            let _ = writeln!(out, "{pad} {} path: {}", self.blue("="), d.json_path());
        }
        if let Some(fix) = &d.fix {
            let _ = writeln!(
                out,
                "{pad} {} {} {}",
                self.blue("="),
                self.cyan("fix:"),
                fix
            );
        }
        if let Some((label, position)) = &d.related {
            let related_file = d
                .related_file
                .as_ref()
                .map_or_else(|| file.to_string(), |f| f.display().to_string());
            let _ = writeln!(
                out,
                "{pad} {} note: {label}: {related_file}:{}:{}",
                self.blue("="),
                position.line,
                position.column
            );
        }
        out
    }

    fn snippet(
        &self,
        out: &mut String,
        source: &Source,
        position: &Position,
        pad: &str,
        severity: Severity,
    ) {
        const WIDTH: usize = 120;
        // Secrets are masked by their position in the parsed document; the window keeps
        // the work per finding bounded on long (minified) lines.
        let excerpt = source.excerpt(position, WIDTH);
        let prefix = if excerpt.cut_before { "…" } else { "" };
        let number = position.line.to_string();
        let _ = writeln!(
            out,
            "{} {} {prefix}{}",
            self.blue(&format!("{number:>width$}", width = pad.len())),
            self.blue("|"),
            excerpt.text
        );
        let carets = "^".repeat(excerpt.caret_len);
        let carets = match severity {
            Severity::Error => self.red(&carets),
            Severity::Warning => self.yellow(&carets),
            Severity::Note => self.cyan(&carets),
        };
        let indent = " ".repeat(excerpt.caret_at + prefix.chars().count());
        let _ = writeln!(out, "{pad} {} {indent}{carets}", self.blue("|"));
    }
}

/// `n` and the word, singular for 1 ("1 file", "2 files", "2 retries"; words with a
/// regular plural).
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        return format!("1 {word}");
    }
    match word.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{n} {stem}ies"),
        _ => format!("{n} {word}s"),
    }
}

/// A run's status, `details` right after it, then ` — message` — unless the message only
/// repeats the status: equal to it (`succeeded`) it is left out, starting with it
/// (`cancelled by a signal; …`) it is said instead of the status.
pub(crate) fn status_with_message(status: &str, details: &str, message: Option<&str>) -> String {
    match message {
        None => format!("{status}{details}"),
        Some(m) if m == status => format!("{status}{details}"),
        Some(m) if m.starts_with(status) => format!("{m}{details}"),
        Some(m) => format!("{status}{details} — {m}"),
    }
}

/// The folder GitHub names files relative to: the checkout (`GITHUB_WORKSPACE`) in a
/// workflow, else the current folder.
pub(crate) fn github_base() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    match std::env::var_os("GITHUB_WORKSPACE") {
        Some(ws) if !ws.is_empty() => cwd.join(ws),
        _ => cwd,
    }
}

/// `path` as a GitHub annotation names it: relative to `base` and without `./`, since
/// GitHub attaches an annotation only to a file named like that. A file outside `base`
/// keeps its path (GitHub cannot attach it anywhere anyway).
pub(crate) fn github_path(path: &Path, base: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let absolute = lexically_normal(&cwd.join(path));
    let base = lexically_normal(base);
    let relative = absolute
        .strip_prefix(&base)
        .map(Path::to_path_buf)
        .or_else(|_| {
            // The base or the path may go through a symlink (e.g. /tmp on macOS).
            let (Ok(absolute), Ok(base)) = (absolute.canonicalize(), base.canonicalize()) else {
                return Err(());
            };
            absolute
                .strip_prefix(base)
                .map(Path::to_path_buf)
                .map_err(|_| ())
        })
        .unwrap_or_else(|()| lexically_normal(path));
    relative.display().to_string()
}

/// `path` without `.` components and with `..` applied to what precedes it.
fn lexically_normal(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A finding as a GitHub Actions workflow command (`::error file=…,line=…::message`).
pub(crate) fn github_annotation(file: &str, d: &Diagnostic) -> String {
    let command = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "notice",
    };
    let mut properties = format!("file={}", escape_property(file));
    if let Some(p) = &d.position {
        let _ = write!(properties, ",line={},col={}", p.line, p.column);
    }
    let _ = write!(
        properties,
        ",title={}",
        escape_property(&format!("tapir {}", d.code))
    );
    let mut message = d.message.clone();
    if !d.pointer.is_empty() {
        let _ = write!(message, " (at {})", d.json_path());
    }
    if let Some(fix) = &d.fix {
        let _ = write!(message, "\nfix: {fix}");
    }
    format!("::{command} {properties}::{}", escape_data(&message))
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Writes to stdout. A closed pipe (`tapir ps | head`) is not an error: stop quietly.
pub(crate) fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Writes a value as pretty JSON (and a final newline) to stdout: every `--format json`.
pub(crate) fn stdout_json(value: &impl serde::Serialize) {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    stdout(&text);
}

/// Writes to stderr, ignoring failures (there is nowhere left to report them).
pub(crate) fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// A one-line spinner on stderr while tapir or the engine prepares a run. It exists only
/// when stderr is a terminal (never in pipes, logs or CI), and clearing it is idempotent,
/// so every path that is about to print can simply clear it first.
#[derive(Clone)]
pub(crate) struct Spinner {
    bar: indicatif::ProgressBar,
}

impl Spinner {
    /// A spinner showing `message`, or `None` when stderr is not an interactive terminal.
    pub(crate) fn start(message: &str) -> Option<Self> {
        let interactive =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        if !interactive {
            return None;
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(message.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Some(Self { bar })
    }

    pub(crate) fn set_message(&self, message: &str) {
        self.bar.set_message(message.to_string());
    }

    pub(crate) fn clear(&self) {
        self.bar.finish_and_clear();
    }

    pub(crate) fn is_cleared(&self) -> bool {
        self.bar.is_finished()
    }
}

/// `pipeline run`'s progress: on an interactive stderr one spinner line per running task
/// (indicatif), with finished events printed above them; otherwise plain lines, one per
/// event, for logs and CI.
pub(crate) struct TaskProgress {
    multi: Option<indicatif::MultiProgress>,
    bars: std::collections::BTreeMap<String, indicatif::ProgressBar>,
}

impl TaskProgress {
    pub(crate) fn start() -> Self {
        let interactive =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        Self {
            multi: interactive.then(indicatif::MultiProgress::new),
            bars: std::collections::BTreeMap::new(),
        }
    }

    /// An event of a task (`task <id>: <event>`), as a line that stays.
    pub(crate) fn event(&self, task: &str, event: &str) {
        let line = format!("task {task}: {event}");
        match &self.multi {
            Some(multi) => {
                if multi.println(&line).is_err() {
                    stderr(&format!("{line}\n"));
                }
            }
            None => stderr(&format!("{line}\n")),
        }
    }

    /// The task runs (again): on a terminal, its spinner line says `what`.
    pub(crate) fn running(&mut self, task: &str, what: &str) {
        let Some(multi) = &self.multi else {
            return;
        };
        let bar = self.bars.entry(task.to_string()).or_insert_with(|| {
            let bar = multi.add(indicatif::ProgressBar::new_spinner());
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} task {prefix}: {msg} {elapsed}")
            {
                bar.set_style(style);
            }
            bar.set_prefix(task.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        bar.set_message(what.to_string());
    }

    /// The task's spinner line goes away.
    pub(crate) fn done(&mut self, task: &str) {
        if let Some(bar) = self.bars.remove(task) {
            bar.finish_and_clear();
            if let Some(multi) = &self.multi {
                multi.remove(&bar);
            }
        }
    }

    /// Removes every spinner line, before the summary.
    pub(crate) fn finish(&mut self) {
        let tasks: Vec<String> = self.bars.keys().cloned().collect();
        for task in tasks {
            self.done(&task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(plural(0, "file"), "0 files");
        assert_eq!(plural(1, "file"), "1 file");
        assert_eq!(plural(2, "warning"), "2 warnings");
        assert_eq!(plural(3, "retry"), "3 retries");
        assert_eq!(plural(2, "day"), "2 days");
    }

    #[test]
    fn a_status_is_not_repeated_by_its_message() {
        assert_eq!(
            status_with_message("succeeded", ", exit code 0", Some("succeeded")),
            "succeeded, exit code 0"
        );
        assert_eq!(
            status_with_message(
                "cancelled",
                "",
                Some("cancelled by a signal; the task was stopped")
            ),
            "cancelled by a signal; the task was stopped"
        );
        assert_eq!(
            status_with_message(
                "failed",
                ", exit code 3",
                Some("the task exited with code 3")
            ),
            "failed, exit code 3 — the task exited with code 3"
        );
        assert_eq!(status_with_message("running", "", None), "running");
    }

    #[test]
    fn github_annotations_escape_their_text() {
        let d = Diagnostic::error("x", "a: b\nc 100%");
        assert_eq!(
            github_annotation("a,b.json", &d),
            "::error file=a%2Cb.json,title=tapir x::a: b%0Ac 100%25"
        );
    }
}
