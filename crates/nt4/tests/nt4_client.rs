//! The NT4 client against WPILib's real ntcore server (PyPI `pyntcore`, installed into the
//! repository's venv by its `scripts/ensure-venv.sh`; the tests that need it skip loudly when
//! it cannot be installed, and fail when `FRCSTREAM_REQUIRE_PYNTCORE=1`), and against a
//! hostile fake server written here.

mod support;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use nt4::{NtClient, NtClientConfig, NtProtocol, NtType, NtUpdate, NtValue};
use serde_json::{Value as Json, json};
use support::{
    NtServer, Proxy, ProxyMode, fake_server, free_port, pyntcore, scratch_dir, wait_for,
};

/// The reconnect bound the client promises after a server restart.
const RECONNECT: Duration = Duration::from_secs(2);
/// Generous bound for things that take one NT sweep (100 ms) or so.
const SOON: Duration = Duration::from_secs(5);

#[test]
fn only_1_makes_pyntcore_required() {
    assert!(support::required(Some("1")));
    for not_required in [
        None,
        Some(""),
        Some("0"),
        Some("yes"),
        Some("true"),
        Some(" 1"),
    ] {
        assert!(!support::required(not_required), "{not_required:?}");
    }
}

fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

fn client(port: u16, name: &str) -> NtClient {
    NtClient::start(NtClientConfig::new(format!("127.0.0.1:{port}"), name)).expect("start client")
}

fn wait_connected(nt: &NtClient, timeout: Duration) -> bool {
    wait_for(timeout, || nt.is_connected().then_some(())).is_some()
}

/// Receives updates until one for `topic` arrives (others are skipped).
fn recv_topic(rx: &Receiver<NtUpdate>, topic: &str, timeout: Duration) -> Option<NtUpdate> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(u) if u.topic == topic => return Some(u),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Receives updates until `topic` has `value`.
fn recv_value(rx: &Receiver<NtUpdate>, topic: &str, value: &NtValue, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while let Some(u) = recv_topic(
        rx,
        topic,
        deadline.saturating_duration_since(Instant::now()),
    ) {
        if u.value == *value {
            return true;
        }
    }
    false
}

/// Every type, with a value and how ntcore reports it.
fn typed_topics() -> Vec<(&'static str, NtType, NtValue, &'static str, Json)> {
    vec![
        (
            "/t/string",
            NtType::String,
            "usb:/dev/video0".into(),
            "string",
            json!("usb:/dev/video0"),
        ),
        (
            "/t/strings",
            NtType::StringArray,
            NtValue::from(
                &[
                    "mjpg:http://10.12.34.11:1181/?action=stream",
                    "mjpg:http://frc.local:1181/",
                ][..],
            ),
            "string[]",
            json!([
                "mjpg:http://10.12.34.11:1181/?action=stream",
                "mjpg:http://frc.local:1181/"
            ]),
        ),
        (
            "/t/empty",
            NtType::StringArray,
            NtValue::StringArray(vec![]),
            "string[]",
            json!([]),
        ),
        (
            "/t/bool",
            NtType::Boolean,
            true.into(),
            "boolean",
            json!(true),
        ),
        (
            "/t/int",
            NtType::Int,
            NtValue::Int(-1_234_567_890_123),
            "int",
            json!(-1_234_567_890_123i64),
        ),
        (
            "/t/double",
            NtType::Double,
            0.1234.into(),
            "double",
            json!(0.1234),
        ),
        (
            "/t/float",
            NtType::Float,
            1.5f32.into(),
            "float",
            json!(1.5),
        ),
        (
            "/t/json",
            NtType::Json,
            "{\"a\":1}".into(),
            "json",
            json!("{\"a\":1}"),
        ),
        (
            "/t/raw",
            NtType::Raw,
            vec![0u8, 1, 255].into(),
            "raw",
            json!([0, 1, 255]),
        ),
        (
            "/t/bools",
            NtType::BooleanArray,
            vec![true, false].into(),
            "boolean[]",
            json!([true, false]),
        ),
        (
            "/t/ints",
            NtType::IntArray,
            vec![1i64, -2, 300_000].into(),
            "int[]",
            json!([1, -2, 300_000]),
        ),
        (
            "/t/doubles",
            NtType::DoubleArray,
            vec![0.5, -2.25].into(),
            "double[]",
            json!([0.5, -2.25]),
        ),
        (
            "/t/floats",
            NtType::FloatArray,
            vec![0.25f32, 8.0].into(),
            "float[]",
            json!([0.25, 8.0]),
        ),
    ]
}

