//! S3 protocol knowledge: header names, request routing, XML. Pure: no I/O.

pub mod headers;
pub mod operation;
pub mod route;
pub mod xml;
