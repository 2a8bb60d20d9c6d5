use std::io::Write as _;

use ::aws_lc_rs::encoding::AsDer;
use ::aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;

use super::*;
use crate::certs::generate_pem;

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A certificate for `localhost` whose key is the given rcgen key pair.
fn cert_for(key: &rcgen::KeyPair) -> String {
    rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(key)
        .unwrap()
        .pem()
}

/// Content of one DER TLV: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let count = usize::from(n & 0x7f);
            let len = input[2..2 + count]
                .iter()
                .fold(0, |acc, &b| (acc << 8) | usize::from(b));
            (len, 2 + count)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}

#[test]
fn loads_pkcs8_ecdsa_and_offers_h2_then_http11() {
    let pem = generate_pem().unwrap();
    let config =
        server_config_from_pem(pem.server_chain.as_bytes(), pem.server_key.as_bytes()).unwrap();
    assert_eq!(
        config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn loads_sec1_ec_key() {
    let rng_key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let pkcs8 = rng_key.to_pkcs8v1().unwrap();
    let rcgen_key = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
    let sec1 = rng_key.private_key().as_der().unwrap();
    let key_pem = pem_block("EC PRIVATE KEY", sec1.as_ref());
    server_config_from_pem(cert_for(&rcgen_key).as_bytes(), key_pem.as_bytes()).unwrap();
}

#[test]
fn loads_rsa_keys_in_pkcs8_and_pkcs1() {
    let rsa = ::aws_lc_rs::rsa::KeyPair::generate(::aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = AsDer::<::aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).unwrap();
    let rcgen_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &pkcs8.as_ref().to_vec().into(),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let cert = cert_for(&rcgen_key);

    let pkcs8_pem = pem_block("PRIVATE KEY", pkcs8.as_ref());
    server_config_from_pem(cert.as_bytes(), pkcs8_pem.as_bytes()).unwrap();

    // PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING } (RFC 5208 §5);
    // the OCTET STRING holds the PKCS#1 RSAPrivateKey.
    let (_, info, _) = der_tlv(pkcs8.as_ref());
    let (_, _version, rest) = der_tlv(info);
    let (_, _algorithm, rest) = der_tlv(rest);
    let (tag, pkcs1, _) = der_tlv(rest);
    assert_eq!(tag, 0x04);
    let pkcs1_pem = pem_block("RSA PRIVATE KEY", pkcs1);
    server_config_from_pem(cert.as_bytes(), pkcs1_pem.as_bytes()).unwrap();
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let err = server_config(&missing, &missing).unwrap_err();
    assert!(matches!(&err, TlsError::Read { path, .. } if *path == missing));
    assert!(err.to_string().contains("nope.pem"), "{err}");
}

#[test]
fn certificate_file_without_certificate() {
    let pem = generate_pem().unwrap();
    let err = server_config_from_pem(b"just text\n", pem.server_key.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
}

#[test]
fn swapped_files_are_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let pem = generate_pem().unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server-key.pem");
    std::fs::write(&cert, &pem.server_chain).unwrap();
    std::fs::write(&key, &pem.server_key).unwrap();

    let err = server_config(&key, &cert).unwrap_err();
    assert!(
        matches!(&err, TlsError::KeyInCertificateFile { origin: PemOrigin::File(p) } if *p == key),
        "{err:?}"
    );
    assert!(err.to_string().contains("swapped"), "{err}");
}

#[test]
fn key_file_without_key() {
    let pem = generate_pem().unwrap();
    let err = server_config_from_pem(pem.server_chain.as_bytes(), pem.server_chain.as_bytes())
        .unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err:?}");
}

#[test]
fn key_of_another_certificate_is_a_mismatch() {
    let a = generate_pem().unwrap();
    let b = generate_pem().unwrap();
    let err =
        server_config_from_pem(a.server_chain.as_bytes(), b.server_key.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("must come first"), "{err}");
}

#[test]
fn chain_in_wrong_order_is_a_mismatch() {
    let pem = generate_pem().unwrap();
    // The CA first, then the leaf: the key matches the second certificate, not the first.
    let reversed = format!("{}{}", pem.ca, pem.server_chain);
    let err = server_config_from_pem(reversed.as_bytes(), pem.server_key.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn truncated_pem_is_malformed() {
    let pem = generate_pem().unwrap();
    let cut = &pem.server_chain[..pem.server_chain.len() / 3];
    let err = server_config_from_pem(cut.as_bytes(), pem.server_key.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsError::Pem { .. }), "{err:?}");
}

#[test]
fn client_config_trusts_system_bundle_and_extra_ca() {
    let pem = generate_pem().unwrap();
    let mut extra = tempfile::NamedTempFile::new().unwrap();
    extra.write_all(pem.ca.as_bytes()).unwrap();

    let config = client_config_with(None, Some(extra.path())).unwrap();
    // Left to hyper-rustls, which panics on a preset list.
    assert!(config.alpn_protocols.is_empty());

    let other = generate_pem().unwrap();
    let mut system = tempfile::NamedTempFile::new().unwrap();
    system.write_all(other.ca.as_bytes()).unwrap();
    client_config_with(Some(system.path()), Some(extra.path())).unwrap();
}

#[test]
fn client_config_errors() {
    assert!(matches!(
        client_config_with(None, None).unwrap_err(),
        TlsError::NoRoots
    ));

    let mut empty = tempfile::NamedTempFile::new().unwrap();
    empty.write_all(b"no certificates here\n").unwrap();
    let err = client_config_with(None, Some(empty.path())).unwrap_err();
    assert!(matches!(err, TlsError::NoUsableCa { .. }), "{err:?}");

    let missing = Path::new("/nonexistent/ca.pem");
    let err = client_config_with(Some(missing), None).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[test]
fn install_crypto_provider_is_idempotent() {
    install_crypto_provider();
    install_crypto_provider();
    assert!(CryptoProvider::get_default().is_some());
}

#[test]
fn leaf_expiry_is_read_from_the_first_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pem = generate_pem().unwrap();
    let path = dir.path().join("chain.pem");
    std::fs::write(&path, &pem.server_chain).unwrap();
    let at = leaf_not_after(&path).unwrap();
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    // The development certificates are valid for about ten years.
    assert!((3640 * 86400..3660 * 86400).contains(&left), "{left}");
    assert_eq!(leaf_not_after(&dir.path().join("missing.pem")), None);
    std::fs::write(&path, "not a certificate").unwrap();
    assert_eq!(leaf_not_after(&path), None);
}
