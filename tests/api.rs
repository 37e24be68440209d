//! The HTTP API: accounts, rooms, join tokens and their grants, guests, webhook security.
//! What never reaches LiveKit runs against bedrud in-process (`TestApp`, milliseconds); joins and
//! the admin status run against a real bedrud with its real embedded LiveKit (`Real`).
//! Participants with media are in tests/meeting.rs.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use common::webhooks::{participant_event, post_all, sign, Signed};
use common::*;
use serde_json::{json, Value};

/// A real bedrud with its real embedded LiveKit, for what touches LiveKit (joins, admin status).
struct Real {
    b: Bedrud,
    sb: Sandbox,
}

impl Real {
    fn start(extra: &str) -> Real {
        let (b, sb) = ready_bedrud(extra);
        Real { b, sb }
    }
}

impl Api for Real {
    fn url(&self, path: &str) -> String {
        self.b.url(path)
    }
}

fn create_room(api: &impl Api, token: &str, body: Value) -> (u16, Value) {
    api.call("POST", "/api/room/create", Some(token), Some(body))
}

fn webhook(api: &impl Api, body: &[u8], auth: Option<String>) -> (u16, Value) {
    call_with(
        "POST",
        &api.url("/api/livekit/webhook"),
        &[("Authorization", auth)],
        Some(body.to_vec()),
    )
}

fn joined_event(id: &str, room: &str, identity: &str) -> Vec<u8> {
    json!({
        "event": "participant_joined", "id": id, "createdAt": "1700000002",
        "room": {"sid": "RM_x", "name": room},
        "participant": {"sid": format!("PA_{identity}"), "identity": identity, "name": identity, "state": "ACTIVE", "joinedAt": "1700000001"}
    })
    .to_string()
    .into_bytes()
}

#[test]
fn accounts_register_login_refresh_rotation_reuse_and_logout() {
    let api = TestApp::spawn();
    let (access, refresh, id) = api.register("ada@example.test");
    let (st, me) = api.call("GET", "/api/auth/me", Some(&access), None);
    assert_eq!((st, me["user"]["id"].as_str()), (200, Some(id.as_str())));
    assert!(me["user"].get("passwordHash").is_none() && !me.to_string().contains("argon2"));

    // Duplicate email, bad input, wrong password: JSON errors with the right codes.
    let (st, body) = api.call(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"email": "ADA@example.test", "password": "another password", "name": "x"})),
    );
    assert_eq!(st, 409, "{body}");
    let (st, body) = api.call(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"email": "nope", "password": "short", "name": ""})),
    );
    assert_eq!(st, 400);
    assert!(
        body["error"].as_str().unwrap().starts_with("email:"),
        "{body}"
    );
    let (st, body) = api.call(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"email": 5})),
    );
    assert_eq!(st, 400, "{body}");
    assert!(body["error"].is_string());
    let (st, _) = api.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "ada@example.test", "password": "wrong password"})),
    );
    assert_eq!(st, 401);
    let (st, login) = api.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "Ada@Example.test", "password": "correct horse battery"})),
    );
    assert_eq!(st, 200, "{login}");

    // A refresh token is not an access token.
    let (st, _) = api.call("GET", "/api/auth/me", Some(&refresh), None);
    assert_eq!(st, 401);
    // Rotation: the old refresh token is spent; presenting it again revokes the new one too.
    let (st, rotated) = api.call(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({"refreshToken": refresh})),
    );
    assert_eq!(st, 200, "{rotated}");
    let newer = rotated["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(newer, refresh);
    let (st, body) = api.call(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({"refreshToken": refresh})),
    );
    assert_eq!(st, 401);
    assert!(
        body["error"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    let (st, _) = api.call(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({"refreshToken": newer})),
    );
    assert_eq!(st, 401, "reuse detection revoked the whole family");
    // The separate login session is unaffected, and logout ends it.
    let other = login["refreshToken"].as_str().unwrap();
    let (st, _) = api.call(
        "POST",
        "/api/auth/logout",
        None,
        Some(json!({"refreshToken": other})),
    );
    assert_eq!(st, 204);
    let (st, _) = api.call(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({"refreshToken": other})),
    );
    assert_eq!(st, 401);
}

