//! Camera controls on NetworkTables, with real parts at both ends: the frcstream binary in
//! the qemu rig with the `vivid` camera, WPILib's ntcore server on the host (reached from
//! the guest at 10.0.2.100), whose own NT4 client plays the dashboard.
//!
//! - `/CameraPublisher/cam/Property/<control>` and `PropertyInfo/<control>/...` exist with
//!   cscore's types, and `Property/brightness` holds the config's value;
//! - the dashboard writes `Property/brightness = 200`: `v4l2-ctl` in the VM reads 200;
//! - it writes 999 and a string: refused, the value in force is published back and the
//!   camera keeps it;
//! - `connected` follows an unplug (the device node removed under the open handle) and the
//!   camera's return; a brightness set over HTTP while it was away is applied on its return
//!   and shown on NetworkTables.
//!
//! Skipped loudly where the VM or pyntcore cannot run (FRCSTREAM_REQUIRE_VM=1 /
//! FRCSTREAM_REQUIRE_PYNTCORE=1 make that a failure).

mod support;
use support::vm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::{NtServer, pyntcore, scratch_dir};
use vm::Vm;

const PORT: u16 = 1181;
/// Where the guest reaches the host's ntcore server.
const GUEST_NT: &str = "10.0.2.100:5810";
const SOON: Duration = Duration::from_secs(10);

fn payload(dir: &Path) -> PathBuf {
    let payload = dir.join("payload");
    std::fs::create_dir_all(&payload).expect("payload dir");
    vm::copy_frcstream(&payload);
    let config = format!(
        "[server]\nport = {PORT}\n\n[networktables]\nserver = \"{GUEST_NT}\"\nclient_name = \"frcstream-vm\"\n\n\
         [[camera]]\nname = \"cam\"\nsource = \"v4l2:/dev/video0\"\nwidth = 640\nheight = 480\nfps = 25\n\
         [camera.controls]\nbrightness = 140\n"
    );
    std::fs::write(payload.join("frcstream.toml"), config).expect("config");
    payload
}

#[test]
fn camera_controls_are_cscore_properties_a_dashboard_can_set() {
    let test = "camera_controls_are_cscore_properties_a_dashboard_can_set";
    let Some(python) = pyntcore(test) else { return };
    let dir = scratch_dir("nt-vivid");
    let mut server = NtServer::start_fresh(&python, &dir);
    let host_forward = format!("5810={}", server.port);
    let payload = payload(&dir);
    let Some(mut vm) = Vm::boot(
        test,
        &payload,
        &[PORT],
        &["--host-forward", &host_forward],
        &dir,
    ) else {
        return;
    };
    vm.spawn(
        "frcstream",
        "RUST_LOG=info /payload/frcstream --config /payload/frcstream.toml",
    );
    assert!(
        vm.wait_port(PORT, 30),
        "frcstream listens:\n{}",
        vm.log("frcstream")
    );

    let root = "/CameraPublisher/cam/";
    let property = format!("{root}Property/brightness");
    assert!(
        server.wait_value("dashboard", &property, "int", &json!(140), SOON),
        "Property/brightness holds the config's 140: {}\n{}",
        server.get(&property),
        vm.log("frcstream")
    );
    for (key, value) in [("min", 0), ("max", 255), ("default", 128)] {
        let topic = format!("{root}PropertyInfo/brightness/{key}");
        assert!(
            server.wait_value("dashboard", &topic, "int", &json!(value), SOON),
            "{topic}: {}",
            server.get(&topic)
        );
    }
    let topics = server.topics();
    let has = |name: &str, ty: &str| topics.iter().any(|(n, t)| n == name && t == ty);
    assert!(
        has(&format!("{root}Property/horizontal_flip"), "boolean"),
        "{} topics",
        topics.len()
    );
    assert!(has(&format!("{root}connected"), "boolean"));
    assert!(has(&format!("{root}streams"), "string[]"));

    // The dashboard turns brightness up: the camera follows.
    server.set(&property, "int", json!(200));
    let read_back = support::wait_for(SOON, || {
        let out = vm.run("v4l2-ctl -d /dev/video0 -C brightness");
        out.contains("200").then_some(out)
    });
    assert!(
        read_back.is_some(),
        "v4l2-ctl reads 200\n{}",
        vm.log("frcstream")
    );

    // Out of range and of the wrong type: refused, 200 published back, the camera keeps it.
    for (ty, value) in [("int", json!(999)), ("string", json!("bright"))] {
        server.set_blind(&property, ty, value.clone());
        assert!(
            server.wait_value("dashboard", &property, "int", &json!(200), SOON),
            "{value} refused and 200 published back: {}",
            server.get(&property)
        );
        assert!(
            vm.run("v4l2-ctl -d /dev/video0 -C brightness")
                .contains("200")
        );
    }
    let log = vm.log("frcstream");
    assert!(
        log.contains("refused") && log.contains("999"),
        "one line says why:\n{log}"
    );

    // `connected` follows the camera.
    let connected = format!("{root}connected");
    assert!(server.wait_value("dashboard", &connected, "boolean", &json!(true), SOON));
    // Unplugged: the node disappears under the open handle, as when a USB cable is pulled.
    // (vivid's disconnect=1 comes back within milliseconds, too fast to see on NT.)
    vm.run("echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind");
    assert!(
        server.wait_value("dashboard", &connected, "boolean", &json!(false), SOON),
        "connected goes false on unplug"
    );
    // Changed while the camera is away (over HTTP this time): checked against the controls
    // known from before, kept, and applied when the camera is back.
    let posted = mjpeg_client::request(
        vm.addr(PORT),
        "POST",
        "/cam",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"brightness=90",
    )
    .expect("POST");
    assert_eq!(posted.status, 200, "{}", posted.text());
    vm.run(
        "n=0; until rmmod vivid 2>/dev/null; do n=$((n+1)); [ $n -gt 100 ] && exit 1; usleep 20000; done; \
         /vm/reload-vivid >/dev/null",
    );
    assert!(
        server.wait_value("dashboard", &connected, "boolean", &json!(true), SOON),
        "and true again when the camera is back"
    );
    // The value set while it was away is the camera's now, and NetworkTables shows it.
    let applied = support::wait_for(SOON, || {
        let out = vm.run("v4l2-ctl -d /dev/video0 -C brightness");
        out.contains("90").then_some(out)
    });
    assert!(
        applied.is_some(),
        "brightness 90 applied on return\n{}",
        vm.log("frcstream")
    );
    assert!(server.wait_value("dashboard", &property, "int", &json!(90), SOON));
    server.assert_clean_log_except("frcstream-vm", &["blind"]);
    vm.command("quit");
}
