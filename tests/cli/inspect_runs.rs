//! `logs`, `ps`, `show`, `outputs`, `wait`, `rm`, `prune` and `inspect` on real runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::json;

use crate::run::inline_task;
use crate::support::{
    example_image, leftover_containers, only_record, repo_root, run, start_until_started, tapir,
};

/// Runs `task.json` in `dir` attached and returns its run folder.
fn finished_run(dir: &Path) -> PathBuf {
    let out = run(&mut tapir(dir, ["run", "task.json"]));
    assert!(out.code == 0 || out.code < 125, "{}", out.stderr);
    only_record(dir).0
}

/// A task that ticks until the file `gate/open` appears, then says bye and exits `code`.
fn gated_task(dir: &Path, code: u8) {
    std::fs::create_dir_all(dir.join("gate")).unwrap();
    inline_task(
        dir,
        &format!(
            "i=0; while [ ! -e /gate/open ]; do i=$((i+1)); echo tick $i; sleep 0.2; done; echo bye; exit {code}"
        ),
        json!({
            "template": {"inputs": [{"name": "gate", "mounted_path": "/gate"}]},
            "inputs": [{"name": "gate", "volume_source": {"host_path": "gate"}}]
        }),
    );
}

fn detach(dir: &Path) -> String {
    let out = run(&mut tapir(dir, ["run", "--detach", "task.json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout.trim().to_string()
}

/// How commands name a run folder found in the current folder: `./task_run-<id>`.
fn shown(run_dir: &Path) -> String {
    format!("./{}", run_dir.file_name().unwrap().to_string_lossy())
}

fn id_of(run_dir: &Path) -> String {
    run_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("task_run-")
        .to_string()
}

#[test]
fn logs_replay_both_streams_after_the_container_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; sleep 0.1; printf 'four' >&2",
        json!({}),
    );
    let run_dir = finished_run(dir.path());
    let id = id_of(&run_dir);
    assert_eq!(leftover_containers(&format!("tapir.run-id={id}")), "");

    let all = run(&mut tapir(dir.path(), ["logs", &id[..id.len() - 3]]));
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert_eq!(all.stdout, "one\nthree\n");
    assert_eq!(all.stderr, "two\nfour");

    let only_err = run(&mut tapir(dir.path(), ["logs", "--stderr", &id]));
    assert_eq!(
        (only_err.stdout.as_str(), only_err.stderr.as_str()),
        ("", "two\nfour")
    );

    let tail = run(&mut tapir(dir.path(), ["logs", "--tail", "2", &id]));
    assert_eq!(
        (tail.stdout.as_str(), tail.stderr.as_str()),
        ("three\n", "four")
    );

    let stamped = run(&mut tapir(
        dir.path(),
        [
            "logs",
            "--timestamps",
            "--stdout",
            &run_dir.display().to_string(),
        ],
    ));
    let lines: Vec<&str> = stamped.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", stamped.stdout);
    for (line, text) in lines.iter().zip(["one", "three"]) {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, text);
        assert!(
            stamp.len() == 24 && stamp.starts_with("20") && stamp.ends_with('Z'),
            "{stamp}"
        );
    }
}

#[test]
fn logs_follow_a_detached_run_until_it_ends_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    gated_task(dir.path(), 4);
    let id = detach(dir.path());
    let mut follower = tapir(dir.path(), ["logs", "--follow", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    // The task is still printing: the follower shows new lines as they come.
    assert_eq!(lines.next().unwrap().unwrap(), "tick 1");
    assert_eq!(lines.next().unwrap().unwrap(), "tick 2");
    std::fs::write(dir.path().join("gate/open"), "").unwrap();
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest.last().map(String::as_str), Some("bye"), "{rest:?}");
    assert!(
        rest[..rest.len() - 1]
            .iter()
            .all(|l| l.starts_with("tick "))
    );
    assert_eq!(follower.wait().unwrap().code(), Some(4));
}

