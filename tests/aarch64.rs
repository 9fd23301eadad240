//! The robot's build: the aarch64 release binary that `deploy/build-aarch64.sh` makes (the
//! documented no-Docker build: zig as C compiler and linker via cargo-zigbuild, glibc 2.31).
//!
//! - It needs no glibc symbol version newer than 2.31 and no shared library beyond glibc's
//!   own (`readelf -V`/`-d`), and libjpeg-turbo was built with its NEON code.
//! - It runs on glibc 2.31 for real: `qemu-aarch64 -L` with Debian 11's arm64 libc6
//!   (`tests/support/bullseye-arm64.sh glibc-2.31`), where a program built by Debian 12's cross gcc
//!   fails (the check tells good from bad).
//! - The unit tests, built the same way, pass under `qemu-aarch64` on that glibc.
//! - Smoke test: the binary runs in `vm/vm.py --arch aarch64` (Debian's arm64 kernel in
//!   qemu-system-aarch64) with `vivid` as its camera, and streams JPEGs that decode to the
//!   camera's size, and differ, to the host.
//!
//! The first run installs the toolchain (a Rust target, zig from PyPI in a venv,
//! cargo-zigbuild: ~1 min) and builds cold (~1.5–2.5 min on 2 cores); later runs reuse
//! `target/aarch64-build`. What this machine cannot provide (no network for the installs,
//! no qemu) prints SKIPPED and passes, unless FRCSTREAM_REQUIRE_AARCH64=1.
//! `cargo test --test aarch64 -- --nocapture` prints size, glibc and timings.

mod support;
use support::{have_command, repo, run_stdout as run, vm};

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mjpeg_client::MjpegStream;

/// The newest glibc the binary may need: Raspberry Pi OS bullseye, Ubuntu 20.04 (JetPack 5).
const MAX_GLIBC: (u32, u32) = (2, 31);
/// Libraries the binary may need: glibc's own.
const ALLOWED_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "ld-linux-aarch64.so.1",
    "libgcc_s.so.1",
];

/// One heavy job at a time (the build, the unit tests under qemu, the VM).
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The SKIPPED banner, or a failure under `FRCSTREAM_REQUIRE_AARCH64=1`.
fn skip(test: &str, reason: &str) {
    support::skip_unless_required(&support::AARCH64, test, reason);
}

/// The binary `deploy/build-aarch64.sh` makes, built once per test run. `Err` holds the
/// reason it cannot be had here (an install step failed: exit status 3).
fn binary() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let _heavy = heavy();
            let started = Instant::now();
            let output = Command::new(repo().join("deploy/build-aarch64.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("run deploy/build-aarch64.sh");
            let stdout = String::from_utf8_lossy(&output.stdout);
            match output.status.code() {
                Some(0) => {}
                Some(3) => return Err(format!("the build tools cannot be installed: {stdout}")),
                _ => panic!("deploy/build-aarch64.sh failed: {}", output.status),
            }
            let path = PathBuf::from(stdout.trim());
            assert!(path.is_file(), "build-aarch64.sh printed {stdout:?}");
            eprintln!(
                "aarch64 release build: {:.1} s (this run's; cold or warm)",
                started.elapsed().as_secs_f64()
            );
            Ok(path)
        })
        .clone()
}

/// Bullseye's arm64 glibc 2.31, unpacked.
fn glibc_2_31() -> Result<PathBuf, String> {
    static ROOT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let packages = ["glibc-2.31", "libc6", "libgcc-s1"];
        support::path_from_script("tests/support/bullseye-arm64.sh", &packages)
    })
    .clone()
}

/// `(major, minor)` of every `GLIBC_x.y[.z]` version the binary needs.
fn glibc_versions(readelf_v: &str) -> Vec<(u32, u32, u32)> {
    let mut versions: Vec<(u32, u32, u32)> = readelf_v
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>());
            let major = parts.next()?.ok()?;
            let minor = parts.next()?.ok()?;
            let patch = parts.next().and_then(Result::ok).unwrap_or(0);
            Some((major, minor, patch))
        })
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

