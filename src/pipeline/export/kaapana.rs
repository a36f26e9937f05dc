//! A checked pipeline as a Kaapana "workflow v2" (docs/DESIGN.md decision 17): a Helm
//! chart whose DAG runs every task with `KaapanaTaskOperator`, the derived processing
//! images that carry the templates tapir knows but the images do not, and a trigger conf.
//! Pure: the plan and the files' text in, the files' bytes and the findings out. The
//! findings point into the pipeline file, as `pipeline validate`'s do.
//!
//! The facts behind every rule (Kaapana snapshot 09bb59b) are in the reference
//! `kaapana-workflow-export.md`; the comments name the behaviour, not the line.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::python;
use crate::diagnostic::{Diagnostic, Severity};
use crate::model::secret::is_secret_name;
use crate::model::{EnvType, Template};
use crate::pipeline::model::{Conf, Pipeline, Profile, RetryPolicy};
use crate::pipeline::plan::{PipelinePlan, PlannedTask};
use crate::source::Document;
use crate::source::template::is_templated;

/// What Airflow gets for "no limit": tapir's longest `max_exec_time` (one year). The
/// operator's own default would be 90 minutes, and `None` crashes it.
pub(crate) const LONGEST_EXEC_TIME: u64 = 31_536_000;
/// The operator's constructor fixes `retry_delay` at this; other values are assigned after.
const OPERATOR_RETRY_DELAY: u64 = 10;
/// Pod names are `<run id>-<task id>` cut to 62 characters; with Airflow's manual run
/// ids this many characters of a task id survive.
const POD_NAME_ID_CHARS: usize = 21;
/// The chart name is part of the installer Job's name, which must fit a 63-char label.
const CHART_NAME_MAX: usize = 40;
/// A dag id is `<title>_v<N>` and at most 250 characters.
const TITLE_MAX: usize = 200;
/// The DAG file: the one `.py` in the chart's `files/`.
pub(crate) const DAG_FILE: &str = "workflow_definition.py";
/// The export's own list of what it wrote, at the top of the output folder.
pub(crate) const MARKER_FILE: &str = "tapir-export.json";
/// `task_form` and gates: the gate task of upstream `X` is `X__done`.
const GATE_SUFFIX: &str = "__done";
/// Task `config` keys Kaapana's operator has no place for.
const DROPPED_CONFIG: &[&str] = &[
    "namespace",
    "imagePullSecrets",
    "imagePullPolicy",
    "env_vars",
    "volumes",
    "volume_mounts",
];

/// Everything the export reads, already loaded and checked.
#[derive(Debug)]
pub(crate) struct ExportInput<'a> {
    pub pipeline: &'a Pipeline,
    /// The pipeline file, for positions of findings.
    pub document: &'a Document,
    /// Planned without the conf file: the conf's values go to the trigger conf only.
    pub plan: &'a PipelinePlan,
    pub conf: Option<&'a Conf>,
    /// The pipeline file's name as the header shows it (no folders: same bytes wherever
    /// the export runs).
    pub source_name: String,
    pub sha256: String,
    /// Per pipeline task (pipeline order): the task as written (JSON), for the `config`
    /// keys the typed model does not keep.
    pub raw_tasks: Vec<Value>,
}

/// The export: files by relative path, and what it found.
#[derive(Debug, Default)]
pub(crate) struct Export {
    pub files: BTreeMap<String, String>,
    pub findings: Vec<Diagnostic>,
}

/// One task as the DAG writes it.
struct TaskOut<'a> {
    index: usize,
    planned: &'a PlannedTask,
    variable: String,
    /// The image expression (Python).
    image: String,
    env: Vec<(String, String)>,
}

/// One processing image the export derives.
struct DerivedImage {
    name: String,
    base: String,
    templates: Vec<Template>,
    tasks: Vec<String>,
}

pub(crate) fn export(input: &ExportInput) -> Export {
    let mut exporter = Exporter {
        input,
        findings: Vec::new(),
        grouped: BTreeMap::new(),
    };
    let files = exporter.run();
    let mut findings = exporter.findings;
    if findings.iter().any(|d| d.severity == Severity::Error) {
        findings.retain(|d| d.code != "export-not-installed");
    }
    findings.sort_by_key(|d| {
        (
            d.position.as_ref().map_or(0, |p| p.bytes.start),
            std::cmp::Reverse(d.severity),
        )
    });
    Export {
        files: if findings.iter().any(|d| d.severity == Severity::Error) {
            BTreeMap::new()
        } else {
            files
        },
        findings,
    }
}

struct Exporter<'a> {
    input: &'a ExportInput<'a>,
    findings: Vec<Diagnostic>,
    /// Behaviour differences by code: the pipeline indexes of the tasks concerned.
    grouped: BTreeMap<&'static str, Vec<usize>>,
}

