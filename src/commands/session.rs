//! `tapir session IMAGE|TASK.JSON`: an interactive image run like any task — run folder,
//! logs, record — with its UI port published on 127.0.0.1, a bounded wait for its first
//! HTTP answer, and Ctrl-C as its normal end (DESIGN.md decision 14, "A session is a
//! run").
//!
//! A session is `tapir run` with a published port: the run goes through
//! [`super::run::run`] unchanged (in this thread, which owns the signals), while a
//! watcher thread asks the port until it answers, prints the URL, or gives up and stops
//! the run the way Ctrl-C would.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser as _;

use crate::backend::Mode;
use crate::backend::docker::Docker;
use crate::cli::{Cli, ColorChoice, Command, SessionArgs, UserChoice};
use crate::error::{Error, ExitStatus, Result};
use crate::executor::request::RunRequest;
use crate::output::{self, Printer};
use crate::record::logs::{STDERR_FILE, STDOUT_FILE};
use crate::record::store;
use crate::resolve::run_options::{Protocol, PublishedPort};

/// Where CANFAR starts a contributed session (it is given the session id).
pub(crate) const CANFAR_STARTUP: &str = "/skaha/startup.sh";
/// The port CANFAR sends a contributed session's HTTP traffic to.
pub(crate) const CANFAR_PORT: u16 = 5000;
/// How many log lines of each stream a failed session shows.
const LOG_LINES_SHOWN: usize = 15;

/// What the watcher saw.
#[derive(Debug, Default)]
struct Watch {
    /// The HTTP status line of the first answer.
    answered: Option<String>,
    /// It never answered in time, and the watcher stopped the run.
    gave_up: bool,
}

