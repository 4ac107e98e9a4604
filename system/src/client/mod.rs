//! A typed async HTTP client of the gateway: one method per route, answers as the [`api`]
//! types, failures as [`ClientError`] (with the status and the gateway's own message).
//!
//! ```no_run
//! # async fn demo(function: &str, args: &str) -> Result<(), faas::client::ClientError> {
//! use std::time::Duration;
//! use faas::client::Client;
//!
//! let client = Client::new("http://127.0.0.1:8000", None)?;
//! let function_id = client.register("square", function).await?.function_id;
//! let task_id = client.execute(function_id, args).await?.task_id;
//! let answer = client.wait_final(task_id, Duration::from_secs(30)).await?;
//! assert!(answer.status.is_final());
//! # Ok(())
//! # }
//! ```
//!
//! [`api`]: crate::api

mod error;
mod lines;

pub use error::ClientError;
pub use lines::ResultLines;
/// The status of an error answer ([`ClientError::status`]).
pub use reqwest::StatusCode;

use std::time::{Duration, Instant};

use reqwest::RequestBuilder;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::DeserializeOwned;

use crate::api::{
    BatchRequest, BatchResponse, CancelResponse, DeleteFunctionResponse, ErrorBody, ExecuteRequest,
    ExecuteResponse, Health, MAX_WAIT, RegisterRequest, RegisterResponse, ResultQuery,
    ResultResponse, ResultsRequest, StatusResponse, TimelineResponse,
};
use crate::task::{FunctionId, TaskId};

/// A client of one gateway. Cheap to clone: clones share their connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The gateway's URL, without a trailing `/`.
    base: String,
    /// `Bearer <token>`, when the gateway requires a token.
    authorization: Option<HeaderValue>,
}

impl Client {
    /// A client of the gateway at `base_url` (e.g. `http://127.0.0.1:8000`), sending `token`
    /// as `Authorization: Bearer <token>` when given and not empty.
    pub fn new(base_url: &str, token: Option<&str>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(ClientError::Build)?;
        Self::with_http(http, base_url, token)
    }