#[test]
fn release_binary_needs_only_glibc_2_31() {
    let binary = match binary() {
        Ok(binary) => binary,
        Err(reason) => return skip("release_binary_needs_only_glibc_2_31", &reason),
    };
    let header = run(Command::new("readelf").arg("-h").arg(&binary));
    assert!(
        header.contains("AArch64"),
        "not an aarch64 binary:\n{header}"
    );
    let dynamic = run(Command::new("readelf").arg("-d").arg(&binary));
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(!needed.is_empty(), "no NEEDED entries:\n{dynamic}");
    for library in &needed {
        assert!(
            ALLOWED_LIBRARIES.contains(library),
            "the binary needs {library}, beyond glibc: {needed:?}"
        );
    }
    // The version needs (.gnu.version_r) are exactly what the loader checks.
    let versions = glibc_versions(&run(Command::new("readelf").arg("-V").arg(&binary)));
    let newest = *versions.last().expect("GLIBC_ version needs");
    assert!(
        (newest.0, newest.1) <= MAX_GLIBC,
        "the binary needs GLIBC_{}.{}: newer than {}.{}",
        newest.0,
        newest.1,
        MAX_GLIBC.0,
        MAX_GLIBC.1
    );
    // The same from the dynamic symbols, with the cross binutils' objdump where present.
    if have_command("aarch64-linux-gnu-objdump") {
        let symbols = run(Command::new("aarch64-linux-gnu-objdump")
            .arg("-T")
            .arg(&binary));
        let from_symbols = glibc_versions(&symbols);
        assert_eq!(from_symbols.last(), Some(&newest), "objdump -T disagrees");
    }
    // libjpeg-turbo was configured with its NEON code (require-simd also makes cmake fail
    // without it).
    let build_dir = binary.parent().unwrap().join("build");
    let simd = std::fs::read_dir(&build_dir)
        .expect("build folder")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("turbojpeg-sys-")
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("output")).ok())
        .any(|output| output.contains("SIMD extensions: arm64 (WITH_SIMD = 1)"));
    assert!(simd, "libjpeg-turbo's cmake did not report NEON SIMD");
    let size = std::fs::metadata(&binary).unwrap().len();
    eprintln!(
        "aarch64 binary {}: {size} bytes ({:.2} MiB), needs {needed:?}, newest GLIBC_{}.{}{}",
        binary.display(),
        size as f64 / 1048576.0,
        newest.0,
        newest.1,
        if newest.2 > 0 {
            format!(".{}", newest.2)
        } else {
            String::new()
        }
    );
}

#[test]
fn runs_on_glibc_2_31() {
    let test = "runs_on_glibc_2_31";
    let binary = match binary() {
        Ok(binary) => binary,
        Err(reason) => return skip(test, &reason),
    };
    if !have_command("qemu-aarch64") {
        return skip(test, "qemu-aarch64 is missing (apt-get install qemu-user)");
    }
    let root = match glibc_2_31() {
        Ok(root) => root,
        Err(reason) => return skip(test, &reason),
    };
    let version = run(Command::new("qemu-aarch64")
        .arg("-L")
        .arg(&root)
        .arg(&binary)
        .arg("--version"));
    assert!(version.starts_with("frcstream "), "{version}");
    // A config check needs the whole startup path up to the config (exit status 2).
    let output = Command::new("qemu-aarch64")
        .arg("-L")
        .arg(&root)
        .arg(&binary)
        .args(["--config", "/nonexistent/frcstream.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");

    // The control: a program from Debian 12's cross gcc needs GLIBC_2.34 and fails there.
    if have_command("aarch64-linux-gnu-gcc") {
        let dir = std::env::temp_dir().join(format!("frcstream-glibc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.c"), "int main(void) { return 0; }\n").unwrap();
        run(Command::new("aarch64-linux-gnu-gcc")
            .arg("-o")
            .arg(dir.join("t"))
            .arg(dir.join("t.c")));
        let control = Command::new("qemu-aarch64")
            .arg("-L")
            .arg(&root)
            .arg(dir.join("t"))
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            !control.status.success()
                && String::from_utf8_lossy(&control.stderr).contains("GLIBC_2.3"),
            "a Debian 12 program ran on the glibc 2.31 root: the check proves nothing: {control:?}"
        );
    }
}

