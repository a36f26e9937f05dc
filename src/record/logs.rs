//! Capturing a run's stdout and stderr into its run folder while echoing them live,
//! and replaying them later, interleaved in arrival order.
//!
//! Memory use is fixed whatever the task prints: data moves through one 64 KiB buffer
//! per stream and is never collected.
//!
//! # Files in the run folder
//!
//! - `stdout.log`, `stderr.log`: the raw bytes exactly as the task wrote them.
//! - `output.idx`: an append-only text index with one line per chunk read from either
//!   stream, in the order the chunks arrived:
//!
//!   ```text
//!   <unix_time_ns> <o|e> <offset> <length>\n
//!   ```
//!
//!   `unix_time_ns` is when tapir read the chunk (decimal nanoseconds since the Unix
//!   epoch); `o` is stdout and `e` stderr; `offset` and `length` are decimal byte counts
//!   locating the chunk in that stream's log file. Per stream, chunks are contiguous:
//!   each one starts where the previous one ended. Example:
//!
//!   ```text
//!   1732190000123456789 o 0 13
//!   1732190000123501234 e 0 27
//!   1732190000200000000 o 13 4096
//!   ```
//!
//! # Ordering and crash safety
//!
//! A chunk is written to its log file, then its index line, and only then echoed to the
//! terminal, all without user-space buffering: whatever the user saw was already handed
//! to the kernel, so a killed tapir never showed output it did not keep. The two streams
//! share one lock, so the index order is the order in which chunks were read.
//!
//! A crash can still leave bytes in a log file that have no index line yet, or an
//! unfinished last index line. The reader copes: it replays every byte of each log file
//! exactly once — bytes the index skipped are shown with the next chunk of their stream,
//! bytes after the last indexed chunk at the end — and it ignores lines it cannot parse.
//! A chunk that reaches past the end of its file is shown as far as it exists.

use std::fmt::Debug;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

/// The task's standard output, byte for byte.
pub(crate) const STDOUT_FILE: &str = "stdout.log";
/// The task's standard error, byte for byte.
pub(crate) const STDERR_FILE: &str = "stderr.log";
/// The arrival-order index of both streams (format in the module documentation).
pub(crate) const INDEX_FILE: &str = "output.idx";

/// Size of the one buffer used to move data, both when capturing and when replaying.
const CHUNK_SIZE: usize = 64 * 1024;
/// A valid index line is at most 20 + 1 + 1 + 1 + 20 + 1 + 20 + 1 = 65 bytes; longer
/// lines are corrupt and skipped without being held in memory.
const MAX_INDEX_LINE: usize = 80;

/// One of the two output streams of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The log file of this stream inside a run folder.
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Stream::Stdout => STDOUT_FILE,
            Stream::Stderr => STDERR_FILE,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "o",
            Stream::Stderr => "e",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "o" => Some(Stream::Stdout),
            "e" => Some(Stream::Stderr),
            _ => None,
        }
    }

    /// Position in per-stream arrays (`[stdout, stderr]`).
    pub(crate) fn slot(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    pub(crate) const BOTH: [Stream; 2] = [Stream::Stdout, Stream::Stderr];
}

/// The capture side: the three files of one run, shared by the stdout and stderr reader
/// threads (wrap it in an `Arc`, or borrow it from a `std::thread::scope`).
#[derive(Debug)]
pub(crate) struct LogSink {
    dir: PathBuf,
    state: Mutex<SinkState>,
}

#[derive(Debug)]
struct SinkState {
    logs: [File; 2],
    /// How many bytes each log file holds; the offset of the next chunk.
    offsets: [u64; 2],
    index: File,
    /// Reused for every index line so it reaches the file in one write.
    line: Vec<u8>,
    /// Set by the first failed write. After it the files and the index may disagree,
    /// so nothing more is captured and every later append reports it.
    failure: Option<(io::ErrorKind, String)>,
}

