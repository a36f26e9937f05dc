//! `tapir init` and `tapir new task`: what they write validates, builds and runs.

use serde_json::json;

use crate::session::{busybox_base, docker_build};
use crate::support::{run, tapir};

#[test]
fn an_initialised_repository_validates_builds_and_runs_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("Edge Finder");
    let out = run(&mut tapir(
        dir.path(),
        ["init", "Edge Finder", "--from", busybox_base()],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("edge-finder:latest"), "{}", out.stderr);
    assert!(out.stderr.contains("cd 'Edge Finder'"), "{}", out.stderr);
    for file in [
        "Dockerfile",
        "files/processing-container.json",
        "files/process.sh",
        "tasks/process.task.json",
        ".github/workflows/tapir.yml",
    ] {
        assert!(repo.join(file).is_file(), "{file} is missing");
    }
    let ci = std::fs::read_to_string(repo.join(".github/workflows/tapir.yml")).unwrap();
    assert!(ci.contains("tapir validate") && ci.contains("docker build -t edge-finder:latest"));

    let out = run(&mut tapir(&repo, ["validate", "--strict", "."]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("2 valid"), "{}", out.stdout);

    docker_build("edge-finder:latest", &repo);
    let out = run(&mut tapir(&repo, ["inspect", "edge-finder:latest"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&mut tapir(&repo, ["run", "tasks/process.task.json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("processed 1 file(s)"), "{}", out.stdout);
    let summary = std::fs::read_to_string(repo.join("data/output/summary.txt")).unwrap();
    assert_eq!(summary, "hello from tapir init\nprocessed 1 file(s)\n");
    assert!(repo.join("data/output/example.txt").is_file());
}

#[test]
fn init_never_overwrites_and_checks_the_image_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM mine\n").unwrap();
    let out = run(&mut tapir(dir.path(), ["init"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("does not overwrite"), "{}", out.stderr);
    assert!(out.stderr.contains("Dockerfile"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap(),
        "FROM mine\n"
    );
    assert!(!dir.path().join("files").exists(), "nothing is written");

    let out = run(&mut tapir(
        dir.path(),
        ["init", "new", "--name", "Bad Name"],
    ));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not a valid image name"),
        "{}",
        out.stderr
    );
    let out = run(&mut tapir(
        dir.path(),
        ["init", "new", "--from", "x\nRUN rm -rf /"],
    ));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("is not an image reference"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("new").exists());
}

fn write_container(dir: &std::path::Path) -> std::path::PathBuf {
    let pc = json!({
        "name": "tool",
        "description": "d",
        "templates": [{
            "identifier": "segment",
            "description": "Segments the images.",
            "inputs": [{"name": "images", "mounted_path": "/in", "description": "DICOM series"}],
            "outputs": [{"name": "masks", "mounted_path": "/out"}],
            "env": [
                {"name": "MODEL", "value": "fast", "choices": ["fast", "exact"], "description": "Which model"},
                {"name": "THREADS", "value": "2", "type": "int"},
                {"name": "MODE", "value": "strict", "adjustable": false},
                {"name": "API_TOKEN", "value": "default-token"}
            ],
            "command": ["sh", "-c", "true"]
        }]
    });
    let path = dir.join("processing-container.json");
    std::fs::write(&path, serde_json::to_string_pretty(&pc).unwrap()).unwrap();
    path
}

#[test]
fn new_task_fills_every_channel_and_default_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    write_container(dir.path());
    let out = run(&mut tapir(
        dir.path(),
        [
            "new",
            "task",
            "processing-container.json",
            "segment",
            "-o",
            "segment.task.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let task: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("segment.task.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(task["image"], "tool:latest");
    assert_eq!(task["taskTemplate"], "segment");
    assert_eq!(task["inputs"][0]["input"]["host_path"], "data/images");
    assert_eq!(task["outputs"][0]["input"]["host_path"], "data/masks");
    assert_eq!(
        task["env"],
        json!([{"name": "MODEL", "value": "fast"}, {"name": "THREADS", "value": "2"}])
    );
    // Descriptions and what was left out are notes on stderr.
    assert!(
        out.stderr
            .contains("env MODEL=fast (one of fast, exact): Which model"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("DICOM series"), "{}", out.stderr);
    assert!(
        out.stderr.contains("MODE is fixed by the template"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("API_TOKEN looks like a secret"),
        "{}",
        out.stderr
    );
    assert!(
        !std::fs::read_to_string(dir.path().join("segment.task.json"))
            .unwrap()
            .contains("default-token")
    );

    let out = run(&mut tapir(
        dir.path(),
        [
            "validate",
            "--strict",
            "--container-file",
            "processing-container.json",
            "segment.task.json",
        ],
    ));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);

    // Never over an existing file; an unknown template names the known ones.
    let out = run(&mut tapir(
        dir.path(),
        [
            "new",
            "task",
            "processing-container.json",
            "segment",
            "-o",
            "segment.task.json",
        ],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = run(&mut tapir(
        dir.path(),
        ["new", "task", "processing-container.json", "segmnet"],
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("use one of: segment"), "{}", out.stderr);
}

#[test]
fn new_task_reads_the_template_out_of_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = crate::support::example_image();
    let out = run(&mut tapir(dir.path(), ["new", "task", image, "upstream"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let task: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(task["image"], image);
    assert_eq!(task["outputs"][0]["name"], "channel1");
    std::fs::write(dir.path().join("t.json"), &out.stdout).unwrap();
    let out = run(&mut tapir(
        dir.path(),
        ["run", "t.json", "--network", "none"],
    ));
    assert_eq!(
        out.code, 0,
        "the written task runs as it is: {}",
        out.stderr
    );
    assert!(dir.path().join("data/channel1/item-1/dummy.txt").is_file());
}