pub(crate) fn run(args: &SessionArgs, color: ColorChoice) -> Result<ExitStatus> {
    let p = Printer::for_stderr(color);
    let run_id = store::new_run_id();
    let container_port = if args.canfar { CANFAR_PORT } else { args.port };
    if args.canfar && args.port != CANFAR_PORT {
        return Err(Error::Usage(format!(
            "--canfar listens on port {CANFAR_PORT}, as CANFAR does; --port {} contradicts it\n  fix: leave out --port",
            args.port
        )));
    }
    if !args.path.starts_with('/') {
        return Err(Error::Usage(format!(
            "--path {} is not a URL path\n  fix: start it with `/`, e.g. `--path /health`",
            args.path
        )));
    }
    let session_id = args.session_id.clone().unwrap_or_else(|| run_id.clone());
    let target = Target::read(&args.target);
    // A task file is checked by the run itself (with its findings shown in the file);
    // only an image, or a task's image for --canfar, is looked at here.
    let image = match &target {
        Target::Task(path) if args.canfar => task_image(path).ok(),
        Target::Task(_) => None,
        Target::Image(image) => Some(image.clone()),
    };
    let (info, has_startup) = match &image {
        Some(image) => {
            let docker = Docker::locate()?;
            let info = docker.image(image)?.ok_or_else(|| {
                Error::not_started(format!(
                    "the image {image} is not on this machine\n  fix: build it (`docker build -t {image} .`) or pull it"
                ))
            })?;
            let has_startup = args.canfar
                && docker
                    .read_file_from_image(image, CANFAR_STARTUP)?
                    .is_some();
            (Some(info), has_startup)
        }
        None => (None, false),
    };

    // The CANFAR findings known before the start; the port's answer adds the last one.
    let mut lacks = Vec::new();
    if let (true, Some(info)) = (args.canfar, &info) {
        if !has_startup {
            lacks.push(format!(
                "no {CANFAR_STARTUP}: CANFAR starts a contributed session as `{CANFAR_STARTUP} SESSION_ID`, so this image would not start there (add the script; it gets the session id as its first argument and must start the UI on port {CANFAR_PORT})"
            ));
        }
        if matches!(info.user.as_str(), "" | "0" | "root" | "0:0") && args.user == UserChoice::Image
        {
            lacks.push("the image runs as root, and you chose --user image: CANFAR runs sessions as the user's own uid, never root; try without --user image".into());
        }
    }

    let host_port = match args.host_port {
        Some(port) => port,
        None => free_loopback_port()?,
    };
    // For an IMAGE: a task file in a temporary folder, removed when `_generated` goes.
    let (task_file, _generated) = match &target {
        Target::Task(path) => (path.clone(), None),
        Target::Image(image) => {
            let command = (args.canfar && has_startup)
                .then(|| vec![CANFAR_STARTUP.to_string(), session_id.clone()]);
            let dir = generated_task(image, command)?;
            (dir.path().join("session.task.json"), Some(dir))
        }
    };

    let mut request = RunRequest::new(&task_file, &args.runs_dir, run_id.clone(), Mode::Docker);
    request.env = args.env.clone();
    request.user = args.user;
    request.engine = args.engine.options();
    request.engine.ports.insert(
        0,
        PublishedPort {
            address: None,
            host_port: Some(host_port),
            container_port,
            protocol: Protocol::Tcp,
        },
    );
    let run_args = match Cli::try_parse_from(
        std::iter::once(std::ffi::OsString::from("tapir")).chain(request.argv()),
    ) {
        Ok(Cli {
            command: Command::Run(run_args),
            ..
        }) => run_args,
        Ok(_) => {
            return Err(Error::Usage(
                "internal: the session's run did not parse as `run`".into(),
            ));
        }
        Err(e) => return Err(Error::Usage(format!("the session's run arguments: {e}"))),
    };
    let url = format!("http://127.0.0.1:{host_port}{}", args.path);
    let image = image.unwrap_or_else(|| args.target.clone());
    output::stderr(&format!(
        "tapir: starting a session of {image} (container port {container_port} → 127.0.0.1:{host_port}); waiting up to {}s for it to answer\n",
        args.wait_seconds
    ));

    let ended = Arc::new(AtomicBool::new(false));
    let watch = Arc::new(Mutex::new(Watch::default()));
    let watcher = {
        let (ended, watch) = (ended.clone(), watch.clone());
        let run_dir = request.run_dir();
        let wait = Duration::from_secs(args.wait_seconds);
        let (path, url) = (args.path.clone(), url.clone());
        let canfar = args.canfar.then(|| session_id.clone());
        std::thread::spawn(move || {
            watch_port(
                host_port, &path, wait, &ended, &watch, &run_dir, &url, canfar, p,
            )
        })
    };
    let status = super::run::run(&run_args, color);
    ended.store(true, Ordering::SeqCst);
    let _ = watcher.join();
    let status = status?;
    let watch = std::mem::take(&mut *watch.lock().unwrap_or_else(|e| e.into_inner()));
    let run_dir = request.run_dir();

    let outcome = match (&watch.answered, watch.gave_up, status) {
        // Ended by the user after it answered: a session's normal end.
        (Some(_), _, ExitStatus::Cancelled) => {
            output::stderr("tapir: session ended\n");
            ExitStatus::Success
        }
        (Some(_), _, status) => status,
        (None, true, _) => {
            if args.canfar {
                lacks.push(format!(
                    "nothing answered HTTP on port {container_port} within {}s: CANFAR sends the session's traffic there",
                    args.wait_seconds
                ));
            }
            ExitStatus::TimedOut
        }
        (None, false, ExitStatus::Cancelled) => ExitStatus::Cancelled,
        (None, false, ExitStatus::NotStarted) => ExitStatus::NotStarted,
        (None, false, status) => {
            output::stderr(&format!(
                "{} the session ended before it answered on port {container_port}\n{}",
                p.red("error:"),
                last_log_lines(&run_dir)
            ));
            if args.canfar {
                lacks.push(format!(
                    "it ended without answering on port {container_port}: a contributed session must keep serving HTTP there"
                ));
            }
            if status.is_success() {
                ExitStatus::Failed
            } else {
                status
            }
        }
    };
    if args.canfar {
        report_canfar(&lacks, p);
    }
    Ok(outcome)
}

/// What the user named: an existing file is a task, anything else an image reference.
enum Target {
    Task(PathBuf),
    Image(String),
}

impl Target {
    fn read(text: &str) -> Self {
        let path = Path::new(text);
        if path.is_file() {
            Target::Task(path.to_path_buf())
        } else {
            Target::Image(text.to_string())
        }
    }
}

/// The image a task file names (the full checks come with the run).
fn task_image(path: &Path) -> Result<String> {
    match crate::resolve::task_file::load(path) {
        Ok(loaded) => Ok(loaded.task.image),
        Err(crate::resolve::task_file::LoadError::Unreadable(e)) => Err(e),
        Err(crate::resolve::task_file::LoadError::Invalid(report)) => {
            Err(crate::resolve::task_file::report_error(
                &report,
                format!("{} is not a valid task", path.display()),
            ))
        }
    }
}

