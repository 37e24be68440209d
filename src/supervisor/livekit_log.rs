//! Turns livekit-server's output lines (zap JSON, or plain text) into bedrud log events,
//! and recognises the failures worth a precise message, such as a port already in use.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of LiveKit output, ready to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub level: Level,
    pub message: String,
    /// The structured fields, as `key=value` pairs.
    pub fields: String,
}

impl Line {
    pub fn text(&self) -> String {
        if self.fields.is_empty() {
            self.message.clone()
        } else {
            format!("{} {}", self.message, self.fields)
        }
    }
}

/// zap's JSON keys that are not worth repeating in bedrud's own log line.
const ENVELOPE: &[&str] = &["level", "ts", "msg", "logger", "caller", "stacktrace"];

pub fn parse(raw: &str) -> Line {
    let raw = raw.trim_end();
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(raw) {
        return from_json(&map);
    }
    Line {
        level: plain_level(raw),
        message: raw.to_string(),
        fields: String::new(),
    }
}

fn from_json(map: &Map<String, Value>) -> Line {
    let level = map
        .get("level")
        .and_then(Value::as_str)
        .map_or(Level::Info, level_word);
    let message = map
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let fields = map
        .iter()
        .filter(|(k, _)| !ENVELOPE.contains(&k.as_str()))
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s:?}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ");
    Line {
        level,
        message,
        fields,
    }
}

fn level_word(w: &str) -> Level {
    match w.to_ascii_lowercase().as_str() {
        "debug" => Level::Debug,
        "warn" | "warning" => Level::Warn,
        "error" | "dpanic" | "panic" | "fatal" => Level::Error,
        _ => Level::Info,
    }
}

/// zap's console encoder writes `TIME\tLEVEL\t…`; anything else is informational.
fn plain_level(raw: &str) -> Level {
    raw.split('\t')
        .nth(1)
        .map(level_word)
        .unwrap_or(Level::Info)
}

/// A precise reason for a failed start, recognised from LiveKit's last output lines.
pub fn diagnose(tail: &[String]) -> Option<String> {
    tail.iter().rev().find_map(|l| port_in_use(l))
}

/// `listen tcp :7880: bind: address already in use` → "port 7880 (tcp) is already in use".
fn port_in_use(line: &str) -> Option<String> {
    let before = &line[..line.find("address already in use")?];
    let proto = ["udp", "tcp"]
        .into_iter()
        .find(|p| before.contains(p))
        .unwrap_or("tcp");
    // The port is the last ":<digits>" before the message.
    let port = before.rmatch_indices(':').find_map(|(i, _)| {
        let digits: String = before[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u16>().ok()
    })?;
    Some(format!(
        "port {port} ({proto}) is already in use by another process; stop it or change the port in config.yaml"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zap_json_keeps_level_message_and_fields() {
        let l = parse(
            r#"{"level":"warn","ts":1.5,"logger":"livekit","caller":"x.go:1","msg":"starting LiveKit server","portHttp":7880,"nodeIP":"127.0.0.1"}"#,
        );
        assert_eq!(l.level, Level::Warn);
        assert_eq!(l.message, "starting LiveKit server");
        assert_eq!(l.fields, r#"portHttp=7880 nodeIP="127.0.0.1""#);
    }

    #[test]
    fn plain_lines_are_kept_whole() {
        let l = parse("could not parse config: yaml: unmarshal errors:\n");
        assert_eq!(l.level, Level::Info);
        assert_eq!(l.message, "could not parse config: yaml: unmarshal errors:");
        assert_eq!(
            parse("2024-01-01T00:00:00Z\tERROR\tlivekit\tboom").level,
            Level::Error
        );
    }

    #[test]
    fn recognises_a_port_in_use() {
        let tail = vec![
            "starting".to_string(),
            r#"{"level":"error","msg":"could not start server","error":"listen tcp :7880: bind: address already in use"}"#.to_string(),
        ];
        let d = diagnose(&tail).unwrap();
        assert!(d.starts_with("port 7880 (tcp) is already in use"), "{d}");
        let udp = vec!["listen udp 0.0.0.0:3478: bind: address already in use".to_string()];
        assert!(diagnose(&udp).unwrap().starts_with("port 3478 (udp)"));
        assert_eq!(diagnose(&["all fine".to_string()]), None);
    }
}
