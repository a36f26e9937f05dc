//! Benchmarks of the real `tapir` binary (`cargo bench`). Figures are reported next to a
//! baseline measured in the same run, never compared with fixed times in a test.
//!
//! `cargo bench --bench bench -- GROUP` runs one group: `validate`, `run`, `ps`, `logs`,
//! `pipeline`, `pipeline-validate`, `scale` or `slurm` (names match exactly); without
//! one, all run (`slurm` needs the test cluster of tests/setup/slurm.sh).

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary measured: this build's, or TAPIR_BENCH_BINARY (another build, such as a
/// copy kept from before a change, measured by the same benchmark code).
fn tapir() -> PathBuf {
    std::env::var_os("TAPIR_BENCH_BINARY")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tapir")), PathBuf::from)
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

    let cat = measure(Command::new("cat").arg(run.join("stdout.log")), None);
    let tiny = measure(Command::new(tapir()).arg("logs").arg(&small), None);
    let big = measure(Command::new(tapir()).arg("logs").arg(&run), None);
    let stamped = measure(
        Command::new(tapir())
            .args(["logs", "--timestamps"])
            .arg(&run),
        None,
    );
    for done in [&cat, &tiny, &big, &stamped] {
        done.assert_success();
    }
    println!(
        "1 GiB log: tapir logs {} (peak {} KiB), --timestamps {} (peak {} KiB); cat {}; a 6-byte log: {} (peak {} KiB)",
        ms(big.wall),
        big.peak_kib,
        ms(stamped.wall),
        stamped.peak_kib,
        ms(cat.wall),
        ms(tiny.wall),
        tiny.peak_kib
    );
}

/// What one finished command cost: wall time, CPU time of the process itself and of the
/// descendants it waited for, and its own peak resident memory.
struct Measured {
    wall: Duration,
    status: std::process::ExitStatus,
    /// The first line of its stderr, to say why it failed.
    stderr_head: String,
    /// User + system CPU of the process itself (all its threads).
    own_cpu: Duration,
    /// User + system CPU of the descendants it waited for (their own waited-for
    /// descendants included: the kernel adds a reaped child's totals to its parent's).
    children_cpu: Duration,
    /// Peak resident memory (VmHWM) of the process itself, KiB, sampled every 10 ms.
    peak_kib: u64,
}

impl Measured {
    fn assert_success(&self) {
        assert!(
            self.status.success(),
            "failed ({}): {}",
            self.status,
            self.stderr_head
        );
    }
}

