//! The pipeline scheduler as a pure state machine (docs/DESIGN.md decision 10): which
//! task starts next, what an attempt's end means (retry, skip, fail), what a cancel
//! stops, what a `--resume` keeps, and how many tasks run at once. It starts nothing,
//! sleeps nowhere and reads no clock: it is told what happened (an attempt ended, a retry
//! wait is over, the pipeline was cancelled) and answers with [`Action`]s for its driver
//! (`commands/pipeline_run.rs`) to carry out through an executor.
//!
//! Every event costs only the edges it touches: each task counts its dependencies that
//! have not ended, a task's end counts down its dependants, and a task whose count
//! reaches zero is decided once (ready, or skipped with the reason its dependencies give).
//! Ready tasks wait in plan order for a place of `--jobs`.

use std::collections::BTreeSet;

use crate::pipeline::model::Execution;
use crate::pipeline::record::{SkipCause, TaskStatus};
use crate::record::Status;

/// One dependency of a task, by the dependency's index in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dependency {
    pub task: usize,
    /// The dependant runs whatever became of the dependency.
    pub can_fail: bool,
}

/// What the scheduler needs to know of a task.
#[derive(Debug, Clone)]
pub(crate) struct TaskSpec {
    pub id: String,
    /// Every index is lower than the task's own (the plan is in dependency order).
    pub depends_on: Vec<Dependency>,
    pub execution: Execution,
    /// A task an earlier invocation settled for good (`--resume`: succeeded, or skipped
    /// by its own exit code): it is not run again.
    pub kept: Option<(TaskStatus, Option<SkipCause>)>,
    /// Attempts made by earlier invocations: the next one is numbered on from them.
    pub attempts_before: u32,
}

/// What the driver is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Start attempt `number` (1-based, across `--resume`s); `retry` is 0 for the first
    /// attempt of this invocation. The task holds a place of `--jobs` until it ends.
    Start {
        task: usize,
        number: u32,
        retry: u32,
    },
    /// The attempt failed and the task retries after `delay` seconds: call
    /// [`Schedule::retry_due`] then. The task gave its place back meanwhile.
    RetryLater {
        task: usize,
        retry: u32,
        of: u32,
        delay: u64,
    },
    /// Stop the task's running attempt (asked again on a second cancel: stop harder).
    Stop { task: usize },
    /// The task ended for good.
    Settled { task: usize, end: End },
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct End {
    pub status: TaskStatus,
    pub skipped_by: Option<SkipCause>,
    pub why: Why,
}

