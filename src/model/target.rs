//! A scale rule's file selection (`target_dir`, `target_glob`, `target_regex`) and size
//! mode: what they mean and how they are compiled. Shared by the checks (which validate a
//! file's rules without touching the filesystem) and `resolve::sizing` (which measures a
//! channel's folder with them).
//!
//! Selection, as in the reference: below `base` = host path joined with `target_dir`,
//! every entry at any depth that matches `target_glob` with Python `Path.rglob`
//! semantics (the glob is matched as `**/<glob>`: against the file name, or, when it
//! contains `/`, against the trailing components of the path), that is a regular file,
//! and whose path relative to `base` (with `/` separators) fully matches `target_regex`
//! (Python `re.fullmatch`, so `.*` crosses `/`). A `target_dir` that is absolute or climbs
//! out with `..` is refused, since it would measure some other folder.
//!
//! The regex is `fancy-regex` syntax, which has Python's look-around (`(?=…)`, `(?!…)`,
//! `(?<=…)`, `(?<!…)`) and backreferences; the glob also understands `{a,b}`
//! alternatives. The one compiler below serves both `tapir validate` (through
//! `validate_target`) and the measurement, so they always agree.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use fancy_regex::Regex;
use globset::{GlobBuilder, GlobMatcher};

/// How the selected files are reduced to one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeMode {
    /// Total size of the selected files.
    Sum,
    /// Size of the largest selected file.
    MaxFileSize,
    /// Largest `Sum` over the immediate subfolders ("items") of the host path.
    MaxItemSum,
}

/// The ScaleRule's file selection: `target_dir`, `target_glob`, `target_regex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub dir: &'a str,
    pub glob: &'a str,
    pub regex: &'a str,
}

impl Default for Target<'_> {
    /// The Task API defaults: the whole folder, every file.
    fn default() -> Self {
        Target {
            dir: "",
            glob: "*",
            regex: ".*",
        }
    }
}

/// Why a target size could not be measured, with a fix in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SizingError {
    pub message: String,
    pub fix: String,
}

impl fmt::Display for SizingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SizingError {}

/// Checks, without touching the file system, that `target_dir` stays inside the channel
/// folder and that `target_glob` and `target_regex` compile.
pub(crate) fn validate_target(target: &Target<'_>) -> Result<(), SizingError> {
    Selection::compile(target).map(|_| ())
}

/// The compiled selection of one scale rule.
pub(crate) struct Selection<'a> {
    dir: &'a str,
    glob: GlobMatcher,
    /// `target_regex` anchored at both ends (Python `re.fullmatch`).
    regex: Regex,
}

impl<'a> Selection<'a> {
    /// Compiles a target (the same checks as `validate_target`).
    pub(crate) fn compile(target: &Target<'a>) -> Result<Self, SizingError> {
        check_target_dir(target.dir)?;
        Ok(Selection {
            dir: target.dir,
            glob: compile_glob(target.glob)?,
            regex: compile_regex(target.regex)?,
        })
    }

    /// `folder` joined with `target_dir` (without the trailing `/` an empty join adds).
    pub(crate) fn base(&self, folder: &Path) -> PathBuf {
        if self.dir.is_empty() {
            folder.to_path_buf()
        } else {
            folder.join(self.dir)
        }
    }

    /// Whether a file at `relative` (below the base folder) is selected. A backtracking
    /// regex can give up on a pathological path; that is an error, not a silent "no
    /// match" that would shrink the memory limit.
    pub(crate) fn selects(&self, relative: &Path) -> Result<bool, SizingError> {
        if !self.glob.is_match(relative) {
            return Ok(false);
        }
        let text = slash_separated(relative);
        self.regex.is_match(&text).map_err(|error| SizingError {
            message: format!("target_regex could not be matched against `{text}`: {error}"),
            fix: "simplify the regular expression (avoid nested repetition such as `(a+)+`)"
                .to_owned(),
        })
    }
}

/// The relative path with `/` between components, whatever the platform; names that
/// are not UTF-8 are matched with their invalid bytes replaced by U+FFFD.
fn slash_separated(relative: &Path) -> String {
    let mut text = String::new();
    for component in relative.components() {
        if !text.is_empty() {
            text.push('/');
        }
        text.push_str(&component.as_os_str().to_string_lossy());
    }
    text
}

fn check_target_dir(dir: &str) -> Result<(), SizingError> {
    let path = Path::new(dir);
    if path.has_root() || path.components().any(|c| matches!(c, Component::Prefix(_))) {
        return Err(SizingError {
            message: format!(
                "target_dir `{dir}` is an absolute path; it must be a folder inside the channel's folder"
            ),
            fix: format!(
                "write it relative to the channel's folder, e.g. `{}`",
                dir.trim_start_matches('/')
            ),
        });
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(SizingError {
            message: format!(
                "target_dir `{dir}` points outside the channel's folder (it contains `..`)"
            ),
            fix:
                "name a folder inside the channel's folder, e.g. `series`, or leave target_dir out"
                    .to_owned(),
        });
    }
    Ok(())
}

fn compile_glob(glob: &str) -> Result<GlobMatcher, SizingError> {
    let fix = "write a glob such as `*`, `*.dcm` or `series/*.dcm` (`*` and `?` stay within \
               one folder, `[abc]` picks a character, `**` spans folders)";
    if glob.is_empty() {
        return Err(SizingError {
            message: "target_glob is empty".to_owned(),
            fix: "write `*` to select every file, or leave target_glob out".to_owned(),
        });
    }
    if glob.starts_with('/') {
        return Err(SizingError {
            message: format!(
                "target_glob `{glob}` is absolute; it is matched below the target folder"
            ),
            fix: format!("drop the leading `/`: `{}`", glob.trim_start_matches('/')),
        });
    }
    // Python's `rglob(g)` is `glob("**/" + g)`; fnmatch treats `\` as a plain character.
    GlobBuilder::new(&format!("**/{glob}"))
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .map(|compiled| compiled.compile_matcher())
        .map_err(|error| SizingError {
            message: format!("target_glob `{glob}` is not a valid glob: {}", error.kind()),
            fix: fix.to_owned(),
        })
}

fn compile_regex(regex: &str) -> Result<Regex, SizingError> {
    let invalid = |error: fancy_regex::Error| SizingError {
        message: format!(
            "target_regex `{regex}` is not a valid regular expression: {}",
            regex_reason(&error)
        ),
        fix: "write a regex as for Python's `re` (look-around and backreferences work); it must \
              match the whole path below the target folder, e.g. `.*\\.dcm`"
            .to_owned(),
    };
    // Compiled alone first so that a regex such as `a)|(b` cannot escape the anchoring
    // group below, and so that error positions refer to the text the user wrote.
    Regex::new(regex).map_err(invalid)?;
    Regex::new(&format!("^(?:{regex})$")).map_err(invalid)
}

/// The one-line reason of a regex error (its `Display` is a multi-line caret diagram).
fn regex_reason(error: &fancy_regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .map_or_else(|| text.trim().to_owned(), str::to_owned)
}
