"""The shared output volume, the model-cache volume, and the Job that pre-fills the cache."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec, sizing
from infra.components.args import ModelCacheArgs, StackArgs
from infra.protection import data_options

# kind's and k3s's local-path provisioner offers ReadWriteOnce only; on one node every pod can
# still mount it, so the dev stack tells the doctor, visibly, why its PERM006 does not apply.
SINGLE_NODE_RWO = {
    "doctor.mochi.dev/ignore": "PERM006: single-node dev cluster, local-path storage is RWO only"
}


def _claim(resource_name, claim_name, namespace, size, access_mode, storage_class, opts):
    spec = {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    metadata = {"name": claim_name, "namespace": namespace, "labels": naming.PART_OF}
    if access_mode == "ReadWriteOnce":
        metadata["annotations"] = SINGLE_NODE_RWO
    return k8s.core.v1.PersistentVolumeClaim(
        resource_name,
        metadata=metadata,
        spec=spec,
        opts=opts,
    )


class Storage(pulumi.ComponentResource):
    def __init__(self, name: str, args: StackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mochi:infra:Storage", name, None, opts)
        config, namespace = args.config, args.namespace
        output = _claim(
            "videos",
            naming.OUTPUT_PVC,
            namespace,
            config.output_storage,
            config.output_access_mode,
            config.shared_storage_class,
            data_options(config, self),
        )
        self.output_claim = output.metadata.apply(lambda meta: meta["name"])
        self.model_cache_claim: pulumi.Output[str] | None = None
        if config.model_cache_enabled:
            cache = _claim(
                "model-cache",
                naming.MODEL_CACHE_PVC,
                namespace,
                config.model_cache_storage,
                config.output_access_mode,
                config.shared_storage_class,
                data_options(config, self),
            )
            self.model_cache_claim = cache.metadata.apply(lambda meta: meta["name"])
        self.register_outputs({"output_claim": self.output_claim})


class ModelPrefill(pulumi.ComponentResource):
    """`mochi fetch-model` into the cache volume, so workers start without downloading."""

    def __init__(self, name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mochi:infra:ModelPrefill", name, None, opts)
        config, namespace, settings_name = args.config, args.namespace, args.settings_name
        model_cache_claim, output_claim = args.model_cache_claim, args.output_claim
        container = {
            "name": naming.MODEL_PREFILL,
            "image": config.worker_image,
            "command": ["mochi", "fetch-model"],
            "envFrom": podspec.settings_env_from(settings_name),
            "env": [podspec.hf_home_env()],
            "resources": sizing.prefill().spec(),
            "securityContext": podspec.container_security(),
            # MOCHI_OUTPUT_DIR (from the settings) must be the shared volume in every pod.
            "volumeMounts": [podspec.model_cache_mount(), podspec.output_mount()],
        }
        volumes = [
            podspec.model_cache_volume(model_cache_claim),
            podspec.output_volume(output_claim),
        ]
        pod = podspec.pod_spec([container], volumes, restartPolicy="OnFailure")
        k8s.batch.v1.Job(
            "model-prefill",
            metadata=naming.metadata(naming.MODEL_PREFILL, namespace),
            spec={
                "backoffLimit": 3,
                "ttlSecondsAfterFinished": 86400,
                "template": podspec.template(naming.MODEL_PREFILL, pod),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
