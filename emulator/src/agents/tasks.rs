//! The tasks an agent has seen, in memory. Every change to a task goes
//! through here and is published, under the same lock, to the task's
//! subscribers, so a stream sees each change exactly once and in order.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};

use super::model::{Message, StreamEvent, Task, TaskState, TaskStatus};

/// Most tasks kept; the oldest are forgotten first.
/// A sample agent is for trying things out: the last thousand tasks are
/// plenty to look up, and memory stays flat under sustained traffic.
const CAPACITY: usize = 1_000;
/// Events a slow subscriber may fall behind before it loses some.
const EVENT_BUFFER: usize = 64;

struct Entry {
    task: Task,
    /// Until the task ends. Dropped then: nothing is published after the
    /// last event, and a stored task must not keep a channel's buffer alive
    /// (the store keeps thousands of ended tasks).
    events: Option<broadcast::Sender<StreamEvent>>,
    canceled: watch::Sender<bool>,
    seq: u64,
}

impl Entry {
    /// Publishes an event already applied to the task; after the last one
    /// the channel goes (subscribers still receive what it holds).
    fn publish(&mut self, event: StreamEvent) {
        if let Some(events) = &self.events {
            // No subscribers is fine: nobody is streaming this task.
            let _ = events.send(event);
        }
        if self.task.status.state.is_terminal() {
            self.events = None;
        }
    }
}

/// Why a task could not be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// No such task.
    NotFound,
    /// The task already ended in this state.
    Ended(TaskState),
}

/// In-memory task store.
#[derive(Default)]
pub struct TaskStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<String, Entry>,
    /// Task ids, oldest first, for eviction in constant time.
    order: VecDeque<String>,
    next_seq: u64,
}

/// What a runner needs to drive a task: the cancel signal.
pub type CancelSignal = watch::Receiver<bool>;

/// What a stream needs: the task as it is now, then every later change.
pub type Subscription = (Task, broadcast::Receiver<StreamEvent>);

impl TaskStore {
    /// Stores a new task and subscribes to it before anything can change it.
    pub fn insert(&self, task: Task) -> (CancelSignal, broadcast::Receiver<StreamEvent>) {
        let (events, events_rx) = broadcast::channel(EVENT_BUFFER);
        let (canceled, canceled_rx) = watch::channel(false);
        let mut inner = self.inner.lock();
        while inner.tasks.len() >= CAPACITY {
            match inner.order.pop_front() {
                Some(oldest) => {
                    inner.tasks.remove(&oldest);
                }
                None => break,
            }
        }
        inner.order.push_back(task.id.clone());
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.tasks.insert(
            task.id.clone(),
            Entry {
                task,
                events: Some(events),
                canceled,
                seq,
            },
        );
        (canceled_rx, events_rx)
    }

    /// A copy of the task.
    pub fn get(&self, id: &str) -> Option<Task> {
        self.inner.lock().tasks.get(id).map(|e| e.task.clone())
    }

    /// Every task, oldest first.
    pub fn list(&self) -> Vec<Task> {
        let inner = self.inner.lock();
        let mut entries: Vec<&Entry> = inner.tasks.values().collect();
        entries.sort_by_key(|e| e.seq);
        entries.into_iter().map(|e| e.task.clone()).collect()
    }

    /// The task now and its later changes, unless it has ended.
    pub fn subscribe(&self, id: &str) -> Result<Subscription, TaskError> {
        let inner = self.inner.lock();
        let entry = inner.tasks.get(id).ok_or(TaskError::NotFound)?;
        match &entry.events {
            Some(events) if !entry.task.status.state.is_terminal() => {
                Ok((entry.task.clone(), events.subscribe()))
            }
            _ => Err(TaskError::Ended(entry.task.status.state)),
        }
    }

    /// Applies and publishes an event unless the task has ended; returns
    /// whether it did.
    pub fn apply(&self, id: &str, event: StreamEvent) -> bool {
        let mut inner = self.inner.lock();
        match inner.tasks.get_mut(id) {
            Some(entry) if !entry.task.status.state.is_terminal() => {
                entry.task.apply(&event);
                entry.publish(event);
                true
            }
            _ => false,
        }
    }

    /// Adds a client message (stamped with the task's ids) to a task that has
    /// not ended, returning the
    /// task, its cancel signal and a subscription to its changes.
    pub fn continue_with(
        &self,
        id: &str,
        message: Message,
    ) -> Result<(Task, CancelSignal, broadcast::Receiver<StreamEvent>), TaskError> {
        let mut message = message;
        let mut inner = self.inner.lock();
        let entry = inner.tasks.get_mut(id).ok_or(TaskError::NotFound)?;
        let events = match &entry.events {
            Some(events) if !entry.task.status.state.is_terminal() => events.subscribe(),
            _ => return Err(TaskError::Ended(entry.task.status.state)),
        };
        message.task_id = Some(entry.task.id.clone());
        message.context_id = Some(entry.task.context_id.clone());
        entry.task.history.push(message);
        Ok((entry.task.clone(), entry.canceled.subscribe(), events))
    }

    /// Moves a task that has not ended to `canceled`, tells its subscribers
    /// and its runner.
    pub fn cancel(&self, id: &str) -> Result<Task, TaskError> {
        let mut inner = self.inner.lock();
        let entry = inner.tasks.get_mut(id).ok_or(TaskError::NotFound)?;
        if entry.task.status.state.is_terminal() {
            return Err(TaskError::Ended(entry.task.status.state));
        }
        let event = StreamEvent::status(&entry.task, TaskStatus::now(TaskState::Canceled, None));
        entry.task.apply(&event);
        entry.publish(event);
        entry.canceled.send_replace(true);
        Ok(entry.task.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::agents::model::Part;

    fn task(id: &str) -> Task {
        Task {
            id: id.into(),
            context_id: "c".into(),
            status: TaskStatus::now(TaskState::Submitted, None),
            artifacts: vec![],
            history: vec![],
        }
    }

    #[test]
    fn changes_reach_subscribers_in_order_and_stop_at_the_end() {
        let store = TaskStore::default();
        let (mut canceled, mut events) = store.insert(task("t"));
        let t = store.get("t").unwrap();
        assert!(store.apply(
            "t",
            StreamEvent::status(&t, TaskStatus::now(TaskState::Working, None))
        ));
        let reply = Message::agent(&t, vec![Part::text("x")]);
        assert_eq!(reply.task_id.as_deref(), Some("t"));
        let (_, mut late) = store.subscribe("t").unwrap();
        let canceled_task = store.cancel("t").unwrap();
        assert_eq!(canceled_task.status.state, TaskState::Canceled);
        assert!(*canceled.borrow_and_update());

        let first = events.try_recv().unwrap();
        assert!(
            matches!(first, StreamEvent::Status { ref status, .. } if status.state == TaskState::Working)
        );
        let second = events.try_recv().unwrap();
        assert!(
            matches!(second, StreamEvent::Status { ref status, .. } if status.state == TaskState::Canceled)
        );
        assert_eq!(late.try_recv().unwrap(), second);

        assert!(!store.apply(
            "t",
            StreamEvent::status(&t, TaskStatus::now(TaskState::Completed, None))
        ));
        assert_eq!(
            store.cancel("t").unwrap_err(),
            TaskError::Ended(TaskState::Canceled)
        );
        assert_eq!(
            store.subscribe("t").unwrap_err(),
            TaskError::Ended(TaskState::Canceled)
        );
        assert_eq!(store.cancel("nope").unwrap_err(), TaskError::NotFound);
    }
}
