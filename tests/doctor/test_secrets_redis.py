"""SEC005 judges values, not only names, and finds secrets where they hide; SEC003 reads a Redis
server as Redis does; REDIS005 finds an append-only file that a restart loses; REDIS007 a memory
limit with no maxmemory below it. Inputs are
shaped like KubeRay's samples, the kubernetes/examples manifests and Helm renders."""

from __future__ import annotations

import textwrap

from doctor.checks.redis_server import redis_bytes
from doctor.diagnose import diagnose
from doctor.sources import load_manifests


def findings(tmp_path, text: str, code: str) -> list:
    (tmp_path / "objects.yaml").write_text(textwrap.dedent(text))
    return [f for f in diagnose(load_manifests([str(tmp_path)])).findings if f.code == code]


def summary(found) -> list[tuple[str, str, str]]:
    return sorted((f.severity, f.resource, f.evidence) for f in found)


def deployment(name: str, container: str, volumes: str = "[]") -> str:
    """A Deployment of one container (YAML indented for the container list)."""
    body = textwrap.indent(textwrap.dedent(container).strip(), " " * 8)
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: ml}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
{body}
      volumes: {volumes}
"""


# KubeRay's ray-cluster.external-redis.yaml: the Redis half, as published.
EXTERNAL_REDIS = """
kind: ConfigMap
apiVersion: v1
metadata:
  name: redis-config
  labels:
    app: redis
data:
  redis.conf: |-
    dir /data
    port 6379
    bind 0.0.0.0
    appendonly yes
    protected-mode no
    requirepass 5241590000000000
    pidfile /data/redis-6379.pid
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: redis
  labels:
    app: redis
spec:
  replicas: 1
  selector:
    matchLabels:
      app: redis
  template:
    metadata:
      labels:
        app: redis
    spec:
      containers:
      - name: redis
        image: redis:7.4.0
        command:
        - "sh"
        - "-c"
        - "redis-server /usr/local/etc/redis/redis.conf"
        ports:
        - containerPort: 6379
        volumeMounts:
        - name: config
          mountPath: /usr/local/etc/redis/redis.conf
          subPath: redis.conf
      volumes:
      - name: config
        configMap:
          name: redis-config
"""


# -- SEC005 ------------------------------------------------------------------------------------
def test_requirepass_line_in_a_config_map_is_a_masked_secret(tmp_path):
    found = findings(tmp_path, EXTERNAL_REDIS, "SEC005")
    assert summary(found) == [
        ("error", "ConfigMap/default/redis-config", "requirepass: 52*** (16 chars)")
    ]
    assert "ConfigMap key redis.conf" in found[0].message
    assert "5241590000000000" not in found[0].message + found[0].evidence


def test_flags_numbers_paths_references_and_secret_names_are_not_secrets(tmp_path):
    container = """
    - name: ray-head
      image: rayproject/ray:2.41.0
      env:
      - {name: TOKENIZERS_PARALLELISM, value: "false"}
      - {name: RAY_ENABLE_K8S_TOKEN_AUTH, value: "true"}
      - {name: ACCESS_TOKEN_EXPIRE_MINUTES, value: "30"}
      - {name: API_KEY, value: "12345"}
      - {name: HF_TOKEN_PATH, value: /var/run/secrets/hf/token}
      - {name: AWS_WEB_IDENTITY_TOKEN_FILE, value: /var/run/secrets/eks.amazonaws.com/token}
      - {name: GOOGLE_APPLICATION_CREDENTIALS, value: /var/secrets/google/key.json}
      - {name: SECRET_NAME, value: hf-token}
      - {name: DB_SECRET, value: postgres-credentials}
      - {name: OPENAI_API_KEY, value: ""}
      - {name: REDIS_PASSWORD, value: "$(REDIS_PASSWORD_FROM_SECRET)"}
      - name: DATABASE_URL
        value: postgresql://ray:$(POSTGRES_PASSWORD)@postgres:5432/results
    """
    secret = """
