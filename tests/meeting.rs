//! Meetings with real participants (the Python `livekit` SDK, native WebRTC) in the real embedded
//! LiveKit: presence from LiveKit's own webhooks, moderation, grants enforced by LiveKit, capacity,
//! taken names, and reconciliation when webhooks are lost or LiveKit restarts. Loopback only.

mod common;

use common::*;
use serde_json::{json, Value};

struct Meeting {
    b: Bedrud,
    // Keeps the sandbox (config, data, $TMPDIR) alive as long as bedrud runs.
    sb: Sandbox,
}

/// The helpers of the running bedrud (`call`, `register`, `url`…) are the wrapper's own.
impl std::ops::Deref for Meeting {
    type Target = Bedrud;
    fn deref(&self) -> &Bedrud {
        &self.b
    }
}

impl Meeting {
    /// bedrud with embedded LiveKit; `extra` is appended to the config.
    fn start(extra: &str) -> Meeting {
        require_private_network("meeting");
        let (b, sb) = ready_bedrud(extra);
        Meeting { b, sb }
    }

    /// A new account: (access token, LiveKit identity).
    fn user(&self, email: &str) -> (String, String) {
        let (access, _, id) = self.b.register(email);
        (access, format!("u_{id}"))
    }

    fn room(&self, token: &str, body: Value) {
        let (st, r) = self.call("POST", "/api/room/create", Some(token), Some(body));
        assert_eq!(st, 201, "{r}");
    }

    /// Joins through bedrud and connects a real participant with the token it returned.
    fn connect(&self, token: &str, room: &str, extra: &[&str]) -> Participant {
        let (st, join) = self.call(
            "POST",
            "/api/room/join",
            Some(token),
            Some(json!({"roomName": room})),
        );
        assert_eq!(st, 200, "{join}");
        Participant::join(
            join["livekitHost"].as_str().unwrap(),
            join["token"].as_str().unwrap(),
            extra,
        )
    }

