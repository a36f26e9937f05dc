//! `{{ … }}` templating inside JSON strings (DESIGN.md decision 4).
//!
//! Kaapana renders a whole task file with Jinja2 before parsing it. tapir instead parses
//! the JSON first and renders each string on its own, so substituted values never break
//! the JSON and every error keeps its position. The subset is what real task files use:
//!
//! - `{{ env.NAME }}`, `{{ env['NAME'] }}`, `{{ env["NAME"] }}`: a variable;
//! - string literals `'…'` / `"…"`;
//! - filters: `default(x)` (alias `d`; `default(x, true)` also replaces an empty value),
//!   `lower`, `upper`, `trim`.
//!
//! Statements (`{% … %}`) and comments (`{# … #}`) are refused with a clear message. An
//! undefined variable without `default` is an error naming it, never an empty string.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr { expr: Expr, span: Range<usize> },
}

#[derive(Debug, Clone, PartialEq)]
struct Expr {
    primary: Primary,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
enum Primary {
    Env(String),
    Literal(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Default { value: String, if_empty: bool },
    Lower,
    Upper,
    Trim,
}

/// A templating error with its byte range inside the string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TemplateError {
    pub message: String,
    pub span: Range<usize>,
    pub fix: String,
}

/// Does this string use templating at all? (Cheap test before parsing.) `{%` and `{#`
/// count only with their closer after them, so shell text such as `${#name}` stays text.
pub(crate) fn is_templated(s: &str) -> bool {
    s.contains("{{") || find_open(s, 0).is_some()
}

impl Template {
    /// Parses a string; `Ok(None)` when it holds no templating.
    pub(crate) fn parse(s: &str) -> Result<Option<Template>, TemplateError> {
        if !is_templated(s) {
            return Ok(None);
        }
        let mut parts = Vec::new();
        let mut rest = 0;
        while let Some(found) = find_open(s, rest) {
            let (open, kind) = found;
            if open > rest {
                parts.push(Part::Text(s[rest..open].to_string()));
            }
            match kind {
                '%' | '#' => {
                    let what = if kind == '%' {
                        "statements ({% … %})"
                    } else {
                        "comments ({# … #})"
                    };
                    return Err(TemplateError {
                        message: format!("templating {what} are not supported"),
                        span: open..open + 2,
                        fix: "use only `{{ env.NAME }}` expressions, with filters such as `| default('x')`".into(),
                    });
                }
                _ => {}
            }
            let Some(close_rel) = s[open + 2..].find("}}") else {
                return Err(TemplateError {
                    message: "`{{` is never closed".into(),
                    span: open..s.len(),
                    fix: "close the expression with `}}`".into(),
                });
            };
            let close = open + 2 + close_rel;
            let span = open..close + 2;
            let expr = ExprParser::new(&s[open + 2..close], open + 2).parse()?;
            parts.push(Part::Expr { expr, span });
            rest = close + 2;
        }
        if rest < s.len() {
            parts.push(Part::Text(s[rest..].to_string()));
        }
        Ok(Some(Template { parts }))
    }

