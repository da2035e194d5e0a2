//! `switchboard health`: asks a running gateway whether it is ready, for a
//! container's health check (the runtime image has no curl nor shell).

use std::time::Duration;

use anyhow::bail;

/// GETs `url`; succeeds on a 2xx answer within `timeout`.
pub async fn run(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()?;
    let answer = client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {}", body.trim());
    }
    println!("{url}: {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_is_ok_and_not_ready_fails() {
        let app = axum::Router::new()
            .route("/readyz", axum::routing::get(|| async { "ok" }))
            .route(
                "/down",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no store")
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        run(&format!("http://{addr}/readyz"), Duration::from_secs(10))
            .await
            .unwrap();
        let e = run(&format!("http://{addr}/down"), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("503") && e.to_string().contains("no store"),
            "{e}"
        );
    }
}
