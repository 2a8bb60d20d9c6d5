//! The crate's layers: imports point one way, from the pipeline down to pure protocol code.
//! A module may use modules of lower layers only; a new module must be placed here first.
//! Checked by reading the sources, so a cycle (`error` <-> `s3`, `config` -> ... ->
//! `upstream` -> `config`, both seen before) fails the build's tests, not a review.

use std::path::{Path, PathBuf};

/// Lowest first.
const LAYERS: &[&[&str]] = &[
    &["body", "rules", "metrics", "tls", "certs", "embedded"],
    &["error", "logging"],
    &["s3", "crypto", "forwarded"],
    &["auth", "policy", "cors", "accept"],
    &["authz", "outbound"],
    &["kms"],
    &["upstream"],
    &["sse", "cse", "bulk", "bucket_cors"],
    &["config"],
    &["admin", "proxy", "reencrypt", "cse_command", "recover"],
    &["rewrap", "encrypt", "convert", "server"],
];

/// The only modules that may sign upstream requests without an `Authorized` request: the
/// operator's maintenance commands.
const OPERATOR_COMMANDS: &[&str] = &[
    "reencrypt",
    "rewrap",
    "encrypt",
    "convert",
    "cse_command",
    "recover",
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every non-test source file of `module`: `src/<module>.rs` and `src/<module>/**`.
fn sources(src: &Path, module: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name == "tests" || name == "tests.rs" {
                continue;
            }
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = vec![src.join(format!("{module}.rs"))];
    walk(&src.join(module), &mut out);
    out.retain(|p| p.exists());
    out
}

/// The crate modules a source file names (`crate::x`).
fn imports(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .match_indices("crate::")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .filter(|s: &String| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The top-level modules `lib.rs` declares.
fn modules(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("pub(crate) mod "))
        })
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for module in modules(&src) {
        let Some(own) = layer(&module) else {
            wrong.push(format!("{module} is in no layer (src/layering.rs)"));
            continue;
        };
        for file in sources(&src, &module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for used in imports(&text) {
                if used == module {
                    continue;
                }
                match layer(&used) {
                    Some(l) if l < own => {}
                    _ => wrong.push(format!("{} uses crate::{used}", file.display())),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_operator_commands_sign_without_authorization() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for module in modules(&src) {
        for file in sources(&src, &module) {
            let text = std::fs::read_to_string(&file).unwrap();
            let calls = text.contains(".operator()");
            if calls && !OPERATOR_COMMANDS.contains(&module.as_str()) {
                wrong.push(file.display().to_string());
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "UpstreamClient::operator() outside the operator commands: {wrong:?}"
    );
}

#[test]
fn the_check_sees_a_wrong_import() {
    assert_eq!(
        imports("use crate::s3::route; crate::error::X"),
        ["error", "s3"]
    );
    assert!(layer("error") < layer("s3"));
    assert!(layer("upstream") < layer("config"));
}
