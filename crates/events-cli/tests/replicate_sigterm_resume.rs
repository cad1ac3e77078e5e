//! `events replicate` as an operator runs it, a real process against a real
//! `nats-server -js`: a demo journal is replicated, the process is SIGTERMed
//! mid-way (it finishes its publishes in flight and prints where it
//! stopped, which is exactly the stream's last message), the journal grows,
//! a second run resumes right after that seq, and the stream ends up holding
//! every seq exactly once, in order, with the journal's bytes. And the ways
//! it must fail fast at start (exit 2, one readable line): no server, a
//! stream whose configuration conflicts, no journal.
//!
//! Neighbours: `tests/support` (server, child process and its JSON lines);
//! `events-testkit` (the stream check).

mod support;

use std::path::Path;

use async_nats::jetstream::stream::Config;
use events::layers::journal::{Journal, JournalOptions, Reader, Record, SyncPolicy};
use events_testkit::jetstream::{self, MsgId};
use support::{Replicate, Server, events, free_port};

/// Writes a demo journal in `dir` (30,000 durable events) with `events demo`.
fn demo_journal(dir: &Path) -> u64 {
    let status = events()
        .args(["demo", "--events", "100000", "--sync", "never", "--no-crash", "--json", "--dir"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "events demo: {status}");
    Reader::open(dir).unwrap().last_seq().unwrap()
}

/// Appends `n` more records to the journal in `dir`, copies of its first
/// payloads (so they are still demo events).
fn grow(dir: &Path, n: u64) -> u64 {
    let payloads: Vec<(u64, Vec<u8>)> = Reader::open(dir)
        .unwrap()
        .read_since(0)
        .unwrap()
        .take(usize::try_from(n).unwrap())
        .map(|r| {
            let r = r.unwrap();
            (r.ts(), r.payload().to_vec())
        })
        .collect();
    // The demo writes bincode payloads (codec tag 1): the journal must be reopened with it.
    let options = JournalOptions::new().sync(SyncPolicy::Never).codec_tag(1);
    let (mut journal, _) = Journal::open(dir, options).unwrap();
    journal.append_batch(payloads.iter().map(|(ts, p)| (*ts, p.as_slice()))).unwrap();
    let last = journal.last_seq();
    journal.close().unwrap();
    last
}

/// Checks that stream `name` holds seqs `1..=n` of the journal in `dir`,
/// once each, in order, with the journal's payloads and `<epoch>-<seq>` ids.
async fn verify_stream(js: &async_nats::jetstream::Context, name: &str, dir: &Path, n: u64) {
    let reader = Reader::open(dir).unwrap();
    let epoch = reader.epoch().unwrap();
    let records: Vec<Record> = reader.read_since(0).unwrap().map(Result::unwrap).collect();
    let seqs: Vec<u64> = records.iter().map(Record::seq).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "the journal holds seqs 1..={n}");
    jetstream::verify_stream(js, name, n, MsgId::Epoch(epoch), |seq| records[(seq - 1) as usize].payload()).await;
}

