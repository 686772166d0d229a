//! Shutdown: one signal, many listeners. Every long-running part holds a [`Shutdown`]
//! and stops taking new work once it fires; waiting on it again returns at once.

use tokio::sync::watch;

/// Fires the shutdown for every [`Shutdown`] made from it.
pub struct Trigger(watch::Sender<bool>);

#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once the shutdown has fired (or its trigger is gone).
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    /// Sleeps for `duration`, or less if the shutdown fires first. Returns whether it
    /// fired.
    pub(crate) async fn sleep(&mut self, duration: std::time::Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => self.fired(),
            () = self.wait() => true,
        }
    }

    pub(crate) fn fired(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_for_everyone_and_stays_fired() {
        let (trigger, mut first) = channel();
        let mut second = first.clone();
        assert!(!first.fired());
        trigger.fire();
        first.wait().await;
        second.wait().await;
        second.wait().await;
        assert!(second.fired());
    }
}
