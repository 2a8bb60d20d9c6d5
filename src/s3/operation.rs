//! The closed list of S3 operations s3seal forwards, the query parameters each one takes, and
//! the class of access each one needs.
//!
//! A request that is not one of these operations, or that carries a query parameter its
//! operation does not take, is refused: a proxy forwards what it does not understand, so what
//! it does not understand must not pass (a stray `?foo=1` once turned a `PutObject` into an
//! unknown operation that skipped encryption).
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/API/API_Operations_Amazon_Simple_Storage_Service.html>

/// GET, PUT or DELETE of a configuration sub-resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Put,
    Delete,
}

impl Verb {
    fn from_method(m: &str) -> Option<Verb> {
        match m {
            "GET" => Some(Verb::Get),
            "PUT" => Some(Verb::Put),
            "DELETE" => Some(Verb::Delete),
            _ => None,
        }
    }
}

/// A bucket's configuration sub-resources (`?policy`, `?acl`, ...). Changing any of them can
/// open the bucket to others or change how it stores data: [`Access::BucketAdmin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketResource {
    Accelerate,
    Acl,
    Analytics,
    Cors,
    Encryption,
    IntelligentTiering,
    Inventory,
    Lifecycle,
    Logging,
    Metrics,
    Notification,
    ObjectLock,
    OwnershipControls,
    Policy,
    PolicyStatus,
    PublicAccessBlock,
    Replication,
    RequestPayment,
    Tagging,
    Versioning,
    Website,
}

