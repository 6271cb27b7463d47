"""What every component shares: child resource names derived from the component's name, the
options of a child, and the metadata of the objects that belong to no single workload.

A child's Pulumi name is `<component>-<part>` (or the component's name itself). Children whose
name changed when the components were restructured carry an alias to their old name, so that
`pulumi up` on an existing stack moves them in place instead of replacing them."""

from __future__ import annotations

import pulumi

from infra import naming


class Component(pulumi.ComponentResource):
    def __init__(self, kind: str, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"mochi:infra:{kind}", name, None, opts)
        self.resource_name = name

    def child_name(self, part: str | None = None) -> str:
        return f"{self.resource_name}-{part}" if part else self.resource_name

    def child_opts(
        self,
        old_name: str | None = None,
        old_parent: pulumi.Resource | None = None,
        **options,
    ) -> pulumi.ResourceOptions:
        """Options of a child; `old_name`/`old_parent`: what the stack knew it as before."""
        aliases = []
        if old_name is not None or old_parent is not None:
            alias = {"name": old_name} if old_name is not None else {}
            if old_parent is not None:
                alias["parent"] = old_parent
            aliases.append(pulumi.Alias(**alias))
        return pulumi.ResourceOptions(parent=self, aliases=aliases or None, **options)


def shared_metadata(name: str, namespace: pulumi.Input[str]) -> dict:
    """Metadata of an object the whole stack shares (Secret, ConfigMap, claim, policy)."""
    return {"name": name, "namespace": namespace, "labels": naming.PART_OF}


def name_of(resource) -> pulumi.Output[str]:
    """A Kubernetes object's metadata.name, as others refer to it (and so depend on it)."""
    return resource.metadata.apply(lambda meta: meta["name"])
