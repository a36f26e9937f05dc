//! `tapir pipeline export --to kaapana` and `tapir pipeline import --from kaapana`.
//!
//! Golden files: `tests/fixtures/export/<case>/expected/` holds every file an export
//! writes and `report.txt` (exit code and what tapir printed); `TAPIR_BLESS=1` rewrites
//! them (review the diff). The DAGs are checked with python3 and Jinja2
//! (tests/setup/python3.sh installs them): rendered as Kaapana's workflow-api renders
//! them, then compiled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{check_snapshot, fixtures, repo_root, run, tapir};

/// An export case: the pipeline's folder, its file, the conf file, the golden folder.
struct Case {
    name: &'static str,
    dir: PathBuf,
    conf: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "example",
            dir: repo_root().join("examples/pipeline"),
            conf: Some("conf.json"),
        },
        Case {
            name: "mapping",
            dir: fixtures().join("export/mapping"),
            conf: Some("conf.json"),
        },
        // Warnings for what Kaapana does differently (`profile: kaapana`: fewer).
        Case {
            name: "differences",
            dir: fixtures().join("export/differences"),
            conf: None,
        },
    ]
}

fn export_args(conf: Option<&str>, out: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["pipeline", "export", "--to", "kaapana", "pipeline.json"]
        .map(String::from)
        .to_vec();
    if let Some(conf) = conf {
        args.extend(["--conf".into(), conf.into()]);
    }
    args.extend(["-o".into(), out.display().to_string()]);
    args
}

