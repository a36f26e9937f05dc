//! Looking at an image's files without running it: what a path is (file, folder, link),
//! its permission bits, and where a command name leads, for the image check
//! (`validate --image`).
//!
//! Two ways in, both through a container that is created and never started:
//! - the engine's API socket: `HEAD /containers/{id}/archive?path=…` answers one path's
//!   `lstat` in a header, without sending the file, so a check of a 10 GB image costs a
//!   few requests;
//! - otherwise (a Docker context, a tcp host, `TAPIR_DOCKER`): `docker export`, read as a
//!   stream of tar headers (contents skipped), within the pull deadline.
//!
//! Paths are resolved here, one component at a time and following links inside the
//! image, so both ways answer the same and every folder on the way is seen (an
//! arbitrary uid needs `x` on each).

use std::collections::HashMap;
use std::io::Read;
use std::process::Stdio;
use std::sync::mpsc;

use serde_json::Value;

use super::deadline;
use super::docker::{Docker, cli_error, engine_error};
use super::engine_api::{self, Request};
use crate::error::Error;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A device, pipe or socket.
    Other,
}

/// One path's `lstat`, as much as tapir needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub kind: EntryKind,
    /// Permission bits (`0o755`).
    pub mode: u32,
    /// A link's target as stored (absolute, or relative to the link's folder).
    pub link_target: String,
}

impl Entry {
    /// Can a user who is neither the owner nor in the group (an arbitrary uid, as CANFAR
    /// and tapir's default run images) use it: `r` and `x` for a file to run (scripts are
    /// read by their interpreter), `x` for a folder to pass through?
    pub(crate) fn others_can_run(&self) -> bool {
        match self.kind {
            EntryKind::Dir => self.mode & 0o001 != 0,
            _ => self.mode & 0o005 == 0o005,
        }
    }
}

/// Read-only access to an image's files.
pub(crate) trait ImageFs {
    /// The entry at `path` (absolute, already resolved up to its last component), not
    /// following a last-component link; `Ok(None)` when there is none.
    fn lstat(&self, path: &str) -> Result<Option<Entry>, Error>;
}

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The path after following links.
    pub path: String,
    /// What is there (links followed); `None` when nothing is.
    pub entry: Option<Entry>,
    /// The folders passed through, in order, with their entries (`/` first).
    pub folders: Vec<(String, Entry)>,
}

/// More links than this on one path is a loop (Linux's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// Follows `path` through the image, as the kernel would: `.` and `..`, links in any
/// component (absolute ones from the image's root). `follow_last`: resolve a link in
/// the last component too.
pub(crate) fn resolve(fs: &dyn ImageFs, path: &str, follow_last: bool) -> Result<Resolved, Error> {
    let root = fs.lstat("/")?.unwrap_or(Entry {
        kind: EntryKind::Dir,
        mode: 0o755,
        link_target: String::new(),
    });
    let mut folders = vec![("/".to_string(), root)];
    let mut current: Vec<String> = Vec::new();
    let mut pending: Vec<String> = components(path).into_iter().rev().collect();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        match name.as_str() {
            "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => {}
        }
        let candidate = format!(
            "/{}",
            [current.clone(), vec![name.clone()]].concat().join("/")
        );
        let is_last = pending.is_empty();
        let Some(entry) = fs.lstat(&candidate)? else {
            return Ok(Resolved {
                path: candidate,
                entry: None,
                folders,
            });
        };
        match entry.kind {
            EntryKind::Symlink if !is_last || follow_last => {
                links += 1;
                if links > MAX_LINKS {
                    return Ok(Resolved {
                        path: candidate,
                        entry: None,
                        folders,
                    });
                }
                if entry.link_target.starts_with('/') {
                    current.clear();
                }
                pending.extend(components(&entry.link_target).into_iter().rev());
            }
            EntryKind::Dir => {
                current.push(name);
                if is_last {
                    return Ok(Resolved {
                        path: candidate,
                        entry: Some(entry),
                        folders,
                    });
                }
                folders.push((candidate, entry));
            }
            _ if is_last => {
                return Ok(Resolved {
                    path: candidate,
                    entry: Some(entry),
                    folders,
                });
            }
            // A file in the middle of a path: nothing is under it.
            _ => {
                return Ok(Resolved {
                    path: format!(
                        "{candidate}/{}",
                        pending.iter().rev().cloned().collect::<Vec<_>>().join("/")
                    ),
                    entry: None,
                    folders,
                });
            }
        }
    }
    // Only `/`, `.` and `..` components: the root (or a folder reached through them).
    let path = format!("/{}", current.join("/"));
    let entry = if current.is_empty() {
        folders.first().map(|(_, e)| e.clone())
    } else {
        fs.lstat(&path)?
    };
    Ok(Resolved {
        path,
        entry,
        folders,
    })
}

fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The PATH a container gets when its image sets none (Docker's default).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the engine finds `program`: as given when it holds a `/` (relative to
/// `working_dir`), else the first match on `path_var` that is a file (as `execvp`).
/// `Ok(None)` when nothing matches.
pub(crate) fn find_program(
    fs: &dyn ImageFs,
    program: &str,
    path_var: &str,
    working_dir: &str,
) -> Result<Option<Resolved>, Error> {
    if program.contains('/') {
        let full = if program.starts_with('/') {
            program.to_string()
        } else {
            format!(
                "{}/{program}",
                if working_dir.is_empty() {
                    "/"
                } else {
                    working_dir
                }
            )
        };
        let found = resolve(fs, &full, true)?;
        return Ok(found.entry.is_some().then_some(found));
    }
    for folder in path_var.split(':').filter(|f| f.starts_with('/')) {
        let found = resolve(fs, &format!("{folder}/{program}"), true)?;
        if found
            .entry
            .as_ref()
            .is_some_and(|e| e.kind == EntryKind::File)
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Go's `os.FileMode` type bits, as the engine's path-stat header carries them.
const GO_MODE_DIR: u64 = 1 << 31;
const GO_MODE_SYMLINK: u64 = 1 << 27;
const GO_MODE_DEVICE: u64 = 1 << 26;
const GO_MODE_PIPE: u64 = 1 << 25;
const GO_MODE_SOCKET: u64 = 1 << 24;
const GO_MODE_CHAR_DEVICE: u64 = 1 << 21;

/// The engine's `X-Docker-Container-Path-Stat` header (base64 of a JSON object).
fn entry_from_path_stat(header: &str) -> Option<Entry> {
    let json = crate::model::base64::decode(header.trim())?;
    let v: Value = serde_json::from_slice(&json).ok()?;
    let mode = v["mode"].as_u64()?;
    let kind = if mode & GO_MODE_DIR != 0 {
        EntryKind::Dir
    } else if mode & GO_MODE_SYMLINK != 0 {
        EntryKind::Symlink
    } else if mode & (GO_MODE_DEVICE | GO_MODE_PIPE | GO_MODE_SOCKET | GO_MODE_CHAR_DEVICE) != 0 {
        EntryKind::Other
    } else {
        EntryKind::File
    };
    Some(Entry {
        kind,
        mode: u32::try_from(mode & 0o777).unwrap_or(0),
        link_target: v["linkTarget"].as_str().unwrap_or_default().to_string(),
    })
}

/// An image's files, seen through a container created from it and never started
/// (removed when this is dropped).
pub(crate) struct EngineImageFs<'a> {
    docker: &'a Docker,
    image: String,
    container: String,
    /// Without the API socket: every entry of `docker export`, by path.
    exported: Option<IndexFs>,
}

impl<'a> EngineImageFs<'a> {
    /// Creates the helper container (and, without the API socket, exports its files).
    pub(crate) fn open(docker: &'a Docker, image: &str) -> Result<Self, Error> {
        let container = create_helper(docker, image)?;
        let mut fs = Self {
            docker,
            image: image.to_string(),
            container,
            exported: None,
        };
        if !docker.has_socket() {
            fs.exported = Some(IndexFs(export_index(docker, &fs.container, image)?));
        }
        Ok(fs)
    }
}

impl Drop for EngineImageFs<'_> {
    fn drop(&mut self) {
        let _ = self.docker.remove(&self.container);
    }
}

impl ImageFs for EngineImageFs<'_> {
    fn lstat(&self, path: &str) -> Result<Option<Entry>, Error> {
        if let Some(index) = &self.exported {
            return index.lstat(path);
        }
        let what = format!("looking at {path} in image {}", self.image);
        let request = Request {
            method: "HEAD".into(),
            path: format!(
                "/containers/{}/archive?path={}",
                self.container,
                engine_api::encode(path)
            ),
            ..Request::default()
        };
        let Some(response) = self.docker.api_send(request, &what, deadline::limit())? else {
            return Err(Error::not_started(format!(
                "the Docker engine's socket stopped answering while {what}"
            )));
        };
        match response.status {
            200 => response
                .header("x-docker-container-path-stat")
                .and_then(entry_from_path_stat)
                .map(Some)
                .ok_or_else(|| {
                    Error::not_started(format!(
                        "the engine's answer about {path} in image {} could not be read",
                        self.image
                    ))
                }),
            404 => Ok(None),
            status => Err(engine_error(&what, status, &response.body)),
        }
    }
}

