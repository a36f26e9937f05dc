//! Loading an input file: bytes → text → a JSON value plus the source position of every
//! key and value, so that every later finding can point at `file:line:column`.
//!
//! The text is parsed once, strictly (RFC 8259: no comments, no trailing commas), with
//! jsonc-parser, whose AST keeps byte ranges and which refuses nesting deeper than 512
//! levels instead of overflowing the stack. The AST is turned into a `serde_json::Value`
//! for the schema and the model, and into a `SpanTree` for positions.

pub(crate) mod template;

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, Position, pointer_join, pointer_segments};
use crate::error::Error;
/// What a secret value is shown as: the mask plans and records use.
use crate::resolve::plan::MASK as SECRET_MASK;

/// Task API files are small; anything larger than this is certainly not one, and reading
/// it would only cost time and memory.
pub(crate) const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// A loaded text with its line index. Cheap to clone (the text and its indexes are
/// shared), because an inline task of a pipeline is checked as a document of its own over
/// the pipeline file's text: copying that text per task made a large pipeline quadratic.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The path as the user gave it (or as found while walking a folder).
    pub path: PathBuf,
    pub text: Arc<str>,
    /// The file began with a UTF-8 byte-order mark (stripped from `text`).
    pub had_bom: bool,
    line_starts: Arc<[usize]>,
    /// Every character of more than one byte: its byte offset and the extra bytes of all
    /// such characters up to and including it. A column is then found by a binary search
    /// instead of counting the characters of its line, which made thousands of findings
    /// on one long (minified) line quadratic.
    wide_chars: Arc<[(usize, usize)]>,
    /// Byte ranges of secret values (sorted, disjoint), found by position in the parsed
    /// document (`parse`); `None` until the text is parsed.
    secret_ranges: Option<Arc<[Range<usize>]>>,
}

/// What a snippet shows of a source line: a window of at most `width` characters around
/// a place, secrets replaced by `****`, and where the carets go (in shown characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Excerpt {
    pub text: String,
    /// The window starts after the line's beginning (show an ellipsis).
    pub cut_before: bool,
    pub caret_at: usize,
    pub caret_len: usize,
}

impl Source {
    pub(crate) fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let mut extra = 0;
        let wide_chars = text
            .char_indices()
            .filter(|(_, c)| c.len_utf8() > 1)
            .map(|(i, c)| {
                extra += c.len_utf8() - 1;
                (i, extra)
            })
            .collect();
        Self {
            path: path.into(),
            text,
            had_bom: false,
            line_starts,
            wide_chars,
            secret_ranges: None,
        }
    }

    /// The extra bytes (beyond one per character) of the characters before `byte`.
    fn extra_bytes_before(&self, byte: usize) -> usize {
        match self.wide_chars.partition_point(|&(at, _)| at < byte) {
            0 => 0,
            n => self.wide_chars[n - 1].1,
        }
    }

    /// Line and column (both 1-based; columns count characters) of a byte range.
    pub(crate) fn position(&self, bytes: Range<usize>) -> Position {
        let start = floor_char_boundary(&self.text, bytes.start.min(self.text.len()));
        let line_index = self.line_starts.partition_point(|&s| s <= start) - 1;
        let line_start = self.line_starts[line_index];
        let column = (start - line_start)
            - (self.extra_bytes_before(start) - self.extra_bytes_before(line_start))
            + 1;
        Position {
            bytes,
            line: line_index + 1,
            column,
        }
    }

    /// Does `bytes` overlap a secret value? (`false` before parsing.)
    pub(crate) fn overlaps_secret(&self, bytes: &Range<usize>) -> bool {
        let Some(secrets) = &self.secret_ranges else {
            return false;
        };
        let first = secrets.partition_point(|r| r.end <= bytes.start);
        secrets
            .get(first)
            .is_some_and(|r| r.start < bytes.end.max(bytes.start + 1))
    }

    /// Byte range of a 1-based line, without its line break.
    fn line_bounds(&self, line: usize) -> (usize, usize) {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        let text = self.text[start..end].trim_end_matches(['\n', '\r']);
        (start, start + text.len())
    }

    /// The part of `position`'s line a snippet shows: the whole line when it is short,
    /// else `width` characters starting `width / 2` before the place. Secret values are
    /// replaced by `****`, by their position in the parsed document; a text that could
    /// not be parsed falls back to recognising `"KEY": "value"` pairs on the line. The
    /// work is bounded by `width`, not by the line's length.
    pub(crate) fn excerpt(&self, position: &Position, width: usize) -> Excerpt {
        let (line_start, line_end) = self.line_bounds(position.line);
        let line = &self.text[line_start..line_end];
        let on_line: Vec<Range<usize>> = match &self.secret_ranges {
            Some(secrets) => {
                let first = secrets.partition_point(|r| r.end <= line_start);
                secrets[first..]
                    .iter()
                    .take_while(|r| r.start < line_end)
                    .map(|r| r.start.max(line_start) - line_start..r.end.min(line_end) - line_start)
                    .collect()
            }
            None => secret_pairs_on_line(line),
        };
        let start = floor_char_boundary(
            line,
            position.bytes.start.clamp(line_start, line_end) - line_start,
        );
        let end = position.bytes.end.clamp(line_start, line_end) - line_start;
        window(line, &on_line, start, end, position.column - 1, width)
    }
}

