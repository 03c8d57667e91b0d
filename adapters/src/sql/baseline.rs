//! Raw-insert baseline for `duet bench --baseline`.
