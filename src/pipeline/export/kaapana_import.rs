//! A Kaapana DAG file back into a pipeline (docs/DESIGN.md decision 17), for DAGs made of
//! `KaapanaTaskOperator`s, `IOMapping`s and `>>` (and the `EmptyOperator` gates and
//! `retry_delay` assignments `pipeline export` writes). A small reader of that subset of
//! Python, not a Python parser: every construct outside it is an error at its line and
//! column, never a guess.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::{Map, Value, json};

use crate::diagnostic::Diagnostic;
use crate::source::Source;

/// Values for the names a Kaapana DAG takes from the platform.
#[derive(Debug, Clone)]
pub(crate) struct ImportOptions {
    /// `DEFAULT_REGISTRY` in image f-strings.
    pub registry: String,
    /// `KAAPANA_BUILD_VERSION` in image f-strings.
    pub build_version: String,
    /// The pipeline name when the DAG's id is the workflow-api's `{{ dag_id }}`.
    pub fallback_name: String,
}

/// The pipeline a DAG written by `pipeline export` came from, as its header names it
/// (`# (pipeline `NAME`, sha256 …)`), when that name is a valid dag id.
pub(crate) fn exported_name(text: &str) -> Option<String> {
    text.lines()
        .take_while(|line| line.starts_with('#'))
        .find_map(|line| line.strip_prefix("# (pipeline `"))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

/// The operator's own time limit when a DAG sets none (90 minutes).
const OPERATOR_EXEC_TIME: u64 = 5400;
/// Airflow's retry delay as the operator fixes it.
const OPERATOR_RETRY_DELAY: u64 = 10;

/// The pipeline (JSON) and the warnings, or the errors.
pub(crate) fn import(
    source: &Source,
    options: &ImportOptions,
) -> Result<(Value, Vec<Diagnostic>), Vec<Diagnostic>> {
    let tokens = tokenize(&source.text).map_err(|e| vec![e.diagnostic(source)])?;
    let mut parser = Parser {
        text: &source.text,
        tokens,
        at: 0,
        unsupported: Vec::new(),
        depth: 0,
    };
    let statements = parser
        .statements()
        .map_err(|e| vec![e.diagnostic(source)])?;
    let mut reader = Reader {
        options,
        name: None,
        description: None,
        defaults: Defaults::default(),
        tasks: Vec::new(),
        gates: Vec::new(),
        edges: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    for statement in &statements {
        reader.statement(statement);
    }
    let mut problems = std::mem::take(&mut parser.unsupported);
    problems.extend(reader.errors.iter().cloned());
    problems.sort_by_key(|p| p.at.start);
    let mut errors: Vec<Diagnostic> = problems.iter().map(|e| e.diagnostic(source)).collect();
    if reader.tasks.is_empty() && errors.is_empty() {
        errors.push(
            Diagnostic::error("import-no-tasks", "the file defines no KaapanaTaskOperator")
                .with_fix("import a DAG whose tasks are `name = KaapanaTaskOperator(task_id=…, image=…, taskTemplate=…)`"),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let pipeline = reader.pipeline();
    let warnings = reader
        .warnings
        .iter()
        .map(|e| Diagnostic {
            severity: crate::diagnostic::Severity::Warning,
            ..e.diagnostic(source)
        })
        .collect();
    Ok((pipeline, warnings))
}

/// A problem at a byte range of the DAG file.
#[derive(Debug, Clone)]
struct Problem {
    code: &'static str,
    message: String,
    fix: String,
    at: Range<usize>,
}

impl Problem {
    fn new(
        code: &'static str,
        at: Range<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            code,
            message: message.into(),
            fix: fix.into(),
            at,
        }
    }

    fn diagnostic(&self, source: &Source) -> Diagnostic {
        let d = Diagnostic::error(self.code, self.message.clone())
            .at(Some(source.position(self.at.clone())));
        if self.fix.is_empty() {
            d
        } else {
            d.with_fix(self.fix.clone())
        }
    }
}

const UNDERSTOOD: &str = "tapir reads DAGs of `KaapanaTaskOperator`s, `IOMapping`s and `>>`; write this part by hand in the pipeline";

// ---------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str { value: String, formatted: bool },
    Int(i64),
    Float(f64),
    Op(&'static str),
    Newline,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: Range<usize>,
}

const OPS: &[&str] = &[
    ">>", "(", ")", "[", "]", "{", "}", ",", "=", ":", ".", "-", "+", "*",
];

fn tokenize(text: &str) -> Result<Vec<Token>, Problem> {
    let bytes = text.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\x0c' => i += 1,
            b'\\' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\r' | b'\n' => {
                if depth == 0 && tokens.last().is_some_and(|t| t.tok != Tok::Newline) {
                    tokens.push(Token {
                        tok: Tok::Newline,
                        at: i..i + 1,
                    });
                }
                i += 1;
            }
            b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'.')
                {
                    i += 1;
                }
                let word = text[start..i].replace('_', "");
                let tok = match (word.parse::<i64>(), word.parse::<f64>()) {
                    (Ok(n), _) => Tok::Int(n),
                    (_, Ok(f)) => Tok::Float(f),
                    _ => {
                        return Err(Problem::new(
                            "import-syntax",
                            start..i,
                            format!("`{}` is not a number tapir reads", &text[start..i]),
                            "write a plain decimal number",
                        ));
                    }
                };
                tokens.push(Token { tok, at: start..i });
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &text[start..i];
                let prefix = word.to_ascii_lowercase();
                if matches!(bytes.get(i), Some(b'"' | b'\''))
                    && matches!(prefix.as_str(), "f" | "r" | "fr" | "rf" | "u")
                {
                    let (value, end) = string(text, i, prefix.contains('r'), start)?;
                    tokens.push(Token {
                        tok: Tok::Str {
                            value,
                            formatted: prefix.contains('f'),
                        },
                        at: start..end,
                    });
                    i = end;
                } else {
                    tokens.push(Token {
                        tok: Tok::Name(word.to_string()),
                        at: start..i,
                    });
                }
            }
            b'"' | b'\'' => {
                let (value, end) = string(text, i, false, i)?;
                tokens.push(Token {
                    tok: Tok::Str {
                        value,
                        formatted: false,
                    },
                    at: i..end,
                });
                i = end;
            }
            _ => {
                let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) else {
                    let ch = text[i..].chars().next().unwrap_or('?');
                    return Err(Problem::new(
                        "import-syntax",
                        i..i + ch.len_utf8(),
                        format!("`{ch}` is outside the Python tapir reads"),
                        UNDERSTOOD,
                    ));
                };
                match *op {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                tokens.push(Token {
                    tok: Tok::Op(op),
                    at: i..i + op.len(),
                });
                i += op.len();
            }
        }
    }
    tokens.push(Token {
        tok: Tok::Newline,
        at: text.len()..text.len(),
    });
    tokens.push(Token {
        tok: Tok::End,
        at: text.len()..text.len(),
    });
    Ok(tokens)
}

