//! The command line's variables, checked once while the arguments are parsed (see
//! `cli.rs`): `--env NAME=VALUE`, `--env NAME` and the lines of an `--env-file`. A bad one
//! is a usage error (exit 2) before anything else happens, and the rest of the program
//! only ever sees a validated `EnvOverride`.
//!
//! Messages name the variable and the position, never a value: values may be secrets.

use std::path::{Path, PathBuf};

/// One variable from the command line: a valid name and its literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvOverride {
    pub name: String,
    pub value: String,
}

/// An `--env-file`, read and checked: its variables in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvFile {
    /// The path as given on the command line (messages and sources show it like that).
    pub path: PathBuf,
    pub entries: Vec<EnvFileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvFileEntry {
    /// 1-based line number.
    pub line: usize,
    pub var: EnvOverride,
}

/// What the name rule says, for messages.
const NAME_RULE: &str = "letters, digits and `_`, not starting with a digit";

/// The byte offset of the first character that breaks the name rule.
fn first_bad_char(name: &str) -> Option<usize> {
    name.char_indices()
        .find(|(i, c)| !(c.is_ascii_alphanumeric() || *c == '_') || (*i == 0 && c.is_ascii_digit()))
        .map(|(i, _)| i)
}

/// `--env NAME=VALUE`, or `--env NAME` with the value from tapir's own environment
/// (`lookup`; handy for secrets, which then stay out of the argv).
pub(crate) fn parse_env_arg(
    arg: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<EnvOverride, String> {
    let (name, value) = match arg.split_once('=') {
        Some((name, value)) => (name, value.to_string()),
        None => {
            check_arg_name(arg)?;
            let value = lookup(arg).ok_or_else(|| {
                format!(
                    "--env {arg}: no `=VALUE`, and {arg} is not set in tapir's environment\n  fix: write --env {arg}=VALUE, or set {arg} in the environment tapir runs in"
                )
            })?;
            (arg, value)
        }
    };
    check_arg_name(name)?;
    Ok(EnvOverride {
        name: name.to_string(),
        value,
    })
}

fn check_arg_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(
            "--env: the name before `=` is empty\n  fix: write --env NAME=VALUE".to_string(),
        );
    }
    if let Some(bad) = first_bad_char(name) {
        // Only the name up to the bad character is shown: without `=` (`--env TOKEN:s3cret`)
        // the rest may well be the value.
        let (before, rest) = name.split_at(bad);
        let character = rest.chars().next().unwrap_or_default();
        let after = if before.is_empty() {
            String::new()
        } else {
            format!(", after `{before}`")
        };
        return Err(format!(
            "--env: not a valid variable name ({NAME_RULE}): `{character}` at column {}{after}\n  fix: write --env NAME=VALUE with such a name, and no spaces around `=`",
            before.chars().count() + 1
        ));
    }
    Ok(())
}

/// Reads and checks an env file; the error names the file, line and column, and the fix.
pub(crate) fn read_env_file(path: &Path) -> Result<EnvFile, String> {
    let bytes = std::fs::read(path).map_err(|e| {
        format!(
            "--env-file {}: cannot read it: {e}\n  fix: give an existing text file of NAME=VALUE lines",
            path.display()
        )
    })?;
    // Said plainly: otherwise the mark is an invisible bad character of the first name.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(format!(
            "{}:1:1: the file starts with a UTF-8 byte-order mark\n  fix: save the file as UTF-8 without BOM",
            path.display()
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        // Position of the first bad byte; the line's text is not shown (it may be a secret).
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let valid = std::str::from_utf8(valid).unwrap_or_default();
        let line = valid.matches('\n').count() + 1;
        let column = valid
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        format!(
            "{}:{line}:{column}: not UTF-8 text\n  fix: save the file as UTF-8",
            path.display()
        )
    })?;
    let entries = parse_env_text(&text).map_err(|e| {
        format!(
            "{}:{}:{}: {}\n  fix: {}",
            path.display(),
            e.line,
            e.column,
            e.message,
            e.fix
        )
    })?;
    Ok(EnvFile {
        path: path.to_path_buf(),
        entries,
    })
}

/// A line of an env file that is not `[export ]NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvLineError {
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    pub fix: String,
}

