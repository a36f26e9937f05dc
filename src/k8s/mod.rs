//! Kubernetes: a task as the objects Kaapana's `KubernetesRunner` creates (reference §9,
//! DESIGN.md decision 18). Pure: a `RunPlan` and the task's `config` become manifests
//! (`manifest`), checked for what the API server would refuse (`check`, `rules`), printed
//! as YAML or JSON (`yaml`). Nothing here talks to a cluster.

pub(crate) mod check;
pub(crate) mod config;
pub(crate) mod kubectl;
pub(crate) mod manifest;
pub(crate) mod rules;
pub(crate) mod yaml;

use serde_json::Value;

pub(crate) use config::K8sConfig;
pub(crate) use manifest::{Manifests, MergedResources};

use crate::resolve::plan::{Problem, RunPlan};

/// The manifests of one task, checked. `run_id` names and labels the objects of a run;
/// an export (`None`) names the Pod exactly as Kaapana would.
pub(crate) fn manifests_for(
    plan: &RunPlan,
    resources: &MergedResources,
    config: &K8sConfig,
    task_name: &str,
    run_id: Option<&str>,
) -> Result<Manifests, Vec<Problem>> {
    let name = manifest::pod_name(task_name, run_id).map_err(|p| vec![p])?;
    let manifests = manifest::build(plan, resources, config, &name, run_id);
    let problems = check::check(&manifests);
    if problems.is_empty() {
        Ok(manifests)
    } else {
        Err(problems)
    }
}

/// How manifests are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestFormat {
    Yaml,
    Json,
}

/// The objects as they are shown or written to files: the Secrets masked, then the Pod
/// (the order `kubectl apply` needs). YAML: documents separated by `---`; JSON: a `v1`
/// `List`, which kubectl applies as it is.
pub(crate) fn render_masked(manifests: &Manifests, format: ManifestFormat) -> String {
    let objects: Vec<&Value> = manifests
        .secrets
        .iter()
        .map(|s| &s.masked)
        .chain(std::iter::once(&manifests.pod))
        .collect();
    render(&objects, format)
}

/// Renders objects in `format`.
pub(crate) fn render(objects: &[&Value], format: ManifestFormat) -> String {
    match format {
        ManifestFormat::Yaml => objects
            .iter()
            .map(|o| yaml::to_yaml(o))
            .collect::<Vec<_>>()
            .join("---\n"),
        ManifestFormat::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            let mut text = serde_json::to_string_pretty(&list).unwrap_or_default();
            text.push('\n');
            text
        }
    }
}
