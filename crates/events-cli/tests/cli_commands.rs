//! The `events` binary run as a real process on real journals: `demo`
//! (table and `--json`), `inspect`, `dump`, `verify` on clean, torn,
//! corrupted and foreign files, `tail --follow` against another process, and
//! the exit codes and messages of each.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

fn run(args: &[&str], dir: &Path) -> Output {
    events().args(args).arg(dir).output().expect("run events")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small journal written by the demo itself (no crash phase).
fn demo_journal(tmp: &Path) -> PathBuf {
    let dir = tmp.join("journal");
    let out = events()
        .args(["demo", "--events", "2000", "--sessions", "2", "--no-crash", "--json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    dir
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn demo_json_reports_every_invariant_true() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    // 60,000 events: 15,000 per session, ~10,500 of them tokens, more than
    // the ring keeps per stream (8,192), so the UI reconnects while the
    // ring evicts.
    let out = events().args(["demo", "--events", "60000", "--json", "--dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output parses");
    let invariants = summary["invariants"].as_array().unwrap();
    assert!(invariants.len() >= 6, "{invariants:?}");
    for inv in invariants {
        assert_eq!(inv["ok"], true, "invariant failed: {inv}");
    }
    assert_eq!(summary["emitted"], 60000);
    assert!(summary["crash"]["acknowledged"].as_u64().unwrap() > 0);
    assert_eq!(summary["crash"]["sigkilled"], true, "the crash was the demo's SIGKILL");
    assert!(invariants.iter().any(|inv| inv["name"] == "child SIGKILLed mid-run"), "{invariants:?}");

    // The durable consumer killed with the crash child resumed after its checkpoint.
    let resumed =
        invariants.iter().find(|i| i["name"] == "durable consumer resumes").expect("the consumer's invariant");
    assert_eq!(resumed["ok"], true, "{resumed}");
    let consumer = &summary["crash"]["consumer"];
    assert_eq!(consumer["name"], "indexer", "{consumer}");
    let field = |name: &str| consumer[name].as_u64().unwrap_or_else(|| panic!("{name} in {consumer}"));
    let (checkpoint, before_crash) = (field("checkpoint"), field("processed_before_crash"));
    assert!(checkpoint <= before_crash, "{consumer}");
    assert_eq!(field("redelivered"), before_crash - checkpoint);
    assert!(field("redelivered") <= field("redelivery_bound"), "{consumer}");
    assert_eq!(field("redelivery_bound"), 128);
    assert_eq!(field("read_to"), summary["crash"]["recovered_latest"].as_u64().unwrap(), "{consumer}");
    assert_eq!(field("final_checkpoint"), field("read_to"));
    assert_eq!(field("gaps"), 0);
    let detail = resumed["detail"].as_str().unwrap();
    assert!(detail.starts_with(&format!("indexer resumed after seq {checkpoint} (checkpoint)")), "{detail}");

    // The chat UI dropped its live output mid-response and rebuilt every response.
    let rebuilt = invariants.iter().find(|i| i["name"] == "resuming UI").expect("the resuming UI's invariant");
    assert_eq!(rebuilt["ok"], true, "{rebuilt}");
    let ui = &summary["resuming_ui"];
    let field = |name: &str| ui[name].as_u64().unwrap_or_else(|| panic!("{name} in {ui}"));
    assert_eq!(field("sessions"), 2, "{ui}");
    // 15,000 events per session: 1,500 turns, each ending in a message.
    assert_eq!(field("responses"), 2 * 1500, "{ui}");
    assert_eq!(field("responses_rebuilt"), field("responses"), "{ui}");
    assert!(field("reconnects") > 0 && field("inside_token_run") > 0, "{ui}");
    assert!(field("mid_response") >= field("inside_token_run"), "{ui}");
    for zero in ["mismatched", "duplicates", "gaps", "live_output_resets", "other_resets", "cut_by_reset"] {
        assert_eq!(field(zero), 0, "{zero} in {ui}");
    }
    assert_eq!(field("items"), 2 * 15000, "every event of both sessions, once");
    assert!(field("ring_evicted") > 0, "the ring evicted nothing: {ui}");
    assert!(ui["first_problem"].is_null(), "{ui}");
}

#[test]
fn demo_table_shows_invariants() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = events().args(["demo", "--events", "4000", "--sync", "never", "--dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for needle in [
        "invariants",
        "✔ no gap",
        "✔ no duplicate",
        "✔ nothing acknowledged lost",
        "✔ no seq reuse",
        "✔ durable consumer resumes",
        "✔ resuming UI",
        "responses rebuilt token for token",
        "p99",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(!stdout.contains('✘'), "{stdout}");
}

/// A second run wipes the first one's journal, sidecar indexes and consumer
/// checkpoints included; so does a third, given the directory as `.` from
/// inside it, which keeps the directory. The demo had removed the directory
/// itself: with `--dir .` it deleted the journal, then failed on `.`, and
/// every later run failed the same way.
#[test]
fn demo_runs_again_in_the_same_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut epochs = Vec::new();
    for here in [false, false, true] {
        let mut demo = events();
        demo.args(["demo", "--events", "4000", "--sync", "never", "--dir"]);
        if here {
            demo.arg(".").current_dir(&dir);
        } else {
            demo.arg(&dir);
        }
        let out = demo.output().unwrap();
        assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
        // Nothing of the earlier run's journal is left: a new epoch, every
        // segment and sidecar of it (`verify` checks each against its
        // segment, and segments of two epochs are a problem), and every
        // consumer checkpoint of it.
        use events::layers::journal as j;
        let epoch = j::Reader::open(&dir).unwrap().epoch().unwrap();
        assert!(!epochs.contains(&epoch), "the journal of an earlier run is still there");
        epochs.push(epoch);
        let report = j::verify(&dir).unwrap();
        assert!(report.is_ok() && report.records > 0, "{report:?}");
        let consumers = j::list_consumers(&dir).unwrap();
        assert!(!consumers.is_empty());
        for c in consumers {
            assert_eq!(c.checkpoint.as_ref().map(|c| c.epoch).ok(), Some(epoch), "{} is an earlier run's", c.name);
        }
    }
}

/// A demo journal whose segment is damaged in the middle (a flipped byte,
/// valid records after it, as a power loss under `--sync never` can leave
/// one): its newest record cannot be read, so its oldest decides, and the
/// next run wipes it. The newest one's read error had made the demo refuse
/// its own journal, "not written by the demo".
#[test]
fn demo_wipes_its_own_journal_whose_newest_record_cannot_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo_journal(tmp.path());
    let seg = only_segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let out = events().args(["demo", "--events", "200", "--no-crash", "--dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
}

/// A demo journal with a consumer running on it (another process's, here
/// a checkpoint held open): the next run refuses to wipe it, and nothing
/// of it goes. The wipe had unlinked the checkpoint under the running
/// consumer (`events consumers --delete` refuses that), which then lost
/// its progress to the next run's journal.
#[test]
fn demo_refuses_to_wipe_a_journal_a_running_consumer_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo_journal(tmp.path());
    let epoch = events::layers::journal::Reader::open(&dir).unwrap().epoch().unwrap();
    let (running, _) = events::layers::journal::ConsumerFile::open(&dir, "running", epoch).unwrap();
    let before = std::fs::read_dir(&dir).unwrap().count();
    let out = events().args(["demo", "--events", "200", "--no-crash", "--dir"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("in use") && stderr.contains("refusing to wipe"), "{stderr}");
    assert!(running.path().exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), before, "nothing of the journal went");
    drop(running);
    let out = events().args(["demo", "--events", "200", "--no-crash", "--dir"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn demo_refuses_to_wipe_a_directory_that_is_not_a_journal() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), "keep me").unwrap();
    let out = events().args(["demo", "--dir"]).arg(tmp.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("refusing to wipe"), "{}", text(&out.stderr));
    assert!(tmp.path().join("precious.txt").exists());
}

/// A directory with a journal's own names but no segment is not a journal:
/// consumer checkpoints whose segments were moved away (a backup), and
/// directories named like a journal's files, with something inside. The
/// demo had removed `consumers/` whole, whatever it held, and any
/// directory named `LOCK`, `WATERMARK`, `LEASE` or `PRUNED`.
#[test]
fn demo_refuses_a_journals_names_that_hold_what_no_journal_does() {
    let demo =
        |dir: &Path| events().args(["demo", "--events", "100", "--no-crash", "--dir"]).arg(dir).output().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("consumers")).unwrap();
    std::fs::write(tmp.path().join("consumers/billing"), "an application's checkpoint").unwrap();
    let out = demo(tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("consumer checkpoint file(s) but no segment") && stderr.contains("refusing to wipe"),
        "{stderr}"
    );
    assert!(tmp.path().join("consumers/billing").exists(), "the checkpoint was removed");

    for (name, inside) in [("consumers", "notes/keep"), ("LOCK", "keep"), ("WATERMARK", "keep"), ("PRUNED", "keep")] {
        let tmp = tempfile::tempdir().unwrap();
        let kept = tmp.path().join(name).join(inside);
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        std::fs::write(&kept, "keep me").unwrap();
        let out = demo(tmp.path());
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains("refusing to wipe"), "{name}: {}", text(&out.stderr));
        assert!(kept.exists(), "{name}: {} was removed", kept.display());
    }

    // The demo's own journal, consumers and all, is still wiped and run again.
    let dir = demo_journal(tmp.path());
    let out = demo(&dir);
    assert!(out.status.success(), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
}

/// Not the demo's: a directory with files that merely end like a journal's
/// (a sidecar-like note, a directory named like a segment), and a stopped
/// application's journal (bincode, its own event type; MessagePack).
#[test]
fn demo_wipes_only_a_journal_it_wrote() {
    use events::layers::journal::{Journal, JournalOptions};
    use events::{Bincode, Codec, MsgPack};

    let demo =
        |dir: &Path| events().args(["demo", "--events", "100", "--no-crash", "--dir"]).arg(dir).output().unwrap();
    let refused = |dir: &Path, what: &str| {
        let out = demo(dir);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("refusing to wipe"), "{what}: {stderr}");
        stderr
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.idx"), "keep me").unwrap();
    std::fs::create_dir(tmp.path().join("clips.seg")).unwrap();
    let stderr = refused(tmp.path(), "look-alike names");
    assert!(stderr.contains("\"notes.idx\"") || stderr.contains("\"clips.seg\""), "names the stranger: {stderr}");
    assert!(tmp.path().join("notes.idx").exists() && tmp.path().join("clips.seg").is_dir());

    for (tag, why) in [(Bincode::ID, "its record 1 is not a demo event"), (MsgPack::ID, "it is not bincode")] {
        let tmp = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(tag)).unwrap();
        j.append(1, b"an application's event").unwrap();
        j.close().unwrap();
        let before = std::fs::read_dir(tmp.path()).unwrap().count();
        let stderr = refused(tmp.path(), &format!("codec {tag}"));
        assert!(stderr.contains(why), "codec {tag}: says why ({why}): {stderr}");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), before, "codec {tag}: nothing removed");
        assert_eq!(events::layers::journal::Reader::open(tmp.path()).unwrap().last_seq().unwrap(), 1);
    }

    // An application's event whose layout decodes as a demo event (bincode
    // names no type: `Created { id, customer, sku }` reads as a token of
    // session 7), under the application's own stream: refused. It had been
    // taken for the demo's and wiped.
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    enum Order {
        Created { id: u64, customer: u64, sku: String },
    }
    impl events::Event for Order {}
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
    let mut payload = Vec::new();
    let order = Order::Created { id: 7, customer: 42, sku: "A-1".into() };
    events::payload::encode(&Bincode, Some("orders"), &order, &mut payload).unwrap();
    j.append(1, payload).unwrap();
    j.close().unwrap();
    let stderr = refused(tmp.path(), "an application's look-alike event");
    assert!(stderr.contains("its record 1 is not a demo event (stream \"orders\")"), "{stderr}");
    assert_eq!(events::layers::journal::Reader::open(tmp.path()).unwrap().last_seq().unwrap(), 1);

    // A journal with no record is anyone's: wiped, and the demo runs there.
    let tmp = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(MsgPack::ID)).unwrap();
    j.close().unwrap();
    let out = demo(tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let last = events::layers::journal::Reader::open(tmp.path()).unwrap().last_seq().unwrap();
    assert!(last > 0, "the demo's durable events are there");
}

