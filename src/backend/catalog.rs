//! `tapir images`: the Task API images of the local engine (those that carry a
//! `/processing-container.json`), with their templates, and a search over them by
//! keyword and label — seed 004's "search like PyPI, but for containers", starting
//! where the images are.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::deadline;
use super::docker::{Docker, ImageInfo, cli_error, engine_error};
use super::engine_api::Request;
use super::image_check::OCI_PREFIX;
use super::lookup::processing_container_bytes;
use crate::error::Error;
use crate::schema::Kind;
use crate::validation::{KindRule, check_source};

/// An image of the engine: its id, its tags and its labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListedImage {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// A Task API image, as `tapir images` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskApiImage {
    /// How it can be named: its tags (or, for an image from a registry, its reference).
    pub references: Vec<String>,
    pub id: String,
    /// The OCI title, else the processing-container.json's `name`.
    pub title: String,
    /// The OCI description, else the processing-container.json's `description`.
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub templates: Vec<TemplateSummary>,
    /// Does its /processing-container.json pass `validate`?
    pub valid: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TemplateSummary {
    pub identifier: String,
    pub description: String,
}

/// A `--filter`: `label=KEY` (the label is there) or `label=KEY=VALUE` (with that value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabelFilter {
    pub key: String,
    pub value: Option<String>,
}

impl LabelFilter {
    /// Reads `label=KEY[=VALUE]`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("label=") else {
            return Err(format!(
                "unknown filter {text:?}\n  fix: use label=KEY or label=KEY=VALUE, e.g. --filter label=org.opencontainers.image.licenses=Apache-2.0"
            ));
        };
        let (key, value) = match rest.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (rest, None),
        };
        if key.is_empty() {
            return Err(format!(
                "filter {text:?} names no label\n  fix: --filter label=KEY or label=KEY=VALUE"
            ));
        }
        Ok(Self {
            key: key.to_string(),
            value,
        })
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match (labels.get(&self.key), &self.value) {
            (Some(_), None) => true,
            (Some(v), Some(wanted)) => v == wanted,
            (None, _) => false,
        }
    }
}

impl TaskApiImage {
    /// Built from an image's labels and its /processing-container.json; `None` when that
    /// is not a processing-container.json at all (no `templates` list).
    pub(crate) fn from_parts(
        references: Vec<String>,
        id: String,
        labels: BTreeMap<String, String>,
        embedded: Vec<u8>,
    ) -> Option<Self> {
        let name = format!(
            "{}:/processing-container.json",
            references.first().map_or(id.as_str(), String::as_str)
        );
        let source = crate::source::decode(Path::new(&name), embedded).ok()?;
        let report = check_source(source, KindRule::Forced(Kind::ProcessingContainer));
        let document = report.document.as_ref()?;
        let templates = document.value.get("templates")?.as_array()?;
        let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
        let labels = super::image_check::mask_secret_labels(ImageInfo {
            labels,
            ..ImageInfo::default()
        })
        .labels;
        let label = |key: &str| {
            labels
                .get(&format!("{OCI_PREFIX}{key}"))
                .filter(|v| !v.trim().is_empty())
                .cloned()
        };
        Some(Self {
            title: label("title").unwrap_or_else(|| text(&document.value, "name")),
            description: label("description")
                .unwrap_or_else(|| text(&document.value, "description")),
            templates: templates
                .iter()
                .map(|t| TemplateSummary {
                    identifier: text(t, "identifier"),
                    description: text(t, "description"),
                })
                .collect(),
            valid: report.is_valid(),
            references,
            id,
            labels,
        })
    }

    /// Does it match every keyword (case-insensitive, anywhere in its references,
    /// title, description, label values, template identifiers and descriptions) and
    /// every label filter?
    pub(crate) fn matches(&self, keywords: &[String], filters: &[LabelFilter]) -> bool {
        if !filters.iter().all(|f| f.matches(&self.labels)) {
            return false;
        }
        let mut haystack = String::new();
        for text in self
            .references
            .iter()
            .chain([&self.title, &self.description])
            .chain(self.labels.values())
            .chain(
                self.templates
                    .iter()
                    .flat_map(|t| [&t.identifier, &t.description]),
            )
        {
            haystack.push_str(&text.to_lowercase());
            haystack.push('\n');
        }
        keywords
            .iter()
            .all(|k| haystack.contains(&k.to_lowercase()))
    }
}

