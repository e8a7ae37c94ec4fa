//! ITU-T G.711 companding (mu-law and A-law), written from the standard's segment tables.

const MULAW_BIAS: i32 = 0x84;
const MULAW_CLIP: i32 = 32635;

/// Expands one mu-law byte to a linear 16-bit sample. 0xFF and 0x7F are silence.
pub fn mulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + MULAW_BIAS) << exponent) - MULAW_BIAS;
    // invariant: magnitude <= 32124, fits in i16 either sign.
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Compresses a linear 16-bit sample to mu-law.
pub fn linear_to_mulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(MULAW_CLIP) + MULAW_BIAS;
    let exponent = (31 - (pcm as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

/// Expands one A-law byte to a linear 16-bit sample. 0xD5 and 0x55 are (near) silence.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    // A-law's sign bit set means positive.
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Compresses a linear 16-bit sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let pcm = i32::from(sample);
    let (sign, magnitude) = if pcm >= 0 {
        (0x80u8, pcm)
    } else {
        (0x00u8, -pcm - 1)
    };
    let magnitude = magnitude.min(32767);
    let code = if magnitude < 256 {
        (magnitude >> 4) as u8
    } else {
        let exponent = (31 - (magnitude as u32).leading_zeros() as i32 - 7).clamp(1, 7);
        let mantissa = (magnitude >> (exponent + 3)) & 0x0F;
        ((exponent as u8) << 4) | mantissa as u8
    };
    (sign | code) ^ 0x55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulaw_silence_is_zero() {
        assert_eq!(mulaw_to_linear(0xFF), 0);
        assert_eq!(mulaw_to_linear(0x7F), 0);
        assert_eq!(linear_to_mulaw(0), 0xFF);
    }

    #[test]
    fn mulaw_extremes_match_the_standard() {
        assert_eq!(mulaw_to_linear(0x00), -32124);
        assert_eq!(mulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_mulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_mulaw(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_silence_and_extremes() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for b in 0..=255u8 {
            let m = linear_to_mulaw(mulaw_to_linear(b));
            // 0x7F (negative zero) canonicalises to 0xFF.
            assert!(m == b || (b == 0x7F && m == 0xFF), "mulaw {b:#x} -> {m:#x}");
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "alaw {b:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded_relative_to_level() {
        for s in (-32000i32..32000).step_by(13) {
            let s = s as i16;
            let m = i32::from(mulaw_to_linear(linear_to_mulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!((m - i32::from(s)).abs() <= tol, "mulaw {s} -> {m}");
            assert!((a - i32::from(s)).abs() <= tol, "alaw {s} -> {a}");
        }
    }
}
