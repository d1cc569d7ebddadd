"""Static checks of the container image recipe and the Helm chart: offline, no Docker engine, no cluster.

- Dockerfile: multi-stage, pinned bases, non-root numeric USER, entrypoint and default command, COPY sources
  that exist (and are not excluded by .dockerignore), no pip cache in the final stage.
- Helm: the chart lints strictly (helm_python wraps the Helm Go SDK) for each mode with default and non-default
  values, and its schema rejects an unknown mode and wrong types. Every rendered manifest is validated against
  the Kubernetes 1.30 schemas (kubernetes-validate, strict: no unknown fields); the ServiceMonitor CRD, which
  those schemas do not know, is checked structurally here. Then the rendered objects are checked: roles,
  arguments, security context, resources, probes, secrets, hooks, and that the rendered environment loads with
  the project's own configuration loader.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm  # the test extras install these: a missing one is a failure, not a skip
import kubernetes_validate
import pytest
import yaml

from kubecost_worker.config import SETTINGS, load_config

# seconds: helm renders and kubernetes-validate over every value set
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART = ROOT / "deploy" / "helm" / "kubecost-worker"
KUBE_VERSION = "1.30.0"
RELEASE, NAMESPACE = "kcw", "costs"
FULLNAME = f"{RELEASE}-kubecost-worker"
SECRET_SETTINGS = {"KCW_CLICKHOUSE_URL", "KCW_BROKER_URL", "KCW_CLUSTER_SECRET", "KCW_OPTSCALE_CLICKHOUSE_URL"}
# Settings the chart sets only when their value asks for it (files mounted from Secrets, a tri-state boolean).
OPTIONAL_SETTINGS = {"KCW_THANOS_TOKEN_FILE", "KCW_THANOS_CA_FILE", "KCW_THANOS_DEDUP"}


# ---------------------------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def from_image(args: str) -> str:
    words = [w for w in args.split() if not w.startswith("--")]
    return words[0]


def test_dockerfile_is_multi_stage_with_pinned_bases():
    froms = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert len(froms) >= 2, "a build stage and a runtime stage"
    stage_names = {args.split()[-1].lower() for args in froms if " as " in args.lower()}
    for args in froms:
        image = from_image(args)
        if image.lower() in stage_names:
            continue
        assert "$" not in image, f"{image}: no build-arg in a base image reference, pin it literally"
        name, sep, tag = image.partition("@")[0].rpartition(":")
        assert sep and name and "/" not in tag, f"{image}: no tag"
        assert tag != "latest", f"{image}: pinned to latest"
        assert re.match(r"^\d+\.\d+\.\d+", tag), f"{image}: tag {tag!r} is not a full version (e.g. 3.11.14-slim-bookworm)"
    final = from_image(froms[-1])
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", final), final


def test_dockerfile_final_stage_runs_unprivileged():
    final = stages()[-1]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users, "the final stage sets a USER"
    user = users[-1].split(":")
    assert user[0].isdigit() and int(user[0]) > 0, f"USER {users[-1]}: numeric and not root (Kubernetes runAsNonRoot)"
    assert all(part.isdigit() and int(part) > 0 for part in user)
    assert [args for keyword, args in final if keyword == "ENTRYPOINT"][-1] == '["kubecost-worker"]'
    assert [args for keyword, args in final if keyword == "CMD"][-1] == '["run"]'


def test_dockerfile_final_stage_environment():
    env: dict[str, str] = {}
    for keyword, args in stages()[-1]:
        if keyword == "ENV":
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                env[name] = value
    assert env.get("KCW_LOG_FORMAT") == "json"
    assert env.get("KCW_API_HOST") == "0.0.0.0"
    assert env.get("KCW_DATA_DIR") == "/data"
    unknown = {name for name in env if name.startswith("KCW_")} - set(SETTINGS)
    assert not unknown, f"unknown settings in the image: {unknown}"
    volumes = [args for keyword, args in stages()[-1] if keyword == "VOLUME"]
    assert any("/data" in v for v in volumes), "a volume at /data (KCW_DATA_DIR)"


def test_dockerfile_installs_without_caches_or_compilers():
    final_runs = " && ".join(args for keyword, args in stages()[-1] if keyword == "RUN")
    for command in re.split(r"&&|;|\|\|", final_runs):
        if re.search(r"\bpip3?\s+install\b", command):
            assert "--no-cache-dir" in command, f"pip install without --no-cache-dir: {command.strip()}"
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", final_runs), "no compiler in the final stage"
    assert "/opt/venv" in final_runs, "the wheel goes into a venv"
    assert not any(keyword == "ADD" for keyword, _ in dockerfile_instructions()), "COPY, not ADD"


def dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def ignored(path: str) -> bool:
    """Enough of .dockerignore's matching for this repository: last matching pattern wins, ! re-includes."""
    result = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.removeprefix("**/"))
               for p in prefixes):
            result = not negate
    return result