#[test]
fn ps_lists_runs_newest_first_and_survives_a_corrupt_record() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "exit 3", json!({}));
    let failed = finished_run(dir.path());
    // A second run in the same folder: move the first one aside while it is made.
    let aside = tempfile::tempdir().unwrap();
    std::fs::rename(&failed, aside.path().join("first")).unwrap();
    inline_task(dir.path(), "true", json!({}));
    let succeeded = finished_run(dir.path());
    std::fs::rename(aside.path().join("first"), &failed).unwrap();
    // A truncated record, an old minimal one, and one from a newer tapir.
    let broken = dir.path().join("task_run-zzzzzzzzzzzzz00000000");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("record.json"),
        "{\"format_version\": 1, \"id\": \"zz",
    )
    .unwrap();
    let old = dir.path().join("task_run-00000000000000000000");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(
        old.join("record.json"),
        r#"{"status": "succeeded", "exit_code": 0}"#,
    )
    .unwrap();
    let newer = dir.path().join("task_run-00000000000000000001");
    std::fs::create_dir(&newer).unwrap();
    std::fs::write(
        newer.join("record.json"),
        r#"{"format_version": 9, "id": "00000000000000000001", "status": "paused", "novelty": {"x": 1}}"#,
    )
    .unwrap();

    let out = run(&mut tapir(dir.path(), ["ps"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{}", out.stdout);
    assert!(
        rows[0].starts_with("zzzzzzzzzzzzz00000000") && rows[0].contains("unreadable"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].starts_with(&id_of(&succeeded)) && rows[1].contains("succeeded"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].starts_with(&id_of(&failed)) && rows[2].contains("failed"),
        "{}",
        rows[2]
    );
    assert!(rows[2].contains("test task") && rows[2].contains(example_image()));
    assert!(rows[3].contains("unknown"), "a newer status: {}", rows[3]);
    assert!(rows[4].starts_with("00000000000000000000") && rows[4].contains("succeeded"));
    assert!(
        out.stderr
            .contains(&format!("{}/record.json", shown(&broken)))
            && out.stderr.contains("is truncated"),
        "{}",
        out.stderr
    );

    let json_out = run(&mut tapir(dir.path(), ["list", "--format", "json"]));
    let document: serde_json::Value = serde_json::from_str(&json_out.stdout).unwrap();
    let list = &document["runs"];
    assert_eq!(list[0]["status"], "unreadable");
    assert_eq!(list[2]["status"], "failed");
    assert_eq!(list[2]["exit_code"], 3);
    assert_eq!(list[2]["template"], "t");
}

#[test]
fn show_prints_the_plan_with_sources_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({"env": [{"name": "API_TOKEN", "value": "s3cret"}, {"name": "MODE", "value": "fast"}]}),
    );
    let run_dir = finished_run(dir.path());
    let out = run(&mut tapir(dir.path(), ["show", &id_of(&run_dir)]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for expected in [
        "succeeded",
        "MODE=fast  (task)",
        "API_TOKEN=****",
        "argv",
        "--init",
        "image",
        "sha256:",
    ] {
        assert!(out.stdout.contains(expected), "{expected}: {}", out.stdout);
    }
    assert!(!out.stdout.contains("s3cret"));
    let json_out = run(&mut tapir(
        dir.path(),
        ["show", "--format", "json", &id_of(&run_dir)],
    ));
    let record: serde_json::Value = serde_json::from_str(&json_out.stdout).unwrap();
    assert_eq!(record["observed_status"], "succeeded");
    assert!(!json_out.stdout.contains("s3cret"));
}

#[test]
fn outputs_lists_files_and_checks_the_item_convention() {
    let dir = tempfile::tempdir().unwrap();
    for item in ["case-1", "case-2"] {
        std::fs::create_dir_all(dir.path().join("in").join(item)).unwrap();
    }
    inline_task(
        dir.path(),
        "mkdir -p /out/case-1 /out/stray; echo r > /out/case-1/result.txt; echo x > /out/loose.txt",
        json!({
            "template": {"inputs": [{"name": "in", "mounted_path": "/in"}], "outputs": [{"name": "out", "mounted_path": "/out"}]},
            "inputs": [{"name": "in", "volume_source": {"host_path": "in"}}],
            "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}]
        }),
    );
    let run_dir = finished_run(dir.path());
    let out = run(&mut tapir(dir.path(), ["outputs", &id_of(&run_dir)]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("case-1/result.txt"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("1 file at the top of the channel (loose.txt)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("empty item folder without results: stray"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("not among the input items of in: stray"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("no result for 1 item of the input: case-2"),
        "{}",
        out.stdout
    );

    // The example pair follows the convention: no warnings.
    let example = tempfile::tempdir().unwrap();
    for file in ["upstream-task.json", "downstream-task.json"] {
        std::fs::copy(
            repo_root().join("examples").join(file),
            example.path().join(file),
        )
        .unwrap();
    }
    for file in ["upstream-task.json", "downstream-task.json"] {
        assert_eq!(run(&mut tapir(example.path(), ["run", file])).code, 0);
    }
    let ps = run(&mut tapir(example.path(), ["ps", "--format", "json"]));
    let list: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    let downstream = list["runs"][0]["id"].as_str().unwrap();
    let out = run(&mut tapir(
        example.path(),
        ["outputs", "--format", "json", downstream],
    ));
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["outputs"][0]["items"], json!(["item-1"]));
    assert_eq!(
        report["outputs"][0]["warnings"],
        json!([]),
        "{}",
        out.stdout
    );
}

#[test]
fn wait_returns_the_first_failing_exit_code_when_runs_end() {
    let dir = tempfile::tempdir().unwrap();
    gated_task(dir.path(), 5);
    let id = detach(dir.path());
    let mut waiter = tapir(dir.path(), ["wait", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "wait returned while the run goes on"
    );
    std::fs::write(dir.path().join("gate/open"), "").unwrap();
    assert_eq!(waiter.wait().unwrap().code(), Some(5));

    let unknown = run(&mut tapir(dir.path(), ["wait", &id, "nosuchrun"]));
    assert_eq!(unknown.code, 2, "a bad name is reported before waiting");
    assert!(
        unknown.stderr.contains("no run matches \"nosuchrun\""),
        "{}",
        unknown.stderr
    );
}

#[test]
fn rm_removes_the_run_but_never_the_outputs_and_cancels_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    gated_task(dir.path(), 0);
    let id = detach(dir.path());
    let (run_dir, _) = only_record(dir.path());
    let refused = run(&mut tapir(dir.path(), ["rm", &id]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("still running"),
        "{}",
        refused.stderr
    );
    assert!(run_dir.exists());

    let forced = run(&mut tapir(dir.path(), ["rm", "--force", &id]));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(!run_dir.exists());
    assert_eq!(leftover_containers(&format!("tapir.run-id={id}")), "");
    assert!(
        dir.path().join("gate").exists(),
        "task data is never removed"
    );

    // Outputs next to the run survive `rm` of a finished run.
    let finished = tempfile::tempdir().unwrap();
    inline_task(
        finished.path(),
        "echo kept > /out/result.txt",
        json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/out"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}]
        }),
    );
    let run_dir = finished_run(finished.path());
    let out = run(&mut tapir(
        finished.path(),
        ["rm", &run_dir.display().to_string()],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!run_dir.exists());
    assert_eq!(
        std::fs::read_to_string(finished.path().join("out/result.txt")).unwrap(),
        "kept\n"
    );
}

#[test]
fn rm_removes_the_container_of_a_lost_run() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "echo started; sleep 300", json!({}));
    let mut child = start_until_started(&mut tapir(dir.path(), ["run", "task.json"]));
    child.kill().unwrap();
    child.wait().unwrap();
    let (run_dir, record) = only_record(dir.path());
    let id = record["id"].as_str().unwrap();

    let ps = run(&mut tapir(dir.path(), ["ps"]));
    assert!(ps.stdout.contains("lost (container left)"), "{}", ps.stdout);
    assert!(
        ps.stderr
            .contains(&format!("fix: tapir rm {}", shown(&run_dir))),
        "{}",
        ps.stderr
    );
    let waited = run(&mut tapir(dir.path(), ["wait", id]));
    assert_eq!(
        waited.code, 1,
        "a lost run cannot succeed: {}",
        waited.stderr
    );

    let out = run(&mut tapir(dir.path(), ["rm", id]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(leftover_containers(&format!("tapir.run-id={id}")), "");
}

#[test]
fn prune_selects_by_status_and_age() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "exit 2", json!({}));
    let failed = finished_run(dir.path());
    let aside = tempfile::tempdir().unwrap();
    std::fs::rename(&failed, aside.path().join("f")).unwrap();
    inline_task(dir.path(), "true", json!({}));
    let succeeded = finished_run(dir.path());
    std::fs::rename(aside.path().join("f"), &failed).unwrap();

    let young = run(&mut tapir(dir.path(), ["prune", "--older-than", "1d"]));
    assert_eq!(young.code, 0, "{}", young.stderr);
    assert!(
        failed.exists() && succeeded.exists(),
        "nothing is a day old"
    );

    let dry = run(&mut tapir(
        dir.path(),
        ["prune", "--status", "failed", "--dry-run"],
    ));
    assert_eq!(
        dry.stdout.trim(),
        format!("would remove {}", shown(&failed))
    );
    assert!(failed.exists());

    let out = run(&mut tapir(dir.path(), ["prune", "--status", "failed"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!failed.exists() && succeeded.exists());

    let bad = run(&mut tapir(dir.path(), ["prune", "--older-than", "soon"]));
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("30m, 12h, 7d"), "{}", bad.stderr);
}

#[test]
fn inspect_shows_the_embedded_file_and_the_image_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["inspect", "--format", "json", example_image()],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["oci_annotations"]["title"], "tapir-dummy");
    assert_eq!(
        v["processing_container"]["templates"][0]["identifier"],
        "upstream"
    );
    assert!(v["id"].as_str().unwrap().starts_with("sha256:"));

    let human = run(&mut tapir(
        dir.path(),
        ["processing-container", example_image()],
    ));
    assert!(
        human.stdout.contains("upstream — Sleeps"),
        "{}",
        human.stdout
    );

    // An image whose processing-container.json is invalid, and one without any.
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"name": "bad", "templates": [{"identifier": "x"}]}"#,
    )
    .unwrap();
    let build = |tag: &str, pc: &str| {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("tests/images/build-image.sh"))
            .args([tag, pc])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    build(
        "tapir-test/invalid-pc:latest",
        &dir.path().join("bad.json").display().to_string(),
    );
    let invalid = run(&mut tapir(
        dir.path(),
        ["inspect", "tapir-test/invalid-pc:latest"],
    ));
    assert_eq!(invalid.code, 1, "{}", invalid.stdout);
    assert!(invalid.stdout.contains("INVALID"), "{}", invalid.stdout);
    assert!(
        invalid
            .stderr
            .contains("tapir-test/invalid-pc:latest:/processing-container.json:1:"),
        "{}",
        invalid.stderr
    );

    build("tapir-test/no-pc:latest", "--no-pc");
    let none = run(&mut tapir(
        dir.path(),
        ["inspect", "tapir-test/no-pc:latest"],
    ));
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert!(
        none.stdout.contains("no /processing-container.json"),
        "{}",
        none.stdout
    );

    let missing = run(&mut tapir(dir.path(), ["inspect", "tapir-test/not-here:1"]));
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("not present locally"),
        "{}",
        missing.stderr
    );
}

