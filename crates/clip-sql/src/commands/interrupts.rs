//! Ctrl-C, listened for without a gap.

use futures::FutureExt;

/// Ctrl-C presses, listened for from the moment this is made. Until a
/// listener exists SIGINT keeps its default action and ends the process,
/// so a listener made on the first poll of a future
/// (`tokio::signal::ctrl_c()`) leaves a moment in which Ctrl-C kills: the
/// shell made one per statement, and Ctrl-C at a statement's start ended it.
pub(crate) struct Interrupts {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
    #[cfg(windows)]
    signal: tokio::signal::windows::CtrlC,
}

impl Interrupts {
    pub(crate) fn listen() -> std::io::Result<Self> {
        Ok(Interrupts {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?,
            #[cfg(windows)]
            signal: tokio::signal::windows::ctrl_c()?,
        })
    }

    /// Forget presses made while no statement ran (with input piped in,
    /// the prompt does not take Ctrl-C as a key): they were not meant for
    /// the statement about to start.
    pub(crate) fn forget_earlier(&mut self) {
        while let Some(Some(())) = self.signal.recv().now_or_never() {}
    }

    /// The next press.
    pub(crate) async fn next(&mut self) {
        // `None` only once the runtime shuts down: nothing to interrupt then.
        if self.signal.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}
