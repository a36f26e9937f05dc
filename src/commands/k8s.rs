//! The Kubernetes face: `run --executor k8s --dry-run` prints a task's manifests and
//! `export k8s TASK -o DIR` writes them (DESIGN.md decision 18). Both go through one
//! preparation: task file → template → the same `RunPlan` a local run makes → manifests,
//! checked. No cluster is contacted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::absolute;
use crate::backend::{Backend, lookup};
use crate::cli::{ColorChoice, ExportK8sArgs, Mode, PlanFormat, RunArgs};
use crate::error::{Error, ExitStatus, Result};
use crate::k8s::kubectl::{self, Target};
use crate::k8s::manifest::SecretPurpose;
use crate::k8s::{self, ManifestFormat, Manifests, MergedResources};
use crate::output::{self, Printer};
use crate::resolve::host::HostFacts;
use crate::resolve::plan::{self, EnvSource, Options, Override, PlannedBind, PlannedUser};
use crate::resolve::task_file::{self, LoadError};

/// What the manifests are made from, beyond the task file.
struct Inputs<'a> {
    task: &'a Path,
    container_file: Option<&'a Path>,
    overrides: Vec<Override>,
    binds: Vec<PlannedBind>,
    entrypoint: Option<String>,
    network: Option<String>,
    pull: bool,
    /// `run --timeout`: the Pod's `activeDeadlineSeconds`.
    timeout: Option<u64>,
}

/// Task file → checked manifests, with the warnings to show. An error is shown by the
/// caller with the task file's text (exit 125, nothing made).
fn prepare(
    inputs: &Inputs<'_>,
    run_id: Option<&str>,
    namespace: Option<&str>,
) -> Result<(Manifests, Vec<String>, plan::RunPlan)> {
    let loaded = match task_file::load(inputs.task) {
        Ok(loaded) => loaded,
        Err(LoadError::Unreadable(e)) => return Err(e),
        Err(LoadError::Invalid(report)) => {
            let message = format!("{} is not a valid task", inputs.task.display());
            return Err(task_file::report_error(&report, message));
        }
    };
    let task_dir = absolute(inputs.task)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // The image is needed here only when the template is in it: a cluster pulls the image
    // itself, so it need not be on this machine otherwise.
    let read_image_file = || {
        let backend = Backend::locate(Mode::Docker, true)?;
        let image =
            backend.find_image(&loaded.task.image, inputs.pull, &loaded.registry, &task_dir)?;
        backend.processing_container(&loaded.task.image, &image)
    };
    let (template, source) =
        lookup::template_for(&loaded, inputs.container_file, &read_image_file)?;
    let options = Options {
        overrides: inputs.overrides.clone(),
        // A pod runs as the image's user (Kaapana sets none); the invoker's uid means
        // nothing on a node.
        user: PlannedUser::Image,
        network: inputs.network.clone(),
        entrypoint: inputs.entrypoint.clone(),
        binds: inputs.binds.clone(),
        // Docker's and Apptainer's options (`--shm-size`, `--gpus`, `--publish`,
        // `--engine-arg`) have no place in a Pod: `run` warns when they are given.
        engine: Default::default(),
    };
    let mut host = HostFacts::gather(&loaded.task, &template, &task_dir).with_binds(&options.binds);
    let inputs_here: Vec<PathBuf> = loaded
        .task
        .inputs
        .iter()
        .filter_map(|b| {
            plan::host_path(&b.volume_source.host_path, &task_dir, host.home.as_deref()).ok()
        })
        .collect();
    let node_paths = on_the_node(&mut host, &inputs_here);
    let plan = plan::resolve(&loaded.task, &template, &source, &task_dir, &options, &host)
        .map_err(|problems| task_file::problems_error(&problems, &loaded))?;
    let mut config = k8s::config::read(&loaded.config, &loaded.unrendered_config)
        .map_err(|problems| task_file::problems_error(&problems, &loaded))?;
    if let Some(ns) = namespace {
        config.namespace = Some(ns.to_string());
    }
    config.active_deadline_seconds = inputs.timeout;
    let resources = MergedResources::of(&loaded.task, &template);
    let manifests = k8s::manifests_for(&plan, &resources, &config, &loaded.task.name, run_id)
        .map_err(|problems| task_file::problems_error(&problems, &loaded))?;
    let mut warnings = node_paths;
    warnings.extend(plan.warnings.iter().cloned());
    warnings.extend(manifests.warnings.iter().cloned());
    Ok((manifests, warnings, plan))
}

