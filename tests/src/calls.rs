//! Typed calls for each API route, asserting the happy status where the name says so.

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{EVENTUALLY, PASSWORD, Reply, TestApp, TestUser, eventually_within};

impl TestApp {
    // ---- accounts ----

    pub async fn try_register(&self, body: &Value) -> Reply {
        self.post("/v1/accounts", None, body).await
    }

    /// Registers `handle` with [`PASSWORD`]; returns the User.
    pub async fn register(&self, handle: &str) -> Value {
        self.try_register(&json!({"handle": handle, "password": PASSWORD}))
            .await
            .expect(StatusCode::CREATED)
    }

    pub async fn login(&self, handle: &str, password: &str) -> Reply {
        self.post(
            "/v1/sessions",
            None,
            &json!({"handle": handle, "password": password}),
        )
        .await
    }

    /// Logs in with [`PASSWORD`]; returns the token.
    pub async fn login_token(&self, handle: &str) -> String {
        let session = self
            .login(handle, PASSWORD)
            .await
            .expect(StatusCode::CREATED);
        session["token"]
            .as_str()
            .expect("the session has a token")
            .to_owned()
    }

    pub async fn register_and_login(&self, handle: &str) -> TestUser {
        let user = self.register(handle).await;
        let token = self.login_token(handle).await;
        TestUser {
            id: user["id"].as_str().expect("a user id").to_owned(),
            handle: user["handle"].as_str().expect("a handle").to_owned(),
            token,
        }
    }

    /// Registers several users at once (argon2 is the slow part: run it in parallel).
    pub async fn register_users<const N: usize>(&self, handles: [&str; N]) -> [TestUser; N] {
        let users = futures::future::join_all(handles.map(|h| self.register_and_login(h))).await;
        users
            .try_into()
            .unwrap_or_else(|_| unreachable!("join_all keeps the length"))
    }

    // ---- conversations ----

    pub async fn try_open(&self, user: &TestUser, peer_handle: &str) -> Reply {
        self.post(
            "/v1/conversations",
            Some(&user.token),
            &json!({"peer_handle": peer_handle}),
        )
        .await
    }

    /// Opens (or finds) the conversation; returns its id.
    pub async fn open_conversation(&self, user: &TestUser, peer: &TestUser) -> String {
        let reply = self.try_open(user, &peer.handle).await;
        assert!(
            reply.status == StatusCode::CREATED || reply.status == StatusCode::OK,
            "opening a conversation: {} {}",
            reply.status,
            reply.text
        );
        reply.json["id"]
            .as_str()
            .expect("a conversation id")
            .to_owned()
    }

    pub async fn conversation(&self, user: &TestUser, conversation: &str) -> Value {
        self.get(
            &format!("/v1/conversations/{conversation}"),
            Some(&user.token),
        )
        .await
        .expect(StatusCode::OK)
    }

    pub async fn list(&self, user: &TestUser, query: &str) -> Value {
        self.get(&format!("/v1/conversations{query}"), Some(&user.token))
            .await
            .expect(StatusCode::OK)
    }

    pub async fn send_raw(
        &self,
        user: &TestUser,
        conversation: &str,
        client_msg_id: &str,
        body: &str,
    ) -> Reply {
        self.post(
            &format!("/v1/conversations/{conversation}/messages"),
            Some(&user.token),
            &json!({"client_msg_id": client_msg_id, "body": body}),
        )
        .await
    }

    /// Sends `body` under a fresh client id; asserts 201 and returns the Message.
    pub async fn send(&self, user: &TestUser, conversation: &str, body: &str) -> Value {
        self.send_raw(user, conversation, &Uuid::now_v7().to_string(), body)
            .await
            .expect(StatusCode::CREATED)
    }

    /// Sends `count` messages one after another, bodies `"{prefix} 1"`, `"{prefix} 2"`…
    pub async fn send_many(
        &self,
        user: &TestUser,
        conversation: &str,
        prefix: &str,
        count: usize,
    ) -> Vec<Value> {
        let mut sent = Vec::with_capacity(count);
        for i in 1..=count {
            sent.push(
                self.send(user, conversation, &format!("{prefix} {i}"))
                    .await,
            );
        }
        sent
    }

    /// A page of history; `query` is e.g. `"?after_seq=3&limit=2"` or `""`.
    pub async fn history(&self, user: &TestUser, conversation: &str, query: &str) -> Value {
        self.get(
            &format!("/v1/conversations/{conversation}/messages{query}"),
            Some(&user.token),
        )
        .await
        .expect(StatusCode::OK)
    }

    /// The whole history, read forwards with the largest page.
    pub async fn all_history(&self, user: &TestUser, conversation: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .history(user, conversation, &format!("?after_seq={after}&limit=200"))
                .await;
            let items = page["items"].as_array().expect("items").clone();
            if let Some(last) = items.last() {
                after = last["seq"].as_i64().expect("a seq");
            }
            all.extend(items);
            if page["has_more"] != json!(true) {
                return all;
            }
        }
    }

    pub async fn mark_read(&self, user: &TestUser, conversation: &str, seq: i64) -> Reply {
        self.post(
            &format!("/v1/conversations/{conversation}/read"),
            Some(&user.token),
            &json!({"seq": seq}),
        )
        .await
    }

    pub async fn sync(&self, user: &TestUser, since: i64) -> Value {
        self.get(&format!("/v1/sync?since={since}"), Some(&user.token))
            .await
            .expect(StatusCode::OK)
    }

    /// Waits until `user`'s inbox shows `last_seq` for the conversation: delivery has run.
    pub async fn delivered(&self, user: &TestUser, conversation: &str, last_seq: i64) -> i64 {
        self.delivered_within(EVENTUALLY, user, conversation, last_seq)
            .await
    }

    /// As [`Self::delivered`], waiting up to `limit` (a backlog of one conversation is
    /// delivered one event at a time with NATS).
    pub async fn delivered_within(
        &self,
        limit: std::time::Duration,
        user: &TestUser,
        conversation: &str,
        last_seq: i64,
    ) -> i64 {
        eventually_within(limit, "delivery to reach the inbox", || async {
            let page = self.sync(user, 0).await;
            let found = page["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["id"] == conversation && c["last_seq"] == last_seq);
            found.then(|| page["cursor"].as_i64().expect("a cursor"))
        })
        .await
    }

    /// Alice and Bob, logged in, with a conversation: the fixture many tests need.
    pub async fn alice_and_bob(&self) -> (TestUser, TestUser, String) {
        let [alice, bob] = self.register_users(["alice", "bob"]).await;
        let id = self.open_conversation(&alice, &bob).await;
        (alice, bob, id)
    }
}