    fn present(&self, token: &str, room: &str) -> Vec<String> {
        let (st, r) = self.call(
            "GET",
            &format!("/api/room/{room}/participants"),
            Some(token),
            None,
        );
        assert_eq!(st, 200, "{r}");
        r["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["identity"].as_str().unwrap().to_string())
            .collect()
    }

    fn wait_present(&mut self, token: &str, room: &str, identity: &str, expected: bool) {
        let what = format!(
            "{identity} {} in {room}",
            if expected { "present" } else { "gone" }
        );
        let (token, room, identity) = (token.to_string(), room.to_string(), identity.to_string());
        let url = self.b.url(&format!("/api/room/{room}/participants"));
        self.b.wait_for(&what, |_| {
            let (_, r) = call("GET", &url, Some(&token), None);
            let ids: Vec<&str> = r["participants"]
                .as_array()?
                .iter()
                .filter_map(|p| p["identity"].as_str())
                .collect();
            (ids.contains(&identity.as_str()) == expected).then_some(())
        });
    }

    fn metric(&self, needle: &str) -> f64 {
        let (_, m) = self.call("GET", "/metrics", None, None);
        m.as_str()
            .unwrap()
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    }
}

/// Reconciliation off (in practice), so presence can only come from LiveKit's webhooks.
const WEBHOOKS_ONLY: &str = "rooms:\n  reconcileInterval: 1h\n";

#[test]
fn a_participant_is_present_from_livekits_webhook_until_it_leaves() {
    let mut m = Meeting::start(WEBHOOKS_ONLY);
    let (alice, alice_id) = m.user("alice@example.test");
    m.room(&alice, json!({"name": "standup"}));
    assert!(
        m.present(&alice, "standup").is_empty(),
        "a token alone does not make anyone present"
    );

    let mut p = m.connect(&alice, "standup", &[]);
    p.wait_event("connected", |_| true);
    p.wait_event("published", |e| e["source"] == "microphone");
    m.wait_present(&alice, "standup", &alice_id, true);
    assert!(
        m.metric(r#"bedrud_webhook_events_total{event="participant_joined",outcome="applied"}"#)
            >= 1.0
    );

    p.send("leave");
    assert!(p.wait_exit().success());
    m.wait_present(&alice, "standup", &alice_id, false);
    let (_, list) = m.call("GET", "/api/room/list", Some(&alice), None);
    assert_eq!(list["rooms"][0]["participants"], 0);
}

#[test]
fn moderators_mute_restrict_and_kick_and_a_kicked_person_stays_out() {
    let mut m = Meeting::start(WEBHOOKS_ONLY);
    let (alice, _) = m.user("alice@example.test");
    let (bob, bob_id) = m.user("bob@example.test");
    m.room(&alice, json!({"name": "town-hall"}));
    let mut p = m.connect(&bob, "town-hall", &[]);
    let mic = p.wait_event("published", |e| e["source"] == "microphone");
    m.wait_present(&alice, "town-hall", &bob_id, true);

    // Only moderators may moderate.
    let (st, _) = m.call(
        "POST",
        &format!("/api/room/town-hall/mute/{bob_id}"),
        Some(&bob),
        None,
    );
    assert_eq!(st, 403);

    let r = mute_when_listed(&mut m.b, "town-hall", &bob_id, &alice);
    assert_eq!(r["muted"][0], mic["sid"]);
    p.wait_event("track_muted", |e| e["sid"] == mic["sid"]);

    let perms = json!({"canPublish": false});
    let (st, r) = m.call(
        "PUT",
        &format!("/api/room/town-hall/participants/{bob_id}/permissions"),
        Some(&alice),
        Some(perms),
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["permissions"]["canPublish"], false);
    p.wait_event("permissions_changed", |e| e["can_publish"] == false);
    // He can no longer publish: LiveKit ignores his camera (the room itself allows video).
    p.send("publish-camera");
    p.wait_event("publish_failed", |e| e["source"] == "camera");
    let camera = json!({"canPublishSources": ["camera", "microphone", "screen_share", "screen_share_audio", "hologram"]});
    let (st, r) = m.call(
        "PUT",
        &format!("/api/room/town-hall/participants/{bob_id}/permissions"),
        Some(&alice),
        Some(camera),
    );
    assert_eq!(st, 400, "{r}");

    let (st, r) = m.call(
        "POST",
        &format!("/api/room/town-hall/kick/{bob_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["banned"], true);
    p.wait_event("disconnected", |_| true);
    m.wait_present(&alice, "town-hall", &bob_id, false);
    assert!(
        m.metric(r#"bedrud_webhook_events_total{event="participant_left",outcome="applied"}"#)
            >= 1.0
    );
    let (st, r) = m.call(
        "POST",
        "/api/room/join",
        Some(&bob),
        Some(json!({"roomName": "town-hall"})),
    );
    assert_eq!(st, 403, "{r}");
    assert!(r["error"].as_str().unwrap().contains("removed"), "{r}");

    // Lifting the ban lets him back in.
    let (st, _) = m.call(
        "DELETE",
        &format!("/api/room/town-hall/bans/{bob_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200);
    let (st, _) = m.call(
        "POST",
        "/api/room/join",
        Some(&bob),
        Some(json!({"roomName": "town-hall"})),
    );
    assert_eq!(st, 200);
    let (st, _) = m.call(
        "POST",
        "/api/room/town-hall/kick/u_nobody?ban=false",
        Some(&alice),
        None,
    );
    assert_eq!(st, 404);
}

/// LiveKit accepts a token this long (seconds) after its `exp` (clock skew).
const LIVEKIT_TOKEN_LEEWAY: u64 = 60;

/// The join answer's token and URL, without connecting.
fn join_token(m: &Meeting, token: &str, room: &str) -> (String, String) {
    let (st, join) = m.call(
        "POST",
        "/api/room/join",
        Some(token),
        Some(json!({"roomName": room})),
    );
    assert_eq!(st, 200, "{join}");
    (
        join["livekitHost"].as_str().unwrap().to_string(),
        join["token"].as_str().unwrap().to_string(),
    )
}

/// LiveKit does not act on token revocation: a banned person who still holds a join token (or a
/// token LiveKit refreshed for them) can connect. bedrud removes them the moment LiveKit's
/// `participant_joined` webhook says they are in.
#[test]
fn a_banned_person_with_a_token_in_hand_is_removed_on_arrival() {
    let mut m = Meeting::start(WEBHOOKS_ONLY);
    let (alice, _) = m.user("alice@example.test");
    let (bob, bob_id) = m.user("bob@example.test");
    m.room(&alice, json!({"name": "hall"}));
    let (url, kept) = join_token(&m, &bob, "hall");
    let first = Participant::join(&url, &kept, &["--no-publish"]);
    first.wait_event("connected", |_| true);
    m.wait_present(&alice, "hall", &bob_id, true);

    let (st, r) = m.call(
        "POST",
        &format!("/api/room/hall/kick/{bob_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{r}");
    first.wait_event("disconnected", |_| true);
    m.wait_present(&alice, "hall", &bob_id, false);

    // The token he kept still opens LiveKit's door…
    let again = Participant::join(&url, &kept, &["--no-publish"]);
    let connected = again.wait_event("connected", |_| true);
    // …and bedrud shows him out as soon as LiveKit reports him.
    let gone = again.wait_event("disconnected", |_| true);
    let seconds = gone["t"].as_f64().unwrap() - connected["t"].as_f64().unwrap();
    eprintln!("banned participant removed {seconds:.3} s after connecting");
    assert!(
        m.logs()
            .contains("removed a banned participant who connected"),
        "{}",
        m.logs()
    );
    m.wait_present(&alice, "hall", &bob_id, false);
}

/// Join tokens are short-lived; a connected participant does not need its token any more
/// (LiveKit hands out refreshed ones), so it stays when the token expires, while the expired
/// token itself opens nothing.
#[test]
fn a_connected_participant_outlives_its_join_token() {
    let mut m = Meeting::start(
        "rooms:
  reconcileInterval: 1h
  joinTokenTtl: 3s
",
    );
    let (alice, alice_id) = m.user("alice@example.test");
    m.room(&alice, json!({"name": "long-call"}));
    let (url, token) = join_token(&m, &alice, "long-call");
    let exp = jwt_claims(&token)["exp"].as_u64().unwrap();
    let mut p = Participant::join(&url, &token, &["--no-publish"]);
    p.wait_event("connected", |_| true);
    m.wait_present(&alice, "long-call", &alice_id, true);

    // Wait until the token is past its expiry plus LiveKit's one-minute clock leeway.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    while now() <= exp + LIVEKIT_TOKEN_LEEWAY + 2 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    p.send("state");
    let state = p.wait_event("state", |_| true);
    assert_eq!(state["connection_state"], "CONN_CONNECTED", "{state}");
    assert!(!p.has_event("disconnected"), "{:?}", p.events());
    assert!(m.present(&alice, "long-call").contains(&alice_id));

    let late = Participant::join(&url, &token, &["--no-publish", "--connect-timeout", "3"]);
    late.wait_event("error", |_| true);
    assert!(!late.has_event("connected"));
}

/// LiveKit ends an empty room after its departure timeout. The next meeting in that room must
/// still have the room's participant limit: bedrud forgets the room when LiveKit says it
/// finished, and LiveKit (room.auto_create: false) cannot recreate it without bedrud.
#[test]
fn capacity_holds_after_livekit_ends_an_empty_room() {
    let m = Meeting::start(
        "rooms:
  reconcileInterval: 1h
  departureTimeout: 1s
",
    );
    let (alice, _) = m.user("alice@example.test");
    let (bob, _) = m.user("bob@example.test");
    let (carol, _) = m.user("carol@example.test");
    m.room(&alice, json!({"name": "one-to-one", "maxParticipants": 1}));

    let mut first = m.connect(&alice, "one-to-one", &["--no-publish"]);
    first.wait_event("connected", |_| true);
    first.send("leave");
    assert!(first.wait_exit().success());
    let finished = r#"bedrud_webhook_events_total{event="room_finished",outcome="applied"}"#;
    let mut waited = 0;
    while m.metric(finished) < 1.0 {
        assert!(waited < 600, "LiveKit never ended the empty room");
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }

    // Both are admitted by bedrud (nobody is in yet); LiveKit must let only one in.
    let (url, bob_token) = join_token(&m, &bob, "one-to-one");
    let (_, carol_token) = join_token(&m, &carol, "one-to-one");
    let b = Participant::join(&url, &bob_token, &["--no-publish"]);
    b.wait_event("connected", |_| true);
    let c = Participant::join(
        &url,
        &carol_token,
        &["--no-publish", "--connect-timeout", "3"],
    );
    let refused = c.wait_event("error", |_| true);
    eprintln!("second participant refused: {refused}");
    assert!(!c.has_event("connected"));
}

#[test]
fn a_room_without_video_gives_a_token_that_cannot_publish_a_camera() {
    let m = Meeting::start("");
    let (alice, _) = m.user("alice@example.test");
    m.room(
        &alice,
        json!({"name": "audio-only", "settings": {"allowVideo": false}}),
    );
    let p = m.connect(&alice, "audio-only", &["--try-camera"]);
    p.wait_event("published", |e| e["source"] == "microphone");
    let refused = p.wait_event("publish_failed", |e| e["source"] == "camera");
    assert!(
        !p.events()
            .iter()
            .any(|e| e["event"] == "published" && e["source"] == "camera"),
        "{:?}",
        p.events()
    );
    assert!(refused["error"].is_string());

    // The same participant in a room that allows video can publish its camera.
    m.room(&alice, json!({"name": "video-ok"}));
    let p = m.connect(&alice, "video-ok", &["--try-camera"]);
    p.wait_event("published", |e| e["source"] == "camera");
}

#[test]
fn a_full_room_refuses_and_a_taken_name_leaves_the_live_meeting_alone() {
    let mut m = Meeting::start(WEBHOOKS_ONLY);
    let (alice, alice_id) = m.user("alice@example.test");
    let (bob, _) = m.user("bob@example.test");
    m.room(&alice, json!({"name": "one-to-one", "maxParticipants": 1}));
    let mut p = m.connect(&alice, "one-to-one", &[]);
    p.wait_event("published", |_| true);
    m.wait_present(&alice, "one-to-one", &alice_id, true);

    let (st, r) = m.call(
        "POST",
        "/api/room/join",
        Some(&bob),
        Some(json!({"roomName": "one-to-one"})),
    );
    assert_eq!(st, 403, "{r}");
    assert!(r["error"].as_str().unwrap().contains("full"), "{r}");

    let (st, _) = m.call(
        "POST",
        "/api/room/create",
        Some(&bob),
        Some(json!({"name": "one-to-one", "isPublic": false})),
    );
    assert_eq!(st, 409);
    // Alice's meeting goes on: her client says it is still connected, bedrud still lists her,
    // and the room is still hers.
    p.send("state");
    let state = p.wait_event("state", |_| true);
    assert_eq!(state["connection_state"], "CONN_CONNECTED", "{state}");
    assert!(!p.has_event("disconnected"), "{:?}", p.events());
    assert_eq!(m.present(&alice, "one-to-one"), vec![alice_id]);
    let (_, list) = m.call("GET", "/api/room/list", Some(&alice), None);
    assert_eq!(
        list["rooms"][0]["maxParticipants"], 1,
        "the room was not replaced"
    );
}

#[test]
fn closing_a_room_ends_the_meeting_for_everyone() {
    let mut m = Meeting::start(WEBHOOKS_ONLY);
    let (alice, _) = m.user("alice@example.test");
    let (bob, bob_id) = m.user("bob@example.test");
    m.room(&alice, json!({"name": "retro"}));
    let p = m.connect(&bob, "retro", &[]);
    m.wait_present(&alice, "retro", &bob_id, true);
    let (st, _) = m.call("POST", "/api/room/retro/close", Some(&bob), None);
    assert_eq!(st, 403, "only the owner or an admin");
    let (st, r) = m.call("POST", "/api/room/retro/close", Some(&alice), None);
    assert_eq!(st, 200, "{r}");
    p.wait_event("disconnected", |_| true);
    assert!(m.present(&alice, "retro").is_empty());
}

#[test]
fn without_webhooks_reconciliation_brings_the_state_back() {
    // A static LiveKit config with no webhook: bedrud can only learn from ListRooms/Participants.
    require_private_network("meeting");
    let sb = Sandbox::new();
    let p = sb.ports;
    let static_cfg = sb.path().join("livekit-no-webhook.yaml");
    std::fs::write(&static_cfg, livekit_yaml(&p, "APItest")).unwrap();
    let extra = format!(
        "  configPath: {}\nrooms:\n  reconcileInterval: 1s\n",
        static_cfg.display()
    );
    sb.write_config(&sb.embedded_config(LIVEKIT, &extra));
    let mut b = sb.start(&[]);
    b.wait_ready();
    let mut m = Meeting { b, sb };
    let (alice, alice_id) = m.user("alice@example.test");
    m.room(&alice, json!({"name": "quiet"}));
    let mut part = m.connect(&alice, "quiet", &[]);
    part.wait_event("published", |_| true);
    m.wait_present(&alice, "quiet", &alice_id, true);
    assert_eq!(
        m.metric("bedrud_webhook_events_total"),
        0.0,
        "no webhook arrived: reconciliation did it"
    );
    assert!(m.metric("bedrud_reconcile_corrections_total") >= 1.0);

    part.send("leave");
    part.wait_exit();
    m.wait_present(&alice, "quiet", &alice_id, false);
}

/// With webhooks lost, reconciliation is what enforces a ban on someone who came back with an
/// old token, and what puts bedrud's limit on a room that LiveKit created by itself.
#[test]
fn without_webhooks_reconciliation_removes_the_banned_and_holds_room_limits() {
    require_private_network("meeting");
    let sb = Sandbox::new();
    let static_cfg = sb.path().join("livekit-no-webhook.yaml");
    std::fs::write(&static_cfg, livekit_yaml(&sb.ports, "APItest")).unwrap();
    let extra = format!(
        "  configPath: {}\nrooms:\n  reconcileInterval: 1s\n",
        static_cfg.display()
    );
    let config = sb.write_config(&sb.embedded_config(LIVEKIT, &extra));
    let mut b = sb.start(&[]);
    b.wait_ready();
    let mut m = Meeting { b, sb };
    let (alice, _) = m.user("alice@example.test");
    let (bob, bob_id) = m.user("bob@example.test");
    m.room(&alice, json!({"name": "quiet", "maxParticipants": 7}));
    let (url, kept) = join_token(&m, &bob, "quiet");
    let first = Participant::join(&url, &kept, &["--no-publish"]);
    first.wait_event("connected", |_| true);
    m.wait_present(&alice, "quiet", &bob_id, true);
    let (st, r) = m.call(
        "POST",
        &format!("/api/room/quiet/kick/{bob_id}"),
        Some(&alice),
        None,
    );
    assert_eq!(st, 200, "{r}");
    let again = Participant::join(&url, &kept, &["--no-publish"]);
    again.wait_event("connected", |_| true);
    again.wait_event("disconnected", |_| true);
    m.b.wait_for("reconciliation to say it removed him", |b| {
        b.logs()
            .contains("removed a banned participant who connected")
            .then_some(())
    });
    assert_eq!(m.metric("bedrud_webhook_events_total"), 0.0);

    // A room LiveKit made by itself (a test token that may create rooms; this static config
    // keeps LiveKit's auto-create) has no limit; reconciliation holds bedrud's.
    m.room(&alice, json!({"name": "adhoc", "maxParticipants": 1}));
    let token = |identity: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bedrud"))
            .args([
                "livekit",
                "token",
                "--room",
                "adhoc",
                "--identity",
                identity,
            ])
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let early = Participant::join(&url, &token("early"), &["--no-publish"]);
    early.wait_event("connected", |_| true);
    let late = Participant::join(&url, &token("late"), &["--no-publish"]);
    late.wait_event("connected", |_| true);
    late.wait_event("disconnected", |_| true);
    assert!(!early.has_event("disconnected"), "{:?}", early.events());
    assert!(
        m.logs()
            .contains("removed a participant over the room's limit"),
        "{}",
        m.logs()
    );
}

#[test]
fn after_a_livekit_restart_stale_presence_is_cleared() {
    let mut m = Meeting::start(WEBHOOKS_ONLY);
    let (alice, alice_id) = m.user("alice@example.test");
    m.room(&alice, json!({"name": "fragile"}));
    let p = m.connect(&alice, "fragile", &[]);
    p.wait_event("published", |_| true);
    m.wait_present(&alice, "fragile", &alice_id, true);

    // LiveKit dies: no participant_left or room_finished will ever come for this meeting.
    let lk = m.b.livekit_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lk as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The reconcile interval is an hour: only the restart-triggered pass can clear it.
    m.wait_present(&alice, "fragile", &alice_id, false);
    let (_, ready) = m.b.ready().unwrap();
    assert_eq!(ready["livekit"]["restarts"], 1);
    drop(p);
}

/// The lines of bedrud's log that report a reload, applied or refused.
fn reloads(m: &Meeting) -> Vec<String> {
    m.logs()
        .lines()
        .filter(|l| l.contains("config reloaded (") || l.contains("config reload ("))
        .map(str::to_string)
        .collect()
}

/// Writes the config as an editor does (rename over it) and waits for the reload it causes.
fn edit_config(m: &mut Meeting, text: &str) -> String {
    let before = reloads(m).len();
    let path = m.sb.config_path();
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let line = m.b.wait_for("the reload", |b| {
        let all: Vec<String> = b
            .logs()
            .lines()
            .filter(|l| l.contains("config reloaded (") || l.contains("config reload ("))
            .map(str::to_string)
            .collect();
        all.get(before).cloned()
    });
    line
}

/// Live reload in a meeting: a config reload and a refused one leave every participant connected
/// in the same session (no reconnect, no participant_left); a change LiveKit must restart for
/// waits while the meeting is live, and is applied once it ends.
#[test]
fn a_reload_during_a_meeting_keeps_everyone_and_a_livekit_change_waits_for_its_end() {
    let mut m = Meeting::start(WEBHOOKS_ONLY);
    let base = std::fs::read_to_string(m.sb.config_path()).unwrap();
    let (alice, alice_id) = m.user("alice@example.test");
    let (bob, bob_id) = m.user("bob@example.test");
    m.room(&alice, json!({"name": "reloaded"}));
    let mut pa = m.connect(&alice, "reloaded", &[]);
    let mut pb = m.connect(&bob, "reloaded", &["--no-publish"]);
    let sessions = [
        pa.wait_event("connected", |_| true)["sid"].clone(),
        pb.wait_event("connected", |_| true)["sid"].clone(),
    ];
    pa.wait_event("published", |e| e["source"] == "microphone");
    m.wait_present(&alice, "reloaded", &alice_id, true);
    m.wait_present(&alice, "reloaded", &bob_id, true);
    let livekit = m.b.livekit_pid();
    let left = r#"bedrud_webhook_events_total{event="participant_left",outcome="applied"}"#;
    let left_before = m.metric(left);
    let admin = m.b.admin_token().expect("an admin token");

    // A live change: applied at once, in the meeting.
    let live = base.clone() + "auth:\n  allowRegistration: false\n";
    let line = edit_config(&mut m, &live);
    assert!(line.contains("applied: auth.allowRegistration"), "{line}");
    let body = json!({"email": "carol@example.test", "password": "correct horse battery", "name": "carol"});
    assert_eq!(
        m.call("POST", "/api/auth/register", None, Some(body)).0,
        403
    );

    // A change LiveKit restarts for: pending while the meeting is live.
    let restart = live.replacen("livekit:\n", "livekit:\n  logLevel: debug\n", 1);
    let line = edit_config(&mut m, &restart);
    assert!(
        line.contains("LiveKit restart pending: livekit.logLevel"),
        "{line}"
    );
    let (st, lk) = m.call("GET", "/api/admin/livekit", Some(&admin), None);
    assert_eq!(st, 200, "{lk}");
    assert_eq!(
        lk["pending"], "LiveKit restart pending: livekit.logLevel",
        "{lk}"
    );
    let (_, ready) = m.b.ready().unwrap();
    assert_eq!(
        ready["livekit"]["pendingRestart"][0], "livekit.logLevel",
        "{ready}"
    );

    // A config with a problem: refused, the meeting and the pending restart untouched.
    let broken = restart.replace("reconcileInterval: 1h", "reconcileInterval: soon");
    let line = edit_config(&mut m, &broken);
    assert!(
        line.contains("refused") && line.contains("rooms.reconcileInterval"),
        "{line}"
    );

    // Everyone is still in the same session, and LiveKit was not restarted under them.
    assert_same_session(&mut pa, &sessions[0]);
    assert_same_session(&mut pb, &sessions[1]);
    assert_eq!(m.metric(left), left_before, "no participant_left");
    assert_eq!(
        m.b.livekit_pid(),
        livekit,
        "LiveKit restarted during the meeting"
    );
    let (_, lk) = m.call("GET", "/api/admin/livekit", Some(&admin), None);
    assert_eq!(
        lk["pending"], "LiveKit restart pending: livekit.logLevel",
        "{lk}"
    );

    // The meeting ends: the pending restart is applied.
    pa.send("leave");
    pb.send("leave");
    assert!(pa.wait_exit().success() && pb.wait_exit().success());
    m.b.wait_for("the pending LiveKit restart", |b| {
        let restarted = b
            .logs()
            .contains("restarting LiveKit (no meeting live) to apply: livekit.logLevel");
        let (st, r) = b.ready()?;
        let pid = r["livekit"]["pid"].as_u64()?;
        (restarted && st == 200 && pid != u64::from(livekit)).then_some(())
    });
    let (_, lk) = m.call("GET", "/api/admin/livekit", Some(&admin), None);
    assert!(lk["pending"].is_null(), "{lk}");
}

/// A test certificate authority named `name`.
fn test_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// An API certificate for the address participants use (`127.0.0.1`, the host in the join's
/// `livekitHost`) and `localhost`, signed by `ca`: (certificate PEM, key PEM).
fn api_certificate(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    serial: u64,
) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from(serial));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bedrud meeting test");
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes `text` to `path` as certbot does: a new file renamed over the old one.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A new TLS connection to bedrud's API on 127.0.0.1:`port`, verified against `ca` alone:
/// the (serial, issuer) of the certificate it was given.
fn served_certificate(
    port: u16,
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
) -> (String, String) {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .unwrap_or_else(|e| panic!("TLS handshake with the API: {e}"));
    }
    let der = conn.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    (cert.raw_serial_as_string(), cert.issuer().to_string())
}

/// A plain-HTTP relay (socat) to bedrud's HTTPS listener that verifies it against `ca_file`:
/// LiveKit runs with an empty environment and trusts only the system's roots, which the test's
/// CA is not among, so its webhooks reach bedrud through this (`livekit.webhookUrl`).
struct WebhookRelay {
    child: std::process::Child,
    port: u16,
}

impl WebhookRelay {
    fn start(api: u16, ca_file: &std::path::Path) -> WebhookRelay {
        let port = free_port(false);
        let child = std::process::Command::new("socat")
            .args([
                format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                format!(
                    "OPENSSL:127.0.0.1:{api},cafile={},verify=1",
                    ca_file.display()
                ),
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat is not installed: apt-get install socat (scripts/setup.sh installs it)");
        WebhookRelay { child, port }
    }
}

impl Drop for WebhookRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 13 in a real meeting over TLS: participants connect with `wss://` through bedrud's own
/// `/livekit` signaling proxy, trusting only a test CA; a config reload and then an API
/// certificate renewal on disk (new CA, new serial, renamed into place) leave each of them in the
/// same session (no reconnect, no participant_left) with LiveKit untouched, and a new TLS
/// connection gets the renewed certificate. TURN/TLS stays off (no `server.host`), so the
/// renewal concerns the API listener only and no LiveKit restart is pending.
#[test]
fn participants_through_the_tls_proxy_stay_through_a_certificate_renewal() {
    require_private_network("meeting");
    let sb = Sandbox::new();
    let tls = sb.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    let (one, two) = (test_ca("bedrud test CA one"), test_ca("bedrud test CA two"));
    // The participants trust both CAs (as a client trusts the public roots), nothing else.
    let bundle = tls.join("ca-bundle.pem");
    std::fs::write(&bundle, one.pem() + &two.pem()).unwrap();
    let (cert_file, key_file) = (tls.join("cert.pem"), tls.join("key.pem"));
    let (cert, key) = api_certificate(&one, 3001);
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let server = format!(
        "server:\n  enableTLS: true\n  certFile: {}\n  keyFile: {}\n",
        cert_file.display(),
        key_file.display()
    );
    let relay = WebhookRelay::start(sb.ports.api, &bundle);
    let webhooks = format!(
        "  webhookUrl: http://127.0.0.1:{}/api/livekit/webhook\n",
        relay.port
    );
    let base = sb
        .embedded_config(LIVEKIT, &webhooks)
        .replacen("server:\n", &server, 1)
        + WEBHOOKS_ONLY;
    sb.write_config(&base);
    let mut b = sb.start_with_tls(&[], true);
    b.wait_ready();
    let mut m = Meeting { b, sb };
    let api = m.sb.ports.api;
    assert_eq!(
        served_certificate(api, &one).0,
        "0b:b9",
        "the API serves serial 3001"
    );

    let (alice, alice_id) = m.user("alice@example.test");
    let (bob, bob_id) = m.user("bob@example.test");
    m.room(&alice, json!({"name": "secure"}));
    let trust: &[(&str, &std::path::Path)] = &[("SSL_CERT_FILE", &bundle)];
    let (url_a, token_a) = join_token(&m, &alice, "secure");
    let (url_b, token_b) = join_token(&m, &bob, "secure");
    // Signaling goes to bedrud's TLS listener, not to LiveKit's own port.
    let proxied = format!("wss://127.0.0.1:{api}/livekit");
    assert_eq!(url_a, proxied);
    assert_eq!(url_b, proxied);
    // Without the test CA the SDK refuses bedrud's certificate: the TLS is verified.
    let untrusting = Participant::join(&url_a, &token_a, &["--no-publish"]);
    let refused = untrusting.wait_event("error", |_| true);
    assert!(!untrusting.has_event("connected"), "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("invalid peer certificate: UnknownIssuer"),
        "{refused}"
    );
    drop(untrusting);
    let mut pa = Participant::join_with_env(&url_a, &token_a, &[], trust);
    let mut pb = Participant::join_with_env(&url_b, &token_b, &[], trust);
    let sessions = [
        pa.wait_event("connected", |_| true)["sid"].clone(),
        pb.wait_event("connected", |_| true)["sid"].clone(),
    ];
    pa.wait_event("published", |e| e["source"] == "microphone");
    pb.wait_event("published", |e| e["source"] == "microphone");
    m.wait_present(&alice, "secure", &alice_id, true);
    m.wait_present(&alice, "secure", &bob_id, true);
    let livekit = m.b.livekit_pid();
    let left = r#"bedrud_webhook_events_total{event="participant_left",outcome="applied"}"#;
    let left_before = m.metric(left);
    let admin = m.b.admin_token().expect("an admin token");

    // A config reload in the meeting.
    let live = base.clone() + "auth:\n  allowRegistration: false\n";
    let line = edit_config(&mut m, &live);
    assert!(line.contains("applied: auth.allowRegistration"), "{line}");

    // The API certificate is renewed on disk (another CA, a new serial), key then certificate
    // renamed into place: picked up by the file watch, no signal.
    let (cert, key) = api_certificate(&two, 3002);
    replace_file(&key_file, &key);
    replace_file(&cert_file, &cert);
    m.b.wait_for("the certificate swap", |b| {
        b.logs().contains("API certificate swapped").then_some(())
    });
    let (serial, issuer) = served_certificate(api, &two);
    assert_eq!(serial, "0b:ba", "a new connection gets serial 3002");
    assert!(issuer.contains("bedrud test CA two"), "{issuer}");

    // The signaling connections made before the renewal still carry LiveKit's messages: a
    // server-side mute reaches Bob over his wss:// connection.
    let muted = mute_when_listed(&mut m.b, "secure", &bob_id, &alice);
    pb.wait_event("track_muted", |e| e["sid"] == muted["muted"][0]);

    // Everyone is still in the same session, and LiveKit was not restarted under them.
    assert_same_session(&mut pa, &sessions[0]);
    assert_same_session(&mut pb, &sessions[1]);
    assert_eq!(m.metric(left), left_before, "no participant_left");
    assert_eq!(
        m.b.livekit_pid(),
        livekit,
        "LiveKit restarted during the meeting"
    );
    let (st, lk) = m.call("GET", "/api/admin/livekit", Some(&admin), None);
    assert_eq!(st, 200, "{lk}");
    assert!(lk["pending"].is_null(), "no LiveKit restart pending: {lk}");

    pa.send("leave");
    pb.send("leave");
    assert!(pa.wait_exit().success() && pb.wait_exit().success());
    m.wait_present(&alice, "secure", &alice_id, false);
    m.wait_present(&alice, "secure", &bob_id, false);
    assert!(
        m.metric(left) >= left_before + 2.0,
        "their leaving came by webhook"
    );
}

/// The participant is connected in session `sid`, and never dropped or reconnected.
fn assert_same_session(p: &mut Participant, sid: &Value) {
    p.send("state");
    let state = p.wait_event("state", |_| true);
    assert_eq!(state["connection_state"], "CONN_CONNECTED", "{state}");
    assert_eq!(&state["sid"], sid, "the same session");
    for gone in ["reconnecting", "disconnected"] {
        assert!(!p.has_event(gone), "{gone}: {:?}", p.events());
    }
}
