//! Benchmarks of the real `tapir` binary (`cargo bench`). Figures are reported next to a
//! baseline measured in the same run, never compared with fixed times in a test.
//!
//! `cargo bench -- validate` or `cargo bench -- run` picks one group.

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::{Path, PathBuf};
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

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("validate") {
        bench_validate();
    }
    let _ = Path::new(".");
}
