//! `deploy/deploy.sh` for real, over ssh: a throw-away OpenSSH server (Debian's
//! `openssh-server`, its own host key and config, on a free port of 127.0.0.1, started and
//! stopped by the test; the machine's sshd and its config are not touched) and a throw-away
//! client key. The "robot" is this machine under a temporary root
//! (`FRCSTREAM_DEPLOY_ROOT`), and systemctl is a fake that records its calls
//! (`FRCSTREAM_DEPLOY_SYSTEMCTL`).
//!
//! - The first run puts binary, config and unit where they belong, with their modes; it
//!   reloads systemd, enables and restarts the service, and prints the stream URLs.
//! - A second run changes nothing: same files, same mtimes; no reload, no restart.
//! - A config edited on the robot survives a deploy of a new config (which lands next to it
//!   as `.new`), also twice; `--force-config` replaces it and keeps the old one as `.bak`.
//! - A config not edited on the robot is updated by a deploy of a new one.
//! - Team numbers map to 10.TE.AM.11.
//!
//! Where sshd is missing (`apt-get install openssh-server`) or the test is not root, it
//! prints SKIPPED and passes, unless FRCSTREAM_REQUIRE_SSHD=1.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{have_command, repo, run_ok as run};

const SSHD: &str = "/usr/sbin/sshd";

/// The SKIPPED banner, or a failure under `FRCSTREAM_REQUIRE_SSHD=1`.
fn skip(test: &str, reason: &str) {
    support::skip_unless_required(&support::SSHD, test, reason);
}

