//! Archives and cleaning at the end of a pipeline run (docs/DESIGN.md decision 10,
//! Tapis' archives). The managed output folders of the tasks that succeeded are copied
//! to `<archive>/<pipeline run folder name>/`, in the same layout as in the run folder
//! (`<task>/<channel>/…`), each file verified against its source after the copy. On
//! request the managed output folders of a pipeline run that succeeded are removed
//! afterwards — only when the archive, if one was asked for, was complete.
//!
//! Data is never lost: nothing in an existing archive folder is overwritten (a new
//! folder is made for every archive), a link is never followed (it is listed as not
//! copied), and a folder is removed only when it is a real folder, never through a link.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The archive a pipeline run asks for (its file's `archive`, or `--archive`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PlannedArchive {
    /// The folder the run's archive folder is made in (the pipeline file's folder joined
    /// with `archive.path`; `pipeline run` makes it absolute).
    pub path: PathBuf,
    /// `task/channel` globs (`*` stays within a part); empty: every managed output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
}

/// One managed output folder that may be archived or cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutputFolder {
    /// `task/channel` (what `include` globs match).
    pub label: String,
    /// Relative to the pipeline run folder (also its place in the archive).
    pub path: String,
}

/// What archiving did, in the pipeline record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ArchiveRecord {
    /// The archive folder made for this run (absolute).
    pub path: String,
    /// `archived`: every selected file is there and verified; `failed`: see `message`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The folders copied (relative to the pipeline run folder).
    #[serde(default)]
    pub folders: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    /// Entries not copied: links (never followed) and special files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_copied: Vec<String>,
}

/// Compiles `include` globs; `Err`: the first bad one's index and why.
pub(crate) fn compile(include: &[String]) -> Result<globset::GlobSet, (usize, String)> {
    let mut set = globset::GlobSetBuilder::new();
    for (k, pattern) in include.iter().enumerate() {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| (k, e.kind().to_string()))?;
        set.add(glob);
    }
    set.build().map_err(|e| (0, e.to_string()))
}

/// The folders of `folders` that `include` selects (all when it is empty), each once.
pub(crate) fn selected<'a>(
    include: &[String],
    folders: &'a [OutputFolder],
) -> Result<Vec<&'a OutputFolder>, String> {
    let set = compile(include).map_err(|(k, e)| format!("include[{k}]: {e}"))?;
    let mut out: Vec<&OutputFolder> = Vec::new();
    for folder in folders {
        let wanted = include.is_empty() || set.is_match(&folder.label);
        if wanted && !out.iter().any(|f| f.path == folder.path) {
            out.push(folder);
        }
    }
    Ok(out)
}

/// Copies the selected `folders` of `run_dir` into a new folder `name` under
/// `archive.path`, verifying every file. Never overwrites: when `name` exists the
/// archive fails and says so.
pub(crate) fn archive(
    run_dir: &Path,
    name: &str,
    archive: &PlannedArchive,
    folders: &[OutputFolder],
) -> ArchiveRecord {
    let destination = archive.path.join(name);
    let mut record = ArchiveRecord {
        path: destination.display().to_string(),
        status: "failed".into(),
        ..ArchiveRecord::default()
    };
    let result = (|| -> Result<(), String> {
        let chosen = selected(&archive.include, folders)?;
        std::fs::create_dir_all(&archive.path)
            .map_err(|e| format!("cannot create {}: {e}", archive.path.display()))?;
        // `create_dir`, not `create_dir_all`: an existing folder is somebody's archive.
        std::fs::create_dir(&destination).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!(
                    "{} already exists; nothing was overwritten",
                    destination.display()
                )
            } else {
                format!("cannot create {}: {e}", destination.display())
            }
        })?;
        for folder in chosen {
            let source = run_dir.join(&folder.path);
            match source.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    record.not_copied.push(folder.path.clone());
                    continue;
                }
                // A task that made no output: nothing to keep.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("cannot read {}: {e}", source.display())),
            }
            copy_tree(
                &source,
                &destination.join(&folder.path),
                &folder.path,
                &mut record,
            )?;
            record.folders.push(folder.path.clone());
        }
        Ok(())
    })();
    match result {
        Ok(()) => record.status = "archived".into(),
        Err(message) => record.message = Some(message),
    }
    record
}

/// Copies the folder `from` to `to` (which must not exist), without following links.
fn copy_tree(
    from: &Path,
    to: &Path,
    label: &str,
    record: &mut ArchiveRecord,
) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    for entry in walkdir::WalkDir::new(from).follow_links(false).min_depth(1) {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let relative = entry.path().strip_prefix(from).unwrap_or(entry.path());
        let target = to.join(relative);
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&target)
                .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
        } else if kind.is_file() {
            record.bytes += copy_verified(entry.path(), &target)?;
            record.files += 1;
        } else {
            record
                .not_copied
                .push(format!("{label}/{}", relative.display()));
        }
    }
    Ok(())
}

