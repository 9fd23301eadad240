#!/usr/bin/env bash
# The field link on one machine: the robot and the driver station in two network
# namespaces joined by a veth pair, the robot -> DS direction shaped like the radio with
# tc's token bucket filter (a rate, a burst, and a bottleneck queue in milliseconds).
#
#   scripts/fieldlink.sh up TAG [RATE] [QUEUE_MS] [BURST]   e.g. up f1 4mbit 200 16kb
#   scripts/fieldlink.sh rate TAG RATE                      e.g. rate f1 2mbit (mid-run)
#   scripts/fieldlink.sh down TAG
#   scripts/fieldlink.sh check                              exit 0 when the rig can run
#   scripts/fieldlink.sh robot TAG CMD...                   run CMD on the robot side
#   scripts/fieldlink.sh ds TAG CMD...                      run CMD on the DS side
#
# Namespaces `fl-TAG-robot` (10.99.0.1, device `robot0`) and `fl-TAG-ds` (10.99.0.2,
# device `ds0`). The devices are made inside the namespaces, so nothing of the rig is seen
# in the main namespace and any number of rigs (different TAGs) can run at once. The queue
# is tbf's `latency`: how long a packet may wait in the bottleneck before it is dropped.
# `rate` changes the rate with `tc qdisc change`, keeping burst and queue. Needs root,
# iproute2 and the kernel's tbf; the DS -> robot direction is not shaped.
set -euo pipefail

robot_addr=10.99.0.1
ds_addr=10.99.0.2

ns() { echo "fl-$1-$2"; }
state_file() { echo "/run/frcstream-fieldlink-$1"; }

shape() { # tag verb rate queue_ms burst
    tc -n "$(ns "$1" robot)" qdisc "$2" dev robot0 root tbf rate "$3" burst "$5" latency "$4ms"
}

case "${1:-}" in
check)
    [ "$(id -u)" = 0 ] || { echo "not root" >&2; exit 1; }
    command -v ip >/dev/null && command -v tc >/dev/null || { echo "no iproute2 (ip, tc)" >&2; exit 1; }
    tag="chk$$"
    trap '"$0" down "$tag" >/dev/null 2>&1 || true' EXIT
    "$0" up "$tag" 4mbit 200 16kb >/dev/null
    ;;
up)
    tag=${2:?tag}; rate=${3:-4mbit}; queue=${4:-200}; burst=${5:-16kb}
    robot=$(ns "$tag" robot); ds=$(ns "$tag" ds)
    "$0" down "$tag" 2>/dev/null || true
    ip netns add "$robot"
    ip netns add "$ds"
    ip -n "$robot" link add robot0 type veth peer name ds0 netns "$ds"
    ip -n "$robot" addr add "$robot_addr/24" dev robot0
    ip -n "$ds" addr add "$ds_addr/24" dev ds0
    for n in "$robot" "$ds"; do ip -n "$n" link set lo up; done
    ip -n "$robot" link set robot0 up
    ip -n "$ds" link set ds0 up
    shape "$tag" add "$rate" "$queue" "$burst"
    echo "$queue $burst" >"$(state_file "$tag")"
    echo "robot $robot $robot_addr  ds $ds $ds_addr  $rate, ${queue} ms queue, burst $burst"
    ;;
rate)
    tag=${2:?tag}; rate=${3:?rate}
    read -r queue burst <"$(state_file "$tag")"
    shape "$tag" change "$rate" "$queue" "$burst"
    ;;
down)
    tag=${2:?tag}
    ip netns del "$(ns "$tag" robot)" 2>/dev/null || true
    ip netns del "$(ns "$tag" ds)" 2>/dev/null || true
    rm -f "$(state_file "$tag")"
    ;;
robot | ds)
    side=$1; tag=${2:?tag}; shift 2
    exec ip netns exec "$(ns "$tag" "$side")" "$@"
    ;;
*)
    sed -n '2,19p' "$0" >&2
    exit 2
    ;;
esac
