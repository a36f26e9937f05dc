//! Benchmarks of the real `tapir` binary (`cargo bench`). Figures are reported next to a
//! baseline measured in the same run, never compared with fixed times in a test.
//!
//! `cargo bench -- validate` or `cargo bench -- run` picks one group.

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
    let built = Command::new("bash")
        .arg(root.join("examples/build.sh"))
        .stdout(Stdio::null())
        .status()
        .expect("bash runs");
    assert!(built.success(), "examples/build.sh failed");
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
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        theirs.push(time(&mut bare(round)));
        ours.push(time(&mut tapir_run()));
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "tapir run      median {} over {rounds} runs\nbare docker run median {} over {rounds} runs\nratio {:.3}",
        ms(ours),
        ms(theirs),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
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
}
