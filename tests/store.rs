//! The store, the same tests on SQLite and on a real PostgreSQL (scripts/postgres.sh starts one;
//! scripts/test.sh passes its URL in `$BEDRUD_TEST_POSTGRES`). Each test gets a fresh database.

use bedrud::store::{
    Applied, Event, EventLog, LiveParticipant, NewRecording, Outcome, PresenceChange,
    RecordingStatus, RefreshUse, Role, Room, Store, StoreError,
};

/// A fresh, empty database of each kind, migrated.
async fn stores() -> Vec<(Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(&bedrud::store::default_url(dir.path()))
        .await
        .unwrap();
    vec![(sqlite, Some(dir)), (fresh_postgres().await, None)]
}

async fn fresh_postgres() -> Store {
    Store::connect(&fresh_postgres_url().await).await.unwrap()
}

/// A new, empty database on the test PostgreSQL; its URL.
async fn fresh_postgres_url() -> String {
    let base = std::env::var("BEDRUD_TEST_POSTGRES").unwrap_or_default();
    assert!(
        !base.is_empty(),
        "$BEDRUD_TEST_POSTGRES is not set: start the test PostgreSQL with `scripts/postgres.sh start` \
         and export BEDRUD_TEST_POSTGRES=\"$(scripts/postgres.sh url)\" (scripts/test.sh does both)"
    );
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {base}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

fn room(name: &str, owner: &str) -> Room {
    Room {
        id: String::new(),
        name: name.into(),
        owner_id: owner.into(),
        is_public: true,
        max_participants: 10,
        allow_video: false,
        allow_audio: true,
        allow_screen_share: true,
        allow_guests: false,
        moderators: vec![],
    }
}

fn participant(identity: &str, sid: &str) -> LiveParticipant {
    LiveParticipant {
        identity: identity.into(),
        sid: sid.into(),
        name: identity.to_uppercase(),
        joined_at: 1_700_000_000_000,
    }
}

#[tokio::test]
async fn users_are_unique_by_email_case_insensitively() {
    for (s, _dir) in stores().await {
        let u = s
            .create_user("Ada@Example.test", "Ada", "hash", Role::User)
            .await
            .unwrap();
        assert_eq!(u.email, "ada@example.test");
        let again = s
            .create_user("ada@example.TEST", "Other", "hash", Role::User)
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict("email"))),
            "{:?} {again:?}",
            s.kind()
        );
        let found = s.user_by_email("ADA@example.test").await.unwrap().unwrap();
        assert_eq!(found.id, u.id);
        s.set_role(&u.id, Role::Admin).await.unwrap();
        assert_eq!(
            s.user_by_id(&u.id).await.unwrap().unwrap().role,
            Role::Admin
        );
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family() {
    for (s, _dir) in stores().await {
        let u = s
            .create_user("a@x.test", "A", "h", Role::User)
            .await
            .unwrap();
        let later = bedrud::store::now_ms() + 60_000;
        s.insert_refresh_token("h1", &u.id, "fam", later)
            .await
            .unwrap();
        s.insert_refresh_token("h-other", &u.id, "fam2", later)
            .await
            .unwrap();
        assert_eq!(
            s.use_refresh_token("h1").await.unwrap(),
            RefreshUse::Rotated {
                user_id: u.id.clone(),
                family: "fam".into()
            }
        );
        s.insert_refresh_token("h2", &u.id, "fam", later)
            .await
            .unwrap();
        // h1 presented again: a replay. The family (h2 too) is revoked; other sign-ins are not.
        assert_eq!(s.use_refresh_token("h1").await.unwrap(), RefreshUse::Reused);
        assert_eq!(
            s.use_refresh_token("h2").await.unwrap(),
            RefreshUse::Invalid
        );
        assert!(matches!(
            s.use_refresh_token("h-other").await.unwrap(),
            RefreshUse::Rotated { .. }
        ));
        assert_eq!(
            s.use_refresh_token("unknown").await.unwrap(),
            RefreshUse::Invalid
        );
        s.insert_refresh_token("old", &u.id, "fam3", bedrud::store::now_ms() - 1)
            .await
            .unwrap();
        assert_eq!(
            s.use_refresh_token("old").await.unwrap(),
            RefreshUse::Invalid,
            "expired"
        );
    }
}