/// The query keyword, the operation names for GET, PUT and DELETE (`None`: S3 has no such
/// operation), and whether the sub-resource is addressed by an `id` parameter.
type BucketEntry = (
    BucketResource,
    &'static str,
    [Option<&'static str>; 3],
    bool,
);

/// Reference: the `Get/Put/DeleteBucket*` pages of the S3 API reference.
const BUCKET_RESOURCES: &[BucketEntry] = &[
    (
        BucketResource::Accelerate,
        "accelerate",
        [
            Some("GetBucketAccelerateConfiguration"),
            Some("PutBucketAccelerateConfiguration"),
            None,
        ],
        false,
    ),
    (
        BucketResource::Acl,
        "acl",
        [Some("GetBucketAcl"), Some("PutBucketAcl"), None],
        false,
    ),
    (
        BucketResource::Analytics,
        "analytics",
        [
            Some("GetBucketAnalyticsConfiguration"),
            Some("PutBucketAnalyticsConfiguration"),
            Some("DeleteBucketAnalyticsConfiguration"),
        ],
        true,
    ),
    (
        BucketResource::Cors,
        "cors",
        [
            Some("GetBucketCors"),
            Some("PutBucketCors"),
            Some("DeleteBucketCors"),
        ],
        false,
    ),
    (
        BucketResource::Encryption,
        "encryption",
        [
            Some("GetBucketEncryption"),
            Some("PutBucketEncryption"),
            Some("DeleteBucketEncryption"),
        ],
        false,
    ),
    (
        BucketResource::IntelligentTiering,
        "intelligent-tiering",
        [
            Some("GetBucketIntelligentTieringConfiguration"),
            Some("PutBucketIntelligentTieringConfiguration"),
            Some("DeleteBucketIntelligentTieringConfiguration"),
        ],
        true,
    ),
    (
        BucketResource::Inventory,
        "inventory",
        [
            Some("GetBucketInventoryConfiguration"),
            Some("PutBucketInventoryConfiguration"),
            Some("DeleteBucketInventoryConfiguration"),
        ],
        true,
    ),
    (
        BucketResource::Lifecycle,
        "lifecycle",
        [
            Some("GetBucketLifecycleConfiguration"),
            Some("PutBucketLifecycleConfiguration"),
            Some("DeleteBucketLifecycle"),
        ],
        false,
    ),
    (
        BucketResource::Logging,
        "logging",
        [Some("GetBucketLogging"), Some("PutBucketLogging"), None],
        false,
    ),
    (
        BucketResource::Metrics,
        "metrics",
        [
            Some("GetBucketMetricsConfiguration"),
            Some("PutBucketMetricsConfiguration"),
            Some("DeleteBucketMetricsConfiguration"),
        ],
        true,
    ),
    (
        BucketResource::Notification,
        "notification",
        [
            Some("GetBucketNotificationConfiguration"),
            Some("PutBucketNotificationConfiguration"),
            None,
        ],
        false,
    ),
    (
        BucketResource::ObjectLock,
        "object-lock",
        [
            Some("GetObjectLockConfiguration"),
            Some("PutObjectLockConfiguration"),
            None,
        ],
        false,
    ),
    (
        BucketResource::OwnershipControls,
        "ownershipControls",
        [
            Some("GetBucketOwnershipControls"),
            Some("PutBucketOwnershipControls"),
            Some("DeleteBucketOwnershipControls"),
        ],
        false,
    ),
    (
        BucketResource::Policy,
        "policy",
        [
            Some("GetBucketPolicy"),
            Some("PutBucketPolicy"),
            Some("DeleteBucketPolicy"),
        ],
        false,
    ),
    (
        BucketResource::PolicyStatus,
        "policyStatus",
        [Some("GetBucketPolicyStatus"), None, None],
        false,
    ),
    (
        BucketResource::PublicAccessBlock,
        "publicAccessBlock",
        [
            Some("GetPublicAccessBlock"),
            Some("PutPublicAccessBlock"),
            Some("DeletePublicAccessBlock"),
        ],
        false,
    ),
    (
        BucketResource::Replication,
        "replication",
        [
            Some("GetBucketReplication"),
            Some("PutBucketReplication"),
            Some("DeleteBucketReplication"),
        ],
        false,
    ),
    (
        BucketResource::RequestPayment,
        "requestPayment",
        [
            Some("GetBucketRequestPayment"),
            Some("PutBucketRequestPayment"),
            None,
        ],
        false,
    ),
    (
        BucketResource::Tagging,
        "tagging",
        [
            Some("GetBucketTagging"),
            Some("PutBucketTagging"),
            Some("DeleteBucketTagging"),
        ],
        false,
    ),
    (
        BucketResource::Versioning,
        "versioning",
        [
            Some("GetBucketVersioning"),
            Some("PutBucketVersioning"),
            None,
        ],
        false,
    ),
    (
        BucketResource::Website,
        "website",
        [
            Some("GetBucketWebsite"),
            Some("PutBucketWebsite"),
            Some("DeleteBucketWebsite"),
        ],
        false,
    ),
];

impl BucketResource {
    fn entry(self) -> &'static BucketEntry {
        BUCKET_RESOURCES
            .iter()
            .find(|e| e.0 == self)
            .unwrap_or(&BUCKET_RESOURCES[0])
    }

    /// The query keyword that selects it.
    pub fn keyword(self) -> &'static str {
        self.entry().1
    }

    fn from_keyword(k: &str) -> Option<BucketResource> {
        BUCKET_RESOURCES.iter().find(|e| e.1 == k).map(|e| e.0)
    }

    fn op_name(self, verb: Verb) -> Option<&'static str> {
        self.entry().2[verb as usize]
    }
}

/// An object's sub-resources other than its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectResource {
    Tagging,
    Acl,
    Retention,
    LegalHold,
}

const OBJECT_RESOURCES: &[(ObjectResource, &str, [Option<&str>; 3])] = &[
    (
        ObjectResource::Tagging,
        "tagging",
        [
            Some("GetObjectTagging"),
            Some("PutObjectTagging"),
            Some("DeleteObjectTagging"),
        ],
    ),
    (
        ObjectResource::Acl,
        "acl",
        [Some("GetObjectAcl"), Some("PutObjectAcl"), None],
    ),
    (
        ObjectResource::Retention,
        "retention",
        [Some("GetObjectRetention"), Some("PutObjectRetention"), None],
    ),
    (
        ObjectResource::LegalHold,
        "legal-hold",
        [Some("GetObjectLegalHold"), Some("PutObjectLegalHold"), None],
    ),
];

