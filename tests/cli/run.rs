//! `tapir run --mode docker` on the real engine.

use std::path::Path;

use serde_json::json;

use crate::support::{
    example_image, interrupt, leftover_containers, only_record, repo_root, run,
    start_until_started, tapir,
};

/// A task with an inline template running `script` in the example image.
pub(crate) fn inline_task(
    dir: &Path,
    script: &str,
    extra: serde_json::Value,
) -> std::path::PathBuf {
    let mut task = json!({
        "name": "test task",
        "image": example_image(),
        "taskTemplate": {
            "identifier": "t",
            "description": "test",
            "inputs": [],
            "outputs": [],
            "env": [],
            "command": ["sh", "-c", script]
        }
    });
    if let (Some(task), Some(extra)) = (task.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if k == "template" {
                for (tk, tv) in v.as_object().unwrap() {
                    task["taskTemplate"][tk] = tv.clone();
                }
            } else {
                task.insert(k.clone(), v.clone());
            }
        }
    }
    let path = dir.join("task.json");
    std::fs::write(&path, serde_json::to_string_pretty(&task).unwrap()).unwrap();
    path
}

#[test]
fn the_example_pair_runs_end_to_end() {
    example_image();
    let dir = tempfile::tempdir().unwrap();
    for file in ["upstream-task.json", "downstream-task.json"] {
        std::fs::copy(
            repo_root().join("examples").join(file),
            dir.path().join(file),
        )
        .unwrap();
    }
    let up = run(&mut tapir(dir.path(), ["run", "upstream-task.json"]));
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    assert!(
        up.stdout.contains("upstream: done"),
        "output is streamed: {}",
        up.stdout
    );
    let down = run(&mut tapir(dir.path(), ["run", "downstream-task.json"]));
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
    assert!(
        down.stdout
            .contains("downstream: wrote 1 summary file to /home/results"),
        "one file is singular: {}",
        down.stdout
    );
    let summary =
        std::fs::read_to_string(dir.path().join("data/dummy/results/item-1/summary.txt")).unwrap();
    assert!(
        summary.contains("channel2: hello from upstream"),
        "{summary}"
    );
    // Two records; the downstream one has the 50Mi limit and the measured scale rule.
    let mut records: Vec<serde_json::Value> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("record.json")).ok())
        .map(|t| serde_json::from_str(&t).unwrap())
        .collect();
    records.sort_by_key(|r| r["id"].as_str().unwrap().to_string());
    assert_eq!(records.len(), 2);
    let down = &records[1];
    assert_eq!(down["status"], "succeeded");
    assert_eq!(down["exit_code"], 0);
    assert_eq!(down["plan"]["limits"]["memory_bytes"], 50 * 1024 * 1024);
    let rule = &down["plan"]["limits"]["scale_rules"][0];
    assert_eq!(
        (
            rule["measured_bytes"].as_u64(),
            rule["requirement_bytes"].as_u64()
        ),
        (Some(20), Some(40)),
        "2 × the 20 bytes of *.txt"
    );
    assert!(down["argv"].as_array().unwrap().iter().any(|a| {
        a.as_str()
            .unwrap()
            .ends_with("target=/home/channel1,readonly")
    }));
    assert_eq!(down["outputs"][0]["files"][0]["path"], "item-1/summary.txt");
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", down["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn the_container_exit_code_is_passed_through_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo out; echo err >&2; exit 7", json!({}));
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 7, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the task exited with code 7"),
        "{}",
        out.stderr
    );
    let (run_dir, record) = only_record(dir.path());
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 7);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("stdout.log")).unwrap(),
        "out\n"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("stderr.log")).unwrap(),
        "err\n"
    );
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn env_precedence_is_seen_inside_the_container() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("vars.env"),
        "FROM_FILE=file value with \"quotes\" $HOME\nBOTH=file\n",
    )
    .unwrap();
    inline_task(
        dir.path(),
        "echo \"A=$A B=$B C=$C BOTH=$BOTH\"; echo \"FROM_FILE=$FROM_FILE\"; echo \"LEAK=${TAPIR_LEAK:-none}\"",
        json!({
            "template": {"env": [{"name": "A", "value": "template"}, {"name": "B", "value": "template"}, {"name": "C", "value": "template"}]},
            "env": [{"name": "B", "value": "task"}, {"name": "C", "value": "task"}]
        }),
    );
    let out = run(tapir(
        dir.path(),
        [
            "run",
            "task.json",
            "--env",
            "C=cli",
            "--env-file",
            "vars.env",
            "--env",
            "BOTH=cli",
        ],
    )
    .env("TAPIR_LEAK", "host"));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("A=template B=task C=cli BOTH=cli"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("FROM_FILE=file value with \"quotes\" $HOME"),
        "env files are literal: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("LEAK=none"),
        "the host environment must not leak in: {}",
        out.stdout
    );
    let (_, record) = only_record(dir.path());
    let sources: Vec<(String, String)> = record["plan"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        sources.contains(&("A".into(), "template default".into())),
        "{sources:?}"
    );
    assert!(
        sources.contains(&("B".into(), "task".into())),
        "{sources:?}"
    );
    assert!(
        sources.contains(&("C".into(), "--env".into())),
        "{sources:?}"
    );
}

