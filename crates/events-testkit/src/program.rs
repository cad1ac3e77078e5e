//! Where a test finds an installed program: on the `PATH`, else in the
//! system directories a normal user's `PATH` leaves out. Debian installs
//! `nats-server` as `/usr/sbin/nats-server`, which a root shell (as on CI)
//! finds and a developer's shell does not; `cargo xtask ci` looks in the
//! same places before it installs anything.

use std::path::PathBuf;

/// The directories searched after the `PATH`.
pub const SYSTEM_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// The first of `names` (in their order of preference) that is installed:
/// each looked for on the `PATH` (in its order; empty entries skipped),
/// then in [`SYSTEM_DIRS`]; `None` if none is.
pub fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .collect();
    names.iter().flat_map(|name| dirs.iter().map(move |dir| dir.join(name))).find(|candidate| candidate.is_file())
}

/// The program `name`, as [`find`] finds it; `name` itself if it is not
/// installed (spawning it then fails, and the caller's message says what to
/// install).
pub fn program(name: &str) -> PathBuf {
    find(&[name]).unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_programs_are_found_and_missing_ones_keep_their_name() {
        // `sh` is in /bin or /usr/bin on any machine that runs these tests.
        assert!(find(&["no-such-program-here", "sh"]).is_some_and(|p| p.ends_with("sh")));
        assert_eq!(find(&["no-such-program-here"]), None);
        assert_eq!(program("no-such-program-here"), PathBuf::from("no-such-program-here"));
    }
}
