//! Process signals that stop the daemon. The first SIGTERM or SIGINT starts the drain
//! (the token passed to `App::run`); a second one, from an operator who will not wait or
//! an orchestrator that gave up, exits at once. Nothing acknowledged is lost that way:
//! webhooks are answered only after their commit, and leases held by the process are
//! taken back at the next start.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The exit status after a second signal: 128 + the signal's number, as shells report a
/// process killed by that signal.
fn status_after(signal: SignalKind) -> i32 {
    128 + signal.as_raw_value()
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT; exits the process on the second.
pub async fn drain_on_signal(shutdown: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot listen for SIGTERM/SIGINT; stop the daemon with SIGKILL.");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining; a second signal exits at once."),
        _ = int.recv() => tracing::info!("SIGINT: draining; a second signal exits at once."),
    }
    shutdown.cancel();
    let second = tokio::select! {
        _ = term.recv() => SignalKind::terminate(),
        _ = int.recv() => SignalKind::interrupt(),
    };
    tracing::warn!(
        signal = second.as_raw_value(),
        "Second signal: exiting without finishing the drain."
    );
    std::process::exit(status_after(second));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_signal_exits_as_a_shell_reports_that_signal() {
        assert_eq!(status_after(SignalKind::terminate()), 143);
        assert_eq!(status_after(SignalKind::interrupt()), 130);
    }
}
