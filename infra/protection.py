"""Resource options for what holds data: the Namespace (deleting it deletes every claim in it)
and the PersistentVolumeClaims of the videos and the model cache.

`mochi:dataProtection`: `protect` (Pulumi refuses to delete or replace them: `pulumi destroy`
fails, `--exclude-protected` keeps them and destroys the rest), `retain` (a destroy leaves them in
the cluster; a later `pulumi up` meets them as existing objects, which pulumi-kubernetes refuses
to adopt unless PULUMI_K8S_UPSERT_EXISTING_OBJECTS=true), `none` (they go with the stack).
Redis's AOF claim comes from its StatefulSet's volumeClaimTemplate and is kept by the
StatefulSet's retention policy as long as the Namespace stays.

These resources are protected under their URN: their Pulumi names are `foundation-namespace`,
`storage-videos` and `storage-model-cache`, each aliased to its former name (`namespace`,
`videos`, `model-cache`), so a stack created before keeps them, protected, without a replace.
"""

from __future__ import annotations

import pulumi

from infra.components.base import Component


def data_options(data_protection: str, parent: Component, old_name: str) -> pulumi.ResourceOptions:
    return parent.child_opts(
        old_name,
        protect=data_protection == "protect",
        retain_on_delete=data_protection == "retain",
    )
