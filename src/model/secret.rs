//! Which values are secrets, and how they are shown. Every layer that prints or stores a
//! value asks here (the checks' snippets, the plan, records, manifests), so the rule is one.

/// What a secret value is shown as.
pub(crate) const MASK: &str = "****";

/// Names whose values are secrets (registry passwords, tokens, keys).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|s| upper.contains(s))
}
