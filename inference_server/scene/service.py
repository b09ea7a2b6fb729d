"""The SceneGeneration service: checks a request and its models, and queues a generate_texture,
generate_world or project_texture job."""

from __future__ import annotations

import grpc

from inference_server.capability import ServerParts
from inference_server.scene import options
from inference_server.services.errors import rpc_errors
from inference_server.store.artifacts import check_digest
from keygrip.v1 import common_pb2, scene_pb2, scene_pb2_grpc


class SceneGenerationService(scene_pb2_grpc.SceneGenerationServicer):
    def __init__(self, parts: ServerParts) -> None:
        self.manager = parts.manager
        self._models = parts.models

    @rpc_errors
    async def GenerateTexture(self, request: scene_pb2.GenerateTextureRequest,
                              context: grpc.aio.ServicerContext) -> common_pb2.Job:
        req = options.texture_request(request)
        # Tiling needs a convolutional denoiser (scene.texture); without it any text-to-image model does,
        # as for worlds.
        (await self._models()).suited(req.settings.model, "scene.texture" if req.tileable else "scene.world")
        if req.init_image_artifact_id:
            self.manager.artifacts.stat(check_digest(req.init_image_artifact_id))
        return self.manager.to_proto(self.manager.submit("generate_texture", req, request.request_id))

    @rpc_errors
    async def GenerateWorld(self, request: scene_pb2.GenerateWorldRequest,
                            context: grpc.aio.ServicerContext) -> common_pb2.Job:
        req = options.world_request(request)
        (await self._models()).suited(req.settings.model, "scene.world")
        return self.manager.to_proto(self.manager.submit("generate_world", req, request.request_id))

    @rpc_errors
    async def ProjectTexture(self, request: scene_pb2.ProjectTextureRequest,
                             context: grpc.aio.ServicerContext) -> common_pb2.Job:
        req = options.project_request(request)
        options.check_project_models(await self._models(), req.settings.model, req.controlnet)
        for view in req.views:
            for digest in (view.depth_artifact_id, view.mask_artifact_id):
                if digest:
                    self.manager.artifacts.stat(check_digest(digest))
        return self.manager.to_proto(self.manager.submit("project_texture", req, request.request_id))


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    scene_pb2_grpc.add_SceneGenerationServicer_to_server(SceneGenerationService(parts), server)
