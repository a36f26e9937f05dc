//! Jinja templating of task files (DESIGN.md decision 4), with minijinja.
//!
//! Kaapana renders a task file's whole text with Jinja2 (`env` = the process environment,
//! `custom` = `{}`) and only then parses it as JSON. tapir renders the same language with
//! a maintained Jinja implementation, in one of two ways:
//!
//! - **per string** ([`render`]) when every piece of template syntax sits inside JSON
//!   strings, as in every Kaapana task file: the JSON is parsed first and each string is
//!   rendered on its own, so a substituted value can never break the JSON and every
//!   error points into its string;
//! - **whole text** ([`render_text`]) when template syntax stands outside strings
//!   (`{% if %}` around members, `{# … #}` between them, a bare `{{ env.N }}` number): the
//!   text is rendered first, like the reference, and the output keeps, for each of its
//!   byte ranges, the range of the file that produced it, so that JSON and schema
//!   findings still point at the file's own line and column.
//!
//! Both are stricter than the reference in one way only: printing an undefined variable
//! (or passing it to a filter that needs a value) is an error naming it, never an empty
//! string. Testing one (`{% if env.X %}`, `env.X is defined`, `env.get('X', 'd')`,
//! `| default`) works as in Jinja2.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Environment, Error, ErrorKind, OutputSpanKind, UndefinedBehavior};

/// The variables a template sees as `env`: the process environment, read once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Variables {
    values: Arc<BTreeMap<String, String>>,
}

impl Variables {
    /// tapir's own environment, as the reference's `os.environ` (names or values that are
    /// not UTF-8 cannot appear in a JSON file and are left out).
    pub(crate) fn from_process() -> Self {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

impl FromIterator<(String, String)> for Variables {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self {
            values: Arc::new(iter.into_iter().collect()),
        }
    }
}

/// `env` inside a template: a read-only mapping that notes every name looked up, so the
/// caller learns which variables a string read (for secret masking) and which were
/// missing (to name them in an error).
#[derive(Debug)]
struct EnvObject {
    values: Arc<BTreeMap<String, String>>,
    reads: Mutex<Vec<(String, bool)>>,
}

impl Object for EnvObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let found = self.values.get(name);
        if let Ok(mut reads) = self.reads.lock() {
            reads.push((name.to_string(), found.is_some()));
        }
        found.map(|v| Value::from(v.as_str()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.values
                .keys()
                .map(|k| Value::from(k.as_str()))
                .collect(),
        )
    }
}

/// A templating error with its byte range inside the rendered text (string or file).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TemplateError {
    pub message: String,
    pub span: Range<usize>,
    pub fix: String,
    /// The variable whose absence caused the error, when that was the cause.
    pub undefined: Option<String>,
}

/// What rendering produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rendered {
    pub text: String,
    /// Every `env` name the template looked up, present or not, in order.
    pub reads: Vec<String>,
}

/// The whole text of a file, rendered, with the way back to the file's positions.
#[derive(Debug, Clone)]
pub(crate) struct RenderedText {
    pub rendered: Rendered,
    /// Which part of the file produced each part of the output, in output order.
    origin: Vec<Piece>,
}

/// A part of the rendered output and the file's bytes that produced it.
#[derive(Debug, Clone)]
struct Piece {
    output: Range<usize>,
    source: Range<usize>,
    /// Written as it stands in the file (else: the value of the expression at `source`).
    verbatim: bool,
}

impl RenderedText {
    /// The file's byte range that produced `range` of the rendered text: the same bytes
    /// for text written verbatim, the expression for a substituted value.
    pub(crate) fn original(&self, range: Range<usize>) -> Range<usize> {
        let first = self.original_at(range.start);
        let last = if range.end > range.start {
            self.original_at(range.end - 1)
        } else {
            first.clone()
        };
        first.start..last.end.max(first.start)
    }

    /// The file's bytes behind the output byte `at`.
    fn original_at(&self, at: usize) -> Range<usize> {
        // Spans are ordered and do not overlap: the last one starting at or before `at`.
        let index = self
            .origin
            .partition_point(|piece| piece.output.start <= at);
        let Some(piece) = index.checked_sub(1).map(|i| &self.origin[i]) else {
            return 0..0;
        };
        if piece.verbatim {
            // Past the piece's end only at the end of the output: its last byte is the
            // nearest place.
            let offset = (at - piece.output.start).min(piece.source.len().saturating_sub(1));
            piece.source.start + offset..piece.source.start + offset + 1
        } else {
            piece.source.clone()
        }
    }
}