#[test]
fn publishes_every_type_to_a_dashboard() {
    init_log();
    let Some(py) = pyntcore("publishes_every_type_to_a_dashboard") else {
        return;
    };
    let dir = scratch_dir("typed");
    let mut server = NtServer::start_fresh(&py, &dir);
    let nt = client(server.port, "frcstream");
    for (name, ty, value, _, _) in typed_topics() {
        nt.publish(name, ty, Json::Null).expect("publish");
        nt.set(name, value).expect("set");
    }
    assert!(wait_connected(&nt, SOON), "client did not connect");
    assert_eq!(nt.protocol(), Some(NtProtocol::V41));
    for (name, _, _, ty, value) in typed_topics() {
        assert!(
            server.wait_value("dashboard", name, ty, &value, SOON),
            "{name}: dashboard sees {}",
            server.get(name)
        );
        let got = server.get(name);
        assert_eq!(got["server"]["type"], ty, "{name}: {got}");
        // A normal `set` carries a real server timestamp, not 0 or 1.
        assert!(
            got["server"]["server_time"].as_i64().unwrap_or(0) > 1,
            "{name}: {got}"
        );
    }
    let topics = server.topics();
    for (name, _, _, ty, _) in typed_topics() {
        assert!(
            topics.contains(&(name.to_owned(), ty.to_owned())),
            "{name} missing from {topics:?}"
        );
    }

    // Later writes go through too.
    nt.set("/t/int", 7).expect("set");
    nt.set("/t/strings", NtValue::from(&["x"][..]))
        .expect("set");
    assert!(server.wait_value("dashboard", "/t/int", "int", &json!(7), SOON));
    assert!(server.wait_value("dashboard", "/t/strings", "string[]", &json!(["x"]), SOON));

    // Unpublishing removes the topic from the server (nobody else publishes it).
    nt.unpublish("/t/raw").expect("unpublish");
    let gone = wait_for(SOON, || {
        (!server.topics().iter().any(|(name, _)| name == "/t/raw")).then_some(())
    });
    assert!(gone.is_some(), "/t/raw still on the server");
    server.assert_clean_log("frcstream");
}

#[test]
fn dashboard_writes_reach_subscribers() {
    init_log();
    let Some(py) = pyntcore("dashboard_writes_reach_subscribers") else {
        return;
    };
    let dir = scratch_dir("subscribe");
    let mut server = NtServer::start_fresh(&py, &dir);
    let nt = client(server.port, "frcstream");
    let rx = nt.subscribe(&["/cfg/"]);
    nt.publish("/cfg/exposure", NtType::Int, json!({"retained": true}))
        .expect("publish");
    assert!(nt.set_default("/cfg/exposure", 50).expect("default"));
    assert!(server.wait_value("dashboard", "/cfg/exposure", "int", &json!(50), SOON));

    // Another client's topics under the prefix arrive; others do not.
    server.set("/elsewhere/x", "int", json!(1));
    server.set("/cfg/brightness", "double", json!(0.25));
    let update = recv_topic(&rx, "/cfg/brightness", SOON).expect("brightness update");
    assert_eq!(update.value, NtValue::Double(0.25));
    assert!(update.timestamp_us > 1);

    // A dashboard write to our own default wins and is delivered.
    server.set("/cfg/exposure", "int", json!(20));
    assert!(recv_value(&rx, "/cfg/exposure", &NtValue::Int(20), SOON));
    assert!(server.wait_value("server", "/cfg/exposure", "int", &json!(20), SOON));
    // A later default does nothing now that the topic has a value.
    assert!(!nt.set_default("/cfg/exposure", 60).expect("default"));
    while let Ok(u) = rx.try_recv() {
        assert!(u.topic.starts_with("/cfg/"), "{u:?}");
    }

    // Dropping a receiver unsubscribes without disturbing the client; a new subscription
    // starts with the current value.
    drop(rx);
    server.set("/cfg/brightness", "double", json!(0.5));
    let rx2 = nt.subscribe(&["/cfg/brightness"]);
    assert!(recv_value(
        &rx2,
        "/cfg/brightness",
        &NtValue::Double(0.5),
        SOON
    ));
    server.assert_clean_log("frcstream");
}

