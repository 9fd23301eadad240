//! The one rule every test that needs a part of the machine follows
//! (`support::skip_unless_required`): `FRCSTREAM_REQUIRE_<PART>=1` turns a missing part
//! into a failure that says how to install it; anything else, a loud SKIPPED banner.

mod support;

use support::{Part, missing_part_message, required_by};

const PART: Part = Part {
    name: "a test part",
    variable: "FRCSTREAM_REQUIRE_TEST_PART",
    install: "apt-get install test-part",
};

#[test]
fn only_one_asks_for_a_failure() {
    assert!(required_by(Some("1")));
    for value in [
        None,
        Some(""),
        Some("0"),
        Some("true"),
        Some("yes"),
        Some(" 1"),
        Some("2"),
    ] {
        assert!(!required_by(value), "{value:?} must not count as required");
    }
}

#[test]
fn a_required_part_fails_with_what_is_missing_and_how_to_install_it() {
    let message = missing_part_message(&PART, "some_test", "not found on PATH", true);
    for needed in [
        "some_test",
        "a test part",
        "not found on PATH",
        "apt-get install test-part",
        "FRCSTREAM_REQUIRE_TEST_PART=1",
    ] {
        assert!(
            message.contains(needed),
            "{needed:?} missing from {message:?}"
        );
    }
    assert!(!message.contains("SKIPPED"), "{message:?}");
}

#[test]
fn a_part_not_required_is_skipped_loudly_naming_the_part_and_the_variable() {
    let message = missing_part_message(&PART, "some_test", "not found on PATH", false);
    for needed in [
        "!!! SKIPPED some_test",
        "a test part",
        "not found on PATH",
        "apt-get install test-part",
        "set FRCSTREAM_REQUIRE_TEST_PART=1 to make this a failure",
    ] {
        assert!(
            message.contains(needed),
            "{needed:?} missing from {message:?}"
        );
    }
}

#[test]
fn every_part_follows_the_naming() {
    let parts = [
        support::VM,
        support::AARCH64,
        support::ROBOT_VM,
        support::SSHD,
        support::BROWSER,
        support::SYSTEMD,
        support::NETNS,
        support::PYNTCORE,
        support::CSCORE,
    ];
    for part in parts {
        let suffix = part.variable.strip_prefix("FRCSTREAM_REQUIRE_");
        assert!(
            suffix.is_some_and(|s| !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')),
            "{} does not follow FRCSTREAM_REQUIRE_<PART>",
            part.variable
        );
        assert!(
            !part.install.is_empty(),
            "{} says nothing of how to install it",
            part.name
        );
    }
}