#[test]
fn verify_clean_torn_and_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo_journal(tmp.path());
    let out = run(&["verify"], &dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with("ok: "), "{}", text(&out.stdout));

    // A flipped byte in the middle: exit 1, naming segment and offset.
    let seg = only_segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let out = run(&["verify"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stdout.contains(&name) && stdout.contains("offset"), "{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");

    // A torn tail is listed too.
    bytes[mid] ^= 0x40;
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&seg, &bytes).unwrap();
    let out = run(&["verify"], &dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
}

#[test]
fn verify_wrong_magic_and_missing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo_journal(tmp.path());
    let seg = only_segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[0] = b'X';
    std::fs::write(&seg, &bytes).unwrap();
    let out = run(&["verify"], &dir);
    assert_ne!(out.status.code(), Some(0));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains(&*seg.file_name().unwrap().to_string_lossy()), "{all}");

    let out = run(&["verify"], &tmp.path().join("nope"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: "), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn inspect_and_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo_journal(tmp.path());
    let out = run(&["inspect"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // In decimal, as `/status`, SSE ids, `tail` and the NATS message ids write it.
    let epoch = events::layers::journal::Reader::open(&dir).unwrap().epoch().unwrap();
    for needle in [
        &format!("epoch      {epoch}\n"),
        "format     version 1",
        "codec tag  1 (bincode)",
        "lock       free",
        "records    1..=600",
        "consumers  none",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }

    let out = events().args(["dump", "--from", "10", "--limit", "5", "--json"]).arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![11, 12, 13, 14, 15]);
    assert!(lines.iter().all(|l| l["stream"].as_str().unwrap().starts_with("sess-")));
    assert!(lines.iter().all(|l| l["time"].as_str().unwrap().ends_with('Z')));

    let out = events().args(["dump", "--limit", "1"]).arg(&dir).output().unwrap();
    assert!(text(&out.stdout).contains("Message"), "{}", text(&out.stdout));

    let out = events().args(["dump", "--from", "100000"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("past the latest seq 600"), "{}", text(&out.stderr));

    // Headers it cannot read (another format version, which also fails
    // their CRC here): inspect does not claim its own version for them.
    for seg in events_testkit::fs::segments(&dir) {
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
        std::fs::write(&seg, bytes).unwrap();
    }
    let stdout = text(&run(&["inspect"], &dir).stdout);
    assert!(stdout.contains("format     unknown: no segment header is readable"), "{stdout}");
    assert!(!stdout.contains("version 1"), "{stdout}");
}

#[test]
fn inspect_sorts_sidecars_renamed_segments_and_strangers_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo_journal(tmp.path());
    let plain = text(&run(&["inspect"], &dir).stdout);
    // What the journal's own listing keeps apart: a sidecar index (a cache),
    // a segment retention renamed out and has not unlinked yet, the summary
    // being rewritten; and one stranger.
    let seg = only_segment(&dir);
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let sidecar = dir.join(name.replace(".seg", ".idx"));
    let removed = dir.join(format!("{:020}.seg.removed", 100_000));
    for path in [&sidecar, &dir.join("PRUNED.tmp"), &removed, &dir.join("notes.txt")] {
        std::fs::write(path, b"x").unwrap();
    }
    let out = run(&["inspect"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("sidecars   1 (stream indexes of sealed segments"), "{stdout}");
    assert!(!plain.contains("sidecars"), "{plain}");
    let tail: Vec<&str> = stdout.lines().filter(|l| l.starts_with("removed") || l.starts_with("ignored")).collect();
    assert_eq!(tail.len(), 2, "{stdout}");
    assert!(tail[0].starts_with(&format!("removed    {}", removed.display())), "{stdout}");
    assert_eq!(tail[1], format!("ignored    {}", dir.join("notes.txt").display()));
    // The segment table is the same as before.
    let table =
        |s: &str| s.lines().filter(|l| l.ends_with('Z') && l.contains(".seg ")).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(table(&stdout), table(&plain));
    assert!(!table(&plain).is_empty(), "{plain}");
}

/// A stranger file in the journal directory whose name holds a newline and
/// an escape sequence: `inspect` lists it escaped, so it neither fakes a
/// line of the report nor reaches the terminal. It was printed raw.
#[test]
fn inspect_escapes_a_strangers_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = demo_journal(tmp.path());
    let name = "x\n\nrecords    1..=999999 (999999 records)\n\x1b[31mRED";
    std::fs::write(dir.join(name), b"x").unwrap();
    let out = run(&["inspect"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains('\x1b'), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("records")).count(), 1, "{stdout}");
    let ignored: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ignored")).collect();
    assert_eq!(ignored.len(), 1, "{stdout}");
    assert!(ignored[0].ends_with("x\\n\\nrecords    1..=999999 (999999 records)\\n\\u{1b}[31mRED"), "{stdout}");
}

/// A path that does not exist and one that is a file are told apart: a
/// missing journal was reported as "is not a directory".
#[test]
fn a_missing_path_is_named_as_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for command in ["inspect", "dump", "verify", "tail", "consumers"] {
        let out = run(&[command], &tmp.path().join("nope"));
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(text(&out.stderr).contains("nope does not exist"), "{command}: {}", text(&out.stderr));
        let out = run(&[command], &file);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(text(&out.stderr).contains("file is not a directory"), "{command}: {}", text(&out.stderr));
    }
}

/// `inspect` on a journal whose newest segment's header is damaged (its
/// magic) and whose watermark is gone: the records line says they cannot
/// be counted, and why, naming the file, and the segment's row says its
/// header is unreadable. It had said `records    none` of a journal
/// holding three.
#[test]
fn inspect_says_why_it_cannot_count_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("damaged");
    let (mut journal, _) =
        events::layers::journal::Journal::open(&dir, events::layers::journal::JournalOptions::new()).unwrap();
    for n in 1..=3 {
        journal.append(n, b"record").unwrap();
    }
    journal.close().unwrap();
    let seg = only_segment(&dir);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    // No watermark to name the last seq either (a journal copied without it).
    std::fs::remove_file(dir.join(events::layers::journal::WATERMARK_FILE)).unwrap();
    let out = run(&["inspect"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let records = stdout.lines().find(|l| l.starts_with("records")).unwrap_or_default();
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(records.starts_with("records    unknown: ") && records.contains(&name), "{stdout}");
    assert!(stdout.contains("unreadable header"), "{stdout}");
}

/// Another process appending to `dir` for ever (two appenders, no fsync),
/// once it has opened the journal; its `ack` lines.
fn appending_writer(dir: &Path) -> (std::process::Child, std::io::Lines<BufReader<std::process::ChildStdout>>) {
    let mut writer = events()
        .args(["__crash-writer", "--sync", "never", "--appenders", "2", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("ready"));
    (writer, lines)
}

#[test]
fn tail_follow_sees_another_process_appending_and_inspect_names_the_lock_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let (mut writer, _writer_out) = appending_writer(&dir);

    let out = run(&["inspect"], &dir);
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("held by pid {}", writer.id())), "{stdout}");

    let mut tail =
        events().args(["tail", "--from", "0", "--follow", "--json"]).arg(&dir).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    for want in 1..=500u64 {
        let line = lines.next().expect("tail ended").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["seq"].as_u64(), Some(want), "{line}");
        assert_eq!(v["kind"], "crash_probe");
    }
    tail.kill().unwrap();
    tail.wait().unwrap();
    writer.kill().unwrap();
    writer.wait().unwrap();
}

