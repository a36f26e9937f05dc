//! A `RunPlan` and the task's Kubernetes `config` → the objects Kaapana's runner creates
//! (reference §9), field by field: a Pod named from the task, `restartPolicy: Never`, one
//! container `main`, a `hostPath` volume per channel, env in precedence order, memory from
//! the same plan as a local run, and the config's namespace, labels, annotations, pull
//! secrets, env_vars, volumes and mounts. Pure: no cluster, no files.
//!
//! Secrets never go into the Pod: a registry login becomes a `kubernetes.io/dockerconfigjson`
//! Secret (named as Kaapana names it, `<pod>-secret`) and secret env values an Opaque
//! Secret `<pod>-env` the container reads through `secretKeyRef`. Each [`SecretManifest`]
//! has a masked form for everything shown or written and its real form only for kubectl's
//! standard input.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::config::{self, K8sConfig, Registry};
use super::rules;
use crate::diagnostic::pointer_join;
use crate::model::secret::MASK;
use crate::model::{Task, TemplateRef};
use crate::resolve::plan::{Direction, EnvSource, Problem, RunPlan};

/// The label tapir puts on every object it makes, so they can be found again.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "tapir");
/// The label holding the tapir run id (only on objects of a run).
pub(crate) const RUN_LABEL: &str = "tapir.run";
/// The annotation holding the task's name as written (a label value cannot hold spaces).
pub(crate) const TASK_ANNOTATION: &str = "tapir/task";

/// One resource value as written, with where it was written (`None`: in the image's
/// processing-container.json).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceValue {
    pub text: String,
    pub pointer: Option<String>,
}

/// `resources.limits` and `.requests`, template then task merged key by key (the same
/// merge as a local run's plan).
#[derive(Debug, Clone, Default)]
pub(crate) struct MergedResources {
    pub limits: BTreeMap<String, ResourceValue>,
    pub requests: BTreeMap<String, ResourceValue>,
}

impl MergedResources {
    pub(crate) fn of(task: &Task, template: &crate::model::Template) -> Self {
        let inline = matches!(task.template, TemplateRef::Inline(_));
        let mut merged = MergedResources::default();
        for (resources, base) in [
            (
                template.resources.as_ref(),
                inline.then_some("/taskTemplate/resources"),
            ),
            (task.resources.as_ref(), Some("/resources")),
        ] {
            let Some(resources) = resources else { continue };
            for (section, values, out) in [
                ("limits", &resources.limits, &mut merged.limits),
                ("requests", &resources.requests, &mut merged.requests),
            ] {
                for (name, text) in values.iter().flatten() {
                    out.insert(
                        name.clone(),
                        ResourceValue {
                            text: text.clone(),
                            pointer: base.map(|b| pointer_join(&format!("{b}/{section}"), name)),
                        },
                    );
                }
            }
        }
        merged
    }
}

/// What a Secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretPurpose {
    /// Registry login for pulling the image (`imagePullSecrets`).
    Registry,
    /// Secret env values of the task.
    Env,
}

/// A Secret the Pod needs. `masked` is what is shown and written; the real object is
/// reachable only through [`SecretManifest::real`], for kubectl's standard input.
#[derive(Clone)]
pub(crate) struct SecretManifest {
    pub name: String,
    pub purpose: SecretPurpose,
    pub masked: Value,
    real: Value,
}

impl std::fmt::Debug for SecretManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretManifest")
            .field("name", &self.name)
            .field("purpose", &self.purpose)
            .field("masked", &self.masked)
            .finish_non_exhaustive()
    }
}

impl SecretManifest {
    /// The Secret with its values, for `kubectl apply -f -` only.
    pub(crate) fn real(&self) -> &Value {
        &self.real
    }

