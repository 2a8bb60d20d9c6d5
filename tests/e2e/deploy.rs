//! The deployment files hold together: `docker-compose.yml`, the Kubernetes examples, the
//! `Dockerfile` and the systemd unit have the expected shape, point at paths that exist and
//! at ports the embedded configs really use, and every embedded config passes `s3seal check`.
//! No Docker engine or cluster runs here; YAML is read with Python's `yaml` (installed with
//! the test clients), and the unit is checked with `systemd-analyze verify` when present.
//! `scripts/check-deploy` runs the Dockerfile's cargo command in check mode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{backends, repo_path};

/// Every document of a YAML file, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    backends::needs_installed("python3-yaml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v}"))
}

/// `s3seal check --config path` with exactly `env`; returns (exit code, output).
fn check(path: &Path, env: &HashMap<String, String>) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_s3seal"))
        .args(["check", "--config"])
        .arg(path)
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The port of a `host:port` listen address in a TOML config.
fn toml_port(config: &toml::Table, key: &str) -> u16 {
    let addr: std::net::SocketAddr = config["server"][key].as_str().unwrap().parse().unwrap();
    addr.port()
}

/// Every file path the config names: TLS material and `{ file = ... }` secrets, the
/// client-side encryption keys and KMS credentials of `[[bucket]]` tables included.
fn config_files(config: &toml::Table) -> Vec<String> {
    let mut files = vec![
        config["server"]["tls_cert"].as_str().unwrap().to_owned(),
        config["server"]["tls_key"].as_str().unwrap().to_owned(),
    ];
    let mut secret_files = |entry: &toml::Value, names: &[&str]| {
        for secret in names {
            if let Some(file) = entry.get(*secret).and_then(|v| v.get("file")) {
                files.push(file.as_str().unwrap().to_owned());
            }
        }
    };
    let tables = |name: &str| {
        config
            .get(name)
            .and_then(|t| t.as_array())
            .cloned()
            .unwrap_or_default()
    };
    for entry in tables("upstream").iter().chain(&tables("client")) {
        secret_files(entry, &["access_key_id", "secret_access_key"]);
    }
    for bucket in tables("bucket") {
        if let Some(encryption) = bucket.get("encryption") {
            secret_files(encryption, &["key"]);
            if let Some(kms) = encryption.get("kms") {
                secret_files(kms, &["access_key_id", "secret_access_key"]);
            }
        }
    }
    files
}

/// Every example deployment encrypts: some `[[bucket]]` has a client-side encryption rule.
fn assert_encrypts(config: &toml::Table) {
    let encrypted = config
        .get("bucket")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
        .any(|b| {
            b.get("encryption")
                .and_then(|e| e.get("mode"))
                .and_then(|m| m.as_str())
                == Some("client-side")
        });
    assert!(encrypted, "no client-side encryption rule in {config}");
}

/// A deployment's environment with each `${NAME:?how to set it}` (a value the user must
/// provide) replaced by a valid example: every such value is a client-side encryption key.
fn with_required_values(env: HashMap<String, String>) -> HashMap<String, String> {
    env.into_iter()
        .map(|(k, v)| {
            if v.starts_with("${") {
                (
                    k,
                    s3seal::crypto::format::Kek::generate_base64().to_string(),
                )
            } else {
                (k, v)
            }
        })
        .collect()
}

