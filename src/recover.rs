//! What `s3seal decrypt` asks of a backend: a version 1 multipart object's seal, which lies in
//! a separate object of the same bucket named after the record's salt (`docs/format.md`
//! §7.2). Everything else it reads from files. The seal is fetched with the upstream's own
//! credentials, as the bulk commands act: the proxy hides `.s3seal/` from its clients.

use std::time::SystemTime;

use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Limited};

use crate::body;
use crate::config::Config;
use crate::crypto::format::MAX_SEAL_LEN;
use crate::s3::route::Target;
use crate::upstream::{ChooseError, Outgoing, Payload, UpstreamError};

/// Why the seal could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum SealFetchError {
    #[error(transparent)]
    Upstream(#[from] ChooseError),
    #[error("fetching the seal {name} from bucket {bucket}: {source}")]
    Send {
        bucket: String,
        name: String,
        source: UpstreamError,
    },
    #[error("fetching the seal {name} from bucket {bucket}: the backend answered {status}")]
    Status {
        bucket: String,
        name: String,
        status: StatusCode,
    },
    #[error("reading the seal {name} from bucket {bucket}: {source}")]
    Read {
        bucket: String,
        name: String,
        source: crate::body::BoxError,
    },
}

/// The stored bytes of the object `name` in `bucket` (a seal, as
/// [`crate::crypto::format::Salt::v1_seal_name`] names it): at most [`MAX_SEAL_LEN`], since a
/// longer object is no seal. The caller verifies it. `upstream` names the upstream when the
/// config has more than one.
pub async fn v1_seal(
    config: Config,
    upstream: Option<&str>,
    bucket: &str,
    name: &str,
) -> Result<Vec<u8>, SealFetchError> {
    let upstream = crate::upstream::client_for(config.upstreams, upstream)?;
    let client = upstream.operator();
    let target = Target::Object {
        bucket: bucket.to_owned(),
        key: name.to_owned(),
    };
    let out = Outgoing {
        method: Method::GET,
        target: &target,
        query: Vec::new(),
        headers: HeaderMap::new(),
        content_length: None,
    };
    let send = |source| SealFetchError::Send {
        bucket: bucket.to_owned(),
        name: name.to_owned(),
        source,
    };
    let signed = client
        .sign(out, &Payload::Known(b""), body::empty(), SystemTime::now())
        .map_err(send)?;
    let resp = client.send(signed).await.map_err(send)?;
    if resp.status() != StatusCode::OK {
        return Err(SealFetchError::Status {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
            status: resp.status(),
        });
    }
    let read = Limited::new(resp.into_body(), MAX_SEAL_LEN)
        .collect()
        .await
        .map_err(|source| SealFetchError::Read {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
            source,
        })?;
    Ok(read.to_bytes().to_vec())
}