#[test]
fn inputs_are_read_only_and_outputs_belong_to_the_invoking_user() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("in/a.txt"), "data").unwrap();
    inline_task(
        dir.path(),
        "cat /in/a.txt > /out/copy.txt; if touch /in/new 2>/dev/null; then echo WROTE-INPUT; exit 3; fi; echo input-is-read-only",
        json!({
            "template": {"inputs": [{"name": "in", "mounted_path": "/in"}], "outputs": [{"name": "out", "mounted_path": "/out"}]},
            "inputs": [{"name": "in", "volume_source": {"host_path": "in"}}],
            "outputs": [{"name": "out", "volume_source": {"host_path": "out/nested"}}]
        }),
    );
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("input-is-read-only"), "{}", out.stdout);
    let copy = dir.path().join("out/nested/copy.txt");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "data");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&copy).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (nix_uid(), nix_gid()),
        "outputs belong to the invoking user"
    );
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
}

fn nix_gid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
        .unwrap()
}

#[test]
fn a_missing_input_path_is_exit_125_with_a_message_and_no_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({
            "template": {"inputs": [{"name": "in", "mounted_path": "/in"}]},
            "inputs": [{"name": "in", "volume_source": {"host_path": "no-such-folder"}}]
        }),
    );
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 125, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("input channel `in`:")
            && out
                .stderr
                .contains("no-such-folder cannot be used: it does not exist"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("task.json:"),
        "names the task file and position: {}",
        out.stderr
    );
    assert_eq!(
        run_folders(dir.path()),
        Vec::<String>::new(),
        "a run refused before it started leaves no folder"
    );
    assert!(
        !dir.path().join("no-such-folder").exists(),
        "nothing is created for inputs"
    );
}

#[test]
fn an_unknown_template_identifier_names_the_ones_there() {
    example_image();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("task.json"),
        json!({"name": "x", "image": example_image(), "taskTemplate": "upstrem"}).to_string(),
    )
    .unwrap();
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("template `upstrem` is not in the image's /processing-container.json"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("did you mean `upstream`? templates: upstream, downstream"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_image_is_not_pulled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("task.json"),
        json!({"name": "x", "image": "tapir-test/absent:none", "taskTemplate": "t"}).to_string(),
    )
    .unwrap();
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("image tapir-test/absent:none is not present locally"),
        "{}",
        out.stderr
    );
    assert_eq!(run_folders(dir.path()), Vec::<String>::new());
}

#[test]
fn an_oom_kill_is_reported_in_words() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
        json!({"resources": {"limits": {"memory": "8Mi"}}}),
    );
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert!(
        out.stderr.contains("killed: out of memory (limit 8Mi)"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert_ne!(out.code, 0);
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "oom-killed");
}