#[test]
fn defaults_lose_to_dashboard_writes_across_a_reconnect() {
    init_log();
    let Some(py) = pyntcore("defaults_lose_to_dashboard_writes_across_a_reconnect") else {
        return;
    };
    let dir = scratch_dir("defaults");
    let mut server = NtServer::start_fresh(&py, &dir);
    let proxy = Proxy::start(server.port, ProxyMode::Forward);
    let nt = client(proxy.port, "frcstream");
    // /cfg/a: a default nobody here listens to; /cfg/b: a default this client subscribes to.
    nt.publish("/cfg/a", NtType::Int, Json::Null)
        .expect("publish");
    nt.set_default("/cfg/a", 50).expect("default");
    nt.publish("/cfg/b", NtType::Int, Json::Null)
        .expect("publish");
    nt.set_default("/cfg/b", 60).expect("default");
    let rx = nt.subscribe(&["/cfg/b"]);
    assert!(server.wait_value("dashboard", "/cfg/a", "int", &json!(50), SOON));
    assert!(server.wait_value("dashboard", "/cfg/b", "int", &json!(60), SOON));

    server.set("/cfg/a", "int", json!(20));
    server.set("/cfg/b", "int", json!(21));
    assert!(recv_value(&rx, "/cfg/b", &NtValue::Int(21), SOON));
    assert!(server.wait_value("server", "/cfg/a", "int", &json!(20), SOON));

    // Cut the client's connection; the server and the dashboard stay up.
    assert_eq!(proxy.accepted(), 1);
    proxy.cut();
    let reconnected = wait_for(RECONNECT, || {
        (proxy.accepted() >= 2 && nt.is_connected()).then_some(())
    });
    assert!(
        reconnected.is_some(),
        "client did not reconnect within {RECONNECT:?}"
    );
    // Values go out in order on one connection: once a later normal write (sent after time
    // sync) is visible, the re-sent defaults were processed before it.
    nt.publish("/cfg/marker", NtType::Boolean, Json::Null)
        .expect("publish");
    nt.set("/cfg/marker", true).expect("set");
    assert!(server.wait_value("server", "/cfg/marker", "boolean", &json!(true), SOON));
    for (name, value) in [("/cfg/a", 20), ("/cfg/b", 21)] {
        let got = server.get(name);
        assert_eq!(got["server"]["value"], json!(value), "{name}: {got}");
        assert_eq!(got["dashboard"]["value"], json!(value), "{name}: {got}");
    }
    server.assert_clean_log("frcstream");
}

