//! systemd's readiness protocol (`Type=notify`, sd_notify(3)): `READY=1` once the REST API
//! serves, `STOPPING=1` when a stop begins, each with a `STATUS=` line for `systemctl status`.
//! A few lines over the `NOTIFY_SOCKET` datagram socket rather than a crate, because the
//! variable must leave the environment before anything starts: PostgreSQL, started by the agent,
//! is built with systemd support and would otherwise send its own `READY=1` to the agent's
//! unit (refused and logged by systemd, since only the main process may notify).
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every notification is a no-op. A failed send
//! is the caller's to log; it never stops the agent.

use std::io;
use std::os::unix::net::UnixDatagram;

const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where notifications go, taken from the environment once.
pub struct Notifier {
    socket: Option<UnixDatagram>,
}

impl Notifier {
    /// Takes `NOTIFY_SOCKET` out of the environment and connects to it.
    ///
    /// # Safety
    /// Changes the process environment: call it before any other thread exists (first thing
    /// in `main`, before the async runtime).
    pub unsafe fn from_env() -> io::Result<Notifier> {
        let Some(path) = std::env::var_os(NOTIFY_SOCKET) else {
            return Ok(Notifier { socket: None });
        };
        // SAFETY: the caller guarantees that no other thread reads or writes the environment.
        unsafe { std::env::remove_var(NOTIFY_SOCKET) };
        let socket = UnixDatagram::unbound()?;
        let path = path.to_string_lossy().into_owned();
        match path.strip_prefix('@') {
            // An abstract socket (systemd names them with a leading '@').
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                socket.connect_addr(&addr)?;
            }
            None if path.starts_with('/') => socket.connect(&path)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={path} is neither a path nor an abstract socket"),
                ));
            }
        }
        Ok(Notifier {
            socket: Some(socket),
        })
    }

    /// The REST API serves: systemd's start job is done.
    pub fn ready(&self, status: &str) -> io::Result<()> {
        self.send(&format!("READY=1\nSTATUS={}\n", one_line(status)))
    }

    /// A stop began (PostgreSQL is being stopped, the lease given up).
    pub fn stopping(&self, status: &str) -> io::Result<()> {
        self.send(&format!("STOPPING=1\nSTATUS={}\n", one_line(status)))
    }

    fn send(&self, message: &str) -> io::Result<()> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        let sent = socket.send(message.as_bytes())?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was cut short",
            ))
        }
    }
}

/// A `STATUS=` value is one line: a newline would start another assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket_as_systemd_reads_them() {
        let dir = std::env::temp_dir().join(format!("tribune-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let systemd = UnixDatagram::bind(&path).unwrap();
        let socket = UnixDatagram::unbound().unwrap();
        socket.connect(&path).unwrap();
        let notifier = Notifier {
            socket: Some(socket),
        };
        notifier.ready("serving on 127.0.0.1:8008\nsecond").unwrap();
        notifier.stopping("stopping").unwrap();
        let mut buf = [0u8; 256];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "READY=1\nSTATUS=serving on 127.0.0.1:8008 second\n"
        );
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            "STOPPING=1\nSTATUS=stopping\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_systemd_nothing_is_sent() {
        let notifier = Notifier { socket: None };
        notifier.ready("x").unwrap();
        notifier.stopping("x").unwrap();
    }
}