#[test]
fn ctrl_c_stops_and_removes_the_container() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo started; sleep 300", json!({}));
    let mut child =
        start_until_started(&mut tapir(dir.path(), ["run", "task.json", "--grace", "2"]));
    let started = std::time::Instant::now();
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "stopping must not wait for the task"
    );
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "cancelled");
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn dry_run_prints_the_plan_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({"env": [{"name": "REGISTRY_TOKEN", "value": "s3cret"}]}),
    );
    let out = run(&mut tapir(
        dir.path(),
        ["run", "--dry-run", "--format", "json", "task.json"],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let argv: Vec<&str> = plan["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(argv.contains(&"--init") && argv.contains(&"no-new-privileges"));
    assert!(
        argv.contains(&"REGISTRY_TOKEN"),
        "a secret is passed by name only: {argv:?}"
    );
    assert!(
        !out.stdout.contains("s3cret"),
        "secrets never appear: {}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no run folder for a dry run"
    );
}

/// Reads a record until its status is no longer `running` (the detached supervisor's
/// final write), for at most a minute.
fn wait_for_end(run_dir: &Path) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("record.json")).unwrap())
                .unwrap();
        if record["status"] != "running" {
            return record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not end: {record}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn detach_returns_while_the_task_runs_and_the_supervisor_records_the_end() {
    let dir = tempfile::tempdir().unwrap();
    // The task waits for a file that only this test creates, so it is surely still
    // running when `tapir run --detach` returns.
    std::fs::create_dir(dir.path().join("gate")).unwrap();
    inline_task(
        dir.path(),
        "echo begin; echo \"token has ${#MY_TOKEN} characters\"; while [ ! -e /gate/open ]; do sleep 0.1; done; echo end >&2; exit 3",
        json!({
            "template": {"inputs": [{"name": "gate", "mounted_path": "/gate"}]},
            "inputs": [{"name": "gate", "volume_source": {"host_path": "gate"}}]
        }),
    );
    let out = run(&mut tapir(
        dir.path(),
        [
            "run",
            "--detach",
            "task.json",
            "--env",
            "MY_TOKEN=s3cret-value",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let (run_dir, record) = only_record(dir.path());
    assert_eq!(
        out.stdout.trim(),
        record["id"].as_str().unwrap(),
        "stdout is the run id"
    );
    assert!(out.stderr.contains("tapir logs --follow"), "{}", out.stderr);
    assert_eq!(record["status"], "running");
    let supervisor = record["pid"].as_u64().unwrap();
    assert!(
        Path::new(&format!("/proc/{supervisor}")).exists(),
        "the supervisor runs on after tapir returned"
    );

    std::fs::write(dir.path().join("gate/open"), "").unwrap();
    let record = wait_for_end(&run_dir);
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 3);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("stdout.log")).unwrap(),
        "begin\ntoken has 12 characters\n",
        "the secret reached the container through the supervisor"
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("stderr.log")).unwrap(),
        "end\n"
    );
    let everything = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(!everything.contains("s3cret-value"), "no secret on disk");
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn detach_gives_125_when_the_container_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    // The engine refuses to create a container on a network that does not exist.
    let out = run(&mut tapir(
        dir.path(),
        [
            "run",
            "-d",
            "task.json",
            "--network",
            "tapir-test-no-such-network",
        ],
    ));
    assert_eq!(out.code, 125, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("did not start"), "{}", out.stderr);
    assert_eq!(out.stdout, "", "no run id for a run that did not start");
    let (run_dir, record) = only_record(dir.path());
    assert_eq!(record["status"], "engine-error");
    assert!(
        std::fs::read_to_string(run_dir.join("stderr.log"))
            .unwrap()
            .contains("tapir-test-no-such-network"),
        "the engine's own message is kept"
    );
}

#[test]
fn a_command_missing_from_the_image_is_exit_127_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let task = inline_task(dir.path(), "", json!({}));
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&task).unwrap()).unwrap();
    value["taskTemplate"]["command"] = json!(["/no/such/program"]);
    std::fs::write(&task, value.to_string()).unwrap();
    let out = run(&mut tapir(dir.path(), ["run", "task.json"]));
    assert_eq!(out.code, 127, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("not found in the image"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_container_left_by_a_killed_tapir_is_reported_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo started; sleep 300", json!({}));
    let mut child = start_until_started(&mut tapir(dir.path(), ["run", "task.json"]));
    child.kill().unwrap(); // SIGKILL: tapir gets no chance to clean up.
    child.wait().unwrap();
    let (run_dir, record) = only_record(dir.path());
    let container = record["container"].as_str().unwrap().to_string();

    // The next run in the same runs folder (with another task file) sees its record.
    let other = tempfile::tempdir().unwrap();
    inline_task(other.path(), "true", json!({}));
    let runs_dir = dir.path().display().to_string();
    let out = run(&mut tapir(
        other.path(),
        ["run", "task.json", "--runs-dir", &runs_dir],
    ));
    let _ = std::process::Command::new("docker")
        .args(["rm", "--force", &container])
        .output();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "container {container} was left behind by a tapir that was killed and is still running"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("fix: tapir rm {}", run_dir.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn container_file_replaces_the_image_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pc.json"),
        json!({
            "name": "local",
            "description": "edited without rebuilding",
            "templates": [{
                "identifier": "local-edit",
                "description": "prints a marker",
                "inputs": [], "outputs": [],
                "env": [{"name": "MARK", "value": "from-the-container-file"}],
                "command": ["sh", "-c", "echo $MARK"]
            }]
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("task.json"),
        json!({"name": "t", "image": example_image(), "taskTemplate": "local-edit"}).to_string(),
    )
    .unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["run", "task.json", "--container-file", "pc.json"],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "from-the-container-file\n");
    let (_, record) = only_record(dir.path());
    assert_eq!(record["plan"]["template_source"], "file:pc.json");
}

#[test]
fn the_template_read_from_the_image_is_cached_per_image_id() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("examples/upstream-task.json"),
        dir.path().join("task.json"),
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let first = run(tapir(dir.path(), ["run", "task.json"]).env("XDG_CACHE_HOME", &cache));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let image_id = {
        let out = std::process::Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", example_image()])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let cached = cache.join(format!(
        "tapir/processing-container/{}.json",
        image_id.trim_start_matches("sha256:")
    ));
    let text = std::fs::read_to_string(&cached).expect("the template was cached");
    // Change the cached copy: if the second run reads the cache, the task says so.
    std::fs::write(
        &cached,
        text.replace("upstream: done", "upstream: from the cache"),
    )
    .unwrap();
    let second = run(tapir(dir.path(), ["run", "task.json"]).env("XDG_CACHE_HOME", &cache));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stdout.contains("upstream: from the cache"),
        "{}",
        second.stdout
    );
}