impl ObjectResource {
    fn entry(self) -> &'static (ObjectResource, &'static str, [Option<&'static str>; 3]) {
        OBJECT_RESOURCES
            .iter()
            .find(|e| e.0 == self)
            .unwrap_or(&OBJECT_RESOURCES[0])
    }

    pub fn keyword(self) -> &'static str {
        self.entry().1
    }

    fn from_keyword(k: &str) -> Option<ObjectResource> {
        OBJECT_RESOURCES.iter().find(|e| e.1 == k).map(|e| e.0)
    }

    fn op_name(self, verb: Verb) -> Option<&'static str> {
        self.entry().2[verb as usize]
    }
}

/// The S3 operations s3seal forwards. There is no catch-all: see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    /// `GET /bucket/key?attributes`: takes the SSE-C key like GetObject.
    GetObjectAttributes,
    /// `POST /bucket/key?select&select-type=2`: takes the SSE-C key like GetObject.
    SelectObjectContent,
    /// `POST /bucket/key?restore`.
    RestoreObject,
    /// A browser POST form upload (`POST /bucket` with multipart/form-data).
    PostObject,
    /// `GET`, `PUT` or `DELETE` of a bucket's configuration (`?policy`, `?acl`, ...).
    BucketConfig(BucketResource, Verb),
    /// `GET`, `PUT` or `DELETE` of an object's tags, ACL, retention or legal hold.
    ObjectConfig(ObjectResource, Verb),
    /// `OPTIONS` on a bucket or object: a CORS preflight, answered by the proxy from the
    /// bucket's rules and never forwarded. It names the URL of the request it asks about, so
    /// its query parameters are that request's and are not checked here.
    CorsPreflight,
}

/// The classes of access a client key can be granted (`operations` in `[[client]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Object data and metadata: `GetObject`, `HeadObject`, `GetObjectAttributes`, tags, select;
    /// the source of a copy.
    Read,
    /// New objects and object changes: `PutObject`, `CopyObject`, `PostObject`, tags, restore.
    Write,
    /// `DeleteObject`, `DeleteObjects`, `DeleteObjectTagging`.
    Delete,
    /// Listings: `ListBuckets` (only the key's buckets are shown), `ListObjects(V2)`,
    /// `ListObjectVersions`, `ListMultipartUploads`.
    List,
    /// Multipart uploads: create, upload (and copy) parts, list parts, complete, abort.
    Multipart,
    /// A bucket's configuration (policy, ACLs, lifecycle, encryption, ...) and object ACLs,
    /// retention and legal holds. Off unless granted.
    BucketAdmin,
    /// `CreateBucket` and `DeleteBucket`. Off unless granted.
    CreateDeleteBucket,
}

impl Access {
    /// Every class, in the order of the config reference.
    pub const ALL: [Access; 7] = [
        Access::Read,
        Access::Write,
        Access::Delete,
        Access::List,
        Access::Multipart,
        Access::BucketAdmin,
        Access::CreateDeleteBucket,
    ];

    /// What a key may do when its `operations` are not configured: everything but bucket
    /// administration and creating or deleting buckets.
    pub const DEFAULT: [Access; 5] = [
        Access::Read,
        Access::Write,
        Access::Delete,
        Access::List,
        Access::Multipart,
    ];

    /// The name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Delete => "delete",
            Access::List => "list",
            Access::Multipart => "multipart",
            Access::BucketAdmin => "bucket-admin",
            Access::CreateDeleteBucket => "create-delete-bucket",
        }
    }

    pub fn parse(s: &str) -> Option<Access> {
        Access::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// What a request needs to be allowed, besides its bucket (and a copy's source bucket, which
/// needs [`Access::Read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// The class of access.
    Class(Access),
    /// Any grant at all on the bucket: `HeadBucket` and `GetBucketLocation`, which every client
    /// tool asks before its real work.
    AnyGrant,
}

