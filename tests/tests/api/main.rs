//! Duet's black-box suite: each test starts the real `Application` on a free port against a
//! fresh SQLite file (see `helpers`) and speaks HTTP and WebSocket to it, as a client would.
//! Every module checks one area of `docs/API.md` and the invariants in `DESIGN.md`.

mod accounts;
mod conversations;
mod errors;
mod events;
mod health;
mod helpers;
mod limits;
mod messages;
mod privacy;
mod reads;
mod replay;
mod restart;
mod sync;
