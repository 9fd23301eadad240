//! Match profiles from the FMS, end to end: a real `Streamer` (a test-pattern camera, HTTP
//! on 127.0.0.1) on WPILib's real ntcore server (PyPI `pyntcore`), whose own client plays
//! the robot (publishing `/FMSInfo/` as WPILib's `DriverStation` does) and a dashboard.
//! Skipped loudly when pyntcore cannot be installed (`FRCSTREAM_REQUIRE_PYNTCORE=1` makes
//! that a failure).

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use frcstream::networktables::fms::NT_LOSS_FALLBACK;
use serde_json::{Value as Json, json};
use support::{NtServer, Viewer, post, pyntcore, scratch_dir, stats, wait_for};

/// Generous bound for a change to go round NetworkTables and reach `/stats.json`.
const SOON: Duration = Duration::from_secs(5);
const CONTROL_WORD: &str = "/FMSInfo/FMSControlData";
/// What the robot publishes in a qualification match: FMS and DS attached, enabled.
const FMS_DS_ENABLED: i64 = 0x31;
/// Back in the pits: DS attached, no FMS.
const DS_ONLY: i64 = 0x20;

/// The camera's report in `/stats.json`.
fn front(address: SocketAddr) -> Json {
    stats(address)["cameras"][0].clone()
}

/// Waits until the camera's report satisfies `check`; fails with the last report.
fn wait_report(address: SocketAddr, what: &str, check: impl Fn(&Json) -> bool) -> Json {
    let found = wait_for(SOON, || Some(front(address)).filter(|r| check(r)));
    found.unwrap_or_else(|| panic!("{what}: /stats.json says {:#}", front(address)))
}

