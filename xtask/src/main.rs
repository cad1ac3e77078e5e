//! `cargo xtask`: the workspace's automation, in Rust so it runs wherever
//! cargo does. It only orchestrates (runs cargo and other tools, checks the
//! tree's conventions), so it keeps its dependencies few and quick to
//! build: `serde` and `serde_json`, to read criterion's result files for
//! the bench report (`bench/results.rs`). Everything else, the SVG charts
//! included, is std.
//!
//! Subcommands: `ci` (everything `.ci/run` checks), `tidy` (the tree's
//! conventions alone), `bench` (the benches side by side with their peers,
//! as a report).

mod bench;
mod fuzz;
mod soak;
mod tidy;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  bench   run every bench with its peers (installs nats-server if missing),
          write target/bench-report/REPORT.md and SVG charts, print the table
          (--quick, --filter RE, --report-only)
  soak    long reliability runs in release mode: --crash N (SIGKILL loop),
          --load [N] (events per producer), --faults N (fault-model cases);
          all three at a medium size without options
  fuzz    fuzz/ target for N seconds: fuzz <segment_reader|recovery_open>
          [--seconds N] (needs nightly and cargo-fuzz)
  ci      install test prerequisites (nats-server, chromium), then fmt check, tidy,
          clippy -D warnings, the whole test suite, the benches built (not
          run), docs (-D warnings)
  tidy    check the tree's conventions (//! file docs, workspace lints)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("tidy") => tidy::check(&workspace_root()).map_err(|problems| problems.join("\n")),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's manifest directory's parent.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives one level below the root").to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs one step, echoing it, and stops the pipeline at the first failure.
fn step(name: &str, mut cmd: Command) -> Result<(), String> {
    println!("\n==> {name}");
    let status = cmd.current_dir(workspace_root()).status().map_err(|e| format!("{name}: cannot start: {e}"))?;
    verdict(name, status)
}

fn verdict(name: &str, status: std::process::ExitStatus) -> Result<(), String> {
    if status.success() { Ok(()) } else { Err(format!("step `{name}` failed ({status})")) }
}

