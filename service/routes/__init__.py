"""The HTTP API's routers (one per resource), their response models, errors and dependencies."""
