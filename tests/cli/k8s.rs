//! Kubernetes manifests (`export k8s`, `run --executor k8s --dry-run`): golden manifests of
//! the task files of examples/ and tests/fixtures/valid, their check against the official
//! Kubernetes schemas (kubernetes-validate, installed by tests/setup/k8s.sh), the parity of
//! the Pod with what Kaapana's runner builds (reference §9), and the refusals that point
//! into the task file. No cluster is involved: none can run here.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{check_snapshot, fixtures, repo_root, run, tapir};

/// A task to export: (golden name, task file, --container-file, variables).
struct Case {
    name: &'static str,
    task: PathBuf,
    container_file: Option<PathBuf>,
    env: &'static [(&'static str, &'static str)],
}

const KAAPANA_ENV: &[(&str, &str)] = &[
    ("registryUrl", "registry.example.org"),
    ("registryUsername", "robot"),
    ("registryPassword", "pw-never-shown-1234"),
    ("output_dir", "/kaapana/data"),
    ("namespace", "services"),
];

fn cases() -> Vec<Case> {
    let examples = repo_root().join("examples");
    let valid = fixtures().join("valid");
    let dummy = examples.join("dummy/processing-container.json");
    vec![
        Case {
            name: "example-upstream",
            task: examples.join("upstream-task.json"),
            container_file: Some(dummy.clone()),
            env: &[],
        },
        Case {
            name: "example-downstream",
            task: examples.join("downstream-task.json"),
            container_file: Some(dummy.clone()),
            env: &[],
        },
        Case {
            name: "example-inline",
            task: examples.join("inline-task.json"),
            container_file: None,
            env: &[],
        },
        Case {
            name: "kaapana-upstream",
            task: valid.join("kaapana-upstream-task.json"),
            container_file: Some(dummy.clone()),
            env: KAAPANA_ENV,
        },
        Case {
            name: "kaapana-downstream",
            task: valid.join("kaapana-downstream-task.json"),
            container_file: Some(dummy),
            env: KAAPANA_ENV,
        },
        Case {
            name: "resources",
            task: valid.join("resources-task.json"),
            container_file: Some(valid.join("docs-processing-container.json")),
            env: &[],
        },
        Case {
            name: "inline-documented",
            task: valid.join("inline-documented-task.json"),
            container_file: None,
            env: &[],
        },
        Case {
            name: "nulls",
            task: valid.join("nulls-task.json"),
            container_file: None,
            env: &[],
        },
    ]
}

fn golden_dir() -> PathBuf {
    repo_root().join("tests/golden/k8s")
}

/// Exports `case` as `format` into a new folder; returns the Pod file's text with the
/// checkout's path written `$REPO` (host paths are absolute).
fn export(case: &Case, format: &str, out: &Path) -> String {
    let mut cmd = tapir(&repo_root(), ["export", "k8s"]);
    cmd.arg(&case.task)
        .arg("-o")
        .arg(out)
        .args(["--format", format]);
    if let Some(file) = &case.container_file {
        cmd.arg("--container-file").arg(file);
    }
    for (name, value) in case.env {
        cmd.env(name, value);
    }
    let done = run(&mut cmd);
    assert_eq!(done.code, 0, "{}: {}", case.name, done.stderr);
    let extension = if format == "json" { "json" } else { "yaml" };
    let pod = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == extension))
        .unwrap_or_else(|| {
            panic!(
                "{}: no .{extension} written in {}",
                case.name,
                out.display()
            )
        });
    let text = std::fs::read_to_string(pod).unwrap();
    text.replace(&repo_root().display().to_string(), "$REPO")
}