/// A string literal starting at its quote `q`; its value and the byte after it.
fn string(text: &str, q: usize, raw: bool, start: usize) -> Result<(String, usize), Problem> {
    let bytes = text.as_bytes();
    let quote = bytes[q];
    let triple = bytes.get(q + 1) == Some(&quote) && bytes.get(q + 2) == Some(&quote);
    let mut i = q + if triple { 3 } else { 1 };
    let mut out = String::new();
    let unterminated = || {
        Problem::new(
            "import-syntax",
            start..text.len().min(start + 1),
            "the string is not closed",
            "close it with the quote it opens with",
        )
    };
    loop {
        let Some(ch) = text[i..].chars().next() else {
            return Err(unterminated());
        };
        if ch as u32 == u32::from(quote) {
            if !triple {
                return Ok((out, i + 1));
            }
            if bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote) {
                return Ok((out, i + 3));
            }
        }
        if ch == '\n' && !triple {
            return Err(unterminated());
        }
        if ch == '\\' && !raw {
            let next = text[i + 1..].chars().next().ok_or_else(unterminated)?;
            let (value, len) = match next {
                'n' => ('\n', 1),
                't' => ('\t', 1),
                'r' => ('\r', 1),
                '0' => ('\0', 1),
                '\\' => ('\\', 1),
                '\'' => ('\'', 1),
                '"' => ('"', 1),
                '\n' => {
                    i += 2;
                    continue;
                }
                'x' | 'u' | 'U' => {
                    let digits = match next {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex = text.get(i + 2..i + 2 + digits).unwrap_or("");
                    let value = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| {
                            Problem::new(
                                "import-syntax",
                                i..i + 2,
                                "a broken escape in a string",
                                "write \\xNN, \\uNNNN or the character itself",
                            )
                        })?;
                    (value, 1 + digits)
                }
                other => {
                    out.push('\\');
                    (other, other.len_utf8())
                }
            };
            out.push(value);
            i += 1 + len;
            continue;
        }
        out.push(ch);
        i += ch.len_utf8();
    }
}

// ---------------------------------------------------------------------------------
// Expressions and statements

#[derive(Debug, Clone)]
enum Expr {
    Name(String),
    Str {
        value: String,
        formatted: bool,
    },
    Int(i64),
    Float(f64),
    Constant(&'static str),
    Attr(Box<Node>, String),
    Call {
        func: Box<Node>,
        args: Vec<Node>,
        kwargs: Vec<(String, Node)>,
    },
    List(Vec<Node>),
    Dict(Vec<(Node, Node)>),
    Shift(Vec<Node>),
    Negative(Box<Node>),
}

#[derive(Debug, Clone)]
struct Node {
    expr: Expr,
    at: Range<usize>,
}

#[derive(Debug)]
enum Statement {
    Import,
    /// `with DAG(…) as <name>:` (the name is not needed).
    With {
        context: Node,
    },
    Assign {
        target: Node,
        value: Node,
    },
    Expr(Node),
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    at: usize,
    /// Statements outside the subset, skipped (the parse goes on).
    unsupported: Vec<Problem>,
    /// How deep the expression being read is nested.
    depth: usize,
}

/// Deeper than any DAG needs.
const MAX_NESTING: usize = 64;

impl Parser<'_> {
    /// The column (0-based, in bytes) of the line's first character at byte `at`.
    fn indent_at(&self, at: usize) -> usize {
        let line_start = self.text[..at].rfind('\n').map_or(0, |n| n + 1);
        self.text[line_start..]
            .bytes()
            .take_while(|b| *b == b' ' || *b == b'\t')
            .count()
    }

    /// Skips the statement starting at byte `start` and the lines indented deeper
    /// than it (its block).
    fn skip_block(&mut self, start: usize) {
        let indent = self.indent_at(start);
        loop {
            while !matches!(self.peek().tok, Tok::Newline | Tok::End) {
                self.next();
            }
            if self.peek().tok == Tok::End {
                return;
            }
            self.next();
            let next = self.peek().clone();
            if next.tok == Tok::End || self.indent_at(next.at.start) <= indent {
                return;
            }
        }
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        token
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(&self.peek().tok, Tok::Op(o) if *o == op)
    }

    fn expect_op(&mut self, op: &'static str) -> Result<Token, Problem> {
        if self.is_op(op) {
            Ok(self.next())
        } else {
            let t = self.peek();
            Err(Problem::new(
                "import-syntax",
                t.at.clone(),
                format!("expected `{op}` here"),
                UNDERSTOOD,
            ))
        }
    }

