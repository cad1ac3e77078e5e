//! Model-based property test: random sequences of append, append_batch,
//! sync, roll, prune, reopen and read_since against a `Vec` model that also
//! predicts segment rolls and retention. The reader must always return
//! exactly the model's suffix, and `Expired` / `Ahead` exactly when the
//! model says so.
//!
//! The model and its write actions are `support/model.rs`, shared with
//! `reliability_fault_model.rs`; reads and the weights are this file's own.

mod support;

use events_journal::{Journal, JournalOptions, ReadError, Reader, SyncPolicy};
use proptest::prelude::*;
use support::model::{Action, Model};

#[derive(Clone, Debug)]
enum Op {
    Write(Action),
    Read(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..200).prop_map(|n| Op::Write(Action::Append(n))),
        3 => proptest::collection::vec(0u16..200, 0..12).prop_map(|ns| Op::Write(Action::Batch(ns))),
        1 => Just(Op::Write(Action::Sync)),
        1 => Just(Op::Write(Action::Roll)),
        1 => Just(Op::Write(Action::Prune)),
        1 => Just(Op::Write(Action::Reopen)),
        4 => any::<u16>().prop_map(Op::Read),
    ]
}

fn options() -> JournalOptions {
    support::model::options().sync(SyncPolicy::Never)
}

fn body(n: u16, seq: u64) -> Vec<u8> {
    vec![(seq % 251) as u8; n as usize]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn journal_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, _) = Journal::open(dir.path(), options()).unwrap();
        let reader = Reader::open(dir.path()).unwrap();
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::Write(Action::Append(n)) => {
                    let p = body(n, model.next_seq());
                    let seq = journal.append(model.next_seq() * 3, &p).unwrap();
                    prop_assert_eq!(seq, model.next_seq());
                    model.write(&[p]);
                }
                Op::Write(Action::Batch(ns)) => {
                    let first = model.next_seq();
                    let payloads: Vec<Vec<u8>> = ns.iter().enumerate().map(|(i, &n)| body(n, first + i as u64)).collect();
                    let range = journal
                        .append_batch(payloads.iter().enumerate().map(|(i, p)| ((first + i as u64) * 3, p.as_slice())))
                        .unwrap();
                    prop_assert_eq!(*range.start(), first);
                    prop_assert_eq!(range.count(), payloads.len());
                    model.write(&payloads);
                }
                Op::Write(Action::Sync) => journal.sync().unwrap(),
                Op::Write(Action::Roll) => {
                    journal.roll().unwrap();
                    model.roll();
                }
                Op::Write(Action::Prune) => {
                    journal.prune().unwrap();
                    model.prune();
                }
                Op::Write(Action::Reopen) => {
                    journal.close().unwrap();
                    let (j, report) = Journal::open(dir.path(), options()).unwrap();
                    prop_assert!(report.action.is_none(), "clean reopen changed something: {:?}", report.action);
                    journal = j;
                }
                Op::Read(x) => {
                    let last = model.next_seq() - 1;
                    let cursor = u64::from(x) % (last + 3);
                    match reader.read_since(cursor) {
                        Ok(records) => {
                            prop_assert!(cursor + 1 >= model.first_seq() && cursor <= last, "cursor {} served", cursor);
                            let got: Vec<(u64, u64, Vec<u8>)> =
                                records.map(|r| r.map(|r| (r.seq(), r.ts(), r.payload().to_vec()))).collect::<Result<_, _>>().unwrap();
                            let want: Vec<(u64, u64, Vec<u8>)> =
                                model.records[cursor as usize..].iter().zip(cursor + 1..).map(|(p, s)| (s, s * 3, p.clone())).collect();
                            prop_assert_eq!(got, want);
                        }
                        Err(ReadError::Expired { earliest }) => {
                            prop_assert_eq!(earliest, model.first_seq());
                            prop_assert!(cursor + 1 < earliest);
                        }
                        Err(ReadError::Ahead { latest }) => {
                            prop_assert_eq!(latest, last);
                            prop_assert!(cursor > last);
                        }
                        Err(e) => prop_assert!(false, "unexpected error {}", e),
                    }
                }
            }
            prop_assert_eq!(journal.next_seq(), model.next_seq());
            prop_assert_eq!(journal.first_seq(), model.first_seq());
            prop_assert_eq!(journal.stats().segments, model.segments.len());
            prop_assert_eq!(support::segments(dir.path()).len(), model.segments.len());
        }
        prop_assert_eq!(reader.first_seq().unwrap(), model.first_seq());
        prop_assert_eq!(reader.last_seq().unwrap(), model.next_seq() - 1);
        prop_assert_eq!(reader.epoch().unwrap(), journal.epoch());
        journal.close().unwrap();
        prop_assert!(events_journal::verify(dir.path()).unwrap().is_ok());
    }
}
