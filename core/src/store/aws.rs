//! The connection behind an AWS profile: one SDK configuration (region,
//! credentials, endpoint, retries, timeouts) shared by the DynamoDB and
//! Secrets Manager stores, and the one mapping from SDK errors to
//! [`StoreError`].
//!
//! Credentials come from the standard AWS chain (environment, shared config
//! and credentials files with `aws_profile` or `AWS_PROFILE`, web identity,
//! ECS, EC2 instance metadata), resolved on first use, so opening the stores
//! never blocks. Throttling, 5xx answers, timeouts and connection failures are
//! retried with jittered exponential backoff; what still fails afterwards is
//! [`StoreError::Unavailable`], and an error the service answers with is
//! [`StoreError::Backend`]; the gateway answers both with 503.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Builder as HttpClientBuilder;

use crate::profile::AwsProfile;
use crate::registry::StoreError;

/// Retries, timeouts and caching of an AWS connection. The defaults suit the
/// gateway's hot path: a request never waits more than a few seconds for a
/// store before it is answered 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Attempts per call, the first included (throttling, 5xx, timeouts and
    /// connection failures are retried).
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts (full jitter).
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Time one attempt may take.
    pub attempt_timeout: Duration,
    /// Time a call may take, retries included.
    pub operation_timeout: Duration,
    /// How long a secret value read from Secrets Manager is reused.
    pub secret_cache_ttl: Duration,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsSettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            secret_cache_ttl: Duration::from_secs(10),
        }
    }
}

/// Where credentials come from.
#[derive(Clone, Default)]
pub enum AwsCredentials {
    /// The standard AWS chain, with the profile's `aws_profile` if it names one.
    #[default]
    Chain,
    /// Fixed keys (tests against a local AWS; any keys do there).
    Static {
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
    },
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwsCredentials::Chain => f.write_str("Chain"),
            AwsCredentials::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
        }
    }
}

/// The tables of a profile: `{table_prefix}agents` and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Agent registry (and the generation item).
    pub agents: String,
    /// Scope → agents.
    pub permissions: String,
    /// Rate-limit windows.
    pub counters: String,
    /// Discovery embeddings.
    pub embeddings: String,
}

impl TableNames {
    /// The names for a table prefix.
    pub fn with_prefix(prefix: &str) -> Self {
        TableNames {
            agents: format!("{prefix}agents"),
            permissions: format!("{prefix}permissions"),
            counters: format!("{prefix}counters"),
            embeddings: format!("{prefix}embeddings"),
        }
    }
}

/// SDK clients for one AWS profile. Cheap to clone.
#[derive(Clone)]
pub struct AwsConnection {
    /// The profile's name in the config file (for messages).
    pub profile_name: String,
    /// The profile.
    pub profile: AwsProfile,
    /// Table names.
    pub tables: TableNames,
    /// Endpoint override in force, if any.
    pub endpoint_url: Option<String>,
    /// Settings in force.
    pub settings: AwsSettings,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Secrets Manager.
    pub secretsmanager: aws_sdk_secretsmanager::Client,
    /// The SDK configuration the clients share (for clients of other services).
    pub sdk: SdkConfig,
}

impl fmt::Debug for AwsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConnection")
            .field("profile", &self.profile_name)
            .field("region", &self.profile.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl AwsConnection {
    /// Builds the clients. Nothing is sent yet: credentials are resolved and
    /// the endpoint is contacted on the first call. The endpoint is the
    /// profile's `endpoint_url`, else `AWS_ENDPOINT_URL`, else AWS itself.
    pub fn new(
        profile_name: &str,
        profile: &AwsProfile,
        credentials: AwsCredentials,
        settings: AwsSettings,
    ) -> Result<Self, StoreError> {
        if profile.region.trim().is_empty() {
            return Err(StoreError::Unavailable(format!(
                "profile {profile_name} has no region"
            )));
        }
        let endpoint_url = profile
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|u| !u.trim().is_empty());
        if let Some(url) = &endpoint_url {
            url::Url::parse(url).map_err(|e| {
                StoreError::Unavailable(format!(
                    "profile {profile_name}: endpoint_url {url:?} is not a URL: {e}"
                ))
            })?;
        }
        let region = Region::new(profile.region.clone());
        let http = HttpClientBuilder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let provider: SharedCredentialsProvider = match credentials {
            AwsCredentials::Static {
                access_key_id,
                secret_access_key,
            } => SharedCredentialsProvider::new(Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "switchboard-static",
            )),
            AwsCredentials::Chain => SharedCredentialsProvider::new(LazyChain {
                aws_profile: profile.aws_profile.clone(),
                region: region.clone(),
                http: http.clone(),
                chain: tokio::sync::OnceCell::new(),
            }),
        };
        let retry = RetryConfig::standard()
            .with_max_attempts(settings.max_attempts.max(1))
            .with_initial_backoff(settings.initial_backoff)
            .with_max_backoff(settings.max_backoff);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(settings.connect_timeout)
            .operation_attempt_timeout(settings.attempt_timeout)
            .operation_timeout(settings.operation_timeout)
            .build();
        let mut sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .credentials_provider(provider)
            .http_client(http)
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(url) = &endpoint_url {
            sdk = sdk.endpoint_url(url.clone());
        }
        let sdk = sdk.build();
        Ok(AwsConnection {
            profile_name: profile_name.to_owned(),
            profile: profile.clone(),
            tables: TableNames::with_prefix(&profile.table_prefix),
            endpoint_url,
            settings,
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            secretsmanager: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
        })
    }

    /// Where calls go, for messages: the endpoint override or the region.
    pub fn target(&self) -> String {
        match &self.endpoint_url {
            Some(url) => format!("{url} (region {})", self.profile.region),
            None => format!("AWS region {}", self.profile.region),
        }
    }

    /// The command that creates this profile's tables.
    pub fn bootstrap_hint(&self) -> String {
        format!(
            "run `switchboard --profile {} aws bootstrap`",
            self.profile_name
        )
    }
}

