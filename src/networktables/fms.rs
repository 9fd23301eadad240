//! The FMS on NetworkTables: the `fms-watch` thread reads the robot's `/FMSInfo/` (WPILib's
//! `DriverStation` publishes it from robot code) and switches the match profile
//! (`match_profile.rs`).
//!
//! - `FMSControlData` (int) is the driver station's control word: bit `0x10` is "FMS
//!   attached" (`0x20` DS attached, `0x01` enabled, `0x02` autonomous). While the bit is
//!   set, the match profile is in force; when it clears, the normal one.
//! - `MatchType` (0 none, 1 practice, 2 qualification, 3 elimination), `MatchNumber` and
//!   `EventName` only make the reason: "FMS attached: Qualification 12 at CMPTX".
//! - NetworkTables lost for [`NT_LOSS_FALLBACK`] (the roboRIO rebooting, a cable out): the
//!   normal profile comes back and the control word is forgotten; after a reconnect, the
//!   server's current `FMSControlData` decides again. A shorter blip changes nothing.
//!
//! The profile and its reason are published robot-wide as `/frcstream/profile` (`"normal"`
//! or `"match"`) and `/frcstream/profile_reason` (strings). The thread runs on a clone of
//! the publisher's [`NtClient`] (one connection) with a subscription of its own.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::{NtClient, NtType, NtUpdate, NtValue, publish_logged, set_logged};
use crate::match_profile::MatchProfiles;
use crate::settings::Profile;
use crate::threads::StoppableThread;

/// How long NetworkTables may be lost before the normal profile comes back: longer than a
/// radio blip or an NT server's reconnect (about a second), shorter than a robot reboot.
pub const NT_LOSS_FALLBACK: Duration = Duration::from_secs(3);
/// How often the thread looks at the connection when no update comes.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// The control word's "FMS attached" bit (WPILib's `HAL_ControlWord.fmsAttached`).
pub const FMS_ATTACHED: i64 = 0x10;

/// The topics read, under [`FMS_INFO`].
const FMS_INFO: &str = "/FMSInfo/";
/// Where the profile in force is published.
pub const PROFILE_TOPIC: &str = "/frcstream/profile";
pub const PROFILE_REASON_TOPIC: &str = "/frcstream/profile_reason";

/// What the robot last said of the FMS.
#[derive(Debug, Default, Clone, PartialEq)]
struct FmsInfo {
    control_word: Option<i64>,
    match_type: Option<i64>,
    match_number: Option<i64>,
    event_name: Option<String>,
}

impl FmsInfo {
    /// Takes in one update of an `/FMSInfo/` topic; other topics and types are ignored.
    fn take(&mut self, update: &NtUpdate) {
        let name = update.topic.strip_prefix(FMS_INFO).unwrap_or_default();
        match (name, &update.value) {
            ("FMSControlData", NtValue::Int(word)) => self.control_word = Some(*word),
            ("MatchType", NtValue::Int(kind)) => self.match_type = Some(*kind),
            ("MatchNumber", NtValue::Int(number)) => self.match_number = Some(*number),
            ("EventName", NtValue::String(event)) => self.event_name = Some(event.clone()),
            _ => {}
        }
    }

    /// The profile this says, and why.
    fn profile(&self) -> (Profile, String) {
        match self.control_word {
            None => (
                Profile::Normal,
                "no FMSControlData from the robot".to_owned(),
            ),
            Some(word) if word & FMS_ATTACHED == 0 => {
                (Profile::Normal, "FMS not attached".to_owned())
            }
            Some(_) => (
                Profile::Match,
                format!("FMS attached{}", self.which_match()),
            ),
        }
    }

    /// `: Qualification 12 at CMPTX`, or less when the robot says less.
    fn which_match(&self) -> String {
        let kind = match self.match_type {
            Some(1) => "Practice",
            Some(2) => "Qualification",
            Some(3) => "Elimination",
            _ => "",
        };
        let mut text = match (kind, self.match_number) {
            ("", _) => String::new(),
            (kind, Some(number)) if number > 0 => format!(": {kind} {number}"),
            (kind, _) => format!(": {kind}"),
        };
        if let Some(event) = self.event_name.as_deref().filter(|e| !e.is_empty()) {
            text.push_str(if text.is_empty() { ": at " } else { " at " });
            text.push_str(event);
        }
        text
    }
}

/// How long the connection has been down, as the thread follows it.
#[derive(Debug, Default)]
struct Connection {
    lost_since: Option<Instant>,
}

impl Connection {
    /// Notes the connection's state at `now`; returns whether it has been lost for
    /// [`NT_LOSS_FALLBACK`] or longer.
    fn lost_too_long(&mut self, connected: bool, now: Instant) -> bool {
        if connected {
            self.lost_since = None;
            return false;
        }
        let since = *self.lost_since.get_or_insert(now);
        now.duration_since(since) >= NT_LOSS_FALLBACK
    }
}

