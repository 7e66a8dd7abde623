//! The executor's log over HTTP: the server's internal API (`api::internal`),
//! for an executor running as its own process (`blockledger executor`).
//!
//! Every call is one request; a failure is `LogError::Remote` and the
//! executor treats it as it treats a store error: the step is retried with
//! backoff, the read loop waits and reads again. Plain HTTP: the internal
//! API is for a trusted network (the key is a shared secret, not a
//! substitute for TLS between hosts; put a TLS proxy in front otherwise).

use std::time::Duration;

use eventstore::RecordedEvent;
use serde::{Deserialize, Serialize};

use crate::worklog::{Applied, BoxFut, Claim, LogError, LowWater, Outcome, WorkLog};

/// An answer carrying events (`events`, `streams/{stream}`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Events {
    pub events: Vec<RecordedEvent>,
    /// The head when the answer was made.
    pub head: u64,
}

/// A checkpoint's position.
#[derive(Debug, Serialize, Deserialize)]
pub struct Position {
    pub position: u64,
}

/// `POST outcomes`: the outcome and the checkpoint mark it may set.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutcomeRequest {
    pub outcome: Outcome,
    pub mark: Option<u64>,
}

/// `POST|PUT leases/{item}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub holder: String,
    pub ttl_ms: u64,
}

/// `PUT leases/{item}`'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Renewed {
    pub renewed: bool,
}

/// `PUT backends/{name}`: the backend this executor serves, as it starts.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackendRegistration {
    /// `qcow2`, `raw` or `rbd`.
    pub kind: String,
    /// `file` or `ceph`.
    pub storage_protocol: String,
    /// The storage's connection template (`StorageBackend::
    /// connection_template`): what the server answers attachments from.
    pub connection: serde_json::Value,
}

/// `PUT backends/{name}/capacity`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CapacityReport {
    pub total_bytes: u64,
    pub free_bytes: u64,
}

/// How long one long poll asks the server to wait.
const POLL_WAIT: Duration = Duration::from_secs(20);
/// Any other request: the server answers in milliseconds unless stuck.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct RemoteLog {
    http: reqwest::Client,
    /// `http://host:port`, no trailing slash.
    base: String,
    /// `Bearer <key>`.
    auth: String,
}