---
apiVersion: v1
kind: Secret
metadata: {name: postgres-credentials, namespace: ml}
stringData: {password: from-the-secret}
"""
    assert findings(tmp_path, deployment("head", container) + secret, "SEC005") == []


def test_placeholders_are_info_and_shown(tmp_path):
    container = """
    - name: mysql
      image: mysql:8.0
      env:
      - name: MYSQL_ROOT_PASSWORD
        # change this
        value: yourpassword
      - {name: HF_TOKEN, value: "<your-hf-token>"}
      - {name: OPENAI_API_KEY, value: YOUR_API_KEY}
      - {name: REDIS_URL, value: "redis://:changeme@redis:6379/0"}
    """
    found = findings(tmp_path, deployment("mysql", container), "SEC005")
    assert summary(found) == [
        ("info", "Deployment/ml/mysql", "HF_TOKEN=<your-hf-token>"),
        ("info", "Deployment/ml/mysql", "MYSQL_ROOT_PASSWORD=yourpassword"),
        ("info", "Deployment/ml/mysql", "OPENAI_API_KEY=YOUR_API_KEY"),
        ("info", "Deployment/ml/mysql", "REDIS_URL=changeme"),
    ]
    assert all("placeholder" in f.message for f in found)


def test_real_values_in_env_are_errors_and_masked(tmp_path):
    container = """
    - name: minio
      image: minio/minio:RELEASE.2024-01-16T16-07-38Z
      args: [server, /data]
      env:
      - {name: MINIO_ACCESS_KEY, value: "minio"}
      - {name: MINIO_SECRET_KEY, value: "minio123"}
      - {name: REDIS_PASSWORD, value: "5241590000000000"}
    """
    found = findings(tmp_path, deployment("minio", container), "SEC005")
    # The access key names the account (like a user name); the secret key is the secret.
    assert summary(found) == [
        ("error", "Deployment/ml/minio", "MINIO_SECRET_KEY=mi*** (8 chars)"),
        ("error", "Deployment/ml/minio", "REDIS_PASSWORD=52*** (16 chars)"),
    ]


def test_passwords_on_command_lines(tmp_path):
    server = """
    - name: redis
      image: redis:7.2
      args: ["--requirepass", "s3cr3t-pass", "--appendonly", "no"]
    """
    client = """
    - name: flush
      image: redis:7.2
      command: ["sh", "-c", "until redis-cli -h redis -a Sup3rSecret ping; do sleep 1; done"]
    - name: loader
      image: registry.example.com/loader:1.4
      args: ["--password=hunter2hunter2", "--token", "tok_9f8e7d6c5b4a", "--token-file", "/t"]
    """
    text = deployment("redis", server) + "---" + deployment("loader", client)
    assert summary(findings(tmp_path, text, "SEC005")) == [
        ("error", "Deployment/ml/loader", "--password hu*** (14 chars)"),
        ("error", "Deployment/ml/loader", "--token to*** (16 chars)"),
        ("error", "Deployment/ml/loader", "-a Su*** (11 chars)"),
        ("error", "Deployment/ml/redis", "--requirepass s3*** (11 chars)"),
    ]


def test_redis_cli_in_a_config_map_script_and_code_that_only_reads_a_token(tmp_path):
    text = """
apiVersion: v1
kind: ConfigMap
metadata: {name: scripts, namespace: ml}
data:
  wait-for-redis.sh: |
    #!/bin/sh
    until redis-cli -h redis-master -a 'Wq9!xT2#' ping | grep -q PONG; do
      sleep 2
    done
  serve.py: |
    import os
    token = os.environ["HF_TOKEN"]
    password = args.password
    api_key = "sk-live-51HxQk2eZvKYlo2C"
