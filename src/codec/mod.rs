//! Audio payload codecs: G.711 mu-law and A-law, and 16-bit linear PCM (L16) in both byte
//! orders: little-endian as most providers send it raw, big-endian (network order) as RTP
//! carries it (RFC 3551), which is what Telnyx's base64 RTP payloads hold.
//!
//! Decoders append to a caller-owned `Vec<i16>` so the hot path reuses one buffer per call.
//! Nothing here allocates except through that buffer's growth.

mod g711;

pub use g711::{alaw_to_linear, linear_to_alaw, linear_to_mulaw, mulaw_to_linear};

use serde::{Deserialize, Serialize};

/// The codec of a media stream, read from the provider's start message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// G.711 mu-law (PCMU), one byte per sample.
    Mulaw,
    /// G.711 A-law (PCMA), one byte per sample.
    Alaw,
    /// Signed 16-bit little-endian linear PCM, two bytes per sample.
    L16,
    /// Signed 16-bit big-endian (network order) linear PCM, as in RTP: Telnyx's `L16`.
    L16Be,
}

/// A payload that cannot be decoded. Recoverable: the chunk is dropped and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// L16 payloads carry two bytes per sample.
    #[error("L16 payload has odd length {len_bytes} (two bytes per sample)")]
    OddL16Length {
        /// Payload length in bytes.
        len_bytes: usize,
    },
}

impl Codec {
    /// The name used in events and logs (`pcmu`, `pcma`, `l16`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Mulaw => "pcmu",
            Codec::Alaw => "pcma",
            Codec::L16 => "l16",
            Codec::L16Be => "l16be",
        }
    }

    /// Bytes per sample on the wire.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Codec::Mulaw | Codec::Alaw => 1,
            Codec::L16 | Codec::L16Be => 2,
        }
    }

    /// Decodes `payload` and appends the samples to `out`.
    pub fn decode_into(self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        match self {
            Codec::Mulaw => out.extend(payload.iter().map(|&b| mulaw_to_linear(b))),
            Codec::Alaw => out.extend(payload.iter().map(|&b| alaw_to_linear(b))),
            Codec::L16 | Codec::L16Be => {
                if !payload.len().is_multiple_of(2) {
                    return Err(CodecError::OddL16Length {
                        len_bytes: payload.len(),
                    });
                }
                let pairs = payload.chunks_exact(2).map(|p| [p[0], p[1]]);
                if self == Codec::L16 {
                    out.extend(pairs.map(i16::from_le_bytes));
                } else {
                    out.extend(pairs.map(i16::from_be_bytes));
                }
            }
        }
        Ok(())
    }

    /// Encodes `samples` and appends the wire bytes to `out` (fixture rendering, load generation).
    pub fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            Codec::Mulaw => out.extend(samples.iter().map(|&s| linear_to_mulaw(s))),
            Codec::Alaw => out.extend(samples.iter().map(|&s| linear_to_alaw(s))),
            Codec::L16 => {
                for s in samples {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            Codec::L16Be => {
                for s in samples {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
        }
    }

    /// The sample after an encode/decode round trip: what a receiver can reconstruct.
    pub fn round_trip(self, sample: i16) -> i16 {
        match self {
            Codec::Mulaw => mulaw_to_linear(linear_to_mulaw(sample)),
            Codec::Alaw => alaw_to_linear(linear_to_alaw(sample)),
            Codec::L16 | Codec::L16Be => sample,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_l16_is_an_error_naming_the_length() {
        let mut out = Vec::new();
        let err = Codec::L16.decode_into(&[1, 2, 3], &mut out).unwrap_err();
        assert_eq!(err, CodecError::OddL16Length { len_bytes: 3 });
        assert!(err.to_string().contains('3'));
    }

    #[test]
    fn l16_is_little_endian() {
        let mut out = Vec::new();
        Codec::L16
            .decode_into(&[0x34, 0x12, 0xff, 0xff], &mut out)
            .unwrap();
        assert_eq!(out, vec![0x1234, -1]);
    }

    #[test]
    fn every_codec_round_trips_its_own_reconstruction() {
        for codec in [Codec::Mulaw, Codec::Alaw, Codec::L16] {
            let src: Vec<i16> = (-32768..=32767).step_by(7).map(|s| s as i16).collect();
            let mut wire = Vec::new();
            codec.encode_into(&src, &mut wire);
            assert_eq!(wire.len(), src.len() * codec.bytes_per_sample());
            let mut back = Vec::new();
            codec.decode_into(&wire, &mut back).unwrap();
            for (s, b) in src.iter().zip(&back) {
                assert_eq!(codec.round_trip(*s), *b);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            for codec in [Codec::Mulaw, Codec::Alaw, Codec::L16] {
                let mut out = Vec::new();
                let res = codec.decode_into(&bytes, &mut out);
                if res.is_ok() {
                    proptest::prop_assert_eq!(out.len(), bytes.len() / codec.bytes_per_sample());
                }
            }
        }
    }

    #[test]
    fn l16_byte_orders_are_mirror_images() {
        let samples = [1i16, -2, 0x1234, i16::MIN, i16::MAX];
        let (mut le, mut be) = (Vec::new(), Vec::new());
        Codec::L16.encode_into(&samples, &mut le);
        Codec::L16Be.encode_into(&samples, &mut be);
        assert_eq!(
            &be[4..6],
            &[0x12, 0x34],
            "network order puts the high byte first"
        );
        assert_eq!(&le[4..6], &[0x34, 0x12]);
        let mut out = Vec::new();
        Codec::L16Be.decode_into(&be, &mut out).unwrap();
        assert_eq!(out, samples);
        // Reading one order as the other garbles every sample but zero.
        out.clear();
        Codec::L16.decode_into(&be, &mut out).unwrap();
        assert_ne!(out[2], 0x1234);
    }
}
