//! Reading images straight from a registry (the OCI distribution / Docker registry v2
//! HTTP API), without pulling them into the engine: `inspect docker://REF`,
//! `validate --image docker://REF`, `images --registry URL`.
//!
//! - **What is fetched**: the manifest (an index or manifest list picks the platform of
//!   this machine), the config blob (labels, env, user, entrypoint: everything `inspect`
//!   shows), and layers only where files are needed: for `/processing-container.json`
//!   the layers from the top down until one holds it (it is usually copied late, so one
//!   small layer); for the image check's file checks, every layer, read as a stream of tar
//!   headers (contents skipped, nothing stored; whiteouts applied). So a remote check
//!   costs the image's download but no disk.
//! - **Transport**: `http://` is spoken here over a `TcpStream` (plain HTTP/1.1) and is
//!   used only for loopback registries (`localhost`, `127.0.0.0/8`, `::1`), as Docker
//!   does by default; `https://` goes through the system's `curl` (TLS, proxies and CA
//!   certificates as the system has them), with credentials on its standard input, never
//!   in its argv. No TLS stack is compiled into tapir.
//! - **Auth**: anonymous first; on `401` the `WWW-Authenticate` challenge says how:
//!   `Basic` (the credentials as they are) or `Bearer` (a token from the realm, asked for
//!   with the credentials). Credentials come from `TAPIR_REGISTRY_USERNAME` and
//!   `TAPIR_REGISTRY_PASSWORD`, else from the `auths` of Docker's `config.json` (`docker
//!   login`; credential helpers are not asked).
//! - **Deadlines**: every request and every stream is bounded by `TAPIR_ENGINE_TIMEOUT`
//!   (a layer stream by [`deadline::PULL_FACTOR`] of it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::deadline;
use super::docker::ImageInfo;
use super::image_fs::{Entry, EntryKind, IndexFs};
use crate::error::Error;

/// Manifests tapir reads, most wanted first.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
/// A manifest or a config is JSON of a few KB; more is not what it claims to be.
const MAX_JSON_BYTES: u64 = 16 * 1024 * 1024;

/// `docker://host[:port]/repository[:tag|@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteRef {
    /// `host[:port]` as written (Docker Hub: `registry-1.docker.io`).
    pub registry: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

/// The prefix that marks an image read from its registry.
pub(crate) const REMOTE_PREFIX: &str = "docker://";

