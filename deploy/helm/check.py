"""Renders the elevate chart with Helm's own engine (helm-python-sdk binds the Helm Go SDK) for
each way people run it, validates every manifest against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors), checks what the chart promises
(probes, non-root, secret references, one replica on SQLite) and that bad settings are refused,
and writes the default config file out so that `elevate check` can read it.

Run by scripts/helm-check, which installs the two packages into .helm-venv.
"""

import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

CHART = Path(__file__).resolve().parent / "elevate"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas known.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
# Kinds whose schemas are CRDs, not in Kubernetes' OpenAPI: checked by shape below instead.
CRD_KINDS = {"ServiceMonitor"}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def render(values, name="elevate"):
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=name, namespace="elevate", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def validate(docs, case):
    for doc in docs:
        kind = doc.get("kind")
        if kind in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                failures.append(f"{case}: {kind} {doc['metadata']['name']} is invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
            except kubernetes_validate.SchemaNotFoundError as e:
                failures.append(f"{case}: no schema for {kind} in Kubernetes {version}: {e}")


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def container(docs):
    return by_kind(docs)["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]


def refused(values, needle, case):
    try:
        render(values)
    except helm.HelmError as e:
        check(needle in str(e), f"{case}: refused, but the message does not say `{needle}`: {e}")
        return
    failures.append(f"{case}: rendered although it should be refused")


def main():
    lint = helm.lint(str(CHART), strict=True, kube_version="1.25.0")
    # Helm's severities: 1 info, 2 warning, 3 error.
    messages = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2]
    check(not messages and not lint.get("errors"), f"helm lint --strict: {messages} {lint.get('errors')}")

    # 1. Defaults: one replica on SQLite with its volume.
    docs = render({})
    validate(docs, "defaults")
    kinds = by_kind(docs)
    check(set(kinds) == {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"}, f"defaults: kinds {sorted(kinds)}")
    dep = kinds["Deployment"][0]
    check(dep["spec"]["replicas"] == 1, "defaults: one replica")
    check(dep["spec"]["strategy"]["type"] == "Recreate", "defaults: SQLite pods are replaced, not overlapped")
    pod = dep["spec"]["template"]["spec"]
    c = container(docs)
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe on /healthz")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe on /readyz")
    check(pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001, "runs as 10001, non-root")
    check(c["securityContext"]["readOnlyRootFilesystem"] is True, "read-only root filesystem")
    check(c["securityContext"]["capabilities"]["drop"] == ["ALL"], "no capabilities")
    claim = [v for v in pod["volumes"] if v["name"] == "data"][0]
    check(claim["persistentVolumeClaim"]["claimName"] == kinds["PersistentVolumeClaim"][0]["metadata"]["name"], "the data volume is the chart's claim")
    check(not any(e["name"] == "ELEVATE_DATABASE_URL" for e in c["env"]), "SQLite: no database URL from a Secret")
    Path(sys.argv[1] if len(sys.argv) > 1 else "elevate.toml").write_text(kinds["ConfigMap"][0]["data"]["elevate.toml"])

    # 2. PostgreSQL with three replicas, secrets and IRSA, metrics scraped.
    values = {
        "replicaCount": 3,
        "database": {"mode": "postgres", "postgres": {"urlSecret": {"name": "elevate-db", "key": "url"}}},
        "secrets": {"existingSecret": "elevate-secrets"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/elevate"}},
        "env": [{"name": "AWS_REGION", "value": "eu-west-1"}],
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    }
    docs = render(values, name="prod")
    validate(docs, "postgres")
    kinds = by_kind(docs)
    check("PersistentVolumeClaim" not in kinds, "postgres: no volume claim")
    dep = kinds["Deployment"][0]
    check(dep["spec"]["replicas"] == 3 and dep["spec"]["strategy"]["type"] == "RollingUpdate", "postgres: three replicas, rolling")
    c = container(docs)
    url = [e for e in c["env"] if e["name"] == "ELEVATE_DATABASE_URL"]
    check(url and url[0]["valueFrom"]["secretKeyRef"] == {"name": "elevate-db", "key": "url"}, "postgres: the URL comes from its Secret")
    check(c["envFrom"] == [{"secretRef": {"name": "elevate-secrets"}}], "secrets: the existing Secret's keys become the environment")
    check(any(e == {"name": "AWS_REGION", "value": "eu-west-1"} for e in c["env"]), "extra env is passed")
    sa = kinds["ServiceAccount"][0]
    check(sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/elevate"), "IRSA annotation on the service account")
    check(dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"], "the pod uses the service account")
    sm = kinds.get("ServiceMonitor", [{}])[0]
    check(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor rendered when enabled")
    check(sm.get("spec", {}).get("endpoints", [{}])[0].get("path") == "/metrics", "ServiceMonitor scrapes /metrics")
    check(sm.get("spec", {}).get("selector", {}).get("matchLabels") == kinds["Service"][0]["spec"]["selector"], "ServiceMonitor selects the Service")

    # 3. An existing claim and config map.
    docs = render({"database": {"sqlite": {"existingClaim": "old-data"}}, "existingConfigMap": "my-config"})
    validate(docs, "existing")
    kinds = by_kind(docs)
    check("PersistentVolumeClaim" not in kinds and "ConfigMap" not in kinds, "existing claim and config map are used, not made")

    # 4. What is refused.
    refused({"replicaCount": 2}, "one replica", "two replicas on SQLite")
    refused({"database": {"mode": "postgres"}}, "urlSecret", "postgres without its Secret")
    refused({"database": {"mode": "mysql"}}, "sqlite or postgres", "an unknown database mode")

    if failures:
        print("helm chart check failed:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print(f"deploy/helm/elevate: rendered 4 ways with Helm {helm.helm_sdk_version()}, valid for Kubernetes {', '.join(KUBE_VERSIONS)}, 3 bad settings refused")


if __name__ == "__main__":
    main()
