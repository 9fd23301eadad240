//! Finding cameras: every V4L2 capture node with its stable names (`/dev/v4l/by-id`,
//! `/dev/v4l/by-path`), formats, sizes, rates and controls, for `frcstream --list-cameras`
//! and for the embedded default (the first camera found, in by-id order).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::device::{Device, SizeRange};
use crate::controls::{Control, normalize_name};

/// A capture device and the names it can be reached by.
#[derive(Debug, Clone)]
pub struct FoundCamera {
    /// `/dev/videoN`.
    pub node: PathBuf,
    pub by_id: Vec<PathBuf>,
    pub by_path: Vec<PathBuf>,
    pub card: String,
    pub bus_info: String,
}

impl FoundCamera {
    /// The most stable name: by-id, else by-path, else the node.
    pub fn stable_path(&self) -> &Path {
        self.by_id
            .first()
            .or(self.by_path.first())
            .unwrap_or(&self.node)
    }
}

/// Symlinks in `dir` resolving to each target: (target, link).
fn links_in(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut links: Vec<(PathBuf, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let link = e.path();
            std::fs::canonicalize(&link)
                .ok()
                .map(|target| (target, link))
        })
        .collect();
    links.sort_by(|a, b| a.1.cmp(&b.1));
    links
}

/// Every video capture device (metadata and output nodes are left out), in by-id order
/// first, then the others by node number.
pub fn find_cameras() -> Vec<FoundCamera> {
    find_cameras_in(Path::new("/dev"))
}

fn find_cameras_in(dev: &Path) -> Vec<FoundCamera> {
    let by_id = links_in(&dev.join("v4l/by-id"));
    let by_path = links_in(&dev.join("v4l/by-path"));
    let mut nodes: Vec<PathBuf> = std::fs::read_dir(dev)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("video"))
                })
                .collect()
        })
        .unwrap_or_default();
    let number = |p: &PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.trim_start_matches("video").parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    };
    nodes.sort_by_key(number);
    let mut cameras: Vec<FoundCamera> = nodes
        .into_iter()
        .filter_map(|node| {
            let device = Device::open(&node).ok()?;
            let target = std::fs::canonicalize(&node).unwrap_or_else(|_| node.clone());
            let pick = |links: &[(PathBuf, PathBuf)]| {
                links
                    .iter()
                    .filter(|(t, _)| *t == target)
                    .map(|(_, l)| l.clone())
                    .collect()
            };
            Some(FoundCamera {
                by_id: pick(&by_id),
                by_path: pick(&by_path),
                node,
                card: device.card.clone(),
                bus_info: device.bus_info.clone(),
            })
        })
        .collect();
    // Cameras with a by-id name first, in that name's order: the embedded default's choice.
    cameras.sort_by(|a, b| match (a.by_id.first(), b.by_id.first()) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    cameras
}

/// A report of every camera, written as config a team can paste.
pub fn describe_cameras(cameras: &[FoundCamera]) -> String {
    let mut out = String::new();
    if cameras.is_empty() {
        out.push_str("# no V4L2 capture devices found (is the camera plugged in? is the user in the `video` group?)\n");
        return out;
    }
    for (index, camera) in cameras.iter().enumerate() {
        let _ = describe_camera(&mut out, index, camera);
    }
    out
}

fn describe_camera(out: &mut String, index: usize, camera: &FoundCamera) -> std::fmt::Result {
    writeln!(
        out,
        "# {} ({}), {}",
        camera.card,
        camera.bus_info,
        camera.node.display()
    )?;
    for link in camera.by_id.iter().chain(&camera.by_path) {
        writeln!(out, "#   also {}", link.display())?;
    }
    let Ok(device) = Device::open(&camera.node) else {
        writeln!(out, "#   (could not be opened again)")?;
        return Ok(());
    };
    writeln!(out, "#   formats:")?;
    for (fourcc, description) in device.formats() {
        writeln!(out, "#     {fourcc} ({description}):")?;
        for size in device.sizes(fourcc) {
            match size {
                SizeRange::Discrete { width, height } => {
                    let rates: Vec<String> = device
                        .frame_rates(fourcc, width, height)
                        .iter()
                        .map(|r| format!("{}", (r * 100.0).round() / 100.0))
                        .collect();
                    writeln!(out, "#       {width}x{height} @ {} fps", rates.join(", "))?;
                }
                SizeRange::Stepwise {
                    min_width,
                    max_width,
                    min_height,
                    max_height,
                    ..
                } => {
                    writeln!(
                        out,
                        "#       any size {min_width}x{min_height} to {max_width}x{max_height}"
                    )?;
                }
            }
        }
    }
    let name = format!("cam{index}");
    writeln!(out, "[[camera]]")?;
    writeln!(out, "name = \"{name}\"")?;
    writeln!(out, "source = \"v4l2:{}\"", camera.stable_path().display())?;
    writeln!(
        out,
        "width = 640\nheight = 480\nfps = 30\nformat = \"auto\""
    )?;
    let controls = crate::controls::CameraControls::default();
    if let Ok(fd) = device.fd().try_clone() {
        controls.attach(std::sync::Arc::new(fd), &device.controls());
    }
    let list = controls.list();
    let (buttons, settings): (Vec<&Control>, Vec<&Control>) = list
        .iter()
        .partition(|c| c.kind == super::device::ControlKind::Button);
    if !settings.is_empty() {
        writeln!(out, "[camera.controls]")?;
        writeln!(out, "# every control, commented out at its current value:")?;
        for control in &settings {
            writeln!(out, "# {}", control_line(control))?;
        }
    }
    if !buttons.is_empty() {
        let names: Vec<&str> = buttons.iter().map(|c| c.name.as_str()).collect();
        writeln!(
            out,
            "# buttons (actions, not settings: `name = true` would press one at every connect): {}",
            names.join(", ")
        )?;
    }
    writeln!(out)
}

fn control_line(control: &Control) -> String {
    let value = match control.kind {
        super::device::ControlKind::Boolean => (control.value != 0).to_string(),
        super::device::ControlKind::Menu => control
            .menu
            .iter()
            .find(|(v, _)| *v == control.value)
            .map(|(_, n)| format!("\"{}\"", normalize_name(n)))
            .unwrap_or_else(|| control.value.to_string()),
        _ => control.value.to_string(),
    };
    let mut range = match control.kind {
        super::device::ControlKind::Menu | super::device::ControlKind::IntegerMenu => {
            let entries: Vec<String> = control
                .menu
                .iter()
                .map(|(v, n)| format!("{v}=\"{}\"", normalize_name(n)))
                .collect();
            format!("menu: {}", entries.join(", "))
        }
        super::device::ControlKind::Boolean | super::device::ControlKind::Button => {
            "true/false".into()
        }
        super::device::ControlKind::Integer => {
            format!("{}..{} step {}", control.min, control.max, control.step)
        }
    };
    range.push_str(&format!(", default {}", control.default));
    if control.read_only {
        range.push_str(", read-only");
    }
    format!(
        "{} = {value}    # {range} ({})",
        control.name, control.label
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_without_cameras_lists_none() {
        let empty = std::env::temp_dir().join(format!("frcstream-dev-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("dir");
        assert!(find_cameras_in(&empty).is_empty());
        assert!(describe_cameras(&[]).contains("no V4L2 capture devices"));
        std::fs::remove_dir_all(&empty).ok();
    }
}