#[test]
fn sign_in_attempts_are_rate_limited() {
    let api = TestApp::with_config("auth:\n  loginAttemptsPerMinute: 3\n");
    api.register("bob@example.test");
    let attempt = || {
        api.call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": "bob@example.test", "password": "wrong password"})),
        )
    };
    for _ in 0..3 {
        assert_eq!(attempt().0, 401);
    }
    let (st, body) = attempt();
    assert_eq!(st, 429, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("too many sign-in attempts"));
    // Even the right password is refused while limited.
    let (st, _) = api.call(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "bob@example.test", "password": "correct horse battery"})),
    );
    assert_eq!(st, 429);
}

#[test]
fn rooms_create_list_and_taken_names() {
    let api = TestApp::spawn();
    let (alice, _, alice_id) = api.register("alice@example.test");
    let (bob, _, bob_id) = api.register("bob@example.test");
    let (st, body) = create_room(&api, &alice, no_video());
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["room"]["ownerId"], alice_id.as_str());
    assert_eq!(body["room"]["moderators"][0], bob_id.as_str());

    let (st, body) = create_room(&api, &bob, json!({"name": "no-video"}));
    assert_eq!(st, 409);
    assert!(
        body["error"].as_str().unwrap().contains("already taken"),
        "{body}"
    );
    let (st, _) = create_room(&api, &bob, json!({"name": "bad name!"}));
    assert_eq!(st, 400);
    let (st, _) = create_room(
        &api,
        &bob,
        json!({"name": "x", "settings": {"moderators": ["ghost@example.test"]}}),
    );
    assert_eq!(st, 400);
    let (st, _) = api.call(
        "POST",
        "/api/room/create",
        None,
        Some(json!({"name": "anon"})),
    );
    assert_eq!(st, 401);

    let (st, list) = api.call("GET", "/api/room/list", Some(&bob), None);
    assert_eq!(st, 200);
    assert_eq!(list["rooms"][0]["name"], "no-video");
    assert_eq!(list["rooms"][0]["participants"], 0);
    let (st, body) = api.call(
        "POST",
        "/api/room/join",
        Some(&alice),
        Some(json!({"roomName": "no-video"})),
    );
    assert_eq!(st, 503, "no LiveKit, no join: {body}");
}

/// A room without video or screen share, moderated by bob.
fn no_video() -> Value {
    json!({"name": "no-video", "maxParticipants": 5, "settings": {"allowVideo": false, "allowScreenShare": false, "moderators": ["bob@example.test"]}})
}

