//! `duet bench`: a load generator that drives a running Duet like real clients.
