//! A small QMP client over a Unix socket, std only: greeting and `qmp_capabilities`,
//! [`Qmp::execute`] with QEMU's error mapped to [`QmpError::Command`], and named events
//! waited for with a timeout. Events that arrive while a command waits for its return are
//! kept, so a later [`Qmp::wait_event`] still sees them.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

/// What can go wrong talking QMP.
#[derive(Debug)]
pub enum QmpError {
    /// QEMU rejected the command: `{"error": {"class": ..., "desc": ...}}`.
    Command {
        command: String,
        class: String,
        desc: String,
    },
    /// Nothing suitable arrived in time; names what was awaited.
    Timeout(String),
    /// QEMU closed the socket.
    Closed,
    Io(io::Error),
    /// A message that is not QMP.
    Protocol(String),
}

impl fmt::Display for QmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QmpError::Command {
                command,
                class,
                desc,
            } => write!(f, "QMP {command}: {class}: {desc}"),
            QmpError::Timeout(what) => write!(f, "QMP: timed out waiting for {what}"),
            QmpError::Closed => f.write_str("QMP: QEMU closed the connection"),
            QmpError::Io(e) => write!(f, "QMP: {e}"),
            QmpError::Protocol(what) => write!(f, "QMP: protocol error: {what}"),
        }
    }
}

impl std::error::Error for QmpError {}

impl From<io::Error> for QmpError {
    fn from(e: io::Error) -> Self {
        QmpError::Io(e)
    }
}

/// A connected QMP session in command mode.
pub struct Qmp {
    stream: UnixStream,
    /// Bytes read but not yet split into lines.
    pending: Vec<u8>,
    events: VecDeque<Value>,
    greeting: Value,
    next_id: u64,
    command_timeout: Duration,
}

