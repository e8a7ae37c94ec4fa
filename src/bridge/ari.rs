//! Asterisk ARI transfer: the requests that move an Asterisk caller on a handoff.
//!
//! Blind, with variables: first `POST /ari/channels/{id}/variable` sets `WARMLINE_HANDOFF_ID`
//! and `WARMLINE_REASON` on the caller's channel (so the dialplan can route on them and the
//! agent desktop can fetch `/v1/handoffs/{id}`), then `POST /ari/channels/{id}/continue`
//! (`context`, `extension`, `priority`) or `POST /ari/channels/{id}/redirect` (`endpoint`)
//! hands the channel over. Paths and parameters as in Asterisk's `rest-api/api-docs/
//! channels.json` (`setChannelVar`, `continueInDialplan`, `redirect`). There is no warm
//! variant on this path: ARI has no conference with a whisper that warmline could drive without
//! owning the Stasis app's bridges.
//!
//! Pure: builds URLs; [`super::target`] sends them in order, one attempt being the whole
//! sequence (setting a variable twice is harmless, so a retried attempt repeats it; the
//! continue/redirect comes last and only after every variable was set).

use super::config::{AriMode, AsteriskConfig};
use super::transfer::{TransferError, api_url};
use reqwest::Url;

/// Channel variable carrying the handoff id.
pub const VAR_HANDOFF_ID: &str = "WARMLINE_HANDOFF_ID";
/// Channel variable carrying the short reason (the strongest signal's name).
pub const VAR_REASON: &str = "WARMLINE_REASON";

/// `ari_url` with `/ari` once, whether or not the operator wrote it.
fn ari_base(cfg: &AsteriskConfig) -> String {
    let base = cfg.ari_url.trim_end_matches('/');
    if base.ends_with("/ari") {
        base.to_owned()
    } else {
        format!("{base}/ari")
    }
}

/// The URLs of one ARI transfer of `channel_id`, in the order they must be POSTed: the two
/// variables, then continue or redirect. The channel id is one percent-encoded path segment.
pub fn urls(
    cfg: &AsteriskConfig,
    channel_id: &str,
    handoff_id: &str,
    reason: &str,
) -> Result<Vec<Url>, TransferError> {
    let base = ari_base(cfg);
    let mut out = Vec::with_capacity(3);
    for (name, value) in [(VAR_HANDOFF_ID, handoff_id), (VAR_REASON, reason)] {
        let mut u = api_url(&base, &["channels", channel_id, "variable"], false)?;
        u.query_pairs_mut()
            .append_pair("variable", name)
            .append_pair("value", value);
        out.push(u);
    }
    let last = match cfg.mode {
        AriMode::Continue => {
            let mut u = api_url(&base, &["channels", channel_id, "continue"], false)?;
            {
                let mut q = u.query_pairs_mut();
                if let Some(c) = &cfg.context {
                    q.append_pair("context", c);
                }
                if let Some(e) = &cfg.extension {
                    q.append_pair("extension", e);
                }
                if let Some(p) = cfg.priority {
                    q.append_pair("priority", &p.to_string());
                }
            }
            u
        }
        AriMode::Redirect => {
            let mut u = api_url(&base, &["channels", channel_id, "redirect"], false)?;
            u.query_pairs_mut()
                .append_pair("endpoint", cfg.endpoint.as_deref().unwrap_or(""));
            u
        }
    };
    // A query-less continue still carries `?`; drop it so the request reads as documented.
    let mut last = last;
    if last.query() == Some("") {
        last.set_query(None);
    }
    out.push(last);
    Ok(out)
}

/// The requests of [`urls`], each a basic-auth `POST` without a body.
pub fn requests(
    client: &reqwest::Client,
    cfg: &AsteriskConfig,
    channel_id: &str,
    handoff_id: &str,
    reason: &str,
) -> Result<Vec<reqwest::RequestBuilder>, TransferError> {
    Ok(urls(cfg, channel_id, handoff_id, reason)?
        .into_iter()
        .map(|u| {
            client
                .post(u)
                .basic_auth(&cfg.username, Some(&cfg.password))
        })
        .collect())
}