/// Every tagged image of the local engine (untagged ones cannot be named by a task).
pub(crate) fn local_images(docker: &Docker) -> Result<Vec<ListedImage>, Error> {
    let what = "listing the local images";
    let request = Request {
        method: "GET".into(),
        path: "/images/json".into(),
        ..Request::default()
    };
    let listed: Value = if let Some(response) = docker.api_send(request, what, deadline::limit())? {
        if response.status != 200 {
            return Err(engine_error(what, response.status, &response.body));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| Error::not_started(format!("the engine's image list is not JSON: {e}")))?
    } else {
        let ids = docker.cli(&["image", "ls", "--quiet", "--no-trunc"], deadline::limit())?;
        if !ids.status.success() {
            return Err(cli_error(
                "docker image ls",
                &String::from_utf8_lossy(&ids.stderr),
            ));
        }
        let mut unique: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        unique.sort();
        unique.dedup();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["image", "inspect"];
        args.extend(unique.iter().map(String::as_str));
        let inspected = docker.cli(&args, deadline::limit())?;
        if !inspected.status.success() {
            return Err(cli_error(
                "docker image inspect",
                &String::from_utf8_lossy(&inspected.stderr),
            ));
        }
        let all: Value = serde_json::from_slice(&inspected.stdout).map_err(|e| {
            Error::not_started(format!("`docker image inspect` did not print JSON: {e}"))
        })?;
        // The API's list shape: Id, RepoTags, Labels.
        Value::Array(
            all.as_array()
                .into_iter()
                .flatten()
                .map(|v| serde_json::json!({"Id": v["Id"], "RepoTags": v["RepoTags"], "Labels": v["Config"]["Labels"]}))
                .collect(),
        )
    };
    Ok(listed
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| ListedImage {
            id: v["Id"].as_str().unwrap_or_default().to_string(),
            tags: v["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|t| *t != "<none>:<none>")
                .map(str::to_string)
                .collect(),
            labels: v["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .filter(|i| !i.tags.is_empty())
        .collect())
}

/// The local images that carry a /processing-container.json (read once per image id and
/// cached, like `run` reads it), sorted by reference.
pub(crate) fn local_task_api_images(docker: &Docker) -> Result<(Vec<TaskApiImage>, usize), Error> {
    let listed = local_images(docker)?;
    let total = listed.len();
    let mut found = Vec::new();
    for mut image in listed {
        image.tags.sort();
        let info = ImageInfo {
            id: image.id.clone(),
            labels: image.labels.clone(),
            ..ImageInfo::default()
        };
        let Some(bytes) = processing_container_bytes(docker, &image.id, &info)? else {
            continue;
        };
        found.extend(TaskApiImage::from_parts(
            image.tags,
            image.id,
            image.labels,
            bytes,
        ));
    }
    found.sort_by(|a, b| a.references.cmp(&b.references));
    Ok((found, total))
}

/// The Task API images of a registry: every tag of every repository in its catalogue,
/// each read through its manifest, config and top layers (down to the embedded file).
pub(crate) fn registry_task_api_images(url: &str) -> Result<(Vec<TaskApiImage>, usize), Error> {
    let mut registry = super::registry::Registry::from_url(url).map_err(Error::Usage)?;
    let host = crate::model::registry::registry_host(url);
    let mut found = Vec::new();
    let mut total = 0;
    for repository in registry.catalog()? {
        for tag in registry.tags(&repository)? {
            total += 1;
            let remote = super::registry::RemoteRef {
                registry: host.clone(),
                repository: repository.clone(),
                reference: tag,
            };
            let image = registry.image(&remote)?;
            let Some(bytes) = registry.processing_container(&image)? else {
                continue;
            };
            found.extend(TaskApiImage::from_parts(
                vec![remote.display()],
                image.info.id,
                image.info.labels,
                bytes,
            ));
        }
    }
    found.sort_by(|a, b| a.references.cmp(&b.references));
    Ok((found, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> TaskApiImage {
        let pc = br#"{"name": "spectra", "description": "Fits spectra", "templates": [
            {"identifier": "fit", "description": "Fits a Gaussian to each line", "command": ["sh"], "env": [], "inputs": [], "outputs": []}]}"#;
        let labels = BTreeMap::from([
            (
                "org.opencontainers.image.licenses".to_string(),
                "Apache-2.0".to_string(),
            ),
            ("org.example.team".to_string(), "Radio".to_string()),
        ]);
        TaskApiImage::from_parts(
            vec!["reg/spectra:1".into()],
            "sha256:ab".into(),
            labels,
            pc.to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn title_and_description_come_from_labels_else_the_file() {
        let image = image();
        assert_eq!(image.title, "spectra");
        assert_eq!(image.description, "Fits spectra");
        assert!(image.valid);
        assert_eq!(image.templates[0].identifier, "fit");
        assert!(
            TaskApiImage::from_parts(vec![], "x".into(), BTreeMap::new(), b"{\"a\": 1}".to_vec())
                .is_none()
        );
        assert!(
            TaskApiImage::from_parts(vec![], "x".into(), BTreeMap::new(), b"not json".to_vec())
                .is_none()
        );
    }

    #[test]
    fn keywords_search_everywhere_and_filters_match_labels() {
        let image = image();
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert!(image.matches(&words(&["GAUSSIAN", "radio"]), &[]));
        assert!(image.matches(&words(&["reg/spec"]), &[]));
        assert!(!image.matches(&words(&["gaussian", "optical"]), &[]));
        let licence =
            LabelFilter::parse("label=org.opencontainers.image.licenses=Apache-2.0").unwrap();
        let team = LabelFilter::parse("label=org.example.team").unwrap();
        let other = LabelFilter::parse("label=org.opencontainers.image.licenses=MIT").unwrap();
        assert!(image.matches(&[], &[licence.clone(), team]));
        assert!(!image.matches(&[], &[licence, other]));
        assert!(
            LabelFilter::parse("name=x")
                .unwrap_err()
                .contains("label=KEY")
        );
        assert!(LabelFilter::parse("label=").is_err());
    }
}
