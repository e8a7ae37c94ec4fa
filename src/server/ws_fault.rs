//! What a failed WebSocket read means for the close: a peer that broke RFC 6455 (unmasked
//! client frame, reserved bits or opcodes, a fragmented or oversized control frame, invalid
//! UTF-8 in a text message, a message over the size limit) is owed a close frame with the
//! matching code before TCP is dropped, and counts as a protocol error, not a transport one.

/// A failed read, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFault {
    /// The peer broke the protocol: close with `code` (1002, 1007 or 1009) and `detail`.
    Protocol {
        /// RFC 6455 close code.
        code: u16,
        /// What was wrong (becomes the close reason).
        detail: String,
    },
    /// The connection itself failed (reset, I/O): nothing can be sent.
    Transport(String),
}

/// Protocol error (RFC 6455 §7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Data inconsistent with the message type, e.g. invalid UTF-8 in a text message.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// A message too big to process.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Classifies the error of a WebSocket read.
pub fn classify(err: axum::Error) -> WsFault {
    let text = err.to_string();
    match err.into_inner().downcast::<tungstenite::Error>() {
        Ok(e) => classify_tungstenite(&e),
        Err(_) => WsFault::Transport(text),
    }
}

fn classify_tungstenite(e: &tungstenite::Error) -> WsFault {
    use tungstenite::Error as E;
    use tungstenite::error::ProtocolError as P;
    let protocol = |code| WsFault::Protocol {
        code,
        detail: e.to_string(),
    };
    match e {
        E::Capacity(_) => protocol(CLOSE_TOO_BIG),
        E::Utf8(_) => protocol(CLOSE_INVALID_PAYLOAD),
        // The peer went away mid-handshake: nobody is left to read a close frame.
        E::Protocol(P::ResetWithoutClosingHandshake) => WsFault::Transport(e.to_string()),
        E::Protocol(_) | E::AttackAttempt => protocol(CLOSE_PROTOCOL_ERROR),
        _ => WsFault::Transport(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::{CapacityError, ProtocolError};

    fn code(e: tungstenite::Error) -> Option<u16> {
        match classify(axum::Error::new(e)) {
            WsFault::Protocol { code, .. } => Some(code),
            WsFault::Transport(_) => None,
        }
    }

    #[test]
    fn each_violation_gets_its_close_code() {
        use tungstenite::Error as E;
        assert_eq!(
            code(E::Protocol(ProtocolError::UnmaskedFrameFromClient)),
            Some(1002)
        );
        assert_eq!(
            code(E::Protocol(ProtocolError::ControlFrameTooBig)),
            Some(1002)
        );
        assert_eq!(
            code(E::Protocol(ProtocolError::UnknownDataFrameType(3))),
            Some(1002)
        );
        assert_eq!(code(E::Utf8("bad".into())), Some(1007));
        assert_eq!(
            code(E::Capacity(CapacityError::MessageTooLong {
                size: 10,
                max_size: 5
            })),
            Some(1009)
        );
        assert_eq!(
            code(E::Protocol(ProtocolError::ResetWithoutClosingHandshake)),
            None
        );
        assert_eq!(
            code(E::Io(std::io::ErrorKind::ConnectionReset.into())),
            None
        );
        assert_eq!(
            classify(axum::Error::new(std::io::Error::other("x"))),
            WsFault::Transport("x".into())
        );
    }
}
