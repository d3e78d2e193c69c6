//! What to undo if this process is interrupted (SIGINT, SIGTERM, SIGHUP).
//!
//! Operations that stage data (a layer being unpacked, a scratch
//! directory, a partial output file) register an undo action and disarm it
//! once the data is published or removed. The CLI's signal handler calls
//! [`interrupt`], which runs every armed action and then keeps the
//! registry locked until the process exits, so no operation publishes
//! anything after its staging data is gone. Publishing steps run under
//! the same registry lock ([`Armed::disarm_after`]): an interrupt lands
//! either before the publish (the staging data is removed, nothing is
//! published) or after it (the action is disarmed, what was published
//! stays whole).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// An undo action.
pub type Undo = Box<dyn FnOnce() + Send>;

struct Registry {
    next: u64,
    actions: Vec<(u64, Undo)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { next: 0, actions: Vec::new() });

/// Set once [`interrupt`] has begun.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// An armed undo action; dropping it disarms it without running it.
#[must_use = "dropping the guard disarms the action at once"]
pub struct Armed(u64);

/// Arm `undo` to run if this process is interrupted before the returned
/// guard is dropped.
pub fn on_interrupt(undo: impl FnOnce() + Send + 'static) -> Armed {
    arm(&mut registry(), Box::new(undo))
}

/// Create something that needs undoing and arm its undo action in one
/// step: `create` runs with the registry locked, so an interrupt lands
/// before anything exists or after the undo action is armed.
pub fn create_armed<T, E>(create: impl FnOnce() -> Result<(T, Undo), E>) -> Result<(T, Armed), E> {
    let mut r = registry();
    let (made, undo) = create()?;
    Ok((made, arm(&mut r, undo)))
}

fn arm(r: &mut Registry, undo: Undo) -> Armed {
    r.next += 1;
    let id = r.next;
    r.actions.push((id, undo));
    Armed(id)
}

impl Armed {
    /// Run `publish` with the registry locked, then disarm: an interrupt
    /// cannot run the undo action while `publish` runs or after.
    pub fn disarm_after<R>(self, publish: impl FnOnce() -> R) -> R {
        let mut r = registry();
        let out = publish();
        r.actions.retain(|(id, _)| *id != self.0);
        std::mem::forget(self);
        out
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        registry().actions.retain(|(id, _)| *id != self.0);
    }
}

/// Run every armed action (newest first) and return with the registry
/// locked: the caller exits the process while holding the returned guard.
pub fn interrupt() -> impl Drop {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let mut r = registry();
    while let Some((_, undo)) = r.actions.pop() {
        undo();
    }
    r
}

/// Called by the main thread before the process exits on its own: if an
/// interrupt is being handled, wait (forever) for the handler to exit the
/// process with its status, instead of racing it with another one.
pub fn wait_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        let _r = registry();
        loop {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn only_armed_actions_run() {
        let ran = Arc::new(AtomicU32::new(0));
        let (a, b, c) = (ran.clone(), ran.clone(), ran.clone());
        let kept = on_interrupt(move || {
            a.fetch_add(1, Ordering::SeqCst);
        });
        drop(on_interrupt(move || {
            b.fetch_add(10, Ordering::SeqCst);
        }));
        on_interrupt(move || {
            c.fetch_add(100, Ordering::SeqCst);
        })
        .disarm_after(|| ());
        drop(interrupt());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        drop(kept);
    }
}
