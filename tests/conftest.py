"""Shared test fixtures. Tests never reach the network: only 127.0.0.1 services the tests start themselves."""