#[test]
fn k8s_export_matches_the_golden_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let mut differences = Vec::new();
    for case in cases() {
        let yaml = export(&case, "human", &dir.path().join(case.name));
        if let Some(diff) = check_snapshot(&golden_dir().join(format!("{}.yaml", case.name)), &yaml)
        {
            differences.push(diff);
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// `kubernetes-validate` and the Python beside it (which has PyYAML): on PATH, or where
/// tests/setup/k8s.sh puts them. Missing is a failure: the check must be able to fail.
fn kubernetes_validate() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/opt/tapir-kubernetes-validate/bin")])
        .chain(
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/share/tapir/kubernetes-validate/bin")),
        );
    for dir in candidates {
        let tool = dir.join("kubernetes-validate");
        if tool.is_file() {
            return std::fs::canonicalize(&tool).unwrap_or(tool);
        }
    }
    panic!("kubernetes-validate is not installed: run tests/setup/k8s.sh (tests/prepare.sh does)");
}

/// Kubernetes version whose schemas the manifests are checked against (the newest that
/// kubernetes-validate 1.37.0 bundles; the oldest supported is checked too).
const SCHEMA_VERSIONS: &[&str] = &["1.37.0", "1.30.0"];

#[test]
fn k8s_golden_manifests_pass_the_official_schemas() {
    let tool = kubernetes_validate();
    let files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(
        files.len() >= cases().len(),
        "golden manifests missing: {files:?}"
    );
    for version in SCHEMA_VERSIONS {
        let out = Command::new(&tool)
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .expect("kubernetes-validate starts");
        assert!(
            out.status.success(),
            "kubernetes-validate {version} refused a golden manifest:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The check can fail: a misspelt field and a wrong type are refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let good = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&bad, good.replace("restartPolicy:", "restartPolicey:")).unwrap();
    let out = Command::new(&tool)
        .arg("--strict")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a misspelt field passed the schema check"
    );
}

/// The YAML tapir writes by hand reads back (with PyYAML, as kubectl's parser would) to
/// exactly the JSON it writes.
#[test]
fn k8s_yaml_reads_back_as_the_json() {
    let python = kubernetes_validate().with_file_name("python");
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let yaml_text = export(&case, "human", &dir.path().join(format!("{}-y", case.name)));
        let json_text = export(&case, "json", &dir.path().join(format!("{}-j", case.name)));
        let yaml_file = dir.path().join(format!("{}.yaml", case.name));
        std::fs::write(&yaml_file, &yaml_text).unwrap();
        let out = Command::new(&python)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(&yaml_file)
            .output()
            .expect("python starts");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let from_yaml: Value = serde_json::from_slice(&out.stdout).unwrap();
        let from_json: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(from_yaml, from_json, "{}", case.name);
    }
}

/// The Pod as reference §9 says Kaapana's runner builds it, written by hand for the task
/// file that uses every config key. tapir's documented differences are removed from its
/// output first: the `app.kubernetes.io/managed-by` label, the `tapir/task` annotation,
/// `readOnly` on inputs (README, "Kubernetes").
fn kaapana_upstream_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "kubernetes-task-for-dummy-image",
            "namespace": "services",
            "labels": {"kaapana.ai/type": "processing-container"},
            "annotations": {"example.org/owner": "team-a"}
        },
        "spec": {
            "restartPolicy": "Never",
            "imagePullSecrets": [
                {"name": "kubernetes-task-for-dummy-image-secret"},
                {"name": "registry-secret"}
            ],
            "containers": [{
                "name": "main",
                "image": "registry.example.org/dummy:latest",
                "imagePullPolicy": "IfNotPresent",
                "command": "<the template's command>",
                "env": [
                    {"name": "TIME_SLEEP", "value": "0"},
                    {"name": "DUMMY", "value": "dummy"},
                    {"name": "WORKFLOW_DIR", "value": "/kaapanasrv/workflows"}
                ],
                "volumeMounts": [
                    {"name": "vol-channel1", "mountPath": "/home/channel1"},
                    {"name": "vol-channel2", "mountPath": "/home/channel2"},
                    {"name": "scratch", "mountPath": "/scratch"}
                ]
            }],
            "volumes": [
                {"name": "vol-channel1", "hostPath": {"path": "/kaapana/data/dummy/channel1"}},
                {"name": "vol-channel2", "hostPath": {"path": "/kaapana/data/dummy/channel2"}},
                {"name": "scratch", "emptyDir": {}}
            ]
        }
    })
}

