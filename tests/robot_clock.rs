//! Frame times in the robot's clock, against WPILib's real ntcore server (PyPI `pyntcore`,
//! `crates/nt4/tests/support/nt_server.py`): a `Streamer` with NetworkTables synchronises
//! with ntcore, and each part's `X-Robot-Timestamp` must be its `X-Timestamp`
//! (`CLOCK_MONOTONIC`) in ntcore's own time base, which the test reads from the server
//! process itself. Skipped loudly when pyntcore cannot be installed
//! (`FRCSTREAM_REQUIRE_PYNTCORE=1` makes that a failure).

mod support;

use std::path::Path;
use std::time::Duration;

use frcstream::{Config, Streamer};
use mjpeg_client::{MjpegStream, Part};
use serde_json::Value as Json;
use support::{NtServer, pyntcore, scratch_dir, wait_for};

/// The error the test allows, beyond what the measurement itself cannot tell apart (half of
/// each round trip, ours to the server process and the client's time sync): generous, for a
/// loaded machine. The figures measured are printed and go in the README.
const ALLOWED_ERROR_US: i64 = 5_000;
/// Parts compared with the server's clock.
const SAMPLES: usize = 30;

fn start_streamer(nt_port: u16) -> Streamer {
    let text = format!(
        "[server]\nbind = \"127.0.0.1\"\nport = 0\n\
         [networktables]\nserver = \"127.0.0.1:{nt_port}\"\nclient_name = \"clock\"\n\
         [[camera]]\nname = \"cam\"\nwidth = 320\nheight = 240\nfps = 30\n"
    );
    let config = Config::parse(&text, Path::new("test.toml")).expect("test config is valid");
    Streamer::start(&config).expect("streamer starts")
}

fn robot_timestamp(part: &Part) -> Option<i64> {
    part.header("x-robot-timestamp").map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("X-Robot-Timestamp {v:?}: {e}"))
    })
}

/// How far one part's robot time is from ntcore's clock at its capture, µs, and what the
/// comparison cannot resolve (half the round trip to the server process), µs.
fn one_sample(server: &mut NtServer, stream: &mut MjpegStream) -> (i64, i64) {
    let (before, server_us, after) = server.clock();
    // ntcore's clock minus ours, to within half the round trip.
    let true_offset = server_us - (before + after) / 2;
    let part = stream.next_part().expect("a part");
    let captured = i64::try_from(part.timestamp_us().expect("X-Timestamp")).expect("µs fit");
    let robot = robot_timestamp(&part).expect("X-Robot-Timestamp while synchronised");
    (robot - (captured + true_offset), (after - before) / 2)
}

#[test]
fn parts_carry_their_capture_time_in_ntcores_clock() {
    let Some(python) = pyntcore("parts_carry_their_capture_time_in_ntcores_clock") else {
        return;
    };
    let dir = scratch_dir("robot-clock");
    let mut server = NtServer::start_fresh(&python, &dir);
    let streamer = start_streamer(server.port);
    let mut stream = MjpegStream::open(streamer.local_addr(), "/cam.mjpg").expect("stream");

    let synchronised = wait_for(Duration::from_secs(10), || {
        robot_timestamp(&stream.next_part().expect("a part"))
    });
    assert!(synchronised.is_some(), "no X-Robot-Timestamp within 10 s");

    let mut errors = Vec::new();
    let mut worst_resolution = 0;
    for _ in 0..SAMPLES {
        let (error, resolution) = one_sample(&mut server, &mut stream);
        errors.push(error);
        worst_resolution = worst_resolution.max(resolution);
    }
    let stats: Json = serde_json::from_str(
        &mjpeg_client::get(streamer.local_addr(), "/stats.json")
            .expect("stats")
            .text(),
    )
    .expect("stats are JSON");
    let camera = &stats["cameras"][0];
    let rtt_us = camera["robot_clock"]["rtt_us"]
        .as_i64()
        .unwrap_or_else(|| panic!("robot_clock in /stats.json: {camera}"));
    assert!(
        camera["frame_robot_time_us"].as_i64().is_some(),
        "frame_robot_time_us in /stats.json: {camera}"
    );
    errors.sort_unstable_by_key(|e| e.abs());
    let worst = errors.last().copied().unwrap_or_default();
    eprintln!(
        "robot time vs ntcore's clock over {SAMPLES} parts: median |error| {} µs, worst {worst} µs; \
         time sync round trip {rtt_us} µs (bound rtt/2 = {} µs); our reading of ntcore's \
         clock resolves ±{worst_resolution} µs",
        errors[errors.len() / 2].abs(),
        rtt_us / 2
    );
    assert!(
        worst.abs() <= rtt_us / 2 + worst_resolution + ALLOWED_ERROR_US,
        "errors {errors:?} µs"
    );

    // The newest frame's robot time reaches NetworkTables too.
    let published = wait_for(Duration::from_secs(5), || {
        let view = server.get("/frcstream/cam/frame_robot_time_us")["server"].clone();
        (view["type"] == "int" && view["value"].as_i64().is_some()).then_some(view)
    });
    assert!(published.is_some(), "no /frcstream/cam/frame_robot_time_us");

    // Without the server, the clock is forgotten: parts go without the robot time.
    server.kill();
    let gone = wait_for(Duration::from_secs(10), || {
        robot_timestamp(&stream.next_part().expect("a part"))
            .is_none()
            .then_some(())
    });
    assert!(gone.is_some(), "X-Robot-Timestamp outlived the connection");
}