#[test]
fn rm_only_removes_run_folders_and_only_tapirs_files() {
    let dir = tempfile::tempdir().unwrap();
    // A folder that merely holds a record.json is not a run.
    let build = dir.path().join("build");
    std::fs::create_dir(&build).unwrap();
    std::fs::write(build.join("record.json"), "{}").unwrap();
    let out = run(&mut tapir(dir.path(), ["rm", "--force", "./build"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("not a run folder"), "{}", out.stderr);
    assert!(build.join("record.json").exists());

    // A run folder without a record (a run still preparing) needs --force.
    let preparing = dir.path().join("task_run-00000000000000000009");
    std::fs::create_dir(&preparing).unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["rm", "task_run-00000000000000000009"],
    ));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("rm --force"), "{}", out.stderr);
    assert!(preparing.exists());
    let out = run(&mut tapir(
        dir.path(),
        ["rm", "--force", "task_run-00000000000000000009"],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!preparing.exists());

    // Files tapir did not write stay, and the user is told.
    inline_task(dir.path(), "true", json!({}));
    let run_dir = finished_run(dir.path());
    std::fs::write(run_dir.join("notes.txt"), "mine").unwrap();
    let out = run(&mut tapir(dir.path(), ["rm", &id_of(&run_dir)]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("also holds notes.txt"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(run_dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!run_dir.join("record.json").exists());
}

/// Builds `tag` from the example image with one `RUN sh -c SCRIPT` step; returns the
/// build context (a temporary folder to run tapir in).
fn build_from_example(tag: &str, script: &str) -> tempfile::TempDir {
    let base = example_image();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {base}\nRUN [\"sh\", \"-c\", {}]\n",
            serde_json::json!(script)
        ),
    )
    .unwrap();
    let mut build = std::process::Command::new("docker");
    build
        .args(["build", "-q", "-t", tag])
        .arg(ctx.path())
        .stdout(Stdio::null());
    // Without the buildx plugin, DOCKER_BUILDKIT=1 is an error: use the legacy builder.
    let buildx = std::process::Command::new("docker")
        .args(["buildx", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !buildx {
        build.env("DOCKER_BUILDKIT", "0");
    }
    assert!(build.status().unwrap().success());
    ctx
}

#[test]
fn a_processing_container_json_that_is_a_symlink_in_the_image_is_followed() {
    let ctx = build_from_example(
        "tapir-test/linked-pc:latest",
        "mkdir -p /opt && mv /processing-container.json /opt/pc.json && ln -s /opt/pc.json /processing-container.json",
    );

    let out = run(&mut tapir(
        ctx.path(),
        ["inspect", "--format", "json", "tapir-test/linked-pc:latest"],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["valid"], true, "{}", out.stdout);
    assert_eq!(
        v["processing_container"]["templates"][0]["identifier"],
        "upstream"
    );
}

/// Python's `json.load` (the platform's reader) refuses a byte-order mark, so an image
/// whose file has one gets the `bom` warning, as `validate` gives it.
#[test]
fn inspect_warns_about_a_byte_order_mark_in_the_image_file() {
    let ctx = build_from_example(
        "tapir-test/bom-pc:latest",
        r"printf '\357\273\277' > /pc && cat /processing-container.json >> /pc && mv /pc /processing-container.json",
    );
    let out = run(&mut tapir(
        ctx.path(),
        ["inspect", "--format", "json", "tapir-test/bom-pc:latest"],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["valid"], true, "{}", out.stdout);
    let codes: Vec<&str> = v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("findings: {}", out.stdout))
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert_eq!(codes, ["bom"], "{}", out.stdout);
}

#[test]
fn one_file_is_singular_and_the_status_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "mkdir -p /out/item-1; echo r > /out/item-1/result.txt",
        json!({
            "template": {"outputs": [{"name": "out", "mounted_path": "/out"}]},
            "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}]
        }),
    );
    let run_dir = finished_run(dir.path());
    let id = id_of(&run_dir);

    let out = run(&mut tapir(dir.path(), ["outputs", &id]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("(1 file, "), "{}", out.stdout);

    let out = run(&mut tapir(dir.path(), ["show", &id]));
    let status = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("status"))
        .unwrap_or_else(|| panic!("no status row:\n{}", out.stdout));
    assert_eq!(status.matches("succeeded").count(), 1, "{status}");
    assert!(out.stdout.contains(": 1 file, "), "{}", out.stdout);

    let out = run(&mut tapir(dir.path(), ["wait", &id]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, format!("{id}: succeeded\n"));
}