/// A pod's host paths are on its node, not necessarily here: a folder this machine cannot
/// use is a warning, not a refusal, and a scale rule that cannot measure its input keeps
/// the declared memory (said in a warning).
fn on_the_node(host: &mut HostFacts, inputs: &[PathBuf]) -> Vec<String> {
    use crate::resolve::host::PathFact;
    use crate::resolve::sizing::Measurement;
    let mut warnings = Vec::new();
    for (path, fact) in host.paths.iter_mut() {
        if let PathFact::Unusable(reason) = fact {
            // A missing output folder is normal (a local run creates it; a hostPath on a
            // node is created by the kubelet).
            if inputs.contains(path) {
                warnings.push(format!(
                    "{} cannot be used on this machine ({reason}); the pod's node must have it",
                    path.display()
                ));
            }
            *fact = PathFact::Folder;
        }
    }
    for (channel, measured) in host.measurements.iter_mut() {
        if let Err(e) = measured {
            warnings.push(format!(
                "the scale rule of input `{channel}` is not applied: {} (tapir measures inputs on this machine); the memory is the declared one",
                e.message
            ));
            *measured = Ok(Measurement { bytes: 0, files: 0 });
        }
    }
    warnings
}

/// What a run of these manifests would ask kubectl, said after a dry run (tapir does not
/// submit them yet): the exact calls, each with its deadline.
fn submission_note(target: &Target, manifests: &Manifests) -> String {
    let limit = crate::backend::deadline::limit();
    let pod = manifests.pod_name();
    let secrets: Vec<String> = manifests.secrets.iter().map(|s| s.name.clone()).collect();
    let calls = [
        kubectl::create(target, manifests, limit),
        kubectl::logs(target, pod, true, limit, limit),
        kubectl::status(target, pod, limit),
        kubectl::delete(target, pod, &secrets, 10, limit),
    ];
    let mut text = String::from(
        "note: a run without --dry-run would call, in this order (create: the real Secrets on standard input, never in a file or the argv):\n",
    );
    for call in calls {
        text.push_str(&format!("  {}\n", call.shown()));
    }
    text
}

fn show_warnings(warnings: &[String], p: Printer) {
    for warning in warnings {
        output::stderr(&format!("{} {warning}\n", p.yellow("warning:")));
    }
}

fn show_refusal(error: &Error, p: Printer) -> ExitStatus {
    match error {
        Error::NotStartedFindings { findings, message } => {
            for d in &findings.diagnostics {
                output::stderr(&p.diagnostic(&findings.file, findings.source.as_ref(), d));
            }
            output::stderr(&format!("tapir: {message}; no manifest was made\n"));
        }
        e => output::stderr(&format!("{} {e}\n", p.red("error:"))),
    }
    ExitStatus::NotStarted
}

