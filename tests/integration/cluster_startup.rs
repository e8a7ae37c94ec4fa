//! `[cluster]` start-up against a NATS server that cannot run a fleet: a fake server on a
//! loopback socket that speaks just enough of the NATS handshake (INFO, PONG) to announce an
//! old version or JetStream off. `warmline serve` must refuse at start-up, naming the version.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::process::Command;

/// Serves the NATS handshake with `info` (JSON) to every client until the test ends.
fn fake_nats(info: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let _ = conn.write_all(format!("INFO {info}\r\n").as_bytes());
                let Ok(read) = conn.try_clone() else { return };
                for line in BufReader::new(read).lines() {
                    let Ok(line) = line else { return };
                    if line.starts_with("PING") && conn.write_all(b"PONG\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn serve_refuses_a_nats_server_too_old_or_without_jetstream_naming_it() {
    for (info, want) in [
        (
            r#"{"server_id":"FAKE","server_name":"fake","version":"2.9.10","proto":1,"go":"go1.19","host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576,"jetstream":true}"#,
            ["nats-server 2.9.10 is too old", "2.10 or newer"],
        ),
        (
            r#"{"server_id":"FAKE","server_name":"fake","version":"2.15.1","proto":1,"go":"go1.24","host":"127.0.0.1","port":4222,"headers":true,"max_payload":1048576,"jetstream":false}"#,
            ["without JetStream", "-js"],
        ),
    ] {
        let port = fake_nats(info);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("warmline.toml");
        std::fs::write(
            &config,
            format!(
                "[bridge]\noutbox_dir = {:?}\n[cluster]\nnats_url = \"nats://127.0.0.1:{port}\"\n",
                dir.path().join("outbox")
            ),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_warmline"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warmline=error")
            .output()
            .expect("run warmline serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "served anyway: {err}");
        for w in want {
            assert!(err.contains(w), "{w:?} missing from: {err}");
        }
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}