/// The journal seq of the stream's last message.
async fn last_in_stream(js: &async_nats::jetstream::Context, name: &str, subject: &str) -> u64 {
    let last = js.get_stream(name).await.unwrap().get_last_raw_message_by_subject(subject).await.unwrap();
    events_nats::headers::parse_msg_id(last.headers.get("Nats-Msg-Id").unwrap().as_str()).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_way_then_restart_replicates_every_seq_exactly_once() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let first_half = demo_journal(&dir);
    assert_eq!(first_half, 30_000);

    // The first run registers nothing in the journal directory; the second does.
    let checkpoint = dir.join(events::layers::journal::CONSUMERS_DIR).join("replicator.events");
    let (run, started) = Replicate::start(&dir, &server.url(), "DEMO", &["--no-register"]);
    assert_eq!((started["after"].as_u64(), started["subject"].as_str()), (Some(0), Some("events")), "{started}");
    let epoch = Reader::open(&dir).unwrap().epoch().unwrap();
    assert_eq!(started["epoch"], epoch.to_string(), "an epoch as a string, as everywhere in JSON");
    let mut run = run;
    run.progress_until(|p| p["replicated"].as_u64() > Some(0));
    let (stopped, status) = run.terminate();
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert_eq!(
        (&stopped["signal"], &stopped["unacknowledged"]),
        (&serde_json::json!("SIGTERM"), &serde_json::json!(false)),
        "{stopped}"
    );
    let stopped_at = stopped["replicated"].as_u64().unwrap();
    eprintln!("first run stopped after seq {stopped_at} of {first_half}");
    assert!(stopped_at > 0);
    assert!(stopped_at < first_half, "the SIGTERM came after everything was replicated: nothing was cut mid-way");
    assert_eq!(last_in_stream(&js, "DEMO", "events").await, stopped_at, "it stopped exactly where it says");

    assert!(!checkpoint.exists(), "--no-register wrote {}", checkpoint.display());
    let total = grow(&dir, 10_000);
    let (mut run, started) = Replicate::start(&dir, &server.url(), "DEMO", &[]);
    assert_eq!(started["after"].as_u64(), Some(stopped_at), "the second run resumes after the first: {started}");
    let done = run.progress_until(|p| p["replicated"].as_u64() == Some(total));
    assert_eq!((done["lag_seqs"].as_u64(), done["errors"].as_u64()), (Some(0), Some(0)), "{done}");
    let (stopped, status) = run.terminate();
    assert!(status.success());
    assert_eq!(stopped["replicated"].as_u64(), Some(total));
    assert_eq!(stopped["duplicates"].as_u64(), Some(0), "nothing was sent twice: {stopped}");
    verify_stream(&js, "DEMO", &dir, total).await;
    assert!(checkpoint.is_file(), "the default run registers its checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_fast_without_server_with_a_conflicting_stream_or_without_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    {
        let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
        journal.append(1, b"one").unwrap();
        journal.close().unwrap();
    }
    let run = |url: &str, extra: &[&str]| {
        let out = events()
            .arg("replicate")
            .arg(&dir)
            .args(["--server", url, "--stream", "CLI"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let nobody = format!("127.0.0.1:{}", free_port());
    let (code, _, stderr) = run(&nobody, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach NATS at {nobody}")), "{stderr}");

    let server = Server::start();
    let js = server.jetstream().await;
    js.create_stream(Config { name: "CLI".into(), subjects: vec!["other".into()], ..Config::default() }).await.unwrap();
    let (code, stdout, stderr) = run(&server.url(), &[]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stderr.contains("stream CLI: subjects is [\"other\"], expected to include events"), "{stderr}");
    let (code, _, stderr) = run(&server.url(), &["--subject", "other", "--replicas", "3"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("stream CLI: num_replicas is 1, expected at least 3"), "{stderr}");
    assert_eq!(js.get_stream("CLI").await.unwrap().get_info().await.unwrap().state.messages, 0, "nothing published");
    // A new stream of 3 replicas on one server: the server's refusal, and a
    // hint that says a cluster is needed (it had asked only whether
    // JetStream was enabled, which it is).
    let out = events()
        .arg("replicate")
        .arg(&dir)
        .args(["--server", &server.url(), "--stream", "CLI_R3", "--replicas", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a stream of --replicas 3 needs a JetStream cluster of at least 3 servers"), "{stderr}");
    // More than JetStream keeps, or none: refused before connecting.
    for bad in ["6", "0"] {
        let (code, _, stderr) = run(&nobody, &["--replicas", bad]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("JetStream keeps 1 to 5 replicas"), "{bad}: {stderr}");
    }

    // Refused before connecting, naming the option: an empty server list
    // (it had been handed to the client, "all connection attempts
    // failed"), a stream name JetStream refuses (the server's refusal had
    // come back as "is JetStream enabled?"), a consumer name that is not one.
    let (code, _, stderr) = run(" , ", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--server \" , \": no server URL given"), "{stderr}");
    let out =
        events().arg("replicate").arg(&dir).args(["--server", &nobody, "--stream", "my.events"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--stream: stream name \"my.events\": JetStream refuses"), "{stderr}");
    let out = events()
        .arg("replicate")
        .arg(&dir)
        .args(["--server", &nobody, "--stream", "S", "--feed", "a.b"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--feed: feed id \"a.b\""), "{stderr}");
    // A subject with a wildcard would capture other publishers' messages.
    let out = events()
        .arg("replicate")
        .arg(&dir)
        .args(["--server", &nobody, "--stream", "S", "--subject", "events.>"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--subject: subject \"events.>\""), "{stderr}");
    let (code, _, stderr) = run(&nobody, &["--consumer-name", "../x"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--consumer-name: ") && stderr.contains("../x"), "{stderr}");
    let (code, _, stderr) = run(&nobody, &["--consumer-name", "x", "--no-register"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");

    let out = events()
        .arg("replicate")
        .arg(tmp.path().join("missing"))
        .args(["--server", &server.url(), "--stream", "CLI2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing does not exist"), "{stderr}");
}

/// The reader of the progress lines goes away (a log pipe whose process
/// died): the lines stop, with one line on stderr, and the replication goes
/// on. It had shut down and exited 0, which a supervisor reads as a job
/// done, while the journal kept growing and its checkpoint pinned it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_goes_on_when_stdout_is_closed() {
    use std::io::{BufRead, BufReader};
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    journal.append(1, b"one").unwrap();
    let mut child = events()
        .arg("replicate")
        .arg(&dir)
        .args(["--server", &server.url(), "--stream", "PIPE", "--json", "--interval", "20ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut started = String::new();
    stdout.read_line(&mut started).unwrap();
    assert!(started.contains("\"started\""), "{started}");
    drop(stdout);
    let said = BufReader::new(child.stderr.take().unwrap()).lines().next().expect("a line on stderr").unwrap();
    assert!(said.starts_with("stdout closed"), "{said}");

    for n in 2..=50 {
        journal.append(n, b"more").unwrap();
    }
    let stream = js.get_stream("PIPE").await.unwrap();
    let deadline = std::time::Instant::now() + support::STEP;
    while stream.clone().get_info().await.unwrap().state.messages < 50 {
        assert!(child.try_wait().unwrap().is_none(), "events replicate exited");
        assert!(std::time::Instant::now() < deadline, "the records after the pipe closed were not replicated");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await; // polling the stream
    }
    assert!(child.try_wait().unwrap().is_none(), "events replicate exited");
    child.kill().unwrap();
    child.wait().unwrap();
    journal.close().unwrap();
}

/// A stdout that nobody reads (a supervisor that reads its child's output
/// only at the end): once the pipe is full, a SIGTERM still stops the run,
/// exit 0, and what it replicated is in the stream. Its loop had blocked
/// writing a progress line, never saw the signal (whose handler kept the
/// process alive), and only a SIGKILL ended it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_run_whose_stdout_nobody_reads() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    for n in 1..=20 {
        journal.append(n, b"unread").unwrap();
    }
    let mut child = events()
        .arg("replicate")
        .arg(&dir)
        .args(["--server", &server.url(), "--stream", "UNREAD", "--json", "--interval", "1ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The run is blocked on its pipe (polled off the runtime's workers).
    tokio::task::block_in_place(|| support::until_the_pipe_is_full(&stdout, &mut child, "events replicate"));
    // SAFETY: kill(2) on the PID of a child this test owns and has not reaped.
    assert_eq!(unsafe { libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10)); // polling a child's exit
    };
    let _ = child.kill();
    let _ = child.wait();
    let status = status.expect("SIGTERM did not stop a run whose stdout nobody reads within 20 s");
    assert!(status.success(), "a signal is a clean stop: {status}");
    drop(stdout);
    assert_eq!(js.get_stream("UNREAD").await.unwrap().get_info().await.unwrap().state.messages, 20);
    journal.close().unwrap();
}

/// SIGTERM while the server does not answer (frozen with SIGSTOP, publishes
/// in flight): `events replicate` stops within about one ack timeout (5 s)
/// and says its publishes in flight went unacknowledged
/// (`"unacknowledged": true`), exit 0. Once the server runs again it may
/// store them, past the seq the line names, which is why the line no longer
/// says "the next run resumes there". It had said so, after resyncing
/// with the frozen server for another ack timeout. A shutdown that came
/// while an acknowledgement was awaited had resynced too, for as long, when
/// acknowledgements had come in before: the replicator looked at the stop
/// flag only between batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_server_does_not_answer_says_what_went_unacknowledged() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let total = demo_journal(&dir);
    let (mut run, _) = Replicate::start(&dir, &server.url(), "FROZEN", &["--no-register"]);
    // Frozen once acknowledgements have come in: the failed wait then
    // follows progress, after which the replicator had resynced at once.
    while run.next_line()["replicated"].as_u64().unwrap_or(0) == 0 {}
    let pid = i32::try_from(server.pid().unwrap()).unwrap();
    // SAFETY: kill(2) on the PID of the server this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let frozen = std::time::Instant::now();
    // Publishes in flight to the frozen server when the signal comes: the
    // replicator stops before its next record, so it must have sent some
    // that nothing acknowledges (two lines with the same acknowledged seq,
    // more published).
    let acked = std::cell::Cell::new(None);
    run.progress_until(|line| {
        let (replicated, published) = (line["replicated"].as_u64(), line["published"].as_u64());
        acked.replace(replicated) == replicated && published > replicated
    });
    let (stopped, status) = run.terminate();
    let took = frozen.elapsed();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert!(status.success(), "a signal is a clean stop: {status}");
    let replicated = stopped["replicated"].as_u64().unwrap();
    assert!(replicated < total, "publishes were in flight when the server froze: {stopped}");
    assert_eq!(stopped["unacknowledged"], true, "{stopped}");
    assert!(took < std::time::Duration::from_secs(9), "stopped within about one ack timeout of the freeze: {took:?}");
    // What the server stored once it ran again is at or past that seq.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let last = loop {
        if let Ok(stream) = js.get_stream("FROZEN").await
            && let Ok(last) = stream.get_last_raw_message_by_subject("events").await
        {
            break events_nats::headers::parse_msg_id(last.headers.get("Nats-Msg-Id").unwrap().as_str()).unwrap().1;
        }
        assert!(std::time::Instant::now() < deadline, "the stream did not answer after SIGCONT");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling the thawed server
    };
    assert!(last >= replicated, "the stream's last seq {last} is below the acknowledged {replicated}");
    eprintln!("stopped with {replicated} acknowledged; the stream's last seq after the thaw: {last}");
}

/// A server list whose servers but one take connections and never answer
/// (a firewall's drop, a host gone): the client tries them one at a time,
/// in random order, each for `--connect-timeout`, and the run starts on
/// the one that answers. The whole attempt had been bounded by one
/// timeout, so a dead server tried first took all of it: the run exited 2,
/// "no answer within", unless the live server came first (1 in 6 here;
/// two runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_list_starts_on_the_one_server_that_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    {
        let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
        journal.append(1, b"one").unwrap();
        journal.close().unwrap();
    }
    // Listening, never accepted: the connection is made, no INFO comes.
    let mute: Vec<std::net::TcpListener> =
        (0..5).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let server = Server::start();
    let mut list: Vec<String> = mute.iter().map(|l| format!("nats://{}", l.local_addr().unwrap())).collect();
    list.push(server.url());
    let list = list.join(",");
    for _ in 0..2 {
        let extra = ["--connect-timeout", "500ms", "--no-register"];
        let (run, started) = Replicate::start(&dir, &list, "LIST", &extra);
        assert_eq!(started["journal_latest"].as_u64(), Some(1), "{started}");
        let (_, status) = run.terminate();
        assert!(status.success(), "{status}");
    }
}

/// Two replicators of one journal publishing on the same subject of two
/// NATS systems (a primary and a backup), each under its own
/// `--consumer-name`: both run at once, and each keeps its own checkpoint,
/// so each pins what it has not replicated. Without the option they shared
/// `replicator.events`: the second was refused while the first ran, and
/// run after it, it moved the shared checkpoint past what the first had
/// not sent, letting retention remove it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicators_of_one_subject_keep_their_own_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    {
        let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
        for n in 1..=3u64 {
            journal.append(n, b"event").unwrap();
        }
        journal.close().unwrap();
    }
    let (primary, backup) = (Server::start(), Server::start());
    let (mut one, _) = Replicate::start(&dir, &primary.url(), "EVENTS", &["--consumer-name", "to-primary"]);
    let (mut two, _) = Replicate::start(&dir, &backup.url(), "EVENTS", &["--consumer-name", "to-backup"]);
    one.progress_until(|p| p["replicated"].as_u64() == Some(3));
    two.progress_until(|p| p["replicated"].as_u64() == Some(3));
    assert!(one.terminate().1.success());
    assert!(two.terminate().1.success());
    let mut consumers: Vec<(String, Option<u64>)> = events::layers::journal::list_consumers(&dir)
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.checkpoint.ok().map(|c| c.seq)))
        .collect();
    consumers.sort();
    assert_eq!(consumers, [("to-backup".into(), Some(3)), ("to-primary".into(), Some(3))]);
}

/// A `--server` URL with a password, whose server does not answer: the
/// error names the server without the password (an error line ends up in
/// a supervisor's logs). It had printed the URL as given.
#[test]
fn an_unreachable_server_is_named_without_its_password() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    journal.append(1, b"one").unwrap();
    journal.close().unwrap();
    let server = format!("nats://alice:s3cret@127.0.0.1:{}", free_port());
    let out = events()
        .arg("replicate")
        .arg(&dir)
        .args(["--server", &server, "--stream", "SECRET", "--connect-timeout", "2s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot reach NATS at nats://***@127.0.0.1:"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

/// SIGTERM while no server of the list has answered yet (a listener that
/// never sends NATS's greeting, `--connect-timeout 30s`): the command ends
/// at once, exit 0, saying nothing was replicated. It had waited out the
/// connect deadline (here a minute) before the signal was looked at.
#[test]
fn sigterm_while_connecting_ends_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    {
        let (mut journal, _) = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
        journal.append(1, b"one").unwrap();
        journal.close().unwrap();
    }
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", mute.local_addr().unwrap());
    let mut child = events()
        .arg("replicate")
        .arg(&dir)
        .args(["--server", &url, "--stream", "S", "--connect-timeout", "30s", "--no-register"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    // Its handlers are installed once the kernel says it catches SIGTERM.
    let catches_sigterm = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status.lines().find_map(|l| l.strip_prefix("SigCgt:")).map(str::trim).unwrap_or("0");
        u64::from_str_radix(caught, 16).unwrap_or(0) & (1 << (libc::SIGTERM - 1)) != 0
    };
    let deadline = std::time::Instant::now() + support::STEP;
    while !catches_sigterm() {
        assert!(std::time::Instant::now() < deadline, "the command never installed its handlers");
        std::thread::sleep(std::time::Duration::from_millis(10)); // polling /proc
    }
    // SAFETY: kill(2) on the PID of a child this test owns and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("still connecting 10 s after SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(10)); // polling the child's exit
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM before a NATS server answered: nothing replicated"), "{stderr}");
}
