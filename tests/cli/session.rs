//! `tapir session`: a small busybox `httpd` image, on the real engine, talked to on
//! 127.0.0.1 only.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{interrupt, leftover_containers, only_record, repo_root, tapir};

/// A base image: FROM scratch + static busybox (no registry needed), built once.
pub(crate) fn busybox_base() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    const TAG: &str = "tapir-test/busybox-base:latest";
    BUILT.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("tests/images/build-image.sh"))
            .args([TAG, "--no-pc"])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "build-image.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    TAG
}

/// Builds `tag` from a Dockerfile and extra files (name, content, executable).
pub(crate) fn build_image(tag: &str, dockerfile: &str, files: &[(&str, &str, bool)]) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, content, executable) in files {
        let path = ctx.path().join(name);
        std::fs::write(&path, content).unwrap();
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    docker_build(tag, ctx.path());
}

/// `docker build -t tag dir` (legacy builder where buildx is missing, as in
/// tests/images/build-image.sh).
pub(crate) fn docker_build(tag: &str, dir: &Path) {
    let buildx = Command::new("docker")
        .args(["buildx", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut build = Command::new("docker");
    if !buildx {
        build.env("DOCKER_BUILDKIT", "0");
    }
    let out = build
        .args(["build", "-q", "-t", tag])
        .arg(dir)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn httpd_dockerfile(extra: &str, cmd: &str) -> String {
    format!(
        "FROM {}\nRUN mkdir -p /www && echo '<h1>tapir session</h1>' > /www/index.html\n{extra}\nCMD {cmd}\n",
        busybox_base()
    )
}

/// An image whose CMD serves /www on port 5000.
fn httpd_image() -> &'static str {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    const TAG: &str = "tapir-test/session-httpd:latest";
    BUILT.get_or_init(|| {
        build_image(
            TAG,
            &httpd_dockerfile("", r#"["httpd", "-f", "-p", "5000", "-h", "/www"]"#),
            &[],
        )
    });
    TAG
}

/// stderr of a running `tapir session`, line by line, with a bounded wait.
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn of(child: &mut std::process::Child) -> Self {
        let stderr = child.stderr.take().expect("piped");
        let (send, receive) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(receive)
    }

    /// Lines until one contains `text` (that one last); panics after a minute.
    fn until(&self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.0.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {text:?}; saw: {seen:#?}"),
            }
        }
    }

    fn rest(&self) -> String {
        let mut out = String::new();
        while let Ok(line) = self.0.recv_timeout(Duration::from_secs(60)) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// The body of `GET url` (an http://127.0.0.1:PORT/… URL).
fn get(url: &str) -> String {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .expect("a loopback URL");
    let (port, path) = rest.split_once('/').expect("a path");
    let mut stream = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn ready_url(lines: &[String]) -> String {
    let line = lines.last().unwrap();
    let start = line.find("http://").expect("a URL");
    line[start..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_session_answers_on_loopback_and_ctrl_c_is_its_normal_end() {
    let image = httpd_image();
    let dir = tempfile::tempdir().unwrap();
    let mut child = tapir(dir.path(), ["session", image])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(&mut child);
    let url = ready_url(&lines.until("session ready at"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let answer = get(&url);
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    assert!(answer.contains("<h1>tapir session</h1>"), "{answer}");

    // Published on loopback only.
    let (_, record) = only_record(dir.path());
    let published: Vec<&str> = record["argv"]
        .as_array()
        .unwrap()
        .windows(2)
        .filter(|w| w[0] == "--publish")
        .map(|w| w[1].as_str().unwrap())
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    assert!(
        published[0].starts_with("127.0.0.1:") && published[0].ends_with(":5000/tcp"),
        "{published:?}"
    );

    interrupt(&child);
    let status = child.wait().unwrap();
    let rest = lines.rest();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains("session ended"), "{rest}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "cancelled");
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn a_session_that_never_answers_is_stopped_with_its_last_log_lines() {
    let tag = "tapir-test/session-silent:latest";
    build_image(
        tag,
        &format!(
            "FROM {}\nCMD [\"sh\", \"-c\", \"echo listening on nothing; sleep 300\"]\n",
            busybox_base()
        ),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::run(&mut tapir(
        dir.path(),
        ["session", tag, "--wait", "3", "--canfar"],
    ));
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing answered HTTP"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("listening on nothing"),
        "{}",
        out.stderr
    );
    // What CANFAR would need: the startup script and an answer on port 5000.
    assert!(
        out.stderr.contains("what CANFAR would need"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("no /skaha/startup.sh"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("on port 5000"), "{}", out.stderr);
    let (_, record) = only_record(dir.path());
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn a_session_that_exits_before_answering_says_so() {
    let tag = "tapir-test/session-crash:latest";
    build_image(
        tag,
        &format!(
            "FROM {}\nCMD [\"sh\", \"-c\", \"echo 'config missing' >&2; exit 3\"]\n",
            busybox_base()
        ),
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = crate::support::run(&mut tapir(dir.path(), ["session", tag, "--wait", "60"]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("ended before it answered on port 5000"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("config missing"), "{}", out.stderr);
}

#[test]
fn a_canfar_session_starts_with_the_startup_script_and_the_session_id() {
    let tag = "tapir-test/session-canfar:latest";
    let startup = "#!/bin/sh\necho \"startup for session $1\"\nexec httpd -f -p 5000 -h /www\n";
    build_image(
        tag,
        &httpd_dockerfile("COPY startup.sh /skaha/startup.sh", r#"["sh"]"#),
        &[("startup.sh", startup, true)],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = tapir(
        dir.path(),
        ["session", tag, "--canfar", "--session-id", "abc123"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let lines = Lines::of(&mut child);
    let seen = lines.until("session ready at");
    let url = ready_url(&seen);
    assert!(get(&url).contains("tapir session"));
    interrupt(&child);
    let status = child.wait().unwrap();
    let rest = lines.rest();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(rest.contains("nothing missing"), "{rest}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(stdout.contains("startup for session abc123"), "{stdout}");
}

#[test]
fn session_flags_that_cannot_work_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            vec!["session", "some/image", "--path", "health"],
            "not a URL path",
        ),
        (
            vec!["session", "some/image", "--canfar", "--port", "8080"],
            "--canfar listens on port 5000",
        ),
    ] {
        let out = crate::support::run(&mut tapir(dir.path(), &args));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{}", out.stderr);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_task_file_runs_as_a_session_on_its_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let task = serde_json::json!({
        "name": "ui task",
        "image": httpd_image(),
        "taskTemplate": {
            "identifier": "ui",
            "description": "serves /www",
            "inputs": [],
            "outputs": [],
            "env": [{"name": "UI_PORT", "value": "8000"}],
            "command": ["sh", "-c", "exec httpd -f -p \"$UI_PORT\" -h /www"]
        }
    });
    std::fs::write(dir.path().join("ui.json"), task.to_string()).unwrap();
    let mut child = tapir(
        dir.path(),
        [
            "session",
            "ui.json",
            "--port",
            "8000",
            "--path",
            "/index.html",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let lines = Lines::of(&mut child);
    let url = ready_url(&lines.until("session ready at"));
    assert!(url.ends_with("/index.html"), "{url}");
    assert!(get(&url).contains("tapir session"));
    interrupt(&child);
    let status = child.wait().unwrap();
    let rest = lines.rest();
    assert_eq!(status.code(), Some(0), "{rest}");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["task_name"], "ui task");
    assert!(
        record["task_file"]["path"]
            .as_str()
            .unwrap()
            .ends_with("ui.json")
    );
}
