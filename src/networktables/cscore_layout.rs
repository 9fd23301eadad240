//! cscore's layout on NetworkTables: the topics and values a camera server publishes so
//! that Shuffleboard and Elastic find its cameras, as WPILib's `CameraServer` writes them.
//!
//! - `/CameraPublisher/<name>/`: `source` ([`cscore_source`]), `description`, `connected`,
//!   `streams` ([`stream_urls`], hosts from [`Advertised`]), `mode`, `modes`;
//! - a camera's controls as cscore's properties: `Property/<control>` (a default a
//!   dashboard may write) and `PropertyInfo/<control>/{min,max,step,default,choices}`
//!   ([`property_topics`]); `raw_` names under `RawProperty/`.
//!
//! Pure functions of a camera's description: what to publish, never when (that is
//! `camera_publisher.rs`, the thread).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{NtType, NtValue};
use crate::config::SourceSpec;

/// The topics under `/CameraPublisher/<name>/` every camera has, and their types.
pub const CAMERA_TOPICS: [(&str, NtType); 6] = [
    ("source", NtType::String),
    ("description", NtType::String),
    ("connected", NtType::Boolean),
    ("streams", NtType::StringArray),
    ("mode", NtType::String),
    ("modes", NtType::StringArray),
];

/// `/CameraPublisher/<name>/`: where cscore's topics of a camera live.
pub fn camera_root(name: &str) -> String {
    format!("/CameraPublisher/{name}/")
}

/// cscore's `source` value for a camera's source: `usb:<path>` for a V4L2 camera, `cv:` for
/// frames made by software (cscore's `CvSource`).
pub fn cscore_source(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::V4l2(path) => format!("usb:{}", path.display()),
        SourceSpec::TestPattern | SourceSpec::JpegFolder(_) | SourceSpec::Pushed => {
            "cv:".to_owned()
        }
    }
}

/// The URLs a dashboard can stream from, as `streams` lists them:
/// `mjpg:http://<host>:<port><path>?action=stream`, one per host of `hosts` (see
/// [`Advertised::hosts`]). When the server is bound to one address and the hosts were not
/// set in the config, only that address.
pub fn stream_urls(server: SocketAddr, path: &str, hosts: &Advertised) -> Vec<String> {
    let port = server.port();
    let url = |host: &str| format!("mjpg:http://{host}:{port}{path}?action=stream");
    match (server.ip(), hosts) {
        (_, Advertised::Configured(hosts)) => hosts.iter().map(|h| url(h)).collect(),
        (IpAddr::V4(ip), _) if !ip.is_unspecified() => vec![url(&ip.to_string())],
        (IpAddr::V6(ip), _) if !ip.is_unspecified() => vec![url(&format!("[{ip}]"))],
        (_, Advertised::Found(hosts)) => hosts.iter().map(|h| url(h)).collect(),
    }
}

/// The hosts `streams` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertised {
    /// `[networktables] advertise`, as written.
    Configured(Vec<String>),
    /// This machine's reachable addresses ([`crate::host_addresses::advertised_addresses`]), then
    /// `<hostname>.local`.
    Found(Vec<String>),
}

impl Advertised {
    /// The configured hosts, or the ones found on this machine now.
    pub fn hosts(configured: Option<&[String]>, robot_network: Option<[u8; 3]>) -> Advertised {
        match configured {
            Some(hosts) => Advertised::Configured(hosts.to_vec()),
            None => Advertised::found(
                &crate::host_addresses::interface_addresses(),
                robot_network,
                crate::host_addresses::hostname().as_deref(),
            ),
        }
    }

    fn found(
        addresses: &[crate::host_addresses::InterfaceAddress],
        robot_network: Option<[u8; 3]>,
        hostname: Option<&str>,
    ) -> Advertised {
        let mut hosts: Vec<String> =
            crate::host_addresses::advertised_addresses(addresses, robot_network)
                .iter()
                .map(Ipv4Addr::to_string)
                .collect();
        // The mDNS name is the short host name; last, as mDNS often fails on the field.
        if let Some(short) = hostname.and_then(|h| h.split('.').next()) {
            if !short.is_empty() {
                hosts.push(format!("{short}.local"));
            }
        }
        Advertised::Found(hosts)
    }
}

