"""The teacher backends, by name. A backend's module (and its heavy imports) loads only when chosen."""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:class"; every module here imports only classifiers.backends.base and below
_REGISTRY = {
    "endpoint": "classifiers.backends.endpoint:EndpointBackend",
    "transformers": "classifiers.backends.transformers_local:TransformersBackend",
    "vllm": "classifiers.backends.vllm_replicas:VllmBackend",
}
PROMPTING_BACKENDS = tuple(_REGISTRY)


def get_backend(name: str) -> Any:
    """The backend class registered under `name` (KeyError names the known ones)."""
    if name not in _REGISTRY:
        raise KeyError(f"no teacher backend {name!r}; known: {', '.join(_REGISTRY)}")
    module, _, cls = _REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), cls)
