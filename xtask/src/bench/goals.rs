//! The comparisons of DESIGN.md section 8, as data: each row names our
//! figure, the peer's, where each comes from ([`Src`]) and the goal for the
//! ratio ([`Goal`]). Adding a comparison to the report means adding a row
//! here and nothing else.
//!
//! Its neighbours: `report.rs` resolves every row's sources against the
//! [`Results`] read by `results.rs` and judges the goal; the fan-out rows
//! match criterion ids by their words ([`fanout_matches`]) because the
//! fan-out bench's ids name a subscriber count and an implementation rather
//! than a fixed list. Invariant: rows only describe, they never look at a
//! figure, so the same rows serve every run (a row whose bench did not run
//! shows as "not run", not as a missing line).

use super::results::{Measure, Results};

/// Where a figure comes from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Src {
    /// A criterion id.
    Bench(&'static str),
    /// `factor` × a criterion id's throughput (a derived limit).
    Times(f64, &'static str),
    /// The fastest of several criterion ids.
    Best(&'static [&'static str]),
    /// A rate printed by a non-criterion bench (see [`printed_rate`](super::results::printed_rate)).
    Printed(&'static str),
    /// A time or a size printed by a non-criterion bench: on the line
    /// starting with the first string, the figure after the word that is
    /// the second (see [`printed_field`](super::results::printed_field)).
    PrintedField(&'static str, &'static str),
    /// The fan-out bench's implementation at a subscriber count (see [`fanout_matches`]).
    Fanout(Impl, &'static str),
}

/// What the ratio ours/peer should be.
#[derive(Clone, Copy, Debug)]
pub(super) enum Goal {
    /// Throughput ratio at least this.
    AtLeast(f64),
    /// Time ratio at most this (rows without a throughput).
    TimeAtMost(f64),
    /// Size ratio at most this (bytes per client).
    SizeAtMost(f64),
    /// Shown for context, no goal.
    Context,
}

/// One comparison: a line of the report.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cmp {
    pub(super) row: &'static str,
    pub(super) ours: (&'static str, Src),
    pub(super) peer: (&'static str, Src),
    pub(super) goal: Goal,
}

const fn cmp(row: &'static str, ours: (&'static str, Src), peer: (&'static str, Src), goal: Goal) -> Cmp {
    Cmp { row, ours, peer, goal }
}

const OURS_APPEND: (&str, Src) =
    ("journal append_batch 64 KiB", Src::Bench("journal/append_no_fsync_256B/journal_append_batch_64KiB"));
const OURS_READ: (&str, Src) = ("journal read_since(0)", Src::Bench("journal/read_crc_256B/journal_read_since_0"));
const OURS_D1: (&str, Src) = ("Feed::append", Src::Bench("durable/1_appender/ours_feed"));
const OURS_D16: (&str, Src) = ("Feed::append ×16 tasks", Src::Bench("durable/16_appenders/ours_feed"));
const D16_PEERS: &[&str] = &["durable/16_appenders/raft_engine", "durable/16_appenders/okaywal"];

/// The p99 of the paced latency lines `feed.rs` prints.
const P99_OURS: (&str, Src) = ("record → stream_from", Src::PrintedField("feed/latency record->stream_from", "p99"));
const P99_MPSC: (&str, Src) = ("one tokio mpsc hop", Src::PrintedField("feed/latency tokio mpsc hop", "p99"));
/// The mean live bytes per handle `memory.rs` prints: a broadcast receiver
/// waiting for its next event (its `recv()` future kept, as our idle
/// clients keep their wakers), and one that is not.
const MEM_BROADCAST: (&str, Src) = (
    "tokio broadcast receiver waiting in recv(), capacity 256",
    Src::PrintedField("memory/tokio broadcast receiver waiting", "mean"),
);
const MEM_BROADCAST_BARE: (&str, Src) = (
    "tokio broadcast receiver not waiting, capacity 256",
    Src::PrintedField("memory/tokio broadcast receiver:", "mean"),
);

/// The subscriber counts of the fan-out rows.
pub(super) const FANOUT_COUNTS: [&str; 3] = ["1", "4", "16"];

/// Every comparison the report makes, in DESIGN.md section 8's order (fan-out first, added by [`fanout_rows`]).
pub(super) fn rows() -> Vec<Cmp> {
    use Goal::*;
    use Src::*;
    let mut v = fanout_rows();
    v.extend([
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            // DESIGN §8's limit: "raw 280 B frames + CRC in 64 KiB writes".
            (
                "raw frames + CRC in 64 KiB writes (limit)",
                Bench("journal/append_no_fsync_256B/raw_frame_crc_write_64KiB"),
            ),
            // DESIGN §8's goal since issue #20 (it had been 0.8×).
            AtLeast(0.95),
        ),
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            (
                "raw write(2) of prebuilt frames (no CRC work)",
                Bench("journal/append_no_fsync_256B/raw_write_prebuilt_64KiB"),
            ),
            Context,
        ),
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            // What the limit leaves out: the journal fdatasyncs every segment it seals.
            (
                "raw frames + CRC, each rotated file fdatasynced on a thread",
                Bench("journal/append_no_fsync_256B/raw_frame_crc_write_sealed_64KiB"),
            ),
            Context,
        ),
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            ("raft-engine, batches of 100", Bench("journal/append_no_fsync_256B/raft_engine_batch_100")),
            Context,
        ),
        cmp(
            "append, no fsync, 256 B",
            OURS_APPEND,
            ("commitlog, batches of 234", Bench("journal/append_no_fsync_256B/commitlog_batch_234")),
            AtLeast(1.0),
        ),
        // The limit is a raw write + fdatasync into a file reserved ahead
        // (zeros written past the data), as the journal writes under
        // `Always`: appending to a growing file makes every fdatasync commit
        // the new size too, a handicap the journal does not carry.
        cmp(
            "durable append, 1 appender",
            OURS_D1,
            ("raw write + fdatasync, file reserved ahead", Bench("durable/1_appender/raw_write_fdatasync_reserved")),
            AtLeast(1.0),
        ),
        cmp(
            "durable append, 1 appender",
            ("Journal::append, Always", Bench("durable/1_appender/ours_journal")),
            ("raw write + fdatasync, file reserved ahead", Bench("durable/1_appender/raw_write_fdatasync_reserved")),
            AtLeast(1.0),
        ),
        cmp(
            "durable append, 1 appender",
            OURS_D1,
            ("raw write + fdatasync per record, growing file", Bench("durable/1_appender/raw_write_fdatasync")),
            Context,
        ),
        cmp("durable append, 1 appender", OURS_D1, ("raft-engine", Bench("durable/1_appender/raft_engine")), Context),
        cmp("durable append, 1 appender", OURS_D1, ("okaywal", Bench("durable/1_appender/okaywal")), Context),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("best peer (raft-engine, okaywal)", Best(D16_PEERS)),
            AtLeast(2.0),
        ),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("limit: 16 × this run's fdatasync rate", Times(16.0, "durable/1_appender/raw_write_fdatasync_reserved")),
            AtLeast(0.7),
        ),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("raw, 16 threads, no batching", Bench("durable/16_appenders/raw_16_threads_fdatasync")),
            Context,
        ),
        cmp(
            "durable append, 16 appenders",
            OURS_D16,
            ("raft-engine", Bench("durable/16_appenders/raft_engine")),
            Context,
        ),
        cmp("durable append, 16 appenders", OURS_D16, ("okaywal", Bench("durable/16_appenders/okaywal")), Context),
        cmp(
            "durable append, 1,024 appenders",
            ("Feed::append ×1,024 tasks", Bench("durable/1024_appenders/ours_feed")),
            ("ours, same, no fsync", Bench("durable/1024_appenders/ours_feed_no_fsync")),
            AtLeast(0.8),
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            // DESIGN §8: "crc32fast over one buffer is context"; the
            // per-frame walk below is this format's read limit.
            ("crc32fast over the same bytes", Bench("journal/read_crc_256B/crc32fast_same_bytes")),
            Context,
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            ("commitlog", Bench("journal/read_crc_256B/commitlog")),
            AtLeast(1.5),
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            ("per-frame CRC walk", Bench("journal/read_crc_256B/per_frame_crc_same_bytes")),
            AtLeast(0.9),
        ),
        cmp(
            "read 256 B records, CRC-verified",
            OURS_READ,
            ("raft-engine", Bench("journal/read_crc_256B/raft_engine")),
            Context,
        ),
        cmp(
            "open a 64-segment journal",
            ("Journal::open", Bench("journal/open_64_segments/journal_open")),
            ("full scan (verify)", Bench("journal/open_64_segments/full_scan_verify")),
            TimeAtMost(0.05),
        ),
        cmp(
            "a roll under Always whose retention removes a 32 MiB segment",
            ("roll, retention removes one", Bench("journal/roll_always_32MiB/with_retention")),
            ("roll, retention removes none", Bench("journal/roll_always_32MiB/without_retention")),
            Context,
        ),
        cmp(
            "feed end to end",
            ("record → stream_from", Bench("feed/e2e/ours")),
            ("raw journal append", Bench("feed/e2e/raw_journal_append")),
            AtLeast(0.5),
        ),
        cmp(
            "catch-up stream_from(0)",
            ("stream_from(0)", Bench("feed/catch_up/ours")),
            ("raw journal read", Bench("feed/catch_up/raw_journal_read")),
            AtLeast(0.5),
        ),
        cmp(
            "catch-up stream_from(0)",
            ("read_since(0) + decode, one thread", Bench("feed/catch_up/read_and_decode")),
            ("raw journal read", Bench("feed/catch_up/raw_journal_read")),
            Context,
        ),
        cmp(
            "latency p99 record → stream_from vs one tokio mpsc hop (paced 50k/s)",
            P99_OURS,
            P99_MPSC,
            TimeAtMost(5.0),
        ),
        cmp(
            "memory per idle client (1,000 clients)",
            ("stream_from(latest), caught up", PrintedField("memory/stream_from idle client", "mean")),
            MEM_BROADCAST,
            SizeAtMost(2.0),
        ),
        cmp(
            "memory per idle client (1,000 clients)",
            ("session subscriber (events-fanout, capacity 256)", PrintedField("memory/session subscriber", "mean")),
            MEM_BROADCAST,
            SizeAtMost(2.0),
        ),
        cmp(
            "memory per idle client (1,000 clients)",
            ("stream_from(latest), caught up", PrintedField("memory/stream_from idle client", "mean")),
            MEM_BROADCAST_BARE,
            Context,
        ),
        cmp(
            "read one stream (1% of the journal, 100 streams)",
            ("read_stream(id, 0)", Bench("feed/read_stream/read_stream")),
            // The façade's own filtered scan: it decodes every record and
            // hands over only the stream's events.
            ("stream_filtered(0, Filter::stream)", Bench("feed/read_stream/stream_filtered_scan")),
            AtLeast(20.0),
        ),
        cmp(
            "read one stream (1% of the journal, 100 streams)",
            ("read_stream(id, 0)", Bench("feed/read_stream/read_stream")),
            // Every event decoded and handed over, then filtered by the caller.
            ("stream_from(0) filtered by the caller", Bench("feed/read_stream/filtered_scan")),
            Context,
        ),
        cmp(
            "append with an expected version (1 appender, 1 stream, no fsync)",
            ("append_with Exact(v)", Bench("feed/append_options/expected")),
            ("plain append", Bench("feed/append_options/plain")),
            Context,
        ),
        cmp(
            "append to a new stream expecting none (64 sealed 1 MiB segments, no fsync)",
            ("append_with NoStream", Bench("feed/append_new_stream/no_stream")),
            ("plain append", Bench("feed/append_new_stream/plain")),
            Context,
        ),
        cmp(
            "append with an event id (1 appender, fresh ids, no fsync)",
            ("append_with id", Bench("feed/append_options/id")),
            ("plain append", Bench("feed/append_options/plain")),
            Context,
        ),
        cmp(
            "catch-up through a durable consumer (commit each event, persisted every 1,000)",
            ("Consumer", Bench("feed/catch_up/durable_consumer")),
            ("stream_from(0)", Bench("feed/catch_up/ours")),
            Context,
        ),
        cmp(
            "JetStream replication",
            ("Replicator", Printed("nats/replicator")),
            ("raw pipelined async-nats", Printed("nats/raw_pipelined")),
            AtLeast(0.8),
        ),
        cmp(
            "JetStream replication",
            ("Replicator", Printed("nats/replicator")),
            ("raw pipelined, same headers", Printed("nats/raw_headers")),
            Context,
        ),
        cmp(
            "JetStream replication",
            ("Replicator", Printed("nats/replicator")),
            ("raw pipelined, minimum headers (id + guard)", Printed("nats/raw_min_headers")),
            Context,
        ),
        cmp(
            "JetStream replication",
            ("Replicator", Printed("nats/replicator")),
            ("raw pipelined, one header (the guard alone)", Printed("nats/raw_guard_only")),
            Context,
        ),
        cmp(
            "JetStream replication",
            ("Replicator", Printed("nats/replicator")),
            ("one-by-one publish", Printed("nats/one_by_one")),
            Context,
        ),
        cmp(
            "JetStream replication, R3 on a local 3-node cluster",
            ("Replicator", Printed("nats/r3_replicator")),
            ("raw pipelined, same headers", Printed("nats/r3_raw_headers")),
            AtLeast(0.8),
        ),
        cmp(
            "JetStream replication, R3 on a local 3-node cluster",
            ("Replicator", Printed("nats/r3_replicator")),
            ("raw pipelined async-nats", Printed("nats/r3_raw_pipelined")),
            Context,
        ),
        cmp(
            "JetStream replication, R3 on a local 3-node cluster",
            ("Replicator", Printed("nats/r3_replicator")),
            ("raw pipelined, minimum headers (id + guard)", Printed("nats/r3_raw_min_headers")),
            Context,
        ),
    ]);
    // The codec rows (issue 18): the self-describing codec beside the
    // default and beside the other self-describing candidates measured.
    let peers = [
        ("bincode (default, not self-describing)", ["codec/bincode/encode", "codec/bincode/decode"]),
        ("CBOR (ciborium)", ["codec/cbor/encode", "codec/cbor/decode"]),
        ("JSON (serde_json)", ["codec/json/encode", "codec/json/decode"]),
    ];
    v.extend([
        cmp(
            "catch-up stream_from(0), 200k events, by codec",
            ("MsgPack", Src::Bench("feed/catch_up_codec/msgpack")),
            ("bincode", Src::Bench("feed/catch_up_codec/bincode")),
            Goal::Context,
        ),
        cmp(
            "catch-up stream_from(0), 200k events, by codec",
            ("postcard", Src::Bench("feed/catch_up_codec/postcard")),
            ("bincode", Src::Bench("feed/catch_up_codec/bincode")),
            Goal::Context,
        ),
    ]);
    let ours = ["codec/msgpack/encode", "codec/msgpack/decode"];
    for (i, row) in ["codec encode, ~256 B event", "codec decode, ~256 B event"].into_iter().enumerate() {
        for (peer, ids) in peers {
            v.push(cmp(
                row,
                ("MsgPack (self-describing)", Src::Bench(ours[i])),
                (peer, Src::Bench(ids[i])),
                Goal::Context,
            ));
        }
    }
    v
}

