"""The model manager: diffusion models on local disk, and the pipelines loaded from them.

Not a capability: a shared service that capabilities (scene generation, later compositing) use.

- registry.py: which models the server knows (the TOML's [models.NAME] tables and the ones added with
  `keygrip models add`, kept in data_dir/models.json), each with its format, family, size, state and
  the capabilities it enables. Reads folders, JSON configs and safetensors headers only: the gRPC
  front imports it, so it never imports torch.
- pipelines.py: the device (CUDA/MPS/CPU) and PipelineCache, which loads pipelines from local files
  only and keeps them resident in a worker under a memory budget. Imports torch and diffusers: only
  worker processes import it.

How a worker finds the registry: the front writes the TOML's models, resolved, into
data_dir/models-config.json at start (publish_config_models); a worker knows its data_dir and calls
worker_registry(), which reads that file plus data_dir/models.json.
"""

from inference_server.models.registry import (
    ModelEntry,
    ModelRegistry,
    load_registry,
    model_specs,
    publish_config_models,
    worker_registry,
)

__all__ = ["ModelEntry", "ModelRegistry", "load_registry", "model_specs", "publish_config_models",
           "worker_registry"]
