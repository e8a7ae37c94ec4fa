//! The crate's one WAV reader: 16-bit PCM per channel at the file's own rate, read a block at a
//! time so that replaying an hour-long recording holds 20 ms of it, not the whole file. Mono is
//! the caller; stereo is caller left, agent right. 8/24/32-bit integer and 32-bit float samples
//! are converted to 16-bit.

use super::ReplayError;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// How the file's samples become 16-bit.
#[derive(Debug, Clone, Copy)]
enum SampleKind {
    I16,
    /// Integer samples of another width: shifted by `bits - 16`.
    Int {
        shift: i32,
    },
    F32,
}

/// An open WAV file, validated, read a block at a time.
pub struct WavStream {
    reader: hound::WavReader<BufReader<File>>,
    path: PathBuf,
    sample_rate_hz: u32,
    channels: usize,
    kind: SampleKind,
    /// Interleaved samples read but not yet handed out (a read can end mid-frame only at a
    /// truncated end of file).
    interleaved: Vec<i16>,
    /// Size of the file, which bounds what its header may claim.
    file_bytes: u64,
}

impl WavStream {
    /// Opens and checks `path`: 1 or 2 channels, 8–48 kHz, a sample format it can convert.
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let meta = std::fs::metadata(path).map_err(|source| ReplayError::Io {
            path: path.to_owned(),
            source,
        })?;
        if meta.len() == 0 {
            return Err(ReplayError::Empty {
                path: path.to_owned(),
            });
        }
        let wav_err = |detail: String| ReplayError::Wav {
            path: path.to_owned(),
            detail,
        };
        let reader = hound::WavReader::open(path).map_err(|e| wav_err(e.to_string()))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels);
        if channels == 0 || channels > 2 {
            return Err(wav_err(format!(
                "{channels} channels (expected mono, or stereo = caller left, agent right)"
            )));
        }
        if !(8000..=48000).contains(&spec.sample_rate) {
            return Err(wav_err(format!(
                "sample rate {} Hz (expected 8000..=48000)",
                spec.sample_rate
            )));
        }
        let kind = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 16) => SampleKind::I16,
            (hound::SampleFormat::Int, bits @ (8 | 24 | 32)) => SampleKind::Int {
                shift: i32::from(bits) - 16,
            },
            (hound::SampleFormat::Float, 32) => SampleKind::F32,
            (f, b) => return Err(wav_err(format!("unsupported sample format {f:?} {b}-bit"))),
        };
        Ok(Self {
            reader,
            path: path.to_owned(),
            sample_rate_hz: spec.sample_rate,
            channels,
            kind,
            interleaved: Vec::new(),
            file_bytes: meta.len(),
        })
    }

    /// The file's sample rate.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// 1 (caller) or 2 (caller, agent).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames in the file, as its header says, but never more than its bytes could hold (a
    /// forged header must not size a buffer).
    pub fn frames(&self) -> u64 {
        u64::from(self.reader.duration()).min(self.file_bytes)
    }

    /// Fills `out` (one buffer per channel, each cleared first) with the next `frames` frames or
    /// fewer at the end; `false` when nothing was left.
    pub fn read_block(&mut self, frames: usize, out: &mut [Vec<i16>]) -> Result<bool, ReplayError> {
        let want = frames.saturating_mul(self.channels);
        self.interleaved.clear();
        let path = &self.path;
        let wav_err = |e: hound::Error| ReplayError::Wav {
            path: path.clone(),
            detail: e.to_string(),
        };
        match self.kind {
            SampleKind::I16 => {
                for s in self.reader.samples::<i16>().take(want) {
                    self.interleaved.push(s.map_err(wav_err)?);
                }
            }
            SampleKind::Int { shift } => {
                for s in self.reader.samples::<i32>().take(want) {
                    let s = s.map_err(wav_err)?;
                    let v = if shift >= 0 { s >> shift } else { s << -shift };
                    self.interleaved.push(v.clamp(-32768, 32767) as i16);
                }
            }
            SampleKind::F32 => {
                for s in self.reader.samples::<f32>().take(want) {
                    let s = s.map_err(wav_err)?;
                    self.interleaved
                        .push((s * 32767.0).clamp(-32768.0, 32767.0) as i16);
                }
            }
        }
        for o in out.iter_mut() {
            o.clear();
        }
        for (i, s) in self.interleaved.iter().enumerate() {
            if let Some(o) = out.get_mut(i % self.channels) {
                o.push(*s);
            }
        }
        Ok(!self.interleaved.is_empty())
    }
}

/// Reads a whole WAV file as 16-bit PCM channels at its own rate (for `tune`, which needs the
/// clip in memory; `replay` streams it with [`WavStream`]).
pub fn read_wav(path: &Path) -> Result<(u32, Vec<Vec<i16>>), ReplayError> {
    let mut wav = WavStream::open(path)?;
    let frames = usize::try_from(wav.frames()).unwrap_or(0);
    let mut out = vec![Vec::with_capacity(frames); wav.channels()];
    let mut block = vec![Vec::new(); wav.channels()];
    while wav.read_block(4096, &mut block)? {
        for (o, b) in out.iter_mut().zip(&block) {
            o.extend_from_slice(b);
        }
    }
    if out.first().is_none_or(Vec::is_empty) {
        return Err(ReplayError::Empty {
            path: path.to_owned(),
        });
    }
    Ok((wav.sample_rate_hz(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, channels: u16, bits: u16, samples: &[i32]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for s in samples {
            w.write_sample(*s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn blocks_of_any_size_add_up_to_the_whole_file_per_channel() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("st.wav");
        let interleaved: Vec<i32> = (0..2002).map(|i| (i * 7 % 3001) - 1500).collect();
        write(&p, 2, 16, &interleaved);
        let (rate, whole) = read_wav(&p).unwrap();
        assert_eq!(rate, 8000);
        assert_eq!(whole[0].len(), 1001);
        assert_eq!(whole[1][3], interleaved[7] as i16);
        for frames in [1, 7, 160, 5000] {
            let mut w = WavStream::open(&p).unwrap();
            let mut got = vec![Vec::new(), Vec::new()];
            let mut block = vec![Vec::new(), Vec::new()];
            while w.read_block(frames, &mut block).unwrap() {
                assert!(block[0].len() <= frames);
                got[0].extend_from_slice(&block[0]);
                got[1].extend_from_slice(&block[1]);
            }
            assert_eq!(got, whole, "blocks of {frames}");
        }
    }

    #[test]
    fn wider_samples_become_16_bit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w24.wav");
        write(&p, 1, 24, &[0x7f_ffff, -0x80_0000, 256]);
        let (_, ch) = read_wav(&p).unwrap();
        assert_eq!(ch, vec![vec![32767, -32768, 1]]);
    }

    #[test]
    fn a_header_claiming_more_frames_than_the_file_holds_sizes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("forged.wav");
        write(&p, 1, 16, &[1, 2, 3, 4]);
        let mut bytes = std::fs::read(&p).unwrap();
        // The data chunk's length (the last 4 header bytes before the samples) says 2 GB.
        let at = bytes.len() - 8 - 4;
        bytes[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let w = WavStream::open(&p).unwrap();
        assert!(w.frames() <= bytes.len() as u64);
        // Reading ends at the real end of the file, with the samples that are there or a
        // clear error, never a huge allocation.
        match read_wav(&p) {
            Ok((_, ch)) => assert_eq!(ch[0], vec![1, 2, 3, 4]),
            Err(e) => assert!(e.to_string().contains("forged.wav"), "{e}"),
        }
    }
}