/// The control a property topic belongs to: the last path segment of `Property/<name>`,
/// the one before the last of `PropertyInfo/<name>/<key>`.
pub(super) fn property_control_name(topic: &str) -> String {
    let mut parts = topic.rsplit('/');
    let last = parts.next().unwrap_or_default();
    let parent = parts.next().unwrap_or_default();
    if parent.ends_with("Property") {
        last.to_owned()
    } else {
        parent.to_owned()
    }
}

/// A control as cscore's property: buttons have none.
pub(super) fn describe_control(control: &crate::controls::Control) -> Option<PropertyDescription> {
    use crate::controls::ControlKind;
    let kind = match control.kind {
        ControlKind::Button => return None,
        ControlKind::Boolean => PropertyKind::Boolean {
            value: control.value != 0,
        },
        ControlKind::Integer => PropertyKind::Integer {
            value: control.value,
            min: control.min,
            max: control.max,
            step: control.step,
            default: control.default,
        },
        ControlKind::Menu | ControlKind::IntegerMenu => {
            // cscore lists choices by value, with "" where the driver has no entry.
            let last = control
                .menu
                .iter()
                .map(|(v, _)| *v)
                .max()
                .unwrap_or(0)
                .clamp(0, 255);
            let choices = (0..=last)
                .map(|v| {
                    control
                        .menu
                        .iter()
                        .find(|(value, _)| *value == v)
                        .map(|(_, name)| name.clone())
                        .unwrap_or_default()
                })
                .collect();
            PropertyKind::Enum {
                value: control.value,
                min: control.min,
                max: control.max,
                step: control.step,
                default: control.default,
                choices,
            }
        }
    };
    Some(PropertyDescription {
        name: control.name.clone(),
        kind,
    })
}

/// An NT value as a control value: ints, booleans, strings (menu entries), and doubles that
/// are whole numbers (some dashboards send numbers as doubles).
pub(super) fn control_value(value: &NtValue) -> Option<crate::controls::ControlValue> {
    use crate::controls::ControlValue;
    match value {
        NtValue::Int(v) => Some(ControlValue::Int(*v)),
        NtValue::Boolean(v) => Some(ControlValue::Bool(*v)),
        NtValue::String(v) => Some(ControlValue::Text(v.clone())),
        NtValue::Double(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
            Some(ControlValue::Int(*v as i64))
        }
        _ => None,
    }
}

/// A camera control as a dashboard sees it, for `Property/<name>` and
/// `PropertyInfo/<name>/...`. A [`Control`](crate::controls::Control) maps to it by kind:
/// `Integer` to [`PropertyKind::Integer`], `Boolean` to [`PropertyKind::Boolean`], `Menu` and
/// `IntegerMenu` to [`PropertyKind::Enum`] (choices indexed by value, `""` for gaps, as
/// cscore lists them), and `Button` to nothing (cscore has no button property).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyDescription {
    /// The control's name, e.g. `brightness`; cscore names V4L2 controls in lower case
    /// with `_`, and prefixes the ones it hides with `raw_`.
    pub name: String,
    pub kind: PropertyKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PropertyKind {
    Boolean {
        value: bool,
    },
    Integer {
        value: i64,
        min: i64,
        max: i64,
        step: i64,
        default: i64,
    },
    /// A menu: `value` is the index into `choices`.
    Enum {
        value: i64,
        min: i64,
        max: i64,
        step: i64,
        default: i64,
        choices: Vec<String>,
    },
    String {
        value: String,
    },
}

/// How cscore writes a property topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicWrite {
    /// `setDefault` (timestamp 0): the value a dashboard may change.
    Default,
    /// A normal write: information.
    Set,
}

/// One topic of a property.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyTopic {
    pub topic: String,
    pub ty: NtType,
    pub value: NtValue,
    pub write: TopicWrite,
}

