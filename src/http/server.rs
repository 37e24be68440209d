//! The API's listener: TLS, how long a client may take to send a request, and how many
//! connections may be open at once, so that slow or stalled clients cannot hold bedrud forever.
//!
//! - hyper's header timer (`server.headerTimeout`) runs from the moment a connection waits for a
//!   request until its header is complete: it closes a half-sent header, and a keep-alive
//!   connection that stays idle that long (hyper has no separate idle timer; clients reconnect).
//! - `first_request_timeout` bounds the time before the first request, TLS handshake included,
//!   which hyper's timer does not see.
//! - Bodies are read with a deadline where they are read (`server.bodyTimeout`, `JsonBody`).
//! - At most `server.maxConnections` are open; past that, new connections are closed at once
//!   and the log says so (once a minute at most), instead of piling up file descriptors.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::HttpLimits;

/// Serves `app` on `listener` until `handle` shuts it down.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    app: Router,
    limits: HttpLimits,
    handle: Handle<SocketAddr>,
) -> io::Result<()> {
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let capped = Capped::new(limits.max_connections);
    let mut server = axum_server::from_tcp(listener)?
        .handle(handle)
        .first_request_timeout(limits.header_timeout);
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_timeout);
    match tls {
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(tls).acceptor(capped);
            server.acceptor(acceptor).serve(service).await
        }
        None => server.acceptor(capped).serve(service).await,
    }
}

/// An acceptor that admits at most `max` open connections; each accepted stream carries its
/// permit, so closing the connection frees the slot.
#[derive(Clone)]
struct Capped {
    slots: Arc<Semaphore>,
    max: usize,
    last_warning: Arc<Mutex<Option<Instant>>>,
}

impl Capped {
    fn new(max: usize) -> Capped {
        Capped {
            slots: Arc::new(Semaphore::new(max)),
            max,
            last_warning: Arc::default(),
        }
    }

    fn refuse(&self) -> io::Error {
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            tracing::warn!(
                max = self.max,
                "connection limit reached (server.maxConnections): closing new connections until some end"
            );
            *last = Some(Instant::now());
        }
        io::Error::other("connection limit reached")
    }
}

impl<I, S> Accept<I, S> for Capped
where
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Counted<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let result = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                DefaultAcceptor
                    .accept(stream, service)
                    .into_inner()
                    .map(|(inner, service)| {
                        (
                            Counted {
                                inner,
                                _slot: permit,
                            },
                            service,
                        )
                    })
            }
            Err(_) => Err(self.refuse()),
        };
        std::future::ready(result)
    }
}

/// A connection holding one of the `Capped` slots until it is dropped.
pub struct Counted<I> {
    inner: I,
    _slot: OwnedSemaphorePermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
