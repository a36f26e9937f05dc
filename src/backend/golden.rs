//! Golden tests: a range of plans rendered by both backends side by side, compared with
//! the reviewed files in `src/backend/golden/` (`TAPIR_BLESS=1 cargo test` rewrites them;
//! review the diff). A change to either renderer shows up here next to the other.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::apptainer::{self, Capabilities, ImageFacts, ImageRef};
use super::docker;
use crate::resolve::plan::{
    CommandSource, Direction, EnvSource, EnvValue, HOME_FOR_INVOKER, Limits, PlannedBind,
    PlannedEnv, PlannedMount, PlannedUser, RunPlan,
};
use crate::resolve::run_options::{self, EngineOptions, GpuRequest};

fn env(name: &str, value: &str, source: EnvSource) -> PlannedEnv {
    PlannedEnv {
        name: name.into(),
        value: EnvValue {
            text: value.into(),
            secret: crate::model::secret::is_secret_name(name),
        },
        source,
    }
}

fn mount(channel: &str, direction: Direction, host: &str, container: &str) -> PlannedMount {
    PlannedMount {
        channel: channel.into(),
        direction,
        host_path: PathBuf::from(host),
        container_path: container.into(),
        read_only: direction == Direction::Input,
    }
}

fn base() -> RunPlan {
    RunPlan {
        task_name: "golden".into(),
        template: "t".into(),
        template_source: "inline".into(),
        image: "registry.example/tool:1.0".into(),
        mounts: Vec::new(),
        binds: Vec::new(),
        env: vec![
            env("MODE", "fast", EnvSource::Task),
            env("HOME", "/tmp", EnvSource::Tapir(HOME_FOR_INVOKER)),
        ],
        command: Some(vec!["sh".into(), "-c".into(), "echo hi".into()]),
        command_source: CommandSource::Template,
        entrypoint: None,
        limits: Limits::default(),
        labels: BTreeMap::from([("tapir.task".into(), "golden".into())]),
        user: PlannedUser::Invoker {
            uid: 1000,
            gid: 1000,
        },
        network: None,
        engine: Default::default(),
        warnings: Vec::new(),
    }
}

