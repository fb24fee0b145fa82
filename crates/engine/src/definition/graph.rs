//! The dependency graph of a workflow's steps: cycles, and what runs before what.

use std::collections::HashSet;

/// A cycle in the dependency graph, as step indices, if there is one.
pub(super) fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Open;
        stack.push(i);
        for &d in &deps[i] {
            match marks[d] {
                Mark::Open => {
                    let start = stack.iter().position(|&s| s == d).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(d);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, deps, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; deps.len()];
    for i in 0..deps.len() {
        if marks[i] == Mark::New
            && let Some(c) = visit(i, deps, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// For each step, every step that must be committed before it (transitively).
pub(super) fn ancestors(deps: &[Vec<usize>]) -> Vec<HashSet<usize>> {
    let mut memo: Vec<Option<HashSet<usize>>> = vec![None; deps.len()];
    fn of(i: usize, deps: &[Vec<usize>], memo: &mut Vec<Option<HashSet<usize>>>) -> HashSet<usize> {
        if let Some(s) = &memo[i] {
            return s.clone();
        }
        let mut set = HashSet::new();
        for &d in &deps[i] {
            set.insert(d);
            set.extend(of(d, deps, memo));
        }
        memo[i] = Some(set.clone());
        set
    }
    (0..deps.len()).map(|i| of(i, deps, &mut memo)).collect()
}