/// The standard credential chain, built on first use (building it reads
/// files, so it is async; opening the stores is not).
#[derive(Debug)]
struct LazyChain {
    aws_profile: Option<String>,
    region: Region,
    http: aws_sdk_dynamodb::config::SharedHttpClient,
    chain: tokio::sync::OnceCell<Arc<DefaultCredentialsChain>>,
}

impl ProvideCredentials for LazyChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    let conf = ProviderConfig::without_region()
                        .with_region(Some(self.region.clone()))
                        .with_http_client(self.http.clone());
                    let mut builder = DefaultCredentialsChain::builder()
                        .region(self.region.clone())
                        .configure(conf);
                    if let Some(name) = &self.aws_profile {
                        builder = builder.profile_name(name);
                    }
                    Arc::new(builder.build().await)
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// An error an AWS service answered with: its code and message, over the
/// SDK's own error (the source).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    /// The error code (`ValidationException`, …).
    pub code: String,
    /// The service's message.
    pub message: String,
    /// The SDK's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// How one failed SDK call is classified.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The service answered with an error code (`ConditionalCheckFailedException`, …).
    Service(ServiceError),
    /// Anything else: no answer, timeout, credentials, throttling after retries.
    Other(String),
}

impl Failure {
    /// The error code, when the service answered.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Failure::Service(e) => Some(&e.code),
            Failure::Other(_) => None,
        }
    }
}

/// Classifies an SDK error, keeping it as the source of a service's answer.
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            match e.code() {
                Some(code) => Failure::Service(ServiceError {
                    code: code.to_owned(),
                    message: e.message().unwrap_or_default().to_owned(),
                    source: Box::new(err),
                }),
                None => Failure::Other(DisplayErrorContext(&err).to_string()),
            }
        }
        SdkError::TimeoutError(_) => Failure::Other("the call timed out".into()),
        SdkError::DispatchFailure(d) => Failure::Other(if d.is_io() {
            format!("cannot connect: {}", DisplayErrorContext(&err))
        } else if d.is_timeout() {
            "connection timed out".into()
        } else {
            DisplayErrorContext(&err).to_string()
        }),
        _ => Failure::Other(DisplayErrorContext(&err).to_string()),
    }
}

/// Error codes that mean "too busy, even after retries".
pub(crate) fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "LimitExceededException"
    )
}

/// The [`StoreError`] for a failure nothing more specific applies to: no
/// answer, or throttled after retries, is [`StoreError::Unavailable`]; any
/// other answer of the service is [`StoreError::Backend`], holding it.
pub(crate) fn store_error(conn: &AwsConnection, what: &str, failure: Failure) -> StoreError {
    match failure {
        Failure::Service(e) if is_throttling(&e.code) => StoreError::Unavailable(format!(
            "{what}: throttled by {} after retries ({e})",
            conn.target()
        )),
        Failure::Service(e) => StoreError::backend(what, e),
        Failure::Other(detail) => {
            StoreError::Unavailable(format!("{what}: {} unreachable: {detail}", conn.target()))
        }
    }
}

/// The client store of an AWS profile. Callers there get tokens from the
/// Cognito user pool, whose app clients Switchboard does not manage: listing
/// shows none, and creating or deleting one is refused with a message saying
/// where clients live.
#[derive(Debug, Clone)]
pub struct CognitoClients {
    profile: String,
    issuer: String,
}

impl CognitoClients {
    /// The client store for `conn`'s profile.
    pub fn new(conn: &AwsConnection) -> Self {
        CognitoClients {
            profile: conn.profile_name.clone(),
            issuer: conn.profile.issuer.clone(),
        }
    }

    /// Why clients cannot be managed here.
    pub fn explanation(&self) -> String {
        format!(
            "profile {} takes tokens from the Cognito user pool {}; its clients are the pool's app clients \
             (manage them with `switchboard --profile {} clients add|list|rm`), not the local issuer's",
            self.profile, self.issuer, self.profile
        )
    }
}

#[async_trait::async_trait]
impl crate::registry::ClientStore for CognitoClients {
    async fn get(
        &self,
        _client_id: &str,
    ) -> crate::registry::StoreResult<Option<crate::registry::ClientRecord>> {
        Ok(None)
    }

    async fn list(&self) -> crate::registry::StoreResult<Vec<crate::registry::ClientRecord>> {
        Ok(Vec::new())
    }

    async fn create(
        &self,
        _record: crate::registry::ClientRecord,
    ) -> crate::registry::StoreResult<()> {
        Err(StoreError::Unavailable(self.explanation()))
    }

    async fn delete(&self, _client_id: &str) -> crate::registry::StoreResult<()> {
        Err(StoreError::Unavailable(self.explanation()))
    }
}