/// Kaapana's Pod for kaapana-downstream-task.json: inputs only, memory limit 50Mi (no
/// scale-rule input on this machine: the declared limit), no requests.
fn kaapana_downstream_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "docker-task-for-dummy-image",
            "labels": {"org.example/pipeline": "dummy"},
            "annotations": {}
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": "registry.example.org/dummy:latest",
                "command": "<the template's command>",
                "resources": {"limits": {"memory": "50Mi"}},
                "volumeMounts": [
                    {"name": "vol-channel1", "mountPath": "/home/channel1"},
                    {"name": "vol-channel2", "mountPath": "/home/channel2"}
                ]
            }],
            "volumes": [
                {"name": "vol-channel1", "hostPath": {"path": "/kaapana/data/dummy/channel1"}},
                {"name": "vol-channel2", "hostPath": {"path": "/kaapana/data/dummy/channel2"}}
            ]
        }
    })
}

/// tapir's Pod minus its documented differences from Kaapana's.
fn without_tapir_differences(mut pod: Value) -> Value {
    pod["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("app.kubernetes.io/managed-by");
    pod["metadata"]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("tapir/task");
    let container = &mut pod["spec"]["containers"][0];
    container["command"] = json!("<the template's command>");
    for mount in container["volumeMounts"].as_array_mut().unwrap() {
        mount.as_object_mut().unwrap().remove("readOnly");
    }
    pod
}

/// Every leaf where the two differ, as `path: expected != actual`.
fn differences(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for key in e.keys().chain(a.keys().filter(|k| !e.contains_key(*k))) {
                differences(
                    e.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                    &format!("{path}.{key}"),
                    out,
                );
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                differences(e, a, &format!("{path}[{i}]"), out);
            }
        }
        (e, a) if e != a => out.push(format!("{path}: expected {e}, tapir wrote {a}")),
        _ => {}
    }
}

#[test]
fn k8s_pod_matches_kaapanas_runner_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let all = cases();
    for (name, expected) in [
        ("kaapana-upstream", kaapana_upstream_pod()),
        ("kaapana-downstream", kaapana_downstream_pod()),
    ] {
        let case = all.iter().find(|c| c.name == name).unwrap();
        let pod: Value =
            serde_json::from_str(&export(case, "json", &dir.path().join(name))).unwrap();
        let mut found = Vec::new();
        differences(&expected, &without_tapir_differences(pod), "", &mut found);
        assert!(found.is_empty(), "{name}:\n{}", found.join("\n"));
    }
}

