#!/bin/sh
# Regenerate the committed protobuf/gRPC code after editing node.proto (run from the repo root).
exec python -m grpc_tools.protoc -Isrc --python_out=src --grpc_python_out=src --pyi_out=src src/tholos/rpc/node.proto
