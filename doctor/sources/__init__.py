"""Sources fill an Inventory: manifests on disk, a cluster snapshot. (Live sources go here.)"""

from doctor.sources.files import InputError
from doctor.sources.manifests import load_manifests
from doctor.sources.snapshot import load_snapshot

__all__ = ["InputError", "load_manifests", "load_snapshot"]
