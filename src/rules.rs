//! The one per-bucket matcher: `[[bucket]]` settings (CORS, SSE, client-side encryption) and
//! client bucket grants all match bucket names with the same globs.
//!
//! Of the patterns that match a bucket, the most specific decides ([`specificity`]: an exact
//! name beats any glob, then more literal characters win, `vault-*` > `*`), so a `"*"`
//! pattern is the default wherever it is written; equally specific patterns are tried in
//! config order. Most-specific rather than first-match because a rule written below a broader
//! one would otherwise be silently weakened. Patterns match case-insensitively: bucket names
//! are lower case unless `legacy_bucket_names` is on, and then `VAULT` must not escape a
//! rule for `vault` on a backend that resolves names case-insensitively.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A bucket-name glob as every matcher builds it (`*` also crosses `.` and `/`).
pub fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .case_insensitive(true)
        .build()
}

/// Bucket glob → setting, most specific first.
///
/// The globs are compiled into one `GlobSet`, so a lookup costs about the same with 3 patterns
/// or 1,000 (literal names are a hash lookup, prefix and suffix globs one Aho-Corasick pass,
/// the rest one combined regex); testing each glob in turn made a gateway with 1,000
/// `[[bucket]]` tables spend ~180 µs more per request (docs/benchmarks.md, "How cost grows").
#[derive(Debug, Clone)]
pub struct ByBucket<T> {
    /// Pattern `i` of the set is the one of `values[i]`.
    set: GlobSet,
    values: Vec<T>,
}

impl<T> Default for ByBucket<T> {
    fn default() -> Self {
        ByBucket {
            set: GlobSet::empty(),
            values: Vec::new(),
        }
    }
}

impl<T> ByBucket<T> {
    /// From `(bucket glob, setting)` pairs in config order.
    pub fn new(sets: impl IntoIterator<Item = (String, T)>) -> Result<Self, globset::Error> {
        let mut out = Vec::new();
        for (pattern, value) in sets {
            out.push((specificity(&pattern), glob(&pattern)?, value));
        }
        // Stable: config order among equals.
        out.sort_by_key(|(s, _, _)| std::cmp::Reverse(*s));
        let mut builder = GlobSetBuilder::new();
        let mut values = Vec::with_capacity(out.len());
        for (_, glob, value) in out {
            builder.add(glob);
            values.push(value);
        }
        Ok(ByBucket {
            set: builder.build()?,
            values,
        })
    }

    /// The setting of the most specific pattern that matches `bucket`: the lowest index of
    /// the set's matches, since the patterns were added most specific first.
    pub fn get(&self, bucket: &str) -> Option<&T> {
        if self.values.is_empty() {
            return None;
        }
        // Several lookups a request: reuse one buffer per thread rather than allocate the
        // match list each time.
        thread_local! {
            static MATCHES: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        MATCHES
            .with_borrow_mut(|matches| {
                self.set.matches_into(bucket, matches);
                matches.iter().copied().min()
            })
            .map(|i| &self.values[i])
    }

    /// Every setting, most specific first.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.values.iter()
    }
}

/// How specific a bucket glob is: (no metacharacters at all, literal characters outside
/// wildcards and alternatives; a `[...]` class counts as one).
pub fn specificity(pattern: &str) -> (bool, usize) {
    let exact = !pattern.contains(['*', '?', '[', ']', '{', '}']);
    let mut literal = 0;
    let (mut class, mut alternatives) = (false, 0usize);
    for c in pattern.chars() {
        match c {
            '[' if !class => class = true,
            ']' if class => {
                class = false;
                literal += 1;
            }
            '{' if !class => alternatives += 1,
            '}' if !class && alternatives > 0 => alternatives -= 1,
            '*' | '?' => {}
            _ if class || alternatives > 0 => {}
            _ => literal += 1,
        }
    }
    (exact, literal)
}