#[tokio::test]
async fn rooms_names_are_unique_and_settings_round_trip() {
    for (s, _dir) in stores().await {
        let owner = s
            .create_user("o@x.test", "O", "h", Role::User)
            .await
            .unwrap();
        let m = s
            .create_user("m@x.test", "M", "h", Role::User)
            .await
            .unwrap();
        let mut new = room("standup", &owner.id);
        new.moderators = vec![m.id.clone()];
        new.is_public = false;
        let created = s.create_room(new.clone()).await.unwrap();
        let loaded = s.room_by_name("standup").await.unwrap().unwrap();
        assert_eq!(created, loaded);
        assert!(!loaded.is_public && !loaded.allow_video && loaded.allow_audio);
        assert_eq!(loaded.moderators, vec![m.id.clone()]);
        let taken = s.create_room(room("standup", &m.id)).await;
        assert!(matches!(taken, Err(StoreError::Conflict("room name"))));
        assert_eq!(
            s.room_by_name("standup").await.unwrap().unwrap().owner_id,
            owner.id,
            "untouched"
        );

        let other = s
            .create_user("z@x.test", "Z", "h", Role::User)
            .await
            .unwrap();
        s.create_room(room("public-one", &owner.id)).await.unwrap();
        let visible: Vec<String> = s
            .list_rooms(&other.id, false)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.room.name)
            .collect();
        assert_eq!(
            visible,
            vec!["public-one"],
            "a private room is hidden from others"
        );
        let for_mod = s.list_rooms(&m.id, false).await.unwrap().len();
        assert_eq!(for_mod, 2);
        assert_eq!(
            s.list_rooms(&other.id, true).await.unwrap().len(),
            2,
            "admins see all"
        );

        s.ban(&loaded.id, "u_bad").await.unwrap();
        s.ban(&loaded.id, "u_bad").await.unwrap();
        assert!(s.is_banned(&loaded.id, "u_bad").await.unwrap());
        assert!(s.unban(&loaded.id, "u_bad").await.unwrap());
        assert!(!s.is_banned(&loaded.id, "u_bad").await.unwrap());
    }
}

