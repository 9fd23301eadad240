#!/usr/bin/env bash
# frcstream V4L2 test rig: fetch and prepare everything vm/vm.py needs.
#
#   vm/setup.sh [--arch x86_64] [--refresh]
#
# Idempotent; takes a lock, so concurrent runs wait for each other.  Installs missing
# host tools with apt-get (running `apt-get update` only if an install or a lookup
# fails), downloads Debian .debs into the cache, and builds (once per version):
#   <cache>/<arch>/kernel-<kver>_<version>/   vmlinux (or Image), needed modules,
#                                             v4l2loopback.ko, module load lists
#   <cache>/<arch>/sysroot-<hash>/            busybox-static, v4l2-ctl + libs
#   <cache>/<arch>/feedjpeg-<hash>            static MJPEG writer (vm/guest/feedjpeg.c)
#   <cache>/testjpeg-v1/                      distinct 640x480 JPEG test frames
#   <cache>/<arch>.env                        manifest read by vm.py (KEY='value' lines)
# Cache: ${FRCSTREAM_VM_CACHE:-$HOME/.cache/frcstream-vm}.  Pin a kernel package with
# FRCSTREAM_VM_KERNEL=linux-image-6.1.0-NN-amd64.  Without network/apt lists, an
# existing manifest is reused.  Progress goes to stderr; exit status 0 = ready.
set -euo pipefail

ARCH=x86_64
REFRESH=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --arch=*) ARCH=${1#*=}; shift ;;
        --refresh) REFRESH=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${FRCSTREAM_VM_CACHE:-$HOME/.cache/frcstream-vm}
log() { echo "vm/setup: $*" >&2; }
die() { echo "vm/setup: error: $*" >&2; exit 1; }

HOST_DEB_ARCH=$(dpkg --print-architecture 2>/dev/null || echo unknown)

# ---------------------------------------------------------------- arch table ----
# Everything that differs between target architectures lives here (and in ARCHES in
# vm.py).  aarch64 is prepared but not finished: see vm/README.md.
case "$ARCH" in
    x86_64)
        DEB_ARCH=amd64
        KFLAVOUR=amd64
        QEMU_PKG=qemu-system-x86
        QEMU_BIN=qemu-system-x86_64
        # bzImage -> ELF vmlinux, booted via PVH by qboot (skips ~2.7 s of in-guest xz).
        KERNEL_FORMAT=pvh-vmlinux
        FIRMWARE=/usr/share/qemu/qboot.rom
        CROSS_PREFIX=""
        ;;
    aarch64)
        DEB_ARCH=arm64
        KFLAVOUR=arm64
        QEMU_PKG=qemu-system-arm
        QEMU_BIN=qemu-system-aarch64
        KERNEL_FORMAT=arm64-image
        FIRMWARE=""
        CROSS_PREFIX=aarch64-linux-gnu-
        ;;
    *) die "unsupported arch $ARCH (x86_64, aarch64)" ;;
esac
# Packages whose files make up the guest userland (all from Debian, target arch).
SYSROOT_PKGS="busybox-static v4l-utils libv4l-0 libv4l2rds0 libv4lconvert0 libjpeg62-turbo libc6 libgcc-s1 libstdc++6 libudev1"
# Extra modules loaded at boot besides vivid (network + control channel).
BASE_MODULES="virtio_pci virtio_console virtio_net"

# apt for the target arch: the host's own state for native, a private state otherwise
# (never touches the host's dpkg architectures).
APT_OPTS=(-o APT::Sandbox::User=root)
if [ "$DEB_ARCH" != "$HOST_DEB_ARCH" ]; then
    APTDIR=$CACHE/apt-$DEB_ARCH
    APT_OPTS+=(-o APT::Architecture="$DEB_ARCH" -o APT::Architectures="$DEB_ARCH"
        -o Dir::State="$APTDIR/state" -o Dir::State::status="$APTDIR/state/status"
        -o Dir::Cache="$APTDIR/cache" -o Debug::NoLocking=1)
fi

mkdir -p "$CACHE/debs" "$CACHE/$ARCH"
MANIFEST=$CACHE/$ARCH.env

# ------------------------------------------------------------------- locking ----
exec 9>"$CACHE/.setup.lock"
if ! flock -n 9; then
    log "another setup is running; waiting for its lock"
    flock 9
