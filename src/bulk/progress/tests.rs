use super::*;

const MS: Duration = Duration::from_millis(1);

fn tally(done: usize, bytes: u64, total: Option<(usize, u64)>) -> Tally {
    Tally {
        done,
        bytes,
        total,
        ..Tally::default()
    }
}

#[test]
fn a_terminal_gets_a_bar_as_wide_as_columns_says() {
    assert_eq!(Progress::for_stderr(false, Some("120")), Progress::Lines);
    assert_eq!(
        Progress::for_stderr(true, Some("120")),
        Progress::Bar { width: 120 }
    );
    for columns in [None, Some(""), Some("0"), Some("wide")] {
        assert_eq!(
            Progress::for_stderr(true, columns),
            Progress::Bar { width: 80 },
            "{columns:?}"
        );
    }
}

#[test]
fn the_eta_goes_by_bytes_or_by_objects() {
    assert_eq!(eta((4, 1000), (1, 250), 10.0), ", 1/4, ETA 30s");
    assert_eq!(eta((4, 0), (2, 0), 10.0), ", 2/4, ETA 10s");
    assert_eq!(eta((4, 1000), (0, 0), 1.0), ", 0/4, ETA ?");
}

/// The plain line is what scripts and tests read (tests/e2e/sse.rs): its form stays.
#[test]
fn the_plain_line_keeps_its_form() {
    let mut t = tally(3, 3 * 1024 * 1024, None);
    t.failed = 1;
    assert_eq!(
        plain_line("rewrap", &t, Duration::from_secs(2)),
        "rewrap: 3 objects, 3.0 MiB, 1 failed, 2/s, 1.5 MiB/s, 2s"
    );
    t.total = Some((12, 12 * 1024 * 1024));
    t.done_up_to = Some("dir/k".to_owned());
    assert_eq!(
        plain_line("rewrap", &t, Duration::from_secs(2)),
        "rewrap: 3 objects, 3.0 MiB, 1 failed, 2/s, 1.5 MiB/s, 2s, 3/12, ETA 6s; \
         done up to \"dir/k\" (--start-after to resume)"
    );
}

#[test]
fn the_status_line_shows_counts_bytes_rates_and_eta() {
    let mut t = tally(250, 3 << 30, Some((1000, 12 << 30)));
    t.failed = 2;
    t.done_up_to = Some("logs/2024/12".to_owned());
    let line = status_line("rewrap", &t, Duration::from_secs(100), 200);
    assert_eq!(
        line,
        format!(
            "rewrap [{}{}] 25% 250/1000 objects, 3.0 GiB/12.0 GiB, ETA 5m00s, 2 failed, \
             2/s, 30.7 MiB/s, done up to \"logs/2024/12\"",
            "#".repeat(8),
            " ".repeat(22)
        )
    );
    // Before the count is in: no bar, no totals, no ETA.
    let counting = status_line("encrypt", &tally(5, 512, None), Duration::from_secs(2), 200);
    assert_eq!(counting, "encrypt 5 objects, 512 B, counting, 2/s, 256 B/s");
    // Nothing done yet: no ETA to give.
    let start = status_line("x", &tally(0, 0, Some((3, 0))), Duration::ZERO, 200);
    assert!(start.contains("0% 0/3 objects, 0 B/0 B, ETA ?,"), "{start}");
    // Hours.
    let slow = status_line(
        "x",
        &tally(1, 1, Some((100, 100))),
        Duration::from_secs(60),
        200,
    );
    assert!(slow.contains("ETA 1h39m,"), "{slow}");
}

/// The line never reaches the last column, whatever the key: a wrapped line could not be
/// rewritten. The bar gives way first, then the end of the line.
#[test]
fn the_status_line_fits_the_terminal() {
    let mut t = tally(250, 3 << 30, Some((1000, 12 << 30)));
    t.done_up_to = Some("写真/二〇二四年/".repeat(10));
    for width in [0, 1, 10, 40, 60, 80, 100, 132, 300] {
        let line = status_line("reencrypt", &t, Duration::from_secs(100), width);
        assert!(
            columns(&line) < width.max(1),
            "{width}: {} columns: {line}",
            columns(&line)
        );
    }
    // 80 columns: no room for a bar beside the numbers that matter most.
    let narrow = status_line("reencrypt", &t, Duration::from_secs(100), 80);
    assert_eq!(
        narrow,
        "reencrypt 25% 250/1000 objects, 3.0 GiB/12.0 GiB, ETA 5m00s, 2/s, 30.7 MiB/s, d"
    );
    let wide = status_line("reencrypt", &t, Duration::from_secs(100), 300);
    assert!(
        wide.contains(&format!("[{}{}]", "#".repeat(8), " ".repeat(22))),
        "{wide}"
    );
    assert!(wide.contains("二〇二四年"), "{wide}");
}