/// Why a task ended so, for its record and the progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Why {
    /// Its last attempt's own end says it (succeeded, failed, timed out, cancelled).
    LastAttempt,
    /// Its attempt exited with the task's `skip_exit_code`.
    SkipExitCode(i64),
    /// Not run: `dependency <id> failed` (or `was skipped`, …).
    Dependency(String),
    /// Not started: the pipeline was cancelled first.
    NotStarted,
    /// Cancelled after an attempt: `while waiting to retry`, `instead of retrying`.
    Cancelled(&'static str),
    /// It could not be started (its CCAT manifest could not be written, …): in words.
    Refused(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Some dependency has not ended yet.
    Waiting,
    /// May start once a place is free; `retry` is the attempt's retry number.
    Ready {
        retry: u32,
    },
    Running {
        retry: u32,
    },
    /// Waiting before retry `retry`, without a place.
    RetryWait {
        retry: u32,
    },
    Ended(TaskStatus, Option<SkipCause>),
}

/// The scheduler's state. See the module documentation.
#[derive(Debug)]
pub(crate) struct Schedule {
    specs: Vec<TaskSpec>,
    /// Per task: its dependants (the `can_fail` of each edge is in the dependant's spec).
    dependants: Vec<Vec<usize>>,
    state: Vec<State>,
    /// Per task: dependencies that have not ended.
    unfinished: Vec<usize>,
    /// Per task: the number of its latest attempt.
    attempts: Vec<u32>,
    /// In plan order.
    ready: BTreeSet<usize>,
    running: BTreeSet<usize>,
    free_slots: usize,
    /// Tasks not ended yet (running, waiting, ready or waiting to retry).
    open: usize,
    cancelled: bool,
}

impl Schedule {
    /// The schedule of `specs` (in plan order) with `jobs` places; nothing starts before
    /// [`Schedule::begin`].
    pub(crate) fn new(specs: Vec<TaskSpec>, jobs: usize) -> Self {
        let count = specs.len();
        let mut dependants = vec![Vec::new(); count];
        for (i, spec) in specs.iter().enumerate() {
            for dep in &spec.depends_on {
                dependants[dep.task].push(i);
            }
        }
        let state: Vec<State> = specs
            .iter()
            .map(|s| match s.kept {
                Some((status, cause)) => State::Ended(status, cause),
                None => State::Waiting,
            })
            .collect();
        let unfinished = specs
            .iter()
            .map(|s| {
                s.depends_on
                    .iter()
                    .filter(|d| !matches!(state[d.task], State::Ended(..)))
                    .count()
            })
            .collect();
        let open = state
            .iter()
            .filter(|s| !matches!(s, State::Ended(..)))
            .count();
        Self {
            attempts: specs.iter().map(|s| s.attempts_before).collect(),
            specs,
            dependants,
            state,
            unfinished,
            ready: BTreeSet::new(),
            running: BTreeSet::new(),
            free_slots: jobs.max(1),
            open,
            cancelled: false,
        }
    }

    /// Decides every task whose dependencies have all ended (at first: those without
    /// dependencies, and on `--resume` those after kept tasks) and starts what fits.
    pub(crate) fn begin(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        for i in 0..self.specs.len() {
            if self.state[i] == State::Waiting
                && self.unfinished[i] == 0
                && let Some(end) = self.decide(i)
            {
                self.settle(i, end, &mut actions);
            }
        }
        self.fill(&mut actions);
        actions
    }

    /// Every task has ended: nothing runs, waits or may start.
    pub(crate) fn is_over(&self) -> bool {
        self.open == 0
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// Task `task`'s running attempt ended with `status` (the task run's own) and the
    /// task's `exit_code`.
    pub(crate) fn attempt_ended(
        &mut self,
        task: usize,
        status: Status,
        exit_code: Option<i64>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let State::Running { retry } = self.state[task] else {
            return actions;
        };
        self.running.remove(&task);
        self.free_slots += 1;
        let execution = self.specs[task].execution;
        let last = retry >= execution.max_retries;
        let ended = |status, why| {
            Some(End {
                status,
                skipped_by: None,
                why,
            })
        };
        let end = match status {
            Status::Succeeded => ended(TaskStatus::Succeeded, Why::LastAttempt),
            // "Nothing to do" is an answer, not a failure: no retry (Kaapana's operator
            // raises AirflowSkipException, which Airflow does not retry).
            Status::Failed if execution.skips(exit_code) => Some(End {
                status: TaskStatus::Skipped,
                skipped_by: Some(SkipCause::ExitCode),
                why: Why::SkipExitCode(exit_code.unwrap_or_default()),
            }),
            // The attempt's own end wins; a cancel only stops what would follow it.
            Status::Cancelled => ended(TaskStatus::Cancelled, Why::LastAttempt),
            Status::TimedOut if last => ended(TaskStatus::TimedOut, Why::LastAttempt),
            _ if last => ended(TaskStatus::Failed, Why::LastAttempt),
            _ if self.cancelled => {
                ended(TaskStatus::Cancelled, Why::Cancelled("instead of retrying"))
            }
            _ => None,
        };
        match end {
            Some(end) => self.settle(task, end, &mut actions),
            None => {
                let retry = retry + 1;
                self.state[task] = State::RetryWait { retry };
                actions.push(Action::RetryLater {
                    task,
                    retry,
                    of: execution.max_retries,
                    delay: execution.backoff_before_retry(retry),
                });
            }
        }
        self.fill(&mut actions);
        actions
    }

    /// The wait before task `task`'s retry is over: it may start again once a place is
    /// free. Ignored when the task no longer waits (a cancel ended it).
    pub(crate) fn retry_due(&mut self, task: usize) -> Vec<Action> {
        let mut actions = Vec::new();
        if let State::RetryWait { retry } = self.state[task] {
            self.state[task] = State::Ready { retry };
            self.ready.insert(task);
            self.fill(&mut actions);
        }
        actions
    }

    /// Task `task` was to start but could not (`message`: why): it failed without an
    /// attempt of this invocation, and gives its place back.
    pub(crate) fn refused(&mut self, task: usize, message: String) -> Vec<Action> {
        let mut actions = Vec::new();
        if !matches!(self.state[task], State::Running { .. }) {
            return actions;
        }
        self.running.remove(&task);
        self.free_slots += 1;
        let end = End {
            status: TaskStatus::Failed,
            skipped_by: None,
            why: Why::Refused(message),
        };
        self.settle(task, end, &mut actions);
        self.fill(&mut actions);
        actions
    }

    /// The pipeline is cancelled: every task that has not started ends now, and every
    /// running attempt is asked to stop (again, on a second cancel). Running tasks end
    /// when their attempts do.
    pub(crate) fn cancel(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.cancelled {
            self.cancelled = true;
            self.ready.clear();
            for task in 0..self.specs.len() {
                let why = match self.state[task] {
                    State::Waiting | State::Ready { .. } => Why::NotStarted,
                    State::RetryWait { .. } => Why::Cancelled("while waiting to retry"),
                    State::Running { .. } | State::Ended(..) => continue,
                };
                let end = End {
                    status: TaskStatus::Cancelled,
                    skipped_by: None,
                    why,
                };
                self.settle(task, end, &mut actions);
            }
        }
        actions.extend(self.running.iter().map(|&task| Action::Stop { task }));
        actions
    }

    /// Task `task` (waiting, with every dependency ended) becomes ready, or the end it
    /// must be settled with: skipped with the reason its dependencies give, or cancelled.
    fn decide(&mut self, task: usize) -> Option<End> {
        if self.cancelled {
            return Some(End {
                status: TaskStatus::Cancelled,
                skipped_by: None,
                why: Why::NotStarted,
            });
        }
        match self.blocked_by(task) {
            Some((reason, cause)) => Some(End {
                status: TaskStatus::Skipped,
                skipped_by: Some(cause),
                why: Why::Dependency(reason),
            }),
            None => {
                self.state[task] = State::Ready { retry: 0 };
                self.ready.insert(task);
                None
            }
        }
    }

    /// Why task `task` (every dependency ended) must not run, if it must not: the first
    /// dependency without `can_fail` that did not succeed, a failure-caused one before a
    /// skip (it is what makes this task's skip a failure of the pipeline).
    fn blocked_by(&self, task: usize) -> Option<(String, SkipCause)> {
        let mut blocked: Option<(String, SkipCause)> = None;
        for dep in &self.specs[task].depends_on {
            let State::Ended(status, skipped_by) = self.state[dep.task] else {
                continue;
            };
            if status == TaskStatus::Succeeded || dep.can_fail {
                continue;
            }
            // Not succeeded: it ended well only if it skipped without a failure.
            let cause = if status.ends_well(skipped_by) {
                SkipCause::SkippedDependency
            } else {
                SkipCause::FailedDependency
            };
            let replace = match &blocked {
                None => true,
                Some((_, held)) => {
                    *held == SkipCause::SkippedDependency && cause == SkipCause::FailedDependency
                }
            };
            if replace {
                let reason = format!(
                    "dependency {} {}",
                    self.specs[dep.task].id,
                    describe_status(status)
                );
                blocked = Some((reason, cause));
            }
        }
        blocked
    }

    /// Ends task `task` and counts down its dependants, deciding those it was the last
    /// open dependency of (and so on, down the graph: a skip travels).
    fn settle(&mut self, task: usize, end: End, actions: &mut Vec<Action>) {
        let mut pending = vec![(task, end)];
        while let Some((task, end)) = pending.pop() {
            if matches!(self.state[task], State::Ended(..)) {
                continue;
            }
            self.state[task] = State::Ended(end.status, end.skipped_by);
            self.ready.remove(&task);
            self.open -= 1;
            actions.push(Action::Settled { task, end });
            for k in 0..self.dependants[task].len() {
                let dependant = self.dependants[task][k];
                self.unfinished[dependant] -= 1;
                // Settled through this same loop, not by recursion: a skip may travel
                // down a long chain.
                if self.unfinished[dependant] == 0
                    && self.state[dependant] == State::Waiting
                    && let Some(end) = self.decide(dependant)
                {
                    pending.push((dependant, end));
                }
            }
        }
    }

    /// Starts ready tasks, in plan order, while places are free.
    fn fill(&mut self, actions: &mut Vec<Action>) {
        while self.free_slots > 0 && !self.cancelled {
            let Some(task) = self.ready.pop_first() else {
                break;
            };
            let State::Ready { retry } = self.state[task] else {
                continue;
            };
            self.free_slots -= 1;
            self.attempts[task] += 1;
            self.state[task] = State::Running { retry };
            self.running.insert(task);
            actions.push(Action::Start {
                task,
                number: self.attempts[task],
                retry,
            });
        }
    }
}

/// A dependency's end in the words of a skip reason: `dependency b failed`.
pub(crate) fn describe_status(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Failed => "failed",
        TaskStatus::TimedOut => "timed out",
        TaskStatus::Skipped => "was skipped",
        TaskStatus::Cancelled => "was cancelled",
        _ => "did not succeed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::model::RetryPolicy;

    fn execution(max_retries: u32, policy: RetryPolicy) -> Execution {
        Execution {
            max_retries,
            retry_policy: policy,
            retry_backoff_seconds: 10,
            max_exec_time: None,
            skip_exit_code: Some(126),
            clean_outputs_before_retry: false,
        }
    }

    /// Task `id` depending on `deps` (index, can_fail), no retries.
    fn task(id: &str, deps: &[(usize, bool)]) -> TaskSpec {
        TaskSpec {
            id: id.to_string(),
            depends_on: deps
                .iter()
                .map(|&(task, can_fail)| Dependency { task, can_fail })
                .collect(),
            execution: execution(0, RetryPolicy::Fixed),
            kept: None,
            attempts_before: 0,
        }
    }

    fn starts(actions: &[Action]) -> Vec<(usize, u32, u32)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Start {
                    task,
                    number,
                    retry,
                } => Some((*task, *number, *retry)),
                _ => None,
            })
            .collect()
    }

    fn settled(actions: &[Action]) -> Vec<(usize, End)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Settled { task, end } => Some((*task, end.clone())),
                _ => None,
            })
            .collect()
    }

    fn end(status: TaskStatus, skipped_by: Option<SkipCause>, why: Why) -> End {
        End {
            status,
            skipped_by,
            why,
        }
    }

    #[test]
    fn independent_tasks_start_in_plan_order_as_places_free_up() {
        let mut s = Schedule::new(vec![task("a", &[]), task("b", &[]), task("c", &[])], 2);
        assert_eq!(starts(&s.begin()), [(0, 1, 0), (1, 1, 0)]);
        let after_a = s.attempt_ended(0, Status::Succeeded, Some(0));
        assert_eq!(
            settled(&after_a),
            [(0, end(TaskStatus::Succeeded, None, Why::LastAttempt))]
        );
        assert_eq!(starts(&after_a), [(2, 1, 0)]);
        assert!(!s.is_over());
        s.attempt_ended(1, Status::Succeeded, Some(0));
        s.attempt_ended(2, Status::Succeeded, Some(0));
        assert!(s.is_over());
    }

    #[test]
    fn a_dependant_starts_only_when_its_last_dependency_ends() {
        let mut s = Schedule::new(
            vec![
                task("a", &[]),
                task("b", &[]),
                task("c", &[(0, false), (1, false)]),
            ],
            4,
        );
        assert_eq!(starts(&s.begin()), [(0, 1, 0), (1, 1, 0)]);
        assert!(starts(&s.attempt_ended(1, Status::Succeeded, Some(0))).is_empty());
        assert_eq!(
            starts(&s.attempt_ended(0, Status::Succeeded, Some(0))),
            [(2, 1, 0)]
        );
    }

    #[test]
    fn retries_wait_with_exponential_backoff_and_give_their_place_back() {
        let mut a = task("a", &[]);
        a.execution = execution(3, RetryPolicy::ExponentialBackoff);
        let mut s = Schedule::new(vec![a, task("b", &[])], 1);
        assert_eq!(starts(&s.begin()), [(0, 1, 0)]);
        // a fails: it waits 10 s without its place, so b starts meanwhile.
        let failed = s.attempt_ended(0, Status::Failed, Some(1));
        assert_eq!(
            failed,
            [
                Action::RetryLater {
                    task: 0,
                    retry: 1,
                    of: 3,
                    delay: 10
                },
                Action::Start {
                    task: 1,
                    number: 1,
                    retry: 0
                }
            ]
        );
        // Its wait ends while b holds the only place: it starts when b ends.
        assert!(s.retry_due(0).is_empty());
        assert_eq!(
            starts(&s.attempt_ended(1, Status::Succeeded, Some(0))),
            [(0, 2, 1)]
        );
        let again = s.attempt_ended(0, Status::OomKilled, Some(137));
        assert!(matches!(
            again[..],
            [Action::RetryLater {
                delay: 20,
                retry: 2,
                ..
            }]
        ));
        assert_eq!(starts(&s.retry_due(0)), [(0, 3, 2)]);
        let third = s.attempt_ended(0, Status::EngineError, None);
        assert!(matches!(
            third[..],
            [Action::RetryLater {
                delay: 40,
                retry: 3,
                ..
            }]
        ));
        s.retry_due(0);
        // The last retry's failure is final: timed out stays timed out.
        let last = s.attempt_ended(0, Status::TimedOut, None);
        assert_eq!(
            settled(&last),
            [(0, end(TaskStatus::TimedOut, None, Why::LastAttempt))]
        );
        assert!(s.is_over());
    }

    #[test]
    fn fixed_backoff_waits_the_same_before_every_retry() {
        let mut a = task("a", &[]);
        a.execution = execution(2, RetryPolicy::Fixed);
        let mut s = Schedule::new(vec![a], 1);
        s.begin();
        let delays: Vec<u64> = (0..2)
            .map(|_| {
                let actions = s.attempt_ended(0, Status::Failed, Some(1));
                s.retry_due(0);
                match actions[..] {
                    [Action::RetryLater { delay, .. }] => delay,
                    _ => u64::MAX,
                }
            })
            .collect();
        assert_eq!(delays, [10, 10]);
        let last = s.attempt_ended(0, Status::Failed, Some(1));
        assert_eq!(
            settled(&last),
            [(0, end(TaskStatus::Failed, None, Why::LastAttempt))]
        );
    }

    #[test]
    fn the_skip_exit_code_ends_the_task_without_retry_and_skips_what_follows() {
        let mut a = task("a", &[]);
        a.execution = execution(3, RetryPolicy::Fixed);
        let mut s = Schedule::new(
            vec![
                a,
                task("b", &[(0, false)]),
                task("c", &[(1, false)]),
                task("d", &[(0, true)]),
            ],
            4,
        );
        s.begin();
        let actions = s.attempt_ended(0, Status::Failed, Some(126));
        assert_eq!(
            settled(&actions),
            [
                (
                    0,
                    end(
                        TaskStatus::Skipped,
                        Some(SkipCause::ExitCode),
                        Why::SkipExitCode(126)
                    )
                ),
                (
                    1,
                    end(
                        TaskStatus::Skipped,
                        Some(SkipCause::SkippedDependency),
                        Why::Dependency("dependency a was skipped".into())
                    )
                ),
                (
                    2,
                    end(
                        TaskStatus::Skipped,
                        Some(SkipCause::SkippedDependency),
                        Why::Dependency("dependency b was skipped".into())
                    )
                ),
            ]
        );
        // `can_fail`: d runs whatever became of a.
        assert_eq!(starts(&actions), [(3, 1, 0)]);
    }

    #[test]
    fn a_failure_skips_its_dependants_transitively_and_outweighs_a_skip() {
        let mut s = Schedule::new(
            vec![
                task("a", &[]),
                task("b", &[]),
                task("c", &[(0, false), (1, false)]),
                task("d", &[(2, false)]),
            ],
            2,
        );
        s.begin();
        s.attempt_ended(0, Status::Failed, Some(126));
        let actions = s.attempt_ended(1, Status::Failed, Some(3));
        assert_eq!(
            settled(&actions),
            [
                (1, end(TaskStatus::Failed, None, Why::LastAttempt)),
                (
                    2,
                    end(
                        TaskStatus::Skipped,
                        Some(SkipCause::FailedDependency),
                        Why::Dependency("dependency b failed".into())
                    )
                ),
                (
                    3,
                    end(
                        TaskStatus::Skipped,
                        Some(SkipCause::FailedDependency),
                        Why::Dependency("dependency c was skipped".into())
                    )
                ),
            ]
        );
        assert!(s.is_over());
    }

    #[test]
    fn can_fail_lets_the_dependant_run_after_a_failure() {
        let mut s = Schedule::new(vec![task("a", &[]), task("b", &[(0, true)])], 1);
        s.begin();
        let actions = s.attempt_ended(0, Status::Failed, Some(1));
        assert_eq!(starts(&actions), [(1, 1, 0)]);
    }

    #[test]
    fn a_cancel_stops_running_tasks_and_ends_waiting_and_unstarted_ones() {
        let mut retrying = task("r", &[]);
        retrying.execution = execution(2, RetryPolicy::Fixed);
        let mut s = Schedule::new(
            vec![
                retrying,
                task("running", &[]),
                task("ready", &[]),
                task("after", &[(1, false)]),
            ],
            2,
        );
        assert_eq!(starts(&s.begin()), [(0, 1, 0), (1, 1, 0)]);
        // r fails and waits to retry; `ready` takes its place and runs.
        let failed = s.attempt_ended(0, Status::Failed, Some(1));
        assert_eq!(starts(&failed), [(2, 1, 0)]);
        let cancel = s.cancel();
        assert_eq!(
            cancel,
            [
                Action::Settled {
                    task: 0,
                    end: end(
                        TaskStatus::Cancelled,
                        None,
                        Why::Cancelled("while waiting to retry")
                    )
                },
                Action::Settled {
                    task: 3,
                    end: end(TaskStatus::Cancelled, None, Why::NotStarted)
                },
                Action::Stop { task: 1 },
                Action::Stop { task: 2 },
            ]
        );
        // A second cancel asks again, and ends nothing more.
        assert_eq!(
            s.cancel(),
            [Action::Stop { task: 1 }, Action::Stop { task: 2 }]
        );
        // A retry wait that ends after the cancel starts nothing.
        assert!(s.retry_due(0).is_empty());
        // Running attempts end in their own words; a success stays a success.
        let stopped = s.attempt_ended(1, Status::Cancelled, None);
        assert_eq!(
            settled(&stopped),
            [(1, end(TaskStatus::Cancelled, None, Why::LastAttempt))]
        );
        let finished = s.attempt_ended(2, Status::Succeeded, Some(0));
        assert_eq!(
            settled(&finished),
            [(2, end(TaskStatus::Succeeded, None, Why::LastAttempt))]
        );
        assert!(s.is_over());
    }

    #[test]
    fn an_attempt_failing_after_a_cancel_is_not_retried() {
        let mut a = task("a", &[]);
        a.execution = execution(3, RetryPolicy::Fixed);
        let mut s = Schedule::new(vec![a], 1);
        s.begin();
        s.cancel();
        let actions = s.attempt_ended(0, Status::Failed, Some(1));
        assert_eq!(
            actions,
            [Action::Settled {
                task: 0,
                end: end(
                    TaskStatus::Cancelled,
                    None,
                    Why::Cancelled("instead of retrying")
                )
            }]
        );
    }

    #[test]
    fn resume_keeps_settled_tasks_and_numbers_attempts_on() {
        let mut a = task("a", &[]);
        a.kept = Some((TaskStatus::Succeeded, None));
        a.attempts_before = 2;
        let mut b = task("b", &[]);
        b.kept = Some((TaskStatus::Skipped, Some(SkipCause::ExitCode)));
        let mut c = task("c", &[(0, false)]);
        c.attempts_before = 1;
        let d = task("d", &[(1, false)]);
        let mut s = Schedule::new(vec![a, b, c, d], 4);
        let actions = s.begin();
        assert_eq!(starts(&actions), [(2, 2, 0)]);
        assert_eq!(
            settled(&actions),
            [(
                3,
                end(
                    TaskStatus::Skipped,
                    Some(SkipCause::SkippedDependency),
                    Why::Dependency("dependency b was skipped".into())
                )
            )]
        );
        s.attempt_ended(2, Status::Succeeded, Some(0));
        assert!(s.is_over());
    }

    #[test]
    fn a_refused_start_fails_the_task_and_frees_its_place() {
        let mut s = Schedule::new(
            vec![task("a", &[]), task("b", &[(0, false)]), task("c", &[])],
            1,
        );
        assert_eq!(starts(&s.begin()), [(0, 1, 0)]);
        let actions = s.refused(0, "cannot write the manifest".into());
        assert_eq!(
            settled(&actions),
            [
                (
                    0,
                    end(
                        TaskStatus::Failed,
                        None,
                        Why::Refused("cannot write the manifest".into())
                    )
                ),
                (
                    1,
                    end(
                        TaskStatus::Skipped,
                        Some(SkipCause::FailedDependency),
                        Why::Dependency("dependency a failed".into())
                    )
                ),
            ]
        );
        assert_eq!(starts(&actions), [(2, 1, 0)]);
    }

    #[test]
    fn a_long_chain_is_settled_without_deep_recursion_and_in_linear_steps() {
        let count = 100_000;
        let specs = (0..count)
            .map(|i| {
                if i == 0 {
                    task("t0", &[])
                } else {
                    task(&format!("t{i}"), &[(i - 1, false)])
                }
            })
            .collect();
        let mut s = Schedule::new(specs, 2);
        s.begin();
        let actions = s.attempt_ended(0, Status::Failed, Some(1));
        assert_eq!(settled(&actions).len(), count);
        assert!(s.is_over());
    }
}