#[test]
fn server_killed_and_restarted_on_the_same_port() {
    init_log();
    let Some(py) = pyntcore("server_killed_and_restarted_on_the_same_port") else {
        return;
    };
    let dir = scratch_dir("restart");
    let (port, port3) = (free_port(), free_port());
    let mut server = NtServer::start(&py, &dir, port, port3);
    let nt = client(port, "frcstream");
    nt.publish("/cam/source", NtType::String, Json::Null)
        .expect("publish");
    nt.set("/cam/source", "usb:/dev/video0").expect("set");
    nt.publish("/cam/streams", NtType::StringArray, Json::Null)
        .expect("publish");
    nt.set(
        "/cam/streams",
        NtValue::from(&["mjpg:http://10.0.0.2:1181/?action=stream"][..]),
    )
    .expect("set");
    nt.publish("/cam/connected", NtType::Boolean, Json::Null)
        .expect("publish");
    nt.set("/cam/connected", true).expect("set");
    nt.publish("/cam/settings/fps", NtType::Int, json!({"retained": true}))
        .expect("publish");
    nt.set_default("/cam/settings/fps", 30).expect("default");
    let rx = nt.subscribe(&["/cam/settings/"]);
    assert!(server.wait_value("server", "/cam/connected", "boolean", &json!(true), SOON));
    server.set("/cam/settings/fps", "int", json!(15));
    assert!(recv_value(
        &rx,
        "/cam/settings/fps",
        &NtValue::Int(15),
        SOON
    ));

    server.kill();
    assert!(wait_for(SOON, || (!nt.is_connected()).then_some(())).is_some());
    // While the server is down the application keeps writing; only the latest value counts.
    for i in 0..1000 {
        nt.set("/cam/source", format!("usb:/dev/video{i}"))
            .expect("set");
    }
    nt.set("/cam/source", "usb:/dev/video2").expect("set");

    let mut server = NtServer::start(&py, &dir, port, port3);
    let restarted = Instant::now();
    assert!(
        wait_connected(&nt, RECONNECT),
        "not reconnected within {RECONNECT:?}"
    );
    let expected = [
        ("/cam/source", "string", json!("usb:/dev/video2")),
        (
            "/cam/streams",
            "string[]",
            json!(["mjpg:http://10.0.0.2:1181/?action=stream"]),
        ),
        ("/cam/connected", "boolean", json!(true)),
        // The dashboard's setting, kept by the client and re-sent as a default.
        ("/cam/settings/fps", "int", json!(15)),
    ];
    let back = wait_for(RECONNECT.saturating_sub(restarted.elapsed()), || {
        expected
            .iter()
            .all(|(name, ty, value)| {
                let got = server.get(name);
                got["server"]["type"] == *ty && got["server"]["value"] == *value
            })
            .then_some(())
    });
    let took = restarted.elapsed();
    for (name, ty, value) in &expected {
        assert!(
            server.wait_value("dashboard", name, ty, value, SOON),
            "{name}: {}",
            server.get(name)
        );
    }
    assert!(
        back.is_some(),
        "values not back within {RECONNECT:?} (took {took:?})"
    );
    server.assert_clean_log("frcstream");
    eprintln!("reconnected and values back {took:?} after the server was ready");
}

#[test]
fn connects_once_the_server_appears() {
    init_log();
    let Some(py) = pyntcore("connects_once_the_server_appears") else {
        return;
    };
    let dir = scratch_dir("absent");
    let (port, port3) = (free_port(), free_port());
    let nt = client(port, "frcstream");
    nt.publish("/late/value", NtType::Double, Json::Null)
        .expect("publish");
    nt.set("/late/value", 2.5).expect("set");
    nt.publish("/late/default", NtType::String, Json::Null)
        .expect("publish");
    nt.set_default("/late/default", "d").expect("default");
    thread::sleep(Duration::from_millis(1500)); // a couple of failed attempts
    assert!(!nt.is_connected());

    let mut server = NtServer::start(&py, &dir, port, port3);
    let started = Instant::now();
    assert!(
        wait_connected(&nt, RECONNECT),
        "not connected within {RECONNECT:?}"
    );
    assert!(server.wait_value(
        "server",
        "/late/value",
        "double",
        &json!(2.5),
        RECONNECT.saturating_sub(started.elapsed())
    ));
    assert!(server.wait_value("dashboard", "/late/default", "string", &json!("d"), SOON));
    server.assert_clean_log("frcstream");
}