impl Exporter<'_> {
    fn finding(
        &mut self,
        severity: Severity,
        code: &'static str,
        pointer: &str,
        message: String,
        fix: &str,
    ) {
        let position = self.input.document.value_position(pointer);
        let d = match severity {
            Severity::Error => Diagnostic::error(code, message),
            Severity::Warning => Diagnostic::warning(code, message),
            Severity::Note => Diagnostic::note(code, message),
        };
        let d = d.at_pointer(pointer).at(position);
        self.findings
            .push(if fix.is_empty() { d } else { d.with_fix(fix) });
    }

    fn error(&mut self, code: &'static str, pointer: &str, message: String, fix: &str) {
        self.finding(Severity::Error, code, pointer, message, fix);
    }

    fn warning(&mut self, code: &'static str, pointer: &str, message: String, fix: &str) {
        self.finding(Severity::Warning, code, pointer, message, fix);
    }

    fn note(&mut self, code: &'static str, pointer: &str, message: String) {
        self.finding(Severity::Note, code, pointer, message, "");
    }

    fn run(&mut self) -> BTreeMap<String, String> {
        let pipeline = self.input.pipeline;
        let chart = self.check_pipeline();
        // The plan is in level order; the DAG follows the pipeline file.
        let planned: Vec<&PlannedTask> = pipeline
            .tasks
            .iter()
            .filter_map(|t| self.input.plan.tasks.iter().find(|p| p.id == t.id))
            .collect();
        if planned.len() != pipeline.tasks.len() {
            self.error(
                "internal",
                "",
                "internal: the plan misses a task of the pipeline; please report this".into(),
                "",
            );
            return BTreeMap::new();
        }
        self.check_pod_names();
        let derived = self.derive_images(&chart, &planned);
        let mut used = Vec::new();
        let mut tasks = Vec::new();
        for (index, planned) in planned.iter().enumerate() {
            self.check_task(index, planned);
            let variable = python::identifier(&planned.id, &used);
            used.push(variable.clone());
            let image = match derived.iter().find(|d| d.tasks.contains(&planned.id)) {
                Some(d) => format!(
                    "f\"{{DEFAULT_REGISTRY}}/{}:{{KAAPANA_BUILD_VERSION}}\"",
                    d.name
                ),
                None => python::string(&planned.runnable.task.image),
            };
            let env = operator_env(planned);
            tasks.push(TaskOut {
                index,
                planned,
                variable,
                image,
                env,
            });
        }
        self.grouped_findings();
        self.check_env(&tasks);
        let parameters = self.parameters(&tasks);
        let mut files = BTreeMap::new();
        let title = &pipeline.name;
        let description = pipeline.description.clone().unwrap_or_default();
        files.insert(
            "workflow-chart/Chart.yaml".into(),
            self.chart_yaml(&chart, title, &description),
        );
        files.insert(
            "workflow-chart/values.yaml".into(),
            self.values_yaml(&derived),
        );
        files.insert(
            "workflow-chart/templates/configmap.yaml".into(),
            "{{ include \"workflow.configMap\" . }}\n".into(),
        );
        files.insert(
            "workflow-chart/templates/job.yaml".into(),
            "{{ include \"workflow.installerJob\" . }}\n".into(),
        );
        files.insert(
            "workflow-chart/files/workflow.json".into(),
            pretty(&json!({
                "title": title,
                "workflow_engine": "airflow",
                "labels": [
                    {"key": "provider", "value": "tapir"},
                    {"key": "category", "value": "pipeline"},
                ],
                "workflow_parameters": parameters,
            })),
        );
        let dag = self.dag(&tasks, &description);
        self.check_jinja(&dag);
        files.insert(format!("workflow-chart/files/{DAG_FILE}"), dag);
        for image in &derived {
            let folder = format!("processing-containers/{}", image.name);
            files.insert(format!("{folder}/Dockerfile"), self.dockerfile(image));
            let container = json!({
                "name": image.name,
                "description": format!(
                    "Task templates of tapir pipeline {title} (tasks {}), exported by tapir.",
                    image.tasks.join(", ")
                ),
                "api_version": 1,
                "templates": image.templates,
            });
            files.insert(
                format!("{folder}/processing-container.json"),
                pretty(&container),
            );
        }
        if let Some(conf) = self.input.conf {
            files.insert("trigger-conf.json".into(), pretty(&trigger_conf(conf)));
        }
        let listed: Vec<&String> = files.keys().collect();
        let marker = pretty(&json!({
            "generated_by": format!("tapir {}", env!("CARGO_PKG_VERSION")),
            "to": "kaapana",
            "pipeline": self.input.source_name,
            "sha256": self.input.sha256,
            "files": listed,
        }));
        files.insert(MARKER_FILE.into(), marker);
        self.always_notes();
        files
    }

    /// The pipeline-wide checks; the chart name.
    fn check_pipeline(&mut self) -> String {
        let pipeline = self.input.pipeline;
        if pipeline.profile == Profile::Ccat {
            self.error(
                "export-profile",
                "/profile",
                "profile `ccat` has no Kaapana equivalent (no shared workspace, manifest or raw-input folder)".into(),
                "export only `kaapana` pipelines; run CCAT pipelines with `tapir pipeline run`",
            );
        }
        for (key, present) in [
            ("input", pipeline.input.is_some()),
            ("sub_group_key", pipeline.sub_group_key.is_some()),
        ] {
            if present && pipeline.profile != Profile::Ccat {
                self.error(
                    "export-profile",
                    &format!("/{key}"),
                    format!("`{key}` belongs to profile `ccat`, which Kaapana cannot express"),
                    "remove it before exporting",
                );
            }
        }
        for (index, task) in pipeline.tasks.iter().enumerate() {
            if task.step_config.is_some() {
                self.error(
                    "export-profile",
                    &format!("/tasks/{index}/step_config"),
                    "`step_config` belongs to profile `ccat`, which Kaapana cannot express".into(),
                    "remove it before exporting",
                );
            }
        }
        self.check_run_options("", &pipeline.run_options);
        for (index, task) in pipeline.tasks.iter().enumerate() {
            self.check_run_options(&format!("/tasks/{index}"), &task.run_options);
        }
        let name = &pipeline.name;
        let title_ok = !name.is_empty()
            && name.len() <= TITLE_MAX
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !title_ok {
            self.error(
                "export-title",
                "/name",
                format!(
                    "the pipeline name {name:?} cannot be an Airflow dag id: it must be 1 to {TITLE_MAX} characters of A-Z, a-z, 0-9, `.`, `_`, `-`"
                ),
                "rename the pipeline, e.g. `my-pipeline`",
            );
        }
        let chart = chart_name(name);
        if title_ok && !chart_name_fits(&chart) {
            self.error(
                "export-title",
                "/name",
                format!(
                    "the chart name made from the pipeline name, {chart:?}, must be 1 to {CHART_NAME_MAX} characters of a-z, 0-9 and `-`, starting and ending with a letter or digit (the installer Job's name must fit a 63-character label)"
                ),
                "give the pipeline a shorter name",
            );
        }
        chart
    }

    /// `run_options` are `tapir run` flags: a bind or an ENTRYPOINT cannot be expressed
    /// (the operator mounts only channels, and its `command` already replaces the
    /// ENTRYPOINT); the others are how tapir runs containers locally and are left out.
    fn check_run_options(&mut self, base: &str, options: &crate::pipeline::model::RunOptions) {
        let pointer = |key: &str| format!("{base}/run_options/{key}");
        if options.bind.as_ref().is_some_and(|b| !b.is_empty()) {
            self.error(
                "export-host-path",
                &pointer("bind"),
                "`run_options.bind` mounts a host path: Kaapana's operator mounts only the channels".into(),
                "remove the bind; feed the data through an input channel and an IOMapping",
            );
        }
        if options.entrypoint.is_some() {
            self.error(
                "export-run-options",
                &pointer("entrypoint"),
                "`run_options.entrypoint` has no KaapanaTaskOperator equivalent (its `command` replaces the image's ENTRYPOINT)".into(),
                "put the entrypoint at the start of the task's `command` instead",
            );
        }
        let local: Vec<&str> = [
            ("pull", options.pull.is_some()),
            ("user", options.user.is_some()),
            ("keep", options.keep.is_some()),
            ("network", options.network.is_some()),
            ("grace", options.grace.is_some()),
            ("shm_size", options.shm_size.is_some()),
            ("gpus", options.gpus.is_some()),
            ("engine_args", options.engine_args.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        if let Some(first) = local.first() {
            self.warning(
                "export-run-options",
                &pointer(first),
                format!(
                    "run_options {} {} how tapir runs containers here; Kaapana decides that itself, and the export leaves {} out",
                    local.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                    if local.len() == 1 { "says" } else { "say" },
                    if local.len() == 1 { "it" } else { "them" },
                ),
                "",
            );
        }
    }

    fn check_pod_names(&mut self) {
        let pipeline = self.input.pipeline;
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (index, task) in pipeline.tasks.iter().enumerate() {
            let pod = pod_name_part(&task.id);
            let pointer = format!("/tasks/{index}/id");
            let short: String = pod.chars().take(POD_NAME_ID_CHARS).collect();
            if let Some((_, other)) = seen.iter().find(|(s, _)| *s == short) {
                let other_id = pipeline.tasks[*other].id.clone();
                self.error(
                    "export-pod-name",
                    &pointer,
                    format!(
                        "task `{}` and task `{other_id}` get the same Kubernetes pod name on Kaapana (pod names keep the task id lower-cased, other characters as `-`, and only its first {POD_NAME_ID_CHARS} characters)",
                        task.id
                    ),
                    &format!("make the ids differ within their first {POD_NAME_ID_CHARS} characters (a-z, 0-9, `.`, `-`)"),
                );
            } else if pod.chars().count() > POD_NAME_ID_CHARS {
                self.warning(
                    "export-pod-name",
                    &pointer,
                    format!(
                        "only the first {POD_NAME_ID_CHARS} characters of task id `{}` reach its pod name on Kaapana (`{short}`)",
                        task.id
                    ),
                    "a shorter id keeps pod names readable",
                );
            }
            seen.push((short, index));
        }
    }

    /// Groups tasks by image: an image whose tasks' templates tapir knows gets a derived
    /// image carrying them; an image whose templates only the image knows is used as is.
    fn derive_images(&mut self, chart: &str, planned: &[&PlannedTask]) -> Vec<DerivedImage> {
        let mut order: Vec<&str> = Vec::new();
        for task in planned {
            if !order.contains(&task.runnable.task.image.as_str()) {
                order.push(&task.runnable.task.image);
            }
        }
        let mut derived: Vec<DerivedImage> = Vec::new();
        for image in order {
            let users: Vec<(usize, &&PlannedTask)> = planned
                .iter()
                .enumerate()
                .filter(|(_, t)| t.runnable.task.image == image)
                .collect();
            let known = users
                .iter()
                .filter(|(_, t)| t.runnable.template.is_some())
                .count();
            if known == 0 {
                continue;
            }
            if known < users.len() {
                for (index, task) in users.iter().filter(|(_, t)| t.runnable.template.is_none()) {
                    self.error(
                        "export-template-source",
                        &format!("/tasks/{index}/task"),
                        format!(
                            "template `{}` of task `{}` is only in image {image}, whose other tasks bring their templates: the derived image's /processing-container.json would hide it",
                            task.template, task.id
                        ),
                        "give this task its template too (inline or `container_file`), or use another image for the tasks with their own templates",
                    );
                }
            }
            let mut templates: Vec<Template> = Vec::new();
            for (index, task) in &users {
                let Some(template) = &task.runnable.template else {
                    continue;
                };
                match templates
                    .iter()
                    .find(|t| t.identifier == template.identifier)
                {
                    Some(existing) => {
                        if serde_json::to_value(existing).ok()
                            != serde_json::to_value(template).ok()
                        {
                            self.error(
                                "export-identifier-clash",
                                &format!("/tasks/{index}/task"),
                                format!(
                                    "two different templates named `{}` run on image {image}: one /processing-container.json cannot hold both",
                                    template.identifier
                                ),
                                "rename one of the templates",
                            );
                        }
                    }
                    None => templates.push(template.clone()),
                }
            }
            let mut name = format!("{chart}-{}", image_basename(image));
            let mut n = 2;
            while derived.iter().any(|d| d.name == name) {
                name = format!("{chart}-{}-{n}", image_basename(image));
                n += 1;
            }
            if !has_registry_host(image) && !image.starts_with('/') && !image.starts_with('.') {
                let (index, _) = users[0];
                self.warning(
                    "export-base-image",
                    &format!("/tasks/{index}/task"),
                    format!(
                        "the derived image {name} is built FROM {image}, which names no registry: Kaapana's build must find it locally or on Docker Hub"
                    ),
                    "push the image to the platform's registry and name it with the registry host",
                );
            }
            if image.starts_with('/') || image.starts_with('.') || image.contains("://") {
                let (index, _) = users[0];
                self.error(
                    "export-base-image",
                    &format!("/tasks/{index}/task"),
                    format!("image {image} is a path or an Apptainer source on this machine: a Dockerfile cannot be built FROM it"),
                    "use a Docker image reference",
                );
            }
            derived.push(DerivedImage {
                name,
                base: image.to_string(),
                templates,
                tasks: users.iter().map(|(_, t)| t.id.clone()).collect(),
            });
        }
        for image in &derived {
            for template in &image.templates {
                self.check_template(planned, image, template);
            }
        }
        derived
    }

    fn check_template(
        &mut self,
        planned: &[&PlannedTask],
        image: &DerivedImage,
        template: &Template,
    ) {
        let index = planned
            .iter()
            .position(|t| {
                image.tasks.contains(&t.id)
                    && t.runnable
                        .template
                        .as_ref()
                        .is_some_and(|x| x.identifier == template.identifier)
            })
            .unwrap_or(0);
        let pointer = format!("/tasks/{index}/task");
        for mount in template.inputs.iter().chain(&template.outputs) {
            if mount
                .scale_rule
                .as_ref()
                .is_some_and(|r| r.complexity.is_some())
            {
                self.error(
                    "export-scale-complexity",
                    &pointer,
                    format!(
                        "channel `{}` of template `{}` has a `scale_rule.complexity`, which Kaapana's model does not read (it needs `scale_factor`)",
                        mount.name, template.identifier
                    ),
                    "write the rule with `scale_factor` (an integer) instead",
                );
            }
        }
        for input in &template.inputs {
            if template.outputs.iter().any(|o| o.name == input.name) {
                self.error(
                    "export-channel-name",
                    &pointer,
                    format!(
                        "template `{}` has an input and an output both named `{}`: Kaapana names each volume after its channel, and two volumes `vol-{}` clash",
                        template.identifier, input.name, input.name
                    ),
                    "rename one of the channels",
                );
            }
        }
        let mut paths: Vec<&str> = Vec::new();
        for mount in template.inputs.iter().chain(&template.outputs) {
            let path = crate::model::normalize_container_path(&mount.mounted_path);
            if paths.iter().any(|p| *p == path) {
                self.error(
                    "export-channel-name",
                    &pointer,
                    format!(
                        "template `{}` mounts two channels at {path}: Kaapana silently drops the second",
                        template.identifier
                    ),
                    "give each channel its own mounted_path",
                );
            }
            paths.push(&mount.mounted_path);
        }
        let inline = planned
            .get(index)
            .is_some_and(|t| t.template_source.as_deref() == Some("inline"));
        for var in &template.env {
            if var.is_secret() && !var.value.is_empty() {
                // The pipeline's own text puts it there: refuse. A processing-container.json
                // file already holds it (and likely the image too): the copy adds no leak.
                let severity = if inline {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                self.finding(
                    severity,
                    "export-literal-secret",
                    &pointer,
                    format!(
                        "template `{}` gives secret-looking variable {} a default: the derived image's /processing-container.json holds it (the workflow parameter gets no default)",
                        template.identifier, var.name
                    ),
                    "leave its default empty; on Kaapana, pass it at run time in the trigger conf",
                );
            }
            if !var.adjustable {
                self.note(
                    "export-not-adjustable",
                    &pointer,
                    format!(
                        "variable {} of template `{}` is not adjustable: Kaapana does not enforce that (a run's task_form may still set it); it is not offered as a workflow parameter",
                        var.name, template.identifier
                    ),
                );
            }
        }
    }

    /// The checks of one task.
    fn check_task(&mut self, index: usize, planned: &PlannedTask) {
        let task_pointer = format!("/tasks/{index}/task");
        let entry = &self.input.pipeline.tasks[index];
        let raw = &self.input.raw_tasks[index];
        let runnable = &planned.runnable;
        // {{ env.X }} in the task: the chart would depend on this machine's environment.
        // Only what the export writes: the task's bindings and dropped config keys are
        // replaced or left out, whatever they hold.
        let mut exported = raw.clone();
        if let Some(members) = exported.as_object_mut() {
            members.retain(|key, _| !matches!(key.as_str(), "name" | "inputs" | "outputs"));
            if let Some(config) = members.get_mut("config").and_then(Value::as_object_mut) {
                config.retain(|key, _| {
                    matches!(
                        key.as_str(),
                        "labels" | "annotations" | "registryUrl" | "registryUsername"
                    )
                });
            }
        }
        let mut templated = Vec::new();
        collect_templated(&exported, "", &mut templated);
        if let Some(template) = &runnable.template
            && let Ok(value) = serde_json::to_value(template)
        {
            collect_templated(&value, "/taskTemplate", &mut templated);
        }
        for at in templated {
            self.error(
                "export-unrendered-template",
                &task_pointer,
                format!(
                    "task `{}` uses templating at {at}: the export does not render `{{{{ env.NAME }}}}`, and Kaapana would not either",
                    planned.id
                ),
                "write the value itself into the task before exporting",
            );
        }
        let config = raw.get("config").and_then(Value::as_object);
        if let Some(config) = config {
            if config
                .get("registryPassword")
                .and_then(Value::as_str)
                .is_some_and(|p| !p.is_empty())
            {
                self.error(
                    "export-literal-secret",
                    &task_pointer,
                    format!(
                        "task `{}` has a literal `config.registryPassword`: it would be stored in the DAG file, the ConfigMap and the workflow-api's database",
                        planned.id
                    ),
                    "remove it; Kaapana pulls with its `registry-secret`",
                );
            }
            let dropped: Vec<&str> = DROPPED_CONFIG
                .iter()
                .copied()
                .filter(|k| config.contains_key(*k))
                .collect();
            if !dropped.is_empty() {
                self.warning(
                    "export-dropped-config",
                    &task_pointer,
                    format!(
                        "task `{}`: config {} has no place in KaapanaTaskOperator and is left out (Kaapana sets the namespace, the pull secret, its env and volumes itself)",
                        planned.id,
                        dropped.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                    "",
                );
            }
        }
        // Inputs: only mapped channels are mounted on Kaapana.
        if let Some(template) = &runnable.template {
            for input in &template.inputs {
                if entry
                    .iochannel_maps
                    .iter()
                    .any(|m| m.input_channel == input.name)
                {
                    continue;
                }
                match runnable.task.inputs.iter().find(|b| b.name == input.name) {
                    Some(binding) => self.error(
                        "export-host-path",
                        &task_pointer,
                        format!(
                            "input `{}` of task `{}` is bound to host path {}: Kaapana mounts only inputs fed by an IOMapping",
                            input.name, planned.id, binding.volume_source.host_path
                        ),
                        "feed the input from an upstream task's output with `iochannel_maps`, or put the data into the image",
                    ),
                    None => self.warning(
                        "export-unfed-input",
                        &task_pointer,
                        format!(
                            "input `{}` of task `{}` has no IOMapping: Kaapana does not mount it",
                            input.name, planned.id
                        ),
                        "feed it with `iochannel_maps`, or remove it from the template",
                    ),
                }
            }
        }
        for dep in &planned.depends_on {
            if dep.can_fail && dep.via.contains(&"iochannel_maps") {
                self.warning(
                    "export-can-fail-mapping",
                    &format!("/tasks/{index}/iochannel_maps"),
                    format!(
                        "task `{}` may run after `{}` failed, and reads its output: on Kaapana a task that failed before its pod started leaves no record to read, and this task fails",
                        planned.id, dep.id
                    ),
                    "",
                );
            }
        }
        let command = runnable.task.command.is_some()
            || runnable
                .template
                .as_ref()
                .is_some_and(|t| t.command.is_some());
        let execution = &planned.execution;
        let profile_pointer =
            execution_pointer(entry, index, &self.input.pipeline.execution_profile, |p| {
                p.max_exec_time.is_some()
            });
        if execution.max_exec_time.is_none() {
            self.warning(
                "export-no-time-limit",
                &profile_pointer,
                format!(
                    "task `{}` has no time limit: the export gives it {LONGEST_EXEC_TIME} s (a year), Kaapana's own default would be 90 minutes",
                    planned.id
                ),
                "set `execution_profile.max_exec_time`",
            );
        }
        let skips_like_kaapana =
            execution.skip_exit_code == Some(crate::pipeline::model::KAAPANA_SKIP_EXIT_CODE);
        for (code, differs) in [
            ("export-entrypoint", command),
            ("export-skip-code", !skips_like_kaapana),
            (
                "export-outputs-wiped",
                execution.max_retries > 0 && !execution.clean_outputs_before_retry,
            ),
            (
                "export-backoff-jitter",
                execution.max_retries > 0
                    && execution.retry_policy == RetryPolicy::ExponentialBackoff,
            ),
        ] {
            if differs {
                self.grouped.entry(code).or_default().push(index);
            }
        }
    }

    /// The behaviour differences that concern many tasks alike: one finding each, at the
    /// first task, naming them all.
    fn grouped_findings(&mut self) {
        let pipeline = self.input.pipeline;
        let grouped = std::mem::take(&mut self.grouped);
        for (code, indexes) in grouped {
            let ids: Vec<String> = indexes
                .iter()
                .map(|&i| format!("`{}`", pipeline.tasks[i].id))
                .collect();
            let tasks = format!(
                "{} {}",
                if ids.len() == 1 { "task" } else { "tasks" },
                ids.join(", ")
            );
            let pointer = format!("/tasks/{}/task", indexes[0]);
            match code {
                "export-entrypoint" => self.warning(
                    code,
                    &pointer,
                    format!("{tasks} {} a command: on Kubernetes it replaces the image's ENTRYPOINT, which tapir keeps (not checked: the export does not inspect images)", if ids.len() == 1 { "sets" } else { "set" }),
                    "make sure the images have no ENTRYPOINT, or put it at the start of the command",
                ),
                "export-skip-code" => self.warning(
                    code,
                    &pointer,
                    format!("on Kaapana exit code 126 means skipped (no retry; tasks after it are skipped); for {tasks} tapir here counts it as a failure"),
                    "set `execution_profile.skip_exit_code: 126` (or `profile: kaapana`) to run the same locally",
                ),
                "export-outputs-wiped" => self.warning(
                    code,
                    &pointer,
                    format!("Kaapana deletes the output folders of {tasks} before each attempt; tapir here keeps them for a retry"),
                    "set `execution_profile.clean_outputs_before_retry: true` (or `profile: kaapana`) to run the same locally",
                ),
                _ => self.note(
                    code,
                    &pointer,
                    format!("Airflow's exponential backoff waits a little longer than tapir's for {tasks}: retry k waits between d·2^(k-1) and d·2^k, tapir exactly d·2^(k-1)"),
                ),
            }
        }
    }

    /// Secrets and Kaapana's own variables among the operators' env.
    fn check_env(&mut self, tasks: &[TaskOut]) {
        let pipeline = self.input.pipeline;
        // A pipeline-wide variable reaches every task: one finding at its place.
        let mut reported: HashSet<(String, &'static str)> = HashSet::new();
        for task in tasks {
            let entry = &pipeline.tasks[task.index];
            for (name, value) in &task.env {
                let pointer = if entry.env.contains_key(name) {
                    format!(
                        "/tasks/{}/env/{}",
                        task.index,
                        name.replace('~', "~0").replace('/', "~1")
                    )
                } else if pipeline.env.contains_key(name) {
                    format!("/env/{}", name.replace('~', "~0").replace('/', "~1"))
                } else {
                    format!("/tasks/{}/task", task.index)
                };
                if is_secret_name(name)
                    && !value.is_empty()
                    && reported.insert((pointer.clone(), "secret"))
                {
                    self.error(
                        "export-literal-secret",
                        &pointer,
                        format!(
                            "variable {name} {} looks like a secret: its value would be stored in the DAG file, the ConfigMap and the workflow-api's database",
                            if pointer.starts_with("/env/") {
                                "(the pipeline's `env`, for every task)".to_string()
                            } else {
                                format!("of task `{}`", task.planned.id)
                            }
                        ),
                        "remove the value from the pipeline; on Kaapana pass it at run time in the trigger conf's task_form",
                    );
                }
                if name.starts_with("KAAPANA_") && reported.insert((pointer.clone(), "reserved")) {
                    self.warning(
                        "export-reserved-env",
                        &pointer,
                        format!(
                            "Kaapana sets its own KAAPANA_* variables after task `{}`'s: on a name clash ({name}) its value wins",
                            task.planned.id
                        ),
                        "use another name",
                    );
                }
            }
        }
    }

    /// `workflow.json`'s `workflow_parameters`: every adjustable variable of every known
    /// template, with the value the task runs with as the form's default (a string: the
    /// platform puts the default into `BaseEnv.value`, which takes only strings).
    fn parameters(&mut self, tasks: &[TaskOut]) -> Vec<Value> {
        let mut out = Vec::new();
        for task in tasks {
            let Some(template) = &task.planned.runnable.template else {
                self.note(
                    "export-parameters",
                    &format!("/tasks/{}/task", task.index),
                    format!(
                        "template `{}` of task `{}` is only in its image: its variables are not offered as workflow parameters",
                        task.planned.template, task.planned.id
                    ),
                );
                continue;
            };
            for var in template.env.iter().filter(|v| v.adjustable) {
                let value = task
                    .env
                    .iter()
                    .find(|(n, _)| *n == var.name)
                    .map_or(var.value.as_str(), |(_, v)| v.as_str());
                let mut form = Map::new();
                let choices = var.choices.as_ref().filter(|c| !c.is_empty());
                let kind = if choices.is_some() || var.value_type == Some(EnvType::Boolean) {
                    "list"
                } else {
                    "str"
                };
                form.insert("type".into(), kind.into());
                form.insert(
                    "title".into(),
                    format!("{} ({})", var.name, task.planned.id).into(),
                );
                if let Some(description) = &var.description {
                    form.insert("description".into(), description.clone().into());
                }
                match (choices, var.value_type) {
                    (Some(choices), _) => {
                        form.insert("options".into(), json!(choices));
                        form.insert("multiselectable".into(), false.into());
                    }
                    (None, Some(EnvType::Boolean)) => {
                        form.insert("options".into(), json!(["true", "false"]));
                        form.insert("multiselectable".into(), false.into());
                    }
                    (None, Some(EnvType::Int)) => {
                        form.insert("regex_pattern".into(), r"^\s*[+-]?[0-9]+\s*$".into());
                    }
                    (None, _) => {
                        form.insert("regex_pattern".into(), ".*".into());
                    }
                }
                if var.is_secret() {
                    form.insert("required".into(), true.into());
                } else {
                    form.insert("default".into(), value.into());
                    form.insert("required".into(), false.into());
                }
                out.push(json!({
                    "task_title": task.planned.id,
                    "env_variable_name": var.name,
                    "ui_form": form,
                }));
            }
        }
        out
    }

    fn check_jinja(&mut self, dag: &str) {
        if let Err(why) = survives_jinja(dag, "dag_v1") {
            self.error(
                "export-jinja",
                "",
                format!("internal: the generated DAG does not survive the workflow-api's Jinja rendering ({why}); please report this"),
                "",
            );
        }
    }

    fn always_notes(&mut self) {
        let mapped = self
            .input
            .pipeline
            .tasks
            .iter()
            .any(|t| !t.iochannel_maps.is_empty());
        if mapped {
            self.warning(
                "export-inputs-writable",
                "/tasks",
                "Kaapana mounts a task's mapped inputs writable (tapir mounts them read-only): a task could change its upstream's output".into(),
                "make sure no task writes into its inputs",
            );
        }
        self.note(
            "export-not-installed",
            "",
            "the chart follows Kaapana's workflow-installer and KaapanaTaskOperator as read from Kaapana's source; it has not been installed on a live Kaapana by tapir's tests. The installer will warn that the workflow has no icon.".into(),
        );
    }

    fn chart_yaml(&self, chart: &str, title: &str, description: &str) -> String {
        let mut out = self.header("#");
        let _ = write!(
            out,
            "---\napiVersion: v2\nappVersion: \"1.0.0\"\ndescription: {}\nname: {chart}\nversion: \"0.0.0\"\nkeywords:\n  - kaapanaworkflow-v2\ndependencies:\n  - name: workflow-helpers\n    version: \"0.0.0\"\n    repository: \"file://../../helpers\"\nannotations:\n  ui-visible-name: {}\n",
            yaml_string(description),
            yaml_string(title)
        );
        out
    }

    fn values_yaml(&self, derived: &[DerivedImage]) -> String {
        let mut out = self.header("#");
        out.push_str("---\nglobal:\n  pull_policy_images: \"IfNotPresent\"\n\n");
        if derived.is_empty() {
            out.push_str("processingContainers: []\n");
        } else {
            out.push_str("processingContainers:\n");
            for image in derived {
                let _ = writeln!(out, "  - {}", image.name);
            }
        }
        out
    }

    fn dockerfile(&self, image: &DerivedImage) -> String {
        let mut out = self.header("#");
        let _ = write!(
            out,
            "# The pipeline's image plus the templates its tasks use, so that\n# KaapanaTaskOperator finds them in /processing-container.json.\nFROM {}\n\nLABEL IMAGE=\"{}\"\nLABEL BUILD_IGNORE=\"False\"\n\nCOPY processing-container.json /processing-container.json\n",
            image.base, image.name
        );
        out
    }

    /// The generated-file header: who made it from what.
    fn header(&self, comment: &str) -> String {
        format!(
            "{comment} Generated by tapir {} (`tapir pipeline export --to kaapana`) from {}\n{comment} (pipeline `{}`, sha256 {}). Re-export instead of editing.\n",
            env!("CARGO_PKG_VERSION"),
            python::comment_text(&self.input.source_name),
            python::comment_text(&self.input.pipeline.name),
            self.input.sha256,
        )
    }

    fn dag(&self, tasks: &[TaskOut], description: &str) -> String {
        let gates = gates(tasks);
        let mut out = self.header("#");
        out.push_str(
            "# The workflow-api renders this file with Jinja (only `dag_id` is defined) before\n# writing it to Airflow's DAG folder.\nfrom datetime import timedelta\n\nfrom airflow.models import DAG\n",
        );
        if !gates.is_empty() {
            out.push_str("from airflow.operators.empty import EmptyOperator\n");
        }
        out.push_str(
            "from kaapana.blueprints.kaapana_global_variables import (\n    DEFAULT_REGISTRY,\n    KAAPANA_BUILD_VERSION,\n)\nfrom task_api.processing_container import pc_models\nfrom task_api_operators.KaapanaTaskOperator import IOMapping, KaapanaTaskOperator\n\nargs = {\n    \"ui_visible\": True,\n    \"owner\": \"kaapana\",\n}\n\nwith DAG(\n    \"{{ dag_id }}\",\n    default_args=args,\n",
        );
        if !description.is_empty() {
            let _ = writeln!(out, "    description={},", python::string(description));
        }
        out.push_str("    schedule=None,\n    tags=[\"tapir\"],\n) as dag:\n");
        let mut explained = false;
        for (n, task) in tasks.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            self.operator(&mut out, task, tasks, &mut explained);
        }
        for gate in &gates {
            let _ = write!(
                out,
                "\n    # {} may run after `{}` failed; their other upstream tasks must succeed.\n    {} = EmptyOperator(task_id={}, trigger_rule=\"all_done\")\n",
                python::comment_text(&format!(
                    "{} `{}`",
                    if gate.for_tasks.len() == 1 {
                        "Task"
                    } else {
                        "Tasks"
                    },
                    gate.for_tasks.join("`, `")
                )),
                python::comment_text(&gate.upstream_id),
                gate.variable,
                python::string(&gate.task_id)
            );
        }
        out.push('\n');
        // One line per edge, in pipeline order; a gate's own edge before its first use.
        let mut gates_linked: HashSet<&str> = HashSet::new();
        for task in tasks {
            let mixed = is_mixed(task.planned);
            for dep in &task.planned.depends_on {
                let up = variable_of(tasks, &dep.id);
                let gate = gates.iter().find(|g| g.upstream_id == dep.id);
                match gate.filter(|_| mixed && dep.can_fail) {
                    Some(gate) => {
                        if gates_linked.insert(gate.variable.as_str()) {
                            let _ = writeln!(out, "    {up} >> {}", gate.variable);
                        }
                        let _ = writeln!(out, "    {} >> {}", gate.variable, task.variable);
                    }
                    None => {
                        let _ = writeln!(out, "    {up} >> {}", task.variable);
                    }
                }
            }
        }
        out
    }

    fn operator(&self, out: &mut String, task: &TaskOut, tasks: &[TaskOut], explained: &mut bool) {
        let planned = task.planned;
        let runnable = &planned.runnable;
        let entry = &self.input.pipeline.tasks[task.index];
        let raw = &self.input.raw_tasks[task.index];
        let config = raw.get("config").and_then(Value::as_object);
        let v = &task.variable;
        let _ = writeln!(out, "    {v} = KaapanaTaskOperator(");
        let _ = writeln!(out, "        task_id={},", python::string(&planned.id));
        let _ = writeln!(out, "        image={},", task.image);
        let _ = writeln!(
            out,
            "        taskTemplate={},",
            python::string(&planned.template)
        );
        if let Some(description) = &entry.description {
            let _ = writeln!(out, "        doc_md={},", python::string(description));
        }
        if !task.env.is_empty() {
            out.push_str("        env=[\n");
            for (name, value) in &task.env {
                let _ = writeln!(
                    out,
                    "            pc_models.BaseEnv(name={}, value={}),",
                    python::string(name),
                    python::string(value)
                );
            }
            out.push_str("        ],\n");
        }
        if let Some(command) = &runnable.task.command {
            let items: Vec<String> = command.iter().map(|c| python::string(c)).collect();
            let _ = writeln!(out, "        command=[{}],", items.join(", "));
        }
        if let Some(resources) = &runnable.task.resources {
            let mut parts = Vec::new();
            for (key, map) in [
                ("limits", &resources.limits),
                ("requests", &resources.requests),
            ] {
                if let Some(map) = map {
                    parts.push(format!("{key}={}", python_dict(map.iter())));
                }
            }
            let _ = writeln!(
                out,
                "        resources=pc_models.Resources({}),",
                parts.join(", ")
            );
        }
        if !entry.iochannel_maps.is_empty() {
            out.push_str("        iochannel_maps=[\n");
            for mapping in &entry.iochannel_maps {
                let _ = write!(
                    out,
                    "            IOMapping(\n                upstream_operator={},\n                upstream_output_channel={},\n                input_channel={},\n            ),\n",
                    variable_of(tasks, &mapping.upstream_task),
                    python::string(&mapping.upstream_output_channel),
                    python::string(&mapping.input_channel)
                );
            }
            out.push_str("        ],\n");
        }
        for key in ["registryUrl", "registryUsername"] {
            if let Some(value) = config.and_then(|c| c.get(key)).and_then(Value::as_str) {
                let _ = writeln!(out, "        {key}={},", python::string(value));
            }
        }
        for key in ["labels", "annotations"] {
            if let Some(map) = config
                .and_then(|c| c.get(key))
                .and_then(Value::as_object)
                .filter(|m| !m.is_empty())
            {
                let strings: BTreeMap<&String, String> = map
                    .iter()
                    .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                    .collect();
                let _ = writeln!(out, "        {key}={},", python_dict(strings.into_iter()));
            }
        }
        let execution = &planned.execution;
        let _ = writeln!(out, "        retries={},", execution.max_retries);
        if execution.retry_policy == RetryPolicy::ExponentialBackoff {
            out.push_str("        retry_exponential_backoff=True,\n");
        }
        let seconds = execution.max_exec_time.unwrap_or(LONGEST_EXEC_TIME);
        let _ = writeln!(
            out,
            "        execution_timeout=timedelta(seconds={seconds}),"
        );
        let all_can_fail =
            !planned.depends_on.is_empty() && planned.depends_on.iter().all(|d| d.can_fail);
        if all_can_fail {
            out.push_str("        trigger_rule=\"all_done\",\n");
        }
        out.push_str("    )\n");
        if execution.retry_backoff_seconds != OPERATOR_RETRY_DELAY {
            if !*explained {
                let _ = writeln!(
                    out,
                    "    # KaapanaTaskOperator fixes retry_delay at {OPERATOR_RETRY_DELAY} s in its constructor."
                );
                *explained = true;
            }
            let _ = writeln!(
                out,
                "    {v}.retry_delay = timedelta(seconds={})",
                execution.retry_backoff_seconds
            );
        }
    }
}

/// A gate: an `EmptyOperator` that succeeds once `upstream_id` is done, however it ended,
/// for tasks that may run after it failed but need their other upstream tasks to succeed.
struct Gate {
    upstream_id: String,
    task_id: String,
    variable: String,
    for_tasks: Vec<String>,
}

/// Does this task mix upstream tasks that may fail with ones that must succeed?
fn is_mixed(task: &PlannedTask) -> bool {
    task.depends_on.iter().any(|d| d.can_fail) && task.depends_on.iter().any(|d| !d.can_fail)
}

fn gates(tasks: &[TaskOut]) -> Vec<Gate> {
    let mut gates: Vec<Gate> = Vec::new();
    let mut used: Vec<String> = tasks.iter().map(|t| t.variable.clone()).collect();
    let ids: HashSet<&str> = tasks.iter().map(|t| t.planned.id.as_str()).collect();
    for task in tasks.iter().filter(|t| is_mixed(t.planned)) {
        for dep in task.planned.depends_on.iter().filter(|d| d.can_fail) {
            if let Some(gate) = gates.iter_mut().find(|g| g.upstream_id == dep.id) {
                gate.for_tasks.push(task.planned.id.clone());
                continue;
            }
            let mut task_id = format!("{}{GATE_SUFFIX}", dep.id);
            while ids.contains(task_id.as_str()) || gates.iter().any(|g| g.task_id == task_id) {
                task_id.push('_');
            }
            let variable = python::identifier(&task_id, &used);
            used.push(variable.clone());
            gates.push(Gate {
                upstream_id: dep.id.clone(),
                task_id,
                variable,
                for_tasks: vec![task.planned.id.clone()],
            });
        }
    }
    gates
}

fn variable_of<'t>(tasks: &'t [TaskOut], id: &str) -> &'t str {
    tasks
        .iter()
        .find(|t| t.planned.id == id)
        .map_or("", |t| t.variable.as_str())
}

/// The operator's `env`: the task file's variables with the pipeline's over them (as
/// `pipeline run` merges them), in the task file's order, new names after.
fn operator_env(planned: &PlannedTask) -> Vec<(String, String)> {
    let runnable = &planned.runnable;
    let mut env: Vec<(String, String)> = runnable
        .task
        .env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    for (name, value) in &runnable.pipeline_env {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => env.push((name.clone(), value.clone())),
        }
    }
    env
}

