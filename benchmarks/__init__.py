import os

# Before anything imports grpc: children started with preexec_fn (server.lifetime) while a gRPC
# channel is busy in another thread die before exec without this (see server/lifetime.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
