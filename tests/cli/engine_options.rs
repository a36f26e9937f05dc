//! `run --shm-size/--gpus/--publish/--engine-arg`: through the plan to the engine.

use serde_json::json;

use crate::run::inline_task;
use crate::support::{only_record, run, tapir};

#[test]
fn shm_size_and_engine_args_reach_the_container_and_the_record() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "grep ' /dev/shm ' /proc/mounts; hostname",
        json!({}),
    );
    let out = run(&mut tapir(
        dir.path(),
        [
            "run",
            "task.json",
            "--network",
            "none",
            "--shm-size",
            "64Mi",
            "--engine-arg=--hostname=tapir-hatch",
        ],
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("size=65536k"), "{}", out.stdout);
    assert!(out.stdout.contains("tapir-hatch"), "{}", out.stdout);
    let (_, record) = only_record(dir.path());
    let argv: Vec<&str> = record["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(argv.contains(&"--hostname=tapir-hatch"), "{argv:?}");
    assert_eq!(record["plan"]["engine"]["shm_size_bytes"], 64 << 20);
    assert_eq!(
        record["plan"]["engine"]["engine_args"],
        json!(["--hostname=tapir-hatch"])
    );
}

#[test]
fn engine_args_that_break_the_run_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    for (arg, shown, fix) in [
        ("--rm", "--rm", "--keep"),
        ("-d", "-d", "tapir run --detach"),
        ("--env=TOKEN=s3cret", "--env=…", "use `--env`"),
        (
            "-it",
            "-t (in a group of short flags)",
            "merge stdout and stderr",
        ),
    ] {
        let out = run(&mut tapir(
            dir.path(),
            ["run", "task.json", "--engine-arg", arg],
        ));
        assert_eq!(out.code, 125, "{arg}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("--engine-arg {shown} is refused")),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(fix), "{arg}: {}", out.stderr);
        assert!(!out.stderr.contains("s3cret"), "a value is never echoed");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a refused run leaves no run folder"
    );
}

fn dry_run_argv(dir: &std::path::Path, extra: &[&str]) -> (Vec<String>, String) {
    let mut args = vec!["run", "--dry-run", "--format", "json", "task.json"];
    args.extend(extra);
    let out = run(&mut tapir(dir, args));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let argv = plan["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    (argv, out.stderr)
}

#[test]
fn ports_are_published_on_loopback_unless_an_address_is_written() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(dir.path(), "true", json!({}));
    let (argv, warnings) = dry_run_argv(dir.path(), &["--publish", "8080:5000", "-p", "53/udp"]);
    let published: Vec<&str> = argv
        .windows(2)
        .filter(|w| w[0] == "--publish")
        .map(|w| w[1].as_str())
        .collect();
    assert_eq!(published, ["127.0.0.1:8080:5000/tcp", "127.0.0.1::53/udp"]);
    assert!(warnings.is_empty(), "{warnings}");

    let (argv, warnings) = dry_run_argv(dir.path(), &["--publish", "0.0.0.0:8080:5000"]);
    assert!(
        argv.contains(&"0.0.0.0:8080:5000/tcp".to_string()),
        "{argv:?}"
    );
    assert!(warnings.contains("other machines may reach"), "{warnings}");

    let out = run(&mut tapir(
        dir.path(),
        ["run", "task.json", "--publish", "5000", "--network", "none"],
    ));
    assert_eq!(out.code, 125, "{}", out.stderr);
    assert!(
        out.stderr.contains("--publish needs a network"),
        "{}",
        out.stderr
    );

    let out = run(&mut tapir(
        dir.path(),
        ["run", "task.json", "--publish", "localhost:1:2"],
    ));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not an IP address"),
        "{}",
        out.stderr
    );
}

#[test]
fn gpus_on_the_command_line_win_over_the_task() {
    let dir = tempfile::tempdir().unwrap();
    inline_task(
        dir.path(),
        "true",
        json!({"resources": {"limits": {"nvidia.com/gpu": "1"}}}),
    );
    let (argv, _) = dry_run_argv(dir.path(), &[]);
    let gpus = |argv: &[String]| {
        argv.windows(2)
            .find(|w| w[0] == "--gpus")
            .map(|w| w[1].clone())
    };
    assert_eq!(gpus(&argv).as_deref(), Some("1"));
    let (argv, _) = dry_run_argv(dir.path(), &["--gpus", "device=0,2"]);
    assert_eq!(gpus(&argv).as_deref(), Some("\"device=0,2\""));
    let (argv, _) = dry_run_argv(dir.path(), &["--gpus", "all"]);
    assert_eq!(gpus(&argv).as_deref(), Some("all"));
    let out = run(&mut tapir(
        dir.path(),
        ["run", "task.json", "--gpus", "none"],
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not a GPU selection"), "{}", out.stderr);
}
