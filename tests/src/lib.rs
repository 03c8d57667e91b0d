//! Duet's black-box tests live in `tests/api`; this library is empty.
