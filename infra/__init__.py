"""Pulumi program that deploys the Mochi video-generation stack to Kubernetes."""
