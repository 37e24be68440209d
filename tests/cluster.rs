//! bedrud in external mode in front of a two-node LiveKit cluster sharing Redis, with a real
//! participant: join, webhooks, moderation, and a node killed mid-meeting. Runs in a private
//! network namespace (scripts/netns-run.sh), like the other tests with real participants.

mod common;

use common::*;
use serde_json::json;

#[test]
fn external_cluster_with_a_real_participant_and_a_node_killed_mid_meeting() {
    require_private_network("cluster");
    let sb = Sandbox::new();
    let (_redis, redis_port) = redis(sb.path(), None);
    let nodes = [Ports::new(), Ports::new()];
    let shared = format!(
        "redis:\n  address: 127.0.0.1:{redis_port}\nwebhook:\n  api_key: APIext\n  urls:\n  - http://127.0.0.1:{}/api/livekit/webhook\n",
        sb.ports.api
    );
    let configs: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = sb.path().join(format!("node{i}.yaml"));
            std::fs::write(&path, livekit_yaml(p, "APIext") + &shared).unwrap();
            path
        })
        .collect();
    let mut node_a = LiveKitProcess::start(&configs[0]);
    let _node_b = LiveKitProcess::start(&configs[1]);

    let a = nodes[0].livekit;
    sb.write_config(&format!(
        "server:\n  bindAddress: 127.0.0.1\n  port: {}\n  dataDir: {}\nrooms:\n  reconcileInterval: 1h\n\
         livekit:\n  external: true\n  host: ws://127.0.0.1:{a}\n  internalHost: http://127.0.0.1:{a}\n  apiKey: APIext\n  apiSecret: {SECRET}\n",
        sb.ports.api,
        sb.path().join("data").display()
    ));
    let mut b = sb.start(&[]);
    b.wait_ready();

    let (alice, _, _) = b.register("alice@example.test");
    let (bob, _, bob_id) = b.register("bob@example.test");
    let bob_id = format!("u_{bob_id}");
    assert_eq!(
        b.call(
            "POST",
            "/api/room/create",
            Some(&alice),
            Some(json!({"name": "clustered"}))
        )
        .0,
        201
    );
    let (st, join) = b.call(
        "POST",
        "/api/room/join",
        Some(&bob),
        Some(json!({"roomName": "clustered"})),
    );
    assert_eq!(st, 200, "{join}");
    let p = Participant::join(
        join["livekitHost"].as_str().unwrap(),
        join["token"].as_str().unwrap(),
        &[],
    );
    p.wait_event("published", |e| e["source"] == "microphone");

    // The cluster's webhook reaches bedrud (reconciliation is an hour away).
    let present = |b: &Bedrud| -> Vec<String> {
        let (_, r) = b.call(
            "GET",
            "/api/room/clustered/participants",
            Some(&alice),
            None,
        );
        r["participants"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|p| p["identity"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    b.wait_for("bob present through the cluster's webhook", |b| {
        present(b).contains(&bob_id).then_some(())
    });

    // Moderation goes through node A's API to wherever the room lives.
    mute_when_listed(&mut b, "clustered", &bob_id, &alice);
    p.wait_event("track_muted", |_| true);

    // Node A dies mid-meeting: bedrud says so; when A is back, bedrud reconciles at once.
    let runs = |b: &Bedrud| -> u64 {
        let (_, m) = b.call("GET", "/metrics", None, None);
        let text = m.as_str().unwrap_or_default().to_string();
        text.lines()
            .find(|l| l.starts_with("bedrud_reconcile_runs_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    let runs_before = runs(&b);
    node_a.kill();
    let body = b.wait_for("/ready to report the lost node", |b| match b.ready() {
        Some((503, body)) => Some(body),
        _ => None,
    });
    assert!(
        body["error"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
    let (st, r) = b.call(
        "POST",
        "/api/room/join",
        Some(&alice),
        Some(json!({"roomName": "clustered"})),
    );
    assert_eq!(st, 503, "joins say LiveKit is down instead of hanging: {r}");

    node_a = LiveKitProcess::start(&configs[0]);
    b.wait_ready();
    // A pass runs as soon as A is back (the periodic one is an hour away).
    b.wait_for("a reconciliation pass after the outage", |b| {
        (runs(b) > runs_before).then_some(())
    });
    drop(node_a);
}