def test_dockerfile_copy_sources_exist_and_are_in_the_context():
    copies = [args for keyword, args in dockerfile_instructions() if keyword == "COPY"]
    assert copies
    for args in copies:
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        assert sources, args
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: not in the repository"
            assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
    # What the wheel build needs: the package, the migrations (data files) and the readme pyproject names.
    copied = " ".join(copies)
    for needed in ("pyproject.toml", "README.md", "kubecost_worker", "migrations"):
        assert needed in copied, f"{needed} is not copied into the build stage"


def test_dockerignore_keeps_local_state_out():
    assert DOCKERIGNORE.is_file()
    for path in (".venv", ".git", ".kcw-data", ".demo", ".pytest_cache", "kubecost_worker/__pycache__",
                 "kubecost_worker.egg-info"):
        assert ignored(path), f"{path} should be excluded from the build context"
    for path in ("pyproject.toml", "README.md", "kubecost_worker/cli/__init__.py", "migrations/0001_k8s_expenses.sql"):
        assert not ignored(path), f"{path} is needed by the build"


def test_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert str(chart["appVersion"]) == project, "Chart.yaml appVersion follows pyproject's version"


# ---------------------------------------------------------------------------------------------------------------
# Helm: value sets
# ---------------------------------------------------------------------------------------------------------------

