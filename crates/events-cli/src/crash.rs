//! The demo's crash test. A child process (this binary, hidden subcommand
//! `__crash-writer`) opens the demo's feed and appends with several
//! concurrent appenders, printing each acknowledged seq; the parent kills it
//! with SIGKILL at a random moment, reopens the feed and checks that every
//! acknowledged event is there with the right payload, that seqs are
//! contiguous, and that the next seq reuses nothing. A durable consumer
//! (`crash_consumer.rs`) runs in the same child and must resume from its
//! checkpoint after the recovery.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use events::{Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use rand::Rng;
use serde::Serialize;

use crate::Failure;
use crate::crash_consumer::{self, ConsumerOutcome, Indexed};
use crate::model::DemoEvent;

/// Arguments of the hidden child command.
#[derive(Debug, clap::Args)]
pub(crate) struct WriterArgs {
    /// The journal directory.
    #[arg(long)]
    dir: PathBuf,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 8)]
    appenders: u32,
    /// The sync policy (as for `demo --sync`).
    #[arg(long, default_value = "always", value_parser = crate::args::parse_sync)]
    sync: SyncPolicy,
    /// Also run the durable consumer NAME, printing `consumed <seq>` before
    /// each commit.
    #[arg(long)]
    consumer: Option<String>,
}