/// Runs `cmd` (stdout discarded) and measures it; kills it after `deadline` if given.
///
/// CPU times are read from `/proc/PID/stat` while the process is a zombie: it has exited
/// but is not yet reaped (`waitid` with `WNOWAIT` waits without reaping), so the kernel
/// still holds its final totals, its own (`utime`, `stime`) apart from those of the
/// children it reaped (`cutime`, `cstime`). After the reaping only their sum would be
/// left (in our own `cutime`). Peak memory cannot be read from a zombie (its memory is
/// gone), so a thread samples the high-water mark while it runs; VmHWM only grows, so a
/// sample misses at most what the last 10 ms added.
fn measure(cmd: &mut Command, deadline: Option<Duration>) -> Measured {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    use nix::unistd::Pid;
    use std::io::{Read, Seek};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let mut stderr = tempfile::tempfile().expect("temp file");
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(stderr.try_clone().expect("dup"))
        .spawn()
        .expect("command starts");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let (exited, peak) = (AtomicBool::new(false), AtomicU64::new(0));
    let (wall, stat) = std::thread::scope(|scope| {
        scope.spawn(|| {
            let status_file = format!("/proc/{pid}/status");
            while !exited.load(Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(&status_file)
                    .ok()
                    .and_then(|text| proc_field(&text, "VmHWM:"))
                {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                if deadline.is_some_and(|d| start.elapsed() > d) {
                    // Not yet reaped (only the main thread reaps, after `exited`), so
                    // the pid is still this child's.
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).expect("waitid");
        let wall = start.elapsed();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("zombie stat");
        exited.store(true, Ordering::Relaxed);
        (wall, stat)
    });
    let status = child.wait().expect("wait");
    // Fields after the command name (which may hold spaces, hence the last ')'): state is
    // field 3, utime 14, stime 15, cutime 16, cstime 17, in clock ticks of 1/100 s
    // (USER_HZ, which Linux fixes at 100 for /proc).
    let fields: Vec<u64> = stat[stat.rfind(')').expect("stat has a name") + 2..]
        .split(' ')
        .skip(1)
        .map(|f| f.trim().parse().unwrap_or(0))
        .collect();
    let ticks = |at: usize| Duration::from_millis(10 * fields[at - 4]);
    let mut head = String::new();
    stderr.rewind().expect("rewind");
    stderr.read_to_string(&mut head).ok();
    Measured {
        wall,
        status,
        stderr_head: head.lines().next().unwrap_or_default().to_string(),
        own_cpu: ticks(14) + ticks(15),
        children_cpu: ticks(16) + ticks(17),
        peak_kib: peak.into_inner(),
    }
}

/// The number in a `/proc/PID/status` line such as `VmHWM:   1234 kB`.
fn proc_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A comma-separated list from the environment, or `default`.
fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `tapir ps` over 10,000 settled run folders with realistic records (goal: under 100 ms),
/// all of them and the newest 20 (`-n 20`), against `ls` of the same folder.
fn bench_ps() {
    println!("## ps");
    let runs = 10_000;
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..runs {
        // Run ids sort by age like real ones (the time part first).
        let id = format!("00001m7z{i:05}aaaaaaaa");
        let run = dir.path().join(format!("task_run-{id}"));
        std::fs::create_dir(&run).expect("mkdir");
        let text = serde_json::to_vec_pretty(&sample_record(&id, i)).expect("json");
        std::fs::write(run.join("record.json"), text).expect("write record");
    }
    let rounds = 10;
    let median_of = |args: &[&str]| {
        median(
            (0..rounds)
                .map(|_| time(Command::new(tapir()).args(args).current_dir(dir.path())))
                .collect(),
        )
    };
    let ls = median(
        (0..rounds)
            .map(|_| time(Command::new("ls").arg(dir.path())))
            .collect(),
    );
    println!(
        "{runs} runs, medians over {rounds} calls; ls of the folder {}",
        ms(ls)
    );
    for args in [
        &["ps"][..],
        &["ps", "-n", "20"],
        &["ps", "--format", "json"],
    ] {
        let took = median_of(args);
        println!(
            "tapir {:<18} {:>11}  ratio to ls {:>6.1}  (goal < 100 ms)",
            args.join(" "),
            ms(took),
            took.as_secs_f64() / ls.as_secs_f64()
        );
    }
}

/// The engines `bench_pipeline` compares on: tapir's modes, each with a baseline that
/// runs tapir's own engine command directly.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    /// The stand-in `tests/apptainer/apptainer` (bash + bwrap) on a sandbox folder: a
    /// container costs ~30 ms, so tapir's own overhead shows most here.
    Apptainer,
    /// The real Docker engine with the example image: ~200 ms a container.
    Docker,
}

impl Engine {
    fn from_name(name: &str) -> Engine {
        match name {
            "apptainer" => Engine::Apptainer,
            "docker" => Engine::Docker,
            other => panic!("TAPIR_BENCH_ENGINES: unknown engine {other:?} (apptainer, docker)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Engine::Apptainer => "apptainer stand-in",
            Engine::Docker => "docker",
        }
    }

    /// Makes the image (sandbox folder or example image) and returns the task's `image`.
    fn prepare_image(self, root: &Path) -> String {
        match self {
            Engine::Docker => {
                build_example_image(root);
                "tapir-example/dummy:latest".to_string()
            }
            Engine::Apptainer => {
                let sandbox = root.join("target/tapir-bench-sandbox");
                let made = Command::new("bash")
                    .arg(root.join("tests/apptainer/make-sandbox.sh"))
                    .arg(&sandbox)
                    .status()
                    .expect("bash runs");
                assert!(made.success(), "tests/apptainer/make-sandbox.sh failed");
                sandbox.display().to_string()
            }
        }
    }

    /// A `tapir` command in this mode.
    fn tapir(self, root: &Path, args: &[&str]) -> Command {
        let mut cmd = self.command(root, tapir());
        cmd.args(args);
        match self {
            Engine::Docker => cmd.args(["--mode", "docker", "--network", "none"]),
            Engine::Apptainer => cmd.args(["--mode", "apptainer"]),
        };
        cmd
    }

    /// A command whose PATH finds this engine (the stand-in as `apptainer`).
    fn command(self, root: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        if self == Engine::Apptainer {
            let path = format!(
                "{}:{}",
                root.join("tests/apptainer").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            cmd.env("PATH", path);
        }
        cmd
    }

    /// The option of tapir's engine argv whose value is the run's own (container name,
    /// scratch folder): the baseline gives each of its commands a fresh one instead.
    fn per_task_option(self) -> &'static str {
        match self {
            Engine::Docker => "--name",
            Engine::Apptainer => "--workdir",
        }
    }

    /// The per-task value for the baseline's command `i` of `round` (made beforehand: a
    /// scratch folder exists before tapir's run starts too).
    fn per_task_value(self, dir: &Path, round: usize, i: usize) -> String {
        match self {
            Engine::Docker => format!("tapir-bench-xargs-{}-{round}-{i}", std::process::id()),
            Engine::Apptainer => {
                let scratch = dir.join(format!("xargs-scratch/{round}/{i}"));
                std::fs::create_dir_all(&scratch).expect("mkdir scratch");
                scratch.display().to_string()
            }
        }
    }
}

/// A pipeline of `tasks` trivial tasks (`true`), independent or each after the previous.
fn noop_pipeline(image: &str, tasks: usize, chain: bool) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = (0..tasks)
        .map(|i| {
            let mut entry =
                serde_json::json!({"id": format!("t{i:05}"), "task": noop_task(image, i)});
            if chain && i > 0 {
                entry["depends_on"] = serde_json::json!([{"id": format!("t{:05}", i - 1)}]);
            }
            entry
        })
        .collect();
    serde_json::json!({"name": "noop", "tasks": entries})
}

fn noop_task(image: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "name": format!("noop {i}"),
        "image": image,
        "taskTemplate": {
            "identifier": "noop", "description": "does nothing",
            "inputs": [], "outputs": [], "env": [],
            "command": ["true"]
        }
    })
}

/// One pipeline shape of `bench_pipeline`, written as `50` (independent tasks) or
/// `chain500` in TAPIR_BENCH_SIZES.
#[derive(Clone, Copy)]
struct Shape {
    tasks: usize,
    chain: bool,
}

impl Shape {
    fn parse(word: &str) -> Shape {
        let (chain, count) = match word.strip_prefix("chain") {
            Some(rest) => (true, rest),
            None => (false, word),
        };
        let tasks = count.parse().unwrap_or_else(|_| {
            panic!("TAPIR_BENCH_SIZES: {word:?} is not a task count like 50 or chain500")
        });
        Shape { tasks, chain }
    }

    fn label(self) -> String {
        if self.chain {
            format!("chain of {}", self.tasks)
        } else {
            format!("{} independent", self.tasks)
        }
    }

    /// Rounds for this size: a round of 2,000 tasks on Docker takes minutes.
    fn rounds(self) -> usize {
        if let Ok(n) = std::env::var("TAPIR_BENCH_ROUNDS") {
            return n.parse().expect("TAPIR_BENCH_ROUNDS: a number");
        }
        match self.tasks {
            0..=100 => 3,
            101..=1000 => 2,
            _ => 1,
        }
    }

    /// The baseline's parallelism: tapir's `--jobs 2` for independent tasks; a chain can
    /// only run one task at a time, by tapir or by anyone.
    fn baseline_jobs(self) -> usize {
        if self.chain { 1 } else { 2 }
    }
}

/// `tapir pipeline run --jobs 2` of trivial tasks (`true`), on each engine and shape,
/// against `xargs` running the same engine commands (tapir's own argv, from a dry run;
/// `-P2`, or `-P1` for a chain), the two interleaved round by round so that both see the
/// same machine.
///
/// tapir's own CPU time per task is the CPU time of the whole tapir process tree (the
/// pipeline process, its `tapir run` children and the engine commands those run: every
/// process the pipeline process reaped, as its `cutime`) minus the CPU time of the
/// baseline's engine commands (xargs's `cutime`), divided by the tasks: what tapir adds
/// to the same engine work. Docker containers are children of the engine, not of either
/// tree, so neither side counts them; the stand-in's bwrap sandboxes are counted on both.
/// Engine calls that only tapir makes (such as an image inspection) count as tapir's.
/// The pipeline process's own CPU is also shown apart: it must not grow with the size.
///
/// TAPIR_BENCH_SIZES (default `50,500,2000,chain500`), TAPIR_BENCH_ENGINES (default
/// `apptainer,docker`) and TAPIR_BENCH_ROUNDS (default 3 up to 100 tasks, 2 up to 1,000,
/// then 1) choose what runs.
fn bench_pipeline() {
    println!("## pipeline");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shapes: Vec<Shape> = env_list("TAPIR_BENCH_SIZES", "50,500,2000,chain500")
        .iter()
        .map(|w| Shape::parse(w))
        .collect();
    let engines: Vec<Engine> = env_list("TAPIR_BENCH_ENGINES", "apptainer,docker")
        .iter()
        .map(|w| Engine::from_name(w))
        .collect();
    println!(
        "| engine | tasks | rounds | tapir wall | xargs wall | ratio | tapir CPU/task | of it, pipeline process | engine CPU/task | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for engine in engines {
        let image = engine.prepare_image(&root);
        // Warm-up: the engine's caches, the page cache of the image and of tapir.
        compare_pipeline(
            &root,
            engine,
            &image,
            Shape {
                tasks: 10,
                chain: false,
            },
            1,
        );
        for shape in &shapes {
            let row = compare_pipeline(&root, engine, &image, *shape, shape.rounds());
            println!("{row}");
        }
    }
    println!(
        "(goal: ratio <= 1.2 on the stand-in and <= 1.1 on docker; tapir CPU/task flat; load: {})",
        load_average()
    );
}

/// Runs one shape in `rounds` interleaved rounds of baseline and tapir; returns the table row.
fn compare_pipeline(
    root: &Path,
    engine: Engine,
    image: &str,
    shape: Shape,
    rounds: usize,
) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = noop_pipeline(image, shape.tasks, shape.chain);
    std::fs::write(dir.path().join("pipeline.json"), pipeline.to_string()).expect("write");
    std::fs::write(
        dir.path().join("task.json"),
        noop_task(image, 0).to_string(),
    )
    .expect("write");
    let runs = dir.path().join("runs");
    let runs_arg = runs.display().to_string();

    // The baseline runs what tapir renders for one such task, each with its own value of
    // the per-task option (`{}` for xargs).
    let plan = engine
        .tapir(root, &["run", "--dry-run", "--format", "json", "task.json"])
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
    let at = argv
        .iter()
        .position(|w| w == engine.per_task_option())
        .expect("the per-task option in tapir's argv");
    argv[at + 1] = "{}".into();
    if engine == Engine::Docker {
        // tapir removes its containers itself after reading their state.
        argv.insert(2, "--rm".into());
    }
    let values = dir.path().join("values.txt");

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let list: String = (0..shape.tasks)
            .map(|i| engine.per_task_value(dir.path(), round, i) + "\n")
            .collect();
        std::fs::write(&values, list).expect("write values");
        let mut xargs = engine.command(root, "xargs");
        xargs
            .arg("-a")
            .arg(&values)
            .arg(format!("-P{}", shape.baseline_jobs()))
            .arg("-I{}")
            .args(&argv)
            .current_dir(dir.path());
        let baseline = measure(&mut xargs, None);
        baseline.assert_success();
        theirs.push(baseline);

        let mut pipeline_run = engine.tapir(
            root,
            &[
                "pipeline",
                "run",
                "pipeline.json",
                "--jobs",
                "2",
                "--runs-dir",
                &runs_arg,
            ],
        );
        let mine = measure(pipeline_run.current_dir(dir.path()), None);
        mine.assert_success();
        ours.push(mine);
    }

    let per_task = |d: f64| d * 1000.0 / shape.tasks as f64;
    let wall = |m: &[Measured]| median(m.iter().map(|m| m.wall).collect());
    let (our_wall, their_wall) = (wall(&ours), wall(&theirs));
    let engine_cpu = median(theirs.iter().map(|m| m.children_cpu).collect());
    let tree_cpu = median(ours.iter().map(|m| m.own_cpu + m.children_cpu).collect());
    let pipeline_cpu = median(ours.iter().map(|m| m.own_cpu).collect());
    let peak = ours.iter().map(|m| m.peak_kib).max().unwrap_or(0);
    format!(
        "| {} | {} | {rounds} | {:.2} s | {:.2} s | {:.2} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} MB |",
        engine.name(),
        shape.label(),
        our_wall.as_secs_f64(),
        their_wall.as_secs_f64(),
        our_wall.as_secs_f64() / their_wall.as_secs_f64(),
        per_task(tree_cpu.as_secs_f64() - engine_cpu.as_secs_f64()),
        per_task(pipeline_cpu.as_secs_f64()),
        per_task(engine_cpu.as_secs_f64()),
        peak as f64 / 1024.0,
    )
}