#[test]
fn protocol_4_0_works_too() {
    init_log();
    let Some(py) = pyntcore("protocol_4_0_works_too") else {
        return;
    };
    let dir = scratch_dir("v40");
    let mut server = NtServer::start_fresh(&py, &dir);
    let mut config = NtClientConfig::new(format!("127.0.0.1:{}", server.port), "old");
    config.protocol = NtProtocol::V40;
    let nt = NtClient::start(config).expect("start");
    assert!(wait_connected(&nt, SOON));
    assert_eq!(nt.protocol(), Some(NtProtocol::V40));
    nt.publish("/v40/x", NtType::StringArray, Json::Null)
        .expect("publish");
    nt.set("/v40/x", NtValue::from(&["a", "b"][..]))
        .expect("set");
    let rx = nt.subscribe(&["/v40/"]);
    assert!(server.wait_value("dashboard", "/v40/x", "string[]", &json!(["a", "b"]), SOON));
    server.set("/v40/y", "boolean", json!(true));
    assert!(recv_value(&rx, "/v40/y", &NtValue::Boolean(true), SOON));
    server.assert_clean_log("old");
}

#[test]
fn idle_connections_stay_up() {
    init_log();
    let Some(py) = pyntcore("idle_connections_stay_up") else {
        return;
    };
    let dir = scratch_dir("idle");
    let mut server = NtServer::start_fresh(&py, &dir);
    // ntcore drops a 4.1 peer that does not answer its pings for 1 s; 4.0 lives on the
    // client's time-sync messages. Through proxies, any reconnect shows as a second accept.
    let mut clients = Vec::new();
    for (name, protocol) in [("idle41", NtProtocol::V41), ("idle40", NtProtocol::V40)] {
        let proxy = Proxy::start(server.port, ProxyMode::Forward);
        let mut config = NtClientConfig::new(format!("127.0.0.1:{}", proxy.port), name);
        config.protocol = protocol;
        let nt = NtClient::start(config).expect("start");
        assert!(wait_connected(&nt, SOON), "{name} did not connect");
        assert_eq!(nt.protocol(), Some(protocol));
        clients.push((name, proxy, nt));
    }
    thread::sleep(Duration::from_millis(3500));
    for (name, proxy, nt) in &clients {
        assert!(nt.is_connected(), "{name} disconnected");
        assert_eq!(proxy.accepted(), 1, "{name} reconnected");
    }
    server.assert_clean_log("idle41");
    server.assert_clean_log("idle40");
}

#[test]
fn calls_never_block_on_the_network() {
    init_log();
    // A server that accepts TCP and never answers: every attempt hangs in the handshake.
    let proxy = Proxy::start(free_port(), ProxyMode::Blackhole);
    let nt = client(proxy.port, "frcstream");
    let rx = nt.subscribe(&["/"]);
    let start = Instant::now();
    for i in 0..200 {
        let name = format!("/x/{i}");
        nt.publish(&name, NtType::Int, Json::Null).expect("publish");
        for v in 0..50 {
            nt.set(&name, v).expect("set");
        }
    }
    let took = start.elapsed();
    assert!(took < RECONNECT, "10,000 calls took {took:?}");
    assert!(!nt.is_connected());
    assert!(rx.try_recv().is_err());
    let start = Instant::now();
    nt.stop();
    assert!(
        start.elapsed() < RECONNECT,
        "stop took {:?}",
        start.elapsed()
    );
}

