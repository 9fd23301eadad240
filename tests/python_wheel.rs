//! The Python package's wheel for the robot: `deploy/build-wheels.sh aarch64` (maturin with
//! zig, glibc 2.31's symbols).
//!
//! - Its tags: `cp39-abi3` (every CPython from Debian 11's 3.9 on) and a `manylinux` tag no
//!   newer than 2.31, in the file name and in its `WHEEL` metadata.
//! - The extension needs no glibc symbol version newer than 2.31 and no library beyond
//!   glibc's own (no libpython: abi3 + extension-module).
//! - It imports and streams under `qemu-aarch64` with Debian 11's own arm64 Python 3.9
//!   (`tests/support/bullseye-arm64.sh python3.9`, packages fetched with `apt-get download`): the
//!   program serves a 160x120 gray frame (encoded by libjpeg-turbo's NEON code) and the
//!   host reads it as a JPEG of that size.
//!
//! The first run installs the tools (Rust target, maturin and zig from PyPI) and builds cold
//! (minutes); later runs reuse `target/wheel-build`. Without network or qemu: SKIPPED,
//! unless FRCSTREAM_REQUIRE_AARCH64=1.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{path_from_script, repo, run_stdout as run};

/// Debian 11's arm64 Python 3.9 for `tests/support/bullseye-arm64.sh`: its cache's name, then
/// python3.9-minimal, its standard library and the libraries they load, over glibc 2.31.
const PYTHON_3_9: [&str; 15] = [
    "python3.9",
    "libc6",
    "libgcc-s1",
    "python3.9-minimal",
    "libpython3.9-minimal",
    "libpython3.9-stdlib",
    "libexpat1",
    "zlib1g",
    "libffi7",
    "libbz2-1.0",
    "liblzma5",
    "libmpdec3",
    "libuuid1",
    "libcrypt1",
    "libssl1.1",
];

/// The SKIPPED banner, or a failure under `FRCSTREAM_REQUIRE_AARCH64=1`.
fn skip(reason: &str) {
    support::skip_unless_required(
        &support::AARCH64,
        "aarch64_wheel_installs_and_streams_on_debian_11",
        reason,
    );
}

/// The newest `GLIBC_x.y` in `readelf -V` output.
fn newest_glibc(readelf_v: &str) -> (u32, u32) {
    readelf_v
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .max()
        .expect("GLIBC_ versions")
}

const STREAM_ONE_FRAME: &str = r#"
import sys, time
sys.path.insert(0, sys.argv[1])
import frcstream
server = frcstream.Server(port=0, bind="127.0.0.1")
stream = server.add_stream("cam")
server.start()
print(server.port, flush=True)
gray = memoryview(bytes((x * 7 + y) % 256 for y in range(120) for x in range(160))).cast("B", (120, 160))
end = time.monotonic() + 120
while time.monotonic() < end:
    stream.put_frame(gray)
    time.sleep(0.05)
"#;

#[test]
fn aarch64_wheel_installs_and_streams_on_debian_11() {
    if Command::new("sh")
        .args(["-c", "command -v qemu-aarch64"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| !s.success())
    {
        return skip("no qemu-aarch64 (package qemu-user)");
    }
    let started = Instant::now();
    let wheel = match path_from_script("deploy/build-wheels.sh", &["aarch64"]) {
        Ok(wheel) => wheel,
        Err(reason) => return skip(&reason),
    };
    eprintln!(
        "aarch64 wheel: {} ({} KB, {:.0} s to build)",
        wheel.display(),
        std::fs::metadata(&wheel).expect("wheel").len() / 1024,
        started.elapsed().as_secs_f64()
    );
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.contains("-cp39-abi3-"),
        "not an abi3 wheel for 3.9+: {name}"
    );
    let tag = name
        .split('-')
        .next_back()
        .unwrap()
        .trim_end_matches(".whl")
        .to_owned();
    let manylinux: Vec<u32> = tag
        .split('.')
        .find_map(|t| t.strip_prefix("manylinux_"))
        .expect("a manylinux_x_y tag")
        .split('_')
        .take(2)
        .map(|v| v.parse().expect("version"))
        .collect();
    assert!(
        (manylinux[0], manylinux[1]) <= (2, 31) && tag.ends_with("aarch64"),
        "tag {tag}: newer than manylinux_2_31 or not aarch64"
    );

    let unpacked = repo().join("target/wheel-test");
    let _ = std::fs::remove_dir_all(&unpacked);
    run(Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpacked));
    let metadata = std::fs::read_to_string(
        std::fs::read_dir(&unpacked)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(".dist-info"))
            .expect("dist-info")
            .path()
            .join("WHEEL"),
    )
    .expect("WHEEL");
    assert!(
        metadata.contains(&format!(
            "Tag: cp39-abi3-{}",
            tag.split('.').next().unwrap()
        )),
        "WHEEL metadata:\n{metadata}"
    );
    let extension = std::fs::read_dir(unpacked.join("frcstream"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "so"))
        .expect("the extension module");
    assert!(run(Command::new("readelf").arg("-h").arg(&extension)).contains("AArch64"));
    let newest = newest_glibc(&run(Command::new("readelf").arg("-V").arg(&extension)));
    assert!(
        newest <= (2, 31),
        "the extension needs GLIBC_{}.{}",
        newest.0,
        newest.1
    );
    let dynamic = run(Command::new("readelf").arg("-d").arg(&extension));
    for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        assert!(
            [
                "libc.so",
                "libm.so",
                "libdl.so",
                "libpthread.so",
                "librt.so",
                "libgcc_s.so",
                "ld-linux-aarch64"
            ]
            .iter()
            .any(|lib| line.contains(lib)),
            "the extension needs more than glibc: {line}"
        );
    }

    let root = match path_from_script("tests/support/bullseye-arm64.sh", &PYTHON_3_9) {
        Ok(root) => root,
        Err(reason) => return skip(&reason),
    };
    let mut program = Command::new("qemu-aarch64")
        .arg("-L")
        .arg(&root)
        .arg(root.join("usr/bin/python3.9"))
        .args(["-c", STREAM_ONE_FRAME])
        .arg(&unpacked)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-aarch64 python3.9");
    let mut line = String::new();
    BufReader::new(program.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the port");
    let port: u16 = match line.trim().parse() {
        Ok(port) => port,
        Err(_) => {
            let _ = program.kill();
            panic!("Python 3.9 under qemu did not start the server: {line:?}");
        }
    };
    let address = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        match mjpeg_client::get(address, "/cam.jpg") {
            Ok(response) if response.status == 200 => break response,
            other if Instant::now() > deadline => {
                let _ = program.kill();
                panic!("no snapshot from the aarch64 wheel: {other:?}");
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let _ = program.kill();
    let _ = program.wait();
    let jpeg = &response.body;
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    let mut decompressor = turbojpeg::Decompressor::new().expect("decompressor");
    let header = decompressor.read_header(jpeg).expect("a JPEG header");
    assert_eq!((header.width, header.height), (160, 120));
    eprintln!(
        "Debian 11's Python 3.9 (arm64, qemu) served a {} byte 160x120 JPEG, {:.0} s in all",
        jpeg.len(),
        started.elapsed().as_secs_f64()
    );
}
