//! How a bulk command reports its progress on stderr. On a terminal: one status line that
//! rewrites itself in place (`\r`, clear to the end of the line), never wider than the
//! terminal so it never wraps (a wrapped line can no longer be rewritten by `\r`), redrawn at
//! most ten times a second, with each failure printed above it as it happens. Anywhere else
//! (a pipe, a log file, CI): a plain line per listing page at most once a second, because
//! `\r` redraws turn a log into one unreadable line.
//!
//! The lines are made by pure functions of a [`Tally`] and the time elapsed, so they are
//! tested without a terminal or a clock.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

/// How a run reports its progress on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Progress {
    /// Not at all (callers that print their own report).
    #[default]
    Off,
    /// A plain line after a listing page, at most once a second.
    Lines,
    /// A status line that rewrites itself, at most `width` columns wide.
    Bar { width: usize },
}

/// The width assumed when the terminal's is unknown: the size of a new terminal window.
/// Reading the real one takes an ioctl, which needs `unsafe` (forbidden in this crate).
pub const DEFAULT_WIDTH: usize = 80;

/// How often the status line is redrawn at most: quick enough to look live, and few enough
/// writes that a run of many small objects is not slowed by its terminal.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// How often a plain line is written at most.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// The cells of the bar graphic, when the line has room for them.
const BAR_CELLS: std::ops::RangeInclusive<usize> = 10..=30;

/// Bytes in a MiB, for the plain line.
const MIB: f64 = 1024.0 * 1024.0;

impl Progress {
    /// The report for stderr: a status line when it is a terminal, as wide as `columns` (the
    /// `COLUMNS` variable, which shells set for the terminal they run in) or
    /// [`DEFAULT_WIDTH`]; plain lines when it is not.
    pub fn for_stderr(is_terminal: bool, columns: Option<&str>) -> Progress {
        if !is_terminal {
            return Progress::Lines;
        }
        let width = columns
            .and_then(|c| c.trim().parse().ok())
            .filter(|&w| w > 0)
            .unwrap_or(DEFAULT_WIDTH);
        Progress::Bar { width }
    }
}

/// What a run has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Tally {
    /// Objects finished, failed or not.
    pub done: usize,
    pub failed: usize,
    /// The listed sizes of the objects finished.
    pub bytes: u64,
    /// The objects and bytes the run will visit, once its counting listing is in.
    pub total: Option<(usize, u64)>,
    /// The last key of the last listing page finished: every key up to it is done, so a run
    /// that stops resumes after it (`--start-after`).
    pub done_up_to: Option<String>,
}

/// Writes the progress of one run to `out` (stderr, or a buffer in tests).
pub(super) struct Reporter<'a, W: Write> {
    style: Progress,
    name: &'a str,
    out: W,
    started: Instant,
    last_drawn: Option<Instant>,
}

impl<'a, W: Write> Reporter<'a, W> {
    pub fn new(style: Progress, name: &'a str, out: W, started: Instant) -> Self {
        Reporter {
            style,
            name,
            out,
            started,
            // The first plain line comes after a second, as every later one.
            last_drawn: (style == Progress::Lines).then_some(started),
        }
    }

    /// One object finished (`failure` is its key and the reason, if it failed).
    pub fn object_done(&mut self, tally: &Tally, failure: Option<(&str, &str)>, now: Instant) {
        let Progress::Bar { width } = self.style else {
            return;
        };
        if let Some((key, why)) = failure {
            // Above the status line, which is drawn again under it at once.
            let line = format!("failed {}: {}", printable(key), printable(why));
            self.write(&format!("\r\x1b[K{line}\n"));
            self.draw(tally, width, now);
        } else if self.due(REDRAW_EVERY, now) {
            self.draw(tally, width, now);
        }
    }

    /// A listing page finished (`last`: the run's last page).
    pub fn page_done(&mut self, tally: &Tally, last: bool, now: Instant) {
        match self.style {
            Progress::Off => {}
            Progress::Lines => {
                if last || self.due(LINE_EVERY, now) {
                    self.last_drawn = Some(now);
                    let line = plain_line(self.name, tally, now - self.started);
                    self.write(&format!("{line}\n"));
                }
            }
            Progress::Bar { width } => {
                if self.due(REDRAW_EVERY, now) {
                    self.draw(tally, width, now);
                }
            }
        }
    }

    /// The run ended, done or stopped by an error: the status line as it ends, and the newline
    /// that keeps what is printed next (the summary, the error) off it.
    pub fn finish(&mut self, tally: &Tally, now: Instant) {
        if let Progress::Bar { width } = self.style {
            self.draw(tally, width, now);
            self.write("\n");
        }
    }

    fn due(&self, every: Duration, now: Instant) -> bool {
        self.last_drawn
            .is_none_or(|last| now.saturating_duration_since(last) >= every)
    }

    fn draw(&mut self, tally: &Tally, width: usize, now: Instant) {
        self.last_drawn = Some(now);
        let line = status_line(self.name, tally, now - self.started, width);
        self.write(&format!("\r\x1b[K{line}"));
    }

    /// One write per line, so a line is never interleaved with anything; a failed write
    /// (stderr closed) loses only the progress report, never the run.
    fn write(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }
}