/// Every file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(relative, std::fs::read(&path).expect("read file"));
            }
        }
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[test]
fn exported_charts_match_their_golden_files() {
    let mut failures = Vec::new();
    for case in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let out_dir = tmp.path().join("chart");
        let out = run(&mut tapir(&case.dir, export_args(case.conf, &out_dir)));
        let expected = fixtures().join("export").join(case.name).join("expected");
        std::fs::create_dir_all(&expected).unwrap();
        let report = format!(
            "exit: {}\n{}{}",
            out.code,
            out.stdout.replace(&out_dir.display().to_string(), "<out>"),
            out.stderr
        );
        if let Some(diff) = check_snapshot(&expected.join("report.txt"), &report) {
            failures.push(diff);
        }
        assert_eq!(out.code, 0, "{}: {report}", case.name);
        let written = files_under(&out_dir);
        let mut golden = files_under(&expected);
        golden.remove("report.txt");
        if std::env::var_os("TAPIR_BLESS").is_none() {
            let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
            if names(&written) != names(&golden) {
                failures.push(format!(
                    "{}: written {:?}, golden {:?}",
                    case.name,
                    names(&written),
                    names(&golden)
                ));
            }
        }
        for (name, bytes) in &written {
            let path = expected.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if let Some(diff) = check_snapshot(&path, &text(bytes)) {
                failures.push(diff);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The file set Kaapana's workflow-installer reads: `files/` holds exactly workflow.json
/// and one `.py` (it concatenates everything else into the DAG), labels provider and
/// category, the chart's keyword; the trigger conf in `task_form.<id>.env` shape, 0600.
#[test]
fn the_chart_has_the_file_set_the_installer_reads() {
    let case = &cases()[0];
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("chart");
    let out = run(&mut tapir(&case.dir, export_args(case.conf, &out_dir)));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let files: Vec<String> = files_under(&out_dir.join("workflow-chart/files"))
        .into_keys()
        .collect();
    assert_eq!(files, ["workflow.json", "workflow_definition.py"]);
    let workflow: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.join("workflow-chart/files/workflow.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(workflow["title"], "download-process-upload");
    assert_eq!(workflow["workflow_engine"], "airflow");
    let keys: Vec<&str> = workflow["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["provider", "category"]);
    // Every default is a string: the platform puts it into BaseEnv.value.
    for parameter in workflow["workflow_parameters"].as_array().unwrap() {
        assert!(parameter["ui_form"]["default"].is_string(), "{parameter}");
    }
    let chart = std::fs::read_to_string(out_dir.join("workflow-chart/Chart.yaml")).unwrap();
    assert!(chart.contains("  - kaapanaworkflow-v2\n") && chart.contains("name: workflow-helpers"));
    let conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("trigger-conf.json")).unwrap()).unwrap();
    assert_eq!(
        conf["task_form"]["process-data"]["env"],
        serde_json::json!([{"name": "CASE", "value": "upper"}])
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(out_dir.join("trigger-conf.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Renders each golden DAG as the workflow-api does (Jinja2, only `dag_id` defined), checks
/// that the result is the intended file (nothing in it was taken for a Jinja tag), and
/// compiles it.
#[test]
fn generated_dags_survive_jinja2_and_compile() {
    let script = r#"
import sys, py_compile, jinja2
path, out = sys.argv[1], sys.argv[2]
source = open(path, encoding="utf-8").read()
rendered = jinja2.Template(source).render(dag_id="exported_v1")
intended = source.replace('"{{ dag_id }}"', '"exported_v1"', 1)
if intended.endswith("\n"):
    intended = intended[:-1]
if rendered != intended:
    sys.exit("rendering changed the file")
open(out, "w", encoding="utf-8").write(rendered)
py_compile.compile(out, doraise=True)
print("ok")
"#;
    let mut checked = 0;
    for case in cases() {
        let dag = fixtures()
            .join("export")
            .join(case.name)
            .join("expected/workflow-chart/files/workflow_definition.py");
        let tmp = tempfile::tempdir().unwrap();
        let rendered = tmp.path().join("exported_v1.py");
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&dag)
            .arg(&rendered)
            .output()
            .expect("python3 runs (tests/setup/python3.sh installs it)");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
            "{}: {}{}",
            dag.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, cases().len());
    // The check can fail: an unescaped tag in a string does not survive.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.py");
    std::fs::write(&bad, "x = \"{{ dag_id }}\"\ny = \"${#n}\"\n").unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&bad)
        .arg(tmp.path().join("bad_v1.py"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn export_is_deterministic() {
    let case = &cases()[1];
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("one"), tmp.path().join("two"));
    let out = run(&mut tapir(&case.dir, export_args(case.conf, &first)));
    assert_eq!(out.code, 0, "{}", out.stdout);
    // Another working folder and an absolute pipeline path: the same bytes.
    let mut args = export_args(case.conf, &second);
    args[4] = case.dir.join("pipeline.json").display().to_string();
    let conf_at = args.iter().position(|a| a == "conf.json").unwrap();
    args[conf_at] = case.dir.join("conf.json").display().to_string();
    let out = run(&mut tapir(tmp.path(), &args));
    assert_eq!(out.code, 0, "{}", out.stdout);
    let (a, b) = (files_under(&first), files_under(&second));
    assert!(a.len() >= 10);
    assert_eq!(a, b);
}

#[test]
fn an_export_that_cannot_be_expressed_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("chart");
    for (case, codes) in [
        (
            "refused",
            &[
                "export-title",
                "export-literal-secret",
                "export-pod-name",
                "export-scale-complexity",
                "export-channel-name",
                "export-host-path",
            ][..],
        ),
        (
            "refused-images",
            &[
                "export-identifier-clash",
                "export-template-source",
                "export-run-options",
                "export-unrendered-template",
            ][..],
        ),
    ] {
        let dir = fixtures().join("export").join(case);
        let out = run(&mut tapir(&dir, export_args(None, &out_dir)));
        let report = format!("exit: {}\n{}{}", out.code, out.stdout, out.stderr);
        if let Some(diff) = check_snapshot(&dir.join("report.txt"), &report) {
            panic!("{diff}");
        }
        assert_eq!(out.code, 1, "{case}");
        assert!(!out_dir.exists(), "{case}");
        for code in codes {
            assert!(
                out.stdout.contains(&format!("error[{code}]")),
                "{case}: {code}"
            );
        }
        // No literal secret in what tapir prints.
        assert!(!out.stdout.contains("abc123"));
    }
    // Profile ccat: the bundled CCAT example.
    let out = run(&mut tapir(
        &repo_root().join("examples/pipeline"),
        [
            "pipeline",
            "export",
            "--to",
            "kaapana",
            "ccat-pipeline.json",
            "-o",
            &out_dir.display().to_string(),
        ],
    ));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("error[export-profile]"),
        "{}",
        out.stdout
    );
    assert!(!out_dir.exists());
}

#[test]
fn findings_come_as_json_with_positions() {
    let dir = fixtures().join("export/refused");
    let tmp = tempfile::tempdir().unwrap();
    let mut args = export_args(None, &tmp.path().join("chart"));
    args.extend(["--format".into(), "json".into()]);
    let out = run(&mut tapir(&dir, &args));
    assert_eq!(out.code, 1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(report["exported"], false);
    let finding = report["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "export-title")
        .expect("export-title");
    assert_eq!(
        (finding["line"].as_u64(), finding["column"].as_u64()),
        (Some(2), Some(11))
    );
    assert_eq!(finding["pointer"], "/name");
}

#[test]
fn the_output_folder_is_replaced_only_when_an_export_made_it() {
    let case = &cases()[0];
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("chart");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("mine.txt"), "keep me").unwrap();
    let out = run(&mut tapir(&case.dir, export_args(case.conf, &out_dir)));
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("mine.txt")).unwrap(),
        "keep me"
    );
    // --force replaces it.
    let mut forced = export_args(case.conf, &out_dir);
    forced.push("--force".into());
    let out = run(&mut tapir(&case.dir, &forced));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out_dir.join("mine.txt").exists());
    assert!(out_dir.join("workflow-chart/Chart.yaml").is_file());
    // An earlier export is replaced without --force, and nothing is left beside it.
    std::fs::write(out_dir.join("workflow-chart/stale.txt"), "old").unwrap();
    let out = run(&mut tapir(&case.dir, export_args(case.conf, &out_dir)));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out_dir.join("workflow-chart/stale.txt").exists());
    let beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(beside.len(), 1, "only the output folder");
    // A refused export leaves the earlier one as it was.
    let before = files_under(&out_dir);
    let refused = fixtures().join("export/refused");
    let out = run(&mut tapir(&refused, export_args(None, &out_dir)));
    assert_eq!(out.code, 1);
    assert_eq!(files_under(&out_dir), before);
}

fn import_to(dag: &Path, out: &Path, name: Option<&str>) -> crate::support::Run {
    let mut args = vec![
        "pipeline".to_string(),
        "import".into(),
        "--from".into(),
        "kaapana".into(),
        // Relative to the fixtures (the working folder): stable text in snapshots.
        dag.strip_prefix(fixtures())
            .unwrap_or(dag)
            .display()
            .to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if let Some(name) = name {
        args.extend(["--name".into(), name.into()]);
    }
    run(&mut tapir(&fixtures(), &args))
}

#[test]
fn kaapanas_workflows_import_as_valid_pipelines() {
    let dir = fixtures().join("export/import");
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for name in ["registration", "dummy"] {
        let dag = dir.join(format!("{name}.dag.py"));
        let pipeline = tmp.path().join(format!("{name}.pipeline.json"));
        let out = import_to(&dag, &pipeline, Some(name));
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let imported = std::fs::read_to_string(&pipeline).unwrap();
        let report = format!(
            "{imported}--- stderr\n{}",
            out.stderr
                .replace(&tmp.path().display().to_string(), "<tmp>")
        );
        if let Some(diff) = check_snapshot(&dir.join(format!("{name}.expected.txt")), &report) {
            failures.push(diff);
        }
        let out = run(&mut tapir(
            tmp.path(),
            ["pipeline", "validate", &pipeline.display().to_string()],
        ));
        assert_eq!(out.code, 0, "{name}: {}", out.stdout);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The registration workflow: seven tasks; the registration reads two conversions.
    let p: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("registration.pipeline.json")).unwrap(),
    )
    .unwrap();
    let tasks = p["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 7);
    assert_eq!(tasks[4]["id"], "register_images");
    assert_eq!(tasks[4]["iochannel_maps"].as_array().unwrap().len(), 2);
    assert_eq!(
        tasks[6]["task"]["config"]["labels"]["network-access-ctp"],
        "true"
    );
}

#[test]
fn an_unsupported_dag_is_refused_at_its_place() {
    let dir = fixtures().join("export/import");
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = tmp.path().join("out.json");
    let out = import_to(&dir.join("unsupported.dag.py"), &pipeline, None);
    assert_eq!(out.code, 1);
    assert!(!pipeline.exists());
    assert!(
        out.stderr.contains("unsupported.dag.py:12:5"),
        "{}",
        out.stderr
    );
    if let Some(diff) = check_snapshot(&dir.join("unsupported.expected.txt"), &out.stderr) {
        panic!("{diff}");
    }
}

/// Export, import the DAG, export again: the same DAG, except the header (another source
/// file) and the images (a derived image comes back as the image it names, with
/// `--registry` and `--build-version` in place of the platform's variables).
#[test]
fn export_then_import_gives_the_same_pipeline() {
    for case in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("first");
        let out = run(&mut tapir(&case.dir, export_args(None, &first)));
        assert_eq!(out.code, 0, "{}", out.stdout);
        let dag = first.join("workflow-chart/files/workflow_definition.py");
        let name = serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(case.dir.join("pipeline.json")).unwrap(),
        )
        .unwrap()["name"]
            .as_str()
            .unwrap()
            .to_string();
        let imported_dir = tmp.path().join("imported");
        std::fs::create_dir(&imported_dir).unwrap();
        // No --name: the exported DAG's header names the pipeline.
        let out = import_to(&dag, &imported_dir.join("pipeline.json"), None);
        assert_eq!(out.code, 0, "{}: {}", case.name, out.stderr);
        let imported: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(imported_dir.join("pipeline.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(imported["name"], name.as_str(), "{}", case.name);
        let out = run(&mut tapir(
            &imported_dir,
            ["pipeline", "validate", "pipeline.json"],
        ));
        assert_eq!(out.code, 0, "{}: {}", case.name, out.stdout);
        let second = tmp.path().join("second");
        let out = run(&mut tapir(&imported_dir, export_args(None, &second)));
        assert_eq!(out.code, 0, "{}: {}", case.name, out.stdout);
        let body = |path: &Path, derived: bool| {
            let text = std::fs::read_to_string(path).unwrap();
            let mut lines: Vec<String> = text.lines().skip(2).map(String::from).collect();
            if derived {
                for line in &mut lines {
                    *line = line
                        .replace("f\"{DEFAULT_REGISTRY}/", "\"localhost/")
                        .replace(":{KAAPANA_BUILD_VERSION}\"", ":latest\"");
                }
            }
            lines.join("\n")
        };
        let again = second.join("workflow-chart/files/workflow_definition.py");
        assert_eq!(body(&dag, true), body(&again, false), "{}", case.name);
    }
}

/// Runs each golden DAG (rendered as the workflow-api renders it) against stand-ins for
/// Airflow and Kaapana's operator (`tests/fixtures/export/standin/load_dag.py`: the
/// operator's signature, its pinned retry_delay, string-only BaseEnv) and checks what it
/// wires against the plan `pipeline validate` makes: retries, backoff, time limit,
/// template, IOMappings, and every dependency with its `can_fail` (all_done, or a gate).
/// Not Airflow itself (see README: not loaded in a real Airflow here).
#[test]
fn generated_dags_wire_what_the_plan_says() {
    let loader = fixtures().join("export/standin/load_dag.py");
    for case in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let golden = fixtures()
            .join("export")
            .join(case.name)
            .join("expected/workflow-chart/files/workflow_definition.py");
        let rendered = tmp.path().join("case_v1.py");
        let source = std::fs::read_to_string(&golden).unwrap();
        std::fs::write(
            &rendered,
            source.replacen("\"{{ dag_id }}\"", "\"case_v1\"", 1),
        )
        .unwrap();
        let out = std::process::Command::new("python3")
            .arg(&loader)
            .arg(&rendered)
            .output()
            .expect("python3 runs (tests/setup/python3.sh installs it)");
        assert!(
            out.status.success(),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let dag: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let validate = run(&mut tapir(
            &case.dir,
            ["pipeline", "validate", "pipeline.json", "--format", "json"],
        ));
        assert_eq!(validate.code, 0, "{}", validate.stdout);
        let plan: serde_json::Value = serde_json::from_str(&validate.stdout).unwrap();
        let edges: Vec<(String, String)> = dag["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_str().unwrap().into(), e[1].as_str().unwrap().into()))
            .collect();
        let has = |a: &str, b: &str| edges.iter().any(|(x, y)| x == a && y == b);
        let mut expected_edges = 0;
        let mut gates = std::collections::BTreeSet::new();
        assert_eq!(dag["dag_id"], "case_v1");
        assert!(dag["schedule"].is_null(), "never scheduled by itself");
        for task in plan["plan"]["tasks"].as_array().unwrap() {
            let id = task["id"].as_str().unwrap();
            let op = &dag["tasks"][id];
            let e = &task["execution"];
            let what = format!("{}: {id}", case.name);
            assert_eq!(op["kind"], "kaapana", "{what}");
            assert_eq!(op["template"], task["template"], "{what}");
            assert_eq!(op["retries"], e["max_retries"], "{what}");
            assert_eq!(op["retry_delay"], e["retry_backoff_seconds"], "{what}");
            assert_eq!(
                op["exponential"],
                e["retry_policy"] == "exponential_backoff",
                "{what}"
            );
            let limit = e["max_exec_time"].as_u64().unwrap_or(31_536_000);
            assert_eq!(op["timeout"].as_u64(), Some(limit), "{what}");
            let deps = task["depends_on"].as_array().unwrap();
            let all_can_fail = !deps.is_empty() && deps.iter().all(|d| d["can_fail"] == true);
            let expected_rule = if all_can_fail {
                "all_done"
            } else {
                "all_success"
            };
            assert_eq!(op["trigger_rule"], expected_rule, "{what}");
            let mut mapped: Vec<&str> = Vec::new();
            for dep in deps {
                let up = dep["id"].as_str().unwrap();
                if dep["via"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == "iochannel_maps")
                {
                    mapped.push(up);
                }
                if dep["can_fail"] == true && !all_can_fail {
                    let gate = format!("{up}__done");
                    assert_eq!(dag["tasks"][&gate]["trigger_rule"], "all_done", "{what}");
                    assert!(has(up, &gate) && has(&gate, id), "{what}: through {gate}");
                    gates.insert(gate);
                    expected_edges += 1;
                } else {
                    assert!(has(up, id), "{what}: after {up}");
                    expected_edges += 1;
                }
            }
            let mut maps: Vec<&str> = op["maps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m[0].as_str().unwrap())
                .collect();
            maps.sort_unstable();
            maps.dedup();
            mapped.sort_unstable();
            assert_eq!(maps, mapped, "{what}: IOMappings");
        }
        // Nothing else: one edge per dependency, one into each gate.
        assert_eq!(edges.len(), expected_edges + gates.len(), "{}", case.name);
    }
}