/// The fan-out rows: at each subscriber count, ours against paced tokio
/// broadcast (the goal) and the other peers (context). The fan-out bench's
/// ids are matched by [`fanout_matches`].
fn fanout_rows() -> Vec<Cmp> {
    let mut v = Vec::new();
    for (row, n) in [
        ("lossless fan-out, 1 subscriber", "1"),
        ("lossless fan-out, 4 subscribers", "4"),
        ("lossless fan-out, 16 subscribers", "16"),
    ] {
        let ours = ("events-fanout", Src::Fanout(Impl::Ours, n));
        v.push(cmp(
            row,
            ours,
            ("tokio broadcast, paced (no loss)", Src::Fanout(Impl::TokioPaced, n)),
            Goal::AtLeast(1.0),
        ));
        v.push(cmp(row, ours, ("async-broadcast", Src::Fanout(Impl::AsyncBroadcast, n)), Goal::Context));
        v.push(cmp(row, ours, ("serial queue per subscriber", Src::Fanout(Impl::Serial, n)), Goal::Context));
        // Issue #20: at or above the lossy channel, still losing nothing. The lossy channel's
        // receivers rarely run; ours borrow each event (`recv_ref`) rather than clone it, and
        // the cloning `recv` is shown beside it.
        let unpaced = ("tokio broadcast, unpaced (lossy)", Src::Fanout(Impl::TokioUnpaced, n));
        v.push(cmp(
            row,
            ("events-fanout, recv_ref (lends)", Src::Fanout(Impl::OursLent, n)),
            unpaced,
            Goal::AtLeast(1.0),
        ));
        v.push(cmp(row, ("events-fanout, recv (clones)", Src::Fanout(Impl::Ours, n)), unpaced, Goal::Context));
    }
    v
}