/// What a refusal from ARI means, for the delivery's error text.
pub fn explain(status: u16, cfg: &AsteriskConfig) -> Option<String> {
    let app = if cfg.app.is_empty() {
        "your ARI app".to_owned()
    } else {
        format!("the Stasis app `{}`", cfg.app)
    };
    match status {
        404 => Some(
            "ARI: channel not found (the caller hung up, or the call id is not the channel id)"
                .into(),
        ),
        409 => Some(format!(
            "ARI: channel not in a Stasis application (it must be in {app} when the handoff comes)"
        )),
        412 => Some("ARI: channel in an invalid state".into()),
        422 => Some("ARI: endpoint is not the same type as the channel".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::config::ConfigError;

    fn cfg() -> AsteriskConfig {
        AsteriskConfig {
            extension: Some("100".into()),
            priority: Some(2),
            ..AsteriskConfig::new("http://pbx:8088", "warmline", "pw", "agents")
        }
    }

    fn pairs(u: &Url) -> Vec<(String, String)> {
        u.query_pairs().into_owned().collect()
    }

    #[test]
    fn continue_sets_both_variables_then_continues_in_the_dialplan() {
        let u = urls(&cfg(), "1761245643.1", "h-1", "human_request").unwrap();
        assert_eq!(u.len(), 3);
        assert_eq!(u[0].path(), "/ari/channels/1761245643.1/variable");
        assert_eq!(
            pairs(&u[0]),
            [
                ("variable".into(), "WARMLINE_HANDOFF_ID".into()),
                ("value".into(), "h-1".into())
            ]
        );
        assert_eq!(
            pairs(&u[1]),
            [
                ("variable".into(), "WARMLINE_REASON".into()),
                ("value".into(), "human_request".into())
            ]
        );
        assert_eq!(u[2].path(), "/ari/channels/1761245643.1/continue");
        assert_eq!(
            pairs(&u[2]),
            [
                ("context".into(), "agents".into()),
                ("extension".into(), "100".into()),
                ("priority".into(), "2".into())
            ]
        );
    }

    #[test]
    fn redirect_goes_to_the_endpoint_and_ari_is_added_once() {
        let c = AsteriskConfig {
            mode: AriMode::Redirect,
            context: None,
            endpoint: Some("PJSIP/agent & co".into()),
            ari_url: "https://pbx.example/ari/".into(),
            ..cfg()
        };
        let c = AsteriskConfig {
            extension: None,
            priority: None,
            ..c
        };
        c.validate().unwrap();
        let u = urls(&c, "c1", "h", "r").unwrap();
        assert_eq!(u[2].path(), "/ari/channels/c1/redirect");
        assert_eq!(
            pairs(&u[2]),
            [("endpoint".into(), "PJSIP/agent & co".into())]
        );
        assert!(
            u[2].as_str()
                .starts_with("https://pbx.example/ari/channels/")
        );
    }

    #[test]
    fn a_channel_id_cannot_change_the_path() {
        let u = urls(&cfg(), "a/../b?c#d", "h/1", "r").unwrap();
        for x in &u {
            assert!(
                x.path().starts_with("/ari/channels/a%2F..%2Fb%3Fc%23d/"),
                "{x}"
            );
        }
        for id in ["", ".", ".."] {
            assert_eq!(
                urls(&cfg(), id, "h", "r"),
                Err(TransferError::BadCallId { id: id.into() })
            );
        }
    }

    #[test]
    fn a_bare_continue_has_no_empty_query() {
        let c = AsteriskConfig {
            extension: None,
            priority: None,
            ..cfg()
        };
        let u = urls(&c, "c", "h", "r").unwrap();
        assert_eq!(u[2].query(), Some("context=agents"));
    }

    fn key_of(e: ConfigError) -> &'static str {
        match e {
            ConfigError::Invalid { key, .. } => key,
        }
    }

    #[test]
    fn validation_names_the_key() {
        let ok = cfg();
        ok.validate().unwrap();
        let cases: Vec<(AsteriskConfig, &str)> = vec![
            (
                AsteriskConfig {
                    ari_url: "pbx:8088".into(),
                    ..cfg()
                },
                "bridge.asterisk.ari_url",
            ),
            (
                AsteriskConfig {
                    ari_url: "ftp://pbx".into(),
                    ..cfg()
                },
                "bridge.asterisk.ari_url",
            ),
            (
                AsteriskConfig {
                    username: " ".into(),
                    ..cfg()
                },
                "bridge.asterisk.username",
            ),
            (
                AsteriskConfig {
                    password: String::new(),
                    ..cfg()
                },
                "bridge.asterisk.password",
            ),
            // Neither: continue without a context.
            (
                AsteriskConfig {
                    context: None,
                    ..cfg()
                },
                "bridge.asterisk.context",
            ),
            // Both: continue with an endpoint too.
            (
                AsteriskConfig {
                    endpoint: Some("PJSIP/a".into()),
                    ..cfg()
                },
                "bridge.asterisk.endpoint",
            ),
            (
                AsteriskConfig {
                    priority: Some(0),
                    ..cfg()
                },
                "bridge.asterisk.priority",
            ),
            // Redirect with a context left over: both.
            (
                AsteriskConfig {
                    mode: AriMode::Redirect,
                    endpoint: Some("PJSIP/a".into()),
                    ..cfg()
                },
                "bridge.asterisk.context",
            ),
            // Redirect without an endpoint: neither.
            (
                AsteriskConfig {
                    mode: AriMode::Redirect,
                    context: None,
                    extension: None,
                    priority: None,
                    ..cfg()
                },
                "bridge.asterisk.endpoint",
            ),
        ];
        for (c, key) in cases {
            let e = c.validate().expect_err(key);
            assert!(e.to_string().contains(key), "{e}");
            assert_eq!(key_of(e), key);
        }
    }

    #[test]
    fn the_section_parses_from_toml_and_the_password_comes_from_the_environment() {
        let b: crate::bridge::BridgeConfig = toml::from_str(
            r#"
            [asterisk]
            ari_url = "http://127.0.0.1:8088"
            username = "warmline"
            app = "warmline"
            mode = "redirect"
            endpoint = "PJSIP/agent"
            "#,
        )
        .unwrap();
        let mut b = b;
        assert!(b.validate().is_err(), "no password yet");
        b.apply_env(&|k| (k == "WARMLINE_BRIDGE_ASTERISK_PASSWORD").then(|| "pw".to_owned()));
        b.validate().unwrap();
        let a = b.asterisk.unwrap();
        assert_eq!(a.mode, AriMode::Redirect);
        assert_eq!(a.password, "pw");
    }
}
