//! `tapir logs RUN`: replays what the task wrote, from the run folder only (the container
//! is not needed, and is usually gone). `tapir logs PIPELINE-RUN TASK` does the same
//! for the task run of one task's latest attempt (or `--attempt N`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::LogsArgs;
use crate::error::{Error, ExitStatus, Result};
use crate::record::RunSummary;
use crate::record::logs::{Cursor, LogReader, Stream};

use super::pipeline_runs::{self, AttemptRun};
use super::{Located, locate};

/// How often `--follow` looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// With `--tail`, a line longer than this keeps only its first bytes (memory stays
/// bounded whatever the task printed).
const MAX_TAIL_LINE: usize = 64 * 1024;

pub(crate) fn run(args: &LogsArgs) -> Result<ExitStatus> {
    let run_dir = match locate(&args.runs.runs_dir, &args.run)? {
        Located::Task(dir) if args.task.is_some() => {
            return Err(pipeline_runs::not_a_pipeline(&dir));
        }
        Located::Task(dir) => dir,
        Located::Pipeline(dir) => match task_run_of(&dir, args)? {
            Some(run_dir) => run_dir,
            // An attempt refused before it started: said in words, and it has no logs.
            None if !args.follow => return Ok(ExitStatus::Success),
            // Followed a task that ended without a task run (skipped, cancelled, refused).
            None => return Ok(ExitStatus::Failed),
        },
    };
    let filter = match (args.stdout, args.stderr) {
        (true, _) => Some(Stream::Stdout),
        (_, true) => Some(Stream::Stderr),
        _ => None,
    };
    let mut out = Output::new(args.timestamps);
    let mut cursor = Cursor::default();
    let reader = match open_reader(&run_dir, args.follow)? {
        Some(reader) => reader,
        // Followed a run that ended (or was lost) before capturing anything.
        None => return finished_code(&run_dir, args.follow),
    };

    let result = (|| -> io::Result<()> {
        match args.tail {
            Some(n) => {
                let mut tail = Tail::new(n);
                reader.replay_indexed(&mut cursor, filter, &mut |s, t, b| {
                    tail.push(s, t, b);
                    Ok(())
                })?;
                if !args.follow {
                    reader.replay_rest(&mut cursor, filter, &mut |s, t, b| {
                        tail.push(s, t, b);
                        Ok(())
                    })?;
                }
                for (stream, time, line) in tail.finish() {
                    out.write(stream, time, &line)?;
                }
            }
            None => {
                reader.replay_indexed(&mut cursor, filter, &mut |s, t, b| out.write(s, t, b))?;
                if !args.follow {
                    reader.replay_rest(&mut cursor, filter, &mut |s, t, b| out.write(s, t, b))?;
                }
            }
        }
        if !args.follow {
            return Ok(());
        }
        let mut slurm = SlurmAsker::new(&run_dir);
        loop {
            slurm.ask_when_due();
            // Read the record before the logs: once it says the run is over, everything
            // was captured, so one more pass gets the rest.
            super::k8s_submit::look(&run_dir);
            let over = RunSummary::load_settled(&run_dir).map_or(true, |r| r.is_over());
            reader.replay_indexed(&mut cursor, filter, &mut |s, t, b| out.write(s, t, b))?;
            if over {
                return reader.replay_rest(&mut cursor, filter, &mut |s, t, b| out.write(s, t, b));
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    })();
    match result {
        Ok(()) => {}
        // `tapir logs … | head`: the reader went away; that is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitStatus::Success),
        Err(e) => return Err(Error::io(&run_dir, e)),
    }
    finished_code(&run_dir, args.follow)
}

/// The task run of the attempt `args` asks for in the pipeline run `dir`. With `--follow`,
/// a task that has not started yet is waited for; `None` when it ended without a run.
fn task_run_of(dir: &Path, args: &LogsArgs) -> Result<Option<std::path::PathBuf>> {
    loop {
        let record = pipeline_runs::load(dir)?;
        let Some(task_id) = &args.task else {
            return Err(pipeline_runs::task_needed(&record, dir, "logs", &args.run));
        };
        let task = pipeline_runs::find_task(&record, task_id, "logs", &args.run)?;
        let why = match pipeline_runs::attempt_run(dir, task, args.attempt)? {
            AttemptRun::Found(run_dir) => return Ok(Some(run_dir)),
            AttemptRun::NotYet(why) => why,
        };
        use crate::pipeline::record::TaskStatus;
        let may_start = matches!(task.status, TaskStatus::Pending | TaskStatus::Running)
            && !pipeline_runs::is_over(&record);
        // Refused, and (when following) no retry will come: nothing to wait for.
        if (!args.follow || !may_start)
            && let Some(refused) = refused_attempt(dir, task, args.attempt)
        {
            crate::output::stderr(&format!("tapir: {refused}\n"));
            return Ok(None);
        }
        if !args.follow || args.attempt.is_some() {
            return Err(Error::Usage(format!(
                "{why}\n  fix: `tapir show {}` shows the pipeline run{}",
                args.run,
                if may_start {
                    "; `--follow` waits for the task to start"
                } else {
                    ""
                }
            )));
        }
        if !may_start {
            crate::output::stderr(&format!("tapir: {why}\n"));
            return Ok(None);
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// What to say of the attempt `number` (the latest when `None`) of `task` when `tapir run`
/// refused it before it started, so it has no task run and no logs: its message (the
/// refusal in tapir's words) and where tapir's own output for the task is. `None` for an
/// attempt that has a task run, or has not ended.
fn refused_attempt(
    dir: &Path,
    task: &crate::pipeline::record::PipelineTaskRecord,
    number: Option<u32>,
) -> Option<String> {
    let attempt = match number {
        Some(n) => task.attempts.iter().find(|a| a.number == n),
        None => task.attempts.last(),
    }?;
    if attempt.run_id.is_some() || attempt.ended_at.is_none() {
        return None;
    }
    let log = dir
        .join(crate::pipeline::record::RUNS_SUBDIR)
        .join(format!("{}.tapir.log", task.id));
    Some(format!(
        "attempt {} of task {} did not start, so it has no logs: {}\n  tapir's own output for the task: {}",
        attempt.number,
        task.id,
        attempt
            .message
            .as_deref()
            .unwrap_or(attempt.status.as_str()),
        log.display()
    ))
}

/// With `--follow`, the run's own exit code (like `tapir wait`); otherwise 0.
fn finished_code(run_dir: &Path, follow: bool) -> Result<ExitStatus> {
    if !follow {
        return Ok(ExitStatus::Success);
    }
    let record = RunSummary::load_settled(run_dir).map_err(|e| Error::Record(e.to_string()))?;
    if record.is_lost() {
        crate::output::stderr(&format!(
            "tapir: run {} is lost: its record says running, but nothing supervises it any more\n",
            record.id
        ));
    }
    Ok(record.exit_status())
}

/// Opens the logs; when following a run that has not started capturing yet, waits for
/// them (or for the run to end without any).
fn open_reader(run_dir: &Path, follow: bool) -> Result<Option<LogReader>> {
    let mut slurm = SlurmAsker::new(run_dir);
    loop {
        if follow {
            // A queued Slurm job: waited for; one that ended without starting, settled.
            slurm.ask_when_due();
        }
        // The index is created after both logs: once it exists, all three do (a reader
        // opened in between would miss a stream for good).
        let ready = !follow || run_dir.join(crate::record::logs::INDEX_FILE).exists();
        let opened = if ready {
            LogReader::open(run_dir)
        } else {
            Err(io::Error::from(io::ErrorKind::NotFound))
        };
        match opened {
            Ok(reader) => return Ok(Some(reader)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A detached Kubernetes run gets its logs when its Pod has ended.
                super::k8s_submit::look(run_dir);
                let record = RunSummary::load_settled(run_dir).ok();
                let waiting = follow && record.as_ref().is_some_and(|r| !r.is_over());
                if !waiting {
                    if follow {
                        return Ok(None);
                    }
                    let why = match record {
                        Some(r) => format!(
                            "run {} has no captured output (status: {}{})\n  fix: `tapir show {}` says why the task did not run",
                            r.id,
                            r.status_label(),
                            r.message.map(|m| format!(", {m}")).unwrap_or_default(),
                            r.id
                        ),
                        None => e.to_string(),
                    };
                    return Err(Error::Record(why));
                }
                std::thread::sleep(FOLLOW_POLL);
            }
            Err(e) => return Err(Error::io(run_dir, e)),
        }
    }
}

/// Asks Slurm about a followed Slurm run, backing off, so a job that ended without its
/// record is settled (and the follow ends) rather than waited for forever.
struct SlurmAsker {
    dir: std::path::PathBuf,
    poll: Duration,
    next: std::time::Instant,
}

impl SlurmAsker {
    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            poll: crate::executor::slurm::job::FIRST_POLL,
            next: std::time::Instant::now(),
        }
    }

    fn ask_when_due(&mut self) {
        if std::time::Instant::now() < self.next {
            return;
        }
        crate::executor::slurm::job::look(std::slice::from_ref(&self.dir));
        self.poll = crate::executor::slurm::job::next_poll(self.poll);
        self.next = std::time::Instant::now() + self.poll;
    }
}

/// Writes replayed chunks to our stdout or stderr (as the task wrote them), optionally
/// with a timestamp at the start of every line.
struct Output {
    timestamps: bool,
    /// Per stream: is the next byte the first of a line?
    at_line_start: [bool; 2],
}

impl Output {
    fn new(timestamps: bool) -> Self {
        Self {
            timestamps,
            at_line_start: [true, true],
        }
    }

    fn write(&mut self, stream: Stream, unix_nanos: u64, bytes: &[u8]) -> io::Result<()> {
        let mut target: Box<dyn Write> = match stream {
            Stream::Stdout => Box::new(io::stdout().lock()),
            Stream::Stderr => Box::new(io::stderr().lock()),
        };
        if !self.timestamps {
            target.write_all(bytes)?;
            return target.flush();
        }
        let slot = stream.slot();
        let stamp = format_time(unix_nanos);
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            if self.at_line_start[slot] {
                write!(target, "{stamp} ")?;
            }
            target.write_all(piece)?;
            self.at_line_start[slot] = piece.ends_with(b"\n");
        }
        target.flush()
    }
}

/// `2026-11-21T14:17:09.798Z`.
fn format_time(unix_nanos: u64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_nanos))
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "????-??-??T??:??:??.???Z".into())
}

