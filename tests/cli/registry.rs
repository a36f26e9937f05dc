//! Against the real loopback registries of `tests/setup/registry.sh` (Debian's
//! docker-registry): `run --pull` with and without credentials.

use std::path::Path;
use std::process::Command;

use crate::images::good_image;
use crate::support::{run, tapir};

pub(crate) const OPEN: &str = "127.0.0.1:5117";
pub(crate) const AUTH: &str = "127.0.0.1:5118";
const USER: &str = "tapir-test";
const PASSWORD: &str = "tapir-test-password";

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

/// Pushes the good image as `registry/repository:tag` (logging in to the registry with a
/// throwaway configuration when it needs credentials), then removes the local tag so a
/// run must pull it. Fails, never skips, when the registry is not there.
pub(crate) fn push(registry: &str, repository: &str, tag: &str) -> String {
    let reference = format!("{registry}/{repository}:{tag}");
    let tagged = docker(&["tag", good_image(), &reference]);
    assert!(
        tagged.status.success(),
        "{}",
        String::from_utf8_lossy(&tagged.stderr)
    );
    let config = tempfile::tempdir().unwrap();
    let config_dir = config.path().to_str().unwrap();
    if registry == AUTH {
        let mut login = Command::new("docker")
            .args([
                "--config",
                config_dir,
                "login",
                "--username",
                USER,
                "--password-stdin",
                registry,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut login.stdin.take().unwrap(), PASSWORD.as_bytes()).unwrap();
        let out = login.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker login {registry} failed (is the test registry running? bash tests/setup/registry.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pushed = docker(&["--config", config_dir, "push", &reference]);
    assert!(
        pushed.status.success(),
        "docker push {reference} failed (is the test registry running? bash tests/setup/registry.sh): {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let removed = docker(&["rmi", &reference]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    reference
}

fn write_task(dir: &Path, image: &str, config: serde_json::Value) -> std::path::PathBuf {
    let task = serde_json::json!({
        "name": "pull",
        "image": image,
        "taskTemplate": {"identifier": "t", "description": "d", "command": ["sh", "-c", "echo pulled-and-ran"], "env": [], "inputs": [], "outputs": []},
        "config": config,
    });
    let path = dir.join("task.json");
    std::fs::write(&path, serde_json::to_string_pretty(&task).unwrap()).unwrap();
    path
}

/// Every file under `dir`, read whole (lossy), with its path.
fn all_files(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out
}

fn run_folders(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("task_run-")
        })
        .count()
}

#[test]
fn run_pull_fetches_an_image_from_an_open_registry_only_when_asked() {
    let image = push(OPEN, "tapir-test/pull-open", "1");
    let dir = tempfile::tempdir().unwrap();
    let task = write_task(dir.path(), &image, serde_json::json!({}));
    let refused = run(&mut tapir(dir.path(), ["run".as_ref(), task.as_os_str()]));
    assert_eq!(refused.code, 125, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not present locally"),
        "{}",
        refused.stderr
    );
    let pulled = run(&mut tapir(
        dir.path(),
        ["run".as_ref(), "--pull".as_ref(), task.as_os_str()],
    ));
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    assert!(
        pulled.stdout.contains("pulled-and-ran"),
        "{}",
        pulled.stdout
    );
    assert!(docker(&["image", "inspect", &image]).status.success());
}

#[test]
fn run_pull_logs_in_with_the_tasks_credentials_and_never_keeps_the_password() {
    let image = push(AUTH, "tapir-test/pull-auth", "1");
    let docker_cli = String::from_utf8_lossy(
        &Command::new("sh")
            .args(["-c", "command -v docker"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    let config = serde_json::json!({"type": "k8s", "registryUrl": format!("http://{AUTH}"), "registryUsername": USER, "registryPassword": "{{ env.REGISTRY_PASSWORD }}"});
    // Through the engine's socket, then through the docker CLI (TAPIR_DOCKER).
    for through_cli in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let task = write_task(dir.path(), &image, config.clone());
        let with = |password: Option<&str>, cmd: &mut Command| {
            cmd.env_remove("REGISTRY_PASSWORD");
            if let Some(p) = password {
                cmd.env("REGISTRY_PASSWORD", p);
            }
            if through_cli {
                cmd.env("TAPIR_DOCKER", &docker_cli);
            }
        };
        let args = ["run".as_ref(), "--pull".as_ref(), task.as_os_str()];

        let mut cmd = tapir(dir.path(), args);
        with(None, &mut cmd);
        let unset = run(&mut cmd);
        assert_eq!(unset.code, 125, "{}", unset.stderr);
        assert!(
            unset
                .stderr
                .contains("config.registryPassword is a template"),
            "{}",
            unset.stderr
        );

        let wrong_password = "wrong-Pa55-831";
        let mut cmd = tapir(dir.path(), args);
        with(Some(wrong_password), &mut cmd);
        let wrong = run(&mut cmd);
        assert_eq!(wrong.code, 125, "cli {through_cli}: {}", wrong.stderr);
        assert!(
            wrong.stderr.contains(&format!("the registry {AUTH} refused the task's credentials (config.registryUsername `{USER}`")),
            "cli {through_cli}: {}",
            wrong.stderr
        );
        assert!(!wrong.stderr.contains(wrong_password) && !wrong.stdout.contains(wrong_password));
        assert_eq!(run_folders(dir.path()), 0, "a refused pull starts nothing");

        let mut cmd = tapir(dir.path(), args);
        with(Some(PASSWORD), &mut cmd);
        let right = run(&mut cmd);
        assert_eq!(right.code, 0, "cli {through_cli}: {}", right.stderr);
        assert!(right.stdout.contains("pulled-and-ran"));
        assert!(!right.stderr.contains(PASSWORD) && !right.stdout.contains(PASSWORD));
        assert_eq!(run_folders(dir.path()), 1);
        for (path, text) in all_files(dir.path()) {
            if path.ends_with("task.json") {
                continue;
            }
            assert!(
                !text.contains(PASSWORD),
                "{} holds the password",
                path.display()
            );
        }
        // Nothing of the login is left in the temporary folder.
        let leftovers = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("tapir-docker-login-")
            })
            .count();
        assert_eq!(leftovers, 0);
        let removed = docker(&["rmi", &image]);
        assert!(
            removed.status.success(),
            "{}",
            String::from_utf8_lossy(&removed.stderr)
        );
    }
}

fn json(out: &crate::support::Run) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr))
}

