//! The one error type of tapir. Every variant maps to a documented exit code
//! (README, "Exit codes"); commands return it and only `lib.rs` turns it into a
//! process exit status.

use std::path::PathBuf;

/// Exit codes shared by all commands. `run` also passes through the container's own code.
pub mod exit {
    /// Everything went fine.
    pub const OK: u8 = 0;
    /// `validate`: at least one file is invalid. `wait`: a run failed.
    pub const INVALID: u8 = 1;
    /// Usage error (bad flags) or an input that cannot be read.
    pub const USAGE: u8 = 2;
    /// `run`: tapir or the engine failed before the container ran (like `docker run`).
    pub const NOT_STARTED: u8 = 125;
    /// `run`: cancelled with Ctrl-C or SIGTERM.
    pub const CANCELLED: u8 = 130;
    /// `run --timeout`: stopped because it ran too long (as coreutils `timeout`).
    pub const TIMED_OUT: u8 = 124;
}

/// How a command ended. Every command returns one; only `lib.rs` turns it into the
/// process exit status, through [`ExitStatus::code`] (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
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
    pub fn code(self) -> u8 {
        match self {
            Self::Success => exit::OK,
            Self::Failed => exit::INVALID,
            Self::Usage => exit::USAGE,
            Self::Task(code) => code,
            Self::NotStarted => exit::NOT_STARTED,
            Self::Cancelled => exit::CANCELLED,
            Self::TimedOut => exit::TIMED_OUT,
        }
    }

    /// A finished command whose code means "all is well" (a task that exited 0 too).
    pub fn is_success(self) -> bool {
        self.code() == exit::OK
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
            hint: None,
        }
    }

    pub fn io_with_hint(
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

    pub fn not_started(message: impl Into<String>) -> Self {
        Self::NotStarted {
            message: message.into(),
        }
    }

    /// How a command that failed with this error ends.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Usage(_) | Self::Io { .. } | Self::Record(_) => ExitStatus::Usage,
            Self::NotStarted { .. } | Self::NotStartedFindings { .. } => ExitStatus::NotStarted,
        }
    }
}

/// Findings in one file, with its text for snippets.
#[derive(Debug, Clone)]
pub struct Findings {
    /// The file as messages name it.
    pub file: String,
    pub source: Option<crate::source::Source>,
    pub diagnostics: Vec<crate::diagnostic::Diagnostic>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