"""
    found = findings(tmp_path, text, "SEC005")
    assert summary(found) == [
        ("error", "ConfigMap/ml/scripts", "-a Wq*** (8 chars)"),
        ("error", "ConfigMap/ml/scripts", "api_key: sk*** (24 chars)"),
    ]


def test_runtime_env_of_rayjob_and_serve_config_of_rayservice(tmp_path):
    text = """
apiVersion: ray.io/v1
kind: RayJob
metadata: {name: fine-tune, namespace: ml}
spec:
  entrypoint: python train.py --wandb-api-key 7d1c0a9e4b3f2e1d
  runtimeEnvYAML: |
    pip:
      - transformers==4.44.0
    env_vars:
      HF_TOKEN: hf_kXyZaBcDeFgHiJkLmNoPqRsT
      TOKENIZERS_PARALLELISM: "false"
  rayClusterSpec:
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.41.0
            env:
            - {name: WANDB_API_KEY, value: 7d1c0a9e4b3f2e1d}
---
apiVersion: ray.io/v1
kind: RayService
metadata: {name: llm, namespace: ml}
spec:
  serveConfigV2: |
    applications:
      - name: llm
        import_path: serve_llm:app
        runtime_env:
          env_vars:
            HUGGING_FACE_HUB_TOKEN: hf_QwErTyUiOpAsDfGhJkLz
            MODEL_ID: meta-llama/Llama-3.1-8B-Instruct
  rayClusterConfig:
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - {name: ray-head, image: rayproject/ray:2.41.0}
"""
    found = findings(tmp_path, text, "SEC005")
    assert summary(found) == [
        ("error", "RayJob/ml/fine-tune", "--wandb-api-key 7d*** (16 chars)"),
        ("error", "RayJob/ml/fine-tune", "HF_TOKEN=hf*** (27 chars)"),
        ("error", "RayJob/ml/fine-tune", "WANDB_API_KEY=7d*** (16 chars)"),
        ("error", "RayService/ml/llm", "HUGGING_FACE_HUB_TOKEN=hf*** (23 chars)"),
    ]
    assert any("runtimeEnvYAML env_vars" in f.message for f in found)


# -- SEC003 ------------------------------------------------------------------------------------
SIDECAR = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-redis-sidecar}
spec:
  gcsFaultToleranceOptions:
    redisAddress: "127.0.0.1:6380"
  headGroupSpec:
    rayStartParams: {num-cpus: "0"}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
        - name: redis
          image: redis:7.4.0
          command: ["sh", "-c", "redis-server /usr/local/etc/redis/redis.conf"]
          volumeMounts:
          - {name: config, mountPath: /usr/local/etc/redis/redis.conf, subPath: redis.conf}
          - {name: redis-data, mountPath: /data}
        volumes:
        - name: config
          configMap: {name: redis-config}
        - name: redis-data
          persistentVolumeClaim: {claimName: redis-data}
---
kind: ConfigMap
apiVersion: v1
metadata: {name: redis-config}
data:
  redis.conf: |-
    dir /data
    port 6380
    bind 127.0.0.1
    protected-mode no
    pidfile /data/redis-6380.pid
"""


def test_loopback_only_redis_is_not_exposed(tmp_path):
    assert findings(tmp_path, SIDECAR, "SEC003") == []
    loopback_args = """
    - name: redis
      image: redis:7.2
      args: ["--bind", "127.0.0.1", "::1", "--port", "6380"]
    """
    assert findings(tmp_path, deployment("cache", loopback_args), "SEC003") == []


def test_the_same_sidecar_bound_to_every_interface_is_reported(tmp_path):
    found = findings(tmp_path, SIDECAR.replace("bind 127.0.0.1", "bind 0.0.0.0"), "SEC003")
    assert summary(found) == [
        (
            "error",
            "RayCluster/default/raycluster-redis-sidecar",
            "command: sh -c redis-server /usr/local/etc/redis/redis.conf; config "
            "/usr/local/etc/redis/redis.conf; no requirepass",
        )
    ]