/// `run --executor k8s`: with `--dry-run`, the manifests on stdout (YAML, or a JSON
/// `List` with `--format json`), Secrets masked.
pub(crate) fn run(args: &RunArgs, color: ColorChoice) -> Result<ExitStatus> {
    let p = Printer::for_stderr(color);
    let inputs = Inputs {
        task: &args.task,
        container_file: args.container_file.as_deref(),
        overrides: super::run::overrides(
            &crate::executor::RunRequest::from_args(args),
            &args.env_file,
        ),
        binds: args.bind.clone(),
        entrypoint: args.entrypoint.clone(),
        network: args.network.clone(),
        pull: args.pull,
        timeout: args.timeout,
    };
    // A dry run has no run id of its own unless one is given: the Pod is named as a run of
    // it would be named with the id shown.
    let id = args
        .run_id
        .clone()
        .unwrap_or_else(crate::record::store::new_run_id);
    if let Some(ns) = &args.namespace
        && let Some(why) = k8s::rules::dns_label_problem(ns)
    {
        return Err(Error::Usage(format!(
            "--namespace `{ns}`: {why}\n  fix: give a namespace name like `my-project`"
        )));
    }
    let (manifests, mut warnings, plan) =
        match prepare(&inputs, Some(&id), args.namespace.as_deref()) {
            Ok(prepared) => prepared,
            Err(e) => return Ok(show_refusal(&e, p)),
        };
    if !args.dry_run {
        if !crate::executor::RunRequest::from_args(args)
            .engine
            .is_empty()
        {
            warnings.push("--shm-size, --gpus, --publish and --engine-arg are engine options; they are not in the manifest".to_string());
        }
        let target = Target::for_manifests(args.context.clone(), None, &manifests);
        return super::k8s_submit::submit(
            super::k8s_submit::Submission {
                args,
                id: &id,
                manifests: &manifests,
                plan,
                warnings,
                target,
            },
            p,
        );
    }
    show_warnings(&warnings, p);
    if !crate::executor::RunRequest::from_args(args)
        .engine
        .is_empty()
    {
        show_warnings(
            &["--shm-size, --gpus, --publish and --engine-arg are engine options; they are not in the manifest (a GPU is asked for with the task's resources.limits, e.g. nvidia.com/gpu)".to_string()],
            p,
        );
    }
    let format = match args.format {
        PlanFormat::Json => ManifestFormat::Json,
        PlanFormat::Human => ManifestFormat::Yaml,
    };
    output::stdout(&k8s::render_masked(&manifests, format));
    if format == ManifestFormat::Yaml {
        let target = Target::for_manifests(args.context.clone(), None, &manifests);
        output::stderr(&submission_note(&target, &manifests));
    }
    Ok(ExitStatus::Success)
}

/// `export k8s TASK -o DIR`: the Pod as `<pod>.yaml` (or `.json`), and a README saying how
/// to create the Secrets it refers to and how to apply it. Secret values are never written.
pub(crate) fn export(args: &ExportK8sArgs, color: ColorChoice) -> Result<ExitStatus> {
    if is_pipeline(&args.task) {
        return export_pipeline(args, color);
    }
    let p = Printer::for_stderr(color);
    let inputs = Inputs {
        task: &args.task,
        container_file: args.container_file.as_deref(),
        overrides: args
            .env
            .iter()
            .map(|var| Override {
                name: var.name.clone(),
                value: var.value.clone(),
                source: EnvSource::CommandLine,
            })
            .collect(),
        binds: Vec::new(),
        entrypoint: None,
        network: None,
        pull: false,
        timeout: None,
    };
    let (manifests, warnings, _) = match prepare(&inputs, None, None) {
        Ok(prepared) => prepared,
        Err(e) => return Ok(show_refusal(&e, p)),
    };
    show_warnings(&warnings, p);
    let (format, extension) = match args.format {
        PlanFormat::Json => (ManifestFormat::Json, "json"),
        PlanFormat::Human => (ManifestFormat::Yaml, "yaml"),
    };
    std::fs::create_dir_all(&args.output).map_err(|e| Error::io(&args.output, e))?;
    let pod_file = args
        .output
        .join(format!("{}.{extension}", manifests.pod_name()));
    let pod_text = match format {
        ManifestFormat::Yaml => k8s::yaml::to_yaml(&manifests.pod),
        ManifestFormat::Json => {
            let mut text = serde_json::to_string_pretty(&manifests.pod).unwrap_or_default();
            text.push('\n');
            text
        }
    };
    write_new(&pod_file, &pod_text)?;
    let readme = args.output.join("README.md");
    write_new(&readme, &export_readme(&manifests, &pod_file))?;
    output::stdout(&format!("{}\n{}\n", pod_file.display(), readme.display()));
    Ok(ExitStatus::Success)
}

/// A pipeline file has a top-level `tasks` list (a task file has none). A file that is
/// not plain JSON (Jinja outside strings) is a task file: pipelines are never templated.
fn is_pipeline(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| v.get("tasks").is_some_and(serde_json::Value::is_array))
}

