//! Run folders and their `record.json` (DESIGN.md, decisions 1 and 9).
//!
//! Every run gets a folder `<runs_dir>/task_run-<id>/`. The id starts with the creation
//! time, so sorting folder names sorts runs by age, and ends with random characters, so
//! two tapir processes starting in the same millisecond still get different folders.
//!
//! The record is versioned JSON and is always replaced atomically: it is written to a
//! temporary file in the same folder, synced, renamed over `record.json`, and then the
//! folder itself is synced. A reader therefore sees either the old record or the new one,
//! never a half-written file, even if tapir or the machine dies mid-write. A writer never
//! replaces a record whose `format_version` is newer than its own, so an old tapir cannot
//! destroy fields it does not know about.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Every run folder's name is this prefix followed by the run id.
pub(crate) const RUN_DIR_PREFIX: &str = "task_run-";

/// Every pipeline run folder's name is this prefix followed by the run id (same shape as
/// task run ids).
pub(crate) const PIPELINE_RUN_DIR_PREFIX: &str = "pipeline-run-";

/// The folder of a pipeline run that holds the derived task files and the task runs.
pub(crate) const PIPELINE_RUNS_SUBDIR: &str = "runs";

/// The name of the run record inside a run folder.
pub(crate) const RECORD_FILE: &str = "record.json";

/// Forces the id returned by [`new_run_id`], so snapshot tests get stable folder names.
pub(crate) const RUN_ID_OVERRIDE_ENV: &str = "TAPIR_TEST_RUN_ID";

/// Crockford's base32 alphabet in lower case. Its characters are in ASCII order, so the
/// encoded strings sort exactly like the numbers they encode.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// 13 base32 characters hold 65 bits: any `u64` millisecond count fits.
const TIME_CHARS: usize = 13;
/// 8 base32 characters = 40 random bits after the time.
const RANDOM_CHARS: usize = 8;
const RANDOM_BITS: u32 = 5 * RANDOM_CHARS as u32;
const RANDOM_LIMIT: u64 = 1 << RANDOM_BITS;

/// How many candidates an "ambiguous id" error lists.
const MAX_CANDIDATES_SHOWN: usize = 5;

/// The last (time, random) pair handed out by this process. Ids made within the same
/// millisecond reuse the time and count the random part up, so ids made one after the
/// other by one process always sort in creation order (like ULID's monotonic mode).
static LAST_ID: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// A failure to find, read or write a run record, with an optional hint for the user.
#[derive(Debug)]
pub(crate) struct RecordError {
    /// What went wrong, naming the file or folder involved.
    pub message: String,
    /// What the user can do about it, when there is something to suggest.
    pub fix: Option<String>,
}

impl RecordError {
    /// An error without a suggested fix.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fix: None,
        }
    }

    /// Adds what the user can do about the error.
    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub(crate) fn io(action: &str, path: &Path, err: &io::Error) -> Self {
        Self::new(format!("could not {action} {}: {err}", path.display()))
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RecordError {}

/// A new run id: 13 characters of time (Unix milliseconds) and 8 random characters, all
/// lower-case Crockford base32, e.g. `01jd2k5q8r3vx` + `7hm2p9ta`.
///
/// Ids sort by creation time as plain strings. Within one process they are strictly
/// increasing; across processes they are unique with overwhelming probability (40 random
/// bits per millisecond), and [`create_run_dir`] refuses an existing folder anyway.
///
/// If `TAPIR_TEST_RUN_ID` is set to a non-empty value made only of ASCII letters, digits,
/// `-`, `_` and `.` (not starting with `.`), that value is returned instead.
pub(crate) fn new_run_id() -> String {
    if let Some(id) = std::env::var_os(RUN_ID_OVERRIDE_ENV).and_then(valid_override) {
        return id;
    }
    generate_run_id()
}

/// Accepts an override only if it is a safe single folder-name component.
fn valid_override(value: std::ffi::OsString) -> Option<String> {
    let value = value.into_string().ok()?;
    is_valid_run_id(&value).then_some(value)
}

/// Whether `id` can be a run id: a safe single folder-name component.
pub(crate) fn is_valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A new run id, never the test override: for the runs a process assigns to its
/// children (each needs its own).
pub(crate) fn fresh_run_id() -> String {
    generate_run_id()
}

fn generate_run_id() -> String {
    let now = unix_millis();
    let (millis, random) = {
        let mut last = LAST_ID.lock().unwrap_or_else(PoisonError::into_inner);
        let (last_millis, last_random) = *last;
        // A clock that steps back is treated like "same millisecond" so ids keep
        // increasing within this process.
        let next = if now > last_millis {
            (now, random_bits())
        } else if last_random + 1 < RANDOM_LIMIT {
            (last_millis, last_random + 1)
        } else {
            (last_millis + 1, random_bits())
        };
        *last = next;
        next
    };
    let mut id = String::with_capacity(TIME_CHARS + RANDOM_CHARS);
    push_base32(&mut id, millis, TIME_CHARS);
    push_base32(&mut id, random, RANDOM_CHARS);
    id
}

/// Appends the lowest `5 * chars` bits of `value`, most significant first.
fn push_base32(out: &mut String, value: u64, chars: usize) {
    for i in (0..chars).rev() {
        let shift = 5 * i;
        let digit = if shift >= 64 {
            0
        } else {
            (value >> shift) & 31
        };
        // `digit` is masked to 0..=31, so the index is always in range.
        out.push(char::from(CROCKFORD[digit as usize]));
    }
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// 40 random bits from the kernel; if /dev/urandom cannot be read (odd sandboxes), a hash
/// of time, pid and a counter under std's randomly seeded `RandomState` is good enough
/// for folder names, which are created exclusively anyway.
fn random_bits() -> u64 {
    let mut bytes = [0u8; 8];
    let from_kernel = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes[..5]))
        .is_ok();
    let value = if from_kernel {
        u64::from_le_bytes(bytes)
    } else {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.finish()
    };
    value & (RANDOM_LIMIT - 1)
}

