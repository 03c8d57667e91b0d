use std::sync::{Arc, Mutex};

use super::lock;
use crate::UserId;
use crate::events::LiveEvent;

/// One thing a fake was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An append reached the conversation store (its client id), whatever it answered.
    Append(String),
    /// An event was published on the live bus.
    Publish(UserId, LiveEvent),
}

/// What the fakes writing to it were asked, in order. A store and a bus given one journal
/// show a test whether a push came after the append it belongs to; each fake has a
/// journal of its own unless given one.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Step>>>);

impl Journal {
    pub fn record(&self, step: Step) {
        lock(&self.0).push(step);
    }

    /// Every step so far, oldest first.
    pub fn steps(&self) -> Vec<Step> {
        lock(&self.0).clone()
    }
}
