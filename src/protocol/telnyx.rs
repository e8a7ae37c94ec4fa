//! Telnyx adapter (placeholder until the adapter lands; refuses every message).

use super::{
    Adapter, ProtocolError, Provider, ProviderEvent, RenderSpec, WireMessage, unknown_event,
};

/// Adapter for one Telnyx stream.
#[derive(Debug, Default)]
pub struct TelnyxAdapter;

impl Adapter for TelnyxAdapter {
    fn provider(&self) -> Provider {
        Provider::Telnyx
    }
    fn parse_text<'a>(&mut self, _text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        Err(unknown_event(Provider::Telnyx, "unsupported"))
    }
}

/// Renders a call as Telnyx sends it.
pub fn render(_spec: &RenderSpec, _caller: &[i16], _agent: Option<&[i16]>) -> Vec<WireMessage> {
    Vec::new()
}
