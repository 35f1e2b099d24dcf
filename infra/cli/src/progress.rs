//! Progress for long work: an `indicatif` bar (or spinner, when the total is unknown) on a
//! terminal, and plain lines when stderr is not one (a log file, CI), at most one every few
//! seconds and one at the end. Progress goes to stderr, so stdout stays the command's
//! answer (and `--json` stays parseable).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is written.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub enum Progress {
    Bar(ProgressBar),
    Plain {
        total: Option<u64>,
        started: Instant,
        last: Mutex<Instant>,
    },
    /// Nothing at all (`--json` on a terminal still shows the bar; tests use this).
    Quiet,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn new(total: Option<u64>) -> Self {
        if std::io::stderr().is_terminal() {
            Self::bar(total)
        } else {
            Self::plain(total)
        }
    }

    pub fn bar(total: Option<u64>) -> Self {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({per_sec}, {eta} left)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {pos} {msg} ({per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::Bar(bar)
    }

    pub fn plain(total: Option<u64>) -> Self {
        let now = Instant::now();
        Self::Plain {
            total,
            started: now,
            last: Mutex::new(now),
        }
    }

    /// `done` units so far.
    pub fn set(&self, done: u64, what: &str) {
        match self {
            Self::Bar(b) => {
                b.set_position(done);
                b.set_message(what.to_owned());
            }
            Self::Plain {
                total,
                started,
                last,
            } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= PLAIN_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", plain_line(done, *total, what, started.elapsed()));
                }
            }
            Self::Quiet => {}
        }
    }

    /// The work is done: `done` units in all.
    pub fn finish(&self, done: u64, what: &str) {
        match self {
            Self::Bar(b) => {
                b.set_position(done);
                b.finish_with_message(what.to_owned());
            }
            Self::Plain { total, started, .. } => {
                eprintln!("{}", plain_line(done, *total, what, started.elapsed()));
            }
            Self::Quiet => {}
        }
    }
}

/// `1200/5000 rows imported (2400/s)`.
pub fn plain_line(done: u64, total: Option<u64>, what: &str, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
    match total {
        Some(t) => format!("{done}/{t} {what} ({rate:.0}/s)"),
        None => format!("{done} {what} ({rate:.0}/s)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_gives_the_count_and_the_rate() {
        assert_eq!(
            plain_line(
                1200,
                Some(5000),
                "rows imported",
                Duration::from_millis(500)
            ),
            "1200/5000 rows imported (2400/s)"
        );
        assert_eq!(
            plain_line(7, None, "events replayed", Duration::from_secs(7)),
            "7 events replayed (1/s)"
        );
    }
}
