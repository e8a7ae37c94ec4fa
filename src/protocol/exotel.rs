//! Exotel adapter (placeholder until the adapter lands; refuses every message).

use super::{
    Adapter, ProtocolError, Provider, ProviderEvent, RenderSpec, WireMessage, unknown_event,
};

/// Adapter for one Exotel stream.
#[derive(Debug, Default)]
pub struct ExotelAdapter;

impl Adapter for ExotelAdapter {
    fn provider(&self) -> Provider {
        Provider::Exotel
    }
    fn parse_text<'a>(&mut self, _text: &'a str) -> Result<ProviderEvent<'a>, ProtocolError> {
        Err(unknown_event(Provider::Exotel, "unsupported"))
    }
}

/// Renders a call as Exotel sends it.
pub fn render(_spec: &RenderSpec, _caller: &[i16], _agent: Option<&[i16]>) -> Vec<WireMessage> {
    Vec::new()
}
