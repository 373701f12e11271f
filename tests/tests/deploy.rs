//! The deployment files as operators apply them: the Kustomize overlays render
//! with `kubectl kustomize` and validate against the Kubernetes 1.30 schemas
//! (`kubernetes-validate --strict`, from PyPI, installed by tests/run.sh into
//! ~/.cache/emr-ledger/k8s-venv), and both they and the compose stack have the
//! shape the operations guide promises.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// The validation tools' virtualenv (`EMR_K8S_VENV`, or where tests/run.sh puts it).
fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("EMR_K8S_VENV")
        .map_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/emr-ledger/k8s-venv"), PathBuf::from);
    let tool = venv.join("bin").join(name);
    assert!(tool.exists(), "{} missing: run tests/run.sh, which installs kubernetes-validate from PyPI", tool.display());
    tool
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{command:?}:\n{text}\n{}", String::from_utf8_lossy(&output.stderr));
    text
}

/// YAML documents as JSON (PyYAML of the same virtualenv: anchors and merge keys resolved).
fn yaml_documents(file: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)";
    serde_json::from_str(&run(Command::new(venv_tool("python")).args(["-c", script]).arg(file))).unwrap()
}

/// An overlay rendered by `kubectl kustomize`, validated, as its resources.
fn rendered(overlay: &str) -> Vec<Value> {
    let kubectl = std::env::var("EMR_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let manifests = run(Command::new(kubectl).arg("kustomize").arg(repository().join("deploy/k8s/overlays").join(overlay)));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifests).unwrap();
    let verdict = run(Command::new(venv_tool("kubernetes-validate")).args(["--strict", "--kubernetes-version", "1.30.0"]).arg(file.path()));
    assert!(!verdict.contains("ERROR"), "{overlay}: {verdict}");
    yaml_documents(file.path())
}

fn find<'a>(resources: &'a [Value], kind: &str, name: &str) -> &'a Value {
    resources
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

#[test]
fn every_overlay_renders_and_validates_against_the_kubernetes_schemas_with_each_role_its_own_workload() {
    for overlay in ["dev", "production"] {
        let resources = rendered(overlay);
        let workloads = [
            ("Deployment", "emr-api", "api"),
            ("Deployment", "emr-projector", "projector"),
            ("StatefulSet", "emr-anchor", "anchor,detector,api"),
            ("Deployment", "emr-diagnosis", "diagnosis"),
        ];
        for (kind, name, roles) in workloads {
            let workload = find(&resources, kind, name);
            let container = &workload["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(env_value(container, "EMR__SERVE__ROLES"), Some(roles), "{overlay}: {name} runs its role");
            assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health", "{overlay}: {name}");
            assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/ready", "{overlay}: {name}");
            let requests = &container["resources"]["requests"];
            assert!(requests["cpu"].is_string() && requests["memory"].is_string(), "{overlay}: {name} requests resources");
            let sources: Vec<&Value> = container["envFrom"].as_array().unwrap().iter().collect();
            assert!(sources.iter().any(|s| s["secretRef"]["name"] == "emr-secrets"), "{overlay}: {name} takes key material from a Secret");
        }
        assert_eq!(find(&resources, "StatefulSet", "emr-anchor")["spec"]["replicas"], 1, "{overlay}: one active anchor signer");
        assert_eq!(find(&resources, "HorizontalPodAutoscaler", "emr-api")["spec"]["scaleTargetRef"]["name"], "emr-api");
        for budget in ["emr-api", "emr-projector", "emr-diagnosis", "nats"] {
            find(&resources, "PodDisruptionBudget", budget);
        }
        let deny = find(&resources, "NetworkPolicy", "default-deny-ingress");
        assert_eq!(deny["spec"]["podSelector"], serde_json::json!({}), "{overlay}: ingress is denied unless allowed");
        assert_eq!(find(&resources, "StatefulSet", "nats")["spec"]["replicas"], 3, "{overlay}: a 3-node JetStream cluster");
        assert_eq!(find(&resources, "ConfigMap", "emr-config")["data"]["EMR__NATS__REPLICAS"], "3", "{overlay}: streams replicated R3");
        let secrets = resources.iter().filter(|r| r["kind"] == "Secret").count();
        match overlay {
            "production" => assert_eq!(secrets, 0, "production key material never lives in the repository"),
            _ => assert_eq!(secrets, 1, "dev generates its own, labelled DEV ONLY"),
        }
    }
}

#[test]
fn the_compose_stack_runs_every_part_with_a_health_check_and_a_three_node_jetstream_cluster() {
    let compose = repository().join("deploy/compose/compose.yaml");
    let stack = yaml_documents(&compose).remove(0);
    let services = stack["services"].as_object().unwrap();
    for expected in [
        "nats-1",
        "nats-2",
        "nats-3",
        "mariadb",
        "redis",
        "ipfs",
        "anvil",
        "prometheus",
        "grafana",
        "emr-api",
        "emr-projector",
        "emr-anchor",
        "emr-diagnosis",
    ] {
        let service = &services.get(expected).unwrap_or_else(|| panic!("no service {expected}"));
        assert!(service["healthcheck"]["test"].is_array(), "{expected} has a health check");
    }
    for (name, roles) in
        [("emr-api", "api"), ("emr-projector", "projector"), ("emr-anchor", "anchor,detector,api"), ("emr-diagnosis", "diagnosis")]
    {
        let environment = &services[name]["environment"];
        assert_eq!(environment["EMR__SERVE__ROLES"], roles);
        assert_eq!(environment["EMR__NATS__REPLICAS"], "3", "{name} replicates the event stream on all three nodes");
        assert_eq!(services[name]["depends_on"]["nats-3"]["condition"], "service_healthy");
    }
    let cluster = std::fs::read_to_string(repository().join("deploy/compose/nats.conf")).unwrap();
    for node in ["nats://nats-1:6222", "nats://nats-2:6222", "nats://nats-3:6222"] {
        assert!(cluster.contains(node), "the cluster routes to {node}");
    }
    // Every file the stack mounts from the repository exists.
    for service in services.values() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(compose.parent().unwrap().join(source).exists(), "{source} is in the repository");
            }
        }
    }
}
