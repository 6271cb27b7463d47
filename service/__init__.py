"""Mochi video generation service: API, Redis job queue, Ray worker pool."""

__version__ = "0.1.0"
