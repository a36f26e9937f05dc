//! What the Kubernetes API server checks that its OpenAPI schema does not: object names
//! (RFC 1123), label and annotation syntax and size, quantity syntax, and the names a
//! pod may hold. The rules are the API server's own (`k8s.io/apimachinery`'s
//! `validation` package), written out here so that tapir refuses a manifest before any
//! cluster sees it. Each returns the reason in words, or `None` when the value is fine.

/// Kaapana's limit for a pod name: 62, one below the 63 of a DNS label, because a DICOM
/// sender in a pod fails with longer host names (reference §9).
pub(crate) const KAAPANA_NAME_MAX: usize = 62;

/// The most bytes all of an object's annotations may hold together (keys and values).
pub(crate) const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

fn alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// An RFC 1123 label (namespaces, volume and container names): at most 63 characters of
/// `a-z`, `0-9` and `-`, starting and ending with a letter or digit.
pub(crate) fn dns_label_problem(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("it is empty".into());
    }
    if text.len() > 63 {
        return Some(format!(
            "it has {} characters, at most 63 are allowed",
            text.len()
        ));
    }
    if let Some(bad) = text.chars().find(|c| !alnum_lower(*c) && *c != '-') {
        return Some(format!(
            "`{bad}` is not allowed: only lowercase letters, digits and `-`"
        ));
    }
    if !text.starts_with(alnum_lower) || !text.ends_with(alnum_lower) {
        return Some("it must start and end with a lowercase letter or a digit".into());
    }
    None
}

/// An RFC 1123 subdomain (pod, secret and pull-secret names, label prefixes): at most
/// 253 characters, dot-separated parts each like a label.
pub(crate) fn dns_subdomain_problem(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("it is empty".into());
    }
    if text.len() > 253 {
        return Some(format!(
            "it has {} characters, at most 253 are allowed",
            text.len()
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !alnum_lower(*c) && *c != '-' && *c != '.')
    {
        return Some(format!(
            "`{bad}` is not allowed: only lowercase letters, digits, `-` and `.`"
        ));
    }
    for part in text.split('.') {
        if part.is_empty() || !part.starts_with(alnum_lower) || !part.ends_with(alnum_lower) {
            return Some(
                "each dot-separated part must start and end with a lowercase letter or a digit"
                    .into(),
            );
        }
    }
    None
}

fn qualified_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// The name part of a label or annotation key, and a label value (when not empty): at most
/// 63 characters of letters, digits, `-`, `_` and `.`, starting and ending alphanumeric.
fn qualified_name_problem(text: &str, what: &str) -> Option<String> {
    if text.len() > 63 {
        return Some(format!(
            "the {what} has {} characters, at most 63 are allowed",
            text.len()
        ));
    }
    if let Some(bad) = text.chars().find(|c| !qualified_char(*c)) {
        return Some(format!(
            "`{bad}` is not allowed in the {what}: only letters, digits, `-`, `_` and `.`"
        ));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if !text.starts_with(alnum) || !text.ends_with(alnum) {
        return Some(format!(
            "the {what} must start and end with a letter or a digit"
        ));
    }
    None
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain.
pub(crate) fn qualified_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.is_empty() {
        return Some("the name after the prefix is empty".into());
    }
    if let Some(prefix) = prefix
        && let Some(why) = dns_subdomain_problem(prefix)
    {
        return Some(format!("its prefix `{prefix}`: {why}"));
    }
    qualified_name_problem(name, "name")
}

/// A label value: empty, or like a key's name part.
pub(crate) fn label_value_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    qualified_name_problem(value, "value")
}

/// The total size of annotations, which the API server caps at 256 KiB.
pub(crate) fn annotations_size_problem<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Option<String> {
    let total: usize = annotations
        .into_iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    (total > ANNOTATIONS_MAX_BYTES).then(|| {
        format!("the annotations hold {total} bytes together, at most {ANNOTATIONS_MAX_BYTES} are allowed")
    })
}

/// A quantity exactly as the API server parses one (`resource.ParseQuantity`): an
/// optionally signed decimal number and at most one suffix (`Ki`…`Ei`, `n u m k M G T P
/// E`, or an exponent `e3`). Stricter than tapir's reading of task files (no spaces, no
/// `B`), since this is what goes into a manifest.
pub(crate) fn quantity_problem(text: &str) -> Option<String> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = body
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || exponent_ok(suffix);
    if number_ok && suffix_ok {
        None
    } else {
        Some(format!(
            "`{text}` is not a Kubernetes quantity (a number with at most one suffix: Ki, Mi, Gi, Ti, Pi, Ei, m, k, M, G, T, P, E, or an exponent like e3)"
        ))
    }
}