impl Qmp {
    /// Connects to `path`, retrying while QEMU has not created the socket yet.
    pub fn connect(path: &Path, timeout: Duration) -> anyhow::Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    return Err(e).with_context(|| format!("connecting to {}", path.display()));
                }
            }
        };
        Ok(Qmp::handshake(stream)?)
    }

    /// Reads the greeting and enters command mode.
    pub fn handshake(stream: UnixStream) -> Result<Qmp, QmpError> {
        let mut qmp = Qmp {
            stream,
            pending: Vec::new(),
            events: VecDeque::new(),
            greeting: Value::Null,
            next_id: 1,
            command_timeout: Duration::from_secs(30),
        };
        let deadline = Instant::now() + qmp.command_timeout;
        let greeting = qmp.read_message(deadline, "the QMP greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected a greeting, got {greeting}"
            )));
        }
        qmp.greeting = greeting;
        qmp.execute("qmp_capabilities", Value::Null)?;
        Ok(qmp)
    }

    /// The greeting (`{"QMP": {"version": ...}}`).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// How long [`Qmp::execute`] waits for a return (default 30 s).
    pub fn set_command_timeout(&mut self, timeout: Duration) {
        self.command_timeout = timeout;
    }

    /// Runs `command` (with `arguments` unless `Value::Null`) and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if !arguments.is_null() {
            msg["arguments"] = arguments;
        }
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        self.stream.write_all(&line)?;
        let deadline = Instant::now() + self.command_timeout;
        loop {
            let reply = self.read_message(deadline, &format!("the return of {command}"))?;
            if reply.get("event").is_some() {
                self.events.push_back(reply);
                continue;
            }
            if reply.get("id").and_then(Value::as_u64) != Some(id) {
                continue; // the late answer to a command that timed out earlier
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            let error = reply.get("error").ok_or_else(|| {
                QmpError::Protocol(format!("reply without return or error: {reply}"))
            })?;
            let field = |name: &str| error[name].as_str().unwrap_or("?").to_string();
            return Err(QmpError::Command {
                command: command.to_string(),
                class: field("class"),
                desc: field("desc"),
            });
        }
    }

    /// Waits for the next event called `name` (buffered ones first) and returns the whole
    /// message (`{"event", "data", "timestamp"}`).
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Value, QmpError> {
        self.wait_event_where(name, timeout, |_| true)
    }

    /// Like [`Qmp::wait_event`], for the first event whose `data` satisfies `matches`.
    pub fn wait_event_where(
        &mut self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value, QmpError> {
        let wanted = |e: &Value| e["event"] == name && matches(&e["data"]);
        if let Some(at) = self.events.iter().position(wanted) {
            return Ok(self.events.remove(at).unwrap_or_default());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.read_message(deadline, &format!("event {name}"))?;
            if msg.get("event").is_none() {
                continue;
            }
            if wanted(&msg) {
                return Ok(msg);
            }
            self.events.push_back(msg);
        }
    }

    /// Takes every event received so far and not yet consumed.
    pub fn take_events(&mut self) -> Vec<Value> {
        self.events.drain(..).collect()
    }

    /// Reads one newline-terminated JSON message.
    fn read_message(&mut self, deadline: Instant, what: &str) -> Result<Value, QmpError> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if line.trim().is_empty() {
                    continue;
                }
                return serde_json::from_str(line.trim())
                    .map_err(|e| QmpError::Protocol(format!("{e} in {line:?}")));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(QmpError::Timeout(what.to_string()));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(QmpError::Closed),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(QmpError::Timeout(what.to_string()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}}, "capabilities": ["oob"]}}"#;

    /// A fake QEMU: sends the greeting, then answers each command with `reply(command)`,
    /// written in pieces to exercise the framing.
    fn fake_qemu(reply: fn(&Value) -> String) -> (Qmp, thread::JoinHandle<Vec<Value>>) {
        let (client, server) = UnixStream::pair().unwrap();
        let handle = thread::spawn(move || {
            let mut writer = server.try_clone().unwrap();
            writer.write_all(GREETING.as_bytes()).unwrap();
            writer.write_all(b"\r\n").unwrap();
            let mut seen = Vec::new();
            for line in BufReader::new(server).lines() {
                let cmd: Value = serde_json::from_str(&line.unwrap()).unwrap();
                let answer = reply(&cmd);
                let (a, b) = answer.split_at(answer.len() / 2);
                writer.write_all(a.as_bytes()).unwrap();
                thread::sleep(Duration::from_millis(5));
                writer.write_all(b.as_bytes()).unwrap();
                seen.push(cmd);
            }
            seen
        });
        (Qmp::handshake(client).unwrap(), handle)
    }

    fn ok(cmd: &Value, ret: &str) -> String {
        format!("{{\"return\": {ret}, \"id\": {}}}\n", cmd["id"])
    }

    #[test]
    fn handshake_then_execute_returns_the_value() {
        let (mut qmp, server) = fake_qemu(|cmd| match cmd["execute"].as_str() {
            Some("query-status") => ok(cmd, r#"{"status": "running", "running": true}"#),
            _ => ok(cmd, "{}"),
        });
        assert_eq!(qmp.greeting()["QMP"]["version"]["qemu"]["major"], 10);
        let status = qmp.execute("query-status", Value::Null).unwrap();
        assert_eq!(status["status"], "running");
        let args = json!({"path": "vm0", "property": "requested-size", "value": 1});
        qmp.execute("qom-set", args.clone()).unwrap();
        drop(qmp);
        let seen = server.join().unwrap();
        assert_eq!(seen[0], json!({"execute": "qmp_capabilities", "id": 1}));
        assert_eq!(seen[2]["arguments"], args);
        assert!(seen[1].get("arguments").is_none());
    }

    #[test]
    fn errors_map_to_command_errors() {
        let (mut qmp, _server) = fake_qemu(|cmd| match cmd["execute"].as_str() {
            Some("qmp_capabilities") => ok(cmd, "{}"),
            _ => format!(
                "{{\"id\": {}, \"error\": {{\"class\": \"GenericError\", \"desc\": \"not enough space\"}}}}\n",
                cmd["id"]
            ),
        });
        let err = qmp
            .execute("device_add", json!({"driver": "pc-dimm"}))
            .unwrap_err();
        match &err {
            QmpError::Command {
                command,
                class,
                desc,
            } => {
                assert_eq!(
                    (command.as_str(), class.as_str()),
                    ("device_add", "GenericError")
                );
                assert_eq!(desc, "not enough space");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "QMP device_add: GenericError: not enough space"
        );
    }

    #[test]
    fn events_during_a_command_are_kept_for_later() {
        let (mut qmp, _server) = fake_qemu(|cmd| match cmd["execute"].as_str() {
            Some("device_del") => format!(
                "{{\"event\": \"DEVICE_DELETED\", \"data\": {{\"path\": \"/machine/peripheral/vm1/virtio-backend\"}}, \"timestamp\": {{}}}}\n\
                 {{\"event\": \"DEVICE_DELETED\", \"data\": {{\"device\": \"vm1\", \"path\": \"/machine/peripheral/vm1\"}}, \"timestamp\": {{}}}}\n{}",
                ok(cmd, "{}")
            ),
            _ => ok(cmd, "{}"),
        });
        qmp.execute("device_del", json!({"id": "vm1"})).unwrap();
        let t = Duration::from_millis(200);
        let ev = qmp
            .wait_event_where("DEVICE_DELETED", t, |d| d["device"] == "vm1")
            .unwrap();
        assert_eq!(ev["data"]["path"], "/machine/peripheral/vm1");
        let rest = qmp.take_events();
        assert_eq!(rest.len(), 1);
        assert!(matches!(
            qmp.wait_event("DEVICE_DELETED", t),
            Err(QmpError::Timeout(_))
        ));
    }

    #[test]
    fn stale_returns_are_skipped_and_a_closed_socket_is_reported() {
        let (mut qmp, _server) = fake_qemu(|cmd| match cmd["execute"].as_str() {
            Some("query-memory-devices") => {
                format!("{{\"return\": \"stale\", \"id\": 999}}\n{}", ok(cmd, "[]"))
            }
            _ => ok(cmd, "{}"),
        });
        assert_eq!(
            qmp.execute("query-memory-devices", Value::Null).unwrap(),
            json!([])
        );
        let (client, server) = UnixStream::pair().unwrap();
        drop(server);
        assert!(matches!(Qmp::handshake(client), Err(QmpError::Closed)));
    }

    #[test]
    fn a_silent_server_times_out() {
        let (client, _server) = UnixStream::pair().unwrap();
        let mut qmp = Qmp {
            stream: client,
            pending: Vec::new(),
            events: VecDeque::new(),
            greeting: Value::Null,
            next_id: 1,
            command_timeout: Duration::from_millis(50),
        };
        let err = qmp.execute("query-status", Value::Null).unwrap_err();
        assert_eq!(
            err.to_string(),
            "QMP: timed out waiting for the return of query-status"
        );
    }
}
