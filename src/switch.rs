//! A switched stream (cscore's `addSwitchedCamera`): one stream name that shows whichever
//! of its cameras is selected, so a dashboard with room and bandwidth for one driver view
//! gets the view the driver needs now.
//!
//! The selection is a run-time setting with one write path, [`Switch::select`], used by
//! every writer (HTTP, NetworkTables): it checks the name, stores it, announces the change
//! on the switch's [`ChangeFeed`] (as `Camera::change` does for a camera's settings, key
//! [`SELECTED`]) and tells every stream following the switch to move to the new camera's
//! frame slot. Streams move without reconnecting (`http/mjpeg.rs`): only the selected
//! camera's slot has the switch's clients as viewers, so only it is encoded for them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::camera::Camera;
use crate::config::SwitchConfig;
use crate::lock::lock;
use crate::settings::{ChangeFeed, Changed, Writer};

/// The key of a switch's selection on its change feed and under `/frcstream/<switch>/`.
pub const SELECTED: &str = "selected";

/// Called when the selection changes: a stream following the switch moves on.
pub type OnSwitch = Arc<dyn Fn() + Send + Sync>;

pub struct Switch {
    pub name: String,
    /// The cameras it can show, in config order; never empty.
    pub cameras: Vec<Arc<Camera>>,
    /// The index of the selected camera; held while a selection is announced, so changes
    /// are told in the order they were made.
    selected: Mutex<usize>,
    /// Who hears of a new selection (NetworkTables, the page's event stream).
    pub changes: ChangeFeed,
    /// The streams showing the switch, each told when the selection changes.
    followers: Mutex<Vec<(u64, OnSwitch)>>,
    next_follower: AtomicU64,
}

/// A name that is none of the switch's cameras.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{name}\" is not a camera of switch \"{switch}\": choose one of {}", .cameras.join(", "))]
pub struct UnknownCamera {
    pub switch: String,
    pub name: String,
    pub cameras: Vec<String>,
}

/// A switch that cannot be built from its config (the config's validation rules it out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error("switch \"{0}\" lists no camera")]
    NoCamera(String),
    #[error(transparent)]
    UnknownCamera(#[from] UnknownCamera),
}

impl Switch {
    /// The switch `config` describes, over the running `cameras`; the first listed camera
    /// is selected.
    pub fn new(config: &SwitchConfig, cameras: &[Arc<Camera>]) -> Result<Switch, SwitchError> {
        let mut shown = Vec::with_capacity(config.cameras.len());
        for name in &config.cameras {
            let camera = cameras
                .iter()
                .find(|c| c.name == *name)
                .ok_or_else(|| UnknownCamera {
                    switch: config.name.clone(),
                    name: name.clone(),
                    cameras: cameras.iter().map(|c| c.name.clone()).collect(),
                })?;
            shown.push(Arc::clone(camera));
        }
        if shown.is_empty() {
            return Err(SwitchError::NoCamera(config.name.clone()));
        }
        Ok(Switch {
            name: config.name.clone(),
            cameras: shown,
            selected: Mutex::new(0),
            changes: ChangeFeed::default(),
            followers: Mutex::new(Vec::new()),
            next_follower: AtomicU64::new(0),
        })
    }

    /// The camera shown now.
    pub fn selected(&self) -> Arc<Camera> {
        let index = *lock(&self.selected);
        Arc::clone(&self.cameras[index.min(self.cameras.len() - 1)])
    }

    /// The names of the cameras it can show.
    pub fn camera_names(&self) -> Vec<String> {
        self.cameras.iter().map(|c| c.name.clone()).collect()
    }

