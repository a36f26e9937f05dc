//! A minimal HTTP/1.1 client for the Docker Engine API over its unix socket.
//!
//! Why not the `docker` CLI for queries: each CLI call costs ~10 ms (Go start-up, config
//! loading), against ~1 ms for the same request on the socket. A run makes three queries
//! (image, container state, removal); through the CLI they alone would cost more than the
//! 5 % overhead tapir allows itself against a bare `docker run`. Only simple
//! request/response calls go through here; anything else uses the CLI.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::deadline;

/// The engine's socket when queries can go to it directly: `DOCKER_HOST` unset or
/// `unix://…`, no Docker context selected, and the socket present. Otherwise `None`,
/// and callers use the CLI, which knows contexts, ssh and tcp hosts.
pub(crate) fn local_socket() -> Option<PathBuf> {
    if std::env::var_os("DOCKER_CONTEXT").is_some_and(|c| c != "default") {
        return None;
    }
    let path = match std::env::var("DOCKER_HOST") {
        Ok(host) if host.is_empty() => PathBuf::from("/var/run/docker.sock"),
        Ok(host) => PathBuf::from(host.strip_prefix("unix://")?),
        Err(_) => {
            if context_selected_in_config() {
                return None;
            }
            PathBuf::from("/var/run/docker.sock")
        }
    };
    path.exists().then_some(path)
}

/// Does `~/.docker/config.json` (or `$DOCKER_CONFIG/config.json`) select a context?
fn context_selected_in_config() -> bool {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    let Some(text) = dir.and_then(|d| std::fs::read_to_string(d.join("config.json")).ok()) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("currentContext")
                .and_then(|c| c.as_str())
                .map(|c| c != "default")
        })
        .unwrap_or(false)
}

/// A response: status code, headers (names lower-cased) and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (give it lower-cased).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request: method, path (with query), extra headers and a body (JSON when not empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    /// Extra headers. They may hold credentials (`X-Registry-Auth`): never logged.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole response, within `limit` from connect to the
/// last byte; past it the error is `ErrorKind::TimedOut`.
pub(crate) fn request(
    socket: &Path,
    method: &str,
    path: &str,
    limit: Duration,
) -> io::Result<Response> {
    send(
        socket,
        Request {
            method: method.to_string(),
            path: path.to_string(),
            ..Request::default()
        },
        limit,
    )
}

/// [`request`] with headers and a body.
pub(crate) fn send(socket: &Path, request: Request, limit: Duration) -> io::Result<Response> {
    let socket = socket.to_path_buf();
    // `connect` has no timeout of its own (it blocks while the engine's backlog is full),
    // and each read's timeout restarts with every byte: the whole exchange runs on a
    // helper thread, waited for at most `limit`.
    match deadline::within(limit, move || exchange(&socket, &request, limit)) {
        Some(Err(e)) if deadline::is_timeout(&e) => Err(timed_out()),
        Some(result) => result,
        None => Err(timed_out()),
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the engine did not answer in time")
}

fn exchange(socket: &Path, request: &Request, limit: Duration) -> io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    deadline::bound_stream(&stream, limit)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method,
        request.path,
        request.body.len()
    );
    if !request.body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&request.body)?;
    stream.flush()?;
    read_response(BufReader::new(stream), request.method == "HEAD")
}

/// Reads a status line, headers and body (none for a HEAD request, whatever its
/// Content-Length says).
pub(crate) fn read_response(mut reader: impl BufRead, head_only: bool) -> io::Result<Response> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::other(format!("bad HTTP response: {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
        if name == "content-length" {
            length = value.parse::<usize>().ok();
        } else if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
        headers.push((name, value));
    }
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 {
        // No body, whatever the headers say.
    } else if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::other("bad chunk from the engine"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Percent-encodes a path segment or query value (image references hold `/` and `:`,
/// which the engine's router accepts; everything outside the safe set is encoded).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
