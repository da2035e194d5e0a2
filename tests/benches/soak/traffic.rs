//! The traffic: a fixed mix of request classes, open loop, and what each
//! answer counts as.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Send,
    Invalid,
    Stream,
    Limited,
}

impl Class {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Send => "send",
            Class::Invalid => "invalid",
            Class::Stream => "stream",
            Class::Limited => "limited",
        }
    }

    pub(crate) fn expected(self, status: u16) -> bool {
        match self {
            Class::Send | Class::Stream => status == 200,
            Class::Invalid => status == 401,
            Class::Limited => status == 200 || status == 429,
        }
    }
}

/// Every 20 requests: 11 send, 3 invalid, 3 stream, 3 limited, spread out.
pub(crate) const MIX: [Class; 20] = {
    use Class::*;
    [
        Send, Invalid, Send, Stream, Send, Limited, Send, Send, Invalid, Stream, Send, Limited,
        Send, Send, Invalid, Stream, Send, Limited, Send, Send,
    ]
};

/// How a request ended: an HTTP status, or what went wrong before one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    Status(u16),
    /// 200, but the stream ended without a completed task.
    StreamIncomplete,
    Transport(String),
}

impl Outcome {
    pub(crate) fn label(&self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::StreamIncomplete => "200-incomplete".into(),
            Outcome::Transport(_) => "transport error".into(),
        }
    }
}

pub(crate) struct Traffic {
    pub(crate) http: reqwest::Client,
    pub(crate) gateway: String,
    pub(crate) token: String,
    pub(crate) invalid_token: String,
    pub(crate) counts: Mutex<BTreeMap<(Class, Outcome), u64>>,
    pub(crate) first_errors: Mutex<Vec<String>>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) max_in_flight: AtomicUsize,
    pub(crate) skipped: AtomicU64,
    pub(crate) issued: AtomicU64,
}

pub(crate) fn message(method: &str, n: u64) -> Value {
    json!({
        "jsonrpc": "2.0", "id": n, "method": method,
        "params": {"message": {"messageId": format!("soak-{n}"), "role": "ROLE_USER",
            "parts": [{"text": "soak"}]}},
    })
}

impl Traffic {
    pub(crate) async fn one(&self, class: Class, n: u64) -> Outcome {
        let (agent, token, method) = match class {
            Class::Send => ("echo", &self.token, "SendMessage"),
            Class::Invalid => ("echo", &self.invalid_token, "SendMessage"),
            Class::Stream => ("stream", &self.token, "SendStreamingMessage"),
            Class::Limited => (LIMITED_AGENT, &self.token, "SendMessage"),
        };
        let resp = match self
            .http
            .post(format!("{}/agents/{agent}", self.gateway))
            .bearer_auth(token)
            .header("A2A-Version", "1.0")
            .json(&message(method, n))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::Transport(format!("{class:?}: {e}")),
        };
        let status = resp.status().as_u16();
        if class == Class::Stream && status == 200 {
            let mut body = resp.bytes_stream();
            let mut tail = Vec::new();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => {
                        tail.extend_from_slice(&c);
                        let keep = tail.len().saturating_sub(4096);
                        tail.drain(..keep);
                    }
                    Err(e) => return Outcome::Transport(format!("stream body: {e}")),
                }
            }
            let text = String::from_utf8_lossy(&tail);
            if !text.contains("TASK_STATE_COMPLETED") {
                return Outcome::StreamIncomplete;
            }
            return Outcome::Status(status);
        }
        match resp.bytes().await {
            Ok(_) => Outcome::Status(status),
            Err(e) => Outcome::Transport(format!("{class:?} body: {e}")),
        }
    }

    pub(crate) fn record(&self, class: Class, outcome: Outcome) {
        let unexpected = match &outcome {
            Outcome::Status(s) => !class.expected(*s),
            _ => true,
        };
        if unexpected {
            let mut errors = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
            if errors.len() < 10 {
                errors.push(format!("{}: {outcome:?}", class.name()));
            }
        }
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((class, outcome))
            .or_default() += 1;
    }
}

pub(crate) struct Sample {
    pub(crate) label: String,
    pub(crate) at: Duration,
    pub(crate) rss_kib: u64,
    pub(crate) fds: usize,
    pub(crate) requests: u64,
}
