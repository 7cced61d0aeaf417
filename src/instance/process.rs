//! Running the engine's command-line tools and writing its files, for every adapter.
//!
//! Adapters build a [`CommandLine`] with pure functions (so that tests can assert the exact
//! arguments) and run it here: stdin is `/dev/null`, stdout and stderr are captured, the child is
//! killed when the time limit passes, and an error names the command line and the end of stderr.
//!
//! Hazards: a command line is logged and put into errors, so adapters must never put a password
//! on it (use a password file or `PGPASSFILE`). A program that leaves a daemon behind (`pg_ctl
//! start`) must redirect that daemon's output away from the captured pipes, or reading them would
//! wait for the daemon to exit.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::InstanceError;

/// How many bytes of stderr an error quotes.
const STDERR_TAIL: usize = 2000;

/// One program invocation, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to the agent's environment.
    pub env: Vec<(String, String)>,
    /// Feed this file to stdin instead of `/dev/null`.
    pub stdin: Option<PathBuf>,
    /// Run in this directory instead of the agent's (pg_upgrade writes its scripts there).
    pub cwd: Option<PathBuf>,
}

impl CommandLine {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
        }
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Shell-like rendering for logs and errors: `LC_ALL=C pg_controldata -D '/data dir'`.
impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.cwd {
            write!(f, "cd {} && ", shell_quote(&dir.to_string_lossy()))?;
        }
        for (k, v) in &self.env {
            write!(f, "{k}={} ", shell_quote(v))?;
        }
        f.write_str(&shell_quote(&self.program.to_string_lossy()))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        Ok(())
    }
}

/// Quotes `s` for a POSIX shell when it holds anything but plainly safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@%".contains(c));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a finished command printed.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion within `timeout`. A non-zero exit is `Failed` (with the command line
/// and the stderr tail); running out of time is `Unknown` (the child is killed).
pub async fn run(
    operation: &'static str,
    cmd: &CommandLine,
    timeout: Duration,
) -> Result<Output, InstanceError> {
    let mut command = tokio::process::Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    match &cmd.stdin {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| InstanceError::failed(operation, format!("{cmd}: {e}")))?;
            command.stdin(Stdio::from(file));
        }
        None => {
            command.stdin(Stdio::null());
        }
    }
    // Read-only probes run every tick; only commands that change something are worth INFO.
    if operation == "pg_controldata" || operation == "identify system" {
        tracing::debug!(operation, command = %cmd, "running");
    } else {
        tracing::info!(operation, command = %cmd, "running");
    }
    let child = command
        .spawn()
        .map_err(|e| InstanceError::failed(operation, format!("could not run {cmd}: {e}")))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.map_err(|e| InstanceError::failed(operation, format!("{cmd}: {e}")))?,
        Err(_) => {
            tracing::warn!(operation, command = %cmd, ?timeout, "timed out; killed");
            return Err(InstanceError::Unknown { operation, timeout });
        }
    };
    let output = Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if out.status.success() {
        Ok(output)
    } else {
        let status = match out.status.code() {
            Some(code) => format!("exit code {code}"),
            None => format!("{}", out.status),
        };
        let text = if output.stderr.trim().is_empty() {
            &output.stdout
        } else {
            &output.stderr
        };
        Err(InstanceError::failed(
            operation,
            format!(
                "{cmd} failed with {status}: {}",
                tail(text.trim(), STDERR_TAIL)
            ),
        ))
    }
}

/// The last `max` bytes of `s` (on a character boundary), marked when cut.
pub fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &s[start..])
}

/// Writes `path` so that readers see the old or the new content, never a mix: a temporary file
/// beside it, fsync, rename, fsync of the directory. `mode` is the new file's permission bits.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` is filtered by the umask on creation and ignored for an existing file.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes `path`; a missing file is not an error.
pub fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_like_a_shell() {
        let cmd = CommandLine::new("/usr/bin/pg_ctl")
            .env("PGPASSFILE", "/tmp/pg pass")
            .args(["start", "-D", "/data", "-o", "--port=5432 --x='y'"]);
        assert_eq!(
            cmd.to_string(),
            r"PGPASSFILE='/tmp/pg pass' /usr/bin/pg_ctl start -D /data -o '--port=5432 --x='\''y'\'''"
        );
    }

    #[test]
    fn shell_quote_leaves_plain_words_alone() {
        assert_eq!(shell_quote("--port=5432"), "--port=5432");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("*"), "'*'");
        assert_eq!(shell_quote("a b"), "'a b'");
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 10), "abcdef");
        assert_eq!(tail("abcdef", 3), "...def");
        assert_eq!(tail("ééé", 3), "...é");
    }

    #[tokio::test]
    async fn run_reports_failure_with_stderr() {
        let cmd = CommandLine::new("/bin/sh").args(["-c", "echo out; echo boom >&2; exit 3"]);
        let err = run("test", &cmd, Duration::from_secs(5)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit code 3"), "{text}");
        assert!(text.contains("boom"), "{text}");
        let ok = run(
            "test",
            &CommandLine::new("/bin/echo").arg("hi"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(ok.stdout, "hi\n");
    }

    #[tokio::test]
    async fn run_times_out_as_unknown() {
        let cmd = CommandLine::new("/bin/sleep").arg("10");
        let err = run("test", &cmd, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, InstanceError::Unknown { .. }), "{err}");
    }

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        remove_if_exists(&path).unwrap();
        remove_if_exists(&path).unwrap();
    }
}