/// A task file for an image alone, in a private temporary folder: an inline template
/// without channels, whose command is `command` or the image's own CMD.
fn generated_task(image: &str, command: Option<Vec<String>>) -> Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("tapir-session-")
        .tempdir()
        .map_err(|e| Error::not_started(format!("cannot make a temporary folder: {e}")))?;
    let mut template = serde_json::json!({
        "identifier": "session",
        "description": "An interactive session (written by `tapir session`).",
        "inputs": [],
        "outputs": [],
        "env": [],
    });
    if let Some(command) = command {
        template["command"] = serde_json::json!(command);
    }
    let task = serde_json::json!({
        "name": "session",
        "image": image,
        "taskTemplate": template,
    });
    let path = dir.path().join("session.task.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&task).unwrap_or_default(),
    )
    .map_err(|e| Error::not_started(format!("cannot write {}: {e}", path.display())))?;
    Ok(dir)
}

/// A port on 127.0.0.1 nobody listens on now (the engine binds it a moment later).
fn free_loopback_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| Error::not_started(format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// Asks the port until it answers HTTP, the run ends, or `wait` has passed since the
/// container was handed to the engine (its run folder has a record; the preparation
/// before has deadlines of its own, and a stop sent then would end `run` without a
/// record of why); then it shows the last log lines and stops the run as Ctrl-C would.
#[allow(clippy::too_many_arguments)]
fn watch_port(
    port: u16,
    path: &str,
    wait: Duration,
    ended: &AtomicBool,
    watch: &Mutex<Watch>,
    run_dir: &Path,
    url: &str,
    canfar: Option<String>,
    p: Printer,
) {
    let mut deadline = None;
    while !ended.load(Ordering::SeqCst) {
        if let Some(status_line) = http_status_line(port, path) {
            output::stderr(&format!(
                "tapir: {} ({status_line}); Ctrl-C ends the session\n",
                p.green(&format!("session ready at {url}"))
            ));
            if let Some(id) = canfar {
                output::stderr(&format!(
                    "tapir: on CANFAR the browser would open …/sessions/contrib/{id} and the platform would send its requests to / in the container, port {CANFAR_PORT}\n"
                ));
            }
            lock(watch).answered = Some(status_line);
            return;
        }
        if deadline.is_none() && run_dir.join("record.json").is_file() {
            deadline = Some(Instant::now() + wait);
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            lock(watch).gave_up = true;
            output::stderr(&format!(
                "{} nothing answered HTTP at {url} in time; stopping the session\n{}",
                p.red("error:"),
                last_log_lines(run_dir)
            ));
            // The run's own signal handling stops and records it, as for Ctrl-C.
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGTERM);
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn lock(watch: &Mutex<Watch>) -> std::sync::MutexGuard<'_, Watch> {
    watch.lock().unwrap_or_else(|e| e.into_inner())
}

/// The status line of an HTTP answer from 127.0.0.1:`port`, if one comes. Docker's port
/// proxy accepts connections before the container listens and then closes them, so only
/// an answer that starts with `HTTP/` counts.
fn http_status_line(port: u16, path: &str) -> Option<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 256];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => {
                read += n;
                if head[..read].contains(&b'\n') {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&head[..read]);
    let line = text.lines().next()?.trim();
    line.starts_with("HTTP/").then(|| line.to_string())
}

/// The last lines of each output stream of a run, for a session that failed.
fn last_log_lines(run_dir: &Path) -> String {
    let mut out = String::new();
    for (name, file) in [("stdout", STDOUT_FILE), ("stderr", STDERR_FILE)] {
        let mut text = String::new();
        let read =
            store::open_run_file(&run_dir.join(file)).and_then(|mut f| f.read_to_string(&mut text));
        if read.is_err() || text.trim().is_empty() {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        let shown = &lines[lines.len().saturating_sub(LOG_LINES_SHOWN)..];
        out.push_str(&format!("  last {name} lines:\n"));
        for line in shown {
            out.push_str(&format!("    {line}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("  (the session printed nothing)\n");
    }
    out.push_str(&format!("  all of it: tapir logs {}\n", run_dir.display()));
    out
}

fn report_canfar(lacks: &[String], p: Printer) {
    if lacks.is_empty() {
        output::stderr(&format!(
            "tapir: {}\n",
            p.green("CANFAR contributed session: nothing missing that tapir can check here")
        ));
        return;
    }
    output::stderr(&format!(
        "tapir: {}\n",
        p.yellow("what CANFAR would need that this image lacks:")
    ));
    for lack in lacks {
        output::stderr(&format!("  - {lack}\n"));
    }
}
