//! Progress of long work on stderr: an indicatif bar when stderr is a terminal, plain lines
//! otherwise (a log file or a pipe gets no escape codes and no redrawn line), so stdout stays
//! the command's result (`--json` included).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar, redrawn in place.
    Bar,
    /// A line now and then: at most [`PLAIN_LINES`] for the whole work, and the last one.
    Lines,
}

/// About how many plain lines a whole run prints.
pub const PLAIN_LINES: u64 = 10;

impl Mode {
    /// A bar on a terminal, plain lines anywhere else.
    pub fn choose(stderr_is_terminal: bool) -> Self {
        if stderr_is_terminal {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// Whether the plain line for `done` of `total` is printed: every tenth of the way and the
/// last; each one when the total is unknown (0) or small.
pub fn line_due(done: u64, total: u64) -> bool {
    if total <= PLAIN_LINES {
        return true;
    }
    let step = total.div_ceil(PLAIN_LINES);
    done.is_multiple_of(step) || done == total
}

/// Progress of `total` items (0 when unknown), called `what` ("moved").
pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Shown as [`Mode::choose`] decides for this process's stderr.
    pub fn start(what: &'static str, total: u64) -> Self {
        Self::with_mode(Mode::choose(std::io::stderr().is_terminal()), what, total)
    }

    pub fn with_mode(mode: Mode, what: &'static str, total: u64) -> Self {
        let bar = (mode == Mode::Bar).then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar
        });
        Self {
            what,
            total,
            done: 0,
            bar,
        }
    }

    /// One more item done.
    pub fn inc(&mut self) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                if self.done > self.total {
                    bar.set_length(self.done);
                }
                bar.inc(1);
            }
            None if line_due(self.done, self.total) => {
                eprintln!("{}", self.line());
            }
            None => {}
        }
    }

    /// The plain line for where the work is.
    pub fn line(&self) -> String {
        if self.total >= self.done && self.total > 0 {
            format!("{} {} of {}", self.what, self.done, self.total)
        } else {
            format!("{} {}", self.what, self.done)
        }
    }

    /// Ends the bar (plain lines have nothing to end).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_a_bar_and_anything_else_plain_lines() {
        assert_eq!(Mode::choose(true), Mode::Bar);
        assert_eq!(Mode::choose(false), Mode::Lines);
    }

    #[test]
    fn plain_lines_come_every_tenth_of_the_way_and_at_the_end() {
        let printed: Vec<u64> = (1..=95).filter(|&d| line_due(d, 95)).collect();
        assert_eq!(printed, [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]);
        assert!((1..=4).all(|d| line_due(d, 4)), "a short run: each one");
        assert!(line_due(7, 0), "unknown total: each one");
    }

    #[test]
    fn a_plain_line_says_how_far_of_how_many() {
        let mut p = Progress::with_mode(Mode::Lines, "moved", 3);
        p.inc();
        assert_eq!(p.line(), "moved 1 of 3");
        let mut unknown = Progress::with_mode(Mode::Lines, "moved", 0);
        unknown.inc();
        assert_eq!(unknown.line(), "moved 1");
    }
}
