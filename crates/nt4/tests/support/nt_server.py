"""WPILib's ntcore NT4 server on 127.0.0.1 (or a given address), plus a dashboard client in the same process.

Driven by ntcore_server.rs (crates/nt4/tests/support) over stdin/stdout, one command per line, one JSON line back:

  get NAME              -> {"server": V, "dashboard": V}, V = {"type": ..., "value": ...} or null
                           (the server's own view, and what the dashboard client received)
  set NAME TYPE JSON    -> {"ok": true}  the dashboard publishes NAME as TYPE and writes JSON
  set_blind NAME TYPE JSON -> {"ok": true}  the same from a second client ("blind") that
                           subscribes to nothing, so it does not know the topic's type and
                           sends what it is told (a dashboard writing a string to an int)
  topics                -> {"topics": [{"name": ..., "type": ...}, ...]}  (server view)
  log                   -> {"log": [[level, message], ...]}  everything ntcore logged so far
  time                  -> {"now_us": T}  the server's clock now (ntcore's own time base, µs:
                           what it timestamps values with and answers time syncs with)
  exit                  -> {"ok": true}, then the process ends

Usage: nt_server.py PORT4 PORT3 PERSIST_FILE [ADDRESS]. Listens on ADDRESS (default
127.0.0.1). Prints {"ready": true} once the server listens and the dashboard is connected. Errors answer {"error": "..."} and the process goes on.
"""

import json
import os
import socket
import sys
import threading
import time

import ntcore

TYPED = {
    "boolean": (ntcore.Value.makeBoolean, bool),
    "double": (ntcore.Value.makeDouble, float),
    "int": (ntcore.Value.makeInteger, int),
    "float": (ntcore.Value.makeFloat, float),
    "string": (ntcore.Value.makeString, str),
    "boolean[]": (ntcore.Value.makeBooleanArray, lambda v: [bool(x) for x in v]),
    "double[]": (ntcore.Value.makeDoubleArray, lambda v: [float(x) for x in v]),
    "int[]": (ntcore.Value.makeIntegerArray, lambda v: [int(x) for x in v]),
    "float[]": (ntcore.Value.makeFloatArray, lambda v: [float(x) for x in v]),
    "string[]": (ntcore.Value.makeStringArray, lambda v: [str(x) for x in v]),
    "raw": (ntcore.Value.makeRaw, bytes),
}

log_lock = threading.Lock()
log_lines = []


def on_log(event):
    msg = event.data
    with log_lock:
        log_lines.append([msg.level, msg.message])
    print(f"ntcore[{msg.level}] {msg.message}", file=sys.stderr, flush=True)


def wait_for(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"nt_server.py: timed out waiting for {what}")
        time.sleep(0.02)


ADDRESS = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"


def listening(port):
    try:
        with socket.create_connection((ADDRESS, port), timeout=0.2):
            return True
    except OSError:
        return False


def view(inst, name):
    topic = inst.getTopic(name)
    if not topic.exists():
        return None
    value = inst.getEntry(name).getValue()
    if not value.isValid():
        return {"type": topic.getTypeString(), "value": None}
    v = value.value()
    if isinstance(v, (bytes, bytearray)):
        v = list(v)
    elif isinstance(v, (list, tuple)):
        v = list(v)
    return {"type": topic.getTypeString(), "value": v, "server_time": value.server_time()}


def main():
    port4, port3, persist = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    server = ntcore.NetworkTableInstance.create()
    server.addLogger(0, 100, on_log)
    # Local subscribers to everything, so the instances keep every topic's value.
    server_sub = ntcore.MultiSubscriber(server, [""])
    server.startServer(persist, ADDRESS, port3, port4)
    wait_for(lambda: listening(port4), "the server to listen")

    dash = ntcore.NetworkTableInstance.create()
    dash_sub = ntcore.MultiSubscriber(dash, [""])
    dash.startClient4("dashboard")
    dash.setServer(ADDRESS, port4)
    wait_for(dash.isConnected, "the dashboard to connect")

    publishers = {}
    blind = {"inst": None, "publishers": {}}

    def blind_publisher(name, type_str):
        if blind["inst"] is None:
            inst = ntcore.NetworkTableInstance.create()
            inst.startClient4("blind")
            inst.setServer(ADDRESS, port4)
            wait_for(inst.isConnected, "the blind client to connect")
            blind["inst"] = inst
        pubs = blind["publishers"]
        if (name, type_str) not in pubs:
            pubs[(name, type_str)] = blind["inst"].getTopic(name).genericPublish(type_str)
        return pubs[(name, type_str)]
    print(json.dumps({"ready": True}), flush=True)

    for line in sys.stdin:
        parts = line.strip().split(" ", 3)
        cmd = parts[0]
        try:
            if cmd == "get":
                reply = {"server": view(server, parts[1]), "dashboard": view(dash, parts[1])}
            elif cmd == "set":
                name, type_str, raw = parts[1], parts[2], parts[3]
                make, conv = TYPED[type_str]
                if name not in publishers:
                    publishers[name] = dash.getTopic(name).genericPublish(type_str)
                publishers[name].set(make(conv(json.loads(raw)), 0))
                dash.flush()
                reply = {"ok": True}
            elif cmd == "set_blind":
                name, type_str, raw = parts[1], parts[2], parts[3]
                make, conv = TYPED[type_str]
                blind_publisher(name, type_str).set(make(conv(json.loads(raw)), 0))
                blind["inst"].flush()
                reply = {"ok": True}
            elif cmd == "topics":
                infos = server.getTopicInfo()
                reply = {"topics": [{"name": i.name, "type": i.type_str} for i in infos]}
            elif cmd == "time":
                reply = {"now_us": ntcore._now()}
            elif cmd == "log":
                with log_lock:
                    reply = {"log": list(log_lines)}
            elif cmd == "exit":
                print(json.dumps({"ok": True}), flush=True)
                break
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except Exception as e:  # report and keep serving
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)

    # Tearing the instances down in order can abort inside ntcore; the tests only need the
    # process gone (they kill it just as often).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