CLICKHOUSE = "http://worker:s3cret@clickhouse.clickhouse.svc:8123/kubecost"
AMQP = "amqp://worker:s3cret@rabbitmq.rabbitmq.svc:5672/kcw"
OPTSCALE_CLICKHOUSE = "http://optscale:s3cret@clickhouse.optscale.svc:8123/default"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "cronjob-default": {"mode": "cronjob"},
    "deployment-default": {"mode": "deployment"},
    # cronjob mode with an external ClickHouse server, credentials given as values (chart-created Secret).
    "cronjob-server": {
        "mode": "cronjob",
        "config": {"thanosUrl": "http://thanos-query.monitoring:9090", "tenants": ["acme-prod", "1234-5678"],
                   "thanosHeaders": {"THANOS-TENANT": "acme"}, "thanosDedup": True, "logLevel": "debug"},
        "secrets": {"clickhouseUrl": CLICKHOUSE},
        "cronjob": {"schedule": "15 * * * *", "timeZone": "Etc/UTC", "activeDeadlineSeconds": 0},
        "thanosAuth": {"tokenSecret": "thanos-token", "caSecret": "thanos-ca"},
    },
    # cronjob mode with the embedded chDB on a PVC: migrations move into an init container.
    "cronjob-persistence": {
        "mode": "cronjob",
        "config": {"thanosUrl": "https://thanos.example.internal"},
        "persistence": {"enabled": True, "size": "50Gi", "storageClass": "fast-ssd"},
        "image": {"repository": "kubecost-worker", "digest": "sha256:" + "a" * 64},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
    },
    # deployment mode, credentials from an existing Secret with custom keys; HPA, ingress with TLS, PDBs,
    # ServiceMonitor.
    "deployment-full": {
        "mode": "deployment",
        "config": {"thanosUrl": "http://thanos-query.monitoring:9090", "scheduleMinute": 7, "metricsPort": 9200,
                   "apiPort": 8081, "retryDelaysSeconds": [10, 60], "defaultCpuPrice": 0.031611,
                   "defaultRamPrice": 0.004237, "defaultGpuPrice": 0.95},
        "existingSecret": "kcw-credentials",
        "secretKeys": {"clickhouseUrl": "ch", "brokerUrl": "amqp", "clusterSecret": "api-secret"},
        "consumer": {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12,
                                     "targetCPUUtilizationPercentage": 60},
                     "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}},
        "api": {"replicas": 2, "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
                "ingress": {"enabled": True, "className": "nginx", "host": "costs.example.internal",
                            "path": "/metroculus", "tls": {"enabled": True, "secretName": "costs-tls"},
                            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "120"}}},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "optscaleExport": {"enabled": True, "schedule": "45 * * * *"},
        "dashboards": {"enabled": True},
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "finops", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE}}}],
    },
    # deployment mode, RabbitMQ and ClickHouse server given as values (chart-created Secret), 3 consumers.
    "deployment-secrets": {
        "mode": "deployment",
        "config": {"thanosUrl": "http://thanos-query.monitoring:9090"},
        "secrets": {"clickhouseUrl": CLICKHOUSE, "brokerUrl": AMQP, "clusterSecret": "api-s3cret"},
        "consumer": {"replicas": 3},
        "api": {"service": {"type": "ClusterIP", "port": 80}, "ingress": {"enabled": True}},
    },
    # cronjob mode exporting to OptScale's ClickHouse after each run, dashboards for a sidecar in another namespace
    "cronjob-optscale": {
        "mode": "cronjob",
        "config": {"thanosUrl": "http://thanos-query.monitoring:9090", "optscaleTable": "optscale.expenses"},
        "secrets": {"clickhouseUrl": CLICKHOUSE, "optscaleClickhouseUrl": OPTSCALE_CLICKHOUSE},
        "optscaleExport": {"enabled": True},
        "dashboards": {"enabled": True, "folder": "FinOps", "namespace": "monitoring",
                       "labels": {"grafana_dashboard": "1", "team": "finops"}},
    },
    "deployment-no-api": {
        "mode": "deployment",
        "existingSecret": "kcw-credentials",
        "consumer": {"replicas": 1},
        "api": {"enabled": False},
        "serviceMonitor": {"enabled": True},
    },
}


@functools.lru_cache(maxsize=None)
def _chart():
    return helm.Chart.load(str(CHART))


@functools.lru_cache(maxsize=None)
def _render(name: str, release: str = RELEASE) -> tuple[tuple[str, str], ...]:
    rendered = _chart().render(VALUE_SETS[name], name=release, namespace=NAMESPACE, is_install=True)
    return tuple(sorted(rendered.items()))


def manifests(name: str, release: str = RELEASE) -> list[dict[str, Any]]:
    docs = []
    for path, text in _render(name, release):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def notes(name: str) -> str:
    return next(text for path, text in _render(name) if path.endswith("NOTES.txt"))


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found among {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def pod_spec(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_template(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "CronJob", "Job")]


def all_containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc)
    return spec.get("initContainers", []) + spec["containers"]


def is_hook(doc: dict) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


# ---------------------------------------------------------------------------------------------------------------
# Helm: lint and schema
# ---------------------------------------------------------------------------------------------------------------

def lint_problems(values: dict[str, Any]) -> list[str]:
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    return list(report.get("errors") or []) + [m["error"] for m in report.get("messages", []) if m["severity"] >= 2]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_chart_lints_strictly(name):
    assert lint_problems(VALUE_SETS[name]) == []


