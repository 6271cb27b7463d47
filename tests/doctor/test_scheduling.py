"""Static scheduling facts (AVAIL008, NET007, PERM006), per resource, on manifests as users
write them (Helm renders, KubeRay samples) and on `kubectl get -o yaml` dumps."""

from __future__ import annotations

import textwrap

from doctor.diagnose import diagnose
from doctor.sources import load_manifests, load_snapshot


def manifests(tmp_path, text: str):
    (tmp_path / "objects.yaml").write_text(textwrap.dedent(text))
    return diagnose(load_manifests([str(tmp_path)]))


def snapshot(tmp_path, text: str):
    (tmp_path / "cluster.yaml").write_text(textwrap.dedent(text))
    return diagnose(load_snapshot(str(tmp_path)))


def findings(result, code: str) -> list:
    return [f for f in result.findings if f.code == code]


# A Helm render (`helm template api ./chart -n video`) of an API that keeps a model cache.
API = """
---
# Source: api/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: video
  labels:
    app.kubernetes.io/name: api
    app.kubernetes.io/instance: api
    app.kubernetes.io/managed-by: Helm
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app.kubernetes.io/name: api, app.kubernetes.io/instance: api}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: api, app.kubernetes.io/instance: api}}
    spec:
      containers:
        - name: api
          image: ghcr.io/example/api:1.4.2
          ports: [{{containerPort: 8000, name: http}}]
          volumeMounts:
            - {{name: cache, mountPath: /cache{read_only}}}
      volumes:
        - name: cache
          persistentVolumeClaim:
            claimName: model-cache
"""

CLAIM = """
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: model-cache, namespace: video}}
spec:
  accessModes: [{modes}]
  resources: {{requests: {{storage: 50Gi}}}}
"""


def api(replicas: int = 1, read_only: bool = False) -> str:
    return API.format(replicas=replicas, read_only=", readOnly: true" if read_only else "")


# --- AVAIL008 -------------------------------------------------------------------------------


def test_claim_not_in_manifests_is_a_warning_naming_the_claim(tmp_path):
    [finding] = findings(manifests(tmp_path, api()), "AVAIL008")
    assert finding.severity == "warning"
    assert finding.resource == "Deployment/video/api"
    assert "PersistentVolumeClaim model-cache" in finding.message
    assert "not in the input" in finding.message
    assert finding.evidence == "Deployment/video/api: volumes[0] cache: claimName model-cache"


def test_claim_in_manifests_is_not_reported(tmp_path):
    result = manifests(tmp_path, api() + CLAIM.format(modes="ReadWriteOnce"))
    assert findings(result, "AVAIL008") == []


def test_claim_in_another_namespace_does_not_count_and_is_named(tmp_path):
    other = CLAIM.format(modes="ReadWriteOnce").replace("namespace: video", "namespace: default")
    [finding] = findings(manifests(tmp_path, api() + other), "AVAIL008")
    assert finding.evidence.endswith("; a claim model-cache is in namespace default")


# Bitnami-style Redis StatefulSet; a backup Job mounts the first replica's claim by name.
REDIS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, namespace: video}
spec:
  replicas: 2
  serviceName: redis-headless
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers:
        - name: redis
          image: redis:7.2
          args: ["--appendonly", "yes"]
          volumeMounts: [{name: redis-data, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: redis-data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 8Gi}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: redis-backup, namespace: video}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: backup
          image: redis:7.2
          command: ["sh", "-c", "cp /data/appendonly.aof /backup/"]
          volumeMounts: [{name: data, mountPath: /data, readOnly: true}]
      volumes:
        - name: data
          persistentVolumeClaim: {claimName: redis-data-redis-0}
"""


def test_statefulset_claims_exist_implicitly(tmp_path):
    result = manifests(tmp_path, REDIS)
    assert findings(result, "AVAIL008") == []
    past_the_replicas = REDIS.replace("redis-data-redis-0", "redis-data-cache-0")
    [finding] = findings(manifests(tmp_path, past_the_replicas), "AVAIL008")
    assert finding.resource == "Job/video/redis-backup"


# KubeRay's ray-cluster.complete sample, head and workers mounting a shared claim.
RAY_CLUSTER = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-complete, namespace: ray}
spec:
  rayVersion: "2.41.0"
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.41.0
            volumeMounts: [{mountPath: /mnt/shared, name: shared}]
        volumes:
          - name: shared
            persistentVolumeClaim: {claimName: ray-shared}
  workerGroupSpecs:
    - groupName: small-group
      replicas: 2
      minReplicas: 1
      maxReplicas: 5
      rayStartParams: {}
      template:
        spec:
          containers:
            - name: ray-worker
              image: rayproject/ray:2.41.0
              volumeMounts: [{mountPath: /mnt/shared, name: shared}]
          volumes:
            - name: shared
              persistentVolumeClaim: {claimName: ray-shared}
"""


