//! How every platform stand-in (Slack, Discord, Telegram, Notion) runs: bind an address,
//! serve an axum router in a tokio task, and stop, at once on drop or waiting briefly for
//! requests in flight with [`Server::shutdown`]; their binaries stop on
//! [`shutdown_signal`]. [`Pacer`] is the token bucket the Slack and Notion stand-ins pace
//! with.
//!
//! Binding and serving are two steps because a stand-in's state needs its own reachable
//! address (the URLs it hands out) before its router is built:
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! let bound = standin_server::Bound::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let base = format!("http://{}", bound.addr());
//! let server = bound.serve(axum::Router::new(), "example stand-in");
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod pacing;

pub use pacing::Pacer;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A bound listener, not serving yet.
pub struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Bound {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
        let listener = TcpListener::bind(addr).await?;
        let addr = reachable(listener.local_addr()?);
        Ok(Bound { listener, addr })
    }

    /// The address clients reach it at: the bound one, with an unspecified IP (`0.0.0.0`,
    /// `::`) reported as `127.0.0.1`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `app` in a tokio task until the [`Server`] is shut down or dropped. `name`
    /// says which stand-in in the log line of a server that stops by itself.
    pub fn serve(self, app: axum::Router, name: &'static str) -> Server {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "{name} stopped serving");
            }
        });
        Server {
            addr: self.addr,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A serving stand-in. Dropping it stops accepting connections.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// See [`Bound::addr`].
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits up to one second for requests in flight (a
    /// delayed answer may still be pending; it is then abandoned).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM: when a stand-in's binary should stop.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
    } else {
        addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_serves_until_shut_down_and_reports_a_reachable_address() {
        let bound = Bound::bind(SocketAddr::from(([0, 0, 0, 0], 0)))
            .await
            .unwrap();
        assert!(bound.addr().ip().is_loopback());
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "up" }));
        let server = bound.serve(app, "test stand-in");
        let url = format!("http://{}/", server.addr());
        assert_eq!(
            reqwest::get(&url).await.unwrap().text().await.unwrap(),
            "up"
        );
        server.shutdown().await;
        assert!(reqwest::get(&url).await.is_err());
    }

    #[tokio::test]
    async fn dropping_it_stops_accepting() {
        let bound = Bound::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let server = bound.serve(axum::Router::new(), "test stand-in");
        let url = format!("http://{}/", server.addr());
        drop(server);
        // The stop is asynchronous: it lands within moments.
        let mut refused = false;
        for _ in 0..100 {
            if reqwest::get(&url).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "still serving after the server was dropped");
    }
}
