//! Which gateway state a gate's workflow tasks call models through.
//!
//! A workflow suite's cases are tasks, run by the engine, whose `llm` steps reach the
//! gateway through whichever state serves when each call is made. A gate must judge
//! the state it means to (the candidate, before it serves; the serving one, for a
//! baseline), so its tasks run as tenants of the gate's own ([`task_tenant`]), pinned
//! to those states while the gate runs. A task of a gate's tenant with no pin (its
//! gate is over, or another node claimed it) is given no state: its call fails rather
//! than run on a state nobody is judging, and the gate fails with it.
//!
//! Generic over the state so that the server's gateway state stays the server's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The start of every tenant a gate's workflow tasks run as.
pub const TASK_TENANT_PREFIX: &str = "holdfast:gate-v";

/// The tenant the tasks of the gate on version `candidate` run as through its `role`
/// (`candidate` or `serving`) state.
pub fn task_tenant(candidate: u64, role: &str) -> String {
    format!("{TASK_TENANT_PREFIX}{candidate}-{role}")
}

/// The states pinned by the gates running now, by tenant.
pub struct Pinned<S> {
    states: Mutex<HashMap<String, Arc<S>>>,
}

impl<S> Default for Pinned<S> {
    fn default() -> Self {
        Pinned {
            states: Mutex::new(HashMap::new()),
        }
    }
}

impl<S> Pinned<S> {
    /// The state `tenant`'s tasks call through: `current()` for any tenant but a
    /// gate's, the pinned one for a gate's, and `None` for a gate's with no pin.
    pub fn state_for(&self, tenant: &str, current: impl FnOnce() -> Arc<S>) -> Option<Arc<S>> {
        if !tenant.starts_with(TASK_TENANT_PREFIX) {
            return Some(current());
        }
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(tenant).cloned()
    }

    /// Pins the gate on `candidate`'s tenants to `serving` and `judged` until the
    /// guard drops.
    pub fn pin(&self, candidate: u64, serving: &Arc<S>, judged: &Arc<S>) -> Pins<'_, S> {
        let tenants = [
            task_tenant(candidate, "serving"),
            task_tenant(candidate, "candidate"),
        ];
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        for (tenant, state) in tenants.iter().zip([serving, judged]) {
            states.insert(tenant.clone(), Arc::clone(state));
        }
        Pins {
            pinned: self,
            tenants,
        }
    }
}

/// A gate's pins, removed when it drops.
pub struct Pins<'a, S> {
    pinned: &'a Pinned<S>,
    tenants: [String; 2],
}

impl<S> Drop for Pins<'_, S> {
    fn drop(&mut self) {
        let mut states = self.pinned.states.lock().unwrap_or_else(|e| e.into_inner());
        for tenant in &self.tenants {
            states.remove(tenant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gates_tasks_call_through_its_states_only_while_it_runs() {
        let pinned: Pinned<&str> = Pinned::default();
        let (now, old, new) = (Arc::new("now"), Arc::new("old"), Arc::new("new"));
        let current = || Arc::clone(&now);
        let candidate = task_tenant(7, "candidate");
        assert_eq!(pinned.state_for("acme", current).as_deref(), Some(&"now"));
        assert_eq!(pinned.state_for(&candidate, current), None);
        {
            let _pins = pinned.pin(7, &old, &new);
            assert_eq!(
                pinned.state_for(&candidate, current).as_deref(),
                Some(&"new")
            );
            let serving = task_tenant(7, "serving");
            assert_eq!(pinned.state_for(&serving, current).as_deref(), Some(&"old"));
            assert_eq!(
                pinned.state_for(&task_tenant(8, "candidate"), current),
                None
            );
        }
        assert_eq!(pinned.state_for(&candidate, current), None);
    }
}