/// Creates a container from `image` that is never started; returns its id.
fn create_helper(docker: &Docker, image: &str) -> Result<String, Error> {
    let what = format!("creating a container from image {image} (never started)");
    let body = serde_json::json!({
        "Image": image,
        // Never run: the command only has to be there for images without CMD.
        "Cmd": ["tapir-never-started"],
        "Labels": {"tapir.helper": "image-check"},
        "NetworkDisabled": true,
    });
    let request = Request {
        method: "POST".into(),
        path: "/containers/create".into(),
        body: body.to_string().into_bytes(),
        ..Request::default()
    };
    if let Some(response) = docker.api_send(request, &what, deadline::limit())? {
        if response.status != 201 {
            return Err(engine_error(&what, response.status, &response.body));
        }
        let v: Value = serde_json::from_slice(&response.body).unwrap_or_default();
        return v["Id"].as_str().map(str::to_string).ok_or_else(|| {
            Error::not_started(format!(
                "the engine did not say which container it made while {what}"
            ))
        });
    }
    let created = docker.cli(
        &[
            "create",
            "--label",
            "tapir.helper=image-check",
            "--network",
            "none",
            image,
            "tapir-never-started",
        ],
        deadline::limit(),
    )?;
    if !created.status.success() {
        return Err(cli_error(
            &format!("docker create {image}"),
            &String::from_utf8_lossy(&created.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&created.stdout).trim().to_string())
}

/// Every entry of `docker export CONTAINER`, read as the stream arrives (file contents
/// are skipped, never held), within the pull deadline: an export is as large as the
/// image.
fn export_index(
    docker: &Docker,
    container: &str,
    image: &str,
) -> Result<HashMap<String, Entry>, Error> {
    let what = format!("`docker export` of image {image}");
    let limit = deadline::limit() * deadline::PULL_FACTOR;
    let mut child = docker
        .command()
        .args(["export", container])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::not_started(format!("cannot run {}: {e}", docker.binary.display())))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(Error::not_started(format!("{what}: no output")));
    };
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(index_tar(stdout));
    });
    let index = match ended.recv_timeout(limit) {
        Ok(index) => index,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(docker.no_answer(&what, limit).into());
        }
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = child.wait();
    match (index, status) {
        (Ok(index), Ok(status)) if status.success() => Ok(index),
        _ => Err(cli_error(&format!("docker export ({image})"), &stderr)),
    }
}

/// The entries of a tar stream by path (no leading `/`, no trailing `/`).
pub(crate) fn index_tar(stream: impl Read) -> std::io::Result<HashMap<String, Entry>> {
    let mut index = HashMap::new();
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries()? {
        let entry = entry?;
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            t if t.is_file() || t.is_hard_link() => EntryKind::File,
            _ => EntryKind::Other,
        };
        let path = entry.path()?.to_string_lossy().into_owned();
        let key = path
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let link_target = entry
            .link_name()?
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mode = header.mode()? & 0o777;
        index.insert(
            key,
            Entry {
                kind,
                mode,
                link_target,
            },
        );
    }
    Ok(index)
}

/// A fixed set of entries by path (no leading `/`): an exported file system, or a test's.
#[derive(Debug, Default)]
pub(crate) struct IndexFs(pub HashMap<String, Entry>);

impl ImageFs for IndexFs {
    fn lstat(&self, path: &str) -> Result<Option<Entry>, Error> {
        let key = path.trim_start_matches('/').trim_end_matches('/');
        Ok(self.0.get(key).cloned().or_else(|| {
            // A folder the archive does not list on its own (the root, or one only
            // implied by its files).
            let prefix = format!("{key}/");
            (key.is_empty() || self.0.keys().any(|k| k.starts_with(&prefix))).then(|| Entry {
                kind: EntryKind::Dir,
                mode: 0o755,
                link_target: String::new(),
            })
        }))
    }
}

