//! The embedded default: a local demo store, so `s3seal` with no arguments serves real S3
//! requests without any account or cloud.
//!
//! The store is s3s-fs (a real S3 implementation by the s3s project) on a loopback port,
//! behind s3seal like any other upstream. It is a demo store, not production storage: s3s-fs
//! maps keys to file paths, so this module refuses keys whose path segments are empty, `.` or
//! `..` (they could escape their bucket or collide), and bucket deletion of non-empty buckets.
//! It also answers as S3 does where s3s-fs does not: an object request in a bucket that does
//! not exist gets `NoSuchBucket` (s3s-fs stored a PUT there), and an unknown upload id gets
//! `NoSuchUpload` (s3s-fs listed no parts, or refused it as `InvalidRequest`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::CopySource;
use s3s::path::S3Path;
use s3s::{s3_error, S3Request, S3Result};
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot prepare the data folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the embedded store: {0}")]
    Store(String),
    #[error("cannot listen on a loopback port for the embedded store: {0}")]
    Bind(std::io::Error),
}

/// Keys the file-backed store can hold safely: no empty, `.` or `..` segment, no NUL, no
/// backslash (a path separator to some tools).
pub fn key_is_storable(key: &str) -> bool {
    !key.contains('\0')
        && !key.contains('\\')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Access guard placed in front of s3s-fs, which keeps its data under `root`.
struct KeyGuard {
    root: PathBuf,
}

impl KeyGuard {
    /// s3s-fs 0.14.1 keeps a bucket as a folder of its root.
    async fn bucket_exists(&self, bucket: &str) -> bool {
        tokio::fs::metadata(self.root.join(bucket))
            .await
            .is_ok_and(|m| m.is_dir())
    }

    /// s3s-fs 0.14.1 names its upload ids by UUID and records each one in
    /// `<root>/.upload-<id>.json` until it is completed or aborted.
    async fn check_upload(&self, upload_id: &str) -> S3Result<()> {
        let known = match uuid::Uuid::parse_str(upload_id) {
            Ok(id) => tokio::fs::try_exists(self.root.join(format!(".upload-{id}.json")))
                .await
                .unwrap_or(false),
            Err(_) => false,
        };
        if known {
            Ok(())
        } else {
            Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
            ))
        }
    }
}

fn refuse(key: &str) -> s3s::S3Error {
    s3_error!(
        InvalidArgument,
        "The embedded demo store cannot hold the key {key:?}: keys with empty, '.' or '..' path segments are refused here (a real S3 backend accepts them)."
    )
}

#[async_trait::async_trait]
impl S3Access for KeyGuard {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Authentication required"));
        }
        match cx.s3_path() {
            S3Path::Object { key, .. } if !key_is_storable(key) => Err(refuse(key)),
            S3Path::Object { bucket, .. } if !self.bucket_exists(bucket).await => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            )),
            _ => Ok(()),
        }
    }

    async fn list_parts(&self, req: &mut S3Request<s3s::dto::ListPartsInput>) -> S3Result<()> {
        self.check_upload(&req.input.upload_id).await
    }

    async fn upload_part(&self, req: &mut S3Request<s3s::dto::UploadPartInput>) -> S3Result<()> {
        self.check_upload(&req.input.upload_id).await
    }

    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<s3s::dto::CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        self.check_upload(&req.input.upload_id).await
    }

    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<s3s::dto::AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        self.check_upload(&req.input.upload_id).await
    }

    // s3s-fs echoes `encoding-type=url` without encoding the keys, so clients that asked for
    // it (boto3 always does) decode `+` in keys to a space. Without the parameter, keys come
    // back verbatim and every client reads them right.
    async fn list_objects(&self, req: &mut S3Request<s3s::dto::ListObjectsInput>) -> S3Result<()> {
        req.input.encoding_type = None;
        Ok(())
    }

    async fn list_objects_v2(
        &self,
        req: &mut S3Request<s3s::dto::ListObjectsV2Input>,
    ) -> S3Result<()> {
        req.input.encoding_type = None;
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<s3s::dto::CopyObjectInput>) -> S3Result<()> {
        check_copy_source(&req.input.copy_source)
    }

    async fn upload_part_copy(
        &self,
        req: &mut S3Request<s3s::dto::UploadPartCopyInput>,
    ) -> S3Result<()> {
        check_copy_source(&req.input.copy_source)?;
        self.check_upload(&req.input.upload_id).await
    }
}

fn check_copy_source(src: &CopySource) -> S3Result<()> {
    match src {
        CopySource::Bucket { key, .. } if !key_is_storable(key) => Err(refuse(key)),
        CopySource::Bucket { .. } => Ok(()),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(s3_error!(
            NotImplemented,
            "access points and outposts are not supported by the demo store"
        )),
    }
}

/// The running store: its address and the credentials s3seal uses to reach it.
pub struct Store {
    pub addr: SocketAddr,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Starts s3s-fs over `root` on a loopback port, in this process.
pub async fn start_store(root: &Path) -> Result<Store, EmbeddedError> {
    std::fs::create_dir_all(root).map_err(|source| EmbeddedError::Folder {
        path: root.to_owned(),
        source,
    })?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| EmbeddedError::Store(format!("{e:?}")))?;
    let access_key_id = random_token(20);
    let secret_access_key = random_token(40);
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        access_key_id.clone(),
        secret_access_key.clone(),
    ));
    builder.set_access(KeyGuard {
        root: root.to_owned(),
    });
    let service = builder.build();

    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(EmbeddedError::Bind)?;
    let addr = listener.local_addr().map_err(EmbeddedError::Bind)?;
    tokio::spawn(async move {
        let http = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            // Without it, a small response's last segment waits for the peer's delayed ACK
            // (~40 ms per small GET, measured by the benchmark).
            let _ = tcp.set_nodelay(true);
            let service = service.clone();
            let http = http.clone();
            tokio::spawn(async move {
                let _ = http.serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    Ok(Store {
        addr,
        access_key_id,
        secret_access_key,
    })
}

/// An uppercase alphanumeric token (access key ids must be ASCII letters and digits).
pub fn random_token(len: usize) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storable_keys() {
        for ok in [
            "a", "a/b", "a b/c+d", "..a", "a..", ".hidden", "x/.y", "\u{2713}",
        ] {
            assert!(key_is_storable(ok), "{ok}");
        }
        for bad in [
            "../x", "a/../b", "a/./b", "a//b", "/a", "a/", "..", ".", "a\\b", "a\0b",
        ] {
            assert!(!key_is_storable(bad), "{bad:?}");
        }
    }
}
