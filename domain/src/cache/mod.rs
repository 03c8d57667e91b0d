//! Optional accelerators: caches, presence and send limits. Their absence or failure never
//! changes a result.
