"""docker/k8s/: every manifest is valid Kubernetes (kubernetes-validate, strict, offline schemas) and the
topology holds its rules: a Deployment per process of the Procfile and a worker per Celery queue, one
beat, migrations as a Job, probes on the apps' real /ready and /live, requests on every container,
secrets only by reference, HAProxy running docker/haproxy.cfg itself with slots for every pod."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "docker" / "k8s"
VERSION = "1.37.0"
SECRETISH = re.compile(r"(SECRET|PASSWORD|TOKEN|_KEY|_KEYS|_URL)$")
NOT_SECRET = {"PUBLIC_BASE_URL", "BID_PUBLIC_BASE_URL", "NATS_URL"}


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


DOCS = _documents()


def _kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == kind}


def _containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("name, doc", DOCS, ids=[f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in DOCS])
def test_every_manifest_is_valid_kubernetes(name, doc):
    kubernetes_validate.validate(doc, VERSION, strict=True)  # raises ValidationError naming the field
    assert doc["metadata"].get("namespace", "campaign-express") == "campaign-express"


def test_the_validator_refuses_a_broken_manifest():
    """The check above can fail: a misspelt field and a wrong type are refused offline."""
    deployment = next(yaml.safe_load_all((K8S / "web.yaml").read_text()))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)
    deployment["spec"]["replicas"] = 2
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSION, strict=True)


def test_the_command_line_validator_runs_offline_on_the_directory():
    files = [str(path) for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"]
    done = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", VERSION, *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_kustomization_lists_every_file():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_a_deployment_per_process_and_a_worker_per_queue():
    deployments = _kind("Deployment")
    # `dsps` (manage.py run_local_dsps) is the local DSP servers of `make run`'s demo: never deployed
    procfile = {line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line} - {"dsps"}
    workers = {f"worker-{queue}" for queue in settings.CELERY_QUEUE_NAMES}
    assert (procfile - {"worker"}) | workers | {"haproxy", "static"} == set(deployments)
    for queue in settings.CELERY_QUEUE_NAMES:
        command = _containers(deployments[f"worker-{queue}"])[0]["command"]
        assert command[:4] == ["celery", "-A", "config", "worker"] and command[command.index("-Q") + 1] == queue


def test_exactly_one_beat_never_autoscaled():
    beat = _kind("Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    assert "beat" not in {hpa["spec"]["scaleTargetRef"]["name"] for hpa in _kind("HorizontalPodAutoscaler").values()}


def test_migrations_run_as_a_job():
    job = _kind("Job")["migrate"]
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "manage.py migrate --noinput" in command and "manage.py migrate_clickhouse" in command
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_bid_autoscales_on_cpu_and_bids_per_second():
    metrics = _kind("HorizontalPodAutoscaler")["bid"]["spec"]["metrics"]
    assert {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}} in metrics
    pods = [m["pods"] for m in metrics if m["type"] == "Pods"]
    assert pods and pods[0]["metric"]["name"] == "bid_requests_per_second"
    assert "bids_total_latency_us_count" in (K8S / "README.md").read_text()  # the adapter rule is documented
    from apps.bidding import metrics as bid_metrics

    assert bid_metrics.TOTAL_LATENCY_US._name == "bids_total_latency_us"  # the series the rule reads exists


def test_haproxy_runs_docker_haproxy_cfg_with_a_slot_for_every_pod():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import k8s_haproxy_config
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert (K8S / "haproxy-config.yaml").read_text() == k8s_haproxy_config.render(), \
        "docker/haproxy.cfg changed: run scripts/k8s_haproxy_config.py"
    assert _kind("ConfigMap")["haproxy-config"]["data"]["haproxy.cfg"] == (ROOT / "docker" / "haproxy.cfg").read_text()
    env = {e["name"]: e["value"] for e in _containers(_kind("Deployment")["haproxy"])[0]["env"]}
    hpas = _kind("HorizontalPodAutoscaler")
    assert int(env["BID_SERVER_SLOTS"]) >= hpas["bid"]["spec"]["maxReplicas"]
    assert int(env["WEB_SERVER_SLOTS"]) >= hpas["web"]["spec"]["maxReplicas"]
    services = _kind("Service")
    assert int(env["GRPC_SERVER_SLOTS"]) >= _kind("Deployment")["grpc"]["spec"]["replicas"]
    for backend, port in (("WEB_SERVER", 8080), ("BID_SERVER", 8081), ("GRPC_SERVER", 9090), ("STATIC_SERVER", 8082)):
        host, _, target = env[backend].partition(":")
        name = host.split(".")[0]
        assert services[name]["spec"]["clusterIP"] == "None" and int(target) == port  # headless: an A record per pod


def test_web_and_bid_probe_the_real_ready_and_live(client):
    deployments = _kind("Deployment")
    for name in ("web", "bid"):
        container = _containers(deployments[name])[0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert client.get("/live", HTTP_HOST="localhost").status_code == 200  # web serves them (config/urls.py)
    asgi = (ROOT / "apps" / "bidding" / "asgi.py").read_text()
    assert 'path == "/ready"' in asgi and 'path == "/live"' in asgi  # tests/bidding/test_http.py exercises both


def test_every_container_has_requests_and_a_memory_limit():
    for name, doc in list(_kind("Deployment").items()) + list(_kind("Job").items()):
        for container in _containers(doc):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name


def test_secrets_only_by_reference():
    app_env_names = set()
    for name, doc in list(_kind("Deployment").items()) + list(_kind("Job").items()):
        for container in _containers(doc):
            for entry in container.get("env", []):
                if SECRETISH.search(entry["name"]) and entry["name"] not in NOT_SECRET:
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (name, entry["name"])
                    app_env_names.add(entry["name"])
    for key in _kind("ConfigMap")["app-config"]["data"]:
        assert not SECRETISH.search(key) or key in NOT_SECRET, key
    assert _kind("Secret") == {}  # no Secret with values is shipped
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL", "BID_WIN_SECRET"} <= app_env_names
