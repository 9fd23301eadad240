//! The `frcstream` command: reads the configuration, starts the streamer, logs the URLs to
//! open, and stops cleanly on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use frcstream::config::StateFileSetting;
use frcstream::config::{self, Config};
use frcstream::saved_settings;
use frcstream::{Streamer, streamer::StartError};

/// Exit status for a configuration the program cannot use.
const EXIT_CONFIG: u8 = 2;
/// Exit status for a failure to start (port taken, source missing).
const EXIT_START: u8 = 1;

const USAGE: &str = "\
frcstream — camera streamer for FRC robot coprocessors

Usage: frcstream [--config <file>] [--state-file <file>]
       frcstream [--config <file>] [--state-file <file>] --forget-settings
       frcstream --list-cameras

Options:
  -c, --config <file>  configuration file (default: /etc/frcstream/frcstream.toml if it
                       exists, else the first USB camera found, named \"cam\", or a
                       test pattern when there is none)
  --state-file <file>  where settings changed at run time are saved (\"\": nowhere);
                       default: [server] state_file, else $STATE_DIRECTORY/settings.json
                       (systemd), else $XDG_STATE_HOME or ~/.local/state/frcstream/
  --forget-settings    delete the saved settings and exit (stop the service first)
  --list-cameras       every camera with its stable names, formats, sizes, frame rates
                       and controls, written as config to paste
  -h, --help           this text
  -V, --version        the version

Logging: RUST_LOG=debug (or info, warn, error); default info.";

enum Command {
    Run {
        config: Option<PathBuf>,
        state_file: Option<PathBuf>,
        forget: bool,
    },
    ListCameras,
    Help,
    Version,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut config = None;
    let mut state_file = None;
    let mut forget = false;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--list-cameras" => return Ok(Command::ListCameras),
            "--forget-settings" => forget = true,
            "-c" | "--config" => match args.next() {
                Some(path) => config = Some(PathBuf::from(path)),
                None => return Err(format!("{arg} needs a file name")),
            },
            "--state-file" => match args.next() {
                Some(path) => state_file = Some(PathBuf::from(path)),
                None => return Err(format!("{arg} needs a file name (\"\" for none)")),
            },
            other => {
                if let Some(path) = other.strip_prefix("--config=") {
                    config = Some(PathBuf::from(path));
                } else if let Some(path) = other.strip_prefix("--state-file=") {
                    state_file = Some(PathBuf::from(path));
                } else {
                    return Err(format!("unknown argument \"{other}\" (try --help)"));
                }
            }
        }
    }
    Ok(Command::Run {
        config,
        state_file,
        forget,
    })
}

fn init_logging() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // Under systemd, journald stamps every line itself and takes its priority from a
    // syslog-style `<N>` prefix (`journalctl -p warning` then works).
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.format(|out, record| {
            use std::io::Write;
            let priority = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(out, "<{priority}>{}", record.args())
        });
    }
    builder.init();
}

/// The configuration to run with, and a sentence saying where it came from.
fn load_config(explicit: Option<PathBuf>) -> Result<(Config, String), config::ConfigError> {
    if let Some(path) = explicit {
        let config = Config::load(&path)?;
        return Ok((config, format!("config {}", path.display())));
    }
    let default_path = PathBuf::from(config::DEFAULT_CONFIG_PATH);
    if default_path.exists() {
        let config = Config::load(&default_path)?;
        return Ok((config, format!("config {}", default_path.display())));
    }
    let mut config = Config::embedded_default();
    let cameras = frcstream::source::v4l2::discover::find_cameras();
    let choice = match cameras.first() {
        Some(found) => {
            let path = found.stable_path().to_owned();
            config.cameras[0].source = config::SourceSpec::V4l2(path.clone());
            format!(
                "the first camera found, {} ({}), named \"cam\"",
                path.display(),
                found.card
            )
        }
        None => "no camera found, so a 640x480 test pattern named \"cam\"".to_owned(),
    };
    Ok((
        config,
        format!(
            "no config file ({} does not exist): using the built-in default: {choice}",
            config::DEFAULT_CONFIG_PATH
        ),
    ))
}