#[test]
fn outputs_belong_to_a_non_root_invoker() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    inline_task(
        dir.path(),
        "id -u > /out/who; touch /out/made-here",
        json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/out"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}]
        }),
    );
    let mut cmd = tapir(dir.path(), ["run", "task.json"]);
    // As root, become an unprivileged user whose group may use the Docker socket; as a
    // non-root user, the test already is that case.
    let (uid, gid) = if nix_uid() == 0 {
        let socket_gid = std::fs::metadata("/var/run/docker.sock").unwrap().gid();
        cmd.uid(54321).gid(socket_gid);
        (54321, socket_gid)
    } else {
        (nix_uid(), nix_gid())
    };
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/who"))
            .unwrap()
            .trim(),
        uid.to_string()
    );
    for name in ["", "who", "made-here"] {
        let meta = std::fs::metadata(dir.path().join("out").join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "out/{name}");
    }
    let (run_dir, _) = only_record(dir.path());
    assert_eq!(
        std::fs::metadata(run_dir.join("record.json"))
            .unwrap()
            .uid(),
        uid
    );
}

#[test]
fn two_hundred_megabytes_of_output_reach_the_disk_with_small_memory() {
    const BYTES: u64 = 200_000_000;
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        &format!("head -c {BYTES} /dev/zero; echo finished >&2"),
        json!({}),
    );
    let mut child = tapir(dir.path(), ["run", "task.json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // VmHWM is the peak resident memory so far; the last reading before exit is the peak.
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(peak_kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{stderr}");
    let (run_dir, _) = only_record(dir.path());
    assert_eq!(
        std::fs::metadata(run_dir.join("stdout.log")).unwrap().len(),
        BYTES
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("stderr.log")).unwrap(),
        "finished\n"
    );
    assert!(peak_kib > 0, "VmHWM was read");
    assert!(
        peak_kib < 32 * 1024,
        "tapir's peak memory was {peak_kib} KiB for {BYTES} bytes of output"
    );
}

/// The run folders in `runs` (there must be none after a refused command line or run).
fn run_folders(runs: &Path) -> Vec<String> {
    std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("task_run-"))
        .collect()
}

/// `run --dry-run --format json` for the task in `dir`, with `extra` arguments.
fn dry_run_json(dir: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let mut args = vec!["run", "--dry-run", "--format", "json", "task.json"];
    args.extend_from_slice(extra);
    let out = run(&mut tapir(dir, args));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    (serde_json::from_str(&out.stdout).unwrap(), out.stderr)
}