/// Bucket names that `pattern` matches, for checks of a whole config that must find a bucket
/// two rules would both apply to: each wildcard taken empty and as one character, a class as
/// its first member, alternatives as their first choice. Not every such bucket: a check that
/// uses them finds the usual overlaps (`*` with `vault`, `vault-*` with `*`) and never one
/// that does not exist.
pub fn examples(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    for filler in ["", "0"] {
        let mut name = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => name.push_str(filler),
                '?' => name.push('0'),
                '[' => {
                    if matches!(chars.peek(), Some('!' | '^')) {
                        chars.next();
                        name.push('\u{1}');
                    } else if let Some(&first) = chars.peek() {
                        name.push(first);
                    }
                    for c in chars.by_ref() {
                        if c == ']' {
                            break;
                        }
                    }
                }
                '{' => {
                    let mut depth = 1;
                    let mut first = true;
                    for c in chars.by_ref() {
                        match c {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            ',' if depth == 1 => first = false,
                            _ if first => name.push(c),
                            _ => {}
                        }
                    }
                }
                _ => name.push(c),
            }
        }
        out.push(name);
    }
    out.dedup();
    out.retain(|name| glob(pattern).is_ok_and(|g| g.compile_matcher().is_match(name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_match_their_pattern() {
        assert_eq!(examples("*"), ["", "0"]);
        assert_eq!(examples("vault"), ["vault"]);
        assert_eq!(examples("vault-*"), ["vault-", "vault-0"]);
        assert_eq!(examples("a?c"), ["a0c"]);
        assert_eq!(examples("log-[xy]-{eu,us}*"), ["log-x-eu", "log-x-eu0"]);
        // A negated class is represented by a character no bucket name has.
        assert_eq!(examples("[!a]b"), ["\u{1}b"]);
    }

    /// With a thousand patterns of each kind the set's strategies use (literal, prefix,
    /// suffix, regex), the most specific match still decides, in any config order.
    #[test]
    fn the_most_specific_of_many_patterns_decides() {
        let mut sets = vec![("*".to_owned(), usize::MAX), ("vault".to_owned(), 0)];
        for i in 0..1000 {
            sets.push((format!("tenant-{i}-*"), i));
            sets.push((format!("*-{i}.logs"), 10_000 + i));
            sets.push((format!("exact-{i}"), 20_000 + i));
            sets.push((format!("r[0-9]-{i}-?"), 30_000 + i));
        }
        for order in [false, true] {
            if order {
                sets.reverse();
            }
            let r = ByBucket::new(sets.clone()).unwrap();
            assert_eq!(r.get("tenant-500-data"), Some(&500));
            assert_eq!(r.get("tenant-5-data"), Some(&5));
            assert_eq!(r.get("app-7.logs"), Some(&10_007));
            assert_eq!(r.get("EXACT-999"), Some(&20_999));
            assert_eq!(r.get("r4-12-x"), Some(&30_012));
            assert_eq!(r.get("vault"), Some(&0));
            assert_eq!(r.get("elsewhere"), Some(&usize::MAX));
        }
        assert_eq!(ByBucket::<u8>::default().get("any"), None);
    }

    #[test]
    fn the_most_specific_pattern_decides_in_any_case() {
        let r = ByBucket::new([
            ("*".to_owned(), 1),
            ("vault".to_owned(), 2),
            ("vault-*".to_owned(), 3),
            ("v*".to_owned(), 4),
        ])
        .unwrap();
        assert_eq!(r.get("vault"), Some(&2));
        assert_eq!(r.get("VAULT"), Some(&2));
        assert_eq!(r.get("vault-1"), Some(&3));
        assert_eq!(r.get("vx"), Some(&4));
        assert_eq!(r.get("other"), Some(&1));
        assert_eq!(ByBucket::<u8>::default().get("x"), None);
        assert_eq!(r.values().copied().collect::<Vec<_>>(), [2, 3, 4, 1]);
    }
}