fi

# Holding the lock: leftovers of an interrupted run can go.
rm -rf "$CACHE/$ARCH"/.tmp.* "$CACHE"/.manifest.*
TMPDIRS=()
cleanup() { for d in "${TMPDIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
mktmp() { local d; d=$(mktemp -d "$CACHE/$ARCH/.tmp.XXXXXX"); TMPDIRS+=("$d"); echo "$d"; }

# ----------------------------------------------------------- host packages ----
SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo -n)
APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" = 1 ] && return 0
    APT_UPDATED=1
    log "apt-get update${1:+ ($1)}"
    if [ "$DEB_ARCH" != "$HOST_DEB_ARCH" ]; then
        mkdir -p "$APTDIR/state/lists/partial" "$APTDIR/cache/archives/partial"
        touch "$APTDIR/state/status"
    fi
    local sudo=("${SUDO[@]}")
    [ "$DEB_ARCH" != "$HOST_DEB_ARCH" ] && sudo=()  # private state: no root needed
    "${sudo[@]}" apt-get "${APT_OPTS[@]}" update -qq >&2 || return 1
}

need=()
want() { # want <command-or-absolute-path> <package>
    case "$1" in
        /*) [ -e "$1" ] || need+=("$2") ;;
        *) command -v "$1" >/dev/null 2>&1 || need+=("$2") ;;
    esac
}
install_pkgs() { # install_pkgs <pkg>...: apt-get install, with one apt-get update on failure
    log "installing host packages: $*"
    local apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    "${apt[@]}" install -y -qq --no-install-recommends "$@" >&2 && return 0
    log "install failed; apt-get update and retry"
    "${apt[@]}" update -qq >&2 ||
        die "apt-get update failed${SUDO:+ (not root: run 'sudo apt-get install $*' yourself)}"
    "${apt[@]}" install -y -qq --no-install-recommends "$@" >&2 || die "cannot install $*"
}
want "$QEMU_BIN" "$QEMU_PKG"
[ -n "$FIRMWARE" ] && want "$FIRMWARE" qemu-system-data
want dpkg-deb dpkg
want xz xz-utils
want gzip gzip
want depmod kmod
want modprobe kmod
want python3 python3
want make make
want gcc gcc
want /usr/include/linux/videodev2.h linux-libc-dev
want "/usr/lib/$(uname -m)-linux-gnu/libc.a" libc6-dev
want "/usr/lib/$(uname -m)-linux-gnu/libelf.so.1" libelf1   # kbuild's objtool
if [ -n "$CROSS_PREFIX" ]; then
    want "${CROSS_PREFIX}gcc" "gcc-${CROSS_PREFIX%-}"
    want "/usr/${CROSS_PREFIX%-}/lib/libc.a" "libc6-dev-$DEB_ARCH-cross"
fi
if [ ${#need[@]} -gt 0 ]; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    install_pkgs "${need[@]}"
fi

# ---------------------------------------------------------- version lookup ----
# A private binary package cache makes repeated apt-cache calls ~0.1 s instead of ~0.4 s
# (Debian's docker-style images disable the system one).  apt revalidates it itself.
mkdir -p "$CACHE/aptcache"
APTC_OPTS=(-o Dir::Cache::pkgcache="$CACHE/aptcache/$DEB_ARCH-pkgcache.bin"
           -o Dir::Cache::srcpkgcache="$CACHE/aptcache/$DEB_ARCH-srcpkgcache.bin")
# candidate <pkg>...: prints "pkg version" lines for the target arch.
candidates() {
    apt-cache "${APT_OPTS[@]}" "${APTC_OPTS[@]}" show --no-all-versions "$@" 2>/dev/null |
        awk '/^Package: /{p=$2} /^Version: /{print p, $2}'
}
resolve_kernel() {
    if [ -n "${FRCSTREAM_VM_KERNEL:-}" ]; then
        KPKG=$FRCSTREAM_VM_KERNEL
    else
        KPKG=$(apt-cache "${APT_OPTS[@]}" "${APTC_OPTS[@]}" depends "linux-image-$KFLAVOUR" 2>/dev/null |
            awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    [ -n "$KPKG" ] || return 1
    KVER=${KPKG#linux-image-}
    KVER=${KVER%-unsigned}
    KPKG_VERSION=$(candidates "$KPKG" | awk '{print $2; exit}')
    [ -n "$KPKG_VERSION" ]
}
lookup() {
    resolve_kernel || return 1
    KBASE=${KVER%-"$KFLAVOUR"}
    KMAJMIN=$(echo "$KVER" | cut -d. -f1,2)
    declare -gA VERS=()
    local p v
    while read -r p v; do VERS[$p]=$v; done < <(candidates $SYSROOT_PKGS v4l2loopback-dkms)
    for p in $SYSROOT_PKGS v4l2loopback-dkms; do [ -n "${VERS[$p]:-}" ] || return 1; done
}
# Host-arch packages (tools run on the host): the host's own apt state.
host_candidates() {
    apt-cache -o Dir::Cache::pkgcache="$CACHE/aptcache/$HOST_DEB_ARCH-pkgcache.bin" \
        -o Dir::Cache::srcpkgcache="$CACHE/aptcache/$HOST_DEB_ARCH-srcpkgcache.bin" \
        show --no-all-versions "$@" 2>/dev/null | awk '/^Package: /{p=$2} /^Version: /{print p, $2}'
}

if ! lookup; then
    if [ -f "$MANIFEST" ] && [ "$REFRESH" = 0 ]; then
        log "package lookup failed; reusing existing $MANIFEST"
        exit 0
    fi
    apt_update_once "package lists missing or stale" || die "apt-get update failed"
    lookup || die "cannot find ${KPKG:-linux-image-$KFLAVOUR} or the guest packages ($SYSROOT_PKGS) for $DEB_ARCH"
fi

# ------------------------------------------------------------------ download ----
safe() { echo "$1" | tr ':/' '__'; }

# download <pkg> <version> <arch>: into $CACHE/debs unless there; 1 on failure.
download() {
    local pkg=$1 ver=$2 arch=$3 f d
    local ever=${ver//:/%3a}
    for f in "$CACHE/debs/${pkg}_${ever}_${arch}.deb" "$CACHE/debs/${pkg}_${ever}_all.deb"; do
        [ -s "$f" ] && return 0
    done
    local opts=("${APT_OPTS[@]}")
    [ "$arch" = "$HOST_DEB_ARCH" ] && opts=(-o APT::Sandbox::User=root)
    log "downloading $pkg $ver ($arch)"
    d=$(mktmp)
    (cd "$d" && { apt-get "${opts[@]}" download -qq "$pkg:$arch=$ver" 2>/dev/null ||
                  apt-get "${opts[@]}" download -qq "$pkg=$ver"; } >&2) || return 1
    for f in "$d"/*.deb; do
        [ -s "$f" ] || return 1
        mv -f "$f" "$CACHE/debs/"
    done
    rm -rf "$d"
}
# fetch <pkg> <version> [arch]: path of the cached .deb (downloaded by prefetch).
fetch() {
    local pkg=$1 ver=$2 arch=${3:-$DEB_ARCH} f
    download "$pkg" "$ver" "$arch" || die "cannot download $pkg=$ver ($arch)"
    local ever=${ver//:/%3a}
    for f in "$CACHE/debs/${pkg}_${ever}_${arch}.deb" "$CACHE/debs/${pkg}_${ever}_all.deb"; do
        [ -s "$f" ] && { echo "$f"; return 0; }
    done
    die "no .deb for $pkg=$ver in $CACHE/debs"
}

# plan: cache keys of every component, and the .debs still needed to build missing ones.
plan() {
    LBVER=${VERS[v4l2loopback-dkms]}
    KDIR=$CACHE/$ARCH/kernel-${KVER}_$(safe "$KPKG_VERSION")+v4l2loopback-$(safe "$LBVER")
    SYSKEY=$(for p in $SYSROOT_PKGS; do echo "$p=${VERS[$p]}"; done | sha1sum | cut -c1-12)
    SYSROOT=$CACHE/$ARCH/sysroot-$SYSKEY
    TESTJPEG=$CACHE/testjpeg-v1
    NEEDED=()
    if [ ! -f "$KDIR/done" ] || [ "$REFRESH" = 1 ]; then
        NEEDED+=("$KPKG $KPKG_VERSION $DEB_ARCH" "linux-headers-$KVER $KPKG_VERSION $DEB_ARCH"
                 "linux-headers-$KBASE-common $KPKG_VERSION all"
                 "linux-kbuild-$KMAJMIN $KPKG_VERSION $HOST_DEB_ARCH" "v4l2loopback-dkms $LBVER all")
    fi
    if [ ! -f "$SYSROOT/.done" ] || [ "$REFRESH" = 1 ]; then
        for p in $SYSROOT_PKGS; do NEEDED+=("$p ${VERS[$p]} $DEB_ARCH"); done
    fi
    if [ ! -f "$TESTJPEG/.done" ]; then
        local p v
        while read -r p v; do NEEDED+=("$p $v $HOST_DEB_ARCH"); done \
            < <(host_candidates libjpeg-turbo-progs libjpeg62-turbo)
    fi
}
prefetch() {
    local item ok=0
    for item in "${NEEDED[@]}"; do
        # shellcheck disable=SC2086
        download $item || ok=1
    done
    return $ok
}

plan
if ! prefetch; then
    # Stale package lists name versions the mirror no longer has: update, re-plan, retry.
    apt_update_once "a download failed"
    [ "$DEB_ARCH" != "$HOST_DEB_ARCH" ] && { "${SUDO[@]}" apt-get update -qq >&2 || true; }
    lookup || die "package lookup failed after apt-get update"
    plan
    prefetch || die "downloads failed (is a Debian mirror reachable?)"
fi

# ---------------------------------------------------------------- kernel ----
if [ ! -f "$KDIR/done" ] || [ "$REFRESH" = 1 ]; then
    T0=$(date +%s%N)
    t=$(mktmp)
    deb=$(fetch "$KPKG" "$KPKG_VERSION")
    log "unpacking $KPKG"
    dpkg-deb -x "$deb" "$t/root"
    mkdir -p "$t/out"
    # -- kernel image
    case "$KERNEL_FORMAT" in
        pvh-vmlinux)
            python3 - "$t/root/boot/vmlinuz-$KVER" "$t/vmlinux.xz" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
off = data.find(b'\xfd7zXZ\x00')
if off < 0:
    sys.exit('no xz stream in ' + sys.argv[1])
open(sys.argv[2], 'wb').write(data[off:])
PY
            xz -dc --single-stream "$t/vmlinux.xz" > "$t/out/vmlinux" 2>/dev/null || true
            [ "$(head -c4 "$t/out/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ] ||
                die "could not extract an ELF vmlinux from vmlinuz-$KVER"
            KERNEL_FILE=vmlinux ;;
        arm64-image)
            # Debian's arm64 vmlinuz is a gzip-compressed Image; qemu takes it as is,
            # but unpacking avoids the in-guest/loader decompression.
            if gzip -t "$t/root/boot/vmlinuz-$KVER" 2>/dev/null; then
                gzip -dc "$t/root/boot/vmlinuz-$KVER" > "$t/out/Image"
            else
                cp "$t/root/boot/vmlinuz-$KVER" "$t/out/Image"
            fi
            KERNEL_FILE=Image ;;
    esac
    # -- v4l2loopback, built against the unpacked headers
    LOOPBACK_KO=""
    (
        set -e
        h=$t/hdr
        dpkg-deb -x "$(fetch "linux-headers-$KVER" "$KPKG_VERSION")" "$h"
        dpkg-deb -x "$(fetch "linux-headers-$KBASE-common" "$KPKG_VERSION" all)" "$h"
        dpkg-deb -x "$(fetch "linux-kbuild-$KMAJMIN" "$KPKG_VERSION" "$HOST_DEB_ARCH")" "$h"
        dpkg-deb -x "$(fetch v4l2loopback-dkms "$LBVER" all)" "$h"
        # The arch headers' Makefile includes the -common one by absolute /usr/src path.
        sed -i "s|/usr/src/|$h/usr/src/|g" "$h/usr/src/linux-headers-$KVER/Makefile"
        src=$(echo "$h"/usr/src/v4l2loopback-*)
        # Debian builds its kernels with a versioned gcc (CC = ...gcc-12 in .kernelvariables).
        kgcc=$(grep -o 'gcc-[0-9][0-9]*' "$h/usr/src/linux-headers-$KVER/.kernelvariables" | head -1)
        if [ -n "$kgcc" ] && ! command -v "$CROSS_PREFIX$kgcc" >/dev/null; then
            install_pkgs "${kgcc}${CROSS_PREFIX:+-${CROSS_PREFIX%-}}"
        fi
        xarch=()
        [ -n "$CROSS_PREFIX" ] && xarch=(ARCH=arm64 CROSS_COMPILE="$CROSS_PREFIX")
        make -s -C "$h/usr/src/linux-headers-$KVER" M="$src" "${xarch[@]}" modules -j2 >&2 2>"$t/lb.log" ||
            { cat "$t/lb.log" >&2; exit 1; }
        mkdir -p "$t/root/lib/modules/$KVER/updates"
        cp "$src/v4l2loopback.ko" "$t/root/lib/modules/$KVER/updates/"
    ) && LOOPBACK_KO=updates/v4l2loopback.ko || log "WARNING: v4l2loopback build failed; --loopback will be unavailable"
    # -- modules: dependency order from depmod/modprobe, copy only what is needed
    depmod -b "$t/root" "$KVER"
    order() { # order <module>...: insmod order (paths relative to lib/modules/KVER)
        local m
        for m in "$@"; do
            modprobe -d "$t/root" -S "$KVER" --show-depends "$m" |
                awk '$1=="insmod"{print $2}' | sed "s|^$t/root/lib/modules/$KVER/||; s|^/lib/modules/$KVER/||"
        done | awk '!seen[$0]++'
    }
    MODS_BASE=$(order $BASE_MODULES | tr '\n' ' ')
    MODS_VIVID=$(order vivid | tr '\n' ' ')
    MODS_LOOPBACK=""
    [ -n "$LOOPBACK_KO" ] && MODS_LOOPBACK=$(order v4l2loopback | tr '\n' ' ')
    [ -n "$MODS_VIVID" ] || die "modprobe found no vivid module"
    for m in $MODS_BASE $MODS_VIVID $MODS_LOOPBACK; do
        mkdir -p "$t/out/modules/$(dirname "$m")"
        cp "$t/root/lib/modules/$KVER/$m" "$t/out/modules/$m"
    done
    cat > "$t/out/kernel.env" <<EOF
KVER='$KVER'
KPKG='$KPKG'
KPKG_VERSION='$KPKG_VERSION'
KERNEL_FILE='$KERNEL_FILE'
MODS_BASE='$MODS_BASE'
MODS_VIVID='$MODS_VIVID'
MODS_LOOPBACK='$MODS_LOOPBACK'
LOOPBACK_VERSION='$LBVER'
EOF
    touch "$t/out/done"
    rm -rf "$KDIR"
    mv "$t/out" "$KDIR"
    rm -rf "$t"
    log "kernel $KVER ready in $(( ($(date +%s%N) - T0) / 1000000 )) ms"
fi

# ---------------------------------------------------------------- sysroot ----
if [ ! -f "$SYSROOT/.done" ] || [ "$REFRESH" = 1 ]; then
    t=$(mktmp)
    for p in $SYSROOT_PKGS; do
        dpkg-deb -x "$(fetch "$p" "${VERS[$p]}")" "$t/root"
    done
    # Drop what never goes into the guest; vm.py copies only what it needs anyway.
    rm -rf "$t/root/usr/share/doc" "$t/root/usr/share/man" "$t/root/usr/share/locale" \
           "$t/root/usr/share/lintian" "$t/root/usr/lib/"*/gconv "$t/root/usr/share/i18n"
    [ -x "$t/root/bin/busybox" ] || die "busybox-static did not provide /bin/busybox"
    [ -x "$t/root/usr/bin/v4l2-ctl" ] || die "v4l-utils did not provide v4l2-ctl"
    touch "$t/root/.done"
    rm -rf "$SYSROOT"
    mv "$t/root" "$SYSROOT"
    rm -rf "$t"
    log "guest sysroot ready ($SYSROOT)"
fi

# --------------------------------------------------------------- feedjpeg ----
FJ_SRC=$HERE/guest/feedjpeg.c
FJKEY=$( (cat "$FJ_SRC"; "${CROSS_PREFIX}gcc" --version | head -1) | sha1sum | cut -c1-12)
FEEDJPEG=$CACHE/$ARCH/feedjpeg-$FJKEY
if [ ! -x "$FEEDJPEG" ]; then
    log "building feedjpeg"
    "${CROSS_PREFIX}gcc" -O2 -Wall -static -s -o "$FEEDJPEG.tmp$$" "$FJ_SRC"
    mv -f "$FEEDJPEG.tmp$$" "$FEEDJPEG"
fi

# ------------------------------------------------------------ test frames ----
if [ ! -f "$TESTJPEG/.done" ]; then
    t=$(mktmp)
    while read -r p v; do
        dpkg-deb -x "$(fetch "$p" "$v" "$HOST_DEB_ARCH")" "$t/x"
    done < <(host_candidates libjpeg-turbo-progs libjpeg62-turbo)
    [ -x "$t/x/usr/bin/cjpeg" ] || die "could not get cjpeg (libjpeg-turbo-progs)"
    mkdir -p "$t/out"
    python3 - "$t" <<'PY'
import sys
W, H, N = 640, 480, 8
t = sys.argv[1]
bars = [(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16),
        (235, 16, 235), (235, 16, 16), (16, 16, 235), (16, 16, 16)]
for i in range(N):
    rows = []
    for y in range(H):
        row = bytearray()
        for x in range(W):
            c = bars[((x * 8) // W + i) % 8]
            # a moving grey square plus i small black ticks: every frame differs
            if 40 + i * 60 <= x < 100 + i * 60 and 300 <= y < 360:
                c = (128, 128, 128)
            if y < 20 and x < 20 * (i + 1) and (x // 10) % 2 == 0:
                c = (0, 0, 0)
            row += bytes(c)
        rows.append(bytes(row))
    with open(f"{t}/f{i}.ppm", "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (W, H) + b"".join(rows))
PY
    for i in 0 1 2 3 4 5 6 7; do
        LD_LIBRARY_PATH=$(echo "$t"/x/usr/lib/*-linux-gnu) "$t/x/usr/bin/cjpeg" -quality 85 \
            -outfile "$t/out/frame-$i.jpg" "$t/f$i.ppm"
    done
    touch "$t/out/.done"
    rm -rf "$TESTJPEG"
    mv "$t/out" "$TESTJPEG"
    log "test JPEGs ready ($TESTJPEG)"
fi

# --------------------------------------------------------------- manifest ----
new=$(mktemp "$CACHE/.manifest.XXXXXX")
{
    echo "# written by vm/setup.sh; read by vm/vm.py"
    echo "ARCH='$ARCH'"
    echo "QEMU_BIN='$QEMU_BIN'"
    echo "FIRMWARE='$FIRMWARE'"
    echo "KERNEL_FORMAT='$KERNEL_FORMAT'"
    echo "KDIR='$KDIR'"
    cat "$KDIR/kernel.env"
    echo "SYSROOT='$SYSROOT'"
    echo "FEEDJPEG='$FEEDJPEG'"
    echo "TESTJPEG='$TESTJPEG'"
} > "$new"
if cmp -s "$new" "$MANIFEST" 2>/dev/null; then rm -f "$new"; else mv -f "$new" "$MANIFEST"; fi

# Prune what a newer Debian kernel / package set superseded (keeps the cache bounded).
for d in "$CACHE/$ARCH"/kernel-* "$CACHE/$ARCH"/sysroot-* "$CACHE/$ARCH"/feedjpeg-*; do
    [ -e "$d" ] || continue
    case "$d" in "$KDIR"|"$SYSROOT"|"$FEEDJPEG") continue ;; esac
    log "pruning superseded $d"
    rm -rf "$d"
done
for f in "$CACHE"/debs/linux-image-*_"$DEB_ARCH".deb "$CACHE"/debs/linux-headers-*_"$DEB_ARCH".deb; do
    [ -e "$f" ] || continue
    case "${f##*/}" in *"_$(safe "${KPKG_VERSION//:/%3a}")_"*) continue ;; esac
    log "pruning superseded ${f##*/}"
    rm -f "$f"
done
log "ready: $MANIFEST (kernel $KVER $KPKG_VERSION)"