/// The env-file format: one `NAME=VALUE` per line, optionally preceded by `export ` (as
/// dotenv files often are); the value is everything after the first `=`, taken literally
/// (no quotes, no `$` expansion). Blank lines and lines starting with `#` are skipped.
/// Spaces around `=` are refused: they would silently become part of the name or value.
pub(crate) fn parse_env_text(text: &str) -> Result<Vec<EnvFileEntry>, EnvLineError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        // `lines` keeps the `\r` of a last line without `\n`; docker's reader drops it.
        let line = line.strip_suffix('\r').unwrap_or(line);
        let error = |byte: usize, message: String, fix: &str| EnvLineError {
            line: number,
            column: line[..byte].chars().count() + 1,
            message,
            fix: fix.to_string(),
        };
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut start = line.len() - content.len();
        if let Some(rest) = content.strip_prefix("export")
            && rest.starts_with([' ', '\t'])
        {
            start = line.len() - rest.trim_start().len();
        }
        let statement = &line[start..];
        let Some(equals) = statement.find('=') else {
            return Err(error(
                line.len(),
                "no `=`: each line must be NAME=VALUE".into(),
                "write NAME=VALUE (or `export NAME=VALUE`), or start the line with `#` to make it a comment",
            ));
        };
        let (name, value) = (&statement[..equals], &statement[equals + 1..]);
        let equals_at = start + equals;
        if name.is_empty() {
            return Err(error(
                equals_at,
                "the name before `=` is empty".into(),
                "write NAME=VALUE",
            ));
        }
        let trimmed = name.trim_end();
        if trimmed.len() < name.len() {
            return Err(error(
                start + trimmed.len(),
                "space before `=` (it would become part of the name)".into(),
                "write NAME=VALUE with no spaces around `=`",
            ));
        }
        if value.starts_with([' ', '\t']) {
            return Err(error(
                equals_at + 1,
                "space after `=` (it would become part of the value)".into(),
                "write NAME=VALUE with no spaces around `=` (the value is taken literally, to the end of the line)",
            ));
        }
        if let Some(bad) = first_bad_char(name) {
            return Err(error(
                start + bad,
                format!("not a valid variable name ({NAME_RULE})"),
                "rename the variable, e.g. `-` and `.` to `_`",
            ));
        }
        if let Some(nul) = value.find('\0') {
            return Err(error(
                equals_at + 1 + nul,
                "a NUL character in the value (no environment variable can hold one)".into(),
                "remove it (the file may not be a text file of NAME=VALUE lines)",
            ));
        }
        entries.push(EnvFileEntry {
            line: number,
            var: EnvOverride {
                name: name.to_string(),
                value: value.to_string(),
            },
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, value: &str) -> EnvOverride {
        EnvOverride {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn env_file_lines_are_parsed_literally_with_an_optional_export() {
        let entries =
            parse_env_text("# c\n\nA=1\nexport B=x=y\n\texport\tC=\"q\" $HOME \nD=\nexport=e\n")
                .unwrap();
        let got: Vec<(usize, EnvOverride)> = entries.into_iter().map(|e| (e.line, e.var)).collect();
        assert_eq!(
            got,
            [
                (3, var("A", "1")),
                (4, var("B", "x=y")),
                (5, var("C", "\"q\" $HOME ")),
                (6, var("D", "")),
                (7, var("export", "e")),
            ]
        );
    }

    #[test]
    fn env_file_errors_point_at_the_character() {
        for (text, line, column, words) in [
            ("N = 5", 1, 2, "space before"),
            ("A=1\nN= 5", 2, 3, "space after"),
            ("  export 1X=a", 1, 10, "not a valid variable name"),
            ("A.B=1", 1, 2, "not a valid variable name"),
            ("NAME", 1, 5, "no `=`"),
            ("=v", 1, 1, "empty"),
        ] {
            let e = parse_env_text(text).unwrap_err();
            assert_eq!((e.line, e.column), (line, column), "{text:?}: {e:?}");
            assert!(e.message.contains(words), "{text:?}: {e:?}");
        }
    }

    #[test]
    fn crlf_line_ends_are_not_part_of_the_value() {
        // The last line has no `\n`: `str::lines` would keep its `\r`.
        let entries = parse_env_text("A=1\r\n\r\nB=2\r").unwrap();
        let got: Vec<(usize, EnvOverride)> = entries.into_iter().map(|e| (e.line, e.var)).collect();
        assert_eq!(got, [(1, var("A", "1")), (3, var("B", "2"))]);
    }

    #[test]
    fn a_byte_order_mark_or_bytes_that_are_not_utf8_are_named_with_their_position() {
        let dir = tempfile::tempdir().unwrap();
        let bom = dir.path().join("bom.env");
        std::fs::write(&bom, b"\xEF\xBB\xBFA=1\n").unwrap();
        let message = read_env_file(&bom).unwrap_err();
        assert!(
            message.starts_with(&format!(
                "{}:1:1: the file starts with a UTF-8 byte-order mark",
                bom.display()
            )),
            "{message}"
        );
        assert!(
            message.contains("fix: save the file as UTF-8 without BOM"),
            "{message}"
        );
        let latin1 = dir.path().join("latin1.env");
        std::fs::write(&latin1, b"A=1\nSECRET=gr\xFC\xDFe\n").unwrap();
        let message = read_env_file(&latin1).unwrap_err();
        assert!(
            message.starts_with(&format!("{}:2:10: not UTF-8 text", latin1.display())),
            "{message}"
        );
        assert!(message.contains("fix: save the file as UTF-8"), "{message}");
        assert!(!message.contains("gr"), "no value: {message}");
    }

    #[test]
    fn env_args_take_a_value_or_the_environment() {
        let lookup = |n: &str| (n == "SET").then(|| "from env".to_string());
        assert_eq!(parse_env_arg("A=b=c", lookup), Ok(var("A", "b=c")));
        assert_eq!(parse_env_arg("SET", lookup), Ok(var("SET", "from env")));
        assert!(
            parse_env_arg("UNSET", lookup)
                .unwrap_err()
                .contains("not set")
        );
        assert!(parse_env_arg("=x", lookup).unwrap_err().contains("empty"));
        let bad = parse_env_arg("MY TOKEN=s3cret", lookup).unwrap_err();
        assert!(bad.contains("not a valid variable name") && !bad.contains("s3cret"));
    }

    #[test]
    fn an_env_arg_without_equals_is_not_echoed_past_the_bad_character() {
        // `--env TOKEN:s3cret` (`:` typed for `=`): the rest may be the value.
        let bad = parse_env_arg("API_TOKEN:s3cret", |_| None).unwrap_err();
        assert!(bad.contains("`:` at column 10"), "{bad}");
        assert!(bad.contains("`API_TOKEN`"), "{bad}");
        assert!(!bad.contains("s3cret"), "{bad}");
    }
}