#[test]
fn k8s_dry_run_masks_every_secret_and_names_the_pod_per_run() {
    let task = fixtures().join("valid/kaapana-upstream-task.json");
    let dummy = repo_root().join("examples/dummy/processing-container.json");
    for format in ["human", "json"] {
        let mut cmd = tapir(
            &repo_root(),
            ["run", "--executor", "k8s", "--dry-run", "--format", format],
        );
        cmd.args(["--timeout", "5400"]);
        cmd.arg(&task).arg("--container-file").arg(&dummy);
        cmd.args(["--env", "API_TOKEN=tok-never-shown-5678"]);
        for (name, value) in KAAPANA_ENV {
            cmd.env(name, value);
        }
        cmd.env("TAPIR_TEST_RUN_ID", "01JX0000000000000000ABCD");
        let done = run(&mut cmd);
        assert_eq!(done.code, 0, "{}", done.stderr);
        for secret in [
            "pw-never-shown-1234",
            "tok-never-shown-5678",
            "cm9ib3Q6cHct",
        ] {
            assert!(
                !done.stdout.contains(secret),
                "{format}: {secret} shown:\n{}",
                done.stdout
            );
            assert!(
                !done.stderr.contains(secret),
                "{format}: {secret} in stderr"
            );
        }
        // The registry Secret and the env Secret come first, masked; the Pod reads the
        // token from the env Secret.
        assert!(
            done.stdout.contains("kubernetes.io/dockerconfigjson"),
            "{}",
            done.stdout
        );
        assert!(done.stdout.contains("secretKeyRef"), "{}", done.stdout);
        assert!(done.stdout.contains("****"));
        // --timeout is the Pod's own deadline.
        assert!(
            done.stdout.contains("activeDeadlineSeconds: 5400")
                || done.stdout.contains("\"activeDeadlineSeconds\": 5400"),
            "{}",
            done.stdout
        );
        assert!(
            done.stdout
                .contains("kubernetes-task-for-dummy-image-0000abcd"),
            "the pod name ends with the run id's end:\n{}",
            done.stdout
        );
    }
}

/// Writes `task` (JSON) next to an inline template and dry-runs it on k8s.
fn dry_run_inline(config: Value) -> crate::support::Run {
    let dir = tempfile::tempdir().unwrap();
    let task = json!({
        "name": "check me",
        "image": "example:1",
        "taskTemplate": {"identifier": "t", "description": "d", "inputs": [],
            "outputs": [{"name": "out", "mounted_path": "/out"}], "env": []},
        "outputs": [{"name": "out", "volume_source": {"host_path": "out"}}],
        "config": config
    });
    let path = dir.path().join("task.json");
    std::fs::write(&path, serde_json::to_string_pretty(&task).unwrap()).unwrap();
    let mut cmd = tapir(
        dir.path(),
        ["run", "--executor", "k8s", "--dry-run", "task.json"],
    );
    run(&mut cmd)
}

#[test]
fn k8s_refusals_point_into_the_task_file() {
    // (config, words of the finding, text of the line it points at)
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"type": "k8s", "labels": {"stage": "not a label value"}}),
            "the value of label `stage`",
            r#""stage": "not a label value""#,
        ),
        (
            json!({"type": "k8s", "namespace": "My_Namespace"}),
            "the namespace `My_Namespace`",
            r#""namespace": "My_Namespace""#,
        ),
        (
            json!({"type": "k8s", "volumes": [{"name": "scratch", "emptydir": {}}],
                   "volume_mounts": [{"name": "scratch", "mountPath": "/scratch"}]}),
            "did you mean `emptyDir`?",
            r#""emptydir": {}"#,
        ),
        (
            json!({"type": "k8s", "volume_mounts": [{"name": "scrach", "mountPath": "/scratch"}]}),
            "names no volume of the pod",
            r#""name": "scrach""#,
        ),
        (
            json!({"type": "k8s", "env_vars": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db"}}}]}),
            "valueFrom.secretKeyRef has no `key`",
            r#""secretKeyRef": {"#,
        ),
        (
            json!({"type": "k8s", "registryUrl": "r.example", "registryPassword": "hunter2-secret"}),
            "registryUsername missing",
            r#""config": {"#,
        ),
    ];
    for (config, words, place) in cases {
        let done = dry_run_inline(config.clone());
        assert_eq!(done.code, 125, "{config}: {}", done.stderr);
        assert!(done.stdout.is_empty(), "{config}: a manifest was printed");
        assert!(
            done.stderr.contains(words),
            "{config}: no `{words}` in:\n{}",
            done.stderr
        );
        // The finding shows the task file's line the value came from.
        let shown = done
            .stderr
            .lines()
            .skip_while(|l| !l.contains("--> task.json:"))
            .nth(2)
            .unwrap_or_default();
        assert!(
            shown.contains(place),
            "{config}: not at {place}:\n{}",
            done.stderr
        );
        assert!(!done.stderr.contains("hunter2-secret"), "{}", done.stderr);
    }
    // A task name without a letter or digit names no pod.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("task.json"),
        r#"{"name": "???", "image": "x:1", "taskTemplate": {"identifier": "t", "description": "d", "inputs": [], "outputs": [], "env": []}}"#,
    )
    .unwrap();
    let done = run(&mut tapir(
        dir.path(),
        ["export", "k8s", "task.json", "-o", "out"],
    ));
    assert_eq!(done.code, 125, "{}", done.stderr);
    assert!(done.stderr.contains("task.json:1:10"), "{}", done.stderr);
    assert!(
        !dir.path().join("out").exists(),
        "a refused export wrote files"
    );
}