/// The `config` of each inline task of the pipeline file `pipeline`, by task id. The
/// model keeps no Kubernetes config keys (namespace, annotations, volumes…), so they are
/// read from the file: without this an inline task's keys were silently left out.
pub(crate) fn inline_task_configs(pipeline: &Path) -> HashMap<String, serde_json::Value> {
    std::fs::read_to_string(pipeline)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|pipeline| pipeline.get("tasks").cloned())
        .and_then(|tasks| tasks.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| {
            let id = entry.get("id")?.as_str()?.to_string();
            let config = entry.get("task")?.as_object()?.get("config")?.clone();
            Some((id, config))
        })
        .collect()
}

/// A pipeline task's Kubernetes `config`: from its task file, or for an inline task from
/// `inline` ([`inline_task_configs`]).
pub(crate) fn task_config(
    planned: &crate::pipeline::plan::PlannedTask,
    inline: &HashMap<String, serde_json::Value>,
) -> Option<serde_json::Value> {
    if planned.task == "inline" {
        inline.get(&planned.id).cloned()
    } else {
        task_file::load(Path::new(&planned.task))
            .ok()
            .map(|original| original.config)
            .filter(|config| !config.is_null())
    }
}

/// `export k8s PIPELINE -o DIR`: one Pod per task, named after the task id, each task as
/// the pipeline would run it (its channels bound to the pipeline's folders under
/// `--data-dir` on the node, the pipeline's and the conf file's variables), and a README
/// that gives the order: Kubernetes has no dependencies between pods.
fn export_pipeline(args: &ExportK8sArgs, color: ColorChoice) -> Result<ExitStatus> {
    use crate::pipeline::{derive, plan as pipeline_plan};
    let p = Printer::for_stderr(color);
    let checked = pipeline_plan::check(&args.task, args.conf.as_deref(), None)?;
    let Some(plan) = checked.plan.as_ref().filter(|_| checked.is_valid()) else {
        output::stderr(&super::pipeline::human(&checked, p));
        output::stderr("tapir: the pipeline is invalid; no manifest was made\n");
        return Ok(ExitStatus::NotStarted);
    };
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => absolute(&args.output).join("data"),
    };
    let scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let (format, extension) = match args.format {
        PlanFormat::Json => (ManifestFormat::Json, "json"),
        PlanFormat::Human => (ManifestFormat::Yaml, "yaml"),
    };
    let inline_configs = inline_task_configs(&args.task);
    // (level, task id, pod, file name, manifests)
    let mut made = Vec::new();
    for planned in &plan.tasks {
        let mut derived = derive::derived_task(planned, &data_dir);
        derived["name"] = planned.id.clone().into();
        if let Some(config) = task_config(planned, &inline_configs) {
            derived["config"] = config;
        }
        let task_path = scratch.path().join(format!("{}.task.json", made.len()));
        crate::record::store::write_run_file(
            &task_path,
            serde_json::to_string_pretty(&derived)
                .unwrap_or_default()
                .as_bytes(),
        )
        .map_err(|e| Error::io(&task_path, e))?;
        let overrides = derive::stdin_env(planned)
            .into_iter()
            .map(|var| Override {
                name: var.name,
                value: var.value,
                source: EnvSource::Caller(format!("pipeline task {}", planned.id)),
            })
            .collect();
        let inputs = Inputs {
            task: &task_path,
            container_file: planned.runnable.container_file.as_deref(),
            overrides,
            binds: Vec::new(),
            entrypoint: None,
            network: None,
            pull: false,
            timeout: None,
        };
        let (manifests, warnings, _) = match prepare(&inputs, None, None) {
            Ok(prepared) => prepared,
            Err(e) => {
                output::stderr(&format!("tapir: pipeline task `{}`:\n", planned.id));
                return Ok(show_refusal(&e, p));
            }
        };
        for warning in warnings {
            output::stderr(&format!(
                "{} task `{}`: {warning}\n",
                p.yellow("warning:"),
                planned.id
            ));
        }
        let file = format!("{:02}-{}.{extension}", made.len() + 1, manifests.pod_name());
        made.push((planned.level, planned.id.clone(), file, manifests));
    }
    std::fs::create_dir_all(&args.output).map_err(|e| Error::io(&args.output, e))?;
    let mut readme = format!(
        "# Kubernetes manifests of pipeline `{}`\n\nWritten by `tapir export k8s`; nothing here was applied to a cluster. One Pod per task,\nnamed after its task id. Kubernetes has no dependencies between pods: apply them level by\nlevel, each level once every pod of the one before has succeeded. The pipeline's folders\nare host paths under {} on the node (`--data-dir`), so the tasks of a level must run on\nnodes that see the folders of the levels before (one node, or a shared file system).\n\n",
        plan.name,
        data_dir.display()
    );
    let mut level = 0;
    for (task_level, id, file, manifests) in &made {
        let text = match format {
            ManifestFormat::Yaml => k8s::yaml::to_yaml(&manifests.pod),
            ManifestFormat::Json => {
                let mut text = serde_json::to_string_pretty(&manifests.pod).unwrap_or_default();
                text.push('\n');
                text
            }
        };
        let path = args.output.join(file);
        write_new(&path, &text)?;
        output::stdout(&format!("{}\n", path.display()));
        if *task_level != level {
            level = *task_level;
            readme.push_str(&format!("## Level {level}\n\n"));
        }
        readme.push_str(&format!("### Task `{id}`\n\n"));
        readme.push_str(&apply_steps(manifests, &path));
        readme.push('\n');
    }
    let readme_path = args.output.join("README.md");
    write_new(&readme_path, &readme)?;
    output::stdout(&format!("{}\n", readme_path.display()));
    Ok(ExitStatus::Success)
}

