//! The task's `config` as Kaapana's Kubernetes runner reads it (reference §2.8): namespace,
//! labels, annotations, pull secrets, registry credentials, extra env, volumes and mounts.
//! Read from the rendered task document, with the JSON Pointer of each value kept so that
//! every problem points into the task file.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::resolve::plan::Problem;

/// Registry credentials for a pull secret. The password never leaves this value but
/// through the Secret manifest tapir hands to kubectl on standard input.
#[derive(Clone)]
pub(crate) struct Registry {
    pub url: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &crate::model::secret::MASK)
            .finish()
    }
}

/// `config` for Kubernetes. Lists of Kubernetes objects (`env_vars`, `volumes`,
/// `volume_mounts`) are kept as written: they go into the manifest as they are, after
/// the checks of `check`.
#[derive(Debug, Clone, Default)]
pub(crate) struct K8sConfig {
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub image_pull_secrets: Vec<String>,
    pub image_pull_policy: Option<String>,
    pub registry: Option<Registry>,
    pub env_vars: Vec<Value>,
    pub volumes: Vec<Value>,
    pub volume_mounts: Vec<Value>,
    /// Not from the task file: `run --timeout`, as the Pod's `activeDeadlineSeconds`
    /// (Kubernetes then stops the pod, phase `Failed`, reason `DeadlineExceeded`).
    pub active_deadline_seconds: Option<u64>,
}

/// Pointer of a config key in the task file.
pub(crate) fn pointer(key: &str) -> String {
    crate::diagnostic::pointer_join("/config", key)
}

/// Reads `config` (the rendered value, `Null` when absent). `unrendered` lists the
/// pointers of config strings whose templating could not be rendered (a variable not
/// set): a local run does not need them, a manifest does.
pub(crate) fn read(config: &Value, unrendered: &[String]) -> Result<K8sConfig, Vec<Problem>> {
    let mut problems: Vec<Problem> = unrendered
        .iter()
        .map(|p| Problem {
            message: format!(
                "{} uses a variable that is not set; a Kubernetes manifest needs its value",
                crate::diagnostic::json_path(p)
            ),
            fix: "set the variable (tapir renders `{{ env.NAME }}` from its own environment)"
                .into(),
            pointer: Some(p.clone()),
        })
        .collect();
    let text = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    let map = |key: &str| -> BTreeMap<String, String> {
        config
            .get(key)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let list = |key: &str| -> Vec<Value> {
        config
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let registry = match (
        text("registryUrl"),
        text("registryUsername"),
        text("registryPassword"),
    ) {
        (Some(url), Some(username), Some(password)) => Some(Registry {
            url,
            username,
            password,
        }),
        (None, None, None) => None,
        (url, username, password) => {
            let missing: Vec<&str> = [
                ("registryUrl", url.is_none()),
                ("registryUsername", username.is_none()),
                ("registryPassword", password.is_none()),
            ]
            .into_iter()
            .filter(|(_, missing)| *missing)
            .map(|(key, _)| key)
            .collect();
            problems.push(Problem {
                message: format!(
                    "config sets only part of the registry credentials: {} missing (Kaapana's runner then silently makes no pull secret)",
                    missing.join(", ")
                ),
                fix: "set registryUrl, registryUsername and registryPassword together, or none and name an existing secret in imagePullSecrets".into(),
                pointer: Some("/config".into()),
            });
            None
        }
    };
    let image_pull_secrets = config
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let read = K8sConfig {
        namespace: text("namespace"),
        labels: map("labels"),
        annotations: map("annotations"),
        image_pull_secrets,
        image_pull_policy: text("imagePullPolicy"),
        registry,
        env_vars: list("env_vars"),
        volumes: list("volumes"),
        volume_mounts: list("volume_mounts"),
        active_deadline_seconds: None,
    };
    if problems.is_empty() {
        Ok(read)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_every_key() {
        let config = json!({
            "type": "k8s", "namespace": "services", "labels": {"a": "b"},
            "annotations": {"x/y": "z"}, "imagePullSecrets": ["regcred"],
            "registryUrl": "registry.example", "registryUsername": "u", "registryPassword": "p",
            "env_vars": [{"name": "A", "value": "1"}], "volumes": [{"name": "v", "emptyDir": {}}],
            "volume_mounts": [{"name": "v", "mountPath": "/v"}], "imagePullPolicy": "IfNotPresent"
        });
        let read = read(&config, &[]).unwrap();
        assert_eq!(read.namespace.as_deref(), Some("services"));
        assert_eq!(read.labels["a"], "b");
        assert_eq!(read.annotations["x/y"], "z");
        assert_eq!(read.image_pull_secrets, ["regcred"]);
        assert_eq!(read.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(read.registry.as_ref().unwrap().password, "p");
        assert!(!format!("{:?}", read.registry).contains("\"p\""));
        assert_eq!(
            (
                read.env_vars.len(),
                read.volumes.len(),
                read.volume_mounts.len()
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn partial_credentials_and_unrendered_values_are_refused() {
        let problems =
            read(&json!({"registryUrl": "r", "registryPassword": "p"}), &[]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].message.contains("registryUsername missing"),
            "{}",
            problems[0].message
        );
        let problems = read(
            &json!({"namespace": "{{ env.NS }}"}),
            &["/config/namespace".into()],
        )
        .unwrap_err();
        assert_eq!(problems[0].pointer.as_deref(), Some("/config/namespace"));
        // No config at all is an empty one.
        assert!(read(&Value::Null, &[]).unwrap().labels.is_empty());
    }
}