#[test]
fn joins_carry_the_rooms_limits_and_roles_in_their_token_grants() {
    let api = Real::start("");
    let (alice, _, alice_id) = api.register("alice@example.test");
    api.register("bob@example.test");
    assert_eq!(create_room(&api, &alice, no_video()).0, 201);

    // Alice (owner) joins: a LiveKit token for her stable identity, with the room's limits.
    let (st, join) = api.call(
        "POST",
        "/api/room/join",
        Some(&alice),
        Some(json!({"roomName": "no-video"})),
    );
    assert_eq!(st, 200, "{join}");
    // No livekit.host or server.host: clients are sent to the host they reached bedrud at, where
    // bedrud proxies LiveKit's signaling under /livekit (embedded mode).
    let api_port = api.sb.ports.api;
    assert_eq!(
        join["livekitHost"],
        format!("ws://127.0.0.1:{api_port}/livekit")
    );
    let (st, via_name) = call_with(
        "POST",
        &api.url("/api/room/join"),
        &[
            ("Authorization", Some(format!("Bearer {alice}"))),
            (
                "Host",
                Some(format!("meet.example.test:{}", api.sb.ports.api)),
            ),
        ],
        Some(json!({"roomName": "no-video"}).to_string().into_bytes()),
    );
    assert_eq!(st, 200, "{via_name}");
    assert_eq!(
        via_name["livekitHost"],
        format!("ws://meet.example.test:{api_port}/livekit")
    );
    let claims = jwt_claims(join["token"].as_str().unwrap());
    assert_eq!(claims["sub"], format!("u_{alice_id}"));
    assert_eq!(claims["iss"], "APItest");
    assert_eq!(claims["video"]["room"], "no-video");
    assert_eq!(claims["video"]["roomJoin"], true);
    assert_eq!(claims["video"]["roomAdmin"], true, "the owner moderates");
    assert_eq!(claims["video"]["canPublishSources"], json!(["microphone"]));
    assert_eq!(claims["video"]["canUpdateOwnMetadata"], false);
    assert!(
        claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap() <= 600,
        "short-lived"
    );
    // The same identity every time: stable per user.
    let (_, again) = api.call(
        "POST",
        "/api/room/join",
        Some(&alice),
        Some(json!({"roomName": "no-video"})),
    );
    assert_eq!(
        jwt_claims(again["token"].as_str().unwrap())["sub"],
        claims["sub"]
    );

    // A plain participant gets no admin grant.
    let (carol, _, _) = api.register("carol@example.test");
    let (_, join) = api.call(
        "POST",
        "/api/room/join",
        Some(&carol),
        Some(json!({"roomName": "no-video"})),
    );
    let claims = jwt_claims(join["token"].as_str().unwrap());
    assert!(claims["video"].get("roomAdmin").is_none() || claims["video"]["roomAdmin"] == false);
    let (st, _) = api.call(
        "POST",
        "/api/room/join",
        Some(&carol),
        Some(json!({"roomName": "missing"})),
    );
    assert_eq!(st, 404);
}

/// Three rooms by `owner@`: private (guests allowed), open (guests allowed), members-only.
fn rooms_for_guests(api: &impl Api) -> (String, String) {
    let (owner, _, _) = api.register("owner@example.test");
    let (other, _, _) = api.register("other@example.test");
    for body in [
        json!({"name": "private", "isPublic": false, "settings": {"allowGuests": true}}),
        json!({"name": "open", "settings": {"allowGuests": true}}),
        json!({"name": "members-only"}),
    ] {
        assert_eq!(create_room(api, &owner, body).0, 201);
    }
    (owner, other)
}

fn guest_join(api: &impl Api, room: &str, name: &str) -> (u16, Value) {
    api.call(
        "POST",
        "/api/room/guest-join",
        None,
        Some(json!({"roomName": room, "guestName": name})),
    )
}

/// Refusals come before LiveKit is asked anything, so they need none.
#[test]
fn private_rooms_and_guest_rules_refuse_without_livekit() {
    let api = TestApp::spawn();
    let (_, other) = rooms_for_guests(&api);
    let (st, body) = api.call(
        "POST",
        "/api/room/join",
        Some(&other),
        Some(json!({"roomName": "private"})),
    );
    assert_eq!(st, 403);
    assert!(body["error"].as_str().unwrap().contains("private"));
    let (st, _) = api.call("GET", "/api/room/private/participants", Some(&other), None);
    assert_eq!(st, 403);
    assert_eq!(
        guest_join(&api, "private", "Visitor").0,
        404,
        "private rooms admit no guests, and anonymous callers cannot tell them from none"
    );
    assert_eq!(
        guest_join(&api, "members-only", "Visitor").0,
        403,
        "guests not allowed by the room"
    );
    assert_eq!(guest_join(&api, "missing", "Visitor").0, 404);
    assert_eq!(guest_join(&api, "open", "").0, 400);
    let (st, body) = guest_join(&api, "open", "Visitor");
    assert_eq!(st, 503, "allowed, but there is no LiveKit: {body}");

    let closed = TestApp::with_config("rooms:\n  allowGuests: false\n");
    let (o, _, _) = closed.register("o@example.test");
    create_room(
        &closed,
        &o,
        json!({"name": "open", "settings": {"allowGuests": true}}),
    );
    let (st, _) = guest_join(&closed, "open", "V");
    assert_eq!(st, 403, "the server-wide switch wins");
}

