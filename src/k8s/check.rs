//! Checks of a built manifest for what the API server would refuse and its OpenAPI schema
//! does not catch (the schema has no enums for `restartPolicy`, no quantity or name
//! syntax; `kubernetes-validate --strict` passes `restartPolicy: Sometimes` and memory
//! `500Mx`), plus the field names of the parts a task writes itself (`config.env_vars`,
//! `volumes`, `volume_mounts`), which go into the Pod as they are. The schema itself is
//! checked against every golden manifest in CI (tests/setup/k8s.sh).
//!
//! Each problem names the manifest field and points at the task file place it came from
//! (`Manifests::origins`).

use serde_json::Value;

use super::manifest::Manifests;
use super::rules;
use crate::diagnostic::{did_you_mean, json_path, pointer_join};
use crate::resolve::plan::Problem;

/// Volume sources of a `core/v1` Volume (Kubernetes 1.34).
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

const VOLUME_MOUNT_FIELDS: &[&str] = &[
    "name",
    "mountPath",
    "readOnly",
    "subPath",
    "subPathExpr",
    "mountPropagation",
    "recursiveReadOnly",
];

const ENV_FIELDS: &[&str] = &["name", "value", "valueFrom"];

const ENV_SOURCES: &[&str] = &[
    "secretKeyRef",
    "configMapKeyRef",
    "fieldRef",
    "resourceFieldRef",
    "fileKeyRef",
];

