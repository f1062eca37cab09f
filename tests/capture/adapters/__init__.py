"""Adapter conformance suite (a package so its conftest and helpers get unique module names)."""