/// Does this string use templating at all? (Cheap test before compiling.) `{%` and `{#`
/// count only with their closer after them, so shell text such as `${#name}` stays text.
pub(crate) fn is_templated(s: &str) -> bool {
    let bytes = s.as_bytes();
    (0..bytes.len().saturating_sub(1)).any(|i| match (bytes[i], bytes[i + 1]) {
        (b'{', b'{') => true,
        (b'{', b'%') => s[i + 2..].contains("%}"),
        (b'{', b'#') => s[i + 2..].contains("#}"),
        _ => false,
    })
}

/// Does template syntax stand outside JSON strings, so that the text is not JSON until it
/// is rendered? A lexical scan: JSON strings are skipped (with their escapes), and any
/// `{{`, `{%` or `{#` outside them — never valid JSON — means yes.
pub(crate) fn needs_whole_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'{') if matches!(bytes.get(i + 1), Some(b'{' | b'%' | b'#')) => {
                return true;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

fn environment(keep_trailing_newline: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(true);
    // Printing an undefined value fails; testing one (`{% if env.X %}`) does not, as in
    // Jinja2 where the reference's files rely on it.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // Python's `str.replace`, `dict.get`, … as Jinja2 templates call them.
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    // Jinja2 prints Python's spellings of none and booleans.
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            return out.write_str("None").map_err(Error::from);
        }
        if value.kind() == minijinja::value::ValueKind::Bool {
            return out
                .write_str(if value.is_true() { "True" } else { "False" })
                .map_err(Error::from);
        }
        minijinja::escape_formatter(out, state, value)
    });
    if keep_trailing_newline {
        // A string's own final newline is part of its value (in the reference it is the
        // two characters `\n` of the JSON text, which Jinja2 keeps).
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
    }
    env
}

/// Checks a string's template without variables: syntax, and names of filters, tests and
/// functions (which minijinja only looks up when they run, so the string is rendered
/// with every variable undefined and lenient, and only those errors count).
pub(crate) fn check(s: &str) -> Result<(), TemplateError> {
    let mut env = environment(true);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    let template = env.template_from_str(s).map_err(|e| error(&e, s, &[]))?;
    match template.render(context(&env_object(&Variables::default()))) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::SyntaxError
            ) =>
        {
            Err(error(&e, s, &[]))
        }
        _ => Ok(()),
    }
}

/// Renders one string (per-string mode).
pub(crate) fn render(s: &str, variables: &Variables) -> Result<Rendered, TemplateError> {
    let env = environment(true);
    let template = env.template_from_str(s).map_err(|e| error(&e, s, &[]))?;
    let env_object = env_object(variables);
    let result = template.render(context(&env_object));
    let reads = take_reads(&env_object);
    match result {
        Ok(text) => Ok(Rendered {
            text,
            reads: reads.into_iter().map(|(name, _)| name).collect(),
        }),
        Err(e) => Err(error(&e, s, &reads)),
    }
}

/// Renders the whole text of a file (whole-text mode). Error spans are in `text`.
pub(crate) fn render_text(
    text: &str,
    variables: &Variables,
) -> Result<RenderedText, TemplateError> {
    let env = environment(false);
    let template = env
        .template_from_str(text)
        .map_err(|e| error(&e, text, &[]))?;
    let env_object = env_object(variables);
    let result = template.render_with_spans(context(&env_object));
    let reads = take_reads(&env_object);
    match result {
        Ok((output, spans)) => Ok(RenderedText {
            rendered: Rendered {
                text: output,
                reads: reads.into_iter().map(|(name, _)| name).collect(),
            },
            origin: spans
                .iter()
                .map(|span| Piece {
                    output: span.output_range(),
                    source: span.source_range(),
                    verbatim: span.kind() == OutputSpanKind::Raw,
                })
                .collect(),
        }),
        Err(e) => Err(error(&e, text, &reads)),
    }
}

fn env_object(variables: &Variables) -> Arc<EnvObject> {
    Arc::new(EnvObject {
        values: variables.values.clone(),
        reads: Mutex::default(),
    })
}

fn context(env_object: &Arc<EnvObject>) -> Value {
    minijinja::context! {
        env => Value::from_dyn_object(env_object.clone()),
        custom => BTreeMap::<String, String>::new(),
    }
}

