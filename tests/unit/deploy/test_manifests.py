"""Kubernetes manifests: render the kustomize overlays without kubectl, validate, check policy.

The renderer below implements the kustomize subset the manifests use (resources, namespace,
labels, images, replicas, strategic-merge patches keyed by kind and name, lists of named items
merged by ``name``). Every rendered document is validated against the Kubernetes OpenAPI schema
with ``kubernetes_validate`` (strict: unknown fields fail).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
K8S_VERSIONS = ("1.30.0", "1.33.0")
ADMIN_PORT = 6060
WORKLOADS = ("Deployment", "Job", "StatefulSet", "DaemonSet")

Doc = dict[str, Any]


def _load_docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic-merge subset: dicts merge, lists of named dicts merge by name, else replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    named = (
        all(isinstance(x, dict) and "name" in x for x in [*base, *patch]) if isinstance(base, list) else False
    )
    if named and isinstance(patch, list):
        out_list = [copy.deepcopy(x) for x in base]
        for item in patch:
            idx = next((i for i, x in enumerate(out_list) if x["name"] == item["name"]), None)
            if idx is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[idx] = _merge(out_list[idx], item)
        return out_list
    return copy.deepcopy(patch)


def _key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def render(directory: Path) -> list[Doc]:
    """Render the kustomization in ``directory`` into a list of documents."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[Doc] = []
    for resource in kust.get("resources", []):
        target = (directory / resource).resolve()
        docs += render(target) if target.is_dir() else _load_docs(target)
    index = {_key(d): i for i, d in enumerate(docs)}
    for patch in kust.get("patches", []):
        for piece in _load_docs(directory / patch["path"]):
            assert _key(piece) in index, f"patch target {_key(piece)} not found"
            i = index[_key(piece)]
            docs[i] = _merge(docs[i], piece)
    for rep in kust.get("replicas", []):
        assert ("Deployment", rep["name"]) in index, rep
        docs[index[("Deployment", rep["name"])]]["spec"]["replicas"] = rep["count"]
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in kust.get("images", [])}
    for doc in docs:
        if "namespace" in kust:
            doc["metadata"]["namespace"] = kust["namespace"]
        for group in kust.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(group["pairs"])
        for container in _containers(doc):
            name = container["image"].split(":")[0]
            if name in images:
                container["image"] = images[name]
    return docs


def _pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] in WORKLOADS:
        spec: Doc = doc["spec"]["template"]["spec"]
        return spec
    return None


def _containers(doc: Doc) -> list[Doc]:
    spec = _pod_spec(doc)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.fixture(scope="module", params=["base", *OVERLAYS])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    name = request.param
    directory = K8S / "base" if name == "base" else K8S / "overlays" / name
    return name, render(directory)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_is_schema_valid(rendered: tuple[str, list[Doc]], version: str) -> None:
    _, docs = rendered
    assert len(docs) >= 15
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_no_duplicate_objects(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    keys = [_key(d) for d in docs]
    assert len(keys) == len(set(keys))


def test_containers_are_hardened_and_sized(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    workloads = [d for d in docs if _pod_spec(d) is not None]
    assert {d["metadata"]["name"] for d in workloads} >= {"api", "routing-blue", "routing-graph-build"}
    for doc in workloads:
        pod = _pod_spec(doc)
        assert pod is not None
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for c in _containers(doc):
            where = f"{doc['metadata']['name']}/{c['name']}"
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"], where
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], where
            assert ":" in c["image"], where
            if doc["kind"] == "Deployment":
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in c, f"{where} lacks {probe}"


def test_serving_pods_follow_the_probe_and_shutdown_rules(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    for doc in (d for d in docs if d["kind"] == "Deployment"):
        pod = doc["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] == 60
        c = pod["containers"][0]
        assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "15"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        startup = c["startupProbe"]
        assert startup["httpGet"]["path"] == "/health/ready"
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # room for a graph load
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["graphs"]["readOnly"] is True
        assert next(v for v in pod["volumes"] if v["name"] == "graphs")["persistentVolumeClaim"]["readOnly"]


def test_admin_port_is_in_no_service_and_only_observability_reaches_it(
    rendered: tuple[str, list[Doc]],
) -> None:
    _, docs = rendered
    for svc in (d for d in docs if d["kind"] == "Service"):
        for port in svc["spec"].get("ports", []):
            assert port["port"] != ADMIN_PORT and port.get("targetPort") not in (ADMIN_PORT, "admin")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    admin_rules = [
        rule
        for p in policies
        for rule in p["spec"].get("ingress", [])
        if any(port["port"] in (ADMIN_PORT, "admin") for port in rule.get("ports", []))
    ]
    assert admin_rules, "no NetworkPolicy rule covers the admin port"
    for rule in admin_rules:
        assert [port["port"] for port in rule["ports"]] == [ADMIN_PORT]
        sources = rule["from"]
        assert sources == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
        ]


def test_no_secret_values_in_the_repository(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    assert not [d for d in docs if d["kind"] == "Secret"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert not any("TOKEN" in k or "PASSWORD" in k for k in config["data"])
    assert "/metrics" in config["data"]["HEXCITY_AUTH_PUBLIC_PATHS"].split(",")


def test_dependencies_are_external_name_services(rendered: tuple[str, list[Doc]]) -> None:
    _, docs = rendered
    external = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Service" and d["spec"].get("type") == "ExternalName"
    }
    assert external == {"redis", "postgres", "nats"}


def test_overlays_differ_in_replicas_and_image() -> None:
    dev, prod = render(K8S / "overlays" / "dev"), render(K8S / "overlays" / "prod")

    def deployment(docs: list[Doc], name: str) -> Doc:
        return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)

    assert deployment(dev, "routing-blue")["spec"]["replicas"] == 1
    assert deployment(prod, "routing-blue")["spec"]["replicas"] == 3
    assert deployment(dev, "api")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":dev")
    assert deployment(prod, "api")["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.1.0")
    assert {d["metadata"]["namespace"] for d in dev} == {"hexcity-dev"}
    hpa = next(d for d in prod if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["minReplicas"] == 3
    routing = deployment(prod, "routing-blue")["spec"]["template"]["spec"]["containers"][0]
    assert routing["resources"]["limits"]["memory"] == "768Mi"


def test_dockerfile_is_multi_stage_non_root_and_has_no_healthcheck() -> None:
    text = (K8S.parent / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2 and "AS builder" in text
    assert "pip install ." in text and "USER 10001" in text and "EXPOSE 5000" in text
    assert "HEALTHCHECK" not in "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert '"hexcity", "serve"' in text
