//! The OpenAPI service of `docs/API.md`: everything but the WebSocket, which this module
//! knows nothing of; [`crate::routes`] mounts the two side by side.
//!
//! - One file per group of operations ([`accounts`], [`sessions`], [`conversations`],
//!   [`messages`], [`sync`], [`health`]), each operation with its own `ApiResponse` enum.
//! - [`statuses`]: which error statuses each operation declares (the errors themselves are
//!   `crate::http::errors`).
//! - [`auth`]: the bearer security scheme and the login/registration rate limit.
//! - [`models`]: the JSON shapes; [`text`], [`timestamp`], [`nullable`] and [`declared`]:
//!   field types that write, read and document exactly what the contract says; `examples`:
//!   what the document shows for each.

pub mod accounts;
pub mod auth;
pub mod conversations;
pub mod declared;
mod examples;
pub mod health;
pub mod messages;
pub mod models;
pub mod nullable;
pub mod sessions;
pub mod statuses;
pub mod sync;
pub mod text;
pub mod timestamp;

use std::sync::Arc;

use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

/// How operations are grouped in the OpenAPI document.
#[derive(Tags)]
pub enum ApiTags {
    /// Registration and users.
    Accounts,
    /// Logging in and out.
    Sessions,
    /// Opening and listing conversations.
    Conversations,
    /// Sending, history and read receipts.
    Messages,
    /// Catching up on changes since a cursor.
    Sync,
    /// Liveness and readiness.
    Health,
}

/// Every group of operations, in the order the document lists them.
pub type Apis = (
    health::HealthApi,
    accounts::AccountsApi,
    sessions::SessionsApi,
    conversations::ConversationsApi,
    messages::MessagesApi,
    sync::SyncApi,
);

fn apis(state: &Arc<AppState>) -> Apis {
    (
        health::HealthApi {
            state: state.clone(),
        },
        accounts::AccountsApi {
            state: state.clone(),
        },
        sessions::SessionsApi {
            state: state.clone(),
        },
        conversations::ConversationsApi {
            state: state.clone(),
        },
        messages::MessagesApi {
            state: state.clone(),
        },
        sync::SyncApi {
            state: state.clone(),
        },
    )
}

/// The OpenAPI service: every operation, and the document describing them.
pub fn service(state: &Arc<AppState>) -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(state), "Duet", env!("CARGO_PKG_VERSION"))
        .description("A one-to-one messaging server. See docs/API.md for the full contract.")
}