/// The planned env as (name, value, source).
fn planned_env(plan: &serde_json::Value) -> Vec<(String, String, String)> {
    plan["plan"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn env_files_accept_an_export_prefix() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    std::fs::write(
        dir.path().join("vars.env"),
        "# a comment\nexport X=1\n  export   SPACED=two words\nPLAIN=3\n",
    )
    .unwrap();
    let (plan, _) = dry_run_json(dir.path(), &["--env-file", "vars.env"]);
    let env = planned_env(&plan);
    for (name, value, line) in [("X", "1", 2), ("SPACED", "two words", 3), ("PLAIN", "3", 4)] {
        assert!(
            env.contains(&(
                name.to_string(),
                value.to_string(),
                format!("--env-file vars.env:{line}")
            )),
            "{name}: {env:?}"
        );
    }
    assert!(!env.iter().any(|(n, _, _)| n.contains("export")), "{env:?}");
}

#[test]
fn env_file_lines_with_bad_names_or_spaces_around_the_equals_sign_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    for (text, position, words) in [
        ("OK=1\nN = 5\n", "vars.env:2:2", "space before `=`"),
        ("N= 5\n", "vars.env:1:3", "space after `=`"),
        ("1X=a\n", "vars.env:1:1", "not a valid variable name"),
        ("MY-VAR=a\n", "vars.env:1:3", "not a valid variable name"),
        ("JUST_A_NAME\n", "vars.env:1:12", "no `=`"),
        ("\u{feff}A=1\n", "vars.env:1:1", "byte-order mark"),
    ] {
        std::fs::write(dir.path().join("vars.env"), text).unwrap();
        let out = run(&mut tapir(
            dir.path(),
            ["run", "task.json", "--env-file", "vars.env"],
        ));
        assert_eq!(out.code, 2, "{text:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(position) && out.stderr.contains(words),
            "{text:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("fix:"), "{text:?}: {}", out.stderr);
        assert!(
            run_folders(dir.path()).is_empty(),
            "{text:?}: no run folder"
        );
    }
}

#[test]
fn the_env_file_format_is_in_the_help() {
    let out = run(&mut tapir(Path::new("."), ["run", "--help"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // clap wraps the help to the layout it picks, so compare the words, not the lines.
    let words = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("export NAME=VALUE") && words.contains("no spaces around"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_env_flags_exit_2_before_any_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    for (args, words) in [
        (vec!["--env", "=x"], "the name before `=` is empty"),
        (
            vec!["--env", "NOT_SET_ANYWHERE"],
            "is not set in tapir's environment",
        ),
        (vec!["--env", "BAD NAME=x"], "not a valid variable name"),
        (vec!["--env-file", "missing.env"], "missing.env"),
    ] {
        let mut all = vec!["run", "task.json"];
        all.extend_from_slice(&args);
        let out = run(&mut tapir(dir.path(), all));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
        assert!(
            run_folders(dir.path()).is_empty(),
            "{args:?}: no run folder may exist: {:?}",
            run_folders(dir.path())
        );
    }
}

/// A task file or `--container-file` that is not there is a bad argument like a missing
/// `--env-file`: exit 2 with the path and a fix, and no run folder for a typo.
#[test]
fn a_missing_task_or_container_file_is_exit_2_before_any_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    std::fs::create_dir(dir.path().join("a-folder")).unwrap();
    for (args, words) in [
        (
            vec!["run", "no-such-task.json"],
            "no-such-task.json: no such file",
        ),
        (vec!["run", "a-folder"], "a-folder: is a folder"),
        (
            vec!["run", "--container-file", "no-such-pc.json", "task.json"],
            "no-such-pc.json: no such file",
        ),
        (
            vec!["run", "--container-file", "a-folder", "task.json"],
            "a-folder: is a folder",
        ),
    ] {
        let out = run(&mut tapir(dir.path(), args.clone()));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("fix:"), "{args:?}: {}", out.stderr);
        assert!(
            run_folders(dir.path()).is_empty(),
            "{args:?}: no run folder may exist: {:?}",
            run_folders(dir.path())
        );
    }
}

#[test]
fn a_bad_env_flag_never_shows_its_value() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let out = run(&mut tapir(
        dir.path(),
        ["run", "task.json", "--env", "MY TOKEN=s3cret"],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("s3cret"), "{}", out.stderr);
}

#[test]
fn env_name_from_tapirs_environment_still_works() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let out = run(tapir(
        dir.path(),
        [
            "run",
            "--dry-run",
            "--format",
            "json",
            "task.json",
            "--env",
            "FROM_HOST",
        ],
    )
    .env("FROM_HOST", "host value"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        planned_env(&plan).contains(&("FROM_HOST".into(), "host value".into(), "--env".into())),
        "{}",
        out.stdout
    );
}

#[test]
fn misspelt_env_names_are_warned_about_with_did_you_mean_and_still_passed() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({
            "template": {"env": [{"name": "MODE", "value": "fast"}, {"name": "THRESHOLD", "value": "1"}]},
            "env": [{"name": "THRESHOLDS", "value": "2"}]
        }),
    );
    let (plan, stderr) = dry_run_json(dir.path(), &["--env", "MODEE=x", "--env", "UNRELATED=y"]);
    assert!(
        stderr.contains(
            "`MODEE` (set by --env) is not declared by template `t`; did you mean `MODE`?"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("`THRESHOLDS` (set by the task) is not declared by template `t`; did you mean `THRESHOLD`?"),
        "{stderr}"
    );
    assert!(stderr.contains("the value is still passed"), "{stderr}");
    assert!(
        !stderr.contains("UNRELATED"),
        "no near name, no warning: {stderr}"
    );
    let env = planned_env(&plan);
    assert!(
        env.contains(&("MODEE".into(), "x".into(), "--env".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("THRESHOLDS".into(), "2".into(), "task".into())),
        "{env:?}"
    );
    assert!(
        env.contains(&("MODE".into(), "fast".into(), "template default".into())),
        "{env:?}"
    );
}

#[test]
fn env_names_are_not_checked_against_a_template_without_env() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({"env": [{"name": "MODE", "value": "a"}]}),
    );
    let (_, stderr) = dry_run_json(dir.path(), &["--env", "MODEE=x"]);
    assert!(!stderr.contains("did you mean"), "{stderr}");
}

#[test]
fn a_tilde_host_path_is_the_invokers_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join("data")).unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({
            "template": {
                "inputs": [{"name": "in", "mounted_path": "/in"}],
                "outputs": [{"name": "out", "mounted_path": "/out"}]
            },
            "inputs": [{"name": "in", "volume_source": {"host_path": "~/data"}}],
            "outputs": [{"name": "out", "volume_source": {"host_path": "~/results/x"}}]
        }),
    );
    let out = run(tapir(
        dir.path(),
        ["run", "--dry-run", "--format", "json", "task.json"],
    )
    .env("HOME", home.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let hosts: Vec<&str> = plan["plan"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["host_path"].as_str().unwrap())
        .collect();
    assert_eq!(
        hosts,
        [
            home.path().join("data").display().to_string(),
            home.path().join("results/x").display().to_string()
        ],
        "{}",
        out.stdout
    );
    assert!(!dir.path().join("~").exists(), "no folder named ~");
}

#[test]
fn a_tilde_user_host_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/out"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": "~alice/results"}}]
        }),
    );
    let out = run(tapir(dir.path(), ["run", "--dry-run", "task.json"]).env("HOME", "/tmp"));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`~alice/results`: only `~/` (your own home) is expanded"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("fix: write the full path"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("~alice").exists());
}