#[tokio::test]
async fn webhook_events_apply_once_and_only_to_known_rooms() {
    for (s, _dir) in stores().await {
        let owner = s
            .create_user("o@x.test", "O", "h", Role::User)
            .await
            .unwrap();
        s.create_room(room("standup", &owner.id)).await.unwrap();
        let joined = PresenceChange::Joined {
            room: "standup".into(),
            participant: participant("u_a", "PA_1"),
        };
        assert_eq!(
            s.apply_event("EV_1", "participant_joined", &joined)
                .await
                .unwrap(),
            Applied::Applied
        );
        assert_eq!(
            s.apply_event("EV_1", "participant_joined", &joined)
                .await
                .unwrap(),
            Applied::Duplicate
        );
        assert_eq!(
            s.participants("standup").await.unwrap(),
            vec![participant("u_a", "PA_1")]
        );

        // The same identity reconnects (new sid); the old session's late "left" must not remove it.
        let rejoined = PresenceChange::Joined {
            room: "standup".into(),
            participant: participant("u_a", "PA_2"),
        };
        s.apply_event("EV_2", "participant_joined", &rejoined)
            .await
            .unwrap();
        let late_left = PresenceChange::Left {
            room: "standup".into(),
            identity: "u_a".into(),
            sid: "PA_1".into(),
        };
        s.apply_event("EV_3", "participant_left", &late_left)
            .await
            .unwrap();
        assert_eq!(s.participant_count("standup").await.unwrap(), 1);

        // Unknown room: recorded as seen, no state.
        let stranger = PresenceChange::Joined {
            room: "not-ours".into(),
            participant: participant("x", "PA_9"),
        };
        assert_eq!(
            s.apply_event("EV_4", "participant_joined", &stranger)
                .await
                .unwrap(),
            Applied::Applied
        );
        assert!(s.participants("not-ours").await.unwrap().is_empty());

        s.apply_event(
            "EV_5",
            "room_started",
            &PresenceChange::RoomStarted {
                room: "standup".into(),
                sid: "RM_1".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            s.active_rooms().await.unwrap(),
            vec![("standup".to_string(), 1)]
        );
        s.apply_event(
            "EV_6",
            "room_finished",
            &PresenceChange::RoomFinished {
                room: "standup".into(),
            },
        )
        .await
        .unwrap();
        assert!(s.active_rooms().await.unwrap().is_empty());
        assert_eq!(s.participant_count("standup").await.unwrap(), 0);
        assert_eq!(s.webhook_event_count().await.unwrap(), 6);
    }
}

/// Group commit (issue 14): many events in one transaction, in order, each id once (also
/// within one batch), a banned participant's arrival flagged; concurrent senders through the
/// event log each get their own event's outcome.
#[tokio::test]
async fn a_batch_of_events_applies_in_order_each_id_once_and_admission_follows() {
    for (s, _dir) in stores().await {
        let owner = s
            .create_user("o@x.test", "O", "h", Role::User)
            .await
            .unwrap();
        let standup = s.create_room(room("standup", &owner.id)).await.unwrap();
        s.ban(&standup.id, "u_banned").await.unwrap();
        let event = |id: &str, change: PresenceChange| Event {
            id: id.into(),
            name: "participant_joined".into(),
            change,
        };
        let joined = |who: &str, sid: &str| PresenceChange::Joined {
            room: "standup".into(),
            participant: participant(who, sid),
        };
        let batch = [
            event("EV_1", joined("u_a", "PA_1")),
            event("EV_1", joined("u_a", "PA_other")),
            event("EV_2", joined("u_banned", "PA_2")),
            event(
                "EV_3",
                PresenceChange::Left {
                    room: "standup".into(),
                    identity: "u_a".into(),
                    sid: "PA_1".into(),
                },
            ),
            event("EV_4", joined("u_b", "PA_4")),
        ];
        let outcomes = s
            .apply_events(&batch.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                Applied::Applied,
                Applied::Duplicate,
                Applied::AppliedBanned,
                Applied::Applied,
                Applied::Applied
            ]
        );
        assert_eq!(
            s.participants("standup").await.unwrap(),
            vec![participant("u_b", "PA_4"), participant("u_banned", "PA_2")],
            "u_a joined then left, in order; its duplicate id changed nothing"
        );
        // What a join reads (from memory on SQLite) follows every write: events, bans,
        // reconciliation, closing the room.
        assert_eq!(
            s.admission("standup", &standup.id, "u_banned")
                .await
                .unwrap(),
            (2, true)
        );
        s.unban(&standup.id, "u_banned").await.unwrap();
        s.ban(&standup.id, "u_b").await.unwrap();
        assert_eq!(
            s.admission("standup", &standup.id, "u_banned")
                .await
                .unwrap(),
            (2, false)
        );
        assert_eq!(
            s.admission("standup", &standup.id, "u_b").await.unwrap(),
            (2, true)
        );
        s.sync_room("standup", "RM_1", &[participant("u_b", "PA_4")])
            .await
            .unwrap();
        assert_eq!(
            s.admission("standup", &standup.id, "u_c").await.unwrap(),
            (1, false)
        );
        s.clear_room("standup").await.unwrap();
        assert_eq!(
            s.admission("standup", &standup.id, "u_b").await.unwrap(),
            (0, true)
        );
        s.unban(&standup.id, "u_b").await.unwrap();

        let log = EventLog::start(s.clone());
        let sends = (0..200).map(|i| {
            let log = log.clone();
            let e = event(
                &format!("EV_{}", i % 100 + 10),
                joined(&format!("u_{i}"), "PA"),
            );
            tokio::spawn(async move { log.apply(e).await.unwrap() })
        });
        let mut outcomes = Vec::new();
        for send in sends.collect::<Vec<_>>() {
            outcomes.push(send.await.unwrap());
        }
        let applied = outcomes.iter().filter(|o| **o == Applied::Applied).count();
        assert_eq!(applied, 100, "100 distinct ids among 200 events");
        assert_eq!(s.webhook_event_count().await.unwrap(), 104);
    }
}