/// The plain line: `<name>: <n> objects, <MiB> MiB, <n> failed, <n>/s, <MiB>/s MiB/s, <s>s`,
/// then `, <done>/<total>, ETA <s>s` once counted, and `; done up to "<key>" (--start-after to
/// resume)`.
pub(super) fn plain_line(name: &str, t: &Tally, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let resume = t.done_up_to.as_ref().map_or_else(String::new, |k| {
        format!("; done up to {k:?} (--start-after to resume)")
    });
    let eta = t
        .total
        .map_or_else(String::new, |total| eta(total, (t.done, t.bytes), secs));
    #[allow(clippy::cast_precision_loss)]
    let (rate, mib) = (t.done as f64 / secs, t.bytes as f64 / MIB);
    format!(
        "{name}: {} objects, {mib:.1} MiB, {} failed, {rate:.0}/s, {:.1} MiB/s, \
         {secs:.0}s{eta}{resume}",
        t.done,
        t.failed,
        mib / secs,
    )
}

/// `, <n>/<total>, ETA <s>s`: the time left at the rate so far.
pub(super) fn eta(total: (usize, u64), done: (usize, u64), secs: f64) -> String {
    let left =
        seconds_left(total, done, secs).map_or_else(|| "?".to_owned(), |s| format!("{s:.0}s"));
    format!(", {}/{}, ETA {left}", done.0, total.0)
}

/// The part of the run done, by bytes (by objects when they are all empty).
fn part_done((objects, bytes): (usize, u64), (done, done_bytes): (usize, u64)) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    if bytes > 0 {
        done_bytes as f64 / bytes as f64
    } else {
        done as f64 / objects.max(1) as f64
    }
}

/// The seconds left at the rate so far; `None` before anything is done.
fn seconds_left(total: (usize, u64), done: (usize, u64), secs: f64) -> Option<f64> {
    let part = part_done(total, done);
    (part > 0.0).then(|| secs * (1.0 - part).max(0.0) / part)
}

/// The status line, at most `width - 1` columns (a terminal may wrap as soon as its last
/// column is written): `<name> [####      ] 42% 420/1000 objects, 1.2 GiB/3.0 GiB, ETA 3m12s,
/// 2 failed, 35/s, 4.5 MiB/s, done up to "<key>"`. Before the count is in, no bar, no totals
/// and `counting` in place of the ETA. The bar takes the room the numbers leave (none when
/// too little), and what does not fit is cut from the end, the resume key first.
pub(super) fn status_line(name: &str, t: &Tally, elapsed: Duration, width: usize) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    #[allow(clippy::cast_precision_loss)]
    let rate = t.done as f64 / secs;
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let byte_rate = (t.bytes as f64 / secs) as u64;
    // Most wanted first: what does not fit is cut from the end.
    let mut stats = String::new();
    let mut part = None;
    match t.total {
        Some(total) => {
            let done = part_done(total, (t.done, t.bytes)).clamp(0.0, 1.0);
            part = Some(done);
            let left = seconds_left(total, (t.done, t.bytes), secs);
            let _ = write!(
                stats,
                "{:.0}% {}/{} objects, {}/{}, ETA {}",
                done * 100.0,
                t.done,
                total.0,
                size(t.bytes),
                size(total.1),
                left.map_or_else(|| "?".to_owned(), clock),
            );
        }
        None => {
            let _ = write!(stats, "{} objects, {}, counting", t.done, size(t.bytes));
        }
    }
    if t.failed > 0 {
        let _ = write!(stats, ", {} failed", t.failed);
    }
    let _ = write!(stats, ", {rate:.0}/s, {}/s", size(byte_rate));
    let room = width.saturating_sub(1);
    let mut line = name.to_owned();
    let spare = room.saturating_sub(columns(name) + 1 + columns(&stats) + 3);
    if let Some(part) = part.filter(|_| spare >= *BAR_CELLS.start()) {
        let cells = spare.min(*BAR_CELLS.end());
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let filled = ((cells as f64 * part).round() as usize).min(cells);
        let _ = write!(
            line,
            " [{}{}]",
            "#".repeat(filled),
            " ".repeat(cells - filled)
        );
    }
    let _ = write!(line, " {stats}");
    if let Some(key) = &t.done_up_to {
        let _ = write!(line, ", done up to {key:?}");
    }
    truncate(&line, room)
}

/// The columns `text` takes at most: a character outside ASCII counts as two (East Asian
/// characters take two; counting the others as two too only cuts the line a little early),
/// so that the line never wraps without a table of character widths.
fn columns(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

/// `text` cut to at most `room` columns (as [`columns`] counts them).
fn truncate(text: &str, room: usize) -> String {
    let mut used = 0;
    text.chars()
        .take_while(|c| {
            used += columns(c.encode_utf8(&mut [0; 4]));
            used <= room
        })
        .collect()
}

/// `text` with its control characters escaped: object keys and backend messages are not
/// the operator's, and a key with `\r` or an escape sequence must not rewrite their terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `512 B`, `1.5 KiB`, `3.0 GiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `42s`, `3m12s`, `2h05m`.
fn clock(secs: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests;