#[test]
fn the_dry_run_json_has_a_format_version() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let (plan, _) = dry_run_json(dir.path(), &[]);
    assert_eq!(plan["format_version"], 1, "{plan}");
}

#[test]
fn ps_json_has_a_format_version_and_lists_runs() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    assert_eq!(run(&mut tapir(dir.path(), ["run", "task.json"])).code, 0);
    let out = run(&mut tapir(dir.path(), ["ps", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["format_version"], 1, "{list}");
    assert_eq!(list["runs"][0]["status"], "succeeded", "{list}");
}

#[test]
fn timeout_stops_the_container_and_records_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo started; sleep 300", json!({}));
    let started = std::time::Instant::now();
    let out = run(&mut tapir(
        dir.path(),
        [
            "run",
            "task.json",
            "--network",
            "none",
            "--timeout",
            "1",
            "--grace",
            "1",
        ],
    ));
    assert_eq!(out.code, 124, "{}", out.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(out.stderr.contains("timed out after 1s"), "{}", out.stderr);
    let (_, record) = only_record(dir.path());
    assert_eq!(record["status"], "timed-out");
    assert_eq!(
        leftover_containers(&format!("tapir.run-id={}", record["id"].as_str().unwrap())),
        ""
    );
}

#[test]
fn bind_flags_are_planned_shown_and_rendered_in_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("reference")).unwrap();
    inline_task(dir.path(), "true", json!({}));
    let args = [
        "--bind",
        "reference:/ref:ro",
        "--bind",
        "~/scratch:/scratch:rw",
        "--bind",
        "reference:/ref-default",
    ];
    let out = run(tapir(
        dir.path(),
        ["run", "--dry-run", "--format", "json", "task.json"]
            .into_iter()
            .chain(args),
    )
    .env("HOME", home.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let reference = dir.path().join("reference").display().to_string();
    let scratch = home.path().join("scratch").display().to_string();
    assert_eq!(
        plan["plan"]["binds"],
        json!([
            {"host_path": reference, "container_path": "/ref", "read_only": true},
            {"host_path": scratch, "container_path": "/scratch", "read_only": false},
            {"host_path": reference, "container_path": "/ref-default", "read_only": true},
        ]),
        "{}",
        out.stdout
    );
    let argv: Vec<&str> = plan["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        argv.contains(&format!("type=bind,source={reference},target=/ref,readonly").as_str())
            && argv.contains(&format!("type=bind,source={scratch},target=/scratch").as_str()),
        "{argv:?}"
    );
    let human = run(tapir(
        dir.path(),
        ["run", "--dry-run", "task.json"].into_iter().chain(args),
    )
    .env("HOME", home.path()));
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains(&format!(
            "binds      {reference} → /ref  (--bind, read-only)"
        )) && human
            .stdout
            .contains(&format!("{scratch} → /scratch  (--bind, read-write)")),
        "{}",
        human.stdout
    );
    assert!(
        !home.path().join("scratch").exists(),
        "a dry run creates nothing"
    );
}

