//! Progress of long work, on stderr (stdout stays the command's answer, `--json` included): an
//! indicatif bar with the rate when stderr is a terminal, otherwise a plain line every few
//! seconds, so logs and CI output get readable lines rather than redraw codes.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line is printed when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Counts done units of a known total.
pub struct Progress {
    label: String,
    unit: &'static str,
    total: u64,
    done: AtomicU64,
    started: Instant,
    shown: Shown,
}

enum Shown {
    Bar(ProgressBar),
    Lines { last: Mutex<Instant> },
    Hidden,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn new(label: &str, total: u64, unit: &'static str) -> Self {
        let shown = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:32}] {human_pos}/{human_len} {prefix} · {rate} {prefix}/s · eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    write!(w, "{:.0}", s.per_sec()).ok();
                },
            )
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_owned());
            bar.set_prefix(unit);
            bar.enable_steady_tick(Duration::from_millis(200));
            Shown::Bar(bar)
        } else {
            Shown::Lines {
                last: Mutex::new(Instant::now()),
            }
        };
        Self::with(label, total, unit, shown)
    }

    /// Counts without showing anything.
    pub fn hidden(label: &str, total: u64, unit: &'static str) -> Self {
        Self::with(label, total, unit, Shown::Hidden)
    }

    fn with(label: &str, total: u64, unit: &'static str, shown: Shown) -> Self {
        Self {
            label: label.to_owned(),
            unit,
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            shown,
        }
    }

    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        match &self.shown {
            Shown::Bar(bar) => bar.inc(n),
            Shown::Lines { last } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line(done));
                    std::io::stderr().flush().ok();
                }
            }
            Shown::Hidden => {}
        }
    }

    /// Units done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Clears the bar; the caller prints the summary.
    pub fn finish(&self) {
        if let Shown::Bar(bar) = &self.shown {
            bar.finish_and_clear();
        }
    }

    /// `import users.csv: 20000/100000 rows (20 %), 1450 rows/s`
    fn line(&self, done: u64) -> String {
        let pct = (done * 100).checked_div(self.total).unwrap_or(100);
        format!(
            "{}: {done}/{} {} ({pct} %), {:.0} {}/s",
            self.label,
            self.total,
            self.unit,
            rate(done, self.started.elapsed()),
            self.unit
        )
    }
}

/// Units per second, 0 for no time at all.
pub fn rate(units: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        units as f64 / s
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_names_the_work_the_share_done_and_the_rate() {
        let p = Progress::hidden("import users.csv", 200, "rows");
        p.inc(50);
        let line = p.line(p.done());
        assert!(
            line.starts_with("import users.csv: 50/200 rows (25 %), "),
            "{line}"
        );
        assert!(line.ends_with(" rows/s"), "{line}");
        assert_eq!(rate(100, Duration::from_secs(4)), 25.0);
        assert_eq!(rate(100, Duration::ZERO), 0.0);
    }
}
