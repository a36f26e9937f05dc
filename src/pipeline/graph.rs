//! The dependency graph of a pipeline: cycles (each reported once, at the edge that
//! closes it) and levels. Pure functions over task indices, so they are tested alone.

/// A dependency edge: `task` runs after `upstream`, declared at `pointer`.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub task: usize,
    pub upstream: usize,
    pub pointer: String,
    pub can_fail: bool,
    pub via: &'static str,
}

/// The cycles of the dependency graph, one per dependency that closes one: the tasks in
/// run order, starting and ending at the same task, and the index of the edge that closes
/// it (the one where the depth-first search, in file order, found the cycle). Iterative,
/// so a huge pipeline cannot overflow the stack.
pub(crate) fn find_cycles(tasks: usize, edges: &[Edge]) -> Vec<(Vec<usize>, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    // upstreams[t]: the edges of t, in declaration order.
    let mut upstreams: Vec<Vec<usize>> = vec![Vec::new(); tasks];
    for (i, e) in edges.iter().enumerate() {
        upstreams[e.task].push(i);
    }
    let mut mark = vec![Mark::New; tasks];
    let mut cycles = Vec::new();
    for root in 0..tasks {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (task, next edge to follow).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnStack;
        while let Some(&mut (task, ref mut next)) = stack.last_mut() {
            if let Some(&edge) = upstreams[task].get(*next) {
                *next += 1;
                let upstream = edges[edge].upstream;
                match mark[upstream] {
                    Mark::New => {
                        mark[upstream] = Mark::OnStack;
                        stack.push((upstream, 0));
                    }
                    Mark::OnStack => {
                        // stack[from..] = upstream, …, task: each depends on the next, and
                        // task depends on upstream. In run order: upstream → task → … → upstream.
                        let from = stack.iter().position(|&(t, _)| t == upstream).unwrap_or(0);
                        let mut path = vec![upstream];
                        path.extend(stack[from..].iter().rev().map(|&(t, _)| t));
                        cycles.push((path, edge));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[task] = Mark::Done;
                stack.pop();
            }
        }
    }
    cycles
}

/// The level of every task of an acyclic graph (0-based): 0 without dependencies, else
/// one more than its deepest dependency.
pub(crate) fn levels(tasks: usize, edges: &[Edge]) -> Vec<usize> {
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); tasks];
    let mut waiting = vec![0usize; tasks];
    for e in edges {
        downstream[e.upstream].push(e.task);
        waiting[e.task] += 1;
    }
    let mut level = vec![0usize; tasks];
    let mut ready: Vec<usize> = (0..tasks).filter(|&t| waiting[t] == 0).collect();
    while let Some(t) = ready.pop() {
        for &d in &downstream[t] {
            level[d] = level[d].max(level[t] + 1);
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(d);
            }
        }
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(task, upstream)` pairs: task runs after upstream.
    fn edges(pairs: &[(usize, usize)]) -> Vec<Edge> {
        pairs
            .iter()
            .map(|&(task, upstream)| Edge {
                task,
                upstream,
                pointer: String::new(),
                can_fail: false,
                via: "depends_on",
            })
            .collect()
    }

    #[test]
    fn a_three_task_cycle_is_found_once_in_run_order() {
        // a(0) runs after c(2), b(1) after a, c after b: a → b → c → a.
        let e = edges(&[(0, 2), (1, 0), (2, 1)]);
        let cycles = find_cycles(3, &e);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        let (path, closing) = &cycles[0];
        assert_eq!(path, &vec![0, 1, 2, 0]);
        // Found while following b's dependency on a (edge 1).
        assert_eq!(*closing, 1);
        // Each arrow is a real edge, upstream → task.
        for pair in path.windows(2) {
            assert!(
                e.iter().any(|x| x.upstream == pair[0] && x.task == pair[1]),
                "{pair:?} is not an edge"
            );
        }
    }

    #[test]
    fn self_dependency_and_two_separate_cycles() {
        assert_eq!(find_cycles(1, &edges(&[(0, 0)])), vec![(vec![0, 0], 0)]);
        let cycles = find_cycles(4, &edges(&[(0, 1), (1, 0), (2, 3), (3, 2)]));
        assert_eq!(cycles.len(), 2, "{cycles:?}");
    }

    #[test]
    fn a_diamond_has_no_cycle_and_three_levels() {
        // fan-out from 0 to 1 and 2, fan-in to 3.
        let e = edges(&[(1, 0), (2, 0), (3, 1), (3, 2)]);
        assert!(find_cycles(4, &e).is_empty());
        assert_eq!(levels(4, &e), vec![0, 1, 1, 2]);
    }

    #[test]
    fn level_is_the_longest_path_not_the_first_seen() {
        // 3 depends on 0 directly and through 1 → 2.
        let e = edges(&[(3, 0), (1, 0), (2, 1), (3, 2)]);
        assert_eq!(levels(4, &e), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let pairs: Vec<(usize, usize)> = (1..n).map(|i| (i, i - 1)).chain([(0, n - 1)]).collect();
        let cycles = find_cycles(n, &edges(&pairs));
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].0.len(), n + 1);
    }
}