/// See `Source::excerpt`: `start..end` is the place (bytes of `line`), `column` its
/// 0-based character column, `secrets` the ranges of `line` to mask.
fn window(
    line: &str,
    secrets: &[Range<usize>],
    start: usize,
    end: usize,
    column: usize,
    width: usize,
) -> Excerpt {
    let from = if column > width / 2 && line.len() > width {
        line[..start]
            .char_indices()
            .rev()
            .nth(width / 2 - 1)
            .map_or(0, |(i, _)| i)
    } else {
        0
    };
    let end = end.max(start + 1);
    let mut text = String::new();
    let (mut shown, mut caret_at, mut caret_len) = (0, None, 0);
    let mut secrets = secrets
        .iter()
        .filter(|r| !r.is_empty())
        .skip_while(|r| r.end <= from)
        .peekable();
    let mut at = from;
    while at < line.len() && shown < width {
        // One unit: a masked secret, or one character.
        let (unit_end, unit_text, unit_width) = match secrets.peek() {
            Some(r) if r.start <= at => {
                let r = secrets.next().map_or(at..at + 1, Clone::clone);
                (r.end.max(at + 1), SECRET_MASK, SECRET_MASK.len())
            }
            _ => {
                let c = line[at..].chars().next().unwrap_or(' ');
                let end = at + c.len_utf8();
                let shown = if c == '\t' { " " } else { &line[at..end] };
                (end, shown, 1)
            }
        };
        if unit_end > start && at < end {
            caret_at.get_or_insert(shown);
            caret_len += unit_width;
        }
        text.push_str(unit_text);
        shown += unit_width;
        at = unit_end;
    }
    Excerpt {
        caret_at: caret_at.unwrap_or(shown),
        caret_len: caret_len.max(1),
        text,
        cut_before: from > 0,
    }
}

/// For a text that could not be parsed: the values (inside their quotes) of every
/// `"KEY": "value"` on a line whose key looks like a secret, and of the `"value"` after a
/// secret-looking `"name"`.
fn secret_pairs_on_line(line: &str) -> Vec<Range<usize>> {
    static PAIR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#""((?:[^"\\]|\\.)*)"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|([-+0-9.eE]+))"#)
            .expect("valid regex")
    });
    let mut secret_name = false;
    let mut ranges = Vec::new();
    for c in PAIR.captures_iter(line) {
        let key = &c[1];
        let Some(value) = c.get(2).or_else(|| c.get(3)) else {
            continue;
        };
        if crate::model::secret::is_secret_name(key) || (secret_name && holds_the_value(key)) {
            ranges.push(value.range());
        }
        if key == "name" {
            secret_name = crate::model::secret::is_secret_name(value.as_str());
        }
    }
    ranges
}