/// How long the built test suite may run in `ci`. It takes about 5 minutes on a 2-core
/// machine; a test that hangs is reported well inside the 30 minutes the whole command
/// should stay under, with libtest's "has been running for over 60 seconds" line above
/// naming it, instead of using them all up.
const TEST_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Like [`step`], but the command and everything it started (test binaries, servers they
/// spawned) are killed once `limit` has passed, and the step fails saying so.
fn step_within(name: &str, limit: Duration, mut cmd: Command) -> Result<(), String> {
    println!("\n==> {name} (at most {} min)", limit.as_secs() / 60);
    // Its own process group, so one signal reaches cargo and the test binaries under it.
    let mut child =
        cmd.current_dir(workspace_root()).process_group(0).spawn().map_err(|e| format!("{name}: cannot start: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{name}: cannot wait: {e}"))? {
            return verdict(name, status);
        }
        if Instant::now() >= deadline {
            let group = format!("-{}", child.id());
            let killed = Command::new("kill").args(["-KILL", "--", &group]).status().is_ok_and(|s| s.success());
            if !killed {
                // No `kill` to reach the group: at least end cargo, so the wait below returns.
                let _ = child.kill();
            }
            let _ = child.wait();
            return Err(format!(
                "step `{name}` still running after {} min: killed (a hung test; see the \
                 \"has been running for over 60 seconds\" lines above)",
                limit.as_secs() / 60
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the tests need and a fresh machine lacks: (the program, under any of
/// its names, and the Debian package that installs it). `kill` ends a step
/// that outlived its deadline (minimal images lack procps).
const TEST_PREREQUISITES: &[(&[&str], &str)] = &[
    (&["nats-server"], "nats-server"),
    (&["chromium", "chromium-browser"], "chromium"),
    (&["chromedriver"], "chromium-driver"),
    (&["kill"], "procps"),
];

/// Installs the programs of `needed` (names, Debian package) that are not
/// installed, so the README's one test command (and `bench`, which runs
/// `nats-server`) works on a fresh machine. Each package is installed on
/// its own, so one that the distribution lacks (Ubuntu ships chromium as a
/// snap) does not keep the others out; every failure is named.
pub(crate) fn prerequisites(needed: &[(&[&str], &str)]) -> Result<(), String> {
    // Installed: on the `PATH`, or where Debian puts `nats-server` (`/usr/sbin`,
    // off a normal user's `PATH`), as the tests look for it.
    let missing: Vec<&str> = needed
        .iter()
        .filter(|(names, _)| events_testkit::program::find(names).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("\n==> installing test prerequisites: {}", missing.join(" "));
    let by_hand = || format!("install {} by hand", missing.join(" "));
    // Not root: sudo, which must not ask for a password (there is no terminal to ask on).
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo", "-n"] };
    if !sudo.is_empty() && !Command::new("sudo").args(["-n", "true"]).status().is_ok_and(|s| s.success()) {
        return Err(format!("not root, and sudo cannot run without a password here: {}", by_hand()));
    }
    // `env` inside sudo: sudo's env_reset drops the caller's variables.
    let apt = |args: &[&str]| -> Result<(), (String, bool)> {
        let mut full: Vec<&str> = sudo.to_vec();
        // Another apt run (say, at boot) holds the dpkg lock for a while: wait for it.
        full.extend_from_slice(&["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=300"]);
        full.extend_from_slice(args);
        let out = Command::new(full[0])
            .args(&full[1..])
            .output()
            .map_err(|e| (format!("cannot run {}: {e}", full[0]), false))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        if out.status.success() {
            Ok(())
        } else {
            Err((format!("{} failed ({})", full.join(" "), out.status), stderr.contains("Could not get lock")))
        }
    };
    // The package lists' lock is not the dpkg lock the option above waits
    // for: retry while another apt run holds it (5 min at most), and only then.
    let mut tries = 0;
    while let Err((e, locked)) = apt(&["update", "-qq"]) {
        tries += 1;
        if !locked || tries == 30 {
            return Err(format!("{e}: {}", by_hand()));
        }
        std::thread::sleep(Duration::from_secs(10));
    }
    let failed: Vec<String> = missing
        .iter()
        .filter_map(|pkg| apt(&["install", "-y", "-qq", "--no-install-recommends", pkg]).err().map(|(e, _)| e))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}; install the missing programs by hand (on Ubuntu, chromium comes as a snap)",
            failed.join("; ")
        ))
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"))
}

fn ci() -> Result<(), String> {
    let root = workspace_root();
    prerequisites(TEST_PREREQUISITES)?;
    // A clean clone gains nothing from incremental caches, and they are a large share of the
    // target directory's size on a CI machine's disk.
    let cargo = || {
        let mut c = cargo();
        if std::env::var_os("CARGO_INCREMENTAL").is_none() {
            c.env("CARGO_INCREMENTAL", "0");
        }
        c
    };
    step("cargo fmt --check", {
        let mut c = cargo();
        c.args(["fmt", "--all", "--", "--check"]);
        c
    })?;
    println!("\n==> tidy");
    tidy::check(&root).map_err(|problems| problems.join("\n"))?;
    step("cargo clippy", {
        let mut c = cargo();
        c.args(["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"]);
        c
    })?;
    // Built first, so the deadline below bounds running the tests, not compiling them.
    step("cargo test --no-run", {
        let mut c = cargo();
        c.args(["test", "--workspace", "--all-features", "--no-run"]);
        c
    })?;
    step_within("cargo test", TEST_DEADLINE, {
        let mut c = cargo();
        c.args(["test", "--workspace", "--all-features"]);
        c
    })?;
    // Links every bench target without running one (`cargo xtask bench` runs them), with
    // the test build's workspace-wide features, so its dependencies are not built again.
    step("cargo build --bench '*'", {
        let mut c = cargo();
        c.args(["build", "--workspace", "--all-features", "--bench", "*"]);
        c
    })?;
    step("cargo doc", {
        let mut c = cargo();
        c.args(["doc", "--workspace", "--no-deps", "--all-features"]).env("RUSTDOCFLAGS", "-D warnings");
        c
    })?;
    println!("\nci: all steps passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step past its deadline fails, and what it started dies with it: a test binary left
    /// behind would hold CI's output open.
    #[test]
    fn a_step_past_its_deadline_is_killed_with_its_children() {
        let dir = std::env::temp_dir().join(format!("xtask-deadline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("grandchild.pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
        let started = Instant::now();
        let err = step_within("sleeper", Duration::from_secs(1), cmd).unwrap_err();
        assert!(err.contains("still running after"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30), "killed at the deadline, not when done");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // The grandchild may take a moment to be reaped by init after SIGKILL.
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            !Path::new(&format!("/proc/{}", pid.trim())).exists()
                || std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "the step's grandchild {} survived", pid.trim());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_step_within_its_deadline_reports_its_status() {
        assert!(step_within("true", Duration::from_secs(30), Command::new("true")).is_ok());
        let err = step_within("false", Duration::from_secs(30), Command::new("false")).unwrap_err();
        assert!(err.contains("failed"), "{err}");
    }
}
