//! Redis: session and history caches, presence, shared send rate limits.