/// The in-force fps, quality and profile: `(fps, quality, profile)`.
fn in_force(report: &Json) -> (i64, i64, String) {
    let settings = &report["settings"];
    (
        settings["fps"].as_i64().unwrap_or(-1),
        settings["quality"].as_i64().unwrap_or(-1),
        report["profile"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Waits until the published frame rate is within `range` (loosely: the rate counter's
/// window is a second).
fn wait_published_fps(address: SocketAddr, range: std::ops::RangeInclusive<f64>) {
    wait_report(address, &format!("published fps in {range:?}"), |r| {
        r["published_fps"]
            .as_f64()
            .is_some_and(|fps| range.contains(&fps))
    });
}

/// Waits until the budget in force is `max_mbit` (the budget thread takes it within a tick).
fn wait_budget(address: SocketAddr, max_mbit: f64) {
    let found = wait_for(SOON, || {
        (stats(address)["budget"]["max_mbit"].as_f64() == Some(max_mbit)).then_some(())
    });
    assert!(
        found.is_some(),
        "budget {max_mbit} Mbit/s: /stats.json says {:#}",
        stats(address)["budget"]
    );
}

fn wait_nt(server: &mut NtServer, topic: &str, ty: &str, value: Json) {
    let ok = server.wait_value("server", topic, ty, &value, SOON);
    let got = server.get(topic);
    assert!(ok, "{topic}: wanted {ty} {value}, the server has {got}");
}

#[test]
fn the_fms_switches_the_match_profile_both_ways_and_nt_loss_falls_back() {
    let Some(python) = pyntcore("the_fms_switches_the_match_profile_both_ways") else {
        return;
    };
    let dir = scratch_dir("match-profile");
    let state_file = dir.join("settings.json");
    let mut server = NtServer::start_fresh(&python, &dir);
    let streamer = support::start(
        "[[camera]]\nname = \"front\"\nwidth = 320\nheight = 240\nfps = 30\nquality = 50\n\
         [camera.match]\nfps = 10\nquality = 30\n",
        &format!(
            "max_mbit = 4\nstate_file = \"{}\"\n[server.match]\nmax_mbit = 1.5\n\
             [networktables]\nserver = \"127.0.0.1:{}\"\nclient_name = \"frcstream-match\"\n",
            state_file.display(),
            server.port
        ),
    );
    let address = streamer.local_addr();
    let _viewer = Viewer::start(address, "/front.mjpg");
    wait_nt(&mut server, "/frcstream/profile", "string", json!("normal"));
    wait_nt(&mut server, "/frcstream/front/fps", "int", json!(30));
    // The team's own change before the match: saved, and back after it.
    let response = post(
        address,
        "/front",
        "application/x-www-form-urlencoded",
        "quality=45",
    );
    assert_eq!(response.status, 200, "{}", response.text());
    wait_published_fps(address, 20.0..=40.0);

    // The robot says: qualification 12, FMS attached.
    server.set("/FMSInfo/MatchType", "int", json!(2));
    server.set("/FMSInfo/MatchNumber", "int", json!(12));
    server.set("/FMSInfo/EventName", "string", json!("TESTEVENT"));
    let written = Instant::now();
    server.set(CONTROL_WORD, "int", json!(FMS_DS_ENABLED));
    let report = wait_report(address, "the match profile", |r| {
        in_force(r) == (10, 30, "match".into())
    });
    eprintln!(
        "FMSControlData written: the match profile in /stats.json after {:?} (20 ms polls)",
        written.elapsed()
    );
    assert_eq!(
        report["profile_reason"],
        "FMS attached: Qualification 12 at TESTEVENT"
    );
    assert_eq!(report["settings"]["origin"]["fps"], "match");
    wait_budget(address, 1.5);
    wait_nt(&mut server, "/frcstream/front/fps", "int", json!(10));
    wait_nt(&mut server, "/frcstream/front/quality", "int", json!(30));
    wait_nt(&mut server, "/frcstream/profile", "string", json!("match"));
    wait_published_fps(address, 7.0..=13.0);

    // A dashboard during the match: on top of the profile, until the match ends.
    server.set("/frcstream/front/fps", "int", json!(15));
    let report = wait_report(address, "the dashboard's fps", |r| {
        in_force(r) == (15, 30, "match".into())
    });
    assert_eq!(report["settings"]["origin"]["fps"], "changed");
    wait_published_fps(address, 11.0..=19.0);

    // The match ends: the team's values, including the quality changed before it.
    server.set(CONTROL_WORD, "int", json!(DS_ONLY));
    let report = wait_report(address, "the normal profile", |r| {
        in_force(r) == (30, 45, "normal".into())
    });
    assert_eq!(report["profile_reason"], "FMS not attached");
    assert_eq!(report["settings"]["origin"]["fps"], "config");
    assert_eq!(report["settings"]["origin"]["quality"], "changed");
    wait_budget(address, 4.0);
    wait_nt(&mut server, "/frcstream/front/fps", "int", json!(30));
    wait_published_fps(address, 20.0..=40.0);

    // Nothing of the match was saved: the state file holds the team's quality only.
    let saved = wait_for(SOON, || std::fs::read_to_string(&state_file).ok())
        .expect("the state file is written");
    let saved: Json = serde_json::from_str(&saved).expect("JSON");
    let camera = saved["cameras"]["front"]
        .as_object()
        .expect("front's entry");
    assert!(camera.contains_key("quality"), "{saved:#}");
    assert!(
        !camera.contains_key("fps"),
        "the match's fps saved: {saved:#}"
    );

    // A match again, then NetworkTables lost: the normal profile after NT_LOSS_FALLBACK.
    server.set(CONTROL_WORD, "int", json!(FMS_DS_ENABLED));
    wait_report(address, "the second match", |r| {
        in_force(r) == (10, 30, "match".into())
    });
    server.kill();
    let lost = Instant::now();
    let report = wait_for(NT_LOSS_FALLBACK + SOON, || {
        Some(front(address)).filter(|r| in_force(r).2 == "normal")
    })
    .expect("the normal profile after NetworkTables is lost");
    let fell_back = lost.elapsed();
    eprintln!("NetworkTables lost: the normal profile after {fell_back:?}");
    assert!(
        fell_back >= NT_LOSS_FALLBACK - Duration::from_millis(200),
        "fell back after {fell_back:?}, before the stated {NT_LOSS_FALLBACK:?}"
    );
    assert_eq!(in_force(&report), (30, 45, "normal".into()));
    assert_eq!(report["profile_reason"], "NetworkTables lost for over 3 s");
    streamer.stop();
}
