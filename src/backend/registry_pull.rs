//! `run --pull` with the task's registry credentials, without the password ever being in
//! an argv, a file tapir keeps, a log or a message:
//! - through the engine's API socket: `POST /images/create` with the credentials in the
//!   `X-Registry-Auth` header (nothing is written anywhere);
//! - otherwise (a Docker context, a tcp host, `TAPIR_DOCKER`): `docker login
//!   --password-stdin` into a private configuration folder (0700, removed right after the
//!   pull), then `docker pull` with it.
//!
//! Both within deadlines (the pull gets [`deadline::PULL_FACTOR`] of them). Every message
//! that quotes the engine or the registry passes through [`RegistryLogin::scrub`].

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use super::deadline;
use super::docker::Docker;
use super::engine_api::{self, Request};
use crate::error::Error;
use crate::model::registry::RegistryLogin;

/// Pulls `reference` logged in as `login`.
pub(crate) fn pull_with_login(
    docker: &Docker,
    reference: &str,
    login: &RegistryLogin,
) -> Result<(), Error> {
    let limit = deadline::limit() * deadline::PULL_FACTOR;
    let what = format!(
        "pulling {reference} (logged in to {} as {})",
        login.server, login.username
    );
    let request = Request {
        method: "POST".into(),
        path: format!("/images/create?{}", pull_query(reference)),
        headers: vec![("X-Registry-Auth".into(), registry_auth_header(login))],
        body: Vec::new(),
    };
    if let Some(response) = docker.api_send(request, &what, limit)? {
        // The engine answers 200 and then streams progress; a failure after that point is
        // a line with `error` in the stream.
        let failure = if response.status == 200 {
            String::from_utf8_lossy(&response.body)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| v["error"].as_str().map(str::to_string))
        } else {
            Some(
                serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&response.body).trim().to_string()),
            )
        };
        return match failure {
            None => Ok(()),
            Some(message) => Err(refused(reference, login, &message)),
        };
    }
    pull_through_cli(docker, reference, login, limit)
}

/// `fromImage=…&tag=…`: a reference without tag or digest gets `latest` (without a tag,
/// the engine would pull every tag of the repository).
fn pull_query(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        format!("fromImage={}", engine_api::encode(reference))
    } else {
        format!("fromImage={}&tag=latest", engine_api::encode(reference))
    }
}

/// The engine's `X-Registry-Auth`: base64url of `{"username", "password", "serveraddress"}`.
fn registry_auth_header(login: &RegistryLogin) -> String {
    let json = serde_json::json!({
        "username": login.username,
        "password": login.password(),
        "serveraddress": login.server,
    });
    crate::model::base64::url_safe(json.to_string().as_bytes())
}

/// The error for a pull the registry or the engine refused: said plainly when it is the
/// credentials, with the engine's words (scrubbed) either way.
fn refused(reference: &str, login: &RegistryLogin, message: &str) -> Error {
    let message = login.scrub(message.trim());
    let lower = message.to_lowercase();
    if lower.contains("unauthorized")
        || lower.contains("authentication required")
        || lower.contains("denied")
    {
        Error::not_started(format!(
            "the registry {} refused the task's credentials (config.registryUsername `{}` and its registryPassword) for {reference}: {message}\n  fix: check the username and the password (or token) the task's config reads, and that this user may pull {reference}",
            login.server, login.username
        ))
    } else {
        Error::not_started(format!("could not pull {reference}: {message}"))
    }
}

/// Without the API socket: `docker login --password-stdin` into a private, temporary
/// configuration folder, then `docker pull` with it; the folder is removed at the end.
fn pull_through_cli(
    docker: &Docker,
    reference: &str,
    login: &RegistryLogin,
    limit: std::time::Duration,
) -> Result<(), Error> {
    // tempfile makes the folder 0700: only this user may read the login it will hold.
    let config = tempfile::Builder::new()
        .prefix("tapir-docker-login-")
        .tempdir()
        .map_err(|e| {
            Error::not_started(format!(
                "cannot make a private folder for `docker login`: {e}"
            ))
        })?;
    let mut login_command = docker.command();
    login_command.env("DOCKER_CONFIG", config.path()).args([
        "login",
        "--username",
        &login.username,
        "--password-stdin",
        &login.server,
    ]);
    let (ok, output) = run_with_input(
        &mut login_command,
        login.password().as_bytes(),
        deadline::limit(),
    )
    .map_err(|e| Error::not_started(login.scrub(&e)))?;
    if !ok {
        return Err(refused(reference, login, &output));
    }
    let mut pull = docker.command();
    pull.env("DOCKER_CONFIG", config.path())
        .args(["pull", reference]);
    let (ok, output) =
        run_with_input(&mut pull, b"", limit).map_err(|e| Error::not_started(login.scrub(&e)))?;
    drop(config);
    if ok {
        Ok(())
    } else {
        Err(refused(reference, login, &output))
    }
}

/// Runs `command` with `input` on its standard input, its output collected, killed at
/// `limit`. Returns whether it succeeded and its stderr (or stdout when that is empty).
fn run_with_input(
    command: &mut Command,
    input: &[u8],
    limit: std::time::Duration,
) -> Result<(bool, String), String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let pid = child.id();
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match ended.recv_timeout(limit) {
        Ok(Ok(output)) => {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            let text = if stderr.is_empty() {
                String::from_utf8_lossy(&output.stdout).trim().to_string()
            } else {
                stderr
            };
            Ok((output.status.success(), text))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(deadline::no_answer(
                &format!("{:?}", command.get_program()),
                "a registry login or pull",
                limit,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_without_tag_pulls_latest_only() {
        assert_eq!(
            pull_query("127.0.0.1:5118/g/x"),
            "fromImage=127.0.0.1:5118/g/x&tag=latest"
        );
        assert_eq!(
            pull_query("127.0.0.1:5118/g/x:1"),
            "fromImage=127.0.0.1:5118/g/x:1"
        );
        assert!(!pull_query("x@sha256:ab").contains("tag="));
    }

    #[test]
    fn a_refusal_names_the_credentials_but_never_the_password() {
        let login = RegistryLogin::new("127.0.0.1:5118".into(), "u".into(), "pw-123".into());
        let e = refused(
            "r/x:1",
            &login,
            "unauthorized: authentication required (pw-123)",
        )
        .to_string();
        assert!(e.contains("refused the task's credentials"), "{e}");
        assert!(!e.contains("pw-123"), "{e}");
    }
}