#[test]
fn hostile_server_input_never_kills_the_client() {
    init_log();
    let (seen_tx, seen_rx) = crossbeam_channel::unbounded::<String>();
    let port = fake_server("v4.1.networktables.first.wpi.edu", move |n, ws| {
        use tungstenite::Message;
        let announce = r#"[{"method":"announce","params":{"name":"/cfg/x","id":1,"type":"int","properties":{}}},
                           {"method":"announce","params":{"name":"/cfg/s","id":2,"type":"string[]","properties":{}}}]"#;
        let mut garbage: Vec<Message> = vec![
            Message::text("not json"),
            Message::text("{\"method\":\"announce\"}"),
            Message::text(
                r#"[1, {"method":"announce","params":{"name":7,"id":"x"}}, {"method":"zzz","params":{}}]"#,
            ),
            Message::text("[".repeat(100_000)),
            Message::text(announce),
            Message::binary(vec![0xc1, 0x00]),
            Message::binary(vec![0xdd, 0xff, 0xff, 0xff, 0xff]),
            Message::binary(vec![0x91; 200_000]),
            Message::binary(vec![0x94, 0x01, 0x05, 0x04, 0xa1, b'z']), // string on an int topic
            Message::binary(vec![0x94, 0x63, 0x05, 0x02, 0x07]),       // unknown topic id
            Message::binary(vec![0x94, 0x01, 0x05, 0x63, 0x07]),       // unknown type
            Message::binary(vec![0x94, 0x02, 0x05, 0x14, 0x92, 0xa1, b'a', 0x01]), // bad element
            Message::binary(vec![0x94, 0xff, 0x05, 0x02, 0xa1, b'q']), // bad time sync
            Message::binary(vec![
                0x94, 0xff, 0x05, 0x02, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,
            ]),
            Message::Pong(Default::default()),
        ];
        // The one good message, last.
        garbage.push(Message::binary(vec![0x94, 0x01, 0x05, 0x02, 0x2a]));
        for m in garbage {
            if ws.send(m).is_err() {
                return;
            }
        }
        // Report what the client sends, then hang up (first connection) or close after
        // invalid UTF-8 in a text frame (second connection).
        let deadline = Instant::now() + Duration::from_millis(700);
        let _ = ws
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)));
        while Instant::now() < deadline {
            match ws.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    let _ = seen_tx.send(format!("{n}:{}", t.as_str()));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(_)) => {}
                Err(_) => return,
            }
        }
        if n == 1 {
            let _ = ws.get_mut().write_all(&[0x81, 0x02, 0xff, 0xfe]);
        }
    });
    let nt = client(port, "victim");
    let rx = nt.subscribe(&["/cfg/"]);
    nt.publish("/out/alive", NtType::Boolean, Json::Null)
        .expect("publish");
    // Only the well-formed value gets through.
    let first = recv_topic(&rx, "/cfg/x", SOON).expect("good value");
    assert_eq!(first.value, NtValue::Int(42));
    assert_eq!(first.timestamp_us, 5);
    // After the server hangs up, the client reconnects and re-subscribes and re-publishes.
    let mut saw = Vec::new();
    let ok = wait_for(Duration::from_secs(8), || {
        while let Ok(s) = seen_rx.try_recv() {
            saw.push(s);
        }
        let second = |what: &str| saw.iter().any(|s| s.starts_with("1:") && s.contains(what));
        (second("\"subscribe\"") && second("/out/alive")).then_some(())
    });
    assert!(
        ok.is_some(),
        "no re-subscribe/re-publish on the second connection: {saw:?}"
    );
    // Still alive after the invalid UTF-8 on the second connection: a third connection.
    let third = wait_for(Duration::from_secs(8), || {
        while let Ok(s) = seen_rx.try_recv() {
            saw.push(s);
        }
        saw.iter().any(|s| s.starts_with("2:")).then_some(())
    });
    assert!(third.is_some(), "no third connection: {saw:?}");
    nt.set("/out/alive", true).expect("set");
    nt.stop();
}

