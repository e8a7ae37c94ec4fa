//! Plivo's warm-transfer routes: the XML Plivo fetches for the held caller, the answered agent
//! and a terminal (`GET|POST /v1/providers/plivo/xml`), and the legs' callbacks
//! (`POST /v1/providers/plivo/status`). Authenticated by the HMAC `token` of the URL warmline
//! itself gave Plivo (see [`crate::bridge::warm_plivo`]), not the API token.

// Handlers return their refusal as a ready `Response` on the error side; it is built once per
// rejected request, so its size does not matter.
#![allow(clippy::result_large_err)]

use super::AppState;
use super::providers_http::{check_callback_size, form_pairs};
use crate::bridge::PlivoConfig;
use crate::bridge::warm::{Input, LegStatus, Outcome};
use crate::bridge::warm_plivo::{self, XmlRequest};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// The warm Plivo section and the verified query of a request to `route`.
fn verified(
    st: &AppState,
    uri: &axum::http::Uri,
    route: &str,
) -> Result<(PlivoConfig, Vec<(String, String)>), Response> {
    let Some(cfg) = st
        .config()
        .bridge
        .plivo
        .clone()
        .filter(PlivoConfig::is_warm)
    else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "[bridge.plivo] is not in warm mode",
        ));
    };
    match warm_plivo::verify(&cfg.auth_token, route, uri.query().unwrap_or("")) {
        Ok(q) => Ok((cfg, q)),
        Err(why) => Err(error(StatusCode::FORBIDDEN, "unauthorized", why)),
    }
}

/// `GET|POST /v1/providers/plivo/xml?handoff_id=…&leg=caller|agent|terminal…&token=…`.
pub(super) async fn plivo_xml(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (cfg, q) = match verified(&st, &uri, warm_plivo::XML_PATH) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match warm_plivo::read_xml_request(&q) {
        Ok(XmlRequest::Caller { handoff_id }) => match warm_plivo::hold_xml(&cfg, &handoff_id) {
            Ok(x) => xml(x),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bad_config",
                e.to_string(),
            ),
        },
        // Plivo fetching the agent's answer URL is the answer. A leg answered after its
        // transfer moved on (timed out, abandoned) is hung up, not joined to nobody.
        Ok(XmlRequest::Agent {
            handoff_id,
            attempt,
            whisper,
        }) => {
            if st.warm().outcome(&handoff_id) != Some(Outcome::Pending) {
                return xml(warm_plivo::HANGUP_XML.to_owned());
            }
            let answered = Input::LegStatus {
                attempt,
                status: LegStatus::Answered,
            };
            if let Err(e) = st.warm().report(&handoff_id, answered) {
                tracing::warn!(%handoff_id, %e, "Plivo agent answer not passed to the warm transfer");
            }
            xml(warm_plivo::agent_xml(&handoff_id, &whisper))
        }
        Ok(XmlRequest::Terminal(t)) => xml(warm_plivo::terminal_xml(&cfg, &t)),
        Err(why) => error(StatusCode::BAD_REQUEST, "bad_callback", why),
    }
}

/// `POST /v1/providers/plivo/status?handoff_id=…&leg=agent|caller[&attempt=N]&token=…`.
pub(super) async fn plivo_status(
    State(st): State<AppState>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Response {
    if let Err(r) = check_callback_size(&body) {
        return r;
    }
    let q = match verified(&st, &uri, warm_plivo::STATUS_PATH) {
        Ok((_, q)) => q,
        Err(r) => return r,
    };
    let form = form_pairs(std::str::from_utf8(&body).unwrap_or(""));
    match warm_plivo::read_status(&q, &form) {
        Ok(Some((handoff_id, input))) => match st.warm().report(&handoff_id, input) {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()),
        },
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(why) => error(StatusCode::BAD_REQUEST, "bad_callback", why),
    }
}