/// The implementations the fan-out bench compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Impl {
    /// Subscribers that clone each event (`recv`).
    Ours,
    /// Subscribers that borrow each event (`recv_ref`).
    OursLent,
    TokioPaced,
    TokioUnpaced,
    AsyncBroadcast,
    Serial,
}

impl Impl {
    pub(super) const ALL: [(Impl, &'static str); 6] = [
        (Impl::Ours, "ours: events-fanout"),
        (Impl::OursLent, "ours, recv_ref"),
        (Impl::TokioPaced, "tokio broadcast, paced"),
        (Impl::AsyncBroadcast, "async-broadcast"),
        (Impl::Serial, "serial queues"),
        (Impl::TokioUnpaced, "tokio broadcast, unpaced (lossy)"),
    ];
}

/// Whether criterion id `id` is the fan-out bench's `imp` at `subscribers`.
/// The fan-out bench names its ids `fanout/...`; the subscriber count is one
/// `/`-separated part that is the number alone or joined to a word by `_`
/// (`16`, `16_subscribers`, `subscribers_16`), and the implementation is
/// told by the words in the id (`ours`/`events`, with `recv_ref` for the
/// lending receive, `tokio` + `paced` or `unpaced`, `async_broadcast`,
/// `serial`).
pub(super) fn fanout_matches(id: &str, imp: Impl, subscribers: &str) -> bool {
    if !id.starts_with("fanout") {
        return false;
    }
    let count = id.split('/').skip(1).any(|part| {
        part == subscribers
            || part.split('_').next() == Some(subscribers)
            || part.rsplit('_').next() == Some(subscribers)
    });
    let id = id.to_ascii_lowercase().replace('-', "_");
    let unpaced = id.contains("unpaced") || id.contains("lossy");
    count
        && match imp {
            Impl::Ours => (id.contains("ours") || id.contains("events_fanout")) && !id.contains("recv_ref"),
            Impl::OursLent => (id.contains("ours") || id.contains("events_fanout")) && id.contains("recv_ref"),
            Impl::TokioPaced => id.contains("tokio") && !unpaced,
            Impl::TokioUnpaced => id.contains("tokio") && unpaced,
            Impl::AsyncBroadcast => id.contains("async_broadcast"),
            Impl::Serial => id.contains("serial"),
        }
}

pub(super) fn fanout_measure(results: &Results, imp: Impl, subscribers: &str) -> Option<Measure> {
    results.iter().find(|(id, _)| fanout_matches(id, imp, subscribers)).map(|(_, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_ids() {
        assert!(fanout_matches("fanout/lossless/ours/16", Impl::Ours, "16"));
        assert!(!fanout_matches("fanout/lossless/ours/16", Impl::Ours, "1"));
        assert!(fanout_matches("fanout/16_subscribers/ours_recv_ref", Impl::OursLent, "16"));
        assert!(!fanout_matches("fanout/16_subscribers/ours_recv_ref", Impl::Ours, "16"));
        assert!(!fanout_matches("fanout/16_subscribers/ours", Impl::OursLent, "16"));
        assert!(fanout_matches("fanout/4_subscribers/tokio_broadcast_paced", Impl::TokioPaced, "4"));
        assert!(!fanout_matches("fanout/4_subscribers/tokio_broadcast_unpaced", Impl::TokioPaced, "4"));
        assert!(fanout_matches("fanout/4_subscribers/tokio_broadcast_unpaced", Impl::TokioUnpaced, "4"));
        assert!(fanout_matches("fanout/subs_1/async-broadcast", Impl::AsyncBroadcast, "1"));
        assert!(fanout_matches("fanout/arc/serial_queues/1", Impl::Serial, "1"));
    }
}
