"""What can be checked of the Dockerfile and deploy/ without a Docker engine."""

from pathlib import Path

import yaml

from gateway.policy.loader import load_policy

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_runs_non_root_with_healthcheck_and_policy_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'VOLUME ["/etc/gateway/policies"]' in text
    # local models baked in at build time, before the unprivileged user takes over
    pull = text.index("RUN gateway models pull")
    assert "GATEWAY_MODEL_CACHE=" in text and pull < text.index("USER 10001")
    for line in text.splitlines():  # every COPY source exists in the repo
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_image_policy_is_valid_and_opt_in_for_open_binding() -> None:
    loaded = load_policy(ROOT / "deploy/policies", env={})
    assert not loaded.policy.may_bind("0.0.0.0")
    opened = load_policy(ROOT / "deploy/policies", env={"GATEWAY_ALLOW_UNAUTHENTICATED": "true"})
    assert opened.policy.may_bind("0.0.0.0")


def test_k8s_manifests_run_as_applied(tmp_path: Path) -> None:
    """The pods start as shipped: the policy's env comes from the Secret in the same file
    and has a gateway key, so binding 0.0.0.0 is allowed (no crash loop)."""
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/gateway.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Secret", "ConfigMap", "Deployment", "Service"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    secret = kinds["Secret"]["stringData"]
    env = {}
    for var in container["env"]:
        ref = var["valueFrom"]["secretKeyRef"]
        assert ref["name"] == kinds["Secret"]["metadata"]["name"]
        env[var["name"]] = secret[ref["key"]]
    policy = tmp_path / "gateway.yaml"
    policy.write_text(kinds["ConfigMap"]["data"]["gateway.yaml"])
    loaded = load_policy(policy, env=env).policy
    assert loaded.models and loaded.auth.keys and loaded.may_bind("0.0.0.0")
    host = container["args"][container["args"].index("--host") + 1]
    assert host == "0.0.0.0"
    grace = kinds["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 35  # drain (25 s) + uvicorn's cut-off (30 s) + a margin


def test_compose_grafana_anonymous_users_are_viewers_and_prometheus_has_the_metrics_key() -> None:
    import hashlib

    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yaml").read_text())
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "Viewer") == "Viewer"
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    key = scrape["scrape_configs"][0]["authorization"]["credentials"]
    gateway_env = compose["services"]["gateway"]["environment"]
    assert gateway_env["GATEWAY_METRICS_KEY_SHA256"] == hashlib.sha256(key.encode()).hexdigest()


def test_every_data_file_of_the_package_is_installed_not_only_in_a_checkout() -> None:
    """A non-editable install (the Docker image) gets only what package-data names."""
    import tomllib

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["gateway"]
    package = ROOT / "gateway"
    covered = {path for pattern in globs for path in package.glob(pattern)}
    data = {
        path
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    assert data and data <= covered, sorted(str(p.relative_to(package)) for p in data - covered)
