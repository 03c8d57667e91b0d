//! In-process caches for the `small` profile (one process): history pages and presence.
