"""gRPC wire format between gateway and nodes. `node_pb2*` are generated from node.proto (gen.sh)."""

from tholos.rpc import node_pb2, node_pb2_grpc

__all__ = ["node_pb2", "node_pb2_grpc"]
