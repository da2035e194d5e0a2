//! The Lambda artifact: built with cargo-lambda (or given), then uploaded to
//! S3 under a key named by its content, so that an unchanged binary is
//! neither uploaded again nor seen as a change by CloudFormation.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};
use switchboard_core::store::aws::AwsConnection;

/// Where the artifact went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Uploaded {
    /// Bucket.
    pub bucket: String,
    /// Key (`artifacts/{sha256}/bootstrap.zip`).
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Whether it was already there.
    pub reused: bool,
}

/// The cargo-lambda executable: `$CARGO_LAMBDA`, else `cargo-lambda` on PATH.
fn cargo_lambda() -> PathBuf {
    std::env::var_os("CARGO_LAMBDA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo-lambda"))
}

/// Builds the release artifact for `arch` with cargo-lambda, from the source
/// checkout in the current directory, into `out_dir`; returns the zip.
pub fn build(arch: &str, out_dir: &Path) -> anyhow::Result<PathBuf> {
    if !Path::new("Cargo.toml").is_file() || !Path::new("app").is_dir() {
        bail!(
            "building the Lambda artifact needs the Switchboard source checkout as the current directory; \
             run from there, or pass --artifact ZIP"
        );
    }
    let flag = if arch == "arm64" {
        "--arm64"
    } else {
        "--x86-64"
    };
    let status = Command::new(cargo_lambda())
        .args(["lambda", "build", "--release", flag, "--bin", "switchboard"])
        .args(["--output-format", "zip", "--lambda-dir"])
        .arg(out_dir)
        .status()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run cargo-lambda ({e}); install it with `pip install cargo-lambda ziglang` \
                 (ziglang cross-compiles for arm64), or pass --artifact ZIP"
            )
        })?;
    if !status.success() {
        bail!("cargo lambda build failed ({status})");
    }
    let zip = out_dir.join("switchboard").join("bootstrap.zip");
    if !zip.is_file() {
        bail!("cargo lambda build did not write {}", zip.display());
    }
    Ok(zip)
}

/// Reads an artifact and checks that it is a zip.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if !bytes.starts_with(b"PK") {
        bail!(
            "{} is not a zip; the artifact is the zip `cargo lambda build --output-format zip` writes",
            path.display()
        );
    }
    Ok(bytes)
}

/// The key an artifact is stored under.
pub fn key_for(bytes: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(bytes));
    format!("artifacts/{digest}/bootstrap.zip")
}

fn s3(conn: &AwsConnection) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::config::Builder::from(&conn.sdk);
    if conn.endpoint_url.is_some() {
        // A local endpoint has no per-bucket host names.
        config = config.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// Uploads `bytes` to `bucket` (created when missing) unless that exact
/// artifact is already there.
pub async fn upload(
    conn: &AwsConnection,
    bucket: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<Uploaded> {
    let client = s3(conn);
    let key = key_for(&bytes);
    let size = bytes.len() as u64;
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
            let mut req = client.create_bucket().bucket(bucket);
            if conn.profile.region != "us-east-1" {
                req = req.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(conn.profile.region.as_str().into())
                        .build(),
                );
            }
            req.send().await.map_err(|e| {
                anyhow::anyhow!("creating bucket {bucket}: {}", DisplayErrorContext(&e))
            })?;
        }
        Err(e) => bail!("checking bucket {bucket}: {}", DisplayErrorContext(&e)),
    }
    let present = client.head_object().bucket(bucket).key(&key).send().await;
    match present {
        Ok(_) => {
            return Ok(Uploaded {
                bucket: bucket.to_owned(),
                key,
                bytes: size,
                reused: true,
            })
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
        Err(e) => bail!("checking s3://{bucket}/{key}: {}", DisplayErrorContext(&e)),
    }
    client
        .put_object()
        .bucket(bucket)
        .key(&key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("uploading s3://{bucket}/{key}: {}", DisplayErrorContext(&e))
        })?;
    Ok(Uploaded {
        bucket: bucket.to_owned(),
        key,
        bytes: size,
        reused: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_content() {
        assert_eq!(key_for(b"PK one"), key_for(b"PK one"));
        assert_ne!(key_for(b"PK one"), key_for(b"PK two"));
        assert!(
            key_for(b"PK").starts_with("artifacts/") && key_for(b"PK").ends_with("/bootstrap.zip")
        );
    }

    #[test]
    fn refuses_what_is_not_a_zip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bootstrap");
        std::fs::write(&p, b"\x7fELF...").unwrap();
        assert!(read(&p).unwrap_err().to_string().contains("is not a zip"));
        std::fs::write(&p, b"PK\x03\x04rest").unwrap();
        assert_eq!(read(&p).unwrap().len(), 8);
    }
}