/// A batch is folded into a few statements (`store::event_batch`); the result must be what the
/// same events applied one by one, in order, give. Random batches over a small world (two known
/// rooms and an unknown one, three people, three sessions each, repeated ids, room events among
/// them), each applied both ways to its own database, on SQLite and on PostgreSQL.
#[tokio::test]
async fn a_batch_gives_what_its_events_give_one_by_one() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..2 {
        let (batched, _a) = store_of_kind(round).await;
        let (single, _b) = store_of_kind(round).await;
        for s in [&batched, &single] {
            let owner = s
                .create_user("o@x.test", "O", "h", Role::User)
                .await
                .unwrap();
            for name in ["r0", "r1"] {
                s.create_room(room(name, &owner.id)).await.unwrap();
            }
            let r0 = s.room_by_name("r0").await.unwrap().unwrap();
            s.ban(&r0.id, "p2").await.unwrap();
        }
        let mut id = 0;
        for _ in 0..60 {
            let events: Vec<Event> = (0..1 + next(24))
                .map(|_| {
                    let room = format!("r{}", next(3));
                    let who = format!("p{}", next(3));
                    let sid = format!("S{}", next(3));
                    let change = match next(10) {
                        0..=4 => PresenceChange::Joined {
                            room,
                            participant: participant(&who, &sid),
                        },
                        5..=8 => PresenceChange::Left {
                            room,
                            identity: who,
                            sid,
                        },
                        _ => PresenceChange::RoomFinished { room },
                    };
                    // Now and then an id seen before (in this batch or an earlier one).
                    id += 1;
                    let n = if next(5) == 0 { next(id) } else { id };
                    Event {
                        id: format!("EV_{n}"),
                        name: "e".into(),
                        change,
                    }
                })
                .collect();
            let together = batched
                .apply_events(&events.iter().collect::<Vec<_>>())
                .await
                .unwrap();
            let mut alone = Vec::new();
            for e in &events {
                alone.extend(single.apply_events(&[e]).await.unwrap());
            }
            assert_eq!(together, alone, "outcomes of {events:#?}");
            for name in ["r0", "r1", "r2"] {
                let present = batched.participants(name).await.unwrap();
                assert_eq!(
                    present,
                    single.participants(name).await.unwrap(),
                    "room {name} after {events:#?}"
                );
                // What a join reads (on SQLite the batch's own count changes, on PostgreSQL
                // a re-read) is what the table holds.
                for s in [&batched, &single] {
                    let (n, _) = s.admission(name, "", "nobody").await.unwrap();
                    assert_eq!(n, present.len() as i64, "count of {name} after {events:#?}");
                }
            }
        }
    }
}

async fn store_of_kind(kind: usize) -> (Store, Option<tempfile::TempDir>) {
    match kind {
        0 => {
            let dir = tempfile::tempdir().unwrap();
            let url = bedrud::store::default_url(dir.path());
            (Store::connect(&url).await.unwrap(), Some(dir))
        }
        _ => (fresh_postgres().await, None),
    }
}

/// Two instances on one PostgreSQL answer joins from memory (`store::mirror`, shared mode): a
/// ban or a participant committed by one reaches the other through the database's
/// notification, also after the other's listening connection was cut (it reads everything
/// again). Each instance sees its own writes at once.
#[tokio::test]
async fn instances_on_one_postgres_see_each_others_bans_and_participants() {
    let url = fresh_postgres_url().await;
    let a = Store::connect(&url).await.unwrap();
    let b = Store::connect(&url).await.unwrap();
    let owner = a
        .create_user("o@x.test", "O", "h", Role::User)
        .await
        .unwrap();
    let standup = a.create_room(room("standup", &owner.id)).await.unwrap();
    let eventually = |what: &'static str, store: Store, want: (i64, bool), who: &'static str| {
        let id = standup.id.clone();
        async move {
            // Bounded wait for an asynchronous delivery, not a timing assertion.
            for _ in 0..500 {
                if store.admission("standup", &id, who).await.unwrap() == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("{what}: the other instance never saw {want:?} for {who}");
        }
    };

    a.ban(&standup.id, "u_x").await.unwrap();
    assert_eq!(
        a.admission("standup", &standup.id, "u_x").await.unwrap(),
        (0, true)
    );
    eventually("a ban made on A", b.clone(), (0, true), "u_x").await;

    let joined = Event {
        id: "EV_1".into(),
        name: "participant_joined".into(),
        change: PresenceChange::Joined {
            room: "standup".into(),
            participant: participant("u_y", "PA_1"),
        },
    };
    b.apply_events(&[&joined]).await.unwrap();
    assert_eq!(
        b.admission("standup", &standup.id, "u_x").await.unwrap(),
        (1, true)
    );
    eventually("a participant stored by B", a.clone(), (1, true), "u_x").await;

    // Cut every LISTEN connection of this database; a change made before B listens again
    // must still reach B (it reads everything again once reconnected).
    let cut = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    );
    let mut admin = {
        use sqlx::Connection;
        sqlx::AnyConnection::connect(&url).await.unwrap()
    };
    let n = cut.fetch_all(&mut admin).await.unwrap().len();
    assert!(
        n >= 2,
        "both instances listen ({n} listening connections found)"
    );
    a.unban(&standup.id, "u_x").await.unwrap();
    eventually(
        "an unban made while B's listener was cut",
        b.clone(),
        (1, false),
        "u_x",
    )
    .await;
    a.clear_room("standup").await.unwrap();
    eventually("a room cleared on A", b.clone(), (0, false), "u_x").await;
}

