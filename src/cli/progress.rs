//! A progress bar on stderr for work that takes more than a second, drawn only when stderr
//! is a terminal (never into logs or pipes).
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

/// `stage [#########...........]  45%  1.3 s` in `width` bar cells.
pub fn line(stage: &str, done: u64, total: u64, secs: f64, width: usize) -> String {
    let frac = if total == 0 { 1.0 } else { (done as f64 / total as f64).clamp(0.0, 1.0) };
    let full = (frac * width as f64).round() as usize;
    format!("{stage:<10} [{}{}] {:>3.0}%  {secs:.1} s", "#".repeat(full), ".".repeat(width - full), frac * 100.0)
}

/// Draws `line`s for a conversion; the hook `wgvision_weights::progress` calls it.
pub struct Bar {
    started: Instant,
    drawn: Mutex<bool>,
    tty: bool,
    /// Seconds before the first draw: 1, or `WGVISION_PROGRESS_AFTER` (tests set 0).
    after: f64,
}

impl Bar {
    pub fn new() -> Bar {
        let after = std::env::var("WGVISION_PROGRESS_AFTER").ok().and_then(|v| v.parse::<f64>().ok()).filter(|v| *v >= 0.0).unwrap_or(1.0);
        Bar { started: Instant::now(), drawn: Mutex::new(false), tty: std::io::stderr().is_terminal(), after }
    }

    pub fn update(&self, stage: &str, done: u64, total: u64) {
        let secs = self.started.elapsed().as_secs_f64();
        if !self.tty || secs < self.after {
            return;
        }
        *self.drawn.lock().unwrap_or_else(|e| e.into_inner()) = true;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}", line(stage, done, total, secs, 30));
        let _ = err.flush();
    }

    /// Erase the bar's line (if one was drawn) so other output starts on a clean line; the
    /// next `update` draws it again.
    pub fn clear(&self) {
        let mut drawn = self.drawn.lock().unwrap_or_else(|e| e.into_inner());
        if *drawn {
            eprint!("\r\x1b[2K");
            *drawn = false;
        }
    }

    /// End the bar's line (if one was drawn).
    pub fn finish(&self) {
        if *self.drawn.lock().unwrap_or_else(|e| e.into_inner()) {
            eprintln!();
        }
    }
}

static CURRENT: Mutex<Option<std::sync::Arc<Bar>>> = Mutex::new(None);

/// Install a bar as the conversion progress hook until the returned guard drops.
pub fn conversion_bar() -> Guard {
    let bar = std::sync::Arc::new(Bar::new());
    let b = bar.clone();
    wgvision::weights::progress::set_hook(Some(Box::new(move |stage, done, total| b.update(stage, done, total))));
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    Guard
}

/// Stop drawing and end the bar's line, before printing a summary.
pub fn end_line() {
    wgvision::weights::progress::set_hook(None);
    if let Some(bar) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bar.finish();
    }
}

pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        end_line();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bar_line_shows_the_fraction() {
        assert_eq!(super::line("writing", 1, 4, 2.0, 8), "writing    [##......]  25%  2.0 s");
        assert_eq!(super::line("reading", 9, 0, 1.25, 4), "reading    [####] 100%  1.2 s");
        assert_eq!(super::line("x", 10, 4, 0.0, 2), "x          [##] 100%  0.0 s");
    }
}
