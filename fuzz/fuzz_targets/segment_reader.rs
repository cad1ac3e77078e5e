//! Fuzz target: arbitrary bytes as one to three segment files, parsed in
//! memory (header decoder, frame walk) and read through the mmap `Reader`
//! and `verify`. Must never panic, hang or read a seq twice.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let files = events_fuzz::files(data);
    for (_, bytes) in &files {
        events_fuzz::parse(bytes);
    }
    let dir = tempfile::tempdir().expect("scratch dir");
    events_fuzz::write(dir.path(), &files);
    events_fuzz::read(dir.path());
});
