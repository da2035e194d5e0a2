//! Sending through the local gateway exactly as an outside client would:
//! a token minted for the chosen client (kept until near expiry), then
//! `SendMessage` / `SendStreamingMessage` with the answer or stream
//! reported event by event, and `CancelTask`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use super::Core;
use crate::console::msg::{CoreEvent, SendRequest, SendUpdate};
use crate::console::widgets::truncate;

/// Lifetime of the tokens the Send screen mints for itself.
const SEND_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Tokens minted for sends: (client, scopes) → (token, reuse until).
pub(super) type TokenCache = HashMap<(String, Vec<String>), (String, Instant)>;

impl Core {
    /// A token for `client` with `scopes`, minted once and reused until near expiry.
    fn token_for(&self, client: &str, scopes: &[String]) -> anyhow::Result<String> {
        let key = (client.to_owned(), scopes.to_vec());
        if let Some((t, until)) = self.tokens.lock().get(&key) {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let t = self
            .issuer
            .mint(&self.issuer_url, client, scopes, SEND_TOKEN_TTL)?;
        self.tokens.lock().insert(
            key,
            (
                t.clone(),
                Instant::now() + SEND_TOKEN_TTL - Duration::from_secs(300),
            ),
        );
        Ok(t)
    }

    /// A JSON-RPC call to `agent` through the local gateway.
    fn rpc(&self, agent: &str, token: &str, body: &Value, stream: bool) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/agents/{agent}", self.gateway_url))
            .bearer_auth(token)
            .header("A2A-Version", "1.0")
            .header(
                reqwest::header::ACCEPT,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .json(body)
    }

    /// Sends through the gateway exactly as an outside client would.
    pub(super) async fn send(&self, req: SendRequest) {
        let id = req.send_id;
        let up = |u: SendUpdate| CoreEvent::Send {
            send_id: id,
            update: u,
        };
        let token = match self.token_for(&req.client, &req.scopes) {
            Ok(t) => t,
            Err(e) => {
                self.emit(up(SendUpdate::Error(format!("cannot mint a token: {e:#}"))))
                    .await;
                self.emit(up(SendUpdate::Done)).await;
                return;
            }
        };
        let method = if req.stream {
            "SendStreamingMessage"
        } else {
            "SendMessage"
        };
        let body = json!({
            "jsonrpc": "2.0",
            "id": uuid::Uuid::new_v4().to_string(),
            "method": method,
            "params": {"message": {
                "messageId": uuid::Uuid::new_v4().to_string(),
                "role": "ROLE_USER",
                "parts": [{"text": req.text}],
            }},
        });
        let resp = match self.rpc(&req.agent, &token, &body, req.stream).send().await {
            Ok(r) => r,
            Err(e) => {
                self.emit(up(SendUpdate::Error(format!(
                    "the gateway did not answer: {}",
                    e.without_url()
                ))))
                .await;
                self.emit(up(SendUpdate::Done)).await;
                return;
            }
        };
        self.emit(up(SendUpdate::Status(resp.status().as_u16())))
            .await;
        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if is_sse {
            let mut events = eventsource_stream::Eventsource::eventsource(resp.bytes_stream());
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) => match serde_json::from_str::<Value>(&ev.data) {
                        Ok(v) => self.emit(up(SendUpdate::Event(v))).await,
                        Err(e) => {
                            self.emit(up(SendUpdate::Error(format!(
                                "an event is not JSON ({e}): {}",
                                truncate(&ev.data, 80)
                            ))))
                            .await
                        }
                    },
                    Err(e) => {
                        self.emit(up(SendUpdate::Error(format!("the stream broke: {e}"))))
                            .await;
                        break;
                    }
                }
            }
        } else {
            match resp.bytes().await {
                Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => self.emit(up(SendUpdate::Event(v))).await,
                    Err(_) => {
                        self.emit(up(SendUpdate::Error(format!(
                            "the answer is not JSON: {}",
                            truncate(&String::from_utf8_lossy(&bytes), 120)
                        ))))
                        .await
                    }
                },
                Err(e) => {
                    self.emit(up(SendUpdate::Error(format!(
                        "the answer broke off: {}",
                        e.without_url()
                    ))))
                    .await
                }
            }
        }
        self.emit(up(SendUpdate::Done)).await;
    }

    /// `CancelTask` for a task a send started.
    pub(super) async fn cancel(
        &self,
        agent: &str,
        client: &str,
        scopes: &[String],
        task_id: &str,
    ) -> Result<Value, String> {
        let token = self
            .token_for(client, scopes)
            .map_err(|e| format!("{e:#}"))?;
        let body = json!({
            "jsonrpc": "2.0",
            "id": uuid::Uuid::new_v4().to_string(),
            "method": "CancelTask",
            "params": {"id": task_id},
        });
        let resp = self
            .rpc(agent, &token, &body, false)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("the answer is not JSON: {}", e.without_url()))?;
        Ok(v)
    }
}
