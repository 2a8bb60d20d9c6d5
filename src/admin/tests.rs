use super::*;

#[test]
fn probe_targets() {
    let t = |s: &str| probe_target(&s.parse().unwrap());
    assert_eq!(
        t("https://s3.example.test"),
        ("s3.example.test".into(), 443)
    );
    assert_eq!(t("http://127.0.0.1:9000"), ("127.0.0.1".into(), 9000));
    assert_eq!(t("http://minio"), ("minio".into(), 80));
    assert_eq!(t("https://[::1]:8443"), ("::1".into(), 8443));
}