@pytest.mark.parametrize("values, complaint", [
    ({"mode": "bogus"}, "/mode"),
    ({"consumer": {"replicas": "three"}}, "/consumer/replicas"),
    ({"mode": "deployment", "api": {"ingress": {"enabled": "yes"}}}, "/api/ingress/enabled"),
    ({"config": {"scheduleMinute": 60}}, "/config/scheduleMinute"),
    ({"config": {"logFormat": "xml"}}, "/config/logFormat"),
    ({"config": {"defaultCpuPrice": -0.5}}, "/config/defaultCpuPrice"),
    ({"config": {"defaultGpuPrice": "0.95"}}, "/config/defaultGpuPrice"),
    ({"config": {"tenants": ["acme prod"]}}, "/config/tenants/0"),
    ({"config": {"thanosUrl": "thanos:9090"}}, "/config/thanosUrl"),
    ({"secrets": {"brokerUrl": "redis://broker:6379"}}, "/secrets/brokerUrl"),
    ({"replicaCount": 3}, "replicaCount"),
])
def test_schema_rejects_bad_values(values, complaint):
    problems = lint_problems(values)
    assert problems, f"{values} passed the lint"
    assert any(complaint in p for p in problems), problems
    with pytest.raises(helm.HelmError):
        _chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