impl RemoteRef {
    /// Reads `docker://REF` (the prefix optional); a reference without a registry host is
    /// Docker Hub's, as Docker reads it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix(REMOTE_PREFIX).unwrap_or(text);
        let bad = || {
            format!(
                "{text:?} is not an image reference\n  fix: write docker://HOST[:PORT]/REPOSITORY[:TAG], e.g. docker://127.0.0.1:5000/group/image:1.0"
            )
        };
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(bad());
        }
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ if rest.contains('/') => ("registry-1.docker.io".to_string(), rest.to_string()),
            _ => (
                "registry-1.docker.io".to_string(),
                format!("library/{rest}"),
            ),
        };
        let (repository, reference) = if let Some((repo, digest)) = path.split_once('@') {
            (repo.to_string(), digest.to_string())
        } else {
            let last_slash = path.rfind('/').map_or(0, |i| i + 1);
            match path[last_slash..].rfind(':') {
                Some(i) => (
                    path[..last_slash + i].to_string(),
                    path[last_slash + i + 1..].to_string(),
                ),
                None => (path.clone(), "latest".to_string()),
            }
        };
        if repository.is_empty() || reference.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            registry,
            repository,
            reference,
        })
    }

    /// As `docker` names it: `host/repository:tag` (or `@digest`).
    pub(crate) fn display(&self) -> String {
        let sep = if self.reference.contains(':') {
            '@'
        } else {
            ':'
        };
        format!(
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

/// Is `host[:port]` on this machine (plain HTTP is used only there)?
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A response whose body is still to be read.
struct Opened {
    status: u16,
    headers: Vec<(String, String)>,
    body: Box<dyn Read + Send>,
}

impl Opened {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The whole body, at most `max` bytes.
    fn read_all(mut self, max: u64) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        (&mut self.body).take(max + 1).read_to_end(&mut body)?;
        if body.len() as u64 > max {
            return Err(io::Error::other(format!(
                "the answer is larger than {max} bytes"
            )));
        }
        Ok(body)
    }
}

/// A registry client: one host, its credentials, and the `Authorization` it settled on.
pub(crate) struct Registry {
    registry: String,
    /// `http://HOST` or `https://HOST`.
    base: String,
    credentials: Option<(String, String)>,
    authorization: Option<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A client for `registry` (`host[:port]`), with credentials from the environment or
    /// Docker's configuration.
    pub(crate) fn new(registry: &str) -> Self {
        let scheme = if is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        Self {
            registry: registry.to_string(),
            base: format!("{scheme}://{registry}"),
            credentials: credentials_for(registry),
            authorization: None,
        }
    }

    /// A client for a registry URL as the user gives it (`http://127.0.0.1:5000`,
    /// `registry.example.org`).
    pub(crate) fn from_url(url: &str) -> Result<Self, String> {
        let host = crate::model::registry::registry_host(url);
        if host.is_empty() {
            return Err(format!(
                "{url:?} names no registry\n  fix: give HOST[:PORT], e.g. --registry 127.0.0.1:5000"
            ));
        }
        if url.starts_with("http://") && !is_loopback(&host) {
            return Err(format!(
                "{url}: plain HTTP is used only for registries on this machine (loopback)\n  fix: use https://{host}"
            ));
        }
        Ok(Self::new(&host))
    }

    fn failure(&self, what: &str, detail: impl std::fmt::Display) -> Error {
        Error::not_started(format!(
            "the registry {} failed while {what}: {detail}",
            self.registry
        ))
    }

    /// GET `path` (or a full URL), with auth and redirects handled; the body unread.
    fn get(
        &mut self,
        path: &str,
        accept: &str,
        what: &str,
        limit: Duration,
    ) -> Result<Opened, Error> {
        let mut url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut tried_auth = false;
        for _ in 0..6 {
            let same_host = url.starts_with(&self.base);
            let mut headers = vec![("Accept".to_string(), accept.to_string())];
            if let (true, Some(authorization)) = (same_host, &self.authorization) {
                headers.push(("Authorization".to_string(), authorization.clone()));
            }
            let opened =
                open(&url, &headers, limit).map_err(|e| self.transport_error(what, &e, limit))?;
            match opened.status {
                401 if same_host && !tried_auth => {
                    tried_auth = true;
                    let challenge = opened
                        .header("www-authenticate")
                        .unwrap_or_default()
                        .to_string();
                    self.authorization = Some(self.authorize(&challenge, what, limit)?);
                }
                301 | 302 | 303 | 307 | 308 => {
                    let location = opened.header("location").unwrap_or_default().to_string();
                    url = if location.starts_with("http") {
                        location
                    } else {
                        format!("{}{location}", self.base)
                    };
                }
                _ => return Ok(opened),
            }
        }
        Err(self.failure(what, "too many redirects"))
    }

    fn transport_error(&self, what: &str, e: &io::Error, limit: Duration) -> Error {
        if deadline::is_timeout(e) {
            Error::not_started(deadline::no_answer(
                &format!("the registry {}", self.registry),
                what,
                limit,
            ))
        } else {
            Error::not_started(format!(
                "cannot reach the registry {} ({what}): {e}\n  fix: check the registry's address and that it is running",
                self.registry
            ))
        }
    }

    /// The `Authorization` a challenge asks for.
    fn authorize(&self, challenge: &str, what: &str, limit: Duration) -> Result<String, Error> {
        let no_credentials = || {
            Error::not_started(format!(
                "the registry {} wants credentials ({what})\n  fix: `docker login {}` (tapir reads Docker's config.json), or set TAPIR_REGISTRY_USERNAME and TAPIR_REGISTRY_PASSWORD",
                self.registry, self.registry
            ))
        };
        let basic = self.credentials.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                crate::model::base64::standard(format!("{u}:{p}").as_bytes())
            )
        });
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            return basic.ok_or_else(no_credentials);
        }
        if !lower.starts_with("bearer") {
            return Err(self.failure(
                what,
                format!("an authentication scheme tapir does not speak: {challenge:?}"),
            ));
        }
        let params = challenge_params(challenge);
        let realm = params.get("realm").cloned().unwrap_or_default();
        let mut query = Vec::new();
        for key in ["service", "scope"] {
            if let Some(v) = params.get(key) {
                query.push(format!("{key}={}", super::engine_api::encode(v)));
            }
        }
        let url = format!("{realm}?{}", query.join("&"));
        let mut headers = Vec::new();
        if let Some(basic) = &basic {
            headers.push(("Authorization".to_string(), basic.clone()));
        }
        let opened = open(&url, &headers, limit)
            .map_err(|e| self.transport_error("asking for a token", &e, limit))?;
        if opened.status == 401 || opened.status == 403 {
            return Err(if self.credentials.is_some() {
                Error::not_started(format!(
                    "the registry {} refused the credentials ({what})\n  fix: check TAPIR_REGISTRY_USERNAME/TAPIR_REGISTRY_PASSWORD or `docker login {}`",
                    self.registry, self.registry
                ))
            } else {
                no_credentials()
            });
        }
        let status = opened.status;
        let body = opened
            .read_all(MAX_JSON_BYTES)
            .map_err(|e| self.transport_error("reading a token", &e, limit))?;
        if status != 200 {
            return Err(self.failure(what, format!("the token service answered {status}")));
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| self.failure(what, "the token service gave no token"))
    }

    /// A small JSON document (manifest, config, catalogue) and its headers.
    fn get_json(
        &mut self,
        path: &str,
        accept: &str,
        what: &str,
    ) -> Result<(Value, Vec<(String, String)>), Error> {
        let limit = deadline::limit();
        let opened = self.get(path, accept, what, limit)?;
        let (status, headers) = (opened.status, opened.headers.clone());
        let body = opened
            .read_all(MAX_JSON_BYTES)
            .map_err(|e| self.transport_error(what, &e, limit))?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(|v| (v, headers))
                .map_err(|e| self.failure(what, format!("the answer is not JSON: {e}"))),
            401 | 403 => Err(Error::not_started(format!(
                "the registry {} refused access ({what})\n  fix: check the credentials (TAPIR_REGISTRY_USERNAME/TAPIR_REGISTRY_PASSWORD, or `docker login {}`)",
                self.registry, self.registry
            ))),
            404 => Err(Error::Usage(format!(
                "{what}: not found in the registry {} (404)",
                self.registry
            ))),
            status => Err(self.failure(
                what,
                format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ),
            )),
        }
    }

    /// The repositories of the registry's catalogue (`/v2/_catalog`), following pages.
    pub(crate) fn catalog(&mut self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut path = "/v2/_catalog?n=1000".to_string();
        loop {
            let (v, headers) = self
                .get_json(&path, "application/json", "listing its catalogue (/v2/_catalog)")
                .map_err(|e| match e {
                    // The catalogue is an optional part of the API (seed 004: "no standard").
                    Error::Usage(_) => Error::Usage(format!(
                        "the registry {} offers no catalogue (/v2/_catalog answered 404), so its images cannot be listed\n  fix: read one image you know: `tapir inspect docker://{}/REPOSITORY:TAG`",
                        self.registry, self.registry
                    )),
                    other => other,
                })?;
            out.extend(
                v["repositories"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
            let next = headers
                .iter()
                .find(|(n, _)| n == "link")
                .and_then(|(_, l)| {
                    l.split(';').next().map(|u| {
                        u.trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_string()
                    })
                });
            match next {
                Some(next) if !next.is_empty() && out.len() < 100_000 => path = next,
                _ => return Ok(out),
            }
        }
    }

    /// A repository's tags.
    pub(crate) fn tags(&mut self, repository: &str) -> Result<Vec<String>, Error> {
        let (v, _) = self.get_json(
            &format!("/v2/{repository}/tags/list"),
            "application/json",
            &format!("listing the tags of {repository}"),
        )?;
        Ok(v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }

    /// The image's manifest for this machine's platform and its config.
    pub(crate) fn image(&mut self, remote: &RemoteRef) -> Result<RemoteImage, Error> {
        let what = format!("reading the manifest of {}", remote.display());
        let (mut manifest, mut headers) = self.get_json(
            &format!("/v2/{}/manifests/{}", remote.repository, remote.reference),
            MANIFEST_TYPES,
            &what,
        )?;
        if manifest["manifests"].is_array() {
            let (os, arch) = ("linux", host_architecture());
            let chosen = manifest["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["platform"]["os"] == os && m["platform"]["architecture"] == arch)
                .and_then(|m| m["digest"].as_str())
                .ok_or_else(|| {
                    Error::Usage(format!("{} has no image for {os}/{arch}", remote.display()))
                })?
                .to_string();
            (manifest, headers) = self.get_json(
                &format!("/v2/{}/manifests/{chosen}", remote.repository),
                MANIFEST_TYPES,
                &what,
            )?;
        }
        let digest = headers
            .iter()
            .find(|(n, _)| n == "docker-content-digest")
            .map(|(_, v)| v.clone());
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .ok_or_else(|| self.failure(&what, "the manifest names no config (a schema 1 manifest? push the image again with a current Docker)"))?
            .to_string();
        let (config, _) = self.get_json(
            &format!("/v2/{}/blobs/{config_digest}", remote.repository),
            "application/json, */*",
            &format!("reading the config of {}", remote.display()),
        )?;
        let layers: Vec<Layer> = manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| Layer {
                digest: l["digest"].as_str().unwrap_or_default().to_string(),
                media_type: l["mediaType"].as_str().unwrap_or_default().to_string(),
                size: l["size"].as_u64().unwrap_or_default(),
            })
            .collect();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let c = &config["config"];
        let info = ImageInfo {
            id: config_digest,
            repo_digests: digest
                .map(|d| vec![format!("{}/{}@{d}", remote.registry, remote.repository)])
                .unwrap_or_default(),
            user: c["User"].as_str().unwrap_or_default().to_string(),
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
            env: strings(&c["Env"]),
            created: config["created"].as_str().unwrap_or_default().to_string(),
            size_bytes: layers.iter().map(|l| l.size).sum(),
            os: config["os"].as_str().unwrap_or_default().to_string(),
            architecture: config["architecture"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            labels: c["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect::<BTreeMap<_, _>>()
                })
                .unwrap_or_default(),
        };
        Ok(RemoteImage {
            remote: remote.clone(),
            info,
            layers,
        })
    }

    /// Streams one layer's tar entries to `visit` (contents readable, or skipped when not
    /// read); `visit` returns `false` to stop early.
    fn walk_layer(
        &mut self,
        remote: &RemoteRef,
        layer: &Layer,
        visit: &mut LayerVisitor<'_>,
    ) -> Result<(), Error> {
        let what = format!(
            "reading layer {} of {}",
            short(&layer.digest),
            remote.display()
        );
        let limit = deadline::limit() * deadline::PULL_FACTOR;
        let opened = self.get(
            &format!("/v2/{}/blobs/{}", remote.repository, layer.digest),
            "*/*",
            &what,
            limit,
        )?;
        if opened.status != 200 {
            return Err(self.failure(&what, format!("HTTP {}", opened.status)));
        }
        let media = layer.media_type.as_str();
        let stream: Box<dyn Read + Send> = if media.ends_with("gzip") || media.is_empty() {
            Box::new(flate2::read::GzDecoder::new(opened.body))
        } else if media.ends_with(".tar") || media.ends_with("tar.v1") {
            opened.body
        } else {
            return Err(self.failure(
                &what,
                format!("layers of type {media} cannot be read by tapir (gzip and plain tar can)"),
            ));
        };
        let mut archive = tar::Archive::new(stream);
        let result: io::Result<()> = (|| {
            for entry in archive.entries()? {
                let mut entry = entry?;
                let path = entry.path()?.to_string_lossy().into_owned();
                let key = path
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .trim_end_matches('/')
                    .to_string();
                if !visit(&key, &mut entry)? {
                    break;
                }
            }
            Ok(())
        })();
        result.map_err(|e| self.transport_error(&what, &e, limit))
    }

    /// A file's content, read from the layers top down (`Ok(None)` when the image does
    /// not have it). A link is followed (within the image) a few times.
    pub(crate) fn read_file(
        &mut self,
        image: &RemoteImage,
        path: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let mut wanted = path.trim_start_matches('/').to_string();
        for _ in 0..8 {
            let mut found: Option<Result<Vec<u8>, String>> = None;
            let mut removed = false;
            for layer in image.layers.iter().rev() {
                let (name, parent) = match wanted.rsplit_once('/') {
                    Some((parent, name)) => (name.to_string(), parent.to_string()),
                    None => (wanted.clone(), String::new()),
                };
                let whiteout = if parent.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{parent}/.wh.{name}")
                };
                let opaque = if parent.is_empty() {
                    ".wh..wh..opq".to_string()
                } else {
                    format!("{parent}/.wh..wh..opq")
                };
                let mut opaque_here = false;
                self.walk_layer(&image.remote, layer, &mut |key, entry| {
                    if key == wanted {
                        let kind = entry.header().entry_type();
                        found = Some(if kind.is_symlink() {
                            let target = entry
                                .link_name()?
                                .map(|l| l.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            Err(target)
                        } else {
                            let mut content = Vec::new();
                            Read::by_ref(entry)
                                .take(MAX_JSON_BYTES)
                                .read_to_end(&mut content)?;
                            Ok(content)
                        });
                        return Ok(false);
                    }
                    if key == whiteout {
                        removed = true;
                        return Ok(false);
                    }
                    if key == opaque {
                        opaque_here = true;
                    }
                    Ok(true)
                })?;
                if found.is_some() || removed || opaque_here {
                    break;
                }
            }
            match found {
                Some(Ok(content)) => return Ok(Some(content)),
                Some(Err(target)) => {
                    wanted = if target.starts_with('/') {
                        target.trim_start_matches('/').to_string()
                    } else {
                        match wanted.rsplit_once('/') {
                            Some((parent, _)) => format!("{parent}/{target}"),
                            None => target,
                        }
                    };
                }
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The image's `/processing-container.json`: from tapir's cache when this image (by
    /// its config digest, which is also its id once pulled) was read before, else from
    /// its layers.
    pub(crate) fn processing_container(
        &mut self,
        image: &RemoteImage,
    ) -> Result<Option<Vec<u8>>, Error> {
        if let Some(known) = super::lookup::cached_processing_container(&image.info.id) {
            return Ok(known);
        }
        let bytes = self.read_file(image, "/processing-container.json")?;
        super::lookup::remember_processing_container(&image.info.id, bytes.as_deref());
        Ok(bytes)
    }

    /// Every path of the image's file system with its entry: all layers, bottom up, with
    /// whiteouts applied (contents are skipped).
    pub(crate) fn index(&mut self, image: &RemoteImage) -> Result<IndexFs, Error> {
        let mut index: HashMap<String, Entry> = HashMap::new();
        for layer in &image.layers {
            let mut added: Vec<(String, Entry)> = Vec::new();
            let mut removed: HashSet<String> = HashSet::new();
            let mut opaque: Vec<String> = Vec::new();
            self.walk_layer(&image.remote, layer, &mut |key, entry| {
                let (parent, name) = key.rsplit_once('/').unwrap_or(("", key));
                if name == ".wh..wh..opq" {
                    opaque.push(parent.to_string());
                } else if let Some(gone) = name.strip_prefix(".wh.") {
                    removed.insert(if parent.is_empty() {
                        gone.to_string()
                    } else {
                        format!("{parent}/{gone}")
                    });
                } else {
                    let header = entry.header();
                    let kind = match header.entry_type() {
                        tar::EntryType::Directory => EntryKind::Dir,
                        tar::EntryType::Symlink => EntryKind::Symlink,
                        t if t.is_file() || t.is_hard_link() => EntryKind::File,
                        _ => EntryKind::Other,
                    };
                    let link_target = entry
                        .link_name()?
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    added.push((
                        key.to_string(),
                        Entry {
                            kind,
                            mode: header.mode()? & 0o777,
                            link_target,
                        },
                    ));
                }
                Ok(true)
            })?;
            for dir in opaque {
                let prefix = format!("{dir}/");
                index.retain(|k, _| !k.starts_with(&prefix));
            }
            for gone in removed {
                let prefix = format!("{gone}/");
                index.retain(|k, _| k != &gone && !k.starts_with(&prefix));
            }
            index.extend(added);
        }
        Ok(IndexFs(index))
    }
}

/// Called with each entry of a layer (path without leading `/`); `false` stops the walk.
type LayerVisitor<'a> =
    dyn FnMut(&str, &mut tar::Entry<'_, Box<dyn Read + Send>>) -> io::Result<bool> + 'a;

/// An image in a registry: where it is, its config, its layers (bottom first).
#[derive(Debug, Clone)]
pub(crate) struct RemoteImage {
    pub remote: RemoteRef,
    pub info: ImageInfo,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

fn short(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

/// The architecture as image indexes name it.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `realm="…",service="…",scope="…"` of a `Bearer` challenge.
fn challenge_params(challenge: &str) -> HashMap<String, String> {
    let rest = challenge.split_once(' ').map_or("", |(_, r)| r);
    let mut out = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                value.push(c);
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        out.insert(key, value);
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// The credentials for `registry`: `TAPIR_REGISTRY_USERNAME`/`_PASSWORD`, else an
/// `auths` entry of Docker's config.json (`$DOCKER_CONFIG` or `~/.docker`).
fn credentials_for(registry: &str) -> Option<(String, String)> {
    if let (Ok(user), Ok(password)) = (
        std::env::var("TAPIR_REGISTRY_USERNAME"),
        std::env::var("TAPIR_REGISTRY_PASSWORD"),
    ) {
        return Some((user, password));
    }
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).ok()?).ok()?;
    let auths = config["auths"].as_object()?;
    let hub = registry == "registry-1.docker.io";
    let auth = auths.iter().find_map(|(key, v)| {
        let host = crate::model::registry::registry_host(key);
        (host == registry || (hub && host.contains("docker.io")))
            .then(|| v["auth"].as_str())
            .flatten()
    })?;
    let decoded = String::from_utf8(crate::model::base64::decode(auth)?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Opens `url`: plain HTTP here for loopback hosts, `curl` for https.
fn open(url: &str, headers: &[(String, String)], limit: Duration) -> io::Result<Opened> {
    if let Some(rest) = url.strip_prefix("http://") {
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if !is_loopback(host) {
            return Err(io::Error::other(format!(
                "plain HTTP to {host} refused: only loopback registries are spoken to without TLS"
            )));
        }
        return open_plain(host, path, headers, limit);
    }
    if url.starts_with("https://") {
        return open_with_curl(url, headers, limit);
    }
    Err(io::Error::other(format!("not an http(s) URL: {url}")))
}

fn open_plain(
    host: &str,
    path: &str,
    headers: &[(String, String)],
    limit: Duration,
) -> io::Result<Opened> {
    let started = Instant::now();
    let address = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{host} has no address")))?;
    let mut stream = TcpStream::connect_timeout(&address, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: tapir\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body: Box<dyn Read + Send> = if chunked {
        Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        })
    } else if let Some(length) = length {
        Box::new(reader.take(length))
    } else {
        Box::new(reader)
    };
    Ok(Opened {
        status,
        headers,
        body: Box::new(Bounded {
            inner: body,
            until: started + limit,
        }),
    })
}

/// The status line and headers (names lower-cased).
fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP answer: {:?}", status_line.trim())))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok((status, headers))
}

/// A chunked body, de-chunked.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            if line.trim().is_empty() {
                line.clear();
                self.inner.read_line(&mut line)?;
            }
            self.left = u64::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::other("a bad chunk in the registry's answer"))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the registry's answer was cut short",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A stream that fails with `TimedOut` once its deadline has passed: the socket's read
/// timeout alone restarts with every byte.
struct Bounded<R> {
    inner: R,
    until: Instant,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if Instant::now() > self.until {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "past the deadline"));
        }
        self.inner.read(buf)
    }
}

/// https through the system's `curl`: the URL and headers (credentials among them) go
/// in a config on its standard input, so no argv holds them; `--max-time` bounds it.
fn open_with_curl(url: &str, headers: &[(String, String)], limit: Duration) -> io::Result<Opened> {
    let mut config = format!(
        "url = \"{}\"\n",
        url.replace('\\', "\\\\").replace('"', "\\\"")
    );
    for (name, value) in headers {
        config.push_str(&format!(
            "header = \"{name}: {}\"\n",
            value.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    let mut child = Command::new("curl")
        .args(["--silent", "--show-error", "--include", "--max-time", &limit.as_secs().max(1).to_string(), "--config", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::other(format!("https registries are read through `curl`, which could not be run ({e}); install curl")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(config.as_bytes())?;
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("curl gave no output"))?;
    let mut reader = BufReader::new(stdout);
    let (mut status, mut headers) = read_head(&mut reader)?;
    // `100 Continue` and proxy `200 Connection established` heads come first.
    while status == 100 || (status == 200 && headers.is_empty()) {
        (status, headers) = read_head(&mut reader)?;
    }
    Ok(Opened {
        status,
        headers,
        body: Box::new(CurlBody { reader, child }),
    })
}

/// curl's output after its headers; the process is reaped when the body is dropped.
struct CurlBody {
    reader: BufReader<std::process::ChildStdout>,
    child: std::process::Child,
}

impl Read for CurlBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Drop for CurlBody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_as_docker_reads_them() {
        let r = RemoteRef::parse("docker://127.0.0.1:5117/tapir-test/good:1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5117", "tapir-test/good", "1")
        );
        assert_eq!(r.display(), "127.0.0.1:5117/tapir-test/good:1");
        let hub = RemoteRef::parse("docker://ubuntu").unwrap();
        assert_eq!(
            (
                hub.registry.as_str(),
                hub.repository.as_str(),
                hub.reference.as_str()
            ),
            ("registry-1.docker.io", "library/ubuntu", "latest")
        );
        let digest = RemoteRef::parse("localhost:5000/a/b@sha256:ab").unwrap();
        assert_eq!(
            (digest.repository.as_str(), digest.reference.as_str()),
            ("a/b", "sha256:ab")
        );
        assert_eq!(digest.display(), "localhost:5000/a/b@sha256:ab");
        assert!(RemoteRef::parse("docker://").is_err());
        assert!(RemoteRef::parse("docker://a b").is_err());
    }

    #[test]
    fn only_loopback_is_spoken_to_without_tls() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.8.0.1"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.org:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(Registry::from_url("http://10.0.0.1:5000").is_err());
        assert_eq!(
            Registry::from_url("http://127.0.0.1:5117").unwrap().base,
            "http://127.0.0.1:5117"
        );
        assert_eq!(
            Registry::from_url("registry.example.org").unwrap().base,
            "https://registry.example.org"
        );
    }

    #[test]
    fn bearer_challenges_are_read() {
        let p = challenge_params(
            r#"Bearer realm="https://auth.example.org/token",service="registry.example.org",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example.org/token");
        assert_eq!(p["service"], "registry.example.org");
        assert_eq!(p["scope"], "repository:a/b:pull");
        assert_eq!(crate::model::base64::standard(b"u:p?>"), "dTpwPz4=");
    }

    #[test]
    fn a_chunked_body_is_joined() {
        let raw = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        let mut out = String::new();
        Chunked {
            inner: &raw[..],
            left: 0,
            done: false,
        }
        .read_to_string(&mut out)
        .unwrap();
        assert_eq!(out, "Wikipedia");
    }
}
