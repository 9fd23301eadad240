//! The "robot in a box" (`vm/robot-setup.sh`, see `vm/README.md`): a Debian bookworm disk
//! image booted under qemu with systemd as PID 1, sshd, udev and vivid, reached over ssh
//! as user `pi` on a forwarded port. Each boot writes to a qcow2 overlay in the test's
//! scratch folder; the cached image is never changed. The overlay lives as long as the
//! [`RobotVm`], so a reboot of the guest (qemu restarts it) keeps what was written.
//!
//! Where it cannot run, [`RobotVm::boot`] prints a loud SKIPPED banner and returns `None`;
//! with `FRCSTREAM_REQUIRE_ROBOT_VM=1` (CI) it fails instead.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, repo};

/// The guest's address for the host's forwarded ports (`guestfwd`, as `vm/vm.py`).
pub const HOST_FROM_GUEST: &str = "10.0.2.100";

/// The SKIPPED banner, or a failure under `FRCSTREAM_REQUIRE_ROBOT_VM=1`.
pub fn skip(test: &str, reason: &str) {
    super::skip_unless_required(&super::ROBOT_VM, test, reason);
}

fn cache() -> PathBuf {
    match std::env::var_os("FRCSTREAM_VM_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/frcstream-vm")
        }
    }
}

pub struct RobotVm {
    pub manifest: BTreeMap<String, String>,
    dir: PathBuf,
    qemu: Child,
    pub ssh_port: u16,
    /// From starting qemu to ssh's first answer.
    pub boot_time: Duration,
    forwards: Vec<(u16, u16)>,
    /// Held while the VM runs: one VM at a time with the other rig (`vm/vm.py`'s slots).
    _slot: File,
}