def test_ray_groups_mounting_a_missing_claim_are_one_finding(tmp_path):
    [finding] = findings(manifests(tmp_path, RAY_CLUSTER), "AVAIL008")
    assert finding.resource == "RayCluster/ray/raycluster-complete"
    assert "(head group)" in finding.message and "(small-group group)" in finding.message
    assert "claimName ray-shared" in finding.evidence


def dump(*items: str) -> str:
    body = "".join(textwrap.indent(textwrap.dedent(item).strip(), "  ") + "\n" for item in items)
    return "apiVersion: v1\nkind: List\nitems:\n" + body


DEPLOYMENT_ITEM = """
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: api, namespace: video, uid: 4c1e}
  spec:
    replicas: 1
    selector: {matchLabels: {app: api}}
    template:
      metadata: {labels: {app: api}}
      spec:
        containers: [{name: api, image: "ghcr.io/example/api:1.4.2"}]
        volumes:
          - name: cache
            persistentVolumeClaim: {claimName: model-cache}
  status: {replicas: 1, unavailableReplicas: 1}
"""

OTHER_CLAIM_ITEM = """
- apiVersion: v1
  kind: PersistentVolumeClaim
  metadata: {name: outputs, namespace: video}
  spec: {accessModes: [ReadWriteMany], resources: {requests: {storage: 1Ti}}}
  status: {phase: Bound}
"""


def test_claim_missing_from_a_dump_that_lists_claims_is_an_error(tmp_path):
    result = snapshot(tmp_path, dump(DEPLOYMENT_ITEM, OTHER_CLAIM_ITEM))
    [finding] = findings(result, "AVAIL008")
    assert finding.severity == "error"
    assert finding.resource == "Deployment/video/api"
    assert "does not exist in namespace video: its pods stay Pending" in finding.message


def test_dump_without_claims_of_the_namespace_only_warns(tmp_path):
    [finding] = findings(snapshot(tmp_path, dump(DEPLOYMENT_ITEM)), "AVAIL008")
    assert finding.severity == "warning"
    assert "not in the input" in finding.message


# --- NET007 ---------------------------------------------------------------------------------

SERVICE = """
---
# Source: api/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app.kubernetes.io/managed-by: Helm}}
spec:
  type: ClusterIP
  selector: {selector}
  ports: [{{port: 80, targetPort: http, name: http}}]
"""


def service(selector: str, name: str = "api", namespace: str = "video") -> str:
    return SERVICE.format(name=name, namespace=namespace, selector=selector)


def test_selector_matching_no_template_is_a_warning_with_the_selector(tmp_path):
    text = api() + service("{app.kubernetes.io/name: api-server, app.kubernetes.io/instance: api}")
    [finding] = findings(manifests(tmp_path, text), "NET007")
    assert finding.severity == "warning"
    assert finding.resource == "Service/video/api"
    assert "selects no pod template in the input" in finding.message
    assert finding.evidence.startswith(
        "spec.selector: {'app.kubernetes.io/name': 'api-server', "
        "'app.kubernetes.io/instance': 'api'}; pod templates here: Deployment/video/api"
    )


def test_selector_matching_the_template_is_quiet(tmp_path):
    text = api() + service("{app.kubernetes.io/name: api, app.kubernetes.io/instance: api}")
    assert findings(manifests(tmp_path, text), "NET007") == []


def test_workload_in_another_namespace_does_not_serve_the_service(tmp_path):
    text = api() + service("{app.kubernetes.io/name: api}", namespace="default")
    [finding] = findings(manifests(tmp_path, text), "NET007")
    assert finding.resource == "Service/default/api"


def test_kuberay_labels_the_operator_sets_are_matched(tmp_path):
    # ray.io/group is the group name ("headgroup" for the head), as KubeRay labels its pods.
    head = service("{ray.io/cluster: raycluster-complete, ray.io/node-type: head}", "head", "ray")
    group = service("{ray.io/cluster: raycluster-complete, ray.io/group: small-group}", "w", "ray")
    result = manifests(tmp_path, RAY_CLUSTER + head + group)
    assert findings(result, "NET007") == []
    wrong = service("{ray.io/cluster: raycluster-sample, ray.io/node-type: head}", "head", "ray")
    [finding] = findings(manifests(tmp_path, RAY_CLUSTER + wrong), "NET007")
    assert finding.resource == "Service/ray/head"


# From KubeRay's ray-service.custom-serve-service sample: a Service of the user's own that
# selects the pods RayService marks ray.io/serve=true at run time.
RAY_SERVICE = """
apiVersion: ray.io/v1
kind: RayService
metadata: {name: rayservice-sample, namespace: ray}
spec:
  serveConfigV2: |
    applications:
      - name: fruit_app
        import_path: fruit.deployment_graph
  rayClusterConfig:
    rayVersion: "2.41.0"
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers: [{name: ray-head, image: "rayproject/ray:2.41.0"}]
"""


