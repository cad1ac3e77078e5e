//! `cargo xtask fuzz TARGET --seconds N`: runs one `cargo fuzz` target of
//! `fuzz/` (`segment_reader` or `recovery_open`) for N seconds. cargo-fuzz
//! needs a nightly toolchain and the `cargo-fuzz` tool; when either is
//! missing this says so and how to get them, instead of failing obscurely.
//! The stable stand-in that CI runs is
//! `crates/events-journal/tests/reliability_fuzz_stable.rs`.

use crate::soak::succeeds;

/// The targets of `fuzz/fuzz_targets/`.
const TARGETS: &[&str] = &["segment_reader", "recovery_open"];

/// Seconds one input may take before the run reports it as a hang.
const INPUT_TIMEOUT: u64 = 10;

/// Runs `cargo xtask fuzz TARGET [--seconds N]` (default 60 seconds).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let usage = || format!("usage: cargo xtask fuzz <{}> [--seconds N]", TARGETS.join("|"));
    let target = args.first().filter(|t| TARGETS.contains(&t.as_str())).ok_or_else(usage)?;
    let seconds = match args.get(1).map(String::as_str) {
        None => 60,
        Some("--seconds") => args.get(2).and_then(|s| s.parse::<u64>().ok()).ok_or_else(usage)?,
        Some(_) => return Err(usage()),
    };
    let mut nightly = rustup_cargo();
    nightly.args(["+nightly", "--version"]);
    if !succeeds(nightly) {
        return Err("fuzzing needs a nightly toolchain: `rustup toolchain install nightly` \
                    (the stable stand-in runs in CI: cargo test -p events-journal --test reliability_fuzz_stable)"
            .into());
    }
    let mut fuzz = rustup_cargo();
    fuzz.args(["+nightly", "fuzz", "--version"]);
    if !succeeds(fuzz) {
        return Err("fuzzing needs cargo-fuzz: `cargo install cargo-fuzz` (and a nightly toolchain)".into());
    }
    // The target's own corpus (what libFuzzer found, not kept in git) and
    // the seeds (`fuzz/seeds`: valid journals of one and two segments laid
    // out as the targets read their input, so the run starts from inputs
    // that pass the header and frame checks instead of from nothing).
    let corpus = format!("fuzz/corpus/{target}");
    std::fs::create_dir_all(&corpus).map_err(|e| format!("creating {corpus}: {e}"))?;
    let mut cmd = rustup_cargo();
    // An input that takes more than `INPUT_TIMEOUT` seconds is a hang, reported
    // as a failure (libFuzzer's own default allows 20 minutes per input).
    let limits = [format!("-max_total_time={seconds}"), format!("-timeout={INPUT_TIMEOUT}")];
    cmd.args(["+nightly", "fuzz", "run", target, &corpus, "fuzz/seeds", "--"]).args(&limits);
    crate::step(&format!("cargo fuzz run {target} for {seconds} s"), cmd)
}

/// `cargo` through the rustup proxy on `PATH`: `$CARGO` is the stable
/// toolchain's own binary, which does not understand `+nightly`.
fn rustup_cargo() -> std::process::Command {
    let mut cmd = std::process::Command::new("cargo");
    cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO");
    cmd
}
