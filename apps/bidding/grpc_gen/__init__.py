"""Generated from proto/bidding.proto by apps.bidding.grpc_codegen - do not edit."""
