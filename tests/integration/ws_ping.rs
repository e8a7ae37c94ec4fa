//! The media read loop answers a provider's WebSocket Ping by itself: the Pong must not wait
//! for the peer's next message or for the gateway's own next write (tungstenite queues a Pong
//! and sends it on the next read, write or flush of that socket). A provider that measures the
//! stream's health by ping round trip would otherwise see the gateway as slow or dead.

use crate::common::{TestServer, connect, to_ws};
use futures_util::{SinkExt as _, StreamExt as _};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use warmline::codec::Codec;
use warmline::protocol::{Provider, RenderSpec};

#[tokio::test]
async fn a_ping_from_a_peer_that_then_only_reads_is_answered() {
    let server = TestServer::start().await;
    let mut ws = connect(&server, "twilio").await;
    let spec = RenderSpec::new("CApingonly", Codec::Mulaw, 8000);
    let msgs = Provider::Twilio.render(&spec, &[0i16; 480], None);
    // connected, start and three media frames; no stop.
    for m in &msgs[..5] {
        ws.send(to_ws(m)).await.expect("send");
    }
    ws.send(Message::Ping(b"rtt-1".to_vec().into()))
        .await
        .expect("ping");
    // From here the peer writes nothing. The gateway's own pings are 10 s apart and the idle
    // deadline 20 s away, so the first frame back within 5 s can only be our Pong.
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("nothing came back: the Pong is held until the peer writes again");
    match first {
        Some(Ok(Message::Pong(p))) => assert_eq!(p.as_ref(), b"rtt-1"),
        other => panic!("expected our Pong first, got {other:?}"),
    }
    server.stop().await;
}