impl Operation {
    /// The S3 API name of the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::ListBuckets => "ListBuckets",
            Operation::CreateBucket => "CreateBucket",
            Operation::DeleteBucket => "DeleteBucket",
            Operation::HeadBucket => "HeadBucket",
            Operation::GetBucketLocation => "GetBucketLocation",
            Operation::ListObjects => "ListObjects",
            Operation::ListObjectsV2 => "ListObjectsV2",
            Operation::ListObjectVersions => "ListObjectVersions",
            Operation::ListMultipartUploads => "ListMultipartUploads",
            Operation::DeleteObjects => "DeleteObjects",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::PutObject => "PutObject",
            Operation::CopyObject => "CopyObject",
            Operation::DeleteObject => "DeleteObject",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::ListParts => "ListParts",
            Operation::PostObject => "PostObject",
            Operation::GetObjectAttributes => "GetObjectAttributes",
            Operation::SelectObjectContent => "SelectObjectContent",
            Operation::RestoreObject => "RestoreObject",
            // Only valid pairs are ever built (see `bucket_operation`).
            Operation::BucketConfig(r, v) => r.op_name(v).unwrap_or("BucketConfig"),
            Operation::ObjectConfig(r, v) => r.op_name(v).unwrap_or("ObjectConfig"),
            Operation::CorsPreflight => "CorsPreflight",
        }
    }

    /// The class of access the operation needs.
    pub fn needs(self) -> Needs {
        use Access::{BucketAdmin, CreateDeleteBucket, Delete, List, Multipart, Read, Write};
        Needs::Class(match self {
            Operation::HeadBucket | Operation::GetBucketLocation | Operation::CorsPreflight => {
                return Needs::AnyGrant
            }
            Operation::GetObject
            | Operation::HeadObject
            | Operation::GetObjectAttributes
            | Operation::SelectObjectContent
            | Operation::ObjectConfig(ObjectResource::Tagging, Verb::Get) => Read,
            Operation::PutObject
            | Operation::CopyObject
            | Operation::PostObject
            | Operation::RestoreObject
            | Operation::ObjectConfig(ObjectResource::Tagging, Verb::Put) => Write,
            Operation::DeleteObject
            | Operation::DeleteObjects
            | Operation::ObjectConfig(ObjectResource::Tagging, Verb::Delete) => Delete,
            Operation::ListBuckets
            | Operation::ListObjects
            | Operation::ListObjectsV2
            | Operation::ListObjectVersions
            | Operation::ListMultipartUploads => List,
            Operation::CreateMultipartUpload
            | Operation::UploadPart
            | Operation::UploadPartCopy
            | Operation::CompleteMultipartUpload
            | Operation::AbortMultipartUpload
            | Operation::ListParts => Multipart,
            Operation::BucketConfig(..)
            | Operation::ObjectConfig(
                ObjectResource::Acl | ObjectResource::Retention | ObjectResource::LegalHold,
                _,
            ) => BucketAdmin,
            Operation::CreateBucket | Operation::DeleteBucket => CreateDeleteBucket,
        })
    }

    /// The query parameters the operation takes besides its keyword, which are forwarded.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Operation::ListBuckets => &[
                "max-buckets",
                "continuation-token",
                "prefix",
                "bucket-region",
            ],
            Operation::ListObjects => {
                &["delimiter", "encoding-type", "marker", "max-keys", "prefix"]
            }
            Operation::ListObjectsV2 => &[
                "list-type",
                "continuation-token",
                "delimiter",
                "encoding-type",
                "fetch-owner",
                "max-keys",
                "prefix",
                "start-after",
            ],
            Operation::ListObjectVersions => &[
                "delimiter",
                "encoding-type",
                "key-marker",
                "max-keys",
                "prefix",
                "version-id-marker",
            ],
            Operation::ListMultipartUploads => &[
                "delimiter",
                "encoding-type",
                "key-marker",
                "max-uploads",
                "prefix",
                "upload-id-marker",
            ],
            Operation::GetObject | Operation::HeadObject => &[
                "versionId",
                "partNumber",
                "response-cache-control",
                "response-content-disposition",
                "response-content-encoding",
                "response-content-language",
                "response-content-type",
                "response-expires",
            ],
            Operation::DeleteObject
            | Operation::GetObjectAttributes
            | Operation::RestoreObject
            | Operation::ObjectConfig(..) => &["versionId"],
            Operation::UploadPart | Operation::UploadPartCopy => &["partNumber", "uploadId"],
            Operation::CompleteMultipartUpload | Operation::AbortMultipartUpload => &["uploadId"],
            Operation::ListParts => &["uploadId", "max-parts", "part-number-marker"],
            Operation::SelectObjectContent => &["select-type"],
            Operation::BucketConfig(r, _) if r.entry().3 => &["id"],
            Operation::CreateBucket
            | Operation::DeleteBucket
            | Operation::HeadBucket
            | Operation::GetBucketLocation
            | Operation::DeleteObjects
            | Operation::PutObject
            | Operation::CopyObject
            | Operation::CreateMultipartUpload
            | Operation::PostObject
            | Operation::BucketConfig(..)
            | Operation::CorsPreflight => &[],
        }
    }

    /// The parameters the operation cannot do without.
    fn required(self) -> &'static [&'static str] {
        match self {
            Operation::UploadPart | Operation::UploadPartCopy => &["partNumber", "uploadId"],
            Operation::CompleteMultipartUpload
            | Operation::AbortMultipartUpload
            | Operation::ListParts => &["uploadId"],
            Operation::SelectObjectContent => &["select-type"],
            _ => &[],
        }
    }

    /// Whether the operation writes object data that encryption rules must see.
    pub fn writes_data(self) -> bool {
        matches!(
            self,
            Operation::PutObject
                | Operation::CopyObject
                | Operation::UploadPart
                | Operation::UploadPartCopy
                | Operation::PostObject
        )
    }
}