def test_password_from_a_secret_reference_or_a_secret_mounted_config(tmp_path):
    from_env = """
    - name: redis
      image: redis:7.2
      args: ["--requirepass", "$(REDIS_PASSWORD)", "--appendonly", "no"]
      env:
      - name: REDIS_PASSWORD
        valueFrom: {secretKeyRef: {name: redis-auth, key: password}}
    """
    from_secret_file = """
    - name: redis
      image: redis:7.2
      command: ["redis-server", "/etc/redis/redis.conf"]
      volumeMounts: [{name: conf, mountPath: /etc/redis}]
    """
    volumes = "[{name: conf, secret: {secretName: redis-conf}}]"
    assert findings(tmp_path, deployment("a", from_env), "SEC003") == []
    # The Secret is not in the input: nothing can be said about its redis.conf.
    assert findings(tmp_path, deployment("b", from_secret_file, volumes), "SEC003") == []
    secret = """
---
apiVersion: v1
kind: Secret
metadata: {name: redis-conf, namespace: ml}
stringData:
  redis.conf: |
    appendonly no
    %s
"""
    text = deployment("b", from_secret_file, volumes) + secret
    assert findings(tmp_path, text % "requirepass kept-in-a-secret", "SEC003") == []
    assert summary(findings(tmp_path, text % "# no password", "SEC003")) == [
        (
            "error",
            "Deployment/ml/b",
            "command: redis-server /etc/redis/redis.conf; config /etc/redis/redis.conf; "
            "no requirepass",
        )
    ]


def test_official_image_ignores_env_redis_password(tmp_path):
    container = """
    - name: redis
      image: redis:7.2
      env:
      - name: REDIS_PASSWORD
        valueFrom: {secretKeyRef: {name: redis-auth, key: password}}
    """
    found = findings(tmp_path, deployment("redis", container), "SEC003")
    assert summary(found) == [
        ("error", "Deployment/ml/redis", "command: (image default); no requirepass")
    ]
    assert "ignores env REDIS_PASSWORD" in found[0].message


def test_bitnami_is_open_only_with_allow_empty_password(tmp_path):
    # The shape of a `helm template bitnami/redis --set auth.enabled=false` master.
    open_master = """
    - name: redis
      image: docker.io/bitnami/redis:7.2.4-debian-12-r9
      command: [/bin/bash]
      args: [-c, /opt/bitnami/scripts/start-scripts/start-master.sh]
      env:
      - {name: REDIS_REPLICATION_MODE, value: master}
      - {name: ALLOW_EMPTY_PASSWORD, value: "yes"}
      - {name: REDIS_PORT, value: "6379"}
      volumeMounts: [{name: redis-data, mountPath: /data}]
    """
    found = findings(tmp_path, deployment("redis-master", open_master), "SEC003")
    assert summary(found) == [
        ("error", "Deployment/ml/redis-master", "ALLOW_EMPTY_PASSWORD=yes; no REDIS_PASSWORD")
    ]
    with_password = open_master.replace(
        '{name: ALLOW_EMPTY_PASSWORD, value: "yes"}',
        "{name: REDIS_PASSWORD, valueFrom: {secretKeyRef: {name: redis, key: redis-password}}}",
    )
    assert findings(tmp_path, deployment("redis-master", with_password), "SEC003") == []


def test_redis_stack_args_protected_mode_and_clients(tmp_path):
    stack = """
    - name: redis-stack
      image: redis/redis-stack-server:7.2.0-v10
      env:
      - {name: REDIS_ARGS, value: "--requirepass $(REDIS_PASSWORD) --appendonly no"}
    """
    protected = """
    - name: redis
      image: redis:7.2
      args: ["--protected-mode", "yes"]
    """
    client_job = """
apiVersion: batch/v1
kind: Job
metadata: {name: flush-queue, namespace: ml}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: flush
        image: redis:7.2
        command: ["redis-cli", "-h", "redis", "DEL", "mochi:queue"]
"""
    assert findings(tmp_path, deployment("stack", stack), "SEC003") == []
    assert findings(tmp_path, deployment("protected", protected), "SEC003") == []
    assert findings(tmp_path, client_job, "SEC003") == []
    open_stack = stack.replace("--requirepass $(REDIS_PASSWORD) ", "")
    assert summary(findings(tmp_path, deployment("stack", open_stack), "SEC003")) == [
        ("error", "Deployment/ml/stack", "command: (image default); no requirepass")
    ]


