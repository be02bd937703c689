//! `overlayctl monitor` end to end: spawned against a real daemon, its
//! output read line by line (every wait bounded) while changes are made,
//! in text and JSON, and its resynchronisation after lost notifications.

use overlay_tests::monitor::{wait_until_subscribed, Monitor};
use overlay_tests::proto::{self, uint};
use overlay_tests::Daemon;
use serde_json::Value;

#[test]
fn prints_every_change_in_text_and_json() {
    let d = Daemon::start();
    let text = Monitor::start(&d, false);
    let json = Monitor::start(&d, true);
    wait_until_subscribed(&d, &[&text, &json]);
    let mut c = d.client();
    proto::create(
        &mut c,
        "ov0",
        42,
        &proto::full_props("10.0.0.1", "10.200.0.2"),
    )
    .unwrap();
    proto::setprop(&mut c, "ov0", "mtu", uint(1300)).unwrap();
    proto::activate(&mut c, "ov0").unwrap();
    proto::delete(&mut c, "ov0").unwrap();

    assert_eq!(
        text.line(),
        "create ov0 linkid=2 encap=vxlan search=direct vnetid=42 state=created status=ok"
    );
    assert_eq!(text.line(), "setprop ov0 mtu=1300");
    assert_eq!(text.line(), "activate ov0");
    assert_eq!(text.line(), "deactivate ov0");
    assert_eq!(text.line(), "delete ov0");

    let objects: Vec<Value> = (0..5)
        .map(|_| serde_json::from_str(&json.line()).expect("one JSON object per line"))
        .collect();
    let events: Vec<&str> = objects
        .iter()
        .map(|o| o["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["create", "setprop", "activate", "deactivate", "delete"]
    );
    for o in &objects {
        assert_eq!(o["link"], "ov0");
        assert_eq!(o["linkid"], 2);
    }
    assert_eq!(objects[0]["vnetid"], 42);
    assert_eq!(objects[0]["state"], "created");
    assert_eq!(objects[1]["property"], "mtu");
    assert_eq!(objects[1]["value"], "1300");
}

/// A monitor that is stopped while changes pile up is told it lost
/// events: it prints `lost`, then every device as it is now, then goes on.
#[test]
fn resynchronises_after_lost_notifications() {
    let d = Daemon::start();
    let m = Monitor::start(&d, false);
    wait_until_subscribed(&d, &[&m]);
    let mut c = d.client();
    proto::create(&mut c, "ov0", 7, &[]).unwrap();
    assert!(m.line().starts_with("create ov0 "));

    // SAFETY: kill() with a PID this test spawned and a valid signal.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGSTOP) }, 0);
    let mut changes = 0u64;
    while !d.log().contains("does not read its notifications") {
        assert!(changes < 40_000, "no overrun after {changes} changes");
        for _ in 0..500 {
            changes += 1;
            proto::setprop(&mut c, "probe", "mtu", uint(1000 + changes % 1000)).unwrap();
        }
    }
    // A change the monitor never gets as a notification, but sees in the
    // resynchronisation.
    proto::setprop(&mut c, "ov0", "vnetid", uint(77)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(m.pid(), libc::SIGCONT) }, 0);

    let mut line = m.line();
    let mut backlog = 0;
    while line.starts_with("setprop probe mtu=") {
        backlog += 1;
        line = m.line();
    }
    assert!(backlog > 0);
    assert!(line.starts_with("lost: "), "{line}");
    assert_eq!(
        m.line(),
        "device probe linkid=1 encap=vxlan search=direct vnetid=999 state=created status=ok"
    );
    assert_eq!(
        m.line(),
        "device ov0 linkid=2 encap=vxlan search=direct vnetid=77 state=created status=ok"
    );
    // And it goes on.
    proto::delete(&mut c, "ov0").unwrap();
    assert_eq!(m.line(), "delete ov0");
}
