//! Fuzz target: arbitrary bytes as one to three segment files, opened by
//! `Journal::open` (recovery) in every `RecoveryMode` on a fresh copy. Must
//! never panic or hang; an accepted journal must hand out no seq a reader
//! got before the open, and must append and reopen.

#![no_main]

use events_journal::RecoveryMode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = events_fuzz::files(data);
    for mode in
        [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption, RecoveryMode::SkipCorrupt, RecoveryMode::Repair]
    {
        let dir = tempfile::tempdir().expect("scratch dir");
        events_fuzz::write(dir.path(), &files);
        let seen = events_fuzz::read(dir.path());
        events_fuzz::open(dir.path(), mode, seen);
        events_fuzz::read(dir.path());
    }
});
