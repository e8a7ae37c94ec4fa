//! Plivo adapter (placeholder until the adapter lands; refuses every message).

use super::{
    Adapter, ProtocolError, Provider, ProviderEvent, RenderSpec, WireMessage, unknown_event,
};

/// Adapter for one Plivo stream.
#[derive(Debug, Default)]
pub struct PlivoAdapter;

impl Adapter for PlivoAdapter {
    fn provider(&self) -> Provider {
        Provider::Plivo
    }
    fn parse_text<'a>(&mut self, _text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        Err(unknown_event(Provider::Plivo, "unsupported"))
    }
}

/// Renders a call as Plivo sends it.
pub fn render(_spec: &RenderSpec, _caller: &[i16], _agent: Option<&[i16]>) -> Vec<WireMessage> {
    Vec::new()
}
