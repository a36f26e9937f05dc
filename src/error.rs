//! How commands end: `ExitStatus` when they finish, `Error` when they fail. Both map to
//! the exit codes documented in the README ("Exit codes") in one place each
//! (`ExitStatus::code`, `Error::exit_status`); only `lib.rs` turns them into a process
//! exit status.

use std::path::PathBuf;

/// How a command ended. Every command returns one; only `lib.rs` turns it into the
/// process exit status, through [`ExitStatus::code`] (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitStatus {
    /// 0: everything went fine.
    Success,
    /// 1: `validate` found an invalid file, `inspect` an invalid embedded file, `doctor` a
    /// mode that cannot run tasks, `rm`/`prune` a run it could not remove, `wait` a lost run.
    Failed,
    /// 2: a usage error, or an input that cannot be read.
    Usage,
    /// The task's own exit code, passed through like `docker run` does (`run`, `wait`,
    /// `logs --follow`).
    Task(u8),
    /// 125: tapir or the engine failed before the container ran.
    NotStarted,
    /// 130: cancelled with Ctrl-C or SIGTERM.
    Cancelled,
    /// 124: `run --timeout` stopped the task (as coreutils `timeout`).
    TimedOut,
}

impl ExitStatus {
    /// The process exit code documented for this status.
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::Task(code) => code,
            // Like `docker run`: the container never ran.
            Self::NotStarted => 125,
            // 128 + SIGINT, as shells report a Ctrl-C.
            Self::Cancelled => 130,
            // As coreutils `timeout`.
            Self::TimedOut => 124,
        }
    }

    /// A finished command whose code means "all is well" (a task that exited 0 too).
    pub(crate) fn is_success(self) -> bool {
        self.code() == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A bad combination of flags or arguments that clap cannot catch.
    #[error("{0}")]
    Usage(String),

    /// A file or folder that could not be read or written.
    #[error("{}: {source}{}", path.display(), hint.as_deref().map(|h| format!("\n  fix: {h}")).unwrap_or_default())]
    Io {
        path: PathBuf,
        source: std::io::Error,
        hint: Option<String>,
    },

    /// `run`: something failed before the container started (exit 125).
    #[error("{message}")]
    NotStarted { message: String },

    /// `run`: findings in a file (the task, a processing-container.json) stop it before the
    /// container starts (exit 125). They are shown with the file's text; `message` is the
    /// one line for the record.
    #[error("{message}")]
    NotStartedFindings {
        message: String,
        findings: Box<Findings>,
    },

    /// A run record or run folder could not be found or read.
    #[error("{0}")]
    Record(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
            hint: None,
        }
    }

    pub(crate) fn io_with_hint(
        path: impl Into<PathBuf>,
        source: std::io::Error,
        hint: impl Into<String>,
    ) -> Self {
        Self::Io {
            path: path.into(),
            source,
            hint: Some(hint.into()),
        }
    }

    pub(crate) fn not_started(message: impl Into<String>) -> Self {
        Self::NotStarted {
            message: message.into(),
        }
    }

    /// How a command that failed with this error ends.
    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Usage(_) | Self::Io { .. } | Self::Record(_) => ExitStatus::Usage,
            Self::NotStarted { .. } | Self::NotStartedFindings { .. } => ExitStatus::NotStarted,
        }
    }
}

/// Findings in one file, with its text for snippets.
#[derive(Debug, Clone)]
pub(crate) struct Findings {
    /// The file as messages name it.
    pub file: String,
    pub source: Option<crate::source::Source>,
    pub diagnostics: Vec<crate::diagnostic::Diagnostic>,
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_documented_code() {
        let table = [
            (ExitStatus::Success, 0),
            (ExitStatus::Failed, 1),
            (ExitStatus::Usage, 2),
            (ExitStatus::Task(7), 7),
            (ExitStatus::Task(0), 0),
            (ExitStatus::NotStarted, 125),
            (ExitStatus::Cancelled, 130),
        ];
        for (status, code) in table {
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(status.is_success(), code == 0, "{status:?}");
        }
        assert_eq!(Error::Usage("x".into()).exit_status(), ExitStatus::Usage);
        assert_eq!(
            Error::not_started("x").exit_status(),
            ExitStatus::NotStarted
        );
    }
}