    fn statements(&mut self) -> Result<Vec<(Statement, Range<usize>)>, Problem> {
        let mut out = Vec::new();
        loop {
            let token = self.peek().clone();
            match &token.tok {
                Tok::End => return Ok(out),
                Tok::Newline => {
                    self.next();
                }
                Tok::Name(word) if word == "from" || word == "import" => {
                    while !matches!(self.peek().tok, Tok::Newline | Tok::End) {
                        self.next();
                    }
                    out.push((Statement::Import, token.at.clone()));
                }
                Tok::Name(word) if word == "with" => {
                    self.next();
                    let context = self.expression()?;
                    match self.next().tok {
                        Tok::Name(a) if a == "as" => {}
                        _ => {
                            return Err(Problem::new(
                                "import-syntax",
                                context.at.clone(),
                                "expected `with DAG(…) as dag:`",
                                UNDERSTOOD,
                            ));
                        }
                    }
                    if !matches!(self.next().tok, Tok::Name(_)) {
                        return Err(Problem::new(
                            "import-syntax",
                            context.at.clone(),
                            "expected a name after `as`",
                            UNDERSTOOD,
                        ));
                    }
                    self.expect_op(":")?;
                    out.push((Statement::With { context }, token.at.clone()));
                }
                Tok::Name(word)
                    if matches!(
                        word.as_str(),
                        "def"
                            | "class"
                            | "if"
                            | "for"
                            | "while"
                            | "try"
                            | "return"
                            | "lambda"
                            | "async"
                            | "global"
                            | "del"
                            | "assert"
                            | "raise"
                            | "elif"
                            | "else"
                            | "except"
                            | "finally"
                    ) =>
                {
                    // Said, then skipped with its indented block, so the rest of the file
                    // is still read and every problem is reported at once.
                    self.unsupported.push(Problem::new(
                        "import-unsupported",
                        token.at.clone(),
                        format!("`{word}` is outside the DAGs tapir imports"),
                        UNDERSTOOD,
                    ));
                    self.skip_block(token.at.start);
                }
                _ => {
                    let first = self.expression()?;
                    if self.is_op("=") {
                        self.next();
                        let value = self.expression()?;
                        let at = first.at.start..value.at.end;
                        out.push((
                            Statement::Assign {
                                target: first,
                                value,
                            },
                            at,
                        ));
                    } else {
                        let at = first.at.clone();
                        out.push((Statement::Expr(first), at));
                    }
                    match self.peek().tok {
                        Tok::Newline | Tok::End => {}
                        _ => {
                            let t = self.peek();
                            return Err(Problem::new(
                                "import-syntax",
                                t.at.clone(),
                                "unexpected text after the statement",
                                UNDERSTOOD,
                            ));
                        }
                    }
                }
            }
        }
    }

    /// `a >> b >> c`, or one primary.
    fn expression(&mut self) -> Result<Node, Problem> {
        // Nesting is bounded, so a hostile file cannot exhaust the stack.
        if self.depth >= MAX_NESTING {
            let t = self.peek();
            return Err(Problem::new(
                "import-syntax",
                t.at.clone(),
                format!("expressions nested deeper than {MAX_NESTING} levels"),
                UNDERSTOOD,
            ));
        }
        self.depth += 1;
        let node = self.shift_expression();
        self.depth -= 1;
        node
    }

    fn shift_expression(&mut self) -> Result<Node, Problem> {
        let first = self.unary()?;
        if !self.is_op(">>") {
            return Ok(first);
        }
        let start = first.at.start;
        let mut items = vec![first];
        while self.is_op(">>") {
            self.next();
            items.push(self.unary()?);
        }
        let end = items.last().map_or(start, |n| n.at.end);
        Ok(Node {
            expr: Expr::Shift(items),
            at: start..end,
        })
    }

    fn unary(&mut self) -> Result<Node, Problem> {
        if self.is_op("-") {
            let minus = self.next();
            let inner = self.primary()?;
            let at = minus.at.start..inner.at.end;
            return Ok(Node {
                expr: Expr::Negative(Box::new(inner)),
                at,
            });
        }
        self.primary()
    }

    /// How many attribute and call links `node` is made of.
    fn links(&self, node: &Node) -> usize {
        let mut count = 0;
        let mut at = node;
        loop {
            match &at.expr {
                Expr::Attr(base, _) => at = base,
                Expr::Call { func, .. } => at = func,
                _ => return count,
            }
            count += 1;
        }
    }

    fn primary(&mut self) -> Result<Node, Problem> {
        let mut node = self.atom()?;
        // `a.b(…).c…`: each link nests the node once more (bounded as expressions are).
        loop {
            if self.depth + self.links(&node) >= MAX_NESTING * 2 {
                return Err(Problem::new(
                    "import-syntax",
                    node.at.clone(),
                    format!("a chain of more than {MAX_NESTING} attributes or calls"),
                    UNDERSTOOD,
                ));
            }
            if self.is_op(".") {
                self.next();
                let name = match self.next() {
                    Token {
                        tok: Tok::Name(n),
                        at,
                    } => (n, at),
                    t => {
                        return Err(Problem::new(
                            "import-syntax",
                            t.at,
                            "expected a name after `.`",
                            UNDERSTOOD,
                        ));
                    }
                };
                let at = node.at.start..name.1.end;
                node = Node {
                    expr: Expr::Attr(Box::new(node), name.0),
                    at,
                };
            } else if self.is_op("(") {
                self.next();
                let mut args = Vec::new();
                let mut kwargs = Vec::new();
                while !self.is_op(")") {
                    let is_keyword = matches!(self.peek().tok, Tok::Name(_))
                        && matches!(
                            self.tokens.get(self.at + 1).map(|t| &t.tok),
                            Some(Tok::Op("="))
                        );
                    if is_keyword {
                        let Tok::Name(key) = self.next().tok else {
                            unreachable!("checked above")
                        };
                        self.next();
                        kwargs.push((key, self.expression()?));
                    } else if self.is_op("*") {
                        let t = self.peek();
                        return Err(Problem::new(
                            "import-unsupported",
                            t.at.clone(),
                            "`*args` and `**kwargs` are outside the DAGs tapir imports",
                            UNDERSTOOD,
                        ));
                    } else {
                        args.push(self.expression()?);
                    }
                    if !self.is_op(")") {
                        self.expect_op(",")?;
                    }
                }
                let close = self.next();
                let at = node.at.start..close.at.end;
                node = Node {
                    expr: Expr::Call {
                        func: Box::new(node),
                        args,
                        kwargs,
                    },
                    at,
                };
            } else {
                return Ok(node);
            }
        }
    }