/// Copies one regular file (never through a link, never over an existing file), syncs
/// it, reads it back and compares its sha256 with the source's. Returns its size.
fn copy_verified(from: &Path, to: &Path) -> Result<u64, String> {
    let mut source = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(from)
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = source
            .read(&mut buffer)
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        target
            .write_all(&buffer[..n])
            .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        size += n as u64;
    }
    target
        .sync_all()
        .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    let written = sha256_of(to).map_err(|e| format!("cannot read back {}: {e}", to.display()))?;
    if written != hasher.finalize().as_slice() {
        return Err(format!(
            "{} differs from {} after the copy",
            to.display(),
            from.display()
        ));
    }
    Ok(size)
}

fn sha256_of(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().to_vec())
}

/// Removes the managed output folders `paths` of `run_dir` (a real folder only, never
/// through a link: `remove_dir_all` does not follow the links inside). Returns the ones
/// removed and the problems.
pub(crate) fn clean(run_dir: &Path, paths: &[String]) -> (Vec<String>, Vec<String>) {
    let mut removed = Vec::new();
    let mut problems = Vec::new();
    for relative in paths {
        let path = run_dir.join(relative);
        // Every component under the run folder must be a real folder, so a link
        // planted on the way cannot point the removal elsewhere.
        let mut walked = run_dir.to_path_buf();
        let mut through_link = false;
        for part in Path::new(relative).components() {
            walked.push(part);
            if walked.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                through_link = true;
                break;
            }
        }
        if through_link {
            problems.push(format!(
                "{} (or a folder above it) is not a real folder; not removed",
                path.display()
            ));
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(relative.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("cannot remove {}: {e}", path.display())),
        }
    }
    (removed, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(label: &str, path: &str) -> OutputFolder {
        OutputFolder {
            label: label.into(),
            path: path.into(),
        }
    }

    #[test]
    fn include_globs_match_task_slash_channel_within_parts() {
        let folders = [
            folder("a/out", "a/out"),
            folder("a/logs", "a/logs"),
            folder("b/out", "b/out"),
        ];
        let pick = |include: &[&str]| -> Vec<String> {
            let include: Vec<String> = include.iter().map(|s| s.to_string()).collect();
            selected(&include, &folders)
                .unwrap()
                .into_iter()
                .map(|f| f.label.clone())
                .collect()
        };
        assert_eq!(pick(&[]), ["a/out", "a/logs", "b/out"]);
        assert_eq!(pick(&["*/out"]), ["a/out", "b/out"]);
        assert_eq!(pick(&["a/*"]), ["a/out", "a/logs"]);
        assert!(pick(&["*"]).is_empty(), "`*` does not cross the `/`");
        assert!(compile(&["a/[".to_string()]).is_err());
    }

    #[test]
    fn archive_copies_verifies_never_overwrites_and_skips_links() {
        let run = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(run.path().join("a/out/sub")).unwrap();
        std::fs::write(run.path().join("a/out/sub/x.txt"), "x").unwrap();
        std::fs::write(run.path().join("a/out/y.txt"), "yy").unwrap();
        let outside = target.path().join("outside-secret");
        std::fs::write(&outside, "secret").unwrap();
        std::os::unix::fs::symlink(&outside, run.path().join("a/out/link")).unwrap();
        let planned = PlannedArchive {
            path: target.path().join("archive"),
            include: vec![],
        };
        let folders = [folder("a/out", "a/out"), folder("b/out", "b/out")];
        let record = archive(run.path(), "pipeline-run-x", &planned, &folders);
        assert_eq!(record.status, "archived", "{record:?}");
        assert_eq!((record.files, record.bytes), (2, 3));
        assert_eq!(record.folders, ["a/out"], "b made no output");
        assert_eq!(record.not_copied, ["a/out/link"]);
        let copied = target.path().join("archive/pipeline-run-x/a/out");
        assert_eq!(
            std::fs::read_to_string(copied.join("sub/x.txt")).unwrap(),
            "x"
        );
        assert!(copied.join("link").symlink_metadata().is_err());
        // A second archive of the same name overwrites nothing.
        std::fs::write(run.path().join("a/out/y.txt"), "changed").unwrap();
        let again = archive(run.path(), "pipeline-run-x", &planned, &folders);
        assert_eq!(again.status, "failed");
        assert!(again.message.unwrap().contains("already exists"));
        assert_eq!(std::fs::read_to_string(copied.join("y.txt")).unwrap(), "yy");
    }

    #[test]
    fn clean_removes_real_folders_and_never_goes_through_a_link() {
        let run = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(run.path().join("a/out")).unwrap();
        std::fs::write(run.path().join("a/out/f"), "f").unwrap();
        std::fs::write(elsewhere.path().join("keep"), "keep").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), run.path().join("b")).unwrap();
        let (removed, problems) = clean(run.path(), &["a/out".to_string(), "b/out".to_string()]);
        assert_eq!(removed, ["a/out"]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(!run.path().join("a/out").exists());
        assert!(elsewhere.path().join("keep").exists());
    }
}