/// Creates `runs_dir` (with parents) if needed, then `runs_dir/task_run-<id>/`, which must
/// not exist yet: two runs never share a folder.
pub(crate) fn create_run_dir(runs_dir: &Path, id: &str) -> io::Result<PathBuf> {
    if id.is_empty() || id.starts_with('.') || id.contains(['/', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid run id {id:?}: it must be a plain folder-name part"),
        ));
    }
    fs::create_dir_all(runs_dir).map_err(|e| with_path(e, runs_dir))?;
    let dir = runs_dir.join(format!("{RUN_DIR_PREFIX}{id}"));
    fs::create_dir(&dir).map_err(|e| with_path(e, &dir))?;
    Ok(dir)
}

/// The one rule for every file tapir writes in a run folder (records, logs, the index,
/// a pipeline's derived task files and attempt logs, the supervisor's log): readable and
/// writable by its owner only, whatever the umask, since any of them can hold a secret (a
/// task prints its token, a derived task file carries the task's `env`). Never opened
/// through a symbolic link: a link planted in a run folder cannot redirect a write.
pub(crate) const RUN_FILE_MODE: u32 = 0o600;

/// Options that open a file in a run folder by [`RUN_FILE_MODE`]'s rule; the caller adds
/// how (`create_new`, `append`, `truncate`…).
pub(crate) fn run_file_options() -> fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = fs::OpenOptions::new();
    options
        .mode(RUN_FILE_MODE)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
    options
}

/// Writes a whole file in a run folder (replacing one that is there) by the run folder's
/// rule. A file left by an older tapir with a wider mode is narrowed too: `mode` only
/// applies when a file is created.
pub(crate) fn write_run_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = run_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| with_path(e, path))?;
    file.set_permissions(fs::Permissions::from_mode(RUN_FILE_MODE))
        .and_then(|()| file.write_all(bytes))
        .map_err(|e| with_path(e, path))
}

/// Keeps every run folder out of `git status` when the runs folder is a repository (the
/// default runs folder is the current one, often a container's repository). `*` also
/// covers a pipeline run's managed channel folders.
pub(crate) const GITIGNORE_FILE: &str = ".gitignore";

pub(crate) fn ignore_in_git(run_dir: &Path) -> io::Result<()> {
    write_run_file(
        &run_dir.join(GITIGNORE_FILE),
        b"# written by tapir: a run folder is not part of the repository\n*\n",
    )
}

/// Space set aside when a run starts (`.tapir-reserve`, [`RESERVE_BYTES`]), so that the
/// run's final record can still be written when the task fills the disk: a record write
/// that fails for lack of space frees it and tries again.
pub(crate) const RESERVE_FILE: &str = ".tapir-reserve";
/// Far more than a record needs (tens of KiB) unless it lists thousands of output files.
const RESERVE_BYTES: i64 = 256 * 1024;

/// Sets the space aside (allocated, not a sparse file, so it really is taken from the
/// file system). Fails like any write when the disk is already full.
pub(crate) fn reserve_space(run_dir: &Path) -> io::Result<()> {
    let path = run_dir.join(RESERVE_FILE);
    let file = run_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| with_path(e, &path))?;
    nix::fcntl::posix_fallocate(&file, 0, RESERVE_BYTES).map_err(|e| {
        let _ = fs::remove_file(&path);
        with_path(io::Error::from(e), &path)
    })
}

/// Gives the reserved space back (at the end of a run, or to write a record on a full
/// disk). Returns whether there was any.
pub(crate) fn release_space(run_dir: &Path) -> bool {
    fs::remove_file(run_dir.join(RESERVE_FILE)).is_ok()
}

/// Removes a run folder this tapir just created and that holds only what it wrote so
/// far: a run refused before it started leaves no folder behind.
pub(crate) fn discard_new_run_dir(run_dir: &Path) {
    for name in [GITIGNORE_FILE, RESERVE_FILE, RECORD_FILE] {
        let _ = fs::remove_file(run_dir.join(name));
    }
    let _ = fs::remove_dir(run_dir);
}

