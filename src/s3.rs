//! S3 protocol knowledge: header names, request routing, XML, browser form uploads. Pure: no
//! I/O.

pub mod headers;
pub mod operation;
pub mod post;
pub mod route;
pub mod xml;
