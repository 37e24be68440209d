//! What a recording holds: decoding with ffmpeg and finding the participant's tone, for the
//! tests that record (egress, recording_worker, recording).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::which;

/// The tone tests/participant/participant.py publishes.
pub const TONE_HZ: f64 = 440.0;
/// Sample rate the recordings are decoded at for the analysis.
pub const RATE: usize = 48_000;

pub fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| {
        panic!("{name} is not installed: apt-get install ffmpeg (scripts/install-egress.sh does)")
    })
}

/// Mono 16-bit samples at [`RATE`] decoded from `file` by ffmpeg.
pub fn decode(file: &Path) -> Vec<f64> {
    let out = Command::new(tool("ffmpeg"))
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-ac", "1", "-ar", &RATE.to_string(), "-f", "s16le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f64)
        .collect()
}

/// The stream types and codec names ffprobe finds in `file`, e.g. `["audio:opus"]`.
pub fn streams(file: &Path) -> Vec<String> {
    let out = Command::new(tool("ffprobe"))
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split(',');
            let codec = f.next().unwrap_or("");
            format!("{}:{codec}", f.next().unwrap_or(""))
        })
        .collect()
}

/// The strongest frequency (in 5 Hz steps, 50 Hz to 4 kHz) of one second of `samples`, by the
/// Goertzel algorithm, and that second's RMS level.
pub fn dominant_frequency(samples: &[f64]) -> (f64, f64) {
    let window = &samples[..RATE.min(samples.len())];
    let power = |hz: f64| {
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / RATE as f64).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for x in window {
            let s = x + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    };
    let best = (10..=800)
        .map(|i| i as f64 * 5.0)
        .max_by(|a, b| power(*a).total_cmp(&power(*b)))
        .unwrap();
    let rms = (window.iter().map(|x| x * x).sum::<f64>() / window.len() as f64).sqrt();
    (best, rms)
}

/// How egress got what it recorded, which sets how exact the file can be.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Source {
    /// GStreamer subscribed to the tracks itself (audio-only composite, track egress): the file
    /// holds what egress reports, within the ±1 s every check allows, and the tone throughout.
    Sdk,
    /// Chromium showed and played the room (composite with video). Egress counts such a
    /// recording from its pipeline "playing" to the stop request, but the file also holds what
    /// Chromium's capture gave before the first and what drained after the second: 0.2 to 1.3 s
    /// more at load average 9 to 17 on the 2-core test machine, 3.3 s with three composites and
    /// two busy loops beside it. It can never hold more than the whole time the recording
    /// existed, `span_secs`: from the start request to its end being reported, as the test
    /// measured it. The sound has passed through Chromium and PulseAudio: on a starved machine
    /// it may drop out, so one second of the tone may miss.
    Web { span_secs: f64 },
}

/// `secs` of `what` in `file` match the `reported_secs` egress reported: within 1 s, or, for a
/// web recording, at least that and at most the time the recording existed.
pub fn assert_length(file: &Path, what: &str, secs: f64, reported_secs: f64, source: Source) {
    let at_most = match source {
        Source::Sdk => reported_secs + 1.0,
        Source::Web { span_secs } => span_secs,
    };
    assert!(
        secs > reported_secs - 1.0 && secs < at_most,
        "{}: {secs:.2} s of {what}, egress reported {reported_secs:.2} s (at most {at_most:.2} s \
         allowed)",
        file.display()
    );
}

/// The file holds the tone: the decoded audio is as long as egress says it recorded (and most
/// of the `recorded_for` it was recording), and each whole second of it, but the first, is
/// 440 Hz.
pub fn assert_tone(file: &Path, reported_secs: f64, recorded_for: Duration) {
    assert_tone_from(file, reported_secs, recorded_for, Source::Sdk);
}

/// Each whole second of `samples` but the first that is not the tone, described. The first
/// may hold the silence before the participant's track was subscribed.
pub fn tone_misses(samples: &[f64]) -> Vec<String> {
    samples
        .chunks_exact(RATE)
        .enumerate()
        .skip(1)
        .map(|(i, second)| (i, dominant_frequency(second)))
        .filter(|(_, (hz, rms))| (hz - TONE_HZ).abs() > 5.0 || *rms <= 500.0)
        .map(|(i, (hz, rms))| format!("second {i} is {hz} Hz at RMS {rms:.0}"))
        .collect()
}

/// [`assert_tone`] for a recording made as `source` says: for [`Source::Web`] the length may be
/// over what egress reported (see there) and one whole second may miss the tone.
pub fn assert_tone_from(file: &Path, reported_secs: f64, recorded_for: Duration, source: Source) {
    let samples = decode(file);
    let secs = samples.len() as f64 / RATE as f64;
    assert_length(file, "audio", secs, reported_secs, source);
    assert!(
        secs >= recorded_for.as_secs_f64() - 2.0,
        "{}: only {secs:.2} s of audio for {recorded_for:?} of recording",
        file.display()
    );
    let misses = tone_misses(&samples);
    let allowed = if matches!(source, Source::Web { .. }) {
        1
    } else {
        0
    };
    assert!(
        misses.len() <= allowed,
        "{}: not the {TONE_HZ} Hz tone: {}",
        file.display(),
        misses.join("; ")
    );
    if !misses.is_empty() {
        eprintln!("{}: tolerated: {}", file.display(), misses.join("; "));
    }
}
