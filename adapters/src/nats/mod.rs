//! NATS: JetStream for the durable event queue, core subjects for live fan-out.
