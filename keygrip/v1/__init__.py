"""Generated gRPC stubs for keygrip.v1. Do not edit: run scripts/gen_protos.py."""