def test_labels_kuberay_sets_at_run_time_are_not_judged(tmp_path):
    serve = service("{ray.io/serve: 'true', ray.io/node-type: head}", "custom-serve", "ray")
    assert findings(manifests(tmp_path, RAY_SERVICE + serve), "NET007") == []


def test_statefulset_pod_name_and_cronjob_templates_are_matched(tmp_path):
    per_pod = service("{statefulset.kubernetes.io/pod-name: redis-1}", "redis-1")
    cronjob = """
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: reaper, namespace: video}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {app: reaper}}
        spec:
          restartPolicy: OnFailure
          containers: [{name: reaper, image: "ghcr.io/example/api:1.4.2"}]
"""
    metrics = service("{app: reaper}", "reaper-metrics")
    result = manifests(tmp_path, REDIS + per_pod + cronjob + metrics)
    assert findings(result, "NET007") == []
    past_the_replicas = service("{statefulset.kubernetes.io/pod-name: redis-2}", "redis-2")
    [finding] = findings(manifests(tmp_path, REDIS + past_the_replicas), "NET007")
    assert finding.resource == "Service/video/redis-2"


def test_services_without_selector_external_or_owned_are_skipped(tmp_path):
    text = """
apiVersion: v1
kind: Service
metadata: {name: external-redis, namespace: video}
spec: {type: ExternalName, externalName: redis.example.com, selector: {app: redis}}
---
apiVersion: v1
kind: Service
metadata: {name: manual, namespace: video}
spec: {ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata:
  name: raycluster-complete-head-svc
  namespace: video
  ownerReferences: [{apiVersion: ray.io/v1, kind: RayCluster, name: raycluster-complete}]
spec: {selector: {ray.io/cluster: raycluster-complete, ray.io/node-type: head}}
"""
    assert findings(manifests(tmp_path, text), "NET007") == []


def test_a_cluster_read_leaves_services_to_net004(tmp_path):
    item = """
- apiVersion: v1
  kind: Service
  metadata: {name: api, namespace: video}
  spec: {selector: {app: api-server}, ports: [{port: 80}]}
"""
    assert findings(snapshot(tmp_path, dump(DEPLOYMENT_ITEM, item)), "NET007") == []


# --- PERM006 --------------------------------------------------------------------------------


def test_read_write_once_claim_of_several_replicas_warns_unless_one_node(tmp_path):
    result = manifests(tmp_path, api(replicas=3) + CLAIM.format(modes="ReadWriteOnce"))
    [finding] = findings(result, "PERM006")
    assert finding.severity == "warning"
    assert finding.resource == "PersistentVolumeClaim/video/model-cache"
    assert "Deployment/video/api (3 pods)" in finding.message
    assert "unless all run on one node" in finding.message
    assert finding.evidence == (
        "accessModes: ['ReadWriteOnce']; Deployment/video/api: volumes[0] cache: "
        "claimName model-cache"
    )


def test_one_pod_on_a_read_write_once_claim_is_quiet(tmp_path):
    result = manifests(tmp_path, api(replicas=1) + CLAIM.format(modes="ReadWriteOnce"))
    assert findings(result, "PERM006") == []


def test_read_write_many_claim_is_quiet(tmp_path):
    result = manifests(tmp_path, api(replicas=3) + CLAIM.format(modes="ReadWriteMany"))
    assert findings(result, "PERM006") == []


def test_read_write_once_pod_claim_of_two_workloads_is_an_error(tmp_path):
    worker = api().replace("name: api\n  namespace", "name: worker\n  namespace")
    text = api() + worker + CLAIM.format(modes="ReadWriteOncePod")
    [finding] = findings(manifests(tmp_path, text), "PERM006")
    assert finding.severity == "error"
    assert "ReadWriteOncePod but 2 pods mount it" in finding.message
    assert "Deployment/video/api (1 pods), Deployment/video/worker (1 pods)" in finding.message


def test_read_only_many_claim_mounted_read_write_warns(tmp_path):
    result = manifests(tmp_path, api(replicas=2) + CLAIM.format(modes="ReadOnlyMany"))
    [finding] = findings(result, "PERM006")
    assert finding.severity == "warning"
    assert "ReadOnlyMany but Deployment/video/api mounts it read-write" in finding.message
    assert "readOnly: true" in finding.fix
    read_only = manifests(
        tmp_path, api(replicas=2, read_only=True) + CLAIM.format(modes="ReadOnlyMany")
    )
    assert findings(read_only, "PERM006") == []


def test_statefulset_claims_per_pod_are_not_shared(tmp_path):
    assert findings(manifests(tmp_path, REDIS), "PERM006") == []


def test_field_report_claim_is_reported_once_by_perm006(results):
    before = results["before"].findings
    claim = "PersistentVolumeClaim/mochi-video-gen/video-storage"
    assert [f.code for f in before if f.resource == claim] == ["PERM006"]
