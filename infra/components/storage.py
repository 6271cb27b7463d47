"""The shared output volume, the model-cache volume, and the Job that pre-fills the cache."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec, sizing
from infra.components.args import ClaimArgs, ModelCacheArgs, StorageArgs
from infra.components.base import Component, name_of, shared_metadata
from infra.protection import data_options

# kind's and k3s's local-path provisioner offers ReadWriteOnce only; on one node every pod can
# still mount it, so the dev stack tells the doctor, visibly, why its PERM006 does not apply.
SINGLE_NODE_RWO = {
    "doctor.mochi.dev/ignore": "PERM006: single-node dev cluster, local-path storage is RWO only"
}


class Storage(Component):
    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Storage", name, opts)
        self._args = args
        self.output_claim = self._claim("videos", args.output)
        self.model_cache_claim: pulumi.Output[str] | None = None
        if args.model_cache is not None:
            self.model_cache_claim = self._claim("model-cache", args.model_cache)
        self.register_outputs({"output_claim": self.output_claim})

    def _claim(self, part: str, claim: ClaimArgs) -> pulumi.Output[str]:
        spec = {
            "accessModes": [claim.access_mode],
            "resources": {"requests": {"storage": claim.size}},
        }
        if claim.storage_class:
            spec["storageClassName"] = claim.storage_class
        metadata = shared_metadata(claim.name, self._args.namespace)
        if claim.access_mode == "ReadWriteOnce":
            metadata["annotations"] = SINGLE_NODE_RWO
        resource = k8s.core.v1.PersistentVolumeClaim(
            self.child_name(part),
            metadata=metadata,
            spec=spec,
            opts=data_options(self._args.data_protection, self, part),
        )
        return name_of(resource)


class ModelPrefill(Component):
    """`mochi fetch-model` into the cache volume, so workers start without downloading."""

    def __init__(self, name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ModelPrefill", name, opts)
        container = podspec.service_container(
            naming.MODEL_PREFILL,
            args,
            ["mochi", "fetch-model"],
            [podspec.hf_home_env()],
            resources=sizing.prefill().spec(),
            securityContext=podspec.container_security(),
            # MOCHI_OUTPUT_DIR (from the settings) must be the shared volume in every pod.
            volumeMounts=[podspec.model_cache_mount(), podspec.output_mount()],
        )
        volumes = [
            podspec.model_cache_volume(args.model_cache_claim),
            podspec.output_volume(args.output_claim),
        ]
        pod = podspec.pod_spec([container], volumes, restartPolicy="OnFailure")
        k8s.batch.v1.Job(
            self.child_name(),
            metadata=naming.metadata(naming.MODEL_PREFILL, args.namespace),
            spec={
                "backoffLimit": 3,
                "ttlSecondsAfterFinished": 86400,
                "template": podspec.template(naming.MODEL_PREFILL, pod),
            },
            opts=self.child_opts(),
        )
        self.register_outputs({})
