//! `events demo` run twice in the same directory, as the README's first
//! command is run again and again: the second run wipes the first run's
//! journal (segments, `LOCK`, `WATERMARK`, and the crash phase's
//! `consumers/` directory) and succeeds.

use std::process::Command;

#[test]
fn the_demo_runs_again_in_its_own_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("events-demo");
    // The first run crashes (and leaves the indexer's checkpoint), the second does not.
    for (run, crash) in [(1, &[][..]), (2, &["--no-crash"][..])] {
        let out = Command::new(env!("CARGO_BIN_EXE_events"))
            .args(["demo", "--events", "2000", "--sessions", "2", "--json", "--dir"])
            .arg(&dir)
            .args(crash)
            .output()
            .unwrap();
        assert!(out.status.success(), "run {run}: {}", String::from_utf8_lossy(&out.stderr));
        if run == 1 {
            assert!(dir.join(events::layers::journal::CONSUMERS_DIR).join("indexer").is_file());
        }
    }
    assert!(!dir.join(events::layers::journal::CONSUMERS_DIR).exists(), "the second run wiped the first's");
    assert!(dir.join(events::layers::journal::WATERMARK_FILE).exists());
}
