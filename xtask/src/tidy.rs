//! The tidy check: conventions no compiler enforces. Every `.rs` file under
//! `crates/`, `xtask/` and `benches/` opens with a `//!` doc paragraph, no
//! test is `#[should_panic]` or ignored without a reason, and every crate
//! manifest inherits the workspace lints. Run by `cargo xtask
//! tidy`, by `cargo xtask ci`, and as a unit test so `cargo test` keeps it.

use std::fs;
use std::path::{Path, PathBuf};

/// Checks the tree under `root`; returns every problem found.
pub(crate) fn check(root: &Path) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for dir in ["crates", "xtask", "benches", "fuzz"] {
        let mut files = Vec::new();
        collect(&root.join(dir), &mut files);
        for file in files {
            let rel = file.strip_prefix(root).unwrap_or(&file).display().to_string();
            if file.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&file).unwrap_or_default();
                if !text.trim_start().starts_with("//!") {
                    problems.push(format!("{rel}: must open with a `//!` doc paragraph saying what the file is for"));
                }
                problems.extend(test_attribute_problems(&rel, &text));
            } else if file.file_name().is_some_and(|n| n == "Cargo.toml") {
                let text = fs::read_to_string(&file).unwrap_or_default();
                let inherits = text.split("[lints]").nth(1).is_some_and(|rest| {
                    rest.lines().take_while(|l| !l.starts_with('[')).any(|l| l.replace(' ', "") == "workspace=true")
                });
                if !inherits {
                    problems.push(format!("{rel}: must contain `[lints]\\nworkspace = true`"));
                }
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// STYLE: no `#[should_panic]` (assert on the returned error instead) and no
/// `#[ignore]` without a reason (`#[ignore = "why"]`). The attribute names
/// are built here so that this file does not flag itself.
fn test_attribute_problems(rel: &str, text: &str) -> Vec<String> {
    let should_panic = format!("#[{}", "should_panic");
    let bare_ignore = format!("#[{}]", "ignore");
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if code.starts_with(&should_panic) {
            problems.push(format!("{rel}:{}: no should_panic tests: assert on the returned error", n + 1));
        }
        if code.starts_with(&bare_ignore) {
            problems.push(format!("{rel}:{}: an ignored test needs a reason: #[ignore = \"why\"]", n + 1));
        }
    }
    problems
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_is_tidy() {
        if let Err(problems) = check(&crate::workspace_root()) {
            panic!("tidy found problems:\n{}", problems.join("\n"));
        }
    }

    #[test]
    fn tidy_flags_missing_docs_and_lints() {
        let dir = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        let krate = dir.join("crates/bad");
        fs::create_dir_all(krate.join("src")).unwrap();
        let attrs = format!("#[{}]\n#[{}]\n#[{} = \"needs a GPU\"]\n", "should_panic", "ignore", "ignore");
        fs::write(krate.join("src/lib.rs"), format!("pub fn f() {{}}\n{attrs}")).unwrap();
        fs::write(krate.join("Cargo.toml"), "[package]\nname = \"bad\"\n").unwrap();
        let problems = check(&dir).unwrap_err();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("lib.rs") && p.contains("//!")));
        assert!(problems.iter().any(|p| p.contains("lib.rs:2") && p.contains("should_panic")));
        assert!(problems.iter().any(|p| p.contains("lib.rs:3") && p.contains("reason")));
        assert!(problems.iter().any(|p| p.contains("Cargo.toml")));
    }
}