fn with_path(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

/// Atomically replaces `run_dir/record.json` with `record`, pretty-printed.
///
/// `record` must carry an integer `format_version`. If the existing record has a greater
/// one, nothing is written and an error explains why. An existing record that is not
/// valid JSON is replaced. The version check and the rename are not one atomic step:
/// only one process (the one that ran the task) is expected to write a run's record.
pub(crate) fn write_record_atomic(run_dir: &Path, record: &Value) -> Result<(), RecordError> {
    match write_record_once(run_dir, record) {
        // The disk is full: the space set aside when the run started is for this moment.
        Err((_, Some(io::ErrorKind::StorageFull))) if release_space(run_dir) => {
            write_record_once(run_dir, record).map_err(|(again, _)| again)
        }
        result => result.map_err(|(e, _)| e),
    }
}

/// One attempt of [`write_record_atomic`]; the error carries the I/O error kind, if any.
fn write_record_once(
    run_dir: &Path,
    record: &Value,
) -> Result<(), (RecordError, Option<io::ErrorKind>)> {
    let io_error = |action: &str, path: &Path, e: &io::Error| {
        (RecordError::io(action, path, e), Some(e.kind()))
    };
    let path = run_dir.join(RECORD_FILE);
    let Some(version) = record.get("format_version").and_then(Value::as_u64) else {
        return Err((
            RecordError::new(format!(
                "refusing to write {}: the record has no integer `format_version`",
                path.display()
            )),
            None,
        ));
    };
    if let Some(existing) = existing_format_version(&path).map_err(|e| (e, None))?
        && existing > version
    {
        return Err((
            RecordError::new(format!(
                "refusing to overwrite {}: it has format_version {existing}, newer than the \
                 {version} this tapir writes",
                path.display()
            ))
            .with_fix("use the newer tapir that wrote this run"),
            None,
        ));
    }

    let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| {
        let message = format!("could not serialize {}: {e}", path.display());
        (RecordError::new(message), None)
    })?;
    bytes.push(b'\n');

    // The temporary file must be in the same folder: rename is only atomic within one
    // file system. If anything below fails, dropping `tmp` removes it.
    let mut tmp = tempfile::Builder::new()
        .prefix(".record.json.")
        .suffix(".tmp")
        .tempfile_in(run_dir)
        // tempfile's error already names the temporary file it tried to create.
        .map_err(|e| io_error("write", &path, &e))?;
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io_error("write", tmp.path(), &e))?;
    tmp.persist(&path)
        .map_err(|e| io_error("replace", &path, &e.error))?;
    // The rename lives in the folder's metadata; without this sync a crash could bring
    // back the old record (or none) although we reported success.
    File::open(run_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_error("sync the folder", run_dir, &e))?;
    Ok(())
}

/// The `format_version` of the record at `path`; `None` if there is no record, it is not
/// JSON, or it has no integer version (such a file can safely be replaced).
fn existing_format_version(path: &Path) -> Result<Option<u64>, RecordError> {
    let text = match read_run_file(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // We could not check the version, so we must not overwrite the file.
        Err(e) => return Err(RecordError::io("read", path, &e)),
    };
    Ok(serde_json::from_slice::<Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version").and_then(Value::as_u64)))
}

/// Reads `run_dir/record.json`. The error names the file, says whether it is missing,
/// empty, truncated or corrupt, and gives the line and column of a JSON error.
pub(crate) fn read_record(run_dir: &Path) -> Result<Value, RecordError> {
    let path = run_dir.join(RECORD_FILE);
    let bytes = read_replaced_run_file(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            RecordError::new(format!("{} does not exist", path.display())).with_fix(
                "this folder is not a tapir run, or the run was interrupted before its \
                 record was written",
            )
        } else {
            RecordError::io("read", &path, &e)
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RecordError::new(format!("{} is empty", path.display()))
            .with_fix("the run was interrupted before its record was written"));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| json_error(&path, &e))?;
    if !value.is_object() {
        return Err(RecordError::new(format!(
            "{} is not a run record: expected a JSON object",
            path.display()
        )));
    }
    Ok(value)
}

/// Reads a whole file of a run folder, never through a symbolic link (a link would show
/// another file as the run's) and only a plain file: the error says which it is instead.
pub(crate) fn read_run_file(path: &Path) -> io::Result<Vec<u8>> {
    let (file, len) = open_plain_run_file(path)?;
    // One byte more than the length, so that the read which finds the end needs no room.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    read_open_run_file(&file, &mut bytes)?;
    Ok(bytes)
}

/// Reads a file of a run folder that is only ever replaced whole (by rename, as every
/// record is: [`write_record_atomic`]), by the rules of [`read_run_file`]. Such a file never
/// grows once opened, so its length when opened is all there is: one read, where reading
/// to the end takes a second to find it (10,000 system calls of `ps` over 10,000 runs).
pub(crate) fn read_replaced_run_file(path: &Path) -> io::Result<Vec<u8>> {
    let (file, len) = open_plain_run_file(path)?;
    let len = usize::try_from(len).unwrap_or(0);
    let mut bytes = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match Read::read(&mut &file, &mut bytes[filled..]) {
            // Shorter than it said (a file written in place by something else): what is
            // there, as reading to the end would give.
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// Reads `file` to its end into `bytes`. Not by `File::read_to_end`, which first asks the
/// file for its length and position again (two system calls more per record: a fifth of
/// those of `ps` over 10,000 runs); a file that grew since is still read to its new end.
fn read_open_run_file(file: &File, bytes: &mut Vec<u8>) -> io::Result<()> {
    Read::take(file, u64::MAX).read_to_end(bytes).map(drop)
}

/// Opens a file of a run folder for reading, by the rules of [`read_run_file`]. The run
/// folder (the file's own folder) must not be a link either: `O_NOFOLLOW` only guards the
/// last part of the path.
pub(crate) fn open_run_file(path: &Path) -> io::Result<File> {
    open_plain_run_file(path).map(|(file, _)| file)
}

/// [`open_run_file`], and the file's length when it was opened.
fn open_plain_run_file(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let run_dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if run_dir
        .and_then(|dir| fs::symlink_metadata(dir).ok())
        .is_some_and(|m| m.file_type().is_symlink())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "its run folder is a symbolic link, and tapir reads no run file through a link",
        ));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => io::Error::new(
                io::ErrorKind::InvalidData,
                "it is a symbolic link, and tapir reads no run file through a link",
            ),
            _ => e,
        })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not a plain file (a folder?)",
        ));
    }
    Ok((file, metadata.len()))
}

fn json_error(path: &Path, err: &serde_json::Error) -> RecordError {
    // serde_json appends " at line L column C" to its message; we say it our way.
    let full = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let detail = full.strip_suffix(&position).unwrap_or(&full);
    let what = if err.is_eof() {
        "is truncated"
    } else {
        "is not valid JSON"
    };
    RecordError::new(format!(
        "{} {what}: {detail} (line {}, column {})",
        path.display(),
        err.line(),
        err.column()
    ))
    .with_fix(
        "the record is damaged (edited by hand?); the logs and outputs next to it are \
         separate files and can still be read",
    )
}