/// Problems of `manifests`, each pointing at the task file where the value came from.
pub(crate) fn check(manifests: &Manifests) -> Vec<Problem> {
    let mut found: Vec<(String, String, String)> = Vec::new(); // (manifest pointer, message, fix)
    let mut say = |pointer: &str, message: String, fix: &str| {
        found.push((pointer.to_string(), message, fix.to_string()));
    };
    let pod = &manifests.pod;

    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(why) = rules::dns_subdomain_problem(name) {
        say(
            "/metadata/name",
            format!("the pod name `{name}`: {why}"),
            "rename the task",
        );
    } else if name.len() > rules::KAAPANA_NAME_MAX {
        say(
            "/metadata/name",
            format!(
                "the pod name `{name}` is longer than Kaapana's {} characters",
                rules::KAAPANA_NAME_MAX
            ),
            "shorten the task name",
        );
    }
    if let Some(ns) = pod["metadata"]["namespace"].as_str()
        && let Some(why) = rules::dns_label_problem(ns)
    {
        say(
            "/metadata/namespace",
            format!("the namespace `{ns}`: {why}"),
            "use a namespace name like `my-project`",
        );
    }
    for (key, value) in pod["metadata"]["labels"].as_object().into_iter().flatten() {
        let at = pointer_join("/metadata/labels", key);
        if let Some(why) = rules::qualified_key_problem(key) {
            say(
                &at,
                format!("the label key `{key}`: {why}"),
                "use a key like `example.org/stage`",
            );
        }
        if let Some(why) = rules::label_value_problem(value.as_str().unwrap_or_default()) {
            say(
                &at,
                format!("the value of label `{key}`: {why}"),
                "a label value is at most 63 letters, digits, `-`, `_`, `.`; put free text in an annotation",
            );
        }
    }
    if let Some(annotations) = pod["metadata"]["annotations"].as_object() {
        for key in annotations.keys() {
            if let Some(why) = rules::qualified_key_problem(key) {
                say(
                    &pointer_join("/metadata/annotations", key),
                    format!("the annotation key `{key}`: {why}"),
                    "use a key like `example.org/note`",
                );
            }
        }
        let texts: Vec<(String, String)> = annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        if let Some(why) = rules::annotations_size_problem(texts.iter().map(|(k, v)| (k, v))) {
            say(
                "/metadata/annotations",
                why,
                "keep large data out of annotations (a volume or a ConfigMap)",
            );
        }
    }

    let spec = &pod["spec"];
    if let Some(policy) = spec["restartPolicy"].as_str()
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        say(
            "/spec/restartPolicy",
            format!("restartPolicy `{policy}` is not Always, OnFailure or Never"),
            "use Never",
        );
    }
    for (i, secret) in spec["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let secret_name = secret["name"].as_str().unwrap_or_default();
        if let Some(why) = rules::dns_subdomain_problem(secret_name) {
            say(
                &format!("/spec/imagePullSecrets/{i}"),
                format!("the pull secret name `{secret_name}`: {why}"),
                "name the Secret as it is in the cluster",
            );
        }
    }

    let mut volume_names: Vec<&str> = Vec::new();
    for (i, volume) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let at = format!("/spec/volumes/{i}");
        let Some(fields) = volume.as_object() else {
            say(
                &at,
                "a volume is not an object".into(),
                "write {\"name\": …, \"<source>\": {…}}",
            );
            continue;
        };
        let volume_name = fields
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(why) = rules::dns_label_problem(volume_name) {
            say(
                &at,
                format!("the volume name `{volume_name}`: {why}"),
                "use a name like `scratch`",
            );
        } else if volume_names.contains(&volume_name) {
            say(
                &at,
                format!("two volumes are named `{volume_name}`"),
                "give each volume its own name (channel volumes are named vol-<channel>)",
            );
        }
        volume_names.push(volume_name);
        let mut sources = 0;
        for key in fields.keys().filter(|k| *k != "name") {
            if VOLUME_SOURCES.contains(&key.as_str()) {
                sources += 1;
            } else {
                let fix = did_you_mean(key, VOLUME_SOURCES.iter().copied())
                    .map_or("use one volume source such as hostPath, emptyDir, persistentVolumeClaim, configMap or secret".into(), |s| format!("did you mean `{s}`?"));
                say(
                    &pointer_join(&at, key),
                    format!("volume `{volume_name}` has an unknown field `{key}`"),
                    &fix,
                );
            }
        }
        if sources != 1 {
            say(
                &at,
                format!(
                    "volume `{volume_name}` has {sources} volume sources; it needs exactly one"
                ),
                "give it one source, e.g. \"emptyDir\": {}",
            );
        }
    }

    for (c, container) in spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let base = format!("/spec/containers/{c}");
        if let Some(policy) = container["imagePullPolicy"].as_str()
            && !matches!(policy, "Always" | "IfNotPresent" | "Never")
        {
            say(
                &format!("{base}/imagePullPolicy"),
                format!("imagePullPolicy `{policy}` is not Always, IfNotPresent or Never"),
                "use IfNotPresent",
            );
        }
        for section in ["limits", "requests"] {
            for (key, value) in container["resources"][section]
                .as_object()
                .into_iter()
                .flatten()
            {
                let text = value.as_str().unwrap_or_default();
                if let Some(why) = rules::quantity_problem(text) {
                    say(
                        &pointer_join(&format!("{base}/resources/{section}"), key),
                        format!("resources.{section}.{key}: {why}"),
                        "write e.g. \"500Mi\", \"2\" or \"250m\"",
                    );
                }
            }
        }
        check_requests_within_limits(container, &base, &mut say);
        for (i, var) in container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            check_env(var, &format!("{base}/env/{i}"), &mut say);
        }
        let mut paths: Vec<&str> = Vec::new();
        for (i, mount) in container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{base}/volumeMounts/{i}");
            let mount_name = mount["name"].as_str().unwrap_or_default();
            let path = mount["mountPath"].as_str().unwrap_or_default();
            for key in mount.as_object().into_iter().flatten().map(|(k, _)| k) {
                if !VOLUME_MOUNT_FIELDS.contains(&key.as_str()) {
                    let fix = did_you_mean(key, VOLUME_MOUNT_FIELDS.iter().copied()).map_or(
                        format!(
                            "a volume mount has the fields {}",
                            VOLUME_MOUNT_FIELDS.join(", ")
                        ),
                        |s| format!("did you mean `{s}`?"),
                    );
                    say(
                        &pointer_join(&at, key),
                        format!("volume mount `{mount_name}` has an unknown field `{key}`"),
                        &fix,
                    );
                }
            }
            if !volume_names.contains(&mount_name) {
                let fix = did_you_mean(mount_name, volume_names.iter().copied()).map_or(
                    "add the volume to config.volumes, or mount one that exists".into(),
                    |s| format!("did you mean `{s}`?"),
                );
                say(
                    &pointer_join(&at, "name"),
                    format!("volume mount `{mount_name}` names no volume of the pod"),
                    &fix,
                );
            }
            if !path.starts_with('/') {
                say(
                    &pointer_join(&at, "mountPath"),
                    format!("volume mount `{mount_name}`: mountPath `{path}` is not absolute"),
                    "write the path from the container's root, e.g. /data",
                );
            } else if paths.contains(&path) {
                say(
                    &pointer_join(&at, "mountPath"),
                    format!("two volumes are mounted at {path}"),
                    "mount each volume at its own path (the task's channels are mounted at their mounted_path)",
                );
            }
            paths.push(path);
        }
    }

    for secret in &manifests.secrets {
        if let Some(why) = rules::dns_subdomain_problem(&secret.name) {
            say(
                "/metadata/name",
                format!("the Secret name `{}`: {why}", secret.name),
                "shorten or rename the task",
            );
        }
    }

    found
        .into_iter()
        .map(|(pointer, message, fix)| Problem {
            message: format!("Kubernetes manifest, {}: {message}", json_path(&pointer)),
            fix,
            pointer: manifests.origin(&pointer),
        })
        .collect()
}

