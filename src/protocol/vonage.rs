//! Vonage adapter (placeholder until the adapter lands; refuses every message).

use super::{
    Adapter, ProtocolError, Provider, ProviderEvent, RenderSpec, WireMessage, unknown_event,
};

/// Adapter for one Vonage stream.
#[derive(Debug, Default)]
pub struct VonageAdapter;

impl Adapter for VonageAdapter {
    fn provider(&self) -> Provider {
        Provider::Vonage
    }
    fn parse_text<'a>(&mut self, _text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        Err(unknown_event(Provider::Vonage, "unsupported"))
    }
}

/// Renders a call as Vonage sends it.
pub fn render(_spec: &RenderSpec, _caller: &[i16], _agent: Option<&[i16]>) -> Vec<WireMessage> {
    Vec::new()
}