/// Finds a run folder (a task run or a pipeline run) from what the user typed, trying in
/// order:
/// 1. a path (absolute or relative to the current folder) to a folder with a record.json;
/// 2. a folder name `task_run-<id>` or `pipeline-run-<id>` inside `runs_dir`;
/// 3. an id, or a unique prefix of one, with or without the `task_run-` or
///    `pipeline-run-` prefix (which then limits the search to that kind), among the runs
///    of `runs_dir` (case-insensitive, since ids are lower case);
/// 4. only when nothing in step 3 matches: the same among the task runs inside pipeline
///    runs (`pipeline-run-<id>/runs/task_run-<id>`), so an id that `ps --all` shows works.
///
/// A query containing `/` is only ever taken as a path.
pub(crate) fn find_run(runs_dir: &Path, query: &str) -> Result<PathBuf, RecordError> {
    if query.is_empty() {
        return Err(RecordError::new("no run given").with_fix("list runs with `tapir ps`"));
    }
    let as_path = Path::new(query);
    if as_path.join(RECORD_FILE).is_file() {
        return Ok(std::path::absolute(as_path).unwrap_or_else(|_| as_path.to_path_buf()));
    }
    if query.contains('/') || query == "." || query == ".." {
        let message = if as_path.is_dir() {
            format!("{query} is not a run folder: it has no {RECORD_FILE}")
        } else {
            format!("{query} does not exist")
        };
        return Err(RecordError::new(message).with_fix(format!(
            "give a run folder ({RUN_DIR_PREFIX}<id> or {PIPELINE_RUN_DIR_PREFIX}<id>) or an \
             id prefix; list runs with `tapir ps`"
        )));
    }
    if query.starts_with(RUN_DIR_PREFIX) || query.starts_with(PIPELINE_RUN_DIR_PREFIX) {
        let named = runs_dir.join(query);
        if named.is_dir() {
            return Ok(named);
        }
    }

    let (wanted, kinds) = if let Some(rest) = query.strip_prefix(RUN_DIR_PREFIX) {
        (rest, &[RUN_DIR_PREFIX][..])
    } else if let Some(rest) = query.strip_prefix(PIPELINE_RUN_DIR_PREFIX) {
        (rest, &[PIPELINE_RUN_DIR_PREFIX][..])
    } else {
        (query, &[RUN_DIR_PREFIX, PIPELINE_RUN_DIR_PREFIX][..])
    };
    let wanted = wanted.to_ascii_lowercase();
    if wanted.is_empty() {
        return Err(RecordError::new(format!("{query:?} names no run"))
            .with_fix("list runs with `tapir ps`"));
    }
    let runs = match list_prefixed(runs_dir, kinds) {
        Ok(runs) => runs,
        Err(e) => return Err(RecordError::io("list the runs in", runs_dir, &e)),
    };
    if runs.is_empty() && !runs_dir.is_dir() {
        return Err(RecordError::new(format!(
            "no run matches {query:?}: there are no runs yet ({} does not exist)",
            runs_dir.display()
        ))
        .with_fix("start one with `tapir run`, or point tapir at the folder that holds them"));
    }

    let mut matches = match matching(runs, &wanted) {
        Ok(found) => return Ok(found),
        Err(matches) => matches,
    };
    if matches.is_empty() && kinds.contains(&RUN_DIR_PREFIX) {
        let nested: Vec<PathBuf> = list_prefixed(runs_dir, &[PIPELINE_RUN_DIR_PREFIX])
            .unwrap_or_default()
            .iter()
            .flat_map(|pipeline| {
                list_runs(&pipeline.join(PIPELINE_RUNS_SUBDIR)).unwrap_or_default()
            })
            .collect();
        matches = match matching(nested, &wanted) {
            Ok(found) => return Ok(found),
            Err(matches) => matches,
        };
    }
    match matches.len() {
        0 => Err(RecordError::new(format!(
            "no run matches {query:?} in {}",
            runs_dir.display()
        ))
        .with_fix("list runs with `tapir ps`")),
        1 => Ok(matches.swap_remove(0)),
        n => {
            let mut names: Vec<String> = matches
                .iter()
                .take(MAX_CANDIDATES_SHOWN)
                .map(|p| p.strip_prefix(runs_dir).unwrap_or(p).display().to_string())
                .collect();
            if n > MAX_CANDIDATES_SHOWN {
                names.push(format!("and {} more", n - MAX_CANDIDATES_SHOWN));
            }
            Err(RecordError::new(format!(
                "{query:?} matches {n} runs in {}: {}",
                runs_dir.display(),
                names.join(", ")
            ))
            .with_fix("type more characters of the id"))
        }
    }
}

/// The run among `runs` whose id is `wanted`, or else every run whose id starts with it.
fn matching(runs: Vec<PathBuf>, wanted: &str) -> Result<PathBuf, Vec<PathBuf>> {
    let mut matches = Vec::new();
    for run in runs {
        let Some(id) = any_run_id_of(&run) else {
            continue;
        };
        if id == wanted {
            return Ok(run);
        }
        if id.starts_with(wanted) {
            matches.push(run);
        }
    }
    Err(matches)
}

/// The id part of a run folder's name, if the name is `task_run-<id>`.
pub(crate) fn run_id_of(run_dir: &Path) -> Option<&str> {
    id_after(run_dir, RUN_DIR_PREFIX)
}

/// The id part of a run folder's name, for a task run or a pipeline run.
pub(crate) fn any_run_id_of(run_dir: &Path) -> Option<&str> {
    run_id_of(run_dir).or_else(|| id_after(run_dir, PIPELINE_RUN_DIR_PREFIX))
}

