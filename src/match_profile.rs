//! The match profile: while the FMS is attached, each camera's `[camera.match]` values and
//! `[server.match]`'s `max_mbit` are in force; otherwise the team's own (normal) values.
//!
//! How it composes with the settings model (`settings.rs`, `Camera::change`):
//!
//! - A profile switch changes only what is in force. Each camera's run-time settings are
//!   [`Layered`](crate::settings::Layered): the normal value (config, saved, or changed by
//!   a writer), the match profile's value, and a change made during the match. Nothing of
//!   a switch is saved in the state file or marked `changed`: origins read `match` while
//!   the profile's value is in force.
//! - A writer (a dashboard, HTTP, the library) changing during a match a setting the match
//!   profile sets changes it at once, on top of the profile, until the match ends; it is
//!   not saved, and after the match the normal value (with earlier saved or changed ones)
//!   is back. A setting the profile does not set changes as it always does (saved).
//! - Every value in force that a switch changes is announced on the camera's change feed
//!   by `Writer::MatchProfile`, so NetworkTables and the page (`/events`) show it at once.
//! - The budget thread (`budget.rs`) reads `max_mbit` in force each tick.
//!
//! Who decides: `networktables/fms.rs`, from the robot's `/FMSInfo/FMSControlData`.

use std::sync::{Arc, Mutex};

use crate::camera::Camera;
use crate::lock::lock;
use crate::settings::{NO_MATCH_YET, Profile, ProfiledNumber};

/// The robot-wide profile, and what it puts in force.
pub struct MatchProfiles {
    cameras: Vec<Arc<Camera>>,
    /// `[server] max_mbit` and `[server.match] max_mbit`.
    max_mbit: Arc<ProfiledNumber>,
    /// The profile in force and why.
    current: Mutex<(Profile, String)>,
}

impl MatchProfiles {
    pub fn new(cameras: Vec<Arc<Camera>>, max_mbit: Arc<ProfiledNumber>) -> MatchProfiles {
        MatchProfiles {
            cameras,
            max_mbit,
            current: Mutex::new((Profile::Normal, NO_MATCH_YET.to_owned())),
        }
    }

    /// Whether any camera or the server has match values (else a switch changes nothing
    /// but what is reported).
    pub fn any_configured(cameras: &[Arc<Camera>], max_mbit: &ProfiledNumber) -> bool {
        max_mbit.has_match_value()
            || cameras
                .iter()
                .any(|camera| camera.settings.has_match_values())
    }

    /// Puts `profile` in force for `reason` on every camera and the budget; returns whether
    /// the profile or its reason changed (one log line when the profile did).
    pub fn switch(&self, profile: Profile, reason: &str) -> bool {
        let mut current = lock(&self.current);
        if current.0 == profile && current.1 == reason {
            return false;
        }
        if current.0 != profile {
            log::info!("{} profile in force: {reason}", profile.as_str());
        }
        *current = (profile, reason.to_owned());
        drop(current);
        for camera in &self.cameras {
            camera.switch_profile(profile, reason);
        }
        if let Some(max_mbit) = self.max_mbit.switch_profile(profile) {
            log::info!(
                "bandwidth budget now {max_mbit} Mbit/s ({} profile)",
                profile.as_str()
            );
        }
        true
    }

    /// The profile in force and why.
    pub fn current(&self) -> (Profile, String) {
        lock(&self.current).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CameraConfig, MatchSettings};
    use crate::controls::ControlValue;
    use crate::settings::{FPS, Origin, QUALITY, Writer};

    fn front() -> Arc<Camera> {
        let config = CameraConfig {
            name: "front".into(),
            in_match: MatchSettings(vec![(&FPS, 10.0), (&QUALITY, 30.0)]),
            ..CameraConfig::embedded_default()
        };
        Arc::new(Camera::new(&config))
    }

    #[test]
    fn a_match_puts_the_profile_in_force_and_announces_it_and_its_end_brings_back_the_normal_values()
     {
        let camera = front();
        let budget = Arc::new(ProfiledNumber::new(3.0, Some(1.0)));
        let profiles = MatchProfiles::new(vec![Arc::clone(&camera)], Arc::clone(&budget));
        assert!(MatchProfiles::any_configured(
            &[Arc::clone(&camera)],
            &budget
        ));
        camera
            .change(Writer::Http, &[("fps".into(), ControlValue::Int(25))])
            .expect("a team's change before the match");
        let heard = camera.changes.subscribe();
        assert!(profiles.switch(Profile::Match, "FMS attached"));
        assert!(
            !profiles.switch(Profile::Match, "FMS attached"),
            "no change"
        );
        assert_eq!((camera.settings.fps(), camera.settings.quality()), (10, 30));
        assert_eq!(budget.get(), 1.0);
        assert_eq!(camera.origin("fps"), Origin::Match);
        let announced: Vec<(String, Writer)> =
            heard.try_iter().map(|c| (c.key, c.writer)).collect();
        assert_eq!(
            announced,
            [
                ("fps".to_owned(), Writer::MatchProfile),
                ("quality".to_owned(), Writer::MatchProfile)
            ]
        );
        camera
            .change(
                Writer::NetworkTables,
                &[("fps".into(), ControlValue::Int(15))],
            )
            .expect("a dashboard during the match");
        assert_eq!(camera.settings.fps(), 15);
        assert_eq!(camera.origin("fps"), Origin::Changed);
        profiles.switch(Profile::Normal, "FMS not attached");
        assert_eq!((camera.settings.fps(), camera.settings.quality()), (25, 50));
        assert_eq!(
            camera.origin("fps"),
            Origin::Changed,
            "the team's own change"
        );
        assert_eq!(camera.origin("quality"), Origin::Default);
        assert_eq!(budget.get(), 3.0);
        assert_eq!(
            profiles.current(),
            (Profile::Normal, "FMS not attached".to_owned())
        );
    }
}
