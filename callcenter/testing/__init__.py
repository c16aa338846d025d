"""Helpers for tests and benchmarks: sipp, fault-injection proxy, AMI server."""