/// Does this member of an env entry hold its value: `value`, `default`, or a misspelling
/// of them (`valeu`, reported as one, still holds the secret the user meant to write)?
fn holds_the_value(key: &str) -> bool {
    matches!(key, "value" | "default")
        || crate::diagnostic::did_you_mean(key, ["value", "default"]).is_some()
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Why a file could not be turned into a document.
#[derive(Debug)]
pub(crate) enum LoadFailure {
    /// The path could not be read at all (missing, unreadable, a folder): exit 2.
    Io(Error),
    /// The content is not a JSON document we can check: the file is invalid (exit 1).
    Content(Box<Diagnostic>),
}

/// Reads a file as UTF-8 text, refusing files over `MAX_FILE_BYTES` before reading them.
pub(crate) fn read_text(path: &Path) -> Result<Source, LoadFailure> {
    let io = |e: std::io::Error| LoadFailure::Io(Error::io(path, e));
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(LoadFailure::Io(Error::io_with_hint(
            path,
            std::io::Error::other("is a folder"),
            "give a file, or a folder to `tapir validate` to search it",
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    // Read at most one byte more than allowed: a pipe or /proc file has no size upfront.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    decode(path, bytes)
}

fn too_large(len: u64) -> LoadFailure {
    LoadFailure::Content(Box::new(
        Diagnostic::error(
            "too-large",
            format!(
                "file is {:.1} MiB; Task API files are small JSON documents (tapir reads at most {} MiB)",
                len as f64 / 1048576.0,
                MAX_FILE_BYTES / 1048576
            ),
        )
        .with_fix("check that this is the right file"),
    ))
}

/// Bytes → text: strips a UTF-8 byte-order mark (remembered in `had_bom`, so that
/// validation can warn about it), refuses binary data and invalid UTF-8
/// with the position of the first bad byte.
pub(crate) fn decode(path: &Path, mut bytes: Vec<u8>) -> Result<Source, LoadFailure> {
    let had_bom = bytes.starts_with(b"\xEF\xBB\xBF");
    if had_bom {
        bytes.drain(..3);
    }
    let content = |d: Diagnostic| LoadFailure::Content(Box::new(d));
    match String::from_utf8(bytes) {
        Ok(text) => {
            if let Some(nul) = text.find('\0') {
                let source = Source::new(path, text.clone());
                let at = source.position(nul..nul + 1);
                return Err(content(
                    Diagnostic::error(
                        "binary",
                        "file contains NUL bytes: this is binary data, not JSON text",
                    )
                    .at(Some(at))
                    .with_fix("check that this is the right file"),
                ));
            }
            Ok(Source {
                had_bom,
                ..Source::new(path, text)
            })
        }
        Err(e) => {
            let valid_up_to = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let prefix = String::from_utf8_lossy(&bytes[..valid_up_to]).into_owned();
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            Err(content(
                Diagnostic::error(
                    "encoding",
                    format!(
                        "invalid UTF-8 at line {line}, column {column} (byte {valid_up_to}): JSON files must be UTF-8 text"
                    ),
                )
                .at(Some(Position {
                    bytes: valid_up_to..valid_up_to + 1,
                    line,
                    column,
                }))
                .with_fix("re-save the file as UTF-8"),
            ))
        }
    }
}

/// Where a key and its value sit in the source, for every node of the document.
#[derive(Debug, Clone)]
pub(crate) struct SpanTree {
    /// The value's byte range.
    pub value: Range<usize>,
    /// The key's byte range (quotes included), for object members.
    pub key: Option<Range<usize>>,
    pub children: SpanChildren,
}

#[derive(Debug, Clone)]
pub(crate) enum SpanChildren {
    Leaf,
    /// The members in file order, and for a large object the index of each key's last
    /// member (the one whose value counts), so that finding a member of an object with
    /// thousands of keys is not a scan. Small objects (nearly all) are scanned: an
    /// index for each would cost more memory than the document.
    Object(Vec<(String, SpanTree)>, Option<Box<MemberIndex>>),
    Array(Vec<SpanTree>),
}

/// Key → index of its last member, for objects of more than `INDEXED_MEMBERS` members.
pub(crate) type MemberIndex = std::collections::HashMap<String, usize>;

const INDEXED_MEMBERS: usize = 16;

/// The index of the member whose value counts for `key` (the last of that name).
fn last_member(
    members: &[(String, SpanTree)],
    index: Option<&MemberIndex>,
    key: &str,
) -> Option<usize> {
    match index {
        Some(index) => index.get(key).copied(),
        None => members.iter().rposition(|(k, _)| k == key),
    }
}

impl SpanTree {
    /// The node a JSON Pointer names, if it exists.
    pub(crate) fn find(&self, pointer: &str) -> Option<&SpanTree> {
        let mut node = self;
        for segment in pointer_segments(pointer) {
            node = match &node.children {
                // With duplicate keys the value that counts is the last one (as in
                // serde_json and Python), so look from the end.
                SpanChildren::Object(members, index) => {
                    &members[last_member(members, index.as_deref(), &segment)?].1
                }
                SpanChildren::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                SpanChildren::Leaf => return None,
            };
        }
        Some(node)
    }
}

/// A parsed JSON document: its source, its value and the position of each node.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub source: Source,
    pub value: Value,
    pub spans: SpanTree,
}

impl Document {
    /// Position of the value at `pointer` (or of its nearest existing ancestor).
    pub(crate) fn value_position(&self, pointer: &str) -> Option<Position> {
        self.nearest(pointer)
            .map(|n| self.source.position(n.value.clone()))
    }

    /// Position of the key of the member at `pointer` (the value's, for array items).
    pub(crate) fn key_position(&self, pointer: &str) -> Option<Position> {
        self.nearest(pointer).map(|n| {
            self.source
                .position(n.key.clone().unwrap_or_else(|| n.value.clone()))
        })
    }

    /// Position of a byte range *inside* the string value at `pointer`. Exact when the
    /// string is written as it is (so decoded and raw offsets agree); otherwise the string.
    pub(crate) fn string_position(&self, pointer: &str, inner: Range<usize>) -> Option<Position> {
        let node = self.nearest(pointer)?;
        let raw = &self.source.text[node.value.clone()];
        let decoded = self.value.pointer(pointer).and_then(Value::as_str);
        // The decoded string is the raw one between its quotes: no escapes, and not the
        // output of a whole-text rendering.
        if decoded.is_some_and(|d| raw.len() == d.len() + 2 && raw.get(1..raw.len() - 1) == Some(d))
        {
            let start = node.value.start + 1 + inner.start;
            Some(
                self.source
                    .position(start..node.value.start + 1 + inner.end),
            )
        } else {
            Some(self.source.position(node.value.clone()))
        }
    }

    /// Is the value at `pointer` (a leaf) a secret, or does it hold one? Messages then
    /// describe it without showing it.
    pub(crate) fn is_secret(&self, pointer: &str) -> bool {
        self.spans
            .find(pointer)
            .is_some_and(|n| self.source.overlaps_secret(&n.value))
    }

    fn nearest(&self, pointer: &str) -> Option<&SpanTree> {
        let mut pointer = pointer;
        loop {
            if let Some(node) = self.spans.find(pointer) {
                return Some(node);
            }
            pointer = &pointer[..pointer.rfind('/')?];
        }
    }
}

/// Parses a source as one strict JSON document. Duplicate keys are reported (the value
/// that counts is the last, as the platform's Python parser does), not refused.
pub(crate) fn parse(
    source: Source,
) -> Result<(Document, Vec<Diagnostic>), (Source, Box<Diagnostic>)> {
    parse_text(source, None)
}

/// Parses a task file whose template syntax stands outside JSON strings (DESIGN.md
/// decision 4): the whole text is rendered with `variables` first, then parsed. The
/// document keeps the file's own text, and every position in it (spans, syntax errors)
/// is the place in the file that produced the rendered JSON.
pub(crate) fn parse_templated(
    source: Source,
    variables: &template::Variables,
) -> Result<(Document, Vec<Diagnostic>), (Source, Box<Diagnostic>)> {
    match template::render_text(&source.text, variables) {
        Ok(rendered) => parse_text(source, Some(&rendered)),
        Err(e) => {
            let at = source.position(e.span.clone());
            let code = if e.undefined.is_some() {
                "undefined-variable"
            } else {
                "template"
            };
            let fix = if e.undefined.is_some() {
                format!(
                    "{}; this file has Jinja outside its strings, so tapir renders it with its own environment before checking it",
                    e.fix
                )
            } else {
                e.fix
            };
            let diagnostic = Diagnostic::error(code, format!("templating: {}", e.message))
                .at(Some(at))
                .with_fix(fix);
            Err((source, Box::new(diagnostic)))
        }
    }
}

/// Parses `source`, or the rendering of its text when given (positions then go back
/// through the rendering to the file).
fn parse_text(
    source: Source,
    rendered: Option<&template::RenderedText>,
) -> Result<(Document, Vec<Diagnostic>), (Source, Box<Diagnostic>)> {
    use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};
    let text = rendered.map_or(&source.text[..], |r| r.rendered.text.as_str());
    let to_file = |range: Range<usize>| match rendered {
        Some(r) => r.original(range),
        None => range,
    };
    if text.trim().is_empty() {
        return Err((
            source,
            Box::new(
                Diagnostic::error("empty", "file is empty: expected a JSON object")
                    .with_fix("add the file's content, starting with `{`"),
            ),
        ));
    }
    let strict = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let parsed = match parse_to_ast(text, &CollectOptions::default(), &strict) {
        Ok(parsed) => parsed,
        Err(_) if !source.text.trim_start().starts_with(['{', '[']) => {
            // Not JSON at all (a path mistyped as a task file: `/etc/shadow`). No
            // position, so no snippet: its first line may be anything, a password hash too.
            let diagnostic = Diagnostic::error(
                "not-json",
                "this is not a JSON file: it does not start with `{`",
            )
            .with_fix("check that this is the right file; a Task API file is a JSON object");
            return Err((source, Box::new(diagnostic)));
        }
        Err(e) => {
            let range = e.range();
            let (mut message, mut fix) = syntax_message(&e.kind().to_string());
            if rendered.is_some() {
                message.push_str(" (in the rendered template)");
                fix =
                    format!("{fix}; a value substituted into a string must not hold `\"` or `\\`");
            }
            let at = source.position(to_file(range.start..range.end.max(range.start + 1)));
            let diagnostic = Diagnostic::error("syntax", message)
                .at(Some(at))
                .with_fix(fix);
            return Err((source, Box::new(diagnostic)));
        }
    };
    let Some(root) = parsed.value else {
        let diagnostic = Diagnostic::error("empty", "file holds no JSON value");
        return Err((source, Box::new(diagnostic)));
    };
    let mut duplicates = Vec::new();
    let (value, spans) = convert(&source, &to_file, &root, None, "", &mut duplicates);
    let mut source = source;
    source.secret_ranges = Some(secret_ranges(&value, &spans).into());
    Ok((
        Document {
            source,
            value,
            spans,
        },
        duplicates,
    ))
}

/// Where the secret values of a document are: every value (its string leaves, inside
/// the quotes; other leaves whole) of a member whose key looks like a secret
/// (`registryPassword`, `"API_KEY": …` in an env map), and the `value` and `default` (or a
/// misspelling of them)
/// of an env entry whose `name` looks like one (its `choices` are declared in the open,
/// and the fixes list them). In byte order.
fn secret_ranges(value: &Value, spans: &SpanTree) -> Vec<Range<usize>> {
    use crate::model::secret::is_secret_name;
    let mut ranges = Vec::new();
    let mut pending = vec![(value, spans, false)];
    while let Some((value, span, secret)) = pending.pop() {
        match (value, &span.children) {
            (Value::Object(map), SpanChildren::Object(members, member_index)) => {
                let named_secret = map
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(is_secret_name);
                for (index, (key, child)) in members.iter().enumerate() {
                    // With duplicate keys, only the last has a value in `map`; the
                    // others are masked whole by their span.
                    let child_secret =
                        secret || is_secret_name(key) || (named_secret && holds_the_value(key));
                    match map.get(key) {
                        Some(v)
                            if last_member(members, member_index.as_deref(), key)
                                == Some(index) =>
                        {
                            pending.push((v, child, child_secret));
                        }
                        _ if child_secret => ranges.push(child.value.clone()),
                        _ => {}
                    }
                }
            }
            (Value::Array(items), SpanChildren::Array(children)) => {
                pending.extend(items.iter().zip(children).map(|(v, c)| (v, c, secret)));
            }
            (Value::String(_), _) if secret => {
                let r = &span.value;
                ranges.push((r.start + 1).min(r.end)..r.end.saturating_sub(1).max(r.start));
            }
            (_, _) if secret => ranges.push(span.value.clone()),
            _ => {}
        }
    }
    ranges.sort_by_key(|r| r.start);
    ranges
}

/// jsonc-parser's message plus a plain fix for the common mistakes.
fn syntax_message(kind: &str) -> (String, String) {
    let fix = match kind {
        k if k.contains("Trailing comma") => "remove the comma before the closing bracket",
        k if k.contains("omments") => "JSON has no comments: remove them",
        k if k.contains("ingle-quoted") || k.contains("ingle quoted") => {
            "JSON strings use double quotes"
        }
        k if k.contains("xpected comma") => "add a `,` between the two members",
        k if k.contains("nesting depth") => "a Task API file is only a few levels deep",
        k if k.contains("property name") || k.contains("string object property") => {
            "put the key in double quotes"
        }
        _ => "fix the JSON syntax at this position",
    };
    (format!("invalid JSON: {kind}"), fix.to_string())
}

fn convert(
    source: &Source,
    to_file: &dyn Fn(Range<usize>) -> Range<usize>,
    node: &jsonc_parser::ast::Value<'_>,
    key: Option<Range<usize>>,
    pointer: &str,
    duplicates: &mut Vec<Diagnostic>,
) -> (Value, SpanTree) {
    use jsonc_parser::ast::Value as A;
    use jsonc_parser::common::Ranged;
    let range = node.range();
    let value_range = to_file(range.start..range.end);
    let leaf = |value: Value| {
        (
            value,
            SpanTree {
                value: value_range.clone(),
                key: key.clone(),
                children: SpanChildren::Leaf,
            },
        )
    };
    match node {
        A::StringLit(s) => leaf(Value::String(s.value.to_string())),
        A::NumberLit(n) => leaf(
            serde_json::from_str::<serde_json::Number>(n.value)
                .map(Value::Number)
                // A number too large for f64 is kept as its text rather than lost.
                .unwrap_or_else(|_| Value::String(n.value.to_string())),
        ),
        A::BooleanLit(b) => leaf(Value::Bool(b.value)),
        A::NullKeyword(_) => leaf(Value::Null),
        A::Array(array) => {
            let mut values = Vec::with_capacity(array.elements.len());
            let mut spans = Vec::with_capacity(array.elements.len());
            for (i, element) in array.elements.iter().enumerate() {
                let (v, s) = convert(
                    source,
                    to_file,
                    element,
                    None,
                    &pointer_join(pointer, i),
                    duplicates,
                );
                values.push(v);
                spans.push(s);
            }
            (
                Value::Array(values),
                SpanTree {
                    value: value_range,
                    key,
                    children: SpanChildren::Array(spans),
                },
            )
        }
        A::Object(object) => {
            let mut map = Map::new();
            let mut spans: Vec<(String, SpanTree)> = Vec::with_capacity(object.properties.len());
            let mut last: std::collections::HashMap<String, usize> =
                std::collections::HashMap::with_capacity(object.properties.len());
            for prop in &object.properties {
                let name = prop.name.as_str().to_string();
                let name_range = prop.name.range();
                let name_range = to_file(name_range.start..name_range.end);
                let member_pointer = pointer_join(pointer, &name);
                // Only a repeated key is looked for among the members (rare), so a large
                // object is not scanned once per key.
                if last.contains_key(&name)
                    && let Some((_, first)) = spans.iter().find(|(k, _)| *k == name)
                {
                    let first_at = first.key.clone().map(|r| source.position(r));
                    duplicates.push(
                        Diagnostic::error(
                            "duplicate-key",
                            format!(
                                "key `{name}` appears twice in this object; only the last value would be used"
                            ),
                        )
                        .at_pointer(member_pointer.clone())
                        .at(Some(source.position(name_range.clone())))
                        .with_related("first defined here", first_at)
                        .with_fix("keep one of the two"),
                    );
                }
                let (v, s) = convert(
                    source,
                    to_file,
                    &prop.value,
                    Some(name_range),
                    &member_pointer,
                    duplicates,
                );
                map.insert(name.clone(), v);
                last.insert(name.clone(), spans.len());
                spans.push((name, s));
            }
            (
                Value::Object(map),
                SpanTree {
                    value: value_range,
                    key,
                    children: SpanChildren::Object(
                        spans,
                        (last.len() > INDEXED_MEMBERS).then(|| Box::new(last)),
                    ),
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Result<(Document, Vec<Diagnostic>), Box<Diagnostic>> {
        parse(Source::new("t.json", text.to_string())).map_err(|(_, d)| d)
    }

    #[test]
    fn positions_of_keys_and_values() {
        let (d, dup) = doc("{\n  \"a\": [1, {\"b\": \"x\"}]\n}").unwrap();
        assert!(dup.is_empty());
        let p = d.key_position("/a/1/b").unwrap();
        assert_eq!((p.line, p.column), (2, 13));
        let p = d.value_position("/a/1/b").unwrap();
        assert_eq!((p.line, p.column), (2, 18));
        // A missing member points at its nearest existing parent.
        let p = d.value_position("/a/1/zzz").unwrap();
        assert_eq!((p.line, p.column), (2, 12));
    }

    #[test]
    fn strict_json_only() {
        for bad in [
            "{\"a\": 1,}",
            "{// c\n}",
            "{'a': 1}",
            "{a: 1}",
            "{\"a\": 0x1}",
            "{\"a\": +1}",
            "{\"a\": .5}",
            "{\"a\": NaN}",
            "{\"a\": 1 \"b\": 2}",
            "{} {}",
        ] {
            let e = doc(bad).unwrap_err();
            assert_eq!(e.code, "syntax", "{bad} should be refused");
            assert!(e.position.is_some());
        }
    }

    #[test]
    fn duplicate_keys_are_reported_and_last_wins() {
        let (d, dup) = doc("{\"a\": 1, \"a\": 2}").unwrap();
        assert_eq!(d.value["a"], 2);
        assert_eq!(dup.len(), 1);
        assert_eq!(dup[0].position.as_ref().unwrap().column, 10);
        assert_eq!(dup[0].related.as_ref().unwrap().1.column, 2);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = doc(&text).unwrap_err();
        assert!(e.message.contains("nesting"), "{}", e.message);
    }

    #[test]
    fn invalid_utf8_and_binary_are_refused_with_positions() {
        let Err(LoadFailure::Content(d)) = decode(Path::new("x"), b"{\n \"a\": \"\xff\"}".to_vec())
        else {
            panic!("expected a content failure")
        };
        assert_eq!(d.code, "encoding");
        assert_eq!(
            d.position.as_ref().map(|p| (p.line, p.column)),
            Some((2, 8))
        );
        let Err(LoadFailure::Content(d)) = decode(Path::new("x"), b"{\0}".to_vec()) else {
            panic!("expected a content failure")
        };
        assert_eq!(d.code, "binary");
    }

    /// The excerpt of the line holding `needle`, with the carets under `needle`.
    fn excerpt_at(source: &Source, needle: &str, width: usize) -> Excerpt {
        let at = source.text.find(needle).unwrap();
        source.excerpt(&source.position(at..at + needle.len()), width)
    }

    #[test]
    fn secret_values_are_masked_by_position_in_the_document() {
        let text = "{\"env\": [{\"name\": \"DB_PASSWORD\", \"value\": \"hunter2\", \"x\": 1},\n {\"name\": \"A\", \"value\": \"shown\"}],\n \"registryPassword\": \"pw\", \"m\": {\"API_KEY\": \"k1\", \"n\": 5}}";
        let (d, _) = doc(text).unwrap();
        let e = excerpt_at(&d.source, "\"x\"", 200);
        assert_eq!(
            e.text,
            "{\"env\": [{\"name\": \"DB_PASSWORD\", \"value\": \"****\", \"x\": 1},"
        );
        // The carets stay under the finding's key after the masked value.
        assert_eq!(&e.text[e.caret_at..e.caret_at + e.caret_len], "\"x\"");
        assert!(
            excerpt_at(&d.source, "\"A\"", 200)
                .text
                .contains("\"shown\"")
        );
        let e = excerpt_at(&d.source, "\"n\"", 200);
        assert_eq!(
            e.text,
            " \"registryPassword\": \"****\", \"m\": {\"API_KEY\": \"****\", \"n\": 5}}"
        );
        // A finding on the secret itself points at the mask.
        let e = excerpt_at(&d.source, "hunter2", 200);
        assert_eq!(&e.text[e.caret_at..e.caret_at + e.caret_len], "****");
    }

    #[test]
    fn a_misspelt_value_key_of_a_secret_entry_is_masked_too() {
        // `valeu` is reported as a misspelling of `value`: the snippet must not show the
        // password the user meant to write there. The entry's own public keys stay shown.
        let text = "{\"env\": [{\"name\": \"MY_SECRET\", \"valeu\": \"hunter2\", \"type\": \"string\", \"description\": \"d\"}]}";
        let (d, _) = doc(text).unwrap();
        let e = excerpt_at(&d.source, "\"valeu\"", 200);
        assert_eq!(
            e.text,
            "{\"env\": [{\"name\": \"MY_SECRET\", \"valeu\": \"****\", \"type\": \"string\", \"description\": \"d\"}]}"
        );
        let source = Source::new("t.json", format!("{text},"));
        let e = excerpt_at(&source, "\"valeu\"", 200);
        assert!(!e.text.contains("hunter2"), "{}", e.text);
    }

    #[test]
    fn an_unparsed_line_masks_secret_looking_pairs() {
        let source = Source::new(
            "t.json",
            r#"{"registryPassword": "hunter2\"x", "API_TOKEN": 12, "name": "MY_SECRET", "value": "v", "a": "b",}"#,
        );
        let e = excerpt_at(&source, ",}", 200);
        assert_eq!(
            e.text,
            r#"{"registryPassword": "****", "API_TOKEN": ****, "name": "MY_SECRET", "value": "****", "a": "b",}"#
        );
        assert_eq!(&e.text[e.caret_at..e.caret_at + e.caret_len], ",}");
    }

    #[test]
    fn a_long_line_is_shown_as_a_window_and_columns_count_characters() {
        let text = format!("{{\"é\": 1, {}\"z\": 2}}", "\"k\": 0, ".repeat(100));
        let source = Source::new("t.json", text.clone());
        let at = text.find("\"z\"").unwrap();
        let p = source.position(at..at + 3);
        assert_eq!(p.column, text[..at].chars().count() + 1);
        let e = source.excerpt(&p, 40);
        assert!(e.cut_before);
        assert_eq!(e.text, " 0, \"k\": 0, \"k\": 0, \"z\": 2}");
        assert_eq!(e.caret_at, 20);
    }

    #[test]
    fn empty_is_refused() {
        assert_eq!(doc("  \n").unwrap_err().code, "empty");
    }
}