#[test]
fn private_rooms_admit_their_owner_and_open_rooms_admit_guests() {
    let api = Real::start("");
    let (owner, _) = rooms_for_guests(&api);
    let (st, body) = api.call(
        "POST",
        "/api/room/join",
        Some(&owner),
        Some(json!({"roomName": "private"})),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = guest_join(&api, "open", "Visitor");
    assert_eq!(st, 200, "{body}");
    let claims = jwt_claims(body["token"].as_str().unwrap());
    assert!(claims["sub"].as_str().unwrap().starts_with("g_"));
    assert_eq!(claims["name"], "Visitor");
    assert_eq!(claims["metadata"], r#"{"role":"guest"}"#);
}

#[test]
fn webhooks_forged_tampered_replayed_oversized_and_unknown() {
    let api = TestApp::spawn();
    let (owner, _, _) = api.register("owner@example.test");
    create_room(&api, &owner, json!({"name": "standup"}));
    let participants = || {
        api.call("GET", "/api/room/standup/participants", Some(&owner), None)
            .1["participants"]
            .as_array()
            .unwrap()
            .len()
    };

    let body = joined_event("EV_forged", "standup", "u_mallory");
    let (st, _) = webhook(
        &api,
        &body,
        Some(sign(&body, "forged-secret-forged-secret-forged-secret")),
    );
    assert_eq!(st, 401);
    let (st, _) = webhook(&api, &body, None);
    assert_eq!(st, 401);
    let good = joined_event("EV_1", "standup", "u_dave");
    let tampered = joined_event("EV_1", "standup", "u_mallory");
    let (st, _) = webhook(&api, &tampered, Some(sign(&good, SECRET)));
    assert_eq!(st, 401, "the body must match the signed hash");
    assert_eq!(participants(), 0, "refused webhooks changed nothing");

    let (st, r) = webhook(&api, &good, Some(sign(&good, SECRET)));
    assert_eq!((st, r["status"].as_str()), (200, Some("applied")));
    let (st, r) = webhook(&api, &good, Some(sign(&good, SECRET)));
    assert_eq!((st, r["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(participants(), 1, "a replayed event is applied once");

    let unknown = joined_event("EV_2", "not-a-bedrud-room", "u_x");
    assert_eq!(webhook(&api, &unknown, Some(sign(&unknown, SECRET))).0, 200);
    let stranger_left = json!({"event": "participant_left", "id": "EV_3", "room": {"name": "standup"}, "participant": {"sid": "PA_nobody", "identity": "u_nobody"}}).to_string().into_bytes();
    assert_eq!(
        webhook(&api, &stranger_left, Some(sign(&stranger_left, SECRET))).0,
        200
    );
    assert_eq!(
        participants(),
        1,
        "events for unknown rooms or participants do no harm"
    );

    // An oversized body is refused from its Content-Length alone; the client waits for
    // "100 Continue" (which never comes) instead of pushing megabytes at a closed socket.
    let huge = vec![b' '; 2 * 1024 * 1024];
    let (st, body) = post_expecting_continue(
        api.port(),
        "/api/livekit/webhook",
        &sign(&huge, SECRET),
        huge.len(),
    );
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("larger than"), "{body}");

    let (st, metrics) = api.call("GET", "/metrics", None, None);
    assert_eq!(st, 200);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(
            r#"bedrud_webhook_events_total{event="participant_joined",outcome="duplicate"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"bedrud_webhook_events_total{event="unknown",outcome="rejected"} 3"#),
        "{text}"
    );
}

#[test]
fn admin_status_and_cli_created_admin() {
    let sb = Sandbox::new();
    let cfg = sb.write_config(&sb.embedded_config(LIVEKIT, ""));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bedrud"));
    cmd.args([
        "user",
        "create-admin",
        "--email",
        "root@example.test",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    run_with_input(&mut cmd, b"admin password 123\n");

    let mut b = sb.start(&[]);
    b.wait_ready();
    let (st, login) = call(
        "POST",
        &b.url("/api/auth/login"),
        None,
        Some(&json!({"email": "root@example.test", "password": "admin password 123"})),
    );
    assert_eq!(st, 200, "{login}");
    assert_eq!(login["user"]["role"], "admin");
    let admin = login["accessToken"].as_str().unwrap();
    let (st, status) = call("GET", &b.url("/api/admin/livekit"), Some(admin), None);
    assert_eq!(st, 200, "{status}");
    assert_eq!(status["mode"], "embedded");
    assert_eq!(status["connected"], true);
    assert_eq!(status["version"], LIVEKIT);
    assert_eq!(status["nodeIp"], "127.0.0.1");
    assert_eq!(status["restarts"], 0);

    let (st, reg) = call(
        "POST",
        &b.url("/api/auth/register"),
        None,
        Some(&json!({"email": "u@example.test", "password": "user password", "name": "U"})),
    );
    assert_eq!(st, 201);
    let (st, _) = call(
        "GET",
        &b.url("/api/admin/livekit"),
        reg["accessToken"].as_str(),
        None,
    );
    assert_eq!(st, 403, "admins only");
}

#[test]
fn unknown_endpoints_and_methods_answer_json() {
    let api = TestApp::spawn();
    let (st, body) = api.call("GET", "/api/nothing", None, None);
    assert_eq!(st, 404);
    assert_eq!(body["error"], "no such endpoint");
}

#[test]
fn a_webhook_that_cannot_be_stored_gets_a_5xx_and_its_retry_succeeds() {
    use sqlx::Connection;
    let api = TestApp::spawn();
    let (owner, _, _) = api.register("owner@example.test");
    create_room(&api, &owner, json!({"name": "standup"}));

    // Break the store underneath bedrud: the event table disappears for a while.
    let rt = tokio::runtime::Runtime::new().unwrap();
    sqlx::any::install_default_drivers();
    let db = format!("sqlite://{}", api.database().display());
    let mut conn = rt.block_on(sqlx::AnyConnection::connect(&db)).unwrap();
    let rename = |conn: &mut sqlx::AnyConnection, sql: &str| {
        rt.block_on(sqlx::query(sql).execute(conn)).unwrap();
    };
    rename(
        &mut conn,
        "ALTER TABLE webhook_events RENAME TO webhook_events_away",
    );

    let body = joined_event("EV_retry", "standup", "u_erin");
    let jwt = sign(&body, SECRET);
    let (st, r) = webhook(&api, &body, Some(jwt.clone()));
    assert_eq!(st, 503, "LiveKit retries 5xx: {r}");

    rename(
        &mut conn,
        "ALTER TABLE webhook_events_away RENAME TO webhook_events",
    );
    let (st, r) = webhook(&api, &body, Some(jwt));
    assert_eq!(
        (st, r["status"].as_str()),
        (200, Some("applied")),
        "the retry is applied: {r}"
    );
    let (_, list) = api.call("GET", "/api/room/standup/participants", Some(&owner), None);
    assert_eq!(list["participants"][0]["identity"], "u_erin");
}

/// Issue 14: an event answered 200 is in the store, even if bedrud is killed (-9) in the middle
/// of a burst and the batch holding later events never commits (group commit answers only after
/// the commit). Counted: every acknowledged event id and its participant are in the database
/// after the kill, and the restarted bedrud answers each one again as a duplicate.
#[test]
fn acknowledged_webhook_events_survive_kill_9_in_the_middle_of_a_burst() {
    const EVENTS: usize = 20_000;
    const CONNECTIONS: usize = 8;
    // No reconciliation during the test: LiveKit has no such meeting, and reconciling would
    // (rightly) clear the participants the events record.
    let (mut b, sb) = ready_bedrud("rooms:\n  reconcileInterval: 1h\n");
    let (owner, _, _) = b.register("owner@example.test");
    assert_eq!(
        create_room(&b, &owner, json!({"name": "burst"})).0,
        201,
        "room created"
    );
    let events: Arc<Vec<Signed>> = Arc::new(
        (0..EVENTS)
            .map(|i| {
                let body = participant_event(
                    "participant_joined",
                    &format!("EV_{i}"),
                    "burst",
                    &format!("u_{i}"),
                );
                Signed::new(body, SECRET)
            })
            .collect(),
    );
    let (next, acked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let port = b.api_port;
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (events, next, acked) = (events.clone(), next.clone(), acked.clone());
            std::thread::spawn(move || post_all(port, &events, &next, &acked))
        })
        .collect();
    let start = std::time::Instant::now();
    while acked.load(Ordering::Relaxed) < 1_000 {
        assert!(start.elapsed() < PATIENCE, "the burst did not get going");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let livekit = b.livekit_pid();
    b.signal(nix::sys::signal::Signal::SIGKILL);
    b.wait_exit();
    let ok: Vec<usize> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    assert!(
        ok.len() >= 1_000 && ok.len() < EVENTS,
        "bedrud was killed in the middle of the burst ({} of {EVENTS} acknowledged)",
        ok.len()
    );

    // The database as the killed bedrud left it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    sqlx::any::install_default_drivers();
    let db = format!("sqlite://{}", sb.path().join("data/bedrud.db").display());
    let column = |sql: &str| -> std::collections::HashSet<String> {
        rt.block_on(async {
            use sqlx::{Connection, Row};
            let mut conn = sqlx::AnyConnection::connect(&db).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
            rows.iter().map(|r| r.get::<String, _>(0)).collect()
        })
    };
    let stored = column("SELECT id FROM webhook_events");
    let present = column("SELECT identity FROM participants WHERE room_name = 'burst'");
    let lost: Vec<usize> = ok
        .iter()
        .copied()
        .filter(|i| !stored.contains(&format!("EV_{i}")) || !present.contains(&format!("u_{i}")))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are not in the store (first: EV_{}); {} stored",
        lost.len(),
        ok.len(),
        lost[0],
        stored.len()
    );

    // Restarted, bedrud knows every acknowledged event: LiveKit's retry of one is a duplicate.
    wait_gone(livekit, "LiveKit of the killed bedrud");
    let mut b = sb.start(&[]);
    b.wait_ready();
    let duplicates = ok
        .iter()
        .filter(|&&i| {
            let (st, r) = webhook(&b, &events[i].body, Some(events[i].jwt.clone()));
            st == 200 && r["status"] == "duplicate"
        })
        .count();
    assert_eq!(
        duplicates,
        ok.len(),
        "every acknowledged event is a duplicate after the restart"
    );
}

/// Issue 14: 500 joins racing into one fresh room make LiveKit create it once. LiveKit's server
/// API is reached through a counting proxy (`livekit.internalHost`), which counts CreateRoom
/// requests as LiveKit receives them.
#[test]
fn a_join_storm_on_a_fresh_room_creates_it_in_livekit_once() {
    const JOINS: usize = 500;
    const USERS: usize = 20;
    let sb = Sandbox::new();
    let proxy = CountingProxy::start(sb.ports.livekit, b"/twirp/livekit.RoomService/CreateRoom ");
    sb.write_config(
        &(sb.embedded_config(
            LIVEKIT,
            &format!("  internalHost: http://127.0.0.1:{}\n", proxy.port),
        ) + "auth:\n  registrationsPerMinute: 100\n"),
    );
    let mut b = sb.start(&[]);
    b.wait_ready();
    let tokens: Vec<String> = (0..USERS)
        .map(|i| b.register(&format!("u{i}@example.test")).0)
        .collect();
    let (st, r) = create_room(
        &b,
        &tokens[0],
        json!({"name": "storm", "isPublic": true, "maxParticipants": 1000}),
    );
    assert_eq!(st, 201, "{r}");
    assert_eq!(
        proxy.count(),
        0,
        "creating bedrud's room does not touch LiveKit"
    );

    let gate = Arc::new(Barrier::new(JOINS));
    let url = b.url("/api/room/join");
    let joins: Vec<_> = (0..JOINS)
        .map(|i| {
            let (gate, url, token) = (gate.clone(), url.clone(), tokens[i % USERS].clone());
            std::thread::spawn(move || {
                gate.wait();
                call(
                    "POST",
                    &url,
                    Some(&token),
                    Some(&json!({"roomName": "storm"})),
                )
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = joins.into_iter().map(|j| j.join().unwrap()).collect();
    let refused: Vec<&(u16, Value)> = answers.iter().filter(|(st, _)| *st != 200).collect();
    assert!(
        refused.is_empty(),
        "every join is admitted: {:?}",
        refused.first()
    );
    assert_eq!(
        proxy.count(),
        1,
        "{JOINS} concurrent joins to a fresh room: LiveKit received one CreateRoom"
    );
}

/// A TCP proxy on a free loopback port in front of `upstream`, counting how often `needle`
/// appears in what clients send (an HTTP request line names its path once).
struct CountingProxy {
    port: u16,
    seen: Arc<AtomicUsize>,
}

impl CountingProxy {
    fn start(upstream: u16, needle: &'static [u8]) -> CountingProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let counter = counter.clone();
                std::thread::spawn(move || {
                    // The tail of the previous read, so a needle split across reads is seen.
                    let mut carry: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = c_read.read(&mut buf) {
                        carry.extend_from_slice(&buf[..n]);
                        let found = carry.windows(needle.len()).filter(|w| *w == needle).count();
                        counter.fetch_add(found, Ordering::SeqCst);
                        let keep = carry.len().min(needle.len() - 1);
                        carry.drain(..carry.len() - keep);
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Write);
                });
            }
        });
        CountingProxy { port, seen }
    }

    fn count(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

#[test]
fn recording_endpoints_refuse_before_reaching_egress() {
    let off = TestApp::spawn();
    let (alice, _, _) = off.register("alice@bedrud.test");
    let (bob, _, _) = off.register("bob@bedrud.test");
    let (st, r) = off.call(
        "POST",
        "/api/room/create",
        Some(&alice),
        Some(json!({"name": "r"})),
    );
    assert_eq!(st, 201, "{r}");
    let start = "/api/room/r/recording/start";
    let audio = json!({"audioOnly": true});
    assert_eq!(off.call("POST", start, None, Some(audio.clone())).0, 401);
    assert_eq!(
        off.call("POST", start, Some(&bob), Some(audio.clone())).0,
        403
    );
    let (st, r) = off.call(
        "POST",
        "/api/room/none/recording/start",
        Some(&alice),
        Some(audio.clone()),
    );
    assert_eq!(st, 404, "{r}");
    let (st, r) = off.call("POST", start, Some(&alice), Some(json!({"audio": true})));
    assert_eq!(st, 400, "unknown field: {r}");
    let (st, r) = off.call("POST", start, Some(&alice), Some(json!({"layout": "Grid"})));
    assert_eq!(st, 400, "{r}");
    let (st, r) = off.call("POST", start, Some(&alice), Some(audio.clone()));
    assert_eq!(st, 503, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("recording.enabled"),
        "{r}"
    );

    let on = TestApp::with_config("recording:\n  enabled: true\n");
    let (alice, _, _) = on.register("alice@bedrud.test");
    let (bob, _, _) = on.register("bob@bedrud.test");
    let (st, r) = on.call(
        "POST",
        "/api/room/create",
        Some(&alice),
        Some(json!({"name": "r"})),
    );
    assert_eq!(st, 201, "{r}");
    // LiveKit is down: 503 with its reason, and no recording is left behind.
    let (st, r) = on.call("POST", start, Some(&alice), Some(audio));
    assert_eq!(st, 503, "{r}");
    let (st, list) = on.call("GET", "/api/room/r/recordings", Some(&alice), None);
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["recordings"], json!([]));
    assert_eq!(
        on.call("GET", "/api/room/r/recordings", Some(&bob), None).0,
        403
    );
    let (st, r) = on.call("POST", "/api/room/r/recording/stop", Some(&alice), None);
    assert_eq!(st, 404, "never recorded: {r}");
    for (method, path) in [
        ("GET", "/api/recordings/nosuch"),
        ("GET", "/api/recordings/nosuch/download"),
        ("DELETE", "/api/recordings/nosuch"),
    ] {
        let (st, r) = on.call(method, path, Some(&alice), None);
        assert_eq!(st, 404, "{method} {path}: {r}");
    }
}