# -- REDIS005 ----------------------------------------------------------------------------------
def test_appendonly_without_a_volume_under_the_data_dir(tmp_path):
    found = findings(tmp_path, EXTERNAL_REDIS, "REDIS005")
    assert summary(found) == [
        (
            "warning",
            "Deployment/default/redis",
            "appendonly yes; dir /data; no volume mounted there",
        )
    ]
    assert "loses every key" in found[0].message


def test_appendonly_on_a_claim_is_kept(tmp_path):
    # KubeRay's ray-cluster.persistent-redis.yaml shape: a claim mounted at /data.
    persistent = EXTERNAL_REDIS.replace(
        "          subPath: redis.conf\n",
        "          subPath: redis.conf\n        - name: redis-data\n          mountPath: /data\n",
    ).replace(
        "      - name: config\n        configMap:",
        "      - name: redis-data\n        persistentVolumeClaim: {claimName: redis-data}\n"
        "      - name: config\n        configMap:",
    )
    assert findings(tmp_path, persistent, "REDIS005") == []
    claim_template = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, namespace: ml}
spec:
  serviceName: redis
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers:
      - name: redis
        image: redis:7.2
        args: ["--appendonly", "yes", "--dir", "/var/lib/redis"]
        volumeMounts: [{name: data, mountPath: /var/lib/redis}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 8Gi}}