impl RobotVm {
    /// Builds or reuses the image (`vm/robot-setup.sh`), then boots it with `forward`
    /// guest ports reachable on 127.0.0.1 and `host_forward` (guest port, host port) pairs
    /// reachable from the guest at 10.0.2.100. Returns once ssh answers.
    pub fn boot(
        test: &str,
        dir: &Path,
        forward: &[u16],
        host_forward: &[(u16, u16)],
    ) -> Option<RobotVm> {
        if unsafe { libc::geteuid() } != 0 {
            skip(test, "needs root (mmdebstrap, chroot)");
            return None;
        }
        let log = dir.join("robot-setup.log");
        let started = Instant::now();
        let status = Command::new("bash")
            .arg(repo().join("vm/robot-setup.sh"))
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(dir.join("robot-setup.err")).unwrap())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            let err = std::fs::read_to_string(dir.join("robot-setup.err")).unwrap_or_default();
            let tail: Vec<&str> = err.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            skip(
                test,
                &format!("vm/robot-setup.sh failed:\n{}", tail.join("\n")),
            );
            return None;
        }
        eprintln!("robot VM: image ready in {:?}", started.elapsed());
        let manifest_text =
            std::fs::read_to_string(cache().join("robot-x86_64.env")).unwrap_or_default();
        let manifest: BTreeMap<String, String> = manifest_text
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once('=')?;
                Some((key.to_owned(), value.trim_matches('\'').to_owned()))
            })
            .collect();
        for key in [
            "KERNEL",
            "INITRD",
            "IMAGE",
            "SSH_KEY",
            "KNOWN_HOSTS",
            "FIRMWARE",
        ] {
            let path = manifest.get(key).map(PathBuf::from).unwrap_or_default();
            if !path.exists() {
                skip(test, &format!("{key} ({}) is missing", path.display()));
                return None;
            }
        }
        for tool in [
            manifest["QEMU_BIN"].as_str(),
            "qemu-img",
            "ssh",
            "objcopy",
            "python3",
        ] {
            if !super::have_command(tool) {
                skip(test, &format!("{tool} is not installed"));
                return None;
            }
        }
        let overlay = dir.join("robot.qcow2");
        let _ = std::fs::remove_file(&overlay);
        let made = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&manifest["IMAGE"])
            .arg(&overlay)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "qemu-img create {}", overlay.display());

        let slot = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(cache().join(".vm-slot-0.lock"))
            .expect("the VM slot lock");
        unsafe { libc::flock(slot.as_raw_fd(), libc::LOCK_EX) };

        let ssh_port = free_port();
        let forwards: Vec<(u16, u16)> = forward.iter().map(|&g| (g, free_port())).collect();
        let mut net = format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22");
        for (guest, host) in &forwards {
            net += &format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}");
        }
        let bridge = repo().join("vm/guestfwd.py");
        for (guest, host) in host_forward {
            net += &format!(
                ",guestfwd=tcp:{HOST_FROM_GUEST}:{guest}-cmd:python3 {} {host}",
                bridge.display()
            );
        }
        let console = dir.join("console.log");
        let mut command = Command::new(&manifest["QEMU_BIN"]);
        command
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2"])
            .args(["-m", "768", "-bios", &manifest["FIRMWARE"]])
            .args([
                "-kernel",
                &manifest["KERNEL"],
                "-initrd",
                &manifest["INITRD"],
            ])
            .args([
                "-append",
                "console=ttyS0 quiet loglevel=4 panic=-1 net.ifnames=0 rdinit=/init",
            ])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
                overlay.display()
            ))
            .args([
                "-netdev",
                &net,
                "-device",
                "virtio-net-pci,netdev=n0,romfile=",
            ])
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("qemu.log")).unwrap())
            .stderr(Stdio::from(File::create(dir.join("qemu.err")).unwrap()));
        unsafe {
            command.pre_exec(|| {
                // qemu dies with the test, even by SIGKILL.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let qemu = command.spawn().expect("start qemu");
        let mut vm = RobotVm {
            manifest,
            dir: dir.to_owned(),
            qemu,
            ssh_port,
            boot_time: Duration::ZERO,
            forwards,
            _slot: slot,
        };
        let booted = Instant::now();
        if !vm.wait_ssh(Duration::from_secs(180)) {
            vm.fail("ssh did not answer within 180 s");
        }
        vm.boot_time = booted.elapsed();
        eprintln!("robot VM: booted, ssh answers after {:?}", vm.boot_time);
        Some(vm)
    }

    /// Panics with the tail of the guest's console.
    pub fn fail(&mut self, message: &str) -> ! {
        let console = std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let err = std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default();
        panic!(
            "robot VM: {message}\n--- qemu ---\n{err}\n--- console (tail) ---\n{}",
            tail.join("\n")
        );
    }

    /// The host address of a forwarded guest port.
    pub fn addr(&self, guest_port: u16) -> SocketAddr {
        let (_, host) = self
            .forwards
            .iter()
            .find(|(g, _)| *g == guest_port)
            .unwrap_or_else(|| panic!("guest port {guest_port} is not forwarded"));
        SocketAddr::from(([127, 0, 0, 1], *host))
    }

    /// ssh options that reach the guest as `pi` (the same ones deploy.sh gets).
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.manifest["KNOWN_HOSTS"]),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    pub fn key(&self) -> &str {
        &self.manifest["SSH_KEY"]
    }

    /// ssh to the guest; with `shared`, through one master connection (much faster
    /// under TCG than a new handshake per command).
    fn ssh_command_with(&self, shared: bool, timeout: u32) -> Command {
        let mut command = Command::new("ssh");
        command
            .args(self.ssh_options())
            .args(["-i", self.key(), "-p", &self.ssh_port.to_string()])
            .arg("-o")
            .arg(format!("ConnectTimeout={timeout}"))
            .args(["-o", "ServerAliveInterval=5"]);
        if shared {
            command
                .arg("-o")
                .arg(format!(
                    "ControlPath={}",
                    self.dir.join("ssh.sock").display()
                ))
                .args(["-o", "ControlMaster=no"]);
        }
        command.arg("pi@127.0.0.1").stdin(Stdio::null());
        command
    }

    fn ssh_command(&self) -> Command {
        self.ssh_command_with(true, 10)
    }

    /// Runs a shell command in the guest as pi: (exit status, stdout + stderr).
    pub fn exec(&self, shell: &str) -> (i32, String) {
        let output = self.ssh_command().arg(shell).output().expect("run ssh");
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text += &String::from_utf8_lossy(&output.stderr);
        (output.status.code().unwrap_or(-1), text)
    }

    /// Runs a shell command that must succeed; its output.
    pub fn run(&mut self, shell: &str) -> String {
        let (status, output) = self.exec(shell);
        if status != 0 {
            self.fail(&format!("`{shell}` exited {status}:\n{output}"));
        }
        output
    }

    /// Waits until ssh runs a command.
    pub fn wait_ssh(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.qemu.try_wait() {
                self.fail(&format!("qemu exited: {status}"));
            }
            // A fresh connection each time (a master of the last boot would hang).
            let output = self.ssh_command_with(false, 3).arg("true").output();
            match output {
                Ok(output) if output.status.success() => {
                    self.start_master();
                    return true;
                }
                Ok(output) => last = String::from_utf8_lossy(&output.stderr).into_owned(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("robot VM: ssh's last word: {last}");
        false
    }

    /// One master connection in the background for the commands to come (started
    /// with its output closed: a master that inherits a captured pipe holds it open).
    fn start_master(&self) {
        let _ = Command::new("ssh")
            .args(self.ssh_options())
            .args(["-i", self.key(), "-p", &self.ssh_port.to_string()])
            .args(["-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5"])
            .arg("-o")
            .arg(format!(
                "ControlPath={}",
                self.dir.join("ssh.sock").display()
            ))
            .args(["-M", "-N", "-f", "-o", "ControlPersist=yes", "pi@127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Ends the ssh master connection (before a reboot).
    pub fn drop_master(&self) {
        let _ = self
            .ssh_command()
            .args(["-O", "exit"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `systemctl show` properties of a unit.
    pub fn show(&mut self, unit: &str, properties: &str) -> BTreeMap<String, String> {
        self.run(&format!("sudo systemctl show -p {properties} {unit}"))
            .lines()
            .filter_map(|line| {
                let (key, value) = line.split_once('=')?;
                Some((key.to_owned(), value.to_owned()))
            })
            .collect()
    }
}

impl Drop for RobotVm {
    fn drop(&mut self) {
        self.drop_master();
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let _ = std::fs::remove_file(self.dir.join("robot.qcow2"));
    }
}