/// The API server refuses a request above its limit, and an extended resource (a GPU)
/// whose request differs from its limit.
fn check_requests_within_limits(
    container: &Value,
    base: &str,
    say: &mut impl FnMut(&str, String, &str),
) {
    let limits = &container["resources"]["limits"];
    for (key, request) in container["resources"]["requests"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let Some(limit) = limits[key.as_str()].as_str() else {
            continue;
        };
        let request = request.as_str().unwrap_or_default();
        let at = pointer_join(&format!("{base}/resources/requests"), key);
        let (r, l) = match key.as_str() {
            "cpu" => (
                crate::model::quantity::parse_cpu_millis(request).ok(),
                crate::model::quantity::parse_cpu_millis(limit).ok(),
            ),
            "memory" | "ephemeral-storage" => (
                crate::model::quantity::parse_bytes(request).ok(),
                crate::model::quantity::parse_bytes(limit).ok(),
            ),
            _ if key.contains('/') => {
                if request != limit {
                    say(
                        &at,
                        format!(
                            "resources.requests.{key} `{request}` differs from its limit `{limit}`; an extended resource must request what it limits"
                        ),
                        "set only the limit",
                    );
                }
                continue;
            }
            _ => continue,
        };
        if let (Some(r), Some(l)) = (r, l)
            && r > l
        {
            say(
                &at,
                format!("resources.requests.{key} `{request}` is above its limit `{limit}`"),
                "lower the request or raise the limit",
            );
        }
    }
}

fn check_env(var: &Value, at: &str, say: &mut impl FnMut(&str, String, &str)) {
    let Some(fields) = var.as_object() else {
        say(
            at,
            "an env entry is not an object".into(),
            "write {\"name\": …, \"value\": …}",
        );
        return;
    };
    let name = fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(why) = rules::env_name_problem(name) {
        say(at, format!("env `{name}`: {why}"), "rename the variable");
    }
    for key in fields.keys() {
        if !ENV_FIELDS.contains(&key.as_str()) {
            let fix = did_you_mean(key, ENV_FIELDS.iter().copied())
                .map_or("an env entry has name and value or valueFrom".into(), |s| {
                    format!("did you mean `{s}`?")
                });
            say(
                &pointer_join(at, key),
                format!("env `{name}` has an unknown field `{key}`"),
                &fix,
            );
        }
    }
    match (fields.get("value"), fields.get("valueFrom")) {
        (Some(_), Some(_)) => say(
            at,
            format!("env `{name}` has both value and valueFrom"),
            "keep one",
        ),
        (Some(value), None) if !value.is_string() => say(
            at,
            format!("env `{name}`: its value is not a string"),
            "quote it, e.g. \"5\"",
        ),
        (None, Some(from)) => {
            let sources: Vec<&String> = from
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .collect();
            for key in &sources {
                if !ENV_SOURCES.contains(&key.as_str()) {
                    let fix = did_you_mean(key, ENV_SOURCES.iter().copied()).map_or(
                        format!("valueFrom takes one of {}", ENV_SOURCES.join(", ")),
                        |s| format!("did you mean `{s}`?"),
                    );
                    say(
                        at,
                        format!("env `{name}`: valueFrom has an unknown field `{key}`"),
                        &fix,
                    );
                }
            }
            if sources.len() != 1 {
                say(
                    at,
                    format!(
                        "env `{name}`: valueFrom needs exactly one source, it has {}",
                        sources.len()
                    ),
                    "e.g. {\"secretKeyRef\": {\"name\": \"db\", \"key\": \"password\"}}",
                );
            }
            for kind in ["secretKeyRef", "configMapKeyRef"] {
                if let Some(reference) = from.get(kind) {
                    for field in ["name", "key"] {
                        if reference
                            .get(field)
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            say(
                                &format!("{at}/valueFrom/{kind}"),
                                format!("env `{name}`: valueFrom.{kind} has no `{field}`"),
                                "give the Secret's (or ConfigMap's) name and the key to read",
                            );
                        }
                    }
                }
            }
        }
        _ => {}
    }
}