#[test]
fn unit_tests_pass_under_qemu() {
    let test = "unit_tests_pass_under_qemu";
    if let Err(reason) = binary() {
        return skip(test, &reason);
    }
    if !have_command("qemu-aarch64") {
        return skip(test, "qemu-aarch64 is missing (apt-get install qemu-user)");
    }
    let root = match glibc_2_31() {
        Ok(root) => root,
        Err(reason) => return skip(test, &reason),
    };
    let _heavy = heavy();
    let started = Instant::now();
    let output = Command::new(repo().join("deploy/build-aarch64.sh"))
        .args(["test", "--lib", "--bins"])
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("qemu-aarch64 -L {}", root.display()),
        )
        .stderr(Stdio::inherit())
        .output()
        .expect("run deploy/build-aarch64.sh test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "aarch64 unit tests failed ({}):\n{stdout}",
        output.status
    );
    let passed: u32 = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u32>().ok())
        .sum();
    assert!(passed >= 50, "only {passed} unit tests ran:\n{stdout}");
    eprintln!(
        "{passed} aarch64 unit tests passed under qemu-aarch64 on glibc 2.31 ({:.1} s with the build)",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn streams_vivid_on_arm64_kernel() {
    let test = "streams_vivid_on_arm64_kernel";
    let binary = match binary() {
        Ok(binary) => binary,
        Err(reason) => return skip(test, &reason),
    };
    let _heavy = heavy();
    let scratch = std::env::temp_dir().join(format!("frcstream-arm64-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let payload = scratch.join("payload");
    std::fs::create_dir_all(&payload).unwrap();
    std::fs::copy(&binary, payload.join("frcstream")).unwrap();
    std::fs::write(
        payload.join("vivid.toml"),
        "[server]\nbind = \"0.0.0.0\"\nport = 1181\nmax_mbit = 0\n\n\
         [[camera]]\nname = \"cam\"\nsource = \"v4l2:/dev/video0\"\n\
         width = 640\nheight = 480\nfps = 25\nformat = \"yuyv\"\nquality = 60\n",
    )
    .unwrap();
    let Some(mut vm) = vm::Vm::boot(test, &payload, &[1181], &["--arch", "aarch64"], &scratch)
    else {
        // Vm::boot said SKIPPED, or failed the test under FRCSTREAM_REQUIRE_AARCH64=1.
        let _ = std::fs::remove_dir_all(&scratch);
        return;
    };
    assert_eq!(vm.run("uname -m").trim(), "aarch64");
    assert!(
        vm.run("/payload/frcstream --version")
            .starts_with("frcstream ")
    );
    let listing = vm.run("/payload/frcstream --list-cameras");
    assert!(listing.contains("/dev/video0"), "{listing}");
    vm.spawn("fs", "/payload/frcstream -c /payload/vivid.toml");
    assert!(
        vm.wait_port(1181, 30),
        "frcstream did not listen:\n{}",
        vm.log("fs")
    );
    let mut stream = MjpegStream::open(vm.addr(1181), "/cam.mjpg")
        .unwrap_or_else(|e| panic!("stream: {e}\n{}", vm.log("fs")));
    let first = stream.next_part().expect("first part");
    let started = Instant::now();
    let mut parts = vec![first];
    while parts.len() < 40 && started.elapsed() < Duration::from_secs(20) {
        parts.push(stream.next_part().expect("part"));
    }
    let elapsed = started.elapsed();
    let real: Vec<_> = parts
        .iter()
        .filter(|p| p.header("x-frame-kind") != Some("no-signal"))
        .collect();
    assert!(real.len() >= 20, "only {} camera frames", real.len());
    for part in &real {
        assert_eq!(support::decoded_size(&part.jpeg), (640, 480));
    }
    let distinct: std::collections::HashSet<&[u8]> =
        real.iter().map(|p| p.jpeg.as_slice()).collect();
    assert!(
        distinct.len() >= real.len() / 2,
        "frames do not change: {} distinct of {}",
        distinct.len(),
        real.len()
    );
    let fps = (parts.len() - 1) as f64 / elapsed.as_secs_f64();
    eprintln!(
        "arm64 VM (TCG): {} JPEGs 640x480 from vivid at {fps:.1} fps, {} distinct, {} KB average",
        real.len(),
        distinct.len(),
        real.iter().map(|p| p.jpeg.len()).sum::<usize>() / real.len() / 1024
    );
    assert!(
        vm.exited("fs").is_none(),
        "frcstream exited:\n{}",
        vm.log("fs")
    );
    drop(vm);
    let _ = std::fs::remove_dir_all(&scratch);
}
