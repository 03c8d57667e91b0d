//! Duet's black-box conformance suite: each test starts the real `Application` on a free port
//! against a fresh database of the storage profile `DUET_TEST_PROFILE` names (`sqlite` by
//! default, `postgres`, `postgres-replica`, `medium`; see `profile.rs` in `duet_tests`) and speaks
//! HTTP and WebSocket to it, as a client would, through the helpers of the `duet_tests`
//! library. The tests do not know the profile: every one must pass on each.
//! Every module checks one area of `docs/API.md` and the invariants in `docs/ARCHITECTURE.md`.

mod accounts;
mod consistency;
mod conversations;
mod cors;
mod delivery;
mod errors;
mod events;
mod health;
mod limits;
mod messages;
mod presence;
mod privacy;
mod processes;
mod reads;
mod replay;
mod restart;
mod sync;
