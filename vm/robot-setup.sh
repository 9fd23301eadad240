#!/usr/bin/env bash
# frcstream "robot in a box": build (once) a Debian bookworm disk image that boots like a
# coprocessor: systemd as PID 1, udev, sshd, a user `pi` (groups video, adm, and sudo
# without a password) whose ssh key lives in the cache, vivid loaded at boot
# (/dev/video0), static network 10.0.2.15/24 for qemu's user-mode network. Used by
# tests/robot_vm.rs.
#
#   vm/robot-setup.sh [--refresh]
#
# Runs vm/setup.sh first (the Debian kernel and busybox it caches), then, keyed by the
# kernel, this script and the package list:
#   <cache>/x86_64/robot-<key>/rootfs.img    ext4 image (sparse), booted read-write
#                                             through a qcow2 overlay, never written
#          .../initrd.img                     busybox + virtio_blk/ext4: mounts /dev/vda
#          .../id_ed25519{,.pub}              pi's ssh key (the test's)
#          .../known_hosts                    the image's host key, for 127.0.0.1
#   <cache>/robot-x86_64.env                  manifest read by the test (KEY='value')
# Cache: ${FRCSTREAM_VM_CACHE:-$HOME/.cache/frcstream-vm}. Needs root (mmdebstrap, chroot).
# Host packages (installed when their files are missing): mmdebstrap, qemu-utils,
# e2fsprogs, openssh-client, debian-archive-keyring.
set -euo pipefail

REFRESH=0
case "${1:-}" in
    --refresh) REFRESH=1 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    "") ;;
    *) echo "robot-setup.sh: unknown argument $1" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${FRCSTREAM_VM_CACHE:-$HOME/.cache/frcstream-vm}