/// The conf file in the shape Kaapana's operator reads: `task_form.<id>.env` as a list of
/// `{name, value}`; the Task fields it replaces (`image`, `command`, `resources`) as they are.
fn trigger_conf(conf: &Conf) -> Value {
    let mut task_form = Map::new();
    for (id, form) in &conf.task_form {
        let mut entry = Map::new();
        let env: Vec<Value> = form
            .variables()
            .into_iter()
            .map(|v| json!({"name": v.name, "value": v.value}))
            .collect();
        entry.insert("env".into(), Value::Array(env));
        if let Some(image) = &form.image {
            entry.insert("image".into(), image.clone().into());
        }
        if let Some(command) = &form.command {
            entry.insert("command".into(), json!(command));
        }
        if let Some(resources) = &form.resources {
            entry.insert(
                "resources".into(),
                serde_json::to_value(resources).unwrap_or(Value::Null),
            );
        }
        task_form.insert(id.clone(), Value::Object(entry));
    }
    json!({ "task_form": task_form })
}

/// Where a task's execution profile field comes from: the task's, else the pipeline's,
/// else the task itself.
fn execution_pointer(
    entry: &crate::pipeline::model::PipelineTask,
    index: usize,
    pipeline: &crate::pipeline::model::ExecutionProfile,
    set: impl Fn(&crate::pipeline::model::ExecutionProfile) -> bool,
) -> String {
    if set(&entry.execution_profile) {
        format!("/tasks/{index}/execution_profile")
    } else if set(pipeline) {
        "/execution_profile".into()
    } else {
        format!("/tasks/{index}/id")
    }
}

