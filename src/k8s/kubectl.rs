//! The exact `kubectl` calls a Kubernetes run makes, as pure functions (golden-tested in
//! `tests/golden/k8s/kubectl.txt`), and the reading of a Pod's state from `kubectl get -o
//! json`. Nothing here starts a process.
//!
//! Every call carries two deadlines: kubectl's own `--request-timeout` (the API request)
//! and [`KubectlCall::deadline`], after which tapir kills the client (the same
//! `TAPIR_ENGINE_TIMEOUT` as engine calls, `backend/deadline.rs`). A `logs -f` runs as
//! long as the pod writes, so it has no overall deadline; its wait for the pod to start
//! is bounded by `--pod-running-timeout`.
//! Secrets travel only on standard input (`apply -f -`), never in the argv.

use std::time::Duration;

use serde_json::{Value, json};

use super::manifest::Manifests;

/// Where the objects go: the user's kubectl context and namespace (`--context`,
/// `--namespace`; else the manifest's namespace, else the context's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Target {
    pub context: Option<String>,
    pub namespace: Option<String>,
}

impl Target {
    /// The target for `manifests`: the namespace given on the command line wins over
    /// the task's `config.namespace`.
    pub(crate) fn for_manifests(
        context: Option<String>,
        namespace: Option<String>,
        manifests: &Manifests,
    ) -> Self {
        Target {
            context,
            namespace: namespace.or_else(|| manifests.namespace().map(str::to_string)),
        }
    }
}

/// One kubectl call.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KubectlCall {
    /// The arguments after `kubectl` (never a secret).
    pub args: Vec<String>,
    /// What to write to its standard input (may hold Secrets: never shown or stored).
    stdin: Option<String>,
    /// When tapir kills the client; `None`: it runs as long as the pod (`logs -f`).
    pub deadline: Option<Duration>,
}

impl std::fmt::Debug for KubectlCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubectlCall")
            .field("args", &self.args)
            .field("stdin", &self.stdin.as_ref().map(|_| "<manifests>"))
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl KubectlCall {
    /// The standard input to write (the manifests with their Secrets).
    pub(crate) fn stdin(&self) -> Option<&str> {
        self.stdin.as_deref()
    }

    /// The command as a user would type it (`kubectl …`), for messages and goldens.
    pub(crate) fn shown(&self) -> String {
        let mut words = vec!["kubectl".to_string()];
        words.extend(self.args.iter().map(|a| shell_word(a)));
        let mut text = words.join(" ");
        if self.stdin.is_some() {
            text.push_str(" < manifests");
        }
        text
    }
}

/// A word quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `kubectl [--context C] [--namespace N] --request-timeout=Ds VERB …`.
fn call(target: &Target, limit: Duration, verb: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(context) = &target.context {
        args.extend(["--context".to_string(), context.clone()]);
    }
    if let Some(namespace) = &target.namespace {
        args.extend(["--namespace".to_string(), namespace.clone()]);
    }
    args.push(format!("--request-timeout={}s", limit.as_secs().max(1)));
    args.extend(verb.iter().map(|s| s.to_string()));
    args
}

/// Creates the Secrets and the Pod: `create -f -` (not `apply`: a Pod of this run must
/// be new; an existing one is an error, never silently reused), the objects as a JSON
/// `List` on standard input, Secrets first.
pub(crate) fn create(target: &Target, manifests: &Manifests, limit: Duration) -> KubectlCall {
    let items: Vec<&Value> = manifests
        .secrets
        .iter()
        .map(|s| s.real())
        .chain(std::iter::once(&manifests.pod))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    KubectlCall {
        args: call(target, limit, &["create", "-f", "-", "-o", "name"]),
        stdin: Some(list.to_string()),
        deadline: Some(limit),
    }
}

/// The Pod's state, to read with [`pod_state`].
pub(crate) fn status(target: &Target, pod: &str, limit: Duration) -> KubectlCall {
    KubectlCall {
        args: call(target, limit, &["get", &format!("pod/{pod}"), "-o", "json"]),
        stdin: None,
        deadline: Some(limit),
    }
}

