//! The task file one pipeline task runs as (docs/DESIGN.md decision 10): the task as
//! written, with its channels bound to the pipeline run's managed folders, its other
//! relative host paths made absolute (the derived file lives in the pipeline run folder,
//! not next to the original), the pipeline file's `env`s (pipeline-wide, then the
//! task's) merged over its own, and the conf file's `image`, `command` and `resources`
//! in place of its own. The conf file's variables, and every secret-looking variable of
//! the `env`s, are not written here: they are handed to `tapir run` as an env file on its
//! standard input, so a secret never lands in a file or an argv.

use std::path::Path;

use serde_json::Value;

use crate::model::{Binding, EnvVar, HostPath};
use crate::pipeline::plan::{FolderDirection, PlannedTask};
use crate::resolve::plan::is_secret_name;

/// Goes to the child on its standard input instead of into the derived task file. A value
/// with a line break cannot be an env file line; it stays in the file (as in the task's).
fn travels_on_stdin(name: &str, value: &str) -> bool {
    is_secret_name(name) && !value.contains(['\n', '\r'])
}

/// The derived task as JSON, for the pipeline run folder `run_dir` (absolute).
pub(crate) fn derived_task(planned: &PlannedTask, run_dir: &Path) -> Value {
    let runnable = &planned.runnable;
    let mut task = runnable.task.clone();
    for binding in task.inputs.iter_mut().chain(task.outputs.iter_mut()) {
        binding.volume_source.host_path =
            absolute_host_path(&runnable.base_dir, &binding.volume_source.host_path);
    }
    for folder in &planned.folders {
        // Profile `ccat`: the /workflow folders are no channels of the template; they
        // reach the container as `run --bind` (`ccat::step_run_options`).
        if folder.mounted_path.is_some() {
            continue;
        }
        let list = match folder.direction {
            FolderDirection::Input => &mut task.inputs,
            FolderDirection::Output => &mut task.outputs,
        };
        let host_path = if folder.managed {
            run_dir.join(&folder.path).display().to_string()
        } else {
            folder.path.clone()
        };
        let host_path = absolute_host_path(Path::new(""), &host_path);
        match list.iter_mut().find(|b| b.name == folder.channel) {
            Some(binding) => binding.volume_source.host_path = host_path,
            None => list.push(Binding {
                name: folder.channel.clone(),
                volume_source: HostPath { host_path },
                scale_rule: None,
            }),
        }
    }
    task.env.retain(|e| !travels_on_stdin(&e.name, &e.value));
    for (name, value) in &runnable.pipeline_env {
        if travels_on_stdin(name, value) {
            continue;
        }
        match task.env.iter_mut().find(|e| e.name == *name) {
            Some(var) => var.value = value.clone(),
            None => task.env.push(EnvVar {
                name: name.clone(),
                value: value.clone(),
                rendered_from_secret: false,
            }),
        }
    }
    serde_json::to_value(&task).unwrap_or(Value::Null)
}

/// `path` against `base`, absolute. `~` paths and templated ones (`{{ env.X }}`, which
/// may render to an absolute path) are left for `run` to resolve.
fn absolute_host_path(base: &Path, path: &str) -> String {
    if path.starts_with('~') || path.contains("{{") {
        return path.to_string();
    }
    let joined = base.join(path);
    std::path::absolute(&joined)
        .unwrap_or(joined)
        .display()
        .to_string()
}

/// What the child reads with `tapir run --env-file /dev/stdin` (one `NAME=VALUE` a line):
/// the secret-looking variables of the task's `env` and the pipeline's over them, then
/// the conf file's values over both (the pipeline check refuses a conf value with a line
/// break, `env-line-break`).
#[cfg(test)]
fn stdin_env_file(planned: &PlannedTask) -> String {
    stdin_env(planned)
        .iter()
        .map(|var| format!("{}={}\n", var.name, var.value))
        .collect()
}

/// Where a value handed over on standard input comes from, for the task run's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StdinOrigin {
    /// The task file's own `env`.
    Task,
    /// The pipeline's `env`, or the pipeline task's.
    Pipeline,
    /// The conf file's `task_form` entry of the task.
    Conf,
}

/// One value of [`stdin_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StdinVar {
    pub name: String,
    pub value: String,
    pub origin: StdinOrigin,
}