/// The topics cscore's CameraServer (2025+, NT4) publishes for a camera's properties:
/// `Property/<name>` (boolean, int or string; a default, so dashboards can write it) and for
/// integers and menus `PropertyInfo/<name>/{min,max,step,default}` (int) and for menus
/// `PropertyInfo/<name>/choices` (string[]). Names starting with `raw_` go under
/// `RawProperty/` and `RawPropertyInfo/` instead.
///
/// The publisher writes each as `write` says, subscribes to the `Property/` ones, and
/// treats a write like `fps`: validated, applied, or refused and written back.
pub fn property_topics(camera: &str, properties: &[PropertyDescription]) -> Vec<PropertyTopic> {
    let mut topics = Vec::new();
    for property in properties {
        let (value_dir, info_dir) = if property.name.starts_with("raw_") {
            ("RawProperty", "RawPropertyInfo")
        } else {
            ("Property", "PropertyInfo")
        };
        let value_topic = format!("/CameraPublisher/{camera}/{value_dir}/{}", property.name);
        let info = |key: &str| {
            format!(
                "/CameraPublisher/{camera}/{info_dir}/{}/{key}",
                property.name
            )
        };
        let mut push = |topic: String, ty: NtType, value: NtValue, write: TopicWrite| {
            topics.push(PropertyTopic {
                topic,
                ty,
                value,
                write,
            })
        };
        match &property.kind {
            PropertyKind::Boolean { value } => push(
                value_topic,
                NtType::Boolean,
                (*value).into(),
                TopicWrite::Default,
            ),
            PropertyKind::String { value } => push(
                value_topic,
                NtType::String,
                value.as_str().into(),
                TopicWrite::Default,
            ),
            PropertyKind::Integer {
                value,
                min,
                max,
                step,
                default,
            }
            | PropertyKind::Enum {
                value,
                min,
                max,
                step,
                default,
                ..
            } => {
                push(
                    value_topic,
                    NtType::Int,
                    (*value).into(),
                    TopicWrite::Default,
                );
                for (key, v) in [
                    ("min", min),
                    ("max", max),
                    ("step", step),
                    ("default", default),
                ] {
                    push(info(key), NtType::Int, (*v).into(), TopicWrite::Set);
                }
                if let PropertyKind::Enum { choices, .. } = &property.kind {
                    push(
                        info("choices"),
                        NtType::StringArray,
                        choices.clone().into(),
                        TopicWrite::Set,
                    );
                }
            }
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(addresses: &[(&str, [u8; 4])], hostname: Option<&str>) -> Advertised {
        let addresses: Vec<crate::host_addresses::InterfaceAddress> = addresses
            .iter()
            .map(
                |&(interface, address)| crate::host_addresses::InterfaceAddress {
                    interface: interface.to_owned(),
                    address: address.into(),
                    has_device: true,
                },
            )
            .collect();
        Advertised::found(&addresses, Some([10, 12, 34]), hostname)
    }

    #[test]
    fn streams_list_reachable_addresses_robot_network_first_and_mdns_last() {
        let any: SocketAddr = "0.0.0.0:1181".parse().expect("addr");
        let hosts = found(
            &[
                ("wlan0", [172, 22, 11, 2]),
                ("docker0", [172, 17, 0, 1]),
                ("eth0", [10, 12, 34, 11]),
                ("eth1", [169, 254, 3, 4]),
            ],
            Some("frcpi"),
        );
        assert_eq!(
            stream_urls(any, "/front/", &hosts),
            vec![
                "mjpg:http://10.12.34.11:1181/front/?action=stream",
                "mjpg:http://172.22.11.2:1181/front/?action=stream",
                "mjpg:http://frcpi.local:1181/front/?action=stream",
            ]
        );
        assert_eq!(
            stream_urls(any, "/front/", &found(&[], Some("frcpi.lan"))),
            vec!["mjpg:http://frcpi.local:1181/front/?action=stream"]
        );
        assert!(stream_urls(any, "/front/", &found(&[], None)).is_empty());
        // A camera with a port of its own: cscore's URL exactly.
        let own: SocketAddr = "0.0.0.0:1182".parse().expect("addr");
        assert_eq!(
            stream_urls(
                own,
                "/",
                &found(&[("eth0", [10, 12, 34, 11])], Some("frcpi"))
            ),
            vec![
                "mjpg:http://10.12.34.11:1182/?action=stream",
                "mjpg:http://frcpi.local:1182/?action=stream",
            ]
        );
    }

    #[test]
    fn configured_hosts_are_advertised_as_written() {
        let any: SocketAddr = "0.0.0.0:1181".parse().expect("addr");
        let hosts = Advertised::hosts(
            Some(&["frcvision.local".to_owned(), "10.12.34.11".to_owned()]),
            None,
        );
        assert_eq!(
            stream_urls(any, "/cam/", &hosts),
            vec![
                "mjpg:http://frcvision.local:1181/cam/?action=stream",
                "mjpg:http://10.12.34.11:1181/cam/?action=stream",
            ]
        );
        let bound: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        assert_eq!(
            stream_urls(bound, "/cam/", &hosts)[0],
            "mjpg:http://frcvision.local:40000/cam/?action=stream"
        );
    }

    #[test]
    fn streams_of_a_bound_server_name_only_its_address() {
        let hosts = found(&[("eth0", [10, 12, 34, 11])], Some("frcpi"));
        let bound: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        assert_eq!(
            stream_urls(bound, "/cam/", &hosts),
            vec!["mjpg:http://127.0.0.1:40000/cam/?action=stream"]
        );
        let bound: SocketAddr = "[::1]:1181".parse().expect("addr");
        assert_eq!(
            stream_urls(bound, "/cam/", &hosts),
            vec!["mjpg:http://[::1]:1181/cam/?action=stream"]
        );
    }

    #[test]
    fn sources_are_named_as_cscore_names_them() {
        assert_eq!(cscore_source(&SourceSpec::TestPattern), "cv:");
        assert_eq!(cscore_source(&SourceSpec::Pushed), "cv:");
        let usb = SourceSpec::V4l2("/dev/v4l/by-id/usb-cam-video-index0".into());
        assert_eq!(
            cscore_source(&usb),
            "usb:/dev/v4l/by-id/usb-cam-video-index0"
        );
    }

    #[test]
    fn property_topics_name_their_control() {
        assert_eq!(
            property_control_name("/CameraPublisher/cam/Property/brightness"),
            "brightness"
        );
        assert_eq!(
            property_control_name("/CameraPublisher/cam/PropertyInfo/brightness/min"),
            "brightness"
        );
        assert_eq!(
            property_control_name("/CameraPublisher/cam/RawProperty/raw_x"),
            "raw_x"
        );
        assert_eq!(
            control_value(&NtValue::Double(12.0)),
            Some(crate::controls::ControlValue::Int(12))
        );
        assert_eq!(control_value(&NtValue::Double(12.5)), None);
        assert_eq!(control_value(&NtValue::StringArray(vec![])), None);
    }

    #[test]
    fn property_topics_are_cscores() {
        let properties = vec![
            PropertyDescription {
                name: "brightness".into(),
                kind: PropertyKind::Integer {
                    value: 50,
                    min: 0,
                    max: 100,
                    step: 1,
                    default: 50,
                },
            },
            PropertyDescription {
                name: "power_line_frequency".into(),
                kind: PropertyKind::Enum {
                    value: 2,
                    min: 0,
                    max: 2,
                    step: 1,
                    default: 2,
                    choices: vec!["Disabled".into(), "50 Hz".into(), "60 Hz".into()],
                },
            },
            PropertyDescription {
                name: "raw_exposure_auto_priority".into(),
                kind: PropertyKind::Boolean { value: false },
            },
        ];
        let topics = property_topics("cam", &properties);
        let find = |t: &str| {
            topics
                .iter()
                .find(|p| p.topic == t)
                .unwrap_or_else(|| panic!("{t} missing from {topics:#?}"))
        };
        let value = find("/CameraPublisher/cam/Property/brightness");
        assert_eq!(
            (value.ty, &value.value, value.write),
            (NtType::Int, &NtValue::Int(50), TopicWrite::Default)
        );
        let max = find("/CameraPublisher/cam/PropertyInfo/brightness/max");
        assert_eq!((max.ty, &max.value), (NtType::Int, &NtValue::Int(100)));
        assert_eq!(max.write, TopicWrite::Set);
        let choices = find("/CameraPublisher/cam/PropertyInfo/power_line_frequency/choices");
        assert_eq!(choices.ty, NtType::StringArray);
        let raw = find("/CameraPublisher/cam/RawProperty/raw_exposure_auto_priority");
        assert_eq!(raw.ty, NtType::Boolean);
        assert_eq!(topics.len(), 5 + 6 + 1);
    }
}
