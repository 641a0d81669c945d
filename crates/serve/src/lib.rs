//! `weft serve`: the Open Inference Protocol (KServe v2) over weft's
//! [`Engine`](weft::Engine), a model repository and Prometheus metrics.
//!
//! ```text
//! clients ─ REST (axum) ──┐
//!         ─ gRPC (tonic) ─┴─► Models::infer ─► Engine::submit ─► the engine's serving loop
//! Prometheus ─ /metrics ─────► Metrics (per model) + Engine::stats
//! ```
//!
//! One engine serves every model; each model is one or more engine tenants.
//! Both protocols decode into the same tensors and call the same
//! [`models::Models::infer`], so there is one serving path. The engine
//! blocks its callers, so inference and loading run on tokio's blocking
//! pool; the async tasks only move bytes.
//!
//! Shutdown ([`Server::drain`]): readiness turns false and new inferences
//! get 503, the listeners stop accepting, requests in flight finish within
//! the drain timeout, then the engine stops.

pub mod error;
pub mod grpc;
pub mod metrics;
pub mod models;
pub mod params;
pub mod repository;
pub mod rest;
pub mod tensor;

/// The generated gRPC messages, client and server.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("inference");
}

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::{ErrorKind, InferError, StartError};
pub use models::Models;

/// The server's name in the metadata endpoints.
pub const SERVER_NAME: &str = "weft";
/// Protocol extensions the server implements.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data", "model_repository"];

pub(crate) fn server_metadata_json() -> serde_json::Value {
    serde_json::json!({ "name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION"), "extensions": EXTENSIONS })
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub repository: PathBuf,
    pub host: IpAddr,
    /// 0 picks a free port (see [`Server::http_addr`]).
    pub http_port: u16,
    pub grpc_port: u16,
    pub metrics_port: u16,
    pub backend: weft::Backend,
    /// The largest request body (REST) or message (gRPC), bytes.
    pub max_body_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// The engine's settings: its scheduling policy (SLO-aware by default;
    /// time-only FIFO to compare against) and its per-tenant queue bound.
    pub engine: weft::EngineConfig,
}

/// The default [`ServeOptions::max_body_bytes`]: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;

impl ServeOptions {
    pub fn new(repository: PathBuf) -> ServeOptions {
        ServeOptions {
            repository,
            host: IpAddr::from([127, 0, 0, 1]),
            http_port: 8000,
            grpc_port: 8001,
            metrics_port: 8002,
            backend: weft::Backend::Auto,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            drain_timeout: Duration::from_secs(30),
            engine: weft::EngineConfig::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub models: Arc<Models>,
    pub draining: Arc<AtomicBool>,
    pub body_limit: usize,
}

/// A running server.
pub struct Server {
    state: AppState,
    http: SocketAddr,
    grpc: SocketAddr,
    metrics: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    drain_timeout: Duration,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { what, addr, source })
}

/// Starts the engine, loads every model of the repository and starts the
/// three listeners. Must run inside a multi-threaded tokio runtime.
pub async fn start(options: ServeOptions) -> Result<Server, StartError> {
    // A repository that cannot be read fails before anything is started.
    repository::scan(&options.repository)?;
    let http_listener = bind("http", SocketAddr::new(options.host, options.http_port)).await?;
    let grpc_listener = bind("grpc", SocketAddr::new(options.host, options.grpc_port)).await?;
    let metrics_listener = bind("metrics", SocketAddr::new(options.host, options.metrics_port)).await?;
    let local = |l: &tokio::net::TcpListener, what| {
        l.local_addr().map_err(|source| StartError::Bind { what, addr: SocketAddr::new(options.host, 0), source })
    };
    let (http, grpc, metrics) =
        (local(&http_listener, "http")?, local(&grpc_listener, "grpc")?, local(&metrics_listener, "metrics")?);

    let engine = Arc::new(weft::Engine::new(options.backend, options.engine.clone())?);
    let metrics_registry = Arc::new(metrics::Metrics::new()?);
    let models = Arc::new(Models::new(engine, options.repository.clone(), metrics_registry));
    let loader = models.clone();
    tokio::task::spawn_blocking(move || loader.load_all())
        .await
        .map_err(|e| StartError::Runtime(std::io::Error::other(e)))?
        .map_err(|e| StartError::Load(Box::new(e)))?;

    let state = AppState { models, draining: Arc::new(AtomicBool::new(false)), body_limit: options.max_body_bytes };
    let (stop, stopped) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let rest = rest::router(state.clone());
    let http_task = tokio::spawn({
        let stopped = stopped.clone();
        async move {
            let _ = axum::serve(http_listener, rest).with_graceful_shutdown(wait(stopped)).await;
        }
    });
    let metrics_app = rest::metrics_router(state.clone());
    let metrics_task = tokio::spawn({
        let stopped = stopped.clone();
        async move {
            let _ = axum::serve(metrics_listener, metrics_app).with_graceful_shutdown(wait(stopped)).await;
        }
    });
    let service = proto::grpc_inference_service_server::GrpcInferenceServiceServer::new(grpc::InferenceService {
        state: state.clone(),
    })
    .max_decoding_message_size(options.max_body_bytes)
    .max_encoding_message_size(usize::MAX);
    let grpc_task = tokio::spawn(async move {
        let incoming = tokio_stream_from(grpc_listener);
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, wait(stopped))
            .await;
    });
    Ok(Server {
        state,
        http,
        grpc,
        metrics,
        stop,
        tasks: vec![http_task, grpc_task, metrics_task],
        drain_timeout: options.drain_timeout,
    })
}

/// Accepted connections as the stream tonic serves from.
fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = Result<tokio::net::TcpStream, std::io::Error>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener)
}

impl Server {
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    pub fn models(&self) -> &Arc<Models> {
        &self.state.models
    }

    /// Stops accepting, lets requests in flight finish (up to the drain
    /// timeout), then stops the engine. Returns whether everything in
    /// flight finished in time.
    pub async fn drain(self) -> bool {
        self.state.draining.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let all = futures_join_all(self.tasks);
        let finished = tokio::time::timeout(self.drain_timeout, all).await.is_ok();
        // Dropping the last handle on the engine stops its worker; requests
        // still unfinished get `Stopped`.
        drop(self.state);
        finished
    }
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Resolves on ctrl-c or SIGTERM. The handlers are installed when this is
/// called (inside the runtime), not when the future is first polled, so a
/// signal sent as soon as the caller has announced itself is not missed.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        async fn received(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
        async move {
            tokio::select! {
                _ = received(term) => {}
                _ = received(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `weft serve`: serves until ctrl-c or SIGTERM, then drains. `announce`
/// is called once the listeners are up, with the server.
pub fn run(options: ServeOptions, announce: impl FnOnce(&Server)) -> Result<(), StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(StartError::Runtime)?;
    let result = runtime.block_on(async move {
        let server = start(options).await?;
        let stop = shutdown_signal();
        announce(&server);
        stop.await;
        if !server.drain().await {
            eprintln!("weft serve: drain timeout passed with requests in flight; they were stopped");
        }
        Ok(())
    });
    // Inference still running past the drain timeout holds blocking
    // threads; do not wait for it again.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}