/// The plans, by name.
fn plans() -> Vec<(&'static str, RunPlan)> {
    let mut minimal = base();
    minimal.env.truncate(1);

    let mut channels_and_limits = base();
    channels_and_limits.mounts = vec![
        mount("in", Direction::Input, "/data/in", "/home/in"),
        mount("out", Direction::Output, "/data/out", "/home/out"),
    ];
    channels_and_limits.limits = Limits {
        memory_bytes: Some(50 * 1024 * 1024),
        memory_reason: Some("declared".into()),
        memory_reservation_bytes: Some(20 * 1024 * 1024),
        cpu_millis: Some(500),
        gpus: Some(1),
        scale_rules: Vec::new(),
    };

    let mut secrets_and_awkward_values = base();
    secrets_and_awkward_values.env.extend([
        env("API_TOKEN", "s3cret", EnvSource::CommandLine),
        env("LIST", "a,b", EnvSource::Task),
        env("QUOTED", "say \"hi\"", EnvSource::Task),
        env("EQUATION", "x=1", EnvSource::Template),
    ]);

    let mut image_defaults = base();
    image_defaults.command = None;
    image_defaults.user = PlannedUser::Image;
    image_defaults.network = Some("none".into());
    image_defaults.env.truncate(1);

    let mut entrypoint_and_colon_path = base();
    entrypoint_and_colon_path.entrypoint = Some("/bin/other".into());
    entrypoint_and_colon_path.mounts = vec![mount(
        "in",
        Direction::Input,
        "/data/2026-11-21T10:00/in",
        "/home/in",
    )];

    let mut binds = base();
    binds.env.truncate(1);
    binds.mounts = vec![mount("in", Direction::Input, "/data/in", "/home/in")];
    binds.binds = vec![
        PlannedBind {
            host_path: PathBuf::from("/data/reference"),
            container_path: "/reference".into(),
            read_only: true,
        },
        PlannedBind {
            host_path: PathBuf::from("/data/2026-11-21T10:00/scratch"),
            container_path: "/scratch".into(),
            read_only: false,
        },
    ];

    // Paths apptainer's --bind parser would alter (it also splits on `^`, trims blanks and
    // takes `\` as an escape), and a `"` that --mount's CSV needs quoted.
    let mut bind_paths_apptainer_would_alter = base();
    bind_paths_apptainer_would_alter.env.truncate(1);
    bind_paths_apptainer_would_alter.binds = [
        ("/data/a^b", "/x", true),
        ("/data/back\\slash", "/y", false),
        ("/data/trailing ", "/z", true),
        ("/data/say \"hi\":x", "/q", true),
        ("/data/plain dir", "/p", true),
    ]
    .into_iter()
    .map(|(host, container, read_only)| PlannedBind {
        host_path: PathBuf::from(host),
        container_path: container.into(),
        read_only,
    })
    .collect();

    // `run --shm-size 2Gi --gpus device=0,2 --publish 5000 --publish 0.0.0.0:8080:80
    // --engine-arg=--cap-add=SYS_PTRACE`, over a task that asks for one GPU.
    let mut engine_options = base();
    engine_options.env.truncate(1);
    engine_options.limits.gpus = Some(1);
    engine_options.engine = EngineOptions {
        shm_size_bytes: Some(2 << 30),
        gpus: Some(GpuRequest::Devices(vec!["0".into(), "2".into()])),
        ports: ["5000", "0.0.0.0:8080:80"]
            .iter()
            .map(|p| run_options::parse_publish(p).expect("port"))
            .collect(),
        engine_args: vec!["--cap-add=SYS_PTRACE".into()],
    };
    let mut all_gpus = base();
    all_gpus.env.truncate(1);
    all_gpus.engine.gpus = Some(GpuRequest::All);

    vec![
        ("minimal", minimal),
        ("engine-options", engine_options),
        ("all-gpus", all_gpus),
        (
            "bind-paths-apptainer-would-alter",
            bind_paths_apptainer_would_alter,
        ),
        ("binds", binds),
        ("channels-and-limits", channels_and_limits),
        ("secrets-and-awkward-values", secrets_and_awkward_values),
        ("image-defaults", image_defaults),
        ("entrypoint-and-colon-path", entrypoint_and_colon_path),
    ]
}

/// Both renderings of one plan, as reviewed text.
fn render_both(plan: &RunPlan) -> String {
    let run_dir = Path::new("/runs/task_run-RUNID");
    let mut out = String::new();
    let docker = docker::run_argv(plan, "RUNID", run_dir);
    let _ = writeln!(out, "docker:");
    for word in &docker.argv {
        let _ = writeln!(out, "  {word:?}");
    }
    let names: Vec<&str> = docker.secret_env.iter().map(|(n, _)| n.as_str()).collect();
    let _ = writeln!(out, "  environment: {names:?}");
    let facts = ImageFacts {
        entrypoint: Some(vec!["/entry".into()]),
        working_dir: Some("/work".into()),
    };
    let image = ImageRef::DockerDaemon(plan.image.clone());
    for limits in [true, false] {
        let caps = Capabilities {
            limits_blocked: (!limits).then(|| "cgroups v1".to_string()),
            usable_cpus: 4,
            no_eval: true,
            ..Capabilities::default()
        };
        let (rendered, warnings) =
            apptainer::exec_argv(plan, &image, &facts, &run_dir.join("scratch"), &caps);
        let _ = writeln!(out, "apptainer (limits supported: {limits}):");
        for word in &rendered.argv {
            let _ = writeln!(out, "  {word:?}");
        }
        let names: Vec<&str> = rendered
            .secret_env
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let _ = writeln!(out, "  environment: {names:?}");
        for warning in warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
    }
    out
}

