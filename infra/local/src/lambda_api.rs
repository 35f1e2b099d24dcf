//! A local Lambda Runtime API: runs a function's real binary as its own process, the way
//! Lambda runs a `provided.al2023` bootstrap, and invokes it with event JSON.
//!
//! Each [`LambdaFunction`] has at most one process at a time, serving one invocation at a
//! time (one Lambda execution environment). Its Runtime API listens on 127.0.0.1 and is
//! handed to the process as `AWS_LAMBDA_RUNTIME_API`:
//!
//! - `GET  /2018-06-01/runtime/invocation/next` long-polls and answers the event JSON with
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn`, `-Trace-Id`;
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `/{id}/error` answer it;
//! - `POST /2018-06-01/runtime/init/error` reports a failed cold start.
//!
//! A process that exits, reports an init error or overruns its timeout fails the
//! invocation with the tail of its output; the next invocation starts a new process (a
//! new cold start), as Lambda does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};

/// Lambda's synchronous payload limit, for responses and error reports.
const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// Lines of a process's output kept for error reports.
const TAIL_LINES: usize = 40;
/// How long a cold start may take before the first invocation fails. Lambda allows 10 s;
/// locally a debug build on a busy two-core machine gets more.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// The function's bootstrap: the binary cargo built.
    pub binary: PathBuf,
    /// The process's whole environment (nothing is inherited), without the Runtime API's
    /// address, which is added per process.
    pub env: BTreeMap<String, String>,
    /// The function's timeout (template.yaml's `Timeout`).
    pub timeout: Duration,
    /// Account and region for the invoked function's ARN.
    pub arn: String,
    /// Echo the process's output lines to this process's stdout, prefixed `[<name>]`.
    pub echo_output: bool,
}

/// One function: its spec and its current process, if any.
pub struct LambdaFunction {
    spec: FunctionSpec,
    instance: tokio::sync::Mutex<Option<Instance>>,
}

impl LambdaFunction {
    pub fn new(spec: FunctionSpec) -> Self {
        Self {
            spec,
            instance: tokio::sync::Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The last lines the current process wrote (at most 40), and whether that is all it
    /// wrote; empty before the first start.
    pub async fn output(&self) -> (Vec<String>, bool) {
        let slot = self.instance.lock().await;
        let Some(instance) = slot.as_ref() else {
            return (Vec::new(), true);
        };
        instance
            .output
            .lock()
            .map(|lines| {
                let all = lines.len() < TAIL_LINES;
                (lines.iter().cloned().collect(), all)
            })
            .unwrap_or_default()
    }

    /// Starts the process now (instead of at the first invocation) and waits until its
    /// runtime asks for an event: a cold start that fails shows here.
    pub async fn start(&self) -> Result<()> {
        let mut slot = self.instance.lock().await;
        *slot = Some(self.ready(slot.take()).await?);
        Ok(())
    }

    /// Invokes the function with `event` and returns its response JSON.
    pub async fn invoke(&self, event: &serde_json::Value) -> Result<serde_json::Value> {
        self.invoke_traced(event, None).await
    }

    /// [`invoke`](Self::invoke) within the X-Ray trace `trace` (an `AWSTraceHeader`), as
    /// Lambda's SQS event source continues the trace of the message that triggered it; a
    /// new trace when `None`.
    pub async fn invoke_traced(
        &self,
        event: &serde_json::Value,
        trace: Option<&str>,
    ) -> Result<serde_json::Value> {
        let mut slot = self.instance.lock().await;
        let instance = self.ready(slot.take()).await?;
        let function = self.spec.name.clone();
        let deadline = SystemTime::now() + self.spec.timeout;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            id: ulid::Ulid::new().to_string().to_lowercase(),
            body: Bytes::from(event.to_string()),
            deadline_ms: deadline
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
            trace: trace.map(continued_trace),
            reply,
        };
        if instance.api.invocations.send(pending).await.is_err() {
            return Err(instance.failure(&function).await);
        }
        let mut status = instance.api.status.subscribe();
        let outcome = tokio::select! {
            a = answer => a.ok(),
            _ = tokio::time::sleep(self.spec.timeout) => {
                let tail = instance.kill_and_tail().await;
                return Err(Error::Timeout { function, after: self.spec.timeout, tail });
            }
            _ = instance.gone(&mut status) => None,
        };
        let result = match outcome {
            Some(Outcome::Response(body)) => {
                serde_json::from_slice(&body).map_err(|source| Error::BadResponse {
                    function,
                    expected: "JSON",
                    source,
                })
            }
            Some(Outcome::Error {
                error_type,
                message,
            }) => Err(Error::Handler {
                function,
                error_type,
                message,
            }),
            None => return Err(instance.failure(&function).await),
        };
        *slot = Some(instance);
        result
    }

    /// `current` if it still runs, else a new process, once its runtime polls for events.
    async fn ready(&self, current: Option<Instance>) -> Result<Instance> {
        if let Some(instance) = current.filter(|i| !i.exited()) {
            return Ok(instance);
        }
        let instance = Instance::spawn(&self.spec).await?;
        let mut status = instance.api.status.subscribe();
        let polled = tokio::time::timeout(INIT_TIMEOUT, async {
            loop {
                match &*status.borrow_and_update() {
                    Status::Polling => return true,
                    Status::InitError { .. } => return false,
                    Status::Starting => {}
                }
                tokio::select! {
                    changed = status.changed() => if changed.is_err() { return false },
                    _ = instance.wait_exit() => return false,
                }
            }
        })
        .await;
        match polled {
            Ok(true) => Ok(instance),
            Ok(false) => Err(instance.failure(&self.spec.name).await),
            Err(_) => Err(Error::Timeout {
                function: self.spec.name.clone(),
                after: INIT_TIMEOUT,
                tail: instance.kill_and_tail().await,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Status {
    Starting,
    Polling,
    InitError { error_type: String, message: String },
}

struct Pending {
    id: String,
    body: Bytes,
    deadline_ms: u128,
    /// The invocation's trace header, when it continues one.
    trace: Option<String>,
    reply: oneshot::Sender<Outcome>,
}

enum Outcome {
    Response(Bytes),
    Error { error_type: String, message: String },
}

/// The Runtime API's state for one process.
struct Api {
    invocations: mpsc::Sender<Pending>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Pending>>,
    replies: StdMutex<HashMap<String, oneshot::Sender<Outcome>>>,
    status: watch::Sender<Status>,
    arn: String,
}

/// One running process and its Runtime API.
struct Instance {
    api: Arc<Api>,
    server: tokio::task::JoinHandle<()>,
    child: Arc<StdMutex<Child>>,
    output: Arc<StdMutex<VecDeque<String>>>,
    readers: StdMutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Instance {
    async fn spawn(spec: &FunctionSpec) -> Result<Self> {
        let spawn_error = |what: String, source| Error::Spawn {
            function: spec.name.clone(),
            what,
            source,
        };
        let (invocations, queue) = mpsc::channel(1);
        let api = Arc::new(Api {
            invocations,
            queue: tokio::sync::Mutex::new(queue),
            replies: StdMutex::new(HashMap::new()),
            status: watch::Sender::new(Status::Starting),
            arn: spec.arn.clone(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| spawn_error("binding its Runtime API".into(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| spawn_error("reading its Runtime API's address".into(), e))?;
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .layer(DefaultBodyLimit::max(PAYLOAD_LIMIT))
            .with_state(api.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let mut command = Command::new(&spec.binary);
        command
            .env_clear()
            .envs(&spec.env)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                server.abort();
                return Err(spawn_error(spec.binary.display().to_string(), e));
            }
        };
        let output = Arc::new(StdMutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        let echo = spec.echo_output.then(|| spec.name.clone());
        if let Some(out) = child.stdout.take() {
            readers.push(read_lines(out, output.clone(), echo.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(read_lines(err, output.clone(), echo));
        }
        Ok(Self {
            api,
            server,
            child: Arc::new(StdMutex::new(child)),
            output,
            readers: StdMutex::new(readers),
        })
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().ok()?.try_wait().ok().flatten()
    }

    fn exited(&self) -> bool {
        self.exit_status().is_some()
    }

    /// Resolves when the process has exited.
    async fn wait_exit(&self) -> ExitStatus {
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Resolves when the process exits or reports an init error.
    async fn gone(&self, status: &mut watch::Receiver<Status>) {
        tokio::select! {
            _ = self.wait_exit() => {}
            _ = status.wait_for(|s| matches!(s, Status::InitError { .. })) => {}
        }
    }

    /// What went wrong with a process that stopped serving: its init error or its exit.
    async fn failure(&self, function: &str) -> Error {
        let init = match &*self.api.status.borrow() {
            Status::InitError {
                error_type,
                message,
            } => Some((error_type.clone(), message.clone())),
            _ => None,
        };
        let status = match init {
            Some(_) => None,
            None => tokio::time::timeout(Duration::from_secs(2), self.wait_exit())
                .await
                .ok(),
        };
        let tail = self.kill_and_tail().await;
        match (init, status) {
            (Some((error_type, message)), _) => Error::Init {
                function: function.to_owned(),
                error_type,
                message,
                tail,
            },
            (None, status) => Error::Exited {
                function: function.to_owned(),
                status: status.map_or_else(|| "still running".into(), |s| s.to_string()),
                tail,
            },
        }
    }

    /// Stops the process and returns the last lines it wrote.
    async fn kill_and_tail(&self) -> String {
        self.kill();
        let readers: Vec<_> = self
            .readers
            .lock()
            .map(|mut r| r.drain(..).collect())
            .unwrap_or_default();
        let _ = tokio::task::spawn_blocking(move || {
            for r in readers {
                let _ = r.join();
            }
        })
        .await;
        self.output
            .lock()
            .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    fn kill(&self) {
        if let Ok(mut child) = self.child.lock() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        self.server.abort();
    }
}

/// Reads a pipe line by line into the shared tail (and echoes it when asked).
fn read_lines(
    pipe: impl std::io::Read + Send + 'static,
    tail: Arc<StdMutex<VecDeque<String>>>,
    echo: Option<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(name) = &echo {
                println!("[{name}] {line}");
            }
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        }
    })
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    let mut queue = api.queue.lock().await;
    api.status.send_if_modified(|s| {
        let starting = *s == Status::Starting;
        if starting {
            *s = Status::Polling;
        }
        starting
    });
    let Some(pending) = queue.recv().await else {
        return (StatusCode::GONE, "the function is being stopped").into_response();
    };
    drop(queue);
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static(""));
    headers.insert("lambda-runtime-aws-request-id", header(&pending.id));
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&pending.deadline_ms.to_string()),
    );
    headers.insert("lambda-runtime-invoked-function-arn", header(&api.arn));
    headers.insert(
        "lambda-runtime-trace-id",
        header(
            &pending
                .trace
                .clone()
                .unwrap_or_else(|| trace_id(pending.deadline_ms)),
        ),
    );
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(mut replies) = api.replies.lock() {
        replies.insert(pending.id, pending.reply);
    }
    (headers, pending.body).into_response()
}

/// An X-Ray trace header: `Root=1-<8 hex: epoch seconds>-<24 hex>;Parent=<16 hex>;Sampled=0`.
/// `header`'s trace (its `Root` and sampling decision) with a new `Parent`: the segment of
/// the invocation that continues it.
fn continued_trace(header: &str) -> String {
    let random: [u8; 8] = rand::random();
    let mut parts: Vec<String> = header
        .split(';')
        .filter(|p| !p.starts_with("Parent="))
        .map(str::to_owned)
        .collect();
    parts.insert(
        1.min(parts.len()),
        format!("Parent={}", hex_string(&random)),
    );
    parts.join(";")
}

fn trace_id(epoch_ms: u128) -> String {
    let random: [u8; 20] = rand::random();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        epoch_ms / 1000,
        hex_string(&random[..12]),
        hex_string(&random[12..])
    )
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn respond(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&api, &id, Outcome::Response(body))
}

async fn fail(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let (error_type, message) = diagnostic(&body);
    answer(
        &api,
        &id,
        Outcome::Error {
            error_type,
            message,
        },
    )
}

async fn init_error(State(api): State<Arc<Api>>, body: Bytes) -> StatusCode {
    let (error_type, message) = diagnostic(&body);
    api.status.send_replace(Status::InitError {
        error_type,
        message,
    });
    StatusCode::ACCEPTED
}

fn answer(api: &Api, id: &str, outcome: Outcome) -> StatusCode {
    let reply = api.replies.lock().ok().and_then(|mut r| r.remove(id));
    match reply {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

/// `{"errorType", "errorMessage"}` as lambda_runtime reports errors.
fn diagnostic(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (text("errorType"), text("errorMessage"))
}