/// The last N lines of the replayed output, in the order they were completed, each with
/// the time its first byte was captured.
struct Tail {
    keep: usize,
    lines: VecDeque<(Stream, u64, Vec<u8>)>,
    /// Per stream, a line still waiting for its `\n`.
    partial: [Option<(u64, Vec<u8>)>; 2],
}

impl Tail {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            lines: VecDeque::new(),
            partial: [None, None],
        }
    }

    fn push(&mut self, stream: Stream, time: u64, bytes: &[u8]) {
        let slot = stream.slot();
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let (_, line) = self.partial[slot].get_or_insert_with(|| (time, Vec::new()));
            let room = MAX_TAIL_LINE.saturating_sub(line.len());
            line.extend_from_slice(&piece[..piece.len().min(room)]);
            if piece.ends_with(b"\n")
                && let Some((time, mut line)) = self.partial[slot].take()
            {
                if !line.ends_with(b"\n") {
                    line.push(b'\n'); // cut at MAX_TAIL_LINE
                }
                self.complete(stream, time, line);
            }
        }
    }

    fn complete(&mut self, stream: Stream, time: u64, line: Vec<u8>) {
        if self.keep == 0 {
            return;
        }
        if self.lines.len() == self.keep {
            self.lines.pop_front();
        }
        self.lines.push_back((stream, time, line));
    }

    /// The kept lines, plus unfinished last lines (output that did not end in `\n`).
    fn finish(mut self) -> VecDeque<(Stream, u64, Vec<u8>)> {
        for stream in Stream::BOTH {
            if let Some((time, line)) = self.partial[stream.slot()].take() {
                self.complete(stream, time, line);
            }
        }
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(tail: Tail) -> Vec<(Stream, String)> {
        tail.finish()
            .into_iter()
            .map(|(s, _, l)| (s, String::from_utf8_lossy(&l).into_owned()))
            .collect()
    }

    #[test]
    fn tail_keeps_the_last_lines_across_chunks_and_streams() {
        let mut tail = Tail::new(3);
        tail.push(Stream::Stdout, 1, b"a\nb\nc");
        tail.push(Stream::Stderr, 2, b"E1\n");
        tail.push(Stream::Stdout, 3, b"c-continued\nd\n");
        assert_eq!(
            texts(tail),
            vec![
                (Stream::Stderr, "E1\n".into()),
                (Stream::Stdout, "cc-continued\n".into()),
                (Stream::Stdout, "d\n".into()),
            ]
        );
    }

    #[test]
    fn tail_keeps_an_unfinished_last_line_and_bounds_long_lines() {
        let mut tail = Tail::new(2);
        tail.push(Stream::Stdout, 1, &vec![b'x'; MAX_TAIL_LINE * 2]);
        tail.push(Stream::Stdout, 1, b"\nlast words");
        let lines = texts(tail);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].1.len(), MAX_TAIL_LINE + 1, "cut, newline kept");
        assert_eq!(lines[1].1, "last words");
        assert!(texts(Tail::new(0)).is_empty());
    }

    #[test]
    fn times_are_utc_with_milliseconds() {
        assert_eq!(
            format_time(1_732_190_000_123_456_789),
            "2024-11-21T11:53:20.123Z"
        );
    }
}
