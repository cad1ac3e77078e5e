//! `events consumers DIR` run as a real process on a journal written with
//! the façade: two consumers committed at different seqs (and one
//! unreadable checkpoint) are listed with their exact checkpoint, lag and
//! pin, as a table beside the running writer and as JSON lines on the
//! closed journal; `--delete` removes one, and an unknown or invalid name
//! is an error with exit 2; `inspect` counts them.

use std::path::Path;
use std::process::{Command, Output};

use events::layers::journal::CONSUMERS_DIR;
use events::{Event, Feed, Seq};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Job(u32);

impl Event for Job {}

fn events() -> Command {
    Command::new(env!("CARGO_BIN_EXE_events"))
}

fn run(args: &[&str], dir: &Path) -> Output {
    events().arg(args[0]).arg(dir).args(&args[1..]).output().expect("run events")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The table's rows (header excluded), each split on whitespace.
fn rows(out: &Output) -> Vec<Vec<String>> {
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(header, ["name", "checkpoint", "lag", "lag_bytes", "pinned", "problem"], "{stdout}");
    lines.map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

/// The size of the journal's only segment: what every consumer that has
/// not read everything still has to read (`lag_bytes`).
fn segment_bytes(dir: &Path) -> u64 {
    let seg =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "seg"));
    std::fs::metadata(seg.expect("one segment")).unwrap().len()
}