    /// Shows the camera called `name` from now on: the one write path of the selection.
    /// Selecting the camera already shown is no change (not announced).
    pub fn select(&self, writer: Writer, name: &str) -> Result<(), UnknownCamera> {
        let index = self
            .cameras
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| UnknownCamera {
                switch: self.name.clone(),
                name: name.to_owned(),
                cameras: self.camera_names(),
            })?;
        let mut selected = lock(&self.selected);
        if *selected == index {
            return Ok(());
        }
        log::info!(
            "switch \"{}\": {} -> {name} (selected over {})",
            self.name,
            self.cameras[*selected].name,
            writer.as_str()
        );
        *selected = index;
        for (_, on_switch) in lock(&self.followers).iter() {
            on_switch();
        }
        self.changes.announce(&Changed {
            camera: self.name.clone(),
            key: SELECTED.to_owned(),
            writer,
        });
        Ok(())
    }

    /// Calls `on_switch` at every change of the selection while the returned guard lives:
    /// a stream showing the switch. The followers are the switch's clients.
    pub fn follow(&self, on_switch: OnSwitch) -> Following<'_> {
        let id = self.next_follower.fetch_add(1, Ordering::Relaxed);
        lock(&self.followers).push((id, on_switch));
        Following { switch: self, id }
    }

    /// Streams showing the switch now.
    pub fn client_count(&self) -> usize {
        lock(&self.followers).len()
    }

    /// What `/stats.json` and a selection's answer show of the switch.
    pub fn report(&self) -> SwitchReport {
        SwitchReport {
            name: self.name.clone(),
            selected: self.selected().name.clone(),
            cameras: self.camera_names(),
            clients: self.client_count(),
        }
    }
}

/// A switch as JSON: its name, the camera shown, the cameras it can show, its clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchReport {
    pub name: String,
    pub selected: String,
    pub cameras: Vec<String>,
    pub clients: usize,
}

/// A stream following a switch; it stops following when dropped.
pub struct Following<'a> {
    switch: &'a Switch,
    id: u64,
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        lock(&self.switch.followers).retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::config::CameraConfig;

    fn camera(name: &str) -> Arc<Camera> {
        Arc::new(Camera::new(&CameraConfig {
            name: name.to_owned(),
            ..CameraConfig::embedded_default()
        }))
    }

    fn driver_switch() -> Switch {
        let config = SwitchConfig {
            name: "driver".to_owned(),
            cameras: vec!["front".to_owned(), "back".to_owned()],
        };
        Switch::new(&config, &[camera("back"), camera("front")]).expect("switch")
    }

    #[test]
    fn the_first_listed_camera_is_shown_at_start() {
        assert_eq!(driver_switch().selected().name, "front");
    }

    #[test]
    fn a_selection_is_announced_and_followers_told_once_per_change() {
        let switch = driver_switch();
        let feed = switch.changes.subscribe();
        let told = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&told);
        let following = switch.follow(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(switch.client_count(), 1);
        switch.select(Writer::Http, "back").expect("back");
        switch.select(Writer::NetworkTables, "back").expect("echo");
        assert_eq!(switch.selected().name, "back");
        assert_eq!(told.load(Ordering::SeqCst), 1, "an echo is no change");
        let change = feed.try_recv().expect("announced");
        assert_eq!(
            (change.camera.as_str(), change.key.as_str()),
            ("driver", SELECTED)
        );
        assert_eq!(change.writer, Writer::Http);
        assert!(feed.try_recv().is_err(), "the echo is not announced");
        drop(following);
        assert_eq!(switch.client_count(), 0);
    }

    #[test]
    fn an_unknown_camera_is_refused_with_the_choices() {
        let switch = driver_switch();
        let refusal = switch.select(Writer::Http, "side").expect_err("unknown");
        assert_eq!(
            refusal.to_string(),
            "\"side\" is not a camera of switch \"driver\": choose one of front, back"
        );
        assert_eq!(switch.selected().name, "front");
    }

    #[test]
    fn a_switch_over_a_missing_camera_is_an_error() {
        let config = SwitchConfig {
            name: "driver".to_owned(),
            cameras: vec!["side".to_owned()],
        };
        assert!(matches!(
            Switch::new(&config, &[camera("front")]),
            Err(SwitchError::UnknownCamera(_))
        ));
        let empty = SwitchConfig {
            name: "driver".to_owned(),
            cameras: vec![],
        };
        assert!(matches!(
            Switch::new(&empty, &[]),
            Err(SwitchError::NoCamera(_))
        ));
    }
}