    /// The variables the template reads, each with its byte range in the string, and
    /// whether a `default` filter covers it.
    pub(crate) fn variables(&self) -> Vec<(&str, Range<usize>, bool)> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Expr {
                    expr:
                        Expr {
                            primary: Primary::Env(name),
                            filters,
                        },
                    span,
                } => Some((
                    name.as_str(),
                    span.clone(),
                    filters.iter().any(|f| matches!(f, Filter::Default { .. })),
                )),
                _ => None,
            })
            .collect()
    }

    /// Renders with `lookup` for variables. Errors name the first undefined variable.
    pub(crate) fn render(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Expr { expr, span } => {
                    let mut value = match &expr.primary {
                        Primary::Env(name) => lookup(name),
                        Primary::Literal(l) => Some(l.clone()),
                    };
                    for filter in &expr.filters {
                        value = match (filter, value) {
                            (Filter::Default { value: d, if_empty }, v) => match v {
                                Some(v) if !(*if_empty && v.is_empty()) => Some(v),
                                _ => Some(d.clone()),
                            },
                            (_, None) => None,
                            (Filter::Lower, Some(v)) => Some(v.to_lowercase()),
                            (Filter::Upper, Some(v)) => Some(v.to_uppercase()),
                            (Filter::Trim, Some(v)) => Some(v.trim().to_string()),
                        };
                    }
                    match value {
                        Some(v) => out.push_str(&v),
                        None => {
                            let name = match &expr.primary {
                                Primary::Env(n) => n.as_str(),
                                Primary::Literal(_) => "",
                            };
                            return Err(TemplateError {
                                message: format!("environment variable `{name}` is not set"),
                                span: span.clone(),
                                fix: format!(
                                    "set it (`export {name}=…`) or give a fallback: `{{{{ env.{name} | default('…') }}}}`"
                                ),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The next `{{`, `{%` or `{#` at or after `from`.
fn find_open(s: &str, from: usize) -> Option<(usize, char)> {
    let bytes = s.as_bytes();
    (from..bytes.len().saturating_sub(1)).find_map(|i| match (bytes[i], bytes[i + 1]) {
        (b'{', b'{') => Some((i, '{')),
        (b'{', b'%') if s[i + 2..].contains("%}") => Some((i, '%')),
        (b'{', b'#') if s[i + 2..].contains("#}") => Some((i, '#')),
        _ => None,
    })
}

struct ExprParser<'a> {
    text: &'a str,
    pos: usize,
    base: usize,
}

impl<'a> ExprParser<'a> {
    fn new(text: &'a str, base: usize) -> Self {
        Self { text, pos: 0, base }
    }

    fn error(&self, message: impl Into<String>) -> TemplateError {
        let at = self.base + self.pos;
        TemplateError {
            message: message.into(),
            span: at..(at + 1).max(self.base + self.text.len()).min(at + 1),
            fix: "write `{{ env.NAME }}` or `{{ env.NAME | default('value') }}`".into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || (*i > 0 && c.is_ascii_digit())
            })
            .count();
        (len > 0).then(|| {
            self.pos += len;
            rest[..len].to_string()
        })
    }

    fn string(&mut self) -> Result<Option<String>, TemplateError> {
        self.skip_ws();
        let rest = &self.text[self.pos..];
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            return Ok(None);
        };
        match rest[1..].find(quote) {
            Some(end) => {
                self.pos += end + 2;
                Ok(Some(rest[1..end + 1].to_string()))
            }
            None => Err(self.error("string literal is never closed")),
        }
    }

    fn parse(mut self) -> Result<Expr, TemplateError> {
        let primary = if let Some(literal) = self.string()? {
            Primary::Literal(literal)
        } else {
            match self.ident().as_deref() {
                Some("env") => {
                    if self.eat(".") {
                        let name = self
                            .ident()
                            .ok_or_else(|| self.error("expected a variable name after `env.`"))?;
                        Primary::Env(name)
                    } else if self.eat("[") {
                        let name = self.string()?.ok_or_else(|| {
                            self.error("expected a quoted variable name after `env[`")
                        })?;
                        if !self.eat("]") {
                            return Err(self.error("expected `]`"));
                        }
                        Primary::Env(name)
                    } else {
                        return Err(self.error("expected `.NAME` or `['NAME']` after `env`"));
                    }
                }
                Some(other) => {
                    return Err(TemplateError {
                        fix: "variables come from `env`, e.g. `{{ env.NAME }}`".into(),
                        ..self.error(format!("unknown name `{other}`: only `env` is available"))
                    });
                }
                None if self.text.trim().is_empty() => {
                    return Err(self.error("empty expression `{{ }}`"));
                }
                None => return Err(self.error("expected `env.NAME` or a quoted string")),
            }
        };
        let mut filters = Vec::new();
        while self.eat("|") {
            self.skip_ws();
            let name_start = self.pos;
            let name = self
                .ident()
                .ok_or_else(|| self.error("expected a filter name after `|`"))?;
            let filter = match name.as_str() {
                "default" | "d" => {
                    if !self.eat("(") {
                        return Err(self.error("`default` needs a value: `default('x')`"));
                    }
                    let value = self
                        .string()?
                        .ok_or_else(|| self.error("`default` takes a quoted string"))?;
                    let mut if_empty = false;
                    if self.eat(",") {
                        match self.ident().as_deref() {
                            Some("true" | "True") => if_empty = true,
                            Some("false" | "False") => {}
                            _ => {
                                return Err(self.error(
                                    "the second argument of `default` is `true` or `false`",
                                ));
                            }
                        }
                    }
                    if !self.eat(")") {
                        return Err(self.error("expected `)`"));
                    }
                    Filter::Default { value, if_empty }
                }
                "lower" => Filter::Lower,
                "upper" => Filter::Upper,
                "trim" => Filter::Trim,
                other => {
                    const FILTERS: [&str; 5] = ["default", "d", "lower", "upper", "trim"];
                    let at = self.base + name_start;
                    return Err(TemplateError {
                        message: format!("unknown filter `{other}`"),
                        span: at..at + other.len(),
                        fix: match crate::diagnostic::did_you_mean(other, FILTERS) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "available filters: default, lower, upper, trim".into(),
                        },
                    });
                }
            };
            filters.push(filter);
        }
        self.skip_ws();
        if self.pos < self.text.len() {
            return Err(self.error(format!(
                "unexpected `{}`",
                &self.text[self.pos..].trim_end()
            )));
        }
        Ok(Expr { primary, filters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "registryUrl" => Some("localhost:5000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn render(s: &str) -> Result<String, TemplateError> {
        Template::parse(s)?.map_or(Ok(s.to_string()), |t| t.render(&env))
    }

    #[test]
    fn renders_the_forms_real_task_files_use() {
        assert_eq!(
            render("{{ env.registryUrl }}/dummy:latest").unwrap(),
            "localhost:5000/dummy:latest"
        );
        assert_eq!(render("{{env['registryUrl']}}").unwrap(), "localhost:5000");
        assert_eq!(render("{{ env.nope | default('x') }}").unwrap(), "x");
        assert_eq!(render("{{ env.EMPTY | default('x') }}").unwrap(), "");
        assert_eq!(render("{{ env.EMPTY | default('x', true) }}").unwrap(), "x");
        assert_eq!(
            render("{{ env.registryUrl | upper }}").unwrap(),
            "LOCALHOST:5000"
        );
        assert_eq!(render("no templating").unwrap(), "no templating");
        // Shell syntax that only looks like the start of a statement or comment.
        assert_eq!(render("echo ${#x} {%").unwrap(), "echo ${#x} {%");
    }

    #[test]
    fn undefined_variable_is_an_error_with_its_span() {
        let e = render("x {{ env.output_dir }}/a").unwrap_err();
        assert!(e.message.contains("output_dir"));
        assert_eq!(e.span, 2..22);
    }

    #[test]
    fn syntax_errors_are_refused() {
        for bad in [
            "{{ env.a",
            "{% if x %}",
            "{{ }}",
            "{{ env. }}",
            "{{ foo }}",
            "{{ env.a | nope }}",
            "{{ env.a b }}",
            "{# c #}",
            "{{ env['a }}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn variables_are_listed_with_default_flag() {
        let t = Template::parse("{{ env.a }}-{{ env.b | default('') }}")
            .unwrap()
            .unwrap();
        let v: Vec<_> = t.variables().into_iter().map(|(n, _, d)| (n, d)).collect();
        assert_eq!(v, [("a", false), ("b", true)]);
    }
}
