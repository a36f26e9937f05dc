//! A `tapir run` started by `tapir pipeline run` (`--watch-parent PID`, hidden) must not
//! outlive the pipeline: when the pipeline process is killed outright (SIGKILL, the OOM
//! killer), nobody forwards a cancel, and the task would run on — and a `--resume` would
//! run it a second time beside it.
//!
//! How the child notices: a thread compares `getppid()` with the pid it was given. A
//! process whose parent dies is re-parented (to init or a subreaper), so its parent pid
//! changes and never comes back; comparing with the pid passed on the command line, not
//! with the first `getppid()` we read, also catches a parent that died before this
//! process got this far. The crate denies `unsafe`, which rules out
//! `PR_SET_PDEATHSIG` (it needs `pre_exec`), and the child's stdin already carries its
//! env file, so there is no spare pipe to watch for EOF without passing an extra fd
//! (again `pre_exec`).
//!
//! The hard part is *when* to act. The watcher cancels the way a user does, by sending
//! SIGTERM to its own process, so the run goes through exactly the path of a Ctrl-C
//! (stop the container with the grace period, record `cancelled`). But that path exists
//! only while `execute::run_to_end` has its signal handler installed: before, SIGTERM's
//! default action would end tapir without a record; after, it could cut the final
//! record's write short. So the handler's owner *arms* the watcher while it listens, and
//! disarms it before it stops listening; the watcher raises the signal only while armed,
//! under the same lock, so a disarm cannot slip between the check and the signal (a
//! `raise` is delivered before it returns). A parent lost before the container starts
//! is acted on as soon as the run arms: `stop` waits for the container to exist.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::output;

/// Whether a SIGTERM now goes to `run_to_end`'s signal handler.
static ARMED: Mutex<bool> = Mutex::new(false);

/// How often the parent pid is compared: the most a task outlives its pipeline before
/// its stop begins.
const POLL: Duration = Duration::from_millis(100);

/// Starts the watcher for a run whose parent is `expected_parent`.
pub(crate) fn watch(expected_parent: u32) {
    std::thread::spawn(move || {
        while parent_is(expected_parent) {
            std::thread::sleep(POLL);
        }
        loop {
            let armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
            if *armed {
                output::stderr(&format!(
                    "\ntapir: the process that started this run (pid {expected_parent}) is gone: stopping the task\n"
                ));
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
                return;
            }
            drop(armed);
            std::thread::sleep(POLL);
        }
    });
}

fn parent_is(pid: u32) -> bool {
    u32::try_from(nix::unistd::getppid().as_raw()).is_ok_and(|ppid| ppid == pid)
}

/// Held while SIGTERM cancels the run (see the module documentation); dropping it
/// disarms the watcher.
#[derive(Debug)]
pub(crate) struct Armed(());

pub(crate) fn arm() -> Armed {
    *ARMED.lock().unwrap_or_else(PoisonError::into_inner) = true;
    Armed(())
}

impl Drop for Armed {
    fn drop(&mut self) {
        *ARMED.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_pid_is_compared_with_the_one_given() {
        let ppid = u32::try_from(nix::unistd::getppid().as_raw()).unwrap();
        assert!(parent_is(ppid));
        assert!(!parent_is(ppid.wrapping_add(1)));
    }
}
