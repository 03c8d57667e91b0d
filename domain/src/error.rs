//! The error every storage port shares for failures that are not business outcomes.

/// A storage call failed for a reason the caller cannot fix by changing its input.
///
/// Business outcomes (a taken handle, a replayed message) are part of each port's return
/// type, not errors: adapters translate driver errors into these two variants only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable or overloaded; the request may be retried later.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug, a corrupt row, a violated assumption.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}
