//! Running the system tools the hosts are made of (`ip`, `nft`, `mount`, `haproxy`,
//! `tribunectl`), with the command line in every error.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Runs `program args` to completion; its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    run_with_input(program, args, None)
}

/// As [`run`], with `input` on its stdin (`nft -f -`).
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    let line = format!("{program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("run `{line}`"))?;
    if let Some(text) = input {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().context("stdin of a child")?;
        stdin
            .write_all(text.as_bytes())
            .with_context(|| format!("write the input of `{line}`"))?;
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("wait for `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// As [`run_with_input`], off the async runtime's threads.
pub async fn run_input_async(
    program: &'static str,
    args: Vec<String>,
    input: String,
) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with_input(program, &args, Some(&input))
    })
    .await
    .context("join a command's thread")?
}