/// The values [`stdin_env_file`] hands over, by name, with where each comes from.
pub(crate) fn stdin_env(planned: &PlannedTask) -> Vec<StdinVar> {
    let runnable = &planned.runnable;
    let mut vars: std::collections::BTreeMap<&str, (&str, StdinOrigin)> =
        std::collections::BTreeMap::new();
    let own = runnable
        .task
        .env
        .iter()
        .map(|e| (&e.name, &e.value, StdinOrigin::Task));
    let pipeline = runnable
        .pipeline_env
        .iter()
        .map(|(n, v)| (n, v, StdinOrigin::Pipeline));
    for (name, value, origin) in own.chain(pipeline) {
        if travels_on_stdin(name, value) {
            vars.insert(name, (value, origin));
        } else {
            // A later plain value replaces an earlier secret one in the file.
            vars.remove(name.as_str());
        }
    }
    for (name, value) in &runnable.conf_env {
        vars.insert(name, (value, StdinOrigin::Conf));
    }
    vars.into_iter()
        .map(|(name, (value, origin))| StdinVar {
            name: name.to_string(),
            value: value.to_string(),
            origin,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn planned(dir: &Path, conf: Value) -> Vec<PlannedTask> {
        let template = |inputs: Value, outputs: Value| {
            json!({"identifier": "t", "description": "d", "inputs": inputs, "outputs": outputs,
                   "env": [{"name": "WHO", "value": "?", "type": "string"},
                           {"name": "API_TOKEN", "value": "", "type": "string"}],
                   "command": ["true"]})
        };
        let pipeline = json!({"name": "p", "tasks": [
            {"id": "a", "task": {"name": "a", "image": "i", "taskTemplate": template(
                json!([{"name": "data", "mounted_path": "/data"}]),
                json!([{"name": "out", "mounted_path": "/out"}])),
                "inputs": [{"name": "data", "input": {"host_path": "data"}}],
                "outputs": [{"name": "out", "input": {"host_path": "local/out"}}]}},
            {"id": "b", "env": {"WHO": "pipeline"}, "task": {"name": "b", "image": "i",
                "taskTemplate": template(json!([{"name": "in", "mounted_path": "/in"}]), json!([])),
                "env": [{"name": "WHO", "value": "task"}]},
             "iochannel_maps": [{"upstream_task": "a", "upstream_output_channel": "out", "input_channel": "in"}]}
        ]});
        std::fs::write(dir.join("p.json"), pipeline.to_string()).unwrap();
        std::fs::write(dir.join("c.json"), conf.to_string()).unwrap();
        let checked =
            crate::pipeline::plan::check(&dir.join("p.json"), Some(&dir.join("c.json")), None)
                .unwrap();
        assert!(checked.is_valid(), "{:?}", checked.files);
        checked.plan.unwrap().tasks
    }

    #[test]
    fn channels_go_to_the_managed_folders_and_the_pipeline_env_wins_over_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let conf = json!({"task_form": {"b": {"API_TOKEN": "tok3n"}}});
        let tasks = planned(dir.path(), conf);
        let run = Path::new("/runs/pipeline-run-x");
        let a = derived_task(&tasks[0], run);
        assert_eq!(
            a["outputs"][0]["volume_source"]["host_path"],
            "/runs/pipeline-run-x/a/out"
        );
        let data = dir.path().join("data").display().to_string();
        assert_eq!(a["inputs"][0]["volume_source"]["host_path"], data.as_str());
        let b = derived_task(&tasks[1], run);
        assert_eq!(b["inputs"][0]["name"], "in");
        assert_eq!(
            b["inputs"][0]["volume_source"]["host_path"],
            "/runs/pipeline-run-x/a/out"
        );
        assert_eq!(b["env"], json!([{"name": "WHO", "value": "pipeline"}]));
        assert!(
            !b.to_string().contains("tok3n"),
            "conf values stay out of the file"
        );
        assert_eq!(stdin_env_file(&tasks[1]), "API_TOKEN=tok3n\n");
        assert_eq!(stdin_env_file(&tasks[0]), "");
    }

    #[test]
    fn kaapanas_task_form_replaces_fields_and_its_env_list_goes_to_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let conf = json!({"task_form": {"b": {
            "env": [{"name": "WHO", "value": "conf"}, {"name": "API_TOKEN", "value": "tok3n"}],
            "image": "other:2", "command": ["echo", "hi"],
            "resources": {"limits": {"memory": "64Mi"}}
        }}});
        let tasks = planned(dir.path(), conf);
        assert_eq!(tasks[1].image, "other:2");
        assert_eq!(tasks[1].conf_overrides, ["image", "command", "resources"]);
        let b = derived_task(&tasks[1], Path::new("/runs/p"));
        assert_eq!(b["image"], "other:2");
        assert_eq!(b["command"], json!(["echo", "hi"]));
        assert_eq!(b["resources"], json!({"limits": {"memory": "64Mi"}}));
        // The pipeline's value in the file, the conf's over it on stdin.
        assert_eq!(b["env"], json!([{"name": "WHO", "value": "pipeline"}]));
        assert_eq!(stdin_env_file(&tasks[1]), "API_TOKEN=tok3n\nWHO=conf\n");
        let origins: Vec<(String, StdinOrigin)> = stdin_env(&tasks[1])
            .into_iter()
            .map(|v| (v.name, v.origin))
            .collect();
        assert_eq!(
            origins,
            [
                ("API_TOKEN".to_string(), StdinOrigin::Conf),
                ("WHO".to_string(), StdinOrigin::Conf)
            ]
        );
        let a = derived_task(&tasks[0], Path::new("/runs/p"));
        assert_eq!(a["image"], "i", "only the named task's entry applies");
    }
}
