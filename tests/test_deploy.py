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


def test_k8s_manifests_have_probes_and_a_valid_policy(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/gateway.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"ConfigMap", "Deployment", "Service"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    policy = tmp_path / "gateway.yaml"
    policy.write_text(kinds["ConfigMap"]["data"]["gateway.yaml"])
    assert load_policy(policy, env={"OPENAI_API_KEY": "k"}).policy.models


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
