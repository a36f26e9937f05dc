//! Jinja templating of task files (DESIGN.md decision 4): full Jinja2 as the reference
//! renders it, per string or, with syntax outside strings, on the whole text, with every
//! finding at its line and column in the file.

use std::path::Path;

use crate::support::{example_image, fixtures, run, tapir};

/// A task file written as text (Jinja outside strings is not JSON) with the example
/// image and an inline template whose command prints `script`'s output.
fn task_text(dir: &Path, members: &str) -> std::path::PathBuf {
    let text = format!(
        r#"{{# written by hand: tapir renders this whole file before parsing it #}}
{{
  "name": "{{{{ env.get('TASK_NAME', 'templated_task') | replace('_', ' ') }}}}",
  "image": "{image}",
  "taskTemplate": {{
    "identifier": "t",
    "description": "test",
    "inputs": [],
    "outputs": [],
    "env": [{{"name": "MODE", "value": "slow"}}],
    "command": ["sh", "-c", "true"]
  }},
{members}
}}
"#,
        image = example_image()
    );
    let path = dir.join("task.json");
    std::fs::write(&path, text).unwrap();
    path
}

fn dry_run(dir: &Path, env: &[(&str, &str)]) -> crate::support::Run {
    let mut cmd = tapir(dir, ["run", "--dry-run", "--format", "json", "task.json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn planned(stdout: &str) -> Vec<(String, String)> {
    let plan: serde_json::Value = serde_json::from_str(stdout).unwrap();
    plan["plan"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const STATEMENTS: &str = r#"  "env": [
    {"name": "MODE", "value": "{{ env.get('RUN_MODE', 'fast') | upper }}"}
    {%- if env.DEBUG is defined %},
    {"name": "DEBUG", "value": "{{ env.DEBUG | replace('yes', 'on') }}"}
    {%- endif %}
  ]"#;

#[test]
fn statements_outside_strings_are_rendered_before_the_file_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    task_text(dir.path(), STATEMENTS);
    let out = dry_run(dir.path(), &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let env = planned(&out.stdout);
    assert!(env.contains(&("MODE".into(), "FAST".into())), "{env:?}");
    assert!(!env.iter().any(|(n, _)| n == "DEBUG"), "{env:?}");
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        plan["plan"]["task_name"], "templated task",
        "{}",
        out.stdout
    );

    let out = dry_run(dir.path(), &[("DEBUG", "yes"), ("RUN_MODE", "quick")]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let env = planned(&out.stdout);
    assert!(env.contains(&("MODE".into(), "QUICK".into())), "{env:?}");
    assert!(env.contains(&("DEBUG".into(), "on".into())), "{env:?}");
}

#[test]
fn an_undefined_variable_in_a_whole_text_file_stops_the_run_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    task_text(
        dir.path(),
        r#"  "env": [{"name": "OUT", "value": "{{ env.output_dir }}/x"}]"#,
    );
    let out = dry_run(dir.path(), &[]);
    assert_eq!(out.code, 125, "{}{}", out.stdout, out.stderr);
    // Line 13 of the file, at `env.output_dir` (column 40).
    assert!(out.stderr.contains("task.json:13:40"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("environment variable `output_dir` is not set"),
        "{}",
        out.stderr
    );
    let out = dry_run(dir.path(), &[("output_dir", "/data")]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(planned(&out.stdout).contains(&("OUT".into(), "/data/x".into())));
}

#[test]
fn a_file_with_jinja_only_inside_strings_gets_full_jinja_per_string() {
    let dir = tempfile::tempdir().unwrap();
    let task = serde_json::json!({
        "name": "per string",
        "image": example_image(),
        "taskTemplate": {
            "identifier": "t", "description": "test", "inputs": [], "outputs": [],
            "env": [], "command": ["sh", "-c", "true"]
        },
        "env": [
            {"name": "A", "value": "{{ env.get('NOPE', 'd') | replace('d', 'D') }}"},
            {"name": "B", "value": "{% if env.FLAG %}on{% else %}off{% endif %}{# why #}"},
            {"name": "C", "value": "{{ env.WORDS.split(',') | join(' ') }}\n"},
            {"name": "Q", "value": "{{ env.QUOTED }}"}
        ]
    });
    std::fs::write(
        dir.path().join("task.json"),
        serde_json::to_string_pretty(&task).unwrap(),
    )
    .unwrap();
    let out = dry_run(dir.path(), &[("WORDS", "a,b"), ("QUOTED", "say \"hi\"\\")]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let env = planned(&out.stdout);
    for (name, value) in [
        ("A", "D"),
        ("B", "off"),
        ("C", "a b\n"),
        // A value with quotes and backslashes stays a value (the reference's JSON breaks).
        ("Q", "say \"hi\"\\"),
    ] {
        assert!(
            env.contains(&(name.into(), value.into())),
            "{name}: {env:?}"
        );
    }
}

#[test]
fn a_value_rendered_from_a_secret_in_a_whole_text_file_stays_secret() {
    let dir = tempfile::tempdir().unwrap();
    task_text(
        dir.path(),
        r#"  {# the connection string carries the password #}
  "env": [{"name": "CONNECTION", "value": "db://{{ env.DB_PASSWORD }}@host"}]"#,
    );
    let out = dry_run(dir.path(), &[("DB_PASSWORD", "hunter2secret")]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("hunter2secret"), "{}", out.stdout);
    assert!(!out.stderr.contains("hunter2secret"), "{}", out.stderr);
    assert!(
        planned(&out.stdout).iter().any(|(n, _)| n == "CONNECTION"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_renders_a_whole_text_file_with_tapirs_environment() {
    let root = fixtures();
    let file = "valid/jinja-statements-task.json";
    let out = run(&mut tapir(&root, ["validate", file]));
    assert_eq!(out.code, 0, "{}", out.stdout);
    // With DEBUG set, the `{% if %}` adds a variable the template does not declare: the
    // warning points at line 18 of the file as written.
    let out = run(tapir(&root, ["validate", file]).env("DEBUG", "1"));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("jinja-statements-task.json:18:14")
            && out.stdout.contains("no variable `DEBUG`"),
        "{}",
        out.stdout
    );
}

#[test]
fn findings_in_the_rendered_json_point_into_the_file() {
    let root = fixtures();
    let out = run(&mut tapir(
        &root,
        ["validate", "invalid/jinja-rendered-json-task.json"],
    ));
    assert_eq!(out.code, 1, "{}", out.stdout);
    // The schema finding about `command` points at the expression that produced it.
    assert!(
        out.stdout.contains("jinja-rendered-json-task.json:6:17"),
        "{}",
        out.stdout
    );
    let out = run(&mut tapir(
        &root,
        ["validate", "invalid/jinja-rendered-syntax-task.json"],
    ));
    assert_eq!(out.code, 1, "{}", out.stdout);
    // The dangling comma is the one on line 5 of the file.
    assert!(
        out.stdout.contains("jinja-rendered-syntax-task.json:5:39")
            && out.stdout.contains("Trailing comma"),
        "{}",
        out.stdout
    );
}

/// In a pipeline the task runs from a derived task file written into the run folder. A
/// value rendered per string stays a template there (the child renders it); a value
/// rendered whole from a secret would be written out in clear, so the pipeline refuses
/// it, at its place in the task file, before anything runs.
#[test]
fn a_pipeline_refuses_a_whole_text_task_whose_value_is_rendered_from_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    task_text(
        dir.path(),
        r#"  "env": [{"name": "CONNECTION", "value": "db://{{ env.DB_PASSWORD }}@host"}]"#,
    );
    std::fs::write(
        dir.path().join("p.pipeline.json"),
        r#"{"name": "p", "tasks": [{"id": "a", "task": "task.json"}]}"#,
    )
    .unwrap();
    let out = run(
        tapir(dir.path(), ["pipeline", "validate", "p.pipeline.json"])
            .env("DB_PASSWORD", "hunter2secret"),
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("task.json:13:"), "{all}");
    assert!(all.contains("rendered from a secret"), "{all}");
    assert!(!all.contains("hunter2secret"), "{all}");
}