#[test]
fn retained_values_follow_the_server_across_reconnects() {
    init_log();
    use tungstenite::Message;
    let (seen_tx, seen_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let port = fake_server("v4.1.networktables.first.wpi.edu", move |n, ws| {
        let announce = r#"[{"method":"announce","params":{"name":"/cfg/x","id":1,"type":"int","properties":{}}}]"#;
        let value = match n {
            // Before the "reboot": a value stamped late in a long server uptime...
            0 => Some(vec![
                0x94, 0x01, 0xcf, 0, 0, 0, 0xe8, 0xd4, 0xa5, 0x10, 0x00, 0x02, 0x07,
            ]),
            // ...after it: the server's clock starts again near zero.
            1 => Some(vec![0x94, 0x01, 0x05, 0x02, 0x08]),
            _ => None,
        };
        let _ = ws
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)));
        if let Some(value) = value {
            let _ = ws.send(Message::text(announce));
            let _ = ws.send(Message::binary(value));
        }
        let deadline = Instant::now() + Duration::from_millis(400);
        while Instant::now() < deadline {
            match ws.read() {
                Ok(Message::Binary(b)) if n == 2 => {
                    let _ = seen_tx.send(b.to_vec());
                }
                Ok(_) | Err(tungstenite::Error::Io(_)) => {}
                Err(_) => return,
            }
        }
    });
    let nt = client(port, "retainer");
    // pubuid 1: the first id this client hands out.
    nt.publish("/cfg/x", NtType::Int, Json::Null)
        .expect("publish");
    nt.set_default("/cfg/x", 1).expect("default");
    let rx = nt.subscribe(&["/cfg/"]);
    assert!(recv_value(&rx, "/cfg/x", &NtValue::Int(7), SOON));
    assert!(recv_value(&rx, "/cfg/x", &NtValue::Int(8), SOON));
    // On the third connection the client re-sends its retained value: the last one received
    // (8, although stamped far earlier than 7), as a default (timestamp 0).
    let resent_8 = [0x94, 0x01, 0x00, 0x02, 0x08];
    let resent = wait_for(SOON, || {
        let frame = seen_rx.try_recv().ok()?;
        frame
            .windows(resent_8.len())
            .any(|w| w == resent_8)
            .then_some(())
    });
    assert!(
        resent.is_some(),
        "the client did not re-send the rebooted server's value"
    );
}

/// Issue 15: a million announcements took RSS from 33 to 226 MB. Only topics under the
/// client's subscriptions (or its own) are kept, and at most `MAX_ANNOUNCED` of those.
#[test]
fn announcements_outside_the_subscriptions_are_not_kept() {
    init_log();
    let port = fake_server("v4.1.networktables.first.wpi.edu", move |_, ws| {
        use tungstenite::Message;
        let announce = |name: String, id: usize| {
            format!(
                r#"{{"method":"announce","params":{{"name":"{name}","id":{id},"type":"int","properties":{{}}}}}}"#
            )
        };
        for batch in 0..100 {
            let frame: Vec<String> = (0..1000)
                .map(|i| announce(format!("/junk/{batch}/{i}"), 10 + batch * 1000 + i))
                .collect();
            if ws
                .send(Message::text(format!("[{}]", frame.join(","))))
                .is_err()
            {
                return;
            }
        }
        let wanted: Vec<String> = (0..5000)
            .map(|i| announce(format!("/cfg/{i}"), 200_000 + i))
            .collect();
        let _ = ws.send(Message::text(format!("[{}]", wanted.join(","))));
        // A value for the first wanted topic (id 200000, int 42).
        let _ = ws.send(Message::binary(vec![
            0x94, 0xce, 0x00, 0x03, 0x0d, 0x40, 0x05, 0x02, 0x2a,
        ]));
        let _ = ws
            .get_mut()
            .set_read_timeout(Some(Duration::from_millis(50)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match ws.read() {
                Ok(_) | Err(tungstenite::Error::Io(_)) => {}
                Err(_) => return,
            }
        }
    });
    let nt = client(port, "victim");
    let rx = nt.subscribe(&["/cfg/"]);
    let value = recv_topic(&rx, "/cfg/0", SOON).expect("the wanted topic's value");
    assert_eq!(value.value, NtValue::Int(42));
    let kept = nt.announced_topics();
    println!("100,000 unwanted and 5,000 wanted announcements: {kept} topics kept");
    assert_eq!(kept, nt4::MAX_ANNOUNCED);
    nt.stop();
}