fn main() -> ExitCode {
    frcstream::memory::configure();
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("frcstream: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (config_path, state_file, forget) = match command {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("frcstream {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::ListCameras => {
            let cameras = frcstream::source::v4l2::discover::find_cameras();
            print!(
                "{}",
                frcstream::source::v4l2::discover::describe_cameras(&cameras)
            );
            return ExitCode::SUCCESS;
        }
        Command::Run {
            config,
            state_file,
            forget,
        } => (config, state_file, forget),
    };
    init_logging();
    // Before anything slow: SIGTERM is honoured at any point of start-up.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    if let Err(e) = ctrlc::set_handler(move || {
        INTERRUPTED.store(true, Ordering::SeqCst);
        let _ = stop_tx.try_send(());
    }) {
        log::error!("cannot install the signal handler: {e}");
        return ExitCode::from(EXIT_START);
    }
    let (mut config, origin) = match load_config(config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("frcstream: error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let state_path = state_file_path(state_file.as_deref(), &config.server.state_file);
    if forget {
        return forget_settings(state_path.as_deref());
    }
    log::info!("{origin}");
    config.server.state_file = match state_path {
        Some(path) => StateFileSetting::Path(path),
        None => StateFileSetting::Off,
    };
    run(&config, &stop_rx)
}

/// The state file this run uses (see `saved_settings::resolve_path`), absolute.
fn state_file_path(command_line: Option<&Path>, setting: &StateFileSetting) -> Option<PathBuf> {
    let path =
        saved_settings::resolve_path(command_line, setting, |name: &str| std::env::var_os(name))?;
    if path.is_absolute() {
        return Some(path);
    }
    match std::env::current_dir() {
        Ok(dir) => Some(dir.join(path)),
        Err(_) => Some(path),
    }
}

/// `--forget-settings`: deletes the state file, says what it did.
fn forget_settings(path: Option<&Path>) -> ExitCode {
    let Some(path) = path else {
        println!("frcstream: no state file in use (state_file = \"\"): nothing to forget");
        return ExitCode::SUCCESS;
    };
    match saved_settings::forget_file(path) {
        Ok(true) => {
            println!("frcstream: saved settings deleted ({})", path.display());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "frcstream: no saved settings ({} does not exist)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("frcstream: cannot delete {}: {e}", path.display());
            ExitCode::from(EXIT_START)
        }
    }
}

/// Set by the Ctrl-C/SIGTERM handler; start-up looks at it between cameras.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn run(config: &Config, stop_rx: &crossbeam_channel::Receiver<()>) -> ExitCode {
    let streamer = match Streamer::start_unless(config, &INTERRUPTED) {
        Ok(streamer) => streamer,
        Err(StartError::Interrupted) => {
            log::info!("stopped during start-up");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            log::error!("{e}");
            let code = match e {
                StartError::Source { .. } => EXIT_CONFIG,
                _ => EXIT_START,
            };
            return ExitCode::from(code);
        }
    };
    for camera in streamer.cameras() {
        log::info!(
            "camera \"{}\": {}, {} at quality {}",
            camera.name,
            camera.source_description(),
            camera.mode(),
            camera.settings.quality()
        );
    }
    log::info!("listening on {}", streamer.local_addr());
    let port = streamer.local_addr().port();
    if !(1180..=1190).contains(&port) {
        log::warn!(
            "port {port} is outside 1180–1190: the FRC field blocks it between robot and driver station"
        );
    }
    for url in streamer.urls() {
        log::info!("open {url}");
    }
    // READY=1 for systemd, and its watchdog pings while the capture threads make progress.
    frcstream::systemd::supervise(&streamer, stop_rx);
    log::info!("stopping");
    streamer.stop();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Command, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert!(matches!(args(&[]), Ok(Command::Run { config: None, .. })));
        assert!(matches!(
            args(&["-c", "x.toml"]),
            Ok(Command::Run {
                config: Some(_),
                ..
            })
        ));
        assert!(matches!(
            args(&["--config=x.toml"]),
            Ok(Command::Run {
                config: Some(_),
                ..
            })
        ));
        assert!(matches!(
            args(&["--state-file", "", "--forget-settings"]),
            Ok(Command::Run { state_file: Some(p), forget: true, .. }) if p.as_os_str().is_empty()
        ));
        assert!(matches!(
            args(&["--state-file=/s.json"]),
            Ok(Command::Run {
                state_file: Some(_),
                forget: false,
                ..
            })
        ));
        assert!(args(&["--state-file"]).is_err());
        assert!(matches!(args(&["--help"]), Ok(Command::Help)));
        assert!(args(&["--config"]).is_err());
        assert!(args(&["--frobnicate"]).is_err());
    }
}