    /// Like [`Client::new`], over an HTTP client set up by the caller (timeouts, pool size).
    pub fn with_http(
        http: reqwest::Client,
        base_url: &str,
        token: Option<&str>,
    ) -> Result<Self, ClientError> {
        let authorization = token
            .filter(|t| !t.is_empty())
            .map(|t| {
                let mut value = HeaderValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// The gateway's URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /register_function`: registers `payload` (`base64(dill.dumps(fn))`) as `name`.
    pub async fn register(
        &self,
        name: &str,
        payload: &str,
    ) -> Result<RegisterResponse, ClientError> {
        let body = RegisterRequest {
            name: name.to_owned(),
            payload: payload.to_owned(),
        };
        self.post("/register_function".to_owned(), &body).await
    }

    /// `POST /execute_function`: queues one execution of `function_id` with `payload`
    /// (`base64(dill.dumps(((args...), {kwargs})))`).
    pub async fn execute(
        &self,
        function_id: FunctionId,
        payload: &str,
    ) -> Result<ExecuteResponse, ClientError> {
        let body = ExecuteRequest::new(function_id, payload);
        self.post("/execute_function".to_owned(), &body).await
    }

    /// `POST /execute_batch`: queues one execution of `function_id` per payload, in one
    /// request (at most [`MAX_BATCH`](crate::api::MAX_BATCH)).
    pub async fn execute_batch(
        &self,
        function_id: FunctionId,
        payloads: Vec<String>,
    ) -> Result<BatchResponse, ClientError> {
        let body = BatchRequest::new(function_id, payloads);
        self.post("/execute_batch".to_owned(), &body).await
    }

    /// `GET /status/{task_id}`.
    pub async fn status(&self, task_id: TaskId) -> Result<StatusResponse, ClientError> {
        self.get(format!("/status/{task_id}")).await
    }

    /// `GET /result/{task_id}`; with `wait`, a long poll answered as soon as the task is final
    /// or when the wait (at most [`MAX_WAIT`]) runs out.
    pub async fn result(
        &self,
        task_id: TaskId,
        wait: Option<Duration>,
    ) -> Result<ResultResponse, ClientError> {
        let query = wait.map(ResultQuery::waiting).unwrap_or_default();
        let path = match query.wait {
            Some(seconds) => format!("/result/{task_id}?wait={seconds}"),
            None => format!("/result/{task_id}"),
        };
        self.get(path).await
    }

    /// Long-polls `GET /result/{task_id}` until the task is final or `timeout` has passed;
    /// the last answer either way (check `status.is_final()`).
    pub async fn wait_final(
        &self,
        task_id: TaskId,
        timeout: Duration,
    ) -> Result<ResultResponse, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self.result(task_id, Some(left.min(MAX_WAIT))).await?;
            if answer.status.is_final() || left.is_zero() {
                return Ok(answer);
            }
        }
    }

    /// `POST /results`: the results of `task_ids` as a stream of lines, one per distinct id,
    /// each sent as soon as its task is final; with `wait` (at most [`MAX_WAIT`]), tasks not
    /// final when it runs out get a line with their current status.
    pub async fn results(
        &self,
        task_ids: &[TaskId],
        wait: Option<Duration>,
    ) -> Result<ResultLines, ClientError> {
        let path = "/results".to_owned();
        let request = self
            .http
            .post(self.url(&path))
            .json(&ResultsRequest::new(task_ids, wait));
        let response = self.send("POST", &path, request).await?;
        if !response.status().is_success() {
            return Err(Self::failure("POST", path, response).await);
        }
        Ok(ResultLines::new(path, response))
    }

    /// `GET /task/{task_id}`: where the task is and has been.
    pub async fn timeline(&self, task_id: TaskId) -> Result<TimelineResponse, ClientError> {
        self.get(format!("/task/{task_id}")).await
    }

    /// `POST /cancel/{task_id}`: cancels a queued or running task (409 if it is final).
    pub async fn cancel(&self, task_id: TaskId) -> Result<CancelResponse, ClientError> {
        let path = format!("/cancel/{task_id}");
        let request = self.http.post(self.url(&path));
        self.call("POST", path, request).await
    }

    /// `DELETE /functions/{function_id}`: the function can no longer be executed.
    pub async fn delete_function(
        &self,
        function_id: FunctionId,
    ) -> Result<DeleteFunctionResponse, ClientError> {
        let path = format!("/functions/{function_id}");
        let request = self.http.delete(self.url(&path));
        self.call("DELETE", path, request).await
    }

    /// `GET /health`: `ok` when the gateway is up and reaches Redis.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get("/health".to_owned()).await
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let path = "/metrics".to_owned();
        let request = self.http.get(self.url(&path));
        let response = self.send("GET", &path, request).await?;
        if !response.status().is_success() {
            return Err(Self::failure("GET", path, response).await);
        }
        response
            .text()
            .await
            .map_err(|source| ClientError::Transport {
                method: "GET",
                path,
                source,
            })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get<T: DeserializeOwned>(&self, path: String) -> Result<T, ClientError> {
        let request = self.http.get(self.url(&path));
        self.call("GET", path, request).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: String,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let request = self.http.post(self.url(&path)).json(body);
        self.call("POST", path, request).await
    }

    /// Sends `request` and parses a successful answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: String,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(method, &path, request).await?;
        if !response.status().is_success() {
            return Err(Self::failure(method, path, response).await);
        }
        match response.bytes().await {
            Ok(body) => serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
                method,
                path,
                source,
            }),
            Err(source) => Err(ClientError::Transport {
                method,
                path,
                source,
            }),
        }
    }

    /// Sends `request` with the token; the answer's head.
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        request: RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let request = match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        };
        request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                method,
                path: path.to_owned(),
                source,
            })
    }

    /// The error for an answer with an error status, with the gateway's message.
    async fn failure(
        method: &'static str,
        path: String,
        response: reqwest::Response,
    ) -> ClientError {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        ClientError::Api {
            method,
            path,
            status,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::StatusCode as Status;
    use axum::routing::{get, post};

    use super::*;
    use crate::api::ResultLine;
    use crate::task::TaskStatus;

    /// Serves `router` on a free loopback port; a client of it.
    async fn serve(router: Router) -> Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Client::new(&format!("http://{addr}/"), Some("s3cret")).unwrap()
    }

    #[tokio::test]
    async fn result_lines_are_split_across_chunks() {
        let (a, b) = (TaskId::new_random(), TaskId::new_random());
        let text = format!(
            "{{\"task_id\":\"{a}\",\"status\":\"COMPLETED\",\"result\":\"gAQu\\n\"}}\n\n\
             not json\n{{\"task_id\":\"{b}\",\"error\":\"no task with id {b}\"}}"
        );
        let chunks: Vec<Result<Bytes, Infallible>> = text
            .into_bytes()
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let client = serve(Router::new().route(
            "/results",
            post(move || async move { Body::from_stream(futures_util::stream::iter(chunks)) }),
        ))
        .await;
        let mut lines = client.results(&[a, b], None).await.unwrap();
        let first = lines.next_line().await.unwrap().unwrap();
        assert_eq!(
            first,
            ResultLine::Task(ResultResponse {
                task_id: a,
                status: TaskStatus::Completed,
                result: Some("gAQu\n".into()),
            })
        );
        assert!(matches!(
            lines.next_line().await,
            Some(Err(ClientError::Decode { .. }))
        ));
        let last = lines.next_line().await.unwrap().unwrap();
        assert_eq!(last.task_id(), b);
        assert!(matches!(last, ResultLine::Error { .. }), "{last:?}");
        assert!(lines.next_line().await.is_none());
    }

    #[tokio::test]
    async fn error_answers_carry_the_status_and_the_gateways_message() {
        let client = serve(Router::new().route(
            "/status/{id}",
            get(|headers: axum::http::HeaderMap| async move {
                let error = format!("seen {:?}", headers.get("authorization"));
                (Status::NOT_FOUND, axum::Json(ErrorBody { error }))
            }),
        ))
        .await;
        let err = client.status(TaskId::new_random()).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
        let ClientError::Api { message, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(message, "seen Some(\"Bearer s3cret\")");
        assert!(err.to_string().contains("404"), "{err}");
        let err = client.health().await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err}");
    }
}