/// Is this folder named like a pipeline run (`pipeline-run-<id>`)?
pub(crate) fn is_pipeline_run_dir(dir: &Path) -> bool {
    id_after(dir, PIPELINE_RUN_DIR_PREFIX).is_some()
}

fn id_after<'a>(dir: &'a Path, prefix: &str) -> Option<&'a str> {
    dir.file_name()?
        .to_str()?
        .strip_prefix(prefix)
        .filter(|id| !id.is_empty())
}

/// The `task_run-*` folders in `runs_dir`, newest first (ids sort by creation time).
/// A `runs_dir` that does not exist simply has no runs. Other files and folders, and
/// names that are not UTF-8, are ignored.
pub(crate) fn list_runs(runs_dir: &Path) -> io::Result<Vec<PathBuf>> {
    list_prefixed(runs_dir, &[RUN_DIR_PREFIX])
}

/// The task run and pipeline run folders in `runs_dir` (not the task runs inside pipeline
/// runs), newest first.
pub(crate) fn list_all_runs(runs_dir: &Path) -> io::Result<Vec<PathBuf>> {
    list_prefixed(runs_dir, &[RUN_DIR_PREFIX, PIPELINE_RUN_DIR_PREFIX])
}

fn list_prefixed(runs_dir: &Path, prefixes: &[&str]) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(runs_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(with_path(e, runs_dir)),
    };
    let mut runs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| with_path(e, runs_dir))?;
        let path = entry.path();
        let Some(id) = prefixes.iter().find_map(|p| id_after(&path, p)) else {
            continue;
        };
        let id = id.to_string();
        // The folder says each entry's type (no stat per run, which over 10,000 runs
        // costs `ps` a tenth of its time); only a link is followed to see what it is.
        let is_dir = match entry.file_type() {
            Ok(kind) if kind.is_symlink() => path.is_dir(),
            Ok(kind) => kind.is_dir(),
            Err(_) => path.is_dir(),
        };
        if is_dir {
            runs.push((id, path));
        }
    }
    // Ids sort by creation time, whatever the folder's prefix. Each id is taken from its
    // path once, not in every comparison (a path's name is parsed anew each time).
    runs.sort_unstable_by(|(a, _), (b, _)| b.cmp(a));
    Ok(runs.into_iter().map(|(_, path)| path).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;
    use std::time::Duration;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn names_in(dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn make_run(runs_dir: &Path, id: &str) -> io::Result<PathBuf> {
        let dir = create_run_dir(runs_dir, id)?;
        fs::write(dir.join(RECORD_FILE), "{\"format_version\": 1}\n")?;
        Ok(dir)
    }

    #[test]
    fn run_id_is_lower_case_crockford_of_fixed_length() {
        let id = new_run_id();
        assert_eq!(id.len(), TIME_CHARS + RANDOM_CHARS, "{id}");
        assert!(id.bytes().all(|b| CROCKFORD.contains(&b)), "{id}");
    }

    #[test]
    fn run_id_starts_with_the_current_time() {
        let before = unix_millis();
        let id = generate_run_id();
        let mut expected = String::new();
        push_base32(&mut expected, before, TIME_CHARS);
        // The same millisecond or a later one (the process may have made ids before).
        assert!(id[..TIME_CHARS] >= expected[..], "{id} vs {expected}");
    }

    #[test]
    fn base32_sorts_like_the_numbers() {
        let values = [
            0u64,
            1,
            31,
            32,
            1_000,
            1_700_000_000_000,
            u64::MAX - 1,
            u64::MAX,
        ];
        let encoded: Vec<String> = values
            .iter()
            .map(|&v| {
                let mut s = String::new();
                push_base32(&mut s, v, TIME_CHARS);
                s
            })
            .collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]), "{encoded:?}");
        assert_eq!(encoded[0], "0000000000000");
        assert_eq!(encoded[2], "000000000000z");
    }

    #[test]
    fn ids_made_2ms_apart_sort_in_order() {
        let first = generate_run_id();
        std::thread::sleep(Duration::from_millis(2));
        let second = generate_run_id();
        assert!(first < second, "{first} !< {second}");
        assert!(first[..TIME_CHARS] < second[..TIME_CHARS]);
    }

    #[test]
    fn a_thousand_ids_in_a_tight_loop_are_unique_and_increasing() {
        let ids: Vec<String> = (0..1000).map(|_| generate_run_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 1000);
    }

    #[test]
    fn ids_from_concurrent_threads_are_unique() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..500).map(|_| generate_run_id()).collect()))
            .collect();
        let mut all = HashSet::new();
        for handle in handles {
            let ids: Vec<String> = handle.join().unwrap_or_default();
            assert_eq!(ids.len(), 500);
            all.extend(ids);
        }
        assert_eq!(all.len(), 2000);
    }

    #[test]
    fn random_bits_stay_within_40_bits() {
        assert!((0..100).all(|_| random_bits() < RANDOM_LIMIT));
    }

    #[test]
    fn override_accepts_only_safe_folder_name_parts() {
        let ok = |s: &str| valid_override(s.into());
        assert_eq!(ok("snapshot-1").as_deref(), Some("snapshot-1"));
        assert_eq!(ok("a.b_C9").as_deref(), Some("a.b_C9"));
        assert_eq!(ok(""), None);
        assert_eq!(ok(".."), None);
        assert_eq!(ok("a/b"), None);
        assert_eq!(ok("a b"), None);
    }

    #[test]
    fn create_run_dir_makes_parents_and_refuses_an_existing_folder() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let runs = tmp.path().join("a/b/runs");
        let dir = create_run_dir(&runs, "abc")?;
        assert_eq!(dir, runs.join("task_run-abc"));
        assert!(dir.is_dir());
        let again = create_run_dir(&runs, "abc");
        assert!(matches!(again, Err(e) if e.kind() == io::ErrorKind::AlreadyExists));
        for bad in ["", "..", "x/y", ".hidden"] {
            let err = create_run_dir(&runs, bad).err();
            assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
        }
        Ok(())
    }

    #[test]
    fn run_files_are_private_whatever_the_umask_and_never_written_through_a_link() -> TestResult {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir()?;
        let mode =
            |p: &Path| -> io::Result<u32> { Ok(fs::metadata(p)?.permissions().mode() & 0o777) };
        let file = tmp.path().join("derived.task.json");
        // Left by an older tapir with the umask's mode: narrowed when written again.
        fs::write(&file, "old")?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644))?;
        write_run_file(&file, b"new")?;
        assert_eq!(mode(&file)?, 0o600);
        assert_eq!(fs::read_to_string(&file)?, "new");
        write_record_atomic(tmp.path(), &json!({"format_version": 1}))?;
        assert_eq!(mode(&tmp.path().join(RECORD_FILE))?, 0o600);

        let outside = tmp.path().join("outside");
        fs::write(&outside, "keep")?;
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&outside, &link)?;
        assert!(write_run_file(&link, b"x").is_err());
        assert_eq!(fs::read_to_string(&outside)?, "keep");
        let err = read_run_file(&link).err().ok_or("read through a link")?;
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = read_run_file(tmp.path()).err().ok_or("read a folder")?;
        assert!(err.to_string().contains("not a plain file"), "{err}");
        Ok(())
    }

    #[test]
    fn reserved_space_is_allocated_and_given_back_once() -> TestResult {
        let tmp = tempfile::tempdir()?;
        reserve_space(tmp.path())?;
        let reserve = tmp.path().join(RESERVE_FILE);
        let meta = fs::metadata(&reserve)?;
        assert_eq!(meta.len(), RESERVE_BYTES as u64);
        // Allocated blocks (512 bytes each), not a sparse file.
        assert!(std::os::unix::fs::MetadataExt::blocks(&meta) * 512 >= RESERVE_BYTES as u64);
        assert!(release_space(tmp.path()));
        assert!(!release_space(tmp.path()));
        assert!(!reserve.exists());
        Ok(())
    }

    #[test]
    fn record_round_trips_and_leaves_no_temporary_files() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let record = json!({"format_version": 1, "exit_code": 0, "nested": {"a": [1, 2]}});
        write_record_atomic(tmp.path(), &record)?;
        let updated = json!({"format_version": 1, "exit_code": 3});
        write_record_atomic(tmp.path(), &updated)?;
        assert_eq!(read_record(tmp.path())?, updated);
        assert_eq!(names_in(tmp.path())?, vec![RECORD_FILE.to_owned()]);
        let text = fs::read_to_string(tmp.path().join(RECORD_FILE))?;
        assert!(
            text.contains("\n  \"exit_code\": 3"),
            "pretty-printed: {text}"
        );
        assert!(text.ends_with("}\n"));
        Ok(())
    }

    #[test]
    fn a_newer_record_is_never_overwritten() -> TestResult {
        let tmp = tempfile::tempdir()?;
        write_record_atomic(tmp.path(), &json!({"format_version": 3, "from": "new"}))?;
        let err = write_record_atomic(tmp.path(), &json!({"format_version": 2}))
            .err()
            .ok_or("an older writer replaced a newer record")?;
        assert!(err.message.contains("format_version 3"), "{err}");
        assert!(err.fix.is_some());
        assert_eq!(read_record(tmp.path())?["from"], "new");
        assert_eq!(names_in(tmp.path())?, vec![RECORD_FILE.to_owned()]);
        // Same or newer versions may replace it.
        write_record_atomic(tmp.path(), &json!({"format_version": 3, "from": "same"}))?;
        write_record_atomic(tmp.path(), &json!({"format_version": 4, "from": "newer"}))?;
        assert_eq!(read_record(tmp.path())?["from"], "newer");
        Ok(())
    }

    #[test]
    fn a_record_without_format_version_is_refused() -> TestResult {
        let tmp = tempfile::tempdir()?;
        for bad in [
            json!({"exit_code": 0}),
            json!({"format_version": "1"}),
            json!([1]),
        ] {
            let err = write_record_atomic(tmp.path(), &bad)
                .err()
                .ok_or("accepted")?;
            assert!(err.message.contains("format_version"), "{err}");
        }
        assert!(names_in(tmp.path())?.is_empty());
        Ok(())
    }

    #[test]
    fn a_damaged_record_can_be_replaced() -> TestResult {
        let tmp = tempfile::tempdir()?;
        fs::write(
            tmp.path().join(RECORD_FILE),
            "{\"format_version\": 9, \"tru",
        )?;
        write_record_atomic(tmp.path(), &json!({"format_version": 1}))?;
        assert_eq!(read_record(tmp.path())?["format_version"], 1);
        Ok(())
    }

    #[test]
    fn writing_into_a_missing_folder_fails_cleanly() {
        let err = write_record_atomic(
            Path::new("/nonexistent/tapir"),
            &json!({"format_version": 1}),
        );
        let err = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/nonexistent/tapir"), "{err}");
    }

    #[test]
    fn read_record_explains_missing_empty_truncated_and_corrupt_files() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join(RECORD_FILE);
        let message = |dir: &Path| read_record(dir).err().map(|e| e.to_string());

        let missing = message(tmp.path()).ok_or("missing file accepted")?;
        assert!(missing.contains(&path.display().to_string()), "{missing}");
        assert!(
            missing.contains("does not exist") && missing.contains("fix:"),
            "{missing}"
        );

        fs::write(&path, "")?;
        let empty = message(tmp.path()).ok_or("empty file accepted")?;
        assert!(empty.contains("is empty"), "{empty}");

        fs::write(&path, "{\n  \"format_version\": 1,\n  \"argv\": [\"do")?;
        let truncated = message(tmp.path()).ok_or("truncated file accepted")?;
        assert!(
            truncated.contains(&path.display().to_string()),
            "{truncated}"
        );
        assert!(truncated.contains("is truncated"), "{truncated}");
        assert!(truncated.contains("line 3, column"), "{truncated}");

        fs::write(&path, "{\n  \"format_version\": 1,\n  oops\n}")?;
        let corrupt = message(tmp.path()).ok_or("corrupt file accepted")?;
        assert!(corrupt.contains("is not valid JSON"), "{corrupt}");
        assert!(corrupt.contains("line 3, column 3"), "{corrupt}");
        assert!(
            !corrupt.contains(" at line "),
            "position said twice: {corrupt}"
        );

        fs::write(&path, "[1, 2]")?;
        let not_object = message(tmp.path()).ok_or("array accepted")?;
        assert!(
            not_object.contains("expected a JSON object"),
            "{not_object}"
        );
        Ok(())
    }

    #[test]
    fn record_error_display_shows_the_fix_on_its_own_line() {
        let plain = RecordError::new("broken");
        assert_eq!(plain.to_string(), "broken");
        let with_fix = RecordError::new("broken").with_fix("mend it");
        assert_eq!(with_fix.to_string(), "broken\n  fix: mend it");
    }

    #[test]
    fn list_runs_is_newest_first_and_ignores_other_entries() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let runs = tmp.path();
        let ids: Vec<String> = (0..3).map(|_| generate_run_id()).collect();
        for id in &ids {
            create_run_dir(runs, id)?;
        }
        fs::create_dir(runs.join("other"))?;
        fs::create_dir(runs.join(RUN_DIR_PREFIX))?;
        fs::write(runs.join("task_run-file"), "not a folder")?;
        let listed = list_runs(runs)?;
        let expected: Vec<PathBuf> = ids
            .iter()
            .rev()
            .map(|id| runs.join(format!("{RUN_DIR_PREFIX}{id}")))
            .collect();
        assert_eq!(listed, expected);
        assert!(list_runs(&runs.join("missing"))?.is_empty());
        Ok(())
    }

    /// The listing reads each entry's type from the folder itself (no stat per run), but
    /// a link to a run folder is still listed as a run, as when every entry was stat'ed;
    /// a link to a file or to nothing is not.
    #[test]
    fn list_runs_takes_a_link_to_a_folder_and_no_other_link() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let runs = tmp.path().join("runs");
        let real = make_run(&runs, "01aaa0000000000000000")?;
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere)?;
        let linked = runs.join("task_run-01bbb0000000000000000");
        std::os::unix::fs::symlink(&elsewhere, &linked)?;
        std::os::unix::fs::symlink(
            tmp.path().join("missing"),
            runs.join("task_run-01ccc0000000000000000"),
        )?;
        fs::write(tmp.path().join("file"), "x")?;
        std::os::unix::fs::symlink(
            tmp.path().join("file"),
            runs.join("task_run-01ddd0000000000000000"),
        )?;
        assert_eq!(list_runs(&runs)?, vec![linked, real]);
        Ok(())
    }

    /// Reading sizes the buffer from the file's length; whatever the length, every byte
    /// comes back, also when the file grew after that length was taken.
    #[test]
    fn read_run_file_returns_every_byte_whatever_the_length() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let file = tmp.path().join("f");
        for len in [0, 1, 4095, 4096, 4097, 300_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            fs::write(&file, &bytes)?;
            assert_eq!(read_run_file(&file)?, bytes, "{len} bytes");
            assert_eq!(
                read_replaced_run_file(&file)?,
                bytes,
                "{len} bytes, one read"
            );
        }
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&file, &link)?;
        assert!(
            read_replaced_run_file(&link).is_err(),
            "never through a link"
        );
        // Grown between the open and the read: the reader follows to the new end.
        let opened = open_run_file(&file)?;
        fs::OpenOptions::new()
            .append(true)
            .open(&file)?
            .write_all(b"more")?;
        let mut bytes = Vec::new();
        read_open_run_file(&opened, &mut bytes)?;
        assert_eq!(bytes.len(), 300_004);
        assert!(bytes.ends_with(b"more"));
        Ok(())
    }

    #[test]
    fn find_run_by_path_name_and_unique_prefix() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let runs = tmp.path();
        let alpha = make_run(runs, "01abc0000000000000000")?;
        let beta = make_run(runs, "01abd0000000000000000")?;

        let by_path = find_run(Path::new("/unused"), &alpha.display().to_string())?;
        assert_eq!(by_path, alpha);
        assert_eq!(find_run(runs, "task_run-01abd0000000000000000")?, beta);
        assert_eq!(find_run(runs, "01abc")?, alpha);
        assert_eq!(find_run(runs, "01ABD")?, beta);
        assert_eq!(find_run(runs, "task_run-01abd")?, beta);
        assert_eq!(find_run(runs, "01abc0000000000000000")?, alpha);
        Ok(())
    }

    #[test]
    fn find_run_accepts_a_path_relative_to_the_current_folder() -> TestResult {
        // Tests run in the package root; a temporary folder there has a relative path.
        let here = tempfile::Builder::new()
            .prefix(".tapir-test-")
            .tempdir_in(".")?;
        let run = make_run(here.path(), "rel")?;
        let relative = Path::new(".")
            .join(here.path().file_name().ok_or("no name")?)
            .join("task_run-rel");
        let found = find_run(Path::new("/unused"), &relative.display().to_string())?;
        assert!(found.is_absolute(), "{}", found.display());
        assert_eq!(fs::canonicalize(found)?, fs::canonicalize(run)?);
        Ok(())
    }

    #[test]
    fn find_run_reports_ambiguous_prefixes_with_candidates() -> TestResult {
        let tmp = tempfile::tempdir()?;
        for i in 0..7 {
            make_run(tmp.path(), &format!("01aa{i}"))?;
        }
        let err = find_run(tmp.path(), "01a")
            .err()
            .ok_or("ambiguous prefix accepted")?;
        let text = err.to_string();
        assert!(text.contains("matches 7 runs"), "{text}");
        assert!(
            text.contains("task_run-01aa6, task_run-01aa5"),
            "newest first: {text}"
        );
        assert!(!text.contains("task_run-01aa1"), "at most 5 listed: {text}");
        assert!(text.contains("and 2 more"), "{text}");
        assert!(text.contains("fix: type more characters"), "{text}");
        Ok(())
    }

    #[test]
    fn find_run_reports_no_match_with_the_searched_folder() -> TestResult {
        let tmp = tempfile::tempdir()?;
        make_run(tmp.path(), "01abc")?;
        let err = find_run(tmp.path(), "zz")
            .err()
            .ok_or("bogus prefix accepted")?;
        let text = err.to_string();
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        assert!(text.contains("tapir ps"), "{text}");

        let missing = tmp.path().join("no-runs-here");
        let text = find_run(&missing, "01")
            .err()
            .ok_or("found in missing folder")?
            .to_string();
        assert!(text.contains("does not exist"), "{text}");

        let text = find_run(tmp.path(), "")
            .err()
            .ok_or("empty query accepted")?
            .to_string();
        assert!(text.contains("tapir ps"), "{text}");
        let text = find_run(tmp.path(), RUN_DIR_PREFIX)
            .err()
            .ok_or("bare prefix accepted")?;
        assert!(text.to_string().contains("names no run"), "{text}");
        Ok(())
    }

    #[test]
    fn find_run_rejects_paths_that_are_not_runs() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let plain = tmp.path().join("plain");
        fs::create_dir(&plain)?;
        let text = find_run(tmp.path(), &plain.display().to_string())
            .err()
            .ok_or("folder without record accepted")?
            .to_string();
        assert!(text.contains("has no record.json"), "{text}");
        let text = find_run(tmp.path(), "/no/such/run")
            .err()
            .ok_or("missing path accepted")?
            .to_string();
        assert!(text.contains("/no/such/run does not exist"), "{text}");
        Ok(())
    }

    #[test]
    fn find_run_finds_pipeline_runs_and_names_both_kinds_when_ambiguous() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let runs = tmp.path();
        let task = make_run(runs, "01abc0000000000000000")?;
        let pipeline = runs.join("pipeline-run-01abd0000000000000000");
        fs::create_dir(&pipeline)?;
        fs::write(pipeline.join(RECORD_FILE), "{\"format_version\": 1}\n")?;

        assert_eq!(
            find_run(runs, "pipeline-run-01abd0000000000000000")?,
            pipeline
        );
        assert_eq!(find_run(runs, "01abd")?, pipeline);
        assert_eq!(find_run(runs, "01ABD0000000000000000")?, pipeline);
        assert_eq!(
            find_run(runs, "pipeline-run-01ab")?,
            pipeline,
            "the prefix limits the kind"
        );
        assert_eq!(find_run(runs, "task_run-01ab")?, task);
        let text = find_run(runs, "01ab")
            .err()
            .ok_or("ambiguous prefix accepted")?
            .to_string();
        assert!(
            text.contains("matches 2 runs")
                && text
                    .contains("pipeline-run-01abd0000000000000000, task_run-01abc0000000000000000"),
            "newest first, with their kinds: {text}"
        );
        assert_eq!(
            list_all_runs(runs)?,
            vec![pipeline.clone(), task.clone()],
            "both kinds, newest first"
        );
        assert_eq!(list_runs(runs)?, vec![task], "task runs only");
        Ok(())
    }

    #[test]
    fn find_run_falls_back_to_the_task_runs_inside_pipeline_runs() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let runs = tmp.path();
        make_run(runs, "01top0000000000000000")?;
        let pipeline = runs.join("pipeline-run-01pip0000000000000000");
        let inside = pipeline.join("runs");
        fs::create_dir_all(&inside)?;
        let nested = make_run(&inside, "01nes0000000000000000")?;
        make_run(&inside, "01nez0000000000000000")?;
        assert_eq!(find_run(runs, "01nes")?, nested);
        assert_eq!(find_run(runs, "task_run-01nes0000000000000000")?, nested);
        let text = find_run(runs, "01ne").err().ok_or("ambiguous")?.to_string();
        assert!(
            text.contains("pipeline-run-01pip0000000000000000/runs/task_run-01nez"),
            "{text}"
        );
        // A top-level match wins: nested runs are only looked at when none matches.
        assert!(find_run(runs, "01").is_err(), "01top and the pipeline run");
        assert!(
            list_all_runs(runs)?
                .iter()
                .all(|d| d.parent() == Some(runs))
        );
        Ok(())
    }

    #[test]
    fn find_run_by_name_works_before_the_record_exists() -> TestResult {
        let tmp = tempfile::tempdir()?;
        let dir = create_run_dir(tmp.path(), "fresh")?;
        assert_eq!(find_run(tmp.path(), "task_run-fresh")?, dir);
        assert_eq!(find_run(tmp.path(), "fre")?, dir);
        Ok(())
    }
}