/// A throw-away sshd on 127.0.0.1 with its own host key, accepting one client key.
struct Sshd {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Sshd {
    fn start(dir: &Path) -> Result<Sshd, String> {
        if !Path::new(SSHD).exists() {
            return Err(format!(
                "{SSHD} is missing (apt-get install openssh-server)"
            ));
        }
        if unsafe { libc::geteuid() } != 0 {
            return Err("a throw-away sshd needs root here".to_owned());
        }
        for tool in ["ssh", "ssh-keygen"] {
            if !have_command(tool) {
                return Err(format!(
                    "{tool} is missing (apt-get install openssh-client)"
                ));
            }
        }
        for key in ["hostkey", "client"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key)));
        }
        std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/hostkey\n\
                 PidFile {dir}/sshd.pid\nAuthorizedKeysFile {dir}/authorized_keys\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AllowUsers root\nStrictModes no\nUsePAM no\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(dir.join("hostkey.pub")).unwrap();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}"),
        )
        .unwrap();
        // sshd's privilege separation folder; Debian's service makes it at boot.
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
        let mut sshd = Sshd {
            dir: dir.to_owned(),
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!(
                    "sshd exited ({status}):\n{}",
                    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "sshd does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scratch folder: sshd's files, the robot's root, the fake systemctl.
struct Robot {
    dir: PathBuf,
    sshd: Sshd,
}

impl Robot {
    fn root(&self) -> PathBuf {
        self.dir.join("robot")
    }

    fn file(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    fn systemctl_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("systemctl.log")).unwrap_or_default()
    }

    fn clear_systemctl_log(&self) {
        let _ = std::fs::remove_file(self.dir.join("systemctl.log"));
    }

    /// Runs deploy.sh against the throw-away sshd; returns stdout and stderr together.
    fn deploy(&self, config: &Path, extra: &[&str]) -> String {
        let output = run(Command::new(repo().join("deploy/deploy.sh"))
            .args(["--host", "127.0.0.1", "--user", "root"])
            .args(["--ssh-port", &self.sshd.port.to_string()])
            .arg("--identity")
            .arg(self.sshd.dir.join("client"))
            .args(["-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.sshd.dir.join("known_hosts").display()
            ))
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_frcstream"))
            .arg("--config")
            .arg(config)
            .args(extra)
            .arg("1234")
            .env("FRCSTREAM_DEPLOY_ROOT", self.root())
            .env(
                "FRCSTREAM_DEPLOY_SYSTEMCTL",
                self.dir.join("fake-systemctl"),
            )
            .stdin(Stdio::null()));
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    }

    /// Every file under the robot's root: (mode, mtime in ns, content).
    fn snapshot(&self) -> BTreeMap<PathBuf, (u32, i128, Vec<u8>)> {
        let mut files = BTreeMap::new();
        let mut stack = vec![self.root()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    stack.push(path);
                } else {
                    let mtime =
                        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
                    files.insert(
                        path.strip_prefix(self.root()).unwrap().to_owned(),
                        (meta.mode() & 0o7777, mtime, std::fs::read(&path).unwrap()),
                    );
                }
            }
        }
        files
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn deploy_over_ssh() {
    let dir = std::env::temp_dir().join(format!("frcstream-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sshd = match Sshd::start(&dir) {
        Ok(sshd) => sshd,
        Err(reason) => {
            let _ = std::fs::remove_dir_all(&dir);
            return skip("deploy_over_ssh", &reason);
        }
    };
    // systemctl on the "robot": records its calls and keeps enabled/active state.
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let fake = dir.join("fake-systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> {dir}/systemctl.log\n\
             case \"$1\" in\n\
               is-enabled) [ -e {dir}/state/enabled ] ;;\n\
               is-active) [ -e {dir}/state/active ] ;;\n\
               enable) touch {dir}/state/enabled ;;\n\
               restart|start) touch {dir}/state/active ;;\n\
               status) echo '* frcstream.service - fake status' ;;\n\
             esac\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let robot = Robot { dir, sshd };
    let shipped = repo().join("config/frcstream.toml");

    // First run: everything lands, with its mode.
    let copies_in_tmp = || -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir("/tmp")
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with("frcstream-deploy."))
            .collect();
        names.sort();
        names
    };
    let tmp_before = copies_in_tmp();
    let started = Instant::now();
    let out = robot.deploy(&shipped, &[]);
    eprintln!("first deploy: {:.1} s", started.elapsed().as_secs_f64());
    let binary = robot.file("/usr/local/bin/frcstream");
    let config = robot.file("/etc/frcstream/frcstream.toml");
    let unit = robot.file("/etc/systemd/system/frcstream.service");
    assert_eq!(
        std::fs::read(&binary).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_frcstream")).unwrap(),
        "{out}"
    );
    assert_eq!(mode(&binary), 0o755);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(&shipped).unwrap()
    );
    assert_eq!(mode(&config), 0o644);
    assert_eq!(
        std::fs::read(&unit).unwrap(),
        std::fs::read(repo().join("systemd/frcstream.service")).unwrap()
    );
    assert_eq!(mode(&unit), 0o644);
    let calls = robot.systemctl_log();
    for call in [
        "daemon-reload",
        "enable frcstream.service",
        "restart frcstream.service",
        "status",
    ] {
        assert!(
            calls.lines().any(|l| l.starts_with(call)),
            "no `systemctl {call}`:\n{calls}"
        );
    }
    assert!(out.contains("http://127.0.0.1:1181/cam.mjpg"), "{out}");
    assert!(out.contains("fake status"), "{out}");
    // Nothing left behind in /tmp by the copy (on either side). The ssh connection master
    // deploy.sh closes on exit ends a moment later, on a loaded machine after the script:
    // a folder may take that moment to go, but it must go.
    let cleaned = support::wait_for(Duration::from_secs(5), || {
        (copies_in_tmp() == tmp_before).then_some(())
    });
    assert!(
        cleaned.is_some(),
        "left in /tmp: {:?} (before: {tmp_before:?})",
        copies_in_tmp()
    );

    // Second run: nothing changes, nothing restarts.
    let before = robot.snapshot();
    robot.clear_systemctl_log();
    let out = robot.deploy(&shipped, &[]);
    assert_eq!(
        robot.snapshot(),
        before,
        "a second run changed files:\n{out}"
    );
    let calls = robot.systemctl_log();
    for call in ["daemon-reload", "enable", "restart"] {
        assert!(
            !calls.lines().any(|l| l.starts_with(call)),
            "second run: `systemctl {call}`:\n{calls}"
        );
    }
    assert!(out.contains("nothing changed"), "{out}");

    // A config edited on the robot survives the deploy of a new config, twice.
    let edited = std::fs::read_to_string(&config).unwrap() + "\n# edited on the robot\n";
    std::fs::write(&config, &edited).unwrap();
    let newer = robot.dir.join("newer.toml");
    std::fs::write(
        &newer,
        std::fs::read_to_string(&shipped)
            .unwrap()
            .replace("fps = 30", "fps = 20"),
    )
    .unwrap();
    assert_ne!(
        std::fs::read(&newer).unwrap(),
        std::fs::read(&shipped).unwrap()
    );
    let out = robot.deploy(&newer, &[]);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited, "{out}");
    let new_copy = robot.file("/etc/frcstream/frcstream.toml.new");
    assert_eq!(
        std::fs::read(&new_copy).unwrap(),
        std::fs::read(&newer).unwrap()
    );
    assert!(
        out.contains("KEPT") && out.contains("frcstream.toml.new"),
        "{out}"
    );
    let before = robot.snapshot();
    robot.clear_systemctl_log();
    let out = robot.deploy(&newer, &[]);
    assert_eq!(
        robot.snapshot(),
        before,
        "a repeated run changed files:\n{out}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert!(!robot.systemctl_log().contains("restart"));

    // --force-config replaces it and keeps the edited one as .bak.
    let out = robot.deploy(&newer, &["--force-config"]);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(&newer).unwrap(),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(robot.file("/etc/frcstream/frcstream.toml.bak")).unwrap(),
        edited
    );
    assert!(!new_copy.exists());
    assert!(robot.systemctl_log().contains("restart frcstream.service"));

    // A config not edited since the last deploy is simply updated.
    robot.clear_systemctl_log();
    let out = robot.deploy(&shipped, &[]);
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(&shipped).unwrap(),
        "{out}"
    );
    assert!(
        out.contains("updated /etc/frcstream/frcstream.toml"),
        "{out}"
    );
    assert!(robot.systemctl_log().contains("restart frcstream.service"));
    assert!(!robot.systemctl_log().contains("daemon-reload"));

    let _ = std::fs::remove_dir_all(&robot.dir);
}

#[test]
fn team_numbers() {
    for (team, address) in [
        ("1234", "10.12.34.11"),
        ("254", "10.2.54.11"),
        ("5", "10.0.5.11"),
        ("0971", "10.9.71.11"),
        ("10234", "10.102.34.11"),
        ("photonvision.local", "photonvision.local"),
    ] {
        let output = run(Command::new(repo().join("deploy/deploy.sh")).args(["--dry-run", team]));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.trim_end().ends_with(&format!("to {address}")),
            "team {team}: {text}"
        );
    }
}