/// The Dockerfile's instructions in order, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_path("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() && current.is_empty() {
            continue;
        }
        current.push_str(line.trim_end_matches('\\'));
        current.push(' ');
        if !line.ends_with('\\') {
            let (op, args) = current.trim().split_once(' ').unwrap();
            out.push((op.to_owned(), args.trim().to_owned()));
            current.clear();
        }
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_consistent() {
    let steps = dockerfile();
    let stages: Vec<&str> = steps
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].starts_with("rust:") && stages[0].ends_with(" AS build"));
    assert!(stages[1].starts_with("gcr.io/distroless/"), "{}", stages[1]);
    let runtime_from = steps.iter().rposition(|(op, _)| op == "FROM").unwrap();
    let (build, runtime) = steps.split_at(runtime_from);
    let arg = |stage: &[(String, String)], op: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.clone())
            .collect()
    };

    // The build stage copies paths that exist and builds the binary the runtime copies.
    let workdir = arg(build, "WORKDIR").pop().unwrap();
    for copy in arg(build, "COPY") {
        let src = copy.split_whitespace().next().unwrap();
        assert!(repo_path(src).exists(), "COPY {src}: no such path");
    }
    let run = arg(build, "RUN").join(" && ");
    assert!(
        run.contains("cargo build --release --locked") && run.contains("--bin s3seal"),
        "{run}"
    );
    let copy = arg(runtime, "COPY").pop().unwrap();
    let parts: Vec<&str> = copy.split_whitespace().collect();
    assert_eq!(
        parts,
        [
            "--from=build",
            &format!("{workdir}/target/release/s3seal"),
            "/usr/local/bin/s3seal"
        ]
    );
    // Non-root, by number (Kubernetes' runAsNonRoot cannot check a name).
    assert_eq!(arg(runtime, "USER"), ["65532:65532"]);
    assert_eq!(arg(runtime, "ENTRYPOINT"), [r#"["/usr/local/bin/s3seal"]"#]);
    assert_eq!(arg(runtime, "STOPSIGNAL"), ["SIGTERM"]);
    assert_eq!(
        arg(runtime, "ENV"),
        ["S3SEAL_CONFIG=/etc/s3seal/s3seal.toml"]
    );
    // The build context leaves out build output and local data.
    let ignore = std::fs::read_to_string(repo_path(".dockerignore")).unwrap();
    for entry in ["target", "s3seal-data", ".git"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), "{entry}");
    }
}

#[test]
fn compose_yaml_has_the_expected_shape_and_a_valid_config() {
    let docs = yaml_documents(&repo_path("docker-compose.yml"));
    assert_eq!(docs.len(), 1);
    let services = docs[0]["services"].as_object().unwrap();
    let proxy = &services["s3seal"];
    assert_eq!(s(&proxy["build"]), ".");
    assert_eq!(proxy["depends_on"], serde_json::json!(["s3"]));
    let ports: Vec<&str> = proxy["ports"].as_array().unwrap().iter().map(s).collect();
    assert!(ports.contains(&"8443:8443"), "{ports:?}");
    // The unauthenticated admin listener is published on the host's loopback only.
    assert!(ports.contains(&"127.0.0.1:9090:9090"), "{ports:?}");

    let env: HashMap<String, String> = with_required_values(
        proxy["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), s(v).to_owned()))
            .collect(),
    );
    let mounts: HashMap<&str, &str> = proxy["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let mut fields = s(v).split(':');
            let src = fields.next().unwrap();
            (fields.next().unwrap(), src)
        })
        .collect();
    for src in mounts.values() {
        assert!(repo_path(src).exists(), "volume source {src} missing");
    }
    // The config the container reads is the mounted sample, at the path the image expects.
    assert_eq!(env["S3SEAL_CONFIG"], "/etc/s3seal/s3seal.toml");
    let sample = repo_path(mounts["/etc/s3seal/s3seal.toml"]);
    let text = std::fs::read_to_string(&sample).unwrap();
    let config: toml::Table = text.parse().unwrap();
    assert_encrypts(&config);
    assert_eq!(toml_port(&config, "listen"), 8443);
    assert_eq!(toml_port(&config, "admin_listen"), 9090);
    // The upstream is the `s3` service, on the port it listens on.
    let endpoint = config["upstream"][0]["endpoint"].as_str().unwrap();
    assert_eq!(endpoint, "http://s3:9000");
    let s3_command: Vec<&str> = services["s3"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(s3_command.windows(2).any(|w| w == ["--address", ":9000"]));
    // SIGKILL comes after the drain (25 s by default).
    assert_eq!(s(&proxy["stop_grace_period"]), "30s");

    // The sample passes `s3seal check` with the compose environment, its certificates
    // mounted from certs/ as the container sees them.
    let dir = tempfile::tempdir().unwrap();
    let certs_dir = repo_path(mounts["/etc/s3seal/certs"]);
    let local = text.replace("/etc/s3seal/certs", certs_dir.to_str().unwrap());
    let path = dir.path().join("s3seal.toml");
    std::fs::write(&path, local).unwrap();
    let (code, out) = check(&path, &env);
    assert_eq!(code, Some(0), "{out}");
    // And fails without it: every secret really comes from the environment.
    let (code, out) = check(&path, &HashMap::new());
    assert_eq!(code, Some(64), "{out}");
}

/// The config embedded in a `ConfigMap` of `docs`.
fn configmap_toml(docs: &[Value], name: &str) -> String {
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name}"));
    s(&cm["data"]["s3seal.toml"]).to_owned()
}