/// The container's output from the start; with `follow`, until it ends. The wait for the
/// pod to start running is bounded by `start_limit`.
pub(crate) fn logs(
    target: &Target,
    pod: &str,
    follow: bool,
    start_limit: Duration,
    limit: Duration,
) -> KubectlCall {
    let pod_ref = format!("pod/{pod}");
    let running = format!("--pod-running-timeout={}s", start_limit.as_secs().max(1));
    let mut verb = vec!["logs", &pod_ref, "-c", "main", running.as_str()];
    if follow {
        verb.push("--follow");
    }
    KubectlCall {
        args: call(target, limit, &verb),
        stdin: None,
        deadline: (!follow).then_some(limit),
    }
}

/// Deletes the Pod and its Secrets (Ctrl-C, `rm`). `--wait=false`: the API server
/// finishes the deletion; tapir does not hang on a node that does not answer.
pub(crate) fn delete(
    target: &Target,
    manifests_pod: &str,
    secrets: &[String],
    grace: u32,
    limit: Duration,
) -> KubectlCall {
    let mut objects = vec![format!("pod/{manifests_pod}")];
    objects.extend(secrets.iter().map(|s| format!("secret/{s}")));
    let grace = format!("--grace-period={grace}");
    let mut verb: Vec<&str> = vec!["delete"];
    verb.extend(objects.iter().map(String::as_str));
    verb.extend(["--ignore-not-found", "--wait=false", grace.as_str()]);
    KubectlCall {
        args: call(target, limit, &verb),
        stdin: None,
        deadline: Some(limit),
    }
}

/// Where a Pod is, read from `kubectl get pod -o json` (the submission asks it every
/// second while the Pod runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PodState {
    /// Not yet running; the waiting reason when there is one (`ErrImagePull`,
    /// `ImagePullBackOff`, `ContainerCreating`).
    Pending(Option<String>),
    Running,
    /// The container `main` ended: its exit code and Kubernetes' reason (`OOMKilled`,
    /// `Error`, `Completed`).
    Ended {
        exit_code: i32,
        reason: Option<String>,
    },
    /// Phase `Failed` without a container end (evicted, deadline exceeded); the reason.
    Lost(String),
}