    /// The keys it holds (what a user must put in it when they create it themselves).
    pub(crate) fn keys(&self) -> Vec<String> {
        self.masked
            .get("data")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The objects of one task.
#[derive(Debug, Clone)]
pub(crate) struct Manifests {
    pub pod: Value,
    pub secrets: Vec<SecretManifest>,
    /// Where each part of the Pod came from: manifest pointer → task file pointer. A
    /// problem found in the manifest points at the nearest recorded ancestor's origin.
    pub origins: BTreeMap<String, String>,
    pub warnings: Vec<String>,
}

impl Manifests {
    pub(crate) fn pod_name(&self) -> &str {
        self.pod["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub(crate) fn namespace(&self) -> Option<&str> {
        self.pod["metadata"]["namespace"].as_str()
    }

    /// The task file pointer for a manifest pointer: its nearest recorded ancestor's
    /// origin, with the rest of the path after it (parts a task writes in Kubernetes' own
    /// shape, such as `config.volumes`, are copied as they are; where the rest names
    /// nothing in the task file, positions fall back to the nearest existing place).
    pub(crate) fn origin(&self, manifest_pointer: &str) -> Option<String> {
        let mut pointer = manifest_pointer;
        loop {
            if let Some(origin) = self.origins.get(pointer) {
                return Some(format!("{origin}{}", &manifest_pointer[pointer.len()..]));
            }
            pointer = &pointer[..pointer.rfind('/')?];
        }
    }
}

/// The Pod's name: Kaapana's name of the task (reference §9), and for a run the end of
/// the run id after it, so two runs of one task do not collide in a namespace. Still at
/// most 62 characters.
pub(crate) fn pod_name(task_name: &str, run_id: Option<&str>) -> Result<String, Problem> {
    let suffix: Option<String> = run_id.map(|id| {
        let clean: String = id
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        clean[clean.len().saturating_sub(8)..].to_string()
    });
    let room = match &suffix {
        Some(s) => rules::KAAPANA_NAME_MAX - 1 - s.len(),
        None => rules::KAAPANA_NAME_MAX,
    };
    let base = rules::kaapana_name(task_name, room).ok_or_else(|| Problem {
        message: format!(
            "the task name `{task_name}` has no letter or digit to name a Kubernetes pod after"
        ),
        fix: "give the task a name with letters or digits".into(),
        pointer: Some("/name".into()),
    })?;
    Ok(match suffix {
        Some(s) if !s.is_empty() => format!("{base}-{s}"),
        _ => base,
    })
}

/// Memory as an exact Kubernetes quantity: the largest binary, else decimal, unit that
/// divides it (`500Mi`, `1G`), else bytes.
pub(crate) fn memory_quantity(bytes: u64) -> String {
    for (unit, size) in [
        ("Gi", 1u64 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
        ("G", 1_000_000_000),
        ("M", 1_000_000),
        ("k", 1_000),
    ] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A volume name from a channel name: Kaapana's `vol-<channel>`, made a valid DNS label
/// when the channel name is not one (`Input_Data` → `vol-input-data`).
fn volume_name(prefix: &str, channel: &str, taken: &[String]) -> String {
    let lowered: String = format!("{prefix}{channel}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut base: String = lowered.chars().take(56).collect();
    base = base.trim_matches('-').to_string();
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// A key of the env Secret for variable `name` (Secret keys allow `[-._a-zA-Z0-9]`).
fn secret_key(name: &str, index: usize) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        name.to_string()
    } else {
        format!("var-{index}")
    }
}

fn secret_object(
    name: &str,
    namespace: Option<&str>,
    kind: &str,
    data: Map<String, Value>,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), ns.into());
    }
    metadata.insert("labels".into(), json!({ MANAGED_BY.0: MANAGED_BY.1 }));
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": kind, "stringData": data})
}

fn registry_secret(name: &str, namespace: Option<&str>, registry: &Registry) -> SecretManifest {
    let auth = crate::model::base64::standard(
        format!("{}:{}", registry.username, registry.password).as_bytes(),
    );
    let config = json!({"auths": {registry.url.clone(): {
        "username": registry.username, "password": registry.password, "auth": auth}}});
    let kind = "kubernetes.io/dockerconfigjson";
    let key = ".dockerconfigjson";
    let real = secret_object(
        name,
        namespace,
        kind,
        Map::from_iter([(key.to_string(), Value::String(config.to_string()))]),
    );
    let masked = masked_secret(&real);
    SecretManifest {
        name: name.into(),
        purpose: SecretPurpose::Registry,
        masked,
        real,
    }
}

/// The Secret as shown and written: its values `****` under `data`, which is not base64,
/// so a masked Secret that is applied by mistake is refused by kubectl instead of
/// replacing a real one with the mask.
fn masked_secret(real: &Value) -> Value {
    let mut masked = real.clone();
    if let Some(fields) = masked.as_object_mut()
        && let Some(Value::Object(data)) = fields.remove("stringData")
    {
        let data: Map<String, Value> = data
            .into_iter()
            .map(|(k, _)| (k, Value::String(MASK.into())))
            .collect();
        fields.insert("data".into(), Value::Object(data));
    }
    masked
}

/// Builds the Pod and its Secrets. `pod_name` comes from [`pod_name`]; `run_id` labels
/// the objects of a run (an export has none).
pub(crate) fn build(
    plan: &RunPlan,
    resources: &MergedResources,
    config: &K8sConfig,
    pod_name: &str,
    run_id: Option<&str>,
) -> Manifests {
    let mut origins = BTreeMap::new();
    let mut warnings = Vec::new();
    let namespace = config.namespace.as_deref();

    // metadata
    let mut labels = Map::new();
    for (key, value) in &config.labels {
        labels.insert(key.clone(), value.clone().into());
        origins.insert(
            pointer_join("/metadata/labels", key),
            pointer_join(&config::pointer("labels"), key),
        );
    }
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    if let Some(id) = run_id {
        labels.insert(RUN_LABEL.into(), id.into());
    }
    let mut annotations = Map::new();
    for (key, value) in &config.annotations {
        annotations.insert(key.clone(), value.clone().into());
        origins.insert(
            pointer_join("/metadata/annotations", key),
            pointer_join(&config::pointer("annotations"), key),
        );
    }
    annotations.insert(TASK_ANNOTATION.into(), plan.task_name.clone().into());
    let mut metadata = Map::new();
    metadata.insert("name".into(), pod_name.into());
    origins.insert("/metadata/name".into(), "/name".into());
    if let Some(ns) = namespace {
        metadata.insert("namespace".into(), ns.into());
        origins.insert("/metadata/namespace".into(), config::pointer("namespace"));
    }
    metadata.insert("labels".into(), Value::Object(labels));
    metadata.insert("annotations".into(), Value::Object(annotations));

    // Secrets and pull secrets: the registry login first, as Kaapana references it.
    let mut secrets = Vec::new();
    let mut pull_secrets = Vec::new();
    if let Some(registry) = &config.registry {
        let name = format!("{pod_name}-secret");
        secrets.push(registry_secret(&name, namespace, registry));
        pull_secrets.push(json!({ "name": name }));
    }
    for (i, name) in config.image_pull_secrets.iter().enumerate() {
        origins.insert(
            format!("/spec/imagePullSecrets/{}", pull_secrets.len()),
            format!("{}/{i}", config::pointer("imagePullSecrets")),
        );
        pull_secrets.push(json!({ "name": name }));
    }

    // env: the plan's (command line > task > template), then config.env_vars, which
    // Kaapana appends last (so they win) — but never over the command line.
    let env_secret_name = format!("{pod_name}-env");
    // (entry, task file pointer, who set it: `None` for config.env_vars)
    let mut env: Vec<(Value, Option<String>, Option<EnvSource>)> = Vec::new();
    let mut env_secret_data = Map::new();
    let mut names: Vec<String> = Vec::new();
    for var in &plan.env {
        let entry = if var.value.secret {
            let key = secret_key(&var.name, env_secret_data.len());
            env_secret_data.insert(key.clone(), var.value.text.clone().into());
            json!({"name": var.name, "valueFrom": {"secretKeyRef": {"name": env_secret_name, "key": key}}})
        } else {
            json!({"name": var.name, "value": var.value.text})
        };
        // The plan keeps who set a value in words, not the entry's index: the task's
        // `env` list is pointed at.
        let origin = (var.source == EnvSource::Task).then(|| "/env".to_string());
        names.push(var.name.clone());
        env.push((entry, origin, Some(var.source.clone())));
    }
    for (i, var) in config.env_vars.iter().enumerate() {
        let origin = format!("{}/{i}", config::pointer("env_vars"));
        let name = var.get("name").and_then(Value::as_str).unwrap_or_default();
        if let Some(at) = names.iter().position(|n| n == name) {
            let source = env[at].2.clone();
            let source_words = source
                .as_ref()
                .map_or("an earlier config.env_vars entry".to_string(), |s| {
                    s.to_string()
                });
            if matches!(
                source,
                Some(EnvSource::CommandLine | EnvSource::EnvFile { .. } | EnvSource::Caller(_))
            ) {
                warnings.push(format!(
                    "config.env_vars sets `{name}`, which {source_words} sets too: the command line wins, config.env_vars[{i}] is left out"
                ));
                continue;
            }
            warnings.push(format!(
                "config.env_vars sets `{name}`, which {source_words} sets too: on Kubernetes the later config.env_vars[{i}] wins, as in Kaapana"
            ));
            names.remove(at);
            env.remove(at);
        }
        let secret_value = crate::model::secret::is_secret_name(name)
            && var.get("value").and_then(Value::as_str).is_some()
            && var.as_object().is_some_and(|m| m.len() == 2);
        let entry = if secret_value {
            let key = secret_key(name, env_secret_data.len());
            env_secret_data.insert(key.clone(), var["value"].clone());
            json!({"name": name, "valueFrom": {"secretKeyRef": {"name": env_secret_name, "key": key}}})
        } else {
            var.clone()
        };
        names.push(name.to_string());
        env.push((entry, Some(origin), None));
    }
    if !env_secret_data.is_empty() {
        let real = secret_object(&env_secret_name, namespace, "Opaque", env_secret_data);
        secrets.push(SecretManifest {
            name: env_secret_name.clone(),
            purpose: SecretPurpose::Env,
            masked: masked_secret(&real),
            real,
        });
    }

    // resources: memory from the plan (declared limit raised by scale rules, as for a
    // local run); every other key as written.
    let mut limits = Map::new();
    let mut requests = Map::new();
    for (section, values, out, memory) in [
        (
            "limits",
            &resources.limits,
            &mut limits,
            plan.limits.memory_bytes,
        ),
        (
            "requests",
            &resources.requests,
            &mut requests,
            plan.limits.memory_reservation_bytes,
        ),
    ] {
        for (name, value) in values {
            if name == "memory" {
                continue;
            }
            out.insert(name.clone(), value.text.clone().into());
            if let Some(origin) = &value.pointer {
                origins.insert(
                    pointer_join(&format!("/spec/containers/0/resources/{section}"), name),
                    origin.clone(),
                );
            }
        }
        if let Some(bytes) = memory {
            out.insert("memory".into(), memory_quantity(bytes).into());
            if let Some(origin) = values.get("memory").and_then(|v| v.pointer.clone()) {
                origins.insert(
                    format!("/spec/containers/0/resources/{section}/memory"),
                    origin,
                );
            }
        }
    }

    // volumes: one hostPath per channel, inputs then outputs, first of a mounted path wins.
    let mut volumes: Vec<Value> = Vec::new();
    let mut mounts: Vec<Value> = Vec::new();
    let mut volume_names: Vec<String> = Vec::new();
    let mut mounted: Vec<String> = Vec::new();
    for direction in [Direction::Input, Direction::Output] {
        for mount in plan.mounts.iter().filter(|m| m.direction == direction) {
            if mounted.contains(&mount.container_path) {
                continue;
            }
            let name = volume_name("vol-", &mount.channel, &volume_names);
            volumes.push(
                json!({"name": name, "hostPath": {"path": mount.host_path.to_string_lossy()}}),
            );
            let mut entry = json!({"name": name, "mountPath": mount.container_path});
            if mount.read_only {
                entry["readOnly"] = true.into();
            }
            mounts.push(entry);
            volume_names.push(name);
            mounted.push(mount.container_path.clone());
        }
    }
    for (i, bind) in plan.binds.iter().enumerate() {
        let name = volume_name("bind-", &i.to_string(), &volume_names);
        volumes.push(json!({"name": name, "hostPath": {"path": bind.host_path.to_string_lossy()}}));
        let mut entry = json!({"name": name, "mountPath": bind.container_path});
        if bind.read_only {
            entry["readOnly"] = true.into();
        }
        mounts.push(entry);
        volume_names.push(name);
    }
    for (i, volume) in config.volumes.iter().enumerate() {
        origins.insert(
            format!("/spec/volumes/{}", volumes.len()),
            format!("{}/{i}", config::pointer("volumes")),
        );
        volumes.push(volume.clone());
    }
    for (i, mount) in config.volume_mounts.iter().enumerate() {
        origins.insert(
            format!("/spec/containers/0/volumeMounts/{}", mounts.len()),
            format!("{}/{i}", config::pointer("volume_mounts")),
        );
        mounts.push(mount.clone());
    }

    // the container
    let mut container = Map::new();
    container.insert("name".into(), "main".into());
    container.insert("image".into(), plan.image.clone().into());
    origins.insert("/spec/containers/0/image".into(), "/image".into());
    if let Some(policy) = &config.image_pull_policy {
        container.insert("imagePullPolicy".into(), policy.clone().into());
        origins.insert(
            "/spec/containers/0/imagePullPolicy".into(),
            config::pointer("imagePullPolicy"),
        );
    }
    match (&plan.entrypoint, &plan.command) {
        (Some(entrypoint), command) => {
            container.insert("command".into(), json!([entrypoint]));
            if let Some(args) = command {
                container.insert("args".into(), json!(args));
            }
        }
        (None, Some(command)) => {
            container.insert("command".into(), json!(command));
        }
        (None, None) => {}
    }
    if !env.is_empty() {
        for (i, (_, origin, _)) in env.iter().enumerate() {
            if let Some(origin) = origin {
                origins.insert(format!("/spec/containers/0/env/{i}"), origin.clone());
            }
        }
        container.insert(
            "env".into(),
            Value::Array(env.into_iter().map(|(e, _, _)| e).collect()),
        );
    }
    let mut resources_out = Map::new();
    if !limits.is_empty() {
        resources_out.insert("limits".into(), Value::Object(limits));
    }
    if !requests.is_empty() {
        resources_out.insert("requests".into(), Value::Object(requests));
    }
    if !resources_out.is_empty() {
        container.insert("resources".into(), Value::Object(resources_out));
    }
    if !mounts.is_empty() {
        container.insert("volumeMounts".into(), Value::Array(mounts));
    }

    let mut spec = Map::new();
    spec.insert("restartPolicy".into(), "Never".into());
    if let Some(seconds) = config.active_deadline_seconds {
        spec.insert("activeDeadlineSeconds".into(), seconds.into());
    }
    if !pull_secrets.is_empty() {
        spec.insert("imagePullSecrets".into(), Value::Array(pull_secrets));
    }
    spec.insert("containers".into(), json!([Value::Object(container)]));
    if !volumes.is_empty() {
        spec.insert("volumes".into(), Value::Array(volumes));
    }
    if plan.network.is_some() {
        warnings.push(
            "--network has no meaning on Kubernetes (pods use the cluster's network); it is left out of the manifest".into(),
        );
    }

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
    Manifests {
        pod,
        secrets,
        origins,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::plan::{EnvValue, PlannedEnv};

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

    /// config.env_vars come after the plan's env and replace a task's or template's
    /// value of the same name (Kaapana: later wins), but never the command line's; secret
    /// values go to the `<pod>-env` Secret, in the Pod only as a reference.
    #[test]
    fn env_order_and_precedence() {
        let mut plan: RunPlan =
            serde_json::from_value(json!({"task_name": "t", "image": "x:1"})).unwrap();
        plan.env = vec![
            env("A", "template", EnvSource::Template),
            env("B", "task", EnvSource::Task),
            env("C", "cli", EnvSource::CommandLine),
            env("DB_PASSWORD", "hunter2", EnvSource::Task),
        ];
        let config = K8sConfig {
            env_vars: vec![
                json!({"name": "B", "value": "config"}),
                json!({"name": "C", "value": "config"}),
                json!({"name": "REF", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
                json!({"name": "API_TOKEN", "value": "tok"}),
            ],
            ..K8sConfig::default()
        };
        let built = build(&plan, &MergedResources::default(), &config, "t", None);
        let env = &built.pod["spec"]["containers"][0]["env"];
        let names: Vec<&str> = env
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["A", "C", "DB_PASSWORD", "B", "REF", "API_TOKEN"]);
        assert_eq!(env[0]["value"], "template");
        assert_eq!(
            env[1]["value"], "cli",
            "the command line wins over config.env_vars"
        );
        assert_eq!(
            env[3]["value"], "config",
            "config.env_vars wins over the task"
        );
        assert_eq!(
            env[2]["valueFrom"]["secretKeyRef"],
            json!({"name": "t-env", "key": "DB_PASSWORD"})
        );
        assert_eq!(
            env[5]["valueFrom"]["secretKeyRef"],
            json!({"name": "t-env", "key": "API_TOKEN"})
        );
        assert!(
            !built.pod.to_string().contains("hunter2") && !built.pod.to_string().contains("tok\"")
        );
        assert_eq!(built.warnings.len(), 2, "{:?}", built.warnings);
        let secret = &built.secrets[0];
        assert_eq!(secret.keys(), ["DB_PASSWORD", "API_TOKEN"]);
        assert_eq!(secret.real()["stringData"]["DB_PASSWORD"], "hunter2");
        assert_eq!(secret.masked["data"]["DB_PASSWORD"], "****");
        assert!(!format!("{secret:?}").contains("hunter2"));
        // Problems in config.env_vars point into the task file.
        assert_eq!(
            built
                .origin("/spec/containers/0/env/4/valueFrom")
                .as_deref(),
            Some("/config/env_vars/2/valueFrom")
        );
    }

    #[test]
    fn memory_from_the_plan_other_resources_as_written() {
        let mut plan: RunPlan =
            serde_json::from_value(json!({"task_name": "t", "image": "x:1"})).unwrap();
        plan.limits.memory_bytes = Some(300 << 20);
        plan.limits.memory_reservation_bytes = Some(100 << 20);
        let value = |text: &str, pointer: &str| ResourceValue {
            text: text.into(),
            pointer: Some(pointer.into()),
        };
        let resources = MergedResources {
            limits: BTreeMap::from([
                ("memory".into(), value("200Mi", "/resources/limits/memory")),
                ("cpu".into(), value("2", "/resources/limits/cpu")),
            ]),
            requests: BTreeMap::new(),
        };
        let built = build(&plan, &resources, &K8sConfig::default(), "t", None);
        assert_eq!(
            built.pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "2", "memory": "300Mi"}, "requests": {"memory": "100Mi"}})
        );
        assert_eq!(
            built
                .origin("/spec/containers/0/resources/limits/cpu")
                .as_deref(),
            Some("/resources/limits/cpu")
        );
    }

    #[test]
    fn pod_names() {
        assert_eq!(
            pod_name("Kubernetes task for dummy image", None).unwrap(),
            "kubernetes-task-for-dummy-image"
        );
        // The last 8 letters and digits of the run id, lowercased.
        assert_eq!(
            pod_name("Seg Task", Some("01JABCDEFGHJKMNPQRSTVW")).unwrap(),
            "seg-task-npqrstvw"
        );
        let long = pod_name(&"x".repeat(100), Some("01JABCDEFGHJKMNPQRSTVW")).unwrap();
        assert_eq!(long.len(), 62);
        assert!(long.ends_with("-npqrstvw"));
        let problem = pod_name("???", None).unwrap_err();
        assert_eq!(problem.pointer.as_deref(), Some("/name"));
    }

    #[test]
    fn memory_is_exact() {
        assert_eq!(memory_quantity(500 * 1024 * 1024), "500Mi");
        assert_eq!(memory_quantity(2 << 30), "2Gi");
        assert_eq!(memory_quantity(1536), "1536");
        assert_eq!(memory_quantity(1000), "1k");
        assert_eq!(memory_quantity(1_000_000_000), "1G");
        assert_eq!(memory_quantity(1001), "1001");
        assert_eq!(memory_quantity(3 << 10), "3Ki");
    }

    #[test]
    fn volume_names_are_dns_labels() {
        assert_eq!(volume_name("vol-", "channel1", &[]), "vol-channel1");
        assert_eq!(volume_name("vol-", "Input_Data", &[]), "vol-input-data");
        assert_eq!(volume_name("vol-", "a", &["vol-a".into()]), "vol-a-2");
    }
}