/// Checks a Deployment running s3seal against the config it mounts, then runs `s3seal check`
/// on that config with each mounted path mirrored under a temporary folder.
fn check_s3seal_deployment(docs: &[Value], deployment: &str) {
    let dep = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == deployment)
        .unwrap_or_else(|| panic!("no Deployment {deployment}"));
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let container = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "s3seal")
        .expect("an s3seal container");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(args[..2], ["serve", "--config"]);
    let config_path = PathBuf::from(args[2]);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );

    // Mounts: mount path → volume; the config's folder is the ConfigMap volume.
    let volumes: HashMap<&str, &Value> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (s(&v["name"]), v))
        .collect();
    let mounts: Vec<(&str, &str)> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (s(&m["mountPath"]), s(&m["name"])))
        .collect();
    let mount_of = |path: &Path| {
        mounts
            .iter()
            .find(|(mount, _)| path.starts_with(mount))
            .copied()
            .unwrap_or_else(|| panic!("{} is on no volume mount", path.display()))
    };
    let (_, config_volume) = mount_of(&config_path);
    let cm_name = s(&volumes[config_volume]["configMap"]["name"]);
    let text = configmap_toml(docs, cm_name);
    let config: toml::Table = text.parse().unwrap();
    assert_encrypts(&config);

    // Probes hit the admin listener the config opens, on all interfaces (the kubelet is not
    // on the pod's loopback).
    let admin: std::net::SocketAddr = config["server"]["admin_listen"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(admin.ip().is_unspecified(), "{admin}");
    let admin_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();
    assert_eq!(admin_port, u64::from(admin.port()));
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        assert_eq!(container[probe]["httpGet"]["port"], "admin");
    }
    // SIGKILL comes after the drain.
    let drain = config["server"]["drain_timeout_secs"].as_integer().unwrap();
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > drain);

    // Every file the config names is on a mount; mirrored with the dev certificates and
    // placeholder secrets, the config passes `s3seal check`.
    let root = tempfile::tempdir().unwrap();
    let mirror = |p: &str| root.path().join(p.trim_start_matches('/'));
    for file in config_files(&config) {
        mount_of(Path::new(&file));
        let local = mirror(&file);
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        let content = match Path::new(&file).extension().and_then(|e| e.to_str()) {
            Some("crt") => std::fs::read(repo_path("certs/server.pem")).unwrap(),
            Some("key") => std::fs::read(repo_path("certs/server-key.pem")).unwrap(),
            // A client-side encryption key, as `s3seal keygen` prints it.
            Some("b64") => {
                format!("{}\n", *s3seal::crypto::format::Kek::generate_base64()).into_bytes()
            }
            _ => b"placeholder-secret\n".to_vec(),
        };
        std::fs::write(local, content).unwrap();
    }
    let mut local = text.clone();
    for (mount, _) in &mounts {
        local = local.replace(mount, mirror(mount).to_str().unwrap());
    }
    let path = root.path().join("s3seal.toml");
    std::fs::write(&path, local).unwrap();
    let (code, out) = check(&path, &HashMap::new());
    assert_eq!(code, Some(0), "{deployment}: {out}");
}