/// `tail` without `--follow`, while another process keeps appending: it
/// prints the journal up to its end as it started (at most the end read
/// just after its first line), in order, and exits. Each pass that found
/// new records had read again, so it ran until the writer paused (here:
/// past that end, until the test stopped the writer).
#[test]
fn tail_without_follow_ends_while_a_writer_keeps_appending() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("busy");
    let (mut writer, acks) = appending_writer(&dir);
    // Its acknowledgements drained, so that it never waits on its output;
    // `tail` starts once it has 5,000, so that a pass of `tail` takes long
    // enough for the writer to append more.
    let (enough, wait_for_enough) = std::sync::mpsc::channel();
    let drained = std::thread::spawn(move || {
        for (n, _) in acks.map_while(Result::ok).enumerate() {
            if n == 5_000 {
                enough.send(()).unwrap();
            }
        }
    });
    wait_for_enough.recv().unwrap();

    let mut tail = events().args(["tail", "--from", "0", "--json"]).arg(&dir).stdout(Stdio::piped()).spawn().unwrap();
    let reader = events::layers::journal::Reader::open(&dir).unwrap();
    let mut bound = None;
    let mut printed = 0u64;
    for line in BufReader::new(tail.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        printed += 1;
        assert_eq!(v["seq"].as_u64(), Some(printed), "{line}");
        // `tail` read its end before its first line: at most this.
        let bound = *bound.get_or_insert_with(|| reader.last_seq().unwrap());
        if printed == bound + 1 {
            writer.kill().unwrap(); // past it: the writer stops, so that `tail` ends
        }
    }
    assert!(tail.wait().unwrap().success());
    let bound = bound.expect("tail printed nothing");
    // The writer went on past `tail`'s end (else nothing was tested).
    assert!(reader.last_seq().unwrap() > bound, "the writer appended nothing past {bound}");
    assert!(printed <= bound, "tail printed {printed} records, past the journal's end {bound} as it started");
    let _ = writer.kill();
    writer.wait().unwrap();
    drained.join().unwrap();
}

