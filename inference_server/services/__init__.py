"""The spine's gRPC services, which every server has whatever its capabilities: Jobs, Artifacts and
Server (GetServerInfo). errors.py turns a KeygripError into a status with details and inputs.py
checks the inputs a request names at submit time. Each capability's own service is in its package."""