    fn atom(&mut self) -> Result<Node, Problem> {
        let token = self.next();
        let at = token.at.clone();
        let expr = match token.tok {
            Tok::Name(n) => match n.as_str() {
                "True" => Expr::Constant("True"),
                "False" => Expr::Constant("False"),
                "None" => Expr::Constant("None"),
                _ => Expr::Name(n),
            },
            Tok::Str {
                mut value,
                formatted,
            } => {
                // Adjacent literals concatenate.
                let mut end = at.end;
                while let Tok::Str {
                    value: more,
                    formatted: f,
                } = &self.peek().tok
                {
                    if *f != formatted {
                        break;
                    }
                    value.push_str(more);
                    end = self.next().at.end;
                }
                return Ok(Node {
                    expr: Expr::Str { value, formatted },
                    at: at.start..end,
                });
            }
            Tok::Int(n) => Expr::Int(n),
            Tok::Float(f) => Expr::Float(f),
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.expression()?);
                    if !self.is_op("]") {
                        self.expect_op(",")?;
                    }
                }
                let close = self.next();
                return Ok(Node {
                    expr: Expr::List(items),
                    at: at.start..close.at.end,
                });
            }
            Tok::Op("{") => {
                let mut items = Vec::new();
                while !self.is_op("}") {
                    let key = self.expression()?;
                    self.expect_op(":")?;
                    let value = self.expression()?;
                    items.push((key, value));
                    if !self.is_op("}") {
                        self.expect_op(",")?;
                    }
                }
                let close = self.next();
                return Ok(Node {
                    expr: Expr::Dict(items),
                    at: at.start..close.at.end,
                });
            }
            Tok::Op("(") => {
                let inner = self.expression()?;
                if self.is_op(",") {
                    return Err(Problem::new(
                        "import-unsupported",
                        self.peek().at.clone(),
                        "tuples are outside the DAGs tapir imports",
                        "use a list `[…]`",
                    ));
                }
                let close = self.expect_op(")")?;
                return Ok(Node {
                    expr: inner.expr,
                    at: at.start..close.at.end,
                });
            }
            Tok::Newline | Tok::End => {
                return Err(Problem::new(
                    "import-syntax",
                    at,
                    "the statement ends too early",
                    UNDERSTOOD,
                ));
            }
            Tok::Op(op) => {
                return Err(Problem::new(
                    "import-syntax",
                    at,
                    format!("unexpected `{op}`"),
                    UNDERSTOOD,
                ));
            }
        };
        Ok(Node { expr, at })
    }
}

// ---------------------------------------------------------------------------------
// Meaning

#[derive(Debug, Default)]
struct Defaults {
    retries: Option<u32>,
    execution_timeout: Option<u64>,
}

#[derive(Debug)]
struct ImportedTask {
    variable: String,
    id: String,
    description: Option<String>,
    image: String,
    template: String,
    env: Vec<(String, String)>,
    command: Option<Vec<String>>,
    resources: Option<Value>,
    config: Map<String, Value>,
    mappings: Vec<(String, String, String, Range<usize>)>,
    retries: Option<u32>,
    exponential: bool,
    retry_delay: u64,
    execution_timeout: Option<u64>,
    all_done: bool,
}

#[derive(Debug)]
struct ImportedGate {
    variable: String,
}

struct Reader<'o> {
    options: &'o ImportOptions,
    name: Option<String>,
    description: Option<String>,
    defaults: Defaults,
    tasks: Vec<ImportedTask>,
    gates: Vec<ImportedGate>,
    /// (upstream variable, downstream variable, where).
    edges: Vec<(String, String, Range<usize>)>,
    errors: Vec<Problem>,
    warnings: Vec<Problem>,
}

fn callee(node: &Node) -> Option<String> {
    match &node.expr {
        Expr::Name(n) => Some(n.clone()),
        Expr::Attr(base, name) => callee(base).map(|b| format!("{b}.{name}")),
        _ => None,
    }
}