/// `inspect` beside a running writer under `SyncPolicy::Always`, which
/// reserves space past its data (about 1 MiB of zeros on Linux): the bytes
/// shown are the records', not the reservation's. It had shown the file's
/// length, 1 MiB for three records (found by audit).
#[test]
fn inspect_counts_a_running_writer_s_records_not_its_reserved_space() {
    use events::layers::journal::{Journal, JournalOptions, SyncPolicy};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reserved");
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Always)).unwrap();
    for n in 1..=3 {
        journal.append(n, b"record").unwrap();
    }
    let seg = only_segment(&dir);
    let on_disk = std::fs::metadata(&seg).unwrap().len();
    let out = run(&["inspect"], &dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let name = seg.file_name().unwrap().to_string_lossy().into_owned();
    let row = stdout.lines().find(|l| l.starts_with(&name)).unwrap_or_default();
    let bytes: u64 = row.split_whitespace().nth(3).and_then(|b| b.parse().ok()).unwrap_or(u64::MAX);
    assert!(bytes < 4096, "{bytes} bytes shown (the file is {on_disk} bytes long): {stdout}");
    let total = stdout.lines().find(|l| l.starts_with("segments")).unwrap_or_default();
    assert!(total.contains(&format!("({bytes} bytes)")), "{stdout}");
    journal.close().unwrap();
}