/// Which operation a request is, from its method, what it addresses, its query keywords and
/// whether it names a copy source.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape<'a> {
    pub method: &'a str,
    /// `None`: the service (`/`); `Some(false)`: a bucket; `Some(true)`: an object.
    pub object: Option<bool>,
    pub copy: bool,
}

/// Why a request is not one of the operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unknown {
    /// No operation is reached with this method on this kind of resource.
    Method,
    /// The query parameter means nothing to the operation (or names an operation s3seal does
    /// not forward).
    Parameter(String),
    /// A parameter the operation needs is absent.
    Missing(&'static str),
}

/// The query keywords that select an operation on an object or bucket. Any other
/// parameter must be one the selected operation takes.
const OBJECT_KEYWORDS: &[&str] = &[
    "uploads",
    "uploadId",
    "attributes",
    "select",
    "restore",
    "tagging",
    "acl",
    "retention",
    "legal-hold",
];

/// Classifies a request. `names` are the query parameter names other than authentication
/// parameters, each once.
pub(super) fn classify(
    shape: Shape<'_>,
    names: &[&str],
    list_type: Option<&str>,
) -> Result<Operation, Unknown> {
    let has = |n: &str| names.contains(&n);
    if shape.method == "OPTIONS" && shape.object.is_some() {
        return Ok(Operation::CorsPreflight);
    }
    let op = match shape.object {
        None if shape.method == "GET" => Operation::ListBuckets,
        None => return Err(Unknown::Method),
        Some(false) => bucket_operation(shape.method, names, list_type, &has)?,
        Some(true) => object_operation(shape, &has)?,
    };
    let keyword = keyword_of(op);
    for n in names {
        if Some(*n) != keyword && !op.parameters().contains(n) {
            return Err(Unknown::Parameter((*n).to_owned()));
        }
    }
    if let Some(missing) = op.required().iter().find(|r| !has(r)) {
        return Err(Unknown::Missing(missing));
    }
    Ok(op)
}