#[test]
fn both_backends_render_every_plan_as_reviewed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend/golden");
    let bless = std::env::var_os("TAPIR_BLESS").is_some();
    let mut failures = Vec::new();
    for (name, plan) in plans() {
        let actual = render_both(&plan);
        // No secret value may appear in either argv.
        assert!(!actual.contains("s3cret"), "{name}: a secret is in an argv");
        let path = dir.join(format!("{name}.txt"));
        if bless {
            std::fs::write(&path, &actual).expect("write golden file");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{} differs:\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            )),
            Err(_) => failures.push(format!(
                "{} is missing (TAPIR_BLESS=1 writes it; review it):\n{actual}",
                path.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn secrets_and_awkward_values_travel_in_the_environment() {
    let (_, plan) = plans()
        .into_iter()
        .find(|(n, _)| *n == "secrets-and-awkward-values")
        .expect("plan");
    let (rendered, _) = apptainer::exec_argv(
        &plan,
        &ImageRef::Sandbox("/img".into()),
        &ImageFacts::default(),
        Path::new("/scratch"),
        &Capabilities::default(),
    );
    let env: BTreeMap<&str, &str> = rendered
        .secret_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env.get("APPTAINERENV_API_TOKEN"), Some(&"s3cret"));
    assert_eq!(env.get("APPTAINERENV_LIST"), Some(&"a,b"));
    assert_eq!(env.get("APPTAINERENV_QUOTED"), Some(&"say \"hi\""));
    assert!(rendered.argv.contains(&"MODE=fast".to_string()));
    assert!(!rendered.argv.iter().any(|w| w.starts_with("HOME=")));
}

#[test]
fn image_references_are_classified() {
    let here = Path::new("/nonexistent-base");
    let none = |_: &str| false;
    assert_eq!(
        ImageRef::parse("docker://alpine:3", here, none),
        ImageRef::Docker("alpine:3".into())
    );
    assert_eq!(
        ImageRef::parse("docker-daemon:tool:1", here, none),
        ImageRef::DockerDaemon("tool:1".into())
    );
    assert_eq!(
        ImageRef::parse("oras://reg/x:1", here, none),
        ImageRef::Oras("oras://reg/x:1".into())
    );
    assert_eq!(
        ImageRef::parse("tool.sif", here, none),
        ImageRef::Sif(here.join("tool.sif"))
    );
    assert_eq!(
        ImageRef::parse("tool:1", here, |r| r == "tool:1"),
        ImageRef::DockerDaemon("tool:1".into())
    );
    assert_eq!(
        ImageRef::parse("tool:1", here, none),
        ImageRef::Docker("tool:1".into())
    );
    let tmp = tempfile::tempdir().expect("tmp");
    assert_eq!(
        ImageRef::parse(".", tmp.path(), none),
        ImageRef::Sandbox(tmp.path().join("."))
    );
}

#[test]
fn docker_gives_the_invoker_home_tmp_and_at_least_six_mib() {
    let mut plan = base();
    plan.env.retain(|e| e.name != "HOME");
    plan.limits.memory_bytes = Some(1024 * 1024);
    plan.limits.memory_reason = Some("declared in resources.limits.memory".into());
    let warnings = docker::adapt_plan(&mut plan);
    let home = plan.env.iter().find(|e| e.name == "HOME").expect("HOME");
    assert_eq!(home.value.text, "/tmp");
    assert_eq!(home.source.to_string(), "tapir (runs as the invoking user)");
    assert_eq!(plan.limits.memory_bytes, Some(docker::DOCKER_MIN_MEMORY));
    assert_eq!(
        plan.limits.memory_reason.as_deref(),
        Some("declared in resources.limits.memory (raised to Docker's minimum)")
    );
    assert_eq!(
        warnings,
        ["the memory limit 1Mi is below Docker's minimum of 6 MiB; raised to 6 MiB"]
    );

    // HOME set by the task, the image's own user, and a limit above the minimum: no change.
    let mut plan = base();
    plan.env = vec![env("HOME", "/home/task", EnvSource::Task)];
    plan.limits.memory_bytes = Some(64 * 1024 * 1024);
    assert!(docker::adapt_plan(&mut plan).is_empty());
    assert_eq!(plan.env.len(), 1);
    assert_eq!(plan.limits.memory_bytes, Some(64 * 1024 * 1024));
    let mut plan = base();
    plan.env.truncate(1);
    plan.user = PlannedUser::Image;
    docker::adapt_plan(&mut plan);
    assert!(!plan.env.iter().any(|e| e.name == "HOME"));
}