/// Writes a file, replacing an earlier export's.
fn write_new(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// How to apply an exported task: the Secrets to create first (by a command that keeps
/// their values out of files tapir writes and out of shell history), then the Pod.
pub(crate) fn export_readme(manifests: &Manifests, pod_file: &Path) -> String {
    format!(
        "# Kubernetes manifests of task `{}`\n\nWritten by `tapir export k8s`. The Pod is what Kaapana's task runner creates for this\ntask (see tapir's README, \"Kubernetes\"). Nothing here was applied to a cluster.\n\n{}",
        manifests.pod["metadata"]["annotations"][k8s::manifest::TASK_ANNOTATION]
            .as_str()
            .unwrap_or_default(),
        apply_steps(manifests, pod_file)
    )
}

/// The Secrets to create for one Pod, then the commands that apply it, wait for it and
/// show its logs.
fn apply_steps(manifests: &Manifests, pod_file: &Path) -> String {
    let file = pod_file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ns = manifests
        .namespace()
        .map(|n| format!(" --namespace {n}"))
        .unwrap_or_default();
    let mut text = String::new();
    if manifests.secrets.is_empty() {
        text.push_str("It needs no Secret.\n\n");
    } else {
        text.push_str("It refers to Secrets that hold credentials; tapir does not write their values.\nCreate them first:\n\n");
        for secret in &manifests.secrets {
            match secret.purpose {
                SecretPurpose::Registry => text.push_str(&format!(
                    "- `{name}`: the registry login to pull the image (from `registryUrl`/`registryUsername`/`registryPassword`).\n  After `docker login <registry>`:\n\n      kubectl{ns} create secret generic {name} --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=$HOME/.docker/config.json\n\n",
                    name = secret.name
                )),
                SecretPurpose::Env => text.push_str(&format!(
                    "- `{name}`: the task's secret variables ({keys}). Write them as `KEY=value` lines\n  into a file only you can read, then:\n\n      kubectl{ns} create secret generic {name} --from-env-file=FILE\n\n",
                    name = secret.name,
                    keys = secret.keys().join(", ")
                )),
            }
        }
    }
    text.push_str(&format!(
        "Then (`wait --for=jsonpath` needs kubectl 1.23 or newer):\n\n    kubectl{ns} apply -f {file}\n    kubectl{ns} wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/{name} --timeout=1h\n    kubectl{ns} logs -f pod/{name}\n",
        name = manifests.pod_name()
    ));
    text
}
