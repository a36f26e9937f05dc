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

    /// The input files are invalid; the findings were already printed.
    #[error("{0}")]
    Invalid(String),

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

    /// `run`: the run was cancelled by a signal (exit 130).
    #[error("cancelled")]
    Cancelled,

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

    /// The process exit code documented for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Io { .. } | Self::Record(_) => exit::USAGE,
            Self::Invalid(_) => exit::INVALID,
            Self::NotStarted { .. } | Self::NotStartedFindings { .. } => exit::NOT_STARTED,
            Self::Cancelled => exit::CANCELLED,
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
