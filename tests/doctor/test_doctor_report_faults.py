"""The field report's configuration before its fixes, after correct fixes, and a KubeRay
relative with other names."""

from __future__ import annotations


def codes(result) -> set[str]:
    return {f.code for f in result.findings}


def find(result, code: str, resource_part: str = "", evidence_part: str = ""):
    return [
        f
        for f in result.findings
        if f.code == code and resource_part in f.resource and evidence_part in f.evidence
    ]


def test_every_fault_of_the_report_is_found(results):
    before = results["before"]
    # Hard-coded IPs: 192.168.0.35 (worker, ConfigMap), 192.168.0.201 (hostAliases)
    assert find(before, "NET001", "Deployment/mochi-video-gen/ray-worker", "192.168.0.35:6380")
    assert find(before, "NET001", "ConfigMap/mochi-video-gen/mochi-config", "192.168.0.35")
    assert find(before, "NET001", "ray-worker", "192.168.0.201")
    # Inconsistent Service names (redis-service vs redis)
    assert find(before, "NET002", "mochi-config", "redis-service")
    # Init container health check against a port the Service does not expose
    assert find(before, "NET003", "backend", "ray-head-service 6379")
    # The invalid `ray start` flag
    assert find(before, "RAY001", "ray-head", "--ray-client-server-host")
    # ray[default] instead of ray[client] in the backend image
    assert find(before, "RAY002", "backend", "ray[default]")
    # Permission denied: '/data' for the ray user
    assert find(before, "PERM001", "ray-worker", "uid 1000")
    # 32Gi worker with a 16 GB object store: OOM (memory model)
    assert find(before, "MEM001", "ray-worker", "16000000000")
    # The 128Gi request quota
    assert find(before, "QUOTA002", "mochi-quota", "128Gi")
    # The registry serving cached images under a reused tag
    assert find(before, "SEC006", "backend", "latest")


def test_before_config_fails_the_run(results):
    assert results["before"].counts()["error"] >= 10


def test_correctly_fixed_config_is_clean(results):
    assert results["after"].findings == []
    assert results["after+healthy"].findings == []


def test_kuberay_variant_with_other_names(results):
    kuberay = results["kuberay"]
    assert find(kuberay, "RAY001", "RayCluster/video/mochi", "--ray-client-server-host")
    assert find(kuberay, "MEM001", "RayCluster/video/mochi", "40Gi")
    assert find(kuberay, "NET002", "Deployment/video/api", "cache.video.svc.cluster.local")
    # The head Service KubeRay creates (mochi-head-svc) is known: no finding for it.
    assert not [f for f in kuberay.findings if "mochi-head-svc" in f.evidence]
    assert find(kuberay, "RAY003", "api", "rayproject/ray:2.9.0")


def test_findings_carry_the_contract_fields(results):
    for finding in results["before"].findings:
        data = finding.to_dict()
        assert data["runbook"] == f"runbooks/{finding.code}.md"
        assert data["resource"].count("/") >= 2
        assert data["evidence"]
        assert data["severity"] in ("error", "warning", "info")