#[tokio::test]
async fn sync_room_fixes_drift_both_ways_and_counts_it() {
    for (s, _dir) in stores().await {
        let owner = s
            .create_user("o@x.test", "O", "h", Role::User)
            .await
            .unwrap();
        s.create_room(room("standup", &owner.id)).await.unwrap();
        for (i, who) in ["u_gone", "u_stays"].iter().enumerate() {
            let change = PresenceChange::Joined {
                room: "standup".into(),
                participant: participant(who, &format!("PA_{who}")),
            };
            s.apply_event(&format!("EV_{i}"), "participant_joined", &change)
                .await
                .unwrap();
        }
        let live = vec![
            participant("u_stays", "PA_u_stays"),
            participant("u_new", "PA_u_new"),
        ];
        let corrections = s.sync_room("standup", "RM_1", &live).await.unwrap();
        assert_eq!(
            corrections,
            3,
            "room row added, u_gone removed, u_new added ({:?})",
            s.kind()
        );
        let names: Vec<String> = s
            .participants("standup")
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.identity)
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"u_stays".to_string()) && names.contains(&"u_new".to_string()));
        assert_eq!(
            s.sync_room("standup", "RM_1", &live).await.unwrap(),
            0,
            "nothing left to fix"
        );
        assert_eq!(s.tracked_room_names().await.unwrap(), vec!["standup"]);
        assert_eq!(s.clear_room("standup").await.unwrap(), 3);
        assert!(s.tracked_room_names().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn only_one_instance_at_a_time_may_reconcile_a_shared_database() {
    for (s, _dir) in stores().await {
        let first = s
            .try_reconcile_lock()
            .await
            .unwrap()
            .expect("the first taker gets the lock");
        let second = s.try_reconcile_lock().await.unwrap();
        match s.kind() {
            // PostgreSQL is shared by several bedrud instances: the second must wait its turn.
            bedrud::store::Kind::Postgres => assert!(second.is_none()),
            // SQLite belongs to one instance, which reconciles in one task.
            bedrud::store::Kind::Sqlite => assert!(second.is_some()),
        }
        if let Some(l) = second {
            l.release().await;
        }
        first.release().await;
        let again = s.try_reconcile_lock().await.unwrap();
        assert!(
            again.is_some(),
            "released locks can be taken again ({:?})",
            s.kind()
        );
        again.unwrap().release().await;
    }
}

#[tokio::test]
async fn one_recording_in_progress_per_room_and_finished_ones_never_change() {
    for (store, _dir) in stores().await {
        let new = |room: &str| NewRecording {
            room: room.into(),
            started_by: "u1".into(),
            layout: "grid".into(),
            audio_only: true,
        };
        let a = store.insert_recording(new("r1")).await.unwrap();
        assert_eq!(a.status, RecordingStatus::Starting);
        assert!(a.audio_only);
        // The database itself refuses a second recording of the same room in progress.
        assert!(matches!(
            store.insert_recording(new("r1")).await,
            Err(StoreError::Conflict(_))
        ));
        let other = store.insert_recording(new("r2")).await.unwrap();
        store.set_recording_egress(&a.id, "EG_a").await.unwrap();
        let by_egress = store.recording_by_egress("EG_a").await.unwrap().unwrap();
        assert_eq!(by_egress.id, a.id);
        // A second recording cannot take the same egress id.
        assert!(store.set_recording_egress(&other.id, "EG_a").await.is_err());

        assert!(store
            .advance_recording(&a.id, RecordingStatus::Active, Some(1000))
            .await
            .unwrap());
        // Repeated or late events do not move it back, nor change when it started.
        assert!(!store
            .advance_recording(&a.id, RecordingStatus::Active, Some(2000))
            .await
            .unwrap());
        let active = store.recording(&a.id).await.unwrap().unwrap();
        assert_eq!(
            (active.status, active.started_at),
            (RecordingStatus::Active, Some(1000))
        );
        assert_eq!(
            store.recording_in_progress("r1").await.unwrap().unwrap().id,
            a.id
        );
        assert_eq!(store.recordings_in_progress().await.unwrap().len(), 2);

        let done = Outcome::Complete {
            file: "x.mp4".into(),
            size: 1234,
            duration_ms: 5000,
        };
        assert!(store
            .finish_recording(&a.id, &done, None, 9000)
            .await
            .unwrap());
        // The first outcome stays.
        let late = Outcome::Failed("late".into());
        assert!(!store
            .finish_recording(&a.id, &late, None, 9500)
            .await
            .unwrap());
        assert!(!store
            .advance_recording(&a.id, RecordingStatus::Ending, None)
            .await
            .unwrap());
        let a = store.recording(&a.id).await.unwrap().unwrap();
        assert_eq!(a.status, RecordingStatus::Complete);
        assert_eq!(
            (
                a.file.as_deref(),
                a.size,
                a.duration_ms,
                a.ended_at,
                a.error
            ),
            (Some("x.mp4"), Some(1234), Some(5000), Some(9000), None)
        );
        // The slot is free again once it finished.
        assert!(store.recording_in_progress("r1").await.unwrap().is_none());
        let b = store.insert_recording(new("r1")).await.unwrap();
        let failed = Outcome::Failed("egress worker died".into());
        assert!(store
            .finish_recording(&b.id, &failed, None, 9900)
            .await
            .unwrap());
        let listed = store.recordings_of_room("r1").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|r| r.id == b.id
            && r.status == RecordingStatus::Failed
            && r.error.as_deref() == Some("egress worker died")));

        // Retention sees finished ones only.
        let old = store
            .finished_recordings_before(bedrud::store::now_ms() + 1000)
            .await
            .unwrap();
        assert_eq!(old.len(), 2, "{old:?}");
        assert!(store.delete_recording(&a.id).await.unwrap());
        assert!(!store.delete_recording(&a.id).await.unwrap());
        assert!(store.recording(&a.id).await.unwrap().is_none());
    }
}