/// The machine's load (1, 5, 15 minutes), printed with figures taken on a shared machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `tapir pipeline validate` of big generated pipelines: time and peak memory (goal for
/// 10,000 tasks: under 2 s and 200 MB), each at a tenth of its size too, so that the
/// growth per task shows (1.0 = linear).
///
/// A binary tree of tasks whose each task reads its parent's output channel (channel
/// maps are checked), with the tasks inline and with every task naming one task file;
/// and a chain of 40,000 whose each task reads the one before (a long path through the
/// graph), its tasks by file (40,000 inline tasks would pass the 8 MiB limit on a file).
fn bench_pipeline_validate() {
    println!("## pipeline-validate");
    let dir = tempfile::tempdir().expect("temp dir");
    let deadline = Duration::from_secs(120);
    write_step_task(dir.path());
    let cases = [
        ("tree, tasks inline", [1_000, 10_000], false, true),
        ("tree, tasks by file", [1_000, 10_000], false, false),
        ("chain, tasks by file", [4_000, 40_000], true, false),
    ];
    for (shape, sizes, chain, inline) in cases {
        let mut per_task = Vec::new();
        for tasks in sizes {
            let file = dir.path().join(format!("{tasks}-{chain}-{inline}.json"));
            std::fs::write(&file, big_pipeline(tasks, chain, inline).to_string()).expect("write");
            let bytes = std::fs::metadata(&file).expect("metadata").len();
            // Three calls, or one when it is slow (far from the goal, and the machine is shared).
            let mut samples = Vec::new();
            while samples.len() < 3 {
                let sample = measure(
                    Command::new(tapir())
                        .args(["pipeline", "validate"])
                        .arg(&file),
                    Some(deadline),
                );
                let slow = sample.wall > Duration::from_secs(10);
                samples.push(sample);
                if slow {
                    break;
                }
            }
            let rounds = samples.len();
            if let Some(failed) = samples.iter().find(|m| !m.status.success()) {
                // The report (on stdout, which `measure` discards) says why: once more.
                let again = Command::new(tapir())
                    .args(["pipeline", "validate"])
                    .arg(&file)
                    .output()
                    .expect("tapir starts");
                let text = String::from_utf8_lossy(&again.stdout).into_owned()
                    + &String::from_utf8_lossy(&again.stderr);
                println!(
                    "{shape} of {tasks} tasks ({:.1} MB): failed after {} ({}): {}",
                    bytes as f64 / 1e6,
                    ms(failed.wall),
                    failed.status,
                    text.lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or(&failed.stderr_head)
                );
                break;
            }
            let wall = median(samples.iter().map(|m| m.wall).collect());
            let peak = samples.iter().map(|m| m.peak_kib).max().unwrap_or(0);
            per_task.push(wall.as_secs_f64() / tasks as f64);
            println!(
                "{shape} of {tasks} tasks ({:.1} MB): median {} over {rounds} calls, peak {:.1} MB",
                bytes as f64 / 1e6,
                ms(wall),
                peak as f64 / 1024.0
            );
        }
        if let [small, big] = per_task[..] {
            println!(
                "{shape}: time per task grows {:.2}x from the small to the big one",
                big / small
            );
        }
    }
    println!(
        "(goal: 10,000 tasks in under 2 s and 200 MB; load: {})",
        load_average()
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
    // success is not asked for: only time and memory matter here.
    let time_and_peak = |args: &[&str], path: &std::path::Path| {
        let m = measure(Command::new(tapir()).args(args).arg(path), None);
        (m.wall, m.peak_kib)
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
            let (time, peak) = time_and_peak(args, &path);
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

/// A valid pipeline of `tasks` tasks: a chain (each reads the output of the one before)
/// or a binary tree (task i reads the output of task (i-1)/2). Every task is the same
/// step, inline or named by its file, `step.json` (which `write_step_task` writes), as a
/// generated pipeline would.
fn big_pipeline(tasks: usize, chain: bool, inline: bool) -> serde_json::Value {
    let task = if inline {
        step_task()
    } else {
        serde_json::json!("step.json")
    };
    let entries: Vec<serde_json::Value> = (0..tasks)
        .map(|i| {
            let mut entry = serde_json::json!({"id": format!("t{i:05}"), "task": task});
            if i > 0 {
                let upstream = format!("t{:05}", if chain { i - 1 } else { (i - 1) / 2 });
                entry["iochannel_maps"] = serde_json::json!([{"upstream_task": upstream,
                    "upstream_output_channel": "out", "input_channel": "in"}]);
            }
            entry
        })
        .collect();
    serde_json::json!({"name": if chain { "chain" } else { "tree" }, "tasks": entries})
}

/// The task of every task of `big_pipeline`: one input and one output channel.
fn step_task() -> serde_json::Value {
    serde_json::json!({
        "name": "step", "image": "busybox",
        "taskTemplate": {"identifier": "step", "description": "A step.",
            "inputs": [{"name": "in", "mounted_path": "/in"}],
            "outputs": [{"name": "out", "mounted_path": "/out"}], "env": [],
            "command": ["sh", "-c", "cp -r /in/. /out/"]}
    })
}

/// `step.json`, the task file the tasks of `big_pipeline` name when not inline.
fn write_step_task(dir: &Path) {
    std::fs::write(dir.join("step.json"), step_task().to_string()).expect("write step.json");
}

fn main() {
    // Group names are matched exactly: `pipeline` must not also pick `pipeline-validate`.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| f == name);
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
    if wants("pipeline-validate") {
        bench_pipeline_validate();
    }
    if wants("slurm") {
        bench_slurm();
    }
}

/// The test cluster's slurm.conf (tests/setup/slurm.sh).
fn slurm_conf() -> PathBuf {
    let root = std::env::var_os("TAPIR_SLURM_ROOT")
        .map_or_else(|| PathBuf::from("/tmp/tapir-slurm"), PathBuf::from);
    let conf = root.join("slurm.conf");
    assert!(
        conf.is_file(),
        "no Slurm test cluster at {}: start it with tests/setup/slurm.sh",
        conf.display()
    );
    conf
}

/// Submits `count` jobs of `engine_command` with `sbatch --wrap` and polls `squeue` (one
/// call for all, every 250 ms, as a hand-written script would) until every job ended.
fn sbatch_wrap_and_poll(conf: &Path, engine_command: &str, count: usize) -> Duration {
    let start = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..count {
        let out = Command::new("sbatch")
            .args(["--parsable", "--output=/dev/null", "--wrap", engine_command])
            .env("SLURM_CONF", conf)
            .output()
            .expect("sbatch runs");
        assert!(out.status.success(), "sbatch failed: {out:?}");
        ids.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let jobs = ids.join(",");
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-t", "all", "-j", &jobs, "-o", "%T"])
            .env("SLURM_CONF", conf)
            .output()
            .expect("squeue runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let states: Vec<&str> = text.lines().collect();
        if out.status.success()
            && states.len() == count
            && states
                .iter()
                .all(|s| matches!(*s, "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT"))
        {
            assert!(
                states.iter().all(|s| *s == "COMPLETED"),
                "baseline jobs failed: {states:?}"
            );
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `pipeline run --executor slurm` against the same engine command submitted by hand with
/// `sbatch --wrap` and waited for with a polling loop, several sizes, interleaved; and
/// one `run --executor slurm` against one such job, for the latency tapir adds.
/// TAPIR_BENCH_SLURM_SIZES (default `10,50`), TAPIR_BENCH_ROUNDS (default 3).
fn bench_slurm() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    build_example_image(&root);
    let conf = slurm_conf();
    let image = "tapir-example/dummy:latest";
    let uid = nix_id("-u");
    let gid = nix_id("-g");
    // What tapir's node side asks the engine for (minus its labels and name).
    let engine_command = format!(
        "docker run --rm --init --security-opt no-new-privileges --pull never --network none --user {uid}:{gid} {image} true"
    );
    let rounds: usize = std::env::var("TAPIR_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("tmp");
    println!(
        "slurm: tapir --executor slurm vs sbatch --wrap + a squeue polling loop (same engine command), {rounds} rounds, medians"
    );
    let single_task = dir.path().join("single.json");
    std::fs::write(&single_task, noop_task(image, 0).to_string()).expect("write");
    let (mut mine, mut others) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        others.push(sbatch_wrap_and_poll(&conf, &engine_command, 1));
        let mut cmd = Command::new(tapir());
        cmd.args([
            "run",
            "--executor",
            "slurm",
            "--network",
            "none",
            "--runs-dir",
        ])
        .arg(dir.path().join("runs"))
        .arg(&single_task)
        .env("SLURM_CONF", &conf);
        mine.push(time(&mut cmd));
    }
    let (ours, theirs) = (median(mine), median(others));
    println!(
        "  1 task (run):        tapir {}  sbatch --wrap {}  latency tapir adds {}",
        ms(ours),
        ms(theirs),
        ms(ours.saturating_sub(theirs))
    );
    for size in env_list("TAPIR_BENCH_SLURM_SIZES", "10,50") {
        let tasks: usize = size.parse().expect("a size is a number");
        let pipeline = dir.path().join(format!("p{tasks}.json"));
        std::fs::write(&pipeline, noop_pipeline(image, tasks, false).to_string()).expect("write");
        let (mut mine, mut others) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            others.push(sbatch_wrap_and_poll(&conf, &engine_command, tasks));
            let mut cmd = Command::new(tapir());
            cmd.args([
                "pipeline",
                "run",
                "--executor",
                "slurm",
                "--network",
                "none",
                "--jobs",
            ])
            .arg(tasks.to_string())
            .arg("--runs-dir")
            .arg(dir.path().join("runs"))
            .arg(&pipeline)
            .env("SLURM_CONF", &conf);
            mine.push(time(&mut cmd));
        }
        let (mine, others) = (median(mine), median(others));
        println!(
            "  {tasks} tasks (pipeline): tapir {}  sbatch --wrap {}  ratio {:.2} (goal <= 1.1)  load {}",
            ms(mine),
            ms(others),
            mine.as_secs_f64() / others.as_secs_f64(),
            load_average()
        );
    }
}

/// `id -u` / `id -g`.
fn nix_id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
