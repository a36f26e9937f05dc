//! Findings about an input file: what is wrong, where, and how to fix it.
//!
//! Every check in tapir (parsing, the bundled schemas, the checks beyond the schema,
//! templating) produces these; `output.rs` renders them for people, as JSON or as GitHub
//! workflow annotations.

use std::ops::Range;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// Something the user should know that is not a problem of the file (a check that
    /// could not be made): never counted, never turned into an error by `--strict`.
    Note,
    Warning,
    Error,
}

/// A place in a source text: the byte range and its 1-based line and column
/// (the column counts characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub bytes: Range<usize>,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Diagnostic {
    pub severity: Severity,
    /// A short stable identifier of the check, e.g. `unknown-key` (documented in the README).
    pub code: &'static str,
    pub message: String,
    /// JSON Pointer (RFC 6901) to the value concerned; empty for the whole document.
    pub pointer: String,
    pub position: Option<Position>,
    /// A plain-words fix, when there is one.
    pub fix: Option<String>,
    /// Another place that matters (e.g. the first definition of a duplicate).
    pub related: Option<(String, Position)>,
    /// The file of `related` when it is not the finding's own file (a task's template
    /// in the sibling processing-container.json).
    pub related_file: Option<std::path::PathBuf>,
}

impl Diagnostic {
    /// The stable JSON form of a finding (`validate --format json`, `inspect`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "line": self.position.as_ref().map(|p| p.line),
            "column": self.position.as_ref().map(|p| p.column),
            "pointer": self.pointer,
            "path": self.json_path(),
            "fix": self.fix,
            "related": self.related.as_ref().map(|(label, p)| {
                let mut related = serde_json::json!({"message": label, "line": p.line, "column": p.column});
                if let Some(file) = &self.related_file {
                    related["file"] = file.display().to_string().into();
                }
                related
            }),
        })
    }

    pub(crate) fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            message: message.into(),
            pointer: String::new(),
            position: None,
            fix: None,
            related: None,
            related_file: None,
        }
    }

    pub(crate) fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    pub(crate) fn note(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Note,
            ..Self::error(code, message)
        }
    }

    pub(crate) fn at_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }

    pub(crate) fn at(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }

    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub(crate) fn with_related(
        mut self,
        label: impl Into<String>,
        position: Option<Position>,
    ) -> Self {
        if let Some(position) = position {
            self.related = Some((label.into(), position));
        }
        self
    }

    /// `with_related`, for a place in another file.
    pub(crate) fn with_related_in(
        mut self,
        label: impl Into<String>,
        file: Option<&std::path::Path>,
        position: Option<Position>,
    ) -> Self {
        if position.is_some() {
            self.related_file = file.map(std::path::Path::to_path_buf);
        }
        self.with_related(label, position)
    }

    /// The pointer written as a JSONPath-like string for people: `$.templates[0].env[1]`.
    pub(crate) fn json_path(&self) -> String {
        json_path(&self.pointer)
    }
}

/// How many findings of one code a person is shown per file before the rest of that
/// code are summarised in one line: ten thousand `unknown-key` findings (a generated or
/// minified file) would bury everything else and fill a CI log. `--format json` keeps all.
pub(crate) const SHOWN_PER_CODE: usize = 50;

/// The findings to show a person (at most `SHOWN_PER_CODE` of each code, in order) and,
/// per code in order of first appearance, how many more there are.
pub(crate) fn summarise(
    diagnostics: &[Diagnostic],
) -> (Vec<&Diagnostic>, Vec<(&'static str, usize)>) {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    let mut shown = Vec::new();
    for d in diagnostics {
        let index = match counts.iter().position(|(code, _)| *code == d.code) {
            Some(index) => index,
            None => {
                counts.push((d.code, 0));
                counts.len() - 1
            }
        };
        counts[index].1 += 1;
        if counts[index].1 <= SHOWN_PER_CODE {
            shown.push(d);
        }
    }
    let more = counts
        .into_iter()
        .filter(|(_, n)| *n > SHOWN_PER_CODE)
        .map(|(code, n)| (code, n - SHOWN_PER_CODE))
        .collect();
    (shown, more)
}

/// The line that stands for findings left out by `summarise`.
pub(crate) fn more_findings(code: &str, count: usize) -> String {
    let noun = match code {
        "unknown-key" => "unknown keys".to_string(),
        _ => format!("`{code}` findings"),
    };
    format!(
        "… and {} more {noun} (every finding is in `--format json`)",
        thousands(count)
    )
}

/// `9950` → `9,950`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Turns a JSON Pointer into a JSONPath-like string: `/a/0/b c` → `$.a[0]["b c"]`.
pub(crate) fn json_path(pointer: &str) -> String {
    let mut out = String::from("$");
    for segment in pointer_segments(pointer) {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&segment);
            out.push(']');
        } else if !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !segment.contains('.')
        {
            out.push('.');
            out.push_str(&segment);
        } else {
            out.push_str(&format!("[{}]", serde_json::Value::from(segment)));
        }
    }
    out
}

/// Splits a JSON Pointer into its unescaped segments (`~1` → `/`, `~0` → `~`).
pub(crate) fn pointer_segments(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
}

/// Appends one segment to a JSON Pointer, escaping it.
pub(crate) fn pointer_join(pointer: &str, segment: impl std::fmt::Display) -> String {
    let segment = segment.to_string().replace('~', "~0").replace('/', "~1");
    format!("{pointer}/{segment}")
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.84)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_renders_indices_and_odd_keys() {
        assert_eq!(json_path(""), "$");
        assert_eq!(json_path("/templates/0/env/1"), "$.templates[0].env[1]");
        assert_eq!(json_path("/labels/a~1b"), "$.labels[\"a/b\"]");
        assert_eq!(
            json_path("/limits/nvidia.com~1gpu"),
            "$.limits[\"nvidia.com/gpu\"]"
        );
    }

    #[test]
    fn repeated_findings_are_summarised_per_code() {
        let mut all: Vec<Diagnostic> = (0..SHOWN_PER_CODE + 7)
            .map(|i| Diagnostic::warning("unknown-key", format!("k{i}")))
            .collect();
        all.insert(3, Diagnostic::error("type", "t"));
        let (shown, more) = summarise(&all);
        assert_eq!(shown.len(), SHOWN_PER_CODE + 1);
        assert_eq!(shown[3].code, "type");
        assert_eq!(more, vec![("unknown-key", 7)]);
        assert_eq!(thousands(9950), "9,950");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert!(more_findings("unknown-key", 9950).starts_with("… and 9,950 more unknown keys"));
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let keys = ["taskTemplate", "inputs", "outputs", "name"];
        assert_eq!(did_you_mean("taskTempalte", keys), Some("taskTemplate"));
        assert_eq!(did_you_mean("input", keys), Some("inputs"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