ARCH=x86_64
SUITE=bookworm
MIRROR=${FRCSTREAM_ROBOT_MIRROR:-http://deb.debian.org/debian}
log() { echo "vm/robot-setup: $*" >&2; }
die() { echo "vm/robot-setup: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap and chroot)"

# What a coprocessor image has that frcstream and deploy/deploy.sh use: systemd + udev,
# sshd, sudo, and what remote-install.sh runs (sh, tar, gzip, sha256sum, cmp, stat, awk).
PACKAGES="systemd,systemd-sysv,udev,libnss-systemd,openssh-server,sudo,passwd,kmod,mawk,v4l-utils,procps"
# Modules: in the initrd to mount the root fs; in the root fs for the rest.
INITRD_MODULES="virtio_pci virtio_blk ext4 crc32c_generic virtio_net"
ROOT_MODULES="$INITRD_MODULES vivid"
VIVID_OPTIONS="n_devs=1 node_types=0x1 num_inputs=1 input_types=0"

T_START=$(date +%s)
bash "$HERE/setup.sh" --arch "$ARCH" >&2 || die "vm/setup.sh failed"
MANIFEST=$CACHE/$ARCH.env
# shellcheck disable=SC1090
. "$MANIFEST"

# ----------------------------------------------------------- host packages ----
need=()
want() { [ -e "$1" ] || need+=("$2"); }
want /usr/bin/mmdebstrap mmdebstrap
want /usr/bin/qemu-img qemu-utils
want /usr/sbin/mke2fs e2fsprogs
want /usr/bin/ssh-keygen openssh-client
want /usr/bin/ssh openssh-client
want /usr/share/keyrings/debian-archive-keyring.gpg debian-archive-keyring
if [ ${#need[@]} -gt 0 ]; then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    log "installing host packages: ${need[*]}"
    apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2 ||
        { "${apt[@]}" update -qq >&2 && "${apt[@]}" install -y -qq --no-install-recommends "${need[@]}" >&2; } ||
        die "cannot install ${need[*]}"
fi

KEY=$( (cat "$0"; echo "$KPKG=$KPKG_VERSION $SUITE") | sha1sum | cut -c1-12)
OUT=$CACHE/$ARCH/robot-$KEY
ROBOT_MANIFEST=$CACHE/robot-$ARCH.env
exec 9>"$CACHE/.robot-setup.lock"
flock 9
if [ -f "$OUT/done" ] && [ "$REFRESH" = 0 ]; then
    [ -f "$ROBOT_MANIFEST" ] && grep -q "$OUT" "$ROBOT_MANIFEST" && exit 0
else
    rm -rf "$CACHE/$ARCH"/.robot-tmp.*
    t=$(mktemp -d "$CACHE/$ARCH/.robot-tmp.XXXXXX")
    trap 'rm -rf "$t"' EXIT
    root=$t/root

    # ------------------------------------------------------------- root fs ----
    log "mmdebstrap $SUITE ($PACKAGES)"
    T0=$(date +%s)
    nice mmdebstrap --quiet --mode=root --variant=essential --include="$PACKAGES" \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        "$SUITE" "$root" "$MIRROR" >&2 || die "mmdebstrap failed"
    log "mmdebstrap took $(($(date +%s) - T0)) s"

    # -- kernel modules (the rig's kernel package, from the cache vm/setup.sh filled)
    deb=$(ls "$CACHE/debs/${KPKG}_${KPKG_VERSION//:/%3a}_amd64.deb")
    dpkg-deb -x "$deb" "$t/kernel"
    depmod -b "$t/kernel" "$KVER"
    kmods=$t/kernel/lib/modules/$KVER
    order() { # insmod order of modules, paths relative to lib/modules/KVER
        local m
        for m in "$@"; do
            modprobe -d "$t/kernel" -S "$KVER" --show-depends "$m" |
                awk '$1=="insmod"{print $2}' | sed "s|^$t/kernel||; s|^/lib/modules/$KVER/||"
        done | awk '!seen[$0]++'
    }
    mkdir -p "$root/lib/modules/$KVER"
    # shellcheck disable=SC2086 # a list of module names
    for m in $(order $ROOT_MODULES); do
        mkdir -p "$root/lib/modules/$KVER/$(dirname "$m")"
        cp "$kmods/$m" "$root/lib/modules/$KVER/$m"
    done
    cp "$kmods"/modules.builtin* "$kmods"/modules.order "$root/lib/modules/$KVER/"
    depmod -b "$root" "$KVER"
    echo vivid >"$root/etc/modules-load.d/vivid.conf"
    echo "options vivid $VIVID_OPTIONS" >"$root/etc/modprobe.d/vivid.conf"

    # -- the coprocessor's own setup
    echo robot >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\trobot\n' >"$root/etc/hosts"
    # A fixed machine id: no first-boot units, and journalctl finds the same journal.
    echo 0f7c5a1e2b3d4c5e8f9a0b1c2d3e4f50 >"$root/etc/machine-id"
    printf '/dev/vda / ext4 rw,noatime 0 0\n' >"$root/etc/fstab"
    # The network (qemu's user net: static 10.0.2.15/24) is set up by the initrd, before
    # systemd: systemd-networkd took 6.5 s of a 20 s boot under TCG.
    # Not needed in the box (and each costs boot time under TCG).
    for unit in systemd-networkd-wait-online.service systemd-firstboot.service \
        getty@tty1.service getty-static.service systemd-sysusers.service \
        e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        systemd-pstore.service systemd-journal-catalog-update.service \
        systemd-hwdb-update.service systemd-update-utmp.service \
        systemd-update-utmp-runlevel.service ldconfig.service apt-daily.timer \
        apt-daily-upgrade.timer dpkg-db-backup.timer systemd-tmpfiles-clean.timer \
        modprobe@drm.service modprobe@fuse.service modprobe@configfs.service \
        modprobe@efi_pstore.service modprobe@dm_mod.service modprobe@loop.service \
        sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount \
        dev-mqueue.mount sys-fs-fuse-connections.mount; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # The journal on disk: `journalctl -u frcstream` covers the boot before a reboot too.
    mkdir -p "$root/var/log/journal"
    # pi: the team's user, in video (cameras), sudo (deploy.sh runs `sudo sh install.sh`)
    # and adm (reads the system journal), as on Raspberry Pi OS and Ubuntu's first user.
    chroot "$root" useradd -m -s /bin/bash -G video,sudo,adm pi
    echo 'pi ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/pi"
    chmod 440 "$root/etc/sudoers.d/pi"
    mkdir -p "$t/out"
    ssh-keygen -q -t ed25519 -N '' -C frcstream-robot-vm -f "$t/out/id_ed25519"
    install -d -m 700 -o 1000 -g 1000 "$root/home/pi/.ssh"
    install -m 600 -o 1000 -g 1000 "$t/out/id_ed25519.pub" "$root/home/pi/.ssh/authorized_keys"
    cat >"$root/etc/ssh/sshd_config.d/robot-vm.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
    echo "[127.0.0.1]:* $(cut -d' ' -f1,2 "$root/etc/ssh/ssh_host_ed25519_key.pub")" >"$t/out/known_hosts"
    rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/var/cache/apt"/*.bin \
        "$root/var/lib/apt/lists"/*_Packages

    # ------------------------------------------------------------- the image ----
    used_mb=$(du -sm "$root" | cut -f1)
    size_mb=$((used_mb + used_mb / 4 + 160))
    mke2fs -q -t ext4 -L robot -m 0 -E root_owner=0:0 -d "$root" "$t/out/rootfs.img" "${size_mb}M" ||
        die "mke2fs failed"

    # -------------------------------------------------------------- initrd ----
    mkdir -p "$t/initrd/bin" "$t/initrd/dev" "$t/initrd/proc" "$t/initrd/sys" "$t/initrd/newroot" \
        "$t/initrd/modules"
    cp "$SYSROOT/bin/busybox" "$t/initrd/bin/busybox"
    : >"$t/initrd/modules/order"
    # shellcheck disable=SC2086 # a list of module names
    for m in $(order $INITRD_MODULES); do
        cp "$kmods/$m" "$t/initrd/modules/"
        basename "$m" >>"$t/initrd/modules/order"
    done
    cat >"$t/initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /modules/order); do /bin/busybox insmod /modules/$m; done
n=0
until [ -b /dev/vda ]; do
    n=$((n + 1)); [ $n -gt 500 ] && { echo "initrd: no /dev/vda"; /bin/busybox sh; }
    /bin/busybox usleep 10000
done
/bin/busybox ip link set lo up
/bin/busybox ip link set eth0 up
/bin/busybox ip addr add 10.0.2.15/24 dev eth0
/bin/busybox ip route add default via 10.0.2.2
/bin/busybox mount -t ext4 -o rw,noatime /dev/vda /newroot || { echo "initrd: mount failed"; /bin/busybox sh; }
/bin/busybox umount /proc /sys /dev
exec /bin/busybox switch_root /newroot /sbin/init
EOF
    chmod 755 "$t/initrd/init"
    (cd "$t/initrd" && find . | sort | python3 -c '
import os, sys
out = open(sys.argv[1], "wb")
ino = 1
def put(name, st, body=b""):
    global ino
    hdr = "070701" + "".join("%08X" % v for v in (ino, st.st_mode if st else 0, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name) + 1, 0))
    ino += 1
    out.write(hdr.encode() + name.encode() + b"\0")
    out.write(b"\0" * ((4 - (110 + len(name) + 1) % 4) % 4))
    out.write(body)
    out.write(b"\0" * ((4 - len(body) % 4) % 4))
for line in sys.stdin:
    p = line.rstrip("\n")
    if p == ".":
        continue
    st = os.lstat(p)
    body = open(p, "rb").read() if os.path.isfile(p) else b""
    put(p[2:], st, body)
put("TRAILER!!!", None)
' "$t/out/initrd.img")
    touch "$t/out/done"
    rm -rf "$OUT"
    mv "$t/out" "$OUT"
    # Images of older versions of this script or kernel: ~180 MB each.
    for old in "$CACHE/$ARCH"/robot-*; do
        [ "$old" = "$OUT" ] || rm -rf "$old"
    done
    log "image ready in $(($(date +%s) - T_START)) s: $OUT ($(du -sm "$OUT/rootfs.img" | cut -f1) MB used of ${size_mb} MB)"
fi

cat >"$ROBOT_MANIFEST.tmp" <<EOF
# written by vm/robot-setup.sh; read by tests/robot_vm.rs
QEMU_BIN='$QEMU_BIN'
FIRMWARE='$FIRMWARE'
KERNEL='$KDIR/$KERNEL_FILE'
KVER='$KVER'
INITRD='$OUT/initrd.img'
IMAGE='$OUT/rootfs.img'
SSH_KEY='$OUT/id_ed25519'
KNOWN_HOSTS='$OUT/known_hosts'
EOF
mv -f "$ROBOT_MANIFEST.tmp" "$ROBOT_MANIFEST"
