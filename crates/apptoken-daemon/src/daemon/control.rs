//! Telling a running daemon what to do: [`DaemonHandle`] (shutdown,
//! reload) and the Unix signals that map onto it.

use tokio::sync::mpsc;
use tracing::{error, info};

use crate::error::Error;

#[derive(Debug)]
pub(super) enum Control {
    Shutdown,
    Reload,
}

/// Tells a running [`crate::Daemon`] to stop or to reload its configuration.
#[derive(Debug, Clone)]
pub struct DaemonHandle {
    pub(super) tx: mpsc::UnboundedSender<Control>,
}

impl DaemonHandle {
    /// Stops scheduling; running jobs get the grace period to finish.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Control::Shutdown);
    }

    /// Re-reads the configuration file; a file with problems is not used
    /// (they are logged) and the current configuration stays.
    pub fn reload(&self) {
        let _ = self.tx.send(Control::Reload);
    }

    /// SIGTERM and SIGINT shut down (a second one exits the process at once
    /// with status 130); SIGHUP reloads. Needs a tokio runtime.
    #[cfg(unix)]
    pub fn install_signal_handlers(&self) -> Result<(), Error> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |k: SignalKind, name: &str| {
            signal(k).map_err(|e| Error::Other(format!("cannot listen for {name}: {e}")))
        };
        let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
        let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
        let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
        let handle = self.clone();
        tokio::spawn(async move {
            let mut stopping = false;
            loop {
                let stop = tokio::select! {
                    _ = term.recv() => true,
                    _ = int.recv() => true,
                    _ = hup.recv() => false,
                };
                if !stop {
                    info!("SIGHUP: reloading the configuration");
                    handle.reload();
                    continue;
                }
                if stopping {
                    error!(
                        "second stop signal: exiting now, unfinished runs are abandoned (their previous outputs stay)"
                    );
                    std::process::exit(130);
                }
                stopping = true;
                info!(
                    "stop signal: no new runs; waiting for running jobs (the grace period), a second signal exits at once"
                );
                handle.shutdown();
            }
        });
        Ok(())
    }
}
