//! Python text for a DAG file that Kaapana's workflow-api renders with Jinja before
//! Airflow reads it (docs/DESIGN.md decision 17): string literals whose `{{`, `{%` and
//! `{#` cannot open a Jinja tag, identifiers made from task ids, comments that stay text.

/// Python's keywords and soft keywords: never a variable name.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "match", "case", "type",
];

/// Names the generated DAG file itself defines or imports: a task variable must not hide
/// one of them.
const TAKEN: &[&str] = &[
    "DAG",
    "DEFAULT_REGISTRY",
    "KAAPANA_BUILD_VERSION",
    "EmptyOperator",
    "IOMapping",
    "KaapanaTaskOperator",
    "args",
    "dag",
    "pc_models",
    "timedelta",
];

/// A double-quoted Python string literal of `text`. A `{` that Jinja would read as the
/// start of a tag (followed by `{`, `%` or `#`) is written `\x7b`: Python reads the same
/// character, Jinja sees no tag.
pub(crate) fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '{' if matches!(chars.peek(), Some('{' | '%' | '#')) => out.push_str("\\x7b"),
            c if c.is_control() => {
                let code = u32::from(c);
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{code:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` fit for a `#` comment: one line, and no Jinja tag opener (a space is put
/// between `{` and `{`, `%` or `#`; comments have no escapes).
pub(crate) fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push('?'),
            '{' if matches!(chars.peek(), Some('{' | '%' | '#')) => out.push_str("{ "),
            c => out.push(c),
        }
    }
    out
}

/// A Python identifier for a task id: every character outside `[A-Za-z0-9_]` becomes `_`,
/// a leading digit or a keyword gets a `_` in front, and a name already `used` (or one
/// the file defines itself) gets `_2`, `_3`, … after it.
pub(crate) fn identifier(id: &str, used: &[String]) -> String {
    let mut name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if KEYWORDS.contains(&name.as_str()) {
        name.insert(0, '_');
    }
    let free = |n: &str| !TAKEN.contains(&n) && !used.iter().any(|u| u == n);
    if free(&name) {
        return name;
    }
    (2..)
        .map(|n| format!("{name}_{n}"))
        .find(|candidate| free(candidate))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_what_python_and_jinja_would_read() {
        assert_eq!(string("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert_eq!(
            string("{{ env.X }} ${#n} {%x%} {a}"),
            r#""\x7b{ env.X }} $\x7b#n} \x7b%x%} {a}""#
        );
        assert_eq!(string("tab\there\u{1}"), r#""tab\there\x01""#);
        assert_eq!(string("ü"), "\"ü\"");
    }

    #[test]
    fn comments_stay_one_line_without_jinja_tags() {
        assert_eq!(comment_text("a\n{{b}} {#c"), "a { {b}} { #c");
    }

    #[test]
    fn identifiers_are_python_names_and_distinct() {
        assert_eq!(identifier("get-data", &[]), "get_data");
        assert_eq!(identifier("1st", &[]), "_1st");
        assert_eq!(identifier("class", &[]), "_class");
        assert_eq!(identifier("dag", &[]), "dag_2");
        assert_eq!(identifier("a-b", &["a_b".into()]), "a_b_2");
        assert_eq!(identifier("a-b", &["a_b".into(), "a_b_2".into()]), "a_b_3");
    }
}
