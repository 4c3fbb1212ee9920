import os

# Before anything imports grpc: children started with preexec_fn (core.lifetime) while a gRPC
# channel is busy in another thread die before exec without this (see core/lifetime.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
