//! `cargo xtask`: the workspace's automation, in Rust so it runs wherever
//! cargo does. It only orchestrates (runs cargo and other tools, checks the
//! tree's conventions), so it keeps its dependencies few and quick to
//! build: `serde` and `serde_json`, to read criterion's result files for
//! the bench report (`bench/results.rs`), and `libc`, to pass a stop
//! signal on to the test step's process group. Everything else, the SVG
//! charts included, is std.
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
use std::sync::atomic::{AtomicI32, Ordering};
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

/// The signal that asked `cargo xtask` to stop while a [`step_within`] ran (0: none).
static STOP: AtomicI32 = AtomicI32::new(0);

/// Records the signal; [`step_within`]'s loop passes it on (only an atomic store here, as
/// a signal handler may do).
extern "C" fn on_stop(signal: libc::c_int) {
    STOP.store(signal, Ordering::SeqCst);
}

/// The signals a terminal or a CI runner stops a command with.
const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Sets what the stop signals do: `handler`, or the default action.
fn on_stop_signals(handler: libc::sighandler_t) {
    for signal in STOP_SIGNALS {
        // SAFETY: `on_stop` only stores to an atomic (async-signal-safe), and SIG_DFL is the
        // default disposition; `signal` is one of the three valid signal numbers above.
        unsafe { libc::signal(signal, handler) };
    }
}

/// Like [`step`], but the command and everything it started (test binaries, servers they
/// spawned) are killed once `limit` has passed, and the step fails saying so. The step
/// runs in its own process group, which a terminal's Ctrl-C (sent to the foreground
/// group, xtask's) does not reach: a stop signal xtask receives is passed on to that
/// group, and the step fails saying so, instead of xtask dying and leaving the tests
/// (and the servers and browsers they started) running with no deadline.
fn step_within(name: &str, limit: Duration, mut cmd: Command) -> Result<(), String> {
    println!("\n==> {name} (at most {} min)", limit.as_secs() / 60);
    STOP.store(0, Ordering::SeqCst);
    on_stop_signals(on_stop as *const () as libc::sighandler_t);
    let result = run_within(name, limit, &mut cmd);
    on_stop_signals(libc::SIG_DFL);
    result
}

fn run_within(name: &str, limit: Duration, cmd: &mut Command) -> Result<(), String> {
    // Its own process group, so one signal reaches cargo and the test binaries under it.
    let mut child =
        cmd.current_dir(workspace_root()).process_group(0).spawn().map_err(|e| format!("{name}: cannot start: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{name}: cannot wait: {e}"))? {
            return verdict(name, status);
        }
        let signal = STOP.load(Ordering::SeqCst);
        if signal != 0 {
            let group = libc::pid_t::try_from(child.id()).map_err(|e| format!("{name}: {e}"))?;
            // The signal first, so cargo and the tests stop as they would at a terminal;
            // then, once cargo is gone (or after 10 s), SIGKILL for whatever is left in the
            // group (a process started in the background ignores SIGINT).
            // SAFETY: plain kill(2)s of the step's own process group.
            unsafe { libc::kill(-group, signal) };
            let grace = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(50));
            }
            // SAFETY: as above.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
            return Err(format!("step `{name}` interrupted (signal {signal}): stopped, with everything it started"));
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
    // The code as shipped: without `fault-injection` (which every step above and below
    // turns on), the journal's file operations go straight to the system, not through the
    // fault seam's other half.
    step("cargo clippy (default features)", {
        let mut c = cargo();
        c.args(["clippy", "--workspace", "--lib", "--bins", "--", "-D", "warnings"]);
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

    /// The tests that run steps take turns: a stop signal is process-wide.
    static STEPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A shell that starts `sleep 60` in the background, writes its pid to
    /// `pid_file` and waits for it; in a directory of its own (`tag` names it).
    fn sleeper(tag: &str) -> (PathBuf, PathBuf, Command) {
        let dir = std::env::temp_dir().join(format!("xtask-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("grandchild.pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
        (dir, pid_file, cmd)
    }

    /// Whether process `pid` has ended (gone, or a zombie awaiting its reaper), within 5 s.
    fn ended(pid: &str) -> bool {
        (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        })
    }

    /// A stop signal to xtask (a terminal's Ctrl-C reaches xtask's group, not the step's)
    /// is passed on to the step's group: the step ends, with what it started, and fails
    /// saying so. xtask had died, leaving the tests running with no deadline.
    #[test]
    fn a_stop_signal_to_xtask_stops_the_step_and_what_it_started() {
        let _turn = STEPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (dir, pid_file, cmd) = sleeper("stop");
        let signaller = std::thread::spawn(move || {
            let started = Instant::now();
            let pid = loop {
                match std::fs::read_to_string(&pid_file) {
                    Ok(pid) if pid.ends_with('\n') => break pid.trim().to_owned(),
                    _ if started.elapsed() > Duration::from_secs(20) => panic!("the step never started"),
                    _ => std::thread::sleep(Duration::from_millis(20)), // polling a file
                }
            };
            // SAFETY: a plain kill(2) of this process, as a terminal's Ctrl-C would send.
            unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
            pid
        });
        let started = Instant::now();
        let err = step_within("sleeper", Duration::from_secs(60), cmd).unwrap_err();
        let pid = signaller.join().unwrap();
        assert!(err.contains("interrupted"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30), "stopped at the signal, not at the deadline");
        assert!(ended(&pid), "the step's grandchild {pid} survived");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A step past its deadline fails, and what it started dies with it: a test binary left
    /// behind would hold CI's output open.
    #[test]
    fn a_step_past_its_deadline_is_killed_with_its_children() {
        let _turn = STEPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (dir, pid_file, cmd) = sleeper("deadline");
        let started = Instant::now();
        // Long enough for `sh` to start its grandchild and write its pid
        // on a loaded machine.
        let err = step_within("sleeper", Duration::from_secs(3), cmd).unwrap_err();
        assert!(err.contains("still running after"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(30), "killed at the deadline, not when done");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // The grandchild may take a moment to be reaped by init after SIGKILL.
        assert!(ended(pid.trim()), "the step's grandchild {} survived", pid.trim());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_step_within_its_deadline_reports_its_status() {
        let _turn = STEPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(step_within("true", Duration::from_secs(30), Command::new("true")).is_ok());
        let err = step_within("false", Duration::from_secs(30), Command::new("false")).unwrap_err();
        assert!(err.contains("failed"), "{err}");
    }
}