/// The query keyword that selected `op`, if any.
fn keyword_of(op: Operation) -> Option<&'static str> {
    Some(match op {
        Operation::GetBucketLocation => "location",
        Operation::ListObjectVersions => "versions",
        Operation::ListMultipartUploads | Operation::CreateMultipartUpload => "uploads",
        Operation::DeleteObjects => "delete",
        Operation::GetObjectAttributes => "attributes",
        Operation::SelectObjectContent => "select",
        Operation::RestoreObject => "restore",
        Operation::BucketConfig(r, _) => r.keyword(),
        Operation::ObjectConfig(r, _) => r.keyword(),
        _ => return None,
    })
}

fn bucket_operation(
    method: &str,
    names: &[&str],
    list_type: Option<&str>,
    has: &dyn Fn(&str) -> bool,
) -> Result<Operation, Unknown> {
    let resources: Vec<BucketResource> = names
        .iter()
        .filter_map(|n| BucketResource::from_keyword(n))
        .collect();
    if let [resource] = resources.as_slice() {
        let verb = Verb::from_method(method).ok_or(Unknown::Method)?;
        return match resource.op_name(verb) {
            Some(_) => Ok(Operation::BucketConfig(*resource, verb)),
            None => Err(Unknown::Method),
        };
    }
    if let [_, second, ..] = resources.as_slice() {
        return Err(Unknown::Parameter(second.keyword().to_owned()));
    }
    Ok(match method {
        "GET" if has("location") => Operation::GetBucketLocation,
        "GET" if has("versions") => Operation::ListObjectVersions,
        "GET" if has("uploads") => Operation::ListMultipartUploads,
        "GET" if list_type == Some("2") => Operation::ListObjectsV2,
        "GET" if list_type.is_some() => return Err(Unknown::Parameter("list-type".into())),
        "GET" => Operation::ListObjects,
        "POST" if has("delete") => Operation::DeleteObjects,
        "POST" => Operation::PostObject,
        "PUT" => Operation::CreateBucket,
        "DELETE" => Operation::DeleteBucket,
        "HEAD" => Operation::HeadBucket,
        _ => return Err(Unknown::Method),
    })
}

fn object_operation(shape: Shape<'_>, has: &dyn Fn(&str) -> bool) -> Result<Operation, Unknown> {
    let keywords: Vec<&str> = OBJECT_KEYWORDS.iter().copied().filter(|k| has(k)).collect();
    let keyword = match keywords.as_slice() {
        [] => None,
        [k] => Some(*k),
        [_, second, ..] => return Err(Unknown::Parameter((*second).to_owned())),
    };
    let m = shape.method;
    Ok(match (m, keyword) {
        ("GET", None) => Operation::GetObject,
        ("HEAD", None) => Operation::HeadObject,
        ("PUT", None) if shape.copy => Operation::CopyObject,
        ("PUT", None) => Operation::PutObject,
        ("DELETE", None) => Operation::DeleteObject,
        ("POST", Some("uploads")) => Operation::CreateMultipartUpload,
        ("GET", Some("uploadId")) => Operation::ListParts,
        ("PUT", Some("uploadId")) if shape.copy => Operation::UploadPartCopy,
        ("PUT", Some("uploadId")) => Operation::UploadPart,
        ("POST", Some("uploadId")) => Operation::CompleteMultipartUpload,
        ("DELETE", Some("uploadId")) => Operation::AbortMultipartUpload,
        ("GET", Some("attributes")) => Operation::GetObjectAttributes,
        ("POST", Some("select")) => Operation::SelectObjectContent,
        ("POST", Some("restore")) => Operation::RestoreObject,
        (_, Some(k)) => match (ObjectResource::from_keyword(k), Verb::from_method(m)) {
            (Some(r), Some(v)) if r.op_name(v).is_some() => Operation::ObjectConfig(r, v),
            _ => return Err(Unknown::Method),
        },
        _ => return Err(Unknown::Method),
    })
}