#[test]
fn inspect_reads_an_image_from_its_registry_as_it_reads_a_local_one() {
    let local = good_image();
    let image = push(OPEN, "tapir-test/remote-inspect", "1.2.0");
    let dir = tempfile::tempdir().unwrap();
    let here = json(&run(&mut tapir(
        dir.path(),
        ["inspect", "--format", "json", local],
    )));
    let remote = run(&mut tapir(
        dir.path(),
        ["inspect", "--format", "json", &format!("docker://{image}")],
    ));
    assert_eq!(remote.code, 0, "{}", remote.stderr);
    let there = json(&remote);
    for key in [
        "id",
        "labels",
        "oci_annotations",
        "user",
        "cmd",
        "entrypoint",
        "processing_container",
        "valid",
        "findings",
    ] {
        assert_eq!(here[key], there[key], "{key}");
    }
    assert!(
        there["repo_digests"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:5117/tapir-test/remote-inspect@sha256:"),
        "{}",
        there["repo_digests"]
    );
    // Nothing was pulled into the engine.
    assert!(!docker(&["image", "inspect", &image]).status.success());

    let missing = run(&mut tapir(
        dir.path(),
        [
            "inspect",
            &format!("docker://{OPEN}/tapir-test/not-there:1"),
        ],
    ));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("not found in the registry 127.0.0.1:5117 (404)"),
        "{}",
        missing.stderr
    );
}

#[test]
fn the_image_check_of_a_registry_image_finds_what_the_local_check_finds() {
    let (local, ctx) = crate::images::bad_image();
    let reference = format!("{OPEN}/tapir-test/remote-bad:1");
    assert!(docker(&["tag", local, &reference]).status.success());
    assert!(docker(&["push", &reference]).status.success());
    assert!(docker(&["rmi", &reference]).status.success());
    let here = run(&mut tapir(
        ctx.path(),
        ["validate", "--format", "json", "--image", local],
    ));
    let there = run(&mut tapir(
        ctx.path(),
        [
            "validate",
            "--format",
            "json",
            "--image",
            &format!("docker://{reference}"),
        ],
    ));
    assert_eq!(there.code, 1, "{}", there.stderr);
    let (here, there) = (json(&here), json(&there));
    let findings = |v: &serde_json::Value, i: usize| {
        v["files"][i]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["code"].clone(),
                    f["pointer"].clone(),
                    f["line"].clone(),
                    f["message"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(findings(&here, 0), findings(&there, 0));
    assert_eq!(findings(&here, 1), findings(&there, 1));
    assert_eq!(
        here["files"][0]["label_lines"],
        there["files"][0]["label_lines"]
    );
    assert!(!there.to_string().contains("tok-3f9a7c"));
}

#[test]
fn images_lists_a_registrys_task_api_images_with_or_without_credentials() {
    let open = push(OPEN, "tapir-test/listed", "1");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["images", "--registry", OPEN, "--format", "json", "spectra"],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let references: Vec<String> = json(&out)["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["references"][0].as_str().unwrap().to_string())
        .collect();
    assert!(references.contains(&open), "{references:?}");

    let protected = push(AUTH, "tapir-test/listed-auth", "1");
    let url = format!("http://{AUTH}");
    let refused = run(&mut tapir(dir.path(), ["images", "--registry", &url]));
    assert_eq!(refused.code, 125, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("wants credentials"),
        "{}",
        refused.stderr
    );
    let mut wrong = tapir(dir.path(), ["images", "--registry", &url]);
    wrong
        .env("TAPIR_REGISTRY_USERNAME", USER)
        .env("TAPIR_REGISTRY_PASSWORD", "nope-0192");
    let wrong = run(&mut wrong);
    assert_eq!(wrong.code, 125, "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("nope-0192"), "{}", wrong.stderr);
    let mut right = tapir(
        dir.path(),
        ["images", "--registry", &url, "--format", "json"],
    );
    right
        .env("TAPIR_REGISTRY_USERNAME", USER)
        .env("TAPIR_REGISTRY_PASSWORD", PASSWORD);
    let right = run(&mut right);
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert!(right.stdout.contains(&protected), "{}", right.stdout);
    assert!(!right.stdout.contains(PASSWORD));
}

#[test]
fn a_registry_that_never_answers_costs_one_deadline() {
    // A listener that accepts and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut cmd = tapir(
        dir.path(),
        [
            "inspect".to_string(),
            format!("docker://127.0.0.1:{port}/x/y:1"),
        ],
    );
    cmd.env("TAPIR_ENGINE_TIMEOUT", "2");
    let out = run(&mut cmd);
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("did not answer within 2 s"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_registry_without_a_catalogue_is_said_so() {
    // A server that answers 404 to everything, as registries that do not offer
    // /v2/_catalog do there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tapir(
        dir.path(),
        [
            "images".to_string(),
            "--registry".to_string(),
            format!("127.0.0.1:{port}"),
        ],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("offers no catalogue"), "{}", out.stderr);
    assert!(
        out.stderr.contains("tapir inspect docker://"),
        "{}",
        out.stderr
    );
}
