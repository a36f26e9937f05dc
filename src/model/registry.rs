//! A task's registry credentials (`config.registryUrl`, `registryUsername`,
//! `registryPassword`, the keys Kaapana turns into a pull secret), used by `run --pull`.
//!
//! The password lives only in this type: its `Debug` masks it, it is never serialized,
//! and it leaves the process only to the engine (an HTTP header on its socket) or to
//! `docker login` on standard input.

use serde_json::Value;

use super::secret::MASK;

/// The credentials as the task file gives them (after templating). A value still holding
/// `{{` is a template whose variable was not set (`config` renders leniently).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct RegistryCredentials {
    pub url: Option<String>,
    pub username: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| MASK))
            .finish()
    }
}

/// What a pull logs in with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RegistryLogin {
    /// The registry host (`registry.example.org`, `127.0.0.1:5118`).
    pub server: String,
    pub username: String,
    password: String,
}

impl std::fmt::Debug for RegistryLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLogin")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &MASK)
            .finish()
    }
}

impl RegistryLogin {
    pub(crate) fn new(server: String, username: String, password: String) -> Self {
        Self {
            server,
            username,
            password,
        }
    }

    /// The password, for the one place that hands it to the engine.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    /// `text` with the password masked: for any message that quotes an engine's or a
    /// registry's answer.
    pub(crate) fn scrub(&self, text: &str) -> String {
        if self.password.is_empty() {
            return text.to_string();
        }
        text.replace(&self.password, MASK)
    }
}

impl RegistryCredentials {
    /// Reads them from a task's rendered `config`.
    pub(crate) fn from_config(config: &Value) -> Self {
        let text = |key: &str| {
            config
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        Self {
            url: text("registryUrl"),
            username: text("registryUsername"),
            password: text("registryPassword"),
        }
    }

    /// Are any given?
    pub(crate) fn is_empty(&self) -> bool {
        self.username.is_none() && self.password.is_none()
    }

    /// The login for pulling `image`: `Ok(None)` without credentials, `Err` (what is
    /// missing, never the value) when they are incomplete or a template was not rendered.
    pub(crate) fn login_for(&self, image: &str) -> Result<Option<RegistryLogin>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let (Some(username), Some(password)) = (&self.username, &self.password) else {
            return Err(format!(
                "the task's config has `{}` but not `{}`\n  fix: give both registryUsername and registryPassword (the password from the environment: \"{{{{ env.REGISTRY_PASSWORD }}}}\"), or neither",
                if self.username.is_some() {
                    "registryUsername"
                } else {
                    "registryPassword"
                },
                if self.username.is_some() {
                    "registryPassword"
                } else {
                    "registryUsername"
                },
            ));
        };
        for (key, value) in [
            ("registryUsername", username),
            ("registryPassword", password),
        ] {
            if value.contains("{{") {
                return Err(format!(
                    "config.{key} is a template whose variable is not set in tapir's environment\n  fix: set the variable it reads (e.g. `export REGISTRY_PASSWORD=…` before `tapir run --pull`)"
                ));
            }
        }
        let server = self
            .url
            .as_deref()
            .filter(|u| !u.contains("{{"))
            .map(registry_host)
            .unwrap_or_else(|| image_registry(image));
        Ok(Some(RegistryLogin::new(
            server,
            username.clone(),
            password.clone(),
        )))
    }
}

/// `https://registry.example.org/v2/` → `registry.example.org`.
pub(crate) fn registry_host(url: &str) -> String {
    let without_scheme = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_string()
}

/// The registry an image reference names, as Docker reads it: the first component when
/// it holds a `.` or a `:` or is `localhost`, else Docker Hub.
pub(crate) fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => "docker.io".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_config_and_never_show_the_password() {
        let config = serde_json::json!({"type": "k8s", "registryUrl": "https://127.0.0.1:5118/", "registryUsername": "u", "registryPassword": "hunter2"});
        let credentials = RegistryCredentials::from_config(&config);
        assert!(!format!("{credentials:?}").contains("hunter2"));
        let login = credentials.login_for("other/image:1").unwrap().unwrap();
        assert_eq!(login.server, "127.0.0.1:5118");
        assert_eq!(login.password(), "hunter2");
        assert!(!format!("{login:?}").contains("hunter2"));
        assert_eq!(login.scrub("bad password hunter2!"), "bad password ****!");
    }

    #[test]
    fn incomplete_or_unrendered_credentials_say_what_is_missing_without_values() {
        let only_user =
            RegistryCredentials::from_config(&serde_json::json!({"registryUsername": "u"}));
        assert!(
            only_user
                .login_for("x")
                .unwrap_err()
                .contains("not `registryPassword`")
        );
        let unrendered = RegistryCredentials::from_config(
            &serde_json::json!({"registryUsername": "u", "registryPassword": "{{ env.REGISTRY_PASSWORD }}"}),
        );
        assert!(
            unrendered
                .login_for("x")
                .unwrap_err()
                .contains("config.registryPassword is a template")
        );
        assert_eq!(RegistryCredentials::default().login_for("x"), Ok(None));
    }

    #[test]
    fn the_registry_of_an_image_is_found_as_docker_finds_it() {
        assert_eq!(image_registry("127.0.0.1:5118/g/x:1"), "127.0.0.1:5118");
        assert_eq!(image_registry("localhost/x"), "localhost");
        assert_eq!(
            image_registry("registry.example.org/x"),
            "registry.example.org"
        );
        assert_eq!(image_registry("library/ubuntu"), "docker.io");
        assert_eq!(image_registry("ubuntu"), "docker.io");
    }
}