fn exponent_ok(suffix: &str) -> bool {
    let Some(rest) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
}

/// An environment variable name: the API server (1.34) takes any printable ASCII but `=`.
pub(crate) fn env_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if let Some(bad) = name.chars().find(|c| !(' '..='~').contains(c) || *c == '=') {
        return Some(format!(
            "{:?} is not allowed in a variable name (printable ASCII except `=`)",
            bad
        ));
    }
    None
}

/// The pod name Kaapana's runner derives from a task name (reference §9): lowercased;
/// every character outside `[a-z0-9.-]` becomes `-`; leading and trailing characters that
/// are not a letter or digit dropped; cut to `max` characters and trimmed again. `None`
/// when nothing is left (a name of symbols only).
pub(crate) fn kaapana_name(task_name: &str, max: usize) -> Option<String> {
    let replaced: String = task_name
        .to_lowercase()
        .chars()
        .map(|c| {
            if alnum_lower(c) || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = replaced.trim_matches(|c: char| !alnum_lower(c));
    let cut: String = trimmed.chars().take(max).collect();
    let name = cut.trim_end_matches(|c: char| !alnum_lower(c)).to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaapana_name_follows_the_runner() {
        let cases = [
            (
                "Kubernetes task for dummy image",
                "kubernetes-task-for-dummy-image",
            ),
            ("  --Seg_Task v1.2!! ", "seg-task-v1.2"),
            ("ÄÖÜ total", "total"),
            ("a..b", "a..b"),
            ("UPPER", "upper"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                kaapana_name(input, KAAPANA_NAME_MAX).as_deref(),
                Some(expected),
                "{input}"
            );
        }
        assert_eq!(kaapana_name("!!!", KAAPANA_NAME_MAX), None);
        // Cut to 62, then a trailing `-` left by the cut is dropped.
        let long = format!("{}-{}", "a".repeat(61), "b".repeat(10));
        assert_eq!(kaapana_name(&long, 62).unwrap(), "a".repeat(61));
        assert_eq!(kaapana_name(&"x".repeat(100), 62).unwrap().len(), 62);
    }

    #[test]
    fn dns_names() {
        assert_eq!(dns_label_problem("vol-in-1"), None);
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(dns_subdomain_problem("my-task.v1"), None);
        for bad in ["", "a..b", ".a", "a_b", "Task", &"a".repeat(254)] {
            assert!(dns_subdomain_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn label_syntax() {
        for good in [
            "app",
            "kaapana.ai/type",
            "a_b.c-d",
            "app.kubernetes.io/managed-by",
        ] {
            assert_eq!(qualified_key_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "/x",
            "Kaapana.AI/type",
            "a/b/c",
            "-a",
            "a b",
            &"k".repeat(64),
        ] {
            assert!(qualified_key_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["", "processing-container", "V1.2_x"] {
            assert_eq!(label_value_problem(good), None, "{good}");
        }
        for bad in ["a b", "-x", "x-", "a/b", &"v".repeat(64)] {
            assert!(label_value_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn annotation_size() {
        let small: Vec<(String, String)> = vec![("a".into(), "b".repeat(10))];
        assert_eq!(
            annotations_size_problem(small.iter().map(|(k, v)| (k, v))),
            None
        );
        let big: Vec<(String, String)> = vec![("a".into(), "b".repeat(ANNOTATIONS_MAX_BYTES))];
        assert!(annotations_size_problem(big.iter().map(|(k, v)| (k, v))).is_some());
    }

    #[test]
    fn quantities_as_the_api_server_reads_them() {
        for good in [
            "500Mi", "1", "0.5", ".5", "1.", "250m", "1e3", "1E", "2Gi", "+1", "12E-2", "100k",
        ] {
            assert_eq!(quantity_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "500MB",
            "1mi",
            "1KiB",
            " 1",
            "1 ",
            "abc",
            ".",
            "1.2.3",
            "1e",
            "Mi",
            "100000000B",
        ] {
            assert!(quantity_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name_problem("DICOM_DIR"), None);
        assert_eq!(env_name_problem("my.var-1"), None);
        for bad in ["", "A=B", "A\nB", "É"] {
            assert!(env_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