impl Reader<'_> {
    fn fail(
        &mut self,
        code: &'static str,
        at: &Range<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.errors
            .push(Problem::new(code, at.clone(), message, fix));
    }

    fn statement(&mut self, (statement, at): &(Statement, Range<usize>)) {
        match statement {
            Statement::Import => {}
            Statement::With { context } => self.dag(context),
            Statement::Assign { target, value } => self.assign(target, value, at),
            Statement::Expr(node) => match &node.expr {
                Expr::Shift(items) => self.chain(items),
                _ => self.fail("import-unsupported", &node.at, "a statement that is neither a task, an assignment tapir knows, nor a `>>` chain", UNDERSTOOD),
            },
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.expr {
            Expr::Str {
                value,
                formatted: false,
            } => Some(value.clone()),
            Expr::Str {
                value,
                formatted: true,
            } => self.format(value, node, what),
            _ => {
                self.fail(
                    "import-value",
                    &node.at,
                    format!("{what} must be a string literal"),
                    "write the value itself here",
                );
                None
            }
        }
    }

    /// An f-string whose only fields are the platform's DEFAULT_REGISTRY and
    /// KAAPANA_BUILD_VERSION.
    fn format(&mut self, text: &str, node: &Node, what: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push(tail.as_bytes()[0] as char);
                rest = &tail[2..];
                continue;
            }
            let Some(close) = tail.find('}').filter(|_| tail.starts_with('{')) else {
                self.fail(
                    "import-value",
                    &node.at,
                    format!("{what}: a lone `}}` in an f-string"),
                    "write `}}` for a brace",
                );
                return None;
            };
            match tail[1..close].trim() {
                "DEFAULT_REGISTRY" => out.push_str(&self.options.registry),
                "KAAPANA_BUILD_VERSION" => out.push_str(&self.options.build_version),
                field => {
                    self.fail(
                        "import-value",
                        &node.at,
                        format!("{what}: the f-string field `{{{field}}}` is not DEFAULT_REGISTRY or KAAPANA_BUILD_VERSION"),
                        "write the value itself",
                    );
                    return None;
                }
            }
            rest = &tail[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn integer(&mut self, node: &Node, what: &str) -> Option<i64> {
        match &node.expr {
            Expr::Int(n) => Some(*n),
            Expr::Negative(inner) => match inner.expr {
                Expr::Int(n) => Some(-n),
                _ => {
                    self.fail(
                        "import-value",
                        &node.at,
                        format!("{what} must be a whole number"),
                        "write a number",
                    );
                    None
                }
            },
            _ => {
                self.fail(
                    "import-value",
                    &node.at,
                    format!("{what} must be a whole number"),
                    "write a number",
                );
                None
            }
        }
    }

    /// `timedelta(seconds=…, minutes=…, hours=…, days=…)` in whole seconds.
    fn duration(&mut self, node: &Node, what: &str) -> Option<u64> {
        let Expr::Call { func, args, kwargs } = &node.expr else {
            self.fail(
                "import-value",
                &node.at,
                format!("{what} must be `timedelta(…)`"),
                "write e.g. `timedelta(seconds=600)`",
            );
            return None;
        };
        if !matches!(
            callee(func).as_deref(),
            Some("timedelta" | "datetime.timedelta")
        ) || !args.is_empty()
        {
            self.fail(
                "import-value",
                &node.at,
                format!("{what} must be `timedelta(…)` with keyword arguments"),
                "write e.g. `timedelta(seconds=600)`",
            );
            return None;
        }
        let mut seconds = 0f64;
        for (key, value) in kwargs {
            let unit = match key.as_str() {
                "seconds" => 1.0,
                "minutes" => 60.0,
                "hours" => 3600.0,
                "days" => 86400.0,
                "weeks" => 604_800.0,
                _ => {
                    self.fail(
                        "import-value",
                        &value.at,
                        format!("timedelta unit `{key}` is not one tapir reads"),
                        "use seconds, minutes, hours, days or weeks",
                    );
                    return None;
                }
            };
            let amount = match value.expr {
                Expr::Int(n) => n as f64,
                Expr::Float(f) => f,
                _ => {
                    self.fail(
                        "import-value",
                        &value.at,
                        "a timedelta amount must be a number",
                        "write a number",
                    );
                    return None;
                }
            };
            seconds += amount * unit;
        }
        if seconds < 0.0 || seconds.fract() != 0.0 {
            self.fail(
                "import-value",
                &node.at,
                format!("{what} is not a whole, non-negative number of seconds"),
                "round it to whole seconds",
            );
            return None;
        }
        Some(seconds as u64)
    }

    fn string_dict(&mut self, node: &Node, what: &str) -> Option<Map<String, Value>> {
        let Expr::Dict(items) = &node.expr else {
            self.fail(
                "import-value",
                &node.at,
                format!("{what} must be a dict literal"),
                "write `{\"key\": \"value\"}`",
            );
            return None;
        };
        let mut out = Map::new();
        for (key, value) in items {
            let key = self.string(key, what)?;
            let value = self.string(value, what)?;
            out.insert(key, value.into());
        }
        Some(out)
    }

    fn dag(&mut self, context: &Node) {
        let Expr::Call { func, args, kwargs } = &context.expr else {
            self.fail(
                "import-unsupported",
                &context.at,
                "`with` must open `DAG(…)`",
                UNDERSTOOD,
            );
            return;
        };
        if callee(func).as_deref() != Some("DAG") {
            self.fail(
                "import-unsupported",
                &context.at,
                "`with` must open `DAG(…)`",
                UNDERSTOOD,
            );
            return;
        }
        let id = match (args.first(), kwargs.iter().find(|(k, _)| k == "dag_id")) {
            (Some(node), _) | (None, Some((_, node))) => self.string(node, "the dag id"),
            (None, None) => {
                self.fail(
                    "import-value",
                    &context.at,
                    "the DAG has no id",
                    "give `DAG(\"name\", …)`",
                );
                None
            }
        };
        self.name = id.map(|id| {
            if id.contains("{{") {
                self.options.fallback_name.clone()
            } else {
                id
            }
        });
        for (key, value) in kwargs {
            match key.as_str() {
                "description" => self.description = self.string(value, "the DAG description"),
                // What a DAG run looks like on Airflow, not what the tasks do.
                "default_args" | "schedule" | "schedule_interval" | "tags" | "dag_id"
                | "catchup" | "start_date" | "max_active_runs" | "concurrency"
                | "max_active_tasks" => {}
                other => self.warnings.push(Problem::new(
                    "import-ignored",
                    value.at.clone(),
                    format!("DAG argument `{other}` has no pipeline equivalent and is left out"),
                    "",
                )),
            }
        }
    }

    fn assign(&mut self, target: &Node, value: &Node, at: &Range<usize>) {
        match (&target.expr, &value.expr) {
            (Expr::Name(variable), Expr::Call { func, .. }) => match callee(func).as_deref() {
                Some("KaapanaTaskOperator") => self.task(variable, value),
                Some("EmptyOperator") => self.gate(variable, value),
                _ => self.fail("import-unsupported", &value.at, format!("`{variable} = …` calls something other than KaapanaTaskOperator or EmptyOperator"), UNDERSTOOD),
            },
            (Expr::Name(variable), Expr::Dict(items)) => {
                for (key, item) in items {
                    let Some(key) = self.string(key, "a default_args key") else { continue };
                    match key.as_str() {
                        "retries" => self.defaults.retries = self.integer(item, "retries").and_then(|n| u32::try_from(n).ok()),
                        "execution_timeout" => self.defaults.execution_timeout = self.duration(item, "execution_timeout"),
                        "retry_delay" => self.warnings.push(Problem::new("import-ignored", item.at.clone(), "default_args `retry_delay` is ignored by KaapanaTaskOperator (it fixes 10 s)", "")),
                        _ => {}
                    }
                }
                let _ = variable;
            }
            (Expr::Attr(base, field), _) if field == "retry_delay" => {
                let Expr::Name(variable) = &base.expr else {
                    self.fail("import-unsupported", at, "`….retry_delay = …` on something other than a task", UNDERSTOOD);
                    return;
                };
                let Some(seconds) = self.duration(value, "retry_delay") else { return };
                match self.tasks.iter_mut().find(|t| t.variable == *variable) {
                    Some(task) => task.retry_delay = seconds,
                    None => self.fail("import-unknown-task", &base.at, format!("`{variable}` is not a task defined above"), "define the task before setting its retry_delay"),
                }
            }
            _ => self.fail("import-unsupported", at, "an assignment tapir does not know", UNDERSTOOD),
        }
    }

    fn task(&mut self, variable: &str, call: &Node) {
        let Expr::Call { args, kwargs, .. } = &call.expr else {
            return;
        };
        if let Some(arg) = args.first() {
            self.fail(
                "import-unsupported",
                &arg.at,
                "KaapanaTaskOperator takes keyword arguments only",
                "write `task_id=…`, `image=…`, …",
            );
            return;
        }
        let mut task = ImportedTask {
            variable: variable.to_string(),
            id: String::new(),
            description: None,
            image: String::new(),
            template: String::new(),
            env: Vec::new(),
            command: None,
            resources: None,
            config: Map::new(),
            mappings: Vec::new(),
            retries: None,
            exponential: false,
            retry_delay: OPERATOR_RETRY_DELAY,
            execution_timeout: None,
            all_done: false,
        };
        for (key, value) in kwargs {
            match key.as_str() {
                "task_id" => task.id = self.string(value, "task_id").unwrap_or_default(),
                "image" => task.image = self.string(value, "image").unwrap_or_default(),
                "taskTemplate" => task.template = self.string(value, "taskTemplate").unwrap_or_default(),
                "doc_md" => task.description = self.string(value, "doc_md"),
                "env" => task.env = self.env(value),
                "command" => task.command = self.string_list(value, "command"),
                "resources" => task.resources = self.resources(value),
                "iochannel_maps" => task.mappings = self.mappings(value),
                "labels" | "annotations" => {
                    if let Some(map) = self.string_dict(value, key) {
                        task.config.insert(key.clone(), Value::Object(map));
                    }
                }
                "registryUrl" | "registryUsername" => {
                    if let Some(s) = self.string(value, key) {
                        task.config.insert(key.clone(), s.into());
                    }
                }
                "retries" => task.retries = self.integer(value, "retries").and_then(|n| u32::try_from(n).ok()),
                "retry_exponential_backoff" => task.exponential = matches!(value.expr, Expr::Constant("True")),
                "execution_timeout" => task.execution_timeout = self.duration(value, "execution_timeout"),
                "trigger_rule" => match self.string(value, "trigger_rule").as_deref() {
                    Some("all_done") => task.all_done = true,
                    Some("all_success") | None => {}
                    Some(other) => self.fail("import-unsupported", &value.at, format!("trigger_rule `{other}` has no pipeline equivalent"), "tapir knows `all_success` (depends_on) and `all_done` (depends_on with can_fail)"),
                },
                "registryPassword" => self.fail("import-value", &value.at, "a registry password in a DAG is a literal secret; tapir does not copy it into a pipeline", "remove it and pull with the engine's own login"),
                other => self.fail("import-unsupported", &value.at, format!("KaapanaTaskOperator argument `{other}` has no pipeline equivalent"), UNDERSTOOD),
            }
        }
        for (key, what) in [
            (&task.id, "task_id"),
            (&task.image, "image"),
            (&task.template, "taskTemplate"),
        ] {
            if key.is_empty()
                && !self
                    .errors
                    .iter()
                    .any(|e| e.at.start >= call.at.start && e.at.end <= call.at.end)
            {
                self.fail(
                    "import-value",
                    &call.at,
                    format!("the task has no `{what}`"),
                    format!("give `{what}=\"…\"`"),
                );
            }
        }
        if self.tasks.iter().any(|t| t.variable == variable) {
            self.fail(
                "import-unsupported",
                &call.at,
                format!("`{variable}` is assigned twice"),
                "give every task its own variable",
            );
        }
        self.tasks.push(task);
    }

    fn gate(&mut self, variable: &str, call: &Node) {
        let Expr::Call { kwargs, .. } = &call.expr else {
            return;
        };
        let rule = kwargs.iter().find(|(k, _)| k == "trigger_rule");
        let all_done = match rule {
            Some((_, value)) => self.string(value, "trigger_rule").as_deref() == Some("all_done"),
            None => false,
        };
        if !all_done {
            self.fail(
                "import-unsupported",
                &call.at,
                "an EmptyOperator is read only as a gate with `trigger_rule=\"all_done\"`",
                UNDERSTOOD,
            );
            return;
        }
        self.gates.push(ImportedGate {
            variable: variable.to_string(),
        });
    }

    fn env(&mut self, node: &Node) -> Vec<(String, String)> {
        let Expr::List(items) = &node.expr else {
            self.fail(
                "import-value",
                &node.at,
                "env must be a list of `pc_models.BaseEnv(name=…, value=…)`",
                "write the list itself",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Expr::Call { func, kwargs, args } = &item.expr else {
                self.fail(
                    "import-value",
                    &item.at,
                    "an env entry must be `pc_models.BaseEnv(name=…, value=…)`",
                    "write it so",
                );
                continue;
            };
            if !matches!(
                callee(func).as_deref(),
                Some("pc_models.BaseEnv" | "BaseEnv")
            ) || !args.is_empty()
            {
                self.fail(
                    "import-value",
                    &item.at,
                    "an env entry must be `pc_models.BaseEnv(name=…, value=…)`",
                    "write it so",
                );
                continue;
            }
            let name = kwargs
                .iter()
                .find(|(k, _)| k == "name")
                .and_then(|(_, v)| self.string(v, "an env name"));
            let value = kwargs
                .iter()
                .find(|(k, _)| k == "value")
                .and_then(|(_, v)| self.string(v, "an env value"));
            match (name, value) {
                (Some(name), Some(value)) => {
                    out.retain(|(n, _): &(String, String)| *n != name);
                    out.push((name, value));
                }
                _ => self.fail(
                    "import-value",
                    &item.at,
                    "an env entry needs `name` and `value` strings",
                    "write both",
                ),
            }
        }
        out
    }

    fn string_list(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        let Expr::List(items) = &node.expr else {
            self.fail(
                "import-value",
                &node.at,
                format!("{what} must be a list of strings"),
                "write the list itself",
            );
            return None;
        };
        items.iter().map(|i| self.string(i, what)).collect()
    }

    fn resources(&mut self, node: &Node) -> Option<Value> {
        let Expr::Call { func, kwargs, .. } = &node.expr else {
            self.fail(
                "import-value",
                &node.at,
                "resources must be `pc_models.Resources(limits=…, requests=…)`",
                "write it so",
            );
            return None;
        };
        if !matches!(
            callee(func).as_deref(),
            Some("pc_models.Resources" | "Resources")
        ) {
            self.fail(
                "import-value",
                &node.at,
                "resources must be `pc_models.Resources(limits=…, requests=…)`",
                "write it so",
            );
            return None;
        }
        let mut out = Map::new();
        for (key, value) in kwargs {
            if key != "limits" && key != "requests" {
                self.fail(
                    "import-value",
                    &value.at,
                    format!("resources `{key}` is not limits or requests"),
                    "use limits and requests",
                );
                continue;
            }
            if let Some(map) = self.string_dict(value, key) {
                out.insert(key.clone(), Value::Object(map));
            }
        }
        Some(Value::Object(out))
    }

    fn mappings(&mut self, node: &Node) -> Vec<(String, String, String, Range<usize>)> {
        let Expr::List(items) = &node.expr else {
            self.fail(
                "import-value",
                &node.at,
                "iochannel_maps must be a list of `IOMapping(…)`",
                "write the list itself",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Expr::Call { func, kwargs, .. } = &item.expr else {
                self.fail(
                    "import-value",
                    &item.at,
                    "an iochannel_maps entry must be `IOMapping(…)`",
                    "write it so",
                );
                continue;
            };
            if callee(func).as_deref() != Some("IOMapping") {
                self.fail(
                    "import-value",
                    &item.at,
                    "an iochannel_maps entry must be `IOMapping(…)`",
                    "write it so",
                );
                continue;
            }
            let get = |key: &str| {
                kwargs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone())
            };
            let upstream = match get("upstream_operator").map(|n| n.expr) {
                Some(Expr::Name(n)) => Some(n),
                _ => None,
            };
            let output = get("upstream_output_channel")
                .and_then(|n| self.string(&n, "upstream_output_channel"));
            let input = get("input_channel").and_then(|n| self.string(&n, "input_channel"));
            match (upstream, output, input) {
                (Some(u), Some(o), Some(i)) => out.push((u, o, i, item.at.clone())),
                _ => self.fail("import-value", &item.at, "an IOMapping needs upstream_operator (a task variable), upstream_output_channel and input_channel", "write all three"),
            }
        }
        out
    }

    /// `a >> b >> [c, d]`: an edge from every item to every item of the next.
    fn chain(&mut self, items: &[Node]) {
        let mut groups: Vec<Vec<(String, Range<usize>)>> = Vec::new();
        for item in items {
            let names = match &item.expr {
                Expr::Name(n) => vec![(n.clone(), item.at.clone())],
                Expr::List(list) => list
                    .iter()
                    .filter_map(|n| match &n.expr {
                        Expr::Name(name) => Some((name.clone(), n.at.clone())),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if names.is_empty() {
                self.fail(
                    "import-unsupported",
                    &item.at,
                    "a `>>` chain links task variables (or lists of them)",
                    UNDERSTOOD,
                );
                return;
            }
            for (name, at) in &names {
                if !self.tasks.iter().any(|t| t.variable == *name)
                    && !self.gates.iter().any(|g| g.variable == *name)
                {
                    self.fail(
                        "import-unknown-task",
                        at,
                        format!("`{name}` is not a task defined above"),
                        "define every task before the `>>` lines",
                    );
                    return;
                }
            }
            groups.push(names);
        }
        for pair in groups.windows(2) {
            for (up, at) in &pair[0] {
                for (down, _) in &pair[1] {
                    self.edges.push((up.clone(), down.clone(), at.clone()));
                }
            }
        }
    }

    fn id_of(&self, variable: &str) -> Option<&str> {
        self.tasks
            .iter()
            .find(|t| t.variable == variable)
            .map(|t| t.id.as_str())
    }

    fn is_gate(&self, variable: &str) -> bool {
        self.gates.iter().any(|g| g.variable == variable)
    }

    /// The pipeline: edges through a gate and into an `all_done` task are `can_fail`; an
    /// edge an IOMapping already implies is not repeated as `depends_on`.
    fn pipeline(&mut self) -> Value {
        let mut tasks_json = Vec::new();
        // (downstream id) → [(upstream id, can_fail)]
        let mut upstream: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
        for (up, down, _) in &self.edges {
            if self.is_gate(down) {
                continue;
            }
            let Some(down_id) = self.id_of(down).map(str::to_string) else {
                continue;
            };
            let entry = upstream.entry(down_id).or_default();
            if self.is_gate(up) {
                for (x, g, _) in &self.edges {
                    if g == up
                        && let Some(id) = self.id_of(x)
                    {
                        entry.push((id.to_string(), true));
                    }
                }
            } else if let Some(id) = self.id_of(up) {
                entry.push((id.to_string(), false));
            }
        }
        let mut warnings = Vec::new();
        for task in &self.tasks {
            let ups = upstream.get(&task.id).cloned().unwrap_or_default();
            let mut depends_on: Vec<Value> = Vec::new();
            for (id, gated) in &ups {
                let can_fail = *gated || task.all_done;
                let mapped = task
                    .mappings
                    .iter()
                    .any(|(u, ..)| self.id_of(u) == Some(id.as_str()));
                if depends_on.iter().any(|d| d["id"] == json!(id)) {
                    continue;
                }
                if can_fail {
                    depends_on.push(json!({"id": id, "can_fail": true}));
                } else if !mapped {
                    depends_on.push(json!({"id": id}));
                }
            }
            let mut maps = Vec::new();
            for (up, output, input, at) in &task.mappings {
                let Some(up_id) = self.id_of(up) else {
                    self.errors.push(Problem::new(
                        "import-unknown-task",
                        at.clone(),
                        format!("IOMapping's upstream `{up}` is not a task defined above"),
                        "define the upstream task first",
                    ));
                    continue;
                };
                if !ups.iter().any(|(id, _)| id == up_id) {
                    warnings.push(Problem::new(
                        "import-mapping-edge",
                        at.clone(),
                        format!("task `{}` reads from `{up_id}` without `{up} >> {}`: on Kaapana it may start before its input exists; tapir runs it after `{up_id}`", task.id, task.variable),
                        "",
                    ));
                }
                maps.push(json!({"upstream_task": up_id, "upstream_output_channel": output, "input_channel": input}));
            }
            let mut inline = Map::new();
            inline.insert("name".into(), task.id.clone().into());
            inline.insert("image".into(), task.image.clone().into());
            inline.insert("taskTemplate".into(), task.template.clone().into());
            // In the task, in the DAG's order (a pipeline's `env` is sorted by name).
            if !task.env.is_empty() {
                let env: Vec<Value> = task
                    .env
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect();
                inline.insert("env".into(), Value::Array(env));
            }
            if let Some(command) = &task.command {
                inline.insert("command".into(), json!(command));
            }
            if let Some(resources) = &task.resources {
                inline.insert("resources".into(), resources.clone());
            }
            if !task.config.is_empty() {
                let mut config = task.config.clone();
                if config.keys().any(|k| k != "labels") {
                    config.insert("type".into(), "k8s".into());
                }
                inline.insert("config".into(), Value::Object(config));
            }
            let mut entry = Map::new();
            entry.insert("id".into(), task.id.clone().into());
            if let Some(d) = &task.description {
                entry.insert("description".into(), d.clone().into());
            }
            entry.insert("task".into(), Value::Object(inline));
            if !depends_on.is_empty() {
                entry.insert("depends_on".into(), Value::Array(depends_on));
            }
            if !maps.is_empty() {
                entry.insert("iochannel_maps".into(), Value::Array(maps));
            }
            let mut profile = Map::new();
            profile.insert(
                "max_retries".into(),
                task.retries.or(self.defaults.retries).unwrap_or(0).into(),
            );
            profile.insert(
                "retry_policy".into(),
                if task.exponential {
                    "exponential_backoff"
                } else {
                    "fixed"
                }
                .into(),
            );
            profile.insert("retry_backoff_seconds".into(), task.retry_delay.into());
            let limit = task
                .execution_timeout
                .or(self.defaults.execution_timeout)
                .unwrap_or(OPERATOR_EXEC_TIME);
            // The export's "no limit" comes back as no limit.
            if limit != super::kaapana::LONGEST_EXEC_TIME {
                profile.insert("max_exec_time".into(), limit.into());
            }
            entry.insert("execution_profile".into(), Value::Object(profile));
            tasks_json.push(Value::Object(entry));
        }
        self.warnings.extend(warnings);
        let mut pipeline = Map::new();
        pipeline.insert(
            "name".into(),
            self.name
                .clone()
                .unwrap_or_else(|| self.options.fallback_name.clone())
                .into(),
        );
        if let Some(d) = &self.description {
            pipeline.insert("description".into(), d.clone().into());
        }
        // Kaapana's operator behaviour when run locally: exit 126 = skipped, outputs
        // emptied before a retry.
        pipeline.insert("profile".into(), "kaapana".into());
        pipeline.insert("tasks".into(), Value::Array(tasks_json));
        Value::Object(pipeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ImportOptions {
        ImportOptions {
            registry: "registry.local".into(),
            build_version: "1.0".into(),
            fallback_name: "fallback".into(),
        }
    }

    fn read(text: &str) -> Result<Value, Vec<(String, usize, usize)>> {
        let source = Source::new("dag.py", text);
        import(&source, &options())
            .map(|(v, _)| v)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .map(|d| {
                        let p = d.position.expect("positioned");
                        (d.code.to_string(), p.line, p.column)
                    })
                    .collect()
            })
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let errors = read(&deep).unwrap_err();
        assert_eq!(errors[0].0, "import-syntax");
        assert!(read(&"(".repeat(100_000)).is_err());
        let chain = format!("x = a{}\n", ".b".repeat(100_000));
        assert_eq!(read(&chain).unwrap_err()[0].0, "import-syntax");
    }

    #[test]
    fn an_exported_dag_names_its_pipeline_in_its_header() {
        let header = "# Generated by tapir 0.1.0 (…) from p.json\n# (pipeline `my-flow`, sha256 ab). Re-export instead of editing.\nfrom x import y\n";
        assert_eq!(exported_name(header).as_deref(), Some("my-flow"));
        assert_eq!(
            exported_name("from x import y\n# (pipeline `late`, …)\n"),
            None
        );
        assert_eq!(exported_name("# (pipeline `a b`, sha256 ab)\n"), None);
    }

    #[test]
    fn a_gate_and_all_done_become_can_fail() {
        let dag = r#"
from airflow.models import DAG
with DAG("{{ dag_id }}") as dag:
    a = KaapanaTaskOperator(task_id="a", image=f"{DEFAULT_REGISTRY}/x:{KAAPANA_BUILD_VERSION}", taskTemplate="t")
    b = KaapanaTaskOperator(task_id="b", image="i", taskTemplate="t", trigger_rule="all_done")
    c = KaapanaTaskOperator(task_id="c", image="i", taskTemplate="t",
        iochannel_maps=[IOMapping(upstream_operator=b, upstream_output_channel="o", input_channel="i")])
    a__done = EmptyOperator(task_id="a__done", trigger_rule="all_done")
    a >> b
    a >> a__done >> c
    b >> c
"#;
        let p = read(dag).unwrap();
        assert_eq!(p["name"], "fallback");
        assert_eq!(p["tasks"][0]["task"]["image"], "registry.local/x:1.0");
        assert_eq!(
            p["tasks"][1]["depends_on"],
            json!([{"id": "a", "can_fail": true}])
        );
        assert_eq!(
            p["tasks"][2]["depends_on"],
            json!([{"id": "a", "can_fail": true}])
        );
        assert_eq!(p["tasks"][2]["iochannel_maps"][0]["upstream_task"], "b");
        assert_eq!(p["tasks"][0]["execution_profile"]["max_exec_time"], 5400);
    }

    #[test]
    fn what_it_does_not_understand_is_an_error_at_its_place() {
        let errors = read("with DAG(\"x\") as dag:\n    a = KaapanaTaskOperator(task_id=\"a\", image=\"i\", taskTemplate=\"t\", pool=\"p\")\n").unwrap_err();
        assert_eq!(errors, [("import-unsupported".to_string(), 2, 76)]);
        let errors = read("def f():\n    pass\n").unwrap_err();
        assert_eq!(errors, [("import-unsupported".to_string(), 1, 1)]);
        let errors = read(
            "a = KaapanaTaskOperator(task_id=\"a\", image=\"i\", taskTemplate=\"t\")\na >> b\n",
        )
        .unwrap_err();
        assert_eq!(errors, [("import-unknown-task".to_string(), 2, 6)]);
        let errors = read("x = \"open\n").unwrap_err();
        assert_eq!(errors[0].0, "import-syntax");
    }
}
