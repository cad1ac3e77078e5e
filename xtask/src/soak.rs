//! `cargo xtask soak`: the long versions of the reliability tests whose
//! CI-sized versions run in `cargo test`. It only orchestrates: each soak is
//! the same `#[test]` run in release mode with a larger size in an
//! environment variable, so the soak and CI check exactly the same promises.
//!
//! - `--crash N`: N SIGKILLs of a child appending through the façade
//!   (`crates/events/tests/reliability_crash_loop.rs`, `EVENTS_CRASH_ROUNDS`).
//! - `--load [N]`: the load test with N events per producer (default 100000;
//!   `crates/events/tests/reliability_load.rs`, `EVENTS_LOAD_PER_PRODUCER`).
//! - `--faults N`: N cases of the fault-injection model test
//!   (`crates/events-journal/tests/reliability_fault_model.rs`, `EVENTS_FAULT_MODEL_CASES`).
//!
//! Without options it runs all three at a medium size.

use std::process::Command;

/// One soak: which test binary and test, the size variable and its value.
struct Soak {
    package: &'static str,
    test: &'static str,
    name: &'static str,
    env: &'static str,
    size: u64,
}

fn crash(size: u64) -> Soak {
    Soak {
        package: "events",
        test: "reliability_crash_loop",
        name: "sigkill_loop_loses_no_acknowledged_event_and_reuses_no_seq",
        env: "EVENTS_CRASH_ROUNDS",
        size,
    }
}

fn load(size: u64) -> Soak {
    Soak {
        package: "events",
        test: "reliability_load",
        name: "load_sixteen_producers_lossless_subscribers_resuming_clients_under_pruning",
        env: "EVENTS_LOAD_PER_PRODUCER",
        size,
    }
}

fn faults(size: u64) -> Soak {
    Soak {
        package: "events-journal",
        test: "reliability_fault_model",
        name: "journal_matches_the_acknowledged_prefix_after_every_fault",
        env: "EVENTS_FAULT_MODEL_CASES",
        size,
    }
}

/// Runs `cargo xtask soak [--crash N] [--load [N]] [--faults N]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut soaks = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let mut size = |default: Option<u64>| -> Result<u64, String> {
            match it.peek().map(|s| s.parse::<u64>()) {
                Some(Ok(n)) => {
                    it.next();
                    Ok(n)
                }
                _ => default.ok_or_else(|| format!("{arg} needs a number")),
            }
        };
        match arg.as_str() {
            "--crash" => soaks.push(crash(size(None)?)),
            "--load" => soaks.push(load(size(Some(100_000))?)),
            "--faults" => soaks.push(faults(size(None)?)),
            other => return Err(format!("soak: unknown option {other:?} (--crash N, --load [N], --faults N)")),
        }
    }
    if soaks.is_empty() {
        soaks = vec![crash(1000), load(100_000), faults(2000)];
    }
    for soak in soaks {
        let mut cmd = crate::cargo();
        cmd.args(["test", "--release", "-p", soak.package, "--test", soak.test, "--", "--exact", soak.name])
            .args(["--nocapture", "--test-threads=1"])
            .env(soak.env, soak.size.to_string());
        crate::step(&format!("soak {} ({}={})", soak.test, soak.env, soak.size), cmd)?;
    }
    Ok(())
}

/// True if `cmd` runs and exits successfully (used to probe for tools).
pub(crate) fn succeeds(mut cmd: Command) -> bool {
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status().is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::{crash, faults, load};

    /// Each soak runs its test by its exact name: a test renamed would run
    /// nothing, and the soak would pass having proved nothing.
    #[test]
    fn every_soak_names_a_test_that_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for soak in [crash(1), load(1), faults(1)] {
            let path = root.join("crates").join(soak.package).join("tests").join(format!("{}.rs", soak.test));
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(source.contains(&format!("fn {}(", soak.name)), "{} has no test {}", path.display(), soak.name);
            assert!(source.contains(soak.env), "{} does not read {}", path.display(), soak.env);
        }
    }
}