/// An image's file index from `(path, kind, mode, link target)` rows, for unit tests.
#[cfg(test)]
pub(crate) fn index_of(entries: &[(&str, EntryKind, u32, &str)]) -> IndexFs {
    IndexFs(
        entries
            .iter()
            .map(|(p, k, m, l)| {
                (
                    (*p).to_string(),
                    Entry {
                        kind: *k,
                        mode: *m,
                        link_target: (*l).to_string(),
                    },
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(entries: &[(&str, EntryKind, u32, &str)]) -> IndexFs {
        index_of(entries)
    }

    fn image() -> IndexFs {
        use EntryKind::*;
        fs(&[
            ("bin", Dir, 0o755, ""),
            ("bin/busybox", File, 0o755, ""),
            ("bin/sh", Symlink, 0o777, "/bin/busybox"),
            ("usr", Dir, 0o755, ""),
            ("usr/bin", Symlink, 0o777, "../bin"),
            ("root", Dir, 0o700, ""),
            ("root/run.sh", File, 0o755, ""),
            ("loop", Symlink, 0o777, "loop"),
            ("app", Dir, 0o755, ""),
            ("app/run", File, 0o700, ""),
            ("data.txt", File, 0o644, ""),
        ])
    }

    #[test]
    fn links_are_followed_absolute_and_relative() {
        let fs = image();
        let sh = resolve(&fs, "/bin/sh", true).unwrap();
        assert_eq!(sh.path, "/bin/busybox");
        assert_eq!(sh.entry.unwrap().kind, EntryKind::File);
        let through = resolve(&fs, "/usr/bin/sh", true).unwrap();
        assert_eq!(through.path, "/bin/busybox");
        let not_followed = resolve(&fs, "/bin/sh", false).unwrap();
        assert_eq!(not_followed.entry.unwrap().kind, EntryKind::Symlink);
        assert!(resolve(&fs, "/loop", true).unwrap().entry.is_none());
        assert!(resolve(&fs, "/data.txt/x", true).unwrap().entry.is_none());
        assert_eq!(
            resolve(&fs, "/app/../bin/./busybox", true).unwrap().path,
            "/bin/busybox"
        );
        let root = resolve(&fs, "/root/run.sh", true).unwrap();
        let folders: Vec<&str> = root.folders.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(folders, ["/", "/root"]);
        assert!(!root.folders[1].1.others_can_run());
    }

    #[test]
    fn programs_are_found_on_path_or_by_their_path() {
        let fs = image();
        let sh = find_program(&fs, "sh", "/nowhere:/usr/bin", "/")
            .unwrap()
            .unwrap();
        assert_eq!(sh.path, "/bin/busybox");
        assert!(
            find_program(&fs, "python3", DEFAULT_PATH, "/")
                .unwrap()
                .is_none()
        );
        let relative = find_program(&fs, "./run", "/bin", "/app").unwrap().unwrap();
        assert_eq!(relative.path, "/app/run");
        assert!(!relative.entry.unwrap().others_can_run());
        // A folder on PATH named like the program is not it.
        assert!(find_program(&fs, "bin", "/", "/").unwrap().is_none());
    }

    #[test]
    fn the_engines_path_stat_header_is_read() {
        // {"name":"sh","size":12,"mode":134218239,"mtime":"…","linkTarget":"/bin/busybox"}
        let link = "eyJuYW1lIjoic2giLCJzaXplIjoxMiwibW9kZSI6MTM0MjE4MjM5LCJtdGltZSI6IjIwMjYtMTItMDZUMDU6MDg6MDZaIiwibGlua1RhcmdldCI6Ii9iaW4vYnVzeWJveCJ9";
        let entry = entry_from_path_stat(link).unwrap();
        assert_eq!(entry.kind, EntryKind::Symlink);
        assert_eq!(entry.link_target, "/bin/busybox");
        // /tmp: a folder with the sticky bit, 1777.
        let tmp = "eyJuYW1lIjoidG1wIiwic2l6ZSI6NDA5NiwibW9kZSI6MjE0ODUzMjczNSwibXRpbWUiOiIyMDI2LTEyLTA2VDA1OjA4OjA2WiIsImxpbmtUYXJnZXQiOiIifQ==";
        let entry = entry_from_path_stat(tmp).unwrap();
        assert_eq!((entry.kind, entry.mode), (EntryKind::Dir, 0o777));
        assert!(entry_from_path_stat("not base64!").is_none());
        assert_eq!(crate::model::base64::decode("aGk=").unwrap(), b"hi");
    }

    #[test]
    fn a_tar_stream_is_indexed_without_its_contents() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(3);
        header.set_mode(0o700);
        builder
            .append_data(&mut header, "app/run", &b"abc"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        builder
            .append_link(&mut link, "bin/run", "/app/run")
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let index = IndexFs(index_tar(&tar[..]).unwrap());
        let found = find_program(&index, "run", "/bin", "/").unwrap().unwrap();
        assert_eq!(found.path, "/app/run");
        assert_eq!(found.entry.unwrap().mode, 0o700);
    }
}
