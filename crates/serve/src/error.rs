//! What can go wrong serving, each with the protocol status it maps to.
//!
//! One enum for requests ([`InferError`]): REST turns it into a status and
//! `{"error": "..."}`, gRPC into a `tonic::Status`; both read the same
//! [`InferError::kind`], so the two protocols never disagree about a
//! failure.

use crate::repository::RepositoryError;

/// How a failure is reported, protocol-independently.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or does not fit the model (400).
    BadRequest,
    /// No such model or version (404).
    NotFound,
    /// The model's queue is full (429).
    QueueFull,
    /// Admission control refused it, or the server is draining (503 + Retry-After).
    Unavailable,
    /// The engine failed running it (500).
    Internal,
}

/// Why one request failed.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("unknown model `{model}`: load it first (POST /v2/repository/models/{model}/load) or check the name")]
    UnknownModel { model: String },
    #[error("model `{model}` has no version `{version}` loaded (serving version {serving})")]
    UnknownVersion { model: String, version: String, serving: String },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("input `{input}`: datatype {given}, the model takes {expected}")]
    Datatype { input: String, expected: &'static str, given: String },
    #[error("input `{input}`: shape {given:?}, the model takes {expected:?}")]
    Shape { input: String, expected: Vec<usize>, given: Vec<i64> },
    #[error("input `{input}`: {expected} bytes of data expected, {given} given")]
    DataSize { input: String, expected: u64, given: u64 },
    #[error("input `{input}`: {problem}")]
    Data { input: String, problem: String },
    #[error("input `{input}` is not an input of the model (inputs: {inputs})")]
    UnknownInput { input: String, inputs: String },
    #[error("input `{input}` given twice")]
    DuplicateInput { input: String },
    #[error("input `{input}` is missing")]
    MissingInput { input: String },
    #[error("requested output `{output}` is not an output of the model (outputs: {outputs})")]
    UnknownOutput { output: String, outputs: String },
    #[error("parameter `{name}`: {problem}")]
    Parameter { name: String, problem: String },
    #[error("model `{model}`: {limit} requests already queued or running (its max_queue); retry later")]
    QueueFull { model: String, limit: usize },
    #[error("model `{model}`: {source}")]
    Engine {
        model: String,
        #[source]
        source: weft::EngineError,
    },
    #[error("model `{model}`: {source}")]
    Request {
        model: String,
        #[source]
        source: weft::RequestError,
    },
    #[error("the server is shutting down")]
    Draining,
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// A model failed to import, lower or register; `stage` says which
    /// (the file for an import).
    #[error("loading model `{model}` ({stage}): {source}")]
    Load {
        model: String,
        stage: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl InferError {
    pub fn kind(&self) -> ErrorKind {
        use InferError::*;
        match self {
            UnknownModel { .. } | UnknownVersion { .. } => ErrorKind::NotFound,
            Repository(RepositoryError::NotFound { .. }) => ErrorKind::NotFound,
            Repository(_) | Load { .. } => ErrorKind::BadRequest,
            Malformed(_) | Datatype { .. } | Shape { .. } | DataSize { .. } | Data { .. } | UnknownInput { .. } => {
                ErrorKind::BadRequest
            }
            DuplicateInput { .. } | MissingInput { .. } | UnknownOutput { .. } | Parameter { .. } => {
                ErrorKind::BadRequest
            }
            QueueFull { .. } => ErrorKind::QueueFull,
            Engine { source, .. } => match source {
                weft::EngineError::Rejected { .. } => ErrorKind::QueueFull,
                weft::EngineError::UnknownTenant(_) | weft::EngineError::TenantRemoved(_) => ErrorKind::Unavailable,
                weft::EngineError::Input { .. }
                | weft::EngineError::InputCount { .. }
                | weft::EngineError::InvalidRequest { .. } => ErrorKind::BadRequest,
                _ => ErrorKind::Internal,
            },
            Request { source, .. } => match source {
                weft::RequestError::Rejected(_) | weft::RequestError::Stopped => ErrorKind::Unavailable,
                weft::RequestError::Execution(e) if e.is_bad_input() => ErrorKind::BadRequest,
                weft::RequestError::Execution(_) => ErrorKind::Internal,
            },
            Draining => ErrorKind::Unavailable,
        }
    }

    /// The metrics label of a failure.
    pub fn reason(&self) -> &'static str {
        match self {
            InferError::QueueFull { .. } | InferError::Engine { source: weft::EngineError::Rejected { .. }, .. } => {
                "queue_full"
            }
            InferError::Request { source: weft::RequestError::Rejected(_), .. } => "admission",
            InferError::Draining | InferError::Request { source: weft::RequestError::Stopped, .. } => "draining",
            e => match e.kind() {
                ErrorKind::BadRequest => "bad_request",
                ErrorKind::NotFound => "not_found",
                ErrorKind::Internal => "execution",
                ErrorKind::QueueFull | ErrorKind::Unavailable => "unavailable",
            },
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {what} on {addr}: {source} (choose another port with --{what}-port)")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("loading the repository: {0}")]
    Load(Box<InferError>),
    #[error("starting the engine: {0}")]
    Engine(#[from] weft::EngineError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the async runtime: {0}")]
    Runtime(std::io::Error),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn execution(e: weft::pack::RunError) -> InferError {
        InferError::Request {
            model: "m".into(),
            source: weft::RequestError::Execution(Arc::new(weft::sched::ServeError::from(e))),
        }
    }

    /// An index out of range in the request's inputs is the client's error
    /// (400); other failures while running stay the server's (500).
    #[test]
    fn an_index_out_of_range_is_a_bad_request() {
        let index = weft::pack::IndexError {
            node: "embed".into(),
            op: "Gather".into(),
            input: "ids".into(),
            position: 1,
            value: 9,
            axis: 0,
            dim: 4,
        };
        let e = execution(weft::pack::RunError::IndexOutOfRange { program: "p".into(), source: Box::new(index) });
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(e.reason(), "bad_request");
        let m = e.to_string();
        assert!(m.contains("`embed`") && m.contains("`ids`") && m.contains("[-4, 4)"), "{m}");
        let other = execution(weft::pack::RunError::Malformed { program: "p".into(), message: "broken".into() });
        assert_eq!(other.kind(), ErrorKind::Internal);
    }
}