/// Reads the state of container `main` of a Pod object.
pub(crate) fn pod_state(pod: &Value) -> PodState {
    // A Pod stopped at its activeDeadlineSeconds has a killed container too; the Pod's
    // reason is the one that says why.
    if pod["status"]["reason"] == "DeadlineExceeded" {
        return PodState::Lost("DeadlineExceeded".to_string());
    }
    let main = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "main");
    if let Some(terminated) = main
        .map(|c| &c["state"]["terminated"])
        .filter(|t| t.is_object())
    {
        return PodState::Ended {
            exit_code: terminated["exitCode"]
                .as_i64()
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(-1),
            reason: terminated["reason"].as_str().map(str::to_string),
        };
    }
    let waiting = main
        .and_then(|c| c["state"]["waiting"]["reason"].as_str())
        .map(str::to_string);
    match pod["status"]["phase"].as_str() {
        Some("Running") => PodState::Running,
        Some("Failed") => PodState::Lost(
            pod["status"]["reason"]
                .as_str()
                .or(pod["status"]["message"].as_str())
                .unwrap_or("the pod failed before its container ran")
                .to_string(),
        ),
        _ => PodState::Pending(waiting),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::k8s::{K8sConfig, MergedResources, manifests_for};
    use crate::resolve::plan::RunPlan;

    /// Every call of a run of a task with a registry login and a secret variable, one
    /// per line as a user would type it, against `tests/golden/k8s/kubectl.txt`.
    #[test]
    fn kubectl_calls_match_the_golden_file() {
        let plan: RunPlan = serde_json::from_value(json!({
            "task_name": "Seg Task", "image": "registry.example.org/seg:1",
            "env": [{"name": "MODE", "value": "fast", "source": "task"}],
            "mounts": [{"channel": "in", "direction": "input", "host_path": "/data/in",
                        "container_path": "/in", "read_only": true}]
        }))
        .unwrap();
        let mut plan = plan;
        plan.env.push(crate::resolve::plan::PlannedEnv {
            name: "API_TOKEN".into(),
            value: crate::resolve::plan::EnvValue {
                text: "tok-5678".into(),
                secret: true,
            },
            source: crate::resolve::plan::EnvSource::CommandLine,
        });
        let config = K8sConfig {
            namespace: Some("services".into()),
            registry: Some(crate::k8s::config::Registry {
                url: "registry.example.org".into(),
                username: "robot".into(),
                password: "pw-1234".into(),
            }),
            ..K8sConfig::default()
        };
        let manifests = manifests_for(
            &plan,
            &MergedResources::default(),
            &config,
            "Seg Task",
            Some("01JX00000000ABCD1234"),
        )
        .unwrap();
        let limit = Duration::from_secs(60);
        let target = Target::for_manifests(Some("kind-dev".into()), None, &manifests);
        let pod = manifests.pod_name();
        let secrets: Vec<String> = manifests.secrets.iter().map(|s| s.name.clone()).collect();
        let calls = [
            create(&target, &manifests, limit),
            status(&target, pod, limit),
            logs(&target, pod, true, Duration::from_secs(30), limit),
            logs(&target, pod, false, Duration::from_secs(30), limit),
            delete(&target, pod, &secrets, 10, limit),
        ];
        let mut text = String::new();
        for call in &calls {
            text.push_str(&call.shown());
            text.push_str(&format!(
                "  # deadline: {:?}\n",
                call.deadline.map(|d| d.as_secs())
            ));
            assert!(!format!("{call:?}").contains("pw-1234"));
            assert!(
                !call
                    .args
                    .iter()
                    .any(|a| a.contains("pw-1234") || a.contains("tok-5678"))
            );
        }
        // The secrets go on standard input, and only there.
        let stdin = calls[0].stdin().unwrap();
        assert!(
            stdin.contains("tok-5678") && stdin.contains("cm9ib3Q6cHctMTIzNA=="),
            "{stdin}"
        );
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/k8s/kubectl.txt");
        if std::env::var_os("TAPIR_BLESS").is_some() {
            std::fs::write(&golden, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&golden).unwrap_or_default(), text);
    }

    /// The real kubectl (tests/setup/k8s.sh installs one) accepts every call's flags: run
    /// against a kubeconfig whose API server is a closed loopback port, each call gets as
    /// far as connecting — none stops at an unknown flag or a bad argument.
    #[test]
    fn kubectl_accepts_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: dev, context: {cluster: c, user: u}}]\ncurrent-context: dev\n",
        )
        .unwrap();
        let manifests = crate::k8s::manifests_for(
            &serde_json::from_value(json!({"task_name": "t", "image": "x:1"})).unwrap(),
            &crate::k8s::MergedResources::default(),
            &crate::k8s::K8sConfig::default(),
            "t",
            None,
        )
        .unwrap();
        let target = Target {
            context: Some("dev".into()),
            namespace: Some("ns".into()),
        };
        let limit = Duration::from_secs(5);
        for call in [
            create(&target, &manifests, limit),
            status(&target, "t", limit),
            logs(&target, "t", true, limit, limit),
            delete(&target, "t", &["t-env".into()], 10, limit),
        ] {
            let mut child = std::process::Command::new("kubectl")
                .args(&call.args)
                .env("KUBECONFIG", &kubeconfig)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("kubectl is installed (tests/setup/k8s.sh)");
            if let (Some(text), Some(mut stdin)) = (call.stdin(), child.stdin.take()) {
                use std::io::Write;
                stdin.write_all(text.as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{}: {stderr}", call.shown());
            assert!(
                stderr.contains("127.0.0.1:1") && !stderr.contains("unknown flag"),
                "{}: {stderr}",
                call.shown()
            );
        }
    }

    #[test]
    fn pod_states() {
        let cases = [
            (
                json!({"status": {"phase": "Pending"}}),
                PodState::Pending(None),
            ),
            (
                json!({"status": {"phase": "Pending", "containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "ErrImagePull"}}}]}}),
                PodState::Pending(Some("ErrImagePull".into())),
            ),
            (json!({"status": {"phase": "Running"}}), PodState::Running),
            (
                json!({"status": {"phase": "Succeeded", "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
                PodState::Ended {
                    exit_code: 0,
                    reason: Some("Completed".into()),
                },
            ),
            (
                json!({"status": {"phase": "Failed", "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}),
                PodState::Ended {
                    exit_code: 137,
                    reason: Some("OOMKilled".into()),
                },
            ),
            (
                json!({"status": {"phase": "Failed", "reason": "Evicted"}}),
                PodState::Lost("Evicted".into()),
            ),
            (json!({}), PodState::Pending(None)),
        ];
        for (pod, expected) in cases {
            assert_eq!(pod_state(&pod), expected, "{pod}");
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("pod/a-b"), "pod/a-b");
        assert_eq!(shell_word("--for=jsonpath={.x}"), "'--for=jsonpath={.x}'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