#[test]
fn kubernetes_yaml_examples_have_the_expected_shape_and_valid_configs() {
    let sidecar = yaml_documents(&repo_path("deploy/k8s/sidecar.yaml"));
    let kinds: Vec<&str> = sidecar.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment"]);
    check_s3seal_deployment(&sidecar, "app");
    // In the sidecar, the S3 port is on the pod's loopback: only the app reaches it, and the
    // app is pointed at it.
    let config: toml::Table = configmap_toml(&sidecar, "app-s3seal").parse().unwrap();
    let listen = config["server"]["listen"].as_str().unwrap();
    assert!(listen.starts_with("127.0.0.1:"), "{listen}");
    let app = &sidecar[1]["spec"]["template"]["spec"]["containers"][0];
    let endpoint = app["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "AWS_ENDPOINT_URL")
        .unwrap();
    assert_eq!(
        s(&endpoint["value"]),
        format!("https://localhost:{}", toml_port(&config, "listen"))
    );

    let gateway = yaml_documents(&repo_path("deploy/k8s/egress-gateway.yaml"));
    let kinds: Vec<&str> = gateway.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget"
        ]
    );
    check_s3seal_deployment(&gateway, "s3seal");
    let service = &gateway[2];
    assert_eq!(service["spec"]["selector"]["app"], "s3seal");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "https");
    // The autoscaler scales this Deployment on CPU, which needs a CPU request to be a share
    // of; the budget covers the same pods and keeps fewer than minReplicas from going.
    let pod = &gateway[1]["spec"]["template"]["spec"]["containers"][0];
    assert!(pod["resources"]["requests"]["cpu"].is_string(), "{pod}");
    let hpa = &gateway[3]["spec"];
    assert_eq!(hpa["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["scaleTargetRef"]["name"],
        gateway[1]["metadata"]["name"]
    );
    assert_eq!(hpa["metrics"][0]["resource"]["name"], "cpu");
    let pdb = &gateway[4]["spec"];
    assert_eq!(
        pdb["selector"]["matchLabels"],
        gateway[1]["spec"]["selector"]["matchLabels"]
    );
    let min_available = pdb["minAvailable"].as_u64().unwrap();
    assert!(min_available >= 1 && min_available < hpa["minReplicas"].as_u64().unwrap());
}

#[test]
fn systemd_unit_reloads_drains_and_verifies() {
    let unit = std::fs::read_to_string(repo_path("deploy/s3seal.service")).unwrap();
    let values = |key: &str| -> Vec<&str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    };
    assert_eq!(
        values("ExecStart"),
        ["/usr/local/bin/s3seal serve --config /etc/s3seal/s3seal.toml"]
    );
    assert_eq!(values("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(values("KillSignal"), ["SIGTERM"]);
    let stop: u64 = values("TimeoutStopSec")[0].parse().unwrap();
    assert!(
        stop > 25,
        "TimeoutStopSec must exceed the default drain deadline"
    );
    assert_eq!(values("RestartPreventExitStatus"), ["64"]);
    assert_eq!(values("DynamicUser"), ["yes"]);
    // The dynamic user cannot read a root-only key file; systemd hands it over.
    assert_eq!(values("LoadCredential"), ["tls.key:/etc/s3seal/tls.key"]);

    // Required, not skipped when missing: a skip would report an unverified unit as passing.
    backends::needs_installed("systemd-analyze");
    let analyze = which("systemd-analyze")
        .expect("systemd-analyze is not installed: run scripts/install-test-deps.sh");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3seal.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/s3seal", env!("CARGO_BIN_EXE_s3seal")),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
