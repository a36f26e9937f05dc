//! YAML for manifests, written by hand from a JSON value (DESIGN.md decision 18).
//!
//! A manifest is plain JSON data: maps, lists, strings, numbers, booleans. Its YAML is the
//! block style `kubectl get -o yaml` prints, with one rule that keeps every reader
//! (kubectl's YAML 1.1-flavoured parser, PyYAML, YAML 1.2 parsers) agreeing: a string is
//! written plain only when it cannot be read as anything but that string; otherwise it is
//! written as a JSON string, which is a valid YAML double-quoted scalar with the same
//! meaning. `"500Mi"` stays quoted because it starts with a digit, `"no"`/`"on"` because
//! YAML 1.1 reads them as booleans.

use serde_json::Value;

/// The YAML document for `value` (no `---` marker; callers join documents).
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, level: usize) {
    out.extend(std::iter::repeat_n(' ', level));
}

/// `inline_first`: the first member goes on the current line (after a list item's `- `).
fn write_map(
    out: &mut String,
    map: &serde_json::Map<String, Value>,
    level: usize,
    inline_first: bool,
) {
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 || !inline_first {
            indent(out, level);
        }
        out.push_str(&string_text(key));
        out.push(':');
        write_value_after_key(out, value, level);
    }
}

fn write_value_after_key(out: &mut String, value: &Value, level: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, level + 2, false);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            // Lists under a key are indented like kubectl does (`- ` two spaces in).
            write_list(out, items, level + 2);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn write_list(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push_str("- ");
                write_map(out, map, level + 2, true);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str("-\n");
                write_list(out, inner, level + 2);
            }
            scalar => {
                out.push_str("- ");
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// Words YAML 1.1 (and so kubectl's parser) reads as booleans or null.
const RESERVED_WORDS: &[&str] = &[
    "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~",
];

/// A string as a YAML scalar: plain when that is unambiguous, else JSON-quoted.
fn string_text(text: &str) -> String {
    let plain = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !RESERVED_WORDS.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_string()
    } else {
        Value::String(text.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn block_style_like_kubectl() {
        let value = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "t", "labels": {"kaapana.ai/type": "processing-container"}},
            "spec": {
                "containers": [{"name": "main", "command": ["sh", "-c", "echo hi: #x"],
                                "env": [{"name": "A", "value": "1"}]}],
                "volumes": [],
                "empty": {}
            }
        });
        let expected = r#"apiVersion: v1
kind: Pod
metadata:
  name: t
  labels:
    kaapana.ai/type: processing-container
spec:
  containers:
    - name: main
      command:
        - sh
        - "-c"
        - "echo hi: #x"
      env:
        - name: A
          value: "1"
  volumes: []
  empty: {}
"#;
        assert_eq!(to_yaml(&value), expected);
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for (text, shown) in [
            ("500Mi", "\"500Mi\""),
            ("no", "\"no\""),
            ("On", "\"On\""),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("-x", "\"-x\""),
            ("*", "\"*\""),
            ("/data/in", "/data/in"),
            ("busybox", "busybox"),
            ("Never", "Never"),
        ] {
            assert_eq!(string_text(text), shown, "{text:?}");
        }
    }

    #[test]
    fn nested_lists_and_numbers() {
        let value = json!({"a": [[1, 2], {"b": true}], "c": 0});
        assert_eq!(
            to_yaml(&value),
            "a:\n  -\n    - 1\n    - 2\n  - b: true\nc: 0\n"
        );
    }
}
