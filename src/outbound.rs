//! What every request the proxy sends has in common, whoever it goes to (the S3 upstream, a
//! KMS): one HTTPS client builder and one SigV4 signer. Keeping them in one place means the
//! signing rules (S3's single URI encoding, the payload hash header) and the credentials' form
//! are decided once.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::body::Body;

/// The pooled HTTPS (or, where the endpoint says so, plain HTTP) client of one destination.
pub type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// A client for one destination: `connect_timeout` bounds the TCP connect, `idle` how long a
/// pooled connection is kept (the destination may close it first; hyper then retries on a new
/// one only for requests that were never sent).
pub fn https_client(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
    idle: Option<Duration>,
) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let mut builder = Client::builder(TokioExecutor::new());
    if let Some(idle) = idle {
        builder.pool_idle_timeout(idle);
    }
    builder.build(https)
}

/// Which canonicalisation rules of SigV4 the destination expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// S3: the canonical URI is encoded once and never normalised (keys may contain `..` or
    /// `//`), and the payload hash travels in `x-amz-content-sha256`.
    /// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>
    S3,
    /// KMS, over the JSON 1.1 protocol: the generic SigV4 rules.
    Kms,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Kms => "kms",
        }
    }

    fn settings(self) -> SigningSettings {
        let mut settings = SigningSettings::default();
        if self == Service::S3 {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        settings
    }
}

/// The request could not be signed (a header or URI the signer refuses).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignError(String);

/// One set of credentials for one service in one region.
pub struct Signer {
    /// The credentials in the signing library's form, built once rather than per request.
    identity: Identity,
    region: String,
    service: Service,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// `secret_access_key` is read once, here, into the signing library's credentials.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        region: &str,
        service: Service,
    ) -> Self {
        let identity = Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "s3seal-config",
        )
        .into();
        Signer {
            identity,
            region: region.to_owned(),
            service,
        }
    }

    /// Adds the SigV4 headers to `req`, which must carry every header to be signed (`Host`
    /// included) and the absolute URI it is sent to.
    pub fn sign<B>(
        &self,
        req: &mut Request<B>,
        payload: SignableBody<'_>,
        now: SystemTime,
    ) -> Result<(), SignError> {
        let failed = |e: &dyn std::fmt::Display| SignError(e.to_string());
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service.name())
            .time(now)
            .settings(self.service.settings())
            .build()
            .map_err(|e| failed(&e))?
            .into();
        let uri = req.uri().to_string();
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let signable =
            SignableRequest::new(req.method().as_str(), &uri, headers.into_iter(), payload)
                .map_err(|e| failed(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed(&e))?
            .into_parts();
        instructions.apply_to_request_http1x(req);
        Ok(())
    }
}