/// The `fms-watch` thread; dropping it stops it.
pub struct FmsWatch {
    _thread: StoppableThread,
}

impl FmsWatch {
    /// Subscribes to `/FMSInfo/` on `nt` and starts the thread that switches `profiles`.
    pub fn start(nt: NtClient, profiles: MatchProfiles) -> std::io::Result<FmsWatch> {
        for topic in [PROFILE_TOPIC, PROFILE_REASON_TOPIC] {
            publish_logged(&nt, topic, NtType::String, serde_json::Value::Null);
        }
        let updates = nt.subscribe(&[FMS_INFO]);
        publish_profile(&nt, &profiles.current());
        let thread = StoppableThread::spawn("fms-watch", move |stop| {
            watch(&nt, &profiles, &updates, &stop)
        })?;
        Ok(FmsWatch { _thread: thread })
    }
}

fn watch(
    nt: &NtClient,
    profiles: &MatchProfiles,
    updates: &Receiver<NtUpdate>,
    stop: &Receiver<()>,
) {
    let mut info = FmsInfo::default();
    let mut connection = Connection::default();
    loop {
        crossbeam_channel::select! {
            recv(stop) -> _ => break,
            recv(updates) -> update => match update {
                Ok(update) => info.take(&update),
                Err(_) => break, // the client is gone
            },
            default(LOOK_EVERY) => {}
        }
        let (profile, reason) = if connection.lost_too_long(nt.is_connected(), Instant::now()) {
            info = FmsInfo::default();
            (
                Profile::Normal,
                format!(
                    "NetworkTables lost for over {} s",
                    NT_LOSS_FALLBACK.as_secs()
                ),
            )
        } else {
            info.profile()
        };
        if profiles.switch(profile, &reason) {
            publish_profile(nt, &(profile, reason));
        }
    }
}

fn publish_profile(nt: &NtClient, (profile, reason): &(Profile, String)) {
    for (topic, value) in [
        (PROFILE_TOPIC, profile.as_str()),
        (PROFILE_REASON_TOPIC, reason),
    ] {
        set_logged(nt, topic, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, value: NtValue) -> NtUpdate {
        NtUpdate {
            topic: format!("{FMS_INFO}{name}"),
            value,
            timestamp_us: 1,
        }
    }

    #[test]
    fn the_fms_attached_bit_decides_and_the_match_makes_the_reason() {
        let mut info = FmsInfo::default();
        assert_eq!(info.profile().0, Profile::Normal);
        info.take(&update("FMSControlData", NtValue::Int(0x31)));
        assert_eq!(info.profile(), (Profile::Match, "FMS attached".to_owned()));
        info.take(&update("MatchType", NtValue::Int(2)));
        info.take(&update("MatchNumber", NtValue::Int(12)));
        info.take(&update("EventName", NtValue::String("CMPTX".into())));
        assert_eq!(
            info.profile(),
            (
                Profile::Match,
                "FMS attached: Qualification 12 at CMPTX".to_owned()
            )
        );
        // DS attached and enabled, no FMS: a practice session at home.
        info.take(&update("FMSControlData", NtValue::Int(0x21)));
        assert_eq!(
            info.profile(),
            (Profile::Normal, "FMS not attached".to_owned())
        );
        info.take(&update("FMSControlData", NtValue::Double(16.0)));
        assert_eq!(info.control_word, Some(0x21), "a wrong type is ignored");
        info.take(&update("IsRedAlliance", NtValue::Boolean(true)));
        let event_only = FmsInfo {
            control_word: Some(0x10),
            event_name: Some("WEEK0".into()),
            ..FmsInfo::default()
        };
        assert_eq!(event_only.profile().1, "FMS attached: at WEEK0");
    }

    #[test]
    fn only_a_loss_longer_than_the_fallback_counts() {
        let mut connection = Connection::default();
        let start = Instant::now();
        assert!(!connection.lost_too_long(true, start));
        assert!(!connection.lost_too_long(false, start));
        let almost = start + NT_LOSS_FALLBACK - Duration::from_millis(1);
        assert!(!connection.lost_too_long(false, almost));
        assert!(!connection.lost_too_long(true, almost), "back in time");
        let lost_again = almost + NT_LOSS_FALLBACK / 2;
        assert!(!connection.lost_too_long(false, lost_again));
        assert!(!connection.lost_too_long(false, almost + NT_LOSS_FALLBACK));
        assert!(connection.lost_too_long(false, lost_again + NT_LOSS_FALLBACK));
    }
}