fn take_reads(env_object: &EnvObject) -> Vec<(String, bool)> {
    env_object
        .reads
        .lock()
        .map(|mut reads| std::mem::take(&mut *reads))
        .unwrap_or_default()
}

/// A minijinja error as tapir says it: the place in `source`, the cause in words, a fix.
fn error(e: &Error, source: &str, reads: &[(String, bool)]) -> TemplateError {
    let span = match e.range() {
        Some(range) if range.end <= source.len() => {
            range.start..range.end.max(range.start + 1).min(source.len().max(1))
        }
        _ => {
            // Only a line is known: its first character.
            let line = e.line().unwrap_or(1);
            let start = source
                .match_indices('\n')
                .nth(line.saturating_sub(2))
                .map_or(0, |(i, _)| if line > 1 { i + 1 } else { 0 });
            start..(start + 1).min(source.len().max(1))
        }
    };
    let detail = e.detail().unwrap_or_default();
    if e.kind() == ErrorKind::UndefinedError {
        let missing = missing_name(
            detail,
            &source[span.start.min(source.len())..span.end.min(source.len())],
            reads,
        );
        if let Some(name) = missing {
            return TemplateError {
                message: format!("environment variable `{name}` is not set"),
                span,
                fix: format!(
                    "set it (`export {name}=…`) or give a fallback: `{{{{ env.get('{name}', '…') }}}}` or `{{{{ env.{name} | default('…') }}}}`"
                ),
                undefined: Some(name),
            };
        }
        let what = detail.trim();
        return TemplateError {
            message: if what.is_empty() {
                "undefined value".into()
            } else {
                what.to_string()
            },
            span,
            fix: "variables come from `env` (`{{ env.NAME }}`); `custom` is always empty".into(),
            undefined: None,
        };
    }
    let unknown = |what: &str, known: &[&str]| {
        let name = detail
            .strip_prefix(what)
            .and_then(|rest| rest.strip_suffix(" is unknown"))
            .unwrap_or(detail)
            .trim()
            .to_string();
        let fix = match crate::diagnostic::did_you_mean(&name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("tapir has Jinja2's built-in {what}s: {}", known.join(", ")),
        };
        (format!("unknown {what} `{name}`"), fix)
    };
    let (message, fix) = match e.kind() {
        ErrorKind::UnknownFilter => unknown("filter", JINJA2_FILTERS),
        ErrorKind::UnknownTest => unknown("test", JINJA2_TESTS),
        ErrorKind::SyntaxError => (
            format!("Jinja syntax error: {detail}"),
            "fix the Jinja syntax here (`{{ … }}` for values, `{% … %}` for statements, `{# … #}` for comments)".into(),
        ),
        kind => (
            if detail.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}: {detail}")
            },
            "fix the template expression here".into(),
        ),
    };
    TemplateError {
        message,
        span,
        fix,
        undefined: None,
    }
}