/// The SQLite event writer's own connection checkpoints the WAL as sqlx's do (SQLite's automatic
/// checkpoint, in the commit that crosses 1000 pages). A checkpoint beside a busy writer never
/// catches up (tried: the WAL grew to 54 MB here), and without any the WAL would keep every
/// batch: 3 000 commits of a join each, about 18 KB apiece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_wal_is_checkpointed_while_webhook_events_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::connect(&bedrud::store::default_url(dir.path()))
        .await
        .unwrap();
    let owner = s
        .create_user("o@x.test", "O", "h", Role::User)
        .await
        .unwrap();
    s.create_room(room("r", &owner.id)).await.unwrap();
    const COMMITS: usize = 3_000;
    for i in 0..COMMITS {
        let e = Event {
            id: format!("EV_{i}"),
            name: "participant_joined".into(),
            change: PresenceChange::Joined {
                room: "r".into(),
                participant: participant(&format!("p{i}"), "PA"),
            },
        };
        s.apply_events(&[&e]).await.unwrap();
    }
    let wal = std::fs::metadata(bedrud::store::default_path(dir.path()).with_extension("db-wal"))
        .unwrap()
        .len();
    assert!(
        wal < 8 << 20,
        "the WAL holds {wal} bytes after {COMMITS} commits: nothing checkpointed it"
    );
    assert_eq!(s.participants("r").await.unwrap().len(), COMMITS);
}