impl LogSink {
    /// Creates `stdout.log`, `stderr.log` and `output.idx` in `run_dir`. They must not
    /// exist yet: a run's output is never overwritten or mixed with another's.
    pub(crate) fn create(run_dir: &Path) -> io::Result<Self> {
        let create = |name: &str| {
            let path = run_dir.join(name);
            super::store::run_file_options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| with_path(e, &path))
        };
        Ok(Self::from_files(
            run_dir,
            [create(STDOUT_FILE)?, create(STDERR_FILE)?],
            create(INDEX_FILE)?,
        ))
    }

    fn from_files(dir: &Path, logs: [File; 2], index: File) -> Self {
        Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(SinkState {
                logs,
                offsets: [0, 0],
                index,
                line: Vec::with_capacity(MAX_INDEX_LINE),
                failure: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        // Nothing panics while holding the lock; if something ever did, the files are
        // still the best record we have, so keep using them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one chunk to its stream's file and its line to the index.
    fn append(&self, stream: Stream, chunk: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        if let Some((kind, message)) = &state.failure {
            return Err(io::Error::new(
                *kind,
                format!("output capture stopped after an earlier error: {message}"),
            ));
        }
        let result = state.append(stream, chunk, &self.dir);
        if let Err(e) = &result {
            state.failure = Some((e.kind(), e.to_string()));
        }
        result
    }

    /// Puts the three files' contents on disk (`fdatasync`: their data and size; the
    /// times need not survive a crash). Call it once both pumps have returned.
    ///
    /// The folder entries naming them are not synced here: the final record, which is
    /// always written next (`execute::run_to_end`), syncs the run folder after its
    /// rename, and one folder sync makes every entry of the folder durable, the logs'
    /// (created earlier) with the record's. A crash before it leaves the earlier record
    /// (`running`, read as lost) in any case; after it, the record and whole logs. One
    /// folder sync per run less, which a pipeline pays per attempt.
    pub(crate) fn finish(&self) -> io::Result<()> {
        let state = self.lock();
        // The files are written without user-space buffers, so there is nothing to
        // flush; syncing puts them on disk.
        for (file, name) in [
            (&state.logs[0], STDOUT_FILE),
            (&state.logs[1], STDERR_FILE),
            (&state.index, INDEX_FILE),
        ] {
            file.sync_data()
                .map_err(|e| with_path(e, &self.dir.join(name)))?;
        }
        Ok(())
    }
}

impl SinkState {
    fn append(&mut self, stream: Stream, chunk: &[u8], dir: &Path) -> io::Result<()> {
        // Taken under the lock, so times in the index never go down (unless the clock does).
        let now = unix_nanos(SystemTime::now());
        let slot = stream.slot();
        let offset = self.offsets[slot];
        self.logs[slot]
            .write_all(chunk)
            .map_err(|e| with_path(e, &dir.join(stream.file_name())))?;
        let length = chunk.len() as u64;
        self.offsets[slot] = offset.saturating_add(length);
        self.line.clear();
        writeln!(self.line, "{now} {} {offset} {length}", stream.tag())?;
        self.index
            .write_all(&self.line)
            .map_err(|e| with_path(e, &dir.join(INDEX_FILE)))
    }
}

/// Copies `source` to `stream`'s log file until end of file, echoing each chunk to
/// `echo` (the terminal) after it has been captured. Returns the number of bytes
/// captured.
///
/// - If `echo` fails (closed terminal, broken pipe), echoing stops and capture goes on.
/// - If capturing fails (disk full), `on_capture_failure` is told at once (the caller
///   stops the task: a run whose output is not kept must not go on as if it were), and
///   the source is still drained and echoed to the end, so the task never blocks on a
///   full pipe and the user still sees its output; the capture error is returned at the
///   end.
/// - A read error from `source` is returned at once (everything read so far is kept).
pub(crate) fn pump(
    mut source: impl Read,
    stream: Stream,
    sink: &LogSink,
    mut echo: Option<&mut dyn Write>,
    on_capture_failure: impl FnOnce(&io::Error),
) -> io::Result<u64> {
    let mut on_capture_failure = Some(on_capture_failure);
    let mut buffer = vec![0u8; CHUNK_SIZE];
    let mut captured = 0u64;
    let mut capture_error: Option<io::Error> = None;
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buffer[..n];
        if capture_error.is_none() {
            match sink.append(stream, chunk) {
                Ok(()) => captured += n as u64,
                Err(e) => {
                    if let Some(tell) = on_capture_failure.take() {
                        tell(&e);
                    }
                    capture_error = Some(e);
                }
            }
        }
        if let Some(out) = echo.as_deref_mut()
            && out.write_all(chunk).and_then(|()| out.flush()).is_err()
        {
            echo = None;
        }
    }
    match capture_error {
        Some(e) => Err(e),
        None => Ok(captured),
    }
}

/// The replay side: reads a run's captured output back.
#[derive(Debug)]
pub(crate) struct LogReader {
    logs: [Option<File>; 2],
    index: Option<File>,
}

impl LogReader {
    /// Opens the logs of `run_dir`. A missing log file counts as empty; a missing index
    /// means the streams are replayed one after the other. The error is `NotFound` when
    /// none of the three files exists.
    pub(crate) fn open(run_dir: &Path) -> io::Result<Self> {
        let open = |name: &str| {
            let path = run_dir.join(name);
            match super::store::open_run_file(&path) {
                Ok(file) => Ok(Some(file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(with_path(e, &path)),
            }
        };
        let reader = Self {
            logs: [open(STDOUT_FILE)?, open(STDERR_FILE)?],
            index: open(INDEX_FILE)?,
        };
        if reader.index.is_none() && reader.logs.iter().all(Option::is_none) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: no captured output ({STDOUT_FILE}, {STDERR_FILE} and {INDEX_FILE} \
                     are missing)",
                    run_dir.display()
                ),
            ));
        }
        Ok(reader)
    }

    /// Calls `f(stream, unix_time_ns, bytes)` for the captured output in arrival order,
    /// or for one stream only if `filter` is given. Long chunks are passed in pieces of
    /// at most 64 KiB. An error from `f` (e.g. a closed pipe) stops the replay and is
    /// returned.
    ///
    /// Without an index, all of stdout is replayed and then all of stderr, stamped with
    /// their files' modification times.
    #[cfg(test)]
    pub(crate) fn for_each_chunk(
        &self,
        filter: Option<Stream>,
        mut f: impl FnMut(Stream, u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut cursor = Cursor::default();
        self.replay_indexed(&mut cursor, filter, &mut f)?;
        self.replay_rest(&mut cursor, filter, &mut f)
    }

    /// Replays the chunks whose index lines were completed since `cursor`, and moves the
    /// cursor past them. Call it again later to get what was captured since (that is
    /// how `logs --follow` works: the files are only ever appended to).
    pub(crate) fn replay_indexed(
        &self,
        cursor: &mut Cursor,
        filter: Option<Stream>,
        f: &mut impl FnMut(Stream, u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let wanted = |stream: Stream| filter.is_none_or(|only| only == stream);
        let mut buffer = vec![0u8; CHUNK_SIZE];
        let mut lines = BufReader::new(PositionalReader {
            file: index,
            position: cursor.index_position,
        });
        let mut line = Vec::with_capacity(MAX_INDEX_LINE);
        loop {
            let (kind, consumed) = read_index_line(&mut lines, &mut line)?;
            match kind {
                // An unfinished last line may still be being written: read it next time.
                IndexLine::End | IndexLine::Unfinished => break,
                IndexLine::Unusable => {
                    cursor.index_position += consumed;
                    continue;
                }
                IndexLine::Complete => cursor.index_position += consumed,
            }
            let Some(entry) = parse_index_line(&line) else {
                continue;
            };
            if !wanted(entry.stream) {
                continue;
            }
            let slot = entry.stream.slot();
            let end = entry.offset.saturating_add(entry.length);
            if end <= cursor.replayed[slot] {
                continue;
            }
            // Starting at `replayed` rather than `entry.offset` also shows bytes whose own
            // index line was lost, with the next chunk of their stream.
            let start = cursor.replayed[slot];
            let reached =
                self.replay(entry.stream, entry.unix_nanos, start, end, &mut buffer, f)?;
            cursor.replayed[slot] = reached;
        }
        Ok(())
    }

    /// Replays the bytes after the last indexed chunk of each stream (all of a file,
    /// without an index). Call it once the capture has ended.
    pub(crate) fn replay_rest(
        &self,
        cursor: &mut Cursor,
        filter: Option<Stream>,
        f: &mut impl FnMut(Stream, u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut buffer = vec![0u8; CHUNK_SIZE];
        for stream in Stream::BOTH
            .into_iter()
            .filter(|s| filter.is_none_or(|only| only == *s))
        {
            let Some(file) = &self.logs[stream.slot()] else {
                continue;
            };
            let metadata = file.metadata()?;
            let start = cursor.replayed[stream.slot()];
            if metadata.len() > start {
                let time = metadata.modified().map_or(0, unix_nanos);
                cursor.replayed[stream.slot()] =
                    self.replay(stream, time, start, metadata.len(), &mut buffer, f)?;
            }
        }
        Ok(())
    }

    /// Passes bytes `start..end` of `stream`'s file to `f`, stopping early at the end of
    /// the file. Returns how far it got.
    fn replay(
        &self,
        stream: Stream,
        time: u64,
        start: u64,
        end: u64,
        buffer: &mut [u8],
        f: &mut impl FnMut(Stream, u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let Some(file) = &self.logs[stream.slot()] else {
            return Ok(start);
        };
        let mut position = start;
        while position < end {
            let want =
                usize::try_from(end - position).map_or(buffer.len(), |left| left.min(buffer.len()));
            let n = match file.read_at(&mut buffer[..want], position) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            f(stream, time, &buffer[..n])?;
            position += n as u64;
        }
        Ok(position)
    }
}

/// How far a replay has got: the position in the index, and per stream how many bytes
/// of its log file were passed on.
#[derive(Debug, Default, Clone)]
pub(crate) struct Cursor {
    index_position: u64,
    replayed: [u64; 2],
}

/// Reads a file from a given position without touching the file's shared cursor, so one
/// `LogReader` can replay from several threads at once.
struct PositionalReader<'a> {
    file: &'a File,
    position: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

enum IndexLine {
    /// A whole line, ending in `\n`, is in the buffer.
    Complete,
    /// A line too long to be valid: skipped.
    Unusable,
    /// The last line has no `\n` yet (a crash, or a run still writing).
    Unfinished,
    End,
}

/// Reads one line into `line`, holding at most `MAX_INDEX_LINE` bytes whatever the file
/// contains. Also returns how many bytes the line took in the file.
fn read_index_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<(IndexLine, u64)> {
    line.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            let kind = if consumed > 0 {
                IndexLine::Unfinished
            } else {
                IndexLine::End
            };
            return Ok((kind, consumed));
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let take = newline.map_or(available.len(), |at| at + 1);
        if !too_long {
            if line.len() + take <= MAX_INDEX_LINE {
                line.extend_from_slice(&available[..take]);
            } else {
                too_long = true;
                line.clear();
            }
        }
        input.consume(take);
        consumed += take as u64;
        if newline.is_some() {
            let kind = if too_long {
                IndexLine::Unusable
            } else {
                IndexLine::Complete
            };
            return Ok((kind, consumed));
        }
    }
}

struct IndexEntry {
    unix_nanos: u64,
    stream: Stream,
    offset: u64,
    length: u64,
}

/// Parses `<unix_time_ns> <o|e> <offset> <length>\n`; anything else is `None`.
fn parse_index_line(line: &[u8]) -> Option<IndexEntry> {
    let text = std::str::from_utf8(line.strip_suffix(b"\n")?).ok()?;
    let mut fields = text.split(' ');
    let entry = IndexEntry {
        unix_nanos: fields.next()?.parse().ok()?,
        stream: Stream::from_tag(fields.next()?)?,
        offset: fields.next()?.parse().ok()?,
        length: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(entry)
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn with_path(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::fs::OpenOptions;
    use std::sync::Arc;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// Everything a replay produced, in order.
    fn replay_all(dir: &Path, filter: Option<Stream>) -> io::Result<Vec<(Stream, u64, Vec<u8>)>> {
        let mut chunks = Vec::new();
        LogReader::open(dir)?.for_each_chunk(filter, |stream, time, bytes| {
            chunks.push((stream, time, bytes.to_vec()));
            Ok(())
        })?;
        Ok(chunks)
    }

    /// Replays and joins consecutive pieces of the same stream into one text each.
    fn replay_text(dir: &Path, filter: Option<Stream>) -> io::Result<Vec<(Stream, String)>> {
        let mut out: Vec<(Stream, String)> = Vec::new();
        for (stream, _, bytes) in replay_all(dir, filter)? {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            match out.last_mut() {
                Some((last, joined)) if *last == stream => joined.push_str(&text),
                _ => out.push((stream, text)),
            }
        }
        Ok(out)
    }

    fn owned(expected: &[(Stream, &str)]) -> Vec<(Stream, String)> {
        expected
            .iter()
            .map(|(s, t)| (*s, (*t).to_owned()))
            .collect()
    }

    /// Produces `remaining` bytes of a repeating 251-byte pattern in uneven reads,
    /// copying from a small table so 200 MB cost little time and no memory.
    struct Pattern {
        table: Vec<u8>,
        position: u64,
        remaining: u64,
        read_size: usize,
    }

    const PERIOD: usize = 251;

    impl Pattern {
        fn new(total: u64, read_size: usize) -> Self {
            let table = (0..CHUNK_SIZE + PERIOD)
                .map(|i| (i % PERIOD) as u8)
                .collect();
            Self {
                table,
                position: 0,
                remaining: total,
                read_size,
            }
        }

        /// The bytes the pattern has at `position`, for checking.
        fn expected(&self, position: u64, len: usize) -> &[u8] {
            let start = (position % PERIOD as u64) as usize;
            &self.table[start..start + len]
        }
    }

    impl Read for Pattern {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.read_size).min(CHUNK_SIZE);
            let n = usize::try_from(self.remaining).map_or(n, |left| n.min(left));
            let start = (self.position % PERIOD as u64) as usize;
            buf[..n].copy_from_slice(&self.table[start..start + n]);
            self.position += n as u64;
            self.remaining -= n as u64;
            Ok(n)
        }
    }

    /// Accepts `limit` bytes, then fails like a closed terminal.
    struct BreakingEcho {
        received: Vec<u8>,
        limit: usize,
    }

    impl Write for BreakingEcho {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.received.len() >= self.limit {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let n = buf.len().min(self.limit - self.received.len());
            self.received.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn two_streams_replay_interleaved_in_arrival_order() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = LogSink::create(dir.path())?;
        let mut terminal = Vec::new();
        pump(
            &b"one\n"[..],
            Stream::Stdout,
            &sink,
            Some(&mut terminal),
            |_| {},
        )?;
        pump(&b"warn\n"[..], Stream::Stderr, &sink, None, |_| {})?;
        pump(
            &b"two\n"[..],
            Stream::Stdout,
            &sink,
            Some(&mut terminal),
            |_| {},
        )?;
        pump(&b"oops\n"[..], Stream::Stderr, &sink, None, |_| {})?;
        sink.finish()?;
        assert_eq!(terminal, b"one\ntwo\n");

        assert_eq!(fs::read(dir.path().join(STDOUT_FILE))?, b"one\ntwo\n");
        assert_eq!(fs::read(dir.path().join(STDERR_FILE))?, b"warn\noops\n");
        let index = fs::read_to_string(dir.path().join(INDEX_FILE))?;
        let shapes: Vec<String> = index
            .lines()
            .map(|l| l.split(' ').skip(1).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(shapes, ["o 0 4", "e 0 5", "o 4 4", "e 5 5"]);

        let chunks = replay_all(dir.path(), None)?;
        let order: Vec<(Stream, &[u8])> = chunks.iter().map(|(s, _, b)| (*s, &b[..])).collect();
        assert_eq!(
            order,
            [
                (Stream::Stdout, &b"one\n"[..]),
                (Stream::Stderr, b"warn\n"),
                (Stream::Stdout, b"two\n"),
                (Stream::Stderr, b"oops\n"),
            ]
        );
        assert!(chunks.windows(2).all(|w| w[0].1 <= w[1].1), "times go up");
        assert!(chunks[0].1 > 1_600_000_000_000_000_000, "Unix nanoseconds");

        let errors = replay_text(dir.path(), Some(Stream::Stderr))?;
        assert_eq!(errors, owned(&[(Stream::Stderr, "warn\noops\n")]));
        Ok(())
    }

    #[test]
    fn concurrent_pumps_capture_both_streams_completely() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = Arc::new(LogSink::create(dir.path())?);
        let threads: Vec<_> = [(Stream::Stdout, 7), (Stream::Stderr, 13)]
            .into_iter()
            .map(|(stream, read_size)| {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    pump(
                        Pattern::new(300_000, read_size),
                        stream,
                        &sink,
                        None,
                        |_| {},
                    )
                })
            })
            .collect();
        for thread in threads {
            let captured = thread.join().map_err(|_| "pump thread panicked")??;
            assert_eq!(captured, 300_000);
        }
        sink.finish()?;

        let mut lengths = [0u64; 2];
        let mut last_time = 0;
        let check = Pattern::new(0, 1);
        LogReader::open(dir.path())?.for_each_chunk(None, |stream, time, bytes| {
            let position = lengths[stream.slot()];
            assert_eq!(bytes, check.expected(position, bytes.len()));
            lengths[stream.slot()] += bytes.len() as u64;
            assert!(time >= last_time);
            last_time = time;
            Ok(())
        })?;
        assert_eq!(lengths, [300_000, 300_000]);
        Ok(())
    }

    #[test]
    fn two_hundred_megabytes_stream_through_in_fixed_memory() -> TestResult {
        const TOTAL: u64 = 200 * 1024 * 1024;
        let dir = tempfile::tempdir()?;
        let sink = LogSink::create(dir.path())?;
        // Reads of 61 000 bytes, so chunks do not line up with the buffer size.
        let captured = pump(
            Pattern::new(TOTAL, 61_000),
            Stream::Stdout,
            &sink,
            None,
            |_| {},
        )?;
        sink.finish()?;
        assert_eq!(captured, TOTAL);
        assert_eq!(fs::metadata(dir.path().join(STDOUT_FILE))?.len(), TOTAL);
        assert_eq!(fs::metadata(dir.path().join(STDERR_FILE))?.len(), 0);

        let index = fs::read_to_string(dir.path().join(INDEX_FILE))?;
        let mut expected_offset = 0u64;
        for line in index.lines() {
            let entry = parse_index_line(format!("{line}\n").as_bytes()).ok_or("bad line")?;
            assert_eq!(entry.stream, Stream::Stdout);
            assert_eq!(entry.offset, expected_offset);
            expected_offset += entry.length;
        }
        assert_eq!(expected_offset, TOTAL);
        assert_eq!(index.lines().count() as u64, TOTAL.div_ceil(61_000));

        let check = Pattern::new(0, 1);
        let mut replayed = 0u64;
        LogReader::open(dir.path())?.for_each_chunk(None, |_, _, bytes| {
            assert!(bytes.len() <= CHUNK_SIZE);
            if bytes != check.expected(replayed, bytes.len()) {
                return Err(io::Error::other(format!("wrong bytes at {replayed}")));
            }
            replayed += bytes.len() as u64;
            Ok(())
        })?;
        assert_eq!(replayed, TOTAL);
        Ok(())
    }

    #[test]
    fn a_failing_echo_stops_echoing_but_capture_goes_on() -> TestResult {
        const TOTAL: u64 = 1_000_000;
        let dir = tempfile::tempdir()?;
        let sink = LogSink::create(dir.path())?;
        let mut echo = BreakingEcho {
            received: Vec::new(),
            limit: 100_000,
        };
        let captured = pump(
            Pattern::new(TOTAL, 4096),
            Stream::Stderr,
            &sink,
            Some(&mut echo),
            |_| {},
        )?;
        sink.finish()?;
        assert_eq!(captured, TOTAL);
        assert_eq!(echo.received.len(), 100_000);
        let stored = fs::read(dir.path().join(STDERR_FILE))?;
        assert_eq!(stored.len() as u64, TOTAL);
        assert_eq!(&stored[..100_000], &echo.received[..]);
        Ok(())
    }

    #[test]
    fn a_failing_disk_drains_and_echoes_the_source_and_reports_the_error() -> TestResult {
        let dir = tempfile::tempdir()?;
        let full = || OpenOptions::new().write(true).open("/dev/full");
        let index = File::create(dir.path().join(INDEX_FILE))?;
        let sink = LogSink::from_files(dir.path(), [full()?, full()?], index);
        let mut terminal = Vec::new();
        let mut source = Pattern::new(200_000, 4096);
        let mut told = Vec::new();
        let result = pump(
            &mut source,
            Stream::Stdout,
            &sink,
            Some(&mut terminal),
            |e| {
                told.push(e.to_string());
            },
        );
        let err = result.err().ok_or("a full disk went unnoticed")?;
        assert_eq!(told.len(), 1, "told once, at the first failure: {told:?}");
        assert!(told[0].contains(STDOUT_FILE), "{told:?}");
        assert!(err.to_string().contains(STDOUT_FILE), "{err}");
        assert_eq!(source.remaining, 0, "source drained");
        assert_eq!(terminal.len(), 200_000, "user still saw everything");
        // The other stream learns about it too.
        let other = pump(&b"late"[..], Stream::Stderr, &sink, None, |_| {});
        assert!(other.is_err());
        Ok(())
    }

    #[test]
    fn source_read_errors_are_returned() -> TestResult {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("pipe exploded"))
            }
        }
        let dir = tempfile::tempdir()?;
        let sink = LogSink::create(dir.path())?;
        let err = pump(Failing, Stream::Stdout, &sink, None, |_| {})
            .err()
            .ok_or("no error")?;
        assert_eq!(err.to_string(), "pipe exploded");
        Ok(())
    }

    #[test]
    fn create_refuses_to_overwrite_existing_logs() -> TestResult {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join(STDOUT_FILE), "earlier run")?;
        let err = LogSink::create(dir.path()).err().ok_or("overwrote logs")?;
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains(STDOUT_FILE), "{err}");
        assert_eq!(fs::read(dir.path().join(STDOUT_FILE))?, b"earlier run");
        Ok(())
    }

    #[test]
    fn short_files_and_damaged_index_lines_do_not_panic() -> TestResult {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join(STDOUT_FILE), "abcdef")?;
        fs::write(dir.path().join(STDERR_FILE), "XY")?;
        let long_garbage = "9".repeat(10_000);
        let index = format!(
            "100 o 0 3\n\
             not an index line\n\
             {long_garbage}\n\
             101 x 0 1\n\
             102 e 0 1 extra\n\
             103 e 0 10\n\
             104 o 3 100\n\
             105 o 18446744073709551615 18446744073709551615\n\
             106 o 0 2"
        );
        fs::write(dir.path().join(INDEX_FILE), index)?;
        let chunks = replay_all(dir.path(), None)?;
        let seen: Vec<(Stream, u64, &[u8])> =
            chunks.iter().map(|(s, t, b)| (*s, *t, &b[..])).collect();
        assert_eq!(
            seen,
            [
                (Stream::Stdout, 100, &b"abc"[..]),
                // Goes past the end of stderr.log: shown as far as it exists.
                (Stream::Stderr, 103, b"XY"),
                (Stream::Stdout, 104, b"def"),
            ]
        );
        Ok(())
    }

    #[test]
    fn bytes_missing_from_the_index_are_still_replayed_once() -> TestResult {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join(STDOUT_FILE), "aaabbbccc")?;
        fs::write(dir.path().join(STDERR_FILE), "EEE")?;
        // The line for "bbb" was lost; "ccc" and all of stderr were never indexed
        // (the unfinished last line is ignored).
        fs::write(dir.path().join(INDEX_FILE), "1 o 0 3\n3 o 6 1\n4 o 7")?;
        let text = replay_text(dir.path(), None)?;
        assert_eq!(
            text,
            owned(&[(Stream::Stdout, "aaabbbccc"), (Stream::Stderr, "EEE")])
        );
        let chunks = replay_all(dir.path(), Some(Stream::Stdout))?;
        assert_eq!(chunks[1], (Stream::Stdout, 3, b"bbbc".to_vec()));
        Ok(())
    }

    #[test]
    fn without_an_index_stdout_is_replayed_before_stderr() -> TestResult {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join(STDERR_FILE), "err")?;
        fs::write(dir.path().join(STDOUT_FILE), "out")?;
        let text = replay_text(dir.path(), None)?;
        assert_eq!(
            text,
            owned(&[(Stream::Stdout, "out"), (Stream::Stderr, "err")])
        );
        let only_err = replay_text(dir.path(), Some(Stream::Stderr))?;
        assert_eq!(only_err, owned(&[(Stream::Stderr, "err")]));

        fs::remove_file(dir.path().join(STDOUT_FILE))?;
        assert_eq!(
            replay_text(dir.path(), None)?,
            owned(&[(Stream::Stderr, "err")])
        );
        Ok(())
    }

    #[test]
    fn a_folder_without_logs_is_not_found() -> TestResult {
        let dir = tempfile::tempdir()?;
        let err = LogReader::open(dir.path()).err().ok_or("opened nothing")?;
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains(INDEX_FILE), "{err}");
        Ok(())
    }

    #[test]
    fn an_error_from_the_callback_stops_the_replay() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = LogSink::create(dir.path())?;
        pump(&b"a"[..], Stream::Stdout, &sink, None, |_| {})?;
        pump(&b"b"[..], Stream::Stdout, &sink, None, |_| {})?;
        let mut calls = 0;
        let result = LogReader::open(dir.path())?.for_each_chunk(None, |_, _, _| {
            calls += 1;
            Err(io::ErrorKind::BrokenPipe.into())
        });
        assert_eq!(
            result.err().map(|e| e.kind()),
            Some(io::ErrorKind::BrokenPipe)
        );
        assert_eq!(calls, 1);
        Ok(())
    }

    #[test]
    fn an_empty_run_replays_nothing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let sink = LogSink::create(dir.path())?;
        assert_eq!(pump(io::empty(), Stream::Stdout, &sink, None, |_| {})?, 0);
        sink.finish()?;
        assert!(replay_all(dir.path(), None)?.is_empty());
        Ok(())
    }
}
