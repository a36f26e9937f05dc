//! Benchmarks of the real `tapir` binary (`cargo bench`). Figures are reported next to a
//! baseline measured in the same run, never compared with fixed times in a test.
//!
//! `cargo bench -- validate` (or `run`, `ps`, `logs`, `pipeline`, `scale`) picks one group.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tapir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tapir"))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Wall time of one command, which must succeed.
fn time(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("command starts");
    let elapsed = start.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    elapsed
}

/// Medians of `ours` and of `baseline`, run in turns so that both see the same machine.
fn interleaved(
    rounds: usize,
    mut baseline: impl FnMut(usize) -> Command,
    mut ours: impl FnMut() -> Command,
) -> (Duration, Duration) {
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        theirs.push(time(&mut baseline(round)));
        mine.push(time(&mut ours()));
    }
    (median(mine), median(theirs))
}

/// The example image (`tapir-example/dummy:latest`), built offline.
fn build_example_image(root: &std::path::Path) {
    let built = Command::new("bash")
        .arg(root.join("examples/build.sh"))
        .stdout(Stdio::null())
        .status()
        .expect("bash runs");
    assert!(built.success(), "examples/build.sh failed");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn bench_validate() {
    println!("## validate");
    let one = fixtures().join("valid/kaapana-processing-container.json");
    let rounds = 200;
    let baseline = median(
        (0..rounds)
            .map(|_| time(&mut Command::new("true")))
            .collect(),
    );
    let single = median(
        (0..rounds)
            .map(|_| time(Command::new(tapir()).arg("validate").arg(&one)))
            .collect(),
    );
    println!(
        "one file per call    median {} over {rounds} calls (spawning `true`: {})",
        ms(single),
        ms(baseline)
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let sources: Vec<PathBuf> = [
        "valid/kaapana-processing-container.json",
        "valid/kaapana-upstream-task.json",
        "valid/inline-documented-task.json",
        "valid/docs-task.json",
    ]
    .iter()
    .map(|p| fixtures().join(p))
    .collect();
    for i in 0..1000 {
        let source = &sources[i % sources.len()];
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x.json");
        let sub = dir.path().join(format!("c{i:04}"));
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::copy(source, sub.join(name)).expect("copy");
    }
    let many = median(
        (0..10)
            .map(|_| {
                time(
                    Command::new(tapir())
                        .args(["validate", "--quiet"])
                        .arg(dir.path()),
                )
            })
            .collect(),
    );
    println!(
        "1,000 files, one call median {} over 10 calls ({} per file)",
        ms(many),
        ms(many / 1000)
    );
}

/// `tapir run` of the example's upstream task with no sleep (template read from the image, cache warm)
/// against a bare `docker run --rm` of the same container, mounts and command, taken from
/// `tapir run --dry-run --format json`. The two are interleaved so that drift in the
/// engine's speed hits both alike.
fn bench_run() {
    println!("## run");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    build_example_image(&root);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        root.join("examples/upstream-task.json"),
        dir.path().join("task.json"),
    )
    .expect("copy task");
    let cache = dir.path().join("cache");
    let runs = dir.path().join("runs");
    let tapir_run = || {
        let mut cmd = Command::new(tapir());
        cmd.args(["run", "task.json", "--env", "TIME_SLEEP=0", "--runs-dir"])
            .arg(&runs)
            .env("XDG_CACHE_HOME", &cache)
            .current_dir(dir.path());
        cmd
    };
    // Warm-up: fills the template cache and the engine's own caches.
    time(&mut tapir_run());

    let plan = Command::new(tapir())
        .args(["run", "--dry-run", "--format", "json", "task.json"])
        .args(["--env", "TIME_SLEEP=0"])
        .env("XDG_CACHE_HOME", &cache)
        .current_dir(dir.path())
        .output()
        .expect("dry run");
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("dry-run JSON");
    let argv: Vec<String> = plan["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let bare = |round: usize| {
        let mut words = argv.clone();
        if let Some(i) = words.iter().position(|w| w == "--name") {
            words[i + 1] = format!("tapir-bench-bare-{}-{round}", std::process::id());
        }
        words.insert(2, "--rm".into());
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]);
        cmd
    };

    let rounds = 15;
    let (ours, theirs) = interleaved(rounds, bare, tapir_run);
    println!(
        "tapir run      median {} over {rounds} runs\nbare docker run median {} over {rounds} runs\nratio {:.3}",
        ms(ours),
        ms(theirs),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

/// A record like the ones `tapir run` writes (plan, template, argv): about 3 KB.
fn sample_record(id: &str, i: usize) -> serde_json::Value {
    let status = ["succeeded", "failed", "cancelled"][i % 3];
    serde_json::json!({
        "format_version": 1, "id": id, "tapir_version": "0.1.0", "mode": "docker",
        "status": status, "message": status,
        "task_file": {"path": "/data/tasks/task.json", "sha256": "ab".repeat(32)},
        "task_name": format!("task {i}"),
        "template": {"identifier": "downstream", "description": "x".repeat(200), "inputs": [], "outputs": [], "env": []},
        "plan": {
            "task_name": format!("task {i}"), "template": "downstream", "template_source": "image",
            "image": "registry.example/dummy:1.0",
            "mounts": [{"channel": "in", "direction": "input", "host_path": "/data/in", "container_path": "/in", "read_only": true},
                       {"channel": "out", "direction": "output", "host_path": "/data/out", "container_path": "/out", "read_only": false}],
            "env": (0..12).map(|n| serde_json::json!({"name": format!("VAR_{n}"), "value": "value", "source": "task"})).collect::<Vec<_>>(),
            "command": ["sh", "-c", "y".repeat(300)], "command_source": "template", "entrypoint": null,
            "limits": {"memory_bytes": 52428800, "memory_reason": "declared", "scale_rules": []},
            "labels": {}, "user": {"kind": "invoker", "uid": 1000, "gid": 1000}, "network": null, "warnings": []
        },
        "argv": (0..40).map(|n| format!("--arg-{n}")).collect::<Vec<_>>(),
        "image": {"reference": "registry.example/dummy:1.0", "id": format!("sha256:{}", "cd".repeat(32)), "repo_digests": []},
        "container": format!("tapir-{id}"), "pid": 1,
        "created_at": "2026-11-21T10:00:00Z", "started_at": "2026-11-21T10:00:01Z", "ended_at": "2026-11-21T10:00:05Z",
        "exit_code": if status == "failed" { 1 } else { 0 },
        "outputs": [{"channel": "out", "host_path": "/data/out", "files": [{"path": "item-1/result.txt", "bytes": 20}], "total_bytes": 20, "truncated": false}],
        "warnings": []
    })
}

/// `tapir ps` over 1,000 run folders (goal: under 100 ms), against spawning `true`.
fn bench_ps() {
    println!("## ps");
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..1000 {
        let id = format!("00001m7z{i:05}aaaaaaaa");
        let run = dir.path().join(format!("task_run-{id}"));
        std::fs::create_dir(&run).expect("mkdir");
        let text = serde_json::to_vec_pretty(&sample_record(&id, i)).expect("json");
        std::fs::write(run.join("record.json"), text).expect("write record");
    }
    let rounds = 20;
    let baseline = median(
        (0..rounds)
            .map(|_| time(&mut Command::new("true")))
            .collect(),
    );
    let ps = median(
        (0..rounds)
            .map(|_| time(Command::new(tapir()).arg("ps").current_dir(dir.path())))
            .collect(),
    );
    let json = median(
        (0..rounds)
            .map(|_| {
                time(
                    Command::new(tapir())
                        .args(["ps", "--format", "json"])
                        .current_dir(dir.path()),
                )
            })
            .collect(),
    );
    println!(
        "1,000 runs: ps median {}, ps --format json median {} over {rounds} calls (spawning `true`: {})",
        ms(ps),
        ms(json),
        ms(baseline)
    );
}

/// Wall time and peak resident memory (VmHWM, KiB) of a command whose stdout is discarded.
fn time_and_peak(cmd: &mut Command) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("command starts");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().expect("wait").is_none() {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(peak);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (start.elapsed(), peak)
}

/// `tapir logs` of a run with 1 GB of output (interleaved index), against `cat` of the
/// same bytes: time, and peak memory (goal: small and flat, not growing with the log).
fn bench_logs() {
    println!("## logs");
    let dir = tempfile::tempdir().expect("temp dir");
    let run = dir.path().join("task_run-00001m7z00000aaaaaaaa");
    std::fs::create_dir(&run).expect("mkdir");
    std::fs::write(
        run.join("record.json"),
        serde_json::to_vec(&sample_record("00001m7z00000aaaaaaaa", 0)).expect("json"),
    )
    .expect("record");
    let chunk = vec![b'x'; 64 * 1024];
    let mut out = std::fs::File::create(run.join("stdout.log")).expect("stdout.log");
    let mut index = String::new();
    let chunks = 1024 * 1024 * 1024 / chunk.len();
    for i in 0..chunks {
        std::io::Write::write_all(&mut out, &chunk).expect("write");
        index.push_str(&format!(
            "{} o {} {}\n",
            1_732_190_000_000_000_000u64 + i as u64,
            i * chunk.len(),
            chunk.len()
        ));
    }
    std::fs::write(run.join("stderr.log"), "").expect("stderr.log");
    std::fs::write(run.join("output.idx"), index).expect("index");
    let small = dir.path().join("task_run-00001m7z00001aaaaaaaa");
    std::fs::create_dir(&small).expect("mkdir");
    std::fs::copy(run.join("record.json"), small.join("record.json")).expect("copy");
    std::fs::write(small.join("stdout.log"), "hello\n").expect("small log");

    let (cat, _) = time_and_peak(Command::new("cat").arg(run.join("stdout.log")));
    let (tiny, tiny_peak) = time_and_peak(Command::new(tapir()).arg("logs").arg(&small));
    let (big, big_peak) = time_and_peak(Command::new(tapir()).arg("logs").arg(&run));
    let (stamped, stamped_peak) = time_and_peak(
        Command::new(tapir())
            .args(["logs", "--timestamps"])
            .arg(&run),
    );
    println!(
        "1 GiB log: tapir logs {} (peak {} KiB), --timestamps {} (peak {} KiB); cat {}; a 6-byte log: {} (peak {} KiB)",
        ms(big),
        big_peak,
        ms(stamped),
        stamped_peak,
        ms(cat),
        ms(tiny),
        tiny_peak
    );
}

/// `tapir pipeline run` of 50 independent trivial tasks with `--jobs 2`, against `xargs
/// -P2` running the same 50 `docker run`s (the argv tapir renders, from a dry run),
/// interleaved so that both see the same machine.
fn bench_pipeline() {
    println!("## pipeline");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    build_example_image(&root);
    let dir = tempfile::tempdir().expect("temp dir");
    let tasks = 50;
    let task = |i: usize| {
        serde_json::json!({
            "name": format!("noop {i}"),
            "image": "tapir-example/dummy:latest",
            "taskTemplate": {
                "identifier": "noop",
                "description": "does nothing",
                "inputs": [], "outputs": [], "env": [],
                "command": ["true"]
            }
        })
    };
    let pipeline = serde_json::json!({
        "name": "fan-out",
        "tasks": (0..tasks)
            .map(|i| serde_json::json!({"id": format!("t{i:02}"), "task": task(i)}))
            .collect::<Vec<_>>()
    });
    std::fs::write(dir.path().join("fan-out.json"), pipeline.to_string()).expect("write");
    std::fs::write(dir.path().join("task.json"), task(0).to_string()).expect("write");
    let runs = dir.path().join("runs");
    let tapir_pipeline = || {
        let mut cmd = Command::new(tapir());
        cmd.args([
            "pipeline",
            "run",
            "fan-out.json",
            "--jobs",
            "2",
            "--network",
            "none",
        ])
        .arg("--runs-dir")
        .arg(&runs)
        .current_dir(dir.path());
        cmd
    };

    // The baseline runs what tapir renders for one such task, with `--rm` and its own name.
    let plan = Command::new(tapir())
        .args([
            "run",
            "--dry-run",
            "--format",
            "json",
            "task.json",
            "--network",
            "none",
        ])
        .current_dir(dir.path())
        .output()
        .expect("dry run");
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("dry-run JSON");
    let mut argv: Vec<String> = plan["argv"]
        .as_array()
        .expect("argv")
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let name_at = argv.iter().position(|w| w == "--name").expect("--name");
    argv.drain(name_at..name_at + 2);
    argv.insert(2, "--rm".into());
    let names = dir.path().join("names.txt");
    let xargs = |round: usize| {
        let list: String = (0..tasks)
            .map(|i| format!("tapir-bench-xargs-{}-{round}-{i}\n", std::process::id()))
            .collect();
        std::fs::write(&names, list).expect("write names");
        let mut cmd = Command::new("xargs");
        cmd.arg("-a")
            .arg(&names)
            .args(["-P2", "-I{}", &argv[0], &argv[1], "--name", "{}"])
            .args(&argv[2..]);
        cmd
    };

    time(&mut tapir_pipeline()); // warm-up
    let rounds = 3;
    let (ours, theirs) = interleaved(rounds, xargs, tapir_pipeline);
    println!(
        "tapir pipeline run --jobs 2  median {} over {rounds} runs of {tasks} tasks\nxargs -P2 docker run          median {} over {rounds} runs\nratio {:.3} (goal <= 1.1)",
        ms(ours),
        ms(theirs),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

/// `validate` and `pipeline validate` at scale: a one-line task file with 10,000 and
/// 40,000 unknown keys, and a chain of 10,000 and 40,000 tasks (each mapping its
/// upstream's output, all running one task file). Each size is reported with its time,
/// its peak memory and the ratio to the size four times smaller (linear: about 4).
fn bench_scale() {
    println!("## scale");
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let keys = |n: usize| {
        let mut text = String::from(r#"{"name":"x","image":"i","taskTemplate":"t""#);
        for i in 0..n {
            text.push_str(&format!(r#","unknown{i:05}":0"#));
        }
        text.push('}');
        let path = d.join(format!("keys{n}.task.json"));
        std::fs::write(&path, text).expect("write");
        path
    };
    std::fs::write(
        d.join("task.json"),
        r#"{"name": "t", "image": "i", "taskTemplate": "run",
            "inputs": [{"name": "in", "volume_source": {"host_path": "in"}}],
            "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}]}"#,
    )
    .expect("write");
    std::fs::write(
        d.join("processing-container.json"),
        r#"{"name": "pc", "description": "x", "templates": [{"identifier": "run", "description": "x",
            "inputs": [{"name": "in", "mounted_path": "/in"}],
            "outputs": [{"name": "out", "mounted_path": "/out"}], "env": []}]}"#,
    )
    .expect("write");
    std::fs::create_dir_all(d.join("in")).expect("mkdir");
    let chain = |n: usize| {
        let tasks: Vec<String> = (0..n)
            .map(|i| match i {
                0 => r#"{"id": "t0", "task": "task.json"}"#.to_string(),
                _ => format!(
                    r#"{{"id": "t{i}", "task": "task.json", "iochannel_maps": [{{"upstream_task": "t{}", "upstream_output_channel": "out", "input_channel": "in"}}]}}"#,
                    i - 1
                ),
            })
            .collect();
        let path = d.join(format!("chain{n}.pipeline.json"));
        std::fs::write(
            &path,
            format!(r#"{{"name": "chain", "tasks": [{}]}}"#, tasks.join(",\n")),
        )
        .expect("write");
        path
    };
    // `validate` of the keys file exits 1 (the template is not in the sibling file), and
    // `time_and_peak` does not ask for success: only time and memory matter here.
    let measure = |args: &[&str], path: &std::path::Path| {
        time_and_peak(Command::new(tapir()).args(args).arg(path))
    };
    for (what, args, sizes, make) in [
        (
            "validate, unknown keys on one line",
            &["validate"][..],
            [10_000, 40_000],
            &keys as &dyn Fn(usize) -> PathBuf,
        ),
        (
            "pipeline validate, chain of tasks",
            &["pipeline", "validate"][..],
            [10_000, 40_000],
            &chain as &dyn Fn(usize) -> PathBuf,
        ),
    ] {
        let mut previous: Option<Duration> = None;
        for n in sizes {
            let path = make(n);
            let (time, peak) = measure(args, &path);
            let ratio = previous.map_or(String::new(), |p| {
                format!(
                    ", {:.1}× the time of a quarter of it",
                    time.as_secs_f64() / p.as_secs_f64()
                )
            });
            println!(
                "{what}: {n:>6}  {}  peak {} MiB{ratio}",
                ms(time),
                peak / 1024
            );
            previous = Some(time);
        }
    }
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("validate") {
        bench_validate();
    }
    if wants("run") {
        bench_run();
    }
    if wants("ps") {
        bench_ps();
    }
    if wants("logs") {
        bench_logs();
    }
    if wants("pipeline") {
        bench_pipeline();
    }
    if wants("scale") {
        bench_scale();
    }
}
