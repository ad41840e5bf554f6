//! Conversion progress: the reading, mapping and writing steps report (stage, done,
//! total) to a process-wide hook, which the CLI draws as a bar on a terminal. No hook:
//! nothing is reported.
use std::sync::Mutex;

type Hook = Box<dyn Fn(&str, u64, u64) + Send>;

static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

/// Install (Some) or remove (None) the hook.
pub fn set_hook(hook: Option<Hook>) {
    *HOOK.lock().unwrap_or_else(|e| e.into_inner()) = hook;
}

/// Report `done` of `total` units of `stage`.
pub fn report(stage: &str, done: u64, total: u64) {
    if let Some(h) = HOOK.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        h(stage, done, total);
    }
}