/// A pipeline exports one Pod per task, named after the task id, with the channel an
/// upstream task writes bound as its downstream's input under `--data-dir`, and a README
/// giving the order (Kubernetes has none).
#[test]
fn k8s_export_of_a_pipeline_writes_one_pod_per_task_in_level_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k8s");
    let pipeline = repo_root().join("examples/pipeline");
    let mut cmd = tapir(
        &pipeline,
        ["export", "k8s", "pipeline.json", "--conf", "conf.json"],
    );
    cmd.arg("-o")
        .arg(&out)
        .args(["--data-dir", "/srv/pipeline-data"]);
    let done = run(&mut cmd);
    assert_eq!(done.code, 0, "{}", done.stderr);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "01-get-data.yaml",
            "02-process-data.yaml",
            "03-upload-data.yaml",
            "README.md"
        ]
    );
    let process = std::fs::read_to_string(out.join("02-process-data.yaml")).unwrap();
    if let Some(diff) = check_snapshot(&golden_dir().join("pipeline-process-data.yaml"), &process) {
        panic!("{diff}");
    }
    // The conf file's value reached the task.
    assert!(process.contains("value: upper"), "{process}");
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    let order: Vec<usize> = [
        "## Level 1",
        "get-data.yaml",
        "## Level 2",
        "02-process-data.yaml",
        "## Level 3",
        "03-upload-data.yaml",
    ]
    .iter()
    .map(|s| {
        readme
            .find(s)
            .unwrap_or_else(|| panic!("`{s}` not in:\n{readme}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{readme}");
}

/// An inline task's Kubernetes `config` (namespace, annotations, labels) reaches its Pod
/// as a task file's does; the model keeps none of those keys, and they were once left
/// out without a word.
#[test]
fn k8s_export_of_a_pipeline_keeps_an_inline_tasks_kubernetes_config() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = json!({
        "name": "inline-config",
        "tasks": [{"id": "a", "task": {
            "name": "a", "image": "busybox:1",
            "taskTemplate": {"identifier": "t", "description": "d", "inputs": [],
                "outputs": [], "env": [], "command": ["true"]},
            "config": {"namespace": "science", "labels": {"team": "imaging"},
                "annotations": {"owner": "lab-3"}}
        }}]
    });
    std::fs::write(dir.path().join("p.json"), pipeline.to_string()).unwrap();
    let done = run(&mut tapir(
        dir.path(),
        ["export", "k8s", "p.json", "--format", "json", "-o", "out"],
    ));
    assert_eq!(done.code, 0, "{}", done.stderr);
    let text = std::fs::read_to_string(dir.path().join("out/01-a.json")).unwrap();
    let pod: Value = serde_json::from_str(&text).unwrap();
    let pod = if pod["kind"] == "List" {
        pod["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "Pod")
            .cloned()
            .unwrap()
    } else {
        pod
    };
    assert_eq!(pod["metadata"]["namespace"], "science", "{pod:#}");
    assert_eq!(pod["metadata"]["labels"]["team"], "imaging", "{pod:#}");
    assert_eq!(pod["metadata"]["annotations"]["owner"], "lab-3", "{pod:#}");
}