#[test]
fn sizes_and_durations_read_as_people_write_them() {
    assert_eq!(size(0), "0 B");
    assert_eq!(size(1023), "1023 B");
    assert_eq!(size(1536), "1.5 KiB");
    assert_eq!(size(5 << 40), "5.0 TiB");
    assert_eq!(clock(0.4), "0s");
    assert_eq!(clock(59.0), "59s");
    assert_eq!(clock(192.0), "3m12s");
    assert_eq!(clock(7500.0), "2h05m");
}

/// What a terminal receives: the line redrawn in place (`\r`, clear to the end), at most every
/// 100 ms; a failure on a line of its own above it, with the key's control characters
/// escaped; the last state and a newline at the end.
#[test]
fn the_bar_redraws_in_place_and_prints_failures_above_it() {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut r = Reporter::new(Progress::Bar { width: 100 }, "encrypt", &mut out, t0);
    r.object_done(&tally(1, 10, None), None, t0 + 10 * MS);
    r.object_done(&tally(2, 20, None), None, t0 + 50 * MS);
    r.object_done(&tally(3, 30, None), None, t0 + 120 * MS);
    let mut failed = tally(4, 40, Some((5, 50)));
    failed.failed = 1;
    r.object_done(
        &failed,
        Some(("bad\r\x1b[2Jkey", "HEAD answered 403")),
        t0 + 130 * MS,
    );
    r.page_done(&failed, true, t0 + 140 * MS);
    r.finish(&tally(5, 50, Some((5, 50))), t0 + 150 * MS);
    let text = String::from_utf8(out).unwrap();
    let draws: Vec<&str> = text.split("\r\x1b[K").skip(1).collect();
    assert_eq!(
        draws,
        [
            "encrypt 1 objects, 10 B, counting, 100/s, 1000 B/s",
            // (2 objects at 50 ms: not drawn)
            "encrypt 3 objects, 30 B, counting, 25/s, 250 B/s",
            "failed bad\\r\\u{1b}[2Jkey: HEAD answered 403\n",
            "encrypt [#######################      ] 80% 4/5 objects, 40 B/50 B, ETA 0s, 1 failed, 31/s, 307 B/s",
            // (the page's end, 10 ms later: not drawn)
            "encrypt [##############################] 100% 5/5 objects, 50 B/50 B, ETA 0s, 33/s, 333 B/s\n",
        ]
    );
}

/// Not a terminal: one plain line per page at most every second (and after the last page),
/// nothing per object, and no `\r` or escape sequence anywhere.
#[test]
fn plain_lines_are_written_per_page_at_most_each_second() {
    let t0 = Instant::now();
    let mut out = Vec::new();
    let mut r = Reporter::new(Progress::Lines, "rewrap", &mut out, t0);
    let mut t = tally(1000, 0, None);
    r.object_done(&t, Some(("k", "why")), t0 + 10 * MS);
    r.page_done(&t, false, t0 + 500 * MS);
    t.done = 2000;
    r.page_done(&t, false, t0 + 1000 * MS);
    t.done = 3000;
    r.page_done(&t, false, t0 + 1500 * MS);
    t.done = 3001;
    r.page_done(&t, true, t0 + 1600 * MS);
    r.finish(&t, t0 + 1600 * MS);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains(['\r', '\x1b']), "{text:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("rewrap: 2000 objects, "), "{text}");
    assert!(lines[1].starts_with("rewrap: 3001 objects, "), "{text}");

    let mut out = Vec::new();
    let mut off = Reporter::new(Progress::Off, "rewrap", &mut out, t0);
    off.object_done(&t, Some(("k", "why")), t0);
    off.page_done(&t, true, t0);
    off.finish(&t, t0);
    assert!(out.is_empty());
}
