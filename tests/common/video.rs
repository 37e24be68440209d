//! What a recording with video holds: its video stream as ffprobe counts it, and its frames as
//! pixels (ffmpeg), for the tests that record a room composite with video (egress,
//! recording_worker).

use std::path::Path;
use std::process::Command;

use super::audio::tool;

/// The camera picture tests/participant/participant.py publishes with `--camera-colour 00c800`:
/// green, with a white bar moving across it.
pub const CAMERA_RGB: [u8; 3] = [0, 200, 0];

/// What ffprobe says of the first video stream of `file`, counting its packets (one per frame
/// for H.264) rather than trusting the header.
#[derive(Debug)]
pub struct VideoStream {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub secs: f64,
}

pub fn video_stream(file: &Path) -> VideoStream {
    let out = Command::new(tool("ffprobe"))
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_packets,duration",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe failed on {}", file.display());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{}: ffprobe gives no {key}:\n{text}", file.display()))
            .to_string()
    };
    let number = |key: &str| -> f64 {
        field(key)
            .parse()
            .unwrap_or_else(|_| panic!("{}: {key} is not a number:\n{text}", file.display()))
    };
    VideoStream {
        codec: field("codec_name"),
        width: number("width") as u32,
        height: number("height") as u32,
        frames: number("nb_read_packets") as u64,
        secs: number("duration"),
    }
}

/// The frame of `file` at `at` seconds, scaled down to 64x36 RGB pixels by ffmpeg.
pub fn frame_pixels(file: &Path, at: f64) -> Vec<[u8; 3]> {
    let out = Command::new(tool("ffmpeg"))
        .args(["-v", "error", "-ss", &format!("{at:.2}"), "-i"])
        .arg(file)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=64:36",
            "-pix_fmt",
            "rgb24",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.len() == 64 * 36 * 3,
        "ffmpeg cannot take a frame at {at:.2} s of {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// The share of `pixels` within 60 of `rgb` on every channel (H.264 and scaling blur the edges).
pub fn share_of(pixels: &[[u8; 3]], rgb: [u8; 3]) -> f64 {
    let near = |p: &[u8; 3]| (0..3).all(|c| (p[c] as i32 - rgb[c] as i32).abs() <= 60);
    pixels.iter().filter(|p| near(p)).count() as f64 / pixels.len() as f64
}