impl RemoteLog {
    /// A log at `server` (`http://host:port`), authenticated with `key`.
    pub fn new(server: &str, key: &str) -> Result<Self, LogError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Below the server's keep-alive idle timeout (5 s by default):
            // a connection reused just as the server closes it fails the
            // request ("connection closed before message completed").
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| LogError::Remote(e.to_string()))?;
        Ok(RemoteLog {
            http,
            base: server.trim_end_matches('/').to_string(),
            auth: format!("Bearer {}", key.trim()),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/internal/v1/{path}", self.base)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, LogError> {
        let resp = req
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| LogError::Remote(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(LogError::Remote(format!("{status}: {body}")));
        }
        if status == reqwest::StatusCode::NO_CONTENT {
            return serde_json::from_value(serde_json::Value::Null)
                .map_err(|e| LogError::Remote(e.to_string()));
        }
        resp.json::<T>()
            .await
            .map_err(|e| LogError::Remote(format!("unreadable answer: {e}")))
    }

    /// Events after `after`; waits up to `wait` for one if there is none.
    pub async fn events(
        &self,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<Events, LogError> {
        let req = self.http.get(self.url("events")).query(&[
            ("after", after.to_string()),
            ("limit", limit.to_string()),
            ("wait_ms", wait.as_millis().to_string()),
        ]);
        self.send(req, wait + REQUEST_TIMEOUT).await
    }
}

impl RemoteLog {
    /// Registers the backend this executor serves (the server records it
    /// only if it is new or changed).
    pub async fn register_backend(
        &self,
        name: &str,
        registration: &BackendRegistration,
    ) -> Result<(), LogError> {
        let req = self
            .http
            .put(self.url(&format!("backends/{}", seg(name))))
            .json(registration);
        self.send::<serde_json::Value>(req, REQUEST_TIMEOUT)
            .await
            .map(drop)
    }

    /// Reports the backend's capacity (recorded only when it moved enough).
    pub async fn report_capacity(&self, name: &str, c: CapacityReport) -> Result<(), LogError> {
        let req = self
            .http
            .put(self.url(&format!("backends/{}/capacity", seg(name))))
            .json(&c);
        self.send::<serde_json::Value>(req, REQUEST_TIMEOUT)
            .await
            .map(drop)
    }
}

/// Path segment: stream ids and checkpoint names are `[A-Za-z0-9_.@#-]`,
/// of which only `#` and `@` need escaping.
fn seg(s: &str) -> String {
    s.replace('%', "%25")
        .replace('#', "%23")
        .replace('@', "%40")
        .replace('/', "%2F")
}

impl WorkLog for RemoteLog {
    fn checkpoint<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<u64, LogError>> {
        Box::pin(async move {
            let req = self
                .http
                .get(self.url(&format!("checkpoints/{}", seg(name))));
            let p: Position = self.send(req, REQUEST_TIMEOUT).await?;
            Ok(p.position)
        })
    }

    fn read_from(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFut<'_, Result<Vec<RecordedEvent>, LogError>> {
        Box::pin(async move { Ok(self.events(after, limit, Duration::ZERO).await?.events) })
    }

    fn wait_past(&self, position: u64) -> BoxFut<'_, ()> {
        Box::pin(async move {
            loop {
                match self.events(position, 1, POLL_WAIT).await {
                    Ok(a) if a.head > position || !a.events.is_empty() => return,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting for the log: server unreachable; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }

    fn read_stream<'a>(
        &'a self,
        stream_id: &'a str,
    ) -> BoxFut<'a, Result<Vec<RecordedEvent>, LogError>> {
        Box::pin(async move {
            let req = self
                .http
                .get(self.url(&format!("streams/{}", seg(stream_id))));
            let a: Events = self.send(req, REQUEST_TIMEOUT).await?;
            Ok(a.events)
        })
    }

    fn read_stream_after<'a>(
        &'a self,
        stream_id: &'a str,
        after: u64,
        limit: usize,
    ) -> BoxFut<'a, Result<Vec<RecordedEvent>, LogError>> {
        Box::pin(async move {
            let req = self
                .http
                .get(self.url(&format!("streams/{}", seg(stream_id))))
                .query(&[("after", after.to_string()), ("limit", limit.to_string())]);
            let a: Events = self.send(req, REQUEST_TIMEOUT).await?;
            Ok(a.events)
        })
    }

    fn advance_checkpoint<'a>(
        &'a self,
        name: &'a str,
        position: u64,
    ) -> BoxFut<'a, Result<(), LogError>> {
        Box::pin(async move {
            let req = self
                .http
                .put(self.url(&format!("checkpoints/{}", seg(name))))
                .json(&Position { position });
            self.send::<()>(req, REQUEST_TIMEOUT).await
        })
    }

    fn append<'a>(
        &'a self,
        outcome: Outcome,
        low_water: &'a LowWater,
    ) -> BoxFut<'a, Result<Applied, LogError>> {
        Box::pin(async move {
            // Computed before sending: items whose outcomes commit
            // meanwhile still count as outstanding, so the mark can only be
            // lower than the embedded executor's (a re-read, never a skip).
            let mark = outcome.handled.map(|h| low_water.at(h));
            let req = self
                .http
                .post(self.url("outcomes"))
                .json(&OutcomeRequest { outcome, mark });
            self.send(req, REQUEST_TIMEOUT).await
        })
    }

    fn claim<'a>(
        &'a self,
        item: u64,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFut<'a, Result<Claim, LogError>> {
        Box::pin(async move {
            let req = self
                .http
                .post(self.url(&format!("leases/{item}")))
                .json(&LeaseRequest {
                    holder: holder.to_string(),
                    ttl_ms: ttl.as_millis() as u64,
                });
            self.send(req, REQUEST_TIMEOUT).await
        })
    }

    fn renew<'a>(
        &'a self,
        item: u64,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFut<'a, Result<bool, LogError>> {
        Box::pin(async move {
            let req = self
                .http
                .put(self.url(&format!("leases/{item}")))
                .json(&LeaseRequest {
                    holder: holder.to_string(),
                    ttl_ms: ttl.as_millis() as u64,
                });
            let r: Renewed = self.send(req, REQUEST_TIMEOUT).await?;
            Ok(r.renewed)
        })
    }
}
