//! `events demo` run twice in the same directory, as the README's first
//! command is run again and again: the second run wipes the first run's
//! journal (segments, `LOCK`, `WATERMARK`) and succeeds.

use std::process::Command;

#[test]
fn the_demo_runs_again_in_its_own_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("events-demo");
    for run in 1..=2 {
        let out = Command::new(env!("CARGO_BIN_EXE_events"))
            .args(["demo", "--events", "2000", "--sessions", "2", "--no-crash", "--json", "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "run {run}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(dir.join(events::layers::journal::WATERMARK_FILE).exists());
}
