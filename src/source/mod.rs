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

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, Position, pointer_join, pointer_segments};
use crate::error::Error;

/// Task API files are small; anything larger than this is certainly not one, and reading
/// it would only cost time and memory.
pub(crate) const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// A loaded text with its line index.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// The path as the user gave it (or as found while walking a folder).
    pub path: PathBuf,
    pub text: String,
    /// The file began with a UTF-8 byte-order mark (stripped from `text`).
    pub had_bom: bool,
    line_starts: Vec<usize>,
}

impl Source {
    pub(crate) fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            path: path.into(),
            text,
            had_bom: false,
            line_starts,
        }
    }

    /// Line and column (both 1-based; columns count characters) of a byte range.
    pub(crate) fn position(&self, bytes: Range<usize>) -> Position {
        let start = bytes.start.min(self.text.len());
        let line_index = self.line_starts.partition_point(|&s| s <= start) - 1;
        let line_start = self.line_starts[line_index];
        let column = self.text[line_start..floor_char_boundary(&self.text, start)]
            .chars()
            .count()
            + 1;
        Position {
            bytes,
            line: line_index + 1,
            column,
        }
    }

    /// The text of a 1-based line, without its line break.
    pub(crate) fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }
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
    Object(Vec<(String, SpanTree)>),
    Array(Vec<SpanTree>),
}

impl SpanTree {
    /// The node a JSON Pointer names, if it exists.
    pub(crate) fn find(&self, pointer: &str) -> Option<&SpanTree> {
        let mut node = self;
        for segment in pointer_segments(pointer) {
            node = match &node.children {
                // With duplicate keys the value that counts is the last one (as in
                // serde_json and Python), so look from the end.
                SpanChildren::Object(members) => {
                    &members.iter().rev().find(|(k, _)| *k == segment)?.1
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
    let text = rendered.map_or(source.text.as_str(), |r| r.rendered.text.as_str());
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
    Ok((
        Document {
            source,
            value,
            spans,
        },
        duplicates,
    ))
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
            for prop in &object.properties {
                let name = prop.name.as_str().to_string();
                let name_range = prop.name.range();
                let name_range = to_file(name_range.start..name_range.end);
                let member_pointer = pointer_join(pointer, &name);
                if let Some((_, first)) = spans.iter().find(|(k, _)| *k == name) {
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
                spans.push((name, s));
            }
            (
                Value::Object(map),
                SpanTree {
                    value: value_range,
                    key,
                    children: SpanChildren::Object(spans),
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

    #[test]
    fn empty_is_refused() {
        assert_eq!(doc("  \n").unwrap_err().code, "empty");
    }
}
