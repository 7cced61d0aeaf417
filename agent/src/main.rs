//! `tribune CONFIG.yml`: one agent per database host, started exactly as `patroni CONFIG.yml`.
//! A thin main: parse arguments, load and validate the configuration, refuse to run as root,
//! set up logging, run until SIGINT/SIGTERM, telling systemd when the REST API serves and when
//! a stop begins (`notify`).

mod notify;

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

const USAGE: &str = "usage: tribune [--validate-config] CONFIG.yml\n       tribune --version";

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread exists.
    let notifier = match unsafe { notify::Notifier::from_env() } {
        Ok(notifier) => notifier,
        Err(err) => {
            eprintln!("tribune: cannot reach systemd's notification socket: {err}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut validate_only = false;
    let mut path: Option<PathBuf> = None;
    for arg in &args {
        match arg.as_str() {
            "--version" | "-V" => {
                println!("tribune {}", tribune::VERSION);
                return ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--validate-config" => validate_only = true,
            other if other.starts_with('-') => {
                eprintln!("tribune: unknown option {other}\n{USAGE}");
                return ExitCode::from(2);
            }
            other => {
                if path.replace(PathBuf::from(other)).is_some() {
                    eprintln!("tribune: give one configuration file\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let config = match tribune::config::Config::load(path.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("tribune: {err}");
            return ExitCode::FAILURE;
        }
    };
    if validate_only {
        for key in config.ignored_keys_explained() {
            println!("accepted but not acted on: {key}");
        }
        if let Err(err) = tribune::raft::PeerAuth::from_config(&config.raft).check(&config.scope) {
            eprintln!("tribune: {err}");
            return ExitCode::FAILURE;
        }
        if let Some(warning) = config.raft.peer_authentication_warning(&config.scope) {
            println!("warning: {warning}");
        }
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    if config.postgresql.is_some() && nix::unistd::geteuid().is_root() {
        eprintln!(
            "tribune: refusing to run as root: PostgreSQL cannot run as root. Run the agent as \
             the operating system user that owns the data directory, e.g. \
             `runuser -u postgres -- tribune {}`",
            path.as_deref()
                .map_or("CONFIG.yml".into(), |p| p.display().to_string())
        );
        return ExitCode::FAILURE;
    }
    if let Err(err) = tribune::logging::init(&config.log) {
        eprintln!("tribune: {err}");
        return ExitCode::FAILURE;
    }
    if let Some(warning) = config.ignored_keys_warning() {
        warn!("{warning}");
    }
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("tribune: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // SIGHUP reloads the configuration (`systemctl reload`, ExecReload). Its handler is
        // installed for the whole process here, before anything starts: until the reload task
        // listens, a SIGHUP is then dropped instead of ending the agent by its default action
        // (which would leave PostgreSQL running unmanaged).
        if let Err(err) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            warn!(error = %err, "cannot handle SIGHUP: a SIGHUP during start-up ends the agent");
        }
        let notifier = std::sync::Arc::new(notifier);
        let ready = notifier.clone();
        tokio::spawn(async move {
            let addr = tribune::api::serving::serving().await;
            if let Err(err) = ready.ready(&format!("REST API serving on {addr}")) {
                warn!(error = %err, "could not tell systemd that the agent is ready");
            }
        });
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("received a stop signal, shutting down");
            if let Err(err) =
                notifier.stopping("stopping: PostgreSQL is stopped and the lease given up first")
            {
                warn!(error = %err, "could not tell systemd that the agent is stopping");
            }
            signals.cancel();
        });
        match tribune::node::run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                error!("{err:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The async runtime, sized for the agent's work rather than for the host it runs on.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        // Two workers carry the HA loop, Raft and the REST API (more than 50,000 health checks
        // a second in scripts/bench-rest.sh on a 2-core machine). tokio's default, one worker
        // per CPU, adds a thread stack and a malloc arena per CPU on a large database host
        // and buys nothing: failover time is set by ttl and loop_wait, not by CPU.
        .worker_threads(2)
        // Blocking work is short (opening the Raft store, name look-ups for the allowlist):
        // 16 threads bound the worst case where tokio's default allows 512.
        .max_blocking_threads(16)
        .enable_all()
        .build()
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the agent still stops on Ctrl-C through the default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