/// Jinja2's built-in filters and tests, for "did you mean" (minijinja has them, and a few
/// more).
const JINJA2_FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "capitalize",
    "center",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "filesizeformat",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
];
const JINJA2_TESTS: &[&str] = &[
    "boolean",
    "callable",
    "defined",
    "divisibleby",
    "eq",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// Which missing `env` name an undefined error is about: the missing one that the failing
/// expression spells out, else the last one looked up.
fn missing_name(detail: &str, expression: &str, reads: &[(String, bool)]) -> Option<String> {
    let missing: Vec<&str> = reads
        .iter()
        .filter(|(_, found)| !found)
        .map(|(name, _)| name.as_str())
        .collect();
    missing
        .iter()
        .rev()
        .find(|name| mentions(detail, name) || mentions(expression, name))
        .or(missing.last())
        .map(|name| name.to_string())
}

fn mentions(text: &str, name: &str) -> bool {
    [
        format!(".{name}"),
        format!("'{name}'"),
        format!("\"{name}\""),
    ]
    .iter()
    .any(|needle| {
        text.match_indices(needle.as_str()).any(|(i, _)| {
            !text[i + needle.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables() -> Variables {
        [
            ("registryUrl", "localhost:5000"),
            ("EMPTY", ""),
            ("MODE", "fast"),
            ("PATHS", "a,b"),
            ("SPACED", "  x  "),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// What Jinja2 3.1.6 renders for each template, as the reference calls it
    /// (`Template(text).render(env=<these variables>, custom={})`); the outputs were
    /// taken from a run of real Jinja2 while writing this table.
    const REFERENCE_CASES: &[(&str, &str)] = &[
        (
            "{{ env.registryUrl }}/dummy:latest",
            "localhost:5000/dummy:latest",
        ),
        ("{{ env['registryUrl'] }}", "localhost:5000"),
        ("{{ env[\"registryUrl\"] }}", "localhost:5000"),
        ("{{ env.get('nope', 'd') }}", "d"),
        ("{{ env.get('registryUrl', 'd') }}", "localhost:5000"),
        ("{{ env.get('nope') }}", "None"),
        ("{{ env.nope | default('x') }}", "x"),
        ("{{ env.nope | d('x') }}", "x"),
        ("{{ env.EMPTY | default('x') }}", ""),
        ("{{ env.EMPTY | default('x', true) }}", "x"),
        (
            "{{ env.registryUrl | replace(':', '-') }}",
            "localhost-5000",
        ),
        ("{{ env.registryUrl | upper }}", "LOCALHOST:5000"),
        ("{{ env.MODE | lower }}", "fast"),
        ("{{ env.SPACED | trim }}", "x"),
        ("{{ env.MODE | title }}", "Fast"),
        ("{{ env.MODE | capitalize }}", "Fast"),
        ("{{ env.MODE | length }}", "4"),
        (
            "{% if env.MODE == 'fast' %}quick{% else %}slow{% endif %}",
            "quick",
        ),
        ("{% if env.nope %}yes{% else %}no{% endif %}", "no"),
        (
            "{% if env.nope is defined %}yes{% elif env.MODE %}mode{% endif %}",
            "mode",
        ),
        ("a{# a comment #}b", "ab"),
        ("{{ env.MODE is defined }}", "True"),
        ("{{ 'MODE' in env }}", "True"),
        ("{{ env.PATHS.split(',') | join(' ') }}", "a b"),
        ("{{ env.registryUrl.replace(':5000', '') }}", "localhost"),
        (
            "{% for p in env.PATHS.split(',') %}[{{ loop.index }}:{{ p }}]{% endfor %}",
            "[1:a][2:b]",
        ),
        ("{{ 'x-' ~ env.MODE }}", "x-fast"),
        ("{{ custom }}", "{}"),
        ("{{ (env.N | default('2')) | int + 1 }}", "3"),
        ("{%- if true -%}  yes  {%- endif -%}", "yes"),
        (
            "{% set base = env.registryUrl ~ '/x' %}{{ base }}:1",
            "localhost:5000/x:1",
        ),
        ("{{ env.MODE if env.MODE else 'none' }}", "fast"),
        ("{{ env.registryUrl.startswith('localhost') }}", "True"),
        ("{{ env.MODE | default('x') | upper }}", "FAST"),
        (
            "{% raw %}{{ not rendered }}{% endraw %}",
            "{{ not rendered }}",
        ),
        ("{{ [env.MODE, 'b'] | join(',') }}", "fast,b"),
        ("{{ env.EMPTY or 'fallback' }}", "fallback"),
    ];

    #[test]
    fn renders_what_jinja2_renders() {
        let variables = variables();
        for (template, expected) in REFERENCE_CASES {
            let rendered =
                render(template, &variables).unwrap_or_else(|e| panic!("{template}: {e:?}"));
            assert_eq!(rendered.text, *expected, "{template}");
            // The whole-text rendering is the same engine with the same variables.
            let whole = render_text(template, &variables).unwrap();
            assert_eq!(whole.rendered.text, *expected, "{template} (whole text)");
        }
    }

    #[test]
    fn a_strings_final_newline_is_kept_but_a_files_is_not() {
        // In the reference a JSON string's newline is the two characters `\n` of the
        // file's text, which Jinja2 keeps; the file's own last newline it drops.
        let variables = variables();
        assert_eq!(
            render("{{ env.MODE }}\n", &variables).unwrap().text,
            "fast\n"
        );
        assert_eq!(
            render_text("{\"a\": 1}\n", &variables)
                .unwrap()
                .rendered
                .text,
            "{\"a\": 1}"
        );
    }

    #[test]
    fn printing_an_undefined_variable_is_an_error_naming_it_with_its_span() {
        let variables = variables();
        for (template, name, at) in [
            ("x {{ env.output_dir }}/a", "output_dir", "env.output_dir"),
            ("{{ env['output_dir'] }}", "output_dir", "env['output_dir']"),
            // A filter that needs a value fails at the filter.
            ("{{ env.nope | upper }}", "nope", "upper"),
            (
                "{{ env.MODE }}{{ env.get('a', 'b') }}{{ env.nope }}",
                "nope",
                "env.nope",
            ),
            ("{{ custom.x }}", "", "custom.x"),
        ] {
            let e = render(template, &variables).unwrap_err();
            assert_eq!(
                e.undefined.as_deref().unwrap_or(""),
                name,
                "{template}: {e:?}"
            );
            assert!(
                template[e.span.clone()].contains(at),
                "{template}: span {:?} is `{}`",
                e.span,
                &template[e.span.clone()]
            );
            if !name.is_empty() {
                assert!(e.message.contains(name), "{}", e.message);
            }
        }
    }

    #[test]
    fn records_every_variable_a_template_reads() {
        let rendered = render(
            "{% if env.nope is defined %}{{ env.A }}{% else %}{{ env.get('MODE') }}{% endif %}",
            &variables(),
        )
        .unwrap();
        assert_eq!(rendered.reads, ["nope", "MODE"]);
    }

    #[test]
    fn check_finds_syntax_errors_and_unknown_names_without_variables() {
        for bad in [
            "{{ env.a",
            "{{ }}",
            "{{ env. }}",
            "{{ env.a | defualt('x') }}",
            "{{ env.a b }}",
            "{% if env.a %}never closed",
            "{{ env['a }}",
            "{{ env.a is definde }}",
            "{# never closed",
        ] {
            assert!(check(bad).is_err(), "{bad} should be refused");
        }
        for good in [
            "{{ env.a }}",
            "{% if env.a %}x{% endif %}",
            "{# c #}{{ env.a | replace('x', 'y') | default('z') }}",
            "{{ env.get('a', 'b') }}",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        // Shell text that only looks like the start of a comment or statement is not
        // templated, so it is never compiled.
        assert!(!is_templated("echo ${#x} {%"));
        let e = check("ab {{ env.a | defualt('x') }}").unwrap_err();
        assert!(e.message.contains("defualt"), "{}", e.message);
        let e = check("ab {{ env.a").unwrap_err();
        assert!(e.span.start >= 3, "{e:?}");
    }

    #[test]
    fn template_syntax_outside_strings_needs_the_whole_text() {
        assert!(!needs_whole_text(
            r#"{"a": "{{ env.X }}", "b": "{% if x %}{% endif %}"}"#
        ));
        assert!(!needs_whole_text(r#"{"a": "\"{{ x }}", "b": {"c": {}}}"#));
        assert!(needs_whole_text("{\n{# c #}\n\"a\": 1}"));
        assert!(needs_whole_text(r#"{"a": 1{% if x %}, "b": 2{% endif %}}"#));
        assert!(needs_whole_text(r#"{"a": {{ env.N }}}"#));
        assert!(needs_whole_text(r#"{"a": "x\"", {{ env.N }}}"#));
    }

    #[test]
    fn whole_text_positions_go_back_to_the_file() {
        let text = "{\n{# c #}\n  \"a\": \"{{ env.MODE }}!\",{% if env.MODE == 'fast' %}\n  \"b\": 1{% endif %}\n}";
        let whole = render_text(text, &variables()).unwrap();
        let out = &whole.rendered.text;
        assert_eq!(out, "{\n\n  \"a\": \"fast!\",\n  \"b\": 1\n}");
        // Verbatim text maps to itself: `"b"` in the output is `"b"` in the file.
        let b = out.find("\"b\"").unwrap();
        assert_eq!(&text[whole.original(b..b + 3)], "\"b\"");
        // A substituted value maps to the expression that produced it.
        let fast = out.find("fast").unwrap();
        assert_eq!(&text[whole.original(fast..fast + 4)], "env.MODE");
        // An undefined variable is an error at its place in the file.
        let e = render_text("{\n  \"a\": {{ env.nope }}\n}", &variables()).unwrap_err();
        assert_eq!(e.undefined.as_deref(), Some("nope"));
        assert_eq!(e.span.start, "{\n  \"a\": {{ ".len());
    }
}
