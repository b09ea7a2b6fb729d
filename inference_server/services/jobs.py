"""The Jobs service: get, list, watch, cancel and delete jobs of every type."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from inference_server.errors import InvalidInput
from inference_server.jobs.manager import JobManager
from inference_server.services.errors import rpc_errors
from keygrip.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

_MAX_PAGE = 1000


class JobsService(jobs_pb2_grpc.JobsServicer):
    def __init__(self, manager: JobManager) -> None:
        self.manager = manager

    @rpc_errors
    async def GetJob(self, request: jobs_pb2.GetJobRequest,
                     context: grpc.aio.ServicerContext) -> common_pb2.Job:
        return self.manager.to_proto(self.manager.get(request.job_id))

    @rpc_errors
    async def ListJobs(self, request: jobs_pb2.ListJobsRequest,
                       context: grpc.aio.ServicerContext) -> jobs_pb2.ListJobsResponse:
        size = min(request.page_size or 100, _MAX_PAGE)
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            raise InvalidInput(f"page_token {request.page_token!r} was not returned by ListJobs") from None
        recs = self.manager.store.list(states=list(request.states), job_type=request.type,
                                       limit=size + 1, offset=offset)
        resp = jobs_pb2.ListJobsResponse(jobs=[self.manager.to_proto(r) for r in recs[:size]])
        if len(recs) > size:
            resp.next_page_token = str(offset + size)
        return resp

    @rpc_errors
    async def WatchJob(self, request: jobs_pb2.WatchJobRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[common_pb2.JobEvent]:
        async for event in self.manager.watch(request.job_id, request.after_sequence):
            yield event

    @rpc_errors
    async def CancelJob(self, request: jobs_pb2.CancelJobRequest,
                        context: grpc.aio.ServicerContext) -> common_pb2.Job:
        return self.manager.to_proto(self.manager.cancel(request.job_id))

    @rpc_errors
    async def DeleteJob(self, request: jobs_pb2.DeleteJobRequest,
                        context: grpc.aio.ServicerContext) -> jobs_pb2.DeleteJobResponse:
        self.manager.delete(request.job_id)
        return jobs_pb2.DeleteJobResponse()