"""
    assert findings(tmp_path, claim_template, "REDIS005") == []
    elsewhere = claim_template.replace("mountPath: /var/lib/redis", "mountPath: /data")
    assert summary(findings(tmp_path, elsewhere, "REDIS005")) == [
        (
            "warning",
            "StatefulSet/ml/redis",
            "appendonly yes; dir /var/lib/redis; no volume mounted there",
        )
    ]


def test_appendonly_on_an_empty_dir(tmp_path):
    container = """
    - name: redis
      image: docker.io/library/redis:8.2.1-alpine
      args: ["--appendonly", "yes"]
      volumeMounts: [{name: redis-data, mountPath: /data}]
    """
    volumes = "[{name: redis-data, emptyDir: {}}]"
    found = findings(tmp_path, deployment("redis", container, volumes), "REDIS005")
    assert summary(found) == [
        ("warning", "Deployment/ml/redis", "appendonly yes; dir /data; emptyDir redis-data")
    ]
    assert "rescheduling the pod" in found[0].message
    no_aof = container.replace('args: ["--appendonly", "yes"]', "args: []")
    assert findings(tmp_path, deployment("redis", no_aof, volumes), "REDIS005") == []


def test_bitnami_default_aof_and_its_data_dir(tmp_path):
    container = """
    - name: redis
      image: bitnami/redis:7.2
      env:
      - name: REDIS_PASSWORD
        valueFrom: {secretKeyRef: {name: redis-auth, key: password}}
    """
    found = findings(tmp_path, deployment("kv", container), "REDIS005")
    assert summary(found) == [
        (
            "warning",
            "Deployment/ml/kv",
            "bitnami's default REDIS_AOF_ENABLED=yes; dir /bitnami/redis/data; "
            "no volume mounted there",
        )
    ]
    mounted = container + "  volumeMounts: [{name: data, mountPath: /bitnami/redis}]\n"
    volumes = "[{name: data, persistentVolumeClaim: {claimName: kv-data}}]"
    assert findings(tmp_path, deployment("kv", mounted, volumes), "REDIS005") == []
    aof_off = container + '  - {name: REDIS_AOF_ENABLED, value: "no"}\n'
    assert findings(tmp_path, deployment("kv", aof_off), "REDIS005") == []


def test_config_not_in_the_input_says_nothing(tmp_path):
    container = """
    - name: redis
      image: redis:7.2
      command: ["redis-server", "/etc/redis/redis.conf"]
      volumeMounts: [{name: conf, mountPath: /etc/redis}]
    """
    volumes = "[{name: conf, configMap: {name: redis-conf-from-another-chart}}]"
    assert findings(tmp_path, deployment("redis", container, volumes), "REDIS005") == []


# -- REDIS007 ----------------------------------------------------------------------------------
def redis_with(args: str, limit: str = "512Mi", extra: str = "") -> str:
    return f"""
    - name: redis
      image: redis:7.4.2-alpine
      args: {args}
      resources: {{limits: {{memory: {limit}}}}}
    {extra}"""


def test_a_memory_limit_without_maxmemory(tmp_path):
    found = findings(tmp_path, deployment("redis", redis_with("[]")), "REDIS007")
    assert summary(found) == [
        (
            "warning",
            "Deployment/ml/redis",
            "command: (image default); limits.memory 512Mi; no maxmemory",
        )
    ]
    assert "OOM-kills it instead of refusing writes" in found[0].message


def test_maxmemory_not_below_the_limit(tmp_path):
    found = findings(
        tmp_path, deployment("redis", redis_with('["--maxmemory", "1gb"]')), "REDIS007"
    )
    assert [f.evidence.rsplit("; ", 1)[-1] for f in found] == ["maxmemory 1gb"]
    assert "not below that limit" in found[0].message
    # 536870912 bytes = 512Mi exactly: equal is not below
    equal = redis_with('["--maxmemory", "536870912"]')
    assert len(findings(tmp_path, deployment("redis", equal), "REDIS007")) == 1


def test_maxmemory_from_the_mounted_config_file(tmp_path):
    config = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: conf, namespace: ml}
    data:
      redis.conf: |
        maxmemory VALUE
        maxmemory-policy noeviction
    """
    mount = "  volumeMounts: [{name: conf, mountPath: /etc/redis}]"
    container = redis_with('["/etc/redis/redis.conf"]', extra=mount)
    volumes = "[{name: conf, configMap: {name: conf}}]"
    for value, count in (("400mb", 0), ("0", 1), ("2gb", 1)):
        text = textwrap.dedent(config.replace("VALUE", value)) + "---\n"
        text += deployment("redis", container, volumes)
        assert len(findings(tmp_path, text, "REDIS007")) == count, value


def test_quiet_when_bounded_unlimited_or_unknown(tmp_path):
    bounded = redis_with('["--maxmemory", "409mb", "--maxmemory-policy", "noeviction"]')
    assert findings(tmp_path, deployment("redis", bounded), "REDIS007") == []
    no_limit = """
    - name: redis
      image: redis:7.4.2-alpine
    """
    assert findings(tmp_path, deployment("redis", no_limit), "REDIS007") == []
    from_shell = redis_with('["--maxmemory", "$(MAXMEMORY)"]')
    assert findings(tmp_path, deployment("redis", from_shell), "REDIS007") == []
    elsewhere = redis_with(
        '["/etc/redis/redis.conf"]', extra="  volumeMounts: [{name: conf, mountPath: /etc/redis}]"
    )
    volumes = "[{name: conf, configMap: {name: from-another-chart}}]"
    assert findings(tmp_path, deployment("redis", elsewhere, volumes), "REDIS007") == []


def test_redis_memory_units():
    assert redis_bytes("409mb") == 409 * 2**20
    assert redis_bytes("1G") == 10**9
    assert redis_bytes("100000") == 100000
    assert redis_bytes("lots") is None