/// Ten events; `alpha` persisted at 3, `beta` at 7.
async fn journal_with_two_consumers(dir: &Path) -> Feed<Job> {
    let feed: Feed<Job> = Feed::builder(dir).open().await.unwrap();
    for n in 1..=10 {
        feed.append(None, Job(n)).await.unwrap();
    }
    for (name, seq) in [("alpha", 3), ("beta", 7)] {
        let consumer = feed.consumer(name).await.unwrap();
        consumer.commit(Seq::new(seq)).await.unwrap();
        consumer.flush().await.unwrap();
        assert_eq!(consumer.persisted(), Seq::new(seq));
    }
    feed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_are_listed_beside_the_writer_and_after_it_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let feed = journal_with_two_consumers(dir).await;

    // The writer still runs (and holds the lock): the listing only reads.
    let out = run(&["consumers"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    feed.close().await.unwrap();
    // One segment holds everything: each consumer still has all of it to
    // read. Its file is measured after the close, which gives back the space
    // the writer reserved past its records (never counted as lag).
    let seg =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "seg"));
    let seg_bytes = std::fs::metadata(seg.unwrap()).unwrap().len();
    let b = seg_bytes.to_string();
    assert_eq!(rows(&out), [["alpha", "3", "7", &b, "yes", "-"], ["beta", "7", "3", &b, "yes", "-"]]);

    // An unreadable checkpoint is listed with its problem, not skipped.
    std::fs::write(dir.join(CONSUMERS_DIR).join("broken"), [0u8; 80]).unwrap();
    let out = run(&["consumers", "--json"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[0],
        serde_json::json!({"name": "alpha", "checkpoint": 3, "lag": 7, "lag_bytes": seg_bytes, "pinned": true, "problem": null})
    );
    assert_eq!(lines[1]["name"], "beta");
    assert_eq!(
        lines[1],
        serde_json::json!({"name": "beta", "checkpoint": 7, "lag": 3, "lag_bytes": seg_bytes, "pinned": true, "problem": null})
    );
    assert_eq!(lines[2]["name"], "broken");
    assert_eq!(lines[2]["checkpoint"], serde_json::Value::Null);
    assert_eq!(lines[2]["lag"], 10);
    assert_eq!(lines[2]["pinned"], false);
    assert!(lines[2]["problem"].as_str().is_some_and(|p| p.contains("unreadable")), "{}", lines[2]);

    let table = run(&["consumers"], dir);
    let broken = &rows(&table)[2];
    assert_eq!(broken[..5], ["broken", "-", "10", &b, "no"], "{}", text(&table.stdout));
    assert!(broken[5..].join(" ").contains("unreadable"), "{}", text(&table.stdout));

    let inspect = run(&["inspect"], dir);
    assert!(text(&inspect.stdout).contains("consumers  3 "), "{}", text(&inspect.stdout));
    assert!(!text(&inspect.stdout).contains("ignored"), "{}", text(&inspect.stdout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_one_and_refuses_unknown_and_invalid_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    journal_with_two_consumers(dir).await.close().await.unwrap();

    let out = run(&["consumers", "--delete", "beta"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("deleted consumer beta"), "{}", text(&out.stdout));
    assert!(!dir.join(CONSUMERS_DIR).join("beta").exists());
    let b = segment_bytes(dir).to_string();
    assert_eq!(rows(&run(&["consumers"], dir)), [["alpha", "3", "7", &b, "yes", "-"]]);

    let out = run(&["consumers", "--delete", "beta"], dir);
    assert_eq!(out.status.code(), Some(2), "an unknown name: {}", text(&out.stdout));
    assert!(text(&out.stderr).starts_with("error: "), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no consumer named \"beta\""), "{}", text(&out.stderr));

    let out = run(&["consumers", "--delete", "no/such"], dir);
    assert_eq!(out.status.code(), Some(2), "an invalid name: {}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("invalid consumer name \"no/such\": contains a path separator"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(rows(&run(&["consumers"], dir)), [["alpha", "3", "7", &b, "yes", "-"]], "nothing else was deleted");

    // A directory that holds no journal: the error says what was asked
    // (it had said "nothing to list consumers of").
    let empty = tempfile::tempdir().unwrap();
    let out = run(&["consumers", "--delete", "alpha"], empty.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nothing to delete a consumer of"), "{}", text(&out.stderr));

    run(&["consumers", "--delete", "alpha"], dir);
    let out = run(&["consumers"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("no durable consumers in "), "{}", text(&out.stdout));
    assert!(run(&["consumers", "--json"], dir).stdout.is_empty());
}

/// A journal of a codec the CLI cannot decode (postcard here): listing and
/// deleting consumers decode no payload, so they work as on any other.
#[test]
fn consumers_of_a_journal_in_another_codec_are_listed_and_deleted() {
    use events::layers::journal::{ConsumerFile, Journal, JournalOptions};
    let tmp = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new().codec_tag(2)).unwrap();
    for n in 0..3u8 {
        journal.append_now([n; 8]).unwrap();
    }
    let epoch = journal.epoch();
    journal.close().unwrap();
    let (mut file, _) = ConsumerFile::open(tmp.path(), "indexer", epoch).unwrap();
    file.commit(1, epoch).unwrap();

    let listed = run(&["consumers", "--json"], tmp.path());
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&listed.stdout).trim()).unwrap();
    assert_eq!((&line["name"], &line["checkpoint"], &line["lag"]), (&"indexer".into(), &1.into(), &2.into()));
    // In use (the handle above is open): refused, exit 2, the file kept.
    let refused = run(&["consumers", "--delete", "indexer"], tmp.path());
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stdout));
    assert!(text(&refused.stderr).contains("in use"), "{}", text(&refused.stderr));
    assert!(tmp.path().join(CONSUMERS_DIR).join("indexer").exists());
    drop(file);
    let deleted = run(&["consumers", "--delete", "indexer"], tmp.path());
    assert!(deleted.status.success(), "{}", text(&deleted.stderr));
    assert!(!tmp.path().join(CONSUMERS_DIR).join("indexer").exists());
}

/// A journal whose position cannot be read (its only segment's header
/// damaged, no watermark to name the last seq), as `inspect` reports it:
/// `consumers` still lists the consumer, its checkpoint as its file holds
/// it and why its lag is unknown, exit 0. It had exited 2 with the header
/// error, when an operator most needs to see what pins retention before a
/// salvage.
#[test]
fn consumers_of_a_journal_whose_position_cannot_be_read_are_still_listed() {
    use events::layers::journal::{ConsumerFile, Journal, JournalOptions, WATERMARK_FILE};
    let tmp = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(tmp.path(), JournalOptions::new()).unwrap();
    for n in 0..3u8 {
        journal.append_now([n; 8]).unwrap();
    }
    let epoch = journal.epoch();
    journal.close().unwrap();
    let (mut file, _) = ConsumerFile::open(tmp.path(), "indexer", epoch).unwrap();
    file.commit(2, epoch).unwrap();
    drop(file);
    let seg = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    std::fs::remove_file(tmp.path().join(WATERMARK_FILE)).unwrap();

    let listed = run(&["consumers", "--json"], tmp.path());
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let line: serde_json::Value = serde_json::from_str(text(&listed.stdout).trim()).unwrap();
    assert_eq!((&line["name"], &line["checkpoint"]), (&"indexer".into(), &2.into()), "{line}");
    let problem = line["problem"].as_str().unwrap_or_default();
    assert!(problem.starts_with("lag unknown: the journal's position cannot be read"), "{problem}");
    let table = run(&["consumers"], tmp.path());
    assert!(table.status.success() && text(&table.stdout).contains("indexer"), "{}", text(&table.stdout));
}