#[test]
fn bad_bind_flags_exit_2_before_any_run_folder_exists() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    for (value, words) in [
        ("data:ref", "the container path `ref` is not absolute"),
        ("data", "expected HOST:CONTAINER[:ro|rw]"),
        (":/ref", "the host path is empty"),
        ("data:/ref:rx", "expected HOST:CONTAINER[:ro|rw]"),
        ("data:/", "cannot be `/`"),
        ("~alice/data:/ref", "only `~/` (your own home) is expanded"),
        ("da,ta:/ref", "contains a comma"),
    ] {
        let out = run(&mut tapir(
            dir.path(),
            ["run", "task.json", "--bind", value],
        ));
        assert_eq!(out.code, 2, "{value:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(words) && out.stderr.contains("--bind"),
            "{value:?}: {}",
            out.stderr
        );
        assert!(
            run_folders(dir.path()).is_empty(),
            "{value:?}: no run folder"
        );
    }
}

#[test]
fn binds_that_are_missing_or_overlap_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({
            "template": {"inputs": [{"name": "in", "mounted_path": "/in"}]},
            "inputs": [{"name": "in", "volume_source": {"host_path": "in"}}]
        }),
    );
    for (args, words) in [
        (
            vec!["--bind", "no-such-ref:/ref:ro"],
            "no-such-ref cannot be used: it does not exist",
        ),
        (
            vec!["--bind", "in:/in/sub:ro"],
            "in:/in/sub and channel `in` (/in) overlap inside the container",
        ),
        (
            vec!["--bind", "in:/a:ro", "--bind", "in:/a:ro"],
            "overlap inside the container",
        ),
        (
            vec!["--bind", "in/scratch:/scratch:rw"],
            "a task must not write into its own input",
        ),
    ] {
        let mut all = vec!["run", "--dry-run", "task.json"];
        all.extend_from_slice(&args);
        let out = run(&mut tapir(dir.path(), all));
        assert_eq!(out.code, 125, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(words), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("fix:"), "{args:?}: {}", out.stderr);
    }
    assert!(!dir.path().join("in/scratch").exists());
}

#[test]
fn a_read_only_bind_is_read_and_a_read_write_bind_is_created_and_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("reference")).unwrap();
    std::fs::write(dir.path().join("reference/table.txt"), "reference data").unwrap();
    inline_task(
        dir.path(),
        "cat /ref/table.txt > /scratch/copy.txt; if touch /ref/new 2>/dev/null; then echo WROTE-REF; exit 3; fi; echo ref-is-read-only",
        json!({}),
    );
    let out = run(&mut tapir(
        dir.path(),
        [
            "run",
            "task.json",
            "--bind",
            "reference:/ref:ro",
            "--bind",
            "results/scratch:/scratch:rw",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ref-is-read-only"), "{}", out.stdout);
    let copy = dir.path().join("results/scratch/copy.txt");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "reference data");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.path().join("results/scratch")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (nix_uid(), nix_gid()),
        "tapir created the rw bind folder as the invoker"
    );
    let (run_dir, record) = only_record(dir.path());
    assert_eq!(
        record["plan"]["binds"][1]["host_path"],
        dir.path().join("results/scratch").display().to_string()
    );
    let show = run(&mut tapir(dir.path(), ["show", run_dir.to_str().unwrap()]));
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains(&format!(
            "{} → /scratch  (--bind, read-write)",
            dir.path().join("results/scratch").display()
        )),
        "{}",
        show.stdout
    );
}

