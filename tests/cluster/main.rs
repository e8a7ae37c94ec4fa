//! The fleet suite: three real `warmline serve` processes on one real NATS JetStream.
//! Not part of a plain `cargo test`; needs a NATS server (see `harness::nats_url`):
//! `cargo test --test cluster`.

mod harness;

use harness::{FleetSpec, Instance, LiveCall, OwnNats, Receiver, eventually, nats_url};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const HUMAN: &str = "I want to speak to a human right now";

async fn fleet(spec: &FleetSpec) -> Vec<Instance> {
    let mut v = Vec::new();
    for id in ["gw-a", "gw-b", "gw-c"] {
        v.push(spec.spawn(id).await);
    }
    v
}

/// Opens `n` calls, call `i` on instance `i % 3`, and waits until instance 0 sees all of them.
async fn spread(gws: &[Instance], tag: &str, n: usize) -> Vec<(LiveCall, usize)> {
    let mut calls = Vec::new();
    for i in 0..n {
        let id = format!("CA{tag}{i}");
        calls.push((LiveCall::open(&gws[i % 3], &id).await, i % 3));
    }
    eventually(15, "the fleet view to list every call", || async {
        let listed = gws[0].calls().await;
        (listed.len() == n).then_some(())
    })
    .await;
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_and_transcripts_reach_the_owner_from_any_instance() {
    let nats = nats_url();
    let rx = Receiver::start(true).await;
    let spec = FleetSpec::new(nats, "spread", rx.addr);
    let gws = fleet(&spec).await;
    let calls = spread(&gws, "spread", 6).await;

    // Every instance shows the whole fleet, each call marked with its holder.
    for gw in &gws {
        let listed = gw.calls().await;
        let by_call: HashMap<String, String> = listed
            .iter()
            .map(|c| {
                (
                    c["call_id"].as_str().unwrap().to_owned(),
                    c["instance"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (c, owner) in &calls {
            assert_eq!(
                by_call.get(&c.call_id),
                Some(&gws[*owner].id),
                "{by_call:?}"
            );
        }
    }

    // …with the scores and media time their holders publish on `{prefix}.events.*`.
    eventually(
        15,
        "remote calls' media time in every fleet view",
        || async {
            for gw in &gws {
                for c in gw.calls().await {
                    if c["instance"] != gw.id.as_str() && c["t_ms"].as_u64().unwrap_or(0) == 0 {
                        return None;
                    }
                }
            }
            Some(())
        },
    )
    .await;

    // A second stream for a call held elsewhere is refused as on one instance (the stream is
    // not stopped here: the gateway must close it on its own once `start` names the call).
    let dup = LiveCall::open(&gws[2], &calls[1].0.call_id).await;
    assert_eq!(dup.close_code().await, Some(4409));

    // A transcript posted to the wrong instance changes the right call's decision.
    let (target, owner) = (&calls[1].0.call_id, calls[1].1);
    let (status, body) = gws[0].transcript(target, HUMAN).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["instance"], gws[owner].id.as_str());
    let key = eventually(
        15,
        "the forwarded line's handoff at the webhook",
        || async {
            rx.snapshot()
                .into_iter()
                .find(|(_, s)| &s.call_id == target && s.accepted > 0)
                .map(|(k, _)| k)
        },
    )
    .await;
    let on_owner = gws[owner].calls().await;
    let held = on_owner
        .iter()
        .find(|c| c["call_id"] == target.as_str())
        .unwrap();
    assert_eq!(held["handoff"]["handoff_id"], key.as_str());
    // Every other instance shows that handoff on the call, marked with its holder.
    for (i, gw) in gws.iter().enumerate().filter(|(i, _)| *i != owner) {
        eventually(
            10,
            "the handoff in another instance's fleet view",
            || async {
                let listed = gw.calls().await;
                let c = listed.iter().find(|c| c["call_id"] == target.as_str())?;
                assert_eq!(c["instance"], gws[owner].id.as_str(), "instance {i}");
                (c["handoff"]["handoff_id"] == key.as_str()).then_some(())
            },
        )
        .await;
    }
    // No other call was handed off.
    assert_eq!(rx.snapshot().len(), 1, "{:?}", rx.snapshot());

    // 404 only when no instance holds the call.
    assert_eq!(gws[2].transcript("CAnobody", HUMAN).await.0, 404);
    for (c, _) in calls {
        assert_eq!(c.finish().await, Some(1000));
    }
    eventually(10, "ended calls to leave the fleet view", || async {
        gws[1].calls().await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmline_deliver_alone_delivers_what_the_gateways_decided() {
    let rx = Receiver::start(true).await;
    let mut spec = FleetSpec::new(nats_url(), "deliver", rx.addr);
    spec.deliver = false;
    let gw = spec.spawn("gw-d").await;
    let call = LiveCall::open(&gw, "CAdeliver").await;
    eventually(15, "the call to start", || async {
        let listed = gw.calls().await;
        listed
            .iter()
            .any(|c| c["call_id"] == "CAdeliver")
            .then_some(())
    })
    .await;
    let (status, body) = gw.transcript("CAdeliver", HUMAN).await;
    assert!(status < 300, "{status} {body}");
    eventually(15, "the handoff to be decided", || async {
        let listed = gw.calls().await;
        let c = listed.iter().find(|c| c["call_id"] == "CAdeliver")?;
        (!c["handoff"].is_null()).then_some(())
    })
    .await;
    // No serve instance delivers: the handoff waits in JetStream.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(rx.snapshot().is_empty(), "{:?}", rx.snapshot());

    let _worker = spec.spawn_deliver("dl-1").await;
    eventually(20, "warmline deliver to deliver the handoff", || async {
        rx.snapshot()
            .values()
            .any(|s| s.call_id == "CAdeliver" && s.accepted > 0)
            .then_some(())
    })
    .await;
    spec.wait_for_empty_handoff_stream(15).await;
    let seen = rx.snapshot();
    assert_eq!(seen.len(), 1, "one handoff, one Idempotency-Key: {seen:?}");
    assert_eq!(
        seen.values().map(|s| s.accepted).sum::<u32>(),
        1,
        "{seen:?}"
    );
    assert_eq!(call.finish().await, Some(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_leaves_no_decided_handoff_undelivered() {
    let nats = nats_url();
    // The receiver refuses at first, so every handoff is still pending when an instance dies.
    let rx = Receiver::start(false).await;
    let spec = FleetSpec::new(nats, "kill", rx.addr);
    let mut gws = fleet(&spec).await;
    let calls = spread(&gws, "kill", 6).await;
    // Each line goes to the instance after the owner: forwarded over NATS.
    for (c, owner) in &calls {
        let (status, body) = gws[(owner + 1) % 3].transcript(&c.call_id, HUMAN).await;
        assert_eq!(status, 202, "{body}");
    }
    // Decided = the owners show the handoff, and its delivery is being attempted.
    let decided: HashMap<String, String> = eventually(20, "six decided handoffs", || async {
        let mut m = HashMap::new();
        for gw in &gws {
            for c in gw.calls().await {
                if let Some(h) = c["handoff"]["handoff_id"].as_str() {
                    m.insert(c["call_id"].as_str().unwrap().to_owned(), h.to_owned());
                }
            }
        }
        (m.len() == 6).then_some(m)
    })
    .await;
    eventually(20, "delivery attempts for every handoff", || async {
        let s = rx.snapshot();
        decided
            .values()
            .all(|k| s.get(k).is_some_and(|x| x.attempts > 0))
            .then_some(())
    })
    .await;

    // kill -9 an instance whose worker holds handoffs unacked (it also holds two calls), so
    // that they can only reach the receiver through JetStream's redelivery to the survivors.
    let holding = eventually(20, "a worker holding handoffs", || async {
        for (i, gw) in gws.iter().enumerate() {
            if gw.metric("warmline_cluster_handoffs_delivering").await? > 0.0 {
                return Some(i);
            }
        }
        None
    })
    .await;
    let victim = &mut gws[holding];
    victim.child.start_kill().unwrap();
    let _ = victim.child.wait().await;
    rx.accept.store(true, std::sync::atomic::Ordering::SeqCst);

    let seen = eventually(
        30,
        "every decided handoff delivered by the survivors",
        || async {
            let s = rx.snapshot();
            decided
                .values()
                .all(|k| s.get(k).is_some_and(|x| x.accepted > 0))
                .then_some(s)
        },
    )
    .await;
    // Count once JetStream holds nothing more to deliver (work queue: acked = removed), so no
    // redelivery can still come; an unacked copy would show up here as a second acceptance.
    spec.wait_for_empty_handoff_stream(30).await;
    let seen_after = rx.snapshot();
    let keys: BTreeSet<&String> = seen_after.keys().collect();
    let want: BTreeSet<&String> = decided.values().collect();
    assert_eq!(
        keys, want,
        "a key nobody decided, or a second key for a call"
    );
    for (k, s) in &seen_after {
        assert_eq!(s.accepted, 1, "handoff {k} accepted {} times", s.accepted);
        assert_eq!(decided.get(&s.call_id), Some(k));
    }
    assert_eq!(seen.len(), 6);
    for (c, owner) in calls {
        if owner != holding {
            c.finish().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_instance_without_dropping_its_calls() {
    let nats = nats_url();
    let rx = Receiver::start(true).await;
    let spec = FleetSpec::new(nats, "drain", rx.addr);
    let mut gw = spec.spawn("gw-d").await;
    let call = LiveCall::open(&gw, "CAdrain").await;
    eventually(10, "the call to be listed", || async {
        (gw.calls().await.len() == 1).then_some(())
    })
    .await;
    let pid = gw.child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    eventually(10, "/healthz to say draining", || async {
        let r = reqwest::get(gw.url("/healthz")).await.ok()?;
        (r.status() == 503).then_some(())
    })
    .await;
    // New calls are refused, the open one goes on and still takes transcripts.
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/media/twilio", gw.addr)).await;
    assert!(refused.is_err(), "a draining instance admitted a call");
    assert_eq!(gw.transcript("CAdrain", HUMAN).await.0, 202);
    eventually(15, "the open call's handoff to be delivered", || async {
        rx.snapshot()
            .values()
            .any(|s| s.call_id == "CAdrain" && s.accepted > 0)
            .then_some(())
    })
    .await;
    assert_eq!(call.finish().await, Some(1000));
    let status = tokio::time::timeout(Duration::from_secs(15), gw.child.wait())
        .await
        .expect("the drained instance exits once its call ended")
        .unwrap();
    assert!(status.success(), "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_degrades_healthz_and_loses_no_call_or_handoff() {
    let mut nats = OwnNats::start().await;
    let rx = Receiver::start(true).await;
    let mut spec = FleetSpec::new(nats.url.clone(), "outage", rx.addr);
    spec.publish_fallback_ms = 1000;
    let gw = spec.spawn("gw-o").await;
    let before = LiveCall::open(&gw, "CAbefore").await;
    eventually(10, "the call to be listed", || async {
        (gw.calls().await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(gw.health().await, (200, "ok\n".into()));
    assert_eq!(gw.metric("warmline_cluster_connected").await, Some(1.0));

    nats.kill().await;
    eventually(15, "/healthz to report NATS lost", || async {
        let (status, body) = gw.health().await;
        (status == 200 && body.contains("degraded")).then_some(())
    })
    .await;
    assert_eq!(gw.metric("warmline_cluster_connected").await, Some(0.0));
    // Calls go on: a new one is admitted (ownership registered later) and a line posted to
    // the owner decides a handoff that reaches the webhook through the local outbox.
    let during = LiveCall::open(&gw, "CAduring").await;
    eventually(
        15,
        "the call opened during the outage to be listed",
        || async { (gw.calls().await.len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(gw.transcript("CAbefore", HUMAN).await.0, 202);
    eventually(20, "the handoff through the local outbox", || async {
        rx.snapshot()
            .values()
            .any(|s| s.call_id == "CAbefore" && s.accepted > 0)
            .then_some(())
    })
    .await;
    assert!(
        gw.metric("warmline_cluster_handoffs_fallback_total")
            .await
            .is_some_and(|n| n >= 1.0)
    );

    nats.restart().await;
    eventually(30, "/healthz to be ok again", || async {
        (gw.health().await == (200, "ok\n".to_owned())).then_some(())
    })
    .await;
    // The call admitted without NATS is registered on reconnect: a newcomer sees its owner.
    let late = spec.spawn("gw-late").await;
    eventually(15, "the newcomer to see the outage's call", || async {
        late.calls()
            .await
            .iter()
            .any(|c| c["call_id"] == "CAduring" && c["instance"] == "gw-o")
            .then_some(())
    })
    .await;
    assert_eq!(during.finish().await, Some(1000));
    assert_eq!(before.finish().await, Some(1000));
    // One handoff, delivered once: the fallback did not also go through JetStream.
    spec.wait_for_empty_handoff_stream(10).await;
    let seen = rx.snapshot();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen.values().all(|s| s.accepted == 1), "{seen:?}");
}
