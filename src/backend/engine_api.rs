//! A minimal HTTP/1.1 client for the Docker Engine API over its unix socket.
//!
//! Why not the `docker` CLI for queries: each CLI call costs ~10 ms (Go start-up, config
//! loading), against ~1 ms for the same request on the socket. A run makes three queries
//! (image, container state, removal); through the CLI they alone would cost more than the
//! 5 % overhead tapir allows itself against a bare `docker run`. Only simple
//! request/response calls go through here; anything else uses the CLI.

use std::io::{self, BufRead, BufReader, Read, Write};
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

/// A response: status code and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
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
    let (socket, method, path) = (socket.to_path_buf(), method.to_string(), path.to_string());
    // `connect` has no timeout of its own (it blocks while the engine's backlog is full),
    // and each read's timeout restarts with every byte: the whole exchange runs on a
    // helper thread, waited for at most `limit`.
    match deadline::within(limit, move || exchange(&socket, &method, &path, limit)) {
        Some(Err(e)) if deadline::is_timeout(&e) => Err(timed_out()),
        Some(result) => result,
        None => Err(timed_out()),
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the engine did not answer in time")
}

fn exchange(socket: &Path, method: &str, path: &str, limit: Duration) -> io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    deadline::bound_stream(&stream, limit)?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            io::Error::other(format!("bad response from the engine: {status_line:?}"))
        })?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
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
    Ok(Response { status, body })
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
