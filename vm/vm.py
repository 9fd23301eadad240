#!/usr/bin/env python3
"""frcstream V4L2 test rig: boot Debian's kernel in qemu with vivid, drive it over stdin.

    python3 vm/vm.py --payload DIR [--forward GUESTPORT[,GUESTPORT...]] [--arch x86_64]
                     [--mem 512] [--smp 2] [--vivid-options "..."] [--loopback]
                     [--loopback-options "..."] [--console FILE] [--boot-timeout 120]

Stdout carries only protocol lines (see vm/README.md); diagnostics go to stderr.

  startup:  READY <guestport>=<hostport> ...      guest up, /dev/video0 present
            UNAVAILABLE <reason>                  cannot run here (exit 0: skip the test)
            ERROR <reason>                        boot failed (exit 1)
  commands (one per line on stdin) and replies:
    exec <shell command>         "| <line>"*  then  EXIT <status>
    spawn <name> <shell command> OK <pid>
    log <name>                   "| <line>"*  then  OK
    status <name>                OK RUNNING <pid> | OK EXITED <status>
    kill <name> [SIGNAL]         OK                 (signals the whole process group)
    waitport <guestport> [secs]  OK | ERR timeout   (something listens on it in the guest)
    ports                        OK <guestport>=<hostport> ...
    quit                         OK bye, then the VM is powered off and vm.py exits 0
  Any reply may instead end with "ERR <message>".  Every reply ends with exactly one
  line starting with EXIT, OK or ERR; output lines always start with "| ".
Closing stdin means quit (a command still running 10 s after that is abandoned).
The VM never outlives vm.py: qemu gets PR_SET_PDEATHSIG, and vm.py kills it on exit.
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("FRCSTREAM_VM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "frcstream-vm")

# Everything that differs between target architectures (see also the table in setup.sh).
ARCHES = {
    "x86_64": {
        "elf_machine": 62,  # EM_X86_64
        "multiarch": "x86_64-linux-gnu",
        "console": "ttyS0",
        "machine": [],
        "tcg_cpu": "max",
        "kvm_modules": ("kvm_intel", "kvm_amd"),  # /dev/kvm from kvm_pvm cannot boot stock kernels
        "boot_extra": [],  # FIRMWARE (qboot) is added from the manifest: PVH boot of vmlinux
    },
    "aarch64": {
        "elf_machine": 183,  # EM_AARCH64
        "multiarch": "aarch64-linux-gnu",
        "console": "ttyAMA0",
        "machine": ["-M", "virt"],
        "tcg_cpu": "cortex-a72",
        "kvm_modules": (),
        "boot_extra": [],
    },
}
HOST_ARCH = os.uname().machine

DEFAULT_VIVID = "n_devs=1 node_types=0x1 num_inputs=1 input_types=0"
DEFAULT_LOOPBACK = "devices=1 video_nr=10 card_label=frcstream-mjpeg exclusive_caps=0 max_buffers=4"
GUEST_ADDR, GUEST_GW = "10.0.2.15/24", "10.0.2.2"  # qemu user-net defaults (guest-internal)

_out_lock = threading.Lock()


# The address at which the guest reaches --host-forward ports.
HOST_FORWARD_IP = "10.0.2.100"

def say(line: str) -> None:
    """One protocol line on stdout."""
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def diag(msg: str) -> None:
    sys.stderr.write("vm: " + msg + "\n")
    sys.stderr.flush()


class Unavailable(Exception):
    pass


class BootError(Exception):
    pass


# --------------------------------------------------------------------- manifest ----
def read_manifest(arch: str) -> dict | None:
    path = os.path.join(CACHE, arch + ".env")
    try:
        text = open(path).read()
    except OSError:
        return None
    env = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Z_0-9]+)='(.*)'$", line)
        if m:
            env[m.group(1)] = m.group(2)
    needed = [env.get("KDIR", ""), env.get("SYSROOT", ""), env.get("FEEDJPEG", ""), env.get("TESTJPEG", "")]
    if not all(needed) or not all(os.path.exists(p) for p in needed):
        return None
    return env


def ensure_setup(arch: str, mode: str) -> dict:
    env = None if mode == "always" else read_manifest(arch)
    if env is None:
        if mode == "never":
            raise Unavailable(f"no prepared VM cache for {arch} in {CACHE} (run vm/setup.sh)")
        diag("running vm/setup.sh (output follows on stderr)")
        t0 = time.monotonic()
        r = subprocess.run(["bash", os.path.join(HERE, "setup.sh"), "--arch", arch],
                           stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr)
        if r.returncode != 0:
            raise Unavailable(f"vm/setup.sh --arch {arch} failed (exit {r.returncode}); see stderr")
        diag(f"setup took {time.monotonic() - t0:.1f} s")
        env = read_manifest(arch)
        if env is None:
            raise Unavailable("vm/setup.sh did not produce a usable manifest")
    if not shutil.which(env["QEMU_BIN"]):
        raise Unavailable(f"{env['QEMU_BIN']} not installed")
    if env.get("FIRMWARE") and not os.path.exists(env["FIRMWARE"]):
        raise Unavailable(f"{env['FIRMWARE']} missing")
    return env


# -------------------------------------------------------------------------- ELF ----
def elf_info(path: str):
    """(machine, interp, needed, runpaths) for a 64-bit little-endian ELF, else None."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return None
            f.seek(0)
            data = f.read()
    except OSError:
        return None
    if data[4] != 2 or data[5] != 1:
        raise BootError(f"{path}: only 64-bit little-endian ELF files are supported")
    (e_machine,) = struct.unpack_from("<H", data, 18)
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    loads, dynamic, interp = [], None, None
    for i in range(e_phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dynamic = (p_offset, p_filesz)
        elif p_type == 3:
            interp = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    needed, runpaths = [], []
    if dynamic:
        entries, strtab = [], None
        off, end = dynamic[0], dynamic[0] + dynamic[1]
        while off + 16 <= end:
            tag, val = struct.unpack_from("<qQ", data, off)
            off += 16
            if tag == 0:
                break
            if tag == 5:
                strtab = val
            entries.append((tag, val))

        def vaddr_to_off(v):
            for vaddr, foff, size in loads:
                if vaddr <= v < vaddr + size:
                    return v - vaddr + foff
            return None

        base = vaddr_to_off(strtab) if strtab is not None else None
        if base is not None:
            def s(o):
                e = data.index(b"\0", base + o)
                return data[base + o:e].decode()
            for tag, val in entries:
                if tag == 1:
                    needed.append(s(val))
                elif tag in (15, 29):
                    runpaths += s(val).split(":")
    return e_machine, interp, needed, runpaths


class Image:
    """The initramfs being assembled: guest path -> (kind, source/target, mode)."""

    def __init__(self):
        self.entries: dict[str, tuple] = {}
        self.links: dict[str, str] = {}  # directory symlinks: /lib -> /usr/lib

    def _norm(self, path: str) -> str:
        for link, target in self.links.items():
            if path.startswith(link + "/"):
                return target + path[len(link):]
        return path

    def _parents(self, path: str):
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d not in self.entries:
                self.entries[d] = ("dir", None, 0o755)

    def dir(self, path, mode=0o755):
        path = self._norm(path)
        self._parents(path)
        self.entries[path] = ("dir", None, mode)

    def file(self, path, src, mode=None):
        path = self._norm(path)
        self._parents(path)
        if mode is None:
            mode = os.stat(src).st_mode & 0o7777
        self.entries[path] = ("file", src, mode)

    def data(self, path, content: bytes, mode=0o644):
        path = self._norm(path)
        self._parents(path)
        self.entries[path] = ("data", content, mode)

    def symlink(self, path, target):
        path = self._norm(path)
        if target.startswith("usr/") and path.count("/") == 1:
            self.links[path] = "/" + target
        self._parents(path)
        self.entries[path] = ("symlink", target, 0o777)

    def chardev(self, path, major, minor, mode=0o600):
        path = self._norm(path)
        self._parents(path)
        self.entries[path] = ("chr", (major, minor), mode)

    def write_cpio(self, out_path):
        """newc cpio, parents before children, no compression (the kernel unpacks it fast)."""
        ino = 1
        with open(out_path, "wb") as out:
            def put(name, mode, nlink, body=b"", rdev=(0, 0)):
                nonlocal ino
                nb = name.encode() + b"\0"
                hdr = "070701" + "".join("%08X" % v for v in (
                    ino, mode, 0, 0, nlink, 0, len(body), 0, 0, rdev[0], rdev[1], len(nb), 0))
                ino += 1
                out.write(hdr.encode() + nb + b"\0" * ((4 - (110 + len(nb)) % 4) % 4))
                out.write(body + b"\0" * ((4 - len(body) % 4) % 4))

            # Symlinks last, so that their targets exist when the kernel unpacks them.
            for path in sorted(self.entries, key=lambda p: (self.entries[p][0] == "symlink", p)):
                kind, src, mode = self.entries[path]
                name = path.lstrip("/")
                if kind == "dir":
                    put(name, 0o040000 | mode, 2)
                elif kind == "file":
                    with open(src, "rb") as f:
                        put(name, 0o100000 | mode, 1, f.read())
                elif kind == "data":
                    put(name, 0o100000 | mode, 1, src)
                elif kind == "symlink":
                    put(name, 0o120000 | 0o777, 1, src.encode())
                elif kind == "chr":
                    put(name, 0o020000 | mode, 1, rdev=src)
            put("TRAILER!!!", 0, 1)


class LibResolver:
    """Copies the shared libraries of ELF files into the image (like ldd, cross-arch)."""

    def __init__(self, img: Image, arch: str, roots: list[str]):
        self.img, self.arch, self.roots = img, arch, roots
        self.ma = ARCHES[arch]["multiarch"]
        self.done: set[str] = set()

    def _dirs(self):
        for r in self.roots:
            for d in (f"lib/{self.ma}", f"usr/lib/{self.ma}", "lib64", "usr/lib64", "lib", "usr/lib"):
                yield os.path.join(r, d)

    def _find(self, soname, runpaths, origin):
        dirs = [rp.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for rp in runpaths
                if rp.startswith("$ORIGIN") or rp.startswith("${ORIGIN}")]
        for d in dirs + list(self._dirs()):
            p = os.path.join(d, soname)
            if os.path.isfile(p):
                return p
        return None

    def add(self, path, what):
        info = elf_info(path)
        if not info:
            return
        machine, interp, needed, runpaths = info
        if machine != ARCHES[self.arch]["elf_machine"]:
            raise BootError(f"{what} is not an {self.arch} binary (ELF machine {machine})")
        if interp and interp not in self.done:
            self.done.add(interp)
            src = None
            for r in self.roots:
                cand = os.path.join(r, interp.lstrip("/"))
                if os.path.isfile(cand):
                    src = os.path.realpath(cand)
                    break
            if not src:
                raise BootError(f"{what}: interpreter {interp} not found in {self.roots}")
            self.img.file(interp, src, 0o755)
        for so in needed:
            if so in self.done:
                continue
            self.done.add(so)
            src = self._find(so, runpaths, os.path.dirname(path))
            if not src:
                raise BootError(f"{what}: shared library {so} not found (searched {self.roots})")
            real = os.path.realpath(src)
            self.img.file(f"/usr/lib/{self.ma}/{so}", real, 0o755)
            self.add(real, so)


# ---------------------------------------------------------------- initramfs ----
def build_initramfs(args, env, out_path):
    arch = args.arch
    ma = ARCHES[arch]["multiarch"]
    img = Image()
    sysroot = env["SYSROOT"]
    # Native: prefer the host's own libraries (the payload was linked against them),
    # then the Debian sysroot (libv4l for v4l2-ctl).  Foreign arch: the sysroot only.
    roots = (["/", sysroot] if arch == HOST_ARCH else [sysroot]) + [os.path.abspath(p) for p in args.lib_root]
    libs = LibResolver(img, arch, roots)

    for d in ("/bin", "/sbin", "/usr/bin", "/usr/sbin", f"/usr/lib/{ma}", "/usr/lib64", "/proc", "/sys",
              "/dev", "/tmp", "/run", "/root", "/etc", "/mnt", "/vm/bin"):
        img.dir(d)
    img.dir("/tmp", 0o1777)
    img.symlink("/lib", "usr/lib")
    img.symlink("/lib64", "usr/lib64")
    img.chardev("/dev/console", 5, 1)
    img.chardev("/dev/null", 1, 3, 0o666)
    img.file("/bin/busybox", os.path.join(sysroot, "bin/busybox"), 0o755)
    img.symlink("/bin/sh", "busybox")
    img.data("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    img.data("/etc/group", b"root:x:0:\nvideo:x:44:\n")
    img.data("/etc/hosts", b"127.0.0.1 localhost\n")
    img.data("/etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    for tool in ("v4l2-ctl",):
        src = os.path.join(sysroot, "usr/bin", tool)
        img.file(f"/usr/bin/{tool}", src, 0o755)
        libs.add(src, tool)

    # Kernel modules, in load order.
    kdir, kver = env["KDIR"], env["KVER"]
    mods = env["MODS_BASE"].split() + env["MODS_VIVID"].split()
    if args.loopback:
        if not env.get("MODS_LOOPBACK", "").strip():
            raise Unavailable("v4l2loopback was not built by vm/setup.sh (see its output)")
        mods += env["MODS_LOOPBACK"].split()
    for m in dict.fromkeys(mods):
        img.file(f"/lib/modules/{kver}/{m}", os.path.join(kdir, "modules", m), 0o644)

    # Guest scripts and helpers.
    for name in ("init", "agent"):
        img.file(f"/{name}" if name == "init" else f"/vm/{name}", os.path.join(HERE, "guest", name), 0o755)
    for name in ("reload-vivid", "feed-mjpeg"):
        img.file(f"/vm/bin/{name}", os.path.join(HERE, "guest", name), 0o755)
    img.symlink("/vm/reload-vivid", "bin/reload-vivid")
    img.file("/vm/bin/feedjpeg", env["FEEDJPEG"], 0o755)
    if args.loopback:
        for f in sorted(os.listdir(env["TESTJPEG"])):
            if f.endswith(".jpg"):
                img.file(f"/vm/jpeg/{f}", os.path.join(env["TESTJPEG"], f), 0o644)
    lb_opts = args.loopback_options
    m = re.search(r"video_nr=(\d+)", lb_opts)
    lb_dev = f"/dev/video{m.group(1) if m else 1}"
    config = {
        "KVER": kver,
        "MODS_BASE": env["MODS_BASE"],
        "MODS_VIVID": env["MODS_VIVID"],
        "VIVID_OPTS": args.vivid_options,
        "MODS_LOOPBACK": env.get("MODS_LOOPBACK", ""),
        "LOOPBACK_OPTS": lb_opts,
        "LOOPBACK": "1" if args.loopback else "0",
        "LOOPBACK_DEV": lb_dev,
        "GUEST_ADDR": GUEST_ADDR,
        "GUEST_GW": GUEST_GW,
    }
    img.data("/vm/config", "".join(f"{k}={shlex.quote(v)}\n" for k, v in config.items()).encode())

    # The payload, with the shared libraries of every ELF file in it.
    if args.payload:
        top = os.path.abspath(args.payload)
        if not os.path.isdir(top):
            raise BootError(f"--payload {args.payload}: not a directory")
        img.dir("/payload")
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            gdir = "/payload" if rel == "." else "/payload/" + rel
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if os.path.islink(p):
                    img.symlink(f"{gdir}/{d}", os.readlink(p))
                else:
                    img.dir(f"{gdir}/{d}")
            for f in filenames:
                p = os.path.join(dirpath, f)
                if os.path.islink(p):
                    img.symlink(f"{gdir}/{f}", os.readlink(p))
                elif os.path.isfile(p):
                    img.file(f"{gdir}/{f}", p)
                    libs.add(p, f"payload file {os.path.relpath(p, top)}")
    img.write_cpio(out_path)
    return lb_dev


# ------------------------------------------------------------------------- qemu ----
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kvm_usable(arch) -> bool:
    if arch != HOST_ARCH or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    return any(os.path.isdir(f"/sys/module/{m}") for m in ARCHES[arch]["kvm_modules"])


try:  # resolved before any fork: the child must not dlopen/dlsym (threads exist)
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _child_setup(parent_pid):
    def fn():
        # Between fork and exec, in qemu: SIGKILL it when vm.py dies, even by SIGKILL.
        if _prctl is not None:
            _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:  # vm.py died before prctl took effect
            os._exit(1)
    return fn


def acquire_slot(max_parallel: int):
    """Hold one of max_parallel lock files for the VM's lifetime: cargo runs tests in
    parallel, but two TCG guests on a 2-core machine only slow each other down."""
    os.makedirs(CACHE, exist_ok=True)
    fds = []
    for i in range(max_parallel):
        fd = os.open(os.path.join(CACHE, f".vm-slot-{i}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fds.append(fd)
    t0, told = time.monotonic(), False
    while True:
        for fd in fds:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            for other in fds:
                if other != fd:
                    os.close(other)
            if told:
                diag(f"got a VM slot after {time.monotonic() - t0:.1f} s")
            return fd  # released when the process exits
        if not told:
            diag(f"{max_parallel} VM(s) already running (FRCSTREAM_VM_MAX_PARALLEL): waiting")
            told = True
        time.sleep(0.1)


def sweep_stale_tmp():
    """Remove work dirs of harnesses that died by SIGKILL (named frcstream-vm-<pid>-*)."""
    base = tempfile.gettempdir()
    for name in os.listdir(base):
        m = re.match(r"^frcstream-vm-(\d+)-", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


class VM:
    def __init__(self, args, env):
        self.args, self.env = args, env
        sweep_stale_tmp()
        self.tmp = tempfile.mkdtemp(prefix=f"frcstream-vm-{os.getpid()}-")
        self.proc: subprocess.Popen | None = None
        self.conn: socket.socket | None = None
        self.buf = b""
        self.ports: dict[int, int] = {}
        self.console = args.console or os.path.join(self.tmp, "console.log")

    # -- lifecycle
    def boot(self):
        t0 = time.monotonic()
        initrd = os.path.join(self.tmp, "initramfs.cpio")
        self.lb_dev = build_initramfs(self.args, self.env, initrd)
        t_img = time.monotonic() - t0
        diag(f"initramfs {os.path.getsize(initrd) / 1e6:.1f} MB built in {t_img:.2f} s")
        for attempt in range(3):
            try:
                self._start_qemu(initrd)
                self._wait_ready()
                break
            except _PortClash:
                diag("host port taken meanwhile; retrying with new ports")
                self.kill()
        else:
            raise BootError("could not bind host ports for forwarding")
        diag(f"READY after {time.monotonic() - t0:.2f} s (initramfs {t_img:.2f} s, boot {time.monotonic() - self.t_qemu:.2f} s)")

    def _start_qemu(self, initrd):
        a = ARCHES[self.args.arch]
        sock_path = os.path.join(self.tmp, "ctl.sock")
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(sock_path)
        lsock.listen(1)
        self.ports = {g: free_port() for g in self.args.forward}
        fwd = "".join(f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for g, h in self.ports.items())
        # Guest -> host: each connection to 10.0.2.100:<port> runs a small bridge to the
        # host's 127.0.0.1:<hostport> (a "cmd:" forward works for every connection; a
        # "tcp:" one only for the first). Allowed with restrict=on.
        bridge = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guestfwd.py")
        for spec in self.args.host_forward:
            guest_port, host_port = spec.split("=", 1)
            fwd += f",guestfwd=tcp:{HOST_FORWARD_IP}:{int(guest_port)}-cmd:{sys.executable} {bridge} {int(host_port)}"
        accel = self.args.accel
        if accel == "auto":
            accel = "kvm" if kvm_usable(self.args.arch) else "tcg"
        if accel == "kvm":
            accel_args = ["-accel", "kvm", "-cpu", "host"]
        else:
            accel_args = ["-accel", "tcg,thread=multi", "-cpu", a["tcg_cpu"]]
        kernel = os.path.join(self.env["KDIR"], self.env["KERNEL_FILE"])
        append = f"console={a['console']} quiet loglevel=4 panic=-1 rdinit=/init " + self.args.append
        cmd = [self.env["QEMU_BIN"], "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               *a["machine"], *accel_args, "-smp", str(self.args.smp), "-m", str(self.args.mem),
               *(["-bios", self.env["FIRMWARE"]] if self.env.get("FIRMWARE") else []), *a["boot_extra"],
               "-kernel", kernel, "-initrd", initrd, "-append", append,
               "-chardev", f"file,id=con,path={self.console}", "-serial", "chardev:con",
               "-device", "virtio-serial-pci",
               "-chardev", f"socket,id=ctl,path={sock_path}",
               "-device", "virtserialport,chardev=ctl,name=frcstream.ctl",
               "-netdev", f"user,id=n0,restrict=on{fwd}",
               # romfile= : a -kernel boot needs no PXE option ROM, and without it qemu does
               # not depend on the ipxe-qemu package (qemu-system-arm does not bring it).
               "-device", "virtio-net-pci,netdev=n0,romfile="]
        diag("qemu: " + " ".join(shlex.quote(c) for c in cmd))
        self.qemu_log = os.path.join(self.tmp, "qemu.log")
        self.t_qemu = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.qemu_log, "wb"),
                                     stderr=subprocess.STDOUT, preexec_fn=_child_setup(os.getpid()),
                                     process_group=0)  # Ctrl-C reaches vm.py only; it stops qemu
        lsock.settimeout(0.2)
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    self.conn, _ = lsock.accept()
                    break
                except socket.timeout:
                    self._check_alive()
                    if time.monotonic() > deadline:
                        raise BootError("qemu did not connect to the control socket")
        finally:
            lsock.close()

    def _check_alive(self):
        if self.proc and self.proc.poll() is not None:
            log = open(self.qemu_log, errors="replace").read().strip()
            if "host forwarding" in log:
                raise _PortClash()
            raise BootError(f"qemu exited with {self.proc.returncode}: {log[-500:] or '(no output)'}")

    def _wait_ready(self):
        deadline = time.monotonic() + self.args.boot_timeout
        line = self._readline(deadline)
        if line is None:
            raise BootError(f"guest not ready after {self.args.boot_timeout} s")
        if line.startswith(b"FAIL"):
            raise BootError("guest init: " + line.decode(errors="replace")[5:])
        if line != b"READY":
            raise BootError(f"unexpected first line from guest: {line!r}")

    def _recv(self, deadline) -> bool:
        self.conn.settimeout(0.2)
        while True:
            try:
                chunk = self.conn.recv(65536)
            except socket.timeout:
                self._check_alive()
                if deadline is not None and time.monotonic() > deadline:
                    return False
                continue
            if not chunk:
                # qemu closes the channel as it exits: give it a moment, so the error
                # carries qemu's own words rather than a guess.
                if self.proc:
                    try:
                        self.proc.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
                self._check_alive()
                raise BootError("control channel closed (VM died?)")
            self.buf += chunk
            return True

    def _readline(self, deadline=None):
        while b"\n" not in self.buf:
            if not self._recv(deadline):
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def _readn(self, n):
        while len(self.buf) < n:
            self._recv(None)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def request(self, line: str) -> tuple[int, bytes]:
        """Send one request line to the guest agent; returns (status, output)."""
        if "\n" in line:
            raise ValueError("newline in request")
        self.conn.sendall(line.encode() + b"\n")
        hdr = self._readline()
        m = re.match(rb"^R (-?\d+) (\d+)$", hdr or b"")
        if not m:
            raise BootError(f"bad reply from guest agent: {hdr!r}")
        return int(m.group(1)), self._readn(int(m.group(2)))

    def poweroff(self, timeout=5.0):
        if self.proc and self.proc.poll() is None and self.conn:
            try:
                self.request("Q")
                self.proc.wait(timeout)
            except Exception:
                pass
        self.kill()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.conn:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None
        self.buf = b""

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def console_tail(self, n=40):
        try:
            lines = open(self.console, errors="replace").read().splitlines()
        except OSError:
            return "(no console output)"
        return "\n".join(lines[-n:])


class _PortClash(Exception):
    pass


# --------------------------------------------------------------------- commands ----
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def emit_output(data: bytes):
    if not data:
        return
    text = data.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    for line in text.split("\n"):
        say("| " + line)


def handle(vm: VM, line: str) -> bool:
    """Run one command; returns False when the harness should exit."""
    cmd, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    if not cmd:
        return True
    if cmd == "quit":
        say("OK bye")
        return False
    if cmd == "exec":
        if not rest:
            say("ERR usage: exec <shell command>")
            return True
        st, out = vm.request("X " + rest)
        emit_output(out)
        say(f"EXIT {st}")
    elif cmd == "spawn":
        name, _, sh = rest.partition(" ")
        if not NAME_RE.match(name) or not sh.strip():
            say("ERR usage: spawn <name [A-Za-z0-9_.-]> <shell command>")
            return True
        st, out = vm.request(f"S {name} {sh.strip()}")
        pid = out.decode(errors="replace").strip()
        say(f"OK {pid}" if st == 0 and pid.isdigit() else f"ERR spawn failed: {pid}")
    elif cmd in ("log", "status", "kill"):
        parts = rest.split()
        if not parts or not NAME_RE.match(parts[0]) or len(parts) > (2 if cmd == "kill" else 1):
            say(f"ERR usage: {cmd} <name>" + (" [SIGNAL]" if cmd == "kill" else ""))
            return True
        name, f = parts[0], f"/tmp/spawn/{parts[0]}"
        if cmd == "log":
            st, out = vm.request(f"X [ -f {f}.pid ] && cat {f}.log")
            if st != 0:
                say(f"ERR no spawned process {name}")
            else:
                emit_output(out)
                say("OK")
        elif cmd == "status":
            st, out = vm.request(
                f"X if [ -f {f}.rc ]; then echo EXITED $(cat {f}.rc); "
                f"elif [ -f {f}.pid ]; then echo RUNNING $(cat {f}.pid); else exit 1; fi")
            say(f"OK {out.decode().strip()}" if st == 0 else f"ERR no spawned process {name}")
        else:
            sig = parts[1] if len(parts) > 1 else "TERM"
            if not re.match(r"^[A-Z0-9]+$", sig):
                say("ERR bad signal")
                return True
            st, out = vm.request(f"X [ -f {f}.pid ] || exit 99; [ -f {f}.rc ] && exit 98; "
                                 f"kill -{sig} -$(cat {f}.pid)")
            if st == 0:
                say("OK")
            else:
                why = {99: f"no spawned process {name}", 98: f"{name} already exited"}.get(st)
                say(f"ERR {why or out.decode(errors='replace').strip() or 'kill failed'}")
    elif cmd == "waitport":
        parts = rest.split()
        if not parts or not parts[0].isdigit() or (len(parts) > 1 and not re.match(r"^\d+(\.\d+)?$", parts[1])):
            say("ERR usage: waitport <guestport> [seconds]")
            return True
        hexport = "%04X" % int(parts[0])
        tenths = int(float(parts[1] if len(parts) > 1 else 30) * 10)
        st, _ = vm.request(
            f"X n=0; until cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | "
            f"grep -q '^ *[0-9]*: [0-9A-F]*:{hexport} [0-9A-F]*:0000 0A'; do "
            f"n=$((n+1)); [ $n -gt {tenths} ] && exit 1; usleep 100000; done")
        say("OK" if st == 0 else "ERR timeout")
    elif cmd == "ports":
        say("OK " + " ".join(f"{g}={h}" for g, h in vm.ports.items()))
    else:
        say(f"ERR unknown command {cmd!r} (exec, spawn, log, status, kill, waitport, ports, quit)")
    return True


# ------------------------------------------------------------------------- main ----
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--payload", help="folder copied to /payload in the guest (ELF files get their libs)")
    p.add_argument("--forward", default="", help="guest TCP ports to forward, comma-separated")
    p.add_argument("--host-forward", action="append", default=[], metavar="GUESTPORT=HOSTPORT",
                   help="let the guest reach the host's 127.0.0.1:HOSTPORT at 10.0.2.100:GUESTPORT")
    p.add_argument("--arch", default="x86_64", choices=sorted(ARCHES))
    p.add_argument("--mem", type=int, default=512, help="guest RAM in MiB")
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--vivid-options", default=DEFAULT_VIVID)
    p.add_argument("--loopback", action="store_true", help="also load v4l2loopback (MJPEG device)")
    p.add_argument("--loopback-options", default=DEFAULT_LOOPBACK)
    p.add_argument("--accel", default="auto", choices=["auto", "tcg", "kvm"])
    p.add_argument("--append", default="", help="extra kernel command line")
    p.add_argument("--console", help="write the guest console (ttyS0) to this file")
    p.add_argument("--boot-timeout", type=float, default=120)
    p.add_argument("--eof-grace", type=float, default=10,
                   help="after stdin closes, seconds a running command may still take")
    p.add_argument("--setup", default="auto", choices=["auto", "always", "never"],
                   help="run vm/setup.sh: if the cache is missing (auto), always, or never")
    p.add_argument("--max-parallel", type=int, default=int(os.environ.get("FRCSTREAM_VM_MAX_PARALLEL", "1")),
                   help="VMs allowed at once on this machine; others wait (0: no limit)")
    p.add_argument("--lib-root", action="append", default=[],
                   help="extra sysroot to search for payload libraries (repeatable)")
    args = p.parse_args(argv)
    try:
        args.forward = [int(x) for x in args.forward.split(",") if x.strip()]
    except ValueError:
        p.error("--forward takes comma-separated port numbers")
    return args


def main(argv=None):
    args = parse_args(argv)
    vm = None
    lines: queue.Queue = queue.Queue()
    eof = threading.Event()
    done = threading.Event()

    def reader():
        for line in sys.stdin:
            lines.put(line.rstrip("\n"))
        eof.set()
        lines.put(None)
        # Parent gone or finished: let the queued commands run, but never linger.
        if not done.wait(args.eof_grace):
            diag(f"stdin closed and still busy after {args.eof_grace:g} s: killing the VM")
            if vm:
                vm.cleanup()
            os._exit(1)

    def on_signal(signum, _frame):
        diag(f"signal {signum}: stopping the VM")
        if vm:
            vm.cleanup()
        os._exit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    threading.Thread(target=reader, daemon=True).start()
    try:
        try:
            if not args.payload:
                raise BootError("--payload DIR is required")
            env = ensure_setup(args.arch, args.setup)
        except Unavailable as e:
            say(f"UNAVAILABLE {e}")
            return 0
        if args.max_parallel > 0:
            acquire_slot(args.max_parallel)
        vm = VM(args, env)
        try:
            vm.boot()
        except Unavailable as e:
            say(f"UNAVAILABLE {e}")
            return 0
        except BootError as e:
            diag("console tail:\n" + vm.console_tail())
            say(f"ERROR {e}")
            return 1
        say(("READY " + " ".join(f"{g}={h}" for g, h in vm.ports.items())).rstrip())
        while True:
            line = lines.get()
            if line is None:
                diag("stdin closed: powering off")
                break
            try:
                if not handle(vm, line):
                    break
            except BootError as e:
                diag("console tail:\n" + vm.console_tail())
                say(f"ERR {e}")
                return 1
        vm.poweroff()
        return 0
    except BrokenPipeError:
        return 1
    except BootError as e:
        say(f"ERROR {e}")
        return 1
    finally:
        done.set()
        if vm:
            vm.cleanup()


if __name__ == "__main__":
    sys.exit(main())