@pytest.mark.parametrize("values, message", [
    ({"mode": "deployment", "secrets": {"clickhouseUrl": "chdb:///data/clickhouse"}}, "chDB opens a path in one process"),
    ({"mode": "deployment", "secrets": {"brokerUrl": "memory://"}}, "amqp://"),
    ({"mode": "deployment", "persistence": {"enabled": True}}, "persistence is for mode: cronjob"),
    ({"config": {"stepSeconds": 7}}, "must divide an hour"),
    ({"mode": "deployment", "consumer": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
     "minReplicas"),
])
def test_render_refuses_contradictions(values, message):
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        _chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


# ---------------------------------------------------------------------------------------------------------------
# Helm: every manifest is valid Kubernetes 1.30
# ---------------------------------------------------------------------------------------------------------------

def check_service_monitor(doc: dict, docs: list[dict]) -> None:
    """The CRD is not in kubernetes-validate's schemas: check its shape and that it finds the metrics Service."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    spec = doc["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels"}
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selected = [s for s in of_kind(docs, "Service")
                if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert len(selected) == 1, "the ServiceMonitor selects exactly the metrics Service"
    ports = {p["name"] for p in selected[0]["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
        assert re.fullmatch(r"(\d+(ms|s|m|h))+", endpoint["interval"])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_are_valid_kubernetes(name):
    docs = manifests(name)
    assert docs
    for doc in docs:
        # dashboards may go where the Grafana sidecar watches (dashboards.namespace)
        expected = VALUE_SETS[name].get("dashboards", {}).get("namespace") if "-dashboard-" in doc["metadata"][
            "name"] else None
        assert doc["metadata"].get("namespace") == (expected or NAMESPACE), f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc, docs)
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_names_fit_with_a_long_release_name():
    release = "kubecost-worker-for-the-finops-platform-eu-west-1-xy"  # 52 characters (Helm allows 53)
    for name in ("cronjob-persistence", "deployment-full"):
        for doc in manifests(name, release):
            limit = 52 if doc["kind"] == "CronJob" else 63
            assert len(doc["metadata"]["name"]) <= limit, doc["metadata"]["name"]
            for value in doc["metadata"].get("labels", {}).values():
                assert len(value) <= 63, value


# ---------------------------------------------------------------------------------------------------------------
# Helm: what the objects say
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_pod_is_locked_down_and_has_resources(name):
    docs = manifests(name)
    assert workloads(docs)
    for doc in workloads(docs):
        spec = pod_spec(doc)
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert pod_security["runAsUser"] > 0 and pod_security["fsGroup"] > 0
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False, "Service env vars (KCW_API_PORT=tcp://...) could shadow settings"
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in all_containers(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["runAsNonRoot"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert not security.get("capabilities", {}).get("add"), where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts and "/data" in mounts, f"{where}: a writable /tmp and /data under a read-only root"
            for path in ("/tmp", "/data"):
                volume = volumes[mounts[path]]
                assert "emptyDir" in volume or "persistentVolumeClaim" in volume, where
            assert container["image"].startswith("kubecost-worker"), where


def test_cronjob_mode_objects():
    docs = manifests("cronjob-default")
    assert not of_kind(docs, "Deployment") and not of_kind(docs, "Service")
    (cronjob,) = of_kind(docs, "CronJob")
    spec = cronjob["spec"]
    assert spec["schedule"] == "10 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    (container,) = pod_spec(cronjob)["containers"]
    assert container["args"] == ["once"]
    assert container["image"] == "kubecost-worker:0.1.0"
    assert "livenessProbe" not in container and "readinessProbe" not in container
    assert "initContainers" not in pod_spec(cronjob)
    assert pod_spec(cronjob)["restartPolicy"] == "Never"
    env = {e["name"]: e for e in container["env"]}
    assert "KCW_BROKER_URL" not in env, "cronjob mode uses the in-process memory:// queue"
    assert one(docs, "ConfigMap", FULLNAME)["data"]["KCW_LOG_FORMAT"] == "json"

    (job,) = of_kind(docs, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "helm.sh/hook-weight" in annotations
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (migrate,) = pod_spec(job)["containers"]
    assert migrate["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_migration_hook_reads_hook_copies_of_config_and_secret():
    """A pre-install hook runs before the release's ConfigMap and Secret exist: it reads hook copies made first."""
    for name in ("cronjob-server", "deployment-secrets", "deployment-full"):
        docs = manifests(name)
        (job,) = of_kind(docs, "Job")
        weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
        container = pod_spec(job)["containers"][0]
        references = [("ConfigMap", e["configMapRef"]["name"]) for e in container["envFrom"]]
        references += [("Secret", e["valueFrom"]["secretKeyRef"]["name"]) for e in container["env"]
                       if "secretKeyRef" in e.get("valueFrom", {})]
        assert references
        for kind, ref in references:
            if kind == "Secret" and ref == VALUE_SETS[name].get("existingSecret"):
                continue
            target = one(docs, kind, ref)
            assert is_hook(target), f"{kind}/{ref} must exist before the hook Job"
            hook = target["metadata"]["annotations"]
            assert "pre-install" in hook["helm.sh/hook"] and "pre-upgrade" in hook["helm.sh/hook"]
            assert int(hook["helm.sh/hook-weight"]) < weight


def test_cronjob_with_persistence_migrates_in_an_init_container():
    docs = manifests("cronjob-persistence")
    assert not of_kind(docs, "Job"), "no hook Job: the PVC does not exist before the install, chDB opens in one process"
    (cronjob,) = of_kind(docs, "CronJob")
    spec = pod_spec(cronjob)
    assert [c["args"] for c in spec["initContainers"]] == [["migrate"]]
    assert spec["containers"][0]["args"] == ["once"]
    assert spec["containers"][0]["image"] == "kubecost-worker@sha256:" + "a" * 64
    (pvc,) = of_kind(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = next(v for v in spec["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    ch = next(e for e in spec["containers"][0]["env"] if e["name"] == "KCW_CLICKHOUSE_URL")
    assert ch["valueFrom"]["secretKeyRef"]["optional"] is True, "no URL: the embedded chDB on the PVC"
    assert {"name": "TZ", "value": "UTC"} in spec["containers"][0]["env"]


def test_cronjob_server_mode_settings_and_thanos_files():
    docs = manifests("cronjob-server")
    (cronjob,) = of_kind(docs, "CronJob")
    assert cronjob["spec"]["schedule"] == "15 * * * *" and cronjob["spec"]["timeZone"] == "Etc/UTC"
    assert "activeDeadlineSeconds" not in cronjob["spec"]["jobTemplate"]["spec"]
    data = one(docs, "ConfigMap", FULLNAME)["data"]
    assert data["KCW_TENANTS"] == "acme-prod,1234-5678"
    assert data["KCW_THANOS_HEADERS"] == "THANOS-TENANT=acme"
    assert data["KCW_THANOS_DEDUP"] == "true"
    assert data["KCW_THANOS_TOKEN_FILE"].startswith("/var/run/secrets/")
    container = pod_spec(cronjob)["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for file_setting in ("KCW_THANOS_TOKEN_FILE", "KCW_THANOS_CA_FILE"):
        directory = data[file_setting].rsplit("/", 1)[0]
        assert mounts[directory]["readOnly"] is True
    secret = one(docs, "Secret", FULLNAME)
    assert base64.b64decode(secret["data"]["clickhouse-url"]).decode() == CLICKHOUSE
    assert "broker-url" not in secret["data"], "cronjob mode has no broker"


def test_deployment_mode_objects():
    docs = manifests("deployment-secrets")
    assert not of_kind(docs, "CronJob")
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    assert set(deployments) == {f"{FULLNAME}-scheduler", f"{FULLNAME}-consumer", f"{FULLNAME}-api"}

    scheduler = deployments[f"{FULLNAME}-scheduler"]
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"] == {"type": "Recreate"}
    consumer = deployments[f"{FULLNAME}-consumer"]
    assert consumer["spec"]["replicas"] == 3
    api = deployments[f"{FULLNAME}-api"]
    args = {name.rsplit("-", 1)[1]: pod_spec(d)["containers"][0]["args"] for name, d in deployments.items()}
    assert args == {"scheduler": ["schedule"], "consumer": ["consume"], "api": ["serve"]}

    for deployment in (scheduler, consumer):
        (container,) = pod_spec(deployment)["containers"]
        assert container["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert env["KCW_BROKER_URL"] == {"name": FULLNAME, "key": "broker-url"}
        assert env["KCW_CLICKHOUSE_URL"]["optional"] is False, "deployment mode needs a ClickHouse server"
    (container,) = pod_spec(api)["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {e["name"] for e in container["env"]} == {"KCW_CLICKHOUSE_URL", "KCW_CLUSTER_SECRET"}

    service = one(docs, "Service", f"{FULLNAME}-api")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= pod_template(api)["metadata"]["labels"].items()
    assert not service["spec"]["selector"].items() <= pod_template(consumer)["metadata"]["labels"].items()

    metrics = one(docs, "Service", f"{FULLNAME}-metrics")
    assert metrics["spec"]["clusterIP"] == "None"
    for deployment in deployments.values():
        assert metrics["spec"]["selector"].items() <= pod_template(deployment)["metadata"]["labels"].items()
    (job,) = of_kind(docs, "Job")
    assert not metrics["spec"]["selector"].items() <= pod_template(job)["metadata"]["labels"].items()

    pdbs = {d["metadata"]["name"] for d in of_kind(docs, "PodDisruptionBudget")}
    assert pdbs == {f"{FULLNAME}-consumer"}, "3 consumers: a PDB; 1 API replica: none"
    assert not of_kind(docs, "HorizontalPodAutoscaler")
    (ingress,) = of_kind(docs, "Ingress")
    assert "tls" not in ingress["spec"] and "ingressClassName" not in ingress["spec"]
    assert [set(rule) for rule in ingress["spec"]["rules"]] == [{"http"}], "no host: every host"
    assert not of_kind(docs, "ServiceMonitor")

    secret = one(docs, "Secret", FULLNAME)
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {"clickhouse-url": CLICKHOUSE, "broker-url": AMQP, "cluster-secret": "api-s3cret"}
    for deployment in deployments.values():
        annotations = pod_template(deployment)["metadata"]["annotations"]
        assert {"checksum/config", "checksum/secret"} <= set(annotations), "pods roll when the configuration changes"
    assert pod_spec(consumer)["terminationGracePeriodSeconds"] > 30, "longer than KCW_SHUTDOWN_GRACE_SECONDS"


def test_deployment_full_values():
    docs = manifests("deployment-full")
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    consumer = deployments[f"{FULLNAME}-consumer"]
    assert "replicas" not in consumer["spec"], "the HorizontalPodAutoscaler owns the replica count"
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": consumer["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60

    (ingress,) = of_kind(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "costs-tls", "hosts": ["costs.example.internal"]}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "costs.example.internal"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{FULLNAME}-api", "port": {"name": "http"}}
    assert rule["http"]["paths"][0]["path"] == "/metroculus"

    pdbs = {d["metadata"]["name"]: d for d in of_kind(docs, "PodDisruptionBudget")}
    assert set(pdbs) == {f"{FULLNAME}-consumer", f"{FULLNAME}-api"}
    assert pdbs[f"{FULLNAME}-api"]["spec"]["maxUnavailable"] == "50%"
    for name, pdb in pdbs.items():
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_template(deployments[name])["metadata"]["labels"].items()

    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"metrics", "http"}

    for deployment in deployments.values():
        spec = pod_spec(deployment)
        assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
        assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
        (container,) = spec["containers"]
        port = container["ports"][0]
        assert port["containerPort"] == (8081 if port["name"] == "http" else 9200)
        for env in container["env"]:
            assert env["valueFrom"]["secretKeyRef"]["name"] == "kcw-credentials"
            assert env["valueFrom"]["secretKeyRef"]["key"] in {"ch", "amqp", "api-secret"}


def test_optscale_export_runs_each_hour():
    # cronjob mode: the hourly run exports after its work, to OptScale's ClickHouse from the Secret
    docs = manifests("cronjob-optscale")
    (cronjob,) = of_kind(docs, "CronJob")
    (container,) = pod_spec(cronjob)["containers"]
    assert container["args"] == ["once", "--export-optscale"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["KCW_OPTSCALE_CLICKHOUSE_URL"] == {"name": FULLNAME, "key": "optscale-clickhouse-url",
                                                  "optional": True}
    secret = one(docs, "Secret", FULLNAME)["data"]
    assert base64.b64decode(secret["optscale-clickhouse-url"]).decode() == OPTSCALE_CLICKHOUSE
    assert one(docs, "ConfigMap", FULLNAME)["data"]["KCW_OPTSCALE_TABLE"] == "optscale.expenses"
    # deployment mode: a CronJob of its own, never two at once
    docs = manifests("deployment-full")
    (export,) = of_kind(docs, "CronJob")
    assert export["metadata"]["name"] == f"{FULLNAME}-optscale"
    assert export["spec"]["schedule"] == "45 * * * *" and export["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = pod_spec(export)["containers"]
    assert container["args"] == ["export-optscale"]
    assert {e["name"] for e in container["env"]} == {"KCW_CLICKHOUSE_URL", "KCW_OPTSCALE_CLICKHOUSE_URL"}
    assert not of_kind(manifests("deployment-default"), "CronJob"), "off unless enabled"


def dashboard_maps(name: str) -> list[dict]:
    return [d for d in of_kind(manifests(name), "ConfigMap") if "-dashboard-" in d["metadata"]["name"]]


def test_dashboards_are_configmaps_for_the_grafana_sidecar():
    files = {p.name: json.loads(p.read_text()) for p in (CHART / "dashboards").glob("*.json")}
    assert len(files) >= 2
    for name, labels, folder, namespace in (
            ("cronjob-optscale", {"grafana_dashboard": "1", "team": "finops"}, "FinOps", "monitoring"),
            ("deployment-full", {"grafana_dashboard": "1"}, "Kubernetes costs", NAMESPACE)):
        shipped = {}
        for cm in dashboard_maps(name):
            assert labels.items() <= cm["metadata"]["labels"].items()
            assert cm["metadata"]["annotations"]["grafana_folder"] == folder
            assert cm["metadata"]["namespace"] == namespace
            (key, text), = cm["data"].items()
            shipped[key.removeprefix("kubecost-worker-")] = json.loads(text)
        assert shipped == files, f"{name}: every dashboard, as in the chart's files"
    assert not dashboard_maps("deployment-default")


@pytest.mark.parametrize("name", ["deployment-full", "deployment-no-api"])
def test_existing_secret_is_used_and_no_secret_is_rendered(name):
    docs = manifests(name)
    assert not of_kind(docs, "Secret"), "with existingSecret the chart renders no Secret (not even a hook copy)"
    for doc in workloads(docs):
        for container in all_containers(doc):
            refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})}
            assert refs == {"kcw-credentials"}
        assert "checksum/secret" not in (pod_template(doc)["metadata"].get("annotations") or {})


def test_deployment_without_api():
    docs = manifests("deployment-no-api")
    assert {d["metadata"]["name"] for d in of_kind(docs, "Deployment")} == {f"{FULLNAME}-scheduler",
                                                                             f"{FULLNAME}-consumer"}
    assert [s["metadata"]["name"] for s in of_kind(docs, "Service")] == [f"{FULLNAME}-metrics"]
    assert not of_kind(docs, "PodDisruptionBudget"), "one consumer, PDB not enabled"
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_environment_loads_with_the_projects_config(name):
    """The ConfigMap plus the secret variables is a configuration the worker accepts, and every key is a setting."""
    docs = manifests(name)
    data = one(docs, "ConfigMap", FULLNAME)["data"]
    unknown = set(data) - set(SETTINGS)
    assert not unknown, f"the ConfigMap sets unknown settings: {unknown}"
    assert not set(data) & SECRET_SETTINGS, "credentials belong in the Secret"
    missing = set(SETTINGS) - set(data) - SECRET_SETTINGS - OPTIONAL_SETTINGS
    assert not missing, (f"settings the chart does not expose: {missing}; add each to values.yaml (config), "
                         "templates/_helpers.tpl (configData), values.schema.json and the chart README")
    env = {k: v for k, v in data.items() if k not in ("KCW_THANOS_TOKEN_FILE", "KCW_THANOS_CA_FILE")}
    env.update(KCW_THANOS_URL=data["KCW_THANOS_URL"] or "http://thanos:9090", KCW_CLICKHOUSE_URL=CLICKHOUSE,
               KCW_BROKER_URL=AMQP, KCW_CLUSTER_SECRET="x")
    config = load_config(env, require=("KCW_THANOS_URL", "KCW_CLUSTER_SECRET"))
    assert config.log_format == "json" and config.api_host == "0.0.0.0" and config.data_dir == "/data"
    values = VALUE_SETS[name].get("config", {})
    assert config.api_port == values.get("apiPort", 8080)
    assert config.schedule_minute == values.get("scheduleMinute", 5)
    assert config.retry_delays_seconds == tuple(values.get("retryDelaysSeconds", (30, 120, 600, 1800)))
    # default prices: unset unless given, then exactly the values' numbers
    assert (config.default_cpu_price, config.default_ram_price, config.default_gpu_price) == (
        values.get("defaultCpuPrice"), values.get("defaultRamPrice"), values.get("defaultGpuPrice"))
    # The hook copy for the migration Job holds the same data.
    for job in of_kind(docs, "Job"):
        hook_cm = one(docs, "ConfigMap", pod_spec(job)["containers"][0]["envFrom"][0]["configMapRef"]["name"])
        assert hook_cm["data"] == data


def test_notes_render_and_warn():
    assert "WARNING: config.thanosUrl is empty" in notes("cronjob-default")
    assert "brokerUrl is empty" in notes("deployment-default")
    text = notes("deployment-secrets")
    assert "WARNING" not in text and "chDB" in text
    assert "WARNING" not in notes("deployment-full")


# ---------------------------------------------------------------------------------------------------------------
# The chart's README documents every value
# ---------------------------------------------------------------------------------------------------------------

def leaf_keys(values: Any, prefix: str = "") -> set[str]:
    if isinstance(values, dict) and values and not prefix.endswith(("resources", "Probe", "securityContext",
                                                                     "SecurityContext")):
        keys: set[str] = set()
        for key, value in values.items():
            keys |= leaf_keys(value, f"{prefix}.{key}" if prefix else key)
        return keys
    return {prefix}


def test_chart_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    table = readme.split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", table, flags=re.M)
    assert len(documented) == len(set(documented)), "a value documented twice"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = leaf_keys(values) - set(documented)
    assert not missing, f"values missing from the README table: {sorted(missing)}"
    stale = set(documented) - leaf_keys(values)
    assert not stale, f"README documents values that do not exist: {sorted(stale)}"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"]) and schema["additionalProperties"] is False
    assert schema["properties"]["mode"]["enum"] == ["cronjob", "deployment"]