#[test]
fn a_timeout_too_large_for_the_clock_means_no_limit_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "sleep 1; echo done", json!({}));
    let out = run(&mut tapir(
        dir.path(),
        [
            "run",
            "task.json",
            "--network",
            "none",
            "--timeout",
            &u64::MAX.to_string(),
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stdout.contains("done"), "{}", out.stdout);
}

/// A NUL character cannot be in an environment variable: the value is refused at its
/// place (the task's value, the template's default, the env file's line), not by the
/// process spawn later with "nul byte found in provided data".
#[test]
fn an_env_value_with_a_nul_character_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({"env": [{"name": "PLAIN", "value": "x\u{0}y"}]}),
    );
    let out = run(&mut tapir(
        dir.path(),
        ["run", "--network", "none", "task.json"],
    ));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("error[nul-character]") && out.stderr.contains("task.json:19:16"),
        "{}",
        out.stderr
    );

    inline_task(
        dir.path(),
        "true",
        json!({"template": {"env": [{"name": "DEFAULTED", "value": "\u{0}"}]}}),
    );
    let out = run(&mut tapir(
        dir.path(),
        ["run", "--network", "none", "task.json"],
    ));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("error[nul-character]")
            && out.stderr.contains("$.taskTemplate.env[0].value"),
        "{}",
        out.stderr
    );

    inline_task(dir.path(), "true", json!({}));
    std::fs::write(dir.path().join("vars.env"), "OK=1\nAPI_TOKEN=s3\0cret\n").unwrap();
    let out = run(&mut tapir(
        dir.path(),
        [
            "run",
            "--network",
            "none",
            "task.json",
            "--env-file",
            "vars.env",
        ],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("vars.env:2:13: a NUL character"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("cret"), "{}", out.stderr);
}

/// A variable whose value is rendered from a secret-looking one (`{{ env.DB_PASSWORD }}`)
/// holds that secret whatever its own name: it is passed by name and masked in the record
/// and the messages, like `DB_PASSWORD` itself would be.
#[test]
fn a_value_rendered_from_a_secret_variable_is_a_secret_too() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "echo \"length ${#CONNECTION}\"",
        json!({
            "env": [{"name": "CONNECTION", "value": "db://{{ env.DB_PASSWORD }}@host"}],
            "template": {"env": [
                {"name": "CONNECTION", "value": ""},
                {"name": "FALLBACK", "value": "{{ env.DB_PASSWORD }}"}
            ]}
        }),
    );
    let out = run(tapir(dir.path(), ["run", "--network", "none", "task.json"])
        .env("DB_PASSWORD", "hunter2secret"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("length 23"), "{}", out.stdout);
    // An inline template's default rendered from a secret, likewise.
    assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);
    let (run_dir, record) = only_record(dir.path());
    let text = std::fs::read_to_string(run_dir.join("record.json")).unwrap();
    assert!(!text.contains("hunter2secret"), "{text}");
    assert!(
        record["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "CONNECTION"),
        "passed by name: {record}"
    );
    assert!(
        record["argv"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "FALLBACK"),
        "passed by name: {record}"
    );
}

/// `run --dry-run --format json` masks secret template defaults, by name and when
/// rendered from a secret host variable, as the human dry run and the record do.
#[test]
fn the_json_dry_run_masks_secret_template_defaults() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({"template": {"env": [
            {"name": "DB_PASSWORD", "value": "lit3ral-pw"},
            {"name": "FALLBACK", "value": "{{ env.API_TOKEN }}"},
            {"name": "PLAIN", "value": "visible"}
        ]}}),
    );
    let out = run(tapir(
        dir.path(),
        ["run", "--dry-run", "--format", "json", "task.json"],
    )
    .env("API_TOKEN", "h0st-token"));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for secret in ["lit3ral-pw", "h0st-token"] {
        assert!(!out.stdout.contains(secret), "{secret}: {}", out.stdout);
        assert!(!out.stderr.contains(secret), "{secret}: {}", out.stderr);
    }
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let env = plan["template"]["env"].as_array().unwrap();
    assert_eq!(env[0]["value"], "****", "{plan}");
    assert_eq!(env[1]["value"], "****", "{plan}");
    assert_eq!(env[2]["value"], "visible", "{plan}");
}
