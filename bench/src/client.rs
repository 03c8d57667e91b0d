//! The HTTP side of a bench client: register, log in, open a conversation, send. Setup
//! failures are errors that end the run (there is nothing to measure without users); send
//! failures are classified and counted.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

/// One registered, logged-in bench user.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: String,
    pub handle: String,
    pub token: String,
}

#[derive(Deserialize)]
struct Session {
    token: String,
    user: UserBody,
}

#[derive(Deserialize)]
struct UserBody {
    id: String,
}

#[derive(Deserialize)]
struct ConversationBody {
    id: String,
}

/// A connection pool to the server under test. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    /// # Errors
    /// When the TLS backend cannot start.
    pub fn new(base: Url, timeout: Duration, connections: u32) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(connections as usize)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("joining {path} to {}", self.base))
    }

    /// Registers `handle` and logs it in.
    ///
    /// # Errors
    /// Any answer but 201, with a hint when the server rate-limits registration.
    pub async fn register(&self, handle: &str, password: &str) -> anyhow::Result<BenchUser> {
        let body = json!({"handle": handle, "password": password});
        let created = self
            .http
            .post(self.url("/v1/accounts")?)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("registering {handle} at {}", self.base))?;
        expect_status(created, StatusCode::CREATED, "registration").await?;
        let login = self
            .http
            .post(self.url("/v1/sessions")?)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("logging in {handle}"))?;
        let session: Session = expect_status(login, StatusCode::CREATED, "login")
            .await?
            .json()
            .await
            .context("reading the login answer")?;
        Ok(BenchUser {
            id: session.user.id,
            handle: handle.to_owned(),
            token: session.token,
        })
    }

    /// Opens (or finds) the conversation between `user` and `peer`; returns its id.
    ///
    /// # Errors
    /// Any answer but 200/201.
    pub async fn open(&self, user: &BenchUser, peer: &BenchUser) -> anyhow::Result<String> {
        let response = self
            .http
            .post(self.url("/v1/conversations")?)
            .bearer_auth(&user.token)
            .json(&json!({"peer_handle": peer.handle}))
            .send()
            .await
            .context("opening a conversation")?;
        if !response.status().is_success() {
            bail!(
                "{}",
                describe_failure(response, "opening a conversation").await
            );
        }
        let conversation: ConversationBody =
            response.json().await.context("reading the conversation")?;
        Ok(conversation.id)
    }

    /// Sends one message.
    ///
    /// # Errors
    /// How it failed, as a report key: `http 503`, `timeout`, `connection`, `request`.
    pub async fn send(
        &self,
        token: &str,
        conversation_id: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Result<(), String> {
        let url = self.messages_url(conversation_id)?;
        let request = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(&json!({"client_msg_id": client_msg_id, "body": body}));
        finish(request).await
    }

    /// Reads the newest page of a conversation's history.
    ///
    /// # Errors
    /// How it failed, as a report key, as for [`Client::send`].
    pub async fn latest_page(&self, token: &str, conversation_id: &str) -> Result<(), String> {
        let url = self.messages_url(conversation_id)?;
        finish(self.http.get(url).bearer_auth(token)).await
    }

    /// The server's Prometheus page, or `None` when it cannot be read (the run goes on
    /// without the figures it gives).
    pub async fn metrics(&self) -> Option<String> {
        let response = self
            .http
            .get(self.url("/metrics").ok()?)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    fn messages_url(&self, conversation_id: &str) -> Result<Url, String> {
        self.url(&format!("/v1/conversations/{conversation_id}/messages"))
            .map_err(|_| "bad url".to_owned())
    }
}

/// Sends `request` and reads its body to the end (so the connection goes back to the pool);
/// a non-2xx status or a transport failure comes back as a report key.
async fn finish(request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| error_kind(&e))?;
    let status = response.status();
    let read = response.bytes().await;
    if !status.is_success() {
        return Err(format!("http {}", status.as_u16()));
    }
    read.map(|_| ()).map_err(|e| error_kind(&e))
}

/// A transport failure as a report key.
pub fn error_kind(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else if err.is_connect() {
        "connection".into()
    } else if err.is_body() || err.is_decode() {
        "response body".into()
    } else {
        "request".into()
    }
}

async fn expect_status(
    response: reqwest::Response,
    expected: StatusCode,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    if response.status() == expected {
        Ok(response)
    } else {
        bail!("{}", describe_failure(response, what).await)
    }
}

async fn describe_failure(response: reqwest::Response, what: &str) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let hint = if status == StatusCode::TOO_MANY_REQUESTS {
        "; the server rate-limits registration and login per address: start it with \
         DUET__AUTH__ATTEMPTS_PER_MINUTE=100000 for a benchmark"
    } else {
        ""
    };
    format!("{what} answered {status}: {body}{hint}")
}