/// The child: append until killed, printing `ack <seq> <writer> <n>` after
/// each acknowledgement.
pub(crate) fn writer(args: &WriterArgs) -> Result<(), Failure> {
    crate::runtime()?.block_on(async {
        let feed: Feed<DemoEvent> = Feed::builder(&args.dir).sync(args.sync).open().await?;
        println!("ready {}", feed.latest_seq());
        if let Some(name) = args.consumer.clone() {
            let feed = feed.clone();
            tokio::spawn(async move {
                if let Err(e) = crash_consumer::consume(&feed, &name).await {
                    println!("consumer-error {}", events::error_chain(&e));
                }
            });
        }
        let tasks: Vec<_> = (0..args.appenders)
            .map(|writer| {
                let feed = feed.clone();
                tokio::spawn(async move {
                    for n in 0.. {
                        let seq = feed.append(Some("crash"), DemoEvent::CrashProbe { writer, n }).await?;
                        println!("ack {seq} {writer} {n}");
                    }
                    Ok::<(), events::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| Failure::Error(Box::new(e)))??;
        }
        Ok(())
    })
}

/// The child's acknowledged appends: seq → (appender, its n-th append).
type Acked = BTreeMap<u64, (u32, u64)>;

/// What the crash test found.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Default))]
pub(crate) struct CrashOutcome {
    /// Whether the child died of the demo's SIGKILL (not of an exit of its
    /// own, say after a failed append: then nothing here tested a crash).
    pub(crate) sigkilled: bool,
    /// How the child ended, as the OS said.
    pub(crate) child_exit: String,
    /// Appends the child acknowledged before it died.
    pub(crate) acknowledged: usize,
    /// The latest seq before the child started.
    pub(crate) seq_before: u64,
    /// The latest seq after recovery.
    pub(crate) recovered_latest: u64,
    /// The highest seq the child saw acknowledged (0: none).
    pub(crate) max_acked: u64,
    /// What recovery reported.
    pub(crate) recovery: String,
    /// Acknowledged seqs missing after recovery.
    pub(crate) lost: Vec<u64>,
    /// Seqs whose payload differs from what was acknowledged.
    pub(crate) wrong_payload: Vec<u64>,
    /// Seqs missing or repeated in the recovered range.
    pub(crate) gaps: u64,
    /// The seq the first append after recovery got.
    pub(crate) next_seq: u64,
    /// The durable consumer that ran in the child and resumed after recovery.
    pub(crate) consumer: ConsumerOutcome,
}

/// Whether the child ended by the SIGKILL the demo sent (`killed`), not
/// by exiting on its own first.
fn sigkilled_by_us(killed: bool, status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    const SIGKILL: i32 = 9;
    killed && status.signal() == Some(SIGKILL)
}

impl CrashOutcome {
    pub(crate) fn nothing_lost(&self) -> bool {
        self.lost.is_empty() && self.wrong_payload.is_empty()
    }

    pub(crate) fn no_reuse(&self) -> bool {
        continues_without_reuse(self.next_seq, self.recovered_latest, self.seq_before.max(self.max_acked))
    }
}

/// Whether the first append after recovery got the seq after the recovered
/// ones and above every seq handed out before (`highest`: the last seq
/// before the crash run and every acknowledged one). Recovery that lost an
/// acknowledged seq would hand it out again.
fn continues_without_reuse(next_seq: u64, recovered_latest: u64, highest: u64) -> bool {
    next_seq == recovered_latest + 1 && next_seq > highest
}

/// This process's own executable, to run the crash child with: on Linux
/// the one this process runs (`/proc/self/exe`), even if its file was
/// replaced or removed since it started (a `cargo build` meanwhile: the
/// path then reads as "… (deleted)" and no file is there); elsewhere, its
/// path, or the name it was run by.
fn own_executable() -> PathBuf {
    let running = Path::new("/proc/self/exe");
    if running.exists() {
        return running.to_path_buf();
    }
    std::env::current_exe()
        .ok()
        .or_else(|| std::env::args_os().next().map(PathBuf::from))
        .unwrap_or_else(|| running.to_path_buf())
}

/// Runs the child, kills it after a random number of acknowledgements (and
/// once its indexer has processed a random number of events), reopens and
/// checks, then resumes the indexer. `on_ack` is told about every
/// acknowledgement seen.
pub(crate) async fn crash_and_recover(
    dir: &Path,
    sync: SyncPolicy,
    seq_before: u64,
    on_ack: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<CrashOutcome, Failure> {
    let kill_after = rand::thread_rng().gen_range(300..3000usize);
    let index_before_kill = rand::thread_rng().gen_range(200..2000u64);
    let exe = own_executable();
    let dir_owned = dir.to_path_buf();
    let sync_arg = crate::args::sync_to_arg(sync);
    let child = tokio::task::spawn_blocking(move || -> Result<(Acked, Indexed, bool, String), std::io::Error> {
        let spawn_error = |e: std::io::Error| {
            std::io::Error::new(e.kind(), format!("running {} for the crash child: {e}", exe.display()))
        };
        let mut child = Command::new(&exe)
            .args(["__crash-writer", "--consumer", crash_consumer::NAME, "--sync", &sync_arg, "--dir"])
            .arg(&dir_owned)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(spawn_error)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut acked = BTreeMap::new();
        let mut indexed = Indexed::default();
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            if indexed.observe(&line) {
                continue;
            }
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ack") {
                continue;
            }
            let (Some(seq), Some(writer), Some(n)) = (parts.next(), parts.next(), parts.next()) else { continue };
            let (Ok(seq), Ok(writer), Ok(n)) = (seq.parse(), writer.parse(), n.parse()) else { continue };
            acked.insert(seq, (writer, n));
            on_ack(seq);
            // The indexer gets its share of the run before the kill; should it
            // stall silently, the crash still comes (and its check fails).
            let indexer_done = indexed.has_processed(index_before_kill) || acked.len() >= kill_after * 50;
            if !killed && acked.len() >= kill_after && indexer_done {
                // std's kill is SIGKILL on Unix: no destructor, no flush, no fsync.
                child.kill()?;
                killed = true;
            }
        }
        let status = child.wait()?;
        Ok((acked, indexed, sigkilled_by_us(killed, status), status.to_string()))
    })
    .await
    .map_err(|e| Failure::Error(Box::new(e)))?;
    let (acked, indexed, sigkilled, child_exit) = child?;

    let (feed, report) = Feed::<DemoEvent>::builder(dir).sync(sync).open_with_report().await?;
    let recovered_latest = feed.latest_seq().get();
    let mut lost = Vec::new();
    let mut wrong_payload = Vec::new();
    let mut gaps = 0;
    let mut stream = feed.stream_from(Seq::new(seq_before));
    let mut expect = seq_before + 1;
    let mut found = BTreeMap::new();
    while expect <= recovered_latest {
        match stream.next().await {
            Some(Ok(FeedItem::Event(env))) => {
                if env.seq.get() != expect {
                    gaps += 1;
                }
                expect = env.seq.get() + 1;
                if let DemoEvent::CrashProbe { writer, n } = env.event {
                    found.insert(env.seq.get(), (writer, n));
                }
            }
            Some(Ok(FeedItem::Reset { .. } | FeedItem::Undecodable { .. })) | None => {
                gaps += 1;
                break;
            }
            // Only a filtered stream yields checkpoints; this one is not.
            Some(Ok(FeedItem::Checkpoint { .. })) => {}
            // Only a live-output stream (`stream_live`) carries ephemeral events.
            Some(Ok(FeedItem::Ephemeral { .. })) => {}
            Some(Err(e)) => return Err(Failure::Error(Box::new(e))),
        }
    }
    drop(stream);
    for (seq, probe) in &acked {
        match found.get(seq) {
            None => lost.push(*seq),
            Some(got) if got != probe => wrong_payload.push(*seq),
            Some(_) => {}
        }
    }
    let consumer = crash_consumer::resume(&feed, indexed).await?;
    let next_seq = feed.append(Some("crash"), DemoEvent::CrashProbe { writer: u32::MAX, n: 0 }).await?.get();
    feed.close().await?;
    Ok(CrashOutcome {
        sigkilled,
        child_exit,
        acknowledged: acked.len(),
        seq_before,
        recovered_latest,
        max_acked: acked.keys().next_back().copied().unwrap_or(0),
        recovery: format!("{report:?}"),
        lost,
        wrong_payload,
        gaps,
        next_seq,
        consumer,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::{continues_without_reuse, sigkilled_by_us};

    /// Recovery that lost acknowledged seq 100 (it ends at 99) and handed
    /// 100 out again is reuse. The check compared the next seq only with the
    /// recovered latest and the seq before the run, and passed it.
    #[test]
    fn an_acknowledged_seq_handed_out_again_is_reuse() {
        assert!(!continues_without_reuse(100, 99, 100), "100 was acknowledged, then handed out again");
        assert!(continues_without_reuse(101, 100, 100));
        assert!(!continues_without_reuse(102, 100, 100), "a gap after recovery");
        assert!(continues_without_reuse(1, 0, 0), "nothing before, nothing acknowledged");
    }

    #[test]
    fn only_the_demos_sigkill_counts_as_the_crash() {
        let sigkill = ExitStatus::from_raw(9); // terminated by signal 9
        assert!(sigkilled_by_us(true, sigkill));
        assert!(!sigkilled_by_us(false, sigkill), "not sent by the demo");
        assert!(!sigkilled_by_us(true, ExitStatus::from_raw(0)), "exited 0 before the kill landed");
        assert!(!sigkilled_by_us(true, ExitStatus::from_raw(1 << 8)), "exited 1 on its own");
    }
}
