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
use http::{HeaderName, HeaderValue, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::auth::credentials::SecretKey;
use crate::auth::sigv4;
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
///
/// S3 requests, the proxy's hot path, are signed with the same pure `SigV4` code that
/// verifies clients ([`crate::auth::sigv4`]): one canonicalisation, proven against AWS's worked
/// examples, decides both what a client signed and what the upstream will recompute, and the
/// signing key is derived once per day instead of per request (four HMACs saved). KMS
/// requests, which follow the generic rules (double-encoded, normalised paths), go through
/// the `aws-sigv4` library.
pub struct Signer {
    /// The credentials in the signing library's form, built once rather than per request.
    identity: Identity,
    access_key_id: String,
    /// Keeps the S3 signing key of the day.
    secret_access_key: SecretKey,
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

/// Headers never signed: the signature itself, and headers that intermediaries change or drop
/// (the set the AWS SDKs exclude; `aws-sigv4`'s `SigningSettings::default`).
const UNSIGNED_HEADERS: [&str; 4] = [
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];

impl Signer {
    /// `secret_access_key` is read once, here, into the signer.
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
            access_key_id: access_key_id.to_owned(),
            secret_access_key: SecretKey::new(secret_access_key),
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
        match self.service {
            Service::S3 => self.sign_s3(req, &payload, now),
            Service::Kms => self.sign_generic(req, payload, now),
        }
    }

    /// S3's rules: `x-amz-content-sha256` carries the payload hash, the canonical URI is the
    /// path encoded once (the path the upstream receives, which [`sigv4::canonical_uri`]
    /// re-encodes exactly as S3 does), every header but [`UNSIGNED_HEADERS`] is signed.
    ///
    /// Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html>
    fn sign_s3<B>(
        &self,
        req: &mut Request<B>,
        payload: &SignableBody<'_>,
        now: SystemTime,
    ) -> Result<(), SignError> {
        let failed = |what: &str| SignError(format!("cannot sign the upstream request: {what}"));
        let payload_hash = match payload {
            SignableBody::Bytes(bytes) => hex::encode(sigv4::sha256(bytes)),
            SignableBody::UnsignedPayload => "UNSIGNED-PAYLOAD".to_owned(),
            SignableBody::StreamingUnsignedPayloadTrailer => {
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_owned()
            }
            _ => return Err(failed("unsupported payload form")),
        };
        let amz_date = sigv4::format_amz_date(now);
        let date = &amz_date[..8];
        let headers = req.headers_mut();
        headers.insert(
            "x-amz-date",
            HeaderValue::from_str(&amz_date).map_err(|_| failed("date"))?,
        );
        headers.insert(
            "x-amz-content-sha256",
            HeaderValue::from_str(&payload_hash).map_err(|_| failed("payload hash"))?,
        );
        let mut names: Vec<&str> = headers
            .keys()
            .map(HeaderName::as_str)
            .filter(|n| !UNSIGNED_HEADERS.contains(n))
            .collect();
        names.sort_unstable();
        names.dedup();
        let canonical_headers = sigv4::canonical_headers(headers, None, &names)
            .map_err(|_| failed("a header vanished"))?;
        let signed_headers = names.join(";");
        let uri = req.uri();
        let canonical_uri = sigv4::canonical_uri(uri.path()).map_err(|_| failed("path"))?;
        let canonical_query =
            sigv4::canonical_query(uri.query().unwrap_or(""), None).map_err(|_| failed("query"))?;
        let canonical = sigv4::canonical_request(
            req.method().as_str(),
            &canonical_uri,
            &canonical_query,
            &canonical_headers,
            &signed_headers,
            &payload_hash,
        );
        let scope = sigv4::scope(date, &self.region);
        let string_to_sign = sigv4::string_to_sign(&amz_date, &scope, &canonical);
        let signature = hex::encode(
            self.secret_access_key
                .signing_key(date, &self.region)
                .sign(string_to_sign.as_bytes()),
        );
        let authorization = format!(
            "{} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            sigv4::ALGORITHM,
            self.access_key_id
        );
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&authorization).map_err(|_| failed("access key id"))?,
        );
        Ok(())
    }

    /// The generic SigV4 rules, by the `aws-sigv4` library (KMS).
    fn sign_generic<B>(
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

#[cfg(test)]
mod tests;