/// Every string under `value` that uses templating, by JSON pointer (below `base`).
fn collect_templated(value: &Value, base: &str, out: &mut Vec<String>) {
    match value {
        Value::String(s) if is_templated(s) => out.push(if base.is_empty() {
            "/".into()
        } else {
            base.into()
        }),
        Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                collect_templated(item, &format!("{base}/{n}"), out);
            }
        }
        Value::Object(members) => {
            for (key, item) in members {
                collect_templated(item, &crate::diagnostic::pointer_join(base, key), out);
            }
        }
        _ => {}
    }
}

/// Pretty JSON with a final newline.
fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A YAML double-quoted scalar (JSON's string syntax is one).
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn python_dict<'k>(items: impl Iterator<Item = (&'k String, impl AsRef<str>)>) -> String {
    let parts: Vec<String> = items
        .map(|(k, v)| format!("{}: {}", python::string(k), python::string(v.as_ref())))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The Helm chart name made from the pipeline name: lower case, other characters `-`.
pub(crate) fn chart_name(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_matches('-').to_string()
}

fn chart_name_fits(chart: &str) -> bool {
    !chart.is_empty()
        && chart.len() <= CHART_NAME_MAX
        && chart
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !chart.starts_with('-')
        && !chart.ends_with('-')
}

/// A task id as its pod name keeps it: lower case, other characters than a-z, 0-9,
/// `.` and `-` as `-`.
fn pod_name_part(id: &str) -> String {
    id.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `registry:5000/group/name:tag@sha256:…` → `name`, fit for an image name.
fn image_basename(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let name = last.split(':').next().unwrap_or(last);
    let name = chart_name(name);
    if name.is_empty() {
        "image".into()
    } else {
        name
    }
}

/// Does the reference's first component name a registry (`host.name/…`, `host:port/…`,
/// `localhost/…`)?
fn has_registry_host(image: &str) -> bool {
    match image.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

/// Renders `dag` as the workflow-api does (Jinja, only `dag_id` defined, one trailing
/// newline dropped) and compares it with the file Airflow should get.
pub(crate) fn survives_jinja(dag: &str, dag_id: &str) -> Result<(), String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let rendered = env
        .render_str(dag, minijinja::context! { dag_id => dag_id })
        .map_err(|e| e.to_string())?;
    let intended = dag.replacen("{{ dag_id }}", dag_id, 1);
    let intended = intended.strip_suffix('\n').unwrap_or(&intended);
    if rendered == intended {
        Ok(())
    } else {
        Err("the rendered text differs from the file".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_kubernetes_and_helm() {
        assert_eq!(chart_name("My_Pipeline.v2"), "my-pipeline-v2");
        assert!(chart_name_fits("download-process-upload"));
        assert!(!chart_name_fits(&"a".repeat(41)));
        assert_eq!(pod_name_part("Get_Data"), "get-data");
        assert_eq!(
            image_basename("reg.example.org:5000/x/dummy:1.0@sha256:ab"),
            "dummy"
        );
        assert!(has_registry_host("localhost/x") && has_registry_host("r.io/x"));
        assert!(!has_registry_host("tapir-example/dummy:latest") && !has_registry_host("busybox"));
    }

    #[test]
    fn the_jinja_self_check_catches_an_unescaped_tag() {
        assert!(survives_jinja("x = \"{{ dag_id }}\"\ny = \"\\x7b{ env.X }}\"\n", "d_v1").is_ok());
        assert!(survives_jinja("x = \"{{ env.X }}\"\n", "d_v1").is_err());
        assert!(survives_jinja("n = \"${#x}\"\n", "d_v1").is_err());
    }
}
