"""Conformance test suite for the Function-as-a-Service REST API."""
